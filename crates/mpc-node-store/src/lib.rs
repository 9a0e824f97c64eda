//! Storage of the MPC node (`mpc-node`): key records and their lifecycle, key shares encrypted at
//! rest, presignatures, used instance ids and ban records.
//!
//! The [`Store`] trait is synchronous and object-safe (`Arc<dyn Store>`); the node calls it from
//! `tokio::task::spawn_blocking`. Two implementations:
//!
//! - [`SqliteStore`]: the embedded default, one SQLite file (WAL mode) under the data directory.
//!   Shares and presignatures are encrypted with envelope encryption: a random data key per key
//!   share, wrapped by a key-encryption key derived from the master password with Argon2id. The
//!   AEAD associated data binds application, key name, player and epoch, so a row moved to another
//!   key or restored from an older epoch fails to decrypt. See `docs/node-store.md`.
//! - [`MemoryStore`]: same semantics in memory, without encryption, for tests.
//!
//! Both implement [`dkls23_core::setup::ReplayGuard`] through [`Store::record_iid`], so the node
//! can hand the store to `run_dkg` / `run_sign` as the replay guard.
//!
//! ```
//! use std::sync::Arc;
//! use mpc_node_store::{CreateOutcome, OpenOptions, SqliteStore, Store, StoreError};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let path = dir.path().join("node.db");
//! // `SqliteStore::open(&path, password)` in production (Argon2id with m = 19 MiB, t = 2).
//! let opts = OpenOptions::insecure_for_tests();
//! let store: Arc<dyn Store> = Arc::new(SqliteStore::open_with(&path, b"master password", &opts)?);
//!
//! assert_eq!(store.create_pending("app", "wallet-1", 2, 3, 1)?, CreateOutcome::Created);
//! let share = b"KeyShare::to_bytes() output";
//! store.mark_ready("app", "wallet-1", share, 0, [2; 33], [0; 32], [1; 32])?;
//! assert_eq!(&**store.load_share("app", "wallet-1")?, share);
//!
//! // Replay guard for the protocol runner.
//! let guard: &dyn Store = &*store;
//! dkls23_core::setup::ReplayGuard::check_and_record(guard, &[7; 32])?;
//! assert!(!store.record_iid(&[7; 32])?);
//!
//! store.delete("app", "wallet-1")?;
//! assert!(matches!(store.load_share("app", "wallet-1"), Err(StoreError::NotFound)));
//! drop(store);
//! assert!(matches!(
//!     SqliteStore::open_with(&path, b"wrong", &opts),
//!     Err(StoreError::WrongPassword)
//! ));
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use dkls23_core::setup::{ReplayError, ReplayGuard};
use zeroize::Zeroizing;

mod envelope;
mod memory;
mod rules;
mod sqlite;

pub use envelope::KdfParams;
pub use memory::MemoryStore;
pub use rules::{MAX_NAME_LEN, MAX_REASON_LEN, is_valid_app, is_valid_name};
pub use sqlite::{OpenOptions, SqliteStore};

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

/// Result of [`Store::create_pending`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// A new PENDING record was inserted.
    Created,
    /// A record with this (app, key) already existed; it is returned unchanged.
    Existing(KeyRecord),
}

/// Store failures. `Display` never contains secrets or SQL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The master password does not open this database.
    #[error("wrong master password")]
    WrongPassword,
    /// No such key (or no share / presignature where one was required).
    #[error("not found")]
    NotFound,
    /// The request conflicts with the stored state or the store's rules (wrong status, stale
    /// epoch, duplicate presignature id, invalid name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data failed authentication or is malformed (tampering, swapped rows, bad schema).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// File system or operating-system failure (including the random number generator).
    #[error("I/O error: {0}")]
    Io(String),
    /// The database engine failed (busy, full, constraint, ...).
    #[error("database error: {0}")]
    Database(String),
}

