//! `GET /admin/features`: the runtime configuration as the server sees it.

use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::runtime::{ConfigSource, ReloadReport};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use faxbot_contract::FeatureFlags;
use serde::Serialize;

/// One slot as served.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SlotView {
    /// Plugin id.
    pub plugin: String,
    /// Whether it is enabled.
    pub enabled: bool,
}

/// The effective runtime configuration (settings omitted: they are in the document the operator wrote).
#[derive(Serialize, utoipa::ToSchema)]
pub struct FeaturesView {
    /// Revision label.
    pub revision: String,
    /// `environment` or `file`.
    pub source: &'static str,
    /// Feature flags.
    #[schema(value_type = Object)]
    pub features: FeatureFlags,
    /// Outbound slot in effect (the simulated line in sandbox mode).
    pub outbound: SlotView,
    /// Whether jobs are dispatched.
    pub dispatch_enabled: bool,
    /// Result of the last reload attempt.
    #[schema(value_type = Option<Object>)]
    pub last_reload: Option<ReloadReport>,
}

/// The effective runtime configuration and feature flags.
#[utoipa::path(get, path = "/admin/features", tag = "admin",
    responses((status = 200, body = FeaturesView), (status = 401, description = "Admin authentication failed", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn features(State(app): State<AppState>, headers: HeaderMap) -> Result<Json<FeaturesView>, ApiError> {
    app.auth.admin(&headers, "/admin/features").await?;
    let runtime = app.runtime.load_current();
    Ok(Json(FeaturesView {
        revision: runtime.revision.clone(),
        source: match app.runtime.source() {
            ConfigSource::Environment => "environment",
            ConfigSource::File(_) => "file",
        },
        features: runtime.config.features.clone(),
        outbound: SlotView { plugin: runtime.outbound_id.clone(), enabled: runtime.dispatch_enabled },
        dispatch_enabled: runtime.dispatch_enabled,
        last_reload: app.runtime.last_reload(),
    }))
}

/// Recent events of the event bus.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventsView {
    /// Oldest first; at most the last 256 since start.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<crate::events::Event>,
}

/// The last events published on the event bus (PHI-guarded: ids, plugin ids and masked details only).
#[utoipa::path(get, path = "/admin/events", tag = "admin",
    responses((status = 200, body = EventsView), (status = 401, description = "Admin authentication failed", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn events(State(app): State<AppState>, headers: HeaderMap) -> Result<Json<EventsView>, ApiError> {
    app.auth.admin(&headers, "/admin/events").await?;
    Ok(Json(EventsView { events: app.events.recent() }))
}

/// One webhook endpoint this server serves for a configured plugin.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookEndpoint {
    /// Plugin id.
    pub plugin: String,
    /// `outbound` (status callbacks) or `inbound` (received faxes).
    pub slot: &'static str,
    /// Path on this server.
    pub path: String,
    /// The reference's path for the same callback, kept for existing provider configurations.
    pub legacy_path: Option<&'static str>,
    /// Where to point the provider: `PUBLIC_API_URL` + path, unless the plugin's settings name another URL.
    pub url: String,
    /// Verification scheme, configured URL and readiness.
    #[serde(flatten)]
    pub info: crate::plugins::WebhookInfo,
    /// Callbacks accepted since start.
    pub accepted: u64,
    /// Callbacks refused since start (authentication or malformed).
    pub rejected: u64,
}

/// Webhook endpoints of the configured plugins.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhooksView {
    /// One entry per slot whose plugin takes callbacks.
    pub webhooks: Vec<WebhookEndpoint>,
}

/// The webhook manager's view: which callbacks this server verifies, where providers must send them and
/// how many were accepted or refused (v3 plugin API; 404 while `v3Plugins` is off).
#[utoipa::path(get, path = "/admin/webhooks", tag = "admin",
    responses((status = 200, body = WebhooksView), (status = 401, description = "Admin authentication failed", body = ErrorBody),
        (status = 404, description = "v3 plugins feature disabled", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn webhooks(State(app): State<AppState>, headers: HeaderMap) -> Result<Json<WebhooksView>, ApiError> {
    app.auth.admin(&headers, "/admin/webhooks").await?;
    if !app.runtime.load_current().config.features.v3_plugins {
        return Err(ApiError::not_found("v3 plugins feature disabled"));
    }
    Ok(Json(WebhooksView { webhooks: webhook_endpoints(&app) }))
}

/// The webhook endpoints of the configured plugins, with their counts (for `GET /admin/webhooks` and the
/// admin console).
pub(crate) fn webhook_endpoints(app: &AppState) -> Vec<WebhookEndpoint> {
    let runtime = app.runtime.load_current();
    let base = &app.settings.public_api_url;
    let mut out = Vec::new();
    for (plugin, provider) in runtime.outbound_chain() {
        if let Some(info) = provider.webhook_info() {
            let path = format!("/webhooks/{plugin}");
            out.push(WebhookEndpoint {
                plugin: plugin.clone(),
                slot: "outbound",
                legacy_path: (plugin == "phaxio").then_some("/phaxio-callback"),
                url: info.callback_url.clone().unwrap_or_else(|| format!("{base}{path}")),
                accepted: app.metrics.webhook_count(plugin, "status", "accepted")
                    + app.metrics.webhook_count(plugin, "status", "replayed"),
                rejected: app.metrics.webhook_count(plugin, "status", "rejected"),
                path,
                info,
            });
        }
    }
    if let Some((plugin, provider)) = &runtime.inbound
        && let Some(info) = provider.webhook_info()
    {
        let path = format!("/webhooks/{plugin}/inbound");
        out.push(WebhookEndpoint {
            plugin: plugin.clone(),
            slot: "inbound",
            legacy_path: match plugin.as_str() {
                "phaxio" => Some("/phaxio-inbound"),
                "sinch" => Some("/sinch-inbound"),
                _ => None,
            },
            url: info.callback_url.clone().unwrap_or_else(|| format!("{base}{path}")),
            accepted: app.metrics.webhook_count(plugin, "inbound", "accepted")
                + app.metrics.webhook_count(plugin, "inbound", "replayed"),
            rejected: app.metrics.webhook_count(plugin, "inbound", "rejected"),
            path,
            info,
        });
    }
    out
}

/// The callbacks to configure for the inbound plugin (reference `GET /admin/inbound/callbacks`).
#[utoipa::path(get, path = "/admin/inbound/callbacks", tag = "admin",
    responses((status = 200, description = "`{backend, callbacks: [{name, url}]}`"),
        (status = 401, description = "Admin authentication failed", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn inbound_callbacks(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    app.auth.admin(&headers, "/admin/inbound/callbacks").await?;
    let runtime = app.runtime.load_current();
    let Some((plugin, provider)) = &runtime.inbound else {
        return Ok(Json(serde_json::json!({"backend": null, "callbacks": []})));
    };
    let callbacks = match provider.webhook_info() {
        Some(info) => {
            let url = info
                .callback_url
                .clone()
                .unwrap_or_else(|| format!("{}/webhooks/{plugin}/inbound", app.settings.public_api_url));
            vec![serde_json::json!({"name": format!("{plugin} inbound"), "url": url,
                "verification": info.verification, "ready": info.ready})]
        }
        None => Vec::new(),
    };
    Ok(Json(serde_json::json!({"backend": plugin, "callbacks": callbacks})))
}
