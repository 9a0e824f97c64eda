//! The app's secure storage, and the stores the protocol needs on top of it.
//!
//! Keys written (UTF-8 strings; values are opaque bytes):
//!
//! | key | value |
//! |---|---|
//! | `share/<key id>` | the key share (secret: keep it in the Keychain / Keystore-encrypted storage) |
//! | `bans/<key id>` | the parties banned for that key, one `<index> <reason>` line each |
//! | `iid/<hex instance id>` | a used instance id (never run twice) |
//! | `share/<key id>:staged` | a refresh/reshare's new share (and its session setup) until every member confirmed it (secret) |
//! | `presig/<key id>/<presignature id>` | a presignature (secret, single use) |
//! | `presig-index` | the stored presignatures, one `<presignature id> <key id>` line each |
//! | `presig-store-generation` | the generation stored with the presignatures (8 bytes, big-endian) |
//! | `presig-generation` | the presignature generation counter (8 bytes, big-endian): keep it **out of backups** and device transfers (e.g. a Keychain item with `…ThisDeviceOnly` accessibility, Android `allowBackup` exclusions) |
//!
//! A presignature store restored from a backup has an older `presig-store-generation` than
//! the counter, and the phone then deletes every presignature before using one: a presignature
//! used twice would reveal the key share. That only works if the counter is *not* restored
//! with the rest.

use std::sync::{Arc, Mutex, PoisonError};

use dkls23_core::setup::{ReplayError, ReplayGuard};
use mpc_node_client::embedded::{BanStore, GenerationCounter, KeyStore, PresignatureStore};
use zeroize::Zeroizing;

use crate::error::ForeignError;

/// Persistent key-value storage supplied by the app. Every write must be durable when it
/// returns (the protocol relies on a ban or a used instance id surviving a crash).
#[uniffi::export(with_foreign)]
pub trait SecureStorage: Send + Sync {
    /// The value under `key`, if any.
    ///
    /// # Errors
    /// [`ForeignError`] when the storage cannot be read.
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, ForeignError>;
    /// Stores `value` under `key`, replacing any previous value.
    ///
    /// # Errors
    /// [`ForeignError`] when it cannot be stored.
    fn put(&self, key: String, value: Vec<u8>) -> Result<(), ForeignError>;
    /// Stores `value` under `key` only if nothing is stored there, atomically; returns whether
    /// it stored.
    ///
    /// # Errors
    /// [`ForeignError`] when it cannot be stored.
    fn put_if_absent(&self, key: String, value: Vec<u8>) -> Result<bool, ForeignError>;
    /// Removes `key` (nothing happens if it is absent).
    ///
    /// # Errors
    /// [`ForeignError`] when it cannot be removed.
    fn delete(&self, key: String) -> Result<(), ForeignError>;
}

/// The protocol's stores over one [`SecureStorage`].
#[derive(Clone)]
pub(crate) struct Stores {
    storage: Arc<dyn SecureStorage>,
    /// Serialises this phone's read-modify-write updates (ban lists, the presignature index).
    updates: Arc<Mutex<()>>,
}

fn failed(what: &str, e: ForeignError) -> String {
    format!("secure storage failed to {what}: {e}")
}

impl KeyStore for Stores {
    fn put(&self, key_id: &str, share: &[u8]) -> Result<(), String> {
        self.storage
            .put(format!("share/{key_id}"), share.to_vec())
            .map_err(|e| failed("store a share", e))
    }

    fn get(&self, key_id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        self.storage
            .get(format!("share/{key_id}"))
            .map(|v| v.map(Zeroizing::new))
            .map_err(|e| failed("read a share", e))
    }

    fn delete(&self, key_id: &str) -> Result<(), String> {
        self.storage.delete(format!("share/{key_id}")).map_err(|e| failed("delete a share", e))
    }
}

impl Stores {
    pub(crate) fn new(storage: Arc<dyn SecureStorage>) -> Self {
        Self { storage, updates: Arc::new(Mutex::new(())) }
    }

    fn ban_lines(&self, key_id: &str) -> Result<Vec<(u16, String)>, String> {
        let Some(bytes) =
            self.storage.get(format!("bans/{key_id}")).map_err(|e| failed("read bans", e))?
        else {
            return Ok(Vec::new());
        };
        let text =
            String::from_utf8(bytes).map_err(|_| "the stored ban list is not UTF-8".to_owned())?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let (party, reason) = line.split_once(' ').unwrap_or((line, ""));
                party
                    .parse::<u16>()
                    .map(|p| (p, reason.to_owned()))
                    .map_err(|_| format!("the stored ban list has a bad line {line:?}"))
            })
            .collect()
    }
}

