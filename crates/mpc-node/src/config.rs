//! The node's configuration: one TOML file, secrets overridable from the environment, validated
//! as a whole so that startup reports every problem at once (one line each).
//!
//! Environment overrides (take precedence over the file):
//! `MPC_NODE_IDENTITY_KEY`, `MPC_NODE_MASTER_PASSWORD`, `MPC_NODE_MASTER_PASSWORD_FILE`,
//! `MPC_NODE_LISTEN`, `MPC_NODE_DATABASE_URL`, `MPC_NODE_RELAY_URLS` (space separated).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dkls23_core::identity::{
    Ed25519Identity, IdentityError, IdentityPublicKey, IdentitySigner, P256Identity, Signature,
};
use serde::Deserialize;
use zeroize::Zeroizing;

mod tls;

pub use tls::{ClientCertEntry, RelayTlsSection, TlsSection};

/// Default SDK listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8701";
/// Name of the SQLite file under the data directory.
pub const DEFAULT_DB_FILE: &str = "mpc-node.sqlite";

/// The TOML file as written (before validation).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Directory for the database (default `.`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// SDK API listen address.
    #[serde(default)]
    pub listen: Option<String>,
    /// Relay URLs (`http://host:port`): replicas of one relay, the first reachable one used and
    /// the next taking over when it fails.
    #[serde(default)]
    pub relay_urls: Vec<String>,
    /// Per-application limits (`[[app_limits]]`).
    #[serde(default)]
    pub app_limits: Vec<AppLimitsEntry>,
    /// Per-application webhooks (`[[webhooks]]`): where asynchronous operations are announced.
    #[serde(default)]
    pub webhooks: Vec<WebhookEntry>,
    /// The audit log file (JSON lines, chained and signed); `""` turns it off. Default: next to
    /// the SQLite database (`<name>.audit.jsonl`); with PostgreSQL `<data_dir>/audit.jsonl`
    /// when `data_dir` is set (each replica keeps its own); none for `memory:`.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// `sqlite://<path>` (default `sqlite://<data_dir>/mpc-node.sqlite`),
    /// `postgres://user:password@host:port/dbname[?sslmode=require]` (a database that several
    /// replicas of this node may share), or `memory:` (tests).
    #[serde(default)]
    pub database_url: Option<String>,
    /// PostgreSQL: a PEM file of the CA(s) that sign the database server's certificate
    /// (default: the bundled web PKI roots).
    #[serde(default)]
    pub database_ca_file: Option<PathBuf>,
    /// PostgreSQL: most connections this process opens (default 16).
    #[serde(default)]
    pub database_pool_size: Option<u32>,
    /// The storage master password (prefer the environment or a file).
    #[serde(default)]
    pub master_password: Option<String>,
    /// A file whose content (trailing newline stripped) is the master password.
    #[serde(default)]
    pub master_password_file: Option<PathBuf>,
    /// This node.
    pub node: NodeSection,
    /// Statically configured players.
    #[serde(default)]
    pub players: Vec<PlayerEntry>,
    /// API keys.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyEntry>,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// TLS for the SDK API (without it the API speaks plain HTTP).
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// Serve plain HTTP on an address other than loopback (behind a TLS-terminating proxy on a
    /// private network). Without `[tls]` and without this, only a loopback `listen` is accepted.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Client certificates (mTLS) that authenticate an application, like an API key.
    #[serde(default)]
    pub client_certs: Vec<ClientCertEntry>,
    /// How this node reaches `https://` relays.
    #[serde(default)]
    pub relay_tls: Option<RelayTlsSection>,
}

/// `[node]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// This node's player index (1..=255).
    pub index: u16,
    /// `ed25519:<64 hex seed>` or `p256:<64 hex secret>` (prefer the environment).
    #[serde(default)]
    pub identity_key: Option<String>,
    /// A file holding the identity key in the same form.
    #[serde(default)]
    pub identity_key_file: Option<PathBuf>,
}

