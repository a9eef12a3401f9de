//! Module dependencies point one way inside every crate of the workspace; and the check finds a cycle when
//! there is one.

use std::path::{Path, PathBuf};

use faxbot_module_graph::{cycles, explain, graph};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn module_dependencies_point_one_way_in_every_crate() {
    let mut failures = String::new();
    for krate in ["api-server", "operator", "contract", "crds", "documents", "webhooks", "fakes"] {
        let src = workspace().join(krate).join("src");
        let g = graph(&src).unwrap_or_else(|e| panic!("{krate}: {e}"));
        assert!(!g.is_empty() || krate == "crds", "{krate}: no edges found, so the check reads nothing");
        for cycle in cycles(&g) {
            failures.push_str(&format!("{krate}: modules {cycle:?} depend on each other:\n{}", explain(&g, &cycle)));
        }
    }
    assert!(failures.is_empty(), "module cycles:\n{failures}");
}

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap_or(dir)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_cycle_is_found_however_it_is_written() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = dir.path();
    write(src, "lib.rs", "pub mod http; pub mod store; pub mod queue;");
    // http -> store through a grouped use; store -> queue through a path in an expression; no cycle yet.
    write(src, "http/mod.rs", "use crate::{store::Db, queue};\npub mod routes;");
    write(src, "store/mod.rs", "pub fn f() { crate::queue::run(); }");
    write(src, "queue/mod.rs", "pub fn run() {}\n#[cfg(test)]\nmod tests { use crate::http::X; }");
    // Comments and doc links name modules without depending on them.
    write(src, "http/routes.rs", "/// See [`crate::queue`].\n// crate::store\nuse super::super::queue::run;");
    let g = graph(src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new(), "test-only code and comments are not edges: {g:?}");
    assert!(g["http"].contains_key("queue"), "super::super from http/routes.rs reaches the root: {g:?}");

    // queue -> http in real code closes http -> store -> queue -> http.
    write(src, "queue/mod.rs", "pub fn run() { let _ = super::http::Thing; }");
    let g = graph(src).unwrap_or_else(|e| panic!("{e}"));
    let found = cycles(&g);
    assert_eq!(found, vec![vec!["http".to_string(), "queue".into(), "store".into()]]);
    let why = explain(&g, &found[0]);
    assert!(why.contains("queue -> http (queue/mod.rs)"), "{why}");
}
