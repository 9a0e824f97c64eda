#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::channel::nonce_counter;
use super::*;
use crate::identity::{
    Ed25519Identity, IdentityError, IdentityPublicKey, IdentitySigner, P256Identity, SharedSigner,
    Signature,
};
use crate::setup::{MemoryReplayGuard, PartyIndex, ProtocolId, ReplayError, Setup};

type Signer = SharedSigner;

/// Party 1 and 3 use Ed25519, party 2 uses P-256.
fn signers(seed: u64) -> Vec<Signer> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    vec![
        Arc::new(Ed25519Identity::generate(&mut rng)),
        Arc::new(P256Identity::generate(&mut rng)),
        Arc::new(Ed25519Identity::generate(&mut rng)),
    ]
}

fn setup_for(signers: &[Signer], iid: [u8; 32]) -> Setup {
    let members =
        signers.iter().enumerate().map(|(i, s)| ((i + 1) as PartyIndex, s.public_key())).collect();
    Setup::new(ProtocolId::Dkg, iid, 3, 2, members, vec![], 600).unwrap()
}

/// Three sessions with all channels established.
fn net(seed: u64) -> (Setup, Vec<Session>) {
    let ids = signers(seed);
    let setup = setup_for(&ids, [seed as u8; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(seed + 1000);
    let mut sessions: Vec<Session> = ids
        .iter()
        .map(|s| Session::new(&setup, s.clone(), &MemoryReplayGuard::new(), &mut rng).unwrap())
        .collect();
    let eph: Vec<[u8; 32]> = sessions.iter().map(Session::ephemeral_public).collect();
    for (i, s) in sessions.iter_mut().enumerate() {
        for (j, e) in eph.iter().enumerate() {
            if i != j {
                s.establish((j + 1) as PartyIndex, e).unwrap();
            }
        }
    }
    (setup, sessions)
}

fn got(r: Result<Option<Received>, MessageError>) -> Received {
    r.unwrap().expect("message should be accepted")
}

#[test]
fn mids_differ_by_every_input() {
    let ids = signers(1);
    let (a, b, c) = (ids[0].public_key(), ids[1].public_key(), ids[2].public_key());
    let iid = [7u8; 32];
    let base = mid(&iid, &a, Some(&b), ProtocolId::Dkg, 2);
    let variants = [
        mid(&iid, &c, Some(&b), ProtocolId::Dkg, 2),
        mid(&iid, &a, Some(&c), ProtocolId::Dkg, 2),
        mid(&iid, &a, None, ProtocolId::Dkg, 2),
        mid(&iid, &a, Some(&b), ProtocolId::Dkg, 3),
        mid(&iid, &a, Some(&b), ProtocolId::Sign, 2),
        mid(&[8u8; 32], &a, Some(&b), ProtocolId::Dkg, 2),
        mid(&iid, &b, Some(&a), ProtocolId::Dkg, 2),
    ];
    for v in variants {
        assert_ne!(v, base);
    }
    assert_eq!(base, mid(&iid, &a, Some(&b), ProtocolId::Dkg, 2));
}

#[test]
fn header_is_strict() {
    let h = Header { mid: [5; 32], kind: Kind::Abort };
    let b = h.to_bytes();
    assert_eq!(&b[32..], &[WIRE_VERSION, 2, 0, 0]);
    assert_eq!(Header::from_bytes(&b).unwrap(), h);
    for (pos, val) in [(32, 2u8), (33, 3), (34, 1), (35, 1)] {
        let mut bad = b;
        bad[pos] = val;
        assert!(Header::from_bytes(&bad).is_err(), "byte {pos} = {val} accepted");
    }
}

#[test]
fn broadcast_sign_verify_both_kinds() {
    let (_, mut s) = net(2);
    // Party 1 (Ed25519) and party 2 (P-256) broadcast; party 3 receives both.
    for from in [1u16, 2] {
        let msg = s[usize::from(from) - 1].broadcast(1, b"round one payload").unwrap();
        assert_eq!(msg.len(), HEADER_LEN + 17 + 64);
        let r = got(s[2].receive(&msg, &Expect::broadcast(from, 1, 64)));
        assert_eq!(r.payload(), b"round one payload");
        assert_eq!(r.from(), from);
        assert!(r.evidence().unwrap().verify());
        // Delivered again: duplicate, dropped.
        assert!(s[2].receive(&msg, &Expect::broadcast(from, 1, 64)).unwrap().is_none());
    }
}

#[test]
fn tampered_broadcasts_are_dropped() {
    let (_, mut s) = net(3);
    for from in [1u16, 2] {
        let msg = s[usize::from(from) - 1].broadcast(4, b"payload").unwrap();
        let exp = Expect::broadcast(from, 4, 64);
        for pos in [0, 31, 40, msg.len() - 1] {
            let mut bad = msg.clone();
            bad[pos] ^= 0x01;
            assert!(s[2].receive(&bad, &exp).unwrap().is_none(), "tamper at {pos}");
        }
        // Wrong round / sender / kind expectation, oversize bound, truncation.
        assert!(s[2].receive(&msg, &Expect::broadcast(from, 5, 64)).unwrap().is_none());
        assert!(s[2].receive(&msg, &Expect::broadcast(3 - from, 4, 64)).unwrap().is_none());
        assert!(s[2].receive(&msg, &Expect::p2p(from, 4, 64, P2pMode::Plain)).unwrap().is_none());
        assert!(s[2].receive(&msg, &Expect::broadcast(from, 4, 6)).unwrap().is_none());
        assert!(s[2].receive(&msg[..msg.len() - 1], &exp).unwrap().is_none());
        // The untampered message still goes through afterwards.
        assert!(s[2].receive(&msg, &exp).unwrap().is_some());
    }
}

#[test]
fn broadcast_equivocation_is_blamed_with_evidence() {
    let (setup, mut s) = net(4);
    let a = s[0].broadcast(1, b"first").unwrap();
    let b = s[0].broadcast(1, b"second").unwrap();
    let exp = Expect::broadcast(1, 1, 64);
    assert!(s[1].receive(&a, &exp).unwrap().is_some());
    let err = s[1].receive(&b, &exp).unwrap_err();
    assert_eq!(err.culprit(), Some(1));
    assert!(!err.requires_ban());
    let MessageError::Equivocation { evidence: Some(ev), .. } = err else { panic!("{err:?}") };
    assert!(ev.verify());
    assert!(ev.first.verify_for(&setup, 1, None, 1));
    assert!(ev.second.verify_for(&setup, 1, None, 1));
}

/// A P-256 "external device" that returns the high-s twin of a valid signature.
struct HighS(P256Identity);

impl IdentitySigner for HighS {
    fn public_key(&self) -> IdentityPublicKey {
        self.0.public_key()
    }

    fn sign(&self, msg: &[u8]) -> Result<Signature, IdentityError> {
        let low = p256::ecdsa::Signature::from_slice(&self.0.sign(msg)?.0).unwrap();
        let high = p256::ecdsa::Signature::from_scalars(low.r(), -*low.s()).unwrap();
        Ok(Signature(high.to_bytes().as_slice().try_into().unwrap()))
    }
}

/// Signs with a different key than it claims.
struct Liar(Ed25519Identity, IdentityPublicKey);

impl IdentitySigner for Liar {
    fn public_key(&self) -> IdentityPublicKey {
        self.1
    }

    fn sign(&self, msg: &[u8]) -> Result<Signature, IdentityError> {
        self.0.sign(msg)
    }
}

#[test]
fn external_signers_are_normalised_or_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let p = P256Identity::generate(&mut rng);
    let ids: Vec<Signer> = vec![
        Arc::new(HighS(P256Identity::from_pkcs8_der(&p.to_pkcs8_der().unwrap()).unwrap())),
        Arc::new(Ed25519Identity::generate(&mut rng)),
    ];
    let members = ids.iter().enumerate().map(|(i, s)| ((i + 1) as u16, s.public_key())).collect();
    let setup = Setup::new(ProtocolId::Sign, [1; 32], 3, 2, members, vec![], 60).unwrap();
    let s1 = Session::new(&setup, ids[0].clone(), &MemoryReplayGuard::new(), &mut rng).unwrap();
    let mut s2 = Session::new(&setup, ids[1].clone(), &MemoryReplayGuard::new(), &mut rng).unwrap();
    let msg = s1.broadcast(0, b"x").unwrap();
    assert!(s2.receive(&msg, &Expect::broadcast(1, 0, 8)).unwrap().is_some());

    let liar: Signer = Arc::new(Liar(Ed25519Identity::generate(&mut rng), ids[1].public_key()));
    let s_liar = Session::new(&setup, liar, &MemoryReplayGuard::new(), &mut rng).unwrap();
    assert!(matches!(s_liar.broadcast(0, b"x"), Err(MessageError::Signer(_))));
    // A second session for the same instance id under one guard is refused.
    let guard = MemoryReplayGuard::new();
    assert!(Session::new(&setup, ids[1].clone(), &guard, &mut rng).is_ok());
    assert_eq!(
        Session::new(&setup, ids[1].clone(), &guard, &mut rng).unwrap_err(),
        MessageError::Replay(ReplayError::Reused)
    );
    let stranger: Signer = Arc::new(Ed25519Identity::generate(&mut rng));
    assert!(matches!(
        Session::new(&setup, stranger, &MemoryReplayGuard::new(), &mut rng),
        Err(MessageError::NotAParticipant)
    ));
}

#[test]
fn p2p_both_directions_same_round() {
    let (_, mut s) = net(6);
    let m12 = s[0].send_p2p(2, 2, b"share for two", P2pMode::Plain).unwrap();
    let m21 = s[1].send_p2p(1, 2, b"share for one", P2pMode::Plain).unwrap();
    assert_eq!(m12.len(), HEADER_LEN + 13 + AEAD_FOOTER_LEN);
    // Both directions start at counter 1, but under different keys.
    let nonce = |m: &[u8]| nonce_counter(m[m.len() - 12..].try_into().unwrap()).unwrap();
    assert_eq!((nonce(&m12), nonce(&m21)), (1, 1));
    let (c12, c21) = (s[0].channel(2).unwrap(), s[1].channel(1).unwrap());
    assert_ne!(c12.send.bytes(), c12.recv.bytes());
    assert_eq!(c12.send.bytes(), c21.recv.bytes());
    assert_eq!(c12.recv.bytes(), c21.send.bytes());
    assert_ne!(c12.send.bytes(), s[0].channel(3).unwrap().send.bytes());

    let r = got(s[1].receive(&m12, &Expect::p2p(1, 2, 64, P2pMode::Plain)));
    assert_eq!(r.payload(), b"share for two");
    assert!(r.evidence().is_none());
    let r = got(s[0].receive(&m21, &Expect::p2p(2, 2, 64, P2pMode::Plain)));
    assert_eq!(r.payload(), b"share for one");

    // Later rounds advance the counter per direction; nonces never repeat under one key.
    let mut seen = std::collections::HashSet::new();
    seen.insert(nonce(&m12));
    for round in 3..8 {
        let m = s[0].send_p2p(2, round, &[round as u8; 5], P2pMode::Plain).unwrap();
        assert!(seen.insert(nonce(&m)));
        assert!(s[1].receive(&m, &Expect::p2p(1, round, 64, P2pMode::Plain)).unwrap().is_some());
    }
    assert_eq!(s[0].channel(2).unwrap().next_send_counter(), 7);
}

#[test]
fn p2p_tampering_wrong_key_and_replay_are_dropped() {
    let (_, mut s) = net(7);
    let exp = Expect::p2p(1, 2, 64, P2pMode::Plain);
    let msg = s[0].send_p2p(2, 2, b"secret", P2pMode::Plain).unwrap();
    for pos in [0, 35, 36, 41, msg.len() - 13, msg.len() - 1] {
        let mut bad = msg.clone();
        bad[pos] ^= 0x80;
        assert!(s[1].receive(&bad, &exp).unwrap().is_none(), "tamper at {pos}");
    }
    assert!(s[1].receive(&msg[..msg.len() - 1], &exp).unwrap().is_none());
    // Party 3 cannot open it (other key, other mid).
    assert!(s[2].receive(&msg, &Expect::p2p(1, 2, 64, P2pMode::Plain)).unwrap().is_none());
    // Accept once, then a replay of the same ciphertext (same nonce) is dropped.
    assert!(s[1].receive(&msg, &exp).unwrap().is_some());
    assert!(s[1].receive(&msg, &exp).unwrap().is_none());
    // The old ciphertext cannot be passed off as a later round's message either.
    assert!(s[1].receive(&msg, &Expect::p2p(1, 3, 64, P2pMode::Plain)).unwrap().is_none());
}

#[test]
fn p2p_from_another_session_is_dropped() {
    let ids = signers(8);
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let mut mk = |iid: [u8; 32]| -> Vec<Session> {
        let setup = setup_for(&ids, iid);
        let mut ss: Vec<Session> = ids
            .iter()
            .take(2)
            .map(|s| Session::new(&setup, s.clone(), &MemoryReplayGuard::new(), &mut rng).unwrap())
            .collect();
        let (e0, e1) = (ss[0].ephemeral_public(), ss[1].ephemeral_public());
        ss[0].establish(2, &e1).unwrap();
        ss[1].establish(1, &e0).unwrap();
        ss
    };
    let mut old = mk([1; 32]);
    let mut new = mk([1; 32]); // same iid (guard bypassed), fresh ephemeral keys
    let msg = old[0].send_p2p(2, 2, b"x", P2pMode::Plain).unwrap();
    let exp = Expect::p2p(1, 2, 64, P2pMode::Plain);
    assert!(new[1].receive(&msg, &exp).unwrap().is_none());
    assert!(old[1].receive(&msg, &exp).unwrap().is_some());
    let bmsg = old[0].broadcast(1, b"b").unwrap();
    let mut third = mk([2; 32]);
    assert!(third[1].receive(&bmsg, &Expect::broadcast(1, 1, 8)).unwrap().is_none());
}

#[test]
fn p2p_nonce_reuse_and_equivocation_are_blamed() {
    let (_, mut s) = net(9);
    let a = s[0].send_p2p(2, 2, b"one", P2pMode::Plain).unwrap();
    assert!(s[1].receive(&a, &Expect::p2p(1, 2, 64, P2pMode::Plain)).unwrap().is_some());
    // The sender rewinds its counter: a different mid under a used nonce.
    s[0].channel_mut(2).unwrap().set_next_send_counter(1);
    let b = s[0].send_p2p(2, 3, b"two", P2pMode::Plain).unwrap();
    let e = s[1].receive(&b, &Expect::p2p(1, 3, 64, P2pMode::Plain)).unwrap_err();
    assert_eq!(e, MessageError::NonceReuse { party: 1 });
    // Different content under an accepted mid: equivocation (no transferable proof in plain mode).
    let c = s[0].send_p2p(2, 2, b"other", P2pMode::Plain).unwrap();
    let e = s[1].receive(&c, &Expect::p2p(1, 2, 64, P2pMode::Plain)).unwrap_err();
    assert_eq!(e, MessageError::Equivocation { party: 1, evidence: None });
    // Same content re-sent under a fresh nonce: a harmless duplicate.
    let d = s[0].send_p2p(2, 2, b"one", P2pMode::Plain).unwrap();
    assert!(s[1].receive(&d, &Expect::p2p(1, 2, 64, P2pMode::Plain)).unwrap().is_none());
}

#[test]
fn non_contributory_keys_are_rejected() {
    let ids = signers(10);
    let setup = setup_for(&ids, [3; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let mut s = Session::new(&setup, ids[0].clone(), &MemoryReplayGuard::new(), &mut rng).unwrap();
    let mut p = [0xffu8; 32]; // 2^255 - 19 = p, a non-canonical encoding of 0
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut one = [0u8; 32];
    one[0] = 1; // u = 1: a point of order 4
    // u = 325606250916557431795983626356110631294008115727848805560023387167927233504 (order 8)
    let order8 = hex_literal("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
    for bad in [[0u8; 32], one, p, order8] {
        let e = s.establish(2, &bad).unwrap_err();
        assert_eq!(e, MessageError::NonContributoryKey { party: 2 });
        assert_eq!(e.culprit(), Some(2));
    }
    let good = EphemeralKey::generate(&mut rng).public_bytes();
    s.establish(2, &good).unwrap();
    assert_eq!(s.establish(2, &good), Err(MessageError::ChannelAlreadyEstablished(2)));
    assert_eq!(s.establish(9, &good), Err(MessageError::UnknownParty(9)));
    assert!(matches!(
        s.send_p2p(3, 1, b"x", P2pMode::Plain),
        Err(MessageError::ChannelNotEstablished(3))
    ));
}

fn hex_literal(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

#[test]
fn complaint_evidence_is_transferable() {
    let (setup, mut s) = net(11);
    // Party 2 (P-256) sends a signed share to party 1 (Ed25519).
    let msg = s[1].send_p2p(1, 2, b"bad share", P2pMode::Signed).unwrap();
    assert_eq!(msg.len(), HEADER_LEN + 9 + 64 + AEAD_FOOTER_LEN);
    let r = got(s[0].receive(&msg, &Expect::p2p(2, 2, 16, P2pMode::Signed)));
    assert_eq!(r.payload(), b"bad share");
    let ev = r.evidence().unwrap().clone();
    // Published as bytes, checked by party 3 against the setup.
    let published = ev.to_bytes();
    let seen_by_3 = Evidence::from_bytes(&published).unwrap();
    assert_eq!(seen_by_3, ev);
    assert!(seen_by_3.verify_for(&setup, 2, Some(1), 2));
    assert_eq!(seen_by_3.payload(), b"bad share");
    // Wrong context: other round, other receiver, other sender claimed.
    assert!(!seen_by_3.verify_for(&setup, 2, Some(1), 3));
    assert!(!seen_by_3.verify_for(&setup, 2, Some(3), 2));
    assert!(!seen_by_3.verify_for(&setup, 1, Some(1), 2));
    assert!(!seen_by_3.verify_for(&setup, 2, None, 2));
    // A forged payload (a false accuser rewriting the share) does not verify.
    let mut forged = published.clone();
    let payload_at = 34 + HEADER_LEN + 4; // P-256 key (34) ‖ hdr ‖ len
    forged[payload_at] ^= 1;
    let forged = Evidence::from_bytes(&forged).unwrap();
    assert!(!forged.verify());
    assert!(!forged.verify_for(&setup, 2, Some(1), 2));
    // Nor does party 1's own signature dressed up as party 2's.
    let own = s[0].send_p2p(2, 2, b"bad share", P2pMode::Signed).unwrap();
    let r = got(s[1].receive(&own, &Expect::p2p(1, 2, 16, P2pMode::Signed)));
    let mut swapped = r.evidence().unwrap().to_bytes();
    let tail = swapped.split_off(33); // Ed25519 key is 33 bytes encoded
    let mut fake = ev.sender().to_bytes();
    fake.extend_from_slice(&tail);
    let fake = Evidence::from_bytes(&fake).unwrap();
    assert!(!fake.verify());
}

#[test]
fn bad_inner_signature_blames_sender() {
    let (_, mut s) = net(12);
    // Sent in plain mode but expected signed: the last 64 bytes are not a valid σ'.
    let msg = s[0].send_p2p(2, 2, &[7u8; 80], P2pMode::Plain).unwrap();
    let e = s[1].receive(&msg, &Expect::p2p(1, 2, 64, P2pMode::Signed)).unwrap_err();
    assert_eq!(e, MessageError::BadInnerSignature { party: 1 });
    let short = s[0].send_p2p(2, 3, &[7u8; 10], P2pMode::Plain).unwrap();
    let e = s[1].receive(&short, &Expect::p2p(1, 3, 64, P2pMode::Signed)).unwrap_err();
    assert!(matches!(e, MessageError::Malformed { party: 1, .. }));
}

#[test]
fn complaint_mode_equivocation_has_proof() {
    let (setup, mut s) = net(13);
    let a = s[0].send_p2p(2, 2, b"one", P2pMode::Signed).unwrap();
    let b = s[0].send_p2p(2, 2, b"two", P2pMode::Signed).unwrap();
    let exp = Expect::p2p(1, 2, 64, P2pMode::Signed);
    assert!(s[1].receive(&a, &exp).unwrap().is_some());
    let MessageError::Equivocation { party: 1, evidence: Some(ev) } =
        s[1].receive(&b, &exp).unwrap_err()
    else {
        panic!()
    };
    assert!(ev.verify());
    assert!(ev.second.verify_for(&setup, 1, Some(2), 2));
}

#[test]
fn abort_messages() {
    let (_, mut s) = net(14);
    let notice = AbortNotice { reason: 7, accused: Some(3) };
    let msg = s[0].abort(notice).unwrap();
    assert_eq!(msg.len(), HEADER_LEN + ABORT_PAYLOAD_LEN + 64);
    assert_eq!(msg[33], 2);
    let r = got(s[1].receive(&msg, &Expect::abort(1)));
    assert_eq!(r.abort(), Some(notice));
    // An abort is not a broadcast of any round.
    assert!(s[2].receive(&msg, &Expect::broadcast(1, ABORT_ROUND, 8)).unwrap().is_none());
    assert_eq!(s[0].broadcast(ABORT_ROUND, b"x"), Err(MessageError::ReservedRound(ABORT_ROUND)));
    // Accusing a non-participant is authenticated nonsense: blame the sender.
    let bogus = s[0].abort(AbortNotice { reason: 1, accused: Some(99) }).unwrap();
    let e = s[2].receive(&bogus, &Expect::abort(1)).unwrap_err();
    assert!(matches!(e, MessageError::Malformed { party: 1, .. }));
    let none = s[1].abort(AbortNotice { reason: 0, accused: None }).unwrap();
    assert_eq!(got(s[2].receive(&none, &Expect::abort(2))).abort().unwrap().accused, None);
}

#[test]
fn short_abort_payload_blames_sender() {
    let ids = signers(15);
    let setup = setup_for(&ids, [15; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let mut s2 = Session::new(&setup, ids[1].clone(), &MemoryReplayGuard::new(), &mut rng).unwrap();
    let hdr = Header { mid: s2.mid(1, None, ABORT_ROUND).unwrap(), kind: Kind::Abort }.to_bytes();
    let payload = [0u8, 1, 0];
    let sig = ids[0].sign(&signing_input(&hdr, Kind::Abort, &payload)).unwrap();
    let msg = [&hdr[..], &payload, &sig.0].concat();
    let e = s2.receive(&msg, &Expect::abort(1)).unwrap_err();
    assert!(matches!(e, MessageError::Malformed { party: 1, .. }));
}

#[test]
fn evidence_and_abort_decoders_are_strict() {
    let (_, mut s) = net(16);
    let msg = s[0].broadcast(1, b"hello").unwrap();
    let r = got(s[1].receive(&msg, &Expect::broadcast(1, 1, 8)));
    let enc = r.evidence().unwrap().to_bytes();
    for cut in 0..enc.len() {
        assert!(Evidence::from_bytes(&enc[..cut]).is_err());
    }
    let mut long = enc.clone();
    long.push(0);
    assert!(Evidence::from_bytes(&long).is_err());
    assert!(AbortNotice::from_bytes(&[0; 3]).is_err());
    assert!(AbortNotice::from_bytes(&[0; 5]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn receive_never_panics_and_drops_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (_, mut s) = net(20);
        for exp in [
            Expect::broadcast(1, 1, 256),
            Expect::p2p(1, 1, 256, P2pMode::Plain),
            Expect::p2p(1, 1, 256, P2pMode::Signed),
            Expect::abort(1),
        ] {
            prop_assert!(matches!(s[1].receive(&bytes, &exp), Ok(None)));
        }
        let _ = Evidence::from_bytes(&bytes);
        let _ = AbortNotice::from_bytes(&bytes);
        if let Ok(h) = <[u8; HEADER_LEN]>::try_from(bytes.get(..HEADER_LEN).unwrap_or(&[])) {
            let _ = Header::from_bytes(&h);
        }
    }

    #[test]
    fn mutated_messages_are_dropped(pos in 0usize..200, flip in 1u8..=255, cut in 0usize..200) {
        let (_, mut s) = net(21);
        let b = s[0].broadcast(1, &[9u8; 40]).unwrap();
        let p = s[0].send_p2p(2, 1, &[9u8; 40], P2pMode::Signed).unwrap();
        for (msg, exp) in [
            (b, Expect::broadcast(1, 1, 64)),
            (p, Expect::p2p(1, 1, 64, P2pMode::Signed)),
        ] {
            let mut m = msg.clone();
            let i = pos % m.len();
            m[i] ^= flip;
            prop_assert!(matches!(s[1].receive(&m, &exp), Ok(None)));
            let c = cut % msg.len();
            prop_assert!(matches!(s[1].receive(&msg[..c], &exp), Ok(None)));
        }
    }
}

/// Pins the wire-level derivations so an accidental change is caught. Both values were also
/// recomputed independently (Python hashlib + an independent Ed25519 library) from the spec's
/// framing: `SHA-256(u64_be(len) ‖ "DKLS23-v1/<tag>" ‖ (u64_be(len) ‖ part)*)`.
#[test]
fn pinned_mid_setup_hash_and_header() {
    let a = Ed25519Identity::from_seed(&[1; 32]).public_key();
    let b = Ed25519Identity::from_seed(&[2; 32]).public_key();
    let m = mid(&[3; 32], &a, Some(&b), ProtocolId::Sign, 4);
    let setup =
        Setup::new(ProtocolId::Dkg, [5; 32], 2, 2, vec![(1, a), (2, b)], vec![6], 60).unwrap();
    let got = (hex::encode(m), hex::encode(setup.hash()));
    assert_eq!(got, (PINNED_MID.to_string(), PINNED_SETUP_HASH.to_string()));
    let hdr = Header { mid: m, kind: Kind::P2p }.to_bytes();
    assert_eq!(&hdr[32..], &[1, 1, 0, 0]);
}

const PINNED_MID: &str = "1105a1b58ac9dcaa1323c22d0c4f8fee4ffa18a067f36020302e26985e767cba";
const PINNED_SETUP_HASH: &str = "a44156839f828ec209a230727c1dc452f9e909c7caa25a09cc7d453e7b5cb59f";
