//! The format's fixed numbers: version, header length, overheads, limits and ask flags.

use crate::MESSAGE_ID_LEN;

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
/// frame naming the candidate's number (see [`Frame::Ask`](super::Frame::Ask)).
pub const ASK_FLAG_CANDIDATE: u8 = 0x02;
