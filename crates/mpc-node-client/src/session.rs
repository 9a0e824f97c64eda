//! From a [`SessionConfig`] to the byte-identical dkls23-core [`Setup`] every participant builds.
//!
//! * iid = the 32-byte session id;
//! * participants in index order, each with the node's statically configured identity key or,
//!   failing that, the session's dynamic one;
//! * `extra`: for key generation `"mpc-node/v1/dkg" ‖ u8 len ‖ key id`; for signing the
//!   dkls23-core [`SignRequest`] encoding;
//! * TTL [`SESSION_TTL_SECS`].

use std::collections::BTreeMap;

use dkls23_core::KeyShare;
use dkls23_core::identity::IdentityPublicKey;
use dkls23_core::setup::{ProtocolId, Setup};
use dkls23_core::sign::{PresignRequest, SignRequest};
use k256::ProjectivePoint;
use k256::elliptic_curve::sec1::ToSec1Point;
use sha3::{Digest, Keccak256};

use crate::api::SessionConfig;

/// TTL written into every setup (all participants must agree on it).
pub const SESSION_TTL_SECS: u32 = 3600;
/// Domain prefix of a key-generation setup's `extra` (v2: the application is bound in).
pub const DKG_EXTRA_DOMAIN: &[u8] = b"mpc-node/v2/dkg";
/// Longest key id.
pub const MAX_KEY_ID_LEN: usize = 128;
/// Longest derivation path.
pub const MAX_PATH_DEPTH: usize = 255;

/// Why a session configuration or request field is unusable (the message is safe to show).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SessionError(pub String);

fn err(msg: impl Into<String>) -> SessionError {
    SessionError(msg.into())
}

/// Parses the 64-hex-digit session id.
///
/// # Errors
/// When it is not exactly 32 bytes of hex.
pub fn session_id(cfg: &SessionConfig) -> Result<[u8; 32], SessionError> {
    let raw = hex::decode(&cfg.session_id)
        .map_err(|_| err("session.session_id must be 64 hexadecimal digits"))?;
    <[u8; 32]>::try_from(raw.as_slice())
        .map_err(|_| err("session.session_id must be 64 hexadecimal digits (32 bytes)"))
}

/// Checks a key id: 1..=128 characters of `[A-Za-z0-9._-]`.
///
/// # Errors
/// When the id is empty, too long or has another character.
pub fn check_key_id(key_id: &str) -> Result<(), SessionError> {
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
        return Err(err("key_id must be 1 to 128 characters"));
    }
    if !key_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return Err(err("key_id may only contain A-Z, a-z, 0-9, '.', '_' and '-'"));
    }
    Ok(())
}

/// Resolves the identity key of every player of the session: `static_keys` first (a node's
/// configuration), then the session's dynamic `public_keys`. Returns them in index order.
///
/// # Errors
/// Duplicate or zero indices, a player without a key, or a malformed dynamic key.
pub fn resolve_players(
    cfg: &SessionConfig,
    static_keys: &BTreeMap<u16, IdentityPublicKey>,
) -> Result<Vec<(u16, IdentityPublicKey)>, SessionError> {
    if cfg.players.is_empty() {
        return Err(err("session.players must not be empty"));
    }
    if cfg.players.len() > 255 {
        return Err(err("session.players lists more than 255 players"));
    }
    let mut players = cfg.players.clone();
    players.sort_unstable();
    if players.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
        return Err(err("session.players lists a player twice"));
    }
    if players.first() == Some(&0) {
        return Err(err("player indices start at 1"));
    }
    for i in cfg.public_keys.keys() {
        if !players.contains(i) {
            return Err(err(format!("session.public_keys names player {i}, who is not a player")));
        }
    }
    let mut out = Vec::with_capacity(players.len());
    for i in players {
        let key = match static_keys.get(&i) {
            Some(k) => *k,
            None => match cfg.public_keys.get(&i) {
                Some(s) => s.parse::<IdentityPublicKey>().map_err(|e| {
                    err(format!("session.public_keys[{i}] is not a valid identity key: {e}"))
                })?,
                None => {
                    return Err(err(format!(
                        "player {i} is not configured at this node and session.public_keys has \
                         no key for it"
                    )));
                }
            },
        };
        out.push((i, key));
    }
    Ok(out)
}

