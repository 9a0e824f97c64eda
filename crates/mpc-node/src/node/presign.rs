//! Presigning: a batch of presignatures made ahead with the session's signers and stored;
//! and the online phase that finishes one of them into a signature.

use std::sync::Arc;

use dkls23_core::KeyShare;
use dkls23_core::setup::Setup;
use dkls23_core::sign::Presignature;
use dkls23_runner::{run_finish, run_presign};
use getrandom::SysRng;
use mpc_node_client::api::{PresignRequestBody, PresignResponse};
use mpc_node_client::session;
use mpc_node_store::{KeyRecord, Store};
use rand_core::UnwrapErr;
use tracing::{Instrument, error, info, info_span};
use zeroize::Zeroizing;

use super::bans::{BanScope, refuse_banned};
use super::runtime::{SessionEnv, hex16};
use super::state::Node;
use crate::error::ApiError;
use crate::request::{PresignRequest, PresignatureRef, SignRequest, bad, require_member};

/// The presignatures of one batch: (id, encoded presignature).
type Made = Vec<(String, Zeroizing<Vec<u8>>)>;

/// 404 for a presignature this key does not have (any more).
fn unknown_presignature(id: &str) -> ApiError {
    ApiError::NotFound(format!("no presignature {id:?} for this key (unknown or already used)"))
}

fn decode_presignature(bytes: &[u8], share: &KeyShare) -> Result<Presignature, ApiError> {
    Presignature::from_bytes(bytes, share).map_err(|e| {
        error!(error = %e, "stored presignature does not decode");
        ApiError::Internal
    })
}

/// The batch's sessions one after the other; bans are re-read between sessions (another node
/// process on the same store may have recorded one).
async fn run_batch(
    env: SessionEnv,
    store: Arc<dyn Store>,
    (app, key): (String, String),
    setups: Vec<Setup>,
    signers: Vec<u16>,
    share: Arc<KeyShare>,
) -> Result<Made, dkls23_core::Error> {
    let mut rng = UnwrapErr(SysRng);
    let mut out = Vec::new();
    for (n, setup) in setups.iter().enumerate() {
        if n > 0 {
            let (st, a, k) = (store.clone(), app.clone(), key.clone());
            let now = tokio::task::spawn_blocking(move || st.bans(&a, &k))
                .await
                .map_err(|e| dkls23_core::Error::Transport(e.to_string()))?
                .map_err(|e| dkls23_core::Error::Transport(e.to_string()))?;
            if let Some(b) = signers.iter().find(|s| now.contains(s)) {
                return Err(dkls23_core::Error::InvalidInput(format!(
                    "player {b} was banned for this key during the presign batch"
                )));
            }
        }
        let p = run_presign(&env.context(), setup, &share, &mut rng).await?;
        out.push((hex::encode(setup.iid()), p.to_bytes()));
    }
    Ok(out)
}

