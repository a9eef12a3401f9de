//! `POST /fax/{id}/cancel`: a job that was never sent is cancelled locally and can no longer be sent; one in
//! transmission is cancelled at the provider (the Phaxio fake) and ends with the provider's verdict.

use std::time::{Duration, Instant};

use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, TestApp, json, one_page_pdf, phaxio_fake};

async fn cancel(app: &TestApp, key: &str, id: &str) -> reqwest::Response {
    app.client.post(app.url(&format!("/fax/{id}/cancel"))).header("X-API-Key", key).send().await.unwrap()
}

async fn a_held_job_is_cancelled_and_never_sent(db: Db) {
    let app = Spawn::new(db).env("FAX_DISABLED", "true").start().await;
    let r = app.post_fax(Some(app.admin()), NUMBER, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    let id = json(r).await["id"].as_str().unwrap().to_string();
    let reader = app.create_key(&["fax:read"]).await;
    assert_eq!(cancel(&app, &reader, &id).await.status(), 403, "cancelling needs fax:send");
    assert_eq!(cancel(&app, app.admin(), "0123456789abcdef0123456789abcdef").await.status(), 404);

    let r = cancel(&app, app.admin(), &id).await;
    assert_eq!(r.status(), 200);
    let job = json(r).await;
    assert_eq!(job["status"], "FAILED");
    assert_eq!(job["error"], "Cancelled by the caller before it was sent");
    let r = cancel(&app, app.admin(), &id).await;
    assert_eq!(r.status(), 409);
    assert_eq!(json(r).await["detail"], "Job already finished");
    assert!(app.wait_log("job_cancelled").await);

    // Sending enabled again: the cancelled job stays cancelled (nothing is dispatched).
    let mut app = app;
    app.kill();
    let app = Spawn::new(db).reuse(&app).env("FAX_DISABLED", "false").start().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let job = json(app.get_fax(Some(app.admin()), &id).await).await;
    assert_eq!((job["status"].as_str(), job["provider_sid"].as_str()), (Some("FAILED"), None), "{job}");
}
db_test!(a_held_job_is_cancelled_and_never_sent);

async fn a_fax_in_transmission_is_cancelled_at_the_provider(db: Db) {
    let fake = phaxio_fake("phaxio-secret-cx-9", "unused", Duration::from_millis(1500)).await;
    let (app, _dir) = Spawn::new(db)
        .start_with_config(
            serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "phaxio",
                "settings": {"baseUrl": fake.base_url, "pollIntervalMs": 100}}}}),
            &[("outbound.apiKey", "phaxio-key"), ("outbound.apiSecret", "phaxio-secret-cx-9")],
        )
        .await;
    let r = app.post_fax(Some(app.admin()), NUMBER, "a.pdf", one_page_pdf()).await;
    let id = json(r).await["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job = json(app.get_fax(Some(app.admin()), &id).await).await;
        if job["provider_sid"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "never submitted: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = cancel(&app, app.admin(), &id).await;
    assert_eq!(r.status(), 202, "cancellation requested from the provider");
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(10)).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["error"].as_str().unwrap().contains("manually canceled"), "{job}");
    assert_eq!(fake.submissions(), 1);
    assert_eq!(cancel(&app, app.admin(), &id).await.status(), 409);
}
db_test!(a_fax_in_transmission_is_cancelled_at_the_provider);
