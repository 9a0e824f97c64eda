//! The one place where errors become HTTP answers: `{"error": {"code", "message"}}`, never
//! internals (store and runtime failures are logged and answered as `internal`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mpc_node_client::api::{ErrorBody, ErrorDetail};

/// An error answered to an SDK client.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Missing or unknown API key.
    #[error("missing or invalid API key (send Authorization: Bearer <key>)")]
    Unauthorized,
    /// No such key for this application (also for other applications' keys).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed; the text says how.
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with the key's state or a used session id.
    #[error("{0}")]
    Conflict(String),
    /// The body exceeds the limit.
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    /// Too many sessions are running.
    #[error("too many concurrent sessions; retry later")]
    Busy,
    /// The application sent more requests than its `requests_per_second` allow.
    #[error("request rate limit of this application reached; retry in {retry_after} s")]
    RateLimited {
        /// Seconds until a request is allowed again.
        retry_after: u64,
    },
    /// The application already runs as many operations as its share allows.
    #[error(
        "this application already runs {limit} operations at once (its max_concurrent_operations); \
         retry when one has finished"
    )]
    TooManyOperations {
        /// The share.
        limit: usize,
    },
    /// The node is shutting down.
    #[error("node is shutting down; retry on another replica or later")]
    ShuttingDown,
    /// Another player refused the session before it started (busy or stopping); nothing was
    /// created here either.
    #[error(
        "player {player} refused the session ({reason}); nothing was created: retry with a new session id"
    )]
    PeerBusy {
        /// The player that refused.
        player: u16,
        /// Its announced reason.
        reason: String,
    },
    /// Not ready to serve sessions (`/readyz`); the text says what is missing.
    #[error("not ready: {0}")]
    NotReady(&'static str),
    /// Not available in this build.
    #[error("{0}")]
    NotImplemented(&'static str),
    /// No such route.
    #[error("no such route")]
    NoRoute,
    /// The route exists, but not with this method.
    #[error("this method is not allowed on this route")]
    MethodNotAllowed,
    /// The protocol failed while this node holds a staged share of a newer epoch that it could
    /// not confirm: its peers may have moved to that epoch.
    #[error(
        "{cause}; this node holds a new share of epoch {epoch} from a refresh or reshare that it \
         could not confirm (no acknowledgement of every member was found at the relay), so its \
         peers may already be at epoch {epoch} while it is still at the previous one"
    )]
    StagedUnconfirmed {
        /// The staged share's epoch.
        epoch: u32,
        /// The failure itself.
        cause: String,
    },
    /// The protocol failed.
    #[error(transparent)]
    Protocol(#[from] dkls23_core::Error),
    /// A failure inside the node (already logged); the client sees only `internal`.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// Status and stable code.
    pub fn parts(&self) -> (StatusCode, &'static str) {
        use dkls23_core::Error as E;
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::TooManyOperations { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_operations")
            }
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            Self::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::PeerBusy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "peer_busy"),
            Self::StagedUnconfirmed { .. } => (StatusCode::CONFLICT, "epoch_undecided"),
            Self::NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, "not_implemented"),
            Self::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::Protocol(e) => match e {
                E::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
                E::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
                E::Transport(_) => (StatusCode::BAD_GATEWAY, "relay_unavailable"),
                E::RelayFull { .. } => (StatusCode::SERVICE_UNAVAILABLE, "relay_full"),
                E::PeerAborted {
                    reason: dkls23_core::AbortReason::Busy | dkls23_core::AbortReason::Stopping,
                    ..
                } => (StatusCode::SERVICE_UNAVAILABLE, "peer_busy"),
                E::PeerAborted { reason: dkls23_core::AbortReason::Timeout, .. } => {
                    (StatusCode::GATEWAY_TIMEOUT, "peer_aborted")
                }
                E::PeerAborted { .. } => (StatusCode::BAD_GATEWAY, "peer_aborted"),
                E::Blame { .. } => (StatusCode::BAD_GATEWAY, "party_misbehaved"),
                E::BanAndAbort { .. } => (StatusCode::BAD_GATEWAY, "party_banned"),
                E::ViewMismatch { .. } => (StatusCode::BAD_GATEWAY, "view_mismatch"),
                _ => (StatusCode::BAD_GATEWAY, "protocol_failed"),
            },
        }
    }
}

impl ApiError {
    /// The JSON body answered for this error.
    pub fn body(&self) -> ErrorBody {
        let (_, code) = self.parts();
        let message = match self {
            // Relay error texts may carry addresses; keep them in the log only.
            Self::Protocol(dkls23_core::Error::Transport(_)) => {
                "the relay could not be reached; retry later".to_owned()
            }
            other => other.to_string(),
        };
        ErrorBody { error: ErrorDetail { code: code.to_owned(), message } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.parts();
        let mut resp = (status, Json(self.body())).into_response();
        let retry_after = match &self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            // Busy, relay full, shutting down, a full share: all load or restarts that pass.
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            Self::TooManyOperations { .. } => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp.extensions_mut().insert(ErrorMarker);
        resp
    }
}

/// Marks error responses (for the error counter).
#[derive(Debug, Clone, Copy)]
pub struct ErrorMarker;
