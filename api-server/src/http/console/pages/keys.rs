//! API keys: the list, and creating, rotating and revoking a key through the REST routes' own code
//! ([`keys::create_key`] …). A new or rotated token is shown once, in the answer to the POST that made it
//! (never in a URL, and `no-store` keeps it out of the browser's cache).

use super::{Fields, Frame, error_page, posted, render, require};
use crate::db::keys as key_rows;
use crate::domain::Scope;
use crate::domain::scope::KNOWN_SCOPES;
use crate::http::AppState;
use crate::http::console::session::Session;
use crate::http::error::ApiError;
use crate::http::routes::keys::{self, CreateKey, KeyView};
use askama::Template;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

/// A token just issued, to show once.
struct Issued {
    key_id: String,
    token: String,
    what: &'static str,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct Keys {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    keys: Vec<KeyView>,
    scopes: &'static [&'static str],
    issued: Option<Issued>,
    error: Option<String>,
    /// The create form's values, kept when it is refused.
    form_name: String,
    form_scopes: Vec<String>,
}

async fn page(
    app: &AppState,
    session: &Session,
    status: StatusCode,
    issued: Option<Issued>,
    error: Option<String>,
    form: Option<&Fields>,
) -> Response {
    let rows = match key_rows::list(&app.db).await {
        Ok(rows) => rows,
        Err(e) => return error_page(Some(session), e.into()),
    };
    let Frame { signed_in, csrf, key_id, nav } = Frame::of(session, "keys");
    let mut keys: Vec<KeyView> = rows.into_iter().map(keys::view).collect();
    keys.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    render(
        status,
        &Keys {
            signed_in,
            csrf,
            key_id,
            nav,
            keys,
            scopes: KNOWN_SCOPES,
            issued,
            error,
            form_name: form.map(|f| f.get("name").to_string()).unwrap_or_default(),
            form_scopes: form.map(|f| f.all("scopes")).unwrap_or_default(),
        },
    )
}

fn allowed(app: &AppState, session: &Session) -> Result<(), ApiError> {
    app.auth.permit(&session.identity, Scope::KeysManage, "console:keys", 0)
}

/// `GET /admin/ui/keys`.
pub async fn list(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&app, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(e) = allowed(&app, &session) {
        return error_page(Some(&session), e);
    }
    page(&app, &session, StatusCode::OK, None, None, None).await
}

/// `POST /admin/ui/keys`: a new key from the form (name, owner, scopes, expiry date, note).
pub async fn create(State(app): State<AppState>, request: Request) -> Response {
    let (session, form) = match posted(&app, request).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    if let Err(e) = allowed(&app, &session) {
        return error_page(Some(&session), e);
    }
    let optional = |name: &str| Some(form.get(name).to_string()).filter(|v| !v.is_empty());
    // A date from the form's date field is the end of that day, UTC.
    let expires_at = optional("expires").map(|d| format!("{d}T23:59:59Z"));
    let request = CreateKey {
        name: optional("name"),
        owner: optional("owner"),
        scopes: form.all("scopes"),
        expires_at,
        note: optional("note"),
    };
    if request.scopes.is_empty() {
        let error = Some("Choose at least one scope".to_string());
        return page(&app, &session, StatusCode::BAD_REQUEST, None, error, Some(&form)).await;
    }
    match keys::create_key(&app, request).await {
        Ok(created) => {
            let issued = Issued { key_id: created.key_id, token: created.token, what: "created" };
            page(&app, &session, StatusCode::OK, Some(issued), None, None).await
        }
        Err(e) => {
            let (status, message) = e.into_message();
            page(&app, &session, status, None, Some(message), Some(&form)).await
        }
    }
}

/// `POST /admin/ui/keys/{id}/rotate`: a new secret, shown once.
pub async fn rotate(State(app): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    let (session, _) = match posted(&app, request).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    if let Err(e) = allowed(&app, &session) {
        return error_page(Some(&session), e);
    }
    match keys::rotate_key(&app, &id).await {
        Ok(rotated) => {
            let issued = Issued { key_id: rotated.key_id, token: rotated.token, what: "rotated" };
            page(&app, &session, StatusCode::OK, Some(issued), None, None).await
        }
        Err(e) => {
            let (status, message) = e.into_message();
            page(&app, &session, status, None, Some(message), None).await
        }
    }
}

/// `POST /admin/ui/keys/{id}/revoke`.
pub async fn revoke(State(app): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    let (session, _) = match posted(&app, request).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    if let Err(e) = allowed(&app, &session) {
        return error_page(Some(&session), e);
    }
    match keys::revoke_key(&app, &id).await {
        Ok(()) => Redirect::to("/admin/ui/keys").into_response(),
        Err(e) => {
            let (status, message) = e.into_message();
            page(&app, &session, status, None, Some(message), None).await
        }
    }
}
