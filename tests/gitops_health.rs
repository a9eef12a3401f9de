//! The health that Flux and Argo CD report for FaxPluginConfig and FaxProvider, checked on the fixtures in
//! `charts/faxbot-operator/argocd/testdata` (objects as the operator's status contract writes them, see
//! docs/operator.md "GitOps health: Flux and Argo CD") with the `gitops-health` tool
//! (`tools/gitops-health`, built by `scripts/gitops-health-bin.sh`):
//!
//! - `argocd-test`: the Argo CD health checks (`health-*.lua`) against `health_test.yaml`, in Argo CD's own
//!   harness format, evaluated by a gopher-lua VM set up as Argo CD's `util/lua/lua.go` sets it up;
//! - `kstatus-test`: cli-utils' `status.Compute` (what Flux's `wait: true` runs) against `kstatus_test.yaml`;
//! - every fixture once more as JSON on stdin (the path a live object would take), through [`health`].
//!
//! Not a live Flux or Argo CD: the same status code (kstatus) and a faithful model (Argo CD's Lua VM).

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const ARGOCD_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/faxbot-operator/argocd");

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn go_available() -> bool {
    Command::new("go").arg("version").stdin(Stdio::null()).output().is_ok_and(|o| o.status.success())
}

/// The `gitops-health` binary from `scripts/gitops-health-bin.sh` (built once, cached outside the clone), or
/// `None` (with a loud reason) when it cannot be built for want of a Go toolchain. Under `CI=true` a missing
/// toolchain fails the test instead; a failed build always does.
fn tool() -> Option<&'static Path> {
    static TOOL: OnceLock<Option<PathBuf>> = OnceLock::new();
    TOOL.get_or_init(|| {
        let script = Path::new(REPO).join("scripts/gitops-health-bin.sh");
        let out = Command::new(&script).stdin(Stdio::null()).output().expect("run scripts/gitops-health-bin.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            eprint!("{stderr}");
            let stdout = String::from_utf8(out.stdout).unwrap();
            let path = PathBuf::from(stdout.lines().last().expect("the tool's path on the last line"));
            assert!(path.is_file(), "scripts/gitops-health-bin.sh printed {}, which is not a file", path.display());
            return Some(path);
        }
        if go_available() {
            panic!("scripts/gitops-health-bin.sh failed:\n{stderr}");
        }
        if ci() {
            panic!(
                "CI=true but there is no Go toolchain to build the gitops-health tool (tools/gitops-health):\n{stderr}"
            );
        }
        eprintln!(
            "SKIPPING GitOps health test: there is no Go toolchain (`go` on the PATH) to build tools/gitops-health \
             with scripts/gitops-health-bin.sh. Install Go (the version in tools/gitops-health/go.mod) to run it."
        );
        None
    })
    .as_deref()
}

/// What `gitops-health <sub>` reports for one object: `(status, message)`. `sub` is `&["kstatus"]` (Flux's
/// kstatus: Current, InProgress, Failed, Terminating, Unknown; NotFound for `null`) or
/// `&["argocd", "<…/health-faxpluginconfig.lua>"]` (Argo CD: Healthy, Progressing, Degraded, Suspended,
/// Unknown; Missing for `null`). `object_json` is the object as the API server returns it, e.g.
/// `serde_json::to_string(&api.get(name).await?)` with apiVersion and kind set.
///
/// Meant to be copied into the end-to-end suite, to check a live object at each phase of a rollout:
/// `assert_eq!(health(&tool, &["kstatus"], &json).0, "InProgress")`.
fn health(tool: &Path, sub: &[&str], object_json: &str) -> (String, String) {
    let mut child = Command::new(tool)
        .args(sub)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
    child.stdin.take().unwrap().write_all(object_json.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gitops-health {sub:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("gitops-health {sub:?} printed {:?}: {e}", String::from_utf8_lossy(&out.stdout)));
    let field = |name: &str| report[name].as_str().unwrap_or_default().to_string();
    (field("status"), field("message"))
}

/// Runs one harness of the tool over the chart's argocd directory; returns its report.
fn harness(tool: &Path, sub: &str) -> String {
    let out = Command::new(tool).args([sub, ARGOCD_DIR]).stdin(Stdio::null()).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("==> gitops-health {sub}\n{report}");
    assert!(out.status.success(), "gitops-health {sub} failed (exit {:?}):\n{report}", out.status.code());
    assert!(report.contains(" passed, 0 failed"), "no summary from gitops-health {sub}:\n{report}");
    report
}

/// The cases of a harness file: (fixture path, expected status, expected message).
fn cases(file: &str, key: &str) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(Path::new(ARGOCD_DIR).join(file)).unwrap();
    let doc: serde_json::Value = yaml_serde::from_str(&text).unwrap();
    let tests = doc["tests"].as_array().unwrap_or_else(|| panic!("{file}: no tests"));
    tests
        .iter()
        .map(|t| {
            let expected = &t[key];
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (text(&t["inputPath"]), text(&expected["status"]), text(&expected["message"]))
        })
        .collect()
}

