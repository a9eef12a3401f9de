//! A fake of the Sinch Fax API v3 (`shared/reference/providers.md` §2 and §5.2).
//!
//! - `POST /oauth2/token` (form `grant_type=client_credentials`, Basic key id : secret) issues Bearer tokens
//!   with an expiry; fax routes accept Basic or a live Bearer token, and a wrong key, secret, token **or
//!   project id** answers 401 with an empty body, as Sinch does.
//! - `POST /v3/projects/{p}/faxes` takes multipart (`to`, `file` parts, `contentUrl`, scalars, `labels[k]`)
//!   or JSON (`files[].file` base64 + `fileType`), validates E.164, content, `maxRetries` 0–5,
//!   `retryDelaySeconds` 30–300 and `headerText` ≤ 50 (400 with Sinch's `Error` shape and field
//!   violations), and answers 200 with the Fax object (`QUEUED`, ULID id).
//! - Progression `QUEUED` → `IN_PROGRESS` → `COMPLETED` (pages, price, completedTime) or `FAILURE`
//!   (`errorType`/`errorCode`/`errorMessage`): `+15550000017` CALL_ERROR 17 busy, `+15550000010` FAX_ERROR 10;
//!   Sinch's own test number `+19898989898` succeeds.
//! - `GET /v3/projects/{p}/faxes/{id}` (404 in the `Error` shape). There is no cancel route (404), as in v3.
//! - `GET /v3/projects/{p}/faxes` lists with the documented filters `direction`, `to` / `from` (prefix),
//!   `status`, `createTime` (exact date or datetime prefix; default the last week), the range keys
//!   `createTime>` and `createTime<` (the query *keys* the official SDKs send, both inclusive; the docs'
//!   `createTime>=2021-10-01` is key `createTime>` with value `=2021-10-01`, accepted too), `pageSize`
//!   (1–1000) and `page`, answering `{faxes, page, totalPages, pageSize, totalItems}`. A query key that is
//!   not a documented filter is refused with 400 `INVALID_ARGUMENT`, as a strict server would: a misspelt
//!   filter must fail the tests, not be ignored into listing everything.
//! - On a terminal state, `FAX_COMPLETED` goes to `callbackUrl` as multipart (`event`, `eventTime`, `fax` as
//!   an `application/json` part, and the PDF as a `file` part) or JSON (`{event, eventTime, fax, files}`), per
//!   `callbackUrlContentType`. No signature: credentials embedded in the callback URL are sent as Basic auth
//!   (and stripped from the URL).
//! - [`SinchFake::deliver_incoming`] plays an `INCOMING_FAX` to a URL the way a service's
//!   `incomingWebhookUrl` receives it (multipart `fax` + `file`, or JSON with a singular base64 `file`).
//! - Injection as for Phaxio ([`crate::Injection`]); `WrongSignature` sends wrong Basic credentials.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::{Injection, pages, valid_e164};

/// Account, project and timing of a fake.
#[derive(Clone, Debug)]
pub struct SinchFakeConfig {
    /// Project id in the paths.
    pub project_id: String,
    /// Access key id (Basic user).
    pub key_id: String,
    /// Key secret (Basic password).
    pub key_secret: String,
    /// Lifetime of issued OAuth tokens.
    pub token_ttl: Duration,
    /// Time between status steps.
    pub step: Duration,
}

impl Default for SinchFakeConfig {
    fn default() -> Self {
        SinchFakeConfig {
            project_id: "fake-project".into(),
            key_id: "fake-key-id".into(),
            key_secret: "fake-key-secret".into(),
            token_ttl: Duration::from_secs(3600),
            step: Duration::from_millis(100),
        }
    }
}

/// One webhook the fake posted.
#[derive(Clone, Debug)]
pub struct SentWebhook {
    /// Callback URL with any credentials removed.
    pub url: String,
    /// Fax id.
    pub fax_id: String,
    /// Status the receiver answered (0 when the connection failed).
    pub answered: u16,
}

