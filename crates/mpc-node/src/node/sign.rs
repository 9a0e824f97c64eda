//! Signing: a full signing session, or the online phase of a stored presignature.

use dkls23_runner::run_sign;
use getrandom::SysRng;
use mpc_node_client::api::{SignRequestBody, SignatureResponse};
use mpc_node_client::session;
use rand_core::UnwrapErr;
use tracing::{Instrument, info_span};

use super::bans::{BanScope, refuse_banned};
use super::runtime::hex16;
use super::state::Node;
use crate::error::ApiError;
use crate::request::{SignRequest, bad, require_member};

/// The answer to a sign request.
pub(super) fn signature_response(
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

/// The public key at `path` below `share`'s key (400 for a path that cannot be derived).
pub(super) fn derived_key(
    share: &dkls23_core::KeyShare,
    path: &[u32],
) -> Result<k256::ProjectivePoint, ApiError> {
    dkls23_core::bip32::derive(share.public_key(), share.chain_code(), path)
        .map(|d| d.public_key)
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

impl Node {
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
        let req = SignRequest::try_from(req)?;
        let span = info_span!("sign", session = %hex16(&req.iid), app, key);
        self.sign_message(app, key, req).instrument(span).await
    }

    async fn sign_message(
        &self,
        app: &str,
        key: &str,
        req: SignRequest,
    ) -> Result<SignatureResponse, ApiError> {
        let _lock = self.keys.read_lock(app, key).await;
        let record = self.ready_record(app, key).await?;
        require_member(record.player, &req.signers)?;
        if let Some(presignature) = req.presignature()? {
            let (sig, share) = self.finish_presigned(&presignature, &req, &record).await?;
            let public_key = derived_key(&share, &req.path)?;
            return Ok(signature_response(key, req.message, &sig, &public_key));
        }
        let (share, banned) = self.load_share(&record).await?;
        let setup = session::sign_setup(req.iid, &share, &req.signers, &req.path, req.message)
            .map_err(bad)?;
        refuse_banned(&req.signers, &banned)?;
        // Capacity before the session id is claimed (a busy node tells the other signers).
        let permit = self.reserve_for(&setup).await?;
        self.claim_session_id(req.iid).await?;
        let public_key = derived_key(&share, &req.path)?;
        let env = self.runtime.env().refusing(banned);
        let scope = BanScope::of(&record, &req.signers);
        let result = self
            .protocol_scoped("sign", Some(scope), Some(permit), move || async move {
                let mut rng = UnwrapErr(SysRng);
                run_sign(&env.context(), &setup, &share, &mut rng).await
            })
            .await;
        match result {
            Ok(sig) => Ok(signature_response(key, req.message, &sig, &public_key)),
            Err(e) => {
                self.ban_culprit(app, key, &e, Some).await;
                Err(self.staged_hint(app, key, e).await)
            }
        }
    }
}
