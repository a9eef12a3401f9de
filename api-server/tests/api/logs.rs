//! The log-leak scan: exercise every code path that touches a number, a key, a token or a document with
//! the most verbose logging, then fail on any full phone number, secret or token in the captured output.
//! (Every other test runs the same scan when its server is dropped.)

use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, json, one_page_pdf};
use std::time::Duration;

async fn trace_level_logs_never_contain_phi_or_secrets(db: Db) {
    let app = Spawn::new(db).env("RUST_LOG", "trace").env("MAX_REQUESTS_PER_MINUTE", "8").start().await;
    // The rate limit below counts in wall-clock minutes: begin with time to reach it inside one.
    crate::helpers::start_of_a_minute().await;
    let key = app.create_key(&["fax:send", "fax:read"]).await;
    let secret = crate::helpers::secret_of(&key).to_string();
    let mut ids = Vec::new();
    for to in [NUMBER, "+15557770000", "+15557770001", "+15557770002"] {
        let r = app.post_fax(Some(app.admin()), to, "patient-jane-doe.pdf", one_page_pdf()).await;
        assert_eq!(r.status(), 202);
        ids.push(json(r).await["id"].as_str().unwrap().to_string());
    }
    let r = app.post_fax(Some(&key), NUMBER, "note.txt", b"Patient: Jane Doe, DOB 1970-01-01".to_vec()).await;
    assert_eq!(r.status(), 202);
    // Failures that echo input: wrong keys, bad numbers, rate limits.
    let _ = app.post_fax(Some(&format!("{key}x")), NUMBER, "a.pdf", one_page_pdf()).await;
    let _ = app.post_fax(Some(&key), "+1555123456a", "a.pdf", one_page_pdf()).await;
    for _ in 0..8 {
        let _ = app.post_fax(Some(&key), NUMBER, "a.pdf", one_page_pdf()).await;
    }
    assert!(app.wait_log("\"event\":\"rate_limited\"").await, "the 429 path was exercised");
    let r = app
        .client
        .post(app.url(&format!("/admin/api-keys/{}/rotate", &key[9..21])))
        .header("X-API-Key", app.admin())
        .send()
        .await
        .unwrap();
    let rotated = json(r).await["token"].as_str().unwrap().to_string();
    app.forbid(&rotated);
    // Let every job finish (polling would trip the rate limit this test sets on purpose).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let reader = app.create_key(&["fax:read"]).await;
    for id in &ids {
        let status = json(app.get_fax(Some(&reader), id).await).await["status"].as_str().unwrap().to_string();
        assert!(["SUCCESS", "FAILED", "failed"].contains(&status.as_str()), "{id}: {status}");
    }
    let logs = app.logs();
    assert!(logs.len() > 50, "trace logging produced suspiciously little output");
    let all = logs.join("\n");
    assert!(all.contains("\"event\":\"job_created\""), "audit events are in the captured stream");
    assert!(all.contains("********4567"), "numbers appear masked to the last four digits");
    assert!(!all.contains(&secret));
    assert!(
        !all.contains("Jane Doe") && !all.contains("jane-doe"),
        "document contents and file names never reach the logs"
    );
    app.assert_no_leaks();
    // The PHI guard reads every line too. Honest code never needs it: a catch in these flows would be a
    // number the code put into a log line (or an id the guard mistakes for one, which would roll healthy
    // canaries back).
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let caught: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("faxbot_phi_guard_hits_total{") && l.contains("sink=\"log\""))
        .collect();
    assert!(caught.is_empty(), "the PHI guard caught numbers in honest log lines: {caught:?}");
}
db_test!(trace_level_logs_never_contain_phi_or_secrets);

/// Reads one counter of the server's `/metrics`, summed over its series (0 when it has none yet).
async fn counter(app: &crate::helpers::TestApp, name: &str) -> f64 {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn the_audit_file_holds_the_trail_and_unwritable_ones_are_counted(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let app = Spawn::new(db).env("AUDIT_LOG_FILE", path.to_str().unwrap()).start().await;
    let r = app.post_fax(Some(app.admin()), NUMBER, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    let id = json(r).await["id"].as_str().unwrap().to_string();
    app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    let trail = std::fs::read_to_string(&path).unwrap();
    let events: Vec<serde_json::Value> = trail.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().any(|e| e["event"] == "job_created" && e["job_id"] == id.as_str()), "{trail}");
    // And stdout still has it: a filter set-up that lost events from both outputs was caught here.
    assert!(app.logs().iter().any(|l| l.contains("\"event\":\"job_created\"")), "the event reached stdout too");
    assert!(events.iter().all(|e| e["target"] == "audit"), "only audit events go to the file: {trail}");
    assert!(!trail.contains(&NUMBER[2..]), "the file holds no full number: {trail}");
    assert_eq!(counter(&app, "faxbot_audit_write_failures_total").await, 0.0);

    // A trail that cannot be written: the service still works, and every lost event is counted.
    let app =
        Spawn::new(db).env("AUDIT_LOG_FILE", dir.path().join("no/such/dir/audit.log").to_str().unwrap()).start().await;
    assert!(app.wait_log("the audit file cannot be opened").await);
    let r = app.post_fax(Some(app.admin()), NUMBER, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202, "an unwritable audit file does not stop the service");
    let lost = counter(&app, "faxbot_audit_write_failures_total").await;
    assert!(lost >= 1.0, "the job_created event that did not reach the file is counted: {lost}");
    assert!(app.logs().iter().any(|l| l.contains("\"event\":\"job_created\"")), "the event still reached stdout");
}
db_test!(the_audit_file_holds_the_trail_and_unwritable_ones_are_counted);
