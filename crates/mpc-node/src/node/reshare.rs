//! Refresh (new shares of the same key for the same players) and reshare (a new committee
//! and/or threshold), including joining a reshare without a share and the public spec a
//! joining node needs. The new share is staged before this node's acknowledgement leaves.

use std::sync::Arc;

use dkls23_core::KeyShare;
use dkls23_core::reshare::{ReshareOutcome, ReshareSpec};
use dkls23_core::setup::Setup;
use dkls23_runner::{StageShare, run_reshare};
use getrandom::SysRng;
use mpc_node_client::api::{
    KeyInfo, RefreshRequestBody, ReshareRequestBody, ReshareResponse, ReshareSpecResponse,
};
use mpc_node_client::session::SESSION_TTL_SECS;
use mpc_node_store::{KeyRecord, KeyStatus};
use rand_core::UnwrapErr;
use tracing::{Instrument, info, info_span};

use super::keygen::NewKey;
use super::runtime::hex16;
use super::state::Node;
use crate::error::ApiError;
use crate::request::{RefreshRequest, ReshareRequest, ReshareSpecRequest, Roster};

/// The key's player behind transport index `t` of a reshare session. A reshare names parties by
/// their setup (transport) index, new committee first; bans name players of the key's current
/// epoch, and only a dealer of that epoch can be one (`None` for anybody else).
pub(crate) fn reshare_culprit_player(spec: &ReshareSpec, t: u16) -> Option<u16> {
    spec.old_member_at(t).map(|m| m.index)
}

/// The setup of the reshare session `iid` for `spec`.
fn reshare_setup(spec: &ReshareSpec, iid: [u8; 32]) -> Result<Setup, ApiError> {
    spec.to_setup(iid, SESSION_TTL_SECS).map_err(|e| ApiError::BadRequest(e.to_string()))
}

