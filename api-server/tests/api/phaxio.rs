//! The Phaxio plugin against the faithful Phaxio fake (`faxbot-fakes`): delivery by polling, transmission
//! failure, a clear non-retried 401, 429/5xx retried with Retry-After honoured, and a timed-out submission that
//! is found again by its job tag instead of being sent twice.
//!
//! Every test runs twice per database: with the built-in `phaxio` plugin and with `phaxio-http`, the HTTP
//! plugin manifest that describes the same behaviour as data (`manifests/phaxio-http.json`), so the manifest
//! plugin passes the same black-box suite as the code it replaces.

use std::time::{Duration, Instant};

use faxbot_fakes::Injection;
use faxbot_fakes::phaxio::PhaxioFake;

use crate::db_test;

use crate::helpers::{Db, NUMBER, Spawn, TestApp, json, one_page_pdf, phaxio_fake};

const API_SECRET: &str = "phaxio-secret-do-not-leak-3c1d";

/// Which plugin talks to the fake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plugin {
    /// The built-in `phaxio` plugin.
    BuiltIn,
    /// The `phaxio-http` manifest.
    Manifest,
}

impl Plugin {
    pub fn id(self) -> &'static str {
        match self {
            Plugin::BuiltIn => "phaxio",
            Plugin::Manifest => "phaxio-http",
        }
    }

    /// The config document with `settings` (pollIntervalMs, callbackUrl) for the fake at `base_url`.
    pub fn config(self, base_url: &str, mut settings: serde_json::Value) -> serde_json::Value {
        match self {
            Plugin::BuiltIn => {
                settings["baseUrl"] = base_url.into();
                serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "phaxio", "settings": settings}}})
            }
            // Unsigned: accepted because the document allows unverified plugins (pluginInstall).
            Plugin::Manifest => serde_json::json!({"version": 1, "manifests": [phaxio_manifest(base_url)],
                "features": {"pluginInstall": true},
                "providers": {"outbound": {"plugin": "phaxio-http", "settings": settings}}}),
        }
    }

    pub fn spawn(self, db: Db) -> Spawn {
        match self {
            Plugin::BuiltIn => Spawn::new(db),
            Plugin::Manifest => Spawn::new(db).env("FAXBOT_MANIFEST_ALLOW_LOOPBACK", "true"),
        }
    }
}

/// The shipped Phaxio manifest, pointed at the fake.
pub fn phaxio_manifest(base_url: &str) -> serde_json::Value {
    crate::helpers::manifest_for_fake(
        include_str!("../../../manifests/phaxio-http.json"),
        "https://api.phaxio.com/v2.1/",
        base_url,
    )
}