#[derive(Clone, Debug)]
struct Fax {
    id: String,
    to: String,
    status: &'static str,
    pages: i64,
    create_time: String,
    completed_time: Option<String>,
    callback_url: Option<String>,
    callback_json: bool,
    max_retries: i64,
    labels: BTreeMap<String, String>,
    error: Option<(&'static str, i64, &'static str)>,
    file: Vec<u8>,
}

impl Fax {
    fn to_json(&self, project: &str) -> Value {
        let done = self.completed_time.is_some();
        let ok = self.status == "COMPLETED";
        json!({
            "id": self.id, "direction": "OUTBOUND", "from": "+15550009999", "to": self.to,
            "numberOfPages": if done { self.pages } else { 0 },
            "pagesSentSuccessfully": if ok { self.pages } else { 0 },
            "status": self.status,
            "price": if done { json!({"amount": format!("{:.4}", 0.07 * self.pages as f64), "currencyCode": "USD"}) } else { Value::Null },
            "createTime": self.create_time, "completedTime": self.completed_time,
            "maxRetries": self.max_retries, "retryCount": 0, "labels": self.labels,
            "callbackUrl": self.callback_url.as_deref().map(mask_credentials),
            "callbackUrlContentType": if self.callback_json { "application/json" } else { "multipart/form-data" },
            "errorType": self.error.map(|e| e.0), "errorCode": self.error.map(|e| e.1),
            "errorMessage": self.error.map(|e| e.2), "hasFile": true, "projectId": project,
            "serviceId": "fake-service",
        })
    }
}

/// Sinch masks embedded callback credentials when a fax is read back.
fn mask_credentials(url: &str) -> String {
    match split_credentials(url) {
        (clean, Some(_)) => clean.replacen("://", "://***:***@", 1),
        (clean, None) => clean,
    }
}

/// `https://user:pass@host/path` → (`https://host/path`, Some((user, pass))).
fn split_credentials(url: &str) -> (String, Option<(String, String)>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_string(), None) };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            (format!("{scheme}://{host}{path}"), Some((user.to_string(), pass.to_string())))
        }
        None => (url.to_string(), None),
    }
}

#[derive(Default)]
struct FakeState {
    next: u64,
    faxes: BTreeMap<String, Fax>,
    tokens: HashMap<String, Instant>,
    injections: VecDeque<Injection>,
    submissions: usize,
    webhooks: Vec<SentWebhook>,
}

struct Inner {
    config: SinchFakeConfig,
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
pub struct SinchFake {
    inner: Arc<Inner>,
    /// Base URL of the fax API, e.g. `http://127.0.0.1:PORT` (paths start with `/v3/projects/…`).
    pub base_url: String,
    /// Token endpoint, e.g. `http://127.0.0.1:PORT/oauth2/token`.
    pub token_url: String,
}

impl SinchFake {
    /// Starts a fake on a free loopback port.
    pub async fn start(config: SinchFakeConfig) -> std::io::Result<SinchFake> {
        Self::start_with(config, SocketAddr::from(([127, 0, 0, 1], 0)), None).await
    }

    /// Starts a fake on `addr`, serving HTTPS when `tls` is set ([`crate::tls`]).
    pub async fn start_with(
        config: SinchFakeConfig,
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<SinchFake> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let inner = Arc::new(Inner {
            config,
            state: Mutex::new(FakeState::default()),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(std::io::Error::other)?,
        });
        let app = Router::new()
            .route("/oauth2/token", post(token))
            .route("/v3/projects/{project}/faxes", post(create).get(list))
            .route("/v3/projects/{project}/faxes/{id}", get(fetch))
            .with_state(inner.clone());
        crate::tls::spawn_serve(listener, app, tls);
        Ok(SinchFake {
            inner,
            base_url: format!("{scheme}://{addr}"),
            token_url: format!("{scheme}://{addr}/oauth2/token"),
        })
    }

    /// Queues a failure for the next request (or webhook).
    pub fn inject(&self, injection: Injection) {
        self.inner.lock().injections.push_back(injection);
    }