/// `[[players]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayerEntry {
    /// Player index.
    pub index: u16,
    /// `ed25519:<hex>` or `p256:<hex>`.
    pub public_key: String,
}

/// `[[api_keys]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    /// The application id this key acts for.
    pub app: String,
    /// Lowercase hex SHA-256 of the API key (the key itself is never stored).
    pub sha256: String,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Protocol sessions running at once; more get 503.
    pub max_concurrent_sessions: usize,
    /// Largest request body; larger ones get 413.
    pub max_request_bytes: usize,
    /// Longest a protocol session may take (and longest wait for one round).
    pub session_timeout_secs: u64,
    /// Open HTTP connections at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Longest time to receive a request's headers; slower connections are closed.
    pub header_read_timeout_secs: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_concurrent_sessions: 64,
            max_request_bytes: 64 * 1024,
            session_timeout_secs: 60,
            max_connections: 1024,
            header_read_timeout_secs: 10,
        }
    }
}

/// Where shares are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (shared by the replicas of this node).
    Postgres(PostgresDatabase),
    /// In memory, lost on exit (tests).
    Memory,
}

/// A PostgreSQL database and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresDatabase {
    /// The `postgres://` URL (may hold the login password: never logged).
    pub url: Zeroizing<String>,
    /// Trust for the server's certificate (default: the bundled web PKI roots).
    pub ca_file: Option<PathBuf>,
    /// Most connections this process opens.
    pub pool_size: u32,
}

impl std::fmt::Debug for PostgresDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDatabase")
            .field("url", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// `[[app_limits]]`: one application's share of the node.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppLimitsEntry {
    /// The application (as in `[[api_keys]]` / `[[client_certs]]`).
    pub app: String,
    /// Requests per second this application may send (all routes but the health and metrics
    /// ones); more get 429 `rate_limited` with `Retry-After`.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Requests allowed in a burst above the rate (default: the rate, rounded up).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Operations (keygen, sign, presign, refresh, reshare, import, export, delete) this
    /// application may run at once; more get 429 `too_many_operations`.
    #[serde(default)]
    pub max_concurrent_operations: Option<usize>,
}

/// `[[webhooks]]`: where one application's asynchronous operations are announced when they end.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    /// The application (as in `[[api_keys]]` / `[[client_certs]]`).
    pub app: String,
    /// `http://host:port/path` or `https://host:port/path` (verified against the web PKI).
    pub url: String,
    /// The HMAC-SHA256 key the deliveries are signed with (at least 32 characters).
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the secret instead (one line).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

impl std::fmt::Debug for WebhookEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEntry")
            .field("app", &self.app)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A validated webhook.
#[derive(Clone)]
pub struct Webhook {
    /// The application.
    pub app: String,
    /// `http(s)://host:port` of the receiver.
    pub base_url: String,
    /// The path (with query) to POST to.
    pub path: String,
    /// The signing key.
    pub secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("app", &self.app)
            .field("url", &format_args!("{}{}", self.base_url, self.path))
            .finish_non_exhaustive()
    }
}

/// The node's identity key (its private half).
pub enum NodeIdentity {
    /// Ed25519.
    Ed25519(Ed25519Identity),
    /// ECDSA P-256.
    P256(P256Identity),
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeIdentity({})", self.public_key())
    }
}

impl IdentitySigner for NodeIdentity {
    fn public_key(&self) -> IdentityPublicKey {
        match self {
            Self::Ed25519(k) => k.public_key(),
            Self::P256(k) => k.public_key(),
        }
    }
    fn sign(&self, msg: &[u8]) -> Result<Signature, IdentityError> {
        match self {
            Self::Ed25519(k) => k.sign(msg),
            Self::P256(k) => k.sign(msg),
        }
    }
}

