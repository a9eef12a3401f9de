//! Received faxes: the list, one fax, revealing its numbers, and downloading its document through a one-time
//! token. Opening a document is an explicit POST (audited with the key id, through the REST route's own
//! [`inbound::download_token`]); the token it issues is used once, by this session, then gone.

use super::{Frame, error_page, posted, render, require};
use crate::db::inbound::{self as records, InboundRow, ListFilter};
use crate::db::tokens::{self, TokenKind};
use crate::domain::{Scope, Timestamp, mask_digits};
use crate::http::AppState;
use crate::http::console::session::Session;
use crate::http::error::ApiError;
use crate::http::routes::inbound;
use askama::Template;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// A received fax as the pages show it.
struct InboundView {
    id: String,
    short_id: String,
    from: String,
    to: String,
    status: String,
    pages: String,
    size: String,
    backend: String,
    received: String,
    has_document: bool,
    retention: Option<String>,
}

impl From<&InboundRow> for InboundView {
    fn from(row: &InboundRow) -> InboundView {
        let id = row.id.to_string();
        let masked = |n: &Option<String>| n.as_deref().map_or_else(|| "unknown".to_string(), mask_digits);
        InboundView {
            short_id: id.chars().take(8).collect(),
            id,
            from: masked(&row.from_number),
            to: masked(&row.to_number),
            status: row.status.clone(),
            pages: row.pages.map_or_else(|| "–".to_string(), |p| p.to_string()),
            size: row.size_bytes.map_or_else(|| "–".to_string(), |b| format!("{:.1} KiB", b as f64 / 1024.0)),
            backend: row.backend.clone(),
            received: format!("{}Z", row.received_at.to_wire()),
            has_document: row.document_key.is_some(),
            retention: row.retention_until.map(|t| format!("{}Z", t.to_wire())),
        }
    }
}

#[derive(Template)]
#[template(path = "console/inbound.html")]
struct List {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    faxes: Vec<InboundView>,
    enabled: bool,
}

/// `GET /admin/ui/inbound`.
pub async fn list(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&app, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(e) = app.auth.permit(&session.identity, Scope::InboundList, "console:inbound", 0) {
        return error_page(Some(&session), e);
    }
    let enabled = inbound::enabled(&app).is_ok();
    let filter = ListFilter { to_number: None, status: None, mailbox: None };
    let rows = match records::list(&app.db, &filter, 200).await {
        Ok(rows) => rows,
        Err(e) => return error_page(Some(&session), e.into()),
    };
    let Frame { signed_in, csrf, key_id, nav } = Frame::of(&session, "inbound");
    let faxes = rows.iter().map(InboundView::from).collect();
    render(StatusCode::OK, &List { signed_in, csrf, key_id, nav, faxes, enabled })
}

#[derive(Template)]
#[template(path = "console/inbound_fax.html")]
struct One {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    fax: InboundView,
    /// The full numbers, after "Reveal": (from, to).
    revealed: Option<(String, String)>,
}

fn one(session: &Session, row: &InboundRow, revealed: Option<(String, String)>) -> Response {
    let Frame { signed_in, csrf, key_id, nav } = Frame::of(session, "inbound");
    render(StatusCode::OK, &One { signed_in, csrf, key_id, nav, fax: InboundView::from(row), revealed })
}

async fn readable(app: &AppState, session: &Session, id: &str) -> Result<InboundRow, ApiError> {
    app.auth.permit(&session.identity, Scope::InboundRead, "console:inbound", 0)?;
    inbound::find(app, id).await
}

/// `GET /admin/ui/inbound/{id}`.
pub async fn fax(State(app): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let session = match require(&app, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match readable(&app, &session, &id).await {
        Ok(row) => one(&session, &row, None),
        Err(e) => error_page(Some(&session), e),
    }
}

/// `POST /admin/ui/inbound/{id}/reveal`: both numbers in full, once, audited.
pub async fn reveal(State(app): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    let (session, _) = match posted(&app, request).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    match readable(&app, &session, &id).await {
        Ok(row) => {
            crate::audit!("console_number_revealed", key_id = %session.key_id(), inbound_id = %row.id);
            let full = |n: &Option<String>| n.clone().unwrap_or_else(|| "unknown".to_string());
            let revealed = (full(&row.from_number), full(&row.to_number));
            one(&session, &row, Some(revealed))
        }
        Err(e) => error_page(Some(&session), e),
    }
}

/// `POST /admin/ui/inbound/{id}/download`: issues a download token (audited with the key id) and sends the
/// browser to the one-time link.
pub async fn download(State(app): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    let (session, _) = match posted(&app, request).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    if let Err(e) = app.auth.permit(&session.identity, Scope::InboundRead, "console:inbound", 0) {
        return error_page(Some(&session), e);
    }
    match inbound::download_token(&app, &session.identity, &id).await {
        Ok((token, row)) => {
            Redirect::to(&format!("/admin/ui/inbound/{}/document?token={}", row.id, token.token)).into_response()
        }
        Err(e) => error_page(Some(&session), e),
    }
}

/// `?token=` of the one-time link.
#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// `GET /admin/ui/inbound/{id}/document?token=`: the document, once per token, to the signed-in session.
pub async fn document(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
) -> Response {
    let session = match require(&app, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let refused = || ApiError::new(StatusCode::FORBIDDEN, "This download link was already used or has expired");
    let granted = match tokens::consume(&app.db, TokenKind::Inbound, &query.token).await {
        Ok(granted) => granted,
        Err(e) => return error_page(Some(&session), e.into()),
    };
    let row = match granted {
        Some((object, expires)) if object.as_str() == id && expires > Timestamp::now() => {
            match readable(&app, &session, &id).await {
                Ok(row) => row,
                Err(e) => return error_page(Some(&session), e),
            }
        }
        _ => {
            crate::audit!("inbound_token_refused", path = "/admin/ui/inbound/{id}/document");
            return error_page(Some(&session), refused());
        }
    };
    match inbound::serve_document(&app, &row, "console").await {
        Ok(response) => response,
        Err(e) => error_page(Some(&session), e),
    }
}
