//! What an embedded party persists, behind traits the app implements over its secure storage:
//! key shares ([`KeyStore`]), bans ([`BanStore`]), presignatures ([`PresignatureStore`]) and the
//! generation counter that detects a restored presignature store ([`GenerationCounter`]); and
//! in-memory implementations for tests and examples.

#[cfg(any(test, feature = "testing"))]
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Mutex;

use zeroize::Zeroizing;

/// Where the embedded party keeps its shares (e.g. the phone's keychain).
pub trait KeyStore: Send + Sync {
    /// Stores the serialised share of `key_id` (replacing any previous one).
    ///
    /// # Errors
    /// A description of the storage failure.
    fn put(&self, key_id: &str, share: &[u8]) -> Result<(), String>;
    /// The serialised share of `key_id`, if any.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn get(&self, key_id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String>;
    /// Deletes the share of `key_id`.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn delete(&self, key_id: &str) -> Result<(), String>;
}

/// Where the embedded party keeps its bans (the phone's keychain / keystore, next to the
/// shares). `record` must be durable when it returns: a lost ban re-opens the attack.
pub trait BanStore: Send + Sync {
    /// Records that `party` must never sign with `key_id`'s current OT material.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn record(&self, key_id: &str, party: u16, reason: &str) -> Result<(), String>;
    /// The banned parties of `key_id`, ascending.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn banned(&self, key_id: &str) -> Result<Vec<u16>, String>;
    /// Forgets the bans of `key_id` (after a refresh or reshare replaced all OT material, or when
    /// the share is deleted).
    ///
    /// # Errors
    /// A description of the storage failure.
    fn clear(&self, key_id: &str) -> Result<(), String>;
}

/// A [`BanStore`] in memory: for tests only (bans must survive restarts on a device).
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Default)]
pub struct MemoryBanStore {
    bans: Mutex<HashMap<String, BTreeMap<u16, String>>>,
}

#[cfg(any(test, feature = "testing"))]
impl BanStore for MemoryBanStore {
    fn record(&self, key_id: &str, party: u16, reason: &str) -> Result<(), String> {
        let mut m = self.bans.lock().map_err(|_| "lock poisoned".to_owned())?;
        m.entry(key_id.to_owned()).or_default().entry(party).or_insert_with(|| reason.to_owned());
        Ok(())
    }
    fn banned(&self, key_id: &str) -> Result<Vec<u16>, String> {
        let m = self.bans.lock().map_err(|_| "lock poisoned".to_owned())?;
        Ok(m.get(key_id).map(|b| b.keys().copied().collect()).unwrap_or_default())
    }
    fn clear(&self, key_id: &str) -> Result<(), String> {
        let mut m = self.bans.lock().map_err(|_| "lock poisoned".to_owned())?;
        m.remove(key_id);
        Ok(())
    }
}

/// Where the embedded party keeps its presignatures (secret: the app's secure storage), together
/// with the store's own copy of the presignature generation.
pub trait PresignatureStore: Send + Sync {
    /// Stores presignature `id` of `key_id`.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn put(&self, key_id: &str, id: &str, bytes: &[u8]) -> Result<(), String>;
    /// Presignature `id` of `key_id`, left in place.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn peek(&self, key_id: &str, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String>;
    /// Deletes presignature `id` of `key_id` durably and returns it (`None` if absent).
    ///
    /// # Errors
    /// A description of the storage failure.
    fn take(&self, key_id: &str, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String>;
    /// Deletes every presignature of every key; returns how many there were.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn delete_all(&self) -> Result<u64, String>;
    /// Deletes every presignature of `key_id` (after a refresh, reshare or deletion they
    /// belong to shares that no longer exist); returns how many there were.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn delete_key(&self, key_id: &str) -> Result<u64, String>;
    /// The generation stored with the presignatures (`None` for a new store).
    ///
    /// # Errors
    /// A description of the storage failure.
    fn generation(&self) -> Result<Option<u64>, String>;
    /// Sets the generation stored with the presignatures.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn set_generation(&self, generation: u64) -> Result<(), String>;
}

/// The presignature generation counter kept *outside* the [`PresignatureStore`] (a keychain
/// item that is not part of backups, a hardware monotonic counter): it is moved on before a
/// presignature is taken, so a presignature store that comes back from a backup is recognised
/// and emptied (`protocols.md` §3.6).
pub trait GenerationCounter: Send + Sync {
    /// The counter (`None` before its first use).
    ///
    /// # Errors
    /// A description of the storage failure.
    fn get(&self) -> Result<Option<u64>, String>;
    /// Sets the counter durably.
    ///
    /// # Errors
    /// A description of the storage failure.
    fn set(&self, value: u64) -> Result<(), String>;
}

/// A [`PresignatureStore`] in memory: for tests only. [`Self::snapshot`] and
/// [`Self::restore`] stand for a backup and its restore.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Default)]
pub struct MemoryPresignatureStore {
    inner: Mutex<MemoryPresignatures>,
}

/// Presignatures by (key id, presignature id), and the store's generation.
#[cfg(any(test, feature = "testing"))]
type MemoryPresignatures = (BTreeMap<(String, String), Zeroizing<Vec<u8>>>, Option<u64>);

#[cfg(any(test, feature = "testing"))]
impl MemoryPresignatureStore {
    /// A copy of the whole store (a backup).
    pub fn snapshot(&self) -> Self {
        let g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Self { inner: Mutex::new(g.clone()) }
    }

