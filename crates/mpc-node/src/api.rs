//! The SDK HTTP API: router, authentication, JSON body extraction and handlers.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mpc_node_client::api::{
    ExportRequestBody, GenerateKeyRequest, ImportKeyRequest, PresignRequestBody,
    RefreshRequestBody, ReshareRequestBody, SignRequestBody,
};
use mpc_node_client::session;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, ErrorMarker};
use crate::node::Node;
use crate::outcomes;

type AppState = Arc<Node>;

/// The authenticated application: from `Authorization: Bearer <api key>`, or, for a request
/// without that header, from the client certificate of its TLS connection (`[[client_certs]]`).
#[derive(Debug, Clone)]
pub struct App(pub String);

impl FromRequestParts<AppState> for App {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            let certificate = parts
                .extensions
                .get::<msg_relay_svc::serve::ClientCertificate>()
                .ok_or(ApiError::Unauthorized)?;
            let app =
                node.authenticate_certificate(&certificate.0).ok_or(ApiError::Unauthorized)?;
            node.tenants().check_rate(&app)?;
            return Ok(App(app));
        };
        let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
        // The scheme is case-insensitive (RFC 9110 §11.1): "Bearer", "bearer", "BEARER".
        let (scheme, key) = value.trim().split_once(' ').ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized);
        }
        let app = node.authenticate(key.trim()).ok_or(ApiError::Unauthorized)?;
        node.tenants().check_rate(&app)?;
        Ok(App(app))
    }
}

/// A JSON body whose rejections become precise JSON errors (400, or 413 over the limit).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, node: &AppState) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, node).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rej) => Err(json_rejection(rej, node.config().limits.max_request_bytes)),
        }
    }
}

/// Query parameters whose rejections are JSON errors (400) like every other error.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &AppState) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, node).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(rej) => Err(ApiError::BadRequest(format!("invalid query: {}", rej.body_text()))),
        }
    }
}

fn json_rejection(rej: JsonRejection, limit: usize) -> ApiError {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge(limit);
    }
    match rej {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::BadRequest("expected Content-Type: application/json".into())
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::BadRequest(format!("malformed JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::BadRequest(format!("invalid request: {}", e.body_text()))
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// The key and players of an operation, for its audit record.
struct Subject {
    key_id: Option<String>,
    players: Vec<u16>,
}

impl Subject {
    fn new(key_id: Option<&str>, session: &mpc_node_client::api::SessionConfig) -> Self {
        Self { key_id: key_id.map(str::to_owned), players: session.players.clone() }
    }
}

/// Who calls a session-bearing operation, and whether it asked for an asynchronous answer.
struct Caller<'a> {
    app: &'a str,
    respond_async: bool,
}

/// Runs a session-bearing operation detached from this request (see [`crate::outcomes`]),
/// recording it in the audit log when it has run.
async fn detached<T, F>(
    node: &AppState,
    caller: Caller<'_>,
    operation: &'static str,
    subject: Subject,
    session_id: &str,
    digest: [u8; 32],
    make: impl FnOnce(AppState, String) -> F,
) -> Result<Response, ApiError>
where
    T: serde::Serialize + Send + 'static,
    F: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
{
    let Caller { app, respond_async } = caller;
    // The application's share of operations, held until the operation ends (even when this
    // request is gone).
    let slot = node.tenants().start_operation(app)?;
    let fut = make(node.clone(), app.to_owned());
    let audit = node.audit().cloned();
    let entry = crate::audit::Entry {
        app: app.to_owned(),
        operation: operation.to_owned(),
        key_id: subject.key_id,
        session_id: Some(session_id.to_owned()),
        players: subject.players,
        ..Default::default()
    };
    let audited = async move {
        let _slot = slot;
        let result = fut.await;
        if let Some(audit) = audit {
            audit.record_or_log(audit_entry(entry, &result));
        }
        result
    };
    if respond_async {
        return crate::operations::start(node, app, operation, session_id, digest, audited).await;
    }
    let body = node.outcomes().run(app, operation, session_id, digest, audited).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Whether the request asked to be answered at once (`Prefer: respond-async`, RFC 7240).
#[derive(Debug, Clone, Copy)]
pub struct RespondAsync(pub bool);

impl FromRequestParts<AppState> for RespondAsync {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(Self(crate::operations::wants_async(&parts.headers)))
    }
}

/// `entry` completed with the outcome of `result`: the key id and signed hash of an answer
/// that names them, or the error code.
fn audit_entry<T: serde::Serialize>(
    mut entry: crate::audit::Entry,
    result: &Result<T, ApiError>,
) -> crate::audit::Entry {
    match result {
        Ok(answer) => {
            entry.outcome = "ok".into();
            if let Ok(value) = serde_json::to_value(answer) {
                let text =
                    |field: &str| value.get(field).and_then(|v| v.as_str()).map(str::to_owned);
                if let Some(key_id) = text("key_id") {
                    entry.key_id = Some(key_id);
                }
                entry.message_hash = text("message_hash");
            }
        }
        Err(e) => entry.outcome = e.parts().1.to_owned(),
    }
    entry
}

/// The `{key_id}` path parameter, checked once (400 for a malformed key id). A path that does
/// not decode is answered as axum answers it.
#[derive(Debug, Clone)]
pub struct KeyId(pub String);

impl FromRequestParts<AppState> for KeyId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, node: &AppState) -> Result<Self, Response> {
        let Path(key) = Path::<String>::from_request_parts(parts, node)
            .await
            .map_err(IntoResponse::into_response)?;
        match session::check_key_id(&key) {
            Ok(()) => Ok(Self(key)),
            Err(e) => Err(ApiError::BadRequest(e.0).into_response()),
        }
    }
}

