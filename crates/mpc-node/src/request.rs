//! Validated requests: every SDK request body is checked here, once, and turned into a type
//! the operations take (hashes parsed, sessions resolved, player lists sorted). Each check
//! answers with the same [`ApiError`] text as before, in the same order.
//!
//! What can only be checked against a stored key (its player, its committee) is checked by
//! the operation, after the key was looked up, so that an unknown key still answers 404.

use std::collections::BTreeMap;

use dkls23_core::encoding::point_from_bytes;
use dkls23_core::hashing::{HashAlgorithm, prehash};
use dkls23_core::identity::IdentityPublicKey;
use dkls23_core::import_export::{EXPORT_CONFIRMATION, ImportRequest, ImportSecret};
use dkls23_core::reshare::{NewMember, ReshareSpec};
use dkls23_core::setup::Setup;
use getrandom::SysRng;
use mpc_node_client::api::{
    ExportRequestBody, GenerateKeyRequest, ImportKeyRequest, PresignRequestBody,
    RefreshRequestBody, ReshareRequestBody, SessionConfig, SignRequestBody,
};
use mpc_node_client::session::{self, SESSION_TTL_SECS, SessionError};
use rand_core::UnwrapErr;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::ApiError;

/// Most presignatures one request may create.
pub const MAX_PRESIGN_COUNT: u16 = 100;

/// A session field that is not usable: 400 with its text.
pub(crate) fn bad(e: SessionError) -> ApiError {
    ApiError::BadRequest(e.0)
}

/// 400 unless `player` (this node) is one of `members`.
pub(crate) fn require_member(player: u16, members: &[u16]) -> Result<(), ApiError> {
    if members.contains(&player) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "this node (player {player}) is not among session.players"
        )))
    }
}

/// `players` ascending; 400 if one is listed twice.
pub(crate) fn sorted_players(players: &[u16]) -> Result<Vec<u16>, ApiError> {
    let mut v = players.to_vec();
    v.sort_unstable();
    v.dedup();
    if v.len() != players.len() {
        return Err(ApiError::BadRequest("session.players lists a player twice".into()));
    }
    Ok(v)
}

/// A BIP32 path (`m/…`), absent meaning `m`.
pub(crate) fn derivation_path(path: Option<&str>) -> Result<Vec<u32>, ApiError> {
    session::parse_path(path.unwrap_or("m")).map_err(bad)
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok().and_then(|v| <[u8; 32]>::try_from(v).ok())
}

/// Who this node is among the players a request may name: its index, its identity and the
/// statically configured players.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Roster<'a> {
    /// This node's player index.
    pub(crate) index: u16,
    /// This node's identity key.
    pub(crate) identity: IdentityPublicKey,
    /// The configured players.
    pub(crate) players: &'a BTreeMap<u16, IdentityPublicKey>,
}

impl<'a> Roster<'a> {
    /// The roster of the node configured by `cfg`.
    pub(crate) fn of(cfg: &'a Config) -> Self {
        use dkls23_core::identity::IdentitySigner;
        Self { index: cfg.index, identity: cfg.identity.public_key(), players: &cfg.players }
    }

    /// The session's players with their identity keys, in index order.
    fn resolve(&self, session: &SessionConfig) -> Result<Vec<(u16, IdentityPublicKey)>, ApiError> {
        session::resolve_players(session, self.players).map_err(bad)
    }

    /// 400 unless this node is one of `players`.
    fn require_among(&self, players: &[(u16, IdentityPublicKey)]) -> Result<(), ApiError> {
        let indices: Vec<u16> = players.iter().map(|(i, _)| *i).collect();
        require_member(self.index, &indices)
    }
}

/// `POST /v1/keys`: a key generation this node takes part in.
#[derive(Debug)]
pub(crate) struct GenerateKey {
    pub(crate) iid: [u8; 32],
    pub(crate) key_id: String,
    pub(crate) setup: Setup,
}

impl GenerateKey {
    /// Checks the curve, the session, the key id and the players, and builds the setup of
    /// application `app`.
    pub(crate) fn validate(
        req: GenerateKeyRequest,
        roster: &Roster<'_>,
        app: &str,
    ) -> Result<Self, ApiError> {
        if !req.curve.eq_ignore_ascii_case("secp256k1") {
            return Err(ApiError::BadRequest(format!(
                "curve {:?} is not supported (only secp256k1)",
                req.curve
            )));
        }
        let iid = session::session_id(&req.session).map_err(bad)?;
        let key_id = req.key_id.unwrap_or_else(|| req.session.session_id.to_lowercase());
        session::check_key_id(&key_id).map_err(bad)?;
        let players = roster.resolve(&req.session)?;
        roster.require_among(&players)?;
        let setup = session::dkg_setup(iid, req.threshold, players, &key_id, app).map_err(bad)?;
        Ok(Self { iid, key_id, setup })
    }
}

