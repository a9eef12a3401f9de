//! The plugin registry's catalogue: manifests a deployment may install but does not use yet.
//!
//! Two sources fill it besides the built-in plugins. The manifests shipped in this repository
//! (`manifests/*.json`) are compiled into every binary: a manifest whose canonical form equals a shipped one
//! is trusted as the built-in plugins are (publisher `builtin`), because the release that carries them is the
//! trust root either way. A registry index — a JSON document `{"version": 1, "entries": [manifest, …]}` that a
//! publisher distributes and an operator points at (a ConfigMap in Kubernetes, the runtime document's
//! `catalog` elsewhere) — adds entries that must be signed by a trusted publisher key unless
//! `features.pluginInstall` accepts unverified plugins, the rule [`super::signature::admit`] applies to
//! installed manifests.
//!
//! Parsing an index is bounded: the document's size and its number of entries, each entry a manifest with its
//! own size bound, before any signature is checked.

use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::HttpManifest;

/// Largest registry index accepted: the runtime document that carries its entries must still fit a
/// ConfigMap (1 MiB) beside everything else.
pub const MAX_INDEX_BYTES: usize = 256 * 1024;
/// Most entries in one index.
pub const MAX_INDEX_ENTRIES: usize = 64;
/// The index format this version reads.
pub const INDEX_VERSION: u32 = 1;

/// A registry index as a publisher distributes it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryIndex {
    /// Format version: 1.
    pub version: u32,
    /// The manifests on offer, each with its publisher's signature.
    pub entries: Vec<HttpManifest>,
}

/// Parses an index: within [`MAX_INDEX_BYTES`] and [`MAX_INDEX_ENTRIES`], version 1, ids distinct; a parse
/// error names the path of the first wrong field (`entries[2].actions.send.url: …`). The entries' own rules
/// ([`super::check::check`]) and signatures are the caller's to apply: both depend on the deployment.
pub fn parse_index(bytes: &[u8]) -> Result<RegistryIndex, String> {
    if bytes.len() > MAX_INDEX_BYTES {
        return Err(format!("the index is larger than {MAX_INDEX_BYTES} bytes"));
    }
    // The entry count is checked on the raw shape first, so a huge array of small objects is refused before
    // each becomes a manifest.
    #[derive(Deserialize)]
    struct Shape {
        entries: Vec<serde::de::IgnoredAny>,
    }
    if let Ok(shape) = serde_json::from_slice::<Shape>(bytes)
        && shape.entries.len() > MAX_INDEX_ENTRIES
    {
        return Err(format!("the index has {} entries; at most {MAX_INDEX_ENTRIES}", shape.entries.len()));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let index: RegistryIndex = serde_path_to_error::deserialize(&mut de).map_err(|e| match e.path().to_string() {
        // The document itself, not a field of it.
        path if path == "." || path == "?" => e.inner().to_string(),
        path => format!("{path}: {}", e.inner()),
    })?;
    if index.version != INDEX_VERSION {
        return Err(format!(
            "version: {} is not a known index version (this server reads {INDEX_VERSION})",
            index.version
        ));
    }
    for (i, entry) in index.entries.iter().enumerate() {
        if index.entries[..i].iter().any(|e| e.id == entry.id) {
            return Err(format!("entries[{i}].id: `{}` is listed twice", entry.id));
        }
    }
    Ok(index)
}

/// The manifests shipped with this release, parsed once.
pub fn shipped() -> &'static [HttpManifest] {
    static SHIPPED: OnceLock<Vec<HttpManifest>> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        [
            include_str!("../../../manifests/phaxio-http.json"),
            include_str!("../../../manifests/signalwire.json"),
            include_str!("../../../manifests/telnyx.json"),
        ]
        .iter()
        // The unit test below proves each parses; a release whose manifest did not would list one fewer.
        .filter_map(|text| HttpManifest::parse(text.as_bytes()).ok())
        .collect()
    })
}

/// Whether `manifest` is, field for field (its canonical form), one of the manifests this release ships.
pub fn is_shipped(manifest: &HttpManifest) -> bool {
    let canonical = manifest.canonical();
    shipped().iter().any(|s| s.id == manifest.id && s.canonical() == canonical)
}

#[cfg(test)]
mod tests {
    use super::super::check::{Policy, check};
    use super::*;
    use serde_json::json;

    fn entry(id: &str) -> serde_json::Value {
        let mut m = super::super::check::tests::base();
        m["id"] = json!(id);
        m
    }

    #[test]
    fn every_shipped_manifest_parses_passes_the_checks_and_is_recognised() {
        assert_eq!(shipped().len(), 3, "all of manifests/*.json");
        for m in shipped() {
            assert_eq!(check(m, Policy::default()), Vec::new(), "{}", m.id);
            assert!(is_shipped(m), "{}", m.id);
            // A signature is not part of the canonical form: a shipped manifest someone signed is still it.
            let mut signed = m.clone();
            signed.signature = Some(super::super::ManifestSignature { key_id: "acme".into(), value: "x".into() });
            assert!(is_shipped(&signed));
            // Any change makes it a different manifest.
            let mut moved = m.clone();
            moved.allowed_domains.push("collector.example.net".into());
            assert!(!is_shipped(&moved), "{}", m.id);
            let mut renamed = m.clone();
            renamed.version.push_str("-local");
            assert!(!is_shipped(&renamed), "{}", m.id);
        }
    }

    #[test]
    fn an_index_is_parsed_within_its_budget_or_refused_with_the_place() {
        let doc = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
        let ok = parse_index(&doc(json!({"version": 1, "entries": [entry("acme-fax"), entry("other-fax")]})));
        assert_eq!(ok.map(|i| i.entries.len()), Ok(2));
        let many: Vec<serde_json::Value> = (0..=MAX_INDEX_ENTRIES).map(|_| json!({})).collect();
        let mut bad_entry = entry("acme-fax");
        bad_entry["actions"]["send"]["method"] = json!(7);
        let table: Vec<(Vec<u8>, &str)> = vec![
            (vec![b' '; MAX_INDEX_BYTES + 1], "larger than 262144 bytes"),
            (doc(json!({"version": 1, "entries": many})), "has 65 entries; at most 64"),
            (doc(json!({"version": 2, "entries": []})), "version: 2 is not a known index version"),
            (doc(json!({"version": 1})), "missing field `entries`"),
            (doc(json!({"version": 1, "entries": [], "extra": true})), "unknown field `extra`"),
            (doc(json!({"version": 1, "entries": [entry("acme-fax"), bad_entry]})), "entries[1].actions.send.method"),
            (
                doc(json!({"version": 1, "entries": [entry("acme-fax"), entry("acme-fax")]})),
                "entries[1].id: `acme-fax` is listed twice",
            ),
            (br#"{"version": 1, "entries": ["#.to_vec(), "EOF while parsing"),
        ];
        for (bytes, expected) in table {
            match parse_index(&bytes) {
                Err(e) => assert!(e.contains(expected), "{e} (expected {expected})"),
                Ok(_) => panic!("accepted; expected {expected}"),
            }
        }
    }
}
