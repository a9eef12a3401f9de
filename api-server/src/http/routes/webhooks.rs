//! Provider webhooks: `POST /webhooks/{plugin_id}` and the reference's legacy `POST /phaxio-callback`.
//!
//! The provider plugin authenticates the request (Phaxio: `X-Phaxio-Signature`; Sinch: the Basic credentials
//! embedded in the callback URL) before anything in it is read; a refused webhook changes nothing and is
//! audited. An accepted one only makes the job's status check due now: the worker reads the status from the
//! provider and applies it through the normal path, so a replayed or reordered webhook cannot move a job
//! backwards or twice.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use crate::domain::Timestamp;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::plugins::{ProviderError, WebhookRequest};
use crate::store::jobs;

/// `POST /webhooks/{plugin_id}`.
#[utoipa::path(post, path = "/webhooks/{plugin_id}", tag = "webhooks",
    params(("plugin_id" = String, Path, description = "Plugin id: phaxio or sinch")),
    request_body(content = String, content_type = "multipart/form-data", description = "The provider's callback as it sends it (Sinch may also send application/json)"),
    responses((status = 200, description = "Accepted"), (status = 401, description = "Authentication failed; nothing changed", body = ErrorBody),
        (status = 404, description = "No such configured plugin, or it takes no webhooks", body = ErrorBody)))]
pub async fn receive(
    State(app): State<AppState>,
    Path(plugin): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    handle(&app, &plugin, &headers, &body).await
}

/// `POST /phaxio-callback` (the reference's path for Phaxio status callbacks).
pub async fn phaxio_legacy(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    handle(&app, "phaxio", &headers, &body).await
}

async fn handle(
    app: &AppState,
    plugin: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(provider) = app.runtime.provider(plugin) else {
        return Err(ApiError::not_found("Not Found"));
    };
    let headers: Vec<(String, String)> =
        headers.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect();
    let request = WebhookRequest { url: "", headers: &headers, body };
    match provider.webhook(&request).await {
        Ok(events) => {
            let now = Timestamp::now();
            let mut woken = 0;
            for event in &events {
                woken += jobs::poll_now(&app.db, plugin, &event.provider_sid, now).await.map_err(ApiError::internal)?;
            }
            app.metrics.webhook(plugin, "status", if woken > 0 { "accepted" } else { "replayed" });
            crate::audit!("webhook_accepted", plugin = %plugin, events = events.len(), jobs_woken = woken);
            app.notify.notify_one();
            Ok(Json(serde_json::json!({"status": "ok"})))
        }
        Err(ProviderError::Unsupported) => Err(ApiError::not_found("Not Found")),
        Err(ProviderError::Unauthorized(_)) => {
            app.metrics.webhook(plugin, "status", "rejected");
            app.events
                .event(crate::events::EventKind::PluginError)
                .plugin(plugin)
                .detail("status webhook authentication failed")
                .publish();
            crate::audit!("webhook_rejected", plugin = %plugin, reason = "authentication");
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "Invalid webhook signature"))
        }
        Err(e) => {
            app.metrics.webhook(plugin, "status", "rejected");
            crate::audit!("webhook_rejected", plugin = %plugin, reason = e.kind());
            Err(ApiError::new(StatusCode::BAD_REQUEST, "Malformed webhook"))
        }
    }
}
