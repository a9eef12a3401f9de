//! A fake of Telnyx Programmable Fax (API v2).
//!
//! Sources (public documentation and SDK sources; read, not copied):
//! - Send a fax: <https://developers.telnyx.com/docs/programmable-fax/send-a-fax-api>, quickstart
//!   <https://developers.telnyx.com/docs/v2/programmable-fax/quickstart> (`POST https://api.telnyx.com/v2/faxes`,
//!   JSON `connection_id`, `to`, `from`, `media_url`; `Authorization: Bearer <API key>`; 202 on success) and the
//!   SDK's request type (team-telnyx/telnyx-python `src/telnyx/types/fax_create_params.py`: `connection_id`,
//!   `from`, `to` required; `media_url`, `webhook_url` "to override the URL to which Telnyx will send subsequent
//!   webhooks for this fax", `store_media`, `quality`…).
//! - View / cancel: <https://developers.telnyx.com/api-reference/programmable-fax-commands/view-a-fax.md>,
//!   <https://developers.telnyx.com/api-reference/programmable-fax-commands/cancel-a-fax.md> (`GET /v2/faxes/{id}`
//!   → 200 `{"data": Fax}`, 404; `POST /v2/faxes/{id}/actions/cancel` → 202 `{"data":{"result":"ok"}}`, only in
//!   `queued`, `media.processed`, `originated` or `sending`, 404, 422).
//! - The Fax object: team-telnyx/telnyx-python `src/telnyx/types/fax.py` (status `queued`, `media.processed`,
//!   `originated`, `sending`, `delivered`, `failed`, `initiated`, `receiving`, `media.processing`, `received`) and
//!   the newer generated .NET model (team-telnyx/telnyx-dotnet, `Fax`: `failure_reason` "present on every fax
//!   object (null when the fax has not failed)", plus `internal_failure_reason`).
//! - Webhooks: <https://developers.telnyx.com/docs/programmable-fax/receiving-webhooks> (`fax.queued`,
//!   `fax.media.processed`, `fax.sending.started`, `fax.delivered`, `fax.failed`; `data.payload.fax_id`,
//!   `failure_reason` values such as `user_busy`, `receiver_no_answer`, `fax_signaling_error`,
//!   `file_download_failed`; delivery may be out of order and duplicated), callback reference
//!   <https://developers.telnyx.com/api-reference/callbacks/fax-failed> (headers `telnyx-timestamp`, Unix seconds,
//!   and `telnyx-signature-ed25519`, base64 Ed25519 over `timestamp|payload`) and the SDK's verifier
//!   (team-telnyx/telnyx-python `src/telnyx/lib/webhook_verification.py`: signed payload is the timestamp, `|`,
//!   the raw body; 32-byte base64 public key; a timestamp more than 300 s off is refused).
//! - Errors: <https://developers.telnyx.com/development/api-fundamentals/api-errors> (`{"errors":[{"code",
//!   "title","detail","source"}]}`; 10004 missing parameter, 10005 not found, 10009 authentication failed,
//!   10011 too many requests, 10016 phone number must be in +E.164 format).
//!
//! Where the docs say nothing the fake chooses, and says so here: validation refusals answer 422 (the cancel
//! reference lists 422 for an unprocessable request), a cancelled fax ends `failed` with failure reason
//! `sender_canceled`, 5xx bodies carry code 10007.
//!
//! Behaviour: Bearer auth on every route. A fax is `queued` (webhook `fax.queued`); the fake fetches `media_url`
//! (`media.processed`, webhook `fax.media.processed`; a URL that does not give a PDF fails the fax with
//! `file_download_failed`), dials (`originated`, then `sending` with `fax.sending.started`) and ends
//! `delivered` (`fax.delivered`) or `failed` (`fax.failed`) for magic numbers: `+15550000017` `user_busy`,
//! `+15550000016` `receiver_no_answer`, `+15550000010` `fax_signaling_error`. Webhooks go to the fax's
//! `webhook_url`, signed with the account's Ed25519 key. Error injection: [`Injection`]; a webhook injection
//! (wrong signature, dropped) is taken when a fax is created and applies to every webhook of that fax.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use faxbot_contract::manifest::signature::{public_key, sign_bytes};
use serde_json::{Value, json};

