//! Reshare (protocols.md §4, §10 items 5–7 and the reshare negative tests), driven in a plain loop.

use std::collections::BTreeMap;

use dkls23_core::encoding::scalar_to_bytes;
use dkls23_core::reshare::{NewMember, OldSecret, ReshareOutcome, ReshareSpec};
use dkls23_core::round::Outgoing;
use dkls23_core::{Error, KeyShare, PartyIndex};
use k256::Scalar;

use crate::common::{Tamper, honest_dkg, identity, rngs, run_sign};

pub type Results = BTreeMap<PartyIndex, Result<ReshareOutcome, Error>>;

fn copy(s: &KeyShare) -> KeyShare {
    KeyShare::from_bytes(&s.to_bytes()).unwrap()
}

/// Runs a reshare for `spec`; `secret_for(p)` gives old member p's dealer input.
pub fn run_reshare_with(
    spec: &ReshareSpec,
    secret_for: &mut dyn FnMut(PartyIndex) -> OldSecret,
    seed: u64,
    tamper: Tamper<'_>,
) -> Results {
    dkls23_core::sim::reshare(spec, secret_for, [5u8; 32], &mut rngs(255, seed), tamper).0
}

/// Runs a reshare with the honest dealer inputs of `old` (shares by old index).
pub fn run_reshare(spec: &ReshareSpec, old: &[KeyShare], seed: u64, tamper: Tamper<'_>) -> Results {
    let by_index: BTreeMap<PartyIndex, &KeyShare> = old.iter().map(|s| (s.index(), s)).collect();
    for m in &spec.old_committee {
        spec.check_old_share(by_index[&m.index]).unwrap();
    }
    run_reshare_with(spec, &mut |p| OldSecret::from_share(by_index[&p]), seed, tamper)
}

fn new_shares(results: Results) -> Vec<KeyShare> {
    results
        .into_iter()
        .filter_map(|(t, r)| match r.unwrap_or_else(|e| panic!("party {t}: {e}")) {
            ReshareOutcome::NewShare(s) => Some(s),
            ReshareOutcome::Removed => None,
        })
        .collect()
}

fn signs(shares: &[KeyShare], signers: &[PartyIndex], seed: u64) {
    let m = [0x42u8; 32];
    for (i, r) in run_sign(shares, signers, &m, &[], seed, &mut |_, _, _| {}) {
        r.unwrap_or_else(|e| panic!("signer {i} of {signers:?}: {e}"));
    }
}

