//! The out-of-band payload two phones exchange before a session (a QR code): the instance id,
//! the party's message-verifying key and its kind, and the relay URL.
//!
//! Encoding, version 1: the text `dkls1:` followed by the unpadded base64url of
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version (1) |
//! | 1 | key kind: 1 Ed25519, 2 ECDSA P-256 |
//! | 32 or 33 | verifying key: Ed25519 point, or compressed SEC1 P-256 point |
//! | 32 | instance id |
//! | 2 | relay URL length, big-endian (at most 512) |
//! | n | relay URL, UTF-8 |
//!
//! About 130 characters for a typical URL: a version-7 QR code in byte mode.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dkls23_core::identity::IdentityPublicKey;
use rand_core::{Rng as _, UnwrapErr};

use crate::error::MobileError;
use crate::phone::Session;
use crate::signer::IdentityKind;

const PREFIX: &str = "dkls1:";
const VERSION: u8 = 1;
const MAX_URL: usize = 512;

/// What one phone shows the other.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OobPayload {
    /// 32 random bytes ([`new_instance_id`]); the initiator's becomes the session id.
    pub instance_id: Vec<u8>,
    /// The kind of `verifying_key`.
    pub key_kind: IdentityKind,
    /// The key that verifies this phone's protocol messages (32-byte Ed25519 or 33-byte
    /// compressed SEC1 P-256).
    pub verifying_key: Vec<u8>,
    /// The relay both phones use (`https://…` or `wss://…`).
    pub relay_url: String,
}

fn bad(message: impl Into<String>) -> MobileError {
    MobileError::Payload { message: message.into() }
}

/// 32 fresh random bytes from the operating system: a session's instance id.
#[uniffi::export]
pub fn new_instance_id() -> Vec<u8> {
    let mut iid = vec![0u8; 32];
    UnwrapErr(getrandom::SysRng).fill_bytes(&mut iid);
    iid
}

pub(crate) fn identity_key(kind: IdentityKind, key: &[u8]) -> Result<IdentityPublicKey, String> {
    let parsed = match kind {
        IdentityKind::Ed25519 => <[u8; 32]>::try_from(key)
            .map(IdentityPublicKey::Ed25519)
            .map_err(|_| format!("an Ed25519 key is 32 bytes, not {}", key.len()))?,
        IdentityKind::P256 => <[u8; 33]>::try_from(key)
            .map(IdentityPublicKey::P256)
            .map_err(|_| format!("a compressed P-256 key is 33 bytes, not {}", key.len()))?,
    };
    parsed.validate().map_err(|e| format!("not a valid {kind:?} public key: {e}"))?;
    Ok(parsed)
}

/// The payload as text for a QR code.
///
/// # Errors
/// [`MobileError::Payload`] for a field that cannot be encoded (wrong lengths, a long URL).
#[uniffi::export]
pub fn encode_payload(payload: OobPayload) -> Result<String, MobileError> {
    identity_key(payload.key_kind, &payload.verifying_key).map_err(bad)?;
    if payload.instance_id.len() != 32 {
        return Err(bad(format!("the instance id is 32 bytes, not {}", payload.instance_id.len())));
    }
    let url = payload.relay_url.as_bytes();
    let url_len = u16::try_from(url.len())
        .ok()
        .filter(|n| usize::from(*n) <= MAX_URL)
        .ok_or_else(|| bad(format!("the relay URL is {} bytes; at most {MAX_URL}", url.len())))?;
    let mut bytes = Vec::with_capacity(70 + url.len());
    bytes.push(VERSION);
    bytes.push(match payload.key_kind {
        IdentityKind::Ed25519 => dkls23_core::identity::KIND_ED25519,
        IdentityKind::P256 => dkls23_core::identity::KIND_P256,
    });
    bytes.extend_from_slice(&payload.verifying_key);
    bytes.extend_from_slice(&payload.instance_id);
    bytes.extend_from_slice(&url_len.to_be_bytes());
    bytes.extend_from_slice(url);
    Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Reads a payload made by [`encode_payload`].
///
/// # Errors
/// [`MobileError::Payload`] saying what is wrong: not a payload, an unknown version or key
/// kind, a short or long field, an invalid key, a URL that is not UTF-8.
#[uniffi::export]
pub fn parse_payload(text: String) -> Result<OobPayload, MobileError> {
    let body = text
        .trim()
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad(format!("it does not start with {PREFIX:?} (not a dkls payload?)")))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|e| bad(format!("not base64url after {PREFIX:?}: {e}")))?;
    let mut rest = bytes.as_slice();
    let mut take = |n: usize, what: &str| -> Result<Vec<u8>, MobileError> {
        if rest.len() < n {
            return Err(bad(format!("too short: {what} is missing")));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head.to_vec())
    };
    let version = take(1, "the version")?;
    if version != [VERSION] {
        return Err(bad(format!(
            "version {} is not supported (this library reads version {VERSION}); update the app",
            version.first().copied().unwrap_or_default()
        )));
    }
    let kind = match take(1, "the key kind")?.as_slice() {
        [dkls23_core::identity::KIND_ED25519] => IdentityKind::Ed25519,
        [dkls23_core::identity::KIND_P256] => IdentityKind::P256,
        other => return Err(bad(format!("unknown key kind {other:?} (1 Ed25519, 2 P-256)"))),
    };
    let key_len = if kind == IdentityKind::Ed25519 { 32 } else { 33 };
    let verifying_key = take(key_len, "the verifying key")?;
    identity_key(kind, &verifying_key).map_err(bad)?;
    let instance_id = take(32, "the instance id")?;
    let url_len = take(2, "the relay URL length")?;
    let url_len = usize::from(u16::from_be_bytes([
        url_len.first().copied().unwrap_or_default(),
        url_len.get(1).copied().unwrap_or_default(),
    ]));
    if url_len > MAX_URL {
        return Err(bad(format!("the relay URL is {url_len} bytes; at most {MAX_URL}")));
    }
    let url = take(url_len, "part of the relay URL")?;
    if !rest.is_empty() {
        return Err(bad(format!("{} unexpected bytes after the relay URL", rest.len())));
    }
    let relay_url =
        String::from_utf8(url).map_err(|_| bad("the relay URL is not UTF-8".to_owned()))?;
    Ok(OobPayload { instance_id, key_kind: kind, verifying_key, relay_url })
}

