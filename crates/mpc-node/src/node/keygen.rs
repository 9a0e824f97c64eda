//! Key generation, and the key lifecycle it shares with import and with joining a reshare:
//! idempotency on the key id, the session id claim, PENDING → run → READY or ERROR.

use std::future::Future;

use dkls23_core::AbortReason;
use dkls23_core::setup::Setup;
use dkls23_runner::run_dkg;
use getrandom::SysRng;
use mpc_node_client::api::{GenerateKeyRequest, KeyInfo};
use mpc_node_client::session;
use mpc_node_store::{CreateOutcome, ReadyKey};
use rand_core::UnwrapErr;
use tracing::{Instrument, error, info, info_span};

use super::records::{existing, key_info};
use super::runtime::hex16;
use super::state::Node;
use crate::error::ApiError;
use crate::request::{GenerateKey, Roster};

/// A key a protocol run creates: under which id, with which session, of which shape.
#[derive(Debug)]
pub(super) struct NewKey<'a> {
    pub(super) app: &'a str,
    pub(super) key_id: &'a str,
    pub(super) setup: &'a Setup,
    pub(super) threshold: u16,
    pub(super) parties: u16,
    /// The protocol's name in logs and metrics.
    pub(super) protocol: &'static str,
}

impl Node {
    /// Key generation: returns the READY key (new, or the existing one with this key id).
    ///
    /// # Errors
    /// [`ApiError`]: 400 for a bad request, 409 for a PENDING / ERROR key id or a used session
    /// id, protocol errors.
    pub async fn generate(&self, app: &str, req: GenerateKeyRequest) -> Result<KeyInfo, ApiError> {
        let req = GenerateKey::validate(req, &Roster::of(&self.cfg), app)?;
        self.generate_key(app, req).await
    }

    async fn generate_key(&self, app: &str, req: GenerateKey) -> Result<KeyInfo, ApiError> {
        let GenerateKey { iid, key_id, setup } = req;
        let span = info_span!("keygen", session = %hex16(&iid), app, key = %key_id);
        let new = NewKey {
            app,
            key_id: &key_id,
            setup: &setup,
            threshold: setup.t(),
            parties: setup.n(),
            protocol: "dkg",
        };
        let env = self.runtime.env();
        let run = setup.clone();
        self.create_key(new, move || async move {
            let mut rng = UnwrapErr(SysRng);
            run_dkg(&env.context(), &run, &mut rng).await
        })
        .instrument(span)
        .await
    }

    /// Creates the key `new` with the share the run `make` produces.
    pub(super) async fn create_key<Fut>(
        &self,
        new: NewKey<'_>,
        make: impl FnOnce() -> Fut + Send + 'static,
    ) -> Result<KeyInfo, ApiError>
    where
        Fut: Future<Output = Result<dkls23_core::KeyShare, dkls23_core::Error>> + Send + 'static,
    {
        let NewKey { app, key_id, setup, threshold: t, parties: n, protocol } = new;
        let (a, k) = (app.to_owned(), key_id.to_owned());
        if let Some(r) = self.db.call(move |s| s.get(&a, &k)).await? {
            return existing(&r);
        }
        if self.runtime.is_closing() {
            return Err(ApiError::ShuttingDown);
        }
        // Capacity first: a busy node creates no key record (the key id stays free).
        let permit = self.reserve_for(setup).await?;
        self.claim_session_id(*setup.iid()).await?;
        let (a, k) = (app.to_owned(), key_id.to_owned());
        let me = self.cfg.index;
        match self.db.call(move |s| s.create_pending(&a, &k, t, n, me)).await? {
            CreateOutcome::Created => {}
            CreateOutcome::Existing(r) => return existing(&r),
        }
        // Not taken earlier: a concurrent generate must see PENDING (409), not wait.
        let _lock = self.keys.write_lock(app, key_id).await;
        info!(t, n, protocol, "key creation started");
        match self.protocol_scoped(protocol, None, Some(permit), make).await {
            Ok(share) => self.key_created(app, key_id, share).await,
            Err(e) => self.key_failed(app, key_id, e).await,
        }
    }

    /// PENDING → READY with `share`.
    async fn key_created(
        &self,
        app: &str,
        key_id: &str,
        share: dkls23_core::KeyShare,
    ) -> Result<KeyInfo, ApiError> {
        let bytes = share.to_bytes();
        let public_key = session::compressed(share.public_key());
        let (chain_code, core_key_id, epoch) =
            (*share.chain_code(), *share.key_id(), share.epoch());
        drop(share);
        let (a, k) = (app.to_owned(), key_id.to_owned());
        self.db
            .call(move |s| {
                let ready = ReadyKey { share: &bytes, epoch, public_key, chain_code, core_key_id };
                s.mark_ready(&a, &k, &ready)
            })
            .await?;
        let (a, k) = (app.to_owned(), key_id.to_owned());
        let r = self.db.call(move |s| s.get(&a, &k)).await?.ok_or(ApiError::Internal)?;
        Ok(key_info(&r))
    }

    /// After a failed creation run: the key id is released when a peer refused before the
    /// first round (nobody can hold a share of the run), else the key goes to ERROR.
    async fn key_failed(&self, app: &str, key_id: &str, e: ApiError) -> Result<KeyInfo, ApiError> {
        let (a, k) = (app.to_owned(), key_id.to_owned());
        if let ApiError::Protocol(dkls23_core::Error::PeerAborted {
            party,
            round: 1,
            reason: why @ (AbortReason::Busy | AbortReason::Stopping),
        }) = &e
        {
            // A player refused before the first round: nobody can hold a share of this run,
            // so the key id is free again (deleted, not ERROR) for a retry.
            if let Err(se) = self.db.call(move |s| s.delete(&a, &k)).await {
                error!("could not release the key id after a peer refused");
                return Err(se);
            }
            return Err(ApiError::PeerBusy { player: *party, reason: why.to_string() });
        }
        let reason = match &e {
            ApiError::Protocol(p) => p.to_string(),
            other => other.to_string(),
        };
        self.ban_culprit(app, key_id, &e, Some).await;
        if let Err(se) = self.db.call(move |s| s.mark_error(&a, &k, &reason)).await {
            error!("could not mark the key as failed");
            return Err(se);
        }
        Err(e)
    }
}