pub use crate::Injection;
use crate::{pages, valid_e164};

/// Header carrying the webhook's Unix time.
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";
/// Header carrying the base64 Ed25519 signature.
pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";

/// Credentials and timing of a fake account.
#[derive(Clone, Debug)]
pub struct TelnyxFakeConfig {
    /// API v2 key (Bearer token).
    pub api_key: String,
    /// The account's Ed25519 secret key, which signs webhooks; its public key is what Mission Control shows.
    pub signing_secret: [u8; 32],
    /// Time between status steps.
    pub step: Duration,
}

impl Default for TelnyxFakeConfig {
    fn default() -> Self {
        TelnyxFakeConfig {
            api_key: "KEYfake-telnyx-api-key".into(),
            signing_secret: [42; 32],
            step: Duration::from_millis(100),
        }
    }
}

/// One webhook the fake posted.
#[derive(Clone, Debug)]
pub struct SentWebhook {
    /// Where it went.
    pub url: String,
    /// Fax id.
    pub fax_id: String,
    /// `data.event_type`.
    pub event_type: String,
    /// The raw JSON body.
    pub body: String,
    /// `telnyx-timestamp`.
    pub timestamp: String,
    /// `telnyx-signature-ed25519`.
    pub signature: String,
    /// What the receiver answered (0 when the connection failed).
    pub answered: u16,
}

#[derive(Clone, Debug)]
struct Fax {
    id: String,
    connection_id: String,
    status: String,
    to: String,
    from: String,
    media_url: String,
    webhook_url: Option<String>,
    failure_reason: Option<String>,
    page_count: Option<i64>,
    created_at: String,
    updated_at: String,
    /// A webhook injection taken at creation, for every webhook of this fax.
    webhook_injection: Option<Injection>,
}

impl Fax {
    fn to_json(&self) -> Value {
        json!({
            "record_type": "fax", "id": self.id, "connection_id": self.connection_id, "direction": "outbound",
            "from": self.from, "from_display_name": null, "to": self.to, "media_url": self.media_url,
            "quality": "high", "status": self.status, "store_media": false, "stored_media_url": null,
            "webhook_url": self.webhook_url, "webhook_failover_url": null, "client_state": null,
            "failure_reason": self.failure_reason, "internal_failure_reason": self.failure_reason,
            "created_at": self.created_at, "updated_at": self.updated_at,
        })
    }

    fn done(&self) -> bool {
        matches!(self.status.as_str(), "delivered" | "failed")
    }
}

#[derive(Default)]
struct FakeState {
    next: u64,
    faxes: BTreeMap<String, Fax>,
    injections: VecDeque<Injection>,
    submissions: usize,
    webhooks: Vec<SentWebhook>,
    content_fetches: Vec<(String, bool)>,
    requests: Vec<Value>,
}

struct Inner {
    config: TelnyxFakeConfig,
    state: Mutex<FakeState>,
    http: reqwest::Client,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake; cheap to clone.
#[derive(Clone)]
pub struct TelnyxFake {
    inner: Arc<Inner>,
    /// Base URL standing for `https://api.telnyx.com/`, e.g. `http://127.0.0.1:PORT/`.
    pub base_url: String,
}

impl TelnyxFake {
    /// Starts a fake on a free loopback port.
    pub async fn start(config: TelnyxFakeConfig) -> std::io::Result<TelnyxFake> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base_url = format!("http://{}/", listener.local_addr()?);
        let inner = Arc::new(Inner {
            config,
            state: Mutex::new(FakeState::default()),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(std::io::Error::other)?,
        });
        let app = Router::new()
            .route("/v2/faxes", post(create))
            .route("/v2/faxes/{id}", get(fetch))
            .route("/v2/faxes/{id}/actions/cancel", post(cancel))
            .with_state(inner.clone());
        crate::tls::spawn_serve(listener, app, None);
        Ok(TelnyxFake { inner, base_url })
    }

