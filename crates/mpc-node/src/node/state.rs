//! The node itself: its configuration and the parts every operation works with — the store,
//! the relay connection, the protocol runtime, the per-key state, the ban signals and the
//! remembered outcomes. The operations are in their own modules, one each.

use std::sync::Arc;

use mpc_node_store::Store;
use msg_relay_client::WsRelay;
use tracing::warn;

use super::bans::BanSignals;
use super::db::Db;
use super::keys::{KeyCache, StagedKeys};
use super::runtime::Runtime;
use super::startup::{connect_relay, open_store};
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::outcomes::Outcomes;

/// The ERROR reason of a key whose generation was cut off by a restart.
const INTERRUPTED: &str = "interrupted by a restart of the node; generate it again under another \
                           key_id, or DELETE this one first";

/// The ERROR reason of a key whose generation outlived every session deadline on a store
/// that replicas share (its replica stopped or crashed).
const ABANDONED: &str = "abandoned: its generation outlived the session deadline (the node \
                         running it stopped); generate it again under another key_id, or \
                         DELETE this one first";

/// The stored end of an operation cut off by a restart.
struct InterruptedEnd(String);

impl InterruptedEnd {
    fn as_end(&self) -> mpc_node_store::OperationEnd<'_> {
        mpc_node_store::OperationEnd { succeeded: false, http_status: 503, result: &self.0 }
    }
}

fn interrupted_end() -> InterruptedEnd {
    InterruptedEnd(crate::operations::interrupted())
}

/// How often a node on a shared store looks for abandoned PENDING keys.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A running node's shared state.
pub struct Node {
    pub(super) cfg: Config,
    pub(super) db: Db,
    /// The relay client, for its connection state (`/readyz`).
    relay_link: Arc<WsRelay>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) runtime: Runtime,
    pub(super) keys: KeyCache,
    pub(super) bans: BanSignals,
    outcomes: Outcomes,
    /// The audit log (none when configured off).
    audit: Option<Arc<crate::audit::AuditLog>>,
    /// Per-application limits.
    tenants: crate::tenants::Tenants,
    /// Per-application webhooks.
    webhooks: crate::webhooks::Webhooks,
    /// Keys with a refresh/reshare share staged but not confirmed.
    pub(super) staged: StagedKeys,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("index", &self.cfg.index).finish_non_exhaustive()
    }
}

