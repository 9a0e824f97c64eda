//! The router, and serving on a listener with graceful shutdown.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::error::ApiError;
use crate::state::AppState;
use crate::{http_api, serve, ws};

/// The relay's router.
pub fn app(state: AppState) -> Router {
    let allow_origin = match state.cors_origins() {
        None => AllowOrigin::from(Any),
        Some(list) => AllowOrigin::list(list.iter().cloned()),
    };
    let cors = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::PUT, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    let body_limit = state.engine().limits().max_message_bytes;
    Router::new()
        .route(ws::ROUTE, get(ws::upgrade))
        .route(
            "/v1/msg/{id}",
            get(http_api::get_message).put(http_api::put_message).delete(http_api::delete_message),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .layer(cors)
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the store answers (a shared store: Redis reachable).
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match state.engine().store().current_stats().await {
        Ok(_) => Ok(axum::Json(serde_json::json!({ "status": "ready" }))),
        Err(e) => {
            warn!(error = %e, "not ready: the message store does not answer");
            Err(ApiError::StoreUnavailable)
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let engine = state.engine();
    let stats = match engine.store().current_stats().await {
        Ok(stats) => stats,
        Err(e) => {
            warn!(error = %e, "store figures unavailable; /metrics shows the last known");
            engine.store().stats()
        }
    };
    let text = engine.metrics().render(&stats);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text)
}

async fn no_route() -> ApiError {
    ApiError::NoRoute
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Serves `state` on `listener` until `shutdown` resolves, then closes WebSocket connections
/// and long-polls and waits for in-flight HTTP requests.
///
/// # Errors
/// I/O errors of the listener.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_tls(listener, state, None, shutdown).await
}

/// As [`run`], over TLS when `tls` is given (see [`serve::serve_tls`]).
///
/// # Errors
/// As [`run`].
pub async fn run_tls(
    listener: TcpListener,
    state: AppState,
    tls: Option<dkls_tls::ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    match &tls {
        Some(tls) => info!(%addr, certificate = %tls.certificate(), "relay listening (TLS)"),
        None => info!(%addr, "relay listening"),
    }
    let closer = state.clone();
    let limits = state.serve_limits();
    serve::serve_tls(listener, app(state), limits, tls, async move {
        shutdown.await;
        info!(%addr, "relay shutting down");
        closer.close();
    })
    .await
}
