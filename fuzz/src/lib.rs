//! Shared fixtures of the fuzz targets and of the seed writer.
//!
//! Everything here is deterministic (fixed seeds, ChaCha20 RNGs), so the seed writer and the
//! targets build the same setups, identities, sessions, key shares and presignatures: a seed
//! written by `write_seeds` is valid input for its target (for example a p2p message sealed by
//! party 1 opens at party 2's session in the `envelope` target).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use dkls23_core::KeyShare;
use dkls23_core::identity::{Ed25519Identity, IdentityPublicKey, IdentitySigner, P256Identity, SharedSigner};
use dkls23_core::message::{Session, X25519_LEN};
use dkls23_core::setup::{PartyIndex, ProtocolId, Setup};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A signer as the message layer takes it.
pub type Signer = SharedSigner;

/// A deterministic RNG for `seed`.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// `data` cut or zero-extended to exactly `len` bytes (for the fixed-size decoders, whose inputs
/// libFuzzer would otherwise rarely hit at the right length).
pub fn fit(data: &[u8], len: usize) -> Vec<u8> {
    let mut out = data.get(..len.min(data.len())).unwrap_or_default().to_vec();
    out.resize(len, 0);
    out
}

/// Splits off the first byte (the selector most targets use), or `None` for empty input.
pub fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}

// ---------------------------------------------------------------------------------------------
// Message layer: a 3-party setup, identities and established sessions.
// ---------------------------------------------------------------------------------------------

/// Parties of the message-layer fixture: 1 and 2 use Ed25519, 3 uses P-256.
pub const MSG_PARTIES: [PartyIndex; 3] = [1, 2, 3];
/// The party whose session receives in the `envelope` target.
pub const RECEIVER: PartyIndex = 2;

/// The identity signer of party `j` of the message-layer fixture.
pub fn msg_signer(j: PartyIndex) -> Signer {
    if j == 3 {
        match P256Identity::from_secret_bytes(&[0x33; 32]) {
            Ok(id) => Arc::new(id),
            Err(e) => panic!("fixture: P-256 identity: {e}"),
        }
    } else {
        Arc::new(Ed25519Identity::from_seed(&[j.to_be_bytes()[1]; 32]))
    }
}

/// The setup every message-layer fixture session is bound to (a 2-of-3 DKG setup).
pub fn msg_setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let participants: Vec<(PartyIndex, IdentityPublicKey)> =
            MSG_PARTIES.iter().map(|&j| (j, msg_signer(j).public_key())).collect();
        match Setup::new(ProtocolId::Dkg, [0x5e; 32], 3, 2, participants, b"fuzz".to_vec(), 600) {
            Ok(s) => s,
            Err(e) => panic!("fixture: setup: {e}"),
        }
    })
}

fn fresh_session(j: PartyIndex) -> Session {
    // The ephemeral key is the only thing `resume` draws from the RNG, so a fixed seed per
    // party gives the same ephemeral key (and channel keys) in every process.
    match Session::resume(msg_setup(), msg_signer(j), &mut rng(1000 + u64::from(j))) {
        Ok(s) => s,
        Err(e) => panic!("fixture: session of party {j}: {e}"),
    }
}

/// The ephemeral X25519 public keys of the fixture parties.
pub fn ephemerals() -> &'static BTreeMap<PartyIndex, [u8; X25519_LEN]> {
    static EPH: OnceLock<BTreeMap<PartyIndex, [u8; X25519_LEN]>> = OnceLock::new();
    EPH.get_or_init(|| {
        MSG_PARTIES.iter().map(|&j| (j, fresh_session(j).ephemeral_public())).collect()
    })
}

/// A new session of party `j` with channels established to every peer (same keys every time).
pub fn msg_session(j: PartyIndex) -> Session {
    let mut s = fresh_session(j);
    for (&peer, eph) in ephemerals() {
        if peer != j
            && let Err(e) = s.establish(peer, eph)
        {
            panic!("fixture: establish {j} -> {peer}: {e}");
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Key shares and presignatures from the in-process simulation.
// ---------------------------------------------------------------------------------------------

/// The setup hash the simulated DKG and presigning are bound to.
pub const SIM_SETUP_HASH: [u8; 32] = [0x42; 32];

/// Both shares of a 2-of-2 key made once with `dkls23_core::sim::dkg`.
pub fn shares() -> &'static [KeyShare; 2] {
    static SHARES: OnceLock<[KeyShare; 2]> = OnceLock::new();
    SHARES.get_or_init(|| {
        let mut rngs: BTreeMap<PartyIndex, ChaCha20Rng> =
            [1u16, 2].iter().map(|&j| (j, rng(2000 + u64::from(j)))).collect();
        let (mut results, _) =
            dkls23_core::sim::dkg(2, 2, SIM_SETUP_HASH, &mut rngs, &mut |_, _, _| {});
        let mut take = |j: PartyIndex| match results.remove(&j) {
            Some(Ok(s)) => s,
            Some(Err(e)) => panic!("fixture: DKG party {j}: {e}"),
            None => panic!("fixture: DKG party {j}: no result"),
        };
        [take(1), take(2)]
    })
}

/// Party 1's key share (the one the `presignature` target decodes against).
pub fn share1() -> &'static KeyShare {
    &shares()[0]
}

/// Serialised presignatures of party 1 for `path` (presigning with both parties).
pub fn presignature_bytes(path: &[u32], seed: u64) -> Vec<u8> {
    let [s1, s2] = shares();
    let mut rngs: BTreeMap<PartyIndex, ChaCha20Rng> =
        [1u16, 2].iter().map(|&j| (j, rng(seed + u64::from(j)))).collect();
    let (mut results, _) = dkls23_core::sim::presign(
        &[s1, s2],
        &[1, 2],
        path,
        SIM_SETUP_HASH,
        &mut rngs,
        &mut |_, _, _| {},
    );
    match results.remove(&1) {
        Some(Ok(p)) => p.to_bytes().to_vec(),
        Some(Err(e)) => panic!("fixture: presign: {e}"),
        None => panic!("fixture: presign: no result"),
    }
}

// ---------------------------------------------------------------------------------------------
// dkls-party files.
// ---------------------------------------------------------------------------------------------

/// The passphrase the `party_file` target opens sealed files with (seeds are sealed with it).
pub const PASSPHRASE: &[u8] = b"fuzz-passphrase";

/// Cheap Argon2id parameters for seeds and re-sealing (the defaults cost ~19 MiB per call).
pub const CHEAP_KDF: dkls_party::sealed::KdfParams =
    dkls_party::sealed::KdfParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };
