//! Provider webhooks: `POST /webhooks/{plugin}` and the reference's legacy `POST /phaxio-callback`.
//!
//! The provider plugin authenticates the request (Phaxio: `X-Phaxio-Signature`; Sinch: the Basic credentials
//! embedded in the callback URL) before anything in it is read; a refused webhook changes nothing and is
//! audited. An accepted one only makes the job's status check due now: the worker reads the status from the
//! provider and applies it through the normal path, so a replayed or reordered webhook cannot move a job
//! backwards or twice.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;

use crate::db::jobs;
use crate::domain::Timestamp;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::{AppState, webhook_body};
use crate::plugins::{ProviderError, WebhookRequest};

/// `POST /webhooks/{plugin}`.
#[utoipa::path(post, path = "/webhooks/{plugin}", tag = "webhooks",
    params(("plugin" = String, Path, description = "Plugin id: phaxio, sinch, or the id of a manifest plugin (docs/plugins.md)")),
    request_body(content = String, content_type = "multipart/form-data", description = "The provider's callback as it sends it (Sinch may also send application/json)"),
    responses((status = 200, description = "Accepted"), (status = 401, description = "Authentication failed; nothing changed (header-only checks refuse before the body is read)", body = ErrorBody),
        (status = 400, description = "Authentic but malformed", body = ErrorBody),
        (status = 404, description = "No such configured plugin, or it takes no webhooks (body not read)", body = ErrorBody),
        (status = 408, description = "Body not received within 30 s", body = ErrorBody),
        (status = 413, description = "Body larger than the plugin's status callbacks can be (1 MiB; 32 MiB for Sinch, whose callbacks may carry the PDF)", body = ErrorBody),
        (status = 503, description = "Too many callback bodies being read at once; Retry-After says when to retry", body = ErrorBody)))]
pub async fn receive(
    State(app): State<AppState>,
    Path(plugin): Path<String>,
    request: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    handle(&app, &plugin, request).await
}

/// `POST /phaxio-callback` (the reference's path for Phaxio status callbacks).
pub async fn phaxio_legacy(State(app): State<AppState>, request: Request) -> Result<Json<serde_json::Value>, ApiError> {
    handle(&app, "phaxio", request).await
}

/// Plugin, then headers, then the body (see [`webhook_body`]): a request for a plugin that is not there,
/// or whose headers cannot be authentic, is answered without reading its body.
async fn handle(app: &AppState, plugin: &str, request: Request) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(provider) = app.runtime.provider(plugin) else {
        return Err(ApiError::not_found("Not Found"));
    };
    let (parts, body) = request.into_parts();
    let headers = webhook_body::header_pairs(&parts.headers);
    provider.precheck(&headers).map_err(|e| refused(app, plugin, e))?;
    let received = webhook_body::read(&app.webhook_reads, &parts.headers, body, provider.status_body_limit()).await?;
    let request = WebhookRequest { url: "", headers: &headers, body: &received.body };
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
        Err(e) => Err(refused(app, plugin, e)),
    }
}

/// The answer to a refused status callback, with its metric, event and audit line.
fn refused(app: &AppState, plugin: &str, e: ProviderError) -> ApiError {
    match e {
        ProviderError::Unsupported => ApiError::not_found("Not Found"),
        ProviderError::Unauthorized(_) => {
            app.metrics.webhook(plugin, "status", "rejected");
            app.events
                .event(crate::events::EventKind::PluginError)
                .plugin(plugin)
                .detail("status webhook authentication failed")
                .publish();
            crate::audit!("webhook_rejected", plugin = %plugin, reason = "authentication");
            ApiError::new(StatusCode::UNAUTHORIZED, "Invalid webhook signature")
        }
        e => {
            app.metrics.webhook(plugin, "status", "rejected");
            crate::audit!("webhook_rejected", plugin = %plugin, reason = e.kind());
            ApiError::new(StatusCode::BAD_REQUEST, "Malformed webhook")
        }
    }
}