    /// Faxes created by `POST /faxes`.
    pub fn submissions(&self) -> usize {
        self.inner.lock().submissions
    }

    /// The Fax object as `GET` would return it.
    pub fn fax(&self, id: &str) -> Option<Value> {
        let project = self.inner.config.project_id.clone();
        self.inner.lock().faxes.get(id).map(|f| f.to_json(&project))
    }

    /// Webhooks posted so far.
    pub fn webhooks(&self) -> Vec<SentWebhook> {
        self.inner.lock().webhooks.clone()
    }

    /// Posts an `INCOMING_FAX` to `url` as Sinch delivers it to a service's `incomingWebhookUrl` (Basic
    /// credentials embedded in the URL are sent as `Authorization`), and returns the receiver's HTTP status
    /// (0 when the connection failed). Returns the inbound fax id too, which replays carry unchanged.
    pub async fn deliver_incoming(
        &self,
        url: &str,
        json_body: bool,
        from: &str,
        to: &str,
        pdf: &[u8],
    ) -> (u16, String) {
        let id = {
            let mut state = self.inner.lock();
            state.next += 1;
            format!("01HFAKEIN{:017}", state.next)
        };
        self.redeliver_incoming(url, &id, json_body, from, to, pdf).await
    }

    /// Posts the `INCOMING_FAX` of fax `id` again, as Sinch does when it considers a delivery failed (and as
    /// an attacker replaying a captured callback would).
    pub async fn redeliver_incoming(
        &self,
        url: &str,
        id: &str,
        json_body: bool,
        from: &str,
        to: &str,
        pdf: &[u8],
    ) -> (u16, String) {
        let id = id.to_string();
        let fax = json!({"id": id, "direction": "INBOUND", "from": from, "to": to, "status": "COMPLETED",
            "numberOfPages": pages(pdf), "createTime": now(), "completedTime": now(), "hasFile": true,
            "projectId": self.inner.config.project_id, "serviceId": "fake-service"});
        let (url, credentials) = split_credentials(url);
        let mut request = self.inner.http.post(&url);
        request = if json_body {
            request.json(&json!({"event": "INCOMING_FAX", "eventTime": now(), "fax": fax,
                "file": STANDARD.encode(pdf), "fileType": "PDF"}))
        } else {
            let mut form = reqwest::multipart::Form::new().text("event", "INCOMING_FAX").text("eventTime", now());
            if let Ok(part) = reqwest::multipart::Part::text(fax.to_string()).mime_str("application/json") {
                form = form.part("fax", part);
            }
            if let Ok(part) =
                reqwest::multipart::Part::bytes(pdf.to_vec()).file_name(format!("{id}.pdf")).mime_str("application/pdf")
            {
                form = form.part("file", part);
            }
            request.multipart(form)
        };
        if let Some((user, pass)) = credentials {
            request = request.basic_auth(user, Some(pass));
        }
        (request.send().await.map(|r| r.status().as_u16()).unwrap_or(0), id)
    }

