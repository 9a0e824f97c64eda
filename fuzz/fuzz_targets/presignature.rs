//! `dkls23_core::sign::Presignature::from_bytes`: a stored presignature read back (node
//! database, dkls-party presignature file), checked against the key share it must belong to
//! (party 1 of a 2-of-2 key built once with `dkls23_core::sim::dkg`).
//!
//! Input: `selector u8 ‖ bytes`; with `selector & 1` the bytes are XORed onto a real
//! presignature of that share (so the key id / epoch / party checks pass and the mutations
//! land in the signer set, the flags and the scalars), otherwise they are decoded as they are.
//!
//! Invariants: no panic; the format is canonical (`to_bytes(from_bytes(b)) == b`); a decoded
//! presignature belongs to the share (key id, keygen sid), its signer set is strictly
//! ascending, within `1..=n`, contains the share's index and has at least t members; and
//! `sign` on it never panics.
#![no_main]

use std::sync::OnceLock;

use dkls_fuzz::{presignature_bytes, share1, split_selector};
use dkls23_core::sign::Presignature;
use libfuzzer_sys::fuzz_target;

fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| presignature_bytes(&[], 3000))
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, bytes)) = split_selector(data) else { return };
    let share = share1();
    let input: Vec<u8> = if selector & 1 == 1 {
        let mut v = base().to_vec();
        for (dst, src) in v.iter_mut().zip(bytes) {
            *dst ^= src;
        }
        if let Some(extra) = bytes.get(v.len()..) {
            v.extend_from_slice(extra);
        }
        v
    } else {
        bytes.to_vec()
    };
    let Ok(p) = Presignature::from_bytes(&input, share) else { return };
    assert_eq!(p.to_bytes().as_slice(), input.as_slice(), "presignature encoding is not canonical");
    assert_eq!(p.key_id(), share.key_id());
    assert_eq!(p.keygen_sid(), share.keygen_sid());
    let s = p.signers();
    assert!(s.windows(2).all(|w| w[0] < w[1]), "signers not ascending");
    assert!(s.iter().all(|&j| 1 <= j && j <= share.parties()));
    assert!(s.contains(&share.index()) && s.len() >= usize::from(share.threshold()));
    let (_partial, s3) = p.sign(&[0x17; 32], dkls23_core::sign::ONLINE_ROUND);
    assert_eq!(s3.broadcast.as_ref().map(Vec::len), Some(128));
});
