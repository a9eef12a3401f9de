//! The real `faxbot-api` binary accepts exactly what the operator renders for a pod: the runtime config from
//! the ConfigMap, the credential files from the Secret, and the container's environment. The end-to-end suite
//! runs real pods from the built images; this test runs the freshly built binary, so a change on either side
//! is caught without an image build.
//!
//! The pod's mounts are materialised in a temp dir (paths remapped) and the server is started with the
//! Deployment's env; then readiness, the revision label and the admin credential are checked over HTTP.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faxbot_crds::{CredentialsSecretRef, FaxPluginConfig, FaxPluginConfigSpec, FaxProvider, FaxProviderSpec};
use faxbot_operator::validate::{Referenced, validate_config};
use faxbot_operator::{build, names};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;

const ADMIN_KEY: &str = "fbk_admin_rendered-pod-admin-key-4f1e";
const PEPPER: &str = "rendered-pod-pepper-77aa";

fn http_get(port: u16, path: &str, key: Option<&str>) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = key.map(|k| format!("X-API-Key: {k}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n{auth}\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn the_api_server_accepts_the_pod_the_operator_renders() {
    let Some(bin) = faxbot_tests::binary_or_skip("faxbot-api", "rendered-pod test") else { return };

    // A config as a user would write it: simulated line with settings, API-key auth from a Secret.
    let spec: FaxPluginConfigSpec = serde_json::from_value(serde_json::json!({
        "apiServer": {"image": "faxbot-api:test"},
        "slots": {"outbound": ["line"], "auth": "keys"},
        "features": {"auditAll": true, "v3Plugins": true}
    }))
    .unwrap();
    let mut config = FaxPluginConfig::new("main", spec);
    config.metadata.namespace = Some("fax".into());
    config.metadata.uid = Some("uid-main".into());
    let mut referenced = Referenced::default();
    let mut line = FaxProvider::new(
        "line",
        FaxProviderSpec {
            plugin: "test".into(),
            settings: serde_json::json!({"deliveryLatencyMs": 40}).as_object().cloned(),
            credentials_secret_ref: None,
            manifest_ref: None,
            sidecar: None,
        },
    );
    line.metadata.namespace = Some("fax".into());
    let mut keys = FaxProvider::new(
        "keys",
        FaxProviderSpec {
            plugin: "api_keys".into(),
            settings: None,
            credentials_secret_ref: Some(CredentialsSecretRef { name: "admin".into(), items: None }),
            manifest_ref: None,
            sidecar: None,
        },
    );
    keys.metadata.namespace = Some("fax".into());
    referenced.providers.insert("line".into(), line);
    referenced.providers.insert("keys".into(), keys);
    referenced.secrets.insert(
        "admin".into(),
        Secret {
            metadata: ObjectMeta { name: Some("admin".into()), uid: Some("uid-admin".into()), ..Default::default() },
            data: Some(BTreeMap::from([
                ("adminKey".to_string(), ByteString(ADMIN_KEY.into())),
                ("pepper".to_string(), ByteString(PEPPER.into())),
            ])),
            ..Default::default()
        },
    );
    let desired = validate_config(&config, &referenced).unwrap();
    let config_map = build::config_map(&config, &desired);
    let secret = build::credentials_secret(&config, &desired);
    let deployment = build::deployment(&config, &desired);

    // Materialise the pod's mounts under a temp dir.
    let root = tempfile::tempdir().unwrap();
    let remap = |p: &str| {
        p.replace("/etc/faxbot", &root.path().join("etc").display().to_string())
            .replace(build::DATA_DIR, &root.path().join("data").display().to_string())
    };
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    for mount in container.volume_mounts.as_ref().unwrap() {
        std::fs::create_dir_all(remap(&mount.mount_path)).unwrap();
    }
    for (k, v) in config_map.data.unwrap() {
        std::fs::write(format!("{}/{k}", remap(build::CONFIG_DIR)), v).unwrap();
    }
    for (k, v) in secret.data.unwrap() {
        std::fs::write(format!("{}/{k}", remap(build::CREDENTIALS_DIR)), v.0).unwrap();
    }

    // The container's environment, paths remapped, on a free loopback port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = Command::new(bin);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for var in container.env.as_ref().unwrap() {
        let value = var.value.clone().map(|v| remap(&v)).unwrap_or_default();
        let value = if var.name == "FAXBOT_LISTEN" { format!("127.0.0.1:{port}") } else { value };
        assert!(var.value_from.is_none(), "no secretKeyRef without a database in this config");
        cmd.env(&var.name, value);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let (status, body) = http_get(port, "/health/ready", None);
            if status == 200 {
                break body;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child.stdout.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("faxbot-api exited with {status} on the rendered pod config:\n{err}");
        }
        assert!(Instant::now() < deadline, "faxbot-api never became ready");
        std::thread::sleep(Duration::from_millis(50));
    };
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["revision"], desired.revision.as_str(), "metrics and logs carry the operator's revision");

    // The admin credential from the Secret works; without it the API refuses (REQUIRE_API_KEY).
    assert_eq!(http_get(port, "/admin/api-keys", Some(ADMIN_KEY)).0, 200);
    assert_eq!(http_get(port, "/admin/api-keys", None).0, 401);
    let (status, features) = http_get(port, "/admin/features", Some(ADMIN_KEY));
    assert_eq!(status, 200);
    let features: serde_json::Value = serde_json::from_str(&features).unwrap();
    assert_eq!(features["source"], "file");
    assert_eq!(features["features"]["auditAll"], true);
    assert_eq!(features["outbound"]["plugin"], "test");
    // The v3 plugin API (on via the config's feature flag) reads the provider's settings back.
    let (status, body) = http_get(port, "/plugins/test/config", Some(ADMIN_KEY));
    assert_eq!(status, 200);
    assert!(body.contains("\"deliveryLatencyMs\":40"), "{body}");

    let _ = child.kill();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = child.wait();
    assert!(!out.contains(ADMIN_KEY) && !out.contains(PEPPER), "the server logged a credential");
    assert!(
        std::path::Path::new(&format!(
            "{}/{}",
            remap(build::CREDENTIALS_DIR),
            names::credential_key("auth", "adminKey")
        ))
        .is_file()
    );
}
