//! The HTTP edge: shared state, the router, and middleware (metrics, admin headers, JSON 404/405).

pub mod auth;
pub mod auth_failures;
pub mod error;
pub mod openapi;
pub mod routes;
pub mod webhook_body;

use crate::configuration::Settings;
use crate::db::{Db, writer::Writer};
use crate::documents::DocumentStore;
use crate::metrics::{HttpLabels, Metrics};
use crate::runtime::RuntimeState;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use error::ErrorBody;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::sync::Notify;

/// Everything a handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Process settings.
    pub settings: Arc<Settings>,
    /// Database.
    pub db: Db,
    /// Group-commit writer.
    pub writer: Writer,
    /// Document store.
    pub documents: Arc<dyn DocumentStore>,
    /// Authentication.
    pub auth: Arc<auth::Auth>,
    /// Runtime config.
    pub runtime: Arc<RuntimeState>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Wakes the worker when a job is enqueued.
    pub notify: Arc<Notify>,
    /// False once shutdown starts, so readiness fails and traffic drains away.
    pub accepting: Arc<AtomicBool>,
    /// Responses so far, for [`rebalance`].
    pub responses: Arc<std::sync::atomic::AtomicU64>,
    /// Whether Ghostscript was found at startup (reported by readiness).
    pub ghostscript: bool,
    /// The event bus.
    pub events: Arc<crate::events::EventBus>,
    /// Failed API key authentications per client address ([`auth_failures`]).
    pub failed_auth: Arc<auth_failures::FailedAuth>,
    /// The budget of callback body bytes ([`webhook_body`]).
    pub webhook_reads: Arc<tokio::sync::Semaphore>,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    let upload_limit = usize::try_from(state.settings.max_file_bytes).unwrap_or(usize::MAX).saturating_add(1024 * 1024);
    let admin = Router::new()
        .route("/admin/api-keys", post(routes::keys::create).get(routes::keys::list))
        .route("/admin/api-keys/{key_id}", delete(routes::keys::revoke))
        .route("/admin/api-keys/{key_id}/rotate", post(routes::keys::rotate))
        .route("/admin/features", get(routes::admin::features))
        .route("/admin/events", get(routes::admin::events))
        .route("/admin/webhooks", get(routes::admin::webhooks))
        .route("/admin/inbound/callbacks", get(routes::admin::inbound_callbacks))
        .route(
            "/admin/inbound/simulate",
            post(routes::inbound::simulate).layer(middleware::map_response(close_on_refusal)),
        )
        .route("/plugins", get(routes::plugins::list))
        .route("/plugins/health", get(routes::plugins::health))
        .route("/plugins/{id}/config", get(routes::plugins::get_config).put(routes::plugins::put_config))
        .layer(middleware::map_response(admin_headers));
    Router::new()
        .route("/fax", post(routes::fax::send).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/fax/{id}", get(routes::fax::get))
        .route("/fax/{id}/pdf", get(routes::fax::pdf))
        .route("/fax/{id}/cancel", post(routes::fax::cancel))
        .route("/health", get(routes::health::live))
        .route("/health/ready", get(routes::health::ready))
        .route("/metrics", get(routes::health::metrics))
        .route("/plugin-registry", get(routes::plugins::registry))
        .route("/webhooks/{plugin}", post(routes::webhooks::receive).layer(middleware::map_response(close_on_refusal)))
        .route(
            "/phaxio-callback",
            post(routes::webhooks::phaxio_legacy).layer(middleware::map_response(close_on_refusal)),
        )
        .route(
            "/webhooks/{plugin}/inbound",
            post(routes::inbound::webhook).layer(middleware::map_response(close_on_refusal)),
        )
        .route(
            "/phaxio-inbound",
            post(routes::inbound::phaxio_legacy).layer(middleware::map_response(close_on_refusal)),
        )
        .route("/sinch-inbound", post(routes::inbound::sinch_legacy).layer(middleware::map_response(close_on_refusal)))
        // Callbacks read their bodies themselves, after the plugin and the headers are checked
        // (webhook_body), so no body limit layer: the default one would not apply to a raw body anyway.
        .route(
            "/_internal/asterisk/inbound",
            post(routes::inbound::asterisk_legacy).layer(middleware::map_response(close_on_refusal)),
        )
        .route("/inbound", get(routes::inbound::list))
        .route("/inbound/{id}", get(routes::inbound::get))
        .route("/inbound/{id}/pdf", get(routes::inbound::pdf))
        .route("/inbound/{id}/pdf-token", post(routes::inbound::issue_token))
        .merge(admin)
        .merge(openapi::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(middleware::from_fn_with_state(state.clone(), rebalance))
        .layer(middleware::from_fn_with_state(state.clone(), auth_failures::limit))
        .with_state(state)
}

/// Whether this response should end its HTTP/1.1 connection: every response while draining (keep-alive
/// clients then reconnect to a pod that is still ready instead of losing their next request when this one
/// stops), and one in `every` otherwise. kube-proxy balances connections, not requests: without this a client
/// that keeps one connection open never reaches a pod started after it connected, and a canary would get no
/// traffic from it at all (found with the canary end-to-end test on real pods).
pub fn closes_connection(draining: bool, every: u64, count: u64) -> bool {
    draining || (every > 0 && count % every == every - 1)
}

/// Adds `Connection: close` to the responses [`closes_connection`] picks (HTTP/1.1 only; HTTP/2 has no
/// such header).
async fn rebalance(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let http11 = request.version() == axum::http::Version::HTTP_11;
    let mut response = next.run(request).await;
    if http11 {
        let count = state.responses.fetch_add(1, Ordering::Relaxed);
        if closes_connection(!state.is_accepting(), state.settings.connection_close_every, count) {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    response
}

async fn not_found() -> (StatusCode, Json<ErrorBody>) {
    (StatusCode::NOT_FOUND, Json(ErrorBody { detail: "Not Found".into() }))
}

async fn method_not_allowed() -> (StatusCode, Json<ErrorBody>) {
    (StatusCode::METHOD_NOT_ALLOWED, Json(ErrorBody { detail: "Method Not Allowed".into() }))
}

async fn admin_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache, must-revalidate"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Adds `Connection: close` to refusals of the routes that answer before reading the body (callbacks, the
/// inbound simulator). The server cannot reuse a connection whose request body it left unread, and without
/// the header a keep-alive client would send its next request on that connection and lose it ("incomplete
/// message"), as the 10,000-callback test did.
async fn close_on_refusal(mut response: Response) -> Response {
    if !response.status().is_success() {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Records request count and latency by route template, status and config revision.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().as_str().to_owned();
    let route =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let revision = state.runtime.load_current().revision.clone();
    let labels = HttpLabels { method, route, status, revision };
    state.metrics.http_requests.get_or_create(&labels).inc();
    state.metrics.http_duration.get_or_create(&labels).observe(start.elapsed().as_secs_f64());
    if status >= 400 && status != 404 {
        crate::audit!("api_error", path = %labels.route, status = status);
    }
    response
}

impl AppState {
    /// What storing a received fax needs, from this state.
    pub fn intake(&self) -> crate::inbound::Intake<'_> {
        crate::inbound::Intake {
            db: &self.db,
            documents: self.documents.as_ref(),
            retention: self.settings.inbound_retention,
            metrics: &self.metrics,
            events: &self.events,
        }
    }

    /// Whether the server still accepts work.
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }
}

/// Converts any displayable error into a 500.
pub fn internal<E: Into<anyhow::Error>>(e: E) -> error::ApiError {
    error::ApiError::internal(e)
}

/// A response for the health routes that never fails.
pub fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::closes_connection;

    #[test]
    fn one_response_in_every_n_closes_its_connection_and_all_do_while_draining() {
        let table: [(bool, u64, u64, bool); 8] = [
            (false, 100, 0, false),
            (false, 100, 98, false),
            (false, 100, 99, true),
            (false, 100, 199, true),
            (false, 1, 0, true),
            (false, 0, 99, false),
            (true, 0, 5, true),
            (true, 100, 5, true),
        ];
        for (draining, every, count, want) in table {
            assert_eq!(closes_connection(draining, every, count), want, "{draining} {every} {count}");
        }
    }
}
