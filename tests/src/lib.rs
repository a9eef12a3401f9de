//! Support shared by the cross-component suites in this crate: finding the workspace's binaries.
//!
//! Cargo gives an integration test the path of a binary only when the binary is in the test's own package
//! (`CARGO_BIN_EXE_*`). These suites run binaries of other packages (`faxbot-api`, `faxbot-operator`), so
//! `scripts/test` builds every binary (`cargo build --workspace --bins`) before the tests, and the suites find
//! them next to their own executable. A binary older than the sources it is built from is refused with the
//! command that fixes it: a test must not pass or fail on last week's code.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The crates each binary is built from (its package and the workspace crates it depends on); a binary not
/// listed is checked against them all.
fn source_dirs(binary: &str) -> &'static [&'static str] {
    match binary {
        "faxbot-api" => &["contract", "documents", "webhooks", "api-server"],
        "faxbot-operator" => &["contract", "crds", "operator"],
        "faxbot" => &["cli", "plugin-kit/templates"],
        "faxbot-plugin-conformance" => &["contract", "documents", "webhooks", "api-server", "plugin-kit/conformance"],
        _ => &["contract", "crds", "documents", "webhooks", "api-server", "operator", "fakes"],
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether this run is CI (`CI=true`), where a missing part fails a test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Why a binary cannot be used.
#[derive(Debug)]
pub enum Missing {
    /// Not built.
    NotBuilt(PathBuf),
    /// Built before the named source file last changed.
    Stale(PathBuf, PathBuf),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::NotBuilt(bin) => write!(f, "{} is not built", bin.display()),
            Missing::Stale(bin, source) => {
                write!(f, "{} is older than {}", bin.display(), source.display())
            }
        }
    }
}

/// The workspace binary `name`, built from the current sources.
pub fn find_binary(name: &str) -> Result<PathBuf, Missing> {
    // <target>/debug/deps/<test> → <target>/debug/<name>
    let exe = std::env::current_exe().map_err(|_| Missing::NotBuilt(PathBuf::from(name)))?;
    let dir = exe.parent().and_then(Path::parent).ok_or_else(|| Missing::NotBuilt(PathBuf::from(name)))?;
    let bin = dir.join(name);
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).map_err(|_| Missing::NotBuilt(bin.clone()))?;
    let root = repo_root();
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for crate_dir in source_dirs(name) {
        // A crate's sources are under src/; other inputs (templates compiled in) are the directory itself.
        let src = root.join(crate_dir).join("src");
        let dir = if src.is_dir() { src } else { root.join(crate_dir) };
        newest_source(&dir, &mut newest);
    }
    match newest {
        Some((changed, source)) if changed > built => Err(Missing::Stale(bin, source)),
        _ => Ok(bin),
    }
}

/// The workspace binary `name`; panics with the command that builds it when it is missing or stale. For
/// suites that cannot do without it (the end-to-end suites only get here with a cluster to run on).
pub fn binary(name: &str) -> PathBuf {
    find_binary(name).unwrap_or_else(|e| panic!("{e}: run `cargo build --workspace --bins` (scripts/test does)"))
}

/// The workspace binary `name`, or `None` (with a note) when it is missing or stale outside CI: for a suite
/// that can be skipped on a developer's machine. Under `CI=true` it panics instead.
pub fn binary_or_skip(name: &str, suite: &str) -> Option<PathBuf> {
    match find_binary(name) {
        Ok(bin) => Some(bin),
        Err(e) if in_ci() => panic!("CI=true but {e}: run `cargo build --workspace --bins` (scripts/test does)"),
        Err(e) => {
            eprintln!("SKIPPING {suite}: {e}; run `cargo build --workspace --bins` first");
            None
        }
    }
}

fn newest_source(dir: &Path, newest: &mut Option<(SystemTime, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            newest_source(&path, newest);
        } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified())
            && newest.as_ref().is_none_or(|(t, _)| modified > *t)
        {
            *newest = Some((modified, path));
        }
    }
}
