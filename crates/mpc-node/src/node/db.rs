//! The store as the node uses it: every call on the blocking pool, store failures logged and
//! answered as `internal`.

use std::sync::Arc;

use mpc_node_store::{Store, StoreError};
use tracing::error;

use crate::error::ApiError;

/// The node's store.
#[derive(Clone)]
pub(crate) struct Db(Arc<dyn Store>);

impl Db {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self(store)
    }

    /// The store itself (for tasks that outlive a request).
    pub(crate) fn store(&self) -> Arc<dyn Store> {
        self.0.clone()
    }

    /// Runs `f` against the store on the blocking pool, returning the store's own result.
    pub(crate) async fn try_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Result<T, StoreError>, ApiError> {
        let store = self.0.clone();
        tokio::task::spawn_blocking(move || f(&*store)).await.map_err(|e| {
            error!(error = %e, "store task failed");
            ApiError::Internal
        })
    }

    /// Like [`Db::try_call`], every store error being internal.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.try_call(f).await?.map_err(|e| {
            error!(error = %e, "store failed");
            ApiError::Internal
        })
    }
}