impl NodeIdentity {
    /// Parses `ed25519:<64 hex seed>` or `p256:<64 hex secret>`.
    ///
    /// # Errors
    /// A message saying what is wrong (never the key).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (kind, hex_key) = s
            .trim()
            .split_once(':')
            .ok_or("expected ed25519:<64 hex digits> or p256:<64 hex digits>")?;
        let raw = Zeroizing::new(hex::decode(hex_key).map_err(|_| "the key is not hex")?);
        let secret: Zeroizing<[u8; 32]> = Zeroizing::new(
            <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| "the key must be 32 bytes")?,
        );
        match kind {
            "ed25519" => Ok(Self::Ed25519(Ed25519Identity::from_seed(&secret))),
            "p256" => P256Identity::from_secret_bytes(&secret)
                .map(Self::P256)
                .map_err(|_| "not a valid P-256 secret".into()),
            _ => Err("unknown key kind (expected ed25519 or p256)".into()),
        }
    }

    /// The private key in the form [`NodeIdentity::parse`] reads, for a fresh Ed25519 identity.
    pub fn generate_ed25519_string(rng: &mut (impl rand_core::CryptoRng + ?Sized)) -> String {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        format!("ed25519:{}", hex::encode(seed.as_ref()))
    }
}

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    /// This node's player index.
    pub index: u16,
    /// This node's identity.
    pub identity: Arc<NodeIdentity>,
    /// Statically configured players (including this node).
    pub players: BTreeMap<u16, IdentityPublicKey>,
    /// Relay URLs.
    pub relay_urls: Vec<String>,
    /// The database.
    pub database: Database,
    /// The audit log file, if any.
    pub audit_log: Option<PathBuf>,
    /// Per-application limits.
    pub app_limits: Vec<AppLimitsEntry>,
    /// Per-application webhooks.
    pub webhooks: Vec<Webhook>,
    /// The storage master password.
    pub master_password: Zeroizing<Vec<u8>>,
    /// SDK listen address.
    pub listen: SocketAddr,
    /// SHA-256 of each API key and the application it acts for.
    pub api_keys: Vec<([u8; 32], String)>,
    /// Limits.
    pub limits: LimitsSection,
    /// The SDK API's TLS (loaded), `None` for plain HTTP.
    pub tls: Option<dkls_tls::ServerTls>,
    /// Client certificate fingerprints and the application each acts for.
    pub client_certs: Vec<(dkls_tls::Fingerprint, String)>,
    /// TLS for `https://` relays; `None` trusts the bundled web PKI roots.
    pub relay_tls: Option<dkls_tls::ClientTls>,
}

impl Config {
    /// The session timeout.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.session_timeout_secs)
    }

    /// After how many seconds without a change a PENDING key is abandoned on a store that
    /// replicas share: twice the session timeout (a request may wait for a session slot
    /// before its session starts) plus a minute for clocks that disagree.
    pub fn pending_stale_after_secs(&self) -> u64 {
        self.limits.session_timeout_secs.saturating_mul(2).saturating_add(60)
    }
}

/// Startup failure: one line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, line) in self.0.iter().enumerate() {
            if k > 0 {
                writeln!(f)?;
            }
            write!(f, "config error: {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Reads and validates the TOML file at `path` with environment overrides from `env`.
///
/// # Errors
/// [`ConfigError`] listing every problem.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", path.display())]))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, env)
}

/// Parses and validates TOML text; relative paths are resolved against `base`.
///
/// # Errors
/// [`ConfigError`] listing every problem.
pub fn parse(
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let file: FileConfig = toml::from_str(text)
        .map_err(|e| ConfigError(vec![format!("TOML: {}", e.to_string().replace('\n', " "))]))?;
    validate(file, base, env)
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

fn read_secret_file(path: &Path, what: &str, errs: &mut Vec<String>) -> Option<Zeroizing<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Some(Zeroizing::new(s.trim_end_matches(['\r', '\n']).to_owned())),
        Err(e) => {
            errs.push(format!("{what}: cannot read {}: {e}", path.display()));
            None
        }
    }
}