impl Node {
    /// Creates `count` presignatures with the session's players, bound to `path`.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn presign(
        &self,
        app: &str,
        key: &str,
        req: PresignRequestBody,
    ) -> Result<PresignResponse, ApiError> {
        let req = PresignRequest::try_from(req)?;
        let span = info_span!("presign", session = %hex16(&req.sid), app, key, count = req.count);
        self.presign_batch(app, key, req).instrument(span).await
    }

    async fn presign_batch(
        &self,
        app: &str,
        key: &str,
        req: PresignRequest,
    ) -> Result<PresignResponse, ApiError> {
        let _lock = self.keys.read_lock(app, key).await;
        let record = self.ready_record(app, key).await?;
        require_member(record.player, &req.signers)?;
        let (share, banned) = self.load_share(&record).await?;
        refuse_banned(&req.signers, &banned)?;
        let mut setups = Vec::with_capacity(usize::from(req.count));
        for k in 0..req.count {
            let iid = session::presign_iid(&req.sid, k);
            setups.push(session::presign_setup(iid, &share, &req.signers, &req.path).map_err(bad)?);
        }
        for s in &setups {
            self.claim_session_id(*s.iid()).await?;
        }
        let env = self.runtime.env().refusing(banned);
        let scope = BanScope::of(&record, &req.signers);
        let (store, id, signers) = (self.db.store(), (app.to_owned(), key.to_owned()), req.signers);
        let made = self
            .protocol_scoped("presign", Some(scope), None, move || {
                run_batch(env, store, id, setups, signers, share)
            })
            .await;
        let made = match made {
            Ok(m) => m,
            Err(e) => {
                self.ban_culprit(app, key, &e, Some).await;
                return Err(e);
            }
        };
        let ids: Vec<String> = made.iter().map(|(id, _)| id.clone()).collect();
        let (a, k) = (app.to_owned(), key.to_owned());
        self.db
            .call(move |s| {
                for (id, bytes) in &made {
                    s.put_presignature(&a, &k, id, bytes)?;
                }
                Ok(())
            })
            .await?;
        info!(count = ids.len(), "presignatures stored");
        Ok(PresignResponse { key_id: key.to_owned(), presignature_ids: ids })
    }

    /// The online phase with a stored presignature. The request is checked against the stored
    /// presignature first (peek: a typo in players or path burns nothing), then the presignature
    /// is taken from the store (so it can never be used twice) and its finish marker recorded,
    /// before anything is sent.
    pub(super) async fn finish_presigned(
        &self,
        presignature: &PresignatureRef,
        req: &SignRequest,
        record: &KeyRecord,
    ) -> Result<(dkls23_core::sign::Signature, Arc<KeyShare>), ApiError> {
        let (share, banned) = self.load_share(record).await?;
        refuse_banned(&req.signers, &banned)?;
        let setup = session::presign_setup(presignature.iid, &share, &req.signers, &req.path)
            .map_err(bad)?;
        self.check_presignature(presignature, record, &share, &setup).await?;
        let presig = self.take_presignature(presignature, record, &share).await?;
        // The finish marker goes to the persistent replay table: a second finish of this
        // presignature (one restored on another signer) is refused here for good.
        let marker = dkls23_core::sign::finish_marker(setup.hash());
        if !self.db.call(move |s| s.record_iid(&marker)).await? {
            return Err(ApiError::Conflict(
                "this presignature was already finished by this node; it is never used twice"
                    .into(),
            ));
        }
        let env = self.runtime.env();
        let scope = BanScope::of(record, &req.signers);
        let message = req.message;
        let sig = self
            .protocol_scoped("finish", Some(scope), None, move || async move {
                let mut rng = UnwrapErr(SysRng);
                run_finish(&env.context(), &setup, presig, &message, &mut rng).await
            })
            .await?;
        Ok((sig, share))
    }

    /// 400 unless the stored presignature was made for `setup` (its signers and path); it is
    /// only peeked at, so a mistaken request burns nothing.
    async fn check_presignature(
        &self,
        presignature: &PresignatureRef,
        record: &KeyRecord,
        share: &KeyShare,
        setup: &Setup,
    ) -> Result<(), ApiError> {
        let (a, k, id) = (record.app.clone(), record.key.clone(), presignature.id.to_lowercase());
        let peeked = self.db.call(move |s| s.peek_presignature(&a, &k, &id)).await?;
        let peeked = peeked.ok_or_else(|| unknown_presignature(&presignature.id))?;
        let stored = decode_presignature(&peeked, share)?;
        drop(peeked);
        if stored.setup_hash() != setup.hash() {
            return Err(ApiError::BadRequest(format!(
                "presignature {:?} was made for other signers or another path \
                 (players {:?}); it is kept",
                presignature.id,
                stored.signers()
            )));
        }
        Ok(())
    }

    /// Takes the presignature out of the store: from now on it can never be used again.
    async fn take_presignature(
        &self,
        presignature: &PresignatureRef,
        record: &KeyRecord,
        share: &KeyShare,
    ) -> Result<Presignature, ApiError> {
        let (a, k, id) = (record.app.clone(), record.key.clone(), presignature.id.to_lowercase());
        let bytes = self.db.call(move |s| s.take_presignature(&a, &k, &id)).await?;
        let bytes = bytes.ok_or_else(|| unknown_presignature(&presignature.id))?;
        decode_presignature(&bytes, share)
    }
}
