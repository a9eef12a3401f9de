//! Acceptance: SIGKILL the server repeatedly while clients submit; afterwards every job that got a 202
//! exists and reaches a terminal state, and the simulated line has recorded no duplicate transmission.
//!
//! The clients behave as a careful client should: every fax carries an `Idempotency-Key`, and a request
//! that failed in any way (refused connection, dropped response) is retried with the same key until it
//! gets a 202. So the test also proves the end-to-end property: one transmission per fax the clients meant
//! to send, even when the server died after committing a job but before answering.

use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, one_page_pdf};
use sqlx::Row;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

async fn kill_9_during_submissions_loses_nothing_and_sends_nothing_twice(db: Db) {
    let config = serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test",
        "settings": {"deliveryLatencyMs": 300, "pollIntervalMs": 100}}}});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut app = Spawn::new(db)
        .env("FAXBOT_CONFIG_PATH", path.to_str().unwrap())
        .env("FAXBOT_JOB_LEASE_SECS", "2")
        .env("FAXBOT_PROVIDER_TIMEOUT_SECS", "1")
        .start()
        .await;
    let base = Arc::new(Mutex::new(app.base.clone()));
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let key = app.admin().to_string();
    let mut submitters = Vec::new();
    for _ in 0..4 {
        let (base, accepted, stop, key, client) =
            (base.clone(), accepted.clone(), stop.clone(), key.clone(), app.client.clone());
        submitters.push(tokio::spawn(async move {
            let pdf = one_page_pdf();
            while !stop.load(Ordering::SeqCst) {
                let idempotency_key = crate::helpers::uuid_hex();
                // Retry the same fax until the server acknowledges it.
                loop {
                    let url = format!("{}/fax", base.lock().unwrap());
                    let form = reqwest::multipart::Form::new()
                        .text("to", NUMBER)
                        .part("file", reqwest::multipart::Part::bytes(pdf.clone()).file_name("a.pdf"));
                    let sent = client.post(url).header("X-API-Key", &key).header("Idempotency-Key", &idempotency_key);
                    match sent.multipart(form).send().await {
                        Ok(r) if r.status() == 202 => {
                            if let Ok(body) = r.json::<serde_json::Value>().await
                                && let Some(id) = body["id"].as_str()
                            {
                                accepted.lock().unwrap().push(id.to_string());
                                break;
                            }
                        }
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
        }));
    }
    let kills = 6;
    for round in 0..kills {
        tokio::time::sleep(Duration::from_millis(400 + 150 * (round % 3))).await;
        app.restart().await; // SIGKILL, then start again on the same data
        *base.lock().unwrap() = app.base.clone();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for s in submitters {
        s.await.unwrap();
    }
    let mut ids = accepted.lock().unwrap().clone();
    let submitted = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), submitted, "every fax the clients sent maps to its own job");
    assert!(ids.len() >= 50, "too few jobs were accepted to prove anything: {}", ids.len());

    let deadline = Instant::now() + Duration::from_secs(120);
    for id in &ids {
        let done = app.wait_terminal(Some(&key), id, deadline.saturating_duration_since(Instant::now())).await;
        assert_eq!(done["status"], "SUCCESS", "job {id}: {done}");
    }

    // Inspect the simulated line's own records: one transmission per job, none for unknown jobs.
    sqlx::any::install_default_drivers();
    let url = match db {
        Db::Sqlite => format!("sqlite://{}", app.data.path().join("data/faxbot.db").display()),
        Db::Postgres => app.pg_url.clone().unwrap(),
    };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT job_id, COUNT(*) AS n FROM simulated_line_faxes GROUP BY job_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut transmitted = HashSet::new();
    for row in &rows {
        let job: String = row.get("job_id");
        let n: i64 = row.get("n");
        assert_eq!(n, 1, "job {job} was transmitted {n} times");
        transmitted.insert(job);
    }
    for id in &ids {
        assert!(transmitted.contains(id), "job {id} got a 202 but was never transmitted");
    }
    let wanted: HashSet<&String> = ids.iter().collect();
    for job in &transmitted {
        assert!(
            wanted.contains(job),
            "job {job} was transmitted although no client asked for it (a lost response was re-sent as a new fax)"
        );
    }
    let resubmitted = app.logs().iter().filter(|l| l.contains("repeating an interrupted submission")).count();
    let replayed = app.logs().iter().filter(|l| l.contains("\"event\":\"job_replayed\"")).count();
    pool.close().await;
    eprintln!(
        "crash test ({db:?}): {} jobs accepted across {kills} SIGKILLs, {} transmissions, {resubmitted} interrupted \
         submissions repeated with their idempotency key, {replayed} client retries answered with the original job",
        ids.len(),
        rows.len()
    );
}
db_test!(kill_9_during_submissions_loses_nothing_and_sends_nothing_twice);