/// Validates a parsed file. Every step reports its problems on `errs`, one line each, in the
/// order of the file's sections.
///
/// # Errors
/// [`ConfigError`] listing every problem.
pub fn validate(
    file: FileConfig,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut errs = Vec::new();
    let index = file.node.index;
    if index == 0 || index > 255 {
        errs.push(format!("node.index must be between 1 and 255, got {index}"));
    }
    let identity = identity(&file.node, base, env, &mut errs);
    let players = players(&file.players, index, identity.as_deref(), &mut errs);
    let relay_urls = relay_urls(&file, env, &mut errs);
    let database = database(&file, base, env, &mut errs);
    let audit_log = audit_log(&file, base, &database);
    let master_password = master_password(&file, base, env, &database, &mut errs);
    let listen = listen(&file, env, &mut errs);
    let tls = tls::server_tls(file.tls.as_ref(), base, &mut errs);
    if file.tls.is_none() && !file.allow_plaintext && !listen.ip().is_loopback() {
        errs.push(format!(
            "listen {listen} is reachable from the network but the API has no [tls]: configure \
             [tls], or set allow_plaintext = true when a TLS proxy terminates in front of it"
        ));
    }
    let client_certs = tls::client_certs(&file.client_certs, tls.as_ref(), &mut errs);
    let relay_tls = tls::relay_tls(file.relay_tls.as_ref(), base, &mut errs);
    let api_keys = api_keys(&file.api_keys, !client_certs.is_empty(), &mut errs);
    let limits = limits(&file.limits, &mut errs);
    let app_limits = app_limits(&file, &api_keys, &client_certs, &mut errs);
    let webhooks = webhooks(&file, base, &api_keys, &client_certs, &mut errs);
    match identity {
        Some(identity) if errs.is_empty() => Ok(Config {
            index,
            identity,
            players,
            relay_urls,
            database,
            audit_log,
            app_limits,
            webhooks,
            master_password,
            listen,
            api_keys,
            limits,
            tls,
            client_certs,
            relay_tls,
        }),
        _ => Err(ConfigError(errs)),
    }
}

/// This node's identity: `MPC_NODE_IDENTITY_KEY`, else `node.identity_key`, else the file
/// `node.identity_key_file`.
fn identity(
    node: &NodeSection,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Vec<String>,
) -> Option<Arc<NodeIdentity>> {
    let text = if let Some(v) = env("MPC_NODE_IDENTITY_KEY") {
        Some(Zeroizing::new(v))
    } else if let Some(k) = node.identity_key.clone() {
        Some(Zeroizing::new(k))
    } else if let Some(p) = &node.identity_key_file {
        read_secret_file(&resolve(base, p), "node.identity_key_file", errs)
    } else {
        errs.push(
            "node.identity_key is missing (set it, node.identity_key_file, or \
             MPC_NODE_IDENTITY_KEY)"
                .into(),
        );
        None
    };
    text.and_then(|t| match NodeIdentity::parse(&t) {
        Ok(id) => Some(Arc::new(id)),
        Err(e) => {
            errs.push(format!("node.identity_key is malformed: {e}"));
            None
        }
    })
}

/// The static players, with this node (player `index`, identity `identity`) among them.
fn players(
    entries: &[PlayerEntry],
    index: u16,
    identity: Option<&NodeIdentity>,
    errs: &mut Vec<String>,
) -> BTreeMap<u16, IdentityPublicKey> {
    let mut players = BTreeMap::new();
    for (k, p) in entries.iter().enumerate() {
        if p.index == 0 || p.index > 255 {
            errs.push(format!("players[{k}].index must be between 1 and 255, got {}", p.index));
            continue;
        }
        match p.public_key.parse::<IdentityPublicKey>() {
            Ok(key) => {
                if players.insert(p.index, key).is_some() {
                    errs.push(format!("players[{k}]: duplicate player index {}", p.index));
                }
            }
            Err(e) => errs.push(format!("players[{k}].public_key is malformed: {e}")),
        }
    }
    let mut seen_keys = HashSet::new();
    for (i, key) in &players {
        if !seen_keys.insert(*key) {
            errs.push(format!("players: the public key of player {i} is used twice"));
        }
    }
    if let Some(id) = identity {
        add_own_player(&mut players, index, id.public_key(), errs);
    }
    players
}

