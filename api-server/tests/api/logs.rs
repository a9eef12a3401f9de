//! The log-leak scan: exercise every code path that touches a number, a key, a token or a document with
//! the most verbose logging, then fail on any full phone number, secret or token in the captured output.
//! (Every other test runs the same scan when its server is dropped.)

use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, json, one_page_pdf};
use std::time::Duration;

async fn trace_level_logs_never_contain_phi_or_secrets(db: Db) {
    let app = Spawn::new(db).env("RUST_LOG", "trace").env("MAX_REQUESTS_PER_MINUTE", "8").start().await;
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
}
db_test!(trace_level_logs_never_contain_phi_or_secrets);