    /// Queues a failure for the next request (or the next fax's webhooks, for the webhook kinds).
    pub fn inject(&self, injection: Injection) {
        self.inner.lock().injections.push_back(injection);
    }

    /// How many `POST /v2/faxes` created a fax.
    pub fn submissions(&self) -> usize {
        self.inner.lock().submissions
    }

    /// Webhooks posted so far.
    pub fn webhooks(&self) -> Vec<SentWebhook> {
        self.inner.lock().webhooks.clone()
    }

    /// `media_url`s fetched so far, with whether the fetch gave a PDF.
    pub fn content_fetches(&self) -> Vec<(String, bool)> {
        self.inner.lock().content_fetches.clone()
    }

    /// The JSON bodies of every accepted `POST /v2/faxes`.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().requests.clone()
    }

    /// The fax object as `GET /v2/faxes/{id}` would return it (inside `data`).
    pub fn fax(&self, id: &str) -> Option<Value> {
        self.inner.lock().faxes.get(id).map(Fax::to_json)
    }

    /// The account's base64 Ed25519 public key (Mission Control's "Public Key").
    pub fn public_key(&self) -> String {
        public_key(&self.inner.config.signing_secret)
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// An error in Telnyx's shape.
fn error(status: StatusCode, code: &str, title: &str, detail: &str, pointer: Option<&str>) -> Response {
    let mut e = json!({"code": code, "title": title, "detail": detail,
        "meta": {"url": format!("https://developers.telnyx.com/docs/overview/errors/{code}")}});
    if let Some(p) = pointer {
        e["source"] = json!({"pointer": p});
    }
    let body = json!({"errors": [e]});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "10009",
        "Authentication failed",
        "The required authentication headers were either invalid or not included in the request.",
        None,
    )
}

/// Injected failures first (an outage or a rate limit happens before the API looks at a request), then the
/// Bearer key. Returns how long to stall before answering.
fn gate(inner: &Inner, headers: &HeaderMap) -> Result<Option<Duration>, Box<Response>> {
    let injection = crate::take_injection(&mut inner.lock().injections, false);
    let stall = match injection {
        Some(Injection::Status { code, retry_after }) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = match code {
                401 => unauthorized(),
                429 => error(
                    status,
                    "10011",
                    "Too many requests",
                    "You have exceeded the maximum number of allowed requests.",
                    None,
                ),
                _ => error(status, "10007", "Unexpected error", "An unexpected error occured.", None),
            };
            crate::set_retry_after(&mut response, retry_after);
            return Err(Box::new(response));
        }
        Some(Injection::Stall(d)) => Some(d),
        _ => None,
    };
    let expected = format!("Bearer {}", inner.config.api_key);
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return Err(Box::new(unauthorized()));
    }
    Ok(stall)
}

/// The request's parameters: a JSON object (what the docs and SDKs send), or a urlencoded form, accepted so
/// a manifest may use either.
fn parameters(headers: &HeaderMap, body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return Some(
            form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect(),
        );
    }
    serde_json::from_slice::<Value>(body).ok().and_then(|v| v.as_object().cloned())
}