/// The router of a node.
pub fn router(node: AppState) -> Router {
    let limit = node.config().limits.max_request_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/keys", post(generate).get(list_keys))
        .route("/v1/keys/import", post(import))
        .route("/v1/keys/{key_id}", get(get_key).delete(delete_key))
        .route("/v1/keys/{key_id}/sign", post(sign))
        .route("/v1/keys/{key_id}/public-key", get(public_key))
        .route("/v1/keys/{key_id}/xpub", get(xpub))
        .route("/v1/keys/{key_id}/presign", post(presign))
        .route("/v1/keys/{key_id}/refresh", post(refresh))
        .route("/v1/keys/{key_id}/reshare", post(reshare))
        .route("/v1/keys/{key_id}/reshare-spec", post(reshare_spec))
        .route("/v1/keys/{key_id}/export", post(export))
        .route("/v1/operations/{operation_id}", get(get_operation))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response_with_state(node.clone(), count_errors))
        .layer(DefaultBodyLimit::max(limit))
        .layer(TraceLayer::new_for_http())
        .with_state(node)
}

async fn count_errors(State(node): State<AppState>, resp: Response) -> Response {
    if resp.extensions().get::<ErrorMarker>().is_some() {
        node.metrics().http_error(resp.status().as_u16());
    }
    resp
}

async fn no_route() -> ApiError {
    ApiError::NoRoute
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: 200 when the node can run sessions (connected to its relay, not stopping), 503
/// with the JSON error `not_ready` naming what is missing otherwise.
async fn readyz(State(node): State<AppState>) -> Response {
    match node.readiness() {
        Ok(()) => {
            Json(serde_json::json!({ "status": "ready", "relay": "connected" })).into_response()
        }
        Err(why) => ApiError::NotReady(why).into_response(),
    }
}

async fn metrics(State(node): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], node.metrics().render())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::document())
}

async fn generate(
    State(node): State<AppState>,
    App(app): App,
    RespondAsync(asy): RespondAsync,
    Body(req): Body<GenerateKeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let (sid, digest) = (req.session.session_id.clone(), outcomes::digest_of(&req));
    let subject = Subject::new(req.key_id.as_deref(), &req.session);
    detached(
        &node,
        Caller { app: &app, respond_async: asy },
        "generate",
        subject,
        &sid,
        digest,
        |n, a| async move { n.generate(&a, req).await },
    )
    .await
}

async fn get_operation(
    State(node): State<AppState>,
    App(app): App,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(crate::operations::get(&node, &app, &id).await?))
}

async fn list_keys(
    State(node): State<AppState>,
    App(app): App,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(node.list_keys(&app).await?))
}

async fn get_key(
    State(node): State<AppState>,
    App(app): App,
    KeyId(key): KeyId,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(node.get_key(&app, &key).await?))
}

async fn delete_key(
    State(node): State<AppState>,
    App(app): App,
    KeyId(key): KeyId,
) -> Result<impl IntoResponse, ApiError> {
    let _slot = node.tenants().start_operation(&app)?;
    let result = node.delete_key(&app, &key).await;
    if let Some(audit) = node.audit() {
        let entry = crate::audit::Entry {
            app: app.clone(),
            operation: "delete".into(),
            key_id: Some(key.clone()),
            ..Default::default()
        };
        audit.record_or_log(audit_entry(entry, &result));
    }
    result?;
    Ok(Json(serde_json::json!({ "deleted": key })))
}

