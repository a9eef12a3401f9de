//! MCP (Model Context Protocol) for AI assistants: the Streamable HTTP transport at `/mcp`, served by the
//! maintained Rust SDK (`rmcp`), with the same API keys, scopes, rate limits, audit and PHI rules as the REST
//! routes. Each tool calls the same code as its REST route ([`tools`]).
//!
//! - **Off unless `features.mcp`** is set in the runtime config (so the operator rolls it out as a canary like
//!   any flag): `/mcp` answers 404 while it is off.
//! - **Authenticated before the body is read**: `X-API-Key` or `Authorization: Bearer <key>`; a refused key is
//!   a 401 with `WWW-Authenticate: Bearer`. Which tools a key sees and may call follows its scopes.
//! - **Stateless**: no MCP session lives in one replica's memory, so any replica answers any request and a
//!   canary or a restart does not break an assistant's connection.
//! - **Bounded**: a message larger than a document can need (`MAX_FILE_SIZE_MB` in base64, plus 1 MiB) is
//!   refused with 413 while it streams; at most [`LARGE_MESSAGES`] large messages are parsed at once, and
//!   the direct path parses them on the work pool, off the async threads.
//! - **`tools/call` answered directly**: a plain `tools/call` (the message an assistant repeats) is answered
//!   by the gate with the same tool code, without the SDK's per-request service ([`direct`]); every other
//!   message goes to the SDK.
//! - **Host check**: the SDK refuses `Host` headers other than loopback, a defence against DNS rebinding for
//!   servers without credentials. With API keys required the key is that defence, so the check is off and the
//!   server answers under its Service or Ingress name; in dev mode without keys it stays on.