/// The `extra` of a key-generation setup: the key id and the application (tenant) the key
/// belongs to, `DOMAIN ‖ u8 len ‖ key id ‖ u16 len ‖ application`. Binding the application
/// means one key generation cannot be split across tenants: a node called by application A
/// and one called by application B compute different setups and never complete together.
pub fn dkg_extra(key_id: &str, application: &str) -> Vec<u8> {
    let app = application.as_bytes();
    let app = app.get(..usize::from(u16::MAX)).unwrap_or(app);
    let mut out = Vec::with_capacity(DKG_EXTRA_DOMAIN.len() + 3 + key_id.len() + app.len());
    out.extend_from_slice(DKG_EXTRA_DOMAIN);
    out.push(key_id.len().min(255) as u8);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&(app.len() as u16).to_be_bytes());
    out.extend_from_slice(app);
    out
}

/// The key-generation setup: n = number of players (which must be exactly `1..=n`).
///
/// # Errors
/// Invalid key id, threshold or players.
pub fn dkg_setup(
    iid: [u8; 32],
    threshold: u16,
    players: Vec<(u16, IdentityPublicKey)>,
    key_id: &str,
    application: &str,
) -> Result<Setup, SessionError> {
    check_key_id(key_id)?;
    let n = u16::try_from(players.len()).map_err(|_| err("too many players"))?;
    if players.iter().enumerate().any(|(k, (i, _))| usize::from(*i) != k + 1) {
        return Err(err("key generation needs players numbered exactly 1..=n"));
    }
    if threshold < 2 || threshold > n {
        return Err(err(format!("threshold must be between 2 and the number of players ({n})")));
    }
    let extra = dkg_extra(key_id, application);
    Setup::new(ProtocolId::Dkg, iid, n, threshold, players, extra, SESSION_TTL_SECS)
        .map_err(|e| err(format!("invalid session: {e}")))
}

/// The signing setup: the signers with the identity keys recorded in the key share, `extra` =
/// the [`SignRequest`] for `(share, path, message)`.
///
/// # Errors
/// Fewer than t signers, a signer outside the key, or an invalid setup.
pub fn sign_setup(
    iid: [u8; 32],
    share: &KeyShare,
    signers: &[u16],
    path: &[u32],
    message: [u8; 32],
) -> Result<Setup, SessionError> {
    let participants = signer_identities(share, signers)?;
    let req = SignRequest {
        key_id: *share.key_id(),
        keygen_sid: *share.keygen_sid(),
        path: path.to_vec(),
        message,
    };
    Setup::new(
        ProtocolId::Sign,
        iid,
        share.parties(),
        share.threshold(),
        participants,
        req.to_bytes(),
        SESSION_TTL_SECS,
    )
    .map_err(|e| err(format!("invalid session: {e}")))
}

/// The instance id of the `k`-th presignature of a presigning session:
/// `SHA-256("mpc-node/v1/presign" ‖ session id ‖ u16 k)`.
pub fn presign_iid(session_id: &[u8; 32], k: u16) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"mpc-node/v1/presign");
    h.update(session_id);
    h.update(k.to_be_bytes());
    h.finalize().into()
}

/// The presigning setup: like [`sign_setup`] with a [`PresignRequest`] (no message).
///
/// # Errors
/// As [`sign_setup`].
pub fn presign_setup(
    iid: [u8; 32],
    share: &KeyShare,
    signers: &[u16],
    path: &[u32],
) -> Result<Setup, SessionError> {
    let participants = signer_identities(share, signers)?;
    let req = PresignRequest {
        key_id: *share.key_id(),
        keygen_sid: *share.keygen_sid(),
        path: path.to_vec(),
    };
    Setup::new(
        ProtocolId::Sign,
        iid,
        share.parties(),
        share.threshold(),
        participants,
        req.to_bytes(),
        SESSION_TTL_SECS,
    )
    .map_err(|e| err(format!("invalid session: {e}")))
}

fn signer_identities(
    share: &KeyShare,
    signers: &[u16],
) -> Result<Vec<(u16, IdentityPublicKey)>, SessionError> {
    let mut participants = Vec::with_capacity(signers.len());
    for &i in signers {
        let raw = share
            .identity(i)
            .ok_or_else(|| err(format!("player {i} does not hold a share of this key")))?;
        let key = IdentityPublicKey::from_bytes(raw)
            .map_err(|_| err(format!("stored identity of player {i} is unusable")))?;
        participants.push((i, key));
    }
    if signers.len() < usize::from(share.threshold()) {
        return Err(err(format!(
            "signing needs at least {} players, the session lists {}",
            share.threshold(),
            signers.len()
        )));
    }
    Ok(participants)
}

