//! DKG: invariants (`protocols.md` §10 item 1) and negative tests.

use k256::ProjectivePoint;
use k256::elliptic_curve::group::Group;

use crate::common::*;
use dkls23_core::Error;
use dkls23_core::math::lagrange_at_zero;

#[test]
fn dkg_2_of_3_agrees_and_interpolates() {
    let shares = honest_dkg(3, 2, 1);
    check_invariants(&shares);
}

pub fn check_invariants(shares: &[dkls23_core::KeyShare]) {
    let first = &shares[0];
    let n = first.parties();
    let t = first.threshold();
    for s in shares {
        assert_eq!(s.public_key(), first.public_key());
        assert_eq!(s.chain_code(), first.chain_code());
        assert_eq!(s.keygen_sid(), first.keygen_sid());
        assert_eq!(s.key_id(), first.key_id());
        for l in 1..=n {
            assert_eq!(s.public_share(l), first.public_share(l));
        }
        s.validate().unwrap();
        let back = dkls23_core::KeyShare::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back.public_key(), s.public_key());
    }
    // Every t-subset interpolates X in the exponent; no (t-1)-subset does.
    let all: Vec<u16> = (1..=n).collect();
    for subset in subsets(&all, usize::from(t)) {
        let x: ProjectivePoint = subset
            .iter()
            .map(|&l| *first.public_share(l).unwrap() * lagrange_at_zero(&subset, l).unwrap())
            .fold(ProjectivePoint::IDENTITY, |a, b| a + b);
        assert_eq!(&x, first.public_key());
    }
    for subset in subsets(&all, usize::from(t) - 1).into_iter().filter(|s| !s.is_empty()) {
        let x: ProjectivePoint = subset
            .iter()
            .map(|&l| *first.public_share(l).unwrap() * lagrange_at_zero(&subset, l).unwrap())
            .fold(ProjectivePoint::IDENTITY, |a, b| a + b);
        assert_ne!(&x, first.public_key());
    }
    assert!(!bool::from(first.public_key().is_identity()));
}

pub fn subsets(items: &[u16], k: usize) -> Vec<Vec<u16>> {
    if k == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for (i, &x) in items.iter().enumerate() {
        for mut rest in subsets(&items[i + 1..], k - 1) {
            rest.insert(0, x);
            out.push(rest);
        }
    }
    out
}

#[test]
fn dkg_wrong_share_is_blamed_on_the_dealer() {
    // Party 2 sends party 3 a wrong Shamir share (byte 32..64 of its K2 p2p message).
    let res = run_dkg(3, 2, 2, &mut |round, from, out| {
        if round == 2 && from == 2 {
            let m = out.p2p.get_mut(&3).unwrap();
            m[63] ^= 1;
        }
    });
    match &res[&3] {
        Err(Error::Blame { party: 2, reason }) => {
            assert!(reason.contains("Feldman") || reason.contains("share"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
}
