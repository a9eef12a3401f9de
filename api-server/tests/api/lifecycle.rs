use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, TestApp, json, one_page_pdf};
use std::time::Duration;

async fn post_id(app: &TestApp, to: &str) -> String {
    let r = app.post_fax(Some(app.admin()), to, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    json(r).await["id"].as_str().unwrap().to_string()
}

async fn simulated_line_failures_reach_the_right_terminal_states(db: Db) {
    let app = TestApp::spawn(db).await;
    let failed = post_id(&app, "+15557770000").await;
    let rejected = post_id(&app, "+15557770001").await;
    let busy = post_id(&app, "+15557770002").await;

    let f = app.wait_terminal(Some(app.admin()), &failed, Duration::from_secs(20)).await;
    assert_eq!(f["status"], "FAILED", "transmission failure is upper-case FAILED");
    assert_eq!(f["error"], "No answer (simulated)");
    assert!(f["provider_sid"].is_string());

    let r = app.wait_terminal(Some(app.admin()), &rejected, Duration::from_secs(20)).await;
    assert_eq!(r["status"], "failed", "a refused submission is lower-case failed");
    assert!(r["error"].as_str().unwrap().contains("provider rejected the fax"), "{r}");
    assert!(r["provider_sid"].is_null());

    let b = app.wait_terminal(Some(app.admin()), &busy, Duration::from_secs(20)).await;
    assert_eq!(b["status"], "SUCCESS", "busy answers are retried with backoff: {b}");
    assert!(app.logs().iter().filter(|l| l.contains("submission failed; retrying")).count() >= 2);

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("faxbot_provider_submissions_total{plugin=\"test\",outcome=\"unavailable\""), "{metrics}");
    assert!(metrics.contains("faxbot_jobs_total{plugin=\"test\",outcome=\"transmission_failed\""), "{metrics}");
    assert!(metrics.contains("faxbot_jobs_total{plugin=\"test\",outcome=\"dispatch_failed\""), "{metrics}");
}
db_test!(simulated_line_failures_reach_the_right_terminal_states);

async fn retries_are_bounded(db: Db) {
    let config = serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test",
        "settings": {"busySuffix": "0002", "busyAttempts": 50, "busyRetryAfterMs": 10, "deliveryLatencyMs": 0}}}});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let app =
        Spawn::new(db).env("FAXBOT_CONFIG_PATH", path.to_str().unwrap()).env("FAXBOT_MAX_ATTEMPTS", "3").start().await;
    let id = post_id(&app, "+15557770002").await;
    let done = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "failed");
    assert!(done["error"].as_str().unwrap().contains("gave up after 3 attempts"), "{done}");
}
db_test!(retries_are_bounded);

async fn disabled_sending_holds_jobs_until_enabled(db: Db) {
    let mut app = Spawn::new(db).env("FAX_DISABLED", "true").start().await;
    let id = post_id(&app, NUMBER).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(json(app.get_fax(Some(app.admin()), &id).await).await["status"], "queued");
    let features =
        json(app.client.get(app.url("/admin/features")).header("X-API-Key", app.admin()).send().await.unwrap()).await;
    assert_eq!(features["dispatch_enabled"], false);
    // Restart with sending enabled: the held job is released and sent.
    app.kill();
    let enabled = Spawn::new(db).reuse(&app).env("FAX_DISABLED", "false").start().await;
    let done = enabled.wait_terminal(Some(enabled.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "SUCCESS");
}
db_test!(disabled_sending_holds_jobs_until_enabled);

async fn sigterm_drains_and_exits_cleanly(db: Db) {
    let mut app = TestApp::spawn(db).await;
    let id = post_id(&app, NUMBER).await;
    let status = app.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status:?}");
    let logs = app.logs();
    assert!(logs.iter().any(|l| l.contains("shutdown requested")));
    assert!(logs.iter().any(|l| l.contains("\"message\":\"stopped\"")));
    // The job survives the restart and completes.
    app.restart().await;
    let done = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "SUCCESS");
}
db_test!(sigterm_drains_and_exits_cleanly);

async fn documents_of_finished_jobs_are_deleted_after_the_ttl(db: Db) {
    let config = serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test",
        "settings": {"busySuffix": "0002", "busyAttempts": 100, "busyRetryAfterMs": 10, "deliveryLatencyMs": 100}}}});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let app = Spawn::new(db)
        .env("FAXBOT_CONFIG_PATH", path.to_str().unwrap())
        .env("FAXBOT_MAX_ATTEMPTS", "100")
        .env("FAXBOT_ARTIFACT_TTL_SECS", "1")
        .env("FAXBOT_CLEANUP_INTERVAL_SECS", "1")
        .start()
        .await;
    let done = post_id(&app, NUMBER).await;
    let pending = post_id(&app, "+15557770002").await;
    let docs = app.data.path().join("data/documents");
    app.wait_terminal(Some(app.admin()), &done, Duration::from_secs(20)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while docs.join(format!("{done}.pdf")).exists() {
        assert!(std::time::Instant::now() < deadline, "expired document was not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(docs.join(format!("{pending}.pdf")).exists(), "documents of unfinished jobs are kept");
    let job = json(app.get_fax(Some(app.admin()), &done).await).await;
    assert_eq!(job["status"], "SUCCESS", "the job row outlives its document");
    // The audit line is written right after the deletion and the row update.
    assert!(app.wait_log("\"event\":\"document_purged\"").await, "the purge was not audited");
}
db_test!(documents_of_finished_jobs_are_deleted_after_the_ttl);

async fn readiness_fails_first_during_the_drain_delay(db: Db) {
    let mut app = Spawn::new(db).env("FAXBOT_DRAIN_DELAY_SECS", "2").start().await;
    let pid = app.pid();
    assert!(std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap().success());
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let ready = loop {
        let r = app.client.get(app.url("/health/ready")).send().await.unwrap();
        if r.status() == 503 {
            break json(r).await;
        }
        assert!(std::time::Instant::now() < deadline, "readiness never failed after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready["status"], "not_ready");
    assert!(ready["warnings"].as_array().unwrap().iter().any(|w| w == "shutting down"), "{ready}");
    // Work is still accepted while load balancers catch up.
    let r = app.post_fax(Some(app.admin()), NUMBER, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    let status = app.terminate_wait();
    assert!(status.success(), "{status:?}");
}
db_test!(readiness_fails_first_during_the_drain_delay);

async fn documents_no_job_references_are_removed(db: Db) {
    let mut app = TestApp::spawn(db).await;
    let id = post_id(&app, NUMBER).await;
    app.kill();
    let docs = app.data.path().join("data/documents");
    let stray = docs.join(format!("{}.pdf", crate::helpers::uuid_hex()));
    std::fs::write(&stray, b"%PDF-1.4 left behind by a crash").unwrap();
    let unrelated = docs.join("notes.txt");
    std::fs::write(&unrelated, b"not ours").unwrap();
    let kept = docs.join(format!("{id}.pdf"));
    for f in [&stray, &kept, &unrelated] {
        let ok = std::process::Command::new("touch").arg("-d").arg("2 hours ago").arg(f).status().unwrap();
        assert!(ok.success());
    }
    let app = Spawn::new(db).reuse(&app).env("FAXBOT_ORPHAN_MIN_AGE_SECS", "60").start().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stray.exists() {
        assert!(std::time::Instant::now() < deadline, "orphaned document was not removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(kept.exists(), "a document its job references is kept");
    assert!(unrelated.exists(), "files that are not ours are left alone");
    assert!(app.wait_log("document_orphan_removed").await);
}
db_test!(documents_no_job_references_are_removed);
