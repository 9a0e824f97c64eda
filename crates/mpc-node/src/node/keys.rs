//! Per-key state kept in memory: the key locks (signing shares a key, generation, refresh,
//! reshare and delete take it alone), the cache of decoded shares, and which keys have a
//! staged share waiting to be confirmed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use dkls23_core::KeyShare;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// (application, key name).
pub(crate) type KeyRef = (String, String);

/// The key `key` of application `app`.
pub(crate) fn key_ref(app: &str, key: &str) -> KeyRef {
    (app.to_owned(), key.to_owned())
}

/// Most decoded shares kept in memory.
const SHARE_CACHE_ENTRIES: usize = 1024;

/// Past this many locks, the ones nobody holds are dropped.
const MAX_IDLE_LOCKS: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which version of a key a cached share belongs to: the record's epoch, last change and key
/// id. Another process sharing the store (a replica) may refresh, delete or recreate a key
/// without this one knowing; every one of those changes the stamp of the record it reads
/// before using the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShareStamp {
    pub(crate) epoch: u32,
    pub(crate) updated_at: i64,
    pub(crate) key_id: Option<[u8; 32]>,
}

impl ShareStamp {
    pub(crate) fn of(record: &mpc_node_store::KeyRecord) -> Self {
        Self { epoch: record.epoch, updated_at: record.updated_at, key_id: record.core_key_id }
    }
}

/// The key locks and the decoded shares by key (stamp and share). The cache is bounded and
/// invalidated on every change. Bans are never cached: they are read from the store for every
/// session, so a ban that was written (by this process or a replica) is enforced by the next
/// request, whatever was cached.
#[derive(Default)]
pub(crate) struct KeyCache {
    locks: Mutex<HashMap<KeyRef, Arc<RwLock<()>>>>,
    shares: Mutex<HashMap<KeyRef, (ShareStamp, Arc<KeyShare>)>>,
}

impl KeyCache {
    fn key_lock(&self, app: &str, key: &str) -> Arc<RwLock<()>> {
        let mut m = lock(&self.locks);
        if m.len() > MAX_IDLE_LOCKS {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        m.entry(key_ref(app, key)).or_default().clone()
    }

    /// The key's lock, shared (signing, presigning, export).
    pub(crate) async fn read_lock(&self, app: &str, key: &str) -> OwnedRwLockReadGuard<()> {
        self.key_lock(app, key).read_owned().await
    }

    /// The key's lock, exclusive (generation, refresh, reshare, delete).
    pub(crate) async fn write_lock(&self, app: &str, key: &str) -> OwnedRwLockWriteGuard<()> {
        self.key_lock(app, key).write_owned().await
    }

    /// The cached share of `id` if it is the version `stamp`.
    pub(crate) fn cached_share(&self, id: &KeyRef, stamp: ShareStamp) -> Option<Arc<KeyShare>> {
        lock(&self.shares).get(id).filter(|(s, _)| *s == stamp).map(|(_, s)| s.clone())
    }

    /// Caches `share` as the share of `id` at version `stamp`.
    pub(crate) fn cache_share(&self, id: KeyRef, stamp: ShareStamp, share: Arc<KeyShare>) {
        let mut m = lock(&self.shares);
        if m.len() >= SHARE_CACHE_ENTRIES {
            m.clear();
        }
        m.insert(id, (stamp, share));
    }

    /// Drops the cached share of (app, key).
    pub(crate) fn forget_share(&self, app: &str, key: &str) {
        lock(&self.shares).remove(&key_ref(app, key));
    }
}

/// Keys with a staged share, and when confirming it last failed (`None`: not tried yet).
#[derive(Default)]
pub(crate) struct StagedKeys(Mutex<HashMap<KeyRef, Option<Instant>>>);

impl StagedKeys {
    /// Marks `id` as having a staged share that was not tried yet.
    pub(crate) fn mark(&self, id: KeyRef) {
        lock(&self.0).insert(id, None);
    }

    /// Whether `id` has a staged share.
    pub(crate) fn contains(&self, id: &KeyRef) -> bool {
        lock(&self.0).contains_key(id)
    }

    /// `None` without a staged share, else when confirming it last failed.
    pub(crate) fn last_failure(&self, id: &KeyRef) -> Option<Option<Instant>> {
        lock(&self.0).get(id).copied()
    }

    /// Nothing is staged for `id` any more.
    pub(crate) fn settled(&self, id: &KeyRef) {
        lock(&self.0).remove(id);
    }

    /// Confirming the staged share of `id` failed now.
    pub(crate) fn failed(&self, id: KeyRef) {
        lock(&self.0).insert(id, Some(Instant::now()));
    }
}
