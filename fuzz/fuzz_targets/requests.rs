//! The request encodings of dkls23-core that travel inside a setup's `extra` field or are read
//! from peers and users: `SignRequest::from_bytes`, `PresignRequest::from_bytes`,
//! `ReshareSpec::from_bytes`, `ImportRequest::from_bytes`, `ExportRequest::from_bytes`, and the
//! BIP32 extended public key (`Xpub::from_bytes`, and `Xpub` from its Base58Check text).
//!
//! Input: `selector u8 ‖ bytes`; `selector % 7` picks the decoder (6 = `Xpub::from_str` of the
//! bytes as UTF-8).
//!
//! Invariants: no panic; the five request encodings and the 78-byte xpub serialisation are
//! canonical, so a decoded value re-encodes to the input byte for byte (and a signing request
//! never decodes as a presigning one or the other way round); for the Base58Check text, which
//! admits no second spelling but is checked as a value, `from_str(to_string(x)) == x`. A
//! decoded reshare spec's derived views (transport participants, dealers) never panic and its
//! transport indices are distinct.
#![no_main]

use std::str::FromStr;

use dkls_fuzz::split_selector;
use dkls23_core::bip32::Xpub;
use dkls23_core::import_export::{ExportRequest, ImportRequest};
use dkls23_core::reshare::ReshareSpec;
use dkls23_core::sign::{PresignRequest, SignRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, bytes)) = split_selector(data) else { return };
    match selector % 7 {
        0 => {
            if let Ok(r) = SignRequest::from_bytes(bytes) {
                assert_eq!(r.to_bytes(), bytes, "sign request encoding is not canonical");
                assert!(PresignRequest::from_bytes(bytes).is_err());
            }
        }
        1 => {
            if let Ok(r) = PresignRequest::from_bytes(bytes) {
                assert_eq!(r.to_bytes(), bytes, "presign request encoding is not canonical");
                assert!(SignRequest::from_bytes(bytes).is_err());
            }
        }
        2 => {
            if let Ok(spec) = ReshareSpec::from_bytes(bytes) {
                assert_eq!(spec.to_bytes(), bytes, "reshare spec encoding is not canonical");
                let parts = spec.transport_participants();
                let mut idx: Vec<u16> = parts.iter().map(|(i, _)| *i).collect();
                idx.sort_unstable();
                assert!(idx.windows(2).all(|w| w[0] < w[1]), "transport indices collide");
                let _ = spec.dealer_transport_indices();
                for m in &spec.old_committee {
                    let _ = spec.transport_of_old(m.index);
                }
            }
        }
        3 => {
            if let Ok(r) = ImportRequest::from_bytes(bytes) {
                assert_eq!(r.to_bytes(), bytes, "import request encoding is not canonical");
            }
        }
        4 => {
            if let Ok(r) = ExportRequest::from_bytes(bytes) {
                assert_eq!(r.to_bytes(), bytes, "export request encoding is not canonical");
            }
        }
        5 => {
            if let Ok(x) = Xpub::from_bytes(bytes) {
                assert_eq!(&x.to_bytes()[..], bytes, "xpub serialisation is not canonical");
                let text = x.to_string();
                assert_eq!(Xpub::from_str(&text).ok().as_ref(), Some(&x));
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(bytes) else { return };
            if let Ok(x) = Xpub::from_str(text) {
                let again = Xpub::from_str(&x.to_string()).expect("a formatted xpub parses");
                assert_eq!(again, x);
                assert_eq!(Xpub::from_bytes(&x.to_bytes()).ok().as_ref(), Some(&x));
            }
        }
    }
});