/// `POST /v1/keys/import`: an import of an existing private key this node takes part in.
pub(crate) struct ImportKey {
    pub(crate) iid: [u8; 32],
    pub(crate) key_id: String,
    pub(crate) threshold: u16,
    pub(crate) parties: u16,
    pub(crate) setup: Setup,
    /// The key to split, at the dealer's node only.
    pub(crate) secret: Option<ImportSecret>,
}

impl ImportKey {
    /// Checks the session, the key id, the players (numbered `1..=n`), the public key and
    /// chain code, and at the dealer the private key; builds the setup.
    pub(crate) fn validate(req: ImportKeyRequest, roster: &Roster<'_>) -> Result<Self, ApiError> {
        let iid = session::session_id(&req.session).map_err(bad)?;
        session::check_key_id(&req.key_id).map_err(bad)?;
        let players = roster.resolve(&req.session)?;
        if players.iter().enumerate().any(|(k, (i, _))| usize::from(*i) != k + 1) {
            return Err(ApiError::BadRequest("import needs players numbered exactly 1..=n".into()));
        }
        roster.require_among(&players)?;
        let parties = u16::try_from(players.len())
            .map_err(|_| ApiError::BadRequest("too many players".into()))?;
        let pk = hex::decode(&req.public_key)
            .ok()
            .and_then(|v| <[u8; 33]>::try_from(v).ok())
            .and_then(|b| point_from_bytes(&b).ok())
            .ok_or_else(|| {
                ApiError::BadRequest("public_key must be a compressed point (33 bytes hex)".into())
            })?;
        let cc = hex32(&req.chain_code)
            .ok_or_else(|| ApiError::BadRequest("chain_code must be 32 bytes of hex".into()))?;
        let dealing = roster.index == req.dealer;
        let secret = dealer_secret(dealing, req.private_key.as_deref(), &pk, cc)?;
        let request = ImportRequest {
            dealer: req.dealer,
            public_key: pk,
            key_id: dkls23_core::keyshare::key_id(&pk, &cc),
        };
        let holders = players.into_iter().map(|(_, k)| k).collect();
        let setup = request
            .to_setup(iid, holders, req.threshold, SESSION_TTL_SECS)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Self { iid, key_id: req.key_id, threshold: req.threshold, parties, setup, secret })
    }
}

/// The private key to split: required at the dealer's node (and checked against `pk`),
/// refused anywhere else.
fn dealer_secret(
    dealing: bool,
    private_key: Option<&str>,
    pk: &k256::ProjectivePoint,
    cc: [u8; 32],
) -> Result<Option<ImportSecret>, ApiError> {
    match (dealing, private_key) {
        (true, Some(hex_key)) => {
            let raw = Zeroizing::new(
                hex::decode(hex_key)
                    .map_err(|_| ApiError::BadRequest("private_key is not hex".into()))?,
            );
            let sk = Zeroizing::new(
                <[u8; 32]>::try_from(raw.as_slice())
                    .map_err(|_| ApiError::BadRequest("private_key must be 32 bytes".into()))?,
            );
            let mut rng = UnwrapErr(SysRng);
            let secret = ImportSecret::new(&sk, Some(cc), &mut rng)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            if secret.public_key() != *pk {
                return Err(ApiError::BadRequest(
                    "private_key does not belong to public_key".into(),
                ));
            }
            Ok(Some(secret))
        }
        (true, None) => {
            Err(ApiError::BadRequest("this node is the dealer: private_key is required".into()))
        }
        (false, Some(_)) => {
            Err(ApiError::BadRequest("private_key goes only to the dealer's node".into()))
        }
        (false, None) => Ok(None),
    }
}

/// `POST /v1/keys/{key_id}/sign`.
#[derive(Debug)]
pub(crate) struct SignRequest {
    /// The 32-byte message hash that is signed.
    pub(crate) message: [u8; 32],
    pub(crate) path: Vec<u32>,
    pub(crate) iid: [u8; 32],
    /// The signers, ascending.
    pub(crate) signers: Vec<u16>,
    session_id: String,
    presignature_id: Option<String>,
}

/// A stored presignature a sign request finishes: its id as given and as an instance id.
#[derive(Debug)]
pub(crate) struct PresignatureRef {
    pub(crate) id: String,
    pub(crate) iid: [u8; 32],
}

impl TryFrom<SignRequestBody> for SignRequest {
    type Error = ApiError;

