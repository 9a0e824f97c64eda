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
//! use mpc_node_store::{CreateOutcome, OpenOptions, ReadyKey, SqliteStore, Store, StoreError};
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
//! let (public_key, chain_code, core_key_id) = ([2; 33], [0; 32], [1; 32]);
//! let ready = ReadyKey { share, epoch: 0, public_key, chain_code, core_key_id };
//! store.mark_ready("app", "wallet-1", &ready)?;
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

mod clock;
mod envelope;
mod error;
mod kek;
mod memory;
mod postgres;
mod record;
mod rules;
mod sqlite;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use envelope::KdfParams;
pub use error::StoreError;
pub use memory::MemoryStore;
pub use postgres::{PgOptions, PgStore, check_postgres_url};
pub use record::{
    AppId, CreateOutcome, KeyName, KeyRecord, KeyStatus, NewShare, OperationEnd, OperationRecord,
    OperationState, ReadyKey, StagedShare,
};
pub use rules::{MAX_NAME_LEN, MAX_REASON_LEN, is_valid_app, is_valid_name};
pub use sqlite::{OpenOptions, SqliteStore};
pub use store::{Store, StoreReplayGuard};
