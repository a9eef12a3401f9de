//! HTTP plugin manifests at the server: a manifest that could send requests (and credentials) somewhere they
//! must not go is refused when the document is loaded, with the field and the reason; a valid one is listed
//! like a built-in plugin. The manifest plugin's behaviour against a provider is the Phaxio suite
//! (`phaxio.rs`), which runs every test against the built-in plugin and the manifest.

use std::process::Command;

use crate::helpers::{Db, json};
use crate::phaxio::{Plugin, phaxio_manifest};

/// The shipped Phaxio manifest with its host replaced by `host`, bound to the outbound slot.
fn document(manifest: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"version": 1, "manifests": [manifest],
        "providers": {"outbound": {"plugin": "phaxio-http"}}})
}

/// The publisher key the signing tests trust.
const PUBLISHER_SECRET: [u8; 32] = [42; 32];

/// Signs a manifest with `secret` as key `key_id`.
fn signed(mut manifest: serde_json::Value, key_id: &str, secret: &[u8; 32]) -> serde_json::Value {
    let typed: faxbot_contract::manifest::HttpManifest = serde_json::from_value(manifest.clone()).unwrap();
    let value = faxbot_contract::manifest::signature::sign(&typed.canonical(), secret);
    manifest["signature"] = serde_json::json!({"keyId": key_id, "value": value});
    manifest
}

fn publisher_keys() -> String {
    serde_json::json!({"acme": faxbot_contract::manifest::signature::public_key(&PUBLISHER_SECRET)}).to_string()
}

