//! The Phaxio fake behaves like Phaxio: envelope, auth, validation, status progression, signed webhooks that
//! the shared verifier accepts (and rejects when the injection says so), and error injection.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Multipart, State};
use axum::http::HeaderMap;
use axum::routing::post;
use faxbot_fakes::phaxio::{Injection, PhaxioFake, PhaxioFakeConfig};
use serde_json::Value;

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >> endobj\n2 0 obj << /Type /Page >> endobj\n3 0 obj << /Type /Page >> endobj\n%%EOF\n";

/// One received webhook: its signature header and its form fields.
type Hook = (Option<String>, Vec<(String, String)>);

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Hook>>>);

async fn receiver() -> (String, Received) {
    let received = Received::default();
    async fn hook(State(r): State<Received>, headers: HeaderMap, mut form: Multipart) -> &'static str {
        let signature = headers.get("x-phaxio-signature").and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut fields = Vec::new();
        while let Ok(Some(f)) = form.next_field().await {
            let name = f.name().unwrap_or("").to_string();
            fields.push((name, f.text().await.unwrap()));
        }
        r.0.lock().unwrap().push((signature, fields));
        "ok"
    }
    let app = Router::new().route("/phaxio/callback", post(hook)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/phaxio/callback?job_id=abc123", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn send(fake: &PhaxioFake, to: &str, callback: &str, auth: (&str, &str)) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("to", to.to_string())
        .text("callback_url", callback.to_string())
        .text("tag[job]", "abc123")
        .part(
            "file",
            reqwest::multipart::Part::bytes(PDF.to_vec()).file_name("fax.pdf").mime_str("application/pdf").unwrap(),
        );
    client()
        .post(format!("{}faxes", fake.base_url))
        .basic_auth(auth.0, Some(auth.1))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn wait_status(fake: &PhaxioFake, id: i64, terminal: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fax = fake.fax(id).unwrap();
        if terminal.contains(&fax["status"].as_str().unwrap()) {
            return fax;
        }
        assert!(Instant::now() < deadline, "fax {id} never reached {terminal:?}: {fax}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fields_ref(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test]
async fn a_fax_progresses_to_success_and_the_signed_webhook_verifies() {
    let config = PhaxioFakeConfig { step: Duration::from_millis(30), ..Default::default() };
    let fake = PhaxioFake::start(config.clone()).await.unwrap();
    let (callback, received) = receiver().await;

    let r = send(&fake, "+15551234567", &callback, (&config.api_key, &config.api_secret)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Fax queued for sending");
    let id = body["data"]["id"].as_i64().unwrap();
    assert_eq!(fake.fax(id).unwrap()["status"], "queued");

    // Polling through the API sees the progression; the terminal object has the real fields.
    let fax = wait_status(&fake, id, &["success"]).await;
    assert_eq!(fax["num_pages"], 2);
    assert_eq!(fax["recipients"][0]["bitrate"], 14400);
    assert_eq!(fax["tags"]["job"], "abc123");
    let got: Value = client()
        .get(format!("{}faxes/{id}", fake.base_url))
        .basic_auth(&config.api_key, Some(&config.api_secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["message"], "Metadata for fax");
    assert_eq!(got["data"]["status"], "success");

    // The webhook: multipart with `fax` as a JSON string, signed over the callback URL as submitted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.0.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no webhook");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (signature, fields) = received.0.lock().unwrap()[0].clone();
    let field = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(field("event_type"), "fax_completed");
    assert_eq!(field("success"), "true");
    let fax: Value = serde_json::from_str(&field("fax")).unwrap();
    assert_eq!(fax["id"], id);
    faxbot_webhooks::phaxio::verify(
        config.webhook_token.as_bytes(),
        &callback,
        &fields_ref(&fields),
        &[],
        signature.as_deref(),
    )
    .unwrap();
    assert_eq!(fake.webhooks()[0].answered, 200);
    assert_eq!(fake.submissions(), 1);
}

#[tokio::test]
async fn magic_numbers_fail_in_transmission_with_phaxio_error_fields() {
    let config = PhaxioFakeConfig { step: Duration::from_millis(10), ..Default::default() };
    let fake = PhaxioFake::start(config.clone()).await.unwrap();
    let (callback, _) = receiver().await;
    for (number, error_type, error_id) in [("+15550000017", "lineError", 17), ("+15550000010", "faxError", 10)] {
        let body: Value =
            send(&fake, number, &callback, (&config.api_key, &config.api_secret)).await.json().await.unwrap();
        let fax = wait_status(&fake, body["data"]["id"].as_i64().unwrap(), &["failure"]).await;
        assert_eq!(fax["error_type"], error_type);
        assert_eq!(fax["error_id"], error_id);
        assert_eq!(fax["recipients"][0]["status"], "failure");
    }
}

#[tokio::test]
async fn auth_validation_and_injected_errors_answer_like_phaxio() {
    let config = PhaxioFakeConfig::default();
    let fake = PhaxioFake::start(config.clone()).await.unwrap();
    let (callback, received) = receiver().await;
    let auth = (config.api_key.as_str(), config.api_secret.as_str());

    let r = send(&fake, "+15551234567", &callback, ("fake-api-key", "wrong")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["success"], false);
    let r = send(&fake, "5551234567", &callback, auth).await;
    assert_eq!(r.status(), 422);
    let r = client()
        .post(format!("{}faxes", fake.base_url))
        .basic_auth(auth.0, Some(auth.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("to=%2B15551234567")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "no file and no content_url");
    let r =
        client().get(format!("{}faxes/999999", fake.base_url)).basic_auth(auth.0, Some(auth.1)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["message"], "Not found");
    assert_eq!(fake.submissions(), 0, "refused requests create nothing");

    fake.inject(Injection::Status { code: 429, retry_after: Some(2) });
    fake.inject(Injection::Status { code: 429, retry_after: None });
    fake.inject(Injection::Status { code: 503, retry_after: None });
    let r = send(&fake, "+15551234567", &callback, auth).await;
    assert_eq!(
        (r.status().as_u16(), r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string())),
        (429, Some("2".into()))
    );
    let r = send(&fake, "+15551234567", &callback, auth).await;
    assert_eq!((r.status().as_u16(), r.headers().get("retry-after").is_none()), (429, true));
    assert_eq!(send(&fake, "+15551234567", &callback, auth).await.status(), 503);
    assert_eq!(fake.submissions(), 0);

    // A stalled request times out at the client but the fax exists: the ambiguous case a plugin must handle.
    fake.inject(Injection::Stall(Duration::from_millis(600)));
    let timed_out =
        tokio::time::timeout(Duration::from_millis(200), send(&fake, "+15551234567", &callback, auth)).await;
    assert!(timed_out.is_err());
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.submissions() != 1 {
        assert!(Instant::now() < deadline, "the stalled request never created its fax");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A webhook signed with the wrong token does not verify. (Webhook injections apply to the next webhook
    // sent, so first let the stalled fax's webhook go out.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.webhooks().is_empty() {
        assert!(Instant::now() < deadline, "the stalled fax's webhook never went out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.inject(Injection::WrongSignature);
    let body: Value = send(&fake, "+15551234567", &callback, auth).await.json().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hooks = received.0.lock().unwrap().clone();
        if let Some((signature, fields)) = hooks
            .iter()
            .find(|(_, f)| f.iter().any(|(k, v)| k == "fax" && v.contains(&format!("\"id\":{}", body["data"]["id"]))))
        {
            let verdict = faxbot_webhooks::phaxio::verify(
                config.webhook_token.as_bytes(),
                &callback,
                &fields_ref(fields),
                &[],
                signature.as_deref(),
            );
            assert_eq!(verdict, Err(faxbot_webhooks::Rejection::Mismatch));
            break;
        }
        assert!(Instant::now() < deadline, "no webhook for the wrong-signature fax");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cancel_ends_a_running_fax_as_failure_and_a_finished_one_is_refused() {
    let config = PhaxioFakeConfig { step: Duration::from_millis(300), ..Default::default() };
    let fake = PhaxioFake::start(config.clone()).await.unwrap();
    let (callback, _) = receiver().await;
    let auth = (config.api_key.as_str(), config.api_secret.as_str());
    let body: Value = send(&fake, "+15551234567", &callback, auth).await.json().await.unwrap();
    let id = body["data"]["id"].as_i64().unwrap();
    let cancel =
        || client().post(format!("{}faxes/{id}/cancel", fake.base_url)).basic_auth(auth.0, Some(auth.1)).send();
    let r = cancel().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["message"], "Fax cancellation scheduled successfully.");
    let fax = fake.fax(id).unwrap();
    assert_eq!(fax["status"], "failure");
    assert_eq!(fax["error_id"], 75);
    assert_eq!(cancel().await.unwrap().status(), 422);
}
