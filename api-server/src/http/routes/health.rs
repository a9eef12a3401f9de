//! Liveness, readiness and metrics (reference §8.1–8.2; `/metrics` is ours).

use crate::http::{AppState, json_response};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Liveness body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Live {
    /// Always `ok`.
    pub status: &'static str,
}

/// Liveness: the process is up. Never touches dependencies, so a slow database cannot get pods killed.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Live)))]
pub async fn live() -> Response {
    json_response(StatusCode::OK, &Live { status: "ok" })
}

/// Readiness checks, in the reference's shape.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Checks {
    /// `SELECT 1` succeeded.
    pub db: bool,
    /// The outbound slot is configured and its provider built.
    pub backend_config: bool,
    /// The document store is writable.
    pub storage: Option<bool>,
    /// Only reported for the SIP plugin.
    pub ami_connected: Option<bool>,
    /// Ghostscript found on PATH (not required by the simulated line).
    pub ghostscript: bool,
}

/// Readiness body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Outbound plugin id.
    pub backend: String,
    /// Individual checks.
    pub checks: Checks,
    /// Things an operator should know.
    pub warnings: Vec<String>,
    /// Why storage failed, if it did.
    pub storage_error: Option<String>,
    /// Config revision being served.
    pub revision: String,
}

/// Readiness: 200 when the database and storage work and the server is not draining, else 503.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn ready(State(app): State<AppState>) -> Response {
    let runtime = app.runtime.load_current();
    let db = app.db.ping().await;
    let storage = app.documents.check().await;
    let mut warnings = Vec::new();
    if !app.auth.enforced() {
        warnings.push("authentication is disabled (no API_KEY and REQUIRE_API_KEY=false): dev mode only".into());
    }
    if !runtime.dispatch_enabled {
        warnings.push("sending is disabled: jobs are accepted and held".into());
    }
    if let Some(report) = app.runtime.last_reload()
        && report.result == "rejected"
    {
        warnings.push("the latest config document was rejected; the previous one is serving".into());
    }
    if !app.is_accepting() {
        warnings.push("shutting down".into());
    }
    let ready = db && storage.is_ok() && app.is_accepting();
    let body = Ready {
        status: if ready { "ready" } else { "not_ready" },
        backend: runtime.outbound_id.clone(),
        checks: Checks {
            db,
            backend_config: true,
            storage: Some(storage.is_ok()),
            ami_connected: None,
            ghostscript: app.ghostscript,
        },
        warnings,
        storage_error: storage.err().map(|e| e.to_string()),
        revision: runtime.revision.clone(),
    };
    json_response(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
}

/// Prometheus metrics. No PHI: labels are route templates, status codes, plugin ids and revisions.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(app): State<AppState>) -> Response {
    if let Ok(n) = crate::db::jobs::scheduled_count(&app.db).await {
        app.metrics.queue_depth.set(n);
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], app.metrics.encode())
        .into_response()
}
