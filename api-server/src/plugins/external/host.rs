//! Serves a provider of this server over the sidecar protocol: the conformance suite
//! (`faxbot-plugin-conformance`) wraps built-in and manifest plugins in it, so one set of checks, written
//! against the protocol, judges every kind of plugin. Its answers follow [`super::wire`]'s mapping back, so a
//! provider served here and read through the `external` plugin behaves as it does in the server.
//!
//! Bodies are read with a limit (documents in base64), parsed as the protocol's types (unknown fields
//! refused), and error messages pass the number mask before they leave.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use faxbot_contract::sidecar::{self, ErrorBody, ErrorDetail, ErrorKind, SidecarManifest};

use super::wire;
use crate::domain::{FaxNumber, JobId};
use crate::plugins::{OutboundProvider, ProviderError, SendRequest, WebhookRequest};

/// Largest request body: a 48 MiB message holds a 36 MiB document in base64.
pub const BODY_LIMIT: usize = 48 * 1024 * 1024;

#[derive(Clone)]
struct Hosted {
    provider: Arc<dyn OutboundProvider>,
    manifest: Arc<SidecarManifest>,
    token: Option<Arc<str>>,
}

/// The protocol's routes over `provider`, described by `manifest`; with `token`, every route but health
/// requires it.
pub fn router(provider: Arc<dyn OutboundProvider>, manifest: SidecarManifest, token: Option<String>) -> Router {
    let hosted = Hosted { provider, manifest: Arc::new(manifest), token: token.map(Arc::from) };
    Router::new()
        .route("/v1/health", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route("/v1/manifest", get(manifest_route))
        .route("/v1/send", post(send))
        .route("/v1/faxes/{id}", get(status))
        .route("/v1/faxes/{id}/cancel", post(cancel))
        .route("/v1/webhook", post(webhook))
        .fallback(|| async { failure(ErrorKind::NotFound, "no such route", None) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(hosted)
}

fn failure(kind: ErrorKind, message: &str, retry_after_ms: Option<u64>) -> Response {
    let status = StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = ErrorBody { error: ErrorDetail { kind, message: message.to_string(), retry_after_ms } };
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(ms) = retry_after_ms
        && let Ok(v) = ms.div_ceil(1000).to_string().parse()
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn provider_failure(e: &ProviderError, webhook: bool) -> Response {
    let d = wire::detail(e, webhook);
    failure(d.kind, &d.message, d.retry_after_ms)
}

/// The token check: constant time, and the same answer for a missing and a wrong token.
fn authenticated(hosted: &Hosted, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = &hosted.token else { return None };
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let ok = presented.is_some_and(|p| {
        use subtle::ConstantTimeEq;
        bool::from(p.as_bytes().ct_eq(expected.as_bytes()))
    });
    (!ok).then(|| failure(ErrorKind::Unauthenticated, "missing or wrong plugin token", None))
}

/// The request as `T`; `None` when it does not follow the protocol (serde's message can quote the input, a
/// number, so the answer names only the problem: [`bad_request`]).
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice(body).ok()
}

fn bad_request() -> Response {
    failure(ErrorKind::BadRequest, "the request does not follow the protocol", None)
}

async fn manifest_route(State(hosted): State<Hosted>, headers: HeaderMap) -> Response {
    if let Some(r) = authenticated(&hosted, &headers) {
        return r;
    }
    axum::Json(hosted.manifest.as_ref().clone()).into_response()
}

async fn send(State(hosted): State<Hosted>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = authenticated(&hosted, &headers) {
        return r;
    }
    let Some(request) = parse::<sidecar::SendRequest>(&body) else { return bad_request() };
    let Ok(to) = FaxNumber::parse(&request.to) else {
        return failure(ErrorKind::Rejected, "invalid destination", None);
    };
    let job_id = JobId::parse(&request.job_id).unwrap_or_else(JobId::generate);
    let document = match &request.document {
        None => None,
        Some(d) => match base64::engine::general_purpose::STANDARD.decode(&d.base64) {
            Ok(bytes) if d.content_type == "application/pdf" => Some(bytes::Bytes::from(bytes)),
            _ => return failure(ErrorKind::BadRequest, "the document is not base64 application/pdf", None),
        },
    };
    let send = SendRequest {
        job_id: &job_id,
        to: &to,
        document_key: "conformance",
        pages: request.pages,
        idempotency_key: &request.idempotency_key,
        document,
        content_url: None,
    };
    match hosted.provider.send(&send).await {
        Ok(s) => axum::Json(wire::fax_answer(&s.provider_sid, &s.status, s.check_after)).into_response(),
        Err(e) => provider_failure(&e, false),
    }
}

async fn status(State(hosted): State<Hosted>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = authenticated(&hosted, &headers) {
        return r;
    }
    match hosted.provider.status(&id).await {
        Ok(s) => axum::Json(wire::fax_answer(&id, &s, None)).into_response(),
        Err(e) => provider_failure(&e, false),
    }
}

async fn cancel(State(hosted): State<Hosted>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = authenticated(&hosted, &headers) {
        return r;
    }
    match hosted.provider.cancel(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => provider_failure(&e, false),
    }
}

async fn webhook(State(hosted): State<Hosted>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = authenticated(&hosted, &headers) {
        return r;
    }
    let Some(request) = parse::<sidecar::WebhookRequest>(&body) else { return bad_request() };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&request.body_base64) else {
        return failure(ErrorKind::BadRequest, "bodyBase64 is not base64", None);
    };
    let headers: Vec<(String, String)> =
        request.headers.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)).collect();
    if let Err(e) = hosted.provider.precheck(&headers) {
        return provider_failure(&e, true);
    }
    if raw.len() > hosted.provider.status_body_limit() {
        return failure(ErrorKind::Rejected, "callback larger than the plugin takes", None);
    }
    let raw = bytes::Bytes::from(raw);
    let callback = WebhookRequest { url: &request.url, headers: &headers, body: &raw };
    match hosted.provider.webhook(&callback).await {
        Ok(events) => axum::Json(sidecar::WebhookAnswer {
            events: events.iter().map(|e| wire::fax_answer(&e.provider_sid, &e.status, None)).collect(),
        })
        .into_response(),
        Err(e) => provider_failure(&e, true),
    }
}
