//! A fake of Phaxio API v2.1 (`shared/reference/providers.md` §1 and §5.1).
//!
//! - Basic auth (API key : API secret) on every route; a mismatch answers 401 in Phaxio's envelope.
//! - `POST /v2.1/faxes` (multipart with `file` parts, or urlencoded with `content_url`): validates `to`
//!   (E.164), content and `header_text`, creates a fax with an integer id and answers
//!   `{"success":true,"message":"Fax queued for sending","data":{"id":N}}`.
//! - The fax then moves `queued` → `inprogress` (recipient `ringing` → `callactive`) → `success` or `failure`
//!   on a timer. Magic numbers fail the transmission like the real network: `+15550000017` busy (lineError
//!   17), `+15550000016` ring timeout (lineError 16), `+15550000010` faxError 10.
//! - On completion it posts the `fax_completed` webhook (multipart: `event_type`, `direction`, `is_test`,
//!   `success`, and `fax` as a JSON string) to the fax's `callback_url`, signed with `X-Phaxio-Signature`
//!   over the callback URL as submitted, keyed with the webhook token.
//! - Content URLs (`content_url`) are fetched before dialling, like Phaxio does; one that cannot be fetched
//!   fails the fax with documentConversionError 54.
//! - `GET /v2.1/faxes/{id}` ("Metadata for fax"), `POST /v2.1/faxes/{id}/cancel`, `GET /v2.1/account/status`.
//! - Error injection ([`Injection`]): the next API requests answer 401/422/429 (with or without Retry-After)
//!   or 5xx, or stall before processing (a client timeout that still created the fax); the next webhook can
//!   be signed with the wrong token or dropped.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

/// Credentials and timing of a fake account.
#[derive(Clone, Debug)]
pub struct PhaxioFakeConfig {
    /// API key (Basic user).
    pub api_key: String,
    /// API secret (Basic password).
    pub api_secret: String,
    /// Webhook ("callback") token that keys `X-Phaxio-Signature`.
    pub webhook_token: String,
    /// Time between status steps of a transmission.
    pub step: Duration,
}

impl Default for PhaxioFakeConfig {
    fn default() -> Self {
        PhaxioFakeConfig {
            api_key: "fake-api-key".into(),
            api_secret: "fake-api-secret".into(),
            webhook_token: "fake-webhook-token".into(),
            step: Duration::from_millis(100),
        }
    }
}

pub use crate::Injection;
use crate::{pages, valid_e164};

/// A fax arriving at the fake account, for [`PhaxioFake::receive`].
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    /// The receive URL configured at Phaxio; the signature covers it.
    pub signed_url: &'a str,
    /// Where the webhook is actually posted.
    pub post_to: &'a str,
    /// Sender (E.164).
    pub from: &'a str,
    /// The account's number that received it.
    pub to: &'a str,
    /// The received document.
    pub pdf: &'a [u8],
}

/// One webhook the fake posted.
#[derive(Clone, Debug)]
pub struct SentWebhook {
    /// Callback URL as submitted.
    pub url: String,
    /// Fax id.
    pub fax_id: i64,
    /// Status the receiver answered (0 when the connection failed).
    pub answered: u16,
}

#[derive(Clone, Debug)]
struct Fax {
    id: i64,
    status: String,
    recipient_status: Option<String>,
    to: String,
    num_pages: i64,
    created_at: String,
    completed_at: Option<String>,
    callback_url: Option<String>,
    error: Option<(String, i64, String)>,
    tags: BTreeMap<String, String>,
}

impl Fax {
    fn to_json(&self) -> Value {
        let (error_type, error_id, error_message) = match &self.error {
            Some((t, i, m)) => (json!(t), json!(i), json!(m)),
            None => (Value::Null, Value::Null, Value::Null),
        };
        let done = self.completed_at.is_some();
        let success = self.status == "success";
        json!({
            "id": self.id, "direction": "sent", "num_pages": self.num_pages, "status": self.status,
            "is_test": false, "created_at": self.created_at, "completed_at": self.completed_at,
            "caller_id": null, "from_number": null, "to_number": null, "caller_name": null,
            "cost": if done { 7 * self.num_pages } else { 0 }, "tags": self.tags,
            "recipients": [{
                "phone_number": self.to, "status": self.recipient_status, "retry_count": 0,
                "completed_at": self.completed_at,
                "bitrate": if success { json!(14400) } else { Value::Null },
                "resolution": if success { json!(7700) } else { Value::Null },
                "error_type": error_type, "error_id": error_id, "error_message": error_message,
            }],
            "error_type": error_type, "error_id": error_id, "error_message": error_message, "barcodes": [],
        })
    }
}

