//! docs/plugin-protocol.yaml and `faxbot_contract::sidecar` describe the same protocol: every example in the
//! document reads into the type its schema names, and the document's error kinds are the crate's.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use faxbot_contract::sidecar::{
    ErrorBody, ErrorKind, FaxAnswer, Health, SendRequest, SidecarManifest, WebhookAnswer, WebhookRequest,
};
use serde_json::Value;

fn document() -> Value {
    let text = include_str!("../../docs/plugin-protocol.yaml");
    yaml_serde::from_str(text).expect("the protocol document is YAML")
}

/// Reads `example` as the type schema `name` stands for.
fn read(name: &str, example: &Value) -> Result<(), String> {
    let example = example.clone();
    let result = match name {
        "Manifest" => serde_json::from_value::<SidecarManifest>(example).map(|_| ()),
        "SendRequest" => serde_json::from_value::<SendRequest>(example).map(|_| ()),
        "FaxAnswer" => serde_json::from_value::<FaxAnswer>(example).map(|_| ()),
        "WebhookRequest" => serde_json::from_value::<WebhookRequest>(example).map(|_| ()),
        "WebhookAnswer" => serde_json::from_value::<WebhookAnswer>(example).map(|_| ()),
        "Error" => serde_json::from_value::<ErrorBody>(example).map(|_| ()),
        "Health" => serde_json::from_value::<Health>(example).map(|_| ()),
        other => return Err(format!("no Rust type for schema {other}")),
    };
    result.map_err(|e| format!("{name}: {e}"))
}

/// Every `{schema: {$ref}, example}` pair under `node`.
fn examples(node: &Value, found: &mut Vec<(String, Value)>) {
    match node {
        Value::Object(map) => {
            if let (Some(schema), Some(example)) = (map.get("schema"), map.get("example"))
                && let Some(name) = schema.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next())
            {
                found.push((name.to_string(), example.clone()));
            }
            map.values().for_each(|v| examples(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| examples(v, found)),
        _ => {}
    }
}

#[test]
fn every_example_reads_into_the_protocols_types() {
    let doc = document();
    let mut found = Vec::new();
    examples(&doc, &mut found);
    assert!(found.len() >= 9, "{found:?}");
    let problems: Vec<String> = found.iter().filter_map(|(name, example)| read(name, example).err()).collect();
    assert!(problems.is_empty(), "{problems:?}");
    let manifest = found.iter().find(|(n, _)| n == "Manifest").map(|(_, e)| e.clone()).unwrap();
    let manifest: SidecarManifest = serde_json::from_value(manifest).unwrap();
    assert!(faxbot_contract::sidecar::check_manifest(&manifest).is_empty(), "the example manifest passes the checks");
}

#[test]
fn the_documents_error_kinds_are_the_crates() {
    let doc = document();
    let kinds = &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["kind"]["enum"];
    let kinds: Vec<String> = serde_json::from_value(kinds.clone()).unwrap();
    for kind in &kinds {
        let parsed: ErrorKind = serde_json::from_value(Value::String(kind.clone())).unwrap();
        let status = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["kind"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(status.contains(&format!("{kind} {}", parsed.status())), "{kind} {} not in: {status}", parsed.status());
    }
    assert_eq!(kinds.len(), 8);
}
