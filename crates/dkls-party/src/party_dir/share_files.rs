//! Sealed key shares (`shares/<key_id>.share`): saved with their public data and an empty ban
//! list of their epoch, opened with the passphrase, erased when a reshare removes this party.

use dkls23_core::{KeyShare, PartyIndex};

use super::share_info::{ShareInfo, read_info};
use super::{MAX_JSON_FILE, PartyDir};
use crate::bans;
use crate::error::{CliError, CliResult, ExitCode};
use crate::files;
use crate::sealed::{self, KdfParams, SealError};

const MAX_SHARE_FILE: u64 = 64 * 1024 * 1024;

impl PartyDir {
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
        files::write_atomic(&bans_path, &bans::encode(share, banned)?, 0o600)?;
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
            let banned = bans::decode_verified(&bytes, &share, &what)?;
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
}
