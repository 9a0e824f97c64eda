//! The relay's binary frame format, version 1 (pure code, no I/O).
//!
//! Every WebSocket binary message on `/v1/msg-relay` carries exactly one frame. All integers are
//! big-endian. Every frame starts with the same 6-byte header:
//!
//! ```text
//! offset 0  u8   version      (1)
//! offset 1  u8   kind         (0x01 publish, 0x02 ask, 0x03 cancel, 0x04 consume,
//!                              0x05 publish with readers,
//!                              0x81 ack, 0x82 deliver, 0x83 error, 0x84 deliver candidate)
//! offset 2  u32  request id   (chosen by the client, echoed by the server)
//! ```
//!
//! The body layouts are documented on each [`Frame`] variant and, with worked examples, in
//! `docs/relay-protocol.md`. The decoder checks every length and never panics; it borrows the
//! payload from the input buffer.

use msg_relay_api::{MESSAGE_ID_LEN, MessageId};

/// The frame format version this crate speaks.
pub const FRAME_VERSION: u8 = 1;

/// Length of the common header (version, kind, request id).
pub const HEADER_LEN: usize = 6;

/// Bytes a publish frame adds around its payload (the largest, with readers).
pub const PUBLISH_OVERHEAD: usize = HEADER_LEN + MESSAGE_ID_LEN + 4 + 2;

/// Bytes a deliver frame adds around its payload.
pub const DELIVER_OVERHEAD: usize = HEADER_LEN + MESSAGE_ID_LEN;

/// Longest error text the server sends (longer texts are cut at a character boundary).
pub const MAX_ERROR_TEXT: usize = 512;

/// Flag bit in an ask frame: the ask was forwarded by a peer relay and must not be forwarded
/// again.
pub const ASK_FLAG_FORWARDED: u8 = 0x01;

/// Flag bit in an ask frame: the body carries `from:u16` and the answer is a deliver-candidate
/// frame naming the candidate's number (see [`Frame::Ask`]).
pub const ASK_FLAG_CANDIDATE: u8 = 0x02;

/// Frame kind byte values.
pub mod kind {
    /// Client → server: store a message.
    pub const PUBLISH: u8 = 0x01;
    /// Client → server: wait for a message.
    pub const ASK: u8 = 0x02;
    /// Client → server: withdraw an outstanding ask.
    pub const CANCEL: u8 = 0x03;
    /// Client → server: this receiver has the message and will not ask for it again.
    pub const CONSUME: u8 = 0x04;
    /// Client → server: store a message for a number of receivers.
    pub const PUBLISH_FOR: u8 = 0x05;
    /// Server → client: a publish was accepted.
    pub const ACK: u8 = 0x81;
    /// Server → client: the answer to an ask.
    pub const DELIVER: u8 = 0x82;
    /// Server → client: a request (or an undecodable frame) was rejected.
    pub const ERROR: u8 = 0x83;
    /// Server → client: the answer to a candidate ask, with the candidate's number.
    pub const DELIVER_CANDIDATE: u8 = 0x84;
}

/// How a publish was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// The message was stored.
    Stored,
    /// An identical message was already stored (idempotent re-publish).
    Duplicate,
}

impl AckStatus {
    fn to_byte(self) -> u8 {
        match self {
            Self::Stored => 0,
            Self::Duplicate => 1,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Stored),
            1 => Some(Self::Duplicate),
            _ => None,
        }
    }
}

/// Machine-readable reason carried by an error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The frame could not be decoded (1).
    Malformed,
    /// The frame's version byte is not supported (2); `limit` holds the supported version.
    UnsupportedVersion,
    /// The frame's kind byte is unknown or not allowed from a client (3).
    UnknownKind,
    /// The payload is larger than the relay accepts (4); `actual` = size, `limit` = maximum.
    TooLarge,
    /// The TTL is zero or longer than allowed (5); `actual` = requested ms, `limit` = maximum ms.
    BadTtl,
    /// A different payload already exists under this id (6).
    Conflict,
    /// The relay holds as many bytes as it may (7); `limit` = the byte limit.
    StoreFull,
    /// Too many outstanding asks on this connection (8); `limit` = the per-connection limit.
    TooManyAsks,
    /// The ask waited as long as the relay allows without an answer (9); ask again.
    AskExpired,
    /// The request id is already in use by an outstanding ask on this connection (10).
    DuplicateRequest,
    /// The relay failed internally or is shutting down (11); retry later.
    Unavailable,
    /// The publishing connection or client address holds as many bytes as it may (12);
    /// `actual` = bytes held, `limit` = the quota.
    QuotaExceeded,
    /// The request needs an authenticated peer relay (13): a forwarded ask from a client.
    Forbidden,
    /// A code this version does not know.
    Other(u16),
}

