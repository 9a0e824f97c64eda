//! Signing negative tests (`protocols.md` §10): tamper one field per round and check the error
//! class and the culprit.

use crate::common::*;
use dkls23_core::Error;
use dkls23_core::sign;

fn outcome(
    res: &std::collections::BTreeMap<u16, Result<dkls23_core::sign::Signature, Error>>,
    who: u16,
) -> &Error {
    res[&who].as_ref().expect_err("expected an error")
}

/// Offset of Γu inside S2 p2p: SG2 (starting with its vsid) ‖ Γu(33) ‖ Γv(33) ‖ ψ(32).
const GAMMA_U_OFF: usize = dkls23_core::hazmat::ot::Sg2::LEN;

#[test]
fn corrupted_v1_bans_its_sender() {
    let shares = honest_dkg(2, 2, 21);
    // Party 2's SG1 (S1 p2p to party 1) has a flipped bit in U.
    let res = run_sign(&shares, &[1, 2], &[1; 32], &[], 1, &mut |round, from, out| {
        if round == 2 && from == 2 {
            out.p2p.get_mut(&1).unwrap()[32 + 100] ^= 4;
        }
    });
    let e = outcome(&res, 1);
    assert!(matches!(e, Error::BanAndAbort { party: 2, .. }), "{e:?}");
    assert!(e.must_ban());
}

#[test]
fn corrupted_v2_bans_its_sender() {
    let shares = honest_dkg(2, 2, 22);
    let res = run_sign(&shares, &[1, 2], &[1; 32], &[], 2, &mut |round, from, out| {
        if round == 3 && from == 1 {
            // μ is the last 32 bytes of SG2.
            let m = out.p2p.get_mut(&2).unwrap();
            m[GAMMA_U_OFF - 1] ^= 1;
        }
    });
    let e = outcome(&res, 2);
    assert!(matches!(e, Error::BanAndAbort { party: 1, .. }), "{e:?}");
}

#[test]
fn wrong_gamma_u_or_gamma_v_bans() {
    let shares = honest_dkg(2, 2, 23);
    for (field, off) in [("Γu", GAMMA_U_OFF), ("Γv", GAMMA_U_OFF + 33)] {
        let res = run_sign(&shares, &[1, 2], &[1; 32], &[], 3, &mut |round, from, out| {
            if round == 3 && from == 2 {
                // Replace the point by 2·G's encoding is awkward; swap Γu and Γv instead.
                let m = out.p2p.get_mut(&1).unwrap();
                let (gu, gv) = (
                    m[GAMMA_U_OFF..GAMMA_U_OFF + 33].to_vec(),
                    m[GAMMA_U_OFF + 33..GAMMA_U_OFF + 66].to_vec(),
                );
                if off == GAMMA_U_OFF {
                    m[GAMMA_U_OFF..GAMMA_U_OFF + 33].copy_from_slice(&gv);
                } else {
                    m[GAMMA_U_OFF + 33..GAMMA_U_OFF + 66].copy_from_slice(&gu);
                }
            }
        });
        let e = outcome(&res, 1);
        assert!(matches!(e, Error::BanAndAbort { party: 2, .. }), "{field}: {e:?}");
    }
}

#[test]
fn wrong_r_or_salt_is_blamed_publicly() {
    let shares = honest_dkg(2, 2, 24);
    // S2 broadcast: sigid(32) ‖ R(33) ‖ salt(32) ‖ pk(33); flip a salt bit.
    let res = run_sign(&shares, &[1, 2], &[1; 32], &[], 4, &mut |round, from, out| {
        if round == 3 && from == 1 {
            out.broadcast.as_mut().unwrap()[32 + 33 + 5] ^= 1;
        }
    });
    let e = outcome(&res, 2);
    assert!(matches!(e, Error::Blame { party: 1, .. }), "{e:?}");
    assert!(!e.must_ban());
}

#[test]
fn s0_equivocation_is_a_view_mismatch_without_ban() {
    let shares = honest_dkg(3, 2, 25);
    // The S0 that parties 1 and 2 receive from party 3 differs from the one party 3 hashed
    // itself (an equivocating party or a relay fault). The views diverge on sigid, and the S1
    // echo check reports a view mismatch everywhere, before any OT work, with no blame.
    let mut seen = 0;
    let res = run_sign(&shares, &[1, 2, 3], &[1; 32], &[], 5, &mut |round, from, out| {
        if round == 1 && from == 3 {
            seen += 1;
            out.broadcast.as_mut().unwrap()[0] ^= 1;
        }
    });
    assert_eq!(seen, 1);
    for who in [1u16, 2, 3] {
        let e = outcome(&res, who);
        assert!(matches!(e, Error::ViewMismatch { .. }), "party {who}: {e:?}");
        assert!(!e.must_ban());
        assert!(e.culprits().is_empty());
    }
}

#[test]
fn wrong_u_or_w_is_unattributable() {
    let shares = honest_dkg(2, 2, 26);
    let res = run_sign(&shares, &[1, 2], &[1; 32], &[], 6, &mut |round, from, out| {
        if round == 4 && from == 2 {
            // S3: sigid ‖ digest ‖ u ‖ w — change w (keep it canonical by flipping a low bit).
            out.broadcast.as_mut().unwrap()[127] ^= 1;
        }
    });
    let e = outcome(&res, 1);
    assert!(matches!(e, Error::Unattributable(_)), "{e:?}");
    assert!(!e.must_ban());
}

#[test]
fn invalid_signing_requests_fail_before_any_message() {
    let shares = honest_dkg(3, 2, 27);
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(1);
    let cases: Vec<(&str, Vec<u16>, Vec<u16>, Vec<u32>)> = vec![
        ("|S| < t", vec![1], vec![], vec![]),
        ("duplicate index", vec![1, 1, 2], vec![], vec![]),
        ("own index missing", vec![2, 3], vec![], vec![]),
        ("unknown index", vec![1, 9], vec![], vec![]),
        ("banned member", vec![1, 2], vec![2], vec![]),
        ("hardened path", vec![1, 2], vec![], vec![1 << 31]),
    ];
    for (name, signers, banned, path) in cases {
        let mut cfg = sign_config(&signers, 1, &path);
        cfg.banned = banned;
        let e = sign::start(&mut rng, &shares[0], cfg).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{name}: {e:?}");
    }
}

#[test]
fn a_different_vsid_in_s1_or_s2_is_a_view_mismatch_without_ban() {
    // The RVOLE messages start with vsid = TH(sigid, Alice, Bob); it is the p2p view check.
    let shares = honest_dkg(2, 2, 29);
    for round in [2u16, 3] {
        let res = run_sign(&shares, &[1, 2], &[1; 32], &[], 30, &mut |r, from, out| {
            if r == round && from == 2 {
                out.p2p.get_mut(&1).unwrap()[0] ^= 1;
            }
        });
        let e = outcome(&res, 1);
        assert!(
            matches!(e, Error::ViewMismatch { party: 2, round: r } if u16::from(*r) == round),
            "round {round}: {e:?}"
        );
        assert!(!e.must_ban() && e.culprits().is_empty());
    }
}
