//! The `external` plugin against a sidecar written with the Rust plugin kit (`faxbot-plugin-kit`), running in
//! this test process on loopback as a sidecar runs beside the server in its pod: delivery and transmission
//! failures by the conformance numbers, a refused destination failing at once, a busy provider retried, the
//! plugin token, callbacks the sidecar verifies (forged refused, authentic ones completing the job), and a
//! timed-out submission that is repeated only when the sidecar says it is idempotent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use faxbot_plugin_kit::{
    FaxAnswer, Plugin, PluginError, SendRequest, SidecarManifest, SimulatedProvider, WebhookRequest, scenario, sign,
};

use crate::db_test;
use crate::helpers::{Db, Spawn, TestApp, json, one_page_pdf};

const TOKEN: &str = "plugin-token-do-not-leak-5f2a";
const WEBHOOK_SECRET: &str = "sim-webhook-secret-do-not-leak-81c3";

/// The kit's simulated provider, counting submissions, optionally slow to answer the first.
struct Sidecar {
    sim: SimulatedProvider,
    sends: AtomicUsize,
    stall: Duration,
    idempotent: bool,
}

#[async_trait]
impl Plugin for Sidecar {
    fn manifest(&self) -> SidecarManifest {
        serde_json::from_value(serde_json::json!({
            "protocol": 1, "id": "kit-sidecar", "name": "Kit sidecar", "version": "1",
            "hipaaCompliant": false, "capabilities": ["send", "status", "cancel", "webhook"],
            "idempotent": self.idempotent, "needsDocument": true, "pollIntervalMs": 1000,
            "webhook": {"verification": "HMAC-SHA256 of the body in X-Sim-Signature"}
        }))
        .expect("a protocol manifest")
    }

    async fn send(&self, request: SendRequest) -> Result<FaxAnswer, PluginError> {
        let attempt = self.sends.fetch_add(1, Ordering::SeqCst);
        assert!(request.document.as_ref().is_some_and(|d| d.base64.starts_with("JVBERi")), "the PDF arrives");
        let answer = self.sim.send(&request);
        if attempt == 0 {
            tokio::time::sleep(self.stall).await;
        }
        answer
    }

    async fn status(&self, id: &str) -> Result<FaxAnswer, PluginError> {
        self.sim.status(id)
    }

    async fn cancel(&self, id: &str) -> Result<(), PluginError> {
        self.sim.cancel(id)
    }

    async fn webhook(&self, request: &WebhookRequest, body: &[u8]) -> Result<Vec<FaxAnswer>, PluginError> {
        self.sim.webhook(request, body)
    }
}

struct Setup {
    app: TestApp,
    sidecar: Arc<Sidecar>,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The sidecar (with `sidecar_token`) and a server bound to it presenting `server_token`.
async fn setup(db: Db, sidecar_token: &str, server_token: &str, stall: Duration, idempotent: bool) -> Setup {
    setup_with(db, sidecar_token, server_token, stall, idempotent, false).await
}

/// As [`setup`]; `hipaa` is the binding's `hipaaCompliant` (the sidecar's manifest says false).
async fn setup_with(
    db: Db,
    sidecar_token: &str,
    server_token: &str,
    stall: Duration,
    idempotent: bool,
    hipaa: bool,
) -> Setup {
    let sidecar = Arc::new(Sidecar {
        sim: SimulatedProvider::new(Some(WEBHOOK_SECRET.into())),
        sends: AtomicUsize::new(0),
        stall,
        idempotent,
    });
    let app = faxbot_plugin_kit::router(sidecar.clone(), Some(sidecar_token.into())).expect("a valid manifest");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "external",
        "settings": {"url": url, "timeoutMs": 1500, "hipaaCompliant": hipaa,
                     "callbackUrl": format!("http://127.0.0.1:{port}/webhooks/external")}}},
        "features": {"v3Plugins": true}});
    let (app, dir) = Spawn::new(db)
        .env("FAXBOT_LISTEN", &format!("127.0.0.1:{port}"))
        .start_with_config(config, &[("outbound.pluginToken", server_token)])
        .await;
    app.forbid(TOKEN);
    app.forbid(WEBHOOK_SECRET);
    Setup { app, sidecar, port, _dir: dir }
}