    /// Tokens issued so far (a client that caches tokens asks once per lifetime).
    pub fn tokens_issued(&self) -> usize {
        self.inner.lock().tokens.len()
    }
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn unauthorized() -> Response {
    StatusCode::UNAUTHORIZED.into_response()
}

fn error(status: StatusCode, code_name: &str, message: &str, violations: &[(&str, &str)]) -> Response {
    let mut body = json!({"code": status.as_u16(), "status": code_name, "message": message});
    if !violations.is_empty() {
        body["details"] = json!([{"type": "BadRequest",
            "fieldViolations": violations.iter().map(|(f, d)| json!({"field": f, "description": d})).collect::<Vec<_>>()}]);
    }
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn basic_ok(config: &SinchFakeConfig, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .is_some_and(|d| d == format!("{}:{}", config.key_id, config.key_secret).as_bytes())
}

async fn token(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: String) -> Response {
    if !basic_ok(&inner.config, &headers) || !body.split('&').any(|p| p == "grant_type=client_credentials") {
        return unauthorized();
    }
    let mut state = inner.lock();
    state.next += 1;
    let token = format!("fake-token-{}-{}", state.next, std::process::id());
    state.tokens.insert(token.clone(), Instant::now() + inner.config.token_ttl);
    let body = json!({"access_token": token, "token_type": "Bearer", "expires_in": inner.config.token_ttl.as_secs(), "scope": ""});
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Auth (project, Basic or Bearer), then injections. `Ok(Some(d))`: stall `d` after the work.
fn gate(inner: &Inner, project: &str, headers: &HeaderMap) -> Result<Option<Duration>, Box<Response>> {
    let bearer_ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| inner.lock().tokens.get(t.trim()).is_some_and(|exp| *exp > Instant::now()));
    if project != inner.config.project_id || !(bearer_ok || basic_ok(&inner.config, headers)) {
        return Err(Box::new(unauthorized()));
    }
    let injection = {
        let mut state = inner.lock();
        crate::take_injection(&mut state.injections, false)
    };
    match injection {
        Some(Injection::Status { code, retry_after }) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if code == 401 {
                return Err(Box::new(unauthorized()));
            }
            let name = match code {
                429 => "RESOURCE_EXHAUSTED",
                400 | 422 => "INVALID_ARGUMENT",
                _ => "UNAVAILABLE",
            };
            let mut response = error(status, name, "injected failure", &[]);
            crate::set_retry_after(&mut response, retry_after);
            Err(Box::new(response))
        }
        Some(Injection::Stall(d)) => Ok(Some(d)),
        _ => Ok(None),
    }
}

async fn create(State(inner): State<Arc<Inner>>, Path(project): Path<String>, request: Request) -> Response {
    let headers = request.headers().clone();
    let stall = match gate(&inner, &project, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut files: Vec<Vec<u8>> = Vec::new();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if content_type.starts_with("multipart/form-data") {
        let Ok(mut multipart) = Multipart::from_request(request, &()).await else {
            return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "malformed multipart body", &[]);
        };
        while let Ok(Some(field)) = multipart.next_field().await {
            let name = field.name().unwrap_or("").to_string();
            let is_file = field.file_name().is_some();
            let Ok(data) = field.bytes().await else {
                return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "malformed multipart body", &[]);
            };
            if is_file && name == "file" {
                files.push(data.to_vec());
            } else {
                fields.push((name, String::from_utf8_lossy(&data).into_owned()));
            }
        }
    } else {
        let Ok(body) = axum::body::to_bytes(request.into_body(), 32 << 20).await else {
            return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "body too large", &[]);
        };
        let Ok(value) = serde_json::from_slice::<Value>(&body) else {
            return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "malformed JSON body", &[]);
        };
        for (k, v) in value.as_object().cloned().unwrap_or_default() {
            match (k.as_str(), v) {
                ("files", Value::Array(items)) => {
                    for item in items {
                        match item["file"].as_str().map(|b| STANDARD.decode(b)) {
                            Some(Ok(bytes)) => files.push(bytes),
                            _ => {
                                return error(
                                    StatusCode::BAD_REQUEST,
                                    "INVALID_ARGUMENT",
                                    "invalid file",
                                    &[("files", "must be base64")],
                                );
                            }
                        }
                    }
                }
                ("labels", Value::Object(map)) => {
                    for (lk, lv) in map {
                        fields.push((format!("labels[{lk}]"), lv.as_str().unwrap_or_default().to_string()));
                    }
                }
                (key, Value::String(s)) => fields.push((key.to_string(), s)),
                (key, other) => fields.push((key.to_string(), other.to_string())),
            }
        }
    }
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());

    let mut violations: Vec<(&str, &str)> = Vec::new();
    let to = field("to").unwrap_or_default();
    if !valid_e164(&to) {
        violations.push(("to", "must be an E.164 number with a leading +"));
    }
    if files.is_empty() && field("contentUrl").is_none() {
        violations.push(("file", "a file or contentUrl is required"));
    }
    let max_retries = field("maxRetries").map(|v| v.parse::<i64>().unwrap_or(-1)).unwrap_or(3);
    if !(0..=5).contains(&max_retries) {
        violations.push(("maxRetries", "must be between 0 and 5"));
    }
    if field("retryDelaySeconds").is_some_and(|v| !v.parse::<i64>().is_ok_and(|n| (30..=300).contains(&n))) {
        violations.push(("retryDelaySeconds", "must be between 30 and 300"));
    }
    if field("headerText").is_some_and(|h| h.chars().count() > 50) {
        violations.push(("headerText", "must be at most 50 characters"));
    }
    if !violations.is_empty() {
        return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "Invalid request", &violations);
    }
    let labels: BTreeMap<String, String> = fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("labels[")?.strip_suffix(']')?.to_string(), v.clone())))
        .collect();
    let fax = {
        let mut state = inner.lock();
        state.next += 1;
        state.submissions += 1;
        let fax = Fax {
            id: format!("01HFAKE{:019}", state.next),
            to,
            status: "QUEUED",
            pages: files.iter().map(|f| pages(f)).sum::<i64>().max(1),
            create_time: now(),
            completed_time: None,
            callback_url: field("callbackUrl"),
            callback_json: field("callbackUrlContentType").as_deref() == Some("application/json"),
            max_retries,
            labels,
            error: None,
            file: files.first().cloned().unwrap_or_default(),
        };
        state.faxes.insert(fax.id.clone(), fax.clone());
        fax
    };
    tokio::spawn(progress(inner.clone(), fax.id.clone()));
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], fax.to_json(&project).to_string()).into_response()
}

