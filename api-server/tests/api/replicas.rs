//! Two API server replicas on one PostgreSQL database share the job queue: 2,000 faxes submitted across
//! both are each sent exactly once (row leases with `FOR UPDATE SKIP LOCKED`), whichever replica accepted
//! them and whichever worker picked them up.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sqlx::Connection;

use crate::helpers::{Db, NUMBER, Spawn, TestApp, one_page_pdf, postgres_available};

const JOBS: usize = 2_000;

fn accepted_submissions(metrics: &str) -> (f64, f64) {
    let mut accepted = 0.0;
    let mut other = 0.0;
    for line in metrics.lines().filter(|l| l.starts_with("faxbot_provider_submissions_total{")) {
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        if line.contains("outcome=\"accepted\"") { accepted += value } else { other += value }
    }
    (accepted, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_send_every_fax_exactly_once() {
    if !postgres_available() {
        return;
    }
    // The second replica shares the first one's database and data directory (standing in for the shared
    // document store of a multi-replica deployment) and its settings.
    let a = Spawn::new(Db::Postgres).env("FAXBOT_WORKER_CONCURRENCY", "16").start().await;
    let b = Spawn::new(Db::Postgres).reuse(&a).start().await;
    let apps: [&TestApp; 2] = [&a, &b];

    let pdf = one_page_pdf();
    let started = Instant::now();
    let ids: Vec<String> = futures_util::stream::iter(0..JOBS)
        .map(|i| {
            let app = apps[i % 2];
            let pdf = pdf.clone();
            async move {
                let r = app.post_fax(Some(app.admin()), NUMBER, "a.pdf", pdf).await;
                assert_eq!(r.status(), 202);
                r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(ids.len(), JOBS);
    let submitted = started.elapsed();

    // Every job reaches SUCCESS.
    let mut conn = sqlx::postgres::PgConnection::connect(a.pg_url.as_deref().unwrap()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fax_jobs WHERE status = 'SUCCESS'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if done as usize == JOBS {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of {JOBS} jobs delivered");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let finished = started.elapsed();

    // Exactly one submission per job: in the queue's own accounting, at the (simulated) provider, and in
    // the two replicas' metrics together.
    let not_once: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM fax_jobs WHERE dispatch_started <> 1 OR attempts <> 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(not_once, 0, "every job was claimed for submission exactly once");
    let at_provider: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM simulated_line_faxes").fetch_one(&mut conn).await.unwrap();
    assert_eq!(at_provider as usize, JOBS);
    let mut accepted = 0.0;
    let mut per_replica = Vec::new();
    for app in apps {
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let (ok, other) = accepted_submissions(&metrics);
        assert_eq!(other, 0.0, "no failed submissions");
        accepted += ok;
        per_replica.push(ok);
    }
    assert_eq!(accepted as usize, JOBS, "provider calls across both replicas: {per_replica:?}");
    assert!(per_replica.iter().all(|n| *n > 0.0), "both workers took part: {per_replica:?}");
    eprintln!(
        "two replicas: {JOBS} jobs accepted in {:.1} s, all delivered after {:.1} s; submissions per replica {per_replica:?}",
        submitted.as_secs_f64(),
        finished.as_secs_f64()
    );
}
