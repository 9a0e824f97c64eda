//! The app's secure storage, and the stores the protocol needs on top of it.
//!
//! Keys written (UTF-8 strings; values are opaque bytes):
//!
//! | key | value |
//! |---|---|
//! | `share/<key id>` | the key share (secret: keep it in the Keychain / Keystore-encrypted storage) |
//! | `bans/<key id>` | the parties banned for that key, one `<index> <reason>` line each |
//! | `iid/<hex instance id>` | a used instance id (never run twice) |

use std::sync::Arc;

use dkls23_core::setup::{ReplayError, ReplayGuard};
use mpc_node_client::embedded::{BanStore, KeyStore};
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
pub(crate) struct Stores(pub(crate) Arc<dyn SecureStorage>);

fn failed(what: &str, e: ForeignError) -> String {
    format!("secure storage failed to {what}: {e}")
}

impl KeyStore for Stores {
    fn put(&self, key_id: &str, share: &[u8]) -> Result<(), String> {
        self.0
            .put(format!("share/{key_id}"), share.to_vec())
            .map_err(|e| failed("store a share", e))
    }

    fn get(&self, key_id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        self.0
            .get(format!("share/{key_id}"))
            .map(|v| v.map(Zeroizing::new))
            .map_err(|e| failed("read a share", e))
    }

    fn delete(&self, key_id: &str) -> Result<(), String> {
        self.0.delete(format!("share/{key_id}")).map_err(|e| failed("delete a share", e))
    }
}

impl Stores {
    fn ban_lines(&self, key_id: &str) -> Result<Vec<(u16, String)>, String> {
        let Some(bytes) =
            self.0.get(format!("bans/{key_id}")).map_err(|e| failed("read bans", e))?
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
        let mut lines = self.ban_lines(key_id)?;
        if lines.iter().any(|(p, _)| *p == party) {
            return Ok(());
        }
        lines.push((party, reason.replace('\n', " ")));
        let text: String = lines.iter().map(|(p, r)| format!("{p} {r}\n")).collect();
        self.0
            .put(format!("bans/{key_id}"), text.into_bytes())
            .map_err(|e| failed("record a ban", e))
    }

    fn banned(&self, key_id: &str) -> Result<Vec<u16>, String> {
        Ok(self.ban_lines(key_id)?.into_iter().map(|(p, _)| p).collect())
    }

    fn clear(&self, key_id: &str) -> Result<(), String> {
        self.0.delete(format!("bans/{key_id}")).map_err(|e| failed("clear bans", e))
    }
}

impl ReplayGuard for Stores {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        match self.0.put_if_absent(format!("iid/{}", hex::encode(iid)), vec![1]) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ReplayError::Reused),
            Err(e) => Err(ReplayError::Storage(failed("record an instance id", e))),
        }
    }
}
