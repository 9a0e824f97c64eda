//! Property tests over random (t, n) with 2 ≤ t ≤ n ≤ 7 (`protocols.md` §10 items 1–3 and 9).

use std::collections::BTreeMap;

use dkls23_core::sign::Presignature;
use dkls23_core::{Error, KeyShare, PartyIndex, sim};
use proptest::prelude::*;

use crate::common::{honest_dkg, rngs};

/// Signs with `signers` in full mode.
fn full(
    shares: &[KeyShare],
    signers: &[PartyIndex],
    m32: &[u8; 32],
    path: &[u32],
    seed: u64,
) -> sim::Results<dkls23_core::sign::Signature> {
    let refs: Vec<&KeyShare> = shares.iter().collect();
    sim::sign(&refs, signers, m32, path, [3; 32], &mut rngs(255, seed), &mut |_, _, _| {}).0
}

fn pick(n: u16, k: usize, salt: u64) -> Vec<PartyIndex> {
    // A deterministic pseudo-random k-subset of 1..=n, sorted.
    let mut all: Vec<PartyIndex> = (1..=n).collect();
    let mut x = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in (1..all.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        all.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut s = all[..k].to_vec();
    s.sort_unstable();
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn dkg_sign_and_presign_invariants(
        n in 2u16..=7,
        t_off in 0u16..6,
        seed in 1u64..1_000_000,
        path in proptest::collection::vec(0u32..(1 << 31), 0..3),
        m32 in any::<[u8; 32]>(),
    ) {
        let t = 2 + t_off % (n - 1);
        // Item 1: identical public data, s_i·G = X_i (validate), every t-subset interpolates X.
        let shares = honest_dkg(n, t, seed);
        crate::dkg::check_invariants(&shares);
        let derived = dkls23_core::bip32::derive(shares[0].public_key(), shares[0].chain_code(), &path).unwrap();

        // Item 2: a random t-subset and a random superset sign; every signer's output verifies.
        let s = pick(n, usize::from(t), seed);
        let sup = pick(n, usize::from(t + (n - t).min(1)), seed + 1);
        for signers in [&s, &sup] {
            let res = full(&shares, signers, &m32, &path, seed);
            prop_assert_eq!(res.len(), signers.len());
            let sigs: Vec<_> = res.into_values().map(Result::unwrap).collect();
            for sig in &sigs {
                crate::sign::verify(&derived.public_key, &m32, sig);
                prop_assert_eq!(sig, &sigs[0]);
            }
        }

        // Item 3: t−1 signers are refused before any message is produced.
        let few = pick(n, usize::from(t - 1), seed + 2);
        let refs: Vec<&KeyShare> = shares.iter().collect();
        let mut produced = 0;
        let (res, _) = sim::presign(&refs, &few, &path, [4; 32], &mut rngs(255, seed), &mut |_, _, _| produced += 1);
        prop_assert_eq!(produced, 0);
        for e in res.into_values() {
            prop_assert!(matches!(e, Err(Error::InvalidInput(_))));
        }

        // Item 9: presign, store, reload, then the online round: the same signature as full mode
        // with the same randomness (R depends only on the nonces), and it verifies.
        let (pre, _) = sim::presign(&refs, &s, &path, [3; 32], &mut rngs(255, seed), &mut |_, _, _| {});
        let by_index: BTreeMap<PartyIndex, &KeyShare> = shares.iter().map(|x| (x.index(), x)).collect();
        let reloaded: BTreeMap<PartyIndex, Presignature> = pre
            .into_iter()
            .map(|(i, p)| {
                let bytes = p.unwrap().to_bytes();
                (i, Presignature::from_bytes(&bytes, by_index[&i]).unwrap())
            })
            .collect();
        let (online, stats) = sim::finish(reloaded, &m32, &mut rngs(255, seed), &mut |_, _, _| {});
        let full_sig = full(&shares, &s, &m32, &path, seed).into_values().next().unwrap().unwrap();
        for sig in online.into_values() {
            prop_assert_eq!(sig.unwrap(), full_sig);
        }
        // The online round is one small broadcast per party.
        prop_assert_eq!(stats.rounds, 1);
        prop_assert!(stats.max_bytes() <= 200, "online bytes {}", stats.max_bytes());
    }
}
