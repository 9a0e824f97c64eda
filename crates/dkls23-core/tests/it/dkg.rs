//! DKG: invariants (`protocols.md` §10 item 1) and negative tests.

use crate::common::*;
use dkls23_core::Error;

#[test]
fn dkg_2_of_3_agrees_and_interpolates() {
    let shares = honest_dkg(3, 2, 1);
    check_invariants(&shares);
}

pub fn check_invariants(shares: &[dkls23_core::KeyShare]) {
    dkls23_core::sim::check_shares(shares).unwrap();
}

pub use dkls23_core::sim::subsets;

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
