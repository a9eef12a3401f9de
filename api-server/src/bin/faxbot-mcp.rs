//! `faxbot-mcp`: MCP over stdin and stdout for desktop assistants, bridged to a Faxbot server's `/mcp`.
//!
//! A desktop assistant starts this program and speaks MCP on its standard streams; the program passes every
//! request to the server over HTTP with the API key from its environment, so the tools, their scopes, the
//! masking and the audit trail are the server's own. One thing is added here, because only here is there a
//! local disk: `send_fax` also takes `path`, a file this program reads and sends as the document (never a
//! server-side path: the HTTP transport has no such argument).
//!
//! Environment: `FAXBOT_URL` (the server's base URL, for example `https://fax.example.internal`) and
//! `FAXBOT_API_KEY` (or `FAXBOT_API_KEY_FILE`). Logs go to stderr: stdout carries the protocol.

use base64::Engine;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{Peer, RequestContext, RoleClient, RoleServer, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use std::sync::Arc;

/// The largest file `path` may name. The server's own limit (`MAX_FILE_SIZE_MB`) decides; this only keeps a
/// wrong path (a disk image) from being read into memory.
const MAX_LOCAL_FILE: u64 = 64 * 1024 * 1024;

/// Adds `path` to `send_fax`'s input schema and makes `document_base64` optional (one of them is needed).
fn with_path_argument(tools: &mut ListToolsResult) {
    for tool in tools.tools.iter_mut().filter(|t| t.name == "send_fax") {
        let mut schema: JsonObject = (*tool.input_schema).clone();
        if let Some(Value::Object(properties)) = schema.get_mut("properties") {
            properties.insert(
                "path".into(),
                json!({"type": "string", "description": "A PDF or text file on this computer to send instead of \
                       document_base64."}),
            );
        }
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.retain(|r| r != "document_base64");
        }
        tool.input_schema = Arc::new(schema);
    }
}

/// Why a local file cannot be sent. The path is not repeated: file names often carry a patient's name.
fn unreadable(what: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("The file named by path {what}"))])
}

/// Replaces `path` with `document_base64` read from the file; `Err` is the tool error to answer with.
fn read_path(arguments: &mut JsonObject) -> Result<(), CallToolResult> {
    let Some(path) = arguments.remove("path") else { return Ok(()) };
    let Value::String(path) = path else { return Err(unreadable("must be a string")) };
    if arguments.contains_key("document_base64") {
        return Err(CallToolResult::error(vec![ContentBlock::text("Give either path or document_base64, not both")]));
    }
    let metadata = std::fs::metadata(&path).map_err(|_| unreadable("cannot be read"))?;
    if !metadata.is_file() {
        return Err(unreadable("is not a regular file"));
    }
    if metadata.len() > MAX_LOCAL_FILE {
        return Err(unreadable("is larger than 64 MiB"));
    }
    let bytes = std::fs::read(&path).map_err(|_| unreadable("cannot be read"))?;
    arguments.insert("document_base64".into(), Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)));
    Ok(())
}

fn remote_error(e: ServiceError) -> ErrorData {
    match e {
        ServiceError::McpError(e) => e,
        other => ErrorData::internal_error(format!("the Faxbot server could not be reached: {other}"), None),
    }
}

/// The stdio side: every request goes to the server's `/mcp`.
#[derive(Clone)]
struct Bridge {
    remote: Peer<RoleClient>,
}

impl ServerHandler for Bridge {
    fn get_info(&self) -> ServerConfig {
        let instructions = self.remote.peer_info().and_then(|info| info.instructions.clone()).unwrap_or_default();
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(rmcp::model::Implementation::new("faxbot-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!("{instructions} send_fax also takes path, a local file."))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.remote.list_tools(request).await.map_err(remote_error)?;
        with_path_argument(&mut tools);
        Ok(tools)
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name == "send_fax"
            && let Some(arguments) = request.arguments.as_mut()
            && let Err(refusal) = read_path(arguments)
        {
            return Ok(refusal.into());
        }
        Ok(self.remote.call_tool(request).await.map_err(remote_error)?.into())
    }
}

fn key_from_env() -> anyhow::Result<String> {
    if let Ok(key) = std::env::var("FAXBOT_API_KEY") {
        return Ok(key);
    }
    let file = std::env::var("FAXBOT_API_KEY_FILE")
        .map_err(|_| anyhow::anyhow!("set FAXBOT_API_KEY or FAXBOT_API_KEY_FILE"))?;
    Ok(std::fs::read_to_string(file)?.trim().to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("warn").init();
    let base = std::env::var("FAXBOT_URL").map_err(|_| anyhow::anyhow!("set FAXBOT_URL to the Faxbot server"))?;
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", base.trim_end_matches('/')));
    config.auth_header = Some(key_from_env()?);
    let remote = ().serve(StreamableHttpClientTransport::from_config(config)).await?;
    let bridge = Bridge { remote: remote.peer().clone() };
    let served = bridge.serve(rmcp::transport::stdio()).await?;
    served.waiting().await?;
    drop(remote);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> JsonObject {
        match v {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        }
    }

    #[test]
    fn a_path_becomes_the_document_and_bad_paths_are_tool_errors_without_the_path() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), b"%PDF-1.4 x").unwrap();
        let name = file.path().to_str().unwrap().to_string();
        let mut args = object(json!({"to": "+1", "path": name}));
        read_path(&mut args).unwrap();
        assert_eq!(args["document_base64"], base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 x"));
        assert!(!args.contains_key("path"));

        let secret = "/tmp/no-such-dir/Jane Doe referral.pdf";
        let refusal = read_path(&mut object(json!({"to": "+1", "path": secret}))).unwrap_err();
        let text = serde_json::to_string(&refusal).unwrap();
        assert!(text.contains("cannot be read") && !text.contains("Jane"), "{text}");
        assert!(read_path(&mut object(json!({"path": "/"}))).is_err(), "a directory");
        assert!(read_path(&mut object(json!({"path": 7}))).is_err());
        assert!(read_path(&mut object(json!({"path": name, "document_base64": "eA=="}))).is_err());
        let mut untouched = object(json!({"to": "+1", "document_base64": "eA=="}));
        read_path(&mut untouched).unwrap();
        assert_eq!(untouched["document_base64"], "eA==");
    }

    #[test]
    fn send_fax_takes_a_path_instead_of_the_document() {
        let schema = object(json!({"type": "object", "required": ["to", "document_base64"],
            "properties": {"to": {"type": "string"}, "document_base64": {"type": "string"}}}));
        let mut tools = ListToolsResult::with_all_items(vec![
            rmcp::model::Tool::new("send_fax", "send", Arc::new(schema.clone())),
            rmcp::model::Tool::new("list_faxes", "list", Arc::new(schema)),
        ]);
        with_path_argument(&mut tools);
        assert_eq!(tools.tools[0].input_schema["required"], json!(["to"]));
        assert_eq!(tools.tools[0].input_schema["properties"]["path"]["type"], "string");
        assert_eq!(tools.tools[1].input_schema["required"], json!(["to", "document_base64"]), "other tools unchanged");
    }
}
