//! The shipped SignalWire manifest (`manifests/signalwire.json`) against the SignalWire fake
//! (`faxbot_fakes::signalwire`, written from SignalWire's LaML fax documentation): delivery by polling with
//! SignalWire fetching the document through its tokenized URL, transmission failures with SignalWire's reason,
//! a clear non-retried 401, 429/5xx retried honouring Retry-After, and completed callbacks signed with
//! `X-SignalWire-Signature` that are verified before they change anything.
//!
//! The manifest is used as shipped except for its host: `https://{{ settings.space }}.signalwire.com/` (the
//! space's host) becomes the fake's loopback address, which only FAXBOT_MANIFEST_ALLOW_LOOPBACK (tests)
//! allows; the templated host itself is tested where the rendered URL is checked (plugins::http::request).

use std::time::{Duration, Instant};

use faxbot_fakes::Injection;
use faxbot_fakes::signalwire::{SIGNATURE_HEADER, SignalWireFake, SignalWireFakeConfig};

use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, TestApp, cancel_fax, json, manifest_for_fake, one_page_pdf, wait_submitted};

const PROJECT: &str = "b3877c40-da60-4998-90ad-b792e98472ac";
const API_TOKEN: &str = "PTsignalwire-token-do-not-leak-8e21";
const SIGNING_KEY: &str = "PSKsignalwire-signing-key-do-not-leak-51aa";
const SENDER: &str = "+15550001234";

/// The shipped manifest pointed at the fake.
fn manifest(base_url: &str) -> serde_json::Value {
    manifest_for_fake(
        include_str!("../../../manifests/signalwire.json"),
        "https://{{ settings.space }}.signalwire.com/",
        base_url,
    )
}

/// A running server bound to the manifest, reachable by the fake at a known port (SignalWire fetches the
/// document from PUBLIC_API_URL and posts callbacks to callbackUrl).
struct Setup {
    fake: SignalWireFake,
    app: TestApp,
    _dir: tempfile::TempDir,
    port: u16,
    callback: String,
}

async fn setup(db: Db, api_token: &str, callbacks: bool) -> Setup {
    setup_with(db, api_token, callbacks, Duration::from_millis(40), true).await
}

/// `step` between the fake's status changes; `reachable: false` gives SignalWire a document URL on a port
/// nobody listens on.
async fn setup_with(db: Db, api_token: &str, callbacks: bool, step: Duration, reachable: bool) -> Setup {
    let fake = SignalWireFake::start(SignalWireFakeConfig {
        project_id: PROJECT.into(),
        api_token: API_TOKEN.into(),
        signing_key: SIGNING_KEY.into(),
        step,
    })
    .await
    .expect("start the SignalWire fake");
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port = free();
    let public_port = if reachable { port } else { free() };
    let callback = format!("http://127.0.0.1:{port}/webhooks/signalwire");
    let mut settings =
        serde_json::json!({"projectId": PROJECT, "senderId": SENDER, "space": "acme", "pollIntervalMs": 100});
    let mut credentials = vec![("outbound.apiToken", api_token)];
    if callbacks {
        // A status poll only every 10 minutes: only an accepted callback can finish a job within the test.
        settings["pollIntervalMs"] = 600_000.into();
        settings["callbackUrl"] = callback.clone().into();
        credentials.push(("outbound.signingKey", SIGNING_KEY));
    }
    // Unsigned (its host was changed for the fake): accepted because unverified plugins are allowed.
    let config = serde_json::json!({"version": 1, "manifests": [manifest(&fake.base_url)],
        "features": {"pluginInstall": true},
        "providers": {"outbound": {"plugin": "signalwire", "settings": settings}}});
    let (app, dir) = Spawn::new(db)
        .env("FAXBOT_MANIFEST_ALLOW_LOOPBACK", "true")
        .env("FAXBOT_LISTEN", &format!("127.0.0.1:{port}"))
        .env("PUBLIC_API_URL", &format!("http://127.0.0.1:{public_port}/"))
        .start_with_config(config, &credentials)
        .await;
    app.forbid(API_TOKEN);
    app.forbid(SIGNING_KEY);
    Setup { fake, app, _dir: dir, port, callback }
}

