//! The public data of the key shares (`shares/<key_id>.json`): written beside each sealed share,
//! read without the passphrase to list and find shares.

use std::path::Path;

use dkls23_core::encoding::point_to_bytes;
use dkls23_core::identity::IdentityPublicKey;
use dkls23_core::{KeyShare, PartyIndex};
use k256::ProjectivePoint;
use serde::{Deserialize, Serialize};

use super::{MAX_JSON_FILE, PartyDir};
use crate::encoding::{eth_address, hex_array};
use crate::error::{CliError, CliResult};
use crate::files;
use crate::identity_file;

/// The public part of a key share, stored beside it in clear.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShareInfo {
    /// Key id (hex), stable across refreshes.
    pub key_id: String,
    /// Free-form label from the keygen setup.
    pub label: String,
    /// Root public key, compressed SEC1 (hex).
    pub public_key: String,
    /// Root chain code (hex).
    pub chain_code: String,
    /// Ethereum address of the root key (EIP-55).
    pub eth_address: String,
    /// Threshold t.
    pub threshold: u16,
    /// Number of parties n.
    pub parties: u16,
    /// This party's index.
    pub index: PartyIndex,
    /// Reshare epoch (0 after keygen).
    pub epoch: u32,
    /// Session id of the keygen or refresh that produced the share (hex).
    pub keygen_sid: String,
    /// Identity public keys of parties 1..=n (hex of kind ‖ key).
    pub identities: Vec<String>,
}

impl ShareInfo {
    /// Public data of `share`.
    pub fn of(share: &KeyShare, label: &str) -> Self {
        Self {
            key_id: hex::encode(share.key_id()),
            label: label.to_owned(),
            public_key: hex::encode(point_to_bytes(share.public_key())),
            chain_code: hex::encode(share.chain_code()),
            eth_address: eth_address(share.public_key()),
            threshold: share.threshold(),
            parties: share.parties(),
            index: share.index(),
            epoch: share.epoch(),
            keygen_sid: hex::encode(share.keygen_sid()),
            identities: (1..=share.parties())
                .map(|l| share.identity(l).map(hex::encode).unwrap_or_default())
                .collect(),
        }
    }

    /// The root public key.
    ///
    /// # Errors
    /// Corrupted data if the stored key does not decode.
    pub fn public_point(&self) -> CliResult<ProjectivePoint> {
        let bytes = hex::decode(&self.public_key).ok();
        bytes
            .and_then(|b| dkls23_core::encoding::point_from_slice(&b).ok())
            .ok_or_else(|| CliError::corrupted("the share's public metadata is damaged"))
    }

    /// The key id.
    ///
    /// # Errors
    /// Corrupted data if the stored key id does not decode.
    pub fn key_id_bytes(&self) -> CliResult<[u8; 32]> {
        hex_array(&self.key_id)
            .ok_or_else(|| CliError::corrupted("the share's public metadata is damaged"))
    }

    /// The root chain code.
    ///
    /// # Errors
    /// Corrupted data if the stored chain code does not decode.
    pub fn chain_code_bytes(&self) -> CliResult<[u8; 32]> {
        hex_array(&self.chain_code)
            .ok_or_else(|| CliError::corrupted("the share's public metadata is damaged"))
    }

    /// Identity key of party `l`.
    ///
    /// # Errors
    /// Bad input if `l` is not a party of this key.
    pub fn identity_of(&self, l: PartyIndex) -> CliResult<IdentityPublicKey> {
        let hex_key = usize::from(l)
            .checked_sub(1)
            .and_then(|i| self.identities.get(i))
            .ok_or_else(|| {
                CliError::bad_input(format!(
                    "party {l} is not a party of this key (1..={})",
                    self.parties
                ))
            })?;
        identity_file::parse_public_hex(hex_key)
    }
}

impl PartyDir {
    /// Public data of every share, sorted by label then key id.
    ///
    /// # Errors
    /// Corrupted data if a metadata file does not parse.
    pub fn list(&self) -> CliResult<Vec<ShareInfo>> {
        let dir = self.shares_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(CliError::corrupted(format!("cannot list {}: {e}", dir.display())));
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            out.push(read_info(&path)?);
        }
        out.sort_by(|a, b| (&a.label, &a.key_id).cmp(&(&b.label, &b.key_id)));
        Ok(out)
    }

    /// Finds a share by key id or unique key-id prefix (at least 4 hex digits) or by label.
    ///
    /// # Errors
    /// Bad input if nothing or more than one share matches.
    pub fn find(&self, key: &str) -> CliResult<ShareInfo> {
        let key = key.trim().to_ascii_lowercase();
        let all = self.list()?;
        let matches: Vec<&ShareInfo> = all
            .iter()
            .filter(|s| {
                s.label.to_ascii_lowercase() == key
                    || (key.len() >= 4 && s.key_id.starts_with(&key))
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => {
                Err(CliError::bad_input(format!("no key share {key:?} in {}", self.root.display()))
                    .hint(
                        "list the shares with `dkls-party shares list` (check DEST and PARTY_ID)",
                    ))
            }
            _ => Err(CliError::bad_input(format!("{key:?} matches several key shares"))
                .hint("give more digits of the key id")),
        }
    }

    /// Public data of the share of `key_id`.
    ///
    /// # Errors
    /// Bad input if this party holds no share of that key.
    pub fn info(&self, key_id: &[u8; 32]) -> CliResult<ShareInfo> {
        let path = self.info_path(key_id);
        if !path.exists() {
            return Err(CliError::bad_input(format!(
                "this party holds no share of key {} (looked in {})",
                hex::encode(key_id),
                self.root.display()
            ))
            .hint("check DEST and PARTY_ID, or whether this party was part of that keygen"));
        }
        read_info(&path)
    }
}

pub(super) fn read_info(path: &Path) -> CliResult<ShareInfo> {
    let bytes = files::read_bounded(path, MAX_JSON_FILE, "share metadata")?;
    serde_json::from_slice(&bytes).map_err(|e| {
        CliError::corrupted(format!("share metadata {} does not parse: {e}", path.display()))
    })
}
