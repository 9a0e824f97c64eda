//! Seeded wrappers around `dkls23_core::sim` (all parties in one loop).

use std::collections::BTreeMap;

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

/// Runs a full DKG; returns each party's result.
pub fn run_dkg(
    n: u16,
    t: u16,
    seed: u64,
    tamper: Tamper<'_>,
) -> BTreeMap<PartyIndex, Result<KeyShare, Error>> {
    sim::dkg(n, t, [7u8; 32], &mut rngs(n, seed), tamper).0
}

/// An honest DKG whose shares carry valid identity keys ([`identity`]), as the reshare and
/// lifecycle tests need (the simulator's placeholder identities do not decode).
pub fn honest_dkg(n: u16, t: u16, seed: u64) -> Vec<KeyShare> {
    use dkls23_core::dkg::{self, DkgConfig, Outgoing};
    let mut rngs = rngs(n, seed);
    let mut r1 = BTreeMap::new();
    let mut out: BTreeMap<PartyIndex, Outgoing> = BTreeMap::new();
    for me in 1..=n {
        let cfg = DkgConfig {
            n,
            t,
            me,
            setup_hash: [7u8; 32],
            ephemeral_public: [me as u8; 32],
            identities: (1..=n).map(|j| identity(j).to_bytes()).collect(),
        };
        let (st, k1) = dkg::start(rngs.get_mut(&me).unwrap(), cfg).unwrap();
        r1.insert(me, st);
        out.insert(me, Outgoing { broadcast: Some(k1), p2p: BTreeMap::new() });
    }
    let mut r2 = BTreeMap::new();
    let mut out2 = BTreeMap::new();
    for (me, st) in r1 {
        let (st, o) = st.next(rngs.get_mut(&me).unwrap(), &bcast_for(&out, me)).unwrap();
        r2.insert(me, st);
        out2.insert(me, o);
    }
    let mut r3 = BTreeMap::new();
    let mut out3 = BTreeMap::new();
    for (me, st) in r2 {
        let rng = rngs.get_mut(&me).unwrap();
        let (st, o) = st.next(rng, &bcast_for(&out2, me), &p2p_for(&out2, me)).unwrap();
        r3.insert(me, st);
        out3.insert(me, o);
    }
    let mut r4 = BTreeMap::new();
    let mut out4 = BTreeMap::new();
    for (me, st) in r3 {
        let (st, o) = st.next(&bcast_for(&out3, me), &p2p_for(&out3, me)).unwrap();
        r4.insert(me, st);
        out4.insert(me, o);
    }
    r4.into_iter().map(|(me, st)| st.finish(&bcast_for(&out4, me)).unwrap()).collect()
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
