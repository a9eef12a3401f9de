//! The Sinch plugin against the faithful Sinch fake (`faxbot-fakes`): delivery by callback and by polling,
//! transmission failure with Sinch's reason, a clear non-retried 401 (OAuth2 and Basic), 429/5xx retried with
//! Retry-After honoured, a stalled submission found again by its job label instead of being sent twice, OAuth
//! tokens reused and refreshed, and callbacks whose Basic credentials are verified before anything changes.

use std::time::{Duration, Instant};

use faxbot_fakes::Injection;
use faxbot_fakes::sinch::{SinchFake, SinchFakeConfig};
use serde_json::{Value, json as j};

use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, TestApp, json, one_page_pdf};

const KEY_SECRET: &str = "sinch-secret-do-not-leak-81f0";
const WEBHOOK_PASSWORD: &str = "sinch-hook-pass-do-not-leak-5e2a";
const WEBHOOK_USER: &str = "sinch-hooks";

struct Setup {
    fake: SinchFake,
    app: TestApp,
    dir: tempfile::TempDir,
}

impl Setup {
    /// The settings every test starts from: the fake's URLs, fast polling, no callbacks.
    fn settings(&self) -> Value {
        base_settings(&self.fake)
    }

    /// Writes a new config document and waits until the server applied it.
    async fn reconfigure(&self, settings: Value) {
        let features = || async {
            json(
                self.app
                    .client
                    .get(self.app.url("/admin/features"))
                    .header("X-API-Key", self.app.admin())
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        };
        let before = features().await["revision"].clone();
        write_config(&self.dir, settings);
        let deadline = Instant::now() + Duration::from_secs(10);
        while features().await["revision"] == before {
            assert!(Instant::now() < deadline, "config change not applied");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn base_settings(fake: &SinchFake) -> Value {
    j!({"baseUrl": format!("{}/v3/", fake.base_url), "authUrl": fake.token_url, "projectId": "fake-project",
        "pollIntervalMs": 100})
}

fn write_config(dir: &tempfile::TempDir, settings: Value) {
    std::fs::write(
        dir.path().join("faxbot.json"),
        j!({"version": 1, "providers": {"outbound": {"plugin": "sinch", "settings": settings}}}).to_string(),
    )
    .unwrap();
}

async fn setup(db: Db, key_secret: &str, token_ttl: Duration) -> Setup {
    let fake = SinchFake::start(SinchFakeConfig {
        key_secret: KEY_SECRET.into(),
        token_ttl,
        step: Duration::from_millis(40),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("outbound.keyId"), "fake-key-id").unwrap();
    std::fs::write(creds.join("outbound.keySecret"), key_secret).unwrap();
    std::fs::write(creds.join("outbound.webhookPassword"), WEBHOOK_PASSWORD).unwrap();
    write_config(&dir, base_settings(&fake));
    let app = Spawn::new(db)
        .env("FAXBOT_CONFIG_PATH", dir.path().join("faxbot.json").to_str().unwrap())
        .env("FAXBOT_CREDENTIALS_DIR", creds.to_str().unwrap())
        .start()
        .await;
    for secret in [KEY_SECRET, key_secret, WEBHOOK_PASSWORD, "fake-token-"] {
        app.forbid(secret);
    }
    Setup { fake, app, dir }
}

async fn submit(app: &TestApp, to: &str) -> String {
    let r = app.post_fax(Some(app.admin()), to, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    json(r).await["id"].as_str().unwrap().to_string()
}

async fn sinch_delivers_by_polling_reuses_its_token_and_reports_transmission_failures(db: Db) {
    let s = setup(db, KEY_SECRET, Duration::from_secs(3600)).await;
    for _ in 0..3 {
        let id = submit(&s.app, NUMBER).await;
        let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
        assert_eq!(job["status"], "SUCCESS", "{job}");
        assert_eq!(job["backend"], "sinch");
        assert_eq!(job["provider_sid"].as_str().unwrap().len(), 26, "the Sinch fax id: {job}");
    }
    assert_eq!(s.fake.submissions(), 3);
    assert!(s.fake.webhooks().is_empty(), "no callbackUrl configured: status by polling only");

    // The fake's busy number fails in transmission with CALL_ERROR 17.
    let id = submit(&s.app, "+15550000017").await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert_eq!(job["error"], "Busy (CALL_ERROR 17)", "{job}");
    assert_eq!(s.fake.submissions(), 4);
    assert_eq!(s.fake.tokens_issued(), 1, "one OAuth2 token serves every call while it is valid");
    s.app.assert_no_leaks();
}
db_test!(sinch_delivers_by_polling_reuses_its_token_and_reports_transmission_failures);

async fn sinch_refreshes_expired_and_refused_tokens(db: Db) {
    // Tokens live 1 s: the plugin must fetch a new one before the next fax instead of failing with a 401.
    let s = setup(db, KEY_SECRET, Duration::from_secs(1)).await;
    let id = submit(&s.app, NUMBER).await;
    assert_eq!(s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await["status"], "SUCCESS");
    let issued = s.fake.tokens_issued();
    assert!(issued >= 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let id = submit(&s.app, NUMBER).await;
    assert_eq!(s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await["status"], "SUCCESS");
    assert!(s.fake.tokens_issued() > issued, "an expired token is replaced");

    // A token Sinch refuses early (a 401 although it has not expired): one refresh and the same call again.
    let before = s.fake.tokens_issued();
    s.fake.inject(Injection::Status { code: 401, retry_after: None });
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "SUCCESS", "a 401 is retried once with a fresh token: {job}");
    assert_eq!(s.fake.submissions(), 3);
    assert!(s.fake.tokens_issued() > before, "the refused token was replaced");
    assert!(s.app.wait_log("fetching a new one and retrying once").await);
    s.app.assert_no_leaks();
}
db_test!(sinch_refreshes_expired_and_refused_tokens);

async fn sinch_bad_credentials_fail_at_once_without_retries(db: Db) {
    let s = setup(db, "wrong-secret-0f3d", Duration::from_secs(3600)).await;
    // OAuth2: the token endpoint refuses the key.
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "failed", "a refused submission is the reference's dispatch failure: {job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("rejected the credentials") && error.contains("OAuth2 token endpoint"), "{error}");
    assert!(!error.contains("retrying") && !error.contains("gave up"), "401 is not retried: {error}");

    // Basic: the fax API itself answers 401 (empty body).
    let mut settings = s.settings();
    settings["authMethod"] = j!("basic");
    s.reconfigure(settings).await;
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("refused the access key or the project id (HTTP 401)"), "{error}");
    assert_eq!(s.fake.submissions(), 0);
    assert_eq!(s.fake.tokens_issued(), 0);
    s.app.assert_no_leaks();
}
db_test!(sinch_bad_credentials_fail_at_once_without_retries);

async fn sinch_rate_limits_and_outages_are_retried_honouring_retry_after(db: Db) {
    let s = setup(db, KEY_SECRET, Duration::from_secs(3600)).await;
    // The dedupe lookup and the submission are both API calls: these fail the first two attempts' lookups.
    s.fake.inject(Injection::Status { code: 429, retry_after: Some(1) });
    s.fake.inject(Injection::Status { code: 503, retry_after: None });
    let started = Instant::now();
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 must be honoured");
    assert_eq!(s.fake.submissions(), 1);
    assert!(s.app.wait_log("submission failed; retrying").await);
    let retries = s.app.logs().iter().filter(|l| l.contains("submission failed; retrying")).count();
    assert_eq!(retries, 2, "one retry per injected failure");
}
db_test!(sinch_rate_limits_and_outages_are_retried_honouring_retry_after);

async fn sinch_stalled_submission_is_found_again_not_sent_twice(db: Db) {
    let s = setup(db, KEY_SECRET, Duration::from_secs(3600)).await;
    // The lookup passes, then the submission creates the fax but answers after the 2 s provider timeout.
    s.fake.inject(Injection::Stall(Duration::ZERO));
    s.fake.inject(Injection::Stall(Duration::from_secs(4)));
    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(s.fake.submissions(), 1, "the retry adopted the fax the stalled submission created");
    assert!(s.app.wait_log("adopted a fax an earlier submission already created").await);
    let fax = s.fake.fax(job["provider_sid"].as_str().unwrap()).unwrap();
    assert_eq!(fax["labels"]["faxbot_job"], id.as_str(), "the adopted fax is this job's");
    s.app.assert_no_leaks();
}
db_test!(sinch_stalled_submission_is_found_again_not_sent_twice);

async fn sinch_callbacks_are_verified_before_they_change_anything(db: Db) {
    let s = setup(db, KEY_SECRET, Duration::from_secs(3600)).await;
    // Callbacks on, polls only every 10 minutes: only an accepted callback can finish a job within the test.
    let callback = s.app.url("/webhooks/sinch");
    let mut settings = s.settings();
    settings["pollIntervalMs"] = j!(600000);
    settings["callbackUrl"] = j!(callback);
    settings["webhookUser"] = j!(WEBHOOK_USER);
    s.reconfigure(settings).await;

    let id = submit(&s.app, NUMBER).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(15)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(s.fake.webhooks().last().unwrap().answered, 200);
    let sid = job["provider_sid"].as_str().unwrap().to_string();
    let stored = s.fake.fax(&sid).unwrap();
    assert!(stored["callbackUrl"].as_str().unwrap().contains("***:***@"), "credentials were embedded: {stored}");
    assert_eq!(stored["callbackUrlContentType"], "multipart/form-data");
    assert!(s.app.wait_log("webhook_accepted").await);

    // Wrong password: 401, audited, and the job stays in progress.
    s.fake.inject(Injection::WrongSignature);
    let forged = submit(&s.app, NUMBER).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.fake.webhooks().len() < 2 {
        assert!(Instant::now() < deadline, "the forged webhook never went out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.fake.webhooks()[1].answered, 401);
    assert!(s.app.wait_log("webhook_rejected").await, "rejections are audited");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = json(s.app.get_fax(Some(s.app.admin()), &forged).await).await;
    assert_eq!(job["status"], "in_progress", "a forged callback must not complete a job: {job}");

    // Missing Authorization: 401 and audited, before the body is even parsed.
    let rejected = |app: &TestApp| app.logs().iter().filter(|l| l.contains("webhook_rejected")).count();
    let before = rejected(&s.app);
    let fax_json = s.fake.fax(&sid).unwrap().to_string();
    let form = || {
        reqwest::multipart::Form::new()
            .text("event", "FAX_COMPLETED")
            .text("eventTime", "2024-01-01T00:00:00Z")
            .part("fax", reqwest::multipart::Part::text(fax_json.clone()).mime_str("application/json").unwrap())
    };
    let r = s.app.client.post(&callback).multipart(form()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let deadline = Instant::now() + Duration::from_secs(5);
    while rejected(&s.app) <= before {
        assert!(Instant::now() < deadline, "the missing-credentials rejection was not audited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A replay of an authentic callback: accepted, and nothing moves.
    for _ in 0..2 {
        let r = s
            .app
            .client
            .post(&callback)
            .basic_auth(WEBHOOK_USER, Some(WEBHOOK_PASSWORD))
            .multipart(form())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(json(s.app.get_fax(Some(s.app.admin()), &id).await).await["status"], "SUCCESS");
    let job = json(s.app.get_fax(Some(s.app.admin()), &forged).await).await;
    assert_eq!(job["status"], "in_progress", "a replay for another fax does not finish this one: {job}");
    s.app.assert_no_leaks();
}
db_test!(sinch_callbacks_are_verified_before_they_change_anything);

async fn sinch_inbound_faxes_are_verified_stored_once_and_listed(db: Db) {
    let s = setup(db, KEY_SECRET, Duration::from_secs(3600)).await;
    let creds = s.dir.path().join("credentials");
    for (name, value) in [("keyId", "fake-key-id"), ("keySecret", KEY_SECRET), ("webhookPassword", WEBHOOK_PASSWORD)] {
        std::fs::write(creds.join(format!("inbound.{name}")), value).unwrap();
    }
    let before =
        json(s.app.client.get(s.app.url("/admin/features")).header("X-API-Key", s.app.admin()).send().await.unwrap())
            .await["revision"]
            .clone();
    let mut inbound = s.settings();
    inbound["webhookUser"] = j!(WEBHOOK_USER);
    inbound["callbackUrl"] = j!("https://fax.example.org/webhooks/sinch/inbound");
    std::fs::write(
        s.dir.path().join("faxbot.json"),
        j!({"version": 1, "providers": {"outbound": {"plugin": "sinch", "settings": s.settings()},
            "inbound": {"plugin": "sinch", "settings": inbound}}, "features": {"v3Plugins": true}})
        .to_string(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = json(
            s.app.client.get(s.app.url("/admin/features")).header("X-API-Key", s.app.admin()).send().await.unwrap(),
        )
        .await;
        if f["revision"] != before {
            break;
        }
        assert!(Instant::now() < deadline, "config change not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (from, to) = ("+15557654321", "+15559876543");
    for n in [from, to] {
        s.app.forbid(n);
        s.app.forbid(&n[1..]);
    }
    let with_auth = |path: &str, password: &str| {
        s.app.url(path).replacen("http://", &format!("http://{WEBHOOK_USER}:{password}@"), 1)
    };
    let count = || async {
        json(s.app.client.get(s.app.url("/inbound")).header("X-API-Key", s.app.admin()).send().await.unwrap())
            .await
            .as_array()
            .unwrap()
            .len()
    };
    let pdf = crate::helpers::pdf_with_pages(2);

    // Multipart and JSON deliveries are both stored, with the document.
    let (status, first) =
        s.fake.deliver_incoming(&with_auth("/webhooks/sinch/inbound", WEBHOOK_PASSWORD), false, from, to, &pdf).await;
    assert_eq!(status, 200);
    let (status, _) =
        s.fake.deliver_incoming(&with_auth("/sinch-inbound", WEBHOOK_PASSWORD), true, from, to, &pdf).await;
    assert_eq!(status, 200, "the reference's legacy path, JSON body");
    let list =
        json(s.app.client.get(s.app.url("/inbound")).header("X-API-Key", s.app.admin()).send().await.unwrap()).await;
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        assert_eq!(item["backend"], "sinch");
        assert_eq!(item["fr"], from);
        assert_eq!(item["pages"], 2);
        let id = item["id"].as_str().unwrap();
        let stored = s
            .app
            .client
            .get(s.app.url(&format!("/inbound/{id}/pdf")))
            .header("X-API-Key", s.app.admin())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&stored[..], &pdf[..]);
    }

    // A replay of the first delivery stores nothing new; wrong and missing credentials are refused.
    let (status, _) = s
        .fake
        .redeliver_incoming(&with_auth("/webhooks/sinch/inbound", WEBHOOK_PASSWORD), &first, false, from, to, &pdf)
        .await;
    assert_eq!(status, 200);
    let (status, _) =
        s.fake.deliver_incoming(&with_auth("/webhooks/sinch/inbound", "wrong-password"), false, from, to, &pdf).await;
    assert_eq!(status, 401);
    let (status, _) = s.fake.deliver_incoming(&s.app.url("/webhooks/sinch/inbound"), true, from, to, &pdf).await;
    assert_eq!(status, 401);
    assert_eq!(count().await, 2, "replayed, forged and unauthenticated deliveries store nothing");
    assert!(s.app.wait_log("webhook_rejected").await);

    let hooks =
        json(s.app.client.get(s.app.url("/admin/webhooks")).header("X-API-Key", s.app.admin()).send().await.unwrap())
            .await;
    let entry = hooks["webhooks"].as_array().unwrap().iter().find(|w| w["slot"] == "inbound").unwrap().clone();
    assert_eq!(entry["legacy_path"], "/sinch-inbound");
    assert_eq!((entry["accepted"].as_u64(), entry["rejected"].as_u64()), (Some(3), Some(2)));
    assert!(!hooks.to_string().contains(WEBHOOK_PASSWORD), "the password never appears: {hooks}");
}
db_test!(sinch_inbound_faxes_are_verified_stored_once_and_listed);