#[test]
fn refresh_keeps_the_key_and_replaces_every_secret() {
    let old = honest_dkg(3, 2, 71);
    let spec = ReshareSpec::refresh(&old[0]).unwrap();
    assert_eq!(spec.transport_participants().len(), 3);
    // The spec round-trips through its canonical encoding and a Setup.
    assert_eq!(ReshareSpec::from_bytes(&spec.to_bytes()).unwrap(), spec);
    let setup = spec.to_setup([3u8; 32], 600).unwrap();
    assert_eq!(ReshareSpec::from_setup(&setup).unwrap(), spec);

    let new = new_shares(run_reshare(&spec, &old, 72, &mut |_, _, _| {}));
    assert_eq!(new.len(), 3);
    for (o, n) in old.iter().zip(&new) {
        assert_eq!(o.index(), n.index());
        assert_eq!(n.public_key(), o.public_key());
        assert_eq!(n.chain_code(), o.chain_code());
        assert_eq!(n.key_id(), o.key_id());
        assert_eq!(n.epoch(), 1);
        assert_ne!(n.keygen_sid(), o.keygen_sid());
        assert_eq!(n.keygen_sid(), new[0].keygen_sid());
        // Every share changed (its public share moved), and so did every secret byte block.
        for l in 1..=3 {
            assert_ne!(n.public_share(l), o.public_share(l), "X_{l} unchanged");
        }
        let (ob, nb) = (o.to_bytes(), n.to_bytes());
        assert_eq!(ob.len(), nb.len());
        // The secret region after the public prefix (secret share, zero seeds, OT states)
        // shares no aligned 32-byte block with the old share.
        let public_len = 7 + 2 + 6 + 4 + 32 + 32 + 33 + 32 + 33 * 3 + 3 * 35;
        let old_blocks: Vec<&[u8]> = ob[public_len..].chunks(32).collect();
        for (k, blk) in nb[public_len..].chunks(32).enumerate() {
            if blk.len() == 32 && blk.iter().any(|&b| b != 0) {
                assert_ne!(old_blocks[k], blk, "secret block {k} of party {} unchanged", n.index());
            }
        }
    }
    signs(&new, &[1, 2], 73);
    signs(&new, &[2, 3], 74);
    signs(&new, &[1, 2, 3], 75);

    // Old and new shares cannot be mixed: signing fails cleanly, for every signer.
    let mixed = vec![copy(&old[0]), copy(&new[1])];
    let res = run_sign(&mixed, &[1, 2], &[1u8; 32], &[], 76, &mut |_, _, _| {});
    assert_eq!(res.len(), 2);
    for (i, r) in res {
        let e = r.expect_err("mixed epochs must not sign");
        assert!(!e.must_ban(), "party {i}: mixing epochs must not ban ({e})");
    }
    // A second refresh works from the first one's output (epoch 2).
    let spec2 = ReshareSpec::refresh(&new[0]).unwrap();
    assert_eq!(spec2.new_epoch, 2);
    let newer = new_shares(run_reshare(&spec2, &new, 77, &mut |_, _, _| {}));
    assert_eq!(newer[2].epoch(), 2);
    signs(&newer, &[1, 3], 78);
}

#[test]
fn quorum_change_2_of_3_to_3_of_5_removing_one_party() {
    let old = honest_dkg(3, 2, 81);
    // Party 2 leaves; old 1 and 3 keep their indices; three new identities join.
    let new_committee = vec![
        NewMember { index: 1, identity: identity(1) },
        NewMember { index: 2, identity: identity(12) },
        NewMember { index: 3, identity: identity(3) },
        NewMember { index: 4, identity: identity(14) },
        NewMember { index: 5, identity: identity(15) },
    ];
    let spec = ReshareSpec::from_share(&old[0], &[1, 2, 3], new_committee, 3).unwrap();
    // Old party 2 is old-only: it gets transport index n' + 1 = 6.
    assert_eq!(spec.transport_of_old(2), Some(6));
    assert_eq!(spec.transport_of_old(3), Some(3));
    let results = run_reshare(&spec, &old, 82, &mut |_, _, _| {});
    assert!(matches!(results[&6], Ok(ReshareOutcome::Removed)), "{:?}", results[&6]);
    let new = new_shares(results);
    assert_eq!(new.len(), 5);
    for s in &new {
        assert_eq!((s.threshold(), s.parties(), s.epoch()), (3, 5, 1));
        assert_eq!(s.public_key(), old[0].public_key());
    }
    signs(&new, &[2, 4, 5], 83);
    signs(&new, &[1, 3, 5], 84);
    // Two new shares are below the new threshold.
    let res = run_sign(&new, &[1, 2], &[1u8; 32], &[], 85, &mut |_, _, _| {});
    assert!(res.values().all(Result::is_err));
}

#[test]
fn recovery_of_a_lost_share_from_two_holders() {
    let mut old = honest_dkg(3, 2, 91);
    let lost = old.pop().unwrap();
    assert_eq!(lost.index(), 3);
    let committee: Vec<NewMember> =
        (1..=3).map(|l| NewMember { index: l, identity: identity(l) }).collect();
    let spec = ReshareSpec::from_share(&old[0], &[1, 2], committee, 2).unwrap();
    let new = new_shares(run_reshare(&spec, &old, 92, &mut |_, _, _| {}));
    assert_eq!(new.len(), 3);
    assert_eq!(new[2].index(), 3);
    assert_eq!(new[2].public_key(), lost.public_key());
    signs(&new, &[1, 3], 93);
    signs(&new, &[2, 3], 94);
}

