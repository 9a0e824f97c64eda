#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use super::*;
use crate::identity::{Ed25519Identity, IdentitySigner, P256Identity};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn keys(count: usize, seed: u64) -> Vec<IdentityPublicKey> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            if i % 2 == 0 {
                Ed25519Identity::generate(&mut rng).public_key()
            } else {
                P256Identity::generate(&mut rng).public_key()
            }
        })
        .collect()
}

fn members(keys: &[IdentityPublicKey]) -> Vec<(PartyIndex, IdentityPublicKey)> {
    keys.iter().enumerate().map(|(i, k)| ((i + 1) as u16, *k)).collect()
}

fn dkg(n: u16, t: u16) -> Result<Setup, SetupError> {
    let ks = keys(usize::from(n), 7);
    Setup::new(ProtocolId::Dkg, [9; 32], n, t, members(&ks), b"app".to_vec(), 600)
}

#[test]
fn round_trip_and_hash() {
    let s = dkg(3, 2).unwrap();
    let bytes = s.to_bytes();
    let back = Setup::from_bytes(&bytes).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.hash(), s.hash());
    assert_eq!(s.hash(), &th(Tag::Setup, &[&bytes]));
    assert_eq!(s.participants().len(), 3);
    assert_eq!(s.extra(), b"app");
    assert_eq!((s.n(), s.t(), s.ttl_secs(), s.version()), (3, 2, 600, SPEC_VERSION));
    let k2 = s.participants()[1].1;
    assert_eq!(s.my_index(&k2), Some(2));
    assert_eq!(s.identity_of(2), Some(&k2));
    // Any change of a field changes the hash.
    let other =
        Setup::new(ProtocolId::Dkg, [8; 32], 3, 2, s.participants().to_vec(), b"app".to_vec(), 600)
            .unwrap();
    assert_ne!(other.hash(), s.hash());
}

#[test]
fn new_sorts_participants() {
    let ks = keys(3, 1);
    let mut m = members(&ks);
    m.reverse();
    let s = Setup::new(ProtocolId::Dkg, [0; 32], 3, 2, m, vec![], 10).unwrap();
    assert_eq!(s.participants(), members(&ks).as_slice());
}

#[test]
fn own_key_missing() {
    let s = dkg(3, 2).unwrap();
    let stranger = keys(1, 99)[0];
    assert_eq!(s.my_index(&stranger), None);
    assert_eq!(s.require_member(&stranger), Err(SetupError::NotAParticipant));
}

#[test]
fn duplicate_index_and_key() {
    let ks = keys(3, 2);
    let mut m = members(&ks);
    m[2].0 = 2;
    let e = Setup::new(ProtocolId::Sign, [0; 32], 3, 2, m, vec![], 10).unwrap_err();
    assert_eq!(e, SetupError::DuplicateIndex(2));
    let mut m = members(&ks);
    m[2].1 = m[0].1;
    let e = Setup::new(ProtocolId::Dkg, [0; 32], 3, 2, m, vec![], 10).unwrap_err();
    assert_eq!(e, SetupError::DuplicateIdentity(3));
}

#[test]
fn threshold_and_index_ranges() {
    assert!(matches!(dkg(3, 1), Err(SetupError::Threshold { .. })));
    assert!(matches!(dkg(3, 4), Err(SetupError::Threshold { .. })));
    assert!(dkg(2, 2).is_ok());
    let ks = keys(3, 3);
    // DKG participants must be exactly 1..=n.
    let e = Setup::new(ProtocolId::Dkg, [0; 32], 4, 2, members(&ks), vec![], 10).unwrap_err();
    assert!(matches!(e, SetupError::Threshold { .. }));
    let mut m = members(&ks);
    m[2].0 = 7;
    let e = Setup::new(ProtocolId::Dkg, [0; 32], 3, 2, m.clone(), vec![], 10).unwrap_err();
    assert_eq!(e, SetupError::IndexOutOfRange(7));
    // Signing: S ⊆ {1..n}, t ≤ |S| ≤ n.
    assert!(Setup::new(ProtocolId::Sign, [0; 32], 7, 2, m.clone(), vec![], 10).is_ok());
    let e = Setup::new(ProtocolId::Sign, [0; 32], 5, 2, m.clone(), vec![], 10).unwrap_err();
    assert_eq!(e, SetupError::IndexOutOfRange(7));
    let e = Setup::new(ProtocolId::Sign, [0; 32], 7, 4, m.clone(), vec![], 10).unwrap_err();
    assert!(matches!(e, SetupError::Threshold { .. }));
    m[0].0 = 0;
    let e = Setup::new(ProtocolId::Reshare, [0; 32], 3, 2, m, vec![], 10).unwrap_err();
    assert_eq!(e, SetupError::IndexOutOfRange(0));
    // Reshare: n, t are the new committee's, participants any distinct transport indices.
    let mut m = members(&ks);
    m[2].0 = 200;
    assert!(Setup::new(ProtocolId::Reshare, [0; 32], 2, 2, m, vec![], 10).is_ok());
    assert!(matches!(
        Setup::new(ProtocolId::Reshare, [0; 32], 256, 2, members(&ks), vec![], 10),
        Err(SetupError::Threshold { .. })
    ));
}