impl BanStore for Stores {
    fn record(&self, key_id: &str, party: u16, reason: &str) -> Result<(), String> {
        let _one = self.updates.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lines = self.ban_lines(key_id)?;
        if lines.iter().any(|(p, _)| *p == party) {
            return Ok(());
        }
        lines.push((party, reason.replace('\n', " ")));
        let text: String = lines.iter().map(|(p, r)| format!("{p} {r}\n")).collect();
        self.storage
            .put(format!("bans/{key_id}"), text.into_bytes())
            .map_err(|e| failed("record a ban", e))
    }

    fn banned(&self, key_id: &str) -> Result<Vec<u16>, String> {
        Ok(self.ban_lines(key_id)?.into_iter().map(|(p, _)| p).collect())
    }

    fn clear(&self, key_id: &str) -> Result<(), String> {
        self.storage.delete(format!("bans/{key_id}")).map_err(|e| failed("clear bans", e))
    }
}

impl ReplayGuard for Stores {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        match self.storage.put_if_absent(format!("iid/{}", hex::encode(iid)), vec![1]) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ReplayError::Reused),
            Err(e) => Err(ReplayError::Storage(failed("record an instance id", e))),
        }
    }
}

const PRESIG_INDEX: &str = "presig-index";
const STORE_GENERATION: &str = "presig-store-generation";
const COUNTER: &str = "presig-generation";

fn presig_key(key_id: &str, id: &str) -> String {
    format!("presig/{key_id}/{id}")
}

fn decode_u64(bytes: &[u8], what: &str) -> Result<u64, String> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| format!("the stored {what} is {} bytes, not 8", bytes.len()))
}

impl Stores {
    /// The presignature index: (presignature id, key id) pairs.
    fn presig_index(&self) -> Result<Vec<(String, String)>, String> {
        let Some(bytes) = self
            .storage
            .get(PRESIG_INDEX.into())
            .map_err(|e| failed("read the presignature index", e))?
        else {
            return Ok(Vec::new());
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| "the stored presignature index is not UTF-8".to_owned())?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                line.split_once(' ')
                    .map(|(id, key)| (id.to_owned(), key.to_owned()))
                    .ok_or_else(|| format!("the stored presignature index has a bad line {line:?}"))
            })
            .collect()
    }

    fn put_presig_index(&self, entries: &[(String, String)]) -> Result<(), String> {
        if entries.is_empty() {
            return self
                .storage
                .delete(PRESIG_INDEX.into())
                .map_err(|e| failed("write the presignature index", e));
        }
        let text: String = entries.iter().map(|(id, key)| format!("{id} {key}\n")).collect();
        self.storage
            .put(PRESIG_INDEX.into(), text.into_bytes())
            .map_err(|e| failed("write the presignature index", e))
    }

    /// Deletes the presignatures of the keys `doomed` accepts; returns how many there were.
    fn delete_presigs(&self, doomed: impl Fn(&str) -> bool) -> Result<u64, String> {
        let _one = self.updates.lock().unwrap_or_else(PoisonError::into_inner);
        let (gone, kept): (Vec<_>, Vec<_>) =
            self.presig_index()?.into_iter().partition(|(_, key)| doomed(key));
        for (id, key) in &gone {
            self.storage
                .delete(presig_key(key, id))
                .map_err(|e| failed("delete a presignature", e))?;
        }
        self.put_presig_index(&kept)?;
        Ok(gone.len() as u64)
    }
}

// A presignature is listed in the index before it is written and removed from it after it is
// deleted, so the index never misses one (a stale line after a crash is harmless).
impl PresignatureStore for Stores {
    fn put(&self, key_id: &str, id: &str, bytes: &[u8]) -> Result<(), String> {
        {
            let _one = self.updates.lock().unwrap_or_else(PoisonError::into_inner);
            let mut index = self.presig_index()?;
            if !index.iter().any(|(i, k)| i == id && k == key_id) {
                index.push((id.to_owned(), key_id.to_owned()));
                self.put_presig_index(&index)?;
            }
        }
        self.storage
            .put(presig_key(key_id, id), bytes.to_vec())
            .map_err(|e| failed("store a presignature", e))
    }

    fn peek(&self, key_id: &str, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        self.storage
            .get(presig_key(key_id, id))
            .map(|v| v.map(Zeroizing::new))
            .map_err(|e| failed("read a presignature", e))
    }

    fn take(&self, key_id: &str, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        let _one = self.updates.lock().unwrap_or_else(PoisonError::into_inner);
        let found = self.peek(key_id, id)?;
        if found.is_some() {
            self.storage
                .delete(presig_key(key_id, id))
                .map_err(|e| failed("delete a presignature", e))?;
        }
        let mut index = self.presig_index()?;
        let before = index.len();
        index.retain(|(i, k)| !(i == id && k == key_id));
        if index.len() != before {
            self.put_presig_index(&index)?;
        }
        Ok(found)
    }

