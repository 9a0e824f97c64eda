//! Key records and their lifecycle states, and the inputs that change them.

use zeroize::Zeroizing;

/// Application id (tenant).
pub type AppId = String;
/// The SDK's key id, unique per application (1..=128 characters of `[A-Za-z0-9._-]`).
pub type KeyName = String;

/// Lifecycle state of a key record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    /// Generation started; no share yet.
    Pending,
    /// The share is stored and usable.
    Ready,
    /// Generation failed, with the reason.
    Error(String),
}

/// The public part of a key record (never any secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Application (tenant) owning the key.
    pub app: AppId,
    /// Key name, unique per application.
    pub key: KeyName,
    /// Lifecycle state.
    pub status: KeyStatus,
    /// Signing threshold t.
    pub threshold: u16,
    /// Number of parties n.
    pub parties: u16,
    /// This node's party index in the key.
    pub player: u16,
    /// Share epoch (incremented by refresh / reshare).
    pub epoch: u32,
    /// Compressed SEC1 public key, once READY.
    pub public_key: Option<[u8; 33]>,
    /// BIP32 chain code, once READY.
    pub chain_code: Option<[u8; 32]>,
    /// `dkls23_core::keyshare::KeyShare::key_id()`, once READY.
    pub core_key_id: Option<[u8; 32]>,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last change, unix seconds.
    pub updated_at: i64,
}

/// A refresh/reshare's new share, kept between this node's acknowledgement and the commit
/// (see `dkls23_runner::StageShare`): it becomes the key's share once the other members
/// proved they hold theirs, or is dropped when a later refresh, reshare or delete replaces it.
#[derive(Clone, PartialEq, Eq)]
pub struct StagedShare {
    /// The new share's epoch.
    pub epoch: u32,
    /// The encoded setup of the reshare session that produced it.
    pub setup: Vec<u8>,
    /// The encoded new share.
    pub share: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for StagedShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedShare")
            .field("epoch", &self.epoch)
            .field("setup", &format_args!("{} bytes", self.setup.len()))
            .field("share", &"<redacted>")
            .finish()
    }
}

/// Result of [`Store::create_pending`](crate::Store::create_pending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// A new PENDING record was inserted.
    Created,
    /// A record with this (app, key) already existed; it is returned unchanged.
    Existing(KeyRecord),
}

/// What [`Store::mark_ready`](crate::Store::mark_ready) stores for a PENDING key: its first
/// share and the key's public fields.
#[derive(Clone, Copy)]
pub struct ReadyKey<'a> {
    /// The encoded share (sealed before it is written).
    pub share: &'a [u8],
    /// The share's epoch.
    pub epoch: u32,
    /// Compressed SEC1 public key.
    pub public_key: [u8; 33],
    /// BIP32 chain code.
    pub chain_code: [u8; 32],
    /// `dkls23_core::keyshare::KeyShare::key_id()`.
    pub core_key_id: [u8; 32],
}

impl std::fmt::Debug for ReadyKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyKey")
            .field("share", &"<redacted>")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// What [`Store::replace_share`](crate::Store::replace_share) stores after a refresh or
/// reshare: the new share and the key's shape at its new epoch.
#[derive(Clone, Copy)]
pub struct NewShare<'a> {
    /// The encoded new share (sealed before it is written).
    pub share: &'a [u8],
    /// The new epoch (greater than the current one).
    pub epoch: u32,
    /// This node's party index in the key from now on.
    pub player: u16,
    /// Signing threshold t from now on.
    pub threshold: u16,
    /// Number of parties n from now on.
    pub parties: u16,
}

impl std::fmt::Debug for NewShare<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewShare")
            .field("share", &"<redacted>")
            .field("epoch", &self.epoch)
            .field("player", &self.player)
            .field("threshold", &self.threshold)
            .field("parties", &self.parties)
            .finish()
    }
}

/// Stored data that does not decode as `what`.
pub(crate) fn corrupt(what: &str) -> crate::StoreError {
    crate::StoreError::Corrupt(format!("malformed {what}"))
}

/// A fixed-size column (`None` stays `None`; another length is corruption).
pub(crate) fn fixed<const N: usize>(
    v: Option<Vec<u8>>,
    what: &str,
) -> Result<Option<[u8; N]>, crate::StoreError> {
    v.map(|b| <[u8; N]>::try_from(b.as_slice()).map_err(|_| corrupt(what))).transpose()
}

/// The status column (`PENDING` / `READY` / `ERROR`) with the error column.
pub(crate) fn decode_status(
    status: &str,
    error: Option<String>,
) -> Result<KeyStatus, crate::StoreError> {
    match status {
        "PENDING" => Ok(KeyStatus::Pending),
        "READY" => Ok(KeyStatus::Ready),
        "ERROR" => Ok(KeyStatus::Error(error.unwrap_or_default())),
        _ => Err(corrupt("key status")),
    }
}

/// Where an asynchronous operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationState {
    /// Started, no outcome yet.
    Running,
    /// Ended with an answer.
    Succeeded,
    /// Ended with an error (also: interrupted by a restart of the node that ran it).
    Failed,
}

impl OperationState {
    /// The stored (and API) name: `running`, `succeeded`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, crate::StoreError> {
        match s {
            "running" => Ok(Self::Running),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            _ => Err(corrupt("operation state")),
        }
    }
}

/// An asynchronous operation of an application, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRecord {
    /// The operation id (unique per application).
    pub id: String,
    /// What runs: `generate`, `sign`, `presign`, …
    pub operation: String,
    /// Where it stands.
    pub state: OperationState,
    /// Once ended: the HTTP status the synchronous call would have answered.
    pub http_status: Option<u16>,
    /// Once ended: the JSON answer, or the JSON error body.
    pub result: Option<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// Seconds since the Unix epoch.
    pub updated_at: i64,
}

/// How an operation ended: [`OperationState::Succeeded`] or [`OperationState::Failed`], the HTTP
/// status and the JSON body.
#[derive(Debug, Clone, Copy)]
pub struct OperationEnd<'a> {
    /// Succeeded or failed.
    pub succeeded: bool,
    /// The HTTP status of the answer.
    pub http_status: u16,
    /// The JSON answer or error body.
    pub result: &'a str,
}