/// The session both phones of a 2-party key run: the initiator is player 1 and its instance
/// id is the session id, the follower is player 2. Both phones call this with the same two
/// payloads.
///
/// # Errors
/// [`MobileError::Payload`] when the payloads cannot form a session (the same key twice,
/// different relays, a bad field).
#[uniffi::export]
pub fn mobile_session(initiator: OobPayload, follower: OobPayload) -> Result<Session, MobileError> {
    let first = identity_key(initiator.key_kind, &initiator.verifying_key).map_err(bad)?;
    let second = identity_key(follower.key_kind, &follower.verifying_key).map_err(bad)?;
    if first == second {
        return Err(bad("both payloads carry the same verifying key"));
    }
    if initiator.relay_url != follower.relay_url {
        return Err(bad(format!(
            "the phones name different relays ({} and {})",
            initiator.relay_url, follower.relay_url
        )));
    }
    if initiator.instance_id.len() != 32 {
        return Err(bad("the initiator's instance id is not 32 bytes"));
    }
    let public_keys = HashMap::from([(1, first.to_string()), (2, second.to_string())]);
    Ok(Session { session_id: initiator.instance_id, players: vec![1, 2], public_keys })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use dkls23_core::identity::{Ed25519Identity, IdentitySigner as _};

    fn sample() -> OobPayload {
        let key = match Ed25519Identity::from_seed(&[3; 32]).public_key() {
            IdentityPublicKey::Ed25519(k) => k.to_vec(),
            IdentityPublicKey::P256(_) => unreachable!(),
        };
        OobPayload {
            instance_id: vec![9; 32],
            key_kind: IdentityKind::Ed25519,
            verifying_key: key,
            relay_url: "https://relay.example.org".into(),
        }
    }

    #[test]
    fn payloads_round_trip_and_stay_short() {
        let text = encode_payload(sample()).unwrap();
        assert!(text.starts_with("dkls1:") && text.len() < 140, "{text}");
        assert_eq!(parse_payload(text).unwrap(), sample());
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let text = encode_payload(sample()).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(&text[6..]).unwrap();
        let with = |b: &[u8]| format!("dkls1:{}", URL_SAFE_NO_PAD.encode(b));
        let cases: Vec<(String, &str)> = vec![
            ("hello".into(), "does not start with"),
            ("dkls1:***".into(), "not base64url"),
            (with(&[2]), "version 2 is not supported"),
            (with(&[1, 7]), "unknown key kind"),
            (with(&bytes[..20]), "the verifying key is missing"),
            (with(&bytes[..50]), "the instance id is missing"),
            (with(&bytes[..bytes.len() - 3]), "part of the relay URL is missing"),
            (with(&[bytes.as_slice(), &[0]].concat()), "1 unexpected bytes"),
        ];
        for (text, expected) in cases {
            let err = parse_payload(text.clone()).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let mut bad_key = bytes.clone();
        bad_key[2..34].copy_from_slice(&[0; 32]);
        assert!(parse_payload(with(&bad_key)).unwrap_err().to_string().contains("not a valid"));
    }

    #[test]
    fn a_session_needs_two_keys_on_one_relay() {
        let a = sample();
        let mut b = sample();
        assert!(
            mobile_session(a.clone(), b.clone())
                .unwrap_err()
                .to_string()
                .contains("same verifying key")
        );
        let other = Ed25519Identity::from_seed(&[4; 32]).public_key();
        let IdentityPublicKey::Ed25519(k) = other else { unreachable!() };
        b.verifying_key = k.to_vec();
        let s = mobile_session(a.clone(), b.clone()).unwrap();
        assert_eq!((s.players, s.session_id), (vec![1, 2], a.instance_id.clone()));
        b.relay_url = "https://other.example".into();
        assert!(mobile_session(a, b).unwrap_err().to_string().contains("different relays"));
    }
}