/// Runs a test on SQLite and PostgreSQL, with the built-in plugin and with the manifest.
macro_rules! phaxio_test {
    ($name:ident) => {
        mod $name {
            use super::Plugin;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Db::Sqlite, Plugin::BuiltIn).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_available() {
                    super::$name($crate::helpers::Db::Postgres, Plugin::BuiltIn).await
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn manifest_sqlite() {
                super::$name($crate::helpers::Db::Sqlite, Plugin::Manifest).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn manifest_postgres() {
                if $crate::helpers::postgres_available() {
                    super::$name($crate::helpers::Db::Postgres, Plugin::Manifest).await
                }
            }
        }
    };
}

async fn setup(db: Db, plugin: Plugin, credentials_secret: &str) -> (PhaxioFake, TestApp, tempfile::TempDir) {
    let fake = phaxio_fake(API_SECRET, "phaxio-webhook-token", Duration::from_millis(40)).await;
    let (app, dir) = plugin
        .spawn(db)
        .start_with_config(
            plugin.config(&fake.base_url, serde_json::json!({"pollIntervalMs": 100})),
            &[("outbound.apiKey", "phaxio-key"), ("outbound.apiSecret", credentials_secret)],
        )
        .await;
    app.forbid(API_SECRET);
    (fake, app, dir)
}

async fn submit(app: &TestApp, to: &str) -> String {
    let r = app.post_fax(Some(app.admin()), to, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    json(r).await["id"].as_str().unwrap().to_string()
}

async fn phaxio_delivers_by_polling_and_reports_transmission_failures(db: Db, plugin: Plugin) {
    let (fake, app, _dir) = setup(db, plugin, API_SECRET).await;
    let id = submit(&app, NUMBER).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(job["backend"], plugin.id());
    assert_eq!(fake.submissions(), 1);

    let id = submit(&app, "+15550000017").await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["error"].as_str().unwrap().contains("Busy (lineError)"), "{job}");
    assert_eq!(fake.submissions(), 2);
    app.assert_no_leaks();
}
phaxio_test!(phaxio_delivers_by_polling_and_reports_transmission_failures);

async fn phaxio_bad_credentials_fail_at_once_without_retries(db: Db, plugin: Plugin) {
    let (fake, app, _dir) = setup(db, plugin, "wrong-secret").await;
    let id = submit(&app, NUMBER).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "failed", "a refused submission is the reference's dispatch failure: {job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("rejected the credentials"), "{error}");
    assert!(!error.contains("retrying") && !error.contains("gave up"), "401 is not retried: {error}");
    assert_eq!(fake.submissions(), 0);
    app.assert_no_leaks();
}
phaxio_test!(phaxio_bad_credentials_fail_at_once_without_retries);

async fn phaxio_rate_limits_and_outages_are_retried_honouring_retry_after(db: Db, plugin: Plugin) {
    let (fake, app, _dir) = setup(db, plugin, API_SECRET).await;
    // The tag lookup and the submission are both API calls: inject enough for two failed attempts.
    fake.inject(Injection::Status { code: 429, retry_after: Some(1) });
    fake.inject(Injection::Status { code: 503, retry_after: None });
    let started = Instant::now();
    let id = submit(&app, NUMBER).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 must be honoured");
    assert_eq!(fake.submissions(), 1);
}
phaxio_test!(phaxio_rate_limits_and_outages_are_retried_honouring_retry_after);

async fn phaxio_timed_out_submission_is_found_again_not_sent_twice(db: Db, plugin: Plugin) {
    let (fake, app, _dir) = setup(db, plugin, API_SECRET).await;
    // One lookup passes, then the submission creates the fax but answers after the 2 s provider timeout.
    fake.inject(Injection::Stall(Duration::ZERO));
    fake.inject(Injection::Stall(Duration::from_secs(4)));
    let id = submit(&app, NUMBER).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(fake.submissions(), 1, "the retry adopted the fax the timed-out submission created");
    assert!(app.logs().join("\n").contains("adopted a fax an earlier submission already created"));
}
phaxio_test!(phaxio_timed_out_submission_is_found_again_not_sent_twice);

async fn phaxio_callbacks_are_verified_before_they_change_anything(db: Db, plugin: Plugin) {
    let (fake, app, dir) = setup(db, plugin, API_SECRET).await;
    // Switch to callbacks: a status poll only every 10 minutes, so only an accepted webhook can finish a job
    // within the test.
    let before = json(
        app.client.get(app.url("/admin/features")).header("X-API-Key", app.admin()).send().await.unwrap(),
    )
    .await["revision"]
        .clone();
    std::fs::write(dir.path().join("credentials/outbound.webhookToken"), "phaxio-webhook-token").unwrap();
    let callback = app.url(&format!("/webhooks/{}", plugin.id()));
    std::fs::write(
        dir.path().join("faxbot.json"),
        plugin
            .config(&fake.base_url, serde_json::json!({"pollIntervalMs": 600000, "callbackUrl": callback}))
            .to_string(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = json(app.client.get(app.url("/admin/features")).header("X-API-Key", app.admin()).send().await.unwrap())
            .await;
        if f["revision"] != before {
            break;
        }
        assert!(Instant::now() < deadline, "config change not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Delivered by callback.
    let id = submit(&app, NUMBER).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(15)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(fake.webhooks().last().unwrap().answered, 200);
    let sid = job["provider_sid"].as_str().unwrap().to_string();

    // A webhook signed with the wrong token is refused (401), audited, and changes nothing.
    fake.inject(Injection::WrongSignature);
    let forged = submit(&app, NUMBER).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.webhooks().len() < 2 {
        assert!(Instant::now() < deadline, "the forged webhook never went out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fake.webhooks()[1].answered, 401);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = json(app.get_fax(Some(app.admin()), &forged).await).await;
    assert_ne!(job["status"], "SUCCESS", "a forged webhook must not complete a job: {job}");
    assert!(app.logs().join("\n").contains("webhook_rejected"), "rejections are audited");

    // Missing signature: refused. A replay of an authentic webhook: accepted, and nothing moves.
    let fax_json = fake.fax(sid.parse().unwrap()).unwrap().to_string();
    let fields = [
        ("event_type", "fax_completed"),
        ("direction", "sent"),
        ("is_test", "false"),
        ("success", "true"),
        ("fax", fax_json.as_str()),
    ];
    let form = || fields.iter().fold(reqwest::multipart::Form::new(), |f, (k, v)| f.text(k.to_string(), v.to_string()));
    let r = app.client.post(&callback).multipart(form()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let signature = faxbot_webhooks::phaxio::sign(b"phaxio-webhook-token", &callback, &fields, &[]);
    for _ in 0..2 {
        let r =
            app.client.post(&callback).header("X-Phaxio-Signature", &signature).multipart(form()).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    if plugin == Plugin::BuiltIn {
        legacy_path_works_the_same(&app, &signature, form()).await;
    }
    assert_eq!(json(app.get_fax(Some(app.admin()), &id).await).await["status"], "SUCCESS");
    assert_eq!(app.client.post(app.url("/webhooks/fax9000")).body("x").send().await.unwrap().status(), 404);
    app.assert_no_leaks();
}
phaxio_test!(phaxio_callbacks_are_verified_before_they_change_anything);

async fn legacy_path_works_the_same(app: &TestApp, signature: &str, form: reqwest::multipart::Form) {
    let r = app
        .client
        .post(app.url("/phaxio-callback"))
        .header("X-Phaxio-Signature", signature)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the reference's legacy path works the same");
}

async fn phaxio_fetches_the_document_by_a_tokenized_url_that_expires(db: Db) {
    let fake = phaxio_fake(API_SECRET, "phaxio-webhook-token", Duration::from_millis(40)).await;
    // Phaxio must reach this server at PUBLIC_API_URL, so the port is chosen before it starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (app, _dir) = Spawn::new(db)
        .env("FAXBOT_LISTEN", &format!("127.0.0.1:{port}"))
        .env("PUBLIC_API_URL", &format!("http://127.0.0.1:{port}/"))
        .env("FAXBOT_PDF_TOKEN_TTL_SECS", "3")
        .start_with_config(
            serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "phaxio",
                "settings": {"baseUrl": fake.base_url, "pollIntervalMs": 100, "sendMode": "contentUrl"}}}}),
            &[("outbound.apiKey", "phaxio-key"), ("outbound.apiSecret", API_SECRET)],
        )
        .await;
    app.forbid(API_SECRET);
    let pdf = crate::helpers::pdf_with_pages(2);
    let r = app.post_fax(Some(app.admin()), NUMBER, "a.pdf", pdf.clone()).await;
    assert_eq!(r.status(), 202);
    let id = json(r).await["id"].as_str().unwrap().to_string();
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let fetches = fake.content_fetches();
    assert_eq!(fetches.len(), 1, "Phaxio fetched the document once");
    let (url, ok) = fetches[0].clone();
    assert!(ok, "the fetch returned the PDF");
    let prefix = format!("http://127.0.0.1:{port}/fax/{id}/pdf?token=");
    assert!(url.starts_with(&prefix), "{url}");
    let token = url[prefix.len()..].to_string();
    assert_eq!(token.len(), 43);
    app.forbid(&token);

    // The URL is reusable until it expires, serves exactly the document, and nothing else opens it.
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert_eq!(&r.bytes().await.unwrap()[..], &pdf[..]);
    let wrong = format!("{prefix}{}", "B".repeat(43));
    let r = app.client.get(&wrong).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(json(r).await["detail"], "Invalid token");
    assert_eq!(app.client.get(app.url(&format!("/fax/{id}/pdf"))).send().await.unwrap().status(), 422);
    let other = app.url(&format!("/fax/0123456789abcdef0123456789abcdef/pdf?token={token}"));
    assert_eq!(json(app.client.get(&other).send().await.unwrap()).await["detail"], "Job not found");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(json(r).await["detail"], "Token expired");
    assert!(app.wait_log("pdf_served").await);
}
db_test!(phaxio_fetches_the_document_by_a_tokenized_url_that_expires);