async fn fetch(
    State(inner): State<Arc<Inner>>,
    Path((project, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match gate(&inner, &project, &headers) {
        Ok(Some(d)) => tokio::time::sleep(d).await,
        Ok(None) => {}
        Err(r) => return *r,
    }
    let fax = inner.lock().faxes.get(&id).map(|f| f.to_json(&project));
    match fax {
        Some(f) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], f.to_string()).into_response(),
        None => error(StatusCode::NOT_FOUND, "NOT_FOUND", "Fax not found", &[]),
    }
}

async fn list(
    State(inner): State<Arc<Inner>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    match gate(&inner, &project, &headers) {
        Ok(Some(d)) => tokio::time::sleep(d).await,
        Ok(None) => {}
        Err(r) => return *r,
    }
    let params: Vec<(String, String)> = serde_urlencoded_pairs(query.as_deref().unwrap_or("")).unwrap_or_default();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let page_size = param("pageSize").map(|v| v.parse::<usize>().unwrap_or(0)).unwrap_or(100);
    if !(1..=1000).contains(&page_size) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid request",
            &[("pageSize", "must be between 1 and 1000")],
        );
    }
    let page = param("page").map(|v| v.parse::<usize>().unwrap_or(0)).unwrap_or(1);
    if page == 0 {
        return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "Invalid request", &[("page", "unknown page")]);
    }
    if let Some((key, _)) = params.iter().find(|(k, _)| !LIST_FILTERS.contains(&k.as_str())) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid request",
            &[(key.as_str(), "unknown query parameter")],
        );
    }
    let range = |key: &str| param(key).map(|v| v.strip_prefix('=').unwrap_or(v));
    let (exact, after, before) = (param("createTime"), range("createTime>"), range("createTime<"));
    // Sinch's default window when no createTime is given: the last week.
    let week_ago = (chrono::Utc::now() - chrono::Duration::days(7)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let all: Vec<Value> = {
        let state = inner.lock();
        state
            .faxes
            .values()
            .filter(|_| param("direction").is_none_or(|d| d == "OUTBOUND"))
            .filter(|f| param("to").is_none_or(|p| f.to.starts_with(p)))
            .filter(|_| param("from").is_none_or(|p| "+15550009999".starts_with(p)))
            .filter(|f| param("status").is_none_or(|s| s == f.status))
            .filter(|f| exact.is_none_or(|t| f.create_time.starts_with(t)))
            .filter(|f| after.is_none_or(|t| f.create_time.as_str() >= t))
            .filter(|f| before.is_none_or(|t| &f.create_time[..t.len().min(f.create_time.len())] <= t))
            .filter(|f| exact.is_some() || after.is_some() || before.is_some() || f.create_time >= week_ago)
            .map(|f| f.to_json(&project))
            .collect()
    };
    let total = all.len();
    let faxes: Vec<Value> = all.into_iter().skip((page - 1) * page_size).take(page_size).collect();
    let body = json!({"faxes": faxes, "page": page, "totalPages": total.div_ceil(page_size),
        "pageSize": page_size, "totalItems": total});
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// The list filters Sinch documents (providers.md §2.3), and the paging and format keys.
const LIST_FILTERS: &[&str] = &[
    "serviceId",
    "createTime",
    "createTime>",
    "createTime<",
    "direction",
    "status",
    "to",
    "from",
    "labels",
    "fromCountry",
    "toCountry",
    "pageSize",
    "page",
    "format",
];

/// Decodes a query string into pairs, keeping keys like `createTime>` intact.
fn serde_urlencoded_pairs(query: &str) -> Option<Vec<(String, String)>> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&format!("/?{query}").parse().ok()?).ok().map(|q| q.0)
}