    fn try_from(req: SignRequestBody) -> Result<Self, ApiError> {
        let message = message_hash(&req)?;
        let path = derivation_path(req.path.as_deref())?;
        let iid = session::session_id(&req.session).map_err(bad)?;
        let signers = sorted_players(&req.session.players)?;
        Ok(Self {
            message,
            path,
            iid,
            signers,
            session_id: req.session.session_id,
            presignature_id: req.presignature_id,
        })
    }
}

impl SignRequest {
    /// The presignature to finish, if the request names one (checked once the key was found:
    /// it must be the session id and 64 hex digits).
    pub(crate) fn presignature(&self) -> Result<Option<PresignatureRef>, ApiError> {
        let Some(pid) = &self.presignature_id else { return Ok(None) };
        if !pid.eq_ignore_ascii_case(&self.session_id) {
            return Err(ApiError::BadRequest(
                "session.session_id must be the presignature_id".into(),
            ));
        }
        let iid = hex32(pid).ok_or_else(|| {
            ApiError::BadRequest("presignature_id must be 64 hexadecimal digits".into())
        })?;
        Ok(Some(PresignatureRef { id: pid.clone(), iid }))
    }
}

/// The hash to sign: `message_hash` as given, or `message` hashed with `hash_algorithm`.
fn message_hash(req: &SignRequestBody) -> Result<[u8; 32], ApiError> {
    match (&req.message_hash, &req.message) {
        (Some(h), None) => {
            if req.hash_algorithm.is_some() {
                return Err(ApiError::BadRequest(
                    "hash_algorithm goes with message, not with message_hash".into(),
                ));
            }
            let raw = hex::decode(h)
                .map_err(|_| ApiError::BadRequest("message_hash is not hex".into()))?;
            <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| {
                ApiError::BadRequest("message_hash must be 32 bytes (64 hex digits)".into())
            })
        }
        (None, Some(m)) => {
            let alg = hash_algorithm(req.hash_algorithm.as_deref())?;
            let raw =
                hex::decode(m).map_err(|_| ApiError::BadRequest("message is not hex".into()))?;
            prehash(alg, &raw).map_err(|e| ApiError::BadRequest(e.to_string()))
        }
        _ => Err(ApiError::BadRequest(
            "give exactly one of message_hash or message (+ hash_algorithm)".into(),
        )),
    }
}

/// The algorithm that hashes a `message`: KECCAK256 or SHA256.
fn hash_algorithm(name: Option<&str>) -> Result<HashAlgorithm, ApiError> {
    let alg: HashAlgorithm = name
        .ok_or_else(|| {
            ApiError::BadRequest("message needs hash_algorithm (KECCAK256 or SHA256)".into())
        })?
        .parse()
        .map_err(ApiError::BadRequest)?;
    if alg == HashAlgorithm::None {
        return Err(ApiError::BadRequest(
            "hash_algorithm must be KECCAK256 or SHA256 (use message_hash for a prehash)".into(),
        ));
    }
    Ok(alg)
}

/// `POST /v1/keys/{key_id}/presign`.
#[derive(Debug)]
pub(crate) struct PresignRequest {
    pub(crate) count: u16,
    pub(crate) path: Vec<u32>,
    /// The batch's session id; presignature k runs as `presign_iid(sid, k)`.
    pub(crate) sid: [u8; 32],
    /// The signers, ascending.
    pub(crate) signers: Vec<u16>,
}

impl TryFrom<PresignRequestBody> for PresignRequest {
    type Error = ApiError;

    fn try_from(req: PresignRequestBody) -> Result<Self, ApiError> {
        if req.count == 0 || req.count > MAX_PRESIGN_COUNT {
            return Err(ApiError::BadRequest(format!(
                "count must be between 1 and {MAX_PRESIGN_COUNT}"
            )));
        }
        let path = derivation_path(req.path.as_deref())?;
        let sid = session::session_id(&req.session).map_err(bad)?;
        let signers = sorted_players(&req.session.players)?;
        Ok(Self { count: req.count, path, sid, signers })
    }
}

/// `POST /v1/keys/{key_id}/refresh`.
#[derive(Debug)]
pub(crate) struct RefreshRequest {
    pub(crate) iid: [u8; 32],
    /// The players, ascending (every player of the key, checked once it was found).
    pub(crate) players: Vec<u16>,
}

impl TryFrom<RefreshRequestBody> for RefreshRequest {
    type Error = ApiError;

    fn try_from(req: RefreshRequestBody) -> Result<Self, ApiError> {
        let iid = session::session_id(&req.session).map_err(bad)?;
        let players = sorted_players(&req.session.players)?;
        Ok(Self { iid, players })
    }
}

