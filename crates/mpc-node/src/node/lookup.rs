//! Reading keys: one key, all keys of an application, and the public keys derived from one.

use dkls23_core::bip32::Xpub;
use dkls23_core::encoding::point_from_bytes;
use mpc_node_client::api::{KeyInfo, KeyList, PublicKeyResponse, XpubResponse};
use mpc_node_client::session;
use mpc_node_store::KeyRecord;

use super::records::{key_info, not_found};
use super::state::Node;
use crate::error::ApiError;
use crate::request::{XpubRequest, bad};

/// The public key and chain code of a READY record.
fn public_parts(r: &KeyRecord) -> Result<(k256::ProjectivePoint, [u8; 32]), ApiError> {
    let (Some(pk), Some(cc)) = (r.public_key, r.chain_code) else {
        return Err(ApiError::Internal);
    };
    let pk = point_from_bytes(&pk).map_err(|_| ApiError::Internal)?;
    Ok((pk, cc))
}

impl Node {
    /// One key of the application.
    ///
    /// # Errors
    /// 404 for an unknown key.
    pub async fn get_key(&self, app: &str, key: &str) -> Result<KeyInfo, ApiError> {
        let (a, k) = (app.to_owned(), key.to_owned());
        let r = self.db.call(move |s| s.get(&a, &k)).await?.ok_or_else(|| not_found(key))?;
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
        let rs = self.db.call(move |s| s.list(&a)).await?;
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
        let (pk, cc) = public_parts(&r)?;
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
        let req = XpubRequest::parse(path, network)?;
        let r = self.ready_record(app, key).await?;
        let (pk, cc) = public_parts(&r)?;
        let x = Xpub::root(pk, cc, req.network)
            .derive(&req.path)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(XpubResponse {
            key_id: key.to_owned(),
            path: session::format_path(&req.path),
            xpub: x.to_string(),
        })
    }
}
