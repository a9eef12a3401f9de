//! The Sinch fake behaves like Sinch Fax v3: OAuth2 client credentials with expiring tokens, 401 with an
//! empty body for any wrong credential or project, the `Error` shape with field violations, the status
//! progression, and FAX_COMPLETED webhooks (multipart or JSON) authenticated only by Basic credentials
//! embedded in the callback URL.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use faxbot_fakes::Injection;
use faxbot_fakes::sinch::{SinchFake, SinchFakeConfig};
use serde_json::{Value, json};

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n";

/// One received webhook: Authorization header, content type, raw body.
type Hook = (Option<String>, String, Bytes);

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Hook>>>);

async fn receiver() -> (String, Received) {
    let received = Received::default();
    let r = received.clone();
    let app = Router::new().route(
        "/sinch/fax",
        post(move |headers: HeaderMap, body: Bytes| {
            let r = r.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
                let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                r.0.lock().unwrap().push((auth, ct, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://hook-user:hook-pass@{addr}/sinch/fax"), received)
}

async fn token(fake: &SinchFake, config: &SinchFakeConfig) -> String {
    let r = reqwest::Client::new()
        .post(&fake.token_url)
        .basic_auth(&config.key_id, Some(&config.key_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_string()
}

fn faxes_url(fake: &SinchFake, project: &str) -> String {
    format!("{}/v3/projects/{project}/faxes", fake.base_url)
}

async fn wait_hooks(received: &Received, n: usize) -> Vec<Hook> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hooks = received.0.lock().unwrap().clone();
        if hooks.len() >= n {
            return hooks;
        }
        assert!(Instant::now() < deadline, "expected {n} webhooks, got {}", hooks.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn oauth_send_progress_and_basic_authenticated_webhooks() {
    let config = SinchFakeConfig { step: Duration::from_millis(30), ..Default::default() };
    let fake = SinchFake::start(config.clone()).await.unwrap();
    let (callback, received) = receiver().await;
    let bearer = token(&fake, &config).await;

    // Multipart send with a Bearer token; webhook as multipart.
    let form = reqwest::multipart::Form::new()
        .text("to", "+19898989898")
        .text("callbackUrl", callback.clone())
        .text("labels[job]", "abc123")
        .part("file", reqwest::multipart::Part::bytes(PDF.to_vec()).file_name("fax.pdf"));
    let r = reqwest::Client::new()
        .post(faxes_url(&fake, &config.project_id))
        .bearer_auth(&bearer)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fax: Value = r.json().await.unwrap();
    assert_eq!(fax["status"], "QUEUED");
    assert_eq!(fax["direction"], "OUTBOUND");
    assert_eq!(fax["id"].as_str().unwrap().len(), 26, "ULID-shaped id");
    assert!(fax["callbackUrl"].as_str().unwrap().contains("***:***@"), "credentials masked on read");

    let hooks = wait_hooks(&received, 1).await;
    let (auth, content_type, body) = &hooks[0];
    faxbot_webhooks::basic::verify("hook-user", "hook-pass", auth.as_deref()).unwrap();
    assert!(content_type.starts_with("multipart/form-data"), "{content_type}");
    let text = String::from_utf8_lossy(body);
    assert!(
        text.contains("FAX_COMPLETED") && text.contains("application/json") && text.contains("\"COMPLETED\""),
        "{text}"
    );
    let id = fax["id"].as_str().unwrap();
    let done = fake.fax(id).unwrap();
    assert_eq!((done["status"].as_str(), done["numberOfPages"].as_i64()), (Some("COMPLETED"), Some(1)));
    assert_eq!(done["price"]["amount"], "0.0700");

    // JSON send with Basic auth; JSON webhook; a magic number fails with Sinch's error fields.
    let r = reqwest::Client::new()
        .post(faxes_url(&fake, &config.project_id))
        .basic_auth(&config.key_id, Some(&config.key_secret))
        .json(&json!({"to": "+15550000017", "callbackUrl": callback, "callbackUrlContentType": "application/json",
            "files": [{"file": base64_pdf(), "fileType": "PDF"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hooks = wait_hooks(&received, 2).await;
    let (_, content_type, body) = &hooks[1];
    assert!(content_type.starts_with("application/json"));
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["event"], "FAX_COMPLETED");
    assert_eq!(event["fax"]["status"], "FAILURE");
    assert_eq!(
        (event["fax"]["errorType"].as_str(), event["fax"]["errorCode"].as_i64()),
        (Some("CALL_ERROR"), Some(17))
    );
    assert_eq!(fake.tokens_issued(), 1);
    assert_eq!(fake.submissions(), 2);
}

fn base64_pdf() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(PDF)
}

#[tokio::test]
async fn wrong_credentials_projects_and_expired_tokens_get_an_empty_401() {
    let config = SinchFakeConfig { token_ttl: Duration::from_millis(300), ..Default::default() };
    let fake = SinchFake::start(config.clone()).await.unwrap();
    let client = reqwest::Client::new();
    let get = |url: String| client.get(url);
    let fax_url = format!("{}/does-not-matter", faxes_url(&fake, &config.project_id));

    let r = get(fax_url.clone()).basic_auth(&config.key_id, Some("wrong")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.bytes().await.unwrap().is_empty(), "Sinch answers 401 with an empty body");
    let r = get(format!("{}/x", faxes_url(&fake, "other-project")))
        .basic_auth(&config.key_id, Some(&config.key_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a wrong project id is a 401 too");
    let r = client
        .post(&fake.token_url)
        .basic_auth(&config.key_id, Some("wrong"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let bearer = token(&fake, &config).await;
    assert_eq!(
        get(fax_url.clone()).bearer_auth(&bearer).send().await.unwrap().status(),
        404,
        "valid token: unknown fax"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(fax_url).bearer_auth(&bearer).send().await.unwrap().status(), 401, "expired token");
}

#[tokio::test]
async fn validation_errors_injection_and_wrong_webhook_credentials() {
    let config = SinchFakeConfig { step: Duration::from_millis(20), ..Default::default() };
    let fake = SinchFake::start(config.clone()).await.unwrap();
    let (callback, received) = receiver().await;
    let send = |body: Value| {
        reqwest::Client::new()
            .post(faxes_url(&fake, &config.project_id))
            .basic_auth(&config.key_id, Some(&config.key_secret))
            .json(&body)
            .send()
    };

    let r = send(json!({"to": "5551234567", "maxRetries": 9, "headerText": "x".repeat(51)})).await.unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["status"], "INVALID_ARGUMENT");
    let fields: Vec<&str> =
        err["details"][0]["fieldViolations"].as_array().unwrap().iter().map(|v| v["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["to", "file", "maxRetries", "headerText"]);

    let r = reqwest::Client::new()
        .get(format!("{}/01HUNKNOWN", faxes_url(&fake, &config.project_id)))
        .basic_auth(&config.key_id, Some(&config.key_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "NOT_FOUND");
    let r = reqwest::Client::new()
        .post(format!("{}/01HUNKNOWN/cancel", faxes_url(&fake, &config.project_id)))
        .basic_auth(&config.key_id, Some(&config.key_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "v3 has no cancel route");

    fake.inject(Injection::Status { code: 429, retry_after: Some(3) });
    fake.inject(Injection::Status { code: 503, retry_after: None });
    let ok = json!({"to": "+15551234567", "contentUrl": "https://example.test/a.pdf", "callbackUrl": callback});
    let r = send(ok.clone()).await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["retry-after"].to_str().unwrap()), (429, "3"));
    assert_eq!(send(ok.clone()).await.unwrap().status(), 503);
    assert_eq!(fake.submissions(), 0);

    fake.inject(Injection::WrongSignature);
    assert_eq!(send(ok).await.unwrap().status(), 200);
    let hooks = wait_hooks(&received, 1).await;
    assert_eq!(
        faxbot_webhooks::basic::verify("hook-user", "hook-pass", hooks[0].0.as_deref()),
        Err(faxbot_webhooks::Rejection::Mismatch)
    );
}

#[tokio::test]
async fn list_filters_by_direction_to_prefix_create_time_and_labels_come_back() {
    let config = SinchFakeConfig::default();
    let fake = SinchFake::start(config.clone()).await.unwrap();
    let client = reqwest::Client::new();
    for (to, job) in [("+15551230001", "a"), ("+15551230002", "b"), ("+14441230003", "c")] {
        let r = client
            .post(faxes_url(&fake, &config.project_id))
            .basic_auth(&config.key_id, Some(&config.key_secret))
            .json(
                &json!({"to": to, "labels": {"faxbot_job": job}, "files": [{"file": base64_pdf(), "fileType": "PDF"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let list = |query: Vec<(&'static str, String)>| {
        let client = client.clone();
        let url = faxes_url(&fake, &config.project_id);
        let (key, secret) = (config.key_id.clone(), config.key_secret.clone());
        async move {
            let mut url = reqwest::Url::parse(&url).unwrap();
            url.query_pairs_mut().extend_pairs(query);
            let r = client.get(url).basic_auth(key, Some(secret)).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let jobs = |body: &Value| -> Vec<String> {
        body["faxes"].as_array().unwrap().iter().map(|f| f["labels"]["faxbot_job"].as_str().unwrap().into()).collect()
    };
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d").to_string();

    let all = list(vec![("direction", "OUTBOUND".into())]).await;
    assert_eq!((all["totalItems"].as_u64(), jobs(&all).len()), (Some(3), 3));
    assert_eq!(jobs(&list(vec![("to", "+1555123".into())]).await), vec!["a", "b"], "to is a prefix match");
    assert_eq!(jobs(&list(vec![("to", "+15551230002".into())]).await), vec!["b"]);
    assert!(jobs(&list(vec![("direction", "INBOUND".into())]).await).is_empty());
    // The range filters are the query keys `createTime>` and `createTime<` (inclusive), as the SDKs send them;
    // the docs' `createTime>=DATE` is the same key with `=DATE` as its value.
    assert_eq!(jobs(&list(vec![("createTime>", today.clone())]).await).len(), 3);
    assert_eq!(jobs(&list(vec![("createTime>", format!("={today}"))]).await).len(), 3);
    assert!(jobs(&list(vec![("createTime>", tomorrow.clone())]).await).is_empty());
    assert_eq!(jobs(&list(vec![("createTime<", today.clone())]).await).len(), 3, "< a day includes the day");
    assert_eq!(jobs(&list(vec![("createTime", today)]).await).len(), 3);
    let paged = list(vec![("pageSize", "2".into()), ("page", "2".into())]).await;
    assert_eq!((jobs(&paged), paged["totalPages"].as_u64()), (vec!["c".to_string()], Some(2)));
    let r = client
        .get(format!("{}?pageSize=1001", faxes_url(&fake, &config.project_id)))
        .basic_auth(&config.key_id, Some(&config.key_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A key that is not a filter (the spelling `createTime>=` as a key, or a typo) is refused, not ignored.
    for key in ["createTime>=", "createdAfter"] {
        let mut url = reqwest::Url::parse(&faxes_url(&fake, &config.project_id)).unwrap();
        url.query_pairs_mut().append_pair(key, &tomorrow);
        let r = client.get(url).basic_auth(&config.key_id, Some(&config.key_secret)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{key}");
        assert!(r.text().await.unwrap().contains("INVALID_ARGUMENT"));
    }
    let r = client.get(faxes_url(&fake, &config.project_id)).send().await.unwrap();
    assert_eq!(r.status(), 401, "listing needs credentials too");
}

#[tokio::test]
async fn incoming_faxes_and_completed_webhooks_carry_the_document() {
    let config = SinchFakeConfig { step: Duration::from_millis(20), ..Default::default() };
    let fake = SinchFake::start(config.clone()).await.unwrap();
    let (callback, received) = receiver().await;

    let (status, id) = fake.deliver_incoming(&callback, false, "+15557654321", "+15551112222", PDF).await;
    assert_eq!(status, 200);
    let (status, _) = fake.deliver_incoming(&callback, true, "+15557654321", "+15551112222", PDF).await;
    assert_eq!(status, 200);
    let hooks = wait_hooks(&received, 2).await;
    faxbot_webhooks::basic::verify("hook-user", "hook-pass", hooks[0].0.as_deref()).unwrap();
    let text = String::from_utf8_lossy(&hooks[0].2);
    assert!(text.contains("INCOMING_FAX") && text.contains(&id) && text.contains("application/pdf"), "{text}");
    assert!(text.contains("%PDF-1.4"), "the document is a file part");
    let event: Value = serde_json::from_slice(&hooks[1].2).unwrap();
    assert_eq!((event["event"].as_str(), event["fileType"].as_str()), (Some("INCOMING_FAX"), Some("PDF")));
    assert_eq!(event["file"], base64_pdf(), "JSON carries a singular base64 file");
    assert_eq!(event["fax"]["direction"], "INBOUND");

    let r = reqwest::Client::new()
        .post(faxes_url(&fake, &config.project_id))
        .basic_auth(&config.key_id, Some(&config.key_secret))
        .json(&json!({"to": "+19898989898", "callbackUrl": callback, "callbackUrlContentType": "application/json",
            "files": [{"file": base64_pdf(), "fileType": "PDF"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hooks = wait_hooks(&received, 3).await;
    let event: Value = serde_json::from_slice(&hooks[2].2).unwrap();
    assert_eq!(event["files"][0]["file"], base64_pdf(), "FAX_COMPLETED carries a files array");
}
