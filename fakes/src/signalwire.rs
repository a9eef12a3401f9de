//! A fake of SignalWire Fax through the LaML (Twilio-compatible "Compatibility") REST API.
//!
//! Sources (public documentation and SDK pages; read, not copied):
//! - Send a Fax: <https://developer.signalwire.com/compatibility-api/client-sdks/methods/faxes/send> and
//!   <https://signalwire.com/docs/compatibility-api/sdks/reference/faxes/send> (`POST
//!   /api/laml/2010-04-01/Accounts/{AccountSid}/Faxes.json`, form fields `To`, `From`, `MediaUrl` required,
//!   `StatusCallback`, `Quality`, `Ttl`…; HTTP Basic with Project ID : API token).
//! - Retrieve / Update a Fax: <https://developer.signalwire.com/compatibility-api/client-sdks/methods/faxes/retrieve>,
//!   <https://developer.signalwire.com/compatibility-api/client-sdks/methods/faxes/update> (`GET`/`POST
//!   …/Faxes/{FaxSid}.json`; the only update is `Status=canceled`, which "may fail if the status has already
//!   begun transmission").
//! - The Fax object and its statuses: <https://developer.signalwire.com/compatibility-api/rest/entities/faxes/>,
//!   <https://signalwire.com/docs/compatibility-api/sdks/reference/faxes> (`queued`, `processing`, `sending`,
//!   `delivered`, `receiving`, `received`, `no-answer`, `busy`, `failed`, `canceled`; `error_code` and
//!   `error_message` on the object).
//! - Status callback parameters: <https://developer.signalwire.com/compatibility-api/reference/callbacks>
//!   (`FaxSid`, `FaxStatus`, `OriginalMediaUrl`, `NumPages`, `MediaSid`, `ErrorCode`, `ErrorMessage`…; default
//!   `StatusCallbackEvent` is `completed` only, so one callback per fax).
//! - Signature: `X-SignalWire-Signature`, Twilio-style (base64 HMAC-SHA1 keyed with the Signing Key over the
//!   full callback URL followed by every POST parameter sorted by name, name then value), as the
//!   compatibility SDK's `validateRequest` and Twilio's request validator (twilio.com/docs/usage/security)
//!   describe it.
//!
//! Where the docs say nothing the fake chooses, and says so here: error bodies use the Twilio-compatible
//! shape `{"code", "message", "more_info", "status"}` (401 code 20003, 404 code 20404, a refused parameter
//! 400 with code 21211/21603/21602, 429 code 20429); a created fax answers 201; the `error_message` texts of
//! failed faxes are the fake's own.
//!
//! Behaviour: every route checks Basic auth and that the path's AccountSid is the authenticated project
//! (401 otherwise). A fax is `queued`, then the fake fetches `MediaUrl` (`processing`; a URL that cannot be
//! fetched as a PDF fails the fax), dials (`sending`) and ends `delivered`, or fails like the network for magic
//! numbers: `+15550000017` `busy`, `+15550000016` `no-answer`, `+15550000010` `failed`. The completed
//! callback is posted to `StatusCallback` as a form, signed with the account's signing key. Error injection:
//! [`Injection`].

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
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

pub use crate::Injection;
use crate::{pages, valid_e164};

/// The header carrying the callback signature.
pub const SIGNATURE_HEADER: &str = "X-SignalWire-Signature";

/// Credentials and timing of a fake project.
#[derive(Clone, Debug)]
pub struct SignalWireFakeConfig {
    /// Project ID (the AccountSid in paths, the Basic user).
    pub project_id: String,
    /// API token (the Basic password).
    pub api_token: String,
    /// Signing key that keys `X-SignalWire-Signature`.
    pub signing_key: String,
    /// Time between status steps.
    pub step: Duration,
}

impl Default for SignalWireFakeConfig {
    fn default() -> Self {
        SignalWireFakeConfig {
            project_id: "b3877c40-da60-4998-90ad-b792e98472ac".into(),
            api_token: "PTfake-api-token".into(),
            signing_key: "PSKfake-signing-key".into(),
            step: Duration::from_millis(100),
        }
    }
}

/// One status callback the fake posted.
#[derive(Clone, Debug)]
pub struct SentCallback {
    /// The `StatusCallback` URL.
    pub url: String,
    /// Fax sid.
    pub fax_sid: String,
    /// `FaxStatus` it reported.
    pub status: String,
    /// The form fields posted, in order.
    pub fields: Vec<(String, String)>,
    /// The `X-SignalWire-Signature` it carried.
    pub signature: String,
    /// What the receiver answered (0 when the connection failed).
    pub answered: u16,
}

