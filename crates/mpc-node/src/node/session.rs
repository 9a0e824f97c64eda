//! What every session-running operation does around its run: the session slot, the session
//! id claim, the run itself on the protocol runtime, and the ban its failure may ask for.

use std::future::Future;

use dkls23_core::setup::Setup;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{error, warn};

use super::bans::BanScope;
use super::state::Node;
use crate::error::ApiError;

impl Node {
    /// A session slot for `setup`'s session. When the node is full (503) the other parties
    /// are told at once, in a signed abort notice, so that their runs fail now with "player i
    /// is busy" instead of at their round timeout; the session id is then spent here too (no
    /// key record is created, so a key id stays free).
    pub(super) async fn reserve_for(
        &self,
        setup: &Setup,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        let busy = match self.runtime.reserve() {
            Ok(permit) => return Ok(permit),
            Err(e) => e,
        };
        let iid = *setup.iid();
        if !matches!(self.db.try_call(move |s| s.record_iid(&iid)).await, Ok(Ok(_))) {
            warn!("could not record the refused session id");
        }
        self.runtime.announce_busy(setup);
        Err(busy)
    }

    /// Records the session id in the persistent replay table; 409 if it was used before.
    pub(super) async fn claim_session_id(&self, iid: [u8; 32]) -> Result<(), ApiError> {
        if self.db.call(move |s| s.record_iid(&iid)).await? {
            Ok(())
        } else {
            Err(ApiError::Conflict("session_id was already used; use a fresh random one".into()))
        }
    }

    /// Runs a protocol future on the protocol runtime (see [`super::runtime::Runtime::run`]).
    pub(super) async fn protocol<T, Fut>(
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

    /// [`Node::protocol`] for a session with `scope`'s signers: it is aborted as soon as one of
    /// them is banned for the key (by any session of this node), as `protocols.md` §3.7 asks.
    pub(super) async fn protocol_scoped<T, Fut>(
        &self,
        protocol: &'static str,
        scope: Option<BanScope>,
        reserved: Option<OwnedSemaphorePermit>,
        make: impl FnOnce() -> Fut + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, dkls23_core::Error>> + Send + 'static,
    {
        let bans = scope.map(|sc| self.bans.watch(sc));
        self.runtime.run(protocol, bans, reserved, make).await
    }

    /// After a failed run of (app, key): persists the ban the protocol error asks for, if any
    /// (`to_player` turns the run's party index into the key's player index; `None` when the
    /// culprit is no player of the key), then aborts every in-flight session of the key with
    /// that player. The ban is written before anything else, and bans are never cached, so
    /// every request that starts after this returns refuses the player.
    pub(super) async fn ban_culprit(
        &self,
        app: &str,
        key: &str,
        failure: &ApiError,
        to_player: impl Fn(u16) -> Option<u16>,
    ) {
        let ApiError::Protocol(dkls23_core::Error::BanAndAbort { party, reason }) = failure else {
            return;
        };
        let Some(p) = to_player(*party) else {
            warn!(party, "a ban was asked for a party that is no player of the key");
            return;
        };
        let (a, k, r) = (app.to_owned(), key.to_owned(), reason.clone());
        match self.db.call(move |s| s.record_ban(&a, &k, p, &r)).await {
            Ok(()) => {
                self.metrics.ban();
                warn!(party = p, "party banned for this key");
            }
            Err(_) => error!(party = p, "could not persist a ban"),
        }
        // Even if the store failed: no session with the culprit goes on in this process.
        self.bans.signal(app, key, p);
    }
}