fn outcome(to: &str) -> Option<(&'static str, i64, &'static str)> {
    match to {
        "+15550000017" => Some(("CALL_ERROR", 17, "Busy")),
        "+15550000010" => Some(("FAX_ERROR", 10, "Disconnected after permitted retries")),
        _ => None,
    }
}

async fn progress(inner: Arc<Inner>, id: String) {
    tokio::time::sleep(inner.config.step).await;
    if let Some(f) = inner.lock().faxes.get_mut(&id) {
        f.status = "IN_PROGRESS";
    }
    tokio::time::sleep(inner.config.step).await;
    let fax = {
        let mut state = inner.lock();
        let Some(f) = state.faxes.get_mut(&id) else { return };
        f.error = outcome(&f.to);
        f.status = if f.error.is_some() { "FAILURE" } else { "COMPLETED" };
        f.completed_time = Some(now());
        f.clone()
    };
    deliver_webhook(&inner, &fax).await;
}

async fn deliver_webhook(inner: &Inner, fax: &Fax) {
    let Some(raw_url) = fax.callback_url.clone() else { return };
    let injection = {
        let mut state = inner.lock();
        crate::take_injection(&mut state.injections, true)
    };
    if injection == Some(Injection::DropWebhook) {
        return;
    }
    let (url, credentials) = split_credentials(&raw_url);
    let fax_json = fax.to_json(&inner.config.project_id);
    let event_time = now();
    let mut request = inner.http.post(&url);
    // Whether Sinch attaches the document to a FAILURE is not documented; the fake attaches it on success only.
    let with_file = fax.status == "COMPLETED" && !fax.file.is_empty();
    request = if fax.callback_json {
        let mut body = json!({"event": "FAX_COMPLETED", "eventTime": event_time, "fax": fax_json});
        if with_file {
            body["files"] = json!([{"file": STANDARD.encode(&fax.file), "fileType": "PDF"}]);
        }
        request.json(&body)
    } else {
        let fax_part = reqwest::multipart::Part::text(fax_json.to_string()).mime_str("application/json");
        let mut form = reqwest::multipart::Form::new().text("event", "FAX_COMPLETED").text("eventTime", event_time);
        if let Ok(part) = fax_part {
            form = form.part("fax", part);
        }
        if with_file
            && let Ok(part) = reqwest::multipart::Part::bytes(fax.file.clone())
                .file_name(format!("{}.pdf", fax.id))
                .mime_str("application/pdf")
        {
            form = form.part("file", part);
        }
        request.multipart(form)
    };
    if let Some((user, pass)) = credentials {
        let pass = if injection == Some(Injection::WrongSignature) { format!("{pass}-wrong") } else { pass };
        request = request.basic_auth(user, Some(pass));
    }
    let answered = request.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
    inner.lock().webhooks.push(SentWebhook { url, fax_id: fax.id.clone(), answered });
}
