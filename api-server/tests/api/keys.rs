use crate::db_test;
use crate::helpers::{Db, NUMBER, TestApp, json, one_page_pdf};
use std::time::Duration;

async fn key_lifecycle_create_list_use_rotate_revoke(db: Db) {
    let app = TestApp::spawn(db).await;
    let r = app
        .client
        .post(app.url("/admin/api-keys"))
        .header("X-API-Key", app.admin())
        .json(&serde_json::json!({"name": "billing", "owner": "ops", "scopes": ["fax:send", "fax:read"], "note": "n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "create answers 200 as the reference does");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["cache-control"], "no-store, no-cache, must-revalidate");
    let created = json(r).await;
    let key_id = created["key_id"].as_str().unwrap().to_string();
    let token = created["token"].as_str().unwrap().to_string();
    app.forbid(&token);
    assert_eq!(key_id.len(), 12);
    assert!(token.starts_with(&format!("fbk_live_{key_id}_")));
    assert_eq!(token.len(), "fbk_live_".len() + 12 + 1 + 43);
    assert_eq!(created["scopes"], serde_json::json!(["fax:send", "fax:read"]));
    assert_eq!(created["expires_at"], serde_json::Value::Null);

    assert_eq!(app.post_fax(Some(&token), NUMBER, "a.pdf", one_page_pdf()).await.status(), 202);

    let list =
        json(app.client.get(app.url("/admin/api-keys")).header("X-API-Key", app.admin()).send().await.unwrap()).await;
    let entry = list.as_array().unwrap().iter().find(|k| k["key_id"] == key_id.as_str()).unwrap().clone();
    let fields: Vec<&String> = entry.as_object().unwrap().keys().collect();
    assert_eq!(fields.len(), 9, "{entry}");
    for f in ["key_id", "name", "owner", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at", "note"] {
        assert!(entry.get(f).is_some(), "{f}");
    }
    assert!(!list.to_string().contains(crate::helpers::secret_of(&token)), "listing never shows secrets");

    // last_used_at is written in batches within a few seconds.
    let mut seen = false;
    for _ in 0..40 {
        let list =
            json(app.client.get(app.url("/admin/api-keys")).header("X-API-Key", app.admin()).send().await.unwrap())
                .await;
        if list.as_array().unwrap().iter().any(|k| k["key_id"] == key_id.as_str() && k["last_used_at"].is_string()) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(seen, "last_used_at was never recorded");

    // Rotate: new secret works at once, old one fails at once.
    let r = app
        .client
        .post(app.url(&format!("/admin/api-keys/{key_id}/rotate")))
        .header("X-API-Key", app.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated = json(r).await;
    let new_token = rotated["token"].as_str().unwrap().to_string();
    app.forbid(&new_token);
    assert_eq!(rotated["key_id"], key_id.as_str());
    assert_eq!(app.post_fax(Some(&token), NUMBER, "a.pdf", one_page_pdf()).await.status(), 401);
    assert_eq!(app.post_fax(Some(&new_token), NUMBER, "a.pdf", one_page_pdf()).await.status(), 202);

    // Revoke is idempotent; a revoked key fails; rotating it is refused.
    for _ in 0..2 {
        let r = app
            .client
            .delete(app.url(&format!("/admin/api-keys/{key_id}")))
            .header("X-API-Key", app.admin())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(json(r).await, serde_json::json!({"status": "ok"}));
    }
    assert_eq!(app.post_fax(Some(&new_token), NUMBER, "a.pdf", one_page_pdf()).await.status(), 401);
    let r = app
        .client
        .post(app.url(&format!("/admin/api-keys/{key_id}/rotate")))
        .header("X-API-Key", app.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let list =
        json(app.client.get(app.url("/admin/api-keys")).header("X-API-Key", app.admin()).send().await.unwrap()).await;
    assert!(list.as_array().unwrap().iter().any(|k| k["key_id"] == key_id.as_str() && k["revoked_at"].is_string()));

    for path in ["/admin/api-keys/000000000000", "/admin/api-keys/000000000000/rotate"] {
        let req =
            if path.ends_with("rotate") { app.client.post(app.url(path)) } else { app.client.delete(app.url(path)) };
        let r = req.header("X-API-Key", app.admin()).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(json(r).await, serde_json::json!({"detail": "Key not found"}));
    }
}
db_test!(key_lifecycle_create_list_use_rotate_revoke);

async fn key_creation_validates_its_input(db: Db) {
    let app = TestApp::spawn(db).await;
    let post = |body: Option<serde_json::Value>| {
        let mut req = app.client.post(app.url("/admin/api-keys")).header("X-API-Key", app.admin());
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    let r = post(None).await.unwrap();
    assert_eq!(r.status(), 422, "no body");
    let r = post(Some(serde_json::json!({}))).await.unwrap();
    assert_eq!(r.status(), 200, "an empty object is fine");
    app.forbid(json(r).await["token"].as_str().unwrap());
    let r = post(Some(serde_json::json!({"scopes": ["fax:sned"]}))).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(json(r).await["detail"].as_str().unwrap().starts_with("Unknown scope 'fax:sned'"));
    let r = post(Some(serde_json::json!({"expires_at": "tomorrow"}))).await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(json(r).await["detail"][0]["loc"], serde_json::json!(["body", "expires_at"]));
    let r = post(Some(serde_json::json!({"scopes": "fax:send"}))).await.unwrap();
    assert_eq!(r.status(), 422, "scopes must be a list");
    let r = app
        .client
        .post(app.url("/admin/api-keys"))
        .header("X-API-Key", app.admin())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // An expired key is refused.
    let r = post(Some(serde_json::json!({"scopes": ["fax:send"], "expires_at": "2020-01-01T00:00:00"}))).await.unwrap();
    let expired = json(r).await;
    let token = expired["token"].as_str().unwrap().to_string();
    app.forbid(&token);
    assert_eq!(expired["expires_at"], "2020-01-01T00:00:00");
    assert_eq!(app.post_fax(Some(&token), NUMBER, "a.pdf", one_page_pdf()).await.status(), 401);
    // A key that expires later works.
    let r =
        post(Some(serde_json::json!({"scopes": ["fax:send"], "expires_at": "2999-01-01T00:00:00Z"}))).await.unwrap();
    let token = json(r).await["token"].as_str().unwrap().to_string();
    app.forbid(&token);
    assert_eq!(app.post_fax(Some(&token), NUMBER, "a.pdf", one_page_pdf()).await.status(), 202);
}
db_test!(key_creation_validates_its_input);
