//! Deleting a key: this node's share is destroyed (crypto-shredding in the store).

use mpc_node_store::StoreError;
use tracing::{error, info};

use super::records::not_found;
use super::state::Node;
use crate::error::ApiError;

impl Node {
    /// Destroys this node's share of the key (waits for signing sessions on it to finish).
    ///
    /// # Errors
    /// 404 for an unknown key.
    pub async fn delete_key(&self, app: &str, key: &str) -> Result<(), ApiError> {
        let _lock = self.keys.write_lock(app, key).await;
        self.forget_key(app, key);
        let (a, k) = (app.to_owned(), key.to_owned());
        match self.db.try_call(move |s| s.delete(&a, &k)).await? {
            Ok(()) => {
                info!(app, key, "key deleted");
                Ok(())
            }
            Err(StoreError::NotFound) => Err(not_found(key)),
            Err(e) => {
                error!(error = %e, "delete failed");
                Err(ApiError::Internal)
            }
        }
    }
}
