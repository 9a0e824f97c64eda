//! The validated setup of one protocol execution (`protocols.md` §1.2, §1.4) and the instance-id
//! replay guard.
//!
//! A [`Setup`] only exists validated: [`Setup::new`] and [`Setup::from_bytes`] run the same
//! checks, so holding one means the parameters are sane. Canonical encoding (big-endian):
//!
//! ```text
//! proto u16 ‖ version u16 ‖ iid [32] ‖ n u16 ‖ t u16 ‖ count u16
//!   ‖ count × (index u16 ‖ identity key (kind u8 ‖ key))      indices strictly ascending
//!   ‖ extra_len u32 ‖ extra [extra_len]                        ≤ MAX_EXTRA_LEN
//!   ‖ ttl_secs u32                                             1 ..= MAX_TTL_SECS
//! ```
//!
//! `setup_hash = TH("setup", canonical bytes)`.
//!
//! Threshold and membership rules per protocol:
//! * [`ProtocolId::Dkg`]: `2 ≤ t ≤ n ≤ 255`; the participants are exactly indices `1..=n`.
//! * [`ProtocolId::Sign`]: `2 ≤ t ≤ n ≤ 255` (the key's parameters); the participants are the
//!   signing set `S ⊆ {1..n}` with `t ≤ |S|`.
//! * [`ProtocolId::Reshare`]: `n, t` are the *new* committee's (`2 ≤ t ≤ n ≤ 255`); participants
//!   are everyone involved (old ∪ new) under distinct transport indices `1..=255`, at least 2. The
//!   committee roles and their indices are reshare-specific fields in `extra`.
//! * [`ProtocolId::Import`], [`ProtocolId::Export`] (placeholders): `2 ≤ t ≤ n ≤ 255` and at least
//!   2 participants with distinct indices `1..=255`.
//!
//! Always: indices distinct and in `1..=255` (the encoding requires ascending order), identity keys
//! valid and pairwise distinct.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::encoding::Reader;
use crate::identity::{IdentityError, IdentityPublicKey, MAX_IDENTITY_KEY_LEN};
use crate::transcript::{Tag, th};

/// A party's index (`1..=255`); its Shamir evaluation point is `x_i = i`.
pub type PartyIndex = u16;

/// The spec version this build implements (`setup.version` must equal it).
pub const SPEC_VERSION: u16 = 1;
/// Largest number of parties.
pub const MAX_PARTIES: u16 = 255;
/// Largest protocol-specific `extra` field.
pub const MAX_EXTRA_LEN: usize = 64 * 1024;
/// Longest allowed TTL (seven days).
pub const MAX_TTL_SECS: u32 = 7 * 24 * 3600;
/// Fixed-size part of the encoding: proto, version, iid, n, t, count, extra_len, ttl.
const FIXED_LEN: usize = 2 + 2 + 32 + 2 + 2 + 2 + 4 + 4;
/// Upper bound of an encoded setup; longer input is rejected before parsing.
pub const MAX_SETUP_LEN: usize =
    FIXED_LEN + MAX_PARTIES as usize * (2 + MAX_IDENTITY_KEY_LEN) + MAX_EXTRA_LEN;

/// Which protocol an execution runs (`u16` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum ProtocolId {
    /// Distributed key generation (§2).
    Dkg = 1,
    /// Signing / presigning (§3).
    Sign = 2,
    /// Refresh, recovery and quorum change (§4).
    Reshare = 3,
    /// Key import (§6.1).
    Import = 4,
    /// Key export (§6.2).
    Export = 5,
}

impl ProtocolId {
    /// The most message rounds one run of this protocol has (its TTLs are sized from it).
    pub fn max_rounds(self) -> u32 {
        match self {
            ProtocolId::Dkg | ProtocolId::Reshare => 4,
            // Presign (3) and its online finish (2) are separate runs; a full sign has 4.
            ProtocolId::Sign => 4,
            // Import rounds 1–2, then the 4 rounds of its built-in refresh.
            ProtocolId::Import => 6,
            ProtocolId::Export => 2,
        }
    }

    /// The wire value.
    pub fn to_u16(self) -> u16 {
        self as u16
    }