/// A failed fax's `error_code` (if any) and `error_message`.
type FaxError = (Option<String>, String);

#[derive(Clone, Debug)]
struct Fax {
    sid: String,
    status: String,
    to: String,
    from: String,
    media_url: String,
    num_pages: Option<i64>,
    created: String,
    updated: String,
    callback: Option<String>,
    error: Option<FaxError>,
}

impl Fax {
    fn to_json(&self, account: &str) -> Value {
        let path = format!("/api/laml/2010-04-01/Accounts/{account}/Faxes/{}", self.sid);
        let (code, message) = match &self.error {
            Some((code, message)) => (json!(code), json!(message)),
            None => (Value::Null, Value::Null),
        };
        json!({
            "account_sid": account, "api_version": "v1", "date_created": self.created,
            "date_updated": self.updated, "direction": "outbound", "from": self.from, "to": self.to,
            "media_url": self.media_url, "media_sid": format!("ME{}", &self.sid[2..]),
            "num_pages": self.num_pages.map(|n| n.to_string()), "price": null, "price_unit": "USD",
            "quality": "fine", "sid": self.sid, "status": self.status,
            "duration": if self.status == "delivered" { 30 } else { 0 },
            "error_code": code, "error_message": message,
            "links": {"media": format!("{path}/Media")}, "url": path,
        })
    }

    fn done(&self) -> bool {
        matches!(self.status.as_str(), "delivered" | "no-answer" | "busy" | "failed" | "canceled")
    }
}

#[derive(Default)]
struct FakeState {
    next: u64,
    faxes: BTreeMap<String, Fax>,
    injections: VecDeque<Injection>,
    submissions: usize,
    callbacks: Vec<SentCallback>,
    content_fetches: Vec<(String, bool)>,
    requests: Vec<(String, Vec<(String, String)>)>,
}

struct Inner {
    config: SignalWireFakeConfig,
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
pub struct SignalWireFake {
    inner: Arc<Inner>,
    /// The space's base URL, e.g. `http://127.0.0.1:PORT/` (stands for `https://<space>.signalwire.com/`).
    pub base_url: String,
}

impl SignalWireFake {
    /// Starts a fake on a free loopback port.
    pub async fn start(config: SignalWireFakeConfig) -> std::io::Result<SignalWireFake> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base_url = format!("http://{}/", listener.local_addr()?);
        let inner = Arc::new(Inner {
            config,
            state: Mutex::new(FakeState::default()),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(std::io::Error::other)?,
        });
        let app = Router::new()
            .route("/api/laml/2010-04-01/Accounts/{account}/Faxes.json", post(create))
            .route("/api/laml/2010-04-01/Accounts/{account}/Faxes", post(create))
            .route("/api/laml/2010-04-01/Accounts/{account}/Faxes/{sid}", get(fetch).post(update))
            .with_state(inner.clone());
        crate::tls::spawn_serve(listener, app, None);
        Ok(SignalWireFake { inner, base_url })
    }

    /// Queues a failure for the next request (or callback, for the webhook kinds).
    pub fn inject(&self, injection: Injection) {
        self.inner.lock().injections.push_back(injection);
    }

    /// How many `POST …/Faxes` created a fax.
    pub fn submissions(&self) -> usize {
        self.inner.lock().submissions
    }

    /// Status callbacks posted so far.
    pub fn callbacks(&self) -> Vec<SentCallback> {
        self.inner.lock().callbacks.clone()
    }

    /// `MediaUrl`s fetched so far, with whether the fetch gave a PDF.
    pub fn content_fetches(&self) -> Vec<(String, bool)> {
        self.inner.lock().content_fetches.clone()
    }

    /// The form fields of every accepted `POST …/Faxes` and fax update, with the path they went to.
    pub fn requests(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.inner.lock().requests.clone()
    }

    /// The fax object as `GET …/Faxes/{sid}` would return it.
    pub fn fax(&self, sid: &str) -> Option<Value> {
        let state = self.inner.lock();
        state.faxes.get(sid).map(|f| f.to_json(&self.inner.config.project_id))
    }

    /// The signature SignalWire would put on a callback to `url` with `fields` (for tests that replay one).
    pub fn sign(&self, url: &str, fields: &[(String, String)]) -> String {
        signature(self.inner.config.signing_key.as_bytes(), url, fields)
    }
}

