//! The node: configuration, store, relay connection, per-key locks, session limits, and the
//! operations behind the SDK API (independent of HTTP).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dkls23_core::AbortReason;
use dkls23_core::encoding::point_from_bytes;
use dkls23_core::hashing::{HashAlgorithm, prehash};
use dkls23_core::identity::IdentitySigner;
use dkls23_core::setup::MemoryReplayGuard;
use dkls23_runner::{RunContext, RunOptions, announce_abort, run_dkg, run_sign};
use getrandom::SysRng;
use mpc_node_client::api::{
    GenerateKeyRequest, KeyInfo, KeyList, PublicKeyResponse, SignRequestBody, SignatureResponse,
};
use mpc_node_client::session;
use mpc_node_store::{
    CreateOutcome, KeyRecord, KeyStatus, MemoryStore, ReadyKey, SqliteStore, Store, StoreError,
};
use msg_relay_api::Relay;
use msg_relay_client::{ClientConfig, WsRelay};
use rand_core::UnwrapErr;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, Semaphore};
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::{Config, ConfigError, Database};
use crate::error::ApiError;
use crate::metrics::Metrics;

mod lifecycle;
mod staged;
pub use lifecycle::MAX_PRESIGN_COUNT;

/// One key's lock: signing takes it shared; generation, refresh and delete exclusively.
type KeyLock = Arc<RwLock<()>>;

/// (application, key name).
type KeyRef = (String, String);

/// Decoded shares by key: epoch and share. Bounded; invalidated on every change. Bans are never
/// cached: they are read from the store for every session, so a ban that was written is
/// enforced by the next request, whatever was cached.
type ShareCache = Mutex<HashMap<KeyRef, (u32, Arc<dkls23_core::KeyShare>)>>;

/// Per key: the parties banned while sessions were in flight (those sessions watch it and
/// abort when one of their signers appears). Entries without watchers are dropped.
type BanSignals = Mutex<HashMap<KeyRef, tokio::sync::watch::Sender<Vec<u16>>>>;

/// Which in-flight session a ban must abort: one of `signers` of key `key`.
pub(crate) struct BanScope {
    key: KeyRef,
    signers: Vec<u16>,
}

/// The ERROR reason of a key whose generation was cut off by a restart.
const INTERRUPTED: &str = "interrupted by a restart of the node; generate it again under another \
                           key_id, or DELETE this one first";

/// Most decoded shares kept in memory.
const SHARE_CACHE_ENTRIES: usize = 1024;

/// A running node's shared state.
pub struct Node {
    cfg: Config,
    store: Arc<dyn Store>,
    relay: Arc<dyn Relay>,
    /// The same client, for its connection state (`/readyz`).
    relay_link: Arc<WsRelay>,
    metrics: Arc<Metrics>,
    sessions: Arc<Semaphore>,
    locks: Mutex<HashMap<KeyRef, KeyLock>>,
    shares: ShareCache,
    ban_signals: BanSignals,
    outcomes: crate::outcomes::Outcomes,
    /// Keys with a refresh/reshare share staged but not confirmed.
    staged: staged::StagedKeys,
    closing: AtomicBool,
    abort: tokio::sync::watch::Sender<bool>,
    protocols: ProtocolRuntime,
}

/// The runtime protocol sessions run on: separate worker threads, so their CPU work never
/// blocks the API's async workers. Shut down in the background when the node is dropped.
struct ProtocolRuntime(Option<tokio::runtime::Runtime>);

impl ProtocolRuntime {
    fn new() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("mpc-protocol")
            .enable_time()
            .build()?;
        Ok(Self(Some(rt)))
    }

    fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.0 {
            Some(rt) => rt.spawn(fut),
            // Only after drop started; unreachable in practice.
            None => tokio::spawn(fut),
        }
    }
}

impl Drop for ProtocolRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("index", &self.cfg.index).finish_non_exhaustive()
    }
}

/// Opens the configured store (Argon2id key derivation runs off the async threads).
///
/// # Errors
/// One line naming the problem (wrong master password, unreachable database, …).
pub async fn open_store(cfg: &Config) -> Result<Arc<dyn Store>, ConfigError> {
    match &cfg.database {
        Database::Memory => Ok(Arc::new(MemoryStore::new())),
        Database::Sqlite(path) => open_sqlite(path.clone(), cfg.master_password.clone()).await,
    }
}