#[derive(Default)]
struct FakeState {
    next_id: i64,
    faxes: BTreeMap<i64, Fax>,
    injections: VecDeque<Injection>,
    submissions: usize,
    webhooks: Vec<SentWebhook>,
    content_fetches: Vec<(String, bool)>,
    latency: Duration,
}

struct Inner {
    config: PhaxioFakeConfig,
    state: Mutex<FakeState>,
    http: reqwest::Client,
}

/// A running fake; cheap to clone.
#[derive(Clone)]
pub struct PhaxioFake {
    inner: Arc<Inner>,
    /// Base URL including the version prefix, e.g. `http://127.0.0.1:PORT/v2.1/`.
    pub base_url: String,
}

impl PhaxioFake {
    /// Starts a fake on a free loopback port.
    pub async fn start(config: PhaxioFakeConfig) -> std::io::Result<PhaxioFake> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a fake on `addr`.
    pub async fn start_on(config: PhaxioFakeConfig, addr: SocketAddr) -> std::io::Result<PhaxioFake> {
        Self::start_with(config, addr, None).await
    }

    /// Starts a fake on `addr`, serving HTTPS when `tls` is set ([`crate::tls`]).
    pub async fn start_with(
        config: PhaxioFakeConfig,
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<PhaxioFake> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{}/v2.1/", listener.local_addr()?);
        let inner = Arc::new(Inner {
            config,
            state: Mutex::new(FakeState { next_id: 1000, ..Default::default() }),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(std::io::Error::other)?,
        });
        let app = Router::new()
            .route("/v2.1/faxes", post(create).get(list))
            .route("/v2.1/faxes/{id}", get(fetch))
            .route("/v2.1/faxes/{id}/cancel", post(cancel))
            .route("/v2.1/account/status", get(account))
            .with_state(inner.clone());
        crate::tls::spawn_serve(listener, app, tls);
        Ok(PhaxioFake { inner, base_url })
    }

    /// Queues a failure for the next request (or webhook, for the webhook kinds).
    pub fn inject(&self, injection: Injection) {
        self.lock().injections.push_back(injection);
    }

    /// How many `POST /faxes` created a fax (what a plugin must never double).
    pub fn submissions(&self) -> usize {
        self.lock().submissions
    }

