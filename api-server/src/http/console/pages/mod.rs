//! The console's pages: each handler reads through the same code as its REST route and renders a template
//! from `api-server/templates/console/`. Numbers are shown masked; the full number only after the explicit,
//! audited "Reveal" action, and never in a title or a URL.

pub mod activity;
pub mod inbound;
pub mod jobs;
pub mod keys;
pub mod providers;

use super::session::{self, Session};
use crate::http::AppState;
use crate::http::error::ApiError;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

/// What every page's layout needs.
pub(super) struct Frame {
    pub(super) signed_in: bool,
    pub(super) csrf: String,
    pub(super) key_id: String,
    pub(super) nav: &'static str,
}

impl Frame {
    pub(super) fn of(session: &Session, nav: &'static str) -> Frame {
        Frame { signed_in: true, csrf: session.csrf.clone(), key_id: session.key_id().to_string(), nav }
    }

    fn anonymous() -> Frame {
        Frame { signed_in: false, csrf: String::new(), key_id: String::new(), nav: "" }
    }
}

/// Renders `page` with `status`.
pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::internal(anyhow::anyhow!("rendering a console page: {e}")).into_response(),
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    detail: String,
}

/// An error as a page (the REST message, the REST status).
pub fn error_page(session: Option<&Session>, e: ApiError) -> Response {
    let frame = session.map_or_else(Frame::anonymous, |s| Frame::of(s, ""));
    let (status, detail) = e.into_message();
    let Frame { signed_in, csrf, key_id, nav } = frame;
    render(status, &ErrorPage { signed_in, csrf, key_id, nav, detail })
}

/// The signed-in session, or the way to the sign-in page.
pub async fn require(app: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    match session::current(app, headers).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(Redirect::to("/admin/ui/signin").into_response()),
        Err(e) => Err(error_page(None, e)),
    }
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignIn {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    error: Option<String>,
}

fn sign_in_page(status: StatusCode, error: Option<String>) -> Response {
    render(status, &SignIn { signed_in: false, csrf: String::new(), key_id: String::new(), nav: "", error })
}

/// `GET /admin/ui/signin`.
pub async fn sign_in_form(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match session::current(&app, &headers).await {
        Ok(Some(_)) => Redirect::to("/admin/ui/").into_response(),
        _ => sign_in_page(StatusCode::OK, None),
    }
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SignInForm {
    key: String,
}

/// `POST /admin/ui/signin`: the key for a session cookie.
pub async fn sign_in(State(app): State<AppState>, headers: HeaderMap, form: axum::Form<SignInForm>) -> Response {
    if let Err(e) = session::same_origin(&headers) {
        return error_page(None, e);
    }
    let identity = match app.auth.sign_in(&form.key, "/admin/ui/signin").await {
        Ok(identity) => identity,
        Err(e) => {
            let (status, message) = e.into_message();
            let mut response = sign_in_page(status, Some(message));
            if status == StatusCode::UNAUTHORIZED {
                // Counted like a refused `X-API-Key`: an address that keeps guessing is answered 429.
                response.extensions_mut().insert(crate::http::auth_failures::AuthFailure);
            }
            return response;
        }
    };
    let cookie = match session::open(&app, &identity).await {
        Ok(cookie) => cookie,
        Err(e) => return error_page(None, e),
    };
    let key_id = identity.key_id().unwrap_or("anonymous").to_string();
    crate::audit!("console_signed_in", key_id = %key_id);
    let secure = !headers.get(header::HOST).and_then(|h| h.to_str().ok()).is_some_and(session::loopback_host);
    let mut response = Redirect::to("/admin/ui/").into_response();
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(Some(&cookie), secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// A posted form's fields in order, repeated names kept (a list of checkboxes); at most 64 KiB (the
/// console's body limit).
pub(super) struct Fields(Vec<(String, String)>);

impl Fields {
    pub(super) fn parse(body: &Bytes) -> Fields {
        Fields(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    /// The first value of `name` (trimmed), or "".
    pub(super) fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
    }

    /// Every value of `name`.
    pub(super) fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// The largest form the console reads (every form but the send form, which streams its document).
const FORM_LIMIT: usize = 64 * 1024;

/// The checks of every POST but the sign-in and the upload, in this order: a session and a request from the
/// console's own pages (headers only), then the form (at most [`FORM_LIMIT`]) with the session's CSRF token.
pub(super) async fn posted(app: &AppState, request: Request) -> Result<(Session, Fields), Response> {
    let (parts, body) = request.into_parts();
    let session = require(app, &parts.headers).await?;
    session::same_origin(&parts.headers).map_err(|e| error_page(Some(&session), e))?;
    let body = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        error_page(Some(&session), ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large"))
    })?;
    let form = Fields::parse(&body);
    session.check_csrf(form.get("csrf")).map_err(|e| error_page(Some(&session), e))?;
    Ok((session, form))
}

/// `POST /admin/ui/signout`.
pub async fn sign_out(State(app): State<AppState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let (session, _) = match posted(&app, request).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    if let Err(e) = session::close(&app, &session).await {
        return error_page(Some(&session), e);
    }
    crate::audit!("console_signed_out", key_id = %session.key_id());
    let secure = !headers.get(header::HOST).and_then(|h| h.to_str().ok()).is_some_and(session::loopback_host);
    let mut response = Redirect::to("/admin/ui/signin").into_response();
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(None, secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
