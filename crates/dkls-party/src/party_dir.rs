//! A party's data directory: identity, encrypted key shares with their public metadata, the
//! persisted instance-id replay guard, ban lists and presignatures.
//!
//! ```text
//! $DEST[/$PARTY_ID]/
//!   identity.pem                 PKCS#8 PEM identity key (0600)
//!   used-iids                    one hex instance id per line (replay guard)
//!   shares/<key_id>.share        sealed key share (Argon2id + ChaCha20-Poly1305, 0600)
//!   shares/<key_id>.json         public data of that share (no secret)
//!   shares/<key_id>.banned       parties banned for this key's OT material, one index a line
//!   presignatures/<key_id>-<sigid>.presig   sealed presignatures (consumed by use)
//! ```

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dkls23_core::encoding::point_to_bytes;
use dkls23_core::identity::IdentityPublicKey;
use dkls23_core::setup::{ReplayError, ReplayGuard};
use dkls23_core::{KeyShare, PartyIndex};
use k256::ProjectivePoint;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{CliError, CliResult, ExitCode};
use crate::files;
use crate::sealed::{self, KdfParams, SealError};

const MAX_SHARE_FILE: u64 = 64 * 1024 * 1024;
const MAX_JSON_FILE: u64 = 1024 * 1024;

/// One party's data directory.
#[derive(Debug, Clone)]
pub struct PartyDir {
    root: PathBuf,
}

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
        crate::identity_file::parse_public_hex(hex_key)
    }
}

/// 32 bytes from hex.
pub fn hex_array(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok().and_then(|b| <[u8; 32]>::try_from(b).ok())
}

