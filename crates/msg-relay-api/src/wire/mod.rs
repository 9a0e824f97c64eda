//! The relay's wire format, shared by `msg-relay-client` and `msg-relay-svc`: the binary frame
//! format, version 1 (pure code, no I/O), and the names the HTTP API uses.
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

mod codes;
mod constants;
mod error;
mod frame;
pub mod kind;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests;

pub use codes::{AckStatus, ErrorCode};
pub use constants::{
    ASK_FLAG_CANDIDATE, ASK_FLAG_FORWARDED, DELIVER_OVERHEAD, FRAME_VERSION, HEADER_LEN,
    MAX_ERROR_TEXT, PUBLISH_OVERHEAD,
};
pub use error::FrameError;
pub use frame::{Frame, peek_request_id};

/// The HTTP response header naming the candidate an ask was answered with
/// (`GET /v1/msg/{id}?candidate=N`).
pub const CANDIDATE_HEADER: &str = "relay-candidate";