    /// A short lower-case name (`dkg`, `sign`, `reshare`, `import`, `export`), e.g. for logs
    /// and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dkg => "dkg",
            Self::Sign => "sign",
            Self::Reshare => "reshare",
            Self::Import => "import",
            Self::Export => "export",
        }
    }

    /// Parses a wire value.
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Dkg,
            2 => Self::Sign,
            3 => Self::Reshare,
            4 => Self::Import,
            5 => Self::Export,
            _ => return None,
        })
    }
}

/// Why a setup was rejected. Setups come from the application, so no party is blamed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The encoding is truncated or structurally broken.
    #[error("malformed setup: {0}")]
    Malformed(&'static str),
    /// Bytes remain after the TTL.
    #[error("trailing bytes after setup")]
    TrailingBytes,
    /// The encoding (or a field) exceeds its bound.
    #[error("setup too large: {len} bytes, limit {max}")]
    Oversize {
        /// Received length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Unknown protocol id.
    #[error("unknown protocol id {0}")]
    UnknownProtocol(u16),
    /// Spec version not implemented by this build.
    #[error("unsupported spec version {0}")]
    UnsupportedVersion(u16),
    /// Threshold or party count out of range for the protocol.
    #[error("threshold out of range: t = {t}, n = {n}, participants = {count}")]
    Threshold {
        /// Threshold.
        t: u16,
        /// Number of key holders.
        n: u16,
        /// Number of listed participants.
        count: usize,
    },
    /// A party index is 0, above 255, or above `n` where the protocol requires `≤ n`.
    #[error("party index {0} out of range")]
    IndexOutOfRange(PartyIndex),
    /// Two participants share an index (or the encoding is not in ascending order).
    #[error("duplicate or unordered party index {0}")]
    DuplicateIndex(PartyIndex),
    /// Two participants share an identity key.
    #[error("identity key of party {0} is used twice")]
    DuplicateIdentity(PartyIndex),
    /// An identity key does not decode.
    #[error("invalid identity key for party {index}: {source}")]
    InvalidIdentity {
        /// The participant's index.
        index: PartyIndex,
        /// What is wrong with it.
        source: IdentityError,
    },
    /// TTL is zero or above [`MAX_TTL_SECS`].
    #[error("TTL {0} s out of range")]
    Ttl(u32),
    /// Our own identity is not among the participants.
    #[error("own identity is not a participant")]
    NotAParticipant,
}

/// A validated setup message. Immutable; all fields are public through accessors.
#[derive(Clone, PartialEq, Eq)]
pub struct Setup {
    protocol: ProtocolId,
    version: u16,
    iid: [u8; 32],
    n: u16,
    t: u16,
    participants: Vec<(PartyIndex, IdentityPublicKey)>,
    extra: Vec<u8>,
    ttl_secs: u32,
    hash: [u8; 32],
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("protocol", &self.protocol)
            .field("version", &self.version)
            .field("iid", &hex::encode(self.iid))
            .field("n", &self.n)
            .field("t", &self.t)
            .field("participants", &self.participants)
            .field("extra_len", &self.extra.len())
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

impl Setup {
    /// Builds and validates a setup for [`SPEC_VERSION`]. `participants` may be in any order; it
    /// is sorted by index.
    ///
    /// # Errors
    /// Any [`SetupError`] validation failure (see the module docs).
    pub fn new(
        protocol: ProtocolId,
        iid: [u8; 32],
        n: u16,
        t: u16,
        mut participants: Vec<(PartyIndex, IdentityPublicKey)>,
        extra: Vec<u8>,
        ttl_secs: u32,
    ) -> Result<Self, SetupError> {
        participants.sort_by_key(|(i, _)| *i);
        let version = SPEC_VERSION;
        Self { protocol, version, iid, n, t, participants, extra, ttl_secs, hash: [0; 32] }
            .validated()
    }

    /// Checks the fields of a setup built (or decoded) without its hash and sets the hash.
    fn validated(mut self) -> Result<Self, SetupError> {
        if self.version != SPEC_VERSION {
            return Err(SetupError::UnsupportedVersion(self.version));
        }
        if self.extra.len() > MAX_EXTRA_LEN {
            return Err(SetupError::Oversize { len: self.extra.len(), max: MAX_EXTRA_LEN });
        }
        if self.ttl_secs == 0 || self.ttl_secs > MAX_TTL_SECS {
            return Err(SetupError::Ttl(self.ttl_secs));
        }
        check_members(self.protocol, self.n, self.t, &self.participants)?;
        self.hash = th(Tag::Setup, &[&self.to_bytes()]);
        Ok(self)
    }

    /// The canonical encoding (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let keys: usize = self.participants.iter().map(|(_, k)| 2 + k.encoded_len()).sum();
        let mut out = Vec::with_capacity(FIXED_LEN + keys + self.extra.len());
        out.extend_from_slice(&self.protocol.to_u16().to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.iid);
        out.extend_from_slice(&self.n.to_be_bytes());
        out.extend_from_slice(&self.t.to_be_bytes());
        // Validation bounds the count by 255 and the extra length by 64 KiB.
        out.extend_from_slice(&(self.participants.len() as u16).to_be_bytes());
        for (i, k) in &self.participants {
            out.extend_from_slice(&i.to_be_bytes());
            out.extend_from_slice(&k.to_bytes());
        }
        out.extend_from_slice(&(self.extra.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.extra);
        out.extend_from_slice(&self.ttl_secs.to_be_bytes());
        out
    }

    /// Strictly decodes and validates a canonical encoding.
    ///
    /// # Errors
    /// [`SetupError::Oversize`] before parsing if the input exceeds [`MAX_SETUP_LEN`];
    /// [`SetupError::Malformed`] / [`SetupError::TrailingBytes`] for broken structure; any
    /// validation failure otherwise.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SetupError> {
        if bytes.len() > MAX_SETUP_LEN {
            return Err(SetupError::Oversize { len: bytes.len(), max: MAX_SETUP_LEN });
        }
        let trunc = |_| SetupError::Malformed("truncated");
        let mut r = Reader::new(bytes);
        let proto = r.u16().map_err(trunc)?;
        let protocol = ProtocolId::from_u16(proto).ok_or(SetupError::UnknownProtocol(proto))?;
        let version = r.u16().map_err(trunc)?;
        if version != SPEC_VERSION {
            return Err(SetupError::UnsupportedVersion(version));
        }
        let iid = r.array::<32>().map_err(trunc)?;
        let n = r.u16().map_err(trunc)?;
        let t = r.u16().map_err(trunc)?;
        let count = r.u16().map_err(trunc)?;
        if count > MAX_PARTIES {
            return Err(SetupError::Oversize { len: usize::from(count), max: 255 });
        }
        let mut participants = Vec::with_capacity(usize::from(count));
        let mut prev: PartyIndex = 0;
        for _ in 0..count {
            let index = r.u16().map_err(trunc)?;
            if index <= prev {
                return Err(SetupError::DuplicateIndex(index));
            }
            prev = index;
            let key = IdentityPublicKey::read(&mut r)
                .map_err(|source| SetupError::InvalidIdentity { index, source })?;
            participants.push((index, key));
        }
        let extra_len = r.u32().map_err(trunc)? as usize;
        if extra_len > MAX_EXTRA_LEN {
            return Err(SetupError::Oversize { len: extra_len, max: MAX_EXTRA_LEN });
        }
        let extra = r.take(extra_len).map_err(trunc)?.to_vec();
        let ttl_secs = r.u32().map_err(trunc)?;
        r.finish().map_err(|_| SetupError::TrailingBytes)?;
        Self { protocol, version, iid, n, t, participants, extra, ttl_secs, hash: [0; 32] }
            .validated()
    }

    /// `setup_hash = TH("setup", canonical bytes)`.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The protocol.
    pub fn protocol(&self) -> ProtocolId {
        self.protocol
    }

    /// The spec version.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The instance id.
    pub fn iid(&self) -> &[u8; 32] {
        &self.iid
    }

    /// Number of key holders (for Reshare: of the new committee).
    pub fn n(&self) -> u16 {
        self.n
    }

    /// Threshold (for Reshare: of the new committee).
    pub fn t(&self) -> u16 {
        self.t
    }

    /// The participants, ascending by index.
    pub fn participants(&self) -> &[(PartyIndex, IdentityPublicKey)] {
        &self.participants
    }

    /// Protocol-specific canonical fields (opaque here).
    pub fn extra(&self) -> &[u8] {
        &self.extra
    }

    /// Time to live of the execution's messages, in seconds.
    pub fn ttl_secs(&self) -> u32 {
        self.ttl_secs
    }

    /// The index under which `key` participates, if it does.
    pub fn my_index(&self, key: &IdentityPublicKey) -> Option<PartyIndex> {
        self.participants.iter().find(|(_, k)| k == key).map(|(i, _)| *i)
    }

    /// Like [`Self::my_index`], as the check every party must run before any cryptography.
    ///
    /// # Errors
    /// [`SetupError::NotAParticipant`] if `key` is not listed.
    pub fn require_member(&self, key: &IdentityPublicKey) -> Result<PartyIndex, SetupError> {
        self.my_index(key).ok_or(SetupError::NotAParticipant)
    }

    /// The identity key of participant `index`.
    pub fn identity_of(&self, index: PartyIndex) -> Option<&IdentityPublicKey> {
        self.participants.iter().find(|(i, _)| *i == index).map(|(_, k)| k)
    }
}

fn check_members(
    protocol: ProtocolId,
    n: u16,
    t: u16,
    participants: &[(PartyIndex, IdentityPublicKey)],
) -> Result<(), SetupError> {
    let count = participants.len();
    let bad_threshold = Err(SetupError::Threshold { t, n, count });
    let sizes_ok = 2 <= t && t <= n && n <= MAX_PARTIES;
    if !sizes_ok || !(2..=usize::from(MAX_PARTIES)).contains(&count) {
        return bad_threshold;
    }
    let max_index = match protocol {
        ProtocolId::Dkg | ProtocolId::Sign => n,
        ProtocolId::Reshare | ProtocolId::Import | ProtocolId::Export => MAX_PARTIES,
    };
    match protocol {
        ProtocolId::Dkg if count != usize::from(n) => return bad_threshold,
        ProtocolId::Sign if count < usize::from(t) || count > usize::from(n) => {
            return bad_threshold;
        }
        _ => {}
    }
    let mut keys = HashSet::with_capacity(count);
    let mut prev: PartyIndex = 0;
    for (index, key) in participants {
        if *index == 0 || *index > max_index {
            return Err(SetupError::IndexOutOfRange(*index));
        }
        if *index <= prev {
            return Err(SetupError::DuplicateIndex(*index));
        }
        prev = *index;
        key.validate().map_err(|source| SetupError::InvalidIdentity { index: *index, source })?;
        if !keys.insert(*key) {
            return Err(SetupError::DuplicateIdentity(*index));
        }
    }
    // For DKG, count == n with distinct ascending indices in 1..=n means exactly {1..n}.
    Ok(())
}

/// Why an instance id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The instance id was used before (`protocols.md` §1.4, ToB-9).
    #[error("instance id already used")]
    Reused,
    /// The guard's storage failed; treat as a refusal.
    #[error("replay guard storage failed: {0}")]
    Storage(String),
}

/// Remembers used instance ids and refuses a repeat. Keep one guard per key share (and, for
/// DKG, per identity); a production implementation persists the set.
pub trait ReplayGuard {
    /// Records `iid`, or fails if it was recorded before. Must be atomic (check and insert).
    ///
    /// # Errors
    /// [`ReplayError::Reused`] for a repeat; [`ReplayError::Storage`] if the store fails.
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError>;
}

/// An in-memory [`ReplayGuard`] (tests, single-process tools). Not persistent.
#[derive(Debug, Default)]
pub struct MemoryReplayGuard {
    seen: Mutex<HashSet<[u8; 32]>>,
}

impl MemoryReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        let mut seen =
            self.seen.lock().map_err(|_| ReplayError::Storage("lock poisoned".into()))?;
        if seen.insert(*iid) { Ok(()) } else { Err(ReplayError::Reused) }
    }
}

#[cfg(test)]
#[path = "setup_tests.rs"]
mod tests;
