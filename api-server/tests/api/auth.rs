use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, TestApp, json, one_page_pdf};

async fn enforced_auth_refuses_missing_wrong_and_bearer_credentials(db: Db) {
    let app = TestApp::spawn(db).await;
    for key in [None, Some("wrong"), Some("fbk_live_0123456789ab_nope")] {
        let r = app.post_fax(key, NUMBER, "a.pdf", one_page_pdf()).await;
        assert_eq!(r.status(), 401, "{key:?}");
        assert_eq!(json(r).await, serde_json::json!({"detail": "Invalid or missing API key"}));
    }
    let r =
        app.client.get(app.url("/fax/00000000000000000000000000000000")).bearer_auth(app.admin()).send().await.unwrap();
    assert_eq!(r.status(), 401, "Authorization: Bearer is not accepted by the REST API");
    // 401 comes before 422: an unauthenticated request with missing fields is refused for auth.
    let r = app.client.post(app.url("/fax")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app.post_fax(Some(app.admin()), NUMBER, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202, "the env key has every scope");
}
db_test!(enforced_auth_refuses_missing_wrong_and_bearer_credentials);

async fn dev_mode_is_anonymous_but_admin_still_needs_a_credential(db: Db) {
    let app = Spawn::new(db).dev_mode().start().await;
    assert!(app.logs().iter().any(|l| l.contains("AUTHENTICATION IS DISABLED")), "dev mode must log a loud warning");
    let r = app.post_fax(None, NUMBER, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    let id = json(r).await["id"].as_str().unwrap().to_string();
    let r = app.post_fax(Some("garbage"), NUMBER, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202, "a wrong key is ignored in dev mode, as in the reference");
    assert_eq!(app.get_fax(None, &id).await.status(), 200);
    let r = app.client.get(app.url("/admin/api-keys")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await, serde_json::json!({"detail": "Admin authentication failed"}));
    let body = json(app.client.get(app.url("/health/ready")).send().await.unwrap()).await;
    assert!(body["warnings"][0].as_str().unwrap().contains("authentication is disabled"));
}
db_test!(dev_mode_is_anonymous_but_admin_still_needs_a_credential);

async fn scope_matrix(db: Db) {
    let app = TestApp::spawn(db).await;
    let send = app.create_key(&["fax:send"]).await;
    let read = app.create_key(&["fax:read"]).await;
    let star = app.create_key(&["*"]).await;
    let admin = app.create_key(&["keys:manage"]).await;
    let inbound = app.create_key(&["inbound:list", "inbound:read"]).await;

    let r = app.post_fax(Some(&send), NUMBER, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    let id = json(r).await["id"].as_str().unwrap().to_string();

    let cases: Vec<(&str, u16, u16, u16)> = vec![
        // key, POST /fax, GET /fax/{id}, GET /admin/api-keys
        (&send, 202, 403, 401),
        (&read, 403, 200, 401),
        (&star, 202, 200, 401),
        (&admin, 403, 403, 200),
        (&inbound, 403, 403, 401),
    ];
    for (key, post, get, adm) in cases {
        assert_eq!(app.post_fax(Some(key), NUMBER, "a.pdf", one_page_pdf()).await.status(), post);
        assert_eq!(app.get_fax(Some(key), &id).await.status(), get);
        let r = app.client.get(app.url("/admin/api-keys")).header("X-API-Key", key).send().await.unwrap();
        assert_eq!(r.status(), adm);
    }
    let r = app.get_fax(Some(&send), &id).await;
    assert_eq!(json(r).await, serde_json::json!({"detail": "Insufficient scope: fax:read required"}));
    let r = app.post_fax(Some(&read), NUMBER, "a.pdf", one_page_pdf()).await;
    assert_eq!(json(r).await, serde_json::json!({"detail": "Insufficient scope: fax:send required"}));
    // 403 comes before 422.
    let r = app.client.post(app.url("/fax")).header("X-API-Key", &read).send().await.unwrap();
    assert_eq!(r.status(), 403);
}
db_test!(scope_matrix);

async fn dev_mode_still_enforces_scopes_of_a_valid_key(db: Db) {
    let mut app = Spawn::new(db).start().await;
    let read = app.create_key(&["fax:read"]).await;
    app.kill();
    let dev = Spawn::new(db).reuse(&app).dev_mode().env("API_KEY", "").start().await;
    dev.forbid(&read);
    let r = dev.post_fax(Some(&read), NUMBER, "a.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 403, "a valid key without the scope is refused even in dev mode");
}
db_test!(dev_mode_still_enforces_scopes_of_a_valid_key);

async fn rate_limit_answers_429_with_retry_after(db: Db) {
    let app = Spawn::new(db).env("MAX_REQUESTS_PER_MINUTE", "2").start().await;
    // Windows are wall-clock minutes: start a round only with time to finish it inside one window, and with a
    // fresh key (its own bucket), so a round that still straddles a minute cannot poison the retry.
    let mut statuses = Vec::new();
    let mut last = None;
    for _attempt in 0..2 {
        crate::helpers::start_of_a_minute().await;
        let key = app.create_key(&["fax:send", "fax:read"]).await;
        statuses.clear();
        for _ in 0..3 {
            let r = app.post_fax(Some(&key), NUMBER, "a.pdf", one_page_pdf()).await;
            statuses.push(r.status().as_u16());
            last = Some((r, key.clone()));
        }
        if statuses == [202, 202, 429] {
            break;
        }
    }
    assert_eq!(statuses, [202, 202, 429]);
    let (r, key) = last.unwrap();
    let retry_after: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(json(r).await, serde_json::json!({"detail": "Rate limit exceeded"}));
    // 429 comes before 422, and the GET route has its own bucket.
    assert_eq!(app.client.post(app.url("/fax")).header("X-API-Key", &key).send().await.unwrap().status(), 429);
    assert_ne!(app.get_fax(Some(&key), "00000000000000000000000000000000").await.status(), 429);
}
db_test!(rate_limit_answers_429_with_retry_after);

async fn failed_authentications_are_limited_per_client_address(db: Db) {
    // 5 failures a minute; the test client is 127.0.0.1, a trusted proxy here, so X-Forwarded-For names
    // the client.
    let app = Spawn::new(db)
        .env("FAXBOT_AUTH_FAILURES_PER_MINUTE", "5")
        .env("FAXBOT_TRUSTED_PROXIES", "127.0.0.0/8")
        .start()
        .await;
    let guess = |client: &'static str| {
        app.client
            .get(app.url("/fax/00000000000000000000000000000000"))
            .header("X-API-Key", "fbk_live_0123456789ab_guess")
            .header("X-Forwarded-For", client)
            .send()
    };
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..12 {
        let r = guess("203.0.113.50").await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            assert_eq!(
                json(r).await,
                serde_json::json!({"detail": "Too many failed authentication attempts; retry later"})
            );
        }
    }
    // A minute boundary can fall inside the loop and reset the window once; either way the guesser is stopped
    // after at most 5 failures per minute.
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 12 - 10, "{statuses:?}");
    assert!(statuses.iter().all(|s| [401, 429].contains(s)), "{statuses:?}");
    assert!(retry_after.is_some_and(|s| (1..=60).contains(&s)), "{retry_after:?}");
    // Refused before the key lookup: only the failures that were let through reached the audit trail.
    let lookups = statuses.iter().filter(|s| **s == 401).count();
    let audited = || app.logs().iter().filter(|l| l.contains("\"auth_failed\"")).count();
    // Log lines reach the capture a moment after the answers.
    for _ in 0..50 {
        if audited() >= lookups {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(audited(), lookups, "one audit line per lookup, none for the refused");
    // Another client behind the same proxy is not affected, and a correct key still works for it.
    let r = guess("203.0.113.51").await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(app.url("/fax/00000000000000000000000000000000"))
        .header("X-API-Key", app.admin())
        .header("X-Forwarded-For", "203.0.113.51")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A forged X-Forwarded-For from an untrusted peer changes nothing: covered by the unit tests of
    // http::auth_failures (the test client can only connect from loopback).
}
db_test!(failed_authentications_are_limited_per_client_address);
