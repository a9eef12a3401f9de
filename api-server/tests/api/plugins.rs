//! The v3 plugin management API: feature gates, admin auth, listing, validated and persisted updates that apply
//! without a restart, refusals where the document is not ours to write, and the registry's filters.

use crate::db_test;
use crate::helpers::{Db, Spawn, json};

fn write(path: &std::path::Path, doc: &serde_json::Value) {
    std::fs::write(path, doc.to_string()).unwrap();
}

async fn plugin_api_is_gated_validated_and_applied_live(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faxbot.json");
    write(&path, &serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test"}}}));
    let app = Spawn::new(db).env("FAXBOT_CONFIG_PATH", path.to_str().unwrap()).start().await;
    let admin = app.admin().to_string();
    let get = |p: &str, key: Option<&str>| {
        let mut r = app.client.get(app.url(p));
        if let Some(k) = key {
            r = r.header("X-API-Key", k);
        }
        r.send()
    };

    // Flags off: 401 first for an unauthenticated caller, then the feature's 404.
    assert_eq!(get("/plugins", None).await.unwrap().status(), 401);
    let r = get("/plugins", Some(&admin)).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await, serde_json::json!({"detail": "v3 plugins feature disabled"}));
    assert_eq!(get("/plugin-registry", None).await.unwrap().status(), 404);

    // Enable both flags through the document (hot reload), then the API answers.
    write(
        &path,
        &serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test"}},
            "features": {"v3Plugins": true, "pluginRegistry": true}}),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get("/plugins", Some(&admin)).await.unwrap().status() != 200 {
        assert!(std::time::Instant::now() < deadline, "flag change not applied");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let list = json(get("/plugins", Some(&admin)).await.unwrap()).await;
    let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["test", "phaxio", "sinch", "sip", "external", "local", "s3", "api_keys"]);
    assert_eq!(list["items"][0]["enabled"], true);
    assert_eq!(list["items"][0]["configurable"], true);
    assert_eq!(list["items"][1]["enabled"], false);
    assert_eq!(list["items"][2]["enabled"], false);

    let cfg = json(get("/plugins/test/config", Some(&admin)).await.unwrap()).await;
    assert_eq!(cfg, serde_json::json!({"enabled": true, "settings": {}}));
    let r = get("/plugins/fax9000/config", Some(&admin)).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await["detail"], "Plugin not found");

    // Invalid settings: 422 with the JSON path of every problem; nothing written or applied.
    let before = std::fs::read(&path).unwrap();
    let r = app
        .client
        .put(app.url("/plugins/test/config"))
        .header("X-API-Key", &admin)
        .json(&serde_json::json!({"settings": {"failSuffix": "12a", "to_number": "+15551234567"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body = json(r).await;
    let text = body.to_string();
    assert!(text.contains("failSuffix") || text.contains("to_number"), "{text}");
    assert!(!text.contains("15551234567"), "no PHI echoed: {text}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "a refused update writes nothing");
    let r = app.client.put(app.url("/plugins/test/config")).header("X-API-Key", &admin).body("{").send().await.unwrap();
    assert_eq!(r.status(), 422);

    // A valid update is written atomically and applied at once: the revision changes without a restart.
    let rev0 = json(get("/admin/features", Some(&admin)).await.unwrap()).await["revision"].clone();
    let r = app
        .client
        .put(app.url("/plugins/test/config"))
        .header("X-API-Key", &admin)
        .json(&serde_json::json!({"settings": {"deliveryLatencyMs": 25, "failSuffix": "9999"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let saved = json(r).await;
    assert_eq!(saved["ok"], true);
    assert_ne!(saved["revision"], rev0);
    assert_eq!(json(get("/admin/features", Some(&admin)).await.unwrap()).await["revision"], saved["revision"]);
    let on_disk: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(on_disk["providers"]["outbound"]["settings"]["deliveryLatencyMs"], 25);
    assert_eq!(on_disk["features"]["v3Plugins"], true, "the rest of the document is kept");
    let cfg = json(get("/plugins/test/config", Some(&admin)).await.unwrap()).await;
    assert_eq!(cfg["settings"]["failSuffix"], "9999");

    // Per-slot health: every check passes on the embedded default.
    let r = get("/plugins/health", Some(&admin)).await.unwrap();
    assert_eq!(r.status(), 200);
    let health = json(r).await;
    assert_eq!(health["healthy"], true);
    let slots: Vec<(&str, &str)> = health["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["slot"].as_str().unwrap(), i["plugin"].as_str().unwrap()))
        .collect();
    assert_eq!(slots, vec![("outbound", "test"), ("storage", "local"), ("auth", "api_keys")]);
    assert_eq!(get("/plugins/health", None).await.unwrap().status(), 401);

    // The registry: unauthenticated, with filters; an unknown category is a 422.
    let reg = json(get("/plugin-registry?category=storage", None).await.unwrap()).await;
    let ids: Vec<&str> = reg["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["local", "s3"]);
    assert!(reg["items"][0]["settings_schema"]["properties"]["path"].is_object());
    assert!(reg["items"][1]["settings_schema"]["properties"]["sseKmsKeyId"].is_object());
    assert_eq!(reg["items"][1]["credentials"][0]["name"], "accessKeyId");
    let reg = json(get("/plugin-registry?hipaa=true", None).await.unwrap()).await;
    let sources = |source: &str| reg["items"].as_array().unwrap().iter().filter(|i| i["source"] == source).count();
    // Seven built-in plugins, and of the shipped manifests the Phaxio one (the SignalWire and Telnyx manifests
    // are not marked HIPAA-compliant), listed as not installed.
    assert_eq!((sources("builtin"), sources("shipped")), (7, 1), "{reg}");
    let shipped = reg["items"].as_array().unwrap().iter().find(|i| i["source"] == "shipped").unwrap();
    assert_eq!(
        (&shipped["id"], &shipped["installed"], &shipped["publisher"]),
        (&"phaxio-http".into(), &false.into(), &"builtin".into())
    );
    assert_eq!(get("/plugin-registry?category=fax", None).await.unwrap().status(), 422);

    let logs = app.logs().join("\n");
    assert!(!logs.contains("15551234567"));
}
db_test!(plugin_api_is_gated_validated_and_applied_live);

async fn without_a_config_file_updates_are_refused(db: Db) {
    let app = Spawn::new(db).env("FEATURE_V3_PLUGINS", "true").start().await;
    let r = app
        .client
        .put(app.url("/plugins/test/config"))
        .header("X-API-Key", app.admin())
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(json(r).await["detail"].as_str().unwrap().contains("FAXBOT_CONFIG_PATH"));
}
db_test!(without_a_config_file_updates_are_refused);

/// A server on the simulated line with the plugin API on, its config document in a temporary directory.
async fn with_plugin_api(db: Db) -> (tempfile::TempDir, std::path::PathBuf, crate::helpers::TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faxbot.json");
    write(
        &path,
        &serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test"}},
            "features": {"v3Plugins": true}}),
    );
    let app = Spawn::new(db).env("FAXBOT_CONFIG_PATH", path.to_str().unwrap()).start().await;
    (dir, path, app)
}

async fn a_refused_update_leaves_the_document_and_concurrent_updates_all_land(db: Db) {
    let (dir, path, app) = with_plugin_api(db).await;
    let admin = app.admin().to_string();
    let put = |plugin: &str, body: serde_json::Value| {
        app.client.put(app.url(&format!("/plugins/{plugin}/config"))).header("X-API-Key", &admin).json(&body).send()
    };

    // Sinch with valid settings but no credentials on disk: the plugin cannot be built, so the update is
    // refused with the reason, and the document (which the next start reads) is untouched.
    let before = std::fs::read(&path).unwrap();
    let r = put("sinch", serde_json::json!({"settings": {"projectId": "p-123"}})).await.unwrap();
    assert_eq!(r.status(), 422);
    let body = json(r).await;
    assert!(body.to_string().contains("credential"), "{body}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "a refused update writes nothing");

    // 100 concurrent updates: every one answers 2xx or 4xx, the temp files are gone, and the document on
    // disk is one of the updates, whole, and the one the server runs.
    let tasks: Vec<_> =
        (0..100).map(|i| put("test", serde_json::json!({"settings": {"deliveryLatencyMs": 10 + i}}))).collect();
    let statuses: Vec<u16> =
        futures_util::future::join_all(tasks).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    assert!(statuses.iter().all(|s| (200..500).contains(s)), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 200).count() == 100, "{statuses:?}");
    let on_disk: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let latency = on_disk["providers"]["outbound"]["settings"]["deliveryLatencyMs"].as_u64().unwrap();
    assert!((10..110).contains(&latency));
    let cfg =
        json(app.client.get(app.url("/plugins/test/config")).header("X-API-Key", &admin).send().await.unwrap()).await;
    assert_eq!(cfg["settings"]["deliveryLatencyMs"], latency, "the server runs the document on disk");
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().flatten().filter(|e| e.file_name() != "faxbot.json").collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
db_test!(a_refused_update_leaves_the_document_and_concurrent_updates_all_land);

async fn provider_endpoints_that_could_leak_credentials_are_refused(db: Db) {
    let (_dir, path, app) = with_plugin_api(db).await;
    let before = std::fs::read(&path).unwrap();
    for (url, reason, allow) in [
        ("http://127.0.0.1@169.254.169.254/latest/meta-data/", "must not contain credentials"),
        ("http://localhost.attacker.example/v2.1/", "must use https"),
        ("https://169.254.169.254/latest/", "link-local"),
        ("https://[fd00:ec2::254]/v2.1/", "link-local"),
        ("https://10.1.2.3/v2.1/", "must not be a private or shared address (unless allowPrivateNetwork is set)"),
    ]
    .into_iter()
    .map(|(url, reason)| (url, reason, false))
    // The plugin's consent opens private ranges, never the metadata services.
    .chain([
        ("https://169.254.169.254/latest/", "link-local, metadata", true),
        ("https://100.100.100.200/v2.1/", "link-local, metadata", true),
        ("https://[fd00:ec2::254]/v2.1/", "link-local, metadata", true),
    ]) {
        let r = app
            .client
            .put(app.url("/plugins/phaxio/config"))
            .header("X-API-Key", app.admin())
            .json(&serde_json::json!({"settings": {"baseUrl": url, "allowPrivateNetwork": allow}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{url}");
        let body = json(r).await;
        assert_eq!(
            body["detail"][0]["loc"],
            serde_json::json!(["body", "providers", "outbound", "settings", "baseUrl"]),
            "{body}"
        );
        assert!(body["detail"][0]["msg"].as_str().unwrap().contains(reason), "{url} (allow {allow}): {body}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing written");
}
db_test!(provider_endpoints_that_could_leak_credentials_are_refused);
