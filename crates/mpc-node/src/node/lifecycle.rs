//! Presigning, signing with a stored presignature, refresh, reshare and xpub.

use std::sync::Arc;

use dkls23_core::KeyShare;
use dkls23_core::bip32::{Network, Xpub};
use dkls23_core::encoding::point_from_bytes;
use dkls23_core::identity::IdentityPublicKey;
use dkls23_core::identity::IdentitySigner;
use dkls23_core::import_export::{EXPORT_CONFIRMATION, ExportRequest, ImportRequest, ImportSecret};
use dkls23_core::reshare::{NewMember, ReshareOutcome, ReshareSpec};
use dkls23_core::setup::MemoryReplayGuard;
use dkls23_core::sign::Presignature;
use dkls23_runner::{RunContext, run_import};
use dkls23_runner::{run_export, run_finish, run_presign, run_reshare};
use getrandom::SysRng;
use mpc_node_client::api::{
    ExportRequestBody, ExportResponse, ImportKeyRequest, KeyInfo, PresignRequestBody,
    PresignResponse, RefreshRequestBody, ReshareRequestBody, ReshareResponse, ReshareSpecResponse,
    XpubResponse,
};
use mpc_node_client::session::{self, SESSION_TTL_SECS};
use mpc_node_store::{KeyRecord, NewShare};
use rand_core::UnwrapErr;
use tracing::{Instrument, error, info, info_span};
use zeroize::Zeroizing;

use super::{Node, bad, banned_conflict, hex16};
use crate::error::ApiError;

/// Most presignatures one request may create.
pub const MAX_PRESIGN_COUNT: u16 = 100;

fn sorted_players(players: &[u16]) -> Result<Vec<u16>, ApiError> {
    let mut v = players.to_vec();
    v.sort_unstable();
    v.dedup();
    if v.len() != players.len() {
        return Err(ApiError::BadRequest("session.players lists a player twice".into()));
    }
    Ok(v)
}

/// The key's player behind transport index `t` of a reshare session. A reshare names parties by
/// their setup (transport) index, new committee first; bans name players of the key's current
/// epoch, and only a dealer of that epoch can be one (`None` for anybody else).
pub(crate) fn reshare_culprit_player(spec: &ReshareSpec, t: u16) -> Option<u16> {
    spec.old_member_at(t).map(|m| m.index)
}

