//! Failover across outbound providers: the primary (the Phaxio fake) fails with an error of its own and the
//! job is delivered by the secondary (the Sinch fake); the job, the metrics and the event bus show it. A fax
//! the primary rejects (422) does not move: another provider would reject it too.

use std::time::Duration;

use faxbot_fakes::Injection;
use faxbot_fakes::phaxio::PhaxioFake;
use faxbot_fakes::sinch::{SinchFake, SinchFakeConfig};
use serde_json::json as j;

use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, TestApp, json, one_page_pdf, phaxio_fake};

async fn setup(db: Db) -> (PhaxioFake, SinchFake, TestApp, tempfile::TempDir) {
    let phaxio = phaxio_fake("phaxio-secret-fo-41", "unused", Duration::from_millis(40)).await;
    let sinch = SinchFake::start(SinchFakeConfig {
        key_secret: "sinch-secret-fo-42".into(),
        step: Duration::from_millis(40),
        ..Default::default()
    })
    .await
    .unwrap();
    let (app, dir) = Spawn::new(db)
        .start_with_config(
            j!({"version": 1, "providers": {
                "outbound": {"plugin": "phaxio", "settings": {"baseUrl": phaxio.base_url, "pollIntervalMs": 100}},
                "outboundFailover": [{"plugin": "sinch", "settings": {"baseUrl": format!("{}/v3/", sinch.base_url),
                    "authUrl": sinch.token_url, "projectId": "fake-project", "pollIntervalMs": 100}}]}}),
            &[
                ("outbound.apiKey", "phaxio-key"),
                ("outbound.apiSecret", "phaxio-secret-fo-41"),
                ("failover1.keyId", "fake-key-id"),
                ("failover1.keySecret", "sinch-secret-fo-42"),
            ],
        )
        .await;
    (phaxio, sinch, app, dir)
}

async fn submit(app: &TestApp) -> String {
    let r = app.post_fax(Some(app.admin()), NUMBER, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    json(r).await["id"].as_str().unwrap().to_string()
}

async fn a_primary_outage_fails_over_to_the_secondary(db: Db) {
    let (phaxio, sinch, app, _dir) = setup(db).await;

    // Healthy primary: it sends, the secondary is not touched.
    let id = submit(&app).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!((job["status"].as_str(), job["backend"].as_str()), (Some("SUCCESS"), Some("phaxio")), "{job}");
    assert_eq!((phaxio.submissions(), sinch.submissions()), (1, 0));

    // Primary outage (503): the job moves to Sinch and is delivered there.
    phaxio.inject(Injection::Status { code: 503, retry_after: None });
    let id = submit(&app).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(job["backend"], "sinch", "the job records the provider that sent it: {job}");
    assert_eq!(job["provider_sid"].as_str().map(str::len), Some(26), "a Sinch fax id: {job}");
    assert_eq!((phaxio.submissions(), sinch.submissions()), (1, 1));

    // Refused credentials at the primary also move the job (retrying there cannot help).
    phaxio.inject(Injection::Status { code: 401, retry_after: None });
    let id = submit(&app).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!((job["status"].as_str(), job["backend"].as_str()), (Some("SUCCESS"), Some("sinch")), "{job}");
    assert_eq!(sinch.submissions(), 2);

    // A fax the primary rejects does not move.
    phaxio.inject(Injection::Status { code: 422, retry_after: None });
    let id = submit(&app).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!((job["status"].as_str(), job["backend"].as_str()), (Some("failed"), Some("phaxio")), "{job}");
    assert_eq!(sinch.submissions(), 2, "a rejected fax is not offered to the secondary");

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let failovers = metrics
        .lines()
        .find(|l| l.starts_with("faxbot_provider_failovers_total{") && l.contains("plugin=\"phaxio\""))
        .unwrap_or_else(|| panic!("failover metric missing:\n{metrics}"));
    assert!(failovers.contains("outcome=\"sinch\"") && failovers.ends_with(" 2"), "{failovers}");
    assert!(
        metrics.lines().any(|l| l.starts_with("faxbot_jobs_total{")
            && l.contains("plugin=\"sinch\"")
            && l.contains("outcome=\"success\"")
            && l.ends_with(" 2")),
        "deliveries are counted for the provider that made them:\n{metrics}"
    );
    let events =
        json(app.client.get(app.url("/admin/events")).header("X-API-Key", app.admin()).send().await.unwrap()).await;
    let failover_events: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "plugin.error" && e["detail"].as_str().unwrap_or("").starts_with("failover to sinch"))
        .collect();
    assert_eq!(failover_events.len(), 2, "{events}");
}
db_test!(a_primary_outage_fails_over_to_the_secondary);
