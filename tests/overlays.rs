//! The GitOps overlays and samples carry plugin settings that the CRD schema cannot check (settings are an
//! open object there; the operator validates them against the plugin manifests when it reconciles). A typo
//! would only show up in a cluster, as a FaxProvider that is not Valid; this test catches it here.

#![allow(clippy::unwrap_used)]

use std::path::Path;

fn yaml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_fax_provider_in_the_overlays_and_samples_has_valid_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    yaml_files(&root.join("config/overlays"), &mut files);
    yaml_files(&root.join("config/samples"), &mut files);
    let mut plugins = std::collections::BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for doc in text.split("\n---") {
            let Ok(value) = yaml_serde::from_str::<serde_json::Value>(doc) else { continue };
            if value["kind"] != "FaxProvider" {
                continue;
            }
            let plugin = value["spec"]["plugin"].as_str().unwrap();
            let settings = value["spec"].get("settings").cloned().unwrap_or_else(|| serde_json::json!({}));
            if let Err(problems) = faxbot_contract::plugins::check_settings(plugin, &settings) {
                panic!("{}: FaxProvider with plugin {plugin} has invalid settings: {problems:?}", file.display());
            }
            plugins.insert(plugin.to_string());
        }
    }
    for expected in ["test", "phaxio", "sinch", "sip", "api_keys"] {
        assert!(plugins.contains(expected), "no overlay or sample configures `{expected}`: {plugins:?}");
    }
}
