//! What the S3 tests share: the test server's coordinates (`scripts/s3.sh` starts moto's S3 server on
//! loopback and exports them), and a recording TCP proxy that sits between a client and that server and
//! keeps every HTTP request and response head that crossed it — the proof that the encryption headers were
//! really sent, and that the server really stored the object with them.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The S3 test server: endpoint, bucket, and an access key it accepts.
#[derive(Clone, Debug)]
pub struct S3Env {
    pub url: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The S3 test server, if one is configured. In CI a missing server is a failure, never a skip.
pub fn s3_env() -> Option<S3Env> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(url), Some(bucket), Some(access_key_id), Some(secret_access_key)) = (
        var("FAXBOT_TEST_S3_URL"),
        var("FAXBOT_TEST_S3_BUCKET"),
        var("FAXBOT_TEST_S3_ACCESS_KEY_ID"),
        var("FAXBOT_TEST_S3_SECRET_ACCESS_KEY"),
    ) {
        return Some(S3Env { url, bucket, access_key_id, secret_access_key });
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("FAXBOT_TEST_S3_URL is not set: CI must run the S3 tests (run them through scripts/test)");
    }
    eprintln!("SKIPPING S3 test: FAXBOT_TEST_S3_URL is not set (scripts/test starts moto's S3 server for you)");
    None
}

/// The KMS key the tests configure (moto records it without a KMS of its own).
pub const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:alias/faxbot-test";

/// A `storage` slot binding for the test server, through `endpoint` (the server or a proxy in front of it).
pub fn storage_binding(env: &S3Env, endpoint: &str, prefix: &str) -> serde_json::Value {
    serde_json::json!({"plugin": "s3", "settings": {"bucket": env.bucket, "endpoint": endpoint, "prefix": prefix,
        "forcePathStyle": true, "region": "us-east-1", "sseKmsKeyId": KMS_KEY}})
}

/// An HTTP load balancer in front of several API servers: each request goes to the next upstream in turn,
/// whatever connection it came on (so a webhook sender that reuses connections still alternates).
pub struct RoundRobin {
    pub url: String,
    upstreams: Arc<Mutex<Vec<String>>>,
    hits: Arc<Mutex<Vec<usize>>>,
}