fn fixture_json(input_path: &str) -> String {
    let text = std::fs::read_to_string(Path::new(ARGOCD_DIR).join(input_path)).unwrap();
    let value: serde_json::Value = yaml_serde::from_str(&text).unwrap();
    serde_json::to_string(&value).unwrap()
}

#[test]
fn argo_cd_health_checks_pass_their_harness() {
    let Some(tool) = tool() else { return };
    let report = harness(tool, "argocd-test");
    // Each case runs twice: with the standard libraries (Argo CD's harness) and without (argocd-cm default).
    let expected = cases("health_test.yaml", "healthStatus").len() * 2;
    assert!(report.contains(&format!(": {expected} passed, 0 failed")), "expected {expected} checks:\n{report}");
}

#[test]
fn kstatus_reads_the_fixtures_as_recorded() {
    let Some(tool) = tool() else { return };
    let report = harness(tool, "kstatus-test");
    let expected = cases("kstatus_test.yaml", "kstatus").len();
    assert!(report.contains(&format!(": {expected} passed, 0 failed")), "expected {expected} checks:\n{report}");
}

/// The fixtures once more through [`health`], as JSON on stdin: the path a live object takes (integers
/// decoded as client-go decodes them, where the harnesses read YAML as Argo CD's harness does).
#[test]
fn a_live_object_gets_the_same_answers_through_the_helper() {
    let Some(tool) = tool() else { return };
    let kstatus = cases("kstatus_test.yaml", "kstatus");
    let argocd = cases("health_test.yaml", "healthStatus");
    assert!(kstatus.len() >= 7 && argocd.len() >= 7, "the contract's seven phases at least");
    for (input, status, message) in &kstatus {
        let got = health(tool, &["kstatus"], &fixture_json(input));
        assert_eq!(got, (status.clone(), message.clone()), "kstatus of {input}");
    }
    for (input, status, message) in &argocd {
        let object = fixture_json(input);
        let value: serde_json::Value = serde_json::from_str(&object).unwrap();
        let kind = value["kind"].as_str().unwrap().to_lowercase();
        let script = format!("{ARGOCD_DIR}/health-{kind}.lua");
        let got = health(tool, &["argocd", &script], &object);
        assert_eq!(got, (status.clone(), message.clone()), "Argo CD health of {input}");
    }
    // The contract's verdicts, spelled out for the FaxPluginConfig phases.
    let script = format!("{ARGOCD_DIR}/health-faxpluginconfig.lua");
    for (fixture, flux, argo) in [
        ("no-status", "Current", "Progressing"),
        ("stale-generation", "InProgress", "Progressing"),
        ("canary-in-progress", "InProgress", "Progressing"),
        ("canary-paused", "InProgress", "Suspended"),
        ("rolled-back", "Failed", "Degraded"),
        ("invalid", "Failed", "Degraded"),
        ("ready", "Current", "Healthy"),
    ] {
        let object = fixture_json(&format!("testdata/{fixture}.yaml"));
        assert_eq!(health(tool, &["kstatus"], &object).0, flux, "kstatus of {fixture}");
        assert_eq!(health(tool, &["argocd", &script], &object).0, argo, "Argo CD health of {fixture}");
    }
    // Absent objects, as the pollers report them.
    assert_eq!(health(tool, &["kstatus"], "null").0, "NotFound");
    assert_eq!(health(tool, &["argocd", &script], "null").0, "Missing");
}

/// The tool's own tests: the Lua VM model (libraries, conversion of the object, returned values, timeout)
/// and the harnesses failing on a wrong status, a wrong message or a fixture without a case.
#[test]
fn the_tool_passes_its_own_tests() {
    if tool().is_none() {
        return;
    }
    if !go_available() {
        // The binary came from the cache; its tests need the toolchain.
        assert!(!ci(), "CI=true but there is no Go toolchain to run the tests of tools/gitops-health");
        eprintln!("SKIPPING the tests of tools/gitops-health: there is no Go toolchain (`go` on the PATH)");
        return;
    }
    let out = Command::new("go")
        .args(["test", "-mod=readonly", "-trimpath", "-count=1", "./..."])
        .env("CGO_ENABLED", "0")
        .current_dir(Path::new(REPO).join("tools/gitops-health"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "go test in tools/gitops-health failed:\n{report}");
}

/// docs/operator.md shows the health checks inline in an `argocd-cm` ConfigMap for copying: they must be the
/// tested files, line for line (indented under their keys). Needs no Go.
#[test]
fn the_docs_carry_the_tested_health_checks() {
    let docs = std::fs::read_to_string(Path::new(REPO).join("docs/operator.md")).unwrap();
    for (kind, file) in [("FaxPluginConfig", "health-faxpluginconfig.lua"), ("FaxProvider", "health-faxprovider.lua")] {
        let script = std::fs::read_to_string(Path::new(ARGOCD_DIR).join(file)).unwrap();
        let indented: String = script
            .lines()
            .map(|line| if line.is_empty() { "\n".to_string() } else { format!("    {line}\n") })
            .collect();
        let block = format!("  resource.customizations.health.fax.faxbot.io_{kind}: |\n{indented}");
        assert!(docs.contains(&block), "docs/operator.md does not show {file} as it is under its argocd-cm key");
    }
}
