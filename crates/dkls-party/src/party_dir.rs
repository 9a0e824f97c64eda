//! A party's data directory: identity, encrypted key shares with their public metadata, the
//! persisted instance-id replay guard, ban lists and presignatures.
//!
//! ```text
//! $DEST[/$PARTY_ID]/
//!   identity.pem                 PKCS#8 PEM identity key (0600)
//!   .lock                        advisory lock held while bans, the replay guard or the
//!                                presignature generation are updated (several runs at once)
//!   used-iids                    one hex instance id per line (replay guard; also the finish
//!                                markers of used presignatures)
//!   shares/<key_id>.share        sealed key share (Argon2id + ChaCha20-Poly1305, 0600)
//!   shares/<key_id>.json         public data of that share (no secret)
//!   shares/<key_id>.e<epoch>.bans  authenticated ban list of that epoch (see `bans`)
//!   presignatures/<setup_hash>.presig   sealed presignatures (consumed by use)
//!   presignatures/GENERATION     presignature generation (see `presig_gen`)
//! ```

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dkls23_core::encoding::point_to_bytes;
use dkls23_core::identity::IdentityPublicKey;
use dkls23_core::setup::{ReplayError, ReplayGuard};
use dkls23_core::{KeyShare, PartyIndex};
use k256::ProjectivePoint;
use serde::{Deserialize, Serialize};

use crate::encoding::{eth_address, hex_array};
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

/// An exclusive advisory lock (`flock`) on a party directory, released when dropped. Runs of
/// this program that update the same directory's bans, replay guard or presignature generation
/// take it, re-read the state under it, and write before releasing it.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    fn acquire(lock_file: &Path) -> CliResult<Self> {
        let io = |e: std::io::Error| {
            CliError::internal(format!("locking {}: {e}", lock_file.display()))
                .hint("check the permissions of the data directory")
        };
        if let Some(dir) = lock_file.parent() {
            create_private_dir(dir)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_file)
            .map_err(io)?;
        f.lock().map_err(io)?;
        Ok(Self { _file: f })
    }
}

