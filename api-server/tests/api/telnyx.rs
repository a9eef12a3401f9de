//! The shipped Telnyx manifest (`manifests/telnyx.json`) against the Telnyx fake (`faxbot_fakes::telnyx`,
//! written from Telnyx's Programmable Fax documentation and SDKs): delivery by polling with Telnyx fetching
//! the document through its tokenized URL, transmission failures with Telnyx's `failure_reason`, a clear
//! non-retried 401, 429/5xx retried honouring Retry-After, and webhooks signed with Ed25519 that are verified
//! before they change anything.
//!
//! The manifest is used as shipped except for its host: `https://api.telnyx.com/` becomes the fake's loopback
//! address, which only FAXBOT_MANIFEST_ALLOW_LOOPBACK (tests) allows.

use std::time::{Duration, Instant};

use faxbot_fakes::Injection;
use faxbot_fakes::telnyx::{SIGNATURE_HEADER, TIMESTAMP_HEADER, TelnyxFake, TelnyxFakeConfig};

use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, TestApp, cancel_fax, json, manifest_for_fake, one_page_pdf, wait_submitted};

const API_KEY: &str = "KEYtelnyx-api-key-do-not-leak-0b7d";
const CONNECTION: &str = "1293384261075731499";
const SENDER: &str = "+15550004321";

/// The shipped manifest pointed at the fake.
fn manifest(base_url: &str) -> serde_json::Value {
    manifest_for_fake(include_str!("../../../manifests/telnyx.json"), "https://api.telnyx.com/", base_url)
}

/// A running server bound to the manifest, reachable by the fake at a known port (Telnyx fetches the
/// document from PUBLIC_API_URL and posts webhooks to webhook_url, the binding's callbackUrl).
struct Setup {
    fake: TelnyxFake,
    app: TestApp,
    _dir: tempfile::TempDir,
    port: u16,
    callback: String,
}

async fn setup(db: Db, api_key: &str, callbacks: bool) -> Setup {
    setup_with(db, api_key, callbacks, Duration::from_millis(40), true).await
}

/// `step` between the fake's status changes; `reachable: false` gives Telnyx a document URL on a port nobody
/// listens on.
async fn setup_with(db: Db, api_key: &str, callbacks: bool, step: Duration, reachable: bool) -> Setup {
    let fake = TelnyxFake::start(TelnyxFakeConfig { api_key: API_KEY.into(), signing_secret: [19; 32], step })
        .await
        .expect("start the Telnyx fake");
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port = free();
    let public_port = if reachable { port } else { free() };
    let callback = format!("http://127.0.0.1:{port}/webhooks/telnyx");
    let mut settings = serde_json::json!({"connectionId": CONNECTION, "senderId": SENDER, "pollIntervalMs": 100});
    if callbacks {
        // A status poll only every 10 minutes: only an accepted webhook can finish a job within the test.
        settings["pollIntervalMs"] = 600_000.into();
        settings["callbackUrl"] = callback.clone().into();
        settings["publicKey"] = fake.public_key().into();
    }
    // Unsigned (its host was changed for the fake): accepted because unverified plugins are allowed.
    let config = serde_json::json!({"version": 1, "manifests": [manifest(&fake.base_url)],
        "features": {"pluginInstall": true},
        "providers": {"outbound": {"plugin": "telnyx", "settings": settings}}});
    let (app, dir) = Spawn::new(db)
        .env("FAXBOT_MANIFEST_ALLOW_LOOPBACK", "true")
        .env("FAXBOT_LISTEN", &format!("127.0.0.1:{port}"))
        .env("PUBLIC_API_URL", &format!("http://127.0.0.1:{public_port}/"))
        .start_with_config(config, &[("outbound.apiKey", api_key)])
        .await;
    app.forbid(API_KEY);
    Setup { fake, app, _dir: dir, port, callback }
}

