//! Outbound jobs: the dashboard, the list, one job, the reveal, and the send form.

use super::{Frame, error_page, posted, render, require};
use crate::db::jobs::{self, JobFilter, JobRow};
use crate::domain::{JobStatus, Scope, Timestamp};
use crate::http::AppState;
use crate::http::console::session::{self, Session};
use crate::http::routes::fax::{self, Accepted};
use crate::http::routes::plugins::{self, SlotHealth};
use askama::Template;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::time::Duration;

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct Dashboard {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    counts: Vec<(String, i64)>,
    queue_depth: i64,
    revision: String,
    outbound: String,
    health: Vec<SlotHealth>,
}

/// `GET /admin/ui/`.
pub async fn dashboard(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let session = match require(&app, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let since = Timestamp::now().minus(Duration::from_secs(24 * 60 * 60));
    let (counts, queue_depth) =
        match (jobs::status_counts_since(&app.db, since).await, jobs::scheduled_count(&app.db).await) {
            (Ok(counts), Ok(depth)) => (counts, depth),
            (Err(e), _) | (_, Err(e)) => return error_page(Some(&session), e.into()),
        };
    let runtime = app.runtime.load_current();
    let health = plugins::slot_health(&app).await.items;
    let Frame { signed_in, csrf, key_id, nav } = Frame::of(&session, "dashboard");
    render(
        StatusCode::OK,
        &Dashboard {
            signed_in,
            csrf,
            key_id,
            nav,
            counts,
            queue_depth,
            revision: runtime.revision.clone(),
            outbound: runtime.outbound_id.clone(),
            health,
        },
    )
}

/// A job as the pages show it: the number masked.
struct JobView {
    id: String,
    short_id: String,
    to: String,
    status: String,
    final_status: bool,
    error: Option<String>,
    backend: String,
    pages: String,
    attempts: i64,
    created: String,
    updated: String,
}

impl From<&JobRow> for JobView {
    fn from(row: &JobRow) -> JobView {
        let id = row.id.to_string();
        JobView {
            short_id: id.chars().take(8).collect(),
            id,
            to: row.to.masked(),
            status: row.status.clone(),
            final_status: JobStatus::parse(&row.status).is_some_and(JobStatus::is_terminal),
            error: row.error.as_deref().map(crate::phi_guard::guard_text),
            backend: row.backend.clone(),
            pages: row.pages.map_or_else(|| "–".to_string(), |p| p.to_string()),
            attempts: row.attempts,
            created: format!("{}Z", row.created_at.to_wire()),
            updated: format!("{}Z", row.updated_at.to_wire()),
        }
    }
}

/// The statuses a list may be filtered by.
const STATUSES: &[&str] = &["queued", "in_progress", "SUCCESS", "FAILED", "failed"];
/// Jobs listed at most.
const LIST_LIMIT: i64 = 200;

#[derive(Template)]
#[template(path = "console/jobs.html")]
struct Jobs {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    jobs: Vec<JobView>,
    statuses: &'static [&'static str],
    filter_status: String,
    filter_backend: String,
    filter_since: String,
    limit: i64,
}

/// The job list's query.
#[derive(Deserialize, Default)]
pub struct JobsQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    backend: String,
    /// A date (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    since: String,
}

/// `GET /admin/ui/jobs`.
pub async fn jobs_list(State(app): State<AppState>, headers: HeaderMap, Query(query): Query<JobsQuery>) -> Response {
    let session = match require(&app, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(e) = app.auth.permit(&session.identity, Scope::FaxRead, "console:jobs", 0) {
        return error_page(Some(&session), e);
    }
    let status = STATUSES.iter().find(|s| **s == query.status).copied();
    let since = chrono::NaiveDate::parse_from_str(query.since.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| Timestamp::from_micros(dt.and_utc().timestamp_micros()));
    let backend = query.backend.trim();
    let filter = JobFilter { status, backend: (!backend.is_empty()).then_some(backend), since };
    let rows = match jobs::search(&app.db, &filter, LIST_LIMIT).await {
        Ok(rows) => rows,
        Err(e) => return error_page(Some(&session), e.into()),
    };
    let Frame { signed_in, csrf, key_id, nav } = Frame::of(&session, "jobs");
    render(
        StatusCode::OK,
        &Jobs {
            signed_in,
            csrf,
            key_id,
            nav,
            jobs: rows.iter().map(JobView::from).collect(),
            statuses: STATUSES,
            filter_status: status.unwrap_or_default().to_string(),
            filter_backend: backend.to_string(),
            filter_since: if since.is_some() { query.since.trim().to_string() } else { String::new() },
            limit: LIST_LIMIT,
        },
    )
}

#[derive(Template)]
#[template(path = "console/job.html")]
struct Job {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    job: JobView,
    revealed: Option<String>,
    events: Vec<(String, String, String)>,
}

/// The job's events still in the event bus's memory (`fax.queued`, `fax.sent`, `fax.delivered` …), oldest
/// first: `(when, event, detail)`.
fn timeline(app: &AppState, row: &JobRow) -> Vec<(String, String, String)> {
    let id = row.id.to_string();
    app.events
        .recent()
        .into_iter()
        .filter(|e| e.subject.as_deref() == Some(id.as_str()))
        .map(|e| {
            let kind = serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_string));
            (format!("{}Z", e.at), kind.unwrap_or_default(), e.detail.unwrap_or_default())
        })
        .collect()
}

