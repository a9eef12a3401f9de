//! The Telnyx fake behaves like Telnyx Programmable Fax v2: Bearer auth (401 in the `errors` shape), 422 for
//! missing parameters and numbers not in +E.164, the media fetched before dialling, the documented statuses
//! and `failure_reason`, cancellation, and webhooks signed with Ed25519 over `timestamp|body` that verify with
//! the account's public key.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use faxbot_contract::manifest::signature::verify_bytes;
use faxbot_fakes::Injection;
use faxbot_fakes::telnyx::{TelnyxFake, TelnyxFakeConfig};
use serde_json::{Value, json};

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n";

/// One received webhook: timestamp, signature, raw body.
type Hook = (String, String, Bytes);

/// Serves the PDF at `/doc.pdf` and records webhooks posted to `/hook`.
async fn receiver() -> (String, Arc<Mutex<Vec<Hook>>>) {
    let hooks: Arc<Mutex<Vec<Hook>>> = Arc::default();
    let h = hooks.clone();
    let app = Router::new().route("/doc.pdf", get(|| async { PDF })).route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let h = h.clone();
            async move {
                let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                h.lock().unwrap().push((header("telnyx-timestamp"), header("telnyx-signature-ed25519"), body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hooks)
}

async fn start(step: Duration) -> (TelnyxFake, TelnyxFakeConfig) {
    let config = TelnyxFakeConfig { step, ..Default::default() };
    (TelnyxFake::start(config.clone()).await.unwrap(), config)
}

async fn send(fake: &TelnyxFake, key: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}v2/faxes", fake.base_url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn view(fake: &TelnyxFake, key: &str, id: &str) -> Value {
    let r = reqwest::Client::new().get(format!("{}v2/faxes/{id}", fake.base_url)).bearer_auth(key).send().await;
    r.unwrap().json::<Value>().await.unwrap()["data"].clone()
}

#[tokio::test]
async fn refusals_have_the_documented_shape() {
    let (fake, config) = start(Duration::from_millis(20)).await;
    let good =
        json!({"connection_id": "1", "to": "+15551234567", "from": "+15550001111", "media_url": "https://x/y.pdf"});
    let (code, body) = send(&fake, "wrong-key", good.clone()).await;
    assert_eq!((code, body["errors"][0]["code"].as_str()), (401, Some("10009")), "{body}");
    let mut bad = good.clone();
    bad["to"] = "555-1234".into();
    let (code, body) = send(&fake, &config.api_key, bad).await;
    assert_eq!((code, body["errors"][0]["code"].as_str()), (422, Some("10016")), "{body}");
    assert_eq!(body["errors"][0]["source"]["pointer"], "/to");
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("connection_id");
    let (code, body) = send(&fake, &config.api_key, missing).await;
    assert_eq!((code, body["errors"][0]["code"].as_str()), (422, Some("10004")), "{body}");
    fake.inject(Injection::Status { code: 429, retry_after: Some(2) });
    let r = reqwest::Client::new()
        .post(format!("{}v2/faxes", fake.base_url))
        .bearer_auth(&config.api_key)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    let r = reqwest::Client::new().get(format!("{}v2/faxes/nope", fake.base_url)).bearer_auth(&config.api_key);
    assert_eq!(r.send().await.unwrap().status(), 404);
    assert_eq!(fake.submissions(), 0);
}

#[tokio::test]
async fn a_fax_is_fetched_sent_and_reported_by_signed_webhooks() {
    let (fake, config) = start(Duration::from_millis(20)).await;
    let (base, hooks) = receiver().await;
    let body = json!({"connection_id": "1", "to": "+15551234567", "from": "+15550001111",
        "media_url": format!("{base}/doc.pdf"), "webhook_url": format!("{base}/hook")});
    let (code, fax) = send(&fake, &config.api_key, body.clone()).await;
    assert_eq!(code, 202, "{fax}");
    assert_eq!(fax["data"]["status"], "queued");
    let id = fax["data"]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while hooks.lock().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "webhooks missing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fax = view(&fake, &config.api_key, &id).await;
    assert_eq!((fax["status"].as_str(), &fax["failure_reason"]), (Some("delivered"), &Value::Null), "{fax}");
    let events: Vec<String> = hooks
        .lock()
        .unwrap()
        .iter()
        .map(|(timestamp, signature, body)| {
            let message = [timestamp.as_bytes(), b"|", body].concat();
            assert_eq!(verify_bytes(&message, signature, &fake.public_key()), Ok(()), "signed over timestamp|body");
            let v: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["data"]["payload"]["fax_id"], id.as_str());
            v["data"]["event_type"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(events, ["fax.queued", "fax.media.processed", "fax.sending.started", "fax.delivered"]);

    // Busy, and a media URL that cannot be fetched: failed with the documented failure reasons.
    let mut busy = body.clone();
    busy["to"] = "+15550000017".into();
    let busy = send(&fake, &config.api_key, busy).await.1["data"]["id"].as_str().unwrap().to_string();
    let mut missing = body.clone();
    missing["media_url"] = format!("{base}/missing.pdf").into();
    let missing = send(&fake, &config.api_key, missing).await.1["data"]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(view(&fake, &config.api_key, &busy).await["failure_reason"], "user_busy");
    assert_eq!(view(&fake, &config.api_key, &missing).await["failure_reason"], "file_download_failed");
}

#[tokio::test]
async fn a_fax_in_progress_can_be_cancelled_once() {
    let (fake, config) = start(Duration::from_millis(300)).await;
    let (base, _) = receiver().await;
    let body = json!({"connection_id": "1", "to": "+15551234567", "from": "+15550001111",
        "media_url": format!("{base}/doc.pdf")});
    let id = send(&fake, &config.api_key, body).await.1["data"]["id"].as_str().unwrap().to_string();
    let cancel = || {
        reqwest::Client::new()
            .post(format!("{}v2/faxes/{id}/actions/cancel", fake.base_url))
            .bearer_auth(&config.api_key)
            .send()
    };
    let r = cancel().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["result"], "ok");
    assert_eq!(cancel().await.unwrap().status(), 422, "a finished fax cannot be cancelled");
    assert_eq!(view(&fake, &config.api_key, &id).await["status"], "failed");
}