    /// How many faxes were created per value of tag `tag` (`faxbot_job` for the plugin): a job sent twice shows
    /// as a count of two.
    pub fn faxes_per_tag(&self, tag: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for fax in self.lock().faxes.values() {
            if let Some(value) = fax.tags.get(tag) {
                *counts.entry(value.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The fax object as `GET /faxes/{id}` would return it.
    pub fn fax(&self, id: i64) -> Option<Value> {
        self.lock().faxes.get(&id).map(Fax::to_json)
    }

    /// Webhooks posted so far.
    pub fn webhooks(&self) -> Vec<SentWebhook> {
        self.lock().webhooks.clone()
    }

    /// Makes every API answer take `latency` longer (a provider having a slow day), until set back to zero.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Content URLs fetched so far, with whether the fetch gave a PDF.
    pub fn content_fetches(&self) -> Vec<(String, bool)> {
        self.lock().content_fetches.clone()
    }

    /// The webhook token (for a receiver under test).
    pub fn webhook_token(&self) -> &str {
        &self.inner.config.webhook_token
    }

    /// A fax arrives on one of the account's numbers: like real Phaxio, the fake posts the receive webhook
    /// (multipart: `direction=received`, `is_test`, `success`, `fax` as a JSON string, and the PDF as the
    /// file part `file`) signed with `X-Phaxio-Signature` over `received.signed_url`, the receive URL
    /// configured at Phaxio. It is delivered to `received.post_to` (the same URL unless a proxy in between
    /// maps the public URL to a local one). A queued [`Injection::WrongSignature`] or
    /// [`Injection::DropWebhook`] applies. Returns the fax id and the receiver's answer.
    pub async fn receive(&self, received: Received<'_>) -> SentWebhook {
        let id = {
            let mut state = self.lock();
            state.next_id += 1;
            state.next_id
        };
        let fax = json!({
            "id": id, "direction": "received", "num_pages": pages(received.pdf).max(1), "status": "success",
            "is_test": false, "created_at": now(), "completed_at": now(), "caller_id": received.from,
            "from_number": received.from, "to_number": received.to, "caller_name": null, "cost": 7,
            "tags": {}, "recipients": [], "error_type": null, "error_id": null, "error_message": null, "barcodes": [],
        });
        self.deliver_received(id, fax.to_string(), received).await
    }

    /// Posts the receive webhook of an existing received fax again (Phaxio retries webhooks until answered
    /// with 2xx; a test uses this to replay one).
    pub async fn redeliver_received(&self, id: i64, fax_json: String, received: Received<'_>) -> SentWebhook {
        self.deliver_received(id, fax_json, received).await
    }

    async fn deliver_received(&self, id: i64, fax_json: String, received: Received<'_>) -> SentWebhook {
        let injection = crate::take_injection(&mut self.lock().injections, true);
        if injection == Some(Injection::DropWebhook) {
            return SentWebhook { url: received.signed_url.to_string(), fax_id: id, answered: 0 };
        }
        let fields: Vec<(&str, &str)> =
            vec![("direction", "received"), ("is_test", "false"), ("success", "true"), ("fax", fax_json.as_str())];
        let files: Vec<(&str, &[u8])> = vec![("file", received.pdf)];
        let token = if injection == Some(Injection::WrongSignature) {
            "not-the-webhook-token".to_string()
        } else {
            self.inner.config.webhook_token.clone()
        };
        let signature = faxbot_webhooks::phaxio::sign(token.as_bytes(), received.signed_url, &fields, &files);
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in &fields {
            form = form.text(k.to_string(), v.to_string());
        }
        let part = reqwest::multipart::Part::bytes(received.pdf.to_vec())
            .file_name(format!("{id}.pdf"))
            .mime_str("application/pdf")
            .expect("static mime type");
        form = form.part("file", part);
        let answered = match self
            .inner
            .http
            .post(received.post_to)
            .header(faxbot_webhooks::phaxio::SIGNATURE_HEADER, signature)
            .multipart(form)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        let sent = SentWebhook { url: received.signed_url.to_string(), fax_id: id, answered };
        self.lock().webhooks.push(sent.clone());
        sent
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn envelope(status: StatusCode, message: &str, data: Option<Value>) -> Response {
    let mut body = json!({"success": status.is_success(), "message": message});
    if let Some(d) = data {
        body["data"] = d;
    }
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

fn now() -> String {
    chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    let expected = format!("{}:{}", inner.config.api_key, inner.config.api_secret);
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .is_some_and(|decoded| decoded == expected.as_bytes())
}

/// Auth, then injected failures. `Err` is the response to send instead; `Ok(Some(d))` asks the handler to
/// stall `d` after doing its work and before answering.
fn gate(inner: &Inner, headers: &HeaderMap) -> Result<Option<Duration>, Box<Response>> {
    if !authorized(inner, headers) {
        return Err(Box::new(envelope(
            StatusCode::UNAUTHORIZED,
            "Authentication failed: invalid API key or secret",
            None,
        )));
    }
    let injection = {
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        crate::take_injection(&mut state.injections, false)
    };
    match injection {
        Some(Injection::Status { code, retry_after }) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = match code {
                401 => "Authentication failed",
                422 => "Invalid request",
                429 => "Too many requests per second. Please wait a second and try again.",
                _ => "Service temporarily unavailable",
            };
            let mut response = envelope(status, message, None);
            crate::set_retry_after(&mut response, retry_after);
            Err(Box::new(response))
        }
        Some(Injection::Stall(d)) => Ok(Some(d)),
        _ => {
            let latency = inner.state.lock().unwrap_or_else(|e| e.into_inner()).latency;
            Ok((!latency.is_zero()).then_some(latency))
        }
    }
}

async fn create(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let headers = request.headers().clone();
    let stall = match gate(&inner, &headers) {
        Ok(stall) => stall,
        Err(response) => return *response,
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut files: Vec<Bytes> = Vec::new();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = match Multipart::from_request(request, &()).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "phaxio fake: malformed multipart body");
                return envelope(StatusCode::UNPROCESSABLE_ENTITY, "Malformed multipart body", None);
            }
        };
        loop {
            match multipart.next_field().await {
                Ok(Some(field)) => {
                    let name = field.name().unwrap_or("").to_string();
                    let is_file = field.file_name().is_some();
                    let data = match field.bytes().await {
                        Ok(data) => data,
                        Err(e) => {
                            tracing::warn!(error = %e, "phaxio fake: malformed multipart field");
                            return envelope(StatusCode::UNPROCESSABLE_ENTITY, "Malformed multipart body", None);
                        }
                    };
                    if is_file && (name == "file" || name == "file[]") {
                        files.push(data);
                    } else {
                        fields.push((name, String::from_utf8_lossy(&data).into_owned()));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "phaxio fake: malformed multipart body");
                    return envelope(StatusCode::UNPROCESSABLE_ENTITY, "Malformed multipart body", None);
                }
            }
        }
    } else {
        let Ok(body) = axum::body::to_bytes(request.into_body(), 1 << 20).await else {
            return envelope(StatusCode::UNPROCESSABLE_ENTITY, "Malformed body", None);
        };
        fields = form_urlencoded_pairs(&body);
    }
    let field =
        |name: &str| fields.iter().find(|(k, _)| k == name || *k == format!("{name}[]")).map(|(_, v)| v.clone());

    let Some(to) = field("to") else {
        return envelope(StatusCode::UNPROCESSABLE_ENTITY, "The to field is required.", None);
    };
    if !valid_e164(&to) {
        return envelope(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Phone number is not formatted correctly or invalid. Please check the number and try again.",
            None,
        );
    }
    if files.is_empty() && field("content_url").is_none() {
        return envelope(StatusCode::UNPROCESSABLE_ENTITY, "You must provide at least one file or content_url.", None);
    }
    if field("header_text").is_some_and(|h| h.chars().count() > 50) {
        return envelope(StatusCode::UNPROCESSABLE_ENTITY, "header_text must be 50 characters or fewer.", None);
    }
    let tags: BTreeMap<String, String> = fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("tag[")?.strip_suffix(']')?.to_string(), v.clone())))
        .collect();
    let num_pages = files.iter().map(|f| pages(f)).sum::<i64>();

