//! The S3 storage plugin against a real S3-compatible server (moto's, started by `scripts/test` with
//! SigV4 signatures enforced): objects round-trip (small `PUT`s and multipart uploads), every write asks for
//! SSE-KMS with the configured key — seen on the wire by a recording proxy, and echoed back by the server
//! when the object is read — wrong credentials and a missing bucket are clear errors, and a server running
//! on S3 storage accepts, uploads, serves and finally deletes documents there.

use std::io::Write;
use std::time::{Duration, Instant};

use faxbot_api::documents::DocumentStore;
use faxbot_api::documents::StorageError;
use faxbot_api::documents::s3::{S3Credentials, S3Store};
use faxbot_contract::plugins::S3StorageSettings;
use tokio::io::AsyncReadExt;

use crate::helpers::{Db, NUMBER, Spawn, json, pdf_with_pages, phaxio_fake, uuid_hex};
use crate::s3_support::{Exchange, KMS_KEY, RecordingProxy, S3Env, s3_env, storage_binding};

fn settings(env: &S3Env, endpoint: &str, prefix: &str) -> S3StorageSettings {
    S3StorageSettings {
        bucket: env.bucket.clone(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.to_string()),
        prefix: Some(prefix.to_string()),
        force_path_style: true,
        sse_kms_key_id: Some(KMS_KEY.into()),
        ..Default::default()
    }
}

fn credentials(env: &S3Env) -> Option<S3Credentials> {
    Some(S3Credentials { access_key_id: env.access_key_id.clone(), secret_access_key: env.secret_access_key.clone() })
}

async fn read_all(store: &S3Store, key: &str) -> Vec<u8> {
    let mut reader = store.open(key).await.unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    out
}

/// Writes and reads that touched `key` (any prefix).
fn exchanges_for<'a>(all: &'a [Exchange], key: &str) -> Vec<&'a Exchange> {
    all.iter().filter(|e| e.target.split('?').next().unwrap_or("").ends_with(&format!("/{key}"))).collect()
}

fn assert_kms_requested(e: &Exchange) {
    assert_eq!(e.request_header("x-amz-server-side-encryption"), Some("aws:kms"), "{} {}", e.method, e.target);
    assert_eq!(e.request_header("x-amz-server-side-encryption-aws-kms-key-id"), Some(KMS_KEY), "{}", e.target);
}