async fn submit(app: &TestApp, to: &str) -> String {
    let r = app.post_fax(Some(app.admin()), to, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    json(r).await["id"].as_str().unwrap().to_string()
}

async fn signalwire_delivers_by_polling_and_reports_transmission_failures(db: Db) {
    let s = setup(db, API_TOKEN, false).await;
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(job["backend"], "signalwire");
    assert_eq!(s.fake.submissions(), 1);

    // The request as SignalWire documents it: To, From, MediaUrl; no StatusCallback without callbackUrl.
    let (path, fields) = s.fake.requests()[0].clone();
    assert_eq!(path, format!("/Accounts/{PROJECT}/Faxes"));
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("To").as_deref(), Some(NUMBER));
    assert_eq!(field("From").as_deref(), Some(SENDER));
    assert_eq!(field("StatusCallback"), None);
    assert_eq!(field("StoreMedia").as_deref(), Some("false"), "SignalWire keeps no copy of the document");
    let media = field("MediaUrl").unwrap();
    let prefix = format!("http://127.0.0.1:{}/fax/{id}/pdf?token=", s.port);
    assert!(media.starts_with(&prefix), "{media}");
    s.app.forbid(&media[prefix.len()..]);
    assert_eq!(s.fake.content_fetches(), vec![(media, true)], "SignalWire fetched the document once");

    // Failures the network reports, with SignalWire's status (and message) as the reason.
    let id = submit(&s.app, "+15550000017").await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["error"].as_str().unwrap().contains("busy"), "{job}");
    let id = submit(&s.app, "+15550000010").await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["error"].as_str().unwrap().contains("failed (Fax negotiation"), "{job}");
    assert_eq!(s.fake.submissions(), 3);
    s.app.assert_no_leaks();
}
db_test!(signalwire_delivers_by_polling_and_reports_transmission_failures);

async fn signalwire_bad_credentials_fail_at_once_without_retries(db: Db) {
    let s = setup(db, "PTwrong-signalwire-token", false).await;
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "failed", "a refused submission is a dispatch failure: {job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("rejected the credentials"), "{error}");
    assert!(error.contains("Authentication Error"), "SignalWire's message is kept: {error}");
    assert!(!error.contains("retrying") && !error.contains("gave up"), "401 is not retried: {error}");
    assert_eq!(s.fake.submissions(), 0);
    s.app.assert_no_leaks();
}
db_test!(signalwire_bad_credentials_fail_at_once_without_retries);

async fn signalwire_rate_limits_and_outages_are_retried_honouring_retry_after(db: Db) {
    let s = setup(db, API_TOKEN, false).await;
    s.fake.inject(Injection::Status { code: 429, retry_after: Some(1) });
    s.fake.inject(Injection::Status { code: 503, retry_after: None });
    let started = Instant::now();
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 must be honoured");
    assert_eq!(s.fake.submissions(), 1, "the refused attempts created nothing");
    s.app.assert_no_leaks();
}
db_test!(signalwire_rate_limits_and_outages_are_retried_honouring_retry_after);