mod direct;
mod tools;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::metrics::ResultLabels;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use prometheus_client::metrics::counter::Counter;
use rmcp::model::{ServerJsonRpcMessage, ServerResult};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Messages that may be parsed at the same time when they are large (over [`SMALL_MESSAGE`] bytes, or of
/// unknown length): each can hold a whole base64 document in memory.
pub const LARGE_MESSAGES: usize = 4;

/// A message up to this size (every call but `send_fax` with a document) needs no permit.
const SMALL_MESSAGE: u64 = 64 * 1024;

/// The largest MCP message: a document of `MAX_FILE_SIZE_MB` in base64, and 1 MiB for the rest.
pub fn message_limit(max_file_bytes: u64) -> usize {
    let base64 = max_file_bytes.div_ceil(3).saturating_mul(4);
    usize::try_from(base64.saturating_add(1024 * 1024)).unwrap_or(usize::MAX)
}

/// The SDK's service as `/mcp` uses it.
type Sdk = StreamableHttpService<tools::FaxTools, LocalSessionManager>;

/// The `/mcp` route: one handler that admits a message ([`serve`]) and answers it directly or hands it to the
/// SDK's service, which it holds (not nested as a tower service: that would be cloned for every request).
pub fn routes(state: &AppState) -> Router<AppState> {
    let app = state.clone();
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(message_limit(state.settings.max_file_bytes));
    if state.auth.enforced() {
        config = config.disable_allowed_hosts();
    }
    let sdk = StreamableHttpService::new(
        move || Ok(tools::FaxTools::new(app.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let gate = Gate {
        app: state.clone(),
        tools: tools::FaxTools::new(state.clone()),
        sdk,
        large: Semaphore::new(LARGE_MESSAGES),
        limit: message_limit(state.settings.max_file_bytes),
        // Without keys the SDK's Host check is on; the direct path does not repeat it, so it stays off.
        direct: state.auth.enforced(),
        direct_messages: mcp_messages(state, "direct"),
        sdk_messages: mcp_messages(state, "sdk"),
    };
    Router::new().route("/mcp", any(serve)).with_state(Arc::new(gate))
}

/// The counter of MCP messages answered by `path`.
fn mcp_messages(state: &AppState, path: &str) -> Counter {
    state.metrics.mcp_messages.get_or_create(&ResultLabels { result: path.into() }).clone()
}

/// What `/mcp` holds.
struct Gate {
    app: AppState,
    /// The tools, for the direct path.
    tools: tools::FaxTools,
    /// The SDK, for every other message.
    sdk: Sdk,
    large: Semaphore,
    /// The largest message, as the SDK is configured ([`message_limit`]).
    limit: usize,
    /// Whether plain `tools/call` messages are answered directly ([`direct`]).
    direct: bool,
    /// `faxbot_mcp_messages_total{result="direct"}` and `{result="sdk"}`, looked up once rather than per message.
    direct_messages: Counter,
    sdk_messages: Counter,
}

/// The flag, the caller's key and the large-message budget before anything is read; then a plain
/// `tools/call` answered directly, anything else by the SDK.
async fn serve(State(gate): State<Arc<Gate>>, mut request: Request) -> Response {
    if !gate.app.runtime.load_current().config.features.mcp {
        return ApiError::not_found("Not Found").into_response();
    }
    let identity = match gate.app.auth.caller(request.headers(), "/mcp", true).await {
        Ok(identity) => identity,
        Err(e) => {
            let mut response = e.into_response();
            if response.status() == axum::http::StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"faxbot\""));
            }
            return response;
        }
    };
    let length =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let small = request.method() != axum::http::Method::POST || length.is_some_and(|n| n <= SMALL_MESSAGE);
    let _permit = if small {
        None
    } else {
        match gate.large.acquire().await {
            Ok(permit) => Some(permit),
            Err(_) => return ApiError::internal(anyhow::anyhow!("the MCP message budget is closed")).into_response(),
        }
    };
    if gate.direct && request.method() == axum::http::Method::POST && direct::headers_allow(request.headers()) {
        let (parts, body) = request.into_parts();
        let bytes = match read_message(body, gate.limit).await {
            Ok(bytes) => bytes,
            Err(refusal) => return as_json_rpc(refusal).await,
        };
        // A large message (a document in base64) is parsed off the async threads, as the document's decoding
        // and page count are; at most LARGE_MESSAGES of them are here at once.
        let call = if bytes.len() as u64 <= SMALL_MESSAGE {
            direct::direct_call(&bytes)
        } else {
            let message = bytes.clone();
            match crate::work::run(move || direct::direct_call(&message)).await {
                Ok(call) => call,
                Err(e) => return ApiError::from(e).into_response(),
            }
        };
        if let Some((id, params)) = call {
            // The message is parsed: its bytes (a whole document in base64, for send_fax) go before the call.
            drop(bytes);
            gate.direct_messages.inc();
            let message = match gate.tools.call(params, identity).await {
                Ok(result) => {
                    // The shape the SDK gives peers older than 2026-07-28 (the only ones this path serves).
                    let mut result = ServerResult::from(result);
                    result.strip_result_type_for_legacy_peer();
                    result.strip_non_object_output_for_legacy_peer();
                    ServerJsonRpcMessage::response(result, id)
                }
                Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
            };
            // As the SDK answers in JSON-response mode: 200, the whole message, even for an error.
            return match serde_json::to_vec(&message) {
                Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
                Err(e) => ApiError::internal(anyhow::Error::new(e)).into_response(),
            };
        }
        request = Request::from_parts(parts, axum::body::Body::from(bytes));
    }
    gate.sdk_messages.inc();
    // The SDK's tools read the caller from the request's extensions (`tools::identity_of`).
    request.extensions_mut().insert(identity);
    let response = gate.sdk.handle(request).await;
    as_json_rpc(response.map(axum::body::Body::new)).await
}

/// The whole message, refused with the SDK's answers when it is larger than `limit` (413) or cannot be read.
async fn read_message(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, Response> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err((
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("Payload Too Large: request body exceeds {limit} bytes"),
        )
            .into_response()),
        Err(_) => Err((axum::http::StatusCode::BAD_REQUEST, "Failed to read request body").into_response()),
    }
}

/// The SDK refuses a message it cannot take (not JSON, too large, a wrong content type) with an HTTP status
/// and a plain-text reason. The transport allows that, but a client that reads only JSON-RPC would see no
/// reason at all: such answers keep their status and get a JSON-RPC error body without an id (the spec's
/// shape for a message that could not be read): -32700 when the body was not JSON, -32600 otherwise. The
/// reason can quote what the client sent (a serde message); digit runs are masked and it is cut short.
async fn as_json_rpc(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"));
    if !status.is_client_error() || is_json || status == axum::http::StatusCode::UNAUTHORIZED {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let reason =
        axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let reason: String = crate::phi_guard::guard_text(reason.trim()).chars().take(200).collect();
    let (code, message) = if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        (-32600, "Message too large".to_string())
    } else if reason.starts_with("fail to deserialize") {
        (-32700, format!("Parse error: {reason}"))
    } else {
        (-32600, format!("Invalid request: {reason}"))
    };
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_limit_fits_a_whole_document_in_base64() {
        // 10 MB of document is 13,333,336 base64 characters; the limit adds 1 MiB for the JSON around it.
        assert_eq!(message_limit(10_000_000), 13_333_336 + 1_048_576);
        assert_eq!(message_limit(0), 1_048_576);
        assert_eq!(message_limit(u64::MAX), usize::MAX);
    }
}
