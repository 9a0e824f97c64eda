//! `dkls23_core::setup::Setup::from_bytes`: the setup every party receives from the application
//! (a QR code, a setup file, the node's session configuration), plus the protocol-specific
//! decoders of its `extra` field: `SignRequest` / `PresignRequest` for signing setups,
//! `ReshareSpec::from_setup`, `ImportRequest::from_setup` and `ExportRequest::from_setup`.
//!
//! Invariants: no panic; the encoding is canonical, so `to_bytes(from_bytes(b)) == b`; the
//! re-decoded setup equals the first one, hash included; the participants are strictly
//! ascending and every listed identity is found by `my_index` / `identity_of`; an `extra` that
//! decodes as a request re-encodes to the same bytes.
#![no_main]

use dkls23_core::import_export::{ExportRequest, ImportRequest};
use dkls23_core::reshare::ReshareSpec;
use dkls23_core::sign::{PresignRequest, SignRequest};
use dkls23_core::setup::{ProtocolId, Setup};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(setup) = Setup::from_bytes(data) else { return };
    let enc = setup.to_bytes();
    assert_eq!(enc, data, "setup encoding is not canonical");
    let again = Setup::from_bytes(&enc).expect("a re-encoded setup decodes");
    assert_eq!(again, setup);
    assert_eq!(again.hash(), setup.hash());
    let parts = setup.participants();
    assert!(parts.windows(2).all(|w| w[0].0 < w[1].0), "participants not ascending");
    for (i, key) in parts {
        assert_eq!(setup.my_index(key), Some(*i));
        assert_eq!(setup.identity_of(*i), Some(key));
    }
    let extra = setup.extra();
    match setup.protocol() {
        ProtocolId::Sign => {
            if let Ok(r) = SignRequest::from_bytes(extra) {
                assert_eq!(r.to_bytes(), extra, "sign request in extra is not canonical");
            }
            if let Ok(r) = PresignRequest::from_bytes(extra) {
                assert_eq!(r.to_bytes(), extra, "presign request in extra is not canonical");
            }
        }
        ProtocolId::Reshare => {
            if let Ok(spec) = ReshareSpec::from_setup(&setup) {
                assert_eq!(spec.to_bytes(), extra, "reshare spec in extra is not canonical");
                let _ = spec.transport_participants();
                let _ = spec.dealer_transport_indices();
            }
        }
        ProtocolId::Import => {
            if let Ok(r) = ImportRequest::from_setup(&setup) {
                assert_eq!(r.to_bytes(), extra, "import request in extra is not canonical");
            }
        }
        ProtocolId::Export => {
            if let Ok(r) = ExportRequest::from_setup(&setup) {
                assert_eq!(r.to_bytes(), extra, "export request in extra is not canonical");
            }
        }
        _ => {}
    }
});
