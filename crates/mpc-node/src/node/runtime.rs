//! The protocol runtime: where sessions run (worker threads of their own), how many may run
//! at once, how they are stopped, what every run is given ([`SessionEnv`]), and the metrics
//! and log line of each finished session.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dkls23_core::AbortReason;
use dkls23_core::identity::SharedSigner;
use dkls23_core::setup::{MemoryReplayGuard, Setup};
use dkls23_runner::{RunContext, RunOptions, StageShare, announce_abort};
use getrandom::SysRng;
use msg_relay_api::Relay;
use rand_core::UnwrapErr;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{error, info, warn};

use super::bans::{BanWatch, banned_conflict};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// The first 8 bytes of a session id in hex, as sessions are named in logs.
pub(crate) fn hex16(b: &[u8; 32]) -> String {
    hex::encode(b.get(..8).unwrap_or_default())
}

/// The worker threads protocol sessions run on, so their CPU work never blocks the API's
/// async workers. Shut down in the background when dropped.
struct ProtocolPool(Option<tokio::runtime::Runtime>);

impl ProtocolPool {
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

impl Drop for ProtocolPool {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// What one session runs with: the relay, this node's identity, the run options, the parties
/// it refuses and its own replay guard (the session id was recorded in the persistent store
/// before the run; this guard only sees the session's own instance ids).
pub(crate) struct SessionEnv {
    relay: Arc<dyn Relay>,
    signer: SharedSigner,
    options: RunOptions,
    refused: Vec<u16>,
    guard: MemoryReplayGuard,
}

impl SessionEnv {
    /// The same environment refusing to sign with `parties` (the key's bans).
    pub(crate) fn refusing(mut self, parties: Vec<u16>) -> Self {
        self.refused = parties;
        self
    }

    /// The same environment staging a refresh/reshare's new share with `stage`.
    pub(crate) fn staging(mut self, stage: Option<Arc<dyn StageShare>>) -> Self {
        self.options.stage = stage;
        self
    }

    /// The same environment waiting at most `wait` for a round.
    pub(crate) fn round_timeout_at_most(mut self, wait: Duration) -> Self {
        self.options.round_timeout = self.options.round_timeout.min(wait);
        self
    }