impl Node {
    /// This node's decoded share of `key` (from the in-memory cache when it holds the record's
    /// epoch, else loaded, decrypted and validated off the async threads) and the key's bans,
    /// always read from the store.
    pub(super) async fn load_share(
        &self,
        record: &KeyRecord,
    ) -> Result<(Arc<KeyShare>, Vec<u16>), ApiError> {
        let id = (record.app.clone(), record.key.clone());
        if let Some(share) = self.cached_share(&id, record.epoch) {
            let (a, k) = id;
            let bans = self.db_ok(move |s| s.bans(&a, &k)).await?;
            return Ok((share, bans));
        }
        let (a, k) = id.clone();
        let (bytes, bans) =
            self.db_ok(move |s| Ok((s.load_share(&a, &k)?, s.bans(&a, &k)?))).await?;
        let share = tokio::task::spawn_blocking(move || KeyShare::from_bytes(&bytes))
            .await
            .map_err(|_| ApiError::Internal)?
            .map_err(|e| {
                error!(error = %e, "stored share does not decode");
                ApiError::Internal
            })?;
        let share = Arc::new(share);
        if share.epoch() == record.epoch {
            self.cache_share(id, share.clone());
        }
        Ok((share, bans))
    }

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
        if req.count == 0 || req.count > MAX_PRESIGN_COUNT {
            return Err(ApiError::BadRequest(format!(
                "count must be between 1 and {MAX_PRESIGN_COUNT}"
            )));
        }
        let path = session::parse_path(req.path.as_deref().unwrap_or("m")).map_err(bad)?;
        let sid = session::session_id(&req.session).map_err(bad)?;
        let signers = sorted_players(&req.session.players)?;
        let span = info_span!("presign", session = %hex16(&sid), app, key, count = req.count);
        async {
            let _lock = self.read_lock(app, key).await;
            let record = self.ready_record(app, key).await?;
            if !signers.contains(&record.player) {
                return Err(ApiError::BadRequest(format!(
                    "this node (player {}) is not among session.players",
                    record.player
                )));
            }
            let (share, banned) = self.load_share(&record).await?;
            if let Some(b) = signers.iter().find(|s| banned.contains(s)) {
                return Err(banned_conflict(*b));
            }
            let mut setups = Vec::with_capacity(usize::from(req.count));
            for k in 0..req.count {
                let iid = session::presign_iid(&sid, k);
                setups.push(session::presign_setup(iid, &share, &signers, &path).map_err(bad)?);
            }
            for s in &setups {
                self.claim_session_id(*s.iid()).await?;
            }
            let relay = self.relay.clone();
            let signer: Arc<dyn IdentitySigner + Send + Sync> = self.cfg.identity.clone();
            let opts = self.run_options();
            let scope = Self::ban_scope(&record, &signers);
            let store = self.store.clone();
            let (a, k) = (app.to_owned(), key.to_owned());
            let made = self
                .protocol_scoped("presign", Some(scope), None, move || async move {
                    let mut rng = UnwrapErr(SysRng);
                    let guard = MemoryReplayGuard::new();
                    let mut out: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
                    for (n, setup) in setups.iter().enumerate() {
                        if n > 0 {
                            // Bans are re-read between sessions (another node process on the
                            // same store may have recorded one).
                            let (st, a, k) = (store.clone(), a.clone(), k.clone());
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
                        let p = run_presign(
                            &RunContext::new(&*relay, signer.clone(), &guard)
                                .with_options(opts.clone())
                                .refusing(banned.clone()),
                            setup,
                            &share,
                            &mut rng,
                        )
                        .await?;
                        out.push((hex::encode(setup.iid()), p.to_bytes()));
                    }
                    Ok(out)
                })
                .await;
            let made = match made {
                Ok(m) => m,
                Err(e) => {
                    if let ApiError::Protocol(p) = &e {
                        self.record_ban(app, key, p).await;
                    }
                    return Err(e);
                }
            };
            let ids: Vec<String> = made.iter().map(|(id, _)| id.clone()).collect();
            let (a, k) = (app.to_owned(), key.to_owned());
            self.db_ok(move |s| {
                for (id, bytes) in &made {
                    s.put_presignature(&a, &k, id, bytes)?;
                }
                Ok(())
            })
            .await?;
            info!(count = ids.len(), "presignatures stored");
            Ok(PresignResponse { key_id: key.to_owned(), presignature_ids: ids })
        }
        .instrument(span)
        .await
    }