async fn submit(app: &TestApp, to: &str) -> String {
    let r = app.post_fax(Some(app.admin()), to, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    json(r).await["id"].as_str().unwrap().to_string()
}

async fn telnyx_delivers_by_polling_and_reports_transmission_failures(db: Db) {
    let s = setup(db, API_KEY, false).await;
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(job["backend"], "telnyx");
    assert_eq!(s.fake.submissions(), 1);

    // The request as Telnyx documents it; no webhook_url without callbackUrl.
    let request = s.fake.requests()[0].clone();
    assert_eq!(request["connection_id"], CONNECTION);
    assert_eq!(request["to"], NUMBER);
    assert_eq!(request["from"], SENDER);
    assert!(request.get("webhook_url").is_none(), "{request}");
    assert_eq!(request["store_media"], false, "Telnyx keeps no copy of the document");
    let media = request["media_url"].as_str().unwrap().to_string();
    let prefix = format!("http://127.0.0.1:{}/fax/{id}/pdf?token=", s.port);
    assert!(media.starts_with(&prefix), "{media}");
    s.app.forbid(&media[prefix.len()..]);
    assert_eq!(s.fake.content_fetches(), vec![(media, true)], "Telnyx fetched the document once");

    // Failures the network reports, with Telnyx's failure_reason as the reason.
    for (number, reason) in [("+15550000017", "user_busy"), ("+15550000010", "fax_signaling_error")] {
        let id = submit(&s.app, number).await;
        let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
        assert_eq!(job["status"], "FAILED", "{job}");
        assert!(job["error"].as_str().unwrap().contains(reason), "{job}");
    }
    assert_eq!(s.fake.submissions(), 3);
    s.app.assert_no_leaks();
}
db_test!(telnyx_delivers_by_polling_and_reports_transmission_failures);

async fn telnyx_bad_credentials_fail_at_once_without_retries(db: Db) {
    let s = setup(db, "KEYwrong-telnyx-api-key", false).await;
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "failed", "a refused submission is a dispatch failure: {job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("rejected the credentials"), "{error}");
    assert!(error.contains("authentication headers were either invalid"), "Telnyx's detail is kept: {error}");
    assert!(!error.contains("retrying") && !error.contains("gave up"), "401 is not retried: {error}");
    assert_eq!(s.fake.submissions(), 0);
    s.app.assert_no_leaks();
}
db_test!(telnyx_bad_credentials_fail_at_once_without_retries);

async fn telnyx_rate_limits_and_outages_are_retried_honouring_retry_after(db: Db) {
    let s = setup(db, API_KEY, false).await;
    s.fake.inject(Injection::Status { code: 429, retry_after: Some(1) });
    s.fake.inject(Injection::Status { code: 502, retry_after: None });
    let started = Instant::now();
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 must be honoured");
    assert_eq!(s.fake.submissions(), 1, "the refused attempts created nothing");
    s.app.assert_no_leaks();
}
db_test!(telnyx_rate_limits_and_outages_are_retried_honouring_retry_after);

/// Telnyx cannot find a fax by job (no `list` action in the manifest), so a submission that timed out, which
/// may have created the fax, is not sent again: the job fails, saying why, and the fax exists once.
async fn telnyx_a_timed_out_submission_is_not_sent_twice(db: Db) {
    let s = setup(db, API_KEY, false).await;
    // The fax is created, but the answer comes after the 2 s provider timeout.
    s.fake.inject(Injection::Stall(Duration::from_secs(4)));
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(error.contains("may or may not have received this fax") && error.contains("not sent again"), "{error}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(s.fake.submissions(), 1, "sent once");
    assert!(s.app.wait_log("ambiguous_submission").await, "audited");
    s.app.assert_no_leaks();
}
db_test!(telnyx_a_timed_out_submission_is_not_sent_twice);

async fn telnyx_webhooks_are_verified_before_they_change_anything(db: Db) {
    let s = setup(db, API_KEY, true).await;
    let app = &s.app;

    // Delivered by webhooks (polling is 10 minutes away); every event was accepted.
    let id = submit(app, NUMBER).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(15)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(s.fake.requests()[0]["webhook_url"], s.callback.as_str());
    // The fake records a webhook once it has the answer, which may be a moment after the job finished.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.fake.webhooks().iter().any(|w| w.event_type == "fax.delivered") {
        assert!(Instant::now() < deadline, "fax.delivered was never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = s.fake.webhooks();
    let events: Vec<&str> = sent.iter().map(|w| w.event_type.as_str()).collect();
    assert!(events.contains(&"fax.queued") && events.contains(&"fax.delivered"), "{events:?}");
    assert!(sent.iter().all(|w| w.answered == 200), "{sent:?}");
    let authentic = sent.iter().find(|w| w.event_type == "fax.delivered").unwrap().clone();

    // Webhooks signed with another key are refused (401), audited, and change nothing.
    s.fake.inject(Injection::WrongSignature);
    let before = sent.len();
    let forged = submit(app, NUMBER).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.fake.webhooks()[before..].iter().any(|w| w.event_type == "fax.delivered") {
        assert!(Instant::now() < deadline, "the forged webhooks never went out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s.fake.webhooks()[before..].iter().all(|w| w.answered == 401), "{:?}", s.fake.webhooks());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = json(app.get_fax(Some(app.admin()), &forged).await).await;
    assert_ne!(job["status"], "SUCCESS", "a forged webhook must not complete a job: {job}");
    assert!(app.wait_log("webhook_rejected").await, "rejections are audited");

    let post = |body: String, timestamp: &str, signature: Option<&str>| {
        let mut r = app
            .client
            .post(&s.callback)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, timestamp)
            .body(body);
        if let Some(signature) = signature {
            r = r.header(SIGNATURE_HEADER, signature);
        }
        r.send()
    };
    // No signature, another timestamp, or the body pointed at another fax: refused.
    assert_eq!(post(authentic.body.clone(), &authentic.timestamp, None).await.unwrap().status(), 401);
    let later = (authentic.timestamp.parse::<u64>().unwrap() + 1).to_string();
    assert_eq!(post(authentic.body.clone(), &later, Some(&authentic.signature)).await.unwrap().status(), 401);
    let forged_id = s.fake.webhooks()[before].fax_id.clone();
    let moved = authentic.body.replace(&authentic.fax_id, &forged_id);
    assert_eq!(post(moved, &authentic.timestamp, Some(&authentic.signature)).await.unwrap().status(), 401);
    // A replay of an authentic webhook: accepted (it only makes a status check due), and nothing moves.
    for _ in 0..2 {
        let r = post(authentic.body.clone(), &authentic.timestamp, Some(&authentic.signature)).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // The same callback signed with the account's key, but 310 s ago or ahead (a capture replayed later, or
    // a forged clock): refused, as the Telnyx SDKs refuse a timestamp more than 300 s off. (10 s of margin: the
    // server reads its clock later than the test; the exact edges are the unit test's, with a fixed clock.)
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for at in [now - 310, now + 310] {
        let message = format!("{at}|{}", authentic.body);
        let signature = faxbot_contract::manifest::signature::sign_bytes(message.as_bytes(), &[19; 32]);
        let r = post(authentic.body.clone(), &at.to_string(), Some(&signature)).await.unwrap();
        assert_eq!(r.status(), 401, "signed at now {:+}", at as i64 - now as i64);
    }
    // Signed just now: accepted.
    let message = format!("{now}|{}", authentic.body);
    let signature = faxbot_contract::manifest::signature::sign_bytes(message.as_bytes(), &[19; 32]);
    assert_eq!(post(authentic.body.clone(), &now.to_string(), Some(&signature)).await.unwrap().status(), 200);
    assert_eq!(json(app.get_fax(Some(app.admin()), &id).await).await["status"], "SUCCESS");
    let job = json(app.get_fax(Some(app.admin()), &forged).await).await;
    assert_ne!(job["status"], "SUCCESS", "{job}");
    app.assert_no_leaks();
}
db_test!(telnyx_webhooks_are_verified_before_they_change_anything);

async fn telnyx_cancels_a_fax_at_the_provider(db: Db) {
    // Slow steps: the fax is still in a cancellable state when the cancel arrives.
    let s = setup_with(db, API_KEY, false, Duration::from_millis(1500), true).await;
    let id = submit(&s.app, NUMBER).await;
    wait_submitted(&s.app, &id).await;
    assert_eq!(cancel_fax(&s.app, &id).await.status(), 202, "cancellation requested from Telnyx");
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(10)).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["error"].as_str().unwrap().contains("sender_canceled"), "{job}");
    assert_eq!(s.fake.submissions(), 1);
    s.app.assert_no_leaks();
}
db_test!(telnyx_cancels_a_fax_at_the_provider);

async fn telnyx_a_document_it_cannot_fetch_fails_the_fax(db: Db) {
    let s = setup_with(db, API_KEY, false, Duration::from_millis(40), false).await;
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["error"].as_str().unwrap().contains("file_download_failed"), "{job}");
    let fetches = s.fake.content_fetches();
    assert_eq!(fetches.len(), 1);
    assert!(!fetches[0].1, "the fetch failed");
    if let Some((_, token)) = fetches[0].0.split_once("token=") {
        s.app.forbid(token);
    }
    s.app.assert_no_leaks();
}
db_test!(telnyx_a_document_it_cannot_fetch_fails_the_fax);