impl ErrorCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Malformed => 1,
            Self::UnsupportedVersion => 2,
            Self::UnknownKind => 3,
            Self::TooLarge => 4,
            Self::BadTtl => 5,
            Self::Conflict => 6,
            Self::StoreFull => 7,
            Self::TooManyAsks => 8,
            Self::AskExpired => 9,
            Self::DuplicateRequest => 10,
            Self::Unavailable => 11,
            Self::QuotaExceeded => 12,
            Self::Forbidden => 13,
            Self::Other(n) => n,
        }
    }

    /// The code for a wire number (unknown numbers are kept as [`ErrorCode::Other`]).
    pub fn from_u16(n: u16) -> Self {
        match n {
            1 => Self::Malformed,
            2 => Self::UnsupportedVersion,
            3 => Self::UnknownKind,
            4 => Self::TooLarge,
            5 => Self::BadTtl,
            6 => Self::Conflict,
            7 => Self::StoreFull,
            8 => Self::TooManyAsks,
            9 => Self::AskExpired,
            10 => Self::DuplicateRequest,
            11 => Self::Unavailable,
            12 => Self::QuotaExceeded,
            13 => Self::Forbidden,
            other => Self::Other(other),
        }
    }
}

/// One decoded frame; payloads borrow from the buffer that was decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `id[32] ttl_ms:u32 payload[..]` (kind 0x01, `readers == 0`) or
    /// `id[32] ttl_ms:u32 readers:u16 payload[..]` (kind 0x05, `readers >= 1`) — store
    /// `payload` under `id` for `ttl_ms` milliseconds, or until `readers` distinct receivers
    /// consumed it.
    Publish {
        /// Request id, echoed in the ack or error.
        req: u32,
        /// Message id.
        id: MessageId,
        /// Time to live in milliseconds (must be at least 1).
        ttl_ms: u32,
        /// Receivers that will consume the message; 0 = unknown (kept for the TTL).
        readers: u16,
        /// The opaque message.
        payload: &'a [u8],
    },
    /// `id[32] flags:u8` — wait for `id` (its first candidate); answered by a deliver or an
    /// error with the same `req`. With [`ASK_FLAG_CANDIDATE`]: `id[32] flags:u8 from:u16` —
    /// wait for a candidate under `id` numbered `from` or later; answered by a deliver
    /// candidate frame.
    Ask {
        /// Request id, echoed in the deliver or error; unique among this connection's
        /// outstanding asks.
        req: u32,
        /// Message id.
        id: MessageId,
        /// Set when a peer relay forwards the ask ([`ASK_FLAG_FORWARDED`]).
        forwarded: bool,
        /// The first candidate number wanted (`None`: the form without candidates).
        from: Option<u16>,
    },
    /// (empty body) — withdraw the outstanding ask `req`; the server sends nothing back.
    Cancel {
        /// Request id of the ask to withdraw.
        req: u32,
    },
    /// `id[32] reader:u16` or `id[32] reader:u16 candidate:u16` — receiver `reader` has
    /// candidate `candidate` (0 when absent) of message `id`; the server sends nothing back.
    Consume {
        /// Request id (only echoed in an error about this frame).
        req: u32,
        /// Message id.
        id: MessageId,
        /// The receiver's index among the message's receivers.
        reader: u16,
        /// The candidate it authenticated (`None`: the short form, candidate 0).
        candidate: Option<u16>,
    },
    /// `id[32] status:u8` — the publish `req` landed (0 stored, 1 identical duplicate).
    Ack {
        /// Request id of the publish.
        req: u32,
        /// Message id.
        id: MessageId,
        /// Whether it was new.
        status: AckStatus,
    },
    /// `id[32] payload[..]` (kind 0x82) — the message asked for by `req`; or
    /// `id[32] candidate:u16 payload[..]` (kind 0x84) — candidate `candidate` of it, the answer
    /// to a candidate ask.
    Deliver {
        /// Request id of the ask.
        req: u32,
        /// Message id.
        id: MessageId,
        /// The candidate's number (`None`: kind 0x82).
        candidate: Option<u16>,
        /// The opaque message.
        payload: &'a [u8],
    },
    /// `code:u16 actual:u64 limit:u64 text[..]` — request `req` (0 when the frame that caused
    /// the error had no readable request id) was rejected.
    Error {
        /// Request id of the rejected request, or 0.
        req: u32,
        /// Why.
        code: ErrorCode,
        /// The offending value (size, TTL ms, …) or 0.
        actual: u64,
        /// The limit that was exceeded, or 0.
        limit: u64,
        /// Human-readable UTF-8 text.
        text: &'a str,
    },
}