/// Checks this node's entry among `players` against its identity `own`, or adds it.
fn add_own_player(
    players: &mut BTreeMap<u16, IdentityPublicKey>,
    index: u16,
    own: IdentityPublicKey,
    errs: &mut Vec<String>,
) {
    match players.get(&index) {
        Some(k) if *k != own => errs.push(format!(
            "players: the public key configured for player {index} (this node) does not \
             match node.identity_key"
        )),
        Some(_) => {}
        None => {
            if players.values().any(|k| *k == own) {
                errs.push(
                    "players: this node's identity key is configured for another index".into(),
                );
            }
            players.insert(index, own);
        }
    }
}

/// The relay URLs: `MPC_NODE_RELAY_URLS` (space separated), else `relay_urls`.
fn relay_urls(
    file: &FileConfig,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Vec<String>,
) -> Vec<String> {
    let relay_urls: Vec<String> = match env("MPC_NODE_RELAY_URLS") {
        Some(v) => v.split_whitespace().map(str::to_owned).collect(),
        None => file.relay_urls.clone(),
    };
    if relay_urls.is_empty() {
        errs.push("relay_urls is empty (give at least one http://host:port)".into());
    }
    for u in &relay_urls {
        if msg_relay_client::RelayUrl::parse(u).is_err() {
            errs.push(format!("relay_urls: {u:?} is not a valid relay URL"));
        }
    }
    relay_urls
}

/// The database: `MPC_NODE_DATABASE_URL`, else `database_url`, else the SQLite file in
/// `data_dir`.
fn database(
    file: &FileConfig,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Vec<String>,
) -> Database {
    let data_dir = resolve(base, file.data_dir.as_deref().unwrap_or(Path::new(".")));
    let db_url = env("MPC_NODE_DATABASE_URL").or(file.database_url.clone());
    match db_url.as_deref() {
        None => Database::Sqlite(data_dir.join(DEFAULT_DB_FILE)),
        Some("memory:") => Database::Memory,
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            let pool_size = file.database_pool_size.unwrap_or(16);
            if pool_size == 0 || pool_size > 1000 {
                errs.push(format!("database_pool_size {pool_size} is not in 1..=1000"));
            }
            if let Err(e) = mpc_node_store::check_postgres_url(u) {
                errs.push(format!("database_url is not a valid PostgreSQL URL: {e}"));
            }
            Database::Postgres(PostgresDatabase {
                url: Zeroizing::new(u.to_owned()),
                ca_file: file.database_ca_file.as_deref().map(|p| resolve(base, p)),
                pool_size: pool_size.clamp(1, 1000),
            })
        }
        Some(u) => match u.strip_prefix("sqlite://") {
            Some(p) if !p.is_empty() => Database::Sqlite(resolve(base, Path::new(p))),
            _ => {
                errs.push(format!(
                    "database_url {:?} is not supported (use sqlite://<path>, postgres://… or \
                     memory:)",
                    // Never the rest: it may hold a password.
                    u.split_once("://").map_or("(no scheme)", |(scheme, _)| scheme)
                ));
                Database::Sqlite(data_dir.join(DEFAULT_DB_FILE))
            }
        },
    }
}

/// The audit log's file (see [`FileConfig::audit_log`]).
fn audit_log(file: &FileConfig, base: &Path, database: &Database) -> Option<PathBuf> {
    match (&file.audit_log, database) {
        (Some(p), _) if p.as_os_str().is_empty() => None,
        (Some(p), _) => Some(resolve(base, p)),
        (None, Database::Sqlite(db)) => Some(db.with_extension("audit.jsonl")),
        (None, Database::Postgres(_)) => {
            file.data_dir.as_deref().map(|d| resolve(base, d).join("audit.jsonl"))
        }
        (None, Database::Memory) => None,
    }
}