    let id = {
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        state.next_id += 1;
        state.submissions += 1;
        let id = state.next_id;
        state.faxes.insert(
            id,
            Fax {
                id,
                status: "queued".into(),
                recipient_status: None,
                to,
                num_pages: 0,
                created_at: now(),
                completed_at: None,
                callback_url: field("callback_url"),
                error: None,
                tags,
            },
        );
        id
    };
    let content_urls: Vec<String> =
        fields.iter().filter(|(k, _)| k == "content_url" || k == "content_url[]").map(|(_, v)| v.clone()).collect();
    tokio::spawn(progress(inner.clone(), id, num_pages, content_urls));
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    envelope(StatusCode::OK, "Fax queued for sending", Some(json!({"id": id})))
}

fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn outcome(to: &str) -> Option<(String, i64, String)> {
    match to {
        "+15550000017" => Some(("lineError".into(), 17, "Busy".into())),
        "+15550000016" => Some(("lineError".into(), 16, "Ring timeout".into())),
        "+15550000010" => Some(("faxError".into(), 10, "Disconnected after permitted retries".into())),
        _ => None,
    }
}

async fn progress(inner: Arc<Inner>, id: i64, mut num_pages: i64, content_urls: Vec<String>) {
    let step = inner.config.step;
    // Like Phaxio, fetch every content URL before dialling; one that cannot be fetched fails the fax with
    // documentConversionError 54.
    let mut fetch_failed = false;
    for url in &content_urls {
        match inner.http.get(url).send().await {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(bytes) if bytes.starts_with(b"%PDF-") => num_pages += pages(&bytes),
                _ => fetch_failed = true,
            },
            _ => fetch_failed = true,
        }
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        state.content_fetches.push((url.clone(), !fetch_failed));
    }
    if fetch_failed {
        tokio::time::sleep(step).await;
        let fax = {
            let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let Some(fax) = state.faxes.get_mut(&id) else { return };
            fax.error = Some(("documentConversionError".into(), 54, "Could not access the URL".into()));
            fax.status = "failure".into();
            fax.recipient_status = Some("failure".into());
            fax.completed_at = Some(now());
            fax.clone()
        };
        deliver_webhook(&inner, &fax).await;
        return;
    }
    let num_pages = num_pages.max(1);
    for (status, recipient) in [("inprogress", "ringing"), ("inprogress", "callactive")] {
        tokio::time::sleep(step).await;
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(fax) = state.faxes.get_mut(&id) else { return };
        if fax.completed_at.is_some() {
            return; // cancelled meanwhile
        }
        fax.status = status.into();
        fax.recipient_status = Some(recipient.into());
    }
    tokio::time::sleep(step).await;
    let fax = {
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(fax) = state.faxes.get_mut(&id) else { return };
        if fax.completed_at.is_some() {
            return;
        }
        fax.error = outcome(&fax.to);
        let status = if fax.error.is_some() { "failure" } else { "success" };
        fax.status = status.into();
        fax.recipient_status = Some(status.into());
        fax.num_pages = num_pages;
        fax.completed_at = Some(now());
        fax.clone()
    };
    deliver_webhook(&inner, &fax).await;
}

