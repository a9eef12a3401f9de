//! Every manifest shipped in `manifests/` must be usable as shipped: it parses and passes the same
//! [`check`] the operator and the API server run, under the default (production) policy, so an operator who
//! applies one only has to change what its description says to change (a SignalWire space's host).

use faxbot_contract::manifest::HttpManifest;
use faxbot_contract::manifest::check::{Policy, check};

#[test]
fn every_shipped_manifest_passes_the_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("manifests/ exists") {
        let path = entry.expect("directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("readable manifest");
        let manifest = HttpManifest::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let problems = check(&manifest, Policy::default());
        assert!(problems.is_empty(), "{}: {problems:?}", path.display());
        let file = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        assert!(
            file.starts_with(&manifest.id),
            "{}: file name should start with the id `{}`",
            path.display(),
            manifest.id
        );
        seen.push(manifest.id);
    }
    seen.sort();
    for id in ["phaxio-http", "signalwire", "telnyx"] {
        assert!(seen.iter().any(|s| s == id), "manifests/ lacks `{id}`: {seen:?}");
    }
}