impl Node {
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
        let req = RefreshRequest::try_from(req)?;
        let span = info_span!("refresh", session = %hex16(&req.iid), app, key);
        self.refresh_key(app, key, req).instrument(span).await
    }

    async fn refresh_key(
        &self,
        app: &str,
        key: &str,
        req: RefreshRequest,
    ) -> Result<KeyInfo, ApiError> {
        let _lock = self.keys.write_lock(app, key).await;
        let record = self.ready_record(app, key).await?;
        let all: Vec<u16> = (1..=record.parties).collect();
        if req.players != all {
            return Err(ApiError::BadRequest(format!(
                "refresh needs every player of the key: session.players must be {all:?}"
            )));
        }
        let (share, _) = self.load_share(&record).await?;
        let spec = ReshareSpec::refresh(&share).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let setup = reshare_setup(&spec, req.iid)?;
        self.claim_session_id(req.iid).await?;
        let stage = self.stage_hook(app, key, &setup);
        match self.run_reshare_session("refresh", setup, Some(share), Some(stage)).await {
            Ok(ReshareOutcome::NewShare(new)) => self.replace_share(app, key, &new).await,
            Ok(_) => Err(ApiError::Internal),
            Err(e) => Err(self.reshare_failed(app, key, &spec, e).await),
        }
    }

    /// After a failed refresh/reshare: the dealer to ban, if any, and the staged-share hint.
    async fn reshare_failed(
        &self,
        app: &str,
        key: &str,
        spec: &ReshareSpec,
        e: ApiError,
    ) -> ApiError {
        self.ban_culprit(app, key, &e, |t| reshare_culprit_player(spec, t)).await;
        self.staged_hint(app, key, e).await
    }

    async fn run_reshare_session(
        &self,
        protocol: &'static str,
        setup: Setup,
        old: Option<Arc<KeyShare>>,
        stage: Option<Arc<dyn StageShare>>,
    ) -> Result<ReshareOutcome, ApiError> {
        let env = self.runtime.env().staging(stage);
        self.protocol(protocol, move || async move {
            let mut rng = UnwrapErr(SysRng);
            run_reshare(&env.context(), &setup, old.as_deref(), &mut rng).await
        })
        .await
    }

    /// The reshare spec of `req` as computed from this node's share (no protocol is run).
    async fn compute_spec(
        &self,
        record: &KeyRecord,
        req: &ReshareSpecRequest,
    ) -> Result<(Arc<KeyShare>, ReshareSpec), ApiError> {
        let dealers = req.dealers()?;
        let (share, _) = self.load_share(record).await?;
        let spec =
            ReshareSpec::from_share(&share, &dealers, req.new_committee.clone(), req.new_threshold)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok((share, spec))
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
        let req = ReshareSpecRequest::validate(&req, &Roster::of(&self.cfg))?;
        let record = self.ready_record(app, key).await?;
        let (_, spec) = self.compute_spec(&record, &req).await?;
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
        let req = ReshareRequest::validate(req, &Roster::of(&self.cfg))?;
        let span = info_span!("reshare", session = %hex16(&req.iid), app, key);
        self.reshare_key(app, key, req).instrument(span).await
    }

    async fn reshare_key(
        &self,
        app: &str,
        key: &str,
        req: ReshareRequest,
    ) -> Result<ReshareResponse, ApiError> {
        let (a, k) = (app.to_owned(), key.to_owned());
        let Some(record) = self.db.call(move |s| s.get(&a, &k)).await? else {
            return self.join_reshare(app, key, req).await;
        };
        let _lock = self.keys.write_lock(app, key).await;
        let record = match record.status {
            KeyStatus::Ready => self.ready_record(app, key).await?,
            _ => return Err(ApiError::Conflict(format!("key {key:?} is not READY"))),
        };
        let (share, spec) = self.compute_spec(&record, &req.spec).await?;
        if req.given_spec.as_ref().is_some_and(|g| *g != spec) {
            return Err(ApiError::BadRequest(
                "spec differs from the one this node computes from its share".into(),
            ));
        }
        let setup = reshare_setup(&spec, req.iid)?;
        let dealing = req.spec.old_players.contains(&record.player);
        if !dealing && !req.continuing {
            return Err(ApiError::BadRequest(
                "this node neither deals (old_players) nor is in the new committee".into(),
            ));
        }
        self.claim_session_id(req.iid).await?;
        let old = if dealing { Some(share) } else { None };
        // Only a member of the new committee gets a new share to stage.
        let stage = req.continuing.then(|| self.stage_hook(app, key, &setup));
        match self.run_reshare_session("reshare", setup, old, stage).await {
            Ok(ReshareOutcome::NewShare(new)) => {
                let info = self.replace_share(app, key, &new).await?;
                Ok(ReshareResponse { key: Some(info), removed: false })
            }
            Ok(ReshareOutcome::Removed) => self.leave_committee(app, key).await,
            Err(e) => Err(self.reshare_failed(app, key, &spec, e).await),
        }
    }

    /// This node is not in the new committee: its share is destroyed.
    async fn leave_committee(&self, app: &str, key: &str) -> Result<ReshareResponse, ApiError> {
        let (a, k) = (app.to_owned(), key.to_owned());
        self.forget_key(app, key);
        self.db.call(move |s| s.delete(&a, &k)).await?;
        info!("left the committee: share destroyed");
        Ok(ReshareResponse { key: None, removed: true })
    }

    /// A node without a share of the key joins the new committee (PENDING → READY / ERROR).
    async fn join_reshare(
        &self,
        app: &str,
        key: &str,
        req: ReshareRequest,
    ) -> Result<ReshareResponse, ApiError> {
        let spec = req.given_spec.ok_or_else(|| {
            ApiError::NotFound(format!(
                "no key {key:?} here; to join its new committee pass spec (from reshare-spec)"
            ))
        })?;
        if spec.new_committee != req.spec.new_committee {
            return Err(ApiError::BadRequest(
                "spec's new committee differs from session.players and their keys".into(),
            ));
        }
        if !req.continuing {
            return Err(ApiError::BadRequest("this node is not in the new committee".into()));
        }
        let setup = reshare_setup(&spec, req.iid)?;
        let new = NewKey {
            app,
            key_id: key,
            setup: &setup,
            threshold: spec.new_threshold,
            parties: spec.new_parties(),
            protocol: "reshare",
        };
        let env = self.runtime.env();
        let run = setup.clone();
        let info = self
            .create_key(new, move || async move {
                let mut rng = UnwrapErr(SysRng);
                match run_reshare(&env.context(), &run, None, &mut rng).await? {
                    ReshareOutcome::NewShare(s) => Ok(s),
                    _ => Err(dkls23_core::Error::InvalidInput(
                        "a joining member cannot leave the committee".into(),
                    )),
                }
            })
            .await?;
        Ok(ReshareResponse { key: Some(info), removed: false })
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