    /// The online phase with a stored presignature. The request is checked against the stored
    /// presignature first (peek: a typo in players or path burns nothing), then the presignature
    /// is taken from the store (so it can never be used twice) and its finish marker recorded,
    /// before anything is sent.
    pub(super) async fn finish_presigned(
        &self,
        presignature_id: &str,
        signers: &[u16],
        path: &[u32],
        message: [u8; 32],
        record: &KeyRecord,
    ) -> Result<(dkls23_core::sign::Signature, Arc<KeyShare>), ApiError> {
        let raw = hex::decode(presignature_id).ok().and_then(|v| <[u8; 32]>::try_from(v).ok());
        let iid = raw.ok_or_else(|| {
            ApiError::BadRequest("presignature_id must be 64 hexadecimal digits".into())
        })?;
        let (share, banned) = self.load_share(record).await?;
        if let Some(b) = signers.iter().find(|s| banned.contains(s)) {
            return Err(banned_conflict(*b));
        }
        let setup = session::presign_setup(iid, &share, signers, path).map_err(bad)?;
        let (a, k) = (record.app.clone(), record.key.clone());
        let id = presignature_id.to_lowercase();
        let unknown = || {
            ApiError::NotFound(format!(
                "no presignature {presignature_id:?} for this key (unknown or already used)"
            ))
        };
        let peeked = self.db_ok(move |s| s.peek_presignature(&a, &k, &id)).await?;
        let peeked = peeked.ok_or_else(unknown)?;
        let stored = Presignature::from_bytes(&peeked, &share).map_err(|e| {
            error!(error = %e, "stored presignature does not decode");
            ApiError::Internal
        })?;
        drop(peeked);
        if stored.setup_hash() != setup.hash() {
            return Err(ApiError::BadRequest(format!(
                "presignature {presignature_id:?} was made for other signers or another path \
                 (players {:?}); it is kept",
                stored.signers()
            )));
        }
        drop(stored);
        let (a, k) = (record.app.clone(), record.key.clone());
        let id = presignature_id.to_lowercase();
        let bytes = self.db_ok(move |s| s.take_presignature(&a, &k, &id)).await?;
        let bytes = bytes.ok_or_else(unknown)?;
        let presig = Presignature::from_bytes(&bytes, &share).map_err(|e| {
            error!(error = %e, "stored presignature does not decode");
            ApiError::Internal
        })?;
        drop(bytes);
        // The finish marker goes to the persistent replay table: a second finish of this
        // presignature (one restored on another signer) is refused here for good.
        let marker = dkls23_core::sign::finish_marker(setup.hash());
        if !self.db_ok(move |s| s.record_iid(&marker)).await? {
            return Err(ApiError::Conflict(
                "this presignature was already finished by this node; it is never used twice"
                    .into(),
            ));
        }
        let relay = self.relay.clone();
        let signer: Arc<dyn IdentitySigner + Send + Sync> = self.cfg.identity.clone();
        let opts = self.run_options();
        let scope = Self::ban_scope(record, signers);
        let sig = self
            .protocol_scoped("finish", Some(scope), None, move || async move {
                let mut rng = UnwrapErr(SysRng);
                // Recorded in the store above; the run's own guard only sees this one session.
                let guard = MemoryReplayGuard::new();
                run_finish(
                    &RunContext::new(&*relay, signer, &guard).with_options(opts.clone()),
                    &setup,
                    presig,
                    &message,
                    &mut rng,
                )
                .await
            })
            .await?;
        Ok((sig, share))
    }

    pub(super) async fn replace(
        &self,
        app: &str,
        key: &str,
        new: &KeyShare,
    ) -> Result<KeyInfo, ApiError> {
        self.forget_share(app, key);
        self.forget_ban_signals(app, key);
        let bytes = new.to_bytes();
        let (epoch, me, t, n) = (new.epoch(), new.index(), new.threshold(), new.parties());
        let (a, k) = (app.to_owned(), key.to_owned());
        self.db_ok(move |s| {
            let new = NewShare { share: &bytes, epoch, player: me, threshold: t, parties: n };
            s.replace_share(&a, &k, &new)
        })
        .await?;
        info!(epoch, player = me, t, n, "share replaced");
        self.get_key(app, key).await
    }

