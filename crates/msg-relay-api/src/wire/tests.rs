use super::*;
use crate::MessageId;

fn id(b: u8) -> MessageId {
    MessageId([b; 32])
}

fn round_trip(f: Frame<'_>) {
    let bytes = f.encode();
    assert_eq!(bytes.len(), f.encoded_len());
    assert_eq!(Frame::decode(&bytes).unwrap(), f);
}

#[test]
fn every_kind_round_trips() {
    round_trip(Frame::Publish { req: 7, id: id(1), ttl_ms: 60_000, readers: 0, payload: b"hello" });
    round_trip(Frame::Publish { req: 7, id: id(1), ttl_ms: 1, readers: 0, payload: b"" });
    round_trip(Frame::Publish { req: 7, id: id(1), ttl_ms: 5, readers: 2, payload: b"x" });
    round_trip(Frame::Consume { req: 12, id: id(5), reader: 3, candidate: None });
    round_trip(Frame::Ask { req: 8, id: id(2), forwarded: false, from: None });
    round_trip(Frame::Ask { req: 8, id: id(2), forwarded: true, from: None });
    round_trip(Frame::Consume { req: 12, id: id(5), reader: 3, candidate: Some(2) });
    round_trip(Frame::Ask { req: 8, id: id(2), forwarded: true, from: Some(3) });
    round_trip(Frame::Ask { req: 8, id: id(2), forwarded: false, from: Some(0) });
    round_trip(Frame::Deliver { req: 10, id: id(4), candidate: Some(7), payload: b"x" });
    round_trip(Frame::Cancel { req: u32::MAX });
    round_trip(Frame::Ack { req: 9, id: id(3), status: AckStatus::Stored });
    round_trip(Frame::Ack { req: 9, id: id(3), status: AckStatus::Duplicate });
    round_trip(Frame::Deliver { req: 10, id: id(4), candidate: None, payload: &[0u8; 300] });
    round_trip(Frame::Error {
        req: 11,
        code: ErrorCode::TooLarge,
        actual: 70_000,
        limit: 65_536,
        text: "too large",
    });
    round_trip(Frame::Error { req: 0, code: ErrorCode::Other(999), actual: 0, limit: 0, text: "" });
}

/// The worked example of `docs/relay-protocol.md`, pinned byte for byte.
#[test]
fn publish_matches_the_documented_example() {
    let f = Frame::Publish { req: 1, id: id(0xab), ttl_ms: 60_000, readers: 0, payload: b"hi" };
    let hex: String = f.encode().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, format!("010100000001{}0000ea606869", "ab".repeat(32)));
}

/// Every hex example of `docs/relay-protocol.md` §1.9.
#[test]
fn documented_examples() {
    let hex = |f: Frame<'_>| -> String { f.encode().iter().map(|b| format!("{b:02x}")).collect() };
    let ab = "ab".repeat(32);
    assert_eq!(
        hex(Frame::Ack { req: 1, id: id(0xab), status: AckStatus::Stored }),
        format!("018100000001{ab}00")
    );
    assert_eq!(
        hex(Frame::Ask { req: 2, id: id(0xab), forwarded: false, from: None }),
        format!("010200000002{ab}00")
    );
    assert_eq!(
        hex(Frame::Deliver { req: 2, id: id(0xab), candidate: None, payload: b"hi" }),
        format!("018200000002{ab}6869")
    );
    assert_eq!(hex(Frame::Cancel { req: 2 }), "010300000002");
    assert_eq!(
        hex(Frame::Error {
            req: 3,
            code: ErrorCode::TooLarge,
            actual: 1500,
            limit: 1024,
            text: "too large"
        }),
        "018300000003000400000000000005dc0000000000000400746f6f206c61726765"
    );
}

#[test]
fn error_codes_round_trip() {
    for n in 0..20u16 {
        assert_eq!(ErrorCode::from_u16(n).to_u16(), n);
    }
}