/// The EIP-55 checksummed Ethereum address of a secp256k1 public key.
pub fn eth_address(point: &ProjectivePoint) -> String {
    use k256::elliptic_curve::sec1::ToSec1Point;
    use sha3::Digest;
    let uncompressed = point.to_affine().to_sec1_point(false);
    let bytes = uncompressed.as_bytes();
    let hash = sha3::Keccak256::digest(bytes.get(1..).unwrap_or_default());
    let addr = hex::encode(hash.get(12..).unwrap_or_default());
    let check = sha3::Keccak256::digest(addr.as_bytes());
    let mut out = String::from("0x");
    for (i, c) in addr.chars().enumerate() {
        let nibble = check.get(i / 2).map_or(0, |b| if i % 2 == 0 { b >> 4 } else { b & 0x0f });
        if c.is_ascii_alphabetic() && nibble >= 8 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl PartyDir {
    /// The directory `dest/party_id`, or `dest` itself without a party id.
    pub fn new(dest: &Path, party_id: Option<&str>) -> Self {
        let root = match party_id {
            Some(id) if !id.is_empty() => dest.join(id),
            _ => dest.to_path_buf(),
        };
        Self { root }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Default identity file.
    pub fn identity_path(&self) -> PathBuf {
        self.root.join("identity.pem")
    }

    fn shares_dir(&self) -> PathBuf {
        self.root.join("shares")
    }

    /// Sealed key share file of `key_id`.
    pub fn share_path(&self, key_id: &[u8; 32]) -> PathBuf {
        self.shares_dir().join(format!("{}.share", hex::encode(key_id)))
    }

    fn info_path(&self, key_id: &[u8; 32]) -> PathBuf {
        self.shares_dir().join(format!("{}.json", hex::encode(key_id)))
    }

    fn ban_path(&self, key_id: &[u8; 32]) -> PathBuf {
        self.shares_dir().join(format!("{}.banned", hex::encode(key_id)))
    }

    /// Directory of presignatures.
    pub fn presig_dir(&self) -> PathBuf {
        self.root.join("presignatures")
    }

    /// The persisted replay guard of this party.
    ///
    /// # Errors
    /// Corrupted data if the file cannot be read.
    pub fn replay_guard(&self) -> CliResult<FileReplayGuard> {
        FileReplayGuard::open(self.root.join("used-iids"))
    }

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

    /// Seals and stores `share` (each file atomically: the share first, then its public data,
    /// which [`Self::load_share`] repairs if a crash fell between the two).
    ///
    /// # Errors
    /// Internal errors for I/O or encryption failures.
    pub fn save_share(
        &self,
        share: &KeyShare,
        label: &str,
        passphrase: &[u8],
        params: KdfParams,
    ) -> CliResult<ShareInfo> {
        let info = ShareInfo::of(share, label);
        let sealed = sealed::seal(sealed::Kind::KeyShare, &share.to_bytes(), passphrase, params)
            .map_err(|e| CliError::internal(format!("sealing the key share: {e}")))?;
        let json = serde_json::to_vec_pretty(&info)
            .map_err(|e| CliError::internal(format!("encoding share metadata: {e}")))?;
        files::write_atomic(&self.share_path(share.key_id()), &sealed, 0o600)?;
        files::write_atomic(&self.info_path(share.key_id()), &json, 0o644)?;
        Ok(info)
    }

    /// Opens the sealed share of `key_id`.
    ///
    /// # Errors
    /// Wrong passphrase, corrupted data, or bad input if there is no such share.
    pub fn load_share(&self, key_id: &[u8; 32], passphrase: &[u8]) -> CliResult<KeyShare> {
        let path = self.share_path(key_id);
        let file = files::read_bounded(&path, MAX_SHARE_FILE, "key share")?;
        let plain =
            sealed::open(sealed::Kind::KeyShare, &file, passphrase).map_err(|e| match e {
                SealError::WrongPassphrase => CliError::new(
                    ExitCode::WrongPassphrase,
                    format!("wrong passphrase for key share {}", path.display()),
                )
                .hint("set DKLS_PASSPHRASE to the passphrase used when this share was created"),
                SealError::Corrupted(why) => {
                    CliError::corrupted(format!("key share {} is corrupted: {why}", path.display()))
                        .hint("restore the file from a backup or recover the share with a reshare")
                }
                SealError::Crypto(why) => {
                    CliError::internal(format!("decrypting the share: {why}"))
                }
            })?;
        let share = KeyShare::from_bytes(&plain).map_err(|e| {
            CliError::corrupted(format!("key share {} does not decode: {e}", path.display()))
                .hint("restore the file from a backup or recover the share with a reshare")
        })?;
        if share.key_id() != key_id {
            return Err(CliError::corrupted(format!(
                "key share {} holds another key",
                path.display()
            )));
        }
        // The public data is written after the share; if a crash fell in between (e.g. during a
        // refresh), bring it back in line with the share.
        let label = read_info(&self.info_path(key_id)).map(|i| i.label).unwrap_or_default();
        let fresh = ShareInfo::of(&share, &label);
        if read_info(&self.info_path(key_id)).ok().as_ref() != Some(&fresh) {
            let json = serde_json::to_vec_pretty(&fresh)
                .map_err(|e| CliError::internal(format!("encoding share metadata: {e}")))?;
            files::write_atomic(&self.info_path(key_id), &json, 0o644)?;
        }
        Ok(share)
    }

    /// Parties banned for `key_id`.
    ///
    /// # Errors
    /// Corrupted data if the ban list does not parse.
    pub fn banned(&self, key_id: &[u8; 32]) -> CliResult<Vec<PartyIndex>> {
        let path = self.ban_path(key_id);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = files::read_bounded(&path, MAX_JSON_FILE, "ban list")?;
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.trim().parse().map_err(|_| {
                    CliError::corrupted(format!("ban list {} is damaged", path.display()))
                })
            })
            .collect()
    }

    /// Clears the ban list of `key_id` (after a reshare replaced all OT material).
    ///
    /// # Errors
    /// I/O failures.
    pub fn clear_bans(&self, key_id: &[u8; 32]) -> CliResult<()> {
        files::remove_durably(&self.ban_path(key_id))
    }

    /// Erases the share of `key_id` and its public data (a party removed by a reshare).
    ///
    /// # Errors
    /// I/O failures.
    pub fn remove_share(&self, key_id: &[u8; 32]) -> CliResult<()> {
        files::remove_durably(&self.share_path(key_id))?;
        files::remove_durably(&self.info_path(key_id))?;
        files::remove_durably(&self.ban_path(key_id))
    }

    /// Adds `party` to the ban list of `key_id`.
    ///
    /// # Errors
    /// I/O failures.
    pub fn ban(&self, key_id: &[u8; 32], party: PartyIndex) -> CliResult<()> {
        let mut list = self.banned(key_id)?;
        if !list.contains(&party) {
            list.push(party);
            list.sort_unstable();
        }
        let text: String = list.iter().map(|p| format!("{p}\n")).collect();
        files::write_atomic(&self.ban_path(key_id), text.as_bytes(), 0o644)
    }

    /// The CLI error for a failed protocol run on `key_id`. A `BanAndAbort` culprit is recorded
    /// in the key's ban list under `index_of(culprit)` (the key's own index of that party; `None`
    /// when it has none here); a failure to record it is appended to the message.
    pub fn protocol_error(
        &self,
        key_id: &[u8; 32],
        e: &dkls23_core::Error,
        index_of: impl FnOnce(PartyIndex) -> Option<PartyIndex>,
    ) -> CliError {
        let mut err = CliError::from_protocol(e);
        if let dkls23_core::Error::BanAndAbort { party, .. } = e
            && let Some(index) = index_of(*party)
            && let Err(ban) = self.ban(key_id, index)
        {
            err.message.push_str(&format!(" (recording the ban failed: {})", ban.message));
        }
        err
    }
}

fn read_info(path: &Path) -> CliResult<ShareInfo> {
    let bytes = files::read_bounded(path, MAX_JSON_FILE, "share metadata")?;
    serde_json::from_slice(&bytes).map_err(|e| {
        CliError::corrupted(format!("share metadata {} does not parse: {e}", path.display()))
    })
}

/// The replay guard persisted as a file of used instance ids (appended and fsynced before the
/// session starts).
#[derive(Debug)]
pub struct FileReplayGuard {
    path: PathBuf,
    seen: Mutex<HashSet<[u8; 32]>>,
}

impl FileReplayGuard {
    /// Loads the guard at `path` (a missing file is an empty set).
    ///
    /// # Errors
    /// Corrupted data if the file does not parse.
    pub fn open(path: PathBuf) -> CliResult<Self> {
        let mut seen = HashSet::new();
        if path.exists() {
            let text = files::read_bounded(&path, 256 * 1024 * 1024, "used instance ids")?;
            for line in String::from_utf8_lossy(&text).lines().filter(|l| !l.is_empty()) {
                let iid = hex_array(line.trim())
                    .ok_or_else(|| CliError::corrupted(format!("{} is damaged", path.display())))?;
                seen.insert(iid);
            }
        }
        Ok(Self { path, seen: Mutex::new(seen) })
    }

    /// Whether `iid` was used (without recording it).
    pub fn was_used(&self, iid: &[u8; 32]) -> bool {
        self.seen.lock().map(|s| s.contains(iid)).unwrap_or(true)
    }
}

impl ReplayGuard for FileReplayGuard {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        let mut seen =
            self.seen.lock().map_err(|_| ReplayError::Storage("lock poisoned".into()))?;
        if seen.contains(iid) {
            return Err(ReplayError::Reused);
        }
        let storage = |e: std::io::Error| ReplayError::Storage(e.to_string());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(storage)?;
        }
        let mut f =
            OpenOptions::new().create(true).append(true).open(&self.path).map_err(storage)?;
        f.write_all(format!("{}\n", hex::encode(iid)).as_bytes()).map_err(storage)?;
        f.sync_all().map_err(storage)?;
        seen.insert(*iid);
        Ok(())
    }
}

/// A passphrase held in memory (zeroized on drop).
pub type Passphrase = Zeroizing<Vec<u8>>;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn eip55_addresses() {
        // Private key 1: the generator's well-known address.
        assert_eq!(
            eth_address(&ProjectivePoint::GENERATOR),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }

    #[test]
    fn replay_guard_persists() {
        let dir = std::env::temp_dir().join(format!("dkls-party-guard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let g = FileReplayGuard::open(dir.join("used-iids")).unwrap();
        g.check_and_record(&[1; 32]).unwrap();
        assert_eq!(g.check_and_record(&[1; 32]), Err(ReplayError::Reused));
        let g = FileReplayGuard::open(dir.join("used-iids")).unwrap();
        assert!(g.was_used(&[1; 32]) && !g.was_used(&[2; 32]));
        assert_eq!(g.check_and_record(&[1; 32]), Err(ReplayError::Reused));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
