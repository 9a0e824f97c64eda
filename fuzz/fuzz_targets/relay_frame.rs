//! `msg_relay_api::wire::Frame::decode`: the relay's binary frame codec, used by the relay
//! server on every WebSocket message from a client and by the client on every message from the
//! relay.
//!
//! Invariants: decoding never panics; `peek_request_id` agrees with the decoded request id;
//! `encoded_len` is the length of `encode`; `encode_into` appends exactly `encode`; and the
//! format is canonical, so a decoded frame re-encodes to the input byte for byte — except an
//! error frame whose text is longer than `MAX_ERROR_TEXT`, which the encoder clips: there the
//! re-encoding must decode to the same frame with the text cut at a character boundary.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msg_relay_api::wire::{Frame, HEADER_LEN, MAX_ERROR_TEXT, peek_request_id};

fuzz_target!(|data: &[u8]| {
    let peeked = peek_request_id(data);
    match Frame::decode(data) {
        Ok(frame) => {
            assert_eq!(frame.req(), peeked, "peek_request_id disagrees with decode");
            let enc = frame.encode();
            assert_eq!(enc.len(), frame.encoded_len(), "encoded_len is not the encoded length");
            let mut appended = vec![0xa5, 0x5a];
            frame.encode_into(&mut appended);
            assert_eq!(appended.get(2..), Some(enc.as_slice()), "encode_into differs from encode");
            match frame {
                Frame::Error { req, code, actual, limit, text } if text.len() > MAX_ERROR_TEXT => {
                    let again = Frame::decode(&enc).expect("a clipped error frame must decode");
                    let Frame::Error { req: r2, code: c2, actual: a2, limit: l2, text: t2 } = again
                    else {
                        panic!("an error frame re-decoded as another kind: {again:?}");
                    };
                    assert_eq!((r2, c2, a2, l2), (req, code, actual, limit));
                    assert!(t2.len() <= MAX_ERROR_TEXT && text.starts_with(t2));
                    assert!(t2.len() + 4 > MAX_ERROR_TEXT, "clipped more than one character");
                }
                _ => assert_eq!(enc, data, "decode/encode is not the identity on valid frames"),
            }
        }
        Err(e) => {
            let _ = e.to_string();
            if data.len() < HEADER_LEN {
                assert_eq!(peeked, 0, "peek_request_id read a partial header");
            }
        }
    }
});
