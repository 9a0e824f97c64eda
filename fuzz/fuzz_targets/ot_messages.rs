//! The OT messages of dkls23-core (`dkls23_core::hazmat::ot::{Kg1, Kg2, Sg1, Sg2}::decode`, sent by the
//! counterparty during key generation and signing) and the long-term OT states stored inside key
//! shares (`AliceState::from_bytes`, `BobState::from_bytes`).
//!
//! Input: `selector u8 ‖ bytes`. `selector % 6` picks the decoder; when `selector & 0x80` is set
//! the bytes are given as they are (exercising the length checks), otherwise they are cut or
//! zero-extended to the decoder's exact length first (all six formats have a fixed size, from
//! 16 KiB to 48 KiB, which random inputs would almost never hit).
//!
//! Invariants: no panic; a decoder accepts only its exact length; every format is canonical,
//! so a decoded value re-encodes to the input byte for byte, and the decoded sid is the first
//! 32 bytes.
#![no_main]

use dkls_fuzz::{fit, split_selector};
use dkls23_core::hazmat::ot::{AliceState, BobState, Kg1, Kg2, Sg1, Sg2};
use libfuzzer_sys::fuzz_target;

fn check<T>(input: &[u8], len: usize, decoded: Option<T>, encode: impl Fn(&T) -> Vec<u8>) {
    if let Some(v) = decoded {
        assert_eq!(input.len(), len, "a decoder accepted the wrong length");
        assert_eq!(encode(&v), input, "re-encoding differs from the input");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, bytes)) = split_selector(data) else { return };
    let raw = selector & 0x80 != 0;
    let input = |len: usize| if raw { bytes.to_vec() } else { fit(bytes, len) };
    match selector % 6 {
        0 => {
            let b = input(Kg1::LEN);
            let m = Kg1::decode(&b).ok();
            if let Some(m) = &m {
                assert_eq!(m.sid()[..], b[..32]);
            }
            check(&b, Kg1::LEN, m, Kg1::encode);
        }
        1 => {
            let b = input(Kg2::LEN);
            let m = Kg2::decode(&b).ok();
            if let Some(m) = &m {
                assert_eq!(m.sid()[..], b[..32]);
            }
            check(&b, Kg2::LEN, m, Kg2::encode);
        }
        2 => {
            let b = input(Sg1::LEN);
            let m = Sg1::decode(&b).ok();
            if let Some(m) = &m {
                assert_eq!(m.sid()[..], b[..32]);
            }
            check(&b, Sg1::LEN, m, Sg1::encode);
        }
        3 => {
            let b = input(Sg2::LEN);
            let m = Sg2::decode(&b).ok();
            if let Some(m) = &m {
                assert_eq!(m.sid()[..], b[..32]);
            }
            check(&b, Sg2::LEN, m, Sg2::encode);
        }
        4 => {
            let b = input(AliceState::ENCODED_LEN);
            let s = AliceState::from_bytes(&b).ok();
            check(&b, AliceState::ENCODED_LEN, s, |s| s.to_bytes().to_vec());
        }
        _ => {
            let b = input(BobState::ENCODED_LEN);
            let s = BobState::from_bytes(&b).ok();
            check(&b, BobState::ENCODED_LEN, s, |s| s.to_bytes().to_vec());
        }
    }
});