    /// Refresh: new shares of the same key for all of its players (all must take part).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn refresh(
        &self,
        app: &str,
        key: &str,
        req: RefreshRequestBody,
    ) -> Result<KeyInfo, ApiError> {
        let iid = session::session_id(&req.session).map_err(bad)?;
        let players = sorted_players(&req.session.players)?;
        let span = info_span!("refresh", session = %hex16(&iid), app, key);
        async {
            let _lock = self.write_lock(app, key).await;
            let record = self.ready_record(app, key).await?;
            let all: Vec<u16> = (1..=record.parties).collect();
            if players != all {
                return Err(ApiError::BadRequest(format!(
                    "refresh needs every player of the key: session.players must be {all:?}"
                )));
            }
            let (share, _) = self.load_share(&record).await?;
            let spec =
                ReshareSpec::refresh(&share).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let setup = spec
                .to_setup(iid, SESSION_TTL_SECS)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            self.claim_session_id(iid).await?;
            let stage = self.stage_hook(app, key, &setup);
            let outcome =
                self.run_reshare_session("refresh", setup, Some(share), Some(stage)).await;
            match outcome {
                Ok(ReshareOutcome::NewShare(new)) => self.replace(app, key, &new).await,
                Ok(_) => Err(ApiError::Internal),
                Err(e) => {
                    if let ApiError::Protocol(p) = &e {
                        let map = |t| reshare_culprit_player(&spec, t);
                        self.record_ban_mapped(app, key, p, map).await;
                    }
                    Err(self.staged_hint(app, key, e).await)
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn run_reshare_session(
        &self,
        protocol: &'static str,
        setup: dkls23_core::setup::Setup,
        old: Option<Arc<KeyShare>>,
        stage: Option<Arc<dyn dkls23_runner::StageShare>>,
    ) -> Result<ReshareOutcome, ApiError> {
        let relay = self.relay.clone();
        let signer: Arc<dyn IdentitySigner + Send + Sync> = self.cfg.identity.clone();
        let mut opts = self.run_options();
        opts.stage = stage;
        self.protocol(protocol, move || async move {
            let mut rng = UnwrapErr(SysRng);
            let guard = MemoryReplayGuard::new();
            run_reshare(
                &RunContext::new(&*relay, signer, &guard).with_options(opts.clone()),
                &setup,
                old.as_deref(),
                &mut rng,
            )
            .await
        })
        .await
    }

    /// The reshare spec of `req` as computed from this node's share (no protocol is run).
    async fn compute_spec(
        &self,
        record: &KeyRecord,
        req: &ReshareRequestBody,
        new_committee: Vec<NewMember>,
    ) -> Result<(Arc<KeyShare>, ReshareSpec), ApiError> {
        let dealers = sorted_players(&req.old_players)?;
        let (share, _) = self.load_share(record).await?;
        let spec = ReshareSpec::from_share(&share, &dealers, new_committee, req.new_threshold)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok((share, spec))
    }

    fn new_committee(&self, req: &ReshareRequestBody) -> Result<Vec<NewMember>, ApiError> {
        let committee = session::resolve_players(&req.session, &self.cfg.players).map_err(bad)?;
        Ok(committee
            .iter()
            .map(|(index, identity)| NewMember { index: *index, identity: *identity })
            .collect())
    }

    /// The public reshare spec for `req`, for nodes that join without a share.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn reshare_spec(
        &self,
        app: &str,
        key: &str,
        req: ReshareRequestBody,
    ) -> Result<ReshareSpecResponse, ApiError> {
        let committee = self.new_committee(&req)?;
        let record = self.ready_record(app, key).await?;
        let (_, spec) = self.compute_spec(&record, &req, committee).await?;
        Ok(ReshareSpecResponse { key_id: key.to_owned(), spec: hex::encode(spec.to_bytes()) })
    }

    /// Reshare to a new committee and/or threshold; the new committee is `session.players` =
    /// `1..=n'`. A node holding a share deals (if in `old_players`) and/or continues; a node
    /// without a share of the key joins with the spec from `reshare-spec`.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn reshare(
        &self,
        app: &str,
        key: &str,
        req: ReshareRequestBody,
    ) -> Result<ReshareResponse, ApiError> {
        let iid = session::session_id(&req.session).map_err(bad)?;
        let new_committee = self.new_committee(&req)?;
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
        let own = self.cfg.identity.public_key();
        let continuing = new_committee.iter().any(|m| m.identity == own);
        let span = info_span!("reshare", session = %hex16(&iid), app, key);
        async {
            let (a, k) = (app.to_owned(), key.to_owned());
            let existing = self.db_ok(move |s| s.get(&a, &k)).await?;
            let Some(record) = existing else {
                return self.join_reshare(app, key, iid, given_spec, &new_committee).await;
            };
            let _lock = self.write_lock(app, key).await;
            let record = match record.status {
                mpc_node_store::KeyStatus::Ready => self.ready_record(app, key).await?,
                _ => return Err(ApiError::Conflict(format!("key {key:?} is not READY"))),
            };
            let (share, spec) = self.compute_spec(&record, &req, new_committee).await?;
            if given_spec.as_ref().is_some_and(|g| *g != spec) {
                return Err(ApiError::BadRequest(
                    "spec differs from the one this node computes from its share".into(),
                ));
            }
            let setup = spec
                .to_setup(iid, SESSION_TTL_SECS)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let dealing = req.old_players.contains(&record.player);
            if !dealing && !continuing {
                return Err(ApiError::BadRequest(
                    "this node neither deals (old_players) nor is in the new committee".into(),
                ));
            }
            self.claim_session_id(iid).await?;
            let old = if dealing { Some(share) } else { None };
            // Only a member of the new committee gets a new share to stage.
            let stage = continuing.then(|| self.stage_hook(app, key, &setup));
            match self.run_reshare_session("reshare", setup, old, stage).await {
                Ok(ReshareOutcome::NewShare(new)) => {
                    let info = self.replace(app, key, &new).await?;
                    Ok(ReshareResponse { key: Some(info), removed: false })
                }
                Ok(ReshareOutcome::Removed) => {
                    let (a, k) = (app.to_owned(), key.to_owned());
                    self.forget_share(app, key);
                    self.forget_ban_signals(app, key);
                    self.db_ok(move |s| s.delete(&a, &k)).await?;
                    info!("left the committee: share destroyed");
                    Ok(ReshareResponse { key: None, removed: true })
                }
                Err(e) => {
                    if let ApiError::Protocol(p) = &e {
                        let map = |t| reshare_culprit_player(&spec, t);
                        self.record_ban_mapped(app, key, p, map).await;
                    }
                    Err(self.staged_hint(app, key, e).await)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// A node without a share of the key joins the new committee (PENDING → READY / ERROR).
    async fn join_reshare(
        &self,
        app: &str,
        key: &str,
        iid: [u8; 32],
        spec: Option<ReshareSpec>,
        committee: &[NewMember],
    ) -> Result<ReshareResponse, ApiError> {
        let spec = spec.ok_or_else(|| {
            ApiError::NotFound(format!(
                "no key {key:?} here; to join its new committee pass spec (from reshare-spec)"
            ))
        })?;
        if spec.new_committee != committee {
            return Err(ApiError::BadRequest(
                "spec's new committee differs from session.players and their keys".into(),
            ));
        }
        let own = self.cfg.identity.public_key();
        if !committee.iter().any(|m| m.identity == own) {
            return Err(ApiError::BadRequest("this node is not in the new committee".into()));
        }
        let setup = spec
            .to_setup(iid, SESSION_TTL_SECS)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let (t, n) = (spec.new_threshold, spec.new_parties());
        let shape = setup.clone();
        let relay = self.relay.clone();
        let signer: Arc<dyn IdentitySigner + Send + Sync> = self.cfg.identity.clone();
        let opts = self.run_options();
        let info = self
            .create_key(app, key, &shape, t, n, "reshare", move || async move {
                let mut rng = UnwrapErr(SysRng);
                let guard = MemoryReplayGuard::new();
                match run_reshare(
                    &RunContext::new(&*relay, signer, &guard).with_options(opts.clone()),
                    &setup,
                    None,
                    &mut rng,
                )
                .await?
                {
                    ReshareOutcome::NewShare(s) => Ok(s),
                    _ => Err(dkls23_core::Error::InvalidInput(
                        "a joining member cannot leave the committee".into(),
                    )),
                }
            })
            .await?;
        Ok(ReshareResponse { key: Some(info), removed: false })
    }

    /// Export: sends this node's share, encrypted and signed, to the recipient (who reconstructs
    /// the key from t of them). Requires the exact confirmation sentence.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn export(
        &self,
        app: &str,
        key: &str,
        req: ExportRequestBody,
    ) -> Result<ExportResponse, ApiError> {
        if req.confirmation != EXPORT_CONFIRMATION {
            return Err(ApiError::BadRequest(format!(
                "export needs confirmation = {EXPORT_CONFIRMATION:?}"
            )));
        }
        let iid = session::session_id(&req.session).map_err(bad)?;
        let exporters = sorted_players(&req.session.players)?;
        let identity: IdentityPublicKey = req.recipient_identity.parse().map_err(|e| {
            ApiError::BadRequest(format!("recipient_identity is not a valid identity key: {e}"))
        })?;
        let x = hex::decode(&req.recipient_x25519).ok().and_then(|v| <[u8; 32]>::try_from(v).ok());
        let x = x.ok_or_else(|| {
            ApiError::BadRequest("recipient_x25519 must be 32 bytes of hex".into())
        })?;
        let span = info_span!("export", session = %hex16(&iid), app, key);
        async {
            let _lock = self.read_lock(app, key).await;
            let record = self.ready_record(app, key).await?;
            if !exporters.contains(&record.player) {
                return Err(ApiError::BadRequest(format!(
                    "this node (player {}) is not among session.players",
                    record.player
                )));
            }
            let (share, _) = self.load_share(&record).await?;
            let er = ExportRequest::new(&share, &exporters, req.recipient_index, x)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let setup = er
                .to_setup(&share, identity, iid, SESSION_TTL_SECS)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let setup_hex = hex::encode(setup.to_bytes());
            self.claim_session_id(iid).await?;
            let relay = self.relay.clone();
            let signer: Arc<dyn IdentitySigner + Send + Sync> = self.cfg.identity.clone();
            let opts = self.run_options();
            self.protocol("export", move || async move {
                let mut rng = UnwrapErr(SysRng);
                let guard = MemoryReplayGuard::new();
                run_export(
                    &RunContext::new(&*relay, signer, &guard).with_options(opts.clone()),
                    &setup,
                    &share,
                    EXPORT_CONFIRMATION,
                    &mut rng,
                )
                .await
            })
            .await?;
            tracing::warn!("key share exported: the key is no longer threshold-protected");
            Ok(ExportResponse { key_id: key.to_owned(), setup: setup_hex })
        }
        .instrument(span)
        .await
    }

    /// Import: the dealer's node splits the given private key among the players (then a
    /// refresh inside `run_import` gives everyone fresh OT material); the key lifecycle is the
    /// same as for generation (PENDING → READY / ERROR, idempotent key id).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn import(&self, app: &str, req: ImportKeyRequest) -> Result<KeyInfo, ApiError> {
        let iid = session::session_id(&req.session).map_err(bad)?;
        session::check_key_id(&req.key_id).map_err(bad)?;
        let players = session::resolve_players(&req.session, &self.cfg.players).map_err(bad)?;
        if players.iter().enumerate().any(|(k, (i, _))| usize::from(*i) != k + 1) {
            return Err(ApiError::BadRequest("import needs players numbered exactly 1..=n".into()));
        }
        if !players.iter().any(|(i, _)| *i == self.cfg.index) {
            return Err(ApiError::BadRequest(format!(
                "this node (player {}) is not among session.players",
                self.cfg.index
            )));
        }
        let n = u16::try_from(players.len())
            .map_err(|_| ApiError::BadRequest("too many players".into()))?;
        let pk = hex::decode(&req.public_key)
            .ok()
            .and_then(|v| <[u8; 33]>::try_from(v).ok())
            .and_then(|b| point_from_bytes(&b).ok())
            .ok_or_else(|| {
                ApiError::BadRequest("public_key must be a compressed point (33 bytes hex)".into())
            })?;
        let cc = hex::decode(&req.chain_code)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| ApiError::BadRequest("chain_code must be 32 bytes of hex".into()))?;
        let secret = match (self.cfg.index == req.dealer, &req.private_key) {
            (true, Some(hex_key)) => {
                let raw = Zeroizing::new(
                    hex::decode(hex_key)
                        .map_err(|_| ApiError::BadRequest("private_key is not hex".into()))?,
                );
                let sk =
                    Zeroizing::new(<[u8; 32]>::try_from(raw.as_slice()).map_err(|_| {
                        ApiError::BadRequest("private_key must be 32 bytes".into())
                    })?);
                let mut rng = UnwrapErr(SysRng);
                let secret = ImportSecret::new(&sk, Some(cc), &mut rng)
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                if secret.public_key() != pk {
                    return Err(ApiError::BadRequest(
                        "private_key does not belong to public_key".into(),
                    ));
                }
                Some(secret)
            }
            (true, None) => {
                return Err(ApiError::BadRequest(
                    "this node is the dealer: private_key is required".into(),
                ));
            }
            (false, Some(_)) => {
                return Err(ApiError::BadRequest(
                    "private_key goes only to the dealer's node".into(),
                ));
            }
            (false, None) => None,
        };
        let request = ImportRequest {
            dealer: req.dealer,
            public_key: pk,
            key_id: dkls23_core::keyshare::key_id(&pk, &cc),
        };
        let holders = players.into_iter().map(|(_, k)| k).collect();
        let setup = request
            .to_setup(iid, holders, req.threshold, SESSION_TTL_SECS)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let span = info_span!("import", session = %hex16(&iid), app, key = %req.key_id);
        let shape = setup.clone();
        let relay = self.relay.clone();
        let signer: Arc<dyn IdentitySigner + Send + Sync> = self.cfg.identity.clone();
        let opts = self.run_options();
        self.create_key(app, &req.key_id, &shape, req.threshold, n, "import", move || async move {
            let mut rng = UnwrapErr(SysRng);
            let guard = MemoryReplayGuard::new();
            run_import(
                &RunContext::new(&*relay, signer, &guard).with_options(opts.clone()),
                &setup,
                secret,
                &mut rng,
            )
            .await
        })
        .instrument(span)
        .await
    }

    /// The extended public key at a path.
    ///
    /// # Errors
    /// 404, 409 (not READY), 400 (bad path or network).
    pub async fn xpub(
        &self,
        app: &str,
        key: &str,
        path: &str,
        network: &str,
    ) -> Result<XpubResponse, ApiError> {
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
        let r = self.ready_record(app, key).await?;
        let (Some(pk), Some(cc)) = (r.public_key, r.chain_code) else {
            return Err(ApiError::Internal);
        };
        let pk = point_from_bytes(&pk).map_err(|_| ApiError::Internal)?;
        let x = Xpub::root(pk, cc, network)
            .derive(&path)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(XpubResponse {
            key_id: key.to_owned(),
            path: session::format_path(&path),
            xpub: x.to_string(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::collections::BTreeMap;

    use dkls23_core::reshare::{NewMember, ReshareSpec};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::reshare_culprit_player;

    #[test]
    fn a_reshare_ban_names_the_dealer_by_its_player_index() {
        let mut rngs: BTreeMap<u16, ChaCha20Rng> =
            (1..=3).map(|i| (i, ChaCha20Rng::seed_from_u64(70 + u64::from(i)))).collect();
        let (res, _) = dkls23_core::sim::dkg(3, 2, [7; 32], &mut rngs, &mut |_, _, _| {});
        let share = res.get(&2).unwrap().as_ref().unwrap();
        // Dealers 2 and 3; the new committee is player 3 (new index 1) and a newcomer (2).
        let new = vec![
            NewMember { index: 1, identity: dkls23_core::sim::identity(3) },
            NewMember { index: 2, identity: dkls23_core::sim::identity(9) },
        ];
        let spec = ReshareSpec::from_share(share, &[2, 3], new, 2).unwrap();
        let t3 = spec
            .transport_participants()
            .into_iter()
            .find(|(_, k)| *k == dkls23_core::sim::identity(3))
            .unwrap()
            .0;
        assert_eq!(t3, 1, "player 3 is transport index 1 in this reshare");
        assert_eq!(reshare_culprit_player(&spec, t3), Some(3));
        let t2 = spec
            .transport_participants()
            .into_iter()
            .find(|(_, k)| *k == dkls23_core::sim::identity(2))
            .unwrap()
            .0;
        assert_eq!(reshare_culprit_player(&spec, t2), Some(2));
        // The newcomer deals nothing: it can never be banned for the current epoch.
        let t9 = spec
            .transport_participants()
            .into_iter()
            .find(|(_, k)| *k == dkls23_core::sim::identity(9))
            .unwrap()
            .0;
        assert_eq!(reshare_culprit_player(&spec, t9), None);
    }
}