#[test]
fn a_spec_that_does_not_match_the_key_is_refused() {
    let old = honest_dkg(2, 2, 101);
    let mut spec = ReshareSpec::refresh(&old[0]).unwrap();
    spec.old_committee[0].public_share = spec.old_committee[1].public_share;
    assert!(matches!(spec.validate(), Err(Error::InvalidInput(_))));
    let mut spec = ReshareSpec::refresh(&old[0]).unwrap();
    spec.new_epoch = 7;
    assert!(spec.check_old_share(&old[0]).is_err());
    let spec = ReshareSpec::refresh(&old[0]).unwrap();
    assert!(ReshareSpec::from_share(&old[0], &[1], spec.new_committee.clone(), 2).is_err());
    // Truncated encodings never panic.
    let bytes = spec.to_bytes();
    for cut in 0..bytes.len() {
        assert!(ReshareSpec::from_bytes(&bytes[..cut]).is_err());
    }
}

fn blamed(results: &Results, victim: PartyIndex) -> PartyIndex {
    match &results[&victim] {
        Err(Error::Blame { party, .. }) => *party,
        other => panic!("party {victim}: expected Blame, got {other:?}"),
    }
}

#[test]
fn wrong_dealt_constant_is_pinned_to_the_dealer() {
    let old = honest_dkg(3, 2, 111);
    let spec = ReshareSpec::refresh(&old[0]).unwrap();
    let cc = *old[0].chain_code();
    let by_index: BTreeMap<PartyIndex, &KeyShare> = old.iter().map(|s| (s.index(), s)).collect();
    // Dealer 2 deals a consistent polynomial around a wrong constant.
    let results = run_reshare_with(
        &spec,
        &mut |p| {
            if p == 2 {
                OldSecret::from_parts(2, Scalar::from(12345u64), cc)
            } else {
                OldSecret::from_share(by_index[&p])
            }
        },
        112,
        &mut |_, _, _| {},
    );
    for victim in [1, 3] {
        assert_eq!(blamed(&results, victim), 2);
        assert!(!results[&victim].as_ref().unwrap_err().must_ban());
    }
}

#[test]
fn tampered_constant_commitment_blames_the_dealer() {
    let old = honest_dkg(3, 2, 121);
    let spec = ReshareSpec::refresh(&old[0]).unwrap();
    let results = run_reshare(&spec, &old, 122, &mut |round, from, o| {
        if round == 2 && from == 1 {
            // G_{1,0} := G_{1,1} (a valid point, but not the committed one).
            let b = o.broadcast.as_mut().unwrap();
            let g1 = b[65..98].to_vec();
            b[32..65].copy_from_slice(&g1);
        }
    });
    assert_eq!(blamed(&results, 2), 1);
    assert_eq!(blamed(&results, 3), 1);
}

#[test]
fn wrong_feldman_share_blames_the_dealer() {
    let old = honest_dkg(3, 2, 131);
    let spec = ReshareSpec::refresh(&old[0]).unwrap();
    let results = run_reshare(&spec, &old, 132, &mut |round, from, o| {
        if round == 2 && from == 3 {
            let m = o.p2p.get_mut(&1).unwrap();
            m[32..64].copy_from_slice(&scalar_to_bytes(&Scalar::from(7u64)));
        }
    });
    assert_eq!(blamed(&results, 1), 3);
}

#[test]
fn wrong_chain_code_blames_the_dealer() {
    let old = honest_dkg(3, 2, 141);
    let spec = ReshareSpec::refresh(&old[0]).unwrap();
    let results = run_reshare(&spec, &old, 142, &mut |round, from, o| {
        if round == 2 && from == 2 {
            o.p2p.get_mut(&3).unwrap()[64] ^= 1;
        }
    });
    assert_eq!(blamed(&results, 3), 2);
}

