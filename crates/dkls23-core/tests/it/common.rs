//! Seeded wrappers around `dkls23_core::sim` (all parties in one loop).

use std::collections::BTreeMap;

use dkls23_core::dkg::{self, DkgConfig, Outgoing};
use dkls23_core::sign::{SignConfig, Signature};
use dkls23_core::sim;
pub use dkls23_core::sim::{Tamper, bcast_for, p2p_for};
use dkls23_core::{Error, KeyShare, PartyIndex};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub fn rngs(n: u16, seed: u64) -> BTreeMap<PartyIndex, ChaCha20Rng> {
    (1..=n).map(|i| (i, ChaCha20Rng::seed_from_u64(seed * 1000 + u64::from(i)))).collect()
}

pub fn sign_config(signers: &[PartyIndex], me: PartyIndex, path: &[u32]) -> SignConfig {
    sim::sign_config([9u8; 32], signers, me, path)
}

/// A deterministic, valid identity key for party `j` (seed `[j; 32]`).
pub fn identity(j: PartyIndex) -> dkls23_core::identity::IdentityPublicKey {
    use dkls23_core::identity::IdentitySigner;
    dkls23_core::identity::Ed25519Identity::from_seed(&[j as u8; 32]).public_key()
}

pub fn configs(n: u16, t: u16) -> Vec<DkgConfig> {
    (1..=n)
        .map(|me| DkgConfig {
            n,
            t,
            me,
            setup_hash: [7u8; 32],
            ephemeral_public: [me as u8; 32],
            identities: (1..=n).map(|j| identity(j).to_bytes()).collect(),
        })
        .collect()
}

/// Runs a full DKG with valid identity keys (reshare needs them); returns each party's result.
pub fn run_dkg(
    n: u16,
    t: u16,
    seed: u64,
    tamper: Tamper<'_>,
) -> BTreeMap<PartyIndex, Result<KeyShare, Error>> {
    let mut rngs = rngs(n, seed);
    let mut results = BTreeMap::new();
    let mut r1 = BTreeMap::new();
    let mut out = BTreeMap::new();
    for cfg in configs(n, t) {
        let me = cfg.me;
        let (st, k1) = dkg::start(rngs.get_mut(&me).unwrap(), cfg).unwrap();
        let mut o = Outgoing { broadcast: Some(k1), p2p: BTreeMap::new() };
        tamper(1, me, &mut o);
        r1.insert(me, st);
        out.insert(me, o);
    }
    let mut r2 = BTreeMap::new();
    let mut out2 = BTreeMap::new();
    for (me, st) in r1 {
        match st.next(rngs.get_mut(&me).unwrap(), &bcast_for(&out, me)) {
            Ok((st, mut o)) => {
                tamper(2, me, &mut o);
                r2.insert(me, st);
                out2.insert(me, o);
            }
            Err(e) => {
                results.insert(me, Err(e));
            }
        }
    }
    let mut r3 = BTreeMap::new();
    let mut out3 = BTreeMap::new();
    for (me, st) in r2 {
        match st.next(rngs.get_mut(&me).unwrap(), &bcast_for(&out2, me), &p2p_for(&out2, me)) {
            Ok((st, mut o)) => {
                tamper(3, me, &mut o);
                r3.insert(me, st);
                out3.insert(me, o);
            }
            Err(e) => {
                results.insert(me, Err(e));
            }
        }
    }
    let mut r4 = BTreeMap::new();
    let mut out4 = BTreeMap::new();
    for (me, st) in r3 {
        match st.next(&bcast_for(&out3, me), &p2p_for(&out3, me)) {
            Ok((st, mut o)) => {
                tamper(4, me, &mut o);
                r4.insert(me, st);
                out4.insert(me, o);
            }
            Err(e) => {
                results.insert(me, Err(e));
            }
        }
    }
    for (me, st) in r4 {
        results.insert(me, st.finish(&bcast_for(&out4, me)));
    }
    results
}

pub fn honest_dkg(n: u16, t: u16, seed: u64) -> Vec<KeyShare> {
    run_dkg(n, t, seed, &mut |_, _, _| {}).into_values().map(|r| r.unwrap()).collect()
}

/// Runs presign + sign for `signers`; returns each signer's result.
pub fn run_sign(
    shares: &[KeyShare],
    signers: &[PartyIndex],
    m32: &[u8; 32],
    path: &[u32],
    seed: u64,
    tamper: Tamper<'_>,
) -> BTreeMap<PartyIndex, Result<Signature, Error>> {
    let refs: Vec<&KeyShare> = shares.iter().collect();
    sim::sign(&refs, signers, m32, path, [9u8; 32], &mut rngs(255, seed), tamper).0
}