/// Why a buffer is not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Shorter than the common header.
    #[error("frame of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort(usize),
    /// The version byte is not [`FRAME_VERSION`].
    #[error("unsupported frame version {0} (this relay speaks version {FRAME_VERSION})")]
    UnsupportedVersion(u8),
    /// The kind byte is unknown.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// The body is shorter than its kind requires.
    #[error("{kind} frame body needs {needed} bytes, got {got}")]
    Truncated {
        /// Frame kind name.
        kind: &'static str,
        /// Fixed body length required.
        needed: usize,
        /// Body length received.
        got: usize,
    },
    /// The body of a fixed-size frame is longer than its kind allows.
    #[error("{kind} frame has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// Frame kind name.
        kind: &'static str,
        /// Surplus length.
        extra: usize,
    },
    /// An ask carries flag bits this version does not define.
    #[error("unknown ask flags 0x{0:02x}")]
    UnknownFlags(u8),
    /// An ack carries an unknown status byte.
    #[error("unknown ack status {0}")]
    UnknownStatus(u8),
    /// A publish asks for a TTL of zero.
    #[error("TTL must be at least 1 ms")]
    ZeroTtl,
    /// A publish-for frame names zero readers (kind 0x01 is the form without readers).
    #[error("a publish for readers must name at least 1 reader")]
    ZeroReaders,
    /// An error frame's text is not UTF-8.
    #[error("error text is not valid UTF-8")]
    BadText,
}

/// The request id of a buffer that starts with a readable header, else 0; lets a server echo
/// the request id in the error it returns for a frame it could not decode.
pub fn peek_request_id(buf: &[u8]) -> u32 {
    buf.get(2..HEADER_LEN).and_then(|b| <[u8; 4]>::try_from(b).ok()).map_or(0, u32::from_be_bytes)
}

/// A bounds-checked reader over a frame body.
struct Body<'a> {
    kind: &'static str,
    rest: &'a [u8],
    /// Length of the fixed part this kind needs (for error messages).
    needed: usize,
    /// Length of the whole body.
    got: usize,
}

impl<'a> Body<'a> {
    fn new(kind: &'static str, rest: &'a [u8], needed: usize) -> Result<Self, FrameError> {
        if rest.len() < needed {
            return Err(FrameError::Truncated { kind, needed, got: rest.len() });
        }
        Ok(Self { kind, rest, needed, got: rest.len() })
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let (head, tail) = self.rest.split_at_checked(N).ok_or(FrameError::Truncated {
            kind: self.kind,
            needed: self.needed,
            got: self.got,
        })?;
        let arr = <[u8; N]>::try_from(head).map_err(|_| FrameError::Truncated {
            kind: self.kind,
            needed: self.needed,
            got: self.got,
        })?;
        self.rest = tail;
        Ok(arr)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        let [b] = self.take::<1>()?;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_be_bytes(self.take::<2>()?))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_be_bytes(self.take::<4>()?))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_be_bytes(self.take::<8>()?))
    }

    fn id(&mut self) -> Result<MessageId, FrameError> {
        Ok(MessageId(self.take::<MESSAGE_ID_LEN>()?))
    }

    fn rest(self) -> &'a [u8] {
        self.rest
    }

    fn finish(self) -> Result<(), FrameError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(FrameError::TrailingBytes { kind: self.kind, extra: self.rest.len() })
        }
    }
}

