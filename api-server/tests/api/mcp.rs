//! MCP at `/mcp`, driven by clients this project did not write: the official MCP Python SDK (PyPI `mcp`,
//! installed by `.ci/run` into `/var/tmp/faxbot-mcp`; `FAXBOT_TEST_MCP_PYTHON` names another interpreter) and
//! the MCP Inspector's CLI (npm `@modelcontextprotocol/inspector`, in `/var/tmp/faxbot-inspector`;
//! `FAXBOT_TEST_MCP_INSPECTOR` names another). `mcp_client.py` beside this file runs the SDK's scenarios and
//! prints what the server answered; these tests assert on it, then on the raw protocol errors (malformed
//! JSON-RPC, an oversized message, no key, the flag off), and scan the server's log for the numbers and keys
//! used.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{Db, Spawn, TestApp, json as body_json, one_page_pdf};

const SENDER: &str = "+15557654321";
const OUR_NUMBER: &str = "+15559876543";

fn python() -> Option<PathBuf> {
    let path = std::env::var_os("FAXBOT_TEST_MCP_PYTHON")
        .map_or_else(|| PathBuf::from("/var/tmp/faxbot-mcp/bin/python"), PathBuf::from);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but the MCP Python SDK is missing at {}: .ci/run installs it", path.display());
    }
    eprintln!(
        "SKIPPING MCP client test: no {} (python3 -m venv /var/tmp/faxbot-mcp && pip install mcp)",
        path.display()
    );
    None
}

fn inspector() -> Option<PathBuf> {
    let path = std::env::var_os("FAXBOT_TEST_MCP_INSPECTOR")
        .map_or_else(|| PathBuf::from("/var/tmp/faxbot-inspector/node_modules/.bin/mcp-inspector"), PathBuf::from);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but the MCP Inspector is missing at {}: .ci/run installs it", path.display());
    }
    eprintln!("SKIPPING MCP Inspector test: no {}", path.display());
    None
}

/// One `mcp-inspector --cli` call: its exit status, its JSON output and its stderr.
fn inspect(bin: &std::path::Path, url: &str, key: &str, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(bin)
        .args(["--cli", url, "--transport", "http", "--header", &format!("Authorization: Bearer {key}")])
        .args(args)
        .output()
        .expect("run the MCP Inspector");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), value, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A server with MCP on, the simulated line out (busy for numbers ending 0002, retried a minute later) and in.
async fn server(extra_features: Value) -> (TestApp, tempfile::TempDir) {
    server_in(Spawn::new(Db::Sqlite), extra_features).await
}

async fn server_in(spawn: Spawn, extra_features: Value) -> (TestApp, tempfile::TempDir) {
    let mut features = json!({"mcp": true});
    if let (Some(f), Some(extra)) = (features.as_object_mut(), extra_features.as_object()) {
        f.extend(extra.clone());
    }
    let config = json!({"version": 1, "features": features, "providers": {
        "outbound": {"plugin": "test", "settings": {"busySuffix": "0002", "busyAttempts": 100, "busyRetryAfterMs": 60000}},
        "inbound": {"plugin": "test"}}});
    let (app, dir) = spawn.start_with_config(config, &[]).await;
    for n in ["+15551230123", "+15551230002", SENDER, OUR_NUMBER] {
        app.forbid(n);
        app.forbid(&n[1..]);
    }
    // Document bytes as the tools carry them: base64 of `%PDF-`, and of the one-page PDF's body.
    app.forbid("JVBERi0");
    app.forbid(&base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &one_page_pdf()[..48]));
    (app, dir)
}

