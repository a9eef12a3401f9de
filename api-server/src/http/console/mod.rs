//! The admin console at `/admin/ui/`: server-rendered pages (askama templates compiled into the binary, one
//! stylesheet and one small script embedded with them), for the people who run the fax service.
//!
//! Why server-rendered: every page is a read of the same code the REST routes use, the API key stays on the
//! server side of a session cookie, and there is no JavaScript build to reproduce (the console works with the
//! script off, except for times shown in the viewer's zone and a job page that refreshes itself).
//!
//! - **Off unless `features.adminConsole`**: every `/admin/ui` path answers 404 while it is off.
//! - **Sign-in** with an API key holding `keys:manage`, exchanged for a session ([`session`]).
//! - **Headers on every answer**: a Content-Security-Policy that allows only this server's own script and
//!   stylesheet (no inline script, no framing, forms only to this server), `X-Frame-Options: DENY`,
//!   `nosniff`, referrers only to itself, and `no-store` so that no page with patient data stays in a browser cache.
//! - **PHI**: numbers are masked to their last four digits; the full number only after the audited "Reveal"
//!   action; no number in a title or a URL.

mod pages;
pub mod session;
pub mod settings_form;

use crate::http::AppState;
use crate::http::error::ApiError;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// The Content-Security-Policy of every console answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
const ICON: &str = include_str!("assets/icon.svg");

/// The console's routes.
pub fn routes(state: &AppState) -> Router<AppState> {
    let upload_limit = usize::try_from(state.settings.max_file_bytes).unwrap_or(usize::MAX).saturating_add(1024 * 1024);
    Router::new()
        .route("/admin/ui", get(|| async { axum::response::Redirect::permanent("/admin/ui/") }))
        .route("/admin/ui/", get(pages::jobs::dashboard))
        .route("/admin/ui/signin", get(pages::sign_in_form).post(pages::sign_in))
        .route("/admin/ui/signout", post(pages::sign_out))
        .route("/admin/ui/jobs", get(pages::jobs::jobs_list))
        .route("/admin/ui/jobs/{id}", get(pages::jobs::job))
        .route("/admin/ui/jobs/{id}/reveal", post(pages::jobs::reveal))
        .route(
            "/admin/ui/send",
            get(pages::jobs::send_form).post(pages::jobs::send).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/admin/ui/inbound", get(pages::inbound::list))
        .route("/admin/ui/inbound/{id}", get(pages::inbound::fax))
        .route("/admin/ui/inbound/{id}/reveal", post(pages::inbound::reveal))
        .route("/admin/ui/inbound/{id}/download", post(pages::inbound::download))
        .route("/admin/ui/inbound/{id}/document", get(pages::inbound::document))
        .route("/admin/ui/providers", get(pages::providers::list))
        .route("/admin/ui/providers/{slot}/{id}", post(pages::providers::save))
        .route("/admin/ui/events", get(pages::activity::events))
        .route("/admin/ui/audit", get(pages::activity::audit))
        .route("/admin/ui/keys", get(pages::keys::list).post(pages::keys::create))
        .route("/admin/ui/keys/{id}/rotate", post(pages::keys::rotate))
        .route("/admin/ui/keys/{id}/revoke", post(pages::keys::revoke))
        .route("/admin/ui/static/console.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/admin/ui/static/console.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/admin/ui/static/icon.svg", get(|| async { asset("image/svg+xml", ICON) }))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// The flag, then the security headers on whatever the page answered.
async fn gate(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if !app.runtime.load_current().config.features.admin_console {
        return ApiError::not_found("Not Found").into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: under it a browser sends `Origin: null` with the console's own forms, and the
        // cross-site check could not tell them from a forgery. No console URL carries PHI.
        (header::REFERRER_POLICY, "same-origin"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}