async fn create(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let stall = match gate(&inner, &headers) {
        Ok(stall) => stall,
        Err(response) => return *response,
    };
    let Some(params) = parameters(&headers, &body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "10015",
            "Bad Request",
            "The request failed because it was not well-formed.",
            None,
        );
    };
    let text = |name: &str| params.get(name).and_then(Value::as_str).map(str::to_string).filter(|s| !s.is_empty());
    for name in ["connection_id", "to", "from"] {
        if text(name).is_none() {
            let detail = format!("The '{name}' parameter is required.");
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "10004",
                "Missing required parameter",
                &detail,
                Some(&format!("/{name}")),
            );
        }
    }
    for name in ["to", "from"] {
        if !text(name).is_some_and(|n| valid_e164(&n)) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "10016",
                "Phone number must be in +E.164 format",
                &format!("The '{name}' parameter must be in +E.164 format."),
                Some(&format!("/{name}")),
            );
        }
    }
    let Some(media_url) = text("media_url").filter(|u| u.starts_with("http://") || u.starts_with("https://")) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "10004",
            "Missing required parameter",
            "One of media_url, media_name or contents is required.",
            Some("/media_url"),
        );
    };
    let fax = {
        let mut state = inner.lock();
        state.next += 1;
        state.submissions += 1;
        let id = format!("b679398e-8b4c-46bd-8630-{:012x}", state.next);
        let fax = Fax {
            id: id.clone(),
            connection_id: text("connection_id").unwrap_or_default(),
            status: "queued".into(),
            to: text("to").unwrap_or_default(),
            from: text("from").unwrap_or_default(),
            media_url,
            webhook_url: text("webhook_url"),
            failure_reason: None,
            page_count: None,
            created_at: now(),
            updated_at: now(),
            webhook_injection: crate::take_injection(&mut state.injections, true),
        };
        state.faxes.insert(id, fax.clone());
        state.requests.push(Value::Object(params.clone()));
        fax
    };
    tokio::spawn(progress(inner.clone(), fax.id.clone()));
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    let body = json!({"data": fax.to_json()});
    (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "10005",
        "Resource not found",
        "The requested resource or URL could not be found.",
        None,
    )
}

async fn fetch(State(inner): State<Arc<Inner>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    match gate(&inner, &headers) {
        Ok(Some(d)) => tokio::time::sleep(d).await,
        Ok(None) => {}
        Err(response) => return *response,
    }
    let fax = inner.lock().faxes.get(&id).map(Fax::to_json);
    match fax {
        Some(f) => {
            let body = json!({"data": f});
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        None => not_found(),
    }
}

async fn cancel(State(inner): State<Arc<Inner>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    match gate(&inner, &headers) {
        Ok(Some(d)) => tokio::time::sleep(d).await,
        Ok(None) => {}
        Err(response) => return *response,
    }
    let fax = {
        let mut state = inner.lock();
        let Some(fax) = state.faxes.get_mut(&id) else { return not_found() };
        if fax.done() {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "10015",
                "Bad Request",
                "Only a fax that is queued, media.processed, originated or sending can be cancelled.",
                None,
            );
        }
        fax.status = "failed".into();
        fax.failure_reason = Some("sender_canceled".into());
        fax.updated_at = now();
        fax.clone()
    };
    let inner2 = inner.clone();
    tokio::spawn(async move { deliver_webhook(&inner2, &fax, "fax.failed").await });
    let body = json!({"data": {"result": "ok"}});
    (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn failure(to: &str) -> Option<&'static str> {
    match to {
        "+15550000017" => Some("user_busy"),
        "+15550000016" => Some("receiver_no_answer"),
        "+15550000010" => Some("fax_signaling_error"),
        _ => None,
    }
}

/// Moves a fax on, unless it ended meanwhile (a cancel).
fn set(inner: &Inner, id: &str, change: impl FnOnce(&mut Fax)) -> Option<Fax> {
    let mut state = inner.lock();
    let fax = state.faxes.get_mut(id)?;
    if fax.done() {
        return None;
    }
    change(fax);
    fax.updated_at = now();
    Some(fax.clone())
}

async fn progress(inner: Arc<Inner>, id: String) {
    let step = inner.config.step;
    let Some(fax) = inner.lock().faxes.get(&id).cloned() else { return };
    deliver_webhook(&inner, &fax, "fax.queued").await;
    // The media is downloaded and processed before dialling.
    let fetched = match inner.http.get(&fax.media_url).send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.ok().filter(|b| b.starts_with(b"%PDF-")),
        _ => None,
    };
    inner.lock().content_fetches.push((fax.media_url.clone(), fetched.is_some()));
    tokio::time::sleep(step).await;
    let Some(pdf) = fetched else {
        if let Some(fax) = set(&inner, &id, |f| {
            f.status = "failed".into();
            f.failure_reason = Some("file_download_failed".into());
        }) {
            deliver_webhook(&inner, &fax, "fax.failed").await;
        }
        return;
    };
    let Some(fax) = set(&inner, &id, |f| f.status = "media.processed".into()) else { return };
    deliver_webhook(&inner, &fax, "fax.media.processed").await;
    tokio::time::sleep(step).await;
    if set(&inner, &id, |f| f.status = "originated".into()).is_none() {
        return;
    }
    tokio::time::sleep(step).await;
    let Some(fax) = set(&inner, &id, |f| f.status = "sending".into()) else { return };
    deliver_webhook(&inner, &fax, "fax.sending.started").await;
    tokio::time::sleep(step).await;
    let Some(fax) = set(&inner, &id, |f| match failure(&f.to) {
        Some(reason) => {
            f.status = "failed".into();
            f.failure_reason = Some(reason.into());
        }
        None => {
            f.status = "delivered".into();
            f.page_count = Some(pages(&pdf));
        }
    }) else {
        return;
    };
    let event = if fax.status == "delivered" { "fax.delivered" } else { "fax.failed" };
    deliver_webhook(&inner, &fax, event).await;
}