    /// The run context of this session: the one place a [`RunContext`] is built.
    pub(crate) fn context(&self) -> RunContext<'_, dyn Relay> {
        RunContext::new(&*self.relay, self.signer.clone(), &self.guard)
            .with_options(self.options.clone())
            .refusing(self.refused.clone())
    }
}

/// How a protocol task ended when it did not succeed.
enum Aborted {
    Protocol(dkls23_core::Error),
    Banned(u16),
}

/// The protocol runtime of a node.
pub(crate) struct Runtime {
    relay: Arc<dyn Relay>,
    signer: SharedSigner,
    round_timeout: Duration,
    metrics: Arc<Metrics>,
    sessions: Arc<Semaphore>,
    closing: AtomicBool,
    abort: watch::Sender<bool>,
    pool: ProtocolPool,
}

impl Runtime {
    /// A runtime for at most `max_sessions` sessions at once.
    pub(crate) fn new(
        relay: Arc<dyn Relay>,
        signer: SharedSigner,
        round_timeout: Duration,
        max_sessions: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            relay,
            signer,
            round_timeout,
            metrics,
            sessions: Arc::new(Semaphore::new(max_sessions)),
            closing: AtomicBool::new(false),
            abort: watch::Sender::new(false),
            pool: ProtocolPool::new()?,
        })
    }

    /// A fresh environment for one session.
    pub(crate) fn env(&self) -> SessionEnv {
        SessionEnv {
            relay: self.relay.clone(),
            signer: self.signer.clone(),
            options: RunOptions {
                round_timeout: self.round_timeout,
                observer: Some(self.metrics.clone()),
                ..RunOptions::default()
            },
            refused: Vec::new(),
            guard: MemoryReplayGuard::new(),
        }
    }

    /// Refuses new sessions from now on.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Whether new sessions are refused.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Fails every session in flight now.
    pub(crate) fn abort_all(&self) {
        self.abort.send_replace(true);
    }

    /// A session slot, taken before any state is created for a session (503 when full).
    pub(crate) fn reserve(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.sessions.clone().try_acquire_owned().map_err(|_| ApiError::Busy)
    }

    /// Tells the other parties of `setup`, in the background and in a signed abort notice,
    /// that this node is too busy to take part.
    pub(crate) fn announce_busy(&self, setup: &Setup) {
        let env = self.env();
        let setup = setup.clone();
        tokio::spawn(async move {
            let mut rng = UnwrapErr(SysRng);
            if let Err(e) =
                announce_abort(&env.context(), &setup, AbortReason::Busy, &mut rng).await
            {
                warn!(error = %e, "could not tell the other parties that this node is busy");
            }
        });
    }

    /// Runs a protocol future on the protocol threads, bounded by the session limit (`reserved`
    /// or a slot taken now); fails it when the node aborts its sessions, or when `bans` sees
    /// one of its signers banned.
    pub(crate) async fn run<T, Fut>(
        &self,
        protocol: &'static str,
        bans: Option<BanWatch>,
        reserved: Option<OwnedSemaphorePermit>,
        make: impl FnOnce() -> Fut + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, dkls23_core::Error>> + Send + 'static,
    {
        if self.is_closing() {
            return Err(ApiError::ShuttingDown);
        }
        let permit = match reserved {
            Some(p) => p,
            None => self.reserve()?,
        };
        // Past every check: an asynchronous operation is answered 202 from here on.
        crate::operations::session_started();
        self.metrics.in_flight(1);
        let start = Instant::now();
        let joined = self.pool.spawn(watched(make, bans, self.abort.subscribe(), permit)).await;
        self.metrics.in_flight(-1);
        let took = start.elapsed();
        let result = match joined {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "session task failed");
                self.metrics.session(protocol, "internal", took);
                return Err(ApiError::Internal);
            }
        };
        self.finished(protocol, took, result)
    }

    /// Counts and logs a finished session.
    fn finished<T>(
        &self,
        protocol: &'static str,
        took: Duration,
        result: Result<T, Aborted>,
    ) -> Result<T, ApiError> {
        let result = match result {
            Err(Aborted::Banned(p)) => {
                self.metrics.session(protocol, "banned", took);
                warn!(party = p, "session aborted: a signer was banned for this key meanwhile");
                return Err(banned_conflict(p));
            }
            Err(Aborted::Protocol(e)) => Err(e),
            Ok(v) => Ok(v),
        };
        if matches!(result, Err(dkls23_core::Error::Transport(_))) {
            self.metrics.relay_error();
        }
        self.metrics.session(protocol, outcome_label(&result), took);
        match &result {
            Ok(_) => info!(ms = took.as_millis() as u64, "session finished"),
            Err(e) => warn!(ms = took.as_millis() as u64, error = %e, "session failed"),
        }
        result.map_err(ApiError::Protocol)
    }
}

/// The run of `make`, ended early when `abort` turns true or `bans` sees a signer banned.
async fn watched<T, Fut>(
    make: impl FnOnce() -> Fut,
    mut bans: Option<BanWatch>,
    mut abort: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) -> Result<T, Aborted>
where
    Fut: Future<Output = Result<T, dkls23_core::Error>>,
{
    let _permit = permit;
    let run = make();
    let banned = async {
        match &mut bans {
            Some(watch) => watch.banned().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = run => r.map_err(Aborted::Protocol),
        _ = abort.wait_for(|a| *a) => Err(Aborted::Protocol(
            dkls23_core::Error::Transport("session aborted: the node is stopping".into()),
        )),
        p = banned => Err(Aborted::Banned(p)),
    }
}

/// The `outcome` label of a finished session in the metrics.
fn outcome_label<T>(result: &Result<T, dkls23_core::Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(dkls23_core::Error::Timeout { .. }) => "timeout",
        Err(dkls23_core::Error::Transport(_)) => "relay_error",
        Err(dkls23_core::Error::BanAndAbort { .. }) => "banned",
        Err(dkls23_core::Error::Blame { .. }) => "blamed",
        Err(dkls23_core::Error::InvalidInput(_)) => "invalid_input",
        Err(_) => "failed",
    }
}
