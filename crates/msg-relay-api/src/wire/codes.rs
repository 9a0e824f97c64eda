//! The values carried inside frames: an ack's status and an error frame's code.

/// How a publish was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// The message was stored.
    Stored,
    /// An identical message was already stored (idempotent re-publish).
    Duplicate,
}

impl AckStatus {
    pub(super) fn to_byte(self) -> u8 {
        match self {
            Self::Stored => 0,
            Self::Duplicate => 1,
        }
    }

    pub(super) fn from_byte(b: u8) -> Option<Self> {
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
