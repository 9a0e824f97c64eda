//! White-box signing tests that need to change a party's secret share.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::error::Error;
use crate::keyshare::KeyShare;
use crate::sim;

fn rngs(n: u16, seed: u64) -> BTreeMap<u16, ChaCha20Rng> {
    (1..=n).map(|i| (i, ChaCha20Rng::seed_from_u64(seed * 1000 + u64::from(i)))).collect()
}

#[test]
fn a_party_using_sk_plus_one_consistently_is_unattributable_and_unbanned() {
    let (res, _) = sim::dkg(3, 2, [1; 32], &mut rngs(3, 1), &mut |_, _, _| {});
    let mut shares: Vec<KeyShare> = res.into_values().map(Result::unwrap).collect();
    // Party 2 signs with s_2 + 1: its pk_2 and its RVOLE inputs agree with each other, so every
    // Γ check passes, but Σ pk_j ≠ X'. Nobody can tell who cheated: no blame, no ban.
    shares[1].secret_share += k256::Scalar::ONE;
    let refs: Vec<&KeyShare> = shares.iter().collect();
    let (res, _) =
        sim::sign(&refs, &[1, 2], &[3; 32], &[], [2; 32], &mut rngs(3, 2), &mut |_, _, _| {});
    for who in [1u16, 2] {
        match &res[&who] {
            Err(e @ Error::Unattributable(reason)) => {
                assert!(reason.contains("Σ pk_j"), "{reason}");
                assert!(!e.must_ban() && e.culprits().is_empty());
            }
            other => panic!("party {who}: expected Unattributable, got {other:?}"),
        }
    }
}

fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}

/// Type-level: the session key share and the RVOLE outputs are wiped when dropped.
#[allow(dead_code)]
fn round_secrets(r2: &super::SignRound2<'_>, out: &super::AliceOut) {
    zeroized_on_drop(&r2.sk);
    zeroized_on_drop(out);
}

#[test]
fn per_session_secrets_are_zeroizing() {
    let f: fn(&super::SignRound2<'_>, &super::AliceOut) = round_secrets;
    let _ = f;
}