/// The storage master password, from the environment first, then the file; required unless
/// the database is in memory.
fn master_password(
    file: &FileConfig,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    database: &Database,
    errs: &mut Vec<String>,
) -> Zeroizing<Vec<u8>> {
    let password = if let Some(v) = env("MPC_NODE_MASTER_PASSWORD") {
        Some(Zeroizing::new(v))
    } else if let Some(p) = env("MPC_NODE_MASTER_PASSWORD_FILE") {
        read_secret_file(Path::new(&p), "MPC_NODE_MASTER_PASSWORD_FILE", errs)
    } else if let Some(v) = file.master_password.clone() {
        Some(Zeroizing::new(v))
    } else if let Some(p) = &file.master_password_file {
        read_secret_file(&resolve(base, p), "master_password_file", errs)
    } else {
        None
    };
    match password {
        Some(p) if !p.is_empty() => Zeroizing::new(p.as_bytes().to_vec()),
        Some(_) => {
            errs.push("the master password is empty".into());
            Zeroizing::new(Vec::new())
        }
        None => {
            if *database != Database::Memory {
                errs.push(
                    "master password is missing (set master_password_file, \
                     MPC_NODE_MASTER_PASSWORD or MPC_NODE_MASTER_PASSWORD_FILE)"
                        .into(),
                );
            }
            Zeroizing::new(Vec::new())
        }
    }
}

/// The SDK listen address: `MPC_NODE_LISTEN`, else `listen`, else [`DEFAULT_LISTEN`].
fn listen(
    file: &FileConfig,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Vec<String>,
) -> SocketAddr {
    let listen_text =
        env("MPC_NODE_LISTEN").or(file.listen.clone()).unwrap_or_else(|| DEFAULT_LISTEN.into());
    match listen_text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            errs.push(format!("listen {listen_text:?} is not an address such as 127.0.0.1:8701"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        }
    }
}

/// The API key hashes and their applications. An empty list is only reported when nothing
/// else was wrong so far.
fn api_keys(
    entries: &[ApiKeyEntry],
    client_certs: bool,
    errs: &mut Vec<String>,
) -> Vec<([u8; 32], String)> {
    let mut api_keys = Vec::new();
    let mut seen = HashSet::new();
    for (k, a) in entries.iter().enumerate() {
        if !mpc_node_store::is_valid_app(&a.app) {
            errs.push(format!("api_keys[{k}].app {:?} is not a valid application id", a.app));
        }
        match hex::decode(&a.sha256).ok().and_then(|v| <[u8; 32]>::try_from(v).ok()) {
            Some(h) => {
                if !seen.insert(h) {
                    errs.push(format!("api_keys[{k}]: the same API key hash appears twice"));
                }
                api_keys.push((h, a.app.clone()));
            }
            None => errs.push(format!(
                "api_keys[{k}].sha256 must be the 64-hex-digit SHA-256 of the API key"
            )),
        }
    }
    if api_keys.is_empty() && !client_certs && errs.is_empty() {
        errs.push(
            "api_keys and client_certs are empty: no application could call this node".into(),
        );
    }
    api_keys
}

/// The limits, each within its range.
fn limits(limits: &LimitsSection, errs: &mut Vec<String>) -> LimitsSection {
    if limits.max_concurrent_sessions == 0 {
        errs.push("limits.max_concurrent_sessions must be at least 1".into());
    }
    if limits.max_request_bytes < 1024 {
        errs.push("limits.max_request_bytes must be at least 1024".into());
    }
    if limits.max_connections == 0 {
        errs.push("limits.max_connections must be at least 1".into());
    }
    if limits.header_read_timeout_secs == 0 || limits.header_read_timeout_secs > 600 {
        errs.push("limits.header_read_timeout_secs must be between 1 and 600".into());
    }
    if limits.session_timeout_secs == 0 || limits.session_timeout_secs > 3600 {
        errs.push("limits.session_timeout_secs must be between 1 and 3600".into());
    }
    limits.clone()
}

