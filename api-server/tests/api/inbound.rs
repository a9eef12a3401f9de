//! Inbound faxes: the list/get/PDF API with scopes and per-key rate limits, download tokens that work
//! without an API key and expire, retention, and Phaxio receive callbacks verified before anything is
//! stored (forged, unsigned and replayed callbacks).

use std::time::{Duration, Instant};

use faxbot_fakes::Injection;
use faxbot_fakes::phaxio::{PhaxioFake, Received};

use crate::db_test;
use crate::helpers::{Db, Spawn, TestApp, json, pdf_with_pages, phaxio_fake};

const SENDER: &str = "+15557654321";
const OUR_NUMBER: &str = "+15559876543";

async fn simulate(app: &TestApp, pages: u32) -> String {
    let r = app
        .client
        .post(app.url("/admin/inbound/simulate"))
        .header("X-API-Key", app.admin())
        .json(&serde_json::json!({"fr": SENDER, "to": OUR_NUMBER, "pages": pages}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert_eq!(body["status"], "ok");
    body["id"].as_str().unwrap().to_string()
}

async fn get(app: &TestApp, key: Option<&str>, path: &str) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    if let Some(k) = key {
        req = req.header("X-API-Key", k);
    }
    req.send().await.unwrap()
}

fn forbid_numbers(app: &TestApp) {
    for n in [SENDER, OUR_NUMBER] {
        app.forbid(n);
        app.forbid(&n[1..]);
    }
}

async fn inbound_api_lists_reads_and_serves_received_faxes_by_scope(db: Db) {
    let app = Spawn::new(db).env("INBOUND_ENABLED", "true").start().await;
    forbid_numbers(&app);
    let first = simulate(&app, 1).await;
    let second = simulate(&app, 3).await;
    let lister = app.create_key(&["inbound:list"]).await;
    let reader = app.create_key(&["inbound:read"]).await;

    let r = get(&app, Some(&lister), "/inbound").await;
    assert_eq!(r.status(), 200);
    let list = json(r).await;
    let items = list.as_array().expect("a bare JSON array, as in the reference");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], second.as_str(), "newest first");
    let keys: Vec<&str> = items[0].as_object().unwrap().keys().map(String::as_str).collect();
    for field in [
        "id",
        "fr",
        "to",
        "status",
        "backend",
        "pages",
        "size_bytes",
        "created_at",
        "received_at",
        "updated_at",
        "mailbox",
    ] {
        assert!(keys.contains(&field), "InboundFaxOut has {field}: {keys:?}");
    }
    assert_eq!(items[0]["fr"], SENDER);
    assert_eq!(items[0]["status"], "received");
    assert_eq!(items[0]["backend"], "test");
    assert_eq!(items[0]["pages"], 3);
    let filtered = json(get(&app, Some(&lister), &format!("/inbound?to_number=%2B{}", &OUR_NUMBER[1..])).await).await;
    assert_eq!(filtered.as_array().unwrap().len(), 2);
    let none = json(get(&app, Some(&lister), "/inbound?status=deleted").await).await;
    assert_eq!(none.as_array().unwrap().len(), 0);

    // Scopes: list needs inbound:list, read needs inbound:read; no key at all is 401.
    assert_eq!(get(&app, Some(&reader), "/inbound").await.status(), 403);
    assert_eq!(get(&app, Some(&lister), &format!("/inbound/{first}")).await.status(), 403);
    assert_eq!(get(&app, None, "/inbound").await.status(), 401);
    let one = json(get(&app, Some(&reader), &format!("/inbound/{first}")).await).await;
    assert_eq!(one["id"], first.as_str());
    assert_eq!(one["pages"], 1);
    let missing = get(&app, Some(&reader), "/inbound/0123456789abcdef0123456789abcdef").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(json(missing).await["detail"], "Inbound fax not found");

    // The document, with the key.
    let r = get(&app, Some(&reader), &format!("/inbound/{second}/pdf")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert!(r.headers()["content-disposition"].to_str().unwrap().contains(&format!("inbound_{second}.pdf")));
    let pdf = r.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(faxbot_documents::pdf::count_pages(std::io::Cursor::new(&pdf[..])).unwrap(), 3);
    assert!(app.wait_log("inbound_pdf_served").await);
    assert!(app.logs().iter().any(|l| l.contains("\"type\":\"fax.received\"")), "the event bus audits receipts");
}
db_test!(inbound_api_lists_reads_and_serves_received_faxes_by_scope);

