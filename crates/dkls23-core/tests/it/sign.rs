//! Signing: every signature verified with k256 and its recovery id checked.

use crate::common::*;
use crate::dkg::subsets;
use dkls23_core::bip32;
use dkls23_core::sign::Signature;

pub fn verify(pk: &k256::ProjectivePoint, m32: &[u8; 32], sig: &Signature) {
    dkls23_core::sim::check_signature(pk, m32, sig).unwrap();
}

#[test]
fn every_pair_of_a_2_of_3_key_signs() {
    let shares = honest_dkg(3, 2, 11);
    let pk = *shares[0].public_key();
    for (n, signers) in subsets(&[1, 2, 3], 2).into_iter().chain([vec![1, 2, 3]]).enumerate() {
        let m32 = [n as u8 + 1; 32];
        let res = run_sign(&shares, &signers, &m32, &[], 100 + n as u64, &mut |_, _, _| {});
        let sigs: Vec<Signature> = res.into_values().map(|r| r.unwrap()).collect();
        for s in &sigs {
            assert_eq!(s, &sigs[0], "every signer combines the same signature");
        }
        verify(&pk, &m32, &sigs[0]);
    }
}

#[test]
fn signing_under_a_path_verifies_with_the_derived_key() {
    let shares = honest_dkg(3, 2, 12);
    let path = [0u32, 7, 1_000_000];
    let derived = bip32::derive(shares[0].public_key(), shares[0].chain_code(), &path).unwrap();
    let m32 = [0x42; 32];
    let res = run_sign(&shares, &[1, 3], &m32, &path, 5, &mut |_, _, _| {});
    for r in res.into_values() {
        verify(&derived.public_key, &m32, &r.unwrap());
    }
}