/// `POST /v1/keys/{key_id}/reshare-spec`: what a reshare spec is computed from.
#[derive(Debug)]
pub(crate) struct ReshareSpecRequest {
    /// The new committee: `session.players` with their identity keys.
    pub(crate) new_committee: Vec<NewMember>,
    /// The dealers as given (checked for duplicates when the spec is computed from a share,
    /// so that an unknown key still answers 404).
    pub(crate) old_players: Vec<u16>,
    pub(crate) new_threshold: u16,
}

impl ReshareSpecRequest {
    /// Resolves the new committee.
    pub(crate) fn validate(
        req: &ReshareRequestBody,
        roster: &Roster<'_>,
    ) -> Result<Self, ApiError> {
        let new_committee = roster
            .resolve(&req.session)?
            .into_iter()
            .map(|(index, identity)| NewMember { index, identity })
            .collect();
        Ok(Self {
            new_committee,
            old_players: req.old_players.clone(),
            new_threshold: req.new_threshold,
        })
    }

    /// The dealers, ascending; 400 if one is listed twice.
    pub(crate) fn dealers(&self) -> Result<Vec<u16>, ApiError> {
        sorted_players(&self.old_players)
    }
}

/// `POST /v1/keys/{key_id}/reshare`.
#[derive(Debug)]
pub(crate) struct ReshareRequest {
    pub(crate) iid: [u8; 32],
    pub(crate) spec: ReshareSpecRequest,
    /// The spec from `reshare-spec`, if given (a joining node needs it).
    pub(crate) given_spec: Option<ReshareSpec>,
    /// Whether this node is in the new committee.
    pub(crate) continuing: bool,
}

impl ReshareRequest {
    /// Checks the session, resolves the new committee and decodes the given spec.
    pub(crate) fn validate(req: ReshareRequestBody, roster: &Roster<'_>) -> Result<Self, ApiError> {
        let iid = session::session_id(&req.session).map_err(bad)?;
        let spec = ReshareSpecRequest::validate(&req, roster)?;
        let given_spec = match &req.spec {
            Some(h) => Some(
                hex::decode(h)
                    .map_err(|_| ApiError::BadRequest("spec is not hex".into()))
                    .and_then(|b| {
                        ReshareSpec::from_bytes(&b)
                            .map_err(|e| ApiError::BadRequest(format!("spec: {e}")))
                    })?,
            ),
            None => None,
        };
        let continuing = spec.new_committee.iter().any(|m| m.identity == roster.identity);
        Ok(Self { iid, spec, given_spec, continuing })
    }
}

/// `POST /v1/keys/{key_id}/export`.
#[derive(Debug)]
pub(crate) struct ExportShareRequest {
    pub(crate) iid: [u8; 32],
    /// The exporting players, ascending.
    pub(crate) exporters: Vec<u16>,
    pub(crate) recipient_index: u16,
    pub(crate) recipient_identity: IdentityPublicKey,
    pub(crate) recipient_x25519: [u8; 32],
}

impl TryFrom<ExportRequestBody> for ExportShareRequest {
    type Error = ApiError;

    fn try_from(req: ExportRequestBody) -> Result<Self, ApiError> {
        if req.confirmation != EXPORT_CONFIRMATION {
            return Err(ApiError::BadRequest(format!(
                "export needs confirmation = {EXPORT_CONFIRMATION:?}"
            )));
        }
        let iid = session::session_id(&req.session).map_err(bad)?;
        let exporters = sorted_players(&req.session.players)?;
        let recipient_identity: IdentityPublicKey =
            req.recipient_identity.parse().map_err(|e| {
                ApiError::BadRequest(format!("recipient_identity is not a valid identity key: {e}"))
            })?;
        let recipient_x25519 = hex32(&req.recipient_x25519).ok_or_else(|| {
            ApiError::BadRequest("recipient_x25519 must be 32 bytes of hex".into())
        })?;
        Ok(Self {
            iid,
            exporters,
            recipient_index: req.recipient_index,
            recipient_identity,
            recipient_x25519,
        })
    }
}

/// `GET /v1/keys/{key_id}/xpub`: the path and the network of the extended key.
#[derive(Debug)]
pub(crate) struct XpubRequest {
    pub(crate) path: Vec<u32>,
    pub(crate) network: dkls23_core::bip32::Network,
}

impl XpubRequest {
    /// Parses the path, then the network (`mainnet`/`xpub` or `testnet`/`tpub`).
    pub(crate) fn parse(path: &str, network: &str) -> Result<Self, ApiError> {
        use dkls23_core::bip32::Network;
        let path = session::parse_path(path).map_err(bad)?;
        let network = match network.to_ascii_lowercase().as_str() {
            "" | "mainnet" | "xpub" => Network::Mainnet,
            "testnet" | "tpub" => Network::Testnet,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "network {other:?} is unknown (mainnet or testnet)"
                )));
            }
        };
        Ok(Self { path, network })
    }
}