/// Starts the server on `document` and returns its exit code and output.
fn start(document: &serde_json::Value, allow_loopback: bool) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faxbot.json");
    std::fs::write(&path, document.to_string()).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_faxbot-api"));
    command
        .env_clear()
        .env("FAXBOT_LISTEN", "127.0.0.1:0")
        .env("FAX_DATA_DIR", dir.path().join("data"))
        .env("FAXBOT_CONFIG_PATH", &path)
        .env("FAXBOT_PHAXIO_HTTP_APIKEY", "k")
        .env("FAXBOT_PHAXIO_HTTP_APISECRET", "s")
        .env("FAXBOT_PUBLISHER_KEYS", publisher_keys());
    if allow_loopback {
        command.env("FAXBOT_MANIFEST_ALLOW_LOOPBACK", "true");
    }
    // A valid document starts a server that runs until stopped: give it a moment, then stop it.
    let mut child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    (code, format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The shipped manifest on `host`, changed by `change`.
fn variant(host: &str, change: impl Fn(&mut serde_json::Value)) -> serde_json::Value {
    let mut m = phaxio_manifest(&format!("https://{host}/v2.1/"));
    change(&mut m);
    m
}

#[test]
fn manifests_that_could_reach_the_wrong_place_are_refused_with_the_field_and_the_reason() {
    let cases: Vec<(&str, serde_json::Value, bool, &str)> = vec![
        (
            "metadata address",
            variant("169.254.169.254", |_| {}),
            true,
            "manifests[0].allowedDomains[0]: must not be a link-local, metadata",
        ),
        (
            "private range",
            variant("10.20.30.40", |_| {}),
            true,
            "manifests[0].allowedDomains[0]: must not be a private or shared address",
        ),
        (
            "loopback outside tests",
            variant("127.0.0.1", |_| {}),
            false,
            "manifests[0].allowedDomains[0]: is a loopback address",
        ),
        (
            "a domain outside allowedDomains",
            variant("api.phaxio.com", |m| {
                m["actions"]["status"]["url"] = "https://collector.example.net/{{ provider_id }}".into()
            }),
            true,
            "manifests[0].actions.status.url: host `collector.example.net` is not in allowedDomains",
        ),
        (
            "a template reading the environment",
            variant("api.phaxio.com", |m| {
                m["actions"]["send"]["headers"] = serde_json::json!({"X-Leak": "{{ env.AWS_SECRET_ACCESS_KEY }}"})
            }),
            true,
            "manifests[0].actions.send.headers.X-Leak: reads `env.AWS_SECRET_ACCESS_KEY`: templates cannot read the environment",
        ),
        (
            "a template reading a file",
            variant("api.phaxio.com", |m| {
                m["actions"]["send"]["body"]["fields"]["to"] =
                    "{{ file('/var/run/secrets/kubernetes.io/serviceaccount/token') }}".into()
            }),
            true,
            "manifests[0].actions.send.body.fields.to: uses `file`: templates cannot read files",
        ),
        (
            "an include",
            variant("api.phaxio.com", |m| {
                m["actions"]["send"]["body"]["fields"]["to"] = "{% include '/etc/passwd' %}".into()
            }),
            true,
            "statements ({% … %}) and comments are not",
        ),
        (
            "no webhook verification",
            variant("api.phaxio.com", |m| m["webhook"]["verification"] = serde_json::json!({"scheme": "none"})),
            true,
            "manifests[0].webhook.verification: declares no webhook verification",
        ),
    ];
    for (what, manifest, allow_loopback, message) in cases {
        let (code, output) = start(&document(manifest), allow_loopback);
        assert_eq!(code, Some(1), "{what}: the server must refuse to start: {output}");
        assert!(output.contains(message), "{what}: expected `{message}` in:\n{output}");
    }
}

#[test]
fn only_manifests_from_a_trusted_publisher_start_unless_unverified_plugins_are_allowed() {
    // The shipped manifest as it is: trusted like a built-in plugin, signed or not.
    let shipped = variant("api.phaxio.com", |_| {});
    let (code, output) = start(&document(shipped), false);
    assert_eq!(code, None, "the shipped manifest starts unsigned: {output}");
    // Any change makes it another publisher's manifest.
    let valid = variant("api.phaxio.com", |m| m["version"] = "1.0.0-local".into());
    // Signed by the trusted key: starts (and is stopped by the test after a moment).
    let (code, output) = start(&document(signed(valid.clone(), "acme", &PUBLISHER_SECRET)), false);
    assert_eq!(code, None, "a signed manifest starts: {output}");

    let refusals = [
        (
            valid.clone(),
            "manifest `phaxio-http` is not signed; sign it with a trusted publisher key, or set features.pluginInstall",
        ),
        (
            signed(valid.clone(), "acme", &[7; 32]),
            "manifest `phaxio-http` has a signature that does not verify: the signature does not match the manifest",
        ),
        (signed(valid.clone(), "other", &PUBLISHER_SECRET), "no trusted publisher key `other`"),
        (
            {
                // Signed, then changed: another host added to allowedDomains.
                let mut m = signed(valid.clone(), "acme", &PUBLISHER_SECRET);
                m["allowedDomains"] = serde_json::json!(["api.phaxio.com", "collector.example.net"]);
                m
            },
            "has a signature that does not verify",
        ),
    ];
    for (manifest, message) in refusals {
        let (code, output) = start(&document(manifest), false);
        assert_eq!(code, Some(1), "{message}: {output}");
        assert!(output.contains(message), "expected `{message}` in:\n{output}");
    }
    // The registry index's entries (the document's catalog) follow the same rule, named as such.
    let mut offered = document(signed(valid.clone(), "acme", &PUBLISHER_SECRET));
    offered["catalog"] = serde_json::json!([variant("api.phaxio.com", |m| m["id"] = "acme-fax".into())]);
    let (code, output) = start(&offered, false);
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("catalog: manifest `acme-fax` is not signed"), "{output}");
    offered["catalog"][0] = variant("169.254.169.254", |m| m["id"] = "acme-fax".into());
    let (code, output) = start(&offered, false);
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("catalog[0].allowedDomains[0]"), "{output}");
    // Unverified plugins allowed by the document: the unsigned manifest starts.
    let mut allowed = document(valid);
    allowed["features"] = serde_json::json!({"pluginInstall": true});
    let (code, output) = start(&allowed, false);
    assert_eq!(code, None, "pluginInstall accepts an unsigned manifest: {output}");
}