impl RoundRobin {
    pub async fn start() -> RoundRobin {
        use axum::extract::{Request, State};
        use axum::response::IntoResponse;
        type Shared = (Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<usize>>>, Arc<std::sync::atomic::AtomicUsize>);
        async fn forward(State((upstreams, hits, next)): State<Shared>, request: Request) -> axum::response::Response {
            let targets = upstreams.lock().unwrap().clone();
            if targets.is_empty() {
                return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % targets.len();
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let mut headers = parts.headers.clone();
            headers.remove(axum::http::header::HOST);
            headers.remove(axum::http::header::CONTENT_LENGTH);
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let answer = reqwest::Client::new()
                .request(parts.method, format!("{}{path}", targets[i]))
                .headers(headers)
                .body(body)
                .send()
                .await;
            let Ok(answer) = answer else { return axum::http::StatusCode::BAD_GATEWAY.into_response() };
            {
                let mut hits = hits.lock().unwrap();
                hits.resize(targets.len(), 0);
                hits[i] += 1;
            }
            let status = answer.status();
            (status, answer.bytes().await.unwrap_or_default()).into_response()
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstreams: Arc<Mutex<Vec<String>>> = Arc::default();
        let hits: Arc<Mutex<Vec<usize>>> = Arc::default();
        let shared: Shared = (upstreams.clone(), hits.clone(), Arc::default());
        let app = axum::Router::new().fallback(forward).with_state(shared);
        tokio::spawn(async move { axum::serve(listener, app).await });
        RoundRobin { url, upstreams, hits }
    }

    pub fn set_upstreams(&self, urls: Vec<String>) {
        *self.upstreams.lock().unwrap() = urls;
    }

    /// Requests answered by each upstream.
    pub fn hits(&self) -> Vec<usize> {
        self.hits.lock().unwrap().clone()
    }
}

/// One HTTP exchange seen by the proxy: the request head and the response head.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub request: Vec<(String, String)>,
    pub status: u16,
    pub response: Vec<(String, String)>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

impl Exchange {
    pub fn request_header(&self, name: &str) -> Option<&str> {
        header(&self.request, name)
    }
    pub fn response_header(&self, name: &str) -> Option<&str> {
        header(&self.response, name)
    }
    /// A request that creates object content and so must ask for encryption: PutObject and
    /// CreateMultipartUpload (UploadPart and CompleteMultipartUpload inherit the upload's encryption).
    pub fn is_object_write(&self) -> bool {
        let query = self.target.split_once('?').map_or("", |(_, q)| q);
        (self.method == "PUT" && !query.contains("partNumber="))
            || (self.method == "POST" && query.split('&').any(|p| p == "uploads" || p == "uploads="))
    }
}

/// The bytes of one proxied connection: client to server, and server to client.
type Record = Arc<Mutex<(Vec<u8>, Vec<u8>)>>;

/// A TCP proxy in front of the S3 server that records every exchange.
pub struct RecordingProxy {
    pub url: String,
    streams: Arc<Mutex<Vec<Record>>>,
}

impl RecordingProxy {
    pub async fn start(upstream: &str) -> RecordingProxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let streams: Arc<Mutex<Vec<Record>>> = Arc::default();
        let all = streams.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                let record: Record = Arc::default();
                all.lock().unwrap().push(record.clone());
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, record.clone(), true));
                tokio::spawn(pump(server_read, client_write, record, false));
            }
        });
        RecordingProxy { url, streams }
    }

    /// Every exchange so far (requests paired with the responses on the same connection, in order).
    pub fn exchanges(&self) -> Vec<Exchange> {
        let mut out = Vec::new();
        for record in self.streams.lock().unwrap().iter() {
            let (up, down) = record.lock().unwrap().clone();
            let requests = parse_messages(&up, None);
            let methods: Vec<String> =
                requests.iter().map(|m| m.start.split(' ').next().unwrap_or("").to_string()).collect();
            let responses = parse_messages(&down, Some(&methods));
            for (i, request) in requests.into_iter().enumerate() {
                let mut parts = request.start.split(' ');
                let method = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_default().to_string();
                let (status, response) = match responses.get(i) {
                    Some(r) => (r.start.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), r.headers.clone()),
                    None => (0, Vec::new()),
                };
                out.push(Exchange { method, target, request: request.headers, status, response });
            }
        }
        out
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    record: Record,
    upstream: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut r = record.lock().unwrap();
            if upstream { r.0.extend_from_slice(&buf[..n]) } else { r.1.extend_from_slice(&buf[..n]) }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

struct Message {
    start: String,
    headers: Vec<(String, String)>,
}

/// Splits an HTTP/1.1 byte stream into message heads, skipping bodies (Content-Length or chunked).
/// `request_methods` is given for responses: a response to HEAD has no body.
fn parse_messages(bytes: &[u8], request_methods: Option<&[String]>) -> Vec<Message> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(end) = bytes[at..].windows(4).position(|w| w == b"\r\n\r\n") else { break };
        let head = String::from_utf8_lossy(&bytes[at..at + end]).to_string();
        at += end + 4;
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
            .collect();
        let is_head_response = request_methods.is_some_and(|m| m.get(out.len()).is_some_and(|m| m == "HEAD"));
        let status = start.split(' ').nth(1).unwrap_or("");
        let no_body = is_head_response || (request_methods.is_some() && (status == "204" || status == "304"));
        if !no_body {
            if header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                while let Some(line_end) = bytes[at..].windows(2).position(|w| w == b"\r\n") {
                    let size_text = String::from_utf8_lossy(&bytes[at..at + line_end]).to_string();
                    let size =
                        usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
                    at += line_end + 2 + size + 2;
                    if size == 0 || at >= bytes.len() {
                        break;
                    }
                }
            } else if let Some(len) = header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok()) {
                at += len;
            }
        }
        out.push(Message { start, headers });
    }
    out
}
