//! The suite judges: the plugins that follow the protocol pass every check, and each way of breaking it fails
//! the check written for it (a suite that cannot fail proves nothing).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use faxbot_plugin_conformance::checks::{self, Outcome};
use faxbot_plugin_conformance::targets;
use serde_json::{Value, json};

const SKELETON: &str = include_str!("../../templates/manifest/manifest.json");

fn failed(outcomes: &[Outcome]) -> Vec<&'static str> {
    outcomes.iter().filter(|o| o.failure.is_some()).map(|o| o.name).collect()
}

fn skeleton() -> Value {
    serde_json::from_str(&SKELETON.replace("@@ID@@", "acme-fax").replace("@@NAME@@", "Acme Fax")).unwrap()
}

async fn run_manifest(manifest: &Value) -> Vec<Outcome> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let prepared = targets::manifest(path.to_str().unwrap(), None).await.expect("the manifest can be checked");
    checks::run(&prepared.target).await
}

#[tokio::test]
async fn the_built_in_simulated_line_passes() {
    let prepared = targets::builtin("test").await.unwrap();
    let outcomes = checks::run(&prepared.target).await;
    assert!(failed(&outcomes).is_empty(), "{outcomes:?}");
    assert!(outcomes.len() >= 12, "{outcomes:?}");
    assert!(targets::builtin("phaxio").await.is_err(), "only the simulated line runs here");
}

#[tokio::test]
async fn the_manifest_skeleton_passes_every_check_including_callbacks() {
    let outcomes = run_manifest(&skeleton()).await;
    assert!(failed(&outcomes).is_empty(), "{outcomes:?}");
    assert!(outcomes.iter().any(|o| o.name.contains("authentic callback")), "{outcomes:?}");
    assert!(outcomes.iter().any(|o| o.name.contains("idempotent")), "{outcomes:?}");
}

#[tokio::test]
async fn manifests_that_map_the_provider_wrongly_fail_the_check_for_it() {
    type Edit = fn(&mut Value);
    let table: &[(&str, Edit, &str)] = &[
        (
            "failures mapped as delivered",
            |m| {
                m["statuses"]["delivered"] = json!(["delivered", "failed"]);
                m["statuses"]["failed"] = json!(["error"]);
            },
            "a failed transmission reaches failed",
        ),
        (
            "the provider's refusal mapped as an outage",
            |m| m["errors"] = json!([{"status": 422, "outcome": "unavailable"}]),
            "a refused destination is rejected",
        ),
        (
            "busy mapped as a refusal",
            |m| m["errors"] = json!([{"status": 503, "outcome": "rejected"}]),
            "a busy provider is retryable",
        ),
        (
            "callbacks verified by a header the provider does not send",
            |m| m["webhook"]["verification"]["header"] = json!("X-Other-Signature"),
            "an authentic callback reports its fax",
        ),
        (
            "cancel at a path the provider does not have",
            |m| {
                m["actions"]["cancel"]["url"] =
                    json!("https://fax.example.com/v1/faxes/{{ provider_id | urlencode }}/stop");
            },
            "cancel stops an unfinished fax",
        ),
    ];
    for (what, edit, check) in table {
        let mut m = skeleton();
        edit(&mut m);
        let outcomes = run_manifest(&m).await;
        let failures = failed(&outcomes);
        assert!(failures.iter().any(|f| f.starts_with(check)), "{what}: expected `{check}` to fail, got {failures:?}");
    }
}

/// A sidecar written without the kit that gets three things wrong: it ignores the plugin token, echoes the
/// destination in its refusals, and gives no retry hint when busy.
async fn careless_sidecar() -> String {
    let manifest = json!({"protocol": 1, "id": "careless", "name": "Careless", "version": "1", "hipaaCompliant": false,
        "capabilities": ["send", "status"], "idempotent": false, "needsDocument": true, "pollIntervalMs": 1000});
    let app = Router::new()
        .route("/v1/health", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/v1/manifest", get(move || async move { axum::Json(manifest) }))
        .route(
            "/v1/send",
            post(|body: axum::body::Bytes| async move {
                let Ok(request) = serde_json::from_slice::<Value>(&body) else {
                    return (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": {"kind": "bad_request", "message": "bad"}})),
                    );
                };
                let to = request["to"].as_str().unwrap_or_default().to_string();
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({"error": {"kind": "rejected", "message": format!("cannot fax {to}")}})),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test]
async fn a_careless_sidecar_fails_the_checks_it_breaks() {
    let url = careless_sidecar().await;
    let prepared = targets::sidecar(&url, Some("plugin-token".into()), None).unwrap();
    let outcomes = checks::run(&prepared.target).await;
    let failures = failed(&outcomes);
    for check in [
        "requests without the plugin token are refused",
        "malformed requests are bad_request",
        "a fax to the delivered number is sent",
        "a busy provider is retryable",
        "no error message carries a number",
    ] {
        assert!(failures.iter().any(|f| f.starts_with(check)), "expected `{check}` to fail: {failures:?}");
    }
    let (report, passed) = checks::report(&outcomes);
    assert!(!passed);
    assert!(!report.contains("5555550102"), "the report masks what it quotes: {report}");
    assert!(targets::sidecar("http://10.1.2.3:8090", None, None).is_err(), "only loopback is checked");
}
