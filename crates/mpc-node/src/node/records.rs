//! Key records as the SDK sees them, and the answers about a record's state.

use dkls23_core::encoding::point_from_bytes;
use mpc_node_client::api::KeyInfo;
use mpc_node_client::session;
use mpc_node_store::{KeyRecord, KeyStatus};

use crate::error::ApiError;

/// The status of a record in the API (`PENDING`, `READY`, `ERROR`).
pub(crate) fn status_name(s: &KeyStatus) -> &'static str {
    match s {
        KeyStatus::Pending => "PENDING",
        KeyStatus::Ready => "READY",
        KeyStatus::Error(_) => "ERROR",
    }
}

/// 404 for an unknown key.
pub(crate) fn not_found(key: &str) -> ApiError {
    ApiError::NotFound(format!("no key {key:?}"))
}

/// The SDK view of a stored record.
pub fn key_info(r: &KeyRecord) -> KeyInfo {
    let address = r
        .public_key
        .and_then(|pk| point_from_bytes(&pk).ok())
        .map(|p| session::ethereum_address(&p));
    KeyInfo {
        key_id: r.key.clone(),
        status: status_name(&r.status).to_owned(),
        error: match &r.status {
            KeyStatus::Error(e) => Some(e.clone()),
            _ => None,
        },
        threshold: r.threshold,
        parties: r.parties,
        player: r.player,
        epoch: r.epoch,
        public_key: r.public_key.map(hex::encode),
        chain_code: r.chain_code.map(hex::encode),
        ethereum_address: address,
        staged_epoch: None,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// What a generation or import answers when its key id exists already: the READY key, or 409
/// for one that is PENDING or failed.
pub(crate) fn existing(r: &KeyRecord) -> Result<KeyInfo, ApiError> {
    match &r.status {
        KeyStatus::Ready => Ok(key_info(r)),
        KeyStatus::Pending => {
            Err(ApiError::Conflict(format!("key {:?} is being generated (PENDING)", r.key)))
        }
        KeyStatus::Error(reason) => Err(ApiError::Conflict(format!(
            "key {:?} failed to generate ({reason}); delete it or use another key_id",
            r.key
        ))),
    }
}
