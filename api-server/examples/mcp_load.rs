//! MCP against REST under the same load: `calls` faxes sent over `sessions` concurrent MCP sessions (the
//! `send_fax` tool, through rmcp's Streamable HTTP client), then the same number over as many concurrent
//! `POST /fax` loops, from the same process, to the same server, with the same document. Each side is checked
//! for lost work: every call must return a job id, the ids must be distinct, and each job must be readable
//! afterwards. Prints one Markdown row per transport (calls/s, p50, p99).
//!
//! Usage: mcp_load BASE_URL API_KEY DOCUMENT [SESSIONS] [CALLS]   (scripts/bench/mcp runs it;
//! BENCH_ORDER=rest,mcp chooses the sides and their order)

use base64::Engine;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TO: &str = "+15551234567";

/// One loop's calls: each job id and how long its call took.
type Calls = anyhow::Result<Vec<(String, Duration)>>;

struct Run {
    ids: Vec<String>,
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// The server's CPU time (user + system) during the run, when its pid is known (`FAXBOT_BENCH_PID`): the
    /// load generator shares the two cores, so this is the server's own cost per call.
    server_cpu: Option<Duration>,
    /// This process's CPU time during the run: the client's share of the two cores.
    client_cpu: Option<Duration>,
}

/// User + system CPU time of process `pid` (`/proc/PID/stat` fields 14 and 15, in clock ticks of 1/100 s).
fn cpu_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn server_cpu() -> Option<Duration> {
    cpu_of(&std::env::var("FAXBOT_BENCH_PID").ok()?)
}

fn client_cpu() -> Option<Duration> {
    cpu_of("self")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn report(name: &str, run: &Run, sessions: usize) {
    let mut sorted = run.latencies.clone();
    sorted.sort();
    let per_call = |cpu: Duration| cpu.as_secs_f64() * 1000.0 / run.ids.len() as f64;
    let mut cpu =
        run.server_cpu.map_or_else(String::new, |cpu| format!("; server CPU {:.2} ms per call", per_call(cpu)));
    if let Some(client) = run.client_cpu {
        cpu.push_str(&format!(", client {:.2} ms", per_call(client)));
    }
    println!(
        "| {name}, {} calls over {sessions} concurrent sessions | {:.1} calls/s, p50 {:.2} ms, p99 {:.2} ms{cpu} |",
        run.ids.len(),
        run.ids.len() as f64 / run.elapsed.as_secs_f64(),
        percentile(&sorted, 0.50).as_secs_f64() * 1000.0,
        percentile(&sorted, 0.99).as_secs_f64() * 1000.0,
    );
}

/// Splits `calls` over `sessions` loops.
fn shares(calls: usize, sessions: usize) -> Vec<usize> {
    (0..sessions).map(|i| calls / sessions + usize::from(i < calls % sessions)).collect()
}

async fn mcp(base: &str, key: &str, document: Arc<String>, sessions: usize, calls: usize) -> anyhow::Result<Run> {
    let mut clients = Vec::new();
    for _ in 0..sessions {
        let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"));
        config.auth_header = Some(key.to_string());
        clients.push(Arc::new(().serve(StreamableHttpClientTransport::from_config(config)).await?));
    }
    let (started, cpu_before) = (Instant::now(), (server_cpu(), client_cpu()));
    let mut tasks = Vec::new();
    for (client, share) in clients.iter().cloned().zip(shares(calls, sessions)) {
        let document = document.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..share {
                let mut args = serde_json::Map::new();
                args.insert("to".into(), TO.into());
                args.insert("document_base64".into(), document.as_str().into());
                let t = Instant::now();
                let result = client.call_tool(CallToolRequestParams::new("send_fax").with_arguments(args)).await?;
                let id = result.structured_content.as_ref().and_then(|v| v["id"].as_str()).map(str::to_string);
                out.push((
                    id.ok_or_else(|| anyhow::anyhow!("send_fax answered without a job: {result:?}"))?,
                    t.elapsed(),
                ));
            }
            anyhow::Ok(out)
        }));
    }
    collect(tasks, started, cpu_before).await
}