async fn simulate_inbound(app: &TestApp) -> String {
    let r = app
        .client
        .post(app.url("/admin/inbound/simulate"))
        .header("X-API-Key", app.admin())
        .json(&json!({"fr": SENDER, "to": OUR_NUMBER, "pages": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    body_json(r).await["id"].as_str().unwrap().to_string()
}

fn text(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_sends_reads_and_cancels_through_every_tool() {
    let Some(python) = python() else { return };
    let (app, _dir) = server(json!({"v3Plugins": true})).await;
    let received = simulate_inbound(&app).await;
    let key = app.create_key(&["fax:send", "fax:read", "inbound:list", "inbound:read", "keys:manage"]).await;
    let pdf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pdf.path(), one_page_pdf()).unwrap();
    let runner = McpClient::new(&python, &app);
    let path = pdf.path().to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || runner.run("full", &key, Some(&path))).await.unwrap();

    assert_eq!(out["server"]["name"], "faxbot");
    eprintln!("mcp: negotiated protocol {}", out["protocol"]);
    assert!(out["protocol"].as_str().is_some_and(|v| v.starts_with("202")), "{}", out["protocol"]);
    assert_eq!(
        out["tools"],
        json!([
            "cancel_fax",
            "get_fax_status",
            "get_inbound",
            "get_inbound_pdf",
            "list_faxes",
            "list_inbound",
            "list_providers",
            "send_fax"
        ])
    );
    // Sent on the simulated line and followed to SUCCESS; the number masked in every answer.
    let sent = &out["sent"];
    assert_ne!(sent["isError"], true, "{sent}");
    assert_eq!(sent["structuredContent"]["status"], "queued", "{sent}");
    assert_eq!(sent["structuredContent"]["to"], "********0123");
    assert_eq!(out["final"]["structuredContent"]["status"], "SUCCESS", "{}", out["final"]);
    assert_eq!(out["replayed"]["structuredContent"]["id"], sent["structuredContent"]["id"], "idempotent");
    assert!(text(&out["replayed"]).contains("earlier call"), "{}", out["replayed"]);
    let listed = out["listed"]["structuredContent"]["faxes"].as_array().unwrap();
    assert!(listed.iter().any(|f| f["id"] == sent["structuredContent"]["id"]), "{listed:?}");
    assert!(listed.iter().all(|f| f["to"].as_str().unwrap().starts_with("****")), "{listed:?}");
    // The held job is cancelled before it was sent, as POST /fax/{id}/cancel would.
    let cancelled = &out["cancelled"];
    assert_eq!(cancelled["structuredContent"]["status"], "FAILED", "{cancelled}");
    assert_eq!(cancelled["structuredContent"]["error"], "Cancelled by the caller before it was sent");
    // Inbound: listed, read, and its document inline and by a link that works without the key.
    let inbound = out["inbound"]["structuredContent"]["faxes"].as_array().unwrap();
    assert_eq!(inbound[0]["id"], received.as_str());
    assert_eq!(inbound[0]["from"], "********4321", "masked sender");
    assert_eq!(out["inbound_one"]["structuredContent"]["pages"], 2);
    assert_eq!(out["inbound_pdf"], json!({"isError": false, "has_url": true, "blob_is_pdf": true}));
    assert_eq!(out["link"], json!({"status": 200, "is_pdf": true}));
    // Bad values are tool errors with the REST API's messages; bad shapes and unknown tools protocol errors.
    let large = &out["large_unpadded"];
    assert_eq!(large["structuredContent"]["status"], "queued", "{large}");
    assert!(large["structuredContent"]["pages"].as_i64().unwrap() > 1, "{large}");
    assert_eq!(out["bad_number"]["isError"], true);
    assert_eq!(text(&out["bad_number"]), "'to' must be E.164 or digits only");
    assert_eq!(text(&out["not_base64"]), "document_base64 is not valid base64");
    assert_eq!(text(&out["not_a_document"]), "Only PDF and TXT are allowed");
    assert_eq!(text(&out["unknown_job"]), "Job not found");
    assert_eq!(out["wrong_type"]["protocol_error"]["code"], -32602, "{}", out["wrong_type"]);
    assert_eq!(out["unknown_tool"]["protocol_error"]["code"], -32602, "{}", out["unknown_tool"]);
    // The SDK's tools/call messages were answered by the gate's direct path (the rest by the SDK).
    let (direct, sdk) = mcp_messages(&app).await;
    assert!(direct >= 12 && sdk >= 2, "direct {direct}, sdk {sdk}");
    // Every call is audited by tool and key, without its arguments.
    assert!(app.wait_log("\"event\":\"mcp_tool_called\"").await);
    let audited = app.logs().iter().filter(|l| l.contains("mcp_tool_called")).count();
    assert!(audited >= 12, "{audited} audited calls");
    // The log scan of Drop covers the numbers above and the key.
}

/// Runs scenarios of `mcp_client.py` (on a blocking thread: the client is a child process).
struct McpClient {
    python: PathBuf,
    url: String,
}

impl McpClient {
    fn new(python: &std::path::Path, app: &TestApp) -> McpClient {
        McpClient { python: python.to_owned(), url: app.url("/mcp") }
    }

    /// What the scenario printed.
    fn run(&self, scenario: &str, key: &str, arg: Option<&str>) -> Value {
        let mut args = vec![scenario.to_string(), self.url.clone(), key.to_string()];
        args.extend(arg.map(str::to_string));
        run_script(&self.python, &args)
    }
}

/// `mcp_client.py ARGS…`: what it printed, as JSON.
fn run_script(python: &std::path::Path, args: &[String]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/mcp_client.py");
    let out = Command::new(python).arg(script).args(args).output().expect("run the MCP client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the MCP client failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("client output is not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdio_bridge_sends_a_local_file_through_the_server() {
    let Some(python) = python() else { return };
    let (app, _dir) = server(json!({})).await;
    let key = app.create_key(&["fax:send", "fax:read"]).await;
    let pdf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pdf.path(), one_page_pdf()).unwrap();
    let args = [
        "stdio".to_string(),
        env!("CARGO_BIN_EXE_faxbot-mcp").to_string(),
        app.url(""),
        key,
        pdf.path().to_str().unwrap().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || run_script(&python, &args)).await.unwrap();
    assert_eq!(out["server"]["name"], "faxbot-mcp");
    assert_eq!(out["tools"], json!(["cancel_fax", "get_fax_status", "list_faxes", "send_fax"]), "the key's scopes");
    assert_eq!(out["send_schema"]["required"], json!(["to"]));
    assert_eq!(out["send_schema"]["properties"]["path"]["type"], "string");
    assert_eq!(out["final"]["structuredContent"]["status"], "SUCCESS", "{}", out["final"]);
    assert_eq!(text(&out["missing_file"]), "The file named by path cannot be read");
    assert_eq!(text(&out["bad_number"]), "'to' must be E.164 or digits only", "the server's own message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_inspector_cli_lists_strictly_sends_reads_and_cancels() {
    use base64::Engine;
    let Some(bin) = inspector() else { return };
    let (app, _dir) = server(json!({})).await;
    let received = simulate_inbound(&app).await;
    let key = app.create_key(&["fax:send", "fax:read", "inbound:list", "inbound:read"]).await;
    let url = app.url("/mcp");
    let document = base64::engine::general_purpose::STANDARD.encode(one_page_pdf());
    let out = tokio::task::spawn_blocking(move || {
        let call = |args: &[&str]| inspect(&bin, &url, &key, args);
        let tool = |name: &str, args: &[String]| {
            let mut all = vec!["--method", "tools/call", "--tool-name", name];
            if !args.is_empty() {
                all.push("--tool-arg");
                all.extend(args.iter().map(String::as_str));
            }
            call(&all)
        };
        let mut out = serde_json::Map::new();
        // --strict: every schema portable (one type per property), or exit 6 and a report on stderr.
        let (code, listed, stderr) = call(&["--method", "tools/list", "--strict"]);
        out.insert(
            "list".into(),
            json!({"code": code, "tools": listed["tools"].as_array().map(|t| t.len()),
            "warnings": stderr.matches("Warning").count()}),
        );
        let (_, sent, _) = tool("send_fax", &["to=+15551230123".into(), format!("document_base64={document}")]);
        let id = sent["structuredContent"]["id"].as_str().unwrap_or_default().to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            let (_, status, _) = tool("get_fax_status", &[format!("id={id}")]);
            let s = status["structuredContent"]["status"].as_str().unwrap_or_default().to_string();
            if s == "SUCCESS" || s == "FAILED" || std::time::Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        out.insert("status".into(), json!(status));
        let (_, held, _) = tool("send_fax", &["to=+15551230002".into(), format!("document_base64={document}")]);
        let held = held["structuredContent"]["id"].as_str().unwrap_or_default().to_string();
        // A cancel that meets the job in its submission is told to retry in a moment (409), as in REST.
        let mut cancelled = Value::Null;
        for _ in 0..20 {
            cancelled = tool("cancel_fax", &[format!("id={held}")]).1;
            if !cancelled.to_string().contains("submitted right now") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        out.insert("cancelled".into(), cancelled["structuredContent"]["status"].clone());
        let (_, inbound, _) = tool("list_inbound", &[]);
        out.insert("inbound".into(), inbound["structuredContent"]["faxes"][0]["id"].clone());
        out
    })
    .await
    .unwrap();
    assert_eq!(out["list"], json!({"code": 0, "tools": 7, "warnings": 0}), "{out:?}");
    assert_eq!(out["status"], "SUCCESS");
    assert_eq!(out["cancelled"], "FAILED");
    assert_eq!(out["inbound"], received.as_str());
    let (direct, _) = mcp_messages(&app).await;
    assert!(direct >= 4, "the Inspector's tool calls take the direct path: {direct}");
}

/// `faxbot_mcp_messages_total` by path: (direct, sdk).
async fn mcp_messages(app: &TestApp) -> (u64, u64) {
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let count = |path: &str| {
        let prefix = format!("faxbot_mcp_messages_total{{result=\"{path}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.trim().parse().unwrap())
    };
    (count("direct"), count("sdk"))
}

/// A plain `tools/call` is answered by the gate's direct path; the same message with an `Origin` header (which
/// only the SDK checks) goes through the SDK. Both must give the same answer, byte for byte: results, tool
/// errors (bad values, scope refusals, an unknown job), protocol errors (wrong argument types, unknown tools,
/// arguments that are not an object) and a JSON-RPC error for a call without a name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_call_answers_alike_directly_and_through_the_sdk() {
    let (app, _dir) = server(json!({})).await;
    let key = app.create_key(&["fax:send", "fax:read"]).await;
    let send_only = app.create_key(&["fax:send"]).await;
    let document = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, one_page_pdf());
    let call = |id: u32, params: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string()
    };
    let ask = |key: String, body: String, through_sdk: bool, version: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.url("/mcp"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("Authorization", format!("Bearer {key}"));
        if through_sdk {
            req = req.header("Origin", "http://localhost");
        }
        if let Some(version) = version {
            req = req.header("MCP-Protocol-Version", version);
        }
        async move {
            let r = req.body(body).send().await.unwrap();
            let status = r.status().as_u16();
            let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
            (status, content_type, r.text().await.unwrap())
        }
    };
    // A job that has reached its end, so that both reads see the same thing.
    let sent = ask(
        key.clone(),
        call(
            1,
            json!({"name": "send_fax", "arguments":
        {"to": "+15551230123", "document_base64": document}}),
        ),
        false,
        None,
    )
    .await;
    assert_eq!(sent.0, 200, "{sent:?}");
    let job = serde_json::from_str::<Value>(&sent.2).unwrap()["result"]["structuredContent"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_terminal(Some(&key), &job, std::time::Duration::from_secs(30)).await;

    let cases = [
        (&key, json!({"name": "get_fax_status", "arguments": {"id": job}})),
        (&key, json!({"name": "get_fax_status", "arguments": {"id": "0123456789abcdef0123456789abcdef"}})),
        (&key, json!({"name": "get_fax_status", "arguments": {"id": 5}})),
        (&key, json!({"name": "get_fax_status", "arguments": {"id": job, "extra": true}})),
        (&key, json!({"name": "get_fax_status", "arguments": [job]})),
        (&key, json!({"name": "no_such_tool", "arguments": {}})),
        (&key, json!({"arguments": {}})),
        (&send_only, json!({"name": "list_faxes", "arguments": {}})),
        (&key, json!({"name": "send_fax", "arguments": {"to": "call me", "document_base64": document}})),
        (&key, json!({"name": "send_fax", "arguments": {"to": "+15551230123", "document_base64": "%%%"}})),
    ];
    let (direct_before, sdk_before) = mcp_messages(&app).await;
    for (n, (key, params)) in cases.iter().enumerate() {
        for version in [None, Some("2025-06-18"), Some("2025-11-25")] {
            let body = call(100 + n as u32, params.clone());
            let direct = ask((*key).clone(), body.clone(), false, version).await;
            let sdk = ask((*key).clone(), body, true, version).await;
            assert_eq!(direct, sdk, "case {n} ({params}), protocol {version:?}");
            assert_eq!(direct.0, 200, "{direct:?}");
        }
    }
    let (direct_after, sdk_after) = mcp_messages(&app).await;
    // Every case took each path once per version, except the call without a name and the one whose arguments
    // are not an object: not messages the SDK can read as a tools/call, so both copies went to the SDK.
    let taken = 3 * (cases.len() as u64 - 2);
    assert_eq!(direct_after - direct_before, taken, "direct");
    assert_eq!(sdk_after - sdk_before, taken + 12, "sdk");
    // A newer revision (standard headers, per-request metadata) and an unknown one are the SDK's to judge.
    let body = call(200, cases[0].1.clone());
    let newer = ask(key.clone(), body.clone(), false, Some("2026-07-28")).await;
    let unknown = ask(key.clone(), body, false, Some("2099-01-01")).await;
    assert_eq!(unknown.0, 400, "{unknown:?}");
    assert_eq!(mcp_messages(&app).await, (direct_after, sdk_after + 2), "{newer:?}");
    app.assert_no_leaks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limited_to_sending_sees_and_calls_only_the_sending_tools() {
    let Some(python) = python() else { return };
    let (app, _dir) = server(json!({})).await;
    let key = app.create_key(&["fax:send"]).await;
    let runner = McpClient::new(&python, &app);
    let out = tokio::task::spawn_blocking(move || runner.run("scopes", &key, None)).await.unwrap();
    assert_eq!(out["tools"], json!(["cancel_fax", "send_fax"]), "cancelling needs fax:send, as in REST");
    assert_eq!(out["status_call"]["isError"], true);
    assert_eq!(text(&out["status_call"]), "Insufficient scope: fax:read required");
    assert_eq!(out["status_call"]["structuredContent"]["status"], 403);
    assert_eq!(text(&out["inbound_call"]), "Insufficient scope: inbound:list required");
    assert!(app.wait_log("\"event\":\"api_key_denied_scope\"").await);
    assert!(app.logs().iter().any(|l| l.contains("mcp_tool_called") && l.contains("\"outcome\":\"refused\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_tools_are_listed_by_scope_and_answer_through_the_provider() {
    use crate::phaxio::Plugin;
    let Some(python) = python() else { return };
    let fake =
        crate::helpers::phaxio_fake("secret-for-tools-1", "hook-token", std::time::Duration::from_millis(40)).await;
    let mut config = Plugin::Manifest.config(&fake.base_url, json!({"pollIntervalMs": 100}));
    config["features"]["mcp"] = json!(true);
    let (app, _dir) = Plugin::Manifest
        .spawn(Db::Sqlite)
        .start_with_config(config, &[("outbound.apiKey", "phaxio-key"), ("outbound.apiSecret", "secret-for-tools-1")])
        .await;
    let tool = "phaxio-http_account_status";
    let operator = app.create_key(&["keys:manage"]).await;
    let runner = McpClient::new(&python, &app);
    let out = tokio::task::spawn_blocking(move || runner.run("plugin_tools", &operator, Some(tool))).await.unwrap();
    assert!(out["tools"].as_array().unwrap().iter().any(|t| t == tool), "{}", out["tools"]);
    assert_eq!(
        out["schema"],
        json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false})
    );
    assert_eq!(out["call"]["isError"], false, "{}", out["call"]);
    assert_eq!(out["call"]["structuredContent"]["result"]["balance"], 1000, "{}", out["call"]);
    assert_eq!(out["bad_args"]["protocol_error"]["code"], -32602, "{}", out["bad_args"]);

    // A key without the tool's scope neither sees nor calls it.
    let sender = app.create_key(&["fax:send"]).await;
    let runner = McpClient::new(&python, &app);
    let out = tokio::task::spawn_blocking(move || runner.run("plugin_tools", &sender, Some(tool))).await.unwrap();
    assert!(!out["tools"].as_array().unwrap().iter().any(|t| t == tool), "{}", out["tools"]);
    assert_eq!(text(&out["call"]), "Insufficient scope: keys:manage required");
    let logs = app.logs().join("\n");
    assert!(logs.contains("\"tool\":\"phaxio-http_account_status\"") && logs.contains("\"outcome\":\"ok\""), "audited");
    app.assert_no_leaks();
}

/// Raw HTTP, as a broken or hostile client would send it.
async fn post(app: &TestApp, key: Option<&str>, body: impl Into<reqwest::Body>) -> reqwest::Response {
    try_post(app, key, body).await.unwrap()
}

/// [`post`], with the transport's error.
async fn try_post(
    app: &TestApp,
    key: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Result<reqwest::Response> {
    let mut req = app
        .client
        .post(app.url("/mcp"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream");
    if let Some(key) = key {
        req = req.header("Authorization", format!("Bearer {key}"));
    }
    req.body(body).send().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_oversized_messages_get_protocol_errors_and_the_server_stays_healthy() {
    let (app, _dir) = server(json!({})).await;
    let key = app.create_key(&["fax:send", "fax:read"]).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}});

    // No key, a wrong key: 401 with a WWW-Authenticate challenge, before the body is read. The server answers
    // from the headers and closes the connection on the unread body, so a client that writes its body after the
    // headers (as reqwest may, on a loaded machine) can find the connection gone before the 401 reaches it: a
    // broken pipe is a refusal it did not see, and the request is sent again (at most 5 times).
    for key in [None, Some("fbk_live_0123456789ab_wrong")] {
        let mut answer = None;
        for _ in 0..5 {
            match try_post(&app, key, initialize.to_string()).await {
                Ok(r) => {
                    answer = Some(r);
                    break;
                }
                Err(e) if e.is_request() => continue,
                Err(e) => panic!("{e}"),
            }
        }
        let r = answer.expect("a 401 within 5 attempts");
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"faxbot\"");
    }
    // Malformed JSON-RPC: a parse error, not a crash.
    let r = post(&app, Some(&key), "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ").await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let body = body_json(r).await;
    assert_eq!(body["error"]["code"], -32700, "{body}");
    assert_eq!(body["id"], Value::Null);
    // A 20 MiB message: refused while it streams (the limit is the largest document in base64, plus 1 MiB).
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{\"name\":\"send_fax\",\"arguments\":\
         {{\"to\":\"+15551230123\",\"document_base64\":\"{}\"}}}}}}",
        "A".repeat(20 * 1024 * 1024)
    );
    let r = post(&app, Some(&key), huge).await;
    assert_eq!(r.status(), 413);
    assert_eq!(body_json(r).await["error"]["code"], -32600);
    // Still healthy, and still serving MCP.
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = post(&app, Some(&key), initialize.to_string()).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_is_off_unless_the_feature_flag_is_on() {
    // The request that initialises a session where the flag is on (the test above gets 200 for it).
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}});
    let app = Spawn::new(Db::Sqlite).start().await;
    let r = post(&app, Some(app.admin()), initialize.to_string()).await;
    assert_eq!(r.status(), 404);
}

/// Large messages parsed at once are few (`LARGE_MESSAGES`), measured by their effect: the server's peak RSS
/// while 64 large `send_fax` messages (5.6 MB each) arrive together. Each one held costs its body, the parsed
/// argument and the decoded document; the budget's 4 at a time measured +105–108 MiB (+118–129 MiB through
/// the direct `tools/call` path), all 64 at once (the budget raised to 64) +438 MiB. (Larger messages in such numbers fill the kernel's loopback buffers until
/// the connections time out, which measures the kernel rather than the server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_large_messages_at_once_are_parsed_a_few_at_a_time() {
    const MESSAGES: usize = 64;
    const CEILING_MIB: u64 = 250;
    // The documents wait for the work pool as long as a loaded machine needs (the default 30 s could answer
    // "busy" before the check refuses them).
    let (app, _dir) = server_in(Spawn::new(Db::Sqlite).env("FAXBOT_DOCUMENT_WAIT_SECS", "3600"), json!({})).await;
    let key = app.create_key(&["fax:send"]).await;
    // 4 MiB that only starts like a PDF: decoded, staged, then refused by the PDF check with the REST message.
    let mut document = b"%PDF-1.7\n".to_vec();
    document.extend((0..4 * 1024 * 1024).map(|i| (i % 251) as u8));
    let message = bytes::Bytes::from(
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "send_fax", "arguments": {
            "to": "+15551230123", "document_base64":
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &document)}}})
        .to_string(),
    );
    drop(document);
    let pid = app.pid();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = crate::hostile::status_kib(pid, "VmRSS:");
    let app = std::sync::Arc::new(app);
    // They wait their turns, as long as a slow machine needs.
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(600)).build().unwrap();
    let tasks: Vec<_> = (0..MESSAGES)
        .map(|_| {
            let (app, key, message, client) = (app.clone(), key.clone(), message.clone(), client.clone());
            tokio::spawn(async move {
                let r = client
                    .post(app.url("/mcp"))
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json, text/event-stream")
                    .header("Authorization", format!("Bearer {key}"))
                    .body(message)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                body_json(r).await
            })
        })
        .collect();
    for t in tasks {
        let answer = t.await.unwrap();
        assert_eq!(answer["result"]["isError"], true, "{answer}");
        assert_eq!(text(&answer["result"]), "PDF could not be read", "{answer}");
    }
    let growth = crate::hostile::status_kib(pid, "VmHWM:").saturating_sub(before) / 1024;
    eprintln!("{MESSAGES} large MCP messages at once: peak RSS grew {growth} MiB");
    assert!(growth < CEILING_MIB, "peak RSS grew {growth} MiB");
    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), 200);
}