#[test]
fn a_missing_acknowledgement_leaves_the_others_on_the_old_epoch() {
    let old = honest_dkg(3, 2, 151);
    let spec = ReshareSpec::refresh(&old[0]).unwrap();
    let results = run_reshare(&spec, &old, 152, &mut |round, from, o| {
        if round == 4 && from == 3 {
            o.broadcast = None;
        }
    });
    for victim in [1, 2] {
        match &results[&victim] {
            Err(Error::Timeout { round: 4, missing }) => assert_eq!(missing, &vec![3]),
            other => panic!("party {victim}: expected a timeout, got {other:?}"),
        }
    }
    // Parties 1 and 2 kept their old shares: the old epoch still signs.
    signs(&old, &[1, 2], 153);
}

#[test]
fn a_removed_dealer_that_stalls_aborts_the_reshare() {
    let old = honest_dkg(3, 2, 161);
    let committee: Vec<NewMember> = [1, 3]
        .iter()
        .enumerate()
        .map(|(k, &l)| NewMember { index: k as u16 + 1, identity: identity(l) })
        .collect();
    let spec = ReshareSpec::from_share(&old[0], &[1, 2, 3], committee, 2).unwrap();
    // Old 2 is old-only (transport 3); its Q2 never arrives.
    assert_eq!(spec.transport_of_old(2), Some(3));
    let results = run_reshare(&spec, &old, 162, &mut |round, from, o| {
        if round == 2 && from == 3 {
            *o = Outgoing::default();
        }
    });
    for victim in [1, 2] {
        assert!(
            matches!(&results[&victim], Err(Error::Timeout { round: 2, missing }) if missing == &vec![3]),
            "{:?}",
            results[&victim]
        );
    }
}

#[test]
fn truncated_payloads_in_every_round_blame_the_sender() {
    let old = honest_dkg(3, 2, 191);
    let spec = ReshareSpec::refresh(&old[0]).unwrap();
    for round in 1..=4u16 {
        let results = run_reshare(&spec, &old, 192, &mut |r, from, o| {
            if let Some(b) = o.broadcast.as_mut().filter(|_| r == round && from == 2) {
                b.pop();
            }
        });
        for victim in [1, 3] {
            assert_eq!(blamed(&results, victim), 2, "round {round}");
        }
        // Truncated p2p messages (rounds 2 and 3 carry them).
        if round == 2 || round == 3 {
            let results = run_reshare(&spec, &old, 193, &mut |r, from, o| {
                if r == round && from == 2 {
                    o.p2p.get_mut(&3).unwrap().truncate(40);
                }
            });
            assert_eq!(blamed(&results, 3), 2, "p2p round {round}");
        }
    }
}

#[test]
fn the_setup_must_match_its_spec() {
    let old = honest_dkg(2, 2, 201);
    let spec = ReshareSpec::refresh(&old[0]).unwrap();
    let setup = spec.to_setup([1; 32], 60).unwrap();
    // Same extra, but a different participant list or threshold: refused.
    let mut parts = setup.participants().to_vec();
    parts[1].1 = identity(9);
    let forged = dkls23_core::setup::Setup::new(
        dkls23_core::setup::ProtocolId::Reshare,
        [1; 32],
        2,
        2,
        parts,
        spec.to_bytes(),
        60,
    )
    .unwrap();
    assert!(ReshareSpec::from_setup(&forged).is_err());
    let dkg_setup = dkls23_core::setup::Setup::new(
        dkls23_core::setup::ProtocolId::Dkg,
        [1; 32],
        2,
        2,
        setup.participants().to_vec(),
        spec.to_bytes(),
        60,
    )
    .unwrap();
    assert!(ReshareSpec::from_setup(&dkg_setup).is_err());
}
