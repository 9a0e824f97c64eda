//! The ban-list hook (`protocols.md` §3.7): a failed signing or reshare whose error says the
//! culprit must be banned records it through [`BanList`], which the caller implements (the node
//! persists it next to the key share).
//!
//! Bans are per key (`key_id`) and name the party by its index in the key's current epoch. A
//! successful reshare replaces all OT material, so the new epoch starts with an empty list
//! ([`BanList::clear`]); operators should reshare with the banned party excluded.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::Error;
use crate::math::PartyIndex;

/// Where bans are recorded. Implementations must be durable before `record` returns if the
/// process may restart (a lost ban re-opens the selective-abort attack of DKLs23 §3.2).
pub trait BanList: Send + Sync {
    /// Records that `party` must not sign with this key's current OT material.
    fn record(&self, key_id: &[u8; 32], party: PartyIndex, reason: &str);
    /// The banned parties of a key, ascending.
    fn banned(&self, key_id: &[u8; 32]) -> Vec<PartyIndex>;
    /// Forgets every ban of a key (called after a reshare replaced all OT material).
    fn clear(&self, key_id: &[u8; 32]);
}

/// An in-memory [`BanList`] (tests and single-process tools; not persistent).
#[derive(Debug, Default)]
pub struct MemoryBanList {
    inner: Mutex<BTreeMap<[u8; 32], BTreeMap<PartyIndex, String>>>,
}

impl MemoryBanList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// The recorded reason for a ban, if any.
    pub fn reason(&self, key_id: &[u8; 32], party: PartyIndex) -> Option<String> {
        let map = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key_id).and_then(|m| m.get(&party)).cloned()
    }
}

impl BanList for MemoryBanList {
    fn record(&self, key_id: &[u8; 32], party: PartyIndex, reason: &str) {
        let mut map = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(*key_id).or_default().insert(party, reason.to_owned());
    }

    fn banned(&self, key_id: &[u8; 32]) -> Vec<PartyIndex> {
        let map = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key_id).map(|m| m.keys().copied().collect()).unwrap_or_default()
    }

    fn clear(&self, key_id: &[u8; 32]) {
        let mut map = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(key_id);
    }
}

/// Records the culprit of `err` if the error requires a ban ([`Error::must_ban`]); `map` turns
/// the error's party index into the key's index (identity for signing). Returns whether a ban
/// was recorded.
pub fn record_if_banned(
    bans: &dyn BanList,
    key_id: &[u8; 32],
    err: &Error,
    map: impl Fn(PartyIndex) -> Option<PartyIndex>,
) -> bool {
    match err {
        Error::BanAndAbort { party, reason } => match map(*party) {
            Some(p) => {
                bans.record(key_id, p, reason);
                true
            }
            None => false,
        },
        _ => false,
    }
}