/// Creates `dir` (and its parents) with mode 0700 for what this program creates.
fn create_private_dir(dir: &Path) -> CliResult<()> {
    files::create_private_dir_all(dir)
        .map_err(|e| CliError::internal(format!("creating {}: {e}", dir.display())))
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
        crate::identity_file::parse_public_hex(hex_key)
    }
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

    /// The unauthenticated ban list of shares from before ban lists were authenticated.
    fn legacy_ban_path(&self, key_id: &[u8; 32]) -> PathBuf {
        self.shares_dir().join(format!("{}.banned", hex::encode(key_id)))
    }

    /// The authenticated ban list of `key_id`'s share of epoch `epoch`.
    fn ban_path(&self, key_id: &[u8; 32], epoch: u32) -> PathBuf {
        self.shares_dir().join(format!("{}.e{epoch}.bans", hex::encode(key_id)))
    }

    /// Every ban-list file of `key_id` (any epoch, and the legacy one).
    fn ban_files(&self, key_id: &[u8; 32]) -> Vec<PathBuf> {
        let prefix = format!("{}.e", hex::encode(key_id));
        let mut out = vec![self.legacy_ban_path(key_id)];
        if let Ok(entries) = std::fs::read_dir(self.shares_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(".bans") {
                    out.push(e.path());
                }
            }
        }
        out
    }

    /// Takes this directory's lock (see [`DirLock`]).
    ///
    /// # Errors
    /// Internal errors if the lock file cannot be opened.
    pub fn lock(&self) -> CliResult<DirLock> {
        DirLock::acquire(&self.root.join(".lock"))
    }

    /// The presignature generation of this directory (see [`crate::presig_gen`]).
    ///
    /// # Errors
    /// Bad input without a state directory; I/O failures.
    pub fn presig_generation(&self) -> CliResult<crate::presig_gen::PresigGeneration> {
        let state = crate::presig_gen::state_dir()?;
        crate::presig_gen::PresigGeneration::new(&self.root, self.presig_dir(), &state)
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
        FileReplayGuard::open(self.root.join("used-iids"), self.root.join(".lock"))
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

    /// Seals and stores `share` with an empty authenticated ban list for its epoch (each file
    /// atomically: the ban list, then the share, then its public data, which
    /// [`Self::load_share`] repairs if a crash fell in between), then drops the ban lists of
    /// other epochs. Used for a new share (keygen, import) and a new epoch (refresh, reshare),
    /// which starts with no bans.
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
        let _lock = self.lock()?;
        self.save_share_with_bans(share, &[], label, passphrase, params)
    }

    fn save_share_with_bans(
        &self,
        share: &KeyShare,
        banned: &[PartyIndex],
        label: &str,
        passphrase: &[u8],
        params: KdfParams,
    ) -> CliResult<ShareInfo> {
        let info = ShareInfo::of(share, label);
        let sealed =
            sealed::seal(sealed::Kind::KeyShareWithBans, &share.to_bytes(), passphrase, params)
                .map_err(|e| CliError::internal(format!("sealing the key share: {e}")))?;
        let json = serde_json::to_vec_pretty(&info)
            .map_err(|e| CliError::internal(format!("encoding share metadata: {e}")))?;
        let bans_path = self.ban_path(share.key_id(), share.epoch());
        files::write_atomic(&bans_path, &crate::bans::encode(share, banned)?, 0o600)?;
        files::write_atomic(&self.share_path(share.key_id()), &sealed, 0o600)?;
        files::write_atomic(&self.info_path(share.key_id()), &json, 0o644)?;
        for old in self.ban_files(share.key_id()) {
            if old != bans_path {
                files::remove_durably(&old)?;
            }
        }
        Ok(info)
    }

    /// Opens the sealed share of `key_id`.
    ///
    /// # Errors
    /// Wrong passphrase, corrupted data, or bad input if there is no such share.
    pub fn load_share(&self, key_id: &[u8; 32], passphrase: &[u8]) -> CliResult<KeyShare> {
        self.open_share(key_id, passphrase).map(|(share, _)| share)
    }

    /// Opens the sealed share of `key_id` together with its verified ban list. A share from
    /// before ban lists were authenticated is upgraded on the way (its legacy list is taken
    /// over and the share re-sealed), under the directory lock.
    ///
    /// # Errors
    /// As [`Self::load_share`]; corrupted data if the ban list is missing or does not
    /// authenticate.
    pub fn load_share_and_bans(
        &self,
        key_id: &[u8; 32],
        passphrase: &[u8],
    ) -> CliResult<(KeyShare, Vec<PartyIndex>)> {
        let _lock = self.lock()?;
        let (share, kind) = self.open_share(key_id, passphrase)?;
        let path = self.ban_path(key_id, share.epoch());
        if kind == sealed::Kind::KeyShareWithBans {
            let what = format!("ban list {}", path.display());
            let bytes = match files::read_bounded(&path, MAX_JSON_FILE, "ban list") {
                Ok(b) => b,
                Err(_) if !path.exists() => {
                    return Err(CliError::corrupted(format!(
                        "the ban list of key {} is missing ({what}): it was deleted",
                        hex::encode(key_id)
                    ))
                    .hint(
                        "restore it from a backup; signing with this share is refused until then",
                    ));
                }
                Err(e) => return Err(e),
            };
            let banned = crate::bans::decode_verified(&bytes, &share, &what)?;
            return Ok((share, banned));
        }
        let legacy = self.legacy_banned(key_id)?;
        let label = read_info(&self.info_path(key_id)).map(|i| i.label).unwrap_or_default();
        self.save_share_with_bans(&share, &legacy, &label, passphrase, KdfParams::default())?;
        Ok((share, legacy))
    }

    fn open_share(
        &self,
        key_id: &[u8; 32],
        passphrase: &[u8],
    ) -> CliResult<(KeyShare, sealed::Kind)> {
        let path = self.share_path(key_id);
        let file = files::read_bounded(&path, MAX_SHARE_FILE, "key share")?;
        let kind = match sealed::peek_kind(&file) {
            Some(k @ (sealed::Kind::KeyShare | sealed::Kind::KeyShareWithBans)) => k,
            _ => {
                return Err(CliError::corrupted(format!(
                    "{} is not a sealed key share",
                    path.display()
                ))
                .hint("restore the file from a backup or recover the share with a reshare"));
            }
        };
        let plain = sealed::open(kind, &file, passphrase).map_err(|e| match e {
            SealError::WrongPassphrase => CliError::new(
                ExitCode::WrongPassphrase,
                format!("wrong passphrase for key share {}", path.display()),
            )
            .hint("set DKLS_PASSPHRASE to the passphrase used when this share was created"),
            SealError::Corrupted(why) => {
                CliError::corrupted(format!("key share {} is corrupted: {why}", path.display()))
                    .hint("restore the file from a backup or recover the share with a reshare")
            }
            SealError::Crypto(why) => CliError::internal(format!("decrypting the share: {why}")),
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
        Ok((share, kind))
    }

    /// Parties banned for `key_id`, as listed in its current ban list **without** checking the
    /// list's MAC (for display and to refuse early, before the passphrase is asked; signing
    /// checks the authenticated list, see [`Self::load_share_and_bans`]).
    ///
    /// # Errors
    /// Corrupted data if a ban list does not parse.
    pub fn banned(&self, key_id: &[u8; 32]) -> CliResult<Vec<PartyIndex>> {
        let mut out = self.legacy_banned(key_id)?;
        if let Ok(info) = self.info(key_id) {
            let path = self.ban_path(key_id, info.epoch);
            if path.exists() {
                let bytes = files::read_bounded(&path, MAX_JSON_FILE, "ban list")?;
                let what = format!("ban list {}", path.display());
                out.extend(crate::bans::decode_unverified(&bytes, &what)?);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn legacy_banned(&self, key_id: &[u8; 32]) -> CliResult<Vec<PartyIndex>> {
        let path = self.legacy_ban_path(key_id);
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

    /// Erases the share of `key_id`, its public data and its ban lists (a party removed by a
    /// reshare).
    ///
    /// # Errors
    /// I/O failures.
    pub fn remove_share(&self, key_id: &[u8; 32]) -> CliResult<()> {
        let _lock = self.lock()?;
        files::remove_durably(&self.share_path(key_id))?;
        files::remove_durably(&self.info_path(key_id))?;
        for f in self.ban_files(key_id) {
            files::remove_durably(&f)?;
        }
        Ok(())
    }

    /// Adds `party` to the authenticated ban list of `share` (under the directory lock, re-read
    /// first, so concurrent runs never lose a ban).
    ///
    /// # Errors
    /// I/O failures.
    pub fn ban(&self, share: &KeyShare, party: PartyIndex) -> CliResult<()> {
        let _lock = self.lock()?;
        let path = self.ban_path(share.key_id(), share.epoch());
        let what = format!("ban list {}", path.display());
        let mut list = if path.exists() {
            let bytes = files::read_bounded(&path, MAX_JSON_FILE, "ban list")?;
            crate::bans::decode_verified(&bytes, share, &what)?
        } else {
            self.legacy_banned(share.key_id())?
        };
        if !list.contains(&party) {
            list.push(party);
        }
        files::write_atomic(&path, &crate::bans::encode(share, &list)?, 0o600)
    }

    /// The CLI error for a failed protocol run with `share` (`None` for a party without a share
    /// of the key). A `BanAndAbort` culprit is recorded in the share's ban list under
    /// `index_of(culprit)` (the key's own index of that party; `None` when it has none here);
    /// a failure to record it is appended to the message.
    pub fn protocol_error(
        &self,
        share: Option<&KeyShare>,
        e: &dkls23_core::Error,
        index_of: impl FnOnce(PartyIndex) -> Option<PartyIndex>,
    ) -> CliError {
        let mut err = CliError::from_protocol(e);
        if let dkls23_core::Error::BanAndAbort { party, .. } = e
            && let Some(share) = share
            && let Some(index) = index_of(*party)
            && let Err(ban) = self.ban(share, index)
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
/// session starts). Several runs may share the directory: a check takes the directory lock and
/// re-reads the file under it, so one instance id is accepted by exactly one run.
#[derive(Debug)]
pub struct FileReplayGuard {
    path: PathBuf,
    lock: PathBuf,
    seen: Mutex<HashSet<[u8; 32]>>,
}

const MAX_USED_IIDS_FILE: u64 = 256 * 1024 * 1024;

fn read_used(path: &Path) -> CliResult<HashSet<[u8; 32]>> {
    let mut seen = HashSet::new();
    if path.exists() {
        let text = files::read_bounded(path, MAX_USED_IIDS_FILE, "used instance ids")?;
        for line in String::from_utf8_lossy(&text).lines().filter(|l| !l.is_empty()) {
            let iid = hex_array(line.trim())
                .ok_or_else(|| CliError::corrupted(format!("{} is damaged", path.display())))?;
            seen.insert(iid);
        }
    }
    Ok(seen)
}

impl FileReplayGuard {
    /// Loads the guard at `path`, locking with `lock` (a missing file is an empty set).
    ///
    /// # Errors
    /// Corrupted data if the file does not parse.
    pub fn open(path: PathBuf, lock: PathBuf) -> CliResult<Self> {
        let seen = read_used(&path)?;
        Ok(Self { path, lock, seen: Mutex::new(seen) })
    }

    /// Whether `iid` was used (without recording it), as of when the guard was opened.
    pub fn was_used(&self, iid: &[u8; 32]) -> bool {
        self.seen.lock().map(|s| s.contains(iid)).unwrap_or(true)
    }

    fn record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        let storage = |e: CliError| ReplayError::Storage(e.message);
        let _lock = DirLock::acquire(&self.lock).map_err(storage)?;
        // Another run may have recorded ids since this guard was opened.
        let on_disk = read_used(&self.path).map_err(storage)?;
        let mut seen =
            self.seen.lock().map_err(|_| ReplayError::Storage("lock poisoned".into()))?;
        seen.extend(on_disk);
        if seen.contains(iid) {
            return Err(ReplayError::Reused);
        }
        let io = |e: std::io::Error| ReplayError::Storage(e.to_string());
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&self.path).map_err(io)?;
        f.write_all(format!("{}\n", hex::encode(iid)).as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        seen.insert(*iid);
        Ok(())
    }
}

impl ReplayGuard for FileReplayGuard {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), ReplayError> {
        self.record(iid)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn replay_guard_persists() {
        let dir = std::env::temp_dir().join(format!("dkls-party-guard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let g = FileReplayGuard::open(dir.join("used-iids"), dir.join(".lock")).unwrap();
        g.check_and_record(&[1; 32]).unwrap();
        assert_eq!(g.check_and_record(&[1; 32]), Err(ReplayError::Reused));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("used-iids")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let g = FileReplayGuard::open(dir.join("used-iids"), dir.join(".lock")).unwrap();
        assert!(g.was_used(&[1; 32]) && !g.was_used(&[2; 32]));
        assert_eq!(g.check_and_record(&[1; 32]), Err(ReplayError::Reused));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_runs_on_one_directory_accept_an_instance_id_once() {
        // Two guards opened before either recorded anything (two processes started together).
        let dir = std::env::temp_dir().join(format!("dkls-party-guard2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let open = || FileReplayGuard::open(dir.join("used-iids"), dir.join(".lock")).unwrap();
        let (a, b) = (open(), open());
        let results = std::thread::scope(|s| {
            let ta = s.spawn(|| {
                (0..50u8).map(|i| a.check_and_record(&[i; 32]).is_ok()).collect::<Vec<_>>()
            });
            let tb = s.spawn(|| {
                (0..50u8).map(|i| b.check_and_record(&[i; 32]).is_ok()).collect::<Vec<_>>()
            });
            (ta.join().unwrap(), tb.join().unwrap())
        });
        for i in 0..50 {
            assert!(results.0[i] ^ results.1[i], "instance id {i} accepted by both runs or none");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_bans_are_all_kept_and_authenticated() {
        let base = std::env::temp_dir().join(format!("dkls-party-bans-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = PartyDir::new(&base, None);
        let share = crate::bans::tests_support::share(3);
        let fast = KdfParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };
        dir.save_share(&share, "k", b"pw", fast).unwrap();
        std::thread::scope(|s| {
            for p in 1..=12u16 {
                let (dir, share) = (&dir, &share);
                s.spawn(move || dir.ban(share, p).unwrap());
            }
        });
        let (_, bans) = dir.load_share_and_bans(share.key_id(), b"pw").unwrap();
        assert_eq!(bans, (1..=12).collect::<Vec<u16>>());
        // Editing the list to lift a ban is detected, and so is deleting it.
        let path = dir.ban_path(share.key_id(), share.epoch());
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["banned"] = serde_json::json!([1]);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = dir.load_share_and_bans(share.key_id(), b"pw").unwrap_err();
        assert!(e.message.contains("does not authenticate"), "{}", e.message);
        std::fs::remove_file(&path).unwrap();
        let e = dir.load_share_and_bans(share.key_id(), b"pw").unwrap_err();
        assert!(e.message.contains("missing"), "{}", e.message);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
