//! DKG negative tests (`protocols.md` §2.8, §10): tamper one field of one round of party 2 and
//! check the class and the culprit at every honest receiver.

use std::collections::BTreeMap;

use dkls23_core::encoding::{POINT_LEN, point_to_bytes};
use dkls23_core::hazmat::pok::POK_LEN;
use dkls23_core::{Error, KeyShare, PartyIndex};
use k256::{ProjectivePoint, Scalar};

use crate::common::run_dkg;

const SID: usize = 32;
type Res = BTreeMap<PartyIndex, Result<KeyShare, Error>>;

fn err(res: &Res, who: PartyIndex) -> &Error {
    match &res[&who] {
        Err(e) => e,
        Ok(_) => panic!("party {who} finished although party 2 cheated"),
    }
}

/// Every listed party blames party 2 (no ban) with a reason containing `needle`.
fn assert_blames_2(res: &Res, receivers: &[PartyIndex], needle: &str) {
    for &who in receivers {
        match err(res, who) {
            Error::Blame { party: 2, reason } => {
                assert!(reason.contains(needle), "party {who}: reason {reason:?} lacks {needle:?}")
            }
            other => panic!("party {who}: expected Blame{{2}} ({needle}), got {other:?}"),
        }
    }
}

fn point(k: u64) -> [u8; POINT_LEN] {
    point_to_bytes(&(ProjectivePoint::GENERATOR * Scalar::from(k)))
}

/// Runs a 2-of-3 (or t-of-n) DKG where party 2's round-`round` payloads are rewritten.
fn tampered(
    n: u16,
    t: u16,
    seed: u64,
    at: u16,
    f: impl Fn(&mut dkls23_core::round::Outgoing),
) -> Res {
    run_dkg(n, t, seed, &mut |round, from, out| {
        if round == at && from == 2 {
            f(out)
        }
    })
}

fn bcast(out: &mut dkls23_core::round::Outgoing) -> &mut Vec<u8> {
    out.broadcast.as_mut().unwrap()
}

#[test]
fn k2_wrong_coefficient_fails_the_commitment() {
    let res = tampered(3, 2, 10, 2, |o| {
        bcast(o)[SID + POINT_LEN..SID + 2 * POINT_LEN].copy_from_slice(&point(7));
    });
    assert_blames_2(&res, &[1, 3], "commitment");
}

#[test]
fn k2_with_t_minus_1_or_t_plus_1_coefficients_or_a_missing_proof_is_blamed() {
    // Layout: sid ‖ A_0..A_{t-1} ‖ salt ‖ π_0..π_{t-1}.
    let t = 3usize;
    let fewer = tampered(4, 3, 11, 2, |o| {
        let b = bcast(o);
        let last_proof = b.len() - POK_LEN;
        b.truncate(last_proof);
        b.drain(SID + (t - 1) * POINT_LEN..SID + t * POINT_LEN);
    });
    assert_blames_2(&fewer, &[1, 3, 4], "K2 broadcast has");
    let more = tampered(4, 3, 12, 2, |o| {
        let b = bcast(o);
        b.splice(SID + t * POINT_LEN..SID + t * POINT_LEN, point(9));
        let proof = b[b.len() - POK_LEN..].to_vec();
        b.extend_from_slice(&proof);
    });
    assert_blames_2(&more, &[1, 3, 4], "K2 broadcast has");
    let no_proof = tampered(4, 3, 13, 2, |o| {
        let b = bcast(o);
        b.truncate(b.len() - POK_LEN);
    });
    assert_blames_2(&no_proof, &[1, 3, 4], "K2 broadcast has");
}

#[test]
fn k2_identity_or_invalid_commitment_encodings_are_blamed() {
    for (seed, enc) in [(14, [0u8; POINT_LEN]), (15, [0xffu8; POINT_LEN])] {
        let res = tampered(3, 2, seed, 2, |o| {
            bcast(o)[SID..SID + POINT_LEN].copy_from_slice(&enc);
        });
        assert_blames_2(&res, &[1, 3], "K2 commitment");
    }
}

#[test]
fn k2_wrong_proof_of_knowledge_is_blamed() {
    let res = tampered(3, 2, 16, 2, |o| {
        let b = bcast(o);
        let last = b.len() - 1; // last byte of π_1's response
        b[last] ^= 1;
    });
    // A flipped response is either non-canonical (decode) or fails verification.
    assert_blames_2(&res, &[1, 3], "proof");
}

#[test]
fn wrong_kappa_is_blamed_and_equivocated_kappa_is_caught_by_its_receiver() {
    // K2 p2p layout: sid ‖ d ‖ κ ‖ salt_cc ‖ σ ‖ M1.
    let all = tampered(3, 2, 17, 2, |o| {
        for m in o.p2p.values_mut() {
            m[SID + 32] ^= 1;
        }
    });
    assert_blames_2(&all, &[1, 3], "chain-code");
    // A different κ to party 3 only (ToB-7): party 3 blames 2; party 1 never blames anyone
    // honest — it sees party 3 stop and times out.
    let one = tampered(3, 2, 18, 2, |o| {
        o.p2p.get_mut(&3).unwrap()[SID + 32] ^= 1;
    });
    assert_blames_2(&one, &[3], "chain-code");
    match err(&one, 1) {
        Error::Timeout { missing, .. } => assert_eq!(missing, &vec![3]),
        other => panic!("party 1: expected a timeout, got {other:?}"),
    }
}

