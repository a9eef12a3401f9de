use crate::db_test;
use crate::helpers::{Db, Spawn, json};
use std::process::Command;
use std::time::{Duration, Instant};

fn write(path: &std::path::Path, doc: &serde_json::Value) {
    // Write-then-rename, the way a ConfigMap volume swaps its contents.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc.to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn features(app: &crate::helpers::TestApp) -> serde_json::Value {
    json(app.client.get(app.url("/admin/features")).header("X-API-Key", app.admin()).send().await.unwrap()).await
}

async fn config_document_is_validated_and_reloaded_atomically(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faxbot.json");
    write(&path, &serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test"}}}));
    let app = Spawn::new(db).env("FAXBOT_CONFIG_PATH", path.to_str().unwrap()).start().await;
    let before = features(&app).await;
    assert_eq!(before["source"], "file");
    assert_eq!(before["features"]["v3Plugins"], false);
    let rev0 = before["revision"].as_str().unwrap().to_string();

    // A valid change is applied without a restart.
    write(
        &path,
        &serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test"}},
        "features": {"v3Plugins": true, "auditAll": true}}),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let f = features(&app).await;
        if f["revision"] != rev0.as_str() {
            break f;
        }
        assert!(Instant::now() < deadline, "config change not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after["features"]["v3Plugins"], true);
    assert_eq!(after["last_reload"]["result"], "applied");
    let rev1 = after["revision"].as_str().unwrap().to_string();

    // Invalid documents are refused with precise messages; the previous one keeps serving.
    for (doc, expect) in [
        (serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "fax4u"}}}), "unknown plugin `fax4u`"),
        (
            serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test", "settings": {"to_number": "+15551234567"}}}}),
            "providers.outbound.settings.to_number: looks like PHI",
        ),
        (
            serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test", "settings": {"apiSecret": "x"}}}}),
            "looks like a credential",
        ),
        (
            serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test", "settings": {"failSuffix": "12a"}}}}),
            "providers.outbound.settings.failSuffix: must be 1 to 8 digits",
        ),
        (
            serde_json::json!({"version": 1, "providers": {"storage": {"plugin": "local", "settings": {"path": "/elsewhere"}}}}),
            "needs a restart",
        ),
        (serde_json::json!({"version": 1, "featurez": {}}), "unknown field `featurez`"),
    ] {
        write(&path, &doc);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let f = features(&app).await;
            if f["last_reload"]["result"] == "rejected" && f["last_reload"]["error"].as_str().unwrap().contains(expect)
            {
                assert_eq!(f["revision"], rev1.as_str(), "a rejected document must not change the revision");
                assert_eq!(f["features"]["v3Plugins"], true);
                break;
            }
            assert!(Instant::now() < deadline, "expected rejection containing {expect:?}, got {f}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Reset the marker so the next case is observed on its own.
        write(
            &path,
            &serde_json::json!({"version": 1, "providers": {"outbound": {"plugin": "test"}},
            "features": {"v3Plugins": true, "auditAll": true}}),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let logs = app.logs().join("\n");
    assert!(logs.contains("config_rejected"), "rejections are audited");
    assert!(!logs.contains("15551234567"), "a rejected document's PHI must not reach the logs");
    let r = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the server keeps serving");
}
db_test!(config_document_is_validated_and_reloaded_atomically);

#[test]
fn startup_refuses_an_invalid_config_with_a_precise_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        r#"{"version":1,"providers":{"outbound":{"plugin":"test","settings":{"deliveryLatencyMs":"soon"}}}}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faxbot-api"))
        .env_clear()
        .env("FAXBOT_LISTEN", "127.0.0.1:0")
        .env("FAX_DATA_DIR", dir.path().join("data"))
        .env("FAXBOT_CONFIG_PATH", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("providers.outbound.settings.deliveryLatencyMs"), "{stdout}");

    let out =
        Command::new(env!("CARGO_BIN_EXE_faxbot-api")).env_clear().env("MAX_FILE_SIZE_MB", "ten").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAX_FILE_SIZE_MB: expected a whole number"));
    let out = Command::new(env!("CARGO_BIN_EXE_faxbot-api")).env_clear().env("MAX_PAGES", "0").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAX_PAGES: must be between 1 and 10000"));
}
