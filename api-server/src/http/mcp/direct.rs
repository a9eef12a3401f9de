//! The direct path for `tools/call`: the one message an assistant sends over and over (every fax it sends
//! or follows) answered by the gate itself, without the SDK's per-request service.
//!
//! Why: in stateless mode the SDK serves each POST by starting a service for it (a spawned task, a one-shot
//! transport, channels and cancellation tokens), and a `tools/call` then costs the server about 40 % more
//! CPU than the same work through `POST /fax` (docs/benchmarks.md, "MCP against REST"). The tool itself is
//! the same function either way ([`super::tools::FaxTools::call`]).
//!
//! Only a message the SDK would certainly dispatch to `call_tool` unchanged takes this path; everything else
//! — other methods, batches, notifications, the 2026-07-28 revision's per-request metadata and standard
//! headers, an `Origin` header, unusual `Accept` or `Content-Type` values, anything that does not parse — goes
//! to the SDK with the same bytes, and the SDK answers (or refuses) it as before. [`direct_call`] is that
//! decision, a pure function with table tests; the conditions mirror rmcp 3.11's stateless `handle_post`:
//! - `Accept` lists `application/json` and `text/event-stream` (here: without parameters, so no `q=0`),
//!   `Content-Type`'s essence is `application/json`;
//! - `MCP-Protocol-Version` is absent (the SDK assumes 2025-03-26) or a known version older than 2026-07-28,
//!   so the SDK checks neither the standard `Mcp-*` headers nor per-request `_meta`;
//! - the body is one JSON-RPC request, `tools/call`, whose `_meta` names no protocol version.

use axum::http::{HeaderMap, header};
use rmcp::model::{CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, GetMeta, ProtocolVersion, RequestId};

/// The header naming the protocol revision (case-insensitive, as every HTTP header name).
const PROTOCOL_VERSION: &str = "mcp-protocol-version";

/// Whether the headers allow the direct path (checked before the body is read, so a message that cannot
/// take it is handed to the SDK unread).
pub(super) fn headers_allow(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::ORIGIN) {
        // The SDK checks Origin against its allow-list; leave every such request to it.
        return false;
    }
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { return false };
        for entry in value.split(',').map(str::trim) {
            json |= entry.eq_ignore_ascii_case("application/json");
            sse |= entry.eq_ignore_ascii_case("text/event-stream");
        }
    }
    let content_type_is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split_once(';').map_or(v, |(essence, _)| essence).trim())
        .is_some_and(|essence| essence.eq_ignore_ascii_case("application/json"));
    let version_is_plain = match headers.get(PROTOCOL_VERSION) {
        None => true,
        Some(value) => value.to_str().is_ok_and(|v| {
            ProtocolVersion::KNOWN_VERSIONS.iter().any(|known| known.as_str() == v)
                && v < ProtocolVersion::V_2026_07_28.as_str()
        }),
    };
    json && sse && content_type_is_json && version_is_plain
}

/// The call to answer directly, when `body` is one `tools/call` request without per-request protocol
/// metadata; `None` hands the message to the SDK.
pub(super) fn direct_call(body: &[u8]) -> Option<(RequestId, CallToolRequestParams)> {
    // Cheap refusals first: most messages that are not tools/call never get parsed twice.
    if !contains(body, b"tools/call") {
        return None;
    }
    let ClientJsonRpcMessage::Request(request) = serde_json::from_slice(body).ok()? else { return None };
    if request.request.get_meta().protocol_version().is_some() {
        return None;
    }
    match request.request {
        ClientRequest::CallToolRequest(call) => Some((request.id, call.params)),
        _ => None,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    const PLAIN: [(&str, &str); 2] =
        [("accept", "application/json, text/event-stream"), ("content-type", "application/json")];

    #[test]
    fn only_plain_headers_of_an_older_revision_allow_the_direct_path() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = PLAIN.to_vec();
            all.extend_from_slice(extra);
            headers_allow(&headers(&all))
        };
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[], true),
            (&[("mcp-protocol-version", "2025-11-25")], true),
            (&[("MCP-Protocol-Version", "2025-06-18")], true),
            (&[("mcp-protocol-version", "2025-03-26")], true),
            (&[("mcp-protocol-version", "2024-11-05")], true),
            // The 2026-07-28 revision: standard headers and per-request metadata, which the SDK checks.
            (&[("mcp-protocol-version", "2026-07-28")], false),
            // Unknown versions: the SDK answers 400.
            (&[("mcp-protocol-version", "2099-01-01")], false),
            (&[("mcp-protocol-version", "garbage")], false),
            (&[("origin", "http://localhost")], false),
            (&[("content-type", "application/json")], true),
        ];
        for (extra, expected) in table {
            assert_eq!(with(extra), *expected, "{extra:?}");
        }
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[("accept", "application/json, text/event-stream"), ("content-type", "application/json")], true),
            (&[("accept", "text/event-stream,application/json"), ("content-type", "application/json")], true),
            (
                &[
                    ("accept", "application/json"),
                    ("accept", "text/event-stream"),
                    ("content-type", "application/json"),
                ],
                true,
            ),
            (&[("accept", "APPLICATION/JSON, Text/Event-Stream"), ("content-type", "Application/JSON")], true),
            (
                &[
                    ("accept", "application/json, text/event-stream"),
                    ("content-type", "application/json; charset=utf-8"),
                ],
                true,
            ),
            // The SDK answers 406 or 415 for these, or weighs q values: left to it.
            (&[("accept", "application/json"), ("content-type", "application/json")], false),
            (&[("accept", "text/event-stream"), ("content-type", "application/json")], false),
            (&[("accept", "*/*"), ("content-type", "application/json")], false),
            (&[("accept", "application/json;q=0, text/event-stream"), ("content-type", "application/json")], false),
            (&[("accept", "application/json, text/event-stream"), ("content-type", "text/plain")], false),
            (&[("accept", "application/json, text/event-stream")], false),
        ];
        for (all, expected) in table {
            assert_eq!(headers_allow(&headers(all)), *expected, "{all:?}");
        }
    }

    #[test]
    fn only_a_single_tools_call_without_per_request_metadata_is_answered_directly() {
        let call =
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"send_fax","arguments":{"to":"x"}}}"#;
        let (id, params) = direct_call(call).unwrap();
        assert_eq!(id, RequestId::Number(7));
        assert_eq!(params.name, "send_fax");
        assert_eq!(params.arguments.unwrap()["to"], "x");
        let string_id = br#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"list_faxes"}}"#;
        assert_eq!(direct_call(string_id).unwrap().0, RequestId::String("a".into()));

        for body in [
            // Other methods, notifications, batches, responses: the SDK's.
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"tools/call","version":"0"}}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_fax"}}]"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"note":"tools/call"}}"#,
            // Malformed: the SDK gives the parse error.
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            b"tools/call",
            // The 2026-07-28 revision's per-request metadata: the SDK validates it.
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_fax","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        ] {
            assert!(direct_call(body).is_none(), "{}", String::from_utf8_lossy(body));
        }
    }
}
