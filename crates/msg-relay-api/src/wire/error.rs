//! Why a buffer is not a valid frame.

use super::constants::{FRAME_VERSION, HEADER_LEN};

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