/// Creates `dir` and its missing parents with mode 0700 (the database holds sealed shares).
fn create_private_dir_all(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

async fn open_sqlite(
    path: std::path::PathBuf,
    password: zeroize::Zeroizing<Vec<u8>>,
) -> Result<Arc<dyn Store>, ConfigError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = create_private_dir_all(dir)
    {
        return Err(ConfigError(vec![format!(
            "database {}: cannot create the directory: {e}",
            path.display()
        )]));
    }
    let shown = path.display().to_string();
    let opened = tokio::task::spawn_blocking(move || SqliteStore::open(&path, &password))
        .await
        .map_err(|e| ConfigError(vec![format!("database {shown}: {e}")]))?;
    match opened {
        Ok(s) => {
            let wiped = s.presignatures_wiped_at_open();
            if wiped > 0 {
                warn!(
                    deleted = wiped,
                    counter = %s.generation_counter_path().display(),
                    "the database is not at its presignature generation (restored or copied): \
                     every stored presignature was deleted so none can be used twice"
                );
            }
            Ok(Arc::new(s))
        }
        Err(StoreError::WrongPassword) => Err(ConfigError(vec![format!(
            "database {shown}: wrong master password (the database was created with another one)"
        )])),
        Err(e) => Err(ConfigError(vec![format!("database {shown} cannot be opened: {e}")])),
    }
}

/// Connects to the first reachable relay URL (or, if none answers yet, keeps reconnecting to
/// the first one in the background).
async fn connect_relay(urls: &[String]) -> Result<Arc<WsRelay>, ConfigError> {
    let config = ClientConfig::default();
    for url in urls {
        match WsRelay::new(url, config.clone()) {
            Ok(r) => {
                if r.wait_connected(Duration::from_secs(2)).await {
                    info!(relay = %url, "connected to relay");
                    return Ok(Arc::new(r));
                }
                warn!(relay = %url, "relay not reachable");
            }
            Err(e) => warn!(relay = %url, error = %e, "bad relay URL"),
        }
    }
    let first = urls.first().ok_or_else(|| ConfigError(vec!["relay_urls is empty".into()]))?;
    warn!(relay = %first, "no relay reachable yet; reconnecting in the background");
    let r = WsRelay::new(first, config)
        .map_err(|e| ConfigError(vec![format!("relay_urls: {first}: {e}")]))?;
    Ok(Arc::new(r))
}

fn hex16(b: &[u8; 32]) -> String {
    hex::encode(b.get(..8).unwrap_or_default())
}

fn status_name(s: &KeyStatus) -> &'static str {
    match s {
        KeyStatus::Pending => "PENDING",
        KeyStatus::Ready => "READY",
        KeyStatus::Error(_) => "ERROR",
    }
}