#[test]
fn every_truncation_is_rejected_without_panic() {
    let frames = [
        Frame::Publish { req: 1, id: id(1), ttl_ms: 5, readers: 0, payload: b"" }.encode(),
        Frame::Ask { req: 1, id: id(1), forwarded: false, from: None }.encode(),
        Frame::Ack { req: 1, id: id(1), status: AckStatus::Stored }.encode(),
        Frame::Ask { req: 1, id: id(1), forwarded: false, from: Some(1) }.encode(),
        Frame::Deliver { req: 1, id: id(1), candidate: Some(1), payload: b"" }.encode(),
        Frame::Deliver { req: 1, id: id(1), candidate: None, payload: b"" }.encode(),
        Frame::Error { req: 1, code: ErrorCode::Conflict, actual: 0, limit: 0, text: "" }.encode(),
    ];
    for full in frames {
        for cut in 0..full.len() {
            assert!(Frame::decode(&full[..cut]).is_err(), "cut at {cut} of {full:?}");
        }
    }
}

#[test]
fn bad_headers_and_bodies_are_named() {
    assert_eq!(Frame::decode(&[]), Err(FrameError::TooShort(0)));
    assert_eq!(Frame::decode(&[2, 1, 0, 0, 0, 1]), Err(FrameError::UnsupportedVersion(2)));
    assert_eq!(Frame::decode(&[1, 0x44, 0, 0, 0, 1]), Err(FrameError::UnknownKind(0x44)));
    let mut ask = Frame::Ask { req: 1, id: id(1), forwarded: false, from: None }.encode();
    ask.push(0);
    assert_eq!(Frame::decode(&ask), Err(FrameError::TrailingBytes { kind: "ask", extra: 1 }));
    let mut ask = Frame::Ask { req: 1, id: id(1), forwarded: false, from: None }.encode();
    *ask.last_mut().unwrap() = 0x80;
    assert_eq!(Frame::decode(&ask), Err(FrameError::UnknownFlags(0x80)));
    let mut publish =
        Frame::Publish { req: 1, id: id(1), ttl_ms: 5, readers: 0, payload: b"" }.encode();
    publish[38..42].copy_from_slice(&[0; 4]);
    assert_eq!(Frame::decode(&publish), Err(FrameError::ZeroTtl));
    let mut err =
        Frame::Error { req: 1, code: ErrorCode::Conflict, actual: 0, limit: 0, text: "" }.encode();
    err.push(0xff);
    assert_eq!(Frame::decode(&err), Err(FrameError::BadText));
}

proptest::proptest! {
    /// Any bytes at all: decoding never panics, and what decodes re-encodes to the same bytes.
    #[test]
    fn decode_never_panics_and_round_trips(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
        if let Ok(frame) = Frame::decode(&bytes) {
            proptest::prop_assert_eq!(frame.encode(), bytes);
        }
    }

    /// Frames with a valid header and kind and a random body.
    #[test]
    fn random_bodies_never_panic(
        kind in proptest::sample::select(vec![1u8, 2, 3, 4, 5, 0x81, 0x82, 0x83, 0x84]),
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
    ) {
        let mut bytes = vec![FRAME_VERSION, kind, 0, 0, 0, 1];
        bytes.extend_from_slice(&body);
        if let Ok(frame) = Frame::decode(&bytes) {
            proptest::prop_assert_eq!(frame.encode(), bytes);
        }
    }
}

#[test]
fn peek_request_id_reads_only_a_complete_header() {
    assert_eq!(peek_request_id(&[1, 1, 0, 0, 1, 2]), 258);
    assert_eq!(peek_request_id(&[1, 1, 0, 0, 1]), 0);
}

#[test]
fn long_error_text_is_clipped_on_a_char_boundary() {
    let text = "é".repeat(MAX_ERROR_TEXT);
    let f = Frame::Error { req: 1, code: ErrorCode::Malformed, actual: 0, limit: 0, text: &text };
    let bytes = f.encode();
    let Frame::Error { text: got, .. } = Frame::decode(&bytes).unwrap() else { panic!() };
    assert!(got.len() <= MAX_ERROR_TEXT && text.starts_with(got));
}