async fn deliver_webhook(inner: &Inner, fax: &Fax) {
    let Some(url) = fax.callback_url.clone() else { return };
    let injection = {
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        crate::take_injection(&mut state.injections, true)
    };
    if injection == Some(Injection::DropWebhook) {
        return;
    }
    let fax_json = fax.to_json().to_string();
    let success = if fax.status == "success" { "true" } else { "false" };
    let fields: Vec<(&str, &str)> = vec![
        ("event_type", "fax_completed"),
        ("direction", "sent"),
        ("is_test", "false"),
        ("success", success),
        ("fax", fax_json.as_str()),
    ];
    let token = if injection == Some(Injection::WrongSignature) {
        "not-the-webhook-token".to_string()
    } else {
        inner.config.webhook_token.clone()
    };
    let signature = faxbot_webhooks::phaxio::sign(token.as_bytes(), &url, &fields, &[]);
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in &fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let answered = match inner
        .http
        .post(&url)
        .header(faxbot_webhooks::phaxio::SIGNATURE_HEADER, signature)
        .multipart(form)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(e) => {
            tracing::debug!(error = %e, "fake phaxio: webhook delivery failed");
            0
        }
    };
    let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    state.webhooks.push(SentWebhook { url, fax_id: fax.id, answered });
}

/// `GET /faxes` with the `tag[NAME]=value` and `direction` filters (what a client needs to find its own fax
/// again), in one page.
async fn list(State(inner): State<Arc<Inner>>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    match gate(&inner, &headers) {
        Ok(Some(d)) => tokio::time::sleep(d).await,
        Ok(None) => {}
        Err(response) => return *response,
    }
    let query = form_urlencoded_pairs(uri.query().unwrap_or("").as_bytes());
    let tags: Vec<(String, String)> = query
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("tag[")?.strip_suffix(']')?.to_string(), v.clone())))
        .collect();
    let direction = query.iter().find(|(k, _)| k == "direction").map(|(_, v)| v.clone());
    let data: Vec<Value> = {
        let state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .faxes
            .values()
            .filter(|f| tags.iter().all(|(k, v)| f.tags.get(k) == Some(v)))
            .filter(|_| direction.as_deref().is_none_or(|d| d == "sent"))
            .map(Fax::to_json)
            .collect()
    };
    let paging = json!({"total": data.len(), "per_page": 1000, "page": 1});
    let body = json!({"success": true, "message": "Retrieved faxes successfully", "data": data, "paging": paging});
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

async fn fetch(State(inner): State<Arc<Inner>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match gate(&inner, &headers) {
        Ok(Some(d)) => tokio::time::sleep(d).await,
        Ok(None) => {}
        Err(response) => return *response,
    }
    let fax = id.parse::<i64>().ok().and_then(|id| {
        let state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        state.faxes.get(&id).map(Fax::to_json)
    });
    match fax {
        Some(f) => envelope(StatusCode::OK, "Metadata for fax", Some(f)),
        None => envelope(StatusCode::NOT_FOUND, "Not found", None),
    }
}

async fn cancel(State(inner): State<Arc<Inner>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match gate(&inner, &headers) {
        Ok(Some(d)) => tokio::time::sleep(d).await,
        Ok(None) => {}
        Err(response) => return *response,
    }
    let Ok(id) = id.parse::<i64>() else { return envelope(StatusCode::NOT_FOUND, "Not found", None) };
    let fax = {
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(fax) = state.faxes.get_mut(&id) else { return envelope(StatusCode::NOT_FOUND, "Not found", None) };
        if fax.completed_at.is_some() {
            return envelope(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Fax is already complete and cannot be cancelled.",
                None,
            );
        }
        fax.status = "failure".into();
        fax.recipient_status = Some("failure".into());
        fax.error = Some(("generalError".into(), 75, "Fax was manually canceled by user".into()));
        fax.completed_at = Some(now());
        fax.clone()
    };
    let inner2 = inner.clone();
    tokio::spawn(async move { deliver_webhook(&inner2, &fax).await });
    envelope(StatusCode::OK, "Fax cancellation scheduled successfully.", Some(json!({"id": id})))
}

async fn account(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    match gate(&inner, &headers) {
        Ok(Some(d)) => tokio::time::sleep(d).await,
        Ok(None) => {}
        Err(response) => return *response,
    }
    let sent = inner.state.lock().unwrap_or_else(|e| e.into_inner()).submissions;
    envelope(
        StatusCode::OK,
        "Account status retrieved successfully",
        Some(json!({"balance": 1000, "faxes_today": {"sent": sent, "received": 0},
                    "faxes_this_month": {"sent": sent, "received": 0}})),
    )
}