    /// Replaces the contents by those of `backup` (a restore).
    pub fn restore(&self, backup: &Self) {
        let b = backup.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        *self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = b;
    }

    /// How many presignatures are stored.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0.len()
    }

    /// Whether no presignature is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(any(test, feature = "testing"))]
impl PresignatureStore for MemoryPresignatureStore {
    fn put(&self, key_id: &str, id: &str, bytes: &[u8]) -> Result<(), String> {
        let mut g = self.inner.lock().map_err(|_| "lock poisoned".to_owned())?;
        g.0.insert((key_id.to_owned(), id.to_owned()), Zeroizing::new(bytes.to_vec()));
        Ok(())
    }
    fn peek(&self, key_id: &str, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        let g = self.inner.lock().map_err(|_| "lock poisoned".to_owned())?;
        Ok(g.0.get(&(key_id.to_owned(), id.to_owned())).cloned())
    }
    fn take(&self, key_id: &str, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        let mut g = self.inner.lock().map_err(|_| "lock poisoned".to_owned())?;
        Ok(g.0.remove(&(key_id.to_owned(), id.to_owned())))
    }
    fn delete_all(&self) -> Result<u64, String> {
        let mut g = self.inner.lock().map_err(|_| "lock poisoned".to_owned())?;
        let n = g.0.len() as u64;
        g.0.clear();
        Ok(n)
    }
    fn delete_key(&self, key_id: &str) -> Result<u64, String> {
        let mut g = self.inner.lock().map_err(|_| "lock poisoned".to_owned())?;
        let before = g.0.len();
        g.0.retain(|(k, _), _| k != key_id);
        Ok((before - g.0.len()) as u64)
    }
    fn generation(&self) -> Result<Option<u64>, String> {
        Ok(self.inner.lock().map_err(|_| "lock poisoned".to_owned())?.1)
    }
    fn set_generation(&self, generation: u64) -> Result<(), String> {
        self.inner.lock().map_err(|_| "lock poisoned".to_owned())?.1 = Some(generation);
        Ok(())
    }
}

/// A [`GenerationCounter`] in memory: for tests only.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Default)]
pub struct MemoryGenerationCounter(Mutex<Option<u64>>);

#[cfg(any(test, feature = "testing"))]
impl GenerationCounter for MemoryGenerationCounter {
    fn get(&self) -> Result<Option<u64>, String> {
        Ok(*self.0.lock().map_err(|_| "lock poisoned".to_owned())?)
    }
    fn set(&self, value: u64) -> Result<(), String> {
        *self.0.lock().map_err(|_| "lock poisoned".to_owned())? = Some(value);
        Ok(())
    }
}

/// A [`KeyStore`] in memory (tests, demos).
#[derive(Default)]
pub struct MemoryKeyStore {
    shares: Mutex<HashMap<String, Zeroizing<Vec<u8>>>>,
}

impl std::fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryKeyStore(<redacted>)")
    }
}

impl KeyStore for MemoryKeyStore {
    fn put(&self, key_id: &str, share: &[u8]) -> Result<(), String> {
        let mut m = self.shares.lock().map_err(|_| "lock poisoned".to_owned())?;
        m.insert(key_id.to_owned(), Zeroizing::new(share.to_vec()));
        Ok(())
    }
    fn get(&self, key_id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        let m = self.shares.lock().map_err(|_| "lock poisoned".to_owned())?;
        Ok(m.get(key_id).cloned())
    }
    fn delete(&self, key_id: &str) -> Result<(), String> {
        let mut m = self.shares.lock().map_err(|_| "lock poisoned".to_owned())?;
        m.remove(key_id);
        Ok(())
    }
}
