//! Moving a key across the threshold boundary: importing an existing private key (split by
//! the dealer's node among the players) and exporting this node's share to a recipient.

use dkls23_core::import_export::{EXPORT_CONFIRMATION, ExportRequest};
use dkls23_runner::{run_export, run_import};
use getrandom::SysRng;
use mpc_node_client::api::{ExportRequestBody, ExportResponse, ImportKeyRequest, KeyInfo};
use mpc_node_client::session::SESSION_TTL_SECS;
use rand_core::UnwrapErr;
use tracing::{Instrument, info_span};

use super::keygen::NewKey;
use super::runtime::hex16;
use super::state::Node;
use crate::error::ApiError;
use crate::request::{ExportShareRequest, ImportKey, Roster, require_member};

impl Node {
    /// Import: the dealer's node splits the given private key among the players (then a
    /// refresh inside `run_import` gives everyone fresh OT material); the key lifecycle is the
    /// same as for generation (PENDING → READY / ERROR, idempotent key id).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn import(&self, app: &str, req: ImportKeyRequest) -> Result<KeyInfo, ApiError> {
        let req = ImportKey::validate(req, &Roster::of(&self.cfg))?;
        let span = info_span!("import", session = %hex16(&req.iid), app, key = %req.key_id);
        self.import_key(app, req).instrument(span).await
    }

    async fn import_key(&self, app: &str, req: ImportKey) -> Result<KeyInfo, ApiError> {
        let ImportKey { key_id, threshold, parties, setup, secret, .. } = req;
        let new =
            NewKey { app, key_id: &key_id, setup: &setup, threshold, parties, protocol: "import" };
        let env = self.runtime.env();
        let run = setup.clone();
        self.create_key(new, move || async move {
            let mut rng = UnwrapErr(SysRng);
            run_import(&env.context(), &run, secret, &mut rng).await
        })
        .await
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
        let req = ExportShareRequest::try_from(req)?;
        let span = info_span!("export", session = %hex16(&req.iid), app, key);
        self.export_share(app, key, req).instrument(span).await
    }

    async fn export_share(
        &self,
        app: &str,
        key: &str,
        req: ExportShareRequest,
    ) -> Result<ExportResponse, ApiError> {
        let _lock = self.keys.read_lock(app, key).await;
        let record = self.ready_record(app, key).await?;
        require_member(record.player, &req.exporters)?;
        let (share, _) = self.load_share(&record).await?;
        let er =
            ExportRequest::new(&share, &req.exporters, req.recipient_index, req.recipient_x25519)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let setup = er
            .to_setup(&share, req.recipient_identity, req.iid, SESSION_TTL_SECS)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let setup_hex = hex::encode(setup.to_bytes());
        self.claim_session_id(req.iid).await?;
        let env = self.runtime.env();
        self.protocol("export", move || async move {
            let mut rng = UnwrapErr(SysRng);
            run_export(&env.context(), &setup, &share, EXPORT_CONFIRMATION, &mut rng).await
        })
        .await?;
        tracing::warn!("key share exported: the key is no longer threshold-protected");
        Ok(ExportResponse { key_id: key.to_owned(), setup: setup_hex })
    }
}
