//! Ban lists (`shares/<key_id>.e<epoch>.bans`, in the format of [`crate::bans`]): the parties
//! banned for a key's current OT material, read before signing and added to when a run names a
//! culprit to ban.

use dkls23_core::{KeyShare, PartyIndex};

use super::{MAX_JSON_FILE, PartyDir};
use crate::bans;
use crate::error::{CliError, CliResult};
use crate::files;

impl PartyDir {
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
                out.extend(bans::decode_unverified(&bytes, &what)?);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The parties in the unauthenticated ban list of a share from before ban lists were
    /// authenticated (`shares/<key_id>.banned`).
    pub(super) fn legacy_banned(&self, key_id: &[u8; 32]) -> CliResult<Vec<PartyIndex>> {
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
            bans::decode_verified(&bytes, share, &what)?
        } else {
            self.legacy_banned(share.key_id())?
        };
        if !list.contains(&party) {
            list.push(party);
        }
        files::write_atomic(&path, &bans::encode(share, &list)?, 0o600)
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::sealed::KdfParams;

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
