//! Authenticated ban lists (`protocols.md` §3.7).
//!
//! A party banned for a key's OT material must stay banned: someone who can write to the data
//! directory must not be able to lift a ban by editing or deleting a file. The list of a share
//! of epoch `e` lives in `shares/<key_id>.e<e>.bans`, and its MAC is keyed by a key derived
//! from the (secret) share itself, so it can be neither forged nor moved to another key or
//! epoch without the passphrase. Its *presence* is enforced by the sealed share: shares sealed
//! as [`crate::sealed::Kind::KeyShareWithBans`] (every share this version writes) refuse to load
//! without a valid list. A refresh or reshare starts the new epoch with an empty list.
//!
//! What it does not stop: copying back an older share file together with its older ban list
//! (a restore); see the operations notes in `docs/dkls-party.md`.

use dkls23_core::{KeyShare, PartyIndex};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};

const FORMAT: &str = "dkls-party ban list v1";
const MAC_DOMAIN: &[u8] = b"dkls-party/v1/ban-list";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BanFile {
    format: String,
    key_id: String,
    epoch: u32,
    banned: Vec<PartyIndex>,
    mac: String,
}

fn mac_of(share: &KeyShare, banned: &[PartyIndex]) -> CliResult<Hmac<Sha256>> {
    let secret = share.to_bytes();
    let hk = hkdf::Hkdf::<Sha256>::new(Some(MAC_DOMAIN), secret.as_slice());
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(b"mac key", key.as_mut_slice())
        .map_err(|_| CliError::internal("deriving the ban-list key"))?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_slice())
        .map_err(|_| CliError::internal("ban-list MAC key"))?;
    mac.update(MAC_DOMAIN);
    mac.update(share.key_id());
    mac.update(&share.epoch().to_be_bytes());
    mac.update(&(banned.len() as u32).to_be_bytes());
    for p in banned {
        mac.update(&p.to_be_bytes());
    }
    Ok(mac)
}

/// The file content of `share`'s ban list `banned` (sorted, without duplicates).
///
/// # Errors
/// Internal errors only.
pub fn encode(share: &KeyShare, banned: &[PartyIndex]) -> CliResult<Vec<u8>> {
    let mut list = banned.to_vec();
    list.sort_unstable();
    list.dedup();
    let tag = mac_of(share, &list)?.finalize().into_bytes();
    let file = BanFile {
        format: FORMAT.into(),
        key_id: hex::encode(share.key_id()),
        epoch: share.epoch(),
        banned: list,
        mac: hex::encode(tag),
    };
    serde_json::to_vec_pretty(&file).map_err(|e| CliError::internal(format!("ban list: {e}")))
}

fn parse(bytes: &[u8], what: &str) -> CliResult<BanFile> {
    let file: BanFile = serde_json::from_slice(bytes)
        .map_err(|e| CliError::corrupted(format!("{what} does not parse: {e}")))?;
    if file.format != FORMAT {
        return Err(CliError::corrupted(format!("{what} has an unknown format")));
    }
    Ok(file)
}

/// The parties listed, without checking the MAC (for display and an early refusal only: a
/// forged list can add bans but never remove one, because signing checks [`decode_verified`]).
///
/// # Errors
/// Corrupted data if the file does not parse.
pub fn decode_unverified(bytes: &[u8], what: &str) -> CliResult<Vec<PartyIndex>> {
    Ok(parse(bytes, what)?.banned)
}

/// The parties listed, after checking that the list belongs to `share` (key and epoch) and was
/// written by a holder of it.
///
/// # Errors
/// Corrupted data if the file does not parse or does not authenticate.
pub fn decode_verified(bytes: &[u8], share: &KeyShare, what: &str) -> CliResult<Vec<PartyIndex>> {
    let file = parse(bytes, what)?;
    let tampered = || {
        CliError::corrupted(format!(
            "{what} does not authenticate: it was edited, or belongs to another key or epoch"
        ))
        .hint("restore the file from a backup; a party banned for this key stays banned")
    };
    if file.key_id != hex::encode(share.key_id()) || file.epoch != share.epoch() {
        return Err(tampered());
    }
    let tag = hex::decode(&file.mac).map_err(|_| tampered())?;
    mac_of(share, &file.banned)?.verify_slice(&tag).map_err(|_| tampered())?;
    Ok(file.banned)
}

/// A real share to test with (from the in-process simulator).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests_support {
    use dkls23_core::KeyShare;

    pub(crate) fn share(seed: u8) -> KeyShare {
        use rand_core::SeedableRng;
        let mut rngs: std::collections::BTreeMap<u16, rand_chacha::ChaCha20Rng> = (1..=2)
            .map(|i| {
                (i, rand_chacha::ChaCha20Rng::seed_from_u64(u64::from(seed) * 10 + u64::from(i)))
            })
            .collect();
        let (mut res, _) = dkls23_core::sim::dkg(2, 2, [seed; 32], &mut rngs, &mut |_, _, _| {});
        res.remove(&1).unwrap().unwrap()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::tests_support::share;
    use super::*;

    #[test]
    fn a_list_authenticates_only_for_its_share_and_content() {
        let s = share(1);
        let bytes = encode(&s, &[2]).unwrap();
        assert_eq!(decode_verified(&bytes, &s, "ban list").unwrap(), vec![2]);
        // Lifting the ban by editing the list is detected.
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["banned"] = serde_json::json!([]);
        let edited = serde_json::to_vec(&v).unwrap();
        let e = decode_verified(&edited, &s, "ban list").unwrap_err();
        assert!(e.message.contains("does not authenticate"), "{}", e.message);
        // An empty list of another key does not stand in for this one.
        let other = encode(&share(2), &[]).unwrap();
        assert!(decode_verified(&other, &s, "ban list").is_err());
    }
}
