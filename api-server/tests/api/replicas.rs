//! Two API server replicas on one PostgreSQL database share the job queue: 2,000 faxes submitted across
//! both are each sent exactly once (row leases with `FOR UPDATE SKIP LOCKED`), whichever replica accepted
//! them and whichever worker picked them up. With S3 storage the replicas share nothing on disk: a document
//! accepted by one is uploaded to Phaxio by the other, and Phaxio's callbacks, spread over both by a load
//! balancer, finish the same jobs.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sqlx::Connection;

use crate::helpers::{
    Db, NUMBER, Spawn, TestApp, one_page_pdf, pdf_with_pages, phaxio_fake, postgres_available, uuid_hex,
};
use crate::s3_support::{RoundRobin, s3_env, storage_binding};

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

/// Waits until `jobs` jobs of the shared database are `SUCCESS`.
async fn wait_for_success(conn: &mut sqlx::postgres::PgConnection, jobs: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fax_jobs WHERE status = 'SUCCESS'")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        if done as usize == jobs {
            return;
        }
        assert!(Instant::now() < deadline, "only {done} of {jobs} jobs delivered");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
    wait_for_success(&mut conn, JOBS, Duration::from_secs(180)).await;
    let finished = started.elapsed();

    // Exactly one submission per job: in the queue's own accounting, at the (simulated) provider, and in
    // the two replicas' metrics together.
    assert_claimed_once(&mut conn).await;
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

/// Every job was claimed for submission exactly once and recorded one attempt. Said with the rows when it
/// fails: a retry after a failed attempt (its error is kept) is a different story from a second claim of a
/// submission in flight.
async fn assert_claimed_once(conn: &mut sqlx::postgres::PgConnection) {
    let not_once: Vec<(String, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT status, dispatch_started, attempts, error FROM fax_jobs WHERE dispatch_started <> 1 OR attempts <> 1",
    )
    .fetch_all(conn)
    .await
    .unwrap();
    assert!(not_once.is_empty(), "every job was claimed for submission exactly once; not: {not_once:?}");
}

const SHARED_JOBS: usize = 120;
const PHAXIO_SECRET: &str = "phaxio-secret-replicas-5e7a";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_s3_upload_each_others_documents_and_take_each_others_callbacks() {
    if !postgres_available() {
        return;
    }
    let Some(s3) = s3_env() else { return };
    let fake = phaxio_fake(PHAXIO_SECRET, "phaxio-webhook-token", Duration::from_millis(40)).await;
    let balancer = RoundRobin::start().await;
    // Status only by callback: a poll every 10 minutes cannot finish a job within the test.
    let config = serde_json::json!({"version": 1, "providers": {
        "outbound": {"plugin": "phaxio", "settings": {"baseUrl": fake.base_url, "pollIntervalMs": 600000,
            "callbackUrl": format!("{}/webhooks/phaxio", balancer.url)}},
        "storage": storage_binding(&s3, &s3.url, &format!("t-{}", uuid_hex()))}});
    let credentials = [
        ("outbound.apiKey", "phaxio-key"),
        ("outbound.apiSecret", PHAXIO_SECRET),
        ("outbound.webhookToken", "phaxio-webhook-token"),
        ("storage.accessKeyId", s3.access_key_id.as_str()),
        ("storage.secretAccessKey", s3.secret_access_key.as_str()),
    ];
    // Separate data directories: the only things the replicas share are PostgreSQL and the bucket.
    let (a, _a_dir) = Spawn::new(Db::Postgres).start_with_config(config.clone(), &credentials).await;
    let (b, _b_dir) = Spawn::new(Db::Postgres).share_database(&a).start_with_config(config, &credentials).await;
    assert_ne!(a.data.path(), b.data.path());
    balancer.set_upstreams(vec![a.base.clone(), b.base.clone()]);
    let apps: [&TestApp; 2] = [&a, &b];

    // Documents of 1 to 3 pages, so the fake's page count shows which document each fax carried.
    let jobs: Vec<(String, u32, usize)> = futures_util::stream::iter(0..SHARED_JOBS)
        .map(|i| {
            let (replica, pages) = (i % 2, (i % 3) as u32 + 1);
            async move {
                let app = apps[replica];
                let r = app.post_fax(Some(app.admin()), NUMBER, "a.pdf", pdf_with_pages(pages)).await;
                assert_eq!(r.status(), 202);
                let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
                (id, pages, replica)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    let mut conn = sqlx::postgres::PgConnection::connect(a.pg_url.as_deref().unwrap()).await.unwrap();
    wait_for_success(&mut conn, SHARED_JOBS, Duration::from_secs(120)).await;

    // Sent exactly once each, with the right document.
    assert_claimed_once(&mut conn).await;
    assert_eq!(fake.submissions(), SHARED_JOBS, "one Phaxio submission per job");
    let logs = [a.logs(), b.logs()];
    let mut crossed = [0usize; 2];
    for (id, pages, accepted_by) in &jobs {
        let sid: String = sqlx::query_scalar("SELECT provider_sid FROM fax_jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let sid: i64 = sid.parse().unwrap();
        let fax = fake.fax(sid).unwrap();
        assert_eq!(fax["tags"]["faxbot_job"], id.as_str());
        assert_eq!(fax["num_pages"], *pages, "job {id} carried its own document");
        let dispatched_by: Vec<usize> = (0..2)
            .filter(|r| logs[*r].iter().any(|l| l.contains("\"job_dispatch\"") && l.contains(id.as_str())))
            .collect();
        assert_eq!(dispatched_by.len(), 1, "job {id} was dispatched by exactly one replica");
        if dispatched_by[0] != *accepted_by {
            crossed[*accepted_by] += 1;
        }
    }
    assert!(
        crossed.iter().all(|n| *n > 0),
        "each replica uploaded documents the other accepted (accepted by A, sent by B; accepted by B, sent by A): \
         {crossed:?}"
    );

    // Every callback was answered 200 and both replicas took their share.
    let webhooks = fake.webhooks();
    assert_eq!(webhooks.len(), SHARED_JOBS);
    assert!(webhooks.iter().all(|w| w.answered == 200), "every callback accepted");
    let hits = balancer.hits();
    assert_eq!(hits.iter().sum::<usize>(), SHARED_JOBS);
    assert!(hits.iter().all(|n| *n > 0), "callbacks landed on both replicas: {hits:?}");
    eprintln!("shared S3: {SHARED_JOBS} jobs, crossed uploads {crossed:?}, callbacks per replica {hits:?}");
    a.assert_no_leaks();
    b.assert_no_leaks();
}
