//! Seeded wrappers around `dkls23_core::sim` (all parties in one loop).

use std::collections::BTreeMap;

use dkls23_core::sign::{SignConfig, Signature};
use dkls23_core::sim;
pub use dkls23_core::sim::Tamper;
use dkls23_core::{Error, KeyShare, PartyIndex};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub fn rngs(n: u16, seed: u64) -> BTreeMap<PartyIndex, ChaCha20Rng> {
    (1..=n).map(|i| (i, ChaCha20Rng::seed_from_u64(seed * 1000 + u64::from(i)))).collect()
}

/// The deterministic, valid identity key `sim` gives party `j` (seed `[j; 32]`).
pub fn identity(j: PartyIndex) -> dkls23_core::identity::IdentityPublicKey {
    sim::identity(j)
}

pub fn sign_config(signers: &[PartyIndex], me: PartyIndex, path: &[u32]) -> SignConfig {
    sim::sign_config([9u8; 32], signers, me, path)
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