async fn rest(base: &str, key: &str, pdf: Arc<Vec<u8>>, sessions: usize, calls: usize) -> anyhow::Result<Run> {
    let http = reqwest::Client::new();
    let (started, cpu_before) = (Instant::now(), (server_cpu(), client_cpu()));
    let mut tasks = Vec::new();
    for share in shares(calls, sessions) {
        let (http, pdf, url, key) = (http.clone(), pdf.clone(), format!("{base}/fax"), key.to_string());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..share {
                let form = reqwest::multipart::Form::new().text("to", TO).part(
                    "file",
                    reqwest::multipart::Part::bytes(pdf.to_vec()).file_name("a.pdf").mime_str("application/pdf")?,
                );
                let t = Instant::now();
                let r = http.post(&url).header("X-API-Key", &key).multipart(form).send().await?;
                anyhow::ensure!(r.status() == 202, "POST /fax answered {}", r.status());
                let body: serde_json::Value = r.json().await?;
                out.push((body["id"].as_str().unwrap_or_default().to_string(), t.elapsed()));
            }
            anyhow::Ok(out)
        }));
    }
    collect(tasks, started, cpu_before).await
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<Calls>>,
    started: Instant,
    cpu_before: (Option<Duration>, Option<Duration>),
) -> anyhow::Result<Run> {
    let mut run =
        Run { ids: Vec::new(), latencies: Vec::new(), elapsed: Duration::ZERO, server_cpu: None, client_cpu: None };
    for task in tasks {
        for (id, latency) in task.await?? {
            run.ids.push(id);
            run.latencies.push(latency);
        }
    }
    run.elapsed = started.elapsed();
    let since = |before: Option<Duration>, after: Option<Duration>| before.zip(after).map(|(b, a)| a.saturating_sub(b));
    run.server_cpu = since(cpu_before.0, server_cpu());
    run.client_cpu = since(cpu_before.1, client_cpu());
    Ok(run)
}

/// Every id distinct, and every job readable: nothing accepted was lost.
async fn check(base: &str, key: &str, run: &Run, calls: usize) -> anyhow::Result<()> {
    anyhow::ensure!(run.ids.len() == calls, "{} of {calls} calls returned a job", run.ids.len());
    let distinct: HashSet<&String> = run.ids.iter().collect();
    anyhow::ensure!(distinct.len() == calls, "{} distinct jobs for {calls} calls", distinct.len());
    let http = reqwest::Client::new();
    for id in &run.ids {
        let r = http.get(format!("{base}/fax/{id}")).header("X-API-Key", key).send().await?;
        anyhow::ensure!(r.status() == 200, "job {id}: GET /fax answered {}", r.status());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 4, "usage: mcp_load BASE_URL API_KEY DOCUMENT [SESSIONS] [CALLS]");
    let (base, key) = (args[1].trim_end_matches('/').to_string(), args[2].clone());
    let pdf = Arc::new(std::fs::read(&args[3])?);
    let sessions: usize = args.get(4).map_or(Ok(16), |s| s.parse())?;
    let calls: usize = args.get(5).map_or(Ok(500), |s| s.parse())?;
    let document = Arc::new(base64::engine::general_purpose::STANDARD.encode(pdf.as_slice()));
    // A short warm-up of both paths (connections, the SQLite page cache), not measured.
    mcp(&base, &key, document.clone(), sessions, sessions).await?;
    rest(&base, &key, pdf.clone(), sessions, sessions).await?;
    // BENCH_ORDER: the sides to run, in order (default `mcp,rest`; `mcp` alone to profile the server under it,
    // `rest,mcp,rest,mcp` to see whether going first or second matters).
    let order = std::env::var("BENCH_ORDER").unwrap_or_else(|_| "mcp,rest".into());
    for side in order.split(',') {
        match side.trim() {
            "mcp" => {
                let run = mcp(&base, &key, document.clone(), sessions, calls).await?;
                check(&base, &key, &run, calls).await?;
                report("MCP `send_fax`", &run, sessions);
            }
            "rest" => {
                let run = rest(&base, &key, pdf.clone(), sessions, calls).await?;
                check(&base, &key, &run, calls).await?;
                report("REST `POST /fax`", &run, sessions);
            }
            other => anyhow::bail!("BENCH_ORDER: unknown side {other:?} (mcp or rest)"),
        }
    }
    Ok(())
}
