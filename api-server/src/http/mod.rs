//! The HTTP edge: shared state, the router, and middleware (metrics, admin headers, JSON 404/405).

pub mod auth;
pub mod auth_failures;
pub mod console;
pub mod error;
pub mod mcp;
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
use axum::routing::{MethodRouter, post};
use axum::{Json, Router};
use error::ErrorBody;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::sync::Notify;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

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
    let (router, api) =
        OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()).merge(routes(upload_limit)).split_for_parts();
    router
        .merge(openapi::routes(openapi::finish(api)))
        .merge(mcp::routes(&state))
        .merge(console::routes(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(middleware::from_fn_with_state(state.clone(), rebalance))
        .layer(middleware::from_fn_with_state(state.clone(), auth_failures::limit))
        .with_state(state)
}

/// Every route, listed once. `routes!` takes each path and method from the handler's `#[utoipa::path]`, so the
/// router and the OpenAPI document cannot disagree. Plain `.route`s are the reference product's legacy callback
/// paths, kept for compatibility and documented through their `/webhooks/{plugin}` equivalents.
fn routes(upload_limit: usize) -> OpenApiRouter<AppState> {
    // Callbacks read their bodies themselves, after the plugin and the headers are checked (webhook_body), so
    // they have no body limit layer: the default one would not apply to a raw body anyway. A refused callback
    // closes its connection.
    let callback = |m: MethodRouter<AppState>| m.layer(middleware::map_response(close_on_refusal));
    let admin = OpenApiRouter::new()
        .routes(routes!(routes::keys::create, routes::keys::list))
        .routes(routes!(routes::keys::revoke))
        .routes(routes!(routes::keys::rotate))
        .routes(routes!(routes::admin::features))
        .routes(routes!(routes::admin::events))
        .routes(routes!(routes::admin::webhooks))
        .routes(routes!(routes::admin::inbound_callbacks))
        .routes(layered(routes!(routes::inbound::simulate), callback))
        .routes(routes!(routes::plugins::list))
        .routes(routes!(routes::plugins::health))
        .routes(routes!(routes::plugins::get_config, routes::plugins::put_config))
        .layer(middleware::map_response(admin_headers));
    OpenApiRouter::new()
        .routes(layered(routes!(routes::fax::send), |m| m.layer(DefaultBodyLimit::max(upload_limit))))
        .routes(routes!(routes::fax::get))
        .routes(routes!(routes::fax::pdf))
        .routes(routes!(routes::fax::cancel))
        .routes(routes!(routes::health::live))
        .routes(routes!(routes::health::ready))
        .routes(routes!(routes::health::metrics))
        .routes(routes!(routes::plugins::registry))
        .routes(layered(routes!(routes::webhooks::receive), callback))
        .routes(layered(routes!(routes::inbound::webhook), callback))
        .routes(layered(routes!(routes::inbound::asterisk_legacy), callback))
        .route("/phaxio-callback", callback(post(routes::webhooks::phaxio_legacy)))
        .route("/phaxio-inbound", callback(post(routes::inbound::phaxio_legacy)))
        .route("/sinch-inbound", callback(post(routes::inbound::sinch_legacy)))
        .routes(routes!(routes::inbound::list))
        .routes(routes!(routes::inbound::get))
        .routes(routes!(routes::inbound::pdf))
        .routes(routes!(routes::inbound::issue_token))
        .merge(admin)
}

/// Adds a layer to the handlers of one `routes!` entry.
fn layered(
    (schemas, paths, handlers): UtoipaMethodRouter<AppState>,
    layer: impl FnOnce(MethodRouter<AppState>) -> MethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    (schemas, paths, layer(handlers))
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
