//! What happened: the webhook endpoints with their accepted and refused counts, the event bus's recent events,
//! and the audit trail's recent entries. Everything here is already PHI-guarded where it is produced (ids,
//! plugin ids, masked numbers); the audit values pass the guard once more on their way into memory.

use super::{Frame, error_page, render, require};
use crate::domain::Scope;
use crate::http::AppState;
use crate::http::routes::admin::{self, WebhookEndpoint};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

/// An event as the page shows it.
struct EventView {
    kind: String,
    at: String,
    subject: String,
    plugin: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/events.html")]
struct Events {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    webhooks: Vec<WebhookEndpoint>,
    events: Vec<EventView>,
}

/// `GET /admin/ui/events`.
pub async fn events(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&app, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(e) = app.auth.permit(&session.identity, Scope::KeysManage, "console:events", 0) {
        return error_page(Some(&session), e);
    }
    let events = app
        .events
        .recent()
        .into_iter()
        .rev()
        .map(|e| EventView {
            kind: serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            at: format!("{}Z", e.at),
            subject: e.subject.unwrap_or_default(),
            plugin: e.plugin.unwrap_or_default(),
            detail: e.detail.unwrap_or_default(),
        })
        .collect();
    let Frame { signed_in, csrf, key_id, nav } = Frame::of(&session, "events");
    render(StatusCode::OK, &Events { signed_in, csrf, key_id, nav, webhooks: admin::webhook_endpoints(&app), events })
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct Audit {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    entries: Vec<crate::audit::Entry>,
    filter: String,
    limit: usize,
}

/// `?event=` of the audit page.
#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    event: String,
}

/// `GET /admin/ui/audit`: this replica's recent audit entries, newest first, optionally of one event.
pub async fn audit(State(app): State<AppState>, headers: HeaderMap, Query(query): Query<AuditQuery>) -> Response {
    let session = match require(&app, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(e) = app.auth.permit(&session.identity, Scope::KeysManage, "console:audit", 0) {
        return error_page(Some(&session), e);
    }
    let filter =
        query.event.trim().chars().filter(|c| c.is_ascii_alphanumeric() || "_.".contains(*c)).collect::<String>();
    let entries =
        crate::audit::recent().into_iter().filter(|e| filter.is_empty() || e.event == filter).collect::<Vec<_>>();
    let Frame { signed_in, csrf, key_id, nav } = Frame::of(&session, "audit");
    render(StatusCode::OK, &Audit { signed_in, csrf, key_id, nav, entries, filter, limit: crate::audit::RECENT })
}