async fn simulate_authenticates_before_it_reads_the_body(db: Db) {
    let app = Spawn::new(db).env("INBOUND_ENABLED", "true").start().await;
    let post = |key: Option<&str>, content_type: &str, body: Vec<u8>| {
        let mut r = app.client.post(app.url("/admin/inbound/simulate")).header("Content-Type", content_type);
        if let Some(k) = key {
            r = r.header("X-API-Key", k);
        }
        r.body(body).send()
    };
    // Without a key: 401 whatever the body (an echo of the body, or a 422, would mean it was parsed first).
    // Bodies stay small so that hyper has read them whole: a connection closed on unread bytes is reset.
    for body in [b"{\"pages\": \"+15551234567\"}".to_vec(), b"not json".to_vec(), vec![b'x'; 6 * 1024]] {
        let r = post(None, "application/json", body).await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(!r.text().await.unwrap().contains("5551234567"));
    }
    let admin = app.admin();
    let r = post(Some(admin), "application/json", b"{\"fr\": 15551234567}".to_vec()).await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(!r.text().await.unwrap().contains("5551234567"), "the error does not quote the input");
    let r = post(Some(admin), "application/json", vec![b' '; 6 * 1024]).await.unwrap();
    assert_eq!(r.status(), 413);
    let r = post(Some(admin), "text/plain", b"{}".to_vec()).await.unwrap();
    assert_eq!(r.status(), 415);
    let r = post(Some(admin), "application/json", b"{\"pages\": 2}".to_vec()).await.unwrap();
    assert_eq!(r.status(), 200);
}
db_test!(simulate_authenticates_before_it_reads_the_body);