    fn delete_all(&self) -> Result<u64, String> {
        self.delete_presigs(|_| true)
    }

    fn delete_key(&self, key_id: &str) -> Result<u64, String> {
        self.delete_presigs(|key| key == key_id)
    }

    fn generation(&self) -> Result<Option<u64>, String> {
        self.get_u64(STORE_GENERATION, "presignature store's generation")
    }

    fn set_generation(&self, generation: u64) -> Result<(), String> {
        self.put_u64(STORE_GENERATION, "presignature store's generation", generation)
    }
}

impl GenerationCounter for Stores {
    fn get(&self) -> Result<Option<u64>, String> {
        self.get_u64(COUNTER, "presignature generation counter")
    }

    fn set(&self, value: u64) -> Result<(), String> {
        self.put_u64(COUNTER, "presignature generation counter", value)
    }
}

impl Stores {
    /// An 8-byte big-endian number stored under `key`.
    fn get_u64(&self, key: &str, what: &str) -> Result<Option<u64>, String> {
        self.storage
            .get(key.into())
            .map_err(|e| failed(&format!("read the {what}"), e))?
            .map(|b| decode_u64(&b, what))
            .transpose()
    }

    fn put_u64(&self, key: &str, what: &str, value: u64) -> Result<(), String> {
        self.storage
            .put(key.into(), value.to_be_bytes().to_vec())
            .map_err(|e| failed(&format!("write the {what}"), e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use mpc_node_client::embedded::{GenerationCounter, PresignatureStore};

    use super::{SecureStorage, Stores};
    use crate::error::ForeignError;

    #[derive(Default)]
    struct Map(Mutex<BTreeMap<String, Vec<u8>>>);

    impl SecureStorage for Map {
        fn get(&self, key: String) -> Result<Option<Vec<u8>>, ForeignError> {
            Ok(self.0.lock().unwrap().get(&key).cloned())
        }
        fn put(&self, key: String, value: Vec<u8>) -> Result<(), ForeignError> {
            self.0.lock().unwrap().insert(key, value);
            Ok(())
        }
        fn put_if_absent(&self, key: String, value: Vec<u8>) -> Result<bool, ForeignError> {
            let mut m = self.0.lock().unwrap();
            if m.contains_key(&key) {
                return Ok(false);
            }
            m.insert(key, value);
            Ok(true)
        }
        fn delete(&self, key: String) -> Result<(), ForeignError> {
            self.0.lock().unwrap().remove(&key);
            Ok(())
        }
    }

    #[test]
    fn presignatures_are_taken_once_and_deleted_by_key_or_all() {
        let map = Arc::new(Map::default());
        let s = Stores::new(map.clone());
        s.put("k1", "aa", b"one").unwrap();
        s.put("k1", "bb", b"two").unwrap();
        s.put("k2", "cc", b"three").unwrap();
        assert_eq!(s.peek("k1", "aa").unwrap().unwrap().as_slice(), b"one");
        assert_eq!(s.take("k1", "aa").unwrap().unwrap().as_slice(), b"one");
        assert!(s.take("k1", "aa").unwrap().is_none());
        assert!(s.peek("k2", "aa").unwrap().is_none(), "ids are per key");
        assert_eq!(s.delete_key("k1").unwrap(), 1);
        assert!(s.peek("k1", "bb").unwrap().is_none());
        assert_eq!(s.peek("k2", "cc").unwrap().unwrap().as_slice(), b"three");
        assert_eq!(s.delete_all().unwrap(), 1);
        assert!(map.0.lock().unwrap().keys().all(|k| !k.starts_with("presig")), "nothing left");
    }

    #[test]
    fn the_generations_are_two_separate_entries() {
        let map = Arc::new(Map::default());
        let s = Stores::new(map.clone());
        assert_eq!(PresignatureStore::generation(&s).unwrap(), None);
        assert_eq!(GenerationCounter::get(&s).unwrap(), None);
        s.set_generation(7).unwrap();
        GenerationCounter::set(&s, 9).unwrap();
        assert_eq!(PresignatureStore::generation(&s).unwrap(), Some(7));
        assert_eq!(GenerationCounter::get(&s).unwrap(), Some(9));
        let stored = map.0.lock().unwrap().get("presig-generation").cloned();
        assert_eq!(stored, Some(9u64.to_be_bytes().to_vec()));
        map.0.lock().unwrap().insert("presig-generation".into(), vec![1, 2, 3]);
        let e = GenerationCounter::get(&s).unwrap_err();
        assert!(e.contains("3 bytes, not 8"), "{e}");
    }
}