/// Twilio-style signature: base64 HMAC-SHA1 over the URL followed by the parameters sorted by name, each
/// name followed by its value.
pub fn signature(key: &[u8], url: &str, fields: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut message = url.as_bytes().to_vec();
    for (name, value) in sorted {
        message.extend_from_slice(name.as_bytes());
        message.extend_from_slice(value.as_bytes());
    }
    // HMAC takes keys of any length.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(key) else { return String::new() };
    mac.update(&message);
    STANDARD.encode(mac.finalize().into_bytes())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An error in the Twilio-compatible shape.
fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({"code": code, "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status.as_u16()});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Injected failures first (they stand for what happens before the API looks at a request: an outage, a
/// rate limit), then Basic auth and the path's account. Returns how long to stall before answering.
fn gate(inner: &Inner, headers: &HeaderMap, account: &str) -> Result<Option<Duration>, Box<Response>> {
    let injection = crate::take_injection(&mut inner.lock().injections, false);
    match injection {
        Some(Injection::Status { code, retry_after }) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let (twilio, message) = match code {
                401 => (20003, "Authentication Error - invalid username"),
                429 => (20429, "Too Many Requests"),
                _ => (20500, "Internal Server Error"),
            };
            let mut response = error(status, twilio, message);
            crate::set_retry_after(&mut response, retry_after);
            return Err(Box::new(response));
        }
        Some(Injection::Stall(d)) => return authenticate(inner, headers, account).map(|()| Some(d)),
        _ => {}
    }
    authenticate(inner, headers, account).map(|()| None)
}

fn authenticate(inner: &Inner, headers: &HeaderMap, account: &str) -> Result<(), Box<Response>> {
    let expected = format!("{}:{}", inner.config.project_id, inner.config.api_token);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok());
    if given.as_deref() != Some(expected.as_bytes()) || account != inner.config.project_id {
        return Err(Box::new(error(StatusCode::UNAUTHORIZED, 20003, "Authentication Error - invalid username")));
    }
    Ok(())
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

async fn create(
    State(inner): State<Arc<Inner>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stall = match gate(&inner, &headers, &account) {
        Ok(stall) => stall,
        Err(response) => return *response,
    };
    let fields = form(&body);
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Some(to) = field("To").filter(|t| valid_e164(t)) else {
        return error(StatusCode::BAD_REQUEST, 21211, "The 'To' number is not a valid phone number.");
    };
    let Some(from) = field("From").filter(|f| valid_e164(f)) else {
        return error(StatusCode::BAD_REQUEST, 21603, "A 'From' phone number is required.");
    };
    let Some(media_url) = field("MediaUrl").filter(|u| u.starts_with("http://") || u.starts_with("https://")) else {
        return error(StatusCode::BAD_REQUEST, 21602, "A valid 'MediaUrl' is required.");
    };
    let fax = {
        let mut state = inner.lock();
        state.next += 1;
        state.submissions += 1;
        let sid = format!("FX{:06x}-da60-4998-90ad-{:012x}", state.next, state.next);
        let fax = Fax {
            sid: sid.clone(),
            status: "queued".into(),
            to,
            from,
            media_url,
            num_pages: None,
            created: now(),
            updated: now(),
            callback: field("StatusCallback"),
            error: None,
        };
        state.faxes.insert(sid, fax.clone());
        state.requests.push((format!("/Accounts/{account}/Faxes"), fields.clone()));
        fax
    };
    tokio::spawn(progress(inner.clone(), fax.sid.clone()));
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    let body = fax.to_json(&inner.config.project_id);
    (StatusCode::CREATED, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn sid_of(path_sid: &str) -> &str {
    path_sid.strip_suffix(".json").unwrap_or(path_sid)
}

async fn fetch(
    State(inner): State<Arc<Inner>>,
    Path((account, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match gate(&inner, &headers, &account) {
        Ok(Some(d)) => tokio::time::sleep(d).await,
        Ok(None) => {}
        Err(response) => return *response,
    }
    let fax = inner.lock().faxes.get(sid_of(&sid)).map(|f| f.to_json(&inner.config.project_id));
    match fax {
        Some(f) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], f.to_string()).into_response(),
        None => error(StatusCode::NOT_FOUND, 20404, "The requested resource was not found"),
    }
}

async fn update(
    State(inner): State<Arc<Inner>>,
    Path((account, sid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match gate(&inner, &headers, &account) {
        Ok(Some(d)) => tokio::time::sleep(d).await,
        Ok(None) => {}
        Err(response) => return *response,
    }
    let fields = form(&body);
    if !fields.iter().any(|(k, v)| k == "Status" && v == "canceled") {
        return error(StatusCode::BAD_REQUEST, 20001, "Status may only be updated to canceled.");
    }
    let fax = {
        let mut state = inner.lock();
        state.requests.push((format!("/Accounts/{account}/Faxes/{}", sid_of(&sid)), fields.clone()));
        let Some(fax) = state.faxes.get_mut(sid_of(&sid)) else {
            return error(StatusCode::NOT_FOUND, 20404, "The requested resource was not found");
        };
        // "Updating to canceled may fail if the status has already begun transmission."
        if fax.done() || fax.status == "sending" {
            return error(StatusCode::BAD_REQUEST, 20001, "The fax can no longer be canceled.");
        }
        fax.status = "canceled".into();
        fax.updated = now();
        fax.clone()
    };
    let inner2 = inner.clone();
    let fax2 = fax.clone();
    tokio::spawn(async move { deliver_callback(&inner2, &fax2).await });
    let body = fax.to_json(&inner.config.project_id);
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn outcome(to: &str) -> Option<(&'static str, Option<FaxError>)> {
    match to {
        "+15550000017" => Some(("busy", None)),
        "+15550000016" => Some(("no-answer", None)),
        "+15550000010" => Some(("failed", Some((None, "Fax negotiation with the receiving machine failed".into())))),
        _ => None,
    }
}

/// Moves a fax on; stops when it was canceled meanwhile.
fn set(inner: &Inner, sid: &str, change: impl FnOnce(&mut Fax)) -> Option<Fax> {
    let mut state = inner.lock();
    let fax = state.faxes.get_mut(sid)?;
    if fax.done() {
        return None;
    }
    change(fax);
    fax.updated = now();
    Some(fax.clone())
}

async fn progress(inner: Arc<Inner>, sid: String) {
    let step = inner.config.step;
    tokio::time::sleep(step).await;
    let Some(fax) = set(&inner, &sid, |f| f.status = "processing".into()) else { return };
    // The media is fetched and converted before dialling.
    let fetched = match inner.http.get(&fax.media_url).send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.ok().filter(|b| b.starts_with(b"%PDF-")),
        _ => None,
    };
    inner.lock().content_fetches.push((fax.media_url.clone(), fetched.is_some()));
    let Some(pdf) = fetched else {
        tokio::time::sleep(step).await;
        if let Some(fax) = set(&inner, &sid, |f| {
            f.status = "failed".into();
            f.error = Some((None, "Unable to retrieve the media at MediaUrl".into()));
        }) {
            deliver_callback(&inner, &fax).await;
        }
        return;
    };
    tokio::time::sleep(step).await;
    if set(&inner, &sid, |f| f.status = "sending".into()).is_none() {
        return;
    }
    tokio::time::sleep(step).await;
    let Some(fax) = set(&inner, &sid, |f| match outcome(&f.to) {
        Some((status, error)) => {
            f.status = status.into();
            f.error = error;
        }
        None => {
            f.status = "delivered".into();
            f.num_pages = Some(pages(&pdf));
        }
    }) else {
        return;
    };
    deliver_callback(&inner, &fax).await;
}

/// Posts the `completed` status callback, signed with the signing key (or a wrong one, when injected).
async fn deliver_callback(inner: &Inner, fax: &Fax) {
    let Some(url) = fax.callback.clone() else { return };
    let injection = crate::take_injection(&mut inner.lock().injections, true);
    if injection == Some(Injection::DropWebhook) {
        return;
    }
    let account = inner.config.project_id.clone();
    let mut fields: Vec<(String, String)> = vec![
        ("AccountSid".into(), account),
        ("ApiVersion".into(), "v1".into()),
        ("FaxSid".into(), fax.sid.clone()),
        ("FaxStatus".into(), fax.status.clone()),
        ("From".into(), fax.from.clone()),
        ("To".into(), fax.to.clone()),
        ("OriginalMediaUrl".into(), fax.media_url.clone()),
    ];
    if let Some(n) = fax.num_pages {
        fields.push(("NumPages".into(), n.to_string()));
    }
    if let Some((code, message)) = &fax.error {
        if let Some(code) = code {
            fields.push(("ErrorCode".into(), code.clone()));
        }
        fields.push(("ErrorMessage".into(), message.clone()));
    }
    let key = if injection == Some(Injection::WrongSignature) {
        b"not-the-signing-key".to_vec()
    } else {
        inner.config.signing_key.as_bytes().to_vec()
    };
    let signature = signature(&key, &url, &fields);
    let body = {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &fields {
            body.append_pair(k, v);
        }
        body.finish()
    };
    let answered = match inner
        .http
        .post(&url)
        .header(SIGNATURE_HEADER, &signature)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(e) => {
            tracing::debug!(error = %e, "fake signalwire: callback delivery failed");
            0
        }
    };
    inner.lock().callbacks.push(SentCallback {
        url,
        fax_sid: fax.sid.clone(),
        status: fax.status.clone(),
        fields,
        signature,
        answered,
    });
}
