//! Test harness: spawns the real `faxbot-api` binary on a random port against its own SQLite file or its own
//! PostgreSQL database, captures everything it logs, and fails the test if the logs contain a secret, a
//! token or a full phone number the test used.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which database the server under test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Declares a test that runs once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! db_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_available() {
                    super::$name($crate::helpers::Db::Postgres).await
                }
            }
        }
    };
}

/// Whether PostgreSQL tests can run. In CI a missing PostgreSQL is a failure, never a skip.
pub fn postgres_available() -> bool {
    if std::env::var("FAXBOT_TEST_POSTGRES_URL").is_ok() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("FAXBOT_TEST_POSTGRES_URL is not set: CI must run the PostgreSQL tests (run them through scripts/test)");
    }
    eprintln!(
        "SKIPPING PostgreSQL variant: FAXBOT_TEST_POSTGRES_URL is not set (scripts/test starts a PostgreSQL for you)"
    );
    false
}

/// The bootstrap admin key every test server gets unless a test asks for dev mode.
pub const ADMIN_KEY: &str = "test-admin-key-7f3e9a1c5b2d4e6f8091a2b3c4d5e6f7";

/// Phone numbers tests use; none of them may ever appear in a log line.
pub const NUMBER: &str = "+15551234567";

/// Builder for a test server.
pub struct Spawn {
    db: Db,
    env: HashMap<String, String>,
    admin_key: bool,
    data: Option<Arc<tempfile::TempDir>>,
    pg_url: Option<String>,
}

/// A running server plus what the test needs to talk to it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub admin_key: Option<String>,
    pub data: Arc<tempfile::TempDir>,
    pub pg_url: Option<String>,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
    /// The threads copying the server's stdout and stderr into `logs`; they end when the server's pipes close.
    readers: Vec<std::thread::JoinHandle<()>>,
    forbidden: Mutex<Vec<String>>,
    env: HashMap<String, String>,
    owns_pg: bool,
}

impl Spawn {
    pub fn new(db: Db) -> Spawn {
        let mut env = HashMap::new();
        env.insert("RUST_LOG".into(), "info,faxbot_api=debug".into());
        env.insert("FAXBOT_RETRY_BASE_MS".into(), "50".into());
        env.insert("FAXBOT_RETRY_MAX_MS".into(), "400".into());
        env.insert("FAXBOT_CONFIG_POLL_MS".into(), "100".into());
        env.insert("FAXBOT_JOB_LEASE_SECS".into(), "3".into());
        env.insert("FAXBOT_PROVIDER_TIMEOUT_SECS".into(), "2".into());
        env.insert("FAXBOT_SHUTDOWN_GRACE_SECS".into(), "5".into());
        Spawn { db, env, admin_key: true, data: None, pg_url: None }
    }

    /// Sets an environment variable for the server.
    pub fn env(mut self, k: &str, v: &str) -> Spawn {
        self.env.insert(k.into(), v.into());
        self
    }

    /// Dev mode: no API key at all.
    pub fn dev_mode(mut self) -> Spawn {
        self.admin_key = false;
        self
    }

    /// Shares another server's database but not its data directory: a second replica with its own disk.
    pub fn share_database(mut self, other: &TestApp) -> Spawn {
        self.pg_url = other.pg_url.clone();
        self
    }

    /// Reuses another server's data directory and database (restart scenarios).
    pub fn reuse(mut self, other: &TestApp) -> Spawn {
        self.data = Some(other.data.clone());
        self.pg_url = other.pg_url.clone();
        self.env.extend(other.env.clone());
        self
    }

    pub async fn start(self) -> TestApp {
        let data = self.data.clone().unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("tempdir")));
        let mut env = self.env.clone();
        let (pg_url, owns_pg) = match (self.db, self.pg_url.clone()) {
            (Db::Postgres, Some(url)) => (Some(url), false),
            (Db::Postgres, None) => (Some(create_pg_database().await), true),
            (Db::Sqlite, _) => (None, false),
        };
        if let Some(url) = &pg_url {
            env.insert("DATABASE_URL".into(), url.clone());
        }
        env.insert("FAX_DATA_DIR".into(), data.path().join("data").display().to_string());
        if self.admin_key {
            env.insert("API_KEY".into(), ADMIN_KEY.into());
        }
        let mut app = TestApp {
            base: String::new(),
            client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
            admin_key: self.admin_key.then(|| ADMIN_KEY.to_string()),
            data,
            pg_url,
            child: None,
            logs: Arc::new(Mutex::new(Vec::new())),
            readers: Vec::new(),
            forbidden: Mutex::new(vec![ADMIN_KEY.into(), NUMBER.into(), NUMBER[1..].into()]),
            env,
            owns_pg,
        };
        app.launch().await;
        app
    }
}

