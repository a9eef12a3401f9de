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