/// Posts one event to the fax's `webhook_url`, signed over `timestamp|body`.
async fn deliver_webhook(inner: &Inner, fax: &Fax, event_type: &str) {
    let Some(url) = fax.webhook_url.clone() else { return };
    if fax.webhook_injection == Some(Injection::DropWebhook) {
        return;
    }
    let event_id = {
        let mut state = inner.lock();
        state.next += 1;
        format!("3691d047-d22a-424d-80ed-{:012x}", state.next)
    };
    let status = match event_type {
        "fax.sending.started" => "sending.started",
        "fax.media.processed" => "media.processed",
        other => other.trim_start_matches("fax."),
    };
    let mut payload = json!({
        "connection_id": fax.connection_id, "direction": "outbound", "fax_id": fax.id, "from": fax.from,
        "to": fax.to, "original_media_url": fax.media_url, "status": status, "client_state": null,
        "user_id": "a5b1dfa3-fd2e-4e02-8ea4-000000000000",
    });
    if let Some(reason) = &fax.failure_reason {
        payload["failure_reason"] = json!(reason);
    }
    if let Some(n) = fax.page_count {
        payload["page_count"] = json!(n);
    }
    let body = json!({
        "data": {"event_type": event_type, "id": event_id, "occurred_at": now(), "record_type": "event",
                 "payload": payload},
        "meta": {"attempt": 1, "delivered_to": url},
    })
    .to_string();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let secret =
        if fax.webhook_injection == Some(Injection::WrongSignature) { [7u8; 32] } else { inner.config.signing_secret };
    let signature = sign_bytes(format!("{timestamp}|{body}").as_bytes(), &secret);
    let answered = match inner
        .http
        .post(&url)
        .header(TIMESTAMP_HEADER, &timestamp)
        .header(SIGNATURE_HEADER, &signature)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.clone())
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(e) => {
            tracing::debug!(error = %e, "fake telnyx: webhook delivery failed");
            0
        }
    };
    inner.lock().webhooks.push(SentWebhook {
        url,
        fax_id: fax.id.clone(),
        event_type: event_type.into(),
        body,
        timestamp,
        signature,
        answered,
    });
}
