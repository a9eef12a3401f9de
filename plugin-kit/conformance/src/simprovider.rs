//! The simulated provider: a small REST fax API on loopback that the conformance suite runs manifest plugins
//! against (the skeleton from `faxbot plugin new --kind manifest` speaks it). Its behaviour follows the
//! conformance numbers ([`faxbot_contract::sidecar::scenario`]), so every branch a plugin must map is
//! reachable by choosing a destination.
//!
//! The API (documented for manifest authors in docs/plugins.md, "The simulated provider"):
//! - `Authorization: Bearer <apiKey>` on every call, else 401 `{"message"}`.
//! - `POST /v1/faxes`, multipart: `to`, `reference` (the idempotency key), `file` (the PDF, required) →
//!   200 `{"id","status":"in_progress"}`; 422 `{"message"}` for a refused destination; 503 with
//!   `Retry-After: 1` when busy; 400 without a file.
//! - `GET /v1/faxes/{id}` → `{"id","status","reason"}`: the final state from the first read on
//!   (`delivered`, or `failed` with a reason); 404 for an unknown id.
//! - `GET /v1/faxes?reference=<key>` → `{"faxes":[…]}`: the faxes an earlier submission created.
//! - `POST /v1/faxes/{id}/cancel` → the fax, `failed` with reason `cancelled` unless it had finished.
//! - Callbacks it would send are signed `X-Sim-Signature: hex(HMAC-SHA256(webhookSecret, body))` over a JSON
//!   body `{"providerId","status"}` (the kits' simulated providers send the same); [`SimProvider::sign`] makes one for the suite's authentic-callback check.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use faxbot_contract::sidecar::scenario::{self, Outcome};
use serde_json::{Value, json};

/// A running simulated provider.
pub struct SimProvider {
    /// `http://127.0.0.1:<port>`.
    pub origin: String,
    /// The API key it accepts.
    pub api_key: String,
    /// The key of its callback signatures.
    pub webhook_secret: String,
    state: Arc<Sim>,
}

struct Sim {
    api_key: String,
    faxes: Mutex<BTreeMap<String, Fax>>,
}

#[derive(Clone)]
struct Fax {
    id: String,
    reference: String,
    outcome: Outcome,
    status: &'static str,
    reason: Option<String>,
}

impl Fax {
    fn json(&self) -> Value {
        json!({"id": self.id, "status": self.status, "reason": self.reason})
    }
}

impl SimProvider {
    /// Starts one on a free loopback port.
    pub async fn start() -> std::io::Result<SimProvider> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let api_key = format!("sim-key-{}", hex::encode(rand::random::<[u8; 12]>()));
        let webhook_secret = format!("sim-secret-{}", hex::encode(rand::random::<[u8; 12]>()));
        let state = Arc::new(Sim { api_key: api_key.clone(), faxes: Mutex::new(BTreeMap::new()) });
        let app = Router::new()
            .route("/v1/faxes", post(create).get(list))
            .route("/v1/faxes/{id}", get(read))
            .route("/v1/faxes/{id}/cancel", post(cancel))
            .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SimProvider { origin, api_key, webhook_secret, state })
    }

    /// A callback about fax `id` as the provider would send it: body and `X-Sim-Signature`.
    pub fn sign(&self, id: &str, status: &str) -> (Vec<u8>, String) {
        let body = json!({"providerId": id, "status": status}).to_string().into_bytes();
        (body.clone(), faxbot_plugin_kit::sign(&self.webhook_secret, &body))
    }

    /// How many faxes it holds (each submission that was not a repeat).
    pub fn faxes(&self) -> usize {
        self.state.faxes.lock().map(|f| f.len()).unwrap_or(0)
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({"message": text}))).into_response()
}

fn refused(sim: &Sim, headers: &HeaderMap) -> Option<Response> {
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| k == sim.api_key);
    (!ok).then(|| message(StatusCode::UNAUTHORIZED, "invalid API key"))
}

async fn create(State(sim): State<Arc<Sim>>, headers: HeaderMap, mut form: Multipart) -> Response {
    if let Some(r) = refused(&sim, &headers) {
        return r;
    }
    let (mut to, mut reference, mut file) = (None, String::new(), None);
    while let Ok(Some(field)) = form.next_field().await {
        match field.name().unwrap_or("") {
            "to" => to = field.text().await.ok(),
            "reference" => reference = field.text().await.unwrap_or_default(),
            "file" => file = field.bytes().await.ok(),
            _ => {}
        }
    }
    let Some(to) = to.filter(|t| t.starts_with('+') && t.len() > 7) else {
        return message(StatusCode::UNPROCESSABLE_ENTITY, "invalid destination");
    };
    if !file.is_some_and(|f| f.starts_with(b"%PDF")) {
        return message(StatusCode::BAD_REQUEST, "file must be a PDF");
    }
    let outcome = scenario::outcome(&to);
    match outcome {
        Outcome::Rejected => return message(StatusCode::UNPROCESSABLE_ENTITY, "the provider refused the destination"),
        Outcome::Busy => {
            let mut r = message(StatusCode::SERVICE_UNAVAILABLE, "all lines busy, try again later");
            r.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
            return r;
        }
        _ => {}
    }
    let Ok(mut faxes) = sim.faxes.lock() else { return message(StatusCode::INTERNAL_SERVER_ERROR, "poisoned") };
    let id = format!("sim-{}", faxes.len() + 1);
    let fax = Fax { id: id.clone(), reference, outcome, status: "in_progress", reason: None };
    let answer = fax.json();
    faxes.insert(id, fax);
    axum::Json(answer).into_response()
}

async fn list(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = refused(&sim, &headers) {
        return r;
    }
    let reference = query.get("reference").cloned().unwrap_or_default();
    let Ok(faxes) = sim.faxes.lock() else { return message(StatusCode::INTERNAL_SERVER_ERROR, "poisoned") };
    let found: Vec<Value> =
        faxes.values().filter(|f| !reference.is_empty() && f.reference == reference).map(Fax::json).collect();
    axum::Json(json!({"faxes": found})).into_response()
}

async fn read(State(sim): State<Arc<Sim>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = refused(&sim, &headers) {
        return r;
    }
    let Ok(mut faxes) = sim.faxes.lock() else { return message(StatusCode::INTERNAL_SERVER_ERROR, "poisoned") };
    let Some(fax) = faxes.get_mut(&id) else { return message(StatusCode::NOT_FOUND, "no such fax") };
    if fax.status == "in_progress" {
        if fax.outcome == Outcome::Fails {
            fax.status = "failed";
            fax.reason = Some("no answer from the receiving fax machine".into());
        } else {
            fax.status = "delivered";
        }
    }
    axum::Json(fax.json()).into_response()
}

async fn cancel(State(sim): State<Arc<Sim>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = refused(&sim, &headers) {
        return r;
    }
    let Ok(mut faxes) = sim.faxes.lock() else { return message(StatusCode::INTERNAL_SERVER_ERROR, "poisoned") };
    let Some(fax) = faxes.get_mut(&id) else { return message(StatusCode::NOT_FOUND, "no such fax") };
    if fax.status == "in_progress" {
        fax.status = "failed";
        fax.reason = Some("cancelled".into());
    }
    axum::Json(fax.json()).into_response()
}