/// Runs `f` on the store at start-up (every failure is a configuration error).
async fn startup_step<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, mpc_node_store::StoreError> + Send + 'static,
) -> Result<T, ConfigError> {
    let st = store.clone();
    tokio::task::spawn_blocking(move || f(&*st))
        .await
        .map_err(|e| ConfigError(vec![format!("store: {e}")]))?
        .map_err(|e| ConfigError(vec![format!("store: {e}")]))
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
        // restart, and its session is gone for good. On a store that replicas share, another
        // process may be generating it right now: only a key older than any session can be
        // known to be abandoned (and the sweep below finds the ones that age later).
        let stale_after = cfg.pending_stale_after_secs();
        let failed = if store.is_shared() {
            startup_step(&store, move |s| s.fail_stale_pending(ABANDONED, stale_after)).await?
        } else {
            startup_step(&store, |s| s.fail_pending(INTERRUPTED)).await?
        };
        if failed > 0 {
            warn!(keys = failed, "keys left PENDING by an earlier run are now ERROR");
        }
        let staged = startup_step(&store, |s| s.list_staged()).await?;
        let audit = match &cfg.audit_log {
            Some(path) => Some(Arc::new(
                crate::audit::AuditLog::open(path, cfg.index, cfg.identity.clone())
                    .map_err(|e| ConfigError(vec![e.to_string()]))?,
            )),
            None => {
                if !matches!(cfg.database, crate::config::Database::Memory) {
                    tracing::warn!("no audit log: set audit_log (or data_dir with PostgreSQL)");
                }
                None
            }
        };
        let cfg_app_limits = cfg.app_limits.clone();
        let webhooks =
            crate::webhooks::Webhooks::new(&cfg.webhooks).map_err(|e| ConfigError(vec![e]))?;
        // Operations still running were cut off with their process (on a shared store: only
        // those older than any session; the sweep below finds the ones that age later).
        let running_age = if store.is_shared() { stale_after } else { 0 };
        let failed_ops = startup_step(&store, move |s| {
            let end = interrupted_end();
            s.fail_running_operations(&end.as_end(), running_age, crate::operations::KEEP_SECS)
        })
        .await?;
        if failed_ops > 0 {
            warn!(operations = failed_ops, "asynchronous operations cut off by a restart failed");
        }
        let relay_link = connect_relay(&cfg.relay_urls, cfg.relay_tls.as_ref()).await?;
        let metrics = Arc::new(Metrics::default());
        let runtime = Runtime::new(
            relay_link.clone(),
            cfg.identity.clone(),
            cfg.session_timeout(),
            cfg.limits.max_concurrent_sessions,
            metrics.clone(),
        )
        .map_err(|e| ConfigError(vec![format!("cannot start the protocol runtime: {e}")]))?;
        let node = Arc::new(Self {
            cfg,
            db: Db::new(store),
            relay_link,
            metrics,
            runtime,
            keys: KeyCache::default(),
            bans: BanSignals::default(),
            outcomes: Outcomes::default(),
            staged: StagedKeys::default(),
            audit,
            tenants: crate::tenants::Tenants::new(&cfg_app_limits),
            webhooks,
        });
        node.settle_all_staged(staged);
        if node.db.store().is_shared() {
            sweep_abandoned(Arc::downgrade(&node), stale_after);
        }
        Ok(node)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether the node can serve sessions now: not stopping, and connected to its relay.
    /// `Err` names what is missing (for `/readyz`).
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.runtime.is_closing() {
            return Err("the node is stopping");
        }
        if !self.relay_link.is_connected() {
            return Err("the node is not connected to its relay (reconnecting)");
        }
        Ok(())
    }

    /// Per-application limits.
    pub fn tenants(&self) -> &crate::tenants::Tenants {
        &self.tenants
    }

    /// The audit log, when there is one.
    pub fn audit(&self) -> Option<&Arc<crate::audit::AuditLog>> {
        self.audit.as_ref()
    }

    /// Per-application webhooks.
    pub fn webhooks(&self) -> &crate::webhooks::Webhooks {
        &self.webhooks
    }

    /// Runs `f` against the store on the blocking pool (store failures are logged and
    /// answered as `internal`).
    pub(crate) async fn store_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, mpc_node_store::StoreError> + Send + 'static,
    ) -> Result<T, crate::error::ApiError> {
        self.db.call(f).await
    }

    /// Remembered outcomes of detached operations (see [`crate::outcomes`]).
    pub fn outcomes(&self) -> &Outcomes {
        &self.outcomes
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Refuses new sessions from now on (in-flight ones finish or time out).
    pub fn close(&self) {
        self.runtime.close();
    }

    /// Fails every session in flight now (their keys go to ERROR / the requests fail cleanly).
    pub fn abort_sessions(&self) {
        self.runtime.abort_all();
    }

    /// The application a client certificate acts for (fingerprints are public: a plain lookup).
    pub fn authenticate_certificate(&self, certificate: &dkls_tls::Fingerprint) -> Option<String> {
        self.cfg.client_certs.iter().find(|(f, _)| f == certificate).map(|(_, app)| app.clone())
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
}

/// Every [`SWEEP_EVERY`], while the node lives: PENDING keys older than `stale_after` seconds
/// become ERROR (their replica died mid-generation).
fn sweep_abandoned(node: std::sync::Weak<Node>, stale_after: u64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(node) = node.upgrade() else { return };
            let store = node.db.store();
            drop(node);
            match tokio::task::spawn_blocking(move || {
                let end = interrupted_end();
                let ops = store.fail_running_operations(
                    &end.as_end(),
                    stale_after,
                    crate::operations::KEEP_SECS,
                );
                if let Ok(n @ 1..) = ops {
                    warn!(operations = n, "abandoned asynchronous operations failed");
                }
                store.fail_stale_pending(ABANDONED, stale_after)
            })
            .await
            {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => warn!(keys = n, "abandoned PENDING keys are now ERROR"),
                Ok(Err(e)) => warn!(error = %e, "looking for abandoned PENDING keys failed"),
                Err(_) => return,
            }
        }
    });
}