async fn create_pg_database() -> String {
    use sqlx::Connection;
    let admin = std::env::var("FAXBOT_TEST_POSTGRES_URL").expect("FAXBOT_TEST_POSTGRES_URL");
    let name = format!("faxbot_test_{}", uuid_hex());
    let mut conn = sqlx::postgres::PgConnection::connect(&admin).await.expect("connect to test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin).to_string();
    format!("{base}/{name}")
}

fn drop_pg_database(url: &str) {
    let url = url.to_string();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            use sqlx::Connection;
            let Ok(admin) = std::env::var("FAXBOT_TEST_POSTGRES_URL") else { return };
            let name = url.rsplit('/').next().unwrap_or_default().to_string();
            if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&admin).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut conn)
                    .await;
            }
        })
    })
    .join();
}

pub fn uuid_hex() -> String {
    format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>())
}

impl TestApp {
    pub async fn spawn(db: Db) -> TestApp {
        Spawn::new(db).start().await
    }

    async fn launch(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_faxbot-api"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FAXBOT_LISTEN", "127.0.0.1:0")
            .envs(&self.env)
            .current_dir(self.data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn faxbot-api");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        self.readers.clear();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let logs = self.logs.clone();
            let tx = tx.clone();
            self.readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("\"message\":\"listening\"")
                        && let Ok(v) = serde_json::from_str::<Value>(&line)
                    {
                        let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_string());
                    }
                    logs.lock().expect("logs").push(line);
                }
            }));
        }
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30))).await.expect("join");
        let Ok(addr) = addr else {
            let status = child.try_wait().ok().flatten();
            panic!("server did not start ({status:?}); logs:\n{}", self.logs.lock().expect("logs").join("\n"));
        };
        self.base = format!("http://{addr}");
        self.child = Some(child);
    }

    /// Kills the server with SIGKILL (no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        self.terminate_wait()
    }

    /// Waits for the server to exit (after a signal sent elsewhere).
    pub fn terminate_wait(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                // The last lines ("stopped") may still be in the pipe: let the readers reach its end.
                while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data and database (new port).
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    /// Everything logged so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    /// Waits until a captured log line contains `needle`. A line written just before an effect the test
    /// observed (a file deleted, a response sent) reaches the capture thread a moment later.
    pub async fn wait_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.logs().iter().any(|l| l.contains(needle)) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Registers a string that must never appear in the logs.
    pub fn forbid(&self, s: &str) {
        self.forbidden.lock().expect("forbidden").push(s.to_string());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn admin(&self) -> &str {
        self.admin_key.as_deref().expect("this server has no admin key")
    }

    /// POST /fax with a given key (or none), destination and file.
    pub async fn post_fax(&self, key: Option<&str>, to: &str, name: &str, bytes: Vec<u8>) -> reqwest::Response {
        if to.len() >= 8 {
            self.forbid(to);
            self.forbid(to.trim_start_matches('+'));
        }
        let form = reqwest::multipart::Form::new()
            .text("to", to.to_string())
            .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()));
        let mut req = self.client.post(self.url("/fax")).multipart(form);
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        req.send().await.expect("POST /fax")
    }

    pub async fn get_fax(&self, key: Option<&str>, id: &str) -> reqwest::Response {
        let mut req = self.client.get(self.url(&format!("/fax/{id}")));
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        req.send().await.expect("GET /fax")
    }

    /// Creates a DB key with the given scopes via the admin API and returns its token.
    pub async fn create_key(&self, scopes: &[&str]) -> String {
        let resp = self
            .client
            .post(self.url("/admin/api-keys"))
            .header("X-API-Key", self.admin())
            .json(&serde_json::json!({"name": "test", "scopes": scopes}))
            .send()
            .await
            .expect("create key");
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("json");
        let token = body["token"].as_str().expect("token").to_string();
        self.forbid(&token);
        self.forbid(secret_of(&token));
        token
    }

    /// Polls a job until it reaches a terminal status.
    pub async fn wait_terminal(&self, key: Option<&str>, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let body: Value = self.get_fax(key, id).await.json().await.expect("json");
            let status = body["status"].as_str().unwrap_or_default().to_string();
            if ["SUCCESS", "FAILED", "failed"].contains(&status.as_str()) {
                return body;
            }
            assert!(Instant::now() < deadline, "job {id} not terminal in time: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails if any forbidden string appears in the logs.
    pub fn assert_no_leaks(&self) {
        let forbidden = self.forbidden.lock().expect("forbidden").clone();
        let mut pepper = Vec::new();
        if let Ok(p) = std::fs::read_to_string(self.data.path().join("data/pepper")) {
            pepper.push(p.trim().to_string());
        }
        for line in self.logs.lock().expect("logs").iter() {
            for f in forbidden.iter().chain(pepper.iter()) {
                assert!(
                    !line.contains(f.as_str()),
                    "a secret, token or full phone number leaked into the logs: {line}"
                );
            }
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            self.assert_no_leaks();
        }
        if self.owns_pg
            && let Some(url) = &self.pg_url
        {
            drop_pg_database(url);
        }
    }
}

/// A small valid one-page PDF (the shared benchmark document).
pub fn one_page_pdf() -> Vec<u8> {
    include_bytes!("../fixtures/one-page.pdf").to_vec()
}

/// A PDF with `pages` pages, rendered by the server's own text renderer (one page per form feed).
pub fn pdf_with_pages(pages: u32) -> Vec<u8> {
    let text = (0..pages).map(|i| format!("page {}", i + 1)).collect::<Vec<_>>().join("\x0c");
    let mut out = Vec::new();
    let n = faxbot_documents::text::render_text_pdf(text.as_bytes(), &mut out, &Default::default()).expect("render");
    assert_eq!(n, pages);
    out
}

/// The secret part of an `fbk_live_<key id>_<secret>` token (the secret itself may contain `_`).
pub fn secret_of(token: &str) -> &str {
    let secret = token.splitn(4, '_').nth(3).unwrap_or_default();
    assert!(secret.len() >= 40, "unexpected token shape");
    secret
}

/// Waits, when fewer than 10 s are left of the current wall-clock minute, for the next one to start. The
/// server's request and failed-authentication limits count in fixed minutes of the wall clock, so a test
/// that expects its Nth request refused must not let a minute boundary reset the count half way.
pub async fn start_of_a_minute() {
    let into_minute = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() % 60.0;
    if into_minute > 50.0 {
        tokio::time::sleep(Duration::from_secs_f64(60.1 - into_minute)).await;
    }
}

/// Reads a JSON body.
pub async fn json(resp: reqwest::Response) -> Value {
    resp.json().await.expect("json body")
}

impl Spawn {
    /// Starts the server on a runtime-config document (`FAXBOT_CONFIG_PATH`, which it watches) and provider
    /// credential files (`FAXBOT_CREDENTIALS_DIR/<slot>.<name>`), as the operator would mount them. The
    /// credential values are registered as forbidden in the logs. Keep the returned directory alive: a test
    /// may rewrite the document or add credentials to reconfigure the running server.
    pub async fn start_with_config(self, config: Value, credentials: &[(&str, &str)]) -> (TestApp, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let creds = dir.path().join("credentials");
        std::fs::create_dir_all(&creds).expect("credentials dir");
        for (name, value) in credentials {
            std::fs::write(creds.join(name), value).expect("credential file");
        }
        let path = dir.path().join("faxbot.json");
        std::fs::write(&path, config.to_string()).expect("config document");
        let app = self
            .env("FAXBOT_CONFIG_PATH", path.to_str().expect("utf-8 path"))
            .env("FAXBOT_CREDENTIALS_DIR", creds.to_str().expect("utf-8 path"))
            .start()
            .await;
        for (_, value) in credentials {
            if value.len() >= 8 {
                app.forbid(value);
            }
        }
        (app, dir)
    }
}

/// A Phaxio fake whose account has API key `phaxio-key`, `secret` and webhook token `token`, moving each fax
/// one status step every `step`.
pub async fn phaxio_fake(secret: &str, token: &str, step: Duration) -> faxbot_fakes::phaxio::PhaxioFake {
    faxbot_fakes::phaxio::PhaxioFake::start(faxbot_fakes::phaxio::PhaxioFakeConfig {
        api_key: "phaxio-key".into(),
        api_secret: secret.into(),
        webhook_token: token.into(),
        step,
    })
    .await
    .expect("start the Phaxio fake")
}

/// A shipped HTTP plugin manifest (`manifests/…`) pointed at a fake: the provider's base URL `real` replaced by
/// the fake's loopback `base_url` (the only change; loopback is allowed by FAXBOT_MANIFEST_ALLOW_LOOPBACK, which
/// only tests set), and `allowedDomains` the fake's host.
pub fn manifest_for_fake(text: &str, real: &str, base_url: &str) -> Value {
    let mut manifest: Value =
        serde_json::from_str(&text.replace(real, base_url)).expect("the shipped manifest is JSON");
    let host = url::Url::parse(base_url).expect("fake URL").host_str().expect("host").to_string();
    manifest["allowedDomains"] = serde_json::json!([host]);
    manifest
}

/// `POST /fax/{id}/cancel` with the admin key.
pub async fn cancel_fax(app: &TestApp, id: &str) -> reqwest::Response {
    app.client.post(app.url(&format!("/fax/{id}/cancel"))).header("X-API-Key", app.admin()).send().await.unwrap()
}

/// Waits until the job has the provider's fax id (it was submitted).
pub async fn wait_submitted(app: &TestApp, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job = json(app.get_fax(Some(app.admin()), id).await).await;
        if job["provider_sid"].is_string() {
            return;
        }
        assert!(Instant::now() < deadline, "never submitted: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