fn assert_stored_encrypted(all: &[Exchange], key: &str) {
    let reads: Vec<_> = exchanges_for(all, key).into_iter().filter(|e| e.method == "GET" && e.status == 200).collect();
    assert!(!reads.is_empty(), "no successful GET of {key}");
    for e in reads {
        assert_eq!(e.response_header("x-amz-server-side-encryption"), Some("aws:kms"), "GET {}", e.target);
        assert_eq!(e.response_header("x-amz-server-side-encryption-aws-kms-key-id"), Some(KMS_KEY));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_documents_round_trip_and_every_write_asks_for_sse_kms() {
    let Some(env) = s3_env() else { return };
    let proxy = RecordingProxy::start(&env.url).await;
    let prefix = format!("t-{}", uuid_hex());
    let dir = tempfile::tempdir().unwrap();
    let store =
        S3Store::new(&settings(&env, &proxy.url, &prefix), credentials(&env), &dir.path().join("staging")).unwrap();
    store.check().await.unwrap();

    // A small document in one PUT, a large one (12 MiB) as a multipart upload from a staging file.
    let small = pdf_with_pages(2);
    store.put_bytes("small.pdf", small.clone()).await.unwrap();
    let large: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut staged = tempfile::NamedTempFile::new_in(store.staging_dir()).unwrap();
    staged.write_all(&large).unwrap();
    let staged_path = staged.path().to_path_buf();
    store.put_file("large.pdf", staged.into_temp_path()).await.unwrap();
    assert!(!staged_path.exists(), "the staging file is removed once the upload is durable");
    assert_eq!(read_all(&store, "small.pdf").await, small);
    assert_eq!(read_all(&store, "large.pdf").await, large);

    // Another deployment's objects under a deeper prefix are invisible to this one's orphan sweep.
    let nested =
        S3Store::new(&settings(&env, &env.url, &format!("{prefix}/other")), credentials(&env), &dir.path().join("s2"))
            .unwrap();
    nested.put_bytes("foreign.pdf", b"%PDF-1.4 foreign".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut old = store.list_older_than(Duration::ZERO).await.unwrap();
    old.sort();
    assert_eq!(old, ["large.pdf", "small.pdf"]);
    assert!(store.list_older_than(Duration::from_secs(3600)).await.unwrap().is_empty());

    // Missing documents and unsafe keys are told apart from outages.
    assert!(matches!(store.open("missing.pdf").await, Err(StorageError::NotFound)));
    assert!(matches!(store.open("../escape.pdf").await, Err(StorageError::InvalidKey)));
    store.delete("small.pdf").await.unwrap();
    store.delete("small.pdf").await.unwrap();
    assert!(matches!(store.open("small.pdf").await, Err(StorageError::NotFound)));
    store.delete("large.pdf").await.unwrap();
    nested.delete("foreign.pdf").await.unwrap();
    assert!(store.list_older_than(Duration::ZERO).await.unwrap().is_empty());

    // On the wire: every request that creates content asked for SSE-KMS with the configured key, the large
    // document really went up in parts, and the server stored both objects encrypted with that key.
    let all = proxy.exchanges();
    let writes: Vec<&Exchange> = all.iter().filter(|e| e.is_object_write()).collect();
    assert!(writes.len() >= 2, "{all:#?}");
    writes.iter().for_each(|e| assert_kms_requested(e));
    let large_ops = exchanges_for(&all, "large.pdf");
    assert!(large_ops.iter().any(|e| e.method == "POST" && e.target.contains("uploads")), "multipart upload started");
    assert!(large_ops.iter().filter(|e| e.target.contains("partNumber=")).count() >= 3, "12 MiB in 5 MiB parts");
    assert!(writes.iter().all(|e| e.status == 200), "every write succeeded");
    assert_stored_encrypted(&all, "small.pdf");
    assert_stored_encrypted(&all, "large.pdf");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sse_s3_and_the_default_kms_key_send_only_the_encryption_they_name() {
    let Some(env) = s3_env() else { return };
    use faxbot_contract::plugins::S3ServerSideEncryption::{Aes256, AwsKms};
    for kind in [Aes256, AwsKms] {
        let proxy = RecordingProxy::start(&env.url).await;
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(&env, &proxy.url, &format!("t-{}", uuid_hex()));
        s.sse_kms_key_id = None;
        s.server_side_encryption = Some(kind);
        let store = S3Store::new(&s, credentials(&env), &dir.path().join("staging")).unwrap();
        store.put_bytes("a.pdf", pdf_with_pages(1)).await.unwrap();
        assert_eq!(read_all(&store, "a.pdf").await, pdf_with_pages(1));
        store.delete("a.pdf").await.unwrap();
        let all = proxy.exchanges();
        let put = all.iter().find(|e| e.is_object_write()).expect("a PUT");
        assert_eq!(put.request_header("x-amz-server-side-encryption"), Some(kind.as_str()));
        assert_eq!(put.request_header("x-amz-server-side-encryption-aws-kms-key-id"), None, "{kind:?}");
        let get = all.iter().find(|e| e.method == "GET" && e.status == 200).expect("a GET");
        assert_eq!(get.response_header("x-amz-server-side-encryption"), Some(kind.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_credentials_and_a_missing_bucket_are_clear_errors() {
    let Some(env) = s3_env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wrong_secret = "wrong-secret-never-logged-8d2f";
    let store = S3Store::new(
        &settings(&env, &env.url, "t-wrong"),
        Some(S3Credentials { access_key_id: env.access_key_id.clone(), secret_access_key: wrong_secret.into() }),
        &dir.path().join("staging"),
    )
    .unwrap();
    for err in [store.check().await.unwrap_err(), store.put_bytes("a.pdf", b"%PDF".to_vec()).await.unwrap_err()] {
        assert!(matches!(err, StorageError::Refused(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("refused") && text.contains("accessKeyId/secretAccessKey"), "{text}");
        assert!(text.contains("S3 error code SignatureDoesNotMatch"), "{text}");
        for secret in [wrong_secret, &env.secret_access_key, &env.access_key_id] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    let mut missing = settings(&env, &env.url, "t-missing");
    missing.bucket = format!("faxbot-missing-{}", &uuid_hex()[..12]);
    let store = S3Store::new(&missing, credentials(&env), &dir.path().join("staging2")).unwrap();
    let err = store.check().await.unwrap_err();
    assert!(matches!(err, StorageError::Misconfigured(_)), "{err:?}");
    assert_eq!(err.to_string(), format!("storage misconfigured: S3 bucket `{}` does not exist", missing.bucket));
}

/// The test's own view of the bucket (straight to the server, signed with the test key).
fn inspector(env: &S3Env, prefix: &str, dir: &tempfile::TempDir) -> S3Store {
    S3Store::new(&settings(env, &env.url, prefix), credentials(env), &dir.path().join("inspector")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_on_s3_accepts_uploads_serves_and_expires_documents() {
    let Some(env) = s3_env() else { return };
    let proxy = RecordingProxy::start(&env.url).await;
    let prefix = format!("t-{}", uuid_hex());
    let fake = phaxio_fake("phaxio-secret-s3-3c1d", "phaxio-webhook-token", Duration::from_millis(40)).await;
    // Phaxio fetches the document from this server (contentUrl), which reads it back from S3.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (app, _dir) = Spawn::new(Db::Sqlite)
        .env("FAXBOT_LISTEN", &format!("127.0.0.1:{port}"))
        .env("PUBLIC_API_URL", &format!("http://127.0.0.1:{port}/"))
        .env("FAXBOT_ARTIFACT_TTL_SECS", "2")
        .env("FAXBOT_CLEANUP_INTERVAL_SECS", "1")
        .start_with_config(
            serde_json::json!({"version": 1, "providers": {
                "outbound": {"plugin": "phaxio", "settings": {"baseUrl": fake.base_url, "pollIntervalMs": 100,
                    "sendMode": "contentUrl"}},
                "inbound": {"plugin": "test"},
                "storage": storage_binding(&env, &proxy.url, &prefix)}}),
            &[
                ("outbound.apiKey", "phaxio-key"),
                ("outbound.apiSecret", "phaxio-secret-s3-3c1d"),
                ("storage.accessKeyId", &env.access_key_id),
                ("storage.secretAccessKey", &env.secret_access_key),
            ],
        )
        .await;
    let ready = json(app.client.get(app.url("/health/ready")).send().await.unwrap()).await;
    assert_eq!(ready["checks"]["storage"], true, "{ready}");

    let pdf = pdf_with_pages(3);
    let r = app.post_fax(Some(app.admin()), NUMBER, "a.pdf", pdf.clone()).await;
    assert_eq!(r.status(), 202);
    let id = json(r).await["id"].as_str().unwrap().to_string();
    let key = format!("{id}.pdf");
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let fetches = fake.content_fetches();
    assert_eq!(fetches.len(), 1);
    assert!(fetches[0].1, "Phaxio downloaded the PDF, served from S3");
    assert_eq!(fake.fax(job["provider_sid"].as_str().unwrap().parse().unwrap()).unwrap()["num_pages"], 3);

    let all = proxy.exchanges();
    let puts: Vec<_> = exchanges_for(&all, &key).into_iter().filter(|e| e.is_object_write()).collect();
    assert_eq!(puts.len(), 1, "the accepted document was written once: {all:#?}");
    assert_kms_requested(puts[0]);
    assert!(puts[0].target.starts_with(&format!("/{}/{prefix}/{key}", env.bucket)), "{}", puts[0].target);
    assert_stored_encrypted(&all, &key);

    // Received faxes are stored in S3 too, and served from there.
    let r = app
        .client
        .post(app.url("/admin/inbound/simulate"))
        .header("X-API-Key", app.admin())
        .json(&serde_json::json!({"fr": "+15557654321", "to": "+15559876543", "pages": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let inbound = json(r).await["id"].as_str().unwrap().to_string();
    let r = app
        .client
        .get(app.url(&format!("/inbound/{inbound}/pdf")))
        .header("X-API-Key", app.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().starts_with(b"%PDF-"));
    let inbound_key = format!("inbound-{inbound}.pdf");
    let all = proxy.exchanges();
    exchanges_for(&all, &inbound_key).into_iter().filter(|e| e.is_object_write()).for_each(assert_kms_requested);
    assert_stored_encrypted(&all, &inbound_key);

    // Retention deletes the finished job's document from the bucket (the job row stays).
    let dir = tempfile::tempdir().unwrap();
    let bucket = inspector(&env, &prefix, &dir);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(bucket.open(&key).await, Err(StorageError::NotFound)) {
        assert!(Instant::now() < deadline, "retention never deleted {key}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(bucket.open(&inbound_key).await.is_ok(), "received faxes follow their own retention");
    assert_eq!(app.get_fax(Some(app.admin()), &id).await.status(), 200);
    // object_store deletes through DeleteObjects (POST ?delete), which names the key in the body.
    let ops = proxy.exchanges();
    let deleted = |e: &Exchange| e.method == "POST" && e.target.contains("?delete") && e.status == 200;
    assert!(ops.iter().any(deleted), "the server deleted the object: {ops:#?}");
    bucket.delete(&inbound_key).await.unwrap();
    app.assert_no_leaks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_bucket_is_missing() {
    let Some(env) = s3_env() else { return };
    let missing = S3Env { bucket: format!("faxbot-missing-{}", &uuid_hex()[..12]), ..env.clone() };
    let (app, _dir) = Spawn::new(Db::Sqlite)
        .start_with_config(
            serde_json::json!({"version": 1, "providers": {"storage": storage_binding(&missing, &env.url, "t")}}),
            &[("storage.accessKeyId", &env.access_key_id), ("storage.secretAccessKey", &env.secret_access_key)],
        )
        .await;
    let r = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body = json(r).await;
    assert_eq!(body["checks"]["storage"], false, "{body}");
    assert!(body["storage_error"].as_str().unwrap().contains("does not exist"), "{body}");
    app.assert_no_leaks();
}