async fn manifest_plugins_are_listed_like_built_in_ones(db: Db) {
    let fake =
        crate::helpers::phaxio_fake("secret-1234567890", "hook-token", std::time::Duration::from_millis(40)).await;
    let mut config = Plugin::Manifest.config(&fake.base_url, serde_json::json!({"pollIntervalMs": 100}));
    // Signed by a trusted publisher, so unverified plugins need not be allowed.
    config["manifests"][0] = signed(config["manifests"][0].clone(), "acme", &PUBLISHER_SECRET);
    config["features"] = serde_json::json!({"v3Plugins": true, "pluginRegistry": true});
    // A registry index (the document's catalog): an entry signed by the trusted publisher, and one with the
    // id of the installed manifest (the installed one is what the registry lists).
    let offer = |id: &str| variant("api.acme-fax.example", |m| m["id"] = id.into());
    config["catalog"] = serde_json::json!([
        signed(offer("acme-fax"), "acme", &PUBLISHER_SECRET),
        signed(offer("phaxio-http"), "acme", &PUBLISHER_SECRET),
    ]);
    let (app, _dir) = Plugin::Manifest
        .spawn(db)
        .env("FAXBOT_PUBLISHER_KEYS", &publisher_keys())
        .start_with_config(config, &[("outbound.apiKey", "phaxio-key"), ("outbound.apiSecret", "secret-1234567890")])
        .await;
    let list = json(app.client.get(app.url("/plugins")).header("X-API-Key", app.admin()).send().await.unwrap()).await;
    let item = list["items"].as_array().unwrap().iter().find(|p| p["id"] == "phaxio-http").cloned();
    let item = item.unwrap_or_else(|| panic!("phaxio-http listed: {list}"));
    assert_eq!(item["enabled"], true);
    assert_eq!(item["categories"], serde_json::json!(["outbound"]));
    assert_eq!(
        item["capabilities"],
        serde_json::json!(["send", "status", "cancel", "webhook", "idempotency"]),
        "the list action makes it idempotent"
    );
    let config = json(
        app.client.get(app.url("/plugins/phaxio-http/config")).header("X-API-Key", app.admin()).send().await.unwrap(),
    )
    .await;
    assert_eq!(config["settings"]["pollIntervalMs"], 100);
    let registry = json(
        app.client
            .get(app.url("/plugin-registry?category=outbound"))
            .header("X-API-Key", app.admin())
            .send()
            .await
            .unwrap(),
    )
    .await;
    let entry = |id: &str| registry["items"].as_array().unwrap().iter().find(|p| p["id"] == id).cloned().unwrap();
    assert_eq!(
        (entry("phaxio-http")["verified"].clone(), entry("phaxio-http")["publisher"].clone()),
        (true.into(), "acme".into())
    );
    assert_eq!(
        (entry("phaxio")["verified"].clone(), entry("phaxio")["publisher"].clone()),
        (true.into(), "builtin".into())
    );
    assert!(entry("phaxio-http")["settings_schema"]["properties"]["callbackUrl"].is_object(), "{registry}");
    // Where each entry comes from, and whether a slot can take it now.
    let origin = |id: &str| {
        let e = entry(id);
        (e["source"].as_str().unwrap().to_string(), e["installed"].as_bool().unwrap(), e["publisher"].clone())
    };
    assert_eq!(origin("phaxio"), ("builtin".into(), true, "builtin".into()));
    assert_eq!(origin("phaxio-http"), ("manifest".into(), true, "acme".into()), "the installed one, listed once");
    assert_eq!(origin("acme-fax"), ("index".into(), false, "acme".into()));
    assert_eq!(origin("signalwire"), ("shipped".into(), false, "builtin".into()));
    assert_eq!(origin("telnyx"), ("shipped".into(), false, "builtin".into()));
    let ids: Vec<&str> = registry["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids.iter().filter(|id| **id == "phaxio-http").count(), 1, "{ids:?}");
    // Entries on offer cannot be bound before they are installed.
    let r = app
        .client
        .put(app.url("/plugins/acme-fax/config"))
        .header("X-API-Key", app.admin())
        .json(&serde_json::json!({"settings": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "{}", r.text().await.unwrap());
    // A setting the manifest does not declare is refused through the plugin API, by the manifest's rules.
    let r = app
        .client
        .put(app.url("/plugins/phaxio-http/config"))
        .header("X-API-Key", app.admin())
        .json(&serde_json::json!({"settings": {"pollIntervalMs": 100, "region": "eu"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body = json(r).await;
    assert!(
        body.to_string().contains("unknown setting; `phaxio-http` declares: callbackUrl, pollIntervalMs"),
        "{body}"
    );
    app.assert_no_leaks();
}
crate::db_test!(manifest_plugins_are_listed_like_built_in_ones);
