//! The one place where errors become HTTP responses: JSON `{"error": {...}}`, never internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::engine::EngineError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Refused or failed by the engine.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The request is malformed; the text says how.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the message size limit.
    #[error("message exceeds the limit of {max} bytes")]
    BodyTooLarge {
        /// Declared body size, if known.
        size: Option<u64>,
        /// The limit.
        max: usize,
    },
    /// No such route.
    #[error("no such route")]
    NoRoute,
    /// The method is not allowed on this route.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The relay is shutting down.
    #[error("relay shutting down; retry")]
    ShuttingDown,
    /// The message store (Redis) does not answer.
    #[error("message store unreachable; retry")]
    StoreUnavailable,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, u64, u64) {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match self {
            ApiError::Engine(e) => match e {
                EngineError::TooLarge { size, max } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "too_large", n(*size), n(*max))
                }
                EngineError::BadTtl { requested, max } => {
                    (StatusCode::BAD_REQUEST, "bad_ttl", ms(*requested), ms(*max))
                }
                EngineError::Conflict(_) => (StatusCode::CONFLICT, "conflict", 0, 0),
                EngineError::StoreFull { held, limit } => {
                    (StatusCode::INSUFFICIENT_STORAGE, "store_full", *held, *limit)
                }
                EngineError::QuotaExceeded { held, limit, .. } => {
                    (StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded", *held, *limit)
                }
                EngineError::ForwardNotAllowed => (StatusCode::FORBIDDEN, "forbidden", 0, 0),
                EngineError::TooManyAsks { limit } => {
                    (StatusCode::TOO_MANY_REQUESTS, "too_many_asks", 0, n(*limit))
                }
                EngineError::WaitExpired(_) => (StatusCode::NOT_FOUND, "not_found", 0, 0),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", 0, 0),
            },
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request", 0, 0),
            ApiError::BodyTooLarge { size, max } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_large", size.unwrap_or(0), n(*max))
            }
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no_route", 0, 0),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", 0, 0)
            }
            ApiError::ShuttingDown | ApiError::StoreUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", 0, 0)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, actual, limit) = self.parts();
        let message = match &self {
            ApiError::Engine(EngineError::WaitExpired(id)) => {
                format!("message {id} is not here (yet); ask again")
            }
            other => other.to_string(),
        };
        let body = json!({ "error": { "code": code, "message": message, "actual": actual, "limit": limit } });
        (status, Json(body)).into_response()
    }
}