/// The SDK view of a stored record.
pub fn key_info(r: &KeyRecord) -> KeyInfo {
    let address = r
        .public_key
        .and_then(|pk| point_from_bytes(&pk).ok())
        .map(|p| session::ethereum_address(&p));
    KeyInfo {
        key_id: r.key.clone(),
        status: status_name(&r.status).to_owned(),
        error: match &r.status {
            KeyStatus::Error(e) => Some(e.clone()),
            _ => None,
        },
        threshold: r.threshold,
        parties: r.parties,
        player: r.player,
        epoch: r.epoch,
        public_key: r.public_key.map(hex::encode),
        chain_code: r.chain_code.map(hex::encode),
        ethereum_address: address,
        staged_epoch: None,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

fn signature_response(
    key: &str,
    message: [u8; 32],
    sig: &dkls23_core::sign::Signature,
    public_key: &k256::ProjectivePoint,
) -> SignatureResponse {
    SignatureResponse {
        key_id: key.to_owned(),
        message_hash: hex::encode(message),
        r: hex::encode(sig.r),
        s: hex::encode(sig.s),
        recovery_id: sig.recovery_id,
        der: hex::encode(sig.to_der()),
        rsv: hex::encode(sig.to_rsv()),
        public_key: hex::encode(session::compressed(public_key)),
    }
}

fn bad(e: session::SessionError) -> ApiError {
    ApiError::BadRequest(e.0)
}

/// 409 for a session with a banned player.
pub(crate) fn banned_conflict(player: u16) -> ApiError {
    ApiError::Conflict(format!(
        "player {player} is banned for this key; reshare the key to replace it"
    ))
}

/// How a protocol task ended when it did not succeed.
enum Aborted {
    Protocol(dkls23_core::Error),
    Banned(u16),
}

fn not_found(key: &str) -> ApiError {
    ApiError::NotFound(format!("no key {key:?}"))
}

impl Node {
    /// Opens the store, connects to the relay and builds the node.
    ///
    /// # Errors
    /// [`ConfigError`] with one line per problem.
    pub async fn open(cfg: Config) -> Result<Arc<Self>, ConfigError> {
        let store = open_store(&cfg).await?;
        Self::with_store(cfg, store).await
    }

    /// Builds the node on an already opened store.
    ///
    /// # Errors
    /// [`ConfigError`] if no relay client can be created.
    pub async fn with_store(cfg: Config, store: Arc<dyn Store>) -> Result<Arc<Self>, ConfigError> {
        // No session of this process runs yet: a PENDING key was interrupted by a crash or a
        // restart, and its session is gone for good.
        let st = store.clone();
        let failed = tokio::task::spawn_blocking(move || st.fail_pending(INTERRUPTED))
            .await
            .map_err(|e| ConfigError(vec![format!("store: {e}")]))?
            .map_err(|e| ConfigError(vec![format!("store: {e}")]))?;
        if failed > 0 {
            warn!(keys = failed, "keys left PENDING by an earlier run are now ERROR");
        }
        let st = store.clone();
        let staged = tokio::task::spawn_blocking(move || st.list_staged())
            .await
            .map_err(|e| ConfigError(vec![format!("store: {e}")]))?
            .map_err(|e| ConfigError(vec![format!("store: {e}")]))?;
        let relay_link = connect_relay(&cfg.relay_urls).await?;
        let node = Arc::new(Self {
            sessions: Arc::new(Semaphore::new(cfg.limits.max_concurrent_sessions)),
            cfg,
            store,
            relay: relay_link.clone(),
            relay_link,
            metrics: Arc::new(Metrics::default()),
            locks: Mutex::new(HashMap::new()),
            shares: Mutex::new(HashMap::new()),
            ban_signals: Mutex::new(HashMap::new()),
            outcomes: crate::outcomes::Outcomes::default(),
            staged: staged::StagedKeys::default(),
            closing: AtomicBool::new(false),
            abort: tokio::sync::watch::Sender::new(false),
            protocols: ProtocolRuntime::new().map_err(|e| {
                ConfigError(vec![format!("cannot start the protocol runtime: {e}")])
            })?,
        });
        node.settle_all_staged(staged);
        Ok(node)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether the node can serve sessions now: not stopping, and connected to its relay.
    /// `Err` names what is missing (for `/readyz`).
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.closing.load(Ordering::Acquire) {
            return Err("the node is stopping");
        }
        if !self.relay_link.is_connected() {
            return Err("the node is not connected to its relay (reconnecting)");
        }
        Ok(())
    }

    /// Remembered outcomes of detached operations (see [`crate::outcomes`]).
    pub fn outcomes(&self) -> &crate::outcomes::Outcomes {
        &self.outcomes
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Refuses new sessions from now on (in-flight ones finish or time out).
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Fails every session in flight now (their keys go to ERROR / the requests fail cleanly).
    pub fn abort_sessions(&self) {
        self.abort.send_replace(true);
    }

    /// The application an API key acts for (constant-time comparison of hashes).
    pub fn authenticate(&self, api_key: &str) -> Option<String> {
        use sha2::Digest;
        use subtle::ConstantTimeEq;
        let h: [u8; 32] = sha2::Sha256::digest(api_key.as_bytes()).into();
        let mut found = None;
        for (hash, app) in &self.cfg.api_keys {
            if bool::from(hash.ct_eq(&h)) {
                found = Some(app.clone());
            }
        }
        found
    }

    fn key_lock(&self, app: &str, key: &str) -> Arc<RwLock<()>> {
        let mut m = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() > 4096 {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        m.entry((app.to_owned(), key.to_owned())).or_default().clone()
    }

    fn cached_share(&self, id: &KeyRef, epoch: u32) -> Option<Arc<dkls23_core::KeyShare>> {
        let m = self.shares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.get(id).filter(|(e, _)| *e == epoch).map(|(_, s)| s.clone())
    }

    fn cache_share(&self, id: KeyRef, share: Arc<dkls23_core::KeyShare>) {
        let mut m = self.shares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= SHARE_CACHE_ENTRIES {
            m.clear();
        }
        m.insert(id, (share.epoch(), share));
    }

    /// A watcher of the bans of `scope.key` recorded from now on.
    fn watch_bans(&self, scope: &BanScope) -> tokio::sync::watch::Receiver<Vec<u16>> {
        let mut m = self.ban_signals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() > 4096 {
            m.retain(|_, tx| tx.receiver_count() > 0);
        }
        m.entry(scope.key.clone())
            .or_insert_with(|| tokio::sync::watch::Sender::new(Vec::new()))
            .subscribe()
    }

    /// Tells every in-flight session of (app, key) that `party` is banned.
    fn signal_ban(&self, app: &str, key: &str, party: u16) {
        let m = self.ban_signals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = m.get(&(app.to_owned(), key.to_owned())) {
            tx.send_modify(|v| v.push(party));
        }
    }

    /// Drops the in-flight ban signals of (app, key): after a refresh or reshare (whose new OT
    /// material starts with no bans) or a delete.
    fn forget_ban_signals(&self, app: &str, key: &str) {
        let mut m = self.ban_signals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.remove(&(app.to_owned(), key.to_owned()));
    }

    /// The scope of a session of `record`'s key with `signers`.
    pub(crate) fn ban_scope(record: &KeyRecord, signers: &[u16]) -> BanScope {
        BanScope { key: (record.app.clone(), record.key.clone()), signers: signers.to_vec() }
    }

    fn forget_share(&self, app: &str, key: &str) {
        let mut m = self.shares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.remove(&(app.to_owned(), key.to_owned()));
    }

    async fn read_lock(&self, app: &str, key: &str) -> OwnedRwLockReadGuard<()> {
        self.key_lock(app, key).read_owned().await
    }

    async fn write_lock(&self, app: &str, key: &str) -> OwnedRwLockWriteGuard<()> {
        self.key_lock(app, key).write_owned().await
    }

    /// Runs `f` against the store on the blocking pool.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Result<T, StoreError>, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store)).await.map_err(|e| {
            error!(error = %e, "store task failed");
            ApiError::Internal
        })
    }

    /// Like [`Node::db`], every store error being internal.
    async fn db_ok<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.db(f).await?.map_err(|e| {
            error!(error = %e, "store failed");
            ApiError::Internal
        })
    }

    fn run_options(&self) -> RunOptions {
        RunOptions {
            round_timeout: self.cfg.session_timeout(),
            observer: Some(self.metrics.clone()),
            ..RunOptions::default()
        }
    }

    /// Runs a protocol future on the protocol runtime (off the API's async workers), bounded by
    /// the session limit; fails it when the node aborts its sessions.
    async fn protocol<T, Fut>(
        &self,
        protocol: &'static str,
        make: impl FnOnce() -> Fut + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, dkls23_core::Error>> + Send + 'static,
    {
        self.protocol_scoped(protocol, None, None, make).await
    }

    /// A session slot, taken before any state is created for a session (503 when full).
    fn reserve_session(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.sessions.clone().try_acquire_owned().map_err(|_| ApiError::Busy)
    }

    /// A session slot for `setup`'s session. When the node is full (503) the other parties
    /// are told at once, in a signed abort notice, so that their runs fail now with "player i
    /// is busy" instead of at their round timeout; the session id is then spent here too (no
    /// key record is created, so a key id stays free).
    pub(crate) async fn reserve_for(
        &self,
        setup: &dkls23_core::setup::Setup,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let busy = match self.reserve_session() {
            Ok(permit) => return Ok(permit),
            Err(e) => e,
        };
        let iid = *setup.iid();
        if !matches!(self.db(move |s| s.record_iid(&iid)).await, Ok(Ok(_))) {
            warn!("could not record the refused session id");
        }
        let relay = self.relay.clone();
        let signer: Arc<dyn IdentitySigner + Send + Sync> = self.cfg.identity.clone();
        let opts = self.run_options();
        let setup = setup.clone();
        tokio::spawn(async move {
            let mut rng = UnwrapErr(SysRng);
            let reason = AbortReason::Busy;
            if let Err(e) = announce_abort(
                &RunContext::new(&*relay, signer, &dkls23_core::setup::MemoryReplayGuard::new())
                    .with_options(opts.clone()),
                &setup,
                reason,
                &mut rng,
            )
            .await
            {
                warn!(error = %e, "could not tell the other parties that this node is busy");
            }
        });
        Err(busy)
    }

    /// [`Node::protocol`] for a session with `scope`'s signers: it is aborted as soon as one of
    /// them is banned for the key (by any session of this node), as `protocols.md` §3.7 asks.
    async fn protocol_scoped<T, Fut>(
        &self,
        protocol: &'static str,
        scope: Option<BanScope>,
        reserved: Option<tokio::sync::OwnedSemaphorePermit>,
        make: impl FnOnce() -> Fut + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, dkls23_core::Error>> + Send + 'static,
    {
        let mut bans = scope.as_ref().map(|sc| (self.watch_bans(sc), sc.signers.clone()));
        if self.closing.load(Ordering::SeqCst) {
            return Err(ApiError::ShuttingDown);
        }
        let permit = match reserved {
            Some(p) => p,
            None => self.reserve_session()?,
        };
        self.metrics.in_flight(1);
        let start = Instant::now();
        let mut abort = self.abort.subscribe();
        let joined = self
            .protocols
            .spawn(async move {
                let _permit = permit;
                let run = make();
                let banned = async {
                    match &mut bans {
                        Some((rx, signers)) => {
                            let hit = rx
                                .wait_for(|b| signers.iter().any(|s| b.contains(s)))
                                .await
                                .ok()
                                .and_then(|b| signers.iter().copied().find(|s| b.contains(s)));
                            match hit {
                                Some(p) => p,
                                None => std::future::pending().await,
                            }
                        }
                        None => std::future::pending().await,
                    }
                };
                let r = tokio::select! {
                    r = run => r.map_err(Aborted::Protocol),
                    _ = abort.wait_for(|a| *a) => Err(Aborted::Protocol(
                        dkls23_core::Error::Transport("session aborted: the node is stopping".into()),
                    )),
                    p = banned => Err(Aborted::Banned(p)),
                };
                Ok::<_, std::io::Error>(r)
            })
            .await;
        self.metrics.in_flight(-1);
        let took = start.elapsed();
        let result = match joined {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                error!(error = %e, "session failed to start");
                self.metrics.session(protocol, "internal", took);
                return Err(ApiError::Internal);
            }
            Err(e) => {
                error!(error = %e, "session task failed");
                self.metrics.session(protocol, "internal", took);
                return Err(ApiError::Internal);
            }
        };
        let result = match result {
            Err(Aborted::Banned(p)) => {
                self.metrics.session(protocol, "banned", took);
                warn!(party = p, "session aborted: a signer was banned for this key meanwhile");
                return Err(banned_conflict(p));
            }
            Err(Aborted::Protocol(e)) => Err(e),
            Ok(v) => Ok(v),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(dkls23_core::Error::Timeout { .. }) => "timeout",
            Err(dkls23_core::Error::Transport(_)) => {
                self.metrics.relay_error();
                "relay_error"
            }
            Err(dkls23_core::Error::BanAndAbort { .. }) => "banned",
            Err(dkls23_core::Error::Blame { .. }) => "blamed",
            Err(dkls23_core::Error::InvalidInput(_)) => "invalid_input",
            Err(_) => "failed",
        };
        self.metrics.session(protocol, outcome, took);
        match &result {
            Ok(_) => info!(ms = took.as_millis() as u64, "session finished"),
            Err(e) => warn!(ms = took.as_millis() as u64, error = %e, "session failed"),
        }
        result.map_err(ApiError::Protocol)
    }

    /// Persists the ban a failed session asks for (`map` turns the error's party index into
    /// the key's player index; `None` when the culprit is no player of the key), then aborts
    /// every in-flight session of the key with that player. The ban is written before anything
    /// else, and bans are never cached, so every request that starts after this returns refuses
    /// the player.
    async fn record_ban_mapped(
        &self,
        app: &str,
        key: &str,
        e: &dkls23_core::Error,
        map: impl Fn(u16) -> Option<u16>,
    ) {
        if let dkls23_core::Error::BanAndAbort { party, reason } = e {
            let Some(p) = map(*party) else {
                warn!(party, "a ban was asked for a party that is no player of the key");
                return;
            };
            let (a, k, r) = (app.to_owned(), key.to_owned(), reason.clone());
            match self.db_ok(move |s| s.record_ban(&a, &k, p, &r)).await {
                Ok(()) => {
                    self.metrics.ban();
                    warn!(party = p, "party banned for this key");
                }
                Err(_) => error!(party = p, "could not persist a ban"),
            }
            // Even if the store failed: no session with the culprit goes on in this process.
            self.signal_ban(app, key, p);
        }
    }

    /// [`Node::record_ban_mapped`] for sessions whose party indices are the key's players.
    async fn record_ban(&self, app: &str, key: &str, e: &dkls23_core::Error) {
        self.record_ban_mapped(app, key, e, Some).await;
    }

    async fn claim_session_id(&self, iid: [u8; 32]) -> Result<(), ApiError> {
        if self.db_ok(move |s| s.record_iid(&iid)).await? {
            Ok(())
        } else {
            Err(ApiError::Conflict("session_id was already used; use a fresh random one".into()))
        }
    }

    fn existing(r: &KeyRecord) -> Result<KeyInfo, ApiError> {
        match &r.status {
            KeyStatus::Ready => Ok(key_info(r)),
            KeyStatus::Pending => {
                Err(ApiError::Conflict(format!("key {:?} is being generated (PENDING)", r.key)))
            }
            KeyStatus::Error(reason) => Err(ApiError::Conflict(format!(
                "key {:?} failed to generate ({reason}); delete it or use another key_id",
                r.key
            ))),
        }
    }

    /// Key generation: returns the READY key (new, or the existing one with this key id).
    ///
    /// # Errors
    /// [`ApiError`]: 400 for a bad request, 409 for a PENDING / ERROR key id or a used session
    /// id, protocol errors.
    pub async fn generate(&self, app: &str, req: GenerateKeyRequest) -> Result<KeyInfo, ApiError> {
        if !req.curve.eq_ignore_ascii_case("secp256k1") {
            return Err(ApiError::BadRequest(format!(
                "curve {:?} is not supported (only secp256k1)",
                req.curve
            )));
        }
        let iid = session::session_id(&req.session).map_err(bad)?;
        let key_id = req.key_id.clone().unwrap_or_else(|| req.session.session_id.to_lowercase());
        session::check_key_id(&key_id).map_err(bad)?;
        let players = session::resolve_players(&req.session, &self.cfg.players).map_err(bad)?;
        if !players.iter().any(|(i, _)| *i == self.cfg.index) {
            return Err(ApiError::BadRequest(format!(
                "this node (player {}) is not among session.players",
                self.cfg.index
            )));
        }
        let setup = session::dkg_setup(iid, req.threshold, players, &key_id, app).map_err(bad)?;
        let span = info_span!("keygen", session = %hex16(&iid), app, key = %key_id);
        let relay = self.relay.clone();
        let signer: Arc<dyn IdentitySigner + Send + Sync> = self.cfg.identity.clone();
        let opts = self.run_options();
        let (t, n) = (setup.t(), setup.n());
        let shape = setup.clone();
        self.create_key(app, &key_id, &shape, t, n, "dkg", move || async move {
            let mut rng = UnwrapErr(SysRng);
            // The session id is recorded in the persistent store before the run.
            let guard = MemoryReplayGuard::new();
            run_dkg(
                &RunContext::new(&*relay, signer, &guard).with_options(opts.clone()),
                &setup,
                &mut rng,
            )
            .await
        })
        .instrument(span)
        .await
    }

    /// The common part of key generation and import: idempotency on the key id, the session
    /// id claim, PENDING → run → READY or ERROR.
    #[allow(clippy::too_many_arguments)] // app, key, session and shape are all distinct inputs
    pub(crate) async fn create_key<Fut>(
        &self,
        app: &str,
        key_id: &str,
        setup: &dkls23_core::setup::Setup,
        t: u16,
        n: u16,
        protocol: &'static str,
        make: impl FnOnce() -> Fut + Send + 'static,
    ) -> Result<KeyInfo, ApiError>
    where
        Fut: Future<Output = Result<dkls23_core::KeyShare, dkls23_core::Error>> + Send + 'static,
    {
        let key_id = key_id.to_owned();
        let (a, k) = (app.to_owned(), key_id.clone());
        if let Some(r) = self.db_ok(move |s| s.get(&a, &k)).await? {
            return Self::existing(&r);
        }
        if self.closing.load(Ordering::SeqCst) {
            return Err(ApiError::ShuttingDown);
        }
        // Capacity first: a busy node creates no key record (the key id stays free).
        let permit = self.reserve_for(setup).await?;
        self.claim_session_id(*setup.iid()).await?;
        let (a, k) = (app.to_owned(), key_id.clone());
        let me = self.cfg.index;
        match self.db_ok(move |s| s.create_pending(&a, &k, t, n, me)).await? {
            CreateOutcome::Created => {}
            CreateOutcome::Existing(r) => return Self::existing(&r),
        }
        // Not taken earlier: a concurrent generate must see PENDING (409), not wait.
        let _lock = self.write_lock(app, &key_id).await;
        info!(t, n, protocol, "key creation started");
        let result = self.protocol_scoped(protocol, None, Some(permit), make).await;
        let (a, k) = (app.to_owned(), key_id.clone());
        match result {
            Ok(share) => {
                let bytes = share.to_bytes();
                let public_key = session::compressed(share.public_key());
                let (chain_code, core_key_id) = (*share.chain_code(), *share.key_id());
                let epoch = share.epoch();
                drop(share);
                self.db_ok(move |s| {
                    let ready =
                        ReadyKey { share: &bytes, epoch, public_key, chain_code, core_key_id };
                    s.mark_ready(&a, &k, &ready)
                })
                .await?;
                let (a, k) = (app.to_owned(), key_id.clone());
                let r = self.db_ok(move |s| s.get(&a, &k)).await?.ok_or(ApiError::Internal)?;
                Ok(key_info(&r))
            }
            Err(ApiError::Protocol(dkls23_core::Error::PeerAborted {
                party,
                round: 1,
                reason: why @ (AbortReason::Busy | AbortReason::Stopping),
            })) => {
                // A player refused before the first round: nobody can hold a share of this
                // run, so the key id is free again (deleted, not ERROR) for a retry.
                if let Err(se) = self.db_ok(move |s| s.delete(&a, &k)).await {
                    error!("could not release the key id after a peer refused");
                    return Err(se);
                }
                Err(ApiError::PeerBusy { player: party, reason: why.to_string() })
            }
            Err(e) => {
                let reason = match &e {
                    ApiError::Protocol(p) => p.to_string(),
                    other => other.to_string(),
                };
                if let ApiError::Protocol(p) = &e {
                    self.record_ban(app, &key_id, p).await;
                }
                if let Err(se) = self.db_ok(move |s| s.mark_error(&a, &k, &reason)).await {
                    error!("could not mark the key as failed");
                    return Err(se);
                }
                Err(e)
            }
        }
    }

    async fn ready_record(&self, app: &str, key: &str) -> Result<KeyRecord, ApiError> {
        self.settle_staged(app, key).await;
        let (a, k) = (app.to_owned(), key.to_owned());
        let r = self.db_ok(move |s| s.get(&a, &k)).await?.ok_or_else(|| not_found(key))?;
        if r.status != KeyStatus::Ready {
            return Err(ApiError::Conflict(format!(
                "key {key:?} is {}, not READY",
                status_name(&r.status)
            )));
        }
        Ok(r)
    }

    /// Signs with the key `key` together with the other signers of the session.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn sign(
        &self,
        app: &str,
        key: &str,
        req: SignRequestBody,
    ) -> Result<SignatureResponse, ApiError> {
        let message = match (&req.message_hash, &req.message) {
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
                })?
            }
            (None, Some(m)) => {
                let alg: HashAlgorithm = req
                    .hash_algorithm
                    .as_deref()
                    .ok_or_else(|| {
                        ApiError::BadRequest(
                            "message needs hash_algorithm (KECCAK256 or SHA256)".into(),
                        )
                    })?
                    .parse()
                    .map_err(ApiError::BadRequest)?;
                if alg == HashAlgorithm::None {
                    return Err(ApiError::BadRequest(
                        "hash_algorithm must be KECCAK256 or SHA256 (use message_hash for a prehash)"
                            .into(),
                    ));
                }
                let raw = hex::decode(m)
                    .map_err(|_| ApiError::BadRequest("message is not hex".into()))?;
                prehash(alg, &raw).map_err(|e| ApiError::BadRequest(e.to_string()))?
            }
            _ => {
                return Err(ApiError::BadRequest(
                    "give exactly one of message_hash or message (+ hash_algorithm)".into(),
                ));
            }
        };
        let path = session::parse_path(req.path.as_deref().unwrap_or("m")).map_err(bad)?;
        let iid = session::session_id(&req.session).map_err(bad)?;
        let mut signers = req.session.players.clone();
        signers.sort_unstable();
        signers.dedup();
        if signers.len() != req.session.players.len() {
            return Err(ApiError::BadRequest("session.players lists a player twice".into()));
        }
        let span = info_span!("sign", session = %hex16(&iid), app, key);
        async {
            let _lock = self.read_lock(app, key).await;
            let record = self.ready_record(app, key).await?;
            if !signers.contains(&record.player) {
                return Err(ApiError::BadRequest(format!(
                    "this node (player {}) is not among session.players",
                    record.player
                )));
            }
            if let Some(pid) = &req.presignature_id {
                if !pid.eq_ignore_ascii_case(&req.session.session_id) {
                    return Err(ApiError::BadRequest(
                        "session.session_id must be the presignature_id".into(),
                    ));
                }
                let (sig, share) =
                    self.finish_presigned(pid, &signers, &path, message, &record).await?;
                let derived =
                    dkls23_core::bip32::derive(share.public_key(), share.chain_code(), &path)
                        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                return Ok(signature_response(key, message, &sig, &derived.public_key));
            }
            let (share, banned) = self.load_share(&record).await?;
            let setup = session::sign_setup(iid, &share, &signers, &path, message).map_err(bad)?;
            if let Some(b) = signers.iter().find(|s| banned.contains(s)) {
                return Err(banned_conflict(*b));
            }
            // Capacity before the session id is claimed (a busy node tells the other signers).
            let permit = self.reserve_for(&setup).await?;
            self.claim_session_id(iid).await?;
            let derived = dkls23_core::bip32::derive(share.public_key(), share.chain_code(), &path)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let relay = self.relay.clone();
            let signer: Arc<dyn IdentitySigner + Send + Sync> = self.cfg.identity.clone();
            let opts = self.run_options();
            let scope = Self::ban_scope(&record, &signers);
            let result = self
                .protocol_scoped("sign", Some(scope), Some(permit), move || async move {
                    let mut rng = UnwrapErr(SysRng);
                    let guard = MemoryReplayGuard::new();
                    run_sign(
                        &RunContext::new(&*relay, signer, &guard)
                            .with_options(opts.clone())
                            .refusing(banned.clone()),
                        &setup,
                        &share,
                        &mut rng,
                    )
                    .await
                })
                .await;
            let sig = match result {
                Ok(sig) => sig,
                Err(e) => {
                    if let ApiError::Protocol(p) = &e {
                        self.record_ban(app, key, p).await;
                    }
                    return Err(self.staged_hint(app, key, e).await);
                }
            };
            Ok(signature_response(key, message, &sig, &derived.public_key))
        }
        .instrument(span)
        .await
    }

    /// One key of the application.
    ///
    /// # Errors
    /// 404 for an unknown key.
    pub async fn get_key(&self, app: &str, key: &str) -> Result<KeyInfo, ApiError> {
        let (a, k) = (app.to_owned(), key.to_owned());
        let r = self.db_ok(move |s| s.get(&a, &k)).await?.ok_or_else(|| not_found(key))?;
        let mut info = key_info(&r);
        info.staged_epoch = self.staged_epoch(app, key).await;
        Ok(info)
    }

    /// All keys of the application.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list_keys(&self, app: &str) -> Result<KeyList, ApiError> {
        let a = app.to_owned();
        let rs = self.db_ok(move |s| s.list(&a)).await?;
        Ok(KeyList { keys: rs.iter().map(key_info).collect() })
    }

    /// Public key, chain code and Ethereum address at a path.
    ///
    /// # Errors
    /// 404, 409 (not READY), 400 (bad path).
    pub async fn public_key(
        &self,
        app: &str,
        key: &str,
        path: &str,
    ) -> Result<PublicKeyResponse, ApiError> {
        let path = session::parse_path(path).map_err(bad)?;
        let r = self.ready_record(app, key).await?;
        let (Some(pk), Some(cc)) = (r.public_key, r.chain_code) else {
            return Err(ApiError::Internal);
        };
        let pk = point_from_bytes(&pk).map_err(|_| ApiError::Internal)?;
        let d = dkls23_core::bip32::derive(&pk, &cc, &path)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(PublicKeyResponse {
            key_id: key.to_owned(),
            path: session::format_path(&path),
            public_key: hex::encode(session::compressed(&d.public_key)),
            chain_code: hex::encode(d.chain_code),
            ethereum_address: session::ethereum_address(&d.public_key),
        })
    }

    /// Destroys this node's share of the key (waits for signing sessions on it to finish).
    ///
    /// # Errors
    /// 404 for an unknown key.
    pub async fn delete_key(&self, app: &str, key: &str) -> Result<(), ApiError> {
        let _lock = self.write_lock(app, key).await;
        self.forget_share(app, key);
        self.forget_ban_signals(app, key);
        let (a, k) = (app.to_owned(), key.to_owned());
        match self.db(move |s| s.delete(&a, &k)).await? {
            Ok(()) => {
                info!(app, key, "key deleted");
                Ok(())
            }
            Err(StoreError::NotFound) => Err(not_found(key)),
            Err(e) => {
                error!(error = %e, "delete failed");
                Err(ApiError::Internal)
            }
        }
    }
}