#[test]
fn ttl_extra_and_version_bounds() {
    let ks = keys(2, 4);
    let m = members(&ks);
    assert_eq!(
        Setup::new(ProtocolId::Dkg, [0; 32], 2, 2, m.clone(), vec![], 0),
        Err(SetupError::Ttl(0))
    );
    assert!(matches!(
        Setup::new(ProtocolId::Dkg, [0; 32], 2, 2, m.clone(), vec![0; MAX_EXTRA_LEN + 1], 5),
        Err(SetupError::Oversize { .. })
    ));
    let s = Setup::new(ProtocolId::Dkg, [0; 32], 2, 2, m, vec![], 5).unwrap();
    let mut b = s.to_bytes();
    b[3] = 2;
    assert_eq!(Setup::from_bytes(&b), Err(SetupError::UnsupportedVersion(2)));
    let mut b = s.to_bytes();
    b[1] = 9;
    assert_eq!(Setup::from_bytes(&b), Err(SetupError::UnknownProtocol(9)));
}

#[test]
fn strict_decoding() {
    let s = dkg(3, 2).unwrap();
    let bytes = s.to_bytes();
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(Setup::from_bytes(&long), Err(SetupError::TrailingBytes));
    for cut in 0..bytes.len() {
        assert!(Setup::from_bytes(&bytes[..cut]).is_err(), "prefix {cut} accepted");
    }
    assert!(matches!(
        Setup::from_bytes(&vec![0u8; MAX_SETUP_LEN + 1]),
        Err(SetupError::Oversize { .. })
    ));
    // Participants out of order in the encoding are rejected (non-canonical).
    let ks = keys(2, 5);
    let s2 = Setup::new(ProtocolId::Dkg, [0; 32], 2, 2, members(&ks), vec![], 5).unwrap();
    let mut b = s2.to_bytes();
    let first = 42; // offset of the first index (after the 42-byte fixed prefix)
    let len0 = 2 + ks[0].encoded_len();
    let (a, rest) = b[first..].split_at(len0);
    let (c, tail) = rest.split_at(2 + ks[1].encoded_len());
    let swapped: Vec<u8> = [c, a, tail].concat();
    b.truncate(first);
    b.extend_from_slice(&swapped);
    assert_eq!(Setup::from_bytes(&b), Err(SetupError::DuplicateIndex(1)));
    // A huge participant count or extra length is refused before allocating.
    let mut b = s2.to_bytes();
    b[40] = 0xff;
    b[41] = 0xff;
    assert!(matches!(Setup::from_bytes(&b), Err(SetupError::Oversize { .. })));
}

#[test]
fn replay_guard_refuses_reuse() {
    let g = MemoryReplayGuard::new();
    assert_eq!(g.check_and_record(&[1; 32]), Ok(()));
    assert_eq!(g.check_and_record(&[2; 32]), Ok(()));
    assert_eq!(g.check_and_record(&[1; 32]), Err(ReplayError::Reused));
}

proptest! {
    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Setup::from_bytes(&bytes);
    }

    #[test]
    fn decoder_survives_mutation(pos in 0usize..400, val in any::<u8>(), cut in 0usize..400) {
        let s = dkg(3, 2).unwrap();
        let mut b = s.to_bytes();
        let p = pos % b.len();
        b[p] = val;
        b.truncate(cut.max(p + 1).min(b.len()));
        if let Ok(d) = Setup::from_bytes(&b) {
            prop_assert_eq!(d.to_bytes(), b);
        }
    }
}