fn job_page(app: &AppState, session: &Session, row: &JobRow, revealed: Option<String>) -> Response {
    let Frame { signed_in, csrf, key_id, nav } = Frame::of(session, "jobs");
    let events = timeline(app, row);
    let mut response =
        render(StatusCode::OK, &Job { signed_in, csrf, key_id, nav, job: JobView::from(row), revealed, events });
    if let Ok(value) = HeaderValue::from_str("no-store") {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// `GET /admin/ui/jobs/{id}`.
pub async fn job(State(app): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let session = match require(&app, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(e) = app.auth.permit(&session.identity, Scope::FaxRead, "console:jobs", 0) {
        return error_page(Some(&session), e);
    }
    match fax::find_job(&app, &id).await {
        Ok(row) => job_page(&app, &session, &row, None),
        Err(e) => error_page(Some(&session), e),
    }
}

/// `POST /admin/ui/jobs/{id}/reveal`: the full number, once, audited with the key id.
pub async fn reveal(State(app): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    let (session, _) = match posted(&app, request).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    if let Err(e) = app.auth.permit(&session.identity, Scope::FaxRead, "console:jobs", 0) {
        return error_page(Some(&session), e);
    }
    match fax::find_job(&app, &id).await {
        Ok(row) => {
            crate::audit!("console_number_revealed", key_id = %session.key_id(), job_id = %row.id,
                to = %row.to.masked());
            let full = row.to.expose().to_string();
            job_page(&app, &session, &row, Some(full))
        }
        Err(e) => error_page(Some(&session), e),
    }
}

#[derive(Template)]
#[template(path = "console/send.html")]
struct Send {
    signed_in: bool,
    csrf: String,
    key_id: String,
    nav: &'static str,
    error: Option<String>,
}

fn send_page(session: &Session, status: StatusCode, error: Option<String>) -> Response {
    let Frame { signed_in, csrf, key_id, nav } = Frame::of(session, "send");
    render(status, &Send { signed_in, csrf, key_id, nav, error })
}

/// `GET /admin/ui/send`.
pub async fn send_form(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match require(&app, &headers).await {
        Ok(session) => send_page(&session, StatusCode::OK, None),
        Err(response) => response,
    }
}

/// `POST /admin/ui/send`: the form's upload through the REST route's own code (`fax::accept`). The CSRF token
/// must be the form's first field, so that a forged post is refused before any document is read.
pub async fn send(State(app): State<AppState>, headers: HeaderMap, request: Request) -> Response {
    let session = match require(&app, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Err(e) = session::same_origin(&headers)
        .and_then(|()| app.auth.permit(&session.identity, Scope::FaxSend, "console:send", app.settings.rate_limit_rpm))
    {
        return error_page(Some(&session), e);
    }
    let multipart = match Multipart::from_request(request, &app).await {
        Ok(multipart) => multipart,
        Err(_) => {
            return send_page(&session, StatusCode::BAD_REQUEST, Some("The form was not sent as expected".into()));
        }
    };
    let (to, staged) = match fax::read_form(&app, multipart, |token| session.check_csrf(token)).await {
        Ok(fields) => fields,
        Err(e) if e.status() == StatusCode::FORBIDDEN => return error_page(Some(&session), e),
        Err(e) => {
            let (status, message) = e.into_message();
            return send_page(&session, status, Some(message));
        }
    };
    match fax::accept(&app, &session.identity, &to, staged, None).await {
        Ok(Accepted::New(row) | Accepted::Replayed(row)) => {
            crate::audit!("console_fax_sent", key_id = %session.key_id(), job_id = %row.id);
            Redirect::to(&format!("/admin/ui/jobs/{}", row.id)).into_response()
        }
        Err(e) => {
            let (status, message) = e.into_message();
            send_page(&session, status, Some(message))
        }
    }
}
