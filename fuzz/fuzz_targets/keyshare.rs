//! `dkls23_core::KeyShare::from_bytes`: a party's key share as read back from storage (the
//! node's database, a dkls-party sealed file after decryption, an import).
//!
//! Input: `selector u8 ‖ bytes`. With `selector & 1` the bytes are XORed onto party 1's real
//! serialised 2-of-2 share (built once with `dkls23_core::sim::dkg`): a 65 KiB format whose
//! algebraic checks (secret share against public share, key id, interpolation of the public
//! shares) random bytes would never reach otherwise; with
//! `selector & 3 == 3` the result is also shortened by the amount in the first two bytes.
//! Without `selector & 1` the bytes are decoded as they are.
//!
//! Invariants: no panic; a decoded share passes `validate`; the format is canonical, so
//! `to_bytes(from_bytes(b)) == b`; the accessors agree with the decoded fields.
#![no_main]

use dkls_fuzz::{share1, split_selector};
use dkls23_core::KeyShare;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, bytes)) = split_selector(data) else { return };
    let input: Vec<u8> = if selector & 1 == 1 {
        let base = share1().to_bytes();
        let mut v = base.to_vec();
        for (dst, src) in v.iter_mut().zip(bytes) {
            *dst ^= src;
        }
        if selector & 2 == 2 {
            // Also vary the length: cut at the position named by the next two bytes.
            let cut = usize::from(u16::from_be_bytes([
                bytes.first().copied().unwrap_or(0),
                bytes.get(1).copied().unwrap_or(0),
            ]));
            v.truncate(v.len().saturating_sub(cut));
        }
        v
    } else {
        bytes.to_vec()
    };
    let Ok(share) = KeyShare::from_bytes(&input) else { return };
    assert!(share.validate().is_ok(), "a decoded share fails validate");
    assert_eq!(
        share.to_bytes().as_slice(),
        input.as_slice(),
        "key share encoding is not canonical"
    );
    let (n, t, i) = (share.parties(), share.threshold(), share.index());
    assert!(2 <= t && t <= n && 1 <= i && i <= n);
    for l in 1..=n {
        assert!(share.public_share(l).is_some() && share.identity(l).is_some());
    }
    assert!(share.public_share(0).is_none() && share.public_share(n + 1).is_none());
});
