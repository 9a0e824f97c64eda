//! Key shares made by the in-process simulator, for tests that start from an existing key.

use dkls23_core::{KeyShare, sim};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// An honest t-of-n DKG in the simulator, shares by index.
pub fn honest_dkg(n: u16, t: u16, seed: u64) -> Vec<KeyShare> {
    let mut rngs =
        (1..=n).map(|i| (i, ChaCha20Rng::seed_from_u64(seed * 1000 + u64::from(i)))).collect();
    sim::dkg(n, t, [7u8; 32], &mut rngs, &mut |_, _, _| {})
        .0
        .into_values()
        .map(|r| r.unwrap())
        .collect()
}
