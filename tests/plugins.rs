//! Plugins as an author makes them: the kits pass their own tests, each skeleton that `faxbot plugin new`
//! writes passes `faxbot-plugin-conformance` as generated (installed and started the way its README says),
//! and a Python sidecar built from the Python kit runs beside the real API server, which sends a fax through
//! it and takes its provider's callbacks.
//!
//! Python and Node are the machine's own (`python3 -m venv`, `npm`): under `CI=true` a missing one fails
//! these tests, elsewhere they skip. Everything listens on loopback.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faxbot_tests::{binary_or_skip, in_ci, repo_root};

/// A command on PATH, or `None` (skipping outside CI).
fn tool(name: &str, suite: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()));
    match found {
        Some(p) => Some(p),
        None if in_ci() => panic!("CI=true but `{name}` is not installed ({suite})"),
        None => {
            eprintln!("SKIPPING {suite}: `{name}` is not installed");
            None
        }
    }
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    text
}

/// A running process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` (listening on port 0) and waits for its `listening on http://…` line: the URL.
fn start_plugin(cmd: &mut Command) -> (Running, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start the plugin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(60)).expect("the plugin never printed `listening on`");
    (Running(child), url)
}

fn generate(kind: &str, id: &str, dir: &Path) -> Option<PathBuf> {
    let faxbot = binary_or_skip("faxbot", "plugin skeletons")?;
    let out = dir.join(id);
    run(Command::new(faxbot).args(["plugin", "new", id, "--kind", kind, "--dir"]).arg(&out), "faxbot plugin new");
    Some(out)
}

/// Runs the conformance suite; asserts every check passed.
fn conformance(args: &[&str], env: &[(&str, &str)]) {
    let Some(bin) = binary_or_skip("faxbot-plugin-conformance", "plugin skeletons") else { return };
    let mut cmd = Command::new(bin);
    cmd.args(args).envs(env.iter().copied());
    let report = run(&mut cmd, "faxbot-plugin-conformance");
    let last = report.lines().rev().find(|l| l.contains("checks passed")).unwrap_or_default().to_string();
    let (passed, total) = last
        .split_once(" of ")
        .map(|(p, rest)| (p.to_string(), rest.split(' ').next().unwrap_or("").to_string()))
        .unwrap_or_default();
    assert!(!passed.is_empty() && passed == total, "{report}");
    assert!(!report.contains("FAIL"), "{report}");
}

#[test]
fn the_node_kit_passes_its_own_tests() {
    let Some(npm) = tool("npm", "node kit") else { return };
    run(Command::new(npm).arg("test").current_dir(repo_root().join("plugin-kit/node")), "npm test (plugin-kit/node)");
}

#[test]
fn the_python_kit_passes_its_own_tests() {
    let Some(python) = tool("python3", "python kit") else { return };
    let kit = repo_root().join("plugin-kit/python");
    run(
        Command::new(python)
            .args(["-m", "unittest", "discover", "-s", "tests"])
            .env("PYTHONPATH", &kit)
            .current_dir(&kit),
        "python -m unittest (plugin-kit/python)",
    );
}

#[test]
fn the_manifest_skeleton_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let Some(out) = generate("manifest", "acme-manifest", dir.path()) else { return };
    conformance(&[out.join("manifest.json").to_str().unwrap()], &[]);
}

#[test]
fn the_rust_skeleton_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let Some(out) = generate("rust", "acme-rust", dir.path()) else { return };
    // The workspace's lock file pins the kit's dependencies to the versions this build already compiled, and
    // the shared target directory reuses them.
    std::fs::copy(repo_root().join("Cargo.lock"), out.join("Cargo.lock")).unwrap();
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(&cargo).args(["test", "-q"]).env("CARGO_TARGET_DIR", &target).current_dir(&out),
        "cargo test (skeleton)",
    );
    run(
        Command::new(&cargo).args(["build", "-q"]).env("CARGO_TARGET_DIR", &target).current_dir(&out),
        "cargo build (skeleton)",
    );
    let (_plugin, url) = start_plugin(
        Command::new(target.join("debug/acme-rust"))
            .env("FAXBOT_PLUGIN_LISTEN", "127.0.0.1:0")
            .env("FAXBOT_PLUGIN_TOKEN", "rust-token")
            .env("FAXBOT_PLUGIN_WEBHOOK_SECRET", "rust-secret"),
    );
    conformance(&[&url], &[("FAXBOT_PLUGIN_TOKEN", "rust-token"), ("FAXBOT_PLUGIN_WEBHOOK_SECRET", "rust-secret")]);
}

#[test]
fn the_node_skeleton_passes_the_conformance_suite() {
    let Some(npm) = tool("npm", "node skeleton") else { return };
    let Some(node) = tool("node", "node skeleton") else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(out) = generate("node", "acme-node", dir.path()) else { return };
    run(
        Command::new(&npm).args(["install", "--no-audit", "--no-fund", "--silent"]).current_dir(&out),
        "npm install (skeleton)",
    );
    run(Command::new(&npm).arg("test").current_dir(&out), "npm test (skeleton)");
    let (_plugin, url) = start_plugin(
        Command::new(node)
            .arg("index.js")
            .current_dir(&out)
            .env("FAXBOT_PLUGIN_LISTEN", "127.0.0.1:0")
            .env("FAXBOT_PLUGIN_TOKEN", "node-token")
            .env("FAXBOT_PLUGIN_WEBHOOK_SECRET", "node-secret"),
    );
    conformance(&[&url], &[("FAXBOT_PLUGIN_TOKEN", "node-token"), ("FAXBOT_PLUGIN_WEBHOOK_SECRET", "node-secret")]);
}

