//! A mock of the Faxbot server for a plugin's unit tests: it serves the plugin on a free loopback port and
//! calls it as the server does (the plugin token, the protocol header, the same JSON).

use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use crate::Plugin;

/// An answer: status and JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
    /// `Retry-After`, when sent.
    pub retry_after: Option<String>,
}

/// The mock server.
pub struct MockFaxbot {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockFaxbot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plugin's answer, at most [`faxbot_contract::sidecar::ANSWER_LIMIT`] bytes (the server reads no more: a
/// larger answer is a broken plugin); `None` when it is larger or cut off.
pub async fn read_bounded(mut response: reqwest::Response) -> Option<bytes::Bytes> {
    let limit = faxbot_contract::sidecar::ANSWER_LIMIT;
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return None;
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if body.len() + chunk.len() > limit {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(bytes::Bytes::from(body))
}

/// A one-page PDF to send.
pub const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

impl MockFaxbot {
    /// Serves `plugin` (with `token`, as the operator would configure it) and connects to it.
    pub async fn start(plugin: Arc<dyn Plugin>, token: Option<&str>) -> Result<MockFaxbot, String> {
        let app = crate::router(plugin, token.map(str::to_string))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let base = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let client = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
        Ok(MockFaxbot { base, token: token.map(str::to_string), client, task })
    }

    /// The plugin's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Calls `path` with the server's headers; `token` overrides the configured one (`Some("")`: none).
    pub async fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>, token: Option<&str>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut builder = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header(crate::server_header(), crate::PROTOCOL_VERSION.to_string());
        match token.or(self.token.as_deref()) {
            Some("") | None => {}
            Some(t) => builder = builder.bearer_auth(t),
        }
        if let Some(body) = body {
            builder = builder.header("content-type", "application/json").body(body);
        }
        match builder.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
                let Some(bytes) = read_bounded(r).await else {
                    return Answer {
                        status: 0,
                        body: json!({"transport": "answer over the protocol's limit"}),
                        retry_after,
                    };
                };
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                Answer { status, body, retry_after }
            }
            Err(e) => Answer { status: 0, body: json!({"transport": e.to_string()}), retry_after: None },
        }
    }

    /// `GET /v1/manifest`.
    pub async fn manifest(&self) -> Answer {
        self.call("GET", "/v1/manifest", None, None).await
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Answer {
        self.call("GET", "/v1/health", None, None).await
    }

    /// `POST /v1/send` of [`PDF`] to `to` with `key` as job id and idempotency key.
    pub async fn send(&self, to: &str, key: &str) -> Answer {
        let body = json!({
            "jobId": key, "to": to, "idempotencyKey": key, "pages": 1,
            "document": {"contentType": "application/pdf", "base64": base64::engine::general_purpose::STANDARD.encode(PDF)},
        });
        self.call("POST", "/v1/send", Some(body.to_string().into_bytes()), None).await
    }

    /// `GET /v1/faxes/{id}`.
    pub async fn status(&self, id: &str) -> Answer {
        self.call("GET", &format!("/v1/faxes/{id}"), None, None).await
    }

    /// `POST /v1/faxes/{id}/cancel`.
    pub async fn cancel(&self, id: &str) -> Answer {
        self.call("POST", &format!("/v1/faxes/{id}/cancel"), None, None).await
    }

    /// `POST /v1/webhook` with a callback's raw body and headers.
    pub async fn webhook(&self, body: &[u8], headers: &[(&str, &str)]) -> Answer {
        let request = json!({
            "url": "https://faxbot.example.org/webhooks/external",
            "headers": headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
            "bodyBase64": base64::engine::general_purpose::STANDARD.encode(body),
        });
        self.call("POST", "/v1/webhook", Some(request.to_string().into_bytes()), None).await
    }
}