/// Parses a non-hardened BIP32 path: `m`, `m/44/60/0/0/7` (or without the leading `m/`).
///
/// # Errors
/// Hardened or malformed components, or a path deeper than 255.
pub fn parse_path(path: &str) -> Result<Vec<u32>, SessionError> {
    use dkls23_core::bip32::DeriveError;
    dkls23_core::bip32::parse_path(path).map_err(|e| match e {
        DeriveError::Hardened(v) => err(format!(
            "path {path:?} has a hardened component ({v}); threshold keys derive only \
             non-hardened paths"
        )),
        DeriveError::BadPath(why) => err(format!("path {path:?}: {why} (use m/44/60/0/0/7)")),
        other => err(format!("path {path:?}: {other}")),
    })
}

/// Formats a path as `m/…`.
pub fn format_path(path: &[u32]) -> String {
    let mut s = String::from("m");
    for c in path {
        s.push('/');
        s.push_str(&c.to_string());
    }
    s
}

/// Compressed SEC1 encoding of a public key.
pub fn compressed(pk: &ProjectivePoint) -> [u8; 33] {
    let mut out = [0u8; 33];
    let enc = pk.to_affine().to_sec1_point(true);
    if let Ok(b) = <[u8; 33]>::try_from(enc.as_bytes()) {
        out = b;
    }
    out
}

/// The EIP-55 checksummed Ethereum address of a public key.
pub fn ethereum_address(pk: &ProjectivePoint) -> String {
    let enc = pk.to_affine().to_sec1_point(false);
    let xy = enc.as_bytes().get(1..).unwrap_or_default();
    let digest = Keccak256::digest(xy);
    let lower = hex::encode(digest.get(12..).unwrap_or_default());
    let check = hex::encode(Keccak256::digest(lower.as_bytes()));
    let mut out = String::from("0x");
    for (c, h) in lower.chars().zip(check.chars()) {
        if c.is_ascii_alphabetic() && h.to_digit(16).unwrap_or(0) >= 8 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use k256::elliptic_curve::PrimeField;
    use k256::{FieldBytes, Scalar};

    #[test]
    fn paths() {
        assert_eq!(parse_path("m").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_path("").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_path("m/44/60/0/0/7").unwrap(), vec![44, 60, 0, 0, 7]);
        assert_eq!(parse_path("1/2").unwrap(), vec![1, 2]);
        assert!(parse_path("m/44'/0").is_err());
        assert!(parse_path("m/2147483648").is_err());
        assert!(parse_path("m//1").is_err());
        assert!(parse_path("m/x").is_err());
        // Only the canonical spelling: no "m" glued to a number, no sign, no leading zeros.
        for bad in ["m12", "m/+5", "m/-1", "m/01", "m/ 1", "m/1/"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
        assert_eq!(format_path(&[44, 60]), "m/44/60");
    }

    #[test]
    fn key_ids() {
        assert!(check_key_id("wallet-1.a_b").is_ok());
        assert!(check_key_id("").is_err());
        assert!(check_key_id("a b").is_err());
        assert!(check_key_id(&"a".repeat(129)).is_err());
    }

    #[test]
    fn ethereum_address_of_private_key_one() {
        // The well-known address of the secp256k1 key with secret 1.
        let one = Scalar::from_repr(FieldBytes::from({
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        }))
        .unwrap();
        let pk = ProjectivePoint::GENERATOR * one;
        assert_eq!(ethereum_address(&pk), "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
    }

    #[test]
    fn static_keys_win_and_missing_keys_are_named() {
        use dkls23_core::identity::{Ed25519Identity, IdentitySigner};
        let a = Ed25519Identity::from_seed(&[1; 32]).public_key();
        let b = Ed25519Identity::from_seed(&[2; 32]).public_key();
        let mut statics = BTreeMap::new();
        statics.insert(1u16, a);
        let mut cfg = SessionConfig {
            session_id: hex::encode([7u8; 32]),
            players: vec![2, 1],
            public_keys: BTreeMap::new(),
        };
        let e = resolve_players(&cfg, &statics).unwrap_err();
        assert!(e.0.contains("player 2"), "{e}");
        cfg.public_keys.insert(2, b.to_string());
        cfg.public_keys.insert(1, b.to_string());
        let got = resolve_players(&cfg, &statics).unwrap();
        assert_eq!(got, vec![(1, a), (2, b)]);
        cfg.players.push(2);
        assert!(resolve_players(&cfg, &statics).is_err());
        assert_eq!(session_id(&cfg).unwrap(), [7; 32]);
        cfg.session_id = "00".into();
        assert!(session_id(&cfg).is_err());
    }
}
