//! Schemathesis (a real OpenAPI fuzzer, PyPI) against the server's own `/openapi.json`: every check, at least
//! 1,000 generated cases, no server error and no conformance failure. `.ci/run` installs it into
//! `/var/tmp/faxbot-schemathesis`; `FAXBOT_TEST_SCHEMATHESIS` names another binary. Exceptions per operation,
//! each with its reason, are in `schemathesis.toml` beside this file.
//!
//! The server runs with the optional routes on (v3 plugins, inbound on the simulated line) so that the fuzzer
//! reaches them, and with the failed-authentication limit off: the fuzzer's `ignored_auth` probes would lock
//! its own address out after 30 refusals, leaving the rest untested (the limit has its own test, auth.rs).
//! Afterwards the server's log is scanned for every destination and sender number the fuzzer sent.

use std::path::PathBuf;
use std::time::Duration;

use crate::helpers::{Db, Spawn};

/// Cases per operation and phase; with 28 operations the run generates about 1,900 cases.
const MAX_EXAMPLES: &str = "60";
/// The least the run must generate.
const MIN_CASES: u64 = 1000;

fn schemathesis() -> Option<PathBuf> {
    let path = std::env::var_os("FAXBOT_TEST_SCHEMATHESIS")
        .map_or_else(|| PathBuf::from("/var/tmp/faxbot-schemathesis/bin/schemathesis"), PathBuf::from);
    path.is_file().then_some(path)
}

/// `N generated` from the summary line (`1874 generated, 1874 passed, 34 skipped`).
fn generated(output: &str) -> Option<u64> {
    output.lines().rev().find_map(|line| {
        let (count, rest) = line.trim().split_once(' ')?;
        if rest.starts_with("generated") { count.parse().ok() } else { None }
    })
}

/// The numbers the fuzzer sent as `to` (multipart or JSON) or `fr`, from its HAR report.
fn numbers_sent(har: &serde_json::Value) -> Vec<String> {
    let mut numbers = Vec::new();
    let entries = har["log"]["entries"].as_array().cloned().unwrap_or_default();
    for entry in entries {
        let text = entry["request"]["postData"]["text"].as_str().unwrap_or("");
        // multipart: name="to"\r\n\r\n<value>\r\n
        let mut rest = text;
        while let Some(at) = rest.find("name=\"to\"") {
            rest = &rest[at + 9..];
            if let Some(value) = rest.split("\r\n\r\n").nth(1).and_then(|v| v.split("\r\n").next()) {
                numbers.push(value.to_string());
            }
        }
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
            for key in ["to", "fr"] {
                if let Some(v) = map.get(key).and_then(|v| v.as_str()) {
                    numbers.push(v.to_string());
                }
            }
        }
    }
    // What a log could leak as PHI: a number long enough to identify a line (the masked form keeps 4 digits).
    numbers.retain(|n| {
        let digits = n.strip_prefix('+').unwrap_or(n);
        digits.len() >= 8 && digits.bytes().all(|b| b.is_ascii_digit())
    });
    numbers.sort();
    numbers.dedup();
    numbers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_conformance_failure() {
    let Some(binary) = schemathesis() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: schemathesis is required (.ci/run installs it into /var/tmp/faxbot-schemathesis)"
        );
        eprintln!("SKIPPING: schemathesis is not installed (python3 -m venv /var/tmp/faxbot-schemathesis && ...)");
        return;
    };
    let app = Spawn::new(Db::Sqlite)
        .env("FEATURE_V3_PLUGINS", "true")
        .env("INBOUND_ENABLED", "true")
        .env("FAXBOT_AUTH_FAILURES_PER_MINUTE", "0")
        .start()
        .await;
    let reports = tempfile::tempdir().unwrap();
    let har = reports.path().join("run.har");
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/schemathesis.toml");
    let mut command = tokio::process::Command::new(&binary);
    command
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["--checks", "all", "--seed", "1", "--max-examples", MAX_EXAMPLES, "--workers", "2", "--no-color"])
        .args(["--request-timeout", "30", "--report", "har", "--report-har-path"])
        .arg(&har)
        .arg("-H")
        .arg(format!("X-API-Key: {}", app.admin()))
        .current_dir(reports.path())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(900), command.output())
        .await
        .expect("schemathesis finished within 15 minutes")
        .expect("schemathesis ran");
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    let summary: String =
        text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    eprintln!("{summary}");
    assert!(output.status.success(), "schemathesis found failures:\n{text}");
    let cases = generated(&text).unwrap_or(0);
    assert!(cases >= MIN_CASES, "only {cases} cases generated:\n{summary}");

    let har: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let numbers = numbers_sent(&har);
    assert!(!numbers.is_empty(), "the fuzzer sent no numbers, so the log scan below would prove nothing");
    for number in &numbers {
        app.forbid(number);
        app.forbid(number.trim_start_matches('+'));
    }
    app.assert_no_leaks();
    eprintln!("{cases} cases; the log holds none of the {} numbers the fuzzer sent", numbers.len());
}

#[test]
fn the_summary_line_is_read() {
    let out = "Test cases:\n  1874 generated, 1874 passed, 34 skipped\n\nSeed: 1\n";
    assert_eq!(generated(out), Some(1874));
    assert_eq!(generated("nothing here"), None);
}
