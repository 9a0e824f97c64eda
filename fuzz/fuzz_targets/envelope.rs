//! The message envelope of dkls23-core (`dkls23_core::message`): `Header::from_bytes`,
//! `AbortNotice::from_bytes`, `Evidence::from_bytes` and the full receive path
//! `Session::receive` (size bounds, header, mid, signature or AEAD, inner signature, abort
//! payload, duplicate / equivocation / nonce-reuse records) at party 2 of a fixed 3-party setup
//! whose channels to parties 1 (Ed25519) and 3 (P-256) are established.
//!
//! Input: `selector u8 ‖ bytes`.
//! * selector % 4 == 0: `Header::from_bytes` of the first 36 bytes (zero-padded);
//! * 1: `AbortNotice::from_bytes`; 2: `Evidence::from_bytes`;
//! * 3: `Session::receive` with `bytes = from u8 ‖ kind u8 ‖ round u16 ‖ max u16 ‖ raw`.
//!
//! Invariants: no panic; the three codecs are canonical, so a decoded value re-encodes to the
//! input byte for byte; an accepted message's header re-encodes to the received header bytes,
//! its payload respects the expectation's bound, its evidence (if any) verifies, is attributed
//! to the fixture setup and round-trips through `Evidence::to_bytes` / `from_bytes`; an accepted
//! abort carries a notice; and the same raw bytes received again are dropped as a duplicate
//! (`Ok(None)`), never accepted twice nor blamed as equivocation.
#![no_main]

use dkls_fuzz::{RECEIVER, fit, msg_session, msg_setup, split_selector};
use dkls23_core::message::{
    ABORT_ROUND, AbortNotice, Evidence, Expect, HEADER_LEN, Header, Kind, P2pMode,
};
use libfuzzer_sys::fuzz_target;

fn receive(bytes: &[u8]) {
    let [from, kind, r0, r1, m0, m1, raw @ ..] = bytes else { return };
    let from = if from % 2 == 0 { 1 } else { 3 };
    let round = u16::from_be_bytes([*r0, *r1]);
    let max = usize::from(u16::from_be_bytes([*m0, *m1]));
    let (expect, to, kind, round) = match kind % 4 {
        0 => (Expect::broadcast(from, round, max), None, Kind::Broadcast, round),
        1 => (Expect::p2p(from, round, max, P2pMode::Plain), Some(RECEIVER), Kind::P2p, round),
        2 => (Expect::p2p(from, round, max, P2pMode::Signed), Some(RECEIVER), Kind::P2p, round),
        _ => (Expect::abort(from), None, Kind::Abort, ABORT_ROUND),
    };
    let mut session = msg_session(RECEIVER);
    match session.receive(raw, &expect) {
        Ok(Some(got)) => {
            assert_eq!(got.from(), from);
            assert_eq!(got.header().kind, kind);
            assert_eq!(raw.get(..HEADER_LEN), Some(&got.header().to_bytes()[..]));
            let bound = if kind == Kind::Abort { 4 } else { max };
            assert!(got.payload().len() <= bound, "payload above the expectation's bound");
            match (kind, got.evidence()) {
                (Kind::P2p, None) => {}
                (_, Some(ev)) => {
                    assert!(ev.verify(), "accepted evidence does not verify");
                    assert!(ev.verify_for(msg_setup(), from, to, round), "evidence misattributed");
                    assert_eq!(ev.payload(), got.payload());
                    let again = Evidence::from_bytes(&ev.to_bytes()).expect("evidence re-decodes");
                    assert_eq!(&again, ev);
                }
                (_, None) => panic!("a signed message was accepted without evidence"),
            }
            if kind == Kind::Abort {
                let notice = got.abort().expect("an accepted abort carries its notice");
                assert_eq!(notice.to_bytes()[..], got.payload()[..]);
            }
            match session.receive(raw, &expect) {
                Ok(None) => {}
                Ok(Some(_)) => panic!("the same message was accepted twice"),
                Err(e) => panic!("a duplicate delivery was blamed: {e}"),
            }
        }
        Ok(None) => {}
        Err(e) => {
            let _ = (e.to_string(), e.culprit(), e.requires_ban());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, bytes)) = split_selector(data) else { return };
    match selector % 4 {
        0 => {
            let hdr: [u8; HEADER_LEN] = fit(bytes, HEADER_LEN).try_into().expect("36 bytes");
            if let Ok(h) = Header::from_bytes(&hdr) {
                assert_eq!(h.to_bytes(), hdr, "header encoding is not canonical");
            }
        }
        1 => {
            if let Ok(n) = AbortNotice::from_bytes(bytes) {
                assert_eq!(&n.to_bytes()[..], bytes, "abort notice encoding is not canonical");
            }
        }
        2 => {
            if let Ok(ev) = Evidence::from_bytes(bytes) {
                assert_eq!(ev.to_bytes(), bytes, "evidence encoding is not canonical");
                let _ = ev.verify();
                let _ = ev.verify_for(msg_setup(), 1, None, 1);
            }
        }
        _ => receive(bytes),
    }
});
