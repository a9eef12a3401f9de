//! The SignalWire fake behaves like SignalWire's LaML fax API: Basic auth with the project's id and token
//! (401 in the Twilio-compatible error shape otherwise, also for another project's path), 400 for a bad
//! number, the media fetched before dialling, the documented statuses, cancellation only before
//! transmission, and the completed callback signed Twilio-style with the signing key.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use base64::Engine;
use faxbot_fakes::Injection;
use faxbot_fakes::signalwire::{SignalWireFake, SignalWireFakeConfig};
use hmac::Mac;
use serde_json::Value;

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n";

/// One received callback: signature header and raw body.
type Hook = (Option<String>, Bytes);

/// Serves the PDF at `/doc.pdf` and records callbacks posted to `/hook`.
async fn receiver() -> (String, Arc<Mutex<Vec<Hook>>>) {
    let hooks: Arc<Mutex<Vec<Hook>>> = Arc::default();
    let h = hooks.clone();
    let app = Router::new().route("/doc.pdf", get(|| async { PDF })).route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let h = h.clone();
            async move {
                let sig = headers.get("x-signalwire-signature").and_then(|v| v.to_str().ok()).map(str::to_string);
                h.lock().unwrap().push((sig, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hooks)
}

async fn start(step: Duration) -> (SignalWireFake, SignalWireFakeConfig) {
    let config = SignalWireFakeConfig { step, ..Default::default() };
    (SignalWireFake::start(config.clone()).await.unwrap(), config)
}

fn faxes_url(fake: &SignalWireFake, project: &str) -> String {
    format!("{}api/laml/2010-04-01/Accounts/{project}/Faxes.json", fake.base_url)
}

async fn send(fake: &SignalWireFake, config: &SignalWireFakeConfig, fields: &[(&str, &str)]) -> (u16, Value) {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let r = reqwest::Client::new()
        .post(faxes_url(fake, &config.project_id))
        .basic_auth(&config.project_id, Some(&config.api_token))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn status(fake: &SignalWireFake, config: &SignalWireFakeConfig, sid: &str) -> Value {
    let url = format!("{}api/laml/2010-04-01/Accounts/{}/Faxes/{sid}.json", fake.base_url, config.project_id);
    let r = reqwest::Client::new().get(url).basic_auth(&config.project_id, Some(&config.api_token)).send().await;
    r.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn refusals_have_the_documented_shape() {
    let (fake, config) = start(Duration::from_millis(20)).await;
    let client = reqwest::Client::new();
    // Wrong token, and the right token on another project's path.
    for (user, token, project) in [
        (config.project_id.as_str(), "wrong", config.project_id.as_str()),
        (config.project_id.as_str(), config.api_token.as_str(), "00000000-0000-0000-0000-000000000000"),
    ] {
        let r = client.post(faxes_url(&fake, project)).basic_auth(user, Some(token)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.unwrap();
        assert_eq!((body["code"].as_u64(), body["status"].as_u64()), (Some(20003), Some(401)), "{body}");
    }
    let (code, body) =
        send(&fake, &config, &[("To", "555-1234"), ("From", "+15550001111"), ("MediaUrl", "https://x/y.pdf")]).await;
    assert_eq!((code, body["code"].as_u64()), (400, Some(21211)), "{body}");
    let (code, body) = send(&fake, &config, &[("To", "+15551234567"), ("From", "+15550001111")]).await;
    assert_eq!((code, body["code"].as_u64()), (400, Some(21602)), "{body}");
    fake.inject(Injection::Status { code: 429, retry_after: Some(3) });
    let r = client
        .post(faxes_url(&fake, &config.project_id))
        .basic_auth(&config.project_id, Some(&config.api_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    assert_eq!(fake.submissions(), 0);
}

#[tokio::test]
async fn a_fax_is_fetched_sent_and_reported_by_a_signed_callback() {
    let (fake, config) = start(Duration::from_millis(20)).await;
    let (base, hooks) = receiver().await;
    let hook = format!("{base}/hook");
    let media = format!("{base}/doc.pdf");
    let fields = [("To", "+15551234567"), ("From", "+15550001111"), ("MediaUrl", &media), ("StatusCallback", &hook)];
    let (code, fax) = send(&fake, &config, &fields).await;
    assert_eq!(code, 201, "{fax}");
    assert_eq!(fax["status"], "queued");
    let sid = fax["sid"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while hooks.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no callback");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fax = status(&fake, &config, &sid).await;
    assert_eq!((fax["status"].as_str(), fax["num_pages"].as_str()), (Some("delivered"), Some("1")), "{fax}");
    assert_eq!(fake.content_fetches(), vec![(media.clone(), true)]);

    // The signature: base64 HMAC-SHA1 of the URL and the fields sorted by name, keyed with the signing key.
    let (signature, body) = hooks.lock().unwrap()[0].clone();
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    assert!(
        pairs.contains(&("FaxSid".into(), sid.clone())) && pairs.contains(&("FaxStatus".into(), "delivered".into()))
    );
    pairs.sort();
    let mut message = hook.clone();
    for (k, v) in &pairs {
        message.push_str(k);
        message.push_str(v);
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(config.signing_key.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(signature.as_deref(), Some(expected.as_str()));

    // Busy, and a media URL that cannot be fetched.
    let fields = [("To", "+15550000017"), ("From", "+15550001111"), ("MediaUrl", &media)];
    let (_, fax) = send(&fake, &config, &fields).await;
    let busy = fax["sid"].as_str().unwrap().to_string();
    let missing = format!("{base}/missing.pdf");
    let fields = [("To", "+15551234567"), ("From", "+15550001111"), ("MediaUrl", &missing)];
    let (_, fax) = send(&fake, &config, &fields).await;
    let unfetched = fax["sid"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&fake, &config, &busy).await["status"], "busy");
    let fax = status(&fake, &config, &unfetched).await;
    assert_eq!(fax["status"], "failed", "{fax}");
    assert!(fax["error_message"].as_str().unwrap().contains("MediaUrl"));
}

#[tokio::test]
async fn only_a_fax_not_yet_transmitting_can_be_canceled() {
    let (fake, config) = start(Duration::from_millis(300)).await;
    let (base, _) = receiver().await;
    let media = format!("{base}/doc.pdf");
    let (_, fax) =
        send(&fake, &config, &[("To", "+15551234567"), ("From", "+15550001111"), ("MediaUrl", &media)]).await;
    let sid = fax["sid"].as_str().unwrap().to_string();
    let url = format!("{}api/laml/2010-04-01/Accounts/{}/Faxes/{sid}.json", fake.base_url, config.project_id);
    let cancel = || {
        reqwest::Client::new()
            .post(&url)
            .basic_auth(&config.project_id, Some(&config.api_token))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("Status=canceled")
            .send()
    };
    let r = cancel().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "canceled");
    assert_eq!(cancel().await.unwrap().status(), 400, "a finished fax cannot be canceled");
}