/// The node's storage. Synchronous; every method is one transaction.
pub trait Store: Send + Sync + 'static {
    /// Inserts a PENDING record unless (app,key) exists; returns the existing record otherwise.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] for an invalid app/key name or `threshold` not in `1..=parties`.
    fn create_pending(
        &self,
        app: &str,
        key: &str,
        threshold: u16,
        parties: u16,
        player: u16,
    ) -> Result<CreateOutcome, StoreError>;

    /// One transaction: encrypt + store the share (new random data key wrapped by the KEK,
    /// AEAD associated data = app ‖ key ‖ player ‖ epoch), set READY and the public fields.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record; [`StoreError::Conflict`] unless it is PENDING.
    #[allow(clippy::too_many_arguments)]
    fn mark_ready(
        &self,
        app: &str,
        key: &str,
        share: &[u8],
        epoch: u32,
        public_key: [u8; 33],
        chain_code: [u8; 32],
        core_key_id: [u8; 32],
    ) -> Result<(), StoreError>;

    /// Sets a PENDING (or already failed) record to ERROR with `reason` (truncated to
    /// [`MAX_REASON_LEN`] bytes).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record; [`StoreError::Conflict`] for a READY key.
    fn mark_error(&self, app: &str, key: &str, reason: &str) -> Result<(), StoreError>;

    /// Sets every PENDING record (of every application) to ERROR with `reason`: at start-up,
    /// no session of this node is running, so a PENDING key was interrupted. Returns how many.
    ///
    /// # Errors
    /// Database failures only.
    fn fail_pending(&self, reason: &str) -> Result<u64, StoreError>;

    /// The record of (app, key), if any.
    ///
    /// # Errors
    /// Database failures only.
    fn get(&self, app: &str, key: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// All records of `app`, ordered by key name.
    ///
    /// # Errors
    /// Database failures only.
    fn list(&self, app: &str) -> Result<Vec<KeyRecord>, StoreError>;

    /// Decrypts the current share (zeroized buffer).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a READY record; [`StoreError::Corrupt`] if the stored
    /// share fails authentication.
    fn load_share(&self, app: &str, key: &str) -> Result<Zeroizing<Vec<u8>>, StoreError>;

    /// Refresh/reshare: atomically replace the share with a new epoch (new data key), drop all
    /// presignatures, bans and the staged share of the key. `player`/threshold/parties may change on reshare.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record; [`StoreError::Conflict`] unless the key is
    /// READY and `epoch` is greater than the current epoch, or for `threshold` not in
    /// `1..=parties`.
    #[allow(clippy::too_many_arguments)]
    fn replace_share(
        &self,
        app: &str,
        key: &str,
        share: &[u8],
        epoch: u32,
        player: u16,
        threshold: u16,
        parties: u16,
    ) -> Result<(), StoreError>;

    /// Keeps `share` (epoch `epoch`, produced by the reshare session `setup`) as the key's
    /// staged share, replacing an earlier one. [`Store::replace_share`] and [`Store::delete`]
    /// drop it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record; [`StoreError::Conflict`] unless the key is
    /// READY and `epoch` is greater than its current epoch.
    fn stage_share(
        &self,
        app: &str,
        key: &str,
        epoch: u32,
        setup: &[u8],
        share: &[u8],
    ) -> Result<(), StoreError>;

    /// The key's staged share, if any (decrypted).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it fails authentication; database failures.
    fn staged_share(&self, app: &str, key: &str) -> Result<Option<StagedShare>, StoreError>;

    /// Drops the key's staged share (no error without one).
    ///
    /// # Errors
    /// Database failures only.
    fn clear_staged(&self, app: &str, key: &str) -> Result<(), StoreError>;

    /// `(app, key)` of every key with a staged share (checked at start-up).
    ///
    /// # Errors
    /// Database failures only.
    fn list_staged(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Crypto-shredding: delete data key, ciphertext, presignatures, bans, record.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record.
    fn delete(&self, app: &str, key: &str) -> Result<(), StoreError>;

    /// Records a used instance id; Ok(false) if it was already used (replay).
    ///
    /// # Errors
    /// Database failures only.
    fn record_iid(&self, iid: &[u8; 32]) -> Result<bool, StoreError>;

    /// Records that `party` is banned from sessions of (app, key). Idempotent: a second ban of
    /// the same party keeps the first reason.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record.
    fn record_ban(&self, app: &str, key: &str, party: u16, reason: &str) -> Result<(), StoreError>;

    /// Banned parties of (app, key), ascending; empty for an unknown key.
    ///
    /// # Errors
    /// Database failures only.
    fn bans(&self, app: &str, key: &str) -> Result<Vec<u16>, StoreError>;

    /// Stores a presignature (encrypted like shares, bound to the key's current epoch).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a record; [`StoreError::Conflict`] if the key is not
    /// READY, `id` is invalid (same rules as key names) or already present.
    fn put_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError>;

    /// Deletes and returns a presignature in one transaction (Fresh → Consumed), so a
    /// presignature can never be returned twice. `Ok(None)` if it does not exist (any more).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it fails authentication (it is then left in place).
    fn take_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError>;

    /// A presignature without taking it (to check that a request matches it before it is
    /// consumed). `Ok(None)` if it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if it fails authentication.
    fn peek_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError>;

    /// Ids of the stored presignatures of (app, key), ascending.
    ///
    /// # Errors
    /// Database failures only.
    fn list_presignatures(&self, app: &str, key: &str) -> Result<Vec<String>, StoreError>;
}

fn guard_result(r: Result<bool, StoreError>) -> Result<(), ReplayError> {
    match r {
        Ok(true) => Ok(()),
        Ok(false) => Err(ReplayError::Reused),
        Err(e) => Err(ReplayError::Storage(e.to_string())),
    }
}

/// Lets `&dyn Store` (e.g. `&*arc`) be passed as the runner's replay guard.
impl ReplayGuard for dyn Store {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        guard_result(self.record_iid(iid))
    }
}

impl ReplayGuard for MemoryStore {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        guard_result(self.record_iid(iid))
    }
}

/// An owned replay guard over a shared store (for spawned tasks holding an `Arc<dyn Store>`).
#[derive(Clone)]
pub struct StoreReplayGuard(pub Arc<dyn Store>);

impl std::fmt::Debug for StoreReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreReplayGuard")
    }
}

impl ReplayGuard for StoreReplayGuard {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        guard_result(self.0.record_iid(iid))
    }
}

/// Current time in unix seconds (0 if the clock is before 1970).
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