#[test]
fn wrong_public_key_or_public_share_in_k3_is_blamed() {
    // K3 broadcast layout: sid ‖ D2 ‖ X ‖ X_j ‖ π.
    let x = tampered(3, 2, 19, 3, |o| {
        bcast(o)[2 * SID..2 * SID + POINT_LEN].copy_from_slice(&point(5));
    });
    assert_blames_2(&x, &[1, 3], "public key");
    let xj = tampered(3, 2, 20, 3, |o| {
        bcast(o)[2 * SID + POINT_LEN..2 * SID + 2 * POINT_LEN].copy_from_slice(&point(5));
    });
    assert_blames_2(&xj, &[1, 3], "public share");
    let pok = tampered(3, 2, 21, 3, |o| {
        let b = bcast(o);
        b[2 * SID + 2 * POINT_LEN + 5] ^= 0x40;
    });
    assert_blames_2(&pok, &[1, 3], "");
}

#[test]
fn corrupted_m1_or_m2_is_blamed_on_its_sender() {
    // M1 (KG1) inside K2 p2p after sid ‖ d ‖ κ ‖ salt_cc ‖ σ: its own sid, then point pairs.
    let m1_point = tampered(3, 2, 22, 2, |o| {
        let m = o.p2p.get_mut(&3).unwrap();
        m[5 * SID + SID..5 * SID + SID + 32].copy_from_slice(&[0xff; 32]);
    });
    assert_blames_2(&m1_point, &[3], "");
    let m1_len = tampered(3, 2, 23, 2, |o| {
        o.p2p.get_mut(&3).unwrap().pop();
    });
    assert_blames_2(&m1_len, &[3], "K2 p2p message has");
    // M2 (KG2) inside K3 p2p after the sid echo: its own sid, then y values, then trees.
    let m2 = tampered(3, 2, 24, 3, |o| {
        let m = o.p2p.get_mut(&3).unwrap();
        let last = m.len() - 1;
        m[last] ^= 1; // inside the last GGM tree message (its proof)
    });
    let e = err(&m2, 3);
    assert_eq!(e.culprits(), vec![2], "party 3: {e:?}");
    let m2_len = tampered(3, 2, 25, 3, |o| {
        o.p2p.get_mut(&1).unwrap().push(0);
    });
    assert_blames_2(&m2_len, &[1], "p2p message has");
}

#[test]
fn k1_equivocation_is_a_view_mismatch_without_blame() {
    // The K1 that parties 1 and 3 receive differs from the one party 2 hashed itself (two
    // signed versions of K1): the sids diverge and the K2 echo reports a view mismatch.
    let res = tampered(3, 2, 26, 1, |o| bcast(o)[0] ^= 1);
    for who in [1u16, 2, 3] {
        let e = err(&res, who);
        assert!(matches!(e, Error::ViewMismatch { round: 2, .. }), "party {who}: {e:?}");
        assert!(e.culprits().is_empty() && !e.must_ban());
    }
    // Parties 1 and 3 name party 2 as the one whose view differs.
    for who in [1u16, 3] {
        assert!(matches!(err(&res, who), Error::ViewMismatch { party: 2, .. }));
    }
}

#[test]
fn missing_or_different_acknowledgements_fail_everyone_else() {
    let missing = tampered(3, 2, 27, 4, |o| o.broadcast = None);
    for who in [1u16, 3] {
        match err(&missing, who) {
            Error::Timeout { round: 4, missing } => assert_eq!(missing, &vec![2]),
            other => panic!("party {who}: expected Timeout in round 4, got {other:?}"),
        }
    }
    let different = tampered(3, 2, 28, 4, |o| {
        let b = bcast(o);
        let last = b.len() - 1;
        b[last] ^= 1;
    });
    for who in [1u16, 3] {
        assert!(
            matches!(err(&different, who), Error::ViewMismatch { round: 4, party: 2 }),
            "party {who}: {:?}",
            err(&different, who)
        );
    }
}

#[test]
fn byte_flips_anywhere_never_panic_and_never_blame_an_honest_party() {
    // For each round, flip bytes at spread positions of party 2's payloads. Honest parties may
    // abort (naming 2, or with a view mismatch / timeout) or — for fields only party 2's own
    // consistency depends on — finish; they never blame or ban party 1 or 3.
    let mut runs = 0;
    for round in 1u16..=4 {
        for frac in [0usize, 3, 7] {
            let res =
                run_dkg(3, 2, 100 + u64::from(round) * 10 + frac as u64, &mut |r, from, o| {
                    if r != round || from != 2 {
                        return;
                    }
                    if let Some(b) = o.broadcast.as_mut() {
                        let i = b.len() * frac / 8;
                        b[i] ^= 0x20;
                    }
                    for m in o.p2p.values_mut() {
                        let i = m.len() * frac / 8;
                        m[i] ^= 0x20;
                    }
                });
            runs += 1;
            for who in [1u16, 3] {
                if let Err(e) = &res[&who] {
                    assert!(
                        e.culprits().iter().all(|&c| c == 2),
                        "round {round} flip at {frac}/8: party {who} blamed an honest party: {e:?}"
                    );
                }
            }
            // Honest parties that finished agree with each other.
            let ok: Vec<&KeyShare> =
                [1u16, 3].iter().filter_map(|w| res[w].as_ref().ok()).collect();
            if let [a, b] = ok.as_slice() {
                assert_eq!(a.public_key(), b.public_key());
            }
        }
    }
    assert_eq!(runs, 12);
}