async fn sign(
    State(node): State<AppState>,
    App(app): App,
    RespondAsync(asy): RespondAsync,
    KeyId(key): KeyId,
    Body(req): Body<SignRequestBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (sid, digest) = (req.session.session_id.clone(), outcomes::digest_of(&(&key, &req)));
    let subject = Subject::new(Some(&key), &req.session);
    detached(
        &node,
        Caller { app: &app, respond_async: asy },
        "sign",
        subject,
        &sid,
        digest,
        |n, a| async move { n.sign(&a, &key, req).await },
    )
    .await
}

#[derive(Debug, Deserialize)]
struct PathQuery {
    #[serde(default)]
    path: Option<String>,
}

async fn public_key(
    State(node): State<AppState>,
    App(app): App,
    KeyId(key): KeyId,
    Params(q): Params<PathQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(node.public_key(&app, &key, q.path.as_deref().unwrap_or("m")).await?))
}

#[derive(Debug, Deserialize)]
struct XpubQuery {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    network: Option<String>,
}

async fn xpub(
    State(node): State<AppState>,
    App(app): App,
    KeyId(key): KeyId,
    Params(q): Params<XpubQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let path = q.path.as_deref().unwrap_or("m");
    Ok(Json(node.xpub(&app, &key, path, q.network.as_deref().unwrap_or("mainnet")).await?))
}

async fn presign(
    State(node): State<AppState>,
    App(app): App,
    RespondAsync(asy): RespondAsync,
    KeyId(key): KeyId,
    Body(req): Body<PresignRequestBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (sid, digest) = (req.session.session_id.clone(), outcomes::digest_of(&(&key, &req)));
    let subject = Subject::new(Some(&key), &req.session);
    detached(
        &node,
        Caller { app: &app, respond_async: asy },
        "presign",
        subject,
        &sid,
        digest,
        |n, a| async move { n.presign(&a, &key, req).await },
    )
    .await
}

async fn refresh(
    State(node): State<AppState>,
    App(app): App,
    RespondAsync(asy): RespondAsync,
    KeyId(key): KeyId,
    Body(req): Body<RefreshRequestBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (sid, digest) = (req.session.session_id.clone(), outcomes::digest_of(&(&key, &req)));
    let subject = Subject::new(Some(&key), &req.session);
    detached(
        &node,
        Caller { app: &app, respond_async: asy },
        "refresh",
        subject,
        &sid,
        digest,
        |n, a| async move { n.refresh(&a, &key, req).await },
    )
    .await
}

async fn reshare_spec(
    State(node): State<AppState>,
    App(app): App,
    KeyId(key): KeyId,
    Body(req): Body<ReshareRequestBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(node.reshare_spec(&app, &key, req).await?))
}

async fn reshare(
    State(node): State<AppState>,
    App(app): App,
    RespondAsync(asy): RespondAsync,
    KeyId(key): KeyId,
    Body(req): Body<ReshareRequestBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (sid, digest) = (req.session.session_id.clone(), outcomes::digest_of(&(&key, &req)));
    let subject = Subject::new(Some(&key), &req.session);
    detached(
        &node,
        Caller { app: &app, respond_async: asy },
        "reshare",
        subject,
        &sid,
        digest,
        |n, a| async move { n.reshare(&a, &key, req).await },
    )
    .await
}

async fn export(
    State(node): State<AppState>,
    App(app): App,
    RespondAsync(asy): RespondAsync,
    KeyId(key): KeyId,
    Body(req): Body<ExportRequestBody>,
) -> Result<impl IntoResponse, ApiError> {
    let (sid, digest) = (req.session.session_id.clone(), outcomes::digest_of(&(&key, &req)));
    let subject = Subject::new(Some(&key), &req.session);
    detached(
        &node,
        Caller { app: &app, respond_async: asy },
        "export",
        subject,
        &sid,
        digest,
        |n, a| async move { n.export(&a, &key, req).await },
    )
    .await
}
async fn import(
    State(node): State<AppState>,
    App(app): App,
    RespondAsync(asy): RespondAsync,
    Body(req): Body<ImportKeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let (sid, digest) = (req.session.session_id.clone(), outcomes::digest_of(&req));
    let subject = Subject::new(Some(&req.key_id), &req.session);
    detached(
        &node,
        Caller { app: &app, respond_async: asy },
        "import",
        subject,
        &sid,
        digest,
        |n, a| async move { n.import(&a, req).await },
    )
    .await
}