async fn signalwire_callbacks_are_verified_before_they_change_anything(db: Db) {
    let s = setup(db, API_TOKEN, true).await;
    let app = &s.app;

    // Delivered by callback (polling is 10 minutes away).
    let id = submit(app, NUMBER).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(15)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    // The fake records a callback once it has the answer, which may be a moment after the job finished.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.fake.callbacks().is_empty() {
        assert!(Instant::now() < deadline, "the callback was never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let authentic = s.fake.callbacks()[0].clone();
    assert_eq!(authentic.answered, 200);
    assert_eq!(authentic.status, "delivered");
    assert_eq!(authentic.url, s.callback);
    let (_, fields) = s.fake.requests()[0].clone();
    assert!(fields.iter().any(|(k, v)| k == "StatusCallback" && v == &s.callback), "{fields:?}");

    // A callback signed with the wrong key is refused (401), audited, and changes nothing.
    s.fake.inject(Injection::WrongSignature);
    let forged = submit(app, NUMBER).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.fake.callbacks().len() < 2 {
        assert!(Instant::now() < deadline, "the forged callback never went out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.fake.callbacks()[1].answered, 401);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = json(app.get_fax(Some(app.admin()), &forged).await).await;
    assert_ne!(job["status"], "SUCCESS", "a forged callback must not complete a job: {job}");
    assert!(app.wait_log("webhook_rejected").await, "rejections are audited");

    let post = |fields: Vec<(String, String)>, signature: Option<String>| {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &fields {
            body.append_pair(k, v);
        }
        let mut r = app
            .client
            .post(&s.callback)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.finish());
        if let Some(signature) = signature {
            r = r.header(SIGNATURE_HEADER, signature);
        }
        r.send()
    };
    // No signature: refused. The authentic callback with another fax's sid: refused.
    assert_eq!(post(authentic.fields.clone(), None).await.unwrap().status(), 401);
    let forged_sid = s.fake.callbacks()[1].fax_sid.clone();
    let moved: Vec<(String, String)> = authentic
        .fields
        .iter()
        .map(|(k, v)| if k == "FaxSid" { (k.clone(), forged_sid.clone()) } else { (k.clone(), v.clone()) })
        .collect();
    assert_eq!(post(moved, Some(authentic.signature.clone())).await.unwrap().status(), 401);
    // A replay of the authentic callback: accepted (it only makes a status check due), and nothing moves.
    assert_eq!(s.fake.sign(&s.callback, &authentic.fields), authentic.signature);
    for _ in 0..2 {
        let r = post(authentic.fields.clone(), Some(authentic.signature.clone())).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(json(app.get_fax(Some(app.admin()), &id).await).await["status"], "SUCCESS");
    let job = json(app.get_fax(Some(app.admin()), &forged).await).await;
    assert_ne!(job["status"], "SUCCESS", "{job}");
    app.assert_no_leaks();
}
db_test!(signalwire_callbacks_are_verified_before_they_change_anything);

async fn signalwire_cancels_a_fax_at_the_provider(db: Db) {
    // Slow steps: the fax is still queued or processing (cancellable) when the cancel arrives.
    let s = setup_with(db, API_TOKEN, false, Duration::from_millis(1500), true).await;
    let id = submit(&s.app, NUMBER).await;
    wait_submitted(&s.app, &id).await;
    assert_eq!(cancel_fax(&s.app, &id).await.status(), 202, "cancellation requested from SignalWire");
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(10)).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["error"].as_str().unwrap().contains("canceled"), "{job}");
    let update = s.fake.requests().into_iter().find(|(path, _)| path.contains("/Faxes/")).expect("an update");
    assert_eq!(update.1, vec![("Status".to_string(), "canceled".to_string())]);
    assert_eq!(s.fake.submissions(), 1);
    s.app.assert_no_leaks();
}
db_test!(signalwire_cancels_a_fax_at_the_provider);

async fn signalwire_a_document_it_cannot_fetch_fails_the_fax(db: Db) {
    let s = setup_with(db, API_TOKEN, false, Duration::from_millis(40), false).await;
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["error"].as_str().unwrap().contains("Unable to retrieve the media"), "{job}");
    let fetches = s.fake.content_fetches();
    assert_eq!(fetches.len(), 1);
    assert!(!fetches[0].1, "the fetch failed");
    if let Some((_, token)) = fetches[0].0.split_once("token=") {
        s.app.forbid(token);
    }
    s.app.assert_no_leaks();
}
db_test!(signalwire_a_document_it_cannot_fetch_fails_the_fax);