/// Checks `[[app_limits]]`: known applications, each once, positive limits.
fn app_limits(
    file: &FileConfig,
    api_keys: &[([u8; 32], String)],
    client_certs: &[(dkls_tls::Fingerprint, String)],
    errs: &mut Vec<String>,
) -> Vec<AppLimitsEntry> {
    let mut seen = std::collections::BTreeSet::new();
    for e in &file.app_limits {
        let known = api_keys.iter().any(|(_, a)| *a == e.app)
            || client_certs.iter().any(|(_, a)| *a == e.app);
        if !known {
            errs.push(format!(
                "app_limits: application {:?} has no API key or client certificate",
                e.app
            ));
        }
        if !seen.insert(e.app.as_str()) {
            errs.push(format!("app_limits: application {:?} is listed twice", e.app));
        }
        if let Some(r) = e.requests_per_second
            && !(r.is_finite() && r > 0.0 && r <= 1e6)
        {
            errs.push(format!("app_limits {:?}: requests_per_second must be in (0, 1e6]", e.app));
        }
        if e.burst == Some(0) {
            errs.push(format!("app_limits {:?}: burst must be at least 1", e.app));
        }
        if e.burst.is_some() && e.requests_per_second.is_none() {
            errs.push(format!("app_limits {:?}: burst needs requests_per_second", e.app));
        }
        if e.max_concurrent_operations == Some(0) {
            errs.push(format!(
                "app_limits {:?}: max_concurrent_operations must be at least 1",
                e.app
            ));
        }
    }
    file.app_limits.clone()
}

/// Checks `[[webhooks]]`: known applications, each once, an http(s) URL, a long enough secret.
fn webhooks(
    file: &FileConfig,
    base: &Path,
    api_keys: &[([u8; 32], String)],
    client_certs: &[(dkls_tls::Fingerprint, String)],
    errs: &mut Vec<String>,
) -> Vec<Webhook> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for e in &file.webhooks {
        let known = api_keys.iter().any(|(_, a)| *a == e.app)
            || client_certs.iter().any(|(_, a)| *a == e.app);
        if !known {
            errs.push(format!(
                "webhooks: application {:?} has no API key or client certificate",
                e.app
            ));
        }
        if !seen.insert(e.app.as_str()) {
            errs.push(format!("webhooks: application {:?} is listed twice", e.app));
        }
        let split = split_url(&e.url);
        if split.is_none() {
            errs.push(format!(
                "webhooks {:?}: url must be http://host:port/path or https://host:port/path",
                e.app
            ));
        }
        let secret = match (&e.secret, &e.secret_file) {
            (Some(s), None) => Some(Zeroizing::new(s.clone())),
            (None, Some(p)) => read_secret_file(&resolve(base, p), "webhooks.secret_file", errs),
            _ => {
                errs.push(format!("webhooks {:?}: set one of secret and secret_file", e.app));
                None
            }
        };
        if let Some(s) = &secret
            && s.trim().len() < 32
        {
            errs.push(format!("webhooks {:?}: the secret must have at least 32 characters", e.app));
        }
        if let (Some((base_url, path)), Some(secret)) = (split, secret) {
            out.push(Webhook {
                app: e.app.clone(),
                base_url,
                path,
                secret: Zeroizing::new(secret.trim().as_bytes().to_vec()),
            });
        }
    }
    out
}

/// `http(s)://authority/path` → (`http(s)://authority`, `/path`); `None` for anything else.
pub fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || path.contains(char::is_whitespace) {
        return None;
    }
    let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
    Some((format!("{scheme}://{authority}"), path))
}

/// Lowercase hex SHA-256 of an API key, as written in `[[api_keys]].sha256`.
pub fn hash_api_key(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}
