//! The JSON wire types of the SDK API, shared by the node (server side) and the client.
//!
//! Byte strings are lowercase hex without a `0x` prefix (the Ethereum address excepted).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The session configuration every participant's SDK client sends to its own node.
///
/// All parties must use the same session configuration: the nodes build byte-identical
/// protocol setups from it and meet through the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// 32 random bytes, hex; the protocol instance id. Never reuse one.
    pub session_id: String,
    /// The participating player indices (for key generation: exactly `1..=n`; for signing: the
    /// signers).
    pub players: Vec<u16>,
    /// Identity public keys (`ed25519:<hex>` or `p256:<hex>`) of players that are not statically
    /// configured at the node (e.g. a user's phone). A node's static configuration wins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub public_keys: BTreeMap<u16, String>,
}

/// `POST /v1/keys`: generate a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateKeyRequest {
    /// The key id (unique per application, 1..=128 chars of `[A-Za-z0-9._-]`); defaults to the
    /// session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Signing threshold t (2 ≤ t ≤ n).
    pub threshold: u16,
    /// Only `secp256k1`.
    #[serde(default = "default_curve")]
    pub curve: String,
    /// The session.
    pub session: SessionConfig,
}

fn default_curve() -> String {
    "secp256k1".into()
}

/// `POST /v1/keys/import`: share an existing private key among the session's players. Every
/// node gets the same request; only the dealer's node gets `private_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportKeyRequest {
    /// The key id for the imported key.
    pub key_id: String,
    /// Signing threshold t.
    pub threshold: u16,
    /// The session (players exactly `1..=n`).
    pub session: SessionConfig,
    /// The player that deals the key (one of the players).
    pub dealer: u16,
    /// Compressed public key of the imported key (hex).
    pub public_key: String,
    /// Its BIP32 chain code (hex, 32 bytes).
    pub chain_code: String,
    /// The private key (hex, 32 bytes): only in the request to the dealer's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

/// A key as the node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The application's key id.
    pub key_id: String,
    /// `PENDING`, `READY` or `ERROR`.
    pub status: String,
    /// Why the key is in `ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Threshold t.
    pub threshold: u16,
    /// Number of parties n.
    pub parties: u16,
    /// This node's player index in the key.
    pub player: u16,
    /// Share epoch (increases with refresh / reshare).
    pub epoch: u32,
    /// Compressed SEC1 public key (hex), once READY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// BIP32 chain code (hex), once READY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_code: Option<String>,
    /// EIP-55 Ethereum address of the root key, once READY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ethereum_address: Option<String>,
    /// The epoch of a new share from a refresh or reshare that this node holds staged but could
    /// not confirm yet (not every member's acknowledgement was found): its peers may be at
    /// that epoch. The node activates it as soon as the acknowledgements are found (it looks
    /// at start-up and before each use of the key, at most every 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_epoch: Option<u32>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    /// The application's keys.
    pub keys: Vec<KeyInfo>,
}

/// `POST /v1/keys/{key_id}/sign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequestBody {
    /// The session; `players` are the signers (at least t of the key's parties).
    pub session: SessionConfig,
    /// The 32-byte prehash to sign (hex). Give either this or `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_hash: Option<String>,
    /// The message (hex) to hash with `hash_algorithm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `KECCAK256` or `SHA256` (required with `message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<String>,
    /// Non-hardened BIP32 path such as `m/44/60/0/0/0`; default `m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Finish a stored presignature instead of running all rounds: its id (from `presign`),
    /// which must also be `session.session_id`; `players` and `path` must be the presigning ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presignature_id: Option<String>,
}

/// `POST /v1/keys/{key_id}/presign`: create `count` presignatures with the session's players.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresignRequestBody {
    /// The session (its id seeds the presignature ids); `players` are the future signers.
    pub session: SessionConfig,
    /// How many (1..=100).
    pub count: u16,
    /// The derivation path the presignatures are bound to; default `m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The presignatures created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignResponse {
    /// The key id.
    pub key_id: String,
    /// Ids of the new presignatures (each is the session id to finish it with).
    pub presignature_ids: Vec<String>,
}