impl<'a> Frame<'a> {
    /// Decodes one frame, checking every length.
    ///
    /// # Errors
    /// A [`FrameError`] naming what is wrong; the buffer is never trusted.
    pub fn decode(buf: &'a [u8]) -> Result<Self, FrameError> {
        let (header, body) =
            buf.split_at_checked(HEADER_LEN).ok_or(FrameError::TooShort(buf.len()))?;
        let [version, kind, r0, r1, r2, r3] =
            <[u8; HEADER_LEN]>::try_from(header).map_err(|_| FrameError::TooShort(buf.len()))?;
        if version != FRAME_VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let req = u32::from_be_bytes([r0, r1, r2, r3]);
        match kind {
            kind::PUBLISH => {
                let mut b = Body::new("publish", body, MESSAGE_ID_LEN + 4)?;
                let id = b.id()?;
                let ttl_ms = b.u32()?;
                if ttl_ms == 0 {
                    return Err(FrameError::ZeroTtl);
                }
                Ok(Frame::Publish { req, id, ttl_ms, readers: 0, payload: b.rest() })
            }
            kind::PUBLISH_FOR => {
                let mut b = Body::new("publish-for", body, MESSAGE_ID_LEN + 4 + 2)?;
                let id = b.id()?;
                let ttl_ms = b.u32()?;
                let readers = b.u16()?;
                if ttl_ms == 0 {
                    return Err(FrameError::ZeroTtl);
                }
                if readers == 0 {
                    return Err(FrameError::ZeroReaders);
                }
                Ok(Frame::Publish { req, id, ttl_ms, readers, payload: b.rest() })
            }
            kind::CONSUME => {
                let mut b = Body::new("consume", body, MESSAGE_ID_LEN + 2)?;
                let id = b.id()?;
                let reader = b.u16()?;
                let candidate = if b.rest.is_empty() { None } else { Some(b.u16()?) };
                b.finish()?;
                Ok(Frame::Consume { req, id, reader, candidate })
            }
            kind::ASK => {
                let mut b = Body::new("ask", body, MESSAGE_ID_LEN + 1)?;
                let id = b.id()?;
                let flags = b.u8()?;
                if flags & !(ASK_FLAG_FORWARDED | ASK_FLAG_CANDIDATE) != 0 {
                    return Err(FrameError::UnknownFlags(flags));
                }
                let from = if flags & ASK_FLAG_CANDIDATE != 0 {
                    b.needed += 2;
                    Some(b.u16()?)
                } else {
                    None
                };
                b.finish()?;
                Ok(Frame::Ask { req, id, forwarded: flags & ASK_FLAG_FORWARDED != 0, from })
            }
            kind::CANCEL => {
                Body::new("cancel", body, 0)?.finish()?;
                Ok(Frame::Cancel { req })
            }
            kind::ACK => {
                let mut b = Body::new("ack", body, MESSAGE_ID_LEN + 1)?;
                let id = b.id()?;
                let status = b.u8()?;
                b.finish()?;
                let status =
                    AckStatus::from_byte(status).ok_or(FrameError::UnknownStatus(status))?;
                Ok(Frame::Ack { req, id, status })
            }
            kind::DELIVER => {
                let mut b = Body::new("deliver", body, MESSAGE_ID_LEN)?;
                let id = b.id()?;
                Ok(Frame::Deliver { req, id, candidate: None, payload: b.rest() })
            }
            kind::DELIVER_CANDIDATE => {
                let mut b = Body::new("deliver-candidate", body, MESSAGE_ID_LEN + 2)?;
                let id = b.id()?;
                let candidate = b.u16()?;
                Ok(Frame::Deliver { req, id, candidate: Some(candidate), payload: b.rest() })
            }
            kind::ERROR => {
                let mut b = Body::new("error", body, 2 + 8 + 8)?;
                let code = ErrorCode::from_u16(b.u16()?);
                let actual = b.u64()?;
                let limit = b.u64()?;
                let text = std::str::from_utf8(b.rest()).map_err(|_| FrameError::BadText)?;
                Ok(Frame::Error { req, code, actual, limit, text })
            }
            other => Err(FrameError::UnknownKind(other)),
        }
    }

    /// The request id in the header.
    pub fn req(&self) -> u32 {
        match self {
            Frame::Publish { req, .. }
            | Frame::Ask { req, .. }
            | Frame::Cancel { req }
            | Frame::Consume { req, .. }
            | Frame::Ack { req, .. }
            | Frame::Deliver { req, .. }
            | Frame::Error { req, .. } => *req,
        }
    }

    fn kind_byte(&self) -> u8 {
        match self {
            Frame::Publish { readers: 0, .. } => kind::PUBLISH,
            Frame::Publish { .. } => kind::PUBLISH_FOR,
            Frame::Ask { .. } => kind::ASK,
            Frame::Cancel { .. } => kind::CANCEL,
            Frame::Consume { .. } => kind::CONSUME,
            Frame::Ack { .. } => kind::ACK,
            Frame::Deliver { candidate: None, .. } => kind::DELIVER,
            Frame::Deliver { .. } => kind::DELIVER_CANDIDATE,
            Frame::Error { .. } => kind::ERROR,
        }
    }

