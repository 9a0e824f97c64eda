//! The [`Frame`] type: decoding (bounds-checked, never panics, payloads borrowed) and encoding.

use super::codes::{AckStatus, ErrorCode};
use super::constants::{
    ASK_FLAG_CANDIDATE, ASK_FLAG_FORWARDED, FRAME_VERSION, HEADER_LEN, MAX_ERROR_TEXT,
};
use super::error::FrameError;
use super::kind;
use crate::{MESSAGE_ID_LEN, MessageId};

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