/// `POST /v1/keys/{key_id}/refresh`: new shares of the same key for the same players.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequestBody {
    /// The session; `players` must be all of the key's parties.
    pub session: SessionConfig,
}

/// `POST /v1/keys/{key_id}/reshare`: move the key to a new committee and/or threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReshareRequestBody {
    /// The session; `players` is the new committee (exactly `1..=n'`), with `public_keys` for
    /// new members the node does not know statically.
    pub session: SessionConfig,
    /// Current holders (old indices) that deal; at least the old threshold.
    pub old_players: Vec<u16>,
    /// The new threshold.
    pub new_threshold: u16,
    /// The public reshare spec (hex, from `reshare-spec` at a current holder): required at a
    /// node that joins the committee without a share of the key; checked where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
}

/// `POST /v1/keys/{key_id}/reshare-spec`: the public spec a joining node needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshareSpecResponse {
    /// The key id.
    pub key_id: String,
    /// Hex of the canonical `ReshareSpec` encoding.
    pub spec: String,
}

/// The result of a reshare at this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshareResponse {
    /// The key after the reshare (absent if this node left the committee).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyInfo>,
    /// True when this node dealt but is not in the new committee (its share was destroyed).
    pub removed: bool,
}

/// `GET /v1/keys/{key_id}/xpub?path=…&network=mainnet|testnet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XpubResponse {
    /// The key id.
    pub key_id: String,
    /// The derivation path.
    pub path: String,
    /// Base58Check extended public key (`xpub…` / `tpub…`).
    pub xpub: String,
}

/// `POST /v1/keys/{key_id}/export`: this node sends its share, encrypted to the recipient.
/// The key stops being threshold-protected once the recipient has t shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequestBody {
    /// The session; `players` are the exporters (at least t holders of the key).
    pub session: SessionConfig,
    /// The recipient's setup index (not an exporter's, 1..=255).
    pub recipient_index: u16,
    /// The recipient's identity public key (`ed25519:<hex>` / `p256:<hex>`).
    pub recipient_identity: String,
    /// The recipient's static X25519 public key (hex, 32 bytes).
    pub recipient_x25519: String,
    /// Must be exactly `dkls23_core::import_export::EXPORT_CONFIRMATION`.
    pub confirmation: String,
}

/// What an exporting node answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportResponse {
    /// The key id.
    pub key_id: String,
    /// The export setup (hex of the canonical `Setup` encoding): the recipient runs
    /// `EmbeddedParty::receive_export` with it while the relay still holds the messages.
    pub setup: String,
}

/// A signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureResponse {
    /// The key id.
    pub key_id: String,
    /// The signed 32-byte prehash (hex).
    pub message_hash: String,
    /// r (hex, 32 bytes).
    pub r: String,
    /// s (hex, 32 bytes, low-s).
    pub s: String,
    /// Recovery id 0..=3.
    pub recovery_id: u8,
    /// DER encoding (hex).
    pub der: String,
    /// r ‖ s ‖ v with v = 27 + recovery id (hex, 65 bytes).
    pub rsv: String,
    /// The (derived) public key the signature verifies under (compressed, hex).
    pub public_key: String,
}

/// `GET /v1/keys/{key_id}/public-key?path=m/0/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyResponse {
    /// The key id.
    pub key_id: String,
    /// The derivation path.
    pub path: String,
    /// Compressed SEC1 public key at the path (hex).
    pub public_key: String,
    /// Chain code at the path (hex).
    pub chain_code: String,
    /// EIP-55 Ethereum address at the path.
    pub ethereum_address: String,
}

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An asynchronous operation: the `202 Accepted` answer of a call sent with
/// `Prefer: respond-async`, `GET /v1/operations/{operation_id}`, and the body of the
/// application's webhook when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationInfo {
    /// The operation's id (the same for a retry of the same request).
    pub operation_id: String,
    /// What runs: `generate`, `sign`, `presign`, `refresh`, `reshare`, `export`, `import`.
    pub operation: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Once ended: the HTTP status the synchronous call would have answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Once succeeded: the answer the synchronous call would have given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Once failed: the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// The error of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`unauthorized`, `not_found`, `conflict`, …).
    pub code: String,
    /// Human-readable explanation; never contains internals.
    pub message: String,
}