    /// Exact length of the encoded frame.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Frame::Publish { payload, readers: 0, .. } => MESSAGE_ID_LEN + 4 + payload.len(),
                Frame::Publish { payload, .. } => MESSAGE_ID_LEN + 4 + 2 + payload.len(),
                Frame::Ask { from: None, .. } | Frame::Ack { .. } => MESSAGE_ID_LEN + 1,
                Frame::Ask { .. } => MESSAGE_ID_LEN + 1 + 2,
                Frame::Consume { candidate: None, .. } => MESSAGE_ID_LEN + 2,
                Frame::Consume { .. } => MESSAGE_ID_LEN + 2 + 2,
                Frame::Cancel { .. } => 0,
                Frame::Deliver { payload, candidate: None, .. } => MESSAGE_ID_LEN + payload.len(),
                Frame::Deliver { payload, .. } => MESSAGE_ID_LEN + 2 + payload.len(),
                Frame::Error { text, .. } => 2 + 8 + 8 + clip_text(text).len(),
            }
    }

    /// Appends the encoded frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(FRAME_VERSION);
        out.push(self.kind_byte());
        out.extend_from_slice(&self.req().to_be_bytes());
        match self {
            Frame::Publish { id, ttl_ms, readers, payload, .. } => {
                out.extend_from_slice(id.as_bytes());
                out.extend_from_slice(&ttl_ms.to_be_bytes());
                if *readers != 0 {
                    out.extend_from_slice(&readers.to_be_bytes());
                }
                out.extend_from_slice(payload);
            }
            Frame::Consume { id, reader, candidate, .. } => {
                out.extend_from_slice(id.as_bytes());
                out.extend_from_slice(&reader.to_be_bytes());
                if let Some(n) = candidate {
                    out.extend_from_slice(&n.to_be_bytes());
                }
            }
            Frame::Ask { id, forwarded, from, .. } => {
                out.extend_from_slice(id.as_bytes());
                let mut flags = if *forwarded { ASK_FLAG_FORWARDED } else { 0 };
                if from.is_some() {
                    flags |= ASK_FLAG_CANDIDATE;
                }
                out.push(flags);
                if let Some(n) = from {
                    out.extend_from_slice(&n.to_be_bytes());
                }
            }
            Frame::Cancel { .. } => {}
            Frame::Ack { id, status, .. } => {
                out.extend_from_slice(id.as_bytes());
                out.push(status.to_byte());
            }
            Frame::Deliver { id, candidate, payload, .. } => {
                out.extend_from_slice(id.as_bytes());
                if let Some(n) = candidate {
                    out.extend_from_slice(&n.to_be_bytes());
                }
                out.extend_from_slice(payload);
            }
            Frame::Error { code, actual, limit, text, .. } => {
                out.extend_from_slice(&code.to_u16().to_be_bytes());
                out.extend_from_slice(&actual.to_be_bytes());
                out.extend_from_slice(&limit.to_be_bytes());
                out.extend_from_slice(clip_text(text).as_bytes());
            }
        }
    }

    /// The encoded frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }
}

/// Cuts `text` to at most [`MAX_ERROR_TEXT`] bytes at a character boundary.
fn clip_text(text: &str) -> &str {
    if text.len() <= MAX_ERROR_TEXT {
        return text;
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    text.get(..end).unwrap_or("")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

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
        round_trip(Frame::Publish {
            req: 7,
            id: id(1),
            ttl_ms: 60_000,
            readers: 0,
            payload: b"hello",
        });
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
        round_trip(Frame::Error {
            req: 0,
            code: ErrorCode::Other(999),
            actual: 0,
            limit: 0,
            text: "",
        });
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
        let hex =
            |f: Frame<'_>| -> String { f.encode().iter().map(|b| format!("{b:02x}")).collect() };
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
            Frame::Error { req: 1, code: ErrorCode::Conflict, actual: 0, limit: 0, text: "" }
                .encode(),
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
            Frame::Error { req: 1, code: ErrorCode::Conflict, actual: 0, limit: 0, text: "" }
                .encode();
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
        let f =
            Frame::Error { req: 1, code: ErrorCode::Malformed, actual: 0, limit: 0, text: &text };
        let bytes = f.encode();
        let Frame::Error { text: got, .. } = Frame::decode(&bytes).unwrap() else { panic!() };
        assert!(got.len() <= MAX_ERROR_TEXT && text.starts_with(got));
    }
}
