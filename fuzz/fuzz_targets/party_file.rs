//! The files dkls-party reads back: `dkls_party::sealed::open` (key shares and presignatures
//! encrypted at rest), `dkls_party::identity_file::parse` (the PEM identity key),
//! `dkls_party::bans::decode_unverified` / `decode_verified` (the authenticated ban list of a
//! share) and `dkls_party::setup_file::read` (the JSON setup file every participant receives).
//!
//! Input: `selector u8 ‖ bytes`; `selector % 4` picks the decoder.
//! * 0, 1 — `sealed::open` with the fixed passphrase; `selector & 0x40` picks the kind
//!   key share with bans, else `selector & 0x10` presignature, else key share (`peek_kind`
//!   must agree with a file that opens). Unless `selector & 0x20` is set the harness makes the file
//!   reach the key derivation: Argon2id costs in the header that `open` would accept are folded
//!   into cheap ones (m ≤ 128 KiB, t ≤ 2, p ≤ 2; the seeds' costs are left as they are) and the
//!   trailing SHA-256 is appended. Raw mode feeds the bytes untouched (checksum path).
//! * 2 — `identity_file::parse` of the bytes as a PEM file; with `selector & 0x40` instead the
//!   ban-list decoders, checked against party 1's 2-of-2 key share.
//! * 3 — `setup_file::read` of the bytes written to a temporary file, expecting the protocol
//!   `1 + (selector >> 2) % 5`.
//!
//! Invariants: no panic. A sealed file that opens opens again; opening it as another kind is
//! `Corrupted` and with another passphrase `WrongPassphrase`; re-sealing the plaintext and
//! opening that gives the plaintext back (`seal` draws a fresh salt and nonce, so the encoding is
//! not canonical: this is `open(seal(x)) == x`, not a byte round trip). A parsed identity signs
//! a message that verifies under its public key, which validates. A ban list that verifies
//! lists what the unverified decoder reads; re-encoding any decoded list for the share verifies
//! and gives the list sorted without duplicates. A setup file that reads is of
//! the expected protocol, and a file written from the decoded setup reads back equal.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use dkls_fuzz::{CHEAP_KDF, PASSPHRASE, share1, split_selector};
use dkls_party::sealed::{self, Kind, SealError};
use dkls_party::{bans, identity_file, setup_file};
use dkls23_core::identity::normalize_signature;
use dkls23_core::setup::ProtocolId;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).and_then(|s| <[u8; 4]>::try_from(s).ok()).map(u32::from_be_bytes)
}

/// Folds Argon2id costs that `open` would accept into cheap ones, in place.
fn cheapen(body: &mut [u8]) {
    let (Some(m), Some(t), Some(p)) = (be32(body, 9), be32(body, 13), be32(body, 17)) else {
        return;
    };
    let accepted = m <= 1024 * 1024 && (1..=16).contains(&t) && (1..=8).contains(&p);
    if !accepted || (m <= 128 && t <= 2 && p <= 2) {
        return;
    }
    let (m, t, p) = (m % 129, 1 + (t - 1) % 2, 1 + (p - 1) % 2);
    for (at, v) in [(9, m), (13, t), (17, p)] {
        if let Some(dst) = body.get_mut(at..at + 4) {
            dst.copy_from_slice(&v.to_be_bytes());
        }
    }
}

fn sealed_file(selector: u8, bytes: &[u8]) {
    let kind = if selector & 0x40 != 0 {
        Kind::KeyShareWithBans
    } else if selector & 0x10 != 0 {
        Kind::Presignature
    } else {
        Kind::KeyShare
    };
    let file = if selector & 0x20 != 0 {
        bytes.to_vec()
    } else {
        let mut body = bytes.to_vec();
        cheapen(&mut body);
        let digest = Sha256::digest(&body);
        body.extend_from_slice(&digest);
        body
    };
    let Ok(pt) = sealed::open(kind, &file, PASSPHRASE) else { return };
    assert_eq!(sealed::peek_kind(&file), Some(kind), "peek_kind disagrees with open");
    let again = sealed::open(kind, &file, PASSPHRASE);
    assert_eq!(again.as_ref().map(|p| p.as_slice()), Ok(pt.as_slice()));
    for other in [Kind::KeyShare, Kind::Presignature, Kind::KeyShareWithBans] {
        if other != kind {
            let r = sealed::open(other, &file, PASSPHRASE);
            assert!(matches!(r, Err(SealError::Corrupted(_))), "opened as another kind");
        }
    }
    assert_eq!(sealed::open(kind, &file, b"not the passphrase"), Err(SealError::WrongPassphrase));
    let resealed = sealed::seal(kind, &pt, PASSPHRASE, CHEAP_KDF).expect("re-seal");
    let reopened = sealed::open(kind, &resealed, PASSPHRASE).expect("open a fresh seal");
    assert_eq!(reopened.as_slice(), pt.as_slice(), "open(seal(x)) != x");
}

fn ban_list(bytes: &[u8]) {
    let share = share1();
    let verified = bans::decode_verified(bytes, share, "ban list");
    let Ok(listed) = bans::decode_unverified(bytes, "ban list") else {
        assert!(verified.is_err(), "a list verified that does not parse");
        return;
    };
    if let Ok(v) = &verified {
        assert_eq!(v, &listed, "the verified and unverified decoders disagree");
    }
    let mut canonical = listed.clone();
    canonical.sort_unstable();
    canonical.dedup();
    let enc = bans::encode(share, &listed).expect("encode a ban list");
    let back = bans::decode_verified(&enc, share, "ban list").expect("a fresh list verifies");
    assert_eq!(back, canonical);
}

fn identity(bytes: &[u8]) {
    let Ok(signer) = identity_file::parse(bytes) else { return };
    let key = signer.public_key();
    assert!(key.validate().is_ok(), "a parsed identity has an invalid public key");
    let msg = b"dkls-fuzz identity check";
    let sig = signer.sign(msg).expect("a parsed identity signs");
    assert!(key.verify(msg, &normalize_signature(&key, sig)), "signature does not verify");
}

fn scratch(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let base = if shm.is_dir() { shm } else { std::env::temp_dir() };
        // One fixed directory (targets run one process at a time), so runs leave no litter.
        let dir = base.join("dkls-fuzz-party_file");
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    });
    dir.join(name)
}

fn setup(selector: u8, bytes: &[u8]) {
    let Some(want) = ProtocolId::from_u16(1 + u16::from(selector >> 2) % 5) else { return };
    let path = scratch("setup.json");
    std::fs::write(&path, bytes).expect("write scratch file");
    let Ok(setup) = setup_file::read(&path, want) else { return };
    assert_eq!(setup.protocol(), want);
    let doc = serde_json::json!({
        "format": "dkls-party-setup/v1",
        "setup": hex::encode(setup.to_bytes()),
    });
    let path2 = scratch("setup2.json");
    std::fs::write(&path2, doc.to_string()).expect("write scratch file");
    let again = setup_file::read(&path2, want).expect("a written setup reads back");
    assert_eq!(again, setup);
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, bytes)) = split_selector(data) else { return };
    match selector % 4 {
        0 | 1 => sealed_file(selector, bytes),
        2 if selector & 0x40 != 0 => ban_list(bytes),
        2 => identity(bytes),
        _ => setup(selector, bytes),
    }
});