async fn inbound_download_tokens_work_without_a_key_and_expire(db: Db) {
    let app = Spawn::new(db).env("INBOUND_ENABLED", "true").env("FAXBOT_INBOUND_TOKEN_TTL_SECS", "2").start().await;
    forbid_numbers(&app);
    let id = simulate(&app, 1).await;
    let other = simulate(&app, 1).await;
    let reader = app.create_key(&["inbound:read"]).await;
    let r = app.client.post(app.url(&format!("/inbound/{id}/pdf-token"))).send().await.unwrap();
    assert_eq!(r.status(), 401, "issuing a token needs a key");
    let r = app
        .client
        .post(app.url(&format!("/inbound/{id}/pdf-token")))
        .header("X-API-Key", &reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body = json(r).await;
    let token = body["token"].as_str().unwrap().to_string();
    app.forbid(&token);
    assert_eq!(token.len(), 43);
    assert!(body["url"].as_str().unwrap().ends_with(&format!("/inbound/{id}/pdf?token={token}")));

    // No API key needed with a valid token (the reference answers 401 here).
    let r = get(&app, None, &format!("/inbound/{id}/pdf?token={token}")).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().starts_with(b"%PDF-"));
    // The token opens only its own fax; a made-up token opens nothing.
    let r = get(&app, None, &format!("/inbound/{other}/pdf?token={token}")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(json(r).await["detail"], "Forbidden");
    let fake = "A".repeat(43);
    assert_eq!(get(&app, None, &format!("/inbound/{id}/pdf?token={fake}")).await.status(), 403);
    assert_eq!(get(&app, None, &format!("/inbound/{id}/pdf")).await.status(), 401);

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = get(&app, None, &format!("/inbound/{id}/pdf?token={token}")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(json(r).await["detail"], "Token expired");
    // A key still works alongside an expired token (reference: token OR scope).
    assert_eq!(get(&app, Some(&reader), &format!("/inbound/{id}/pdf?token={token}")).await.status(), 200);
    assert!(app.wait_log("\"method\":\"token\"").await, "token downloads are audited as such");
}
db_test!(inbound_download_tokens_work_without_a_key_and_expire);

async fn download_tokens_end_with_the_key_that_issued_them(db: Db) {
    let app = Spawn::new(db).env("INBOUND_ENABLED", "true").start().await;
    forbid_numbers(&app);
    let id = simulate(&app, 1).await;
    let issue = |key: String| {
        let url = app.url(&format!("/inbound/{id}/pdf-token"));
        let client = app.client.clone();
        async move {
            let r = client.post(url).header("X-API-Key", key).send().await.unwrap();
            assert_eq!(r.status(), 201);
            json(r).await["token"].as_str().unwrap().to_string()
        }
    };
    let (leaving, staying) = (app.create_key(&["inbound:read"]).await, app.create_key(&["inbound:read"]).await);
    let (revoked, kept) = (issue(leaving.clone()).await, issue(staying.clone()).await);
    for t in [&revoked, &kept] {
        app.forbid(t);
        assert_eq!(get(&app, None, &format!("/inbound/{id}/pdf?token={t}")).await.status(), 200);
    }
    // Revoke the first key (its id is the token's middle part: fbk_live_<key id>_<secret>).
    let key_id = leaving.split('_').nth(2).unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/admin/api-keys/{key_id}")))
        .header("X-API-Key", app.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get(&app, None, &format!("/inbound/{id}/pdf?token={revoked}")).await.status(),
        403,
        "ended with its key"
    );
    assert_eq!(
        get(&app, None, &format!("/inbound/{id}/pdf?token={kept}")).await.status(),
        200,
        "other keys' links live"
    );
}
db_test!(download_tokens_end_with_the_key_that_issued_them);

async fn inbound_routes_are_404_when_inbound_is_off_and_rate_limited_per_key(db: Db) {
    let off = Spawn::new(db).start().await;
    let r = get(&off, Some(off.admin()), "/inbound").await;
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await["detail"], "Inbound not enabled");
    assert_eq!(get(&off, None, "/inbound").await.status(), 401, "auth runs before the 404");
    drop(off);

    let app = Spawn::new(db).env("INBOUND_ENABLED", "true").env("INBOUND_LIST_RPM", "2").start().await;
    // Two per minute, counted in wall-clock minutes: start with time to finish inside one, and retry with a
    // fresh key (its own count) should a slow machine still straddle a boundary.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _attempt in 0..2 {
        crate::helpers::start_of_a_minute().await;
        let lister = app.create_key(&["inbound:list"]).await;
        statuses.clear();
        for _ in 0..3 {
            let r = get(&app, Some(&lister), "/inbound").await;
            statuses.push(r.status().as_u16());
            retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
        if statuses == [200, 200, 429] {
            break;
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    let retry_after = retry_after.expect("429 carries Retry-After");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let other = app.create_key(&["inbound:list"]).await;
    assert!(app.wait_log("rate_limited").await);
    assert_eq!(get(&app, Some(&other), "/inbound").await.status(), 200, "limits are per key");
}
db_test!(inbound_routes_are_404_when_inbound_is_off_and_rate_limited_per_key);

async fn inbound_retention_deletes_documents_and_keeps_rows(db: Db) {
    let app = Spawn::new(db)
        .env("INBOUND_ENABLED", "true")
        .env("FAXBOT_INBOUND_RETENTION_SECS", "1")
        .env("FAXBOT_CLEANUP_INTERVAL_SECS", "1")
        .env("INBOUND_GET_RPM", "0")
        .start()
        .await;
    forbid_numbers(&app);
    let id = simulate(&app, 1).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = get(&app, Some(app.admin()), &format!("/inbound/{id}/pdf")).await;
        if r.status() == 404 {
            assert_eq!(json(r).await["detail"], "PDF file not found");
            break;
        }
        assert!(Instant::now() < deadline, "retention never deleted the document");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = json(get(&app, Some(app.admin()), &format!("/inbound/{id}")).await).await;
    assert_eq!(row["id"], id.as_str(), "the row stays");
    let docs = std::fs::read_dir(app.data.path().join("data/documents")).unwrap();
    assert!(
        docs.filter_map(Result::ok).all(|e| !e.file_name().to_string_lossy().starts_with("inbound-")),
        "the file is gone"
    );
    assert!(app.wait_log("inbound_deleted").await);
}
db_test!(inbound_retention_deletes_documents_and_keeps_rows);

const INBOUND_URL: &str = "https://fax.example.org/webhooks/phaxio/inbound";

async fn phaxio_setup(db: Db) -> (PhaxioFake, TestApp, tempfile::TempDir) {
    let fake = phaxio_fake("phaxio-secret-in-3c1d", "phaxio-inbound-token-77", Duration::from_millis(40)).await;
    let (app, dir) = Spawn::new(db)
        .start_with_config(
            serde_json::json!({"version": 1, "providers": {"inbound": {"plugin": "phaxio",
                "settings": {"baseUrl": fake.base_url, "callbackUrl": INBOUND_URL}}},
                "features": {"v3Plugins": true}}),
            &[("inbound.webhookToken", "phaxio-inbound-token-77")],
        )
        .await;
    forbid_numbers(&app);
    (fake, app, dir)
}

async fn count(app: &TestApp) -> usize {
    json(get(app, Some(app.admin()), "/inbound").await).await.as_array().unwrap().len()
}

async fn phaxio_inbound_faxes_are_verified_stored_once_and_listed(db: Db) {
    let (fake, app, _dir) = phaxio_setup(db).await;
    let post_to = app.url("/webhooks/phaxio/inbound");
    let pdf = pdf_with_pages(2);
    let received = Received { signed_url: INBOUND_URL, post_to: &post_to, from: SENDER, to: OUR_NUMBER, pdf: &pdf };

    let sent = fake.receive(received).await;
    assert_eq!(sent.answered, 200);
    let list = json(get(&app, Some(app.admin()), "/inbound").await).await;
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["backend"], "phaxio");
    assert_eq!(items[0]["fr"], SENDER);
    assert_eq!(items[0]["to"], OUR_NUMBER);
    assert_eq!(items[0]["pages"], 2);
    assert_eq!(items[0]["size_bytes"], pdf.len());
    let id = items[0]["id"].as_str().unwrap().to_string();
    let stored = get(&app, Some(app.admin()), &format!("/inbound/{id}/pdf")).await.bytes().await.unwrap();
    assert_eq!(&stored[..], &pdf[..], "the document is stored byte for byte");

    // Phaxio retries a webhook it thinks failed, and an attacker may replay one: stored once.
    let fax_json = serde_json::json!({"id": sent.fax_id, "direction": "received", "num_pages": 2,
        "status": "success", "from_number": SENDER, "to_number": OUR_NUMBER})
    .to_string();
    for path in [post_to.clone(), app.url("/phaxio-inbound")] {
        let again =
            fake.redeliver_received(sent.fax_id, fax_json.clone(), Received { post_to: &path, ..received }).await;
        assert_eq!(again.answered, 200, "a replay is answered 200 so the provider stops retrying");
    }
    assert_eq!(count(&app).await, 1, "replays store nothing new");

    // Forged (wrong token) and unsigned callbacks: 401, nothing stored, audited.
    fake.inject(Injection::WrongSignature);
    assert_eq!(fake.receive(received).await.answered, 401);
    let form = reqwest::multipart::Form::new()
        .text("direction", "received")
        .text("fax", fax_json.replace(&sent.fax_id.to_string(), "999999"))
        .part("file", reqwest::multipart::Part::bytes(pdf.clone()).file_name("x.pdf"));
    let r = app.client.post(&post_to).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(count(&app).await, 1, "rejected callbacks store nothing");
    assert!(app.wait_log("webhook_rejected").await);
    // A signed callback for another plugin's route, or with inbound pointed elsewhere, is not found.
    assert_eq!(app.client.post(app.url("/webhooks/sinch/inbound")).body("x").send().await.unwrap().status(), 404);

    // The webhook manager lists the endpoint and what it has seen.
    let hooks = json(get(&app, Some(app.admin()), "/admin/webhooks").await).await;
    let entry =
        hooks["webhooks"].as_array().unwrap().iter().find(|w| w["slot"] == "inbound").expect("inbound entry").clone();
    assert_eq!(entry["plugin"], "phaxio");
    assert_eq!(entry["path"], "/webhooks/phaxio/inbound");
    assert_eq!(entry["legacy_path"], "/phaxio-inbound");
    assert_eq!(entry["url"], INBOUND_URL);
    assert_eq!(entry["ready"], true);
    assert_eq!(entry["accepted"], 3);
    assert_eq!(entry["rejected"], 2);
    assert!(!hooks.to_string().contains("phaxio-inbound-token-77"));
}
db_test!(phaxio_inbound_faxes_are_verified_stored_once_and_listed);

/// 10,000 mutated receive callbacks at the HTTP route (signature, URL, fields, file bytes, part names, each
/// re-encoded as a well-formed multipart body so the mutation reaches the verifier): every one is refused
/// and nothing is stored. The authentic original is accepted, which shows the refusals are not blanket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mutated_phaxio_callbacks_are_all_refused() {
    use rand::{Rng, SeedableRng};
    let (_fake, app, _dir) = phaxio_setup(Db::Sqlite).await;
    let url = app.url("/webhooks/phaxio/inbound");
    let token = b"phaxio-inbound-token-77";
    let pdf = pdf_with_pages(1);
    let fax = serde_json::json!({"id": 4242, "direction": "received", "num_pages": 1, "status": "success",
        "from_number": SENDER, "to_number": OUR_NUMBER})
    .to_string();
    let fields: Vec<(String, String)> = vec![
        ("direction".into(), "received".into()),
        ("is_test".into(), "false".into()),
        ("success".into(), "true".into()),
        ("fax".into(), fax),
    ];
    let files: Vec<(String, Vec<u8>)> = vec![("file".into(), pdf)];
    let send = |fields: Vec<(String, String)>, files: Vec<(String, Vec<u8>)>, signature: String| {
        let client = app.client.clone();
        let url = url.clone();
        async move {
            let mut form = reqwest::multipart::Form::new();
            for (k, v) in fields {
                form = form.text(k, v);
            }
            for (k, v) in files {
                form = form.part(k, reqwest::multipart::Part::bytes(v).file_name("fax.pdf"));
            }
            client.post(url).header("X-Phaxio-Signature", signature).multipart(form).send().await.unwrap().status()
        }
    };
    let sign = |fields: &[(String, String)], files: &[(String, Vec<u8>)], url: &str, key: &[u8]| {
        let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let d: Vec<(&str, &[u8])> = files.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        faxbot_webhooks::phaxio::sign(key, url, &f, &d)
    };
    let authentic = sign(&fields, &files, INBOUND_URL, token);

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x05ee_dfa7);
    let mut refused = 0;
    for i in 0..10_000u32 {
        let (mut f, mut d, mut signature) = (fields.clone(), files.clone(), authentic.clone());
        match i % 6 {
            // A flipped character of the signature.
            0 => {
                let mut bytes = signature.into_bytes();
                let at = rng.random_range(0..bytes.len());
                bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
                signature = String::from_utf8(bytes).unwrap();
            }
            // A changed field value (the signature stays the original's).
            1 => {
                let at = rng.random_range(0..f.len());
                let mut value = f[at].1.clone().into_bytes();
                let pos = rng.random_range(0..value.len());
                let original = value[pos];
                while value[pos] == original {
                    value[pos] = b'a' + rng.random_range(0..26u8);
                }
                f[at].1 = String::from_utf8_lossy(&value).into_owned();
            }
            // A changed byte of the document.
            2 => {
                let pos = rng.random_range(0..d[0].1.len());
                d[0].1[pos] ^= 1 << rng.random_range(0..8);
            }
            // An extra or a dropped field.
            3 => {
                if rng.random_bool(0.5) {
                    f.push((format!("x{}", rng.random_range(0..1000)), "1".into()));
                } else {
                    f.remove(rng.random_range(0..f.len()));
                }
            }
            // Signed with the right key over another URL, or over the right URL with another key.
            4 => {
                signature = if rng.random_bool(0.5) {
                    sign(&f, &d, &format!("{INBOUND_URL}?x={i}"), token)
                } else {
                    sign(&f, &d, INBOUND_URL, format!("other-token-{i}").as_bytes())
                }
            }
            // A renamed file part, or no signature value at all.
            _ => {
                if rng.random_bool(0.5) {
                    d[0].0 = "filename".into();
                } else {
                    signature = String::new();
                }
            }
        }
        let status = send(f, d, signature).await;
        assert_eq!(status, 401, "mutation {i} (kind {}) was not refused", i % 6);
        refused += 1;
    }
    assert_eq!(refused, 10_000);
    assert_eq!(count(&app).await, 0, "no mutated callback stored anything");
    assert_eq!(send(fields, files, authentic).await, 200, "the authentic callback is accepted");
    assert_eq!(count(&app).await, 1);
}