/// The Python skeleton installed into a fresh venv, as its README says: the venv's python.
fn python_skeleton(dir: &Path, id: &str) -> Option<(PathBuf, PathBuf)> {
    let python = tool("python3", "python skeleton")?;
    let out = generate("python", id, dir)?;
    let venv = dir.join("venv");
    run(Command::new(python).args(["-m", "venv"]).arg(&venv), "python -m venv");
    let py = venv.join("bin/python");
    run(
        Command::new(&py).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "."]).current_dir(&out),
        "pip install (skeleton)",
    );
    run(Command::new(&py).args(["-m", "unittest", "discover", "-s", "tests"]).current_dir(&out), "unittest (skeleton)");
    Some((py, out))
}

#[test]
fn the_python_skeleton_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let Some((py, _out)) = python_skeleton(dir.path(), "acme-python") else { return };
    let (_plugin, url) = start_plugin(
        Command::new(py)
            .args(["-m", "acme_python"])
            .env("FAXBOT_PLUGIN_LISTEN", "127.0.0.1:0")
            .env("FAXBOT_PLUGIN_TOKEN", "py-token")
            .env("FAXBOT_PLUGIN_WEBHOOK_SECRET", "py-secret"),
    );
    conformance(&[&url], &[("FAXBOT_PLUGIN_TOKEN", "py-token"), ("FAXBOT_PLUGIN_WEBHOOK_SECRET", "py-secret")]);
}

/// The real server bound to the Python sidecar: a fax to SUCCESS and one to FAILED through it, a forged
/// callback refused and a signed one accepted.
#[tokio::test]
async fn a_python_sidecar_runs_beside_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let Some(api) = binary_or_skip("faxbot-api", "python sidecar beside the server") else { return };
    let Some((py, _out)) = python_skeleton(dir.path(), "acme-python") else { return };
    let token = "py-sidecar-token-do-not-leak";
    let secret = "py-webhook-secret-do-not-leak";
    let (_plugin, url) = start_plugin(
        Command::new(py)
            .args(["-m", "acme_python"])
            .env("FAXBOT_PLUGIN_LISTEN", "127.0.0.1:0")
            .env("FAXBOT_PLUGIN_TOKEN", token)
            .env("FAXBOT_PLUGIN_WEBHOOK_SECRET", secret),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let config = serde_json::json!({"version": 1, "features": {"v3Plugins": true},
        "providers": {"outbound": {"plugin": "external", "settings": {"url": url, "timeoutMs": 5000,
            "callbackUrl": format!("{base}/webhooks/external")}}}});
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let admin = "admin-key-for-the-python-sidecar-test-0123456789";
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let server = Running(
        Command::new(api)
            .env("API_KEY", admin)
            .env("FAX_DATA_DIR", dir.path().join("data"))
            .env("FAXBOT_LISTEN", format!("127.0.0.1:{port}"))
            .env("FAXBOT_CONFIG_PATH", dir.path().join("config.json"))
            .env("FAXBOT_PLUGIN_TOKEN", token)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start faxbot-api"),
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/health")).send().await.map(|r| !r.status().is_success()).unwrap_or(true) {
        assert!(Instant::now() < deadline, "the server never became healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pdf =
        std::fs::read(repo_root().join("../shared/bench/one-page.pdf")).unwrap_or_else(|_| faxbot_tests_pdf().to_vec());
    let send = |to: &'static str| {
        let form = reqwest::multipart::Form::new().text("to", to).part(
            "file",
            reqwest::multipart::Part::bytes(pdf.clone()).file_name("a.pdf").mime_str("application/pdf").unwrap(),
        );
        client.post(format!("{base}/fax")).header("X-API-Key", admin).multipart(form).send()
    };
    let wait = |id: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let job: serde_json::Value = client
                    .get(format!("{base}/fax/{id}"))
                    .header("X-API-Key", admin)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let status = job["status"].as_str().unwrap_or_default().to_string();
                if ["SUCCESS", "FAILED", "failed"].contains(&status.as_str()) {
                    return job;
                }
                assert!(Instant::now() < deadline, "job never finished: {job}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let r = send("+15555550100").await.unwrap();
    assert_eq!(r.status(), 202);
    let job = wait(r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let r = send("+15555550101").await.unwrap();
    let job = wait(r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["error"].as_str().unwrap_or_default().contains("no answer"), "{job}");

    // Callbacks reach the sidecar, which verifies them.
    let body = br#"{"providerId":"sim-1","status":"delivered"}"#.to_vec();
    let forged = client
        .post(format!("{base}/webhooks/external"))
        .header("content-type", "application/json")
        .header("x-sim-signature", "00".repeat(32))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let signed = client
        .post(format!("{base}/webhooks/external"))
        .header("content-type", "application/json")
        .header("x-sim-signature", faxbot_plugin_kit::sign(secret, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    drop(server);
    let logs = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    for secret in [token, secret, "5555550100", "5555550101"] {
        assert!(!logs.contains(secret), "the server log holds {secret}");
    }
}

fn faxbot_tests_pdf() -> &'static [u8] {
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
}
