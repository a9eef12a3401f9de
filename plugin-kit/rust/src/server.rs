//! The protocol's HTTP side: routes, the plugin token, bounded bodies, the error body. Plugin code never
//! sees a malformed request, and nothing it returns leaves without the number mask.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use faxbot_contract::phi;
use faxbot_contract::sidecar::{ErrorBody, ErrorDetail, ErrorKind, SendRequest, WebhookAnswer, WebhookRequest};

use crate::{Plugin, PluginError, check_manifest};

/// Largest `send` body: a 48 MiB message holds a 36 MiB document in base64 (the server's default document
/// limit is 10 MB).
pub const SEND_LIMIT: usize = 48 * 1024 * 1024;

struct Served {
    plugin: Arc<dyn Plugin>,
    token: Option<String>,
    webhook_limit: usize,
}

/// The protocol's routes over `plugin`; with `token`, every route but `/v1/health` requires it. Refuses a
/// plugin whose manifest fails [`check_manifest`], naming every problem.
pub fn router(plugin: Arc<dyn Plugin>, token: Option<String>) -> Result<Router, String> {
    let manifest = plugin.manifest();
    let problems = check_manifest(&manifest);
    if !problems.is_empty() {
        return Err(problems.iter().map(|(f, p)| format!("{f}: {p}")).collect::<Vec<_>>().join("; "));
    }
    // A callback body in base64, plus room for the URL and headers around it.
    let webhook_limit = manifest.webhook.as_ref().map_or(64 * 1024, |w| w.max_bytes.div_ceil(3) * 4 + 64 * 1024);
    let served = Arc::new(Served { plugin, token: token.filter(|t| !t.is_empty()), webhook_limit });
    Ok(Router::new()
        .route("/v1/health", get(health))
        .route("/v1/manifest", get(manifest_route))
        .route("/v1/send", post(send).layer(DefaultBodyLimit::max(SEND_LIMIT)))
        .route("/v1/faxes/{id}", get(status))
        .route("/v1/faxes/{id}/cancel", post(cancel))
        .route("/v1/webhook", post(webhook).layer(DefaultBodyLimit::max(webhook_limit)))
        .fallback(|| async { failure(&PluginError::new(ErrorKind::NotFound, "no such route")) })
        .with_state(served))
}

/// Where to listen.
#[derive(Debug, Clone)]
pub struct Listen {
    /// Address (loopback: the server calls over the pod's loopback).
    pub addr: SocketAddr,
    /// The plugin token.
    pub token: Option<String>,
}

/// Serves `plugin` until the process ends. Prints `listening on http://ADDR` once bound (with port 0, the
/// port chosen), which scripts and tests wait for.
pub async fn serve(plugin: Arc<dyn Plugin>, listen: Listen) -> std::io::Result<()> {
    let app = router(plugin, listen.token).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(listen.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await
}

/// [`serve`] configured from the environment the operator sets: `FAXBOT_PLUGIN_LISTEN` (default
/// `127.0.0.1:8090`) and `FAXBOT_PLUGIN_TOKEN`.
pub async fn serve_from_env(plugin: Arc<dyn Plugin>) -> std::io::Result<()> {
    let addr = std::env::var("FAXBOT_PLUGIN_LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "FAXBOT_PLUGIN_LISTEN is not HOST:PORT"))?;
    let token = std::env::var("FAXBOT_PLUGIN_TOKEN").ok();
    serve(plugin, Listen { addr, token }).await
}

async fn shutdown() {
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

fn failure(e: &PluginError) -> Response {
    let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let message: String = e.message.chars().filter(|c| !c.is_control()).take(300).collect();
    let body = ErrorBody {
        error: ErrorDetail {
            kind: e.kind,
            message: phi::mask_numbers(&message, phi::LOG_MIN_DIGITS),
            retry_after_ms: e.retry_after_ms,
        },
    };
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(ms) = e.retry_after_ms
        && let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn bad_request() -> Response {
    // serde's message can quote the input (a number): the answer names only the problem.
    failure(&PluginError::new(ErrorKind::BadRequest, "the request does not follow the protocol"))
}

fn authenticated(served: &Served, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = &served.token else { return None };
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let ok = presented.is_some_and(|p| {
        use subtle::ConstantTimeEq;
        bool::from(p.as_bytes().ct_eq(expected.as_bytes()))
    });
    (!ok).then(|| failure(&PluginError::new(ErrorKind::Unauthenticated, "missing or wrong plugin token")))
}

async fn health(State(served): State<Arc<Served>>) -> Response {
    match served.plugin.health().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({"status": "failing", "message": phi::mask_numbers(&why, phi::LOG_MIN_DIGITS)}),
            ),
        )
            .into_response(),
    }
}

async fn manifest_route(State(served): State<Arc<Served>>, headers: HeaderMap) -> Response {
    if let Some(r) = authenticated(&served, &headers) {
        return r;
    }
    axum::Json(served.plugin.manifest()).into_response()
}

async fn send(State(served): State<Arc<Served>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = authenticated(&served, &headers) {
        return r;
    }
    let Ok(request) = serde_json::from_slice::<SendRequest>(&body) else { return bad_request() };
    if let Some(d) = &request.document
        && (d.content_type != "application/pdf" || base64::engine::general_purpose::STANDARD.decode(&d.base64).is_err())
    {
        return bad_request();
    }
    match served.plugin.send(request).await {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(e) => failure(&e),
    }
}

async fn status(State(served): State<Arc<Served>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = authenticated(&served, &headers) {
        return r;
    }
    match served.plugin.status(&id).await {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(e) => failure(&e),
    }
}

async fn cancel(State(served): State<Arc<Served>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = authenticated(&served, &headers) {
        return r;
    }
    match served.plugin.cancel(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failure(&e),
    }
}

async fn webhook(State(served): State<Arc<Served>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = authenticated(&served, &headers) {
        return r;
    }
    if body.len() > served.webhook_limit {
        return failure(&PluginError::new(ErrorKind::Rejected, "callback too large"));
    }
    let Ok(mut request) = serde_json::from_slice::<WebhookRequest>(&body) else { return bad_request() };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&request.body_base64) else { return bad_request() };
    for (name, _) in &mut request.headers {
        name.make_ascii_lowercase();
    }
    match served.plugin.webhook(&request, &raw).await {
        Ok(events) => axum::Json(WebhookAnswer { events }).into_response(),
        Err(e) => failure(&e),
    }
}