async fn submit(app: &TestApp, to: &str) -> String {
    let r = app.post_fax(Some(app.admin()), to, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    json(r).await["id"].as_str().unwrap().to_string()
}

async fn external_sidecar_delivers_fails_and_refuses_by_the_conformance_numbers(db: Db) {
    let s = setup(db, TOKEN, TOKEN, Duration::ZERO, true).await;
    let app = &s.app;
    let id = submit(app, scenario::DELIVERED).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(job["backend"], "external");

    let id = submit(app, scenario::TRANSMISSION_FAILS).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["error"].as_str().unwrap().contains("no answer from the receiving fax machine"), "{job}");

    let before = s.sidecar.sends.load(Ordering::SeqCst);
    let id = submit(app, scenario::REJECTED).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("refused the destination"), "{job}");
    assert_eq!(s.sidecar.sends.load(Ordering::SeqCst), before + 1, "a refusal is not retried");

    // Busy: retried after the sidecar's hint (1 s), so a second attempt arrives.
    let before = s.sidecar.sends.load(Ordering::SeqCst);
    let _busy = submit(app, scenario::BUSY).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while s.sidecar.sends.load(Ordering::SeqCst) < before + 2 {
        assert!(std::time::Instant::now() < deadline, "a busy answer was not retried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health =
        json(app.client.get(app.url("/admin/webhooks")).header("X-API-Key", app.admin()).send().await.unwrap()).await;
    assert!(health.to_string().contains("X-Sim-Signature"), "the sidecar's scheme is shown: {health}");
    app.assert_no_leaks();
}
db_test!(external_sidecar_delivers_fails_and_refuses_by_the_conformance_numbers);

async fn external_a_wrong_plugin_token_fails_the_job_without_retries(db: Db) {
    let s = setup(db, TOKEN, "not-the-plugin-token", Duration::ZERO, true).await;
    let id = submit(&s.app, scenario::DELIVERED).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("plugin token"), "{job}");
    assert_eq!(s.sidecar.sends.load(Ordering::SeqCst), 0, "nothing reached the plugin code");
    s.app.assert_no_leaks();
}
db_test!(external_a_wrong_plugin_token_fails_the_job_without_retries);

async fn external_callbacks_are_verified_by_the_sidecar(db: Db) {
    let s = setup(db, TOKEN, TOKEN, Duration::ZERO, true).await;
    let app = &s.app;
    let id = submit(app, scenario::DELIVERED).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while s.sidecar.sends.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "never submitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let callback = format!("http://127.0.0.1:{}/webhooks/external", s.port);
    let body = br#"{"providerId":"sim-1","status":"delivered"}"#;
    for signature in [None, Some("00".repeat(32))] {
        let mut r = app.client.post(&callback).header("content-type", "application/json").body(body.to_vec());
        if let Some(sig) = signature {
            r = r.header("x-sim-signature", sig);
        }
        assert_eq!(r.send().await.unwrap().status(), 401, "a forged callback is refused");
    }
    assert!(app.wait_log("webhook_rejected").await, "refusals are audited");
    let r = app
        .client
        .post(&callback)
        .header("content-type", "application/json")
        .header("x-sim-signature", sign(WEBHOOK_SECRET, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "an authentic callback is accepted");
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    app.assert_no_leaks();
}
db_test!(external_callbacks_are_verified_by_the_sidecar);

async fn external_a_timed_out_submission_is_repeated_only_when_idempotent(db: Db) {
    // Not idempotent: the answer comes after the 1.5 s timeout; the job fails as ambiguous, sent once.
    let s = setup(db, TOKEN, TOKEN, Duration::from_secs(3), false).await;
    let id = submit(&s.app, scenario::DELIVERED).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap_or_default().contains("not sent again"), "{job}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.sidecar.sends.load(Ordering::SeqCst), 1, "sent once");
    s.app.assert_no_leaks();
    drop(s);

    // Idempotent: repeated with the same key, and the simulated provider answers with the first fax.
    let s = setup(db, TOKEN, TOKEN, Duration::from_secs(3), true).await;
    let id = submit(&s.app, scenario::DELIVERED).await;
    let job = s.app.wait_terminal(Some(s.app.admin()), &id, Duration::from_secs(40)).await;
    assert!(s.sidecar.sends.load(Ordering::SeqCst) >= 2, "repeated after the timeout");
    assert_eq!(job["status"], "SUCCESS", "{job}");
    s.app.assert_no_leaks();
}
db_test!(external_a_timed_out_submission_is_repeated_only_when_idempotent);

async fn external_a_sidecar_that_is_not_hipaa_compliant_sends_nothing_for_a_hipaa_provider(db: Db) {
    let s = setup_with(db, TOKEN, TOKEN, Duration::ZERO, true, true).await;
    let id = submit(&s.app, scenario::DELIVERED).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let job = json(s.app.get_fax(Some(s.app.admin()), &id).await).await;
        if job["error"].as_str().is_some_and(|e| e.contains("HIPAA")) {
            assert_ne!(job["status"], "SUCCESS", "{job}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never refused: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.sidecar.sends.load(Ordering::SeqCst), 0, "nothing was sent through it");
    s.app.assert_no_leaks();
}
db_test!(external_a_sidecar_that_is_not_hipaa_compliant_sends_nothing_for_a_hipaa_provider);
