//! The MCP tools. Each one is a REST route for an assistant: it needs the route's scope, counts against the
//! route's rate limit, and runs the route's own code ([`fax::accept`], [`fax::cancel_job`],
//! [`inbound::download_token`] …), so both answer with the same messages.
//!
//! What differs from REST, on purpose:
//! - Numbers are masked to their last four digits in every answer: an assistant passes what it reads to a
//!   language model, and it already knows the number it sent.
//! - A key sees only the tools its scopes allow (`tools/list`), and calling another one is a tool error
//!   (`Insufficient scope: …`, audited), as REST answers 403.
//! - Arguments of the wrong shape (a number where a string belongs, an unknown field) are a protocol error
//!   (`-32602`, invalid params); arguments of the right shape that the API refuses (a bad number, a document too
//!   large or with too many pages) are tool errors with the REST message, so the assistant can correct them.
//! - Every call is audited with the tool's name, the key id and the outcome, never its arguments.

use crate::db::inbound::{self as records, InboundRow, ListFilter};
use crate::db::jobs::{self, JobRow};
use crate::domain::{Scope, mask_digits};
use crate::http::AppState;
use crate::http::auth::Identity;
use crate::http::error::ApiError;
use crate::http::routes::{fax, inbound, plugins};
use base64::Engine;
use rmcp::ErrorData;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, JsonObject, ListToolsResult,
    PaginatedRequestParams, ResourceContents, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// What the server tells an assistant at initialisation.
const INSTRUCTIONS: &str = "Send faxes and read received ones through Faxbot. Numbers in answers are masked to their \
                            last four digits. A fax is queued first: follow it with get_fax_status until SUCCESS or \
                            FAILED.";

/// Standard base64, padding optional (as the argument's description says).
const DOCUMENT_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// A base64 document up to this size is decoded in place; larger ones on the work pool.
const SMALL_DOCUMENT: usize = 64 * 1024;

/// Largest inbound document `get_inbound_pdf` returns inline (`include_document`); larger ones only by link.
pub const INLINE_DOCUMENT_LIMIT: u64 = 5 * 1024 * 1024;

/// One tool: its name, the scope and rate-limit bucket of the route it stands for, and how it is described.
struct Spec {
    name: &'static str,
    scope: Scope,
    /// The rate-limit bucket (shared with nothing else: MCP calls do not eat a REST client's budget).
    route: &'static str,
    description: &'static str,
    read_only: bool,
    destructive: bool,
    schema: fn() -> JsonObject,
}

/// The input schema of a tool, from its argument type. Without `$schema`: MCP takes JSON Schema 2020-12 as the
/// default dialect, and the meta-schema's URL is only noise to an assistant's model.
fn schema<T: JsonSchema>() -> JsonObject {
    match serde_json::to_value(schemars::schema_for!(T)) {
        Ok(Value::Object(mut map)) => {
            map.remove("$schema");
            map
        }
        _ => JsonObject::new(),
    }
}

/// Every tool. Descriptions carry no numbers or names (a test runs them through the PHI guard).
const TOOLS: &[Spec] = &[
    Spec {
        name: "send_fax",
        scope: Scope::FaxSend,
        route: "mcp:send_fax",
        description: "Send a fax. The document is a PDF or plain text, base64-encoded. Returns the queued job; \
                      follow it with get_fax_status. Repeating a call with the same idempotency_key returns the \
                      first job instead of sending twice.",
        read_only: false,
        destructive: false,
        schema: schema::<SendFaxArgs>,
    },
    Spec {
        name: "get_fax_status",
        scope: Scope::FaxRead,
        route: "mcp:get_fax_status",
        description: "The status of a fax job: queued, in_progress, SUCCESS or FAILED, with the provider's error \
                      when it failed. The destination is shown masked.",
        read_only: true,
        destructive: false,
        schema: schema::<JobArgs>,
    },
    Spec {
        name: "cancel_fax",
        scope: Scope::FaxSend,
        route: "mcp:cancel_fax",
        description: "Cancel a fax job. One not yet sent is cancelled at once; one in transmission is cancelled at \
                      the provider when it can, and its final status follows.",
        read_only: false,
        destructive: true,
        schema: schema::<JobArgs>,
    },
    Spec {
        name: "list_faxes",
        scope: Scope::FaxRead,
        route: "mcp:list_faxes",
        description: "Recent fax jobs, newest first, optionally only those with one status. Destinations are masked.",
        read_only: true,
        destructive: false,
        schema: schema::<ListArgs>,
    },
    Spec {
        name: "list_inbound",
        scope: Scope::InboundList,
        route: "mcp:list_inbound",
        description: "Received faxes, newest first, optionally only those with one status. Numbers are masked.",
        read_only: true,
        destructive: false,
        schema: schema::<ListArgs>,
    },
    Spec {
        name: "get_inbound",
        scope: Scope::InboundRead,
        route: "mcp:get_inbound",
        description: "One received fax: when it arrived, its pages and size, and masked numbers.",
        read_only: true,
        destructive: false,
        schema: schema::<InboundArgs>,
    },
    Spec {
        name: "get_inbound_pdf",
        scope: Scope::InboundRead,
        route: "mcp:get_inbound_pdf",
        description: "A short-lived download link for a received fax's document. With include_document the PDF itself \
                      is returned as well, when it is at most 5 MiB; opening a document is audited.",
        read_only: true,
        destructive: false,
        schema: schema::<InboundPdfArgs>,
    },
    Spec {
        name: "list_providers",
        scope: Scope::KeysManage,
        route: "mcp:list_providers",
        description: "The plugin in each slot (outbound, inbound, storage, auth) and whether its check passes.",
        read_only: true,
        destructive: false,
        schema: schema::<NoArgs>,
    },
];

/// `send_fax`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SendFaxArgs {
    /// Destination number: E.164 (a plus sign and up to 15 digits) or digits only.
    to: String,
    /// The document (PDF or plain text), base64-encoded (standard alphabet, padding optional).
    document_base64: String,
    /// Optional: 1–128 printable ASCII characters; a repeated call with the same key returns the first job.
    // Plain types with defaults rather than `Option`s: a nullable type (`["string", "null"]`) is legal JSON
    // Schema, but clients that map tool schemas onto a single-type dialect reject it (the MCP Inspector's
    // `--strict` check flags it).
    #[serde(default)]
    idempotency_key: String,
}

/// A tool about one fax job.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JobArgs {
    /// The 32-hex job id.
    id: String,
}

/// A listing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    /// At most this many (1–100).
    #[serde(default = "default_limit")]
    limit: u32,
    /// Only jobs or faxes with this status (empty: any).
    #[serde(default)]
    status: String,
}

fn default_limit() -> u32 {
    20
}

/// A tool about one received fax.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct InboundArgs {
    /// The 32-hex id of the received fax.
    id: String,
}

/// `get_inbound_pdf`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct InboundPdfArgs {
    /// The 32-hex id of the received fax.
    id: String,
    /// Also return the document itself (at most 5 MiB), not only a link.
    #[serde(default)]
    include_document: bool,
}

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// A fax job as an assistant sees it: the destination masked.
#[derive(Debug, Serialize)]
struct JobView {
    id: String,
    to: String,
    status: String,
    error: Option<String>,
    pages: Option<i64>,
    backend: String,
    created_at: String,
    updated_at: String,
}

impl From<JobRow> for JobView {
    fn from(row: JobRow) -> Self {
        JobView {
            id: row.id.to_string(),
            to: row.to.masked(),
            status: row.status,
            error: row.error,
            pages: row.pages,
            backend: row.backend,
            created_at: row.created_at.to_wire(),
            updated_at: row.updated_at.to_wire(),
        }
    }
}

/// A received fax as an assistant sees it: numbers masked.
#[derive(Debug, Serialize)]
struct InboundView {
    id: String,
    from: Option<String>,
    to: Option<String>,
    status: String,
    backend: String,
    pages: Option<i64>,
    size_bytes: Option<i64>,
    received_at: String,
    document_available: bool,
}

impl From<InboundRow> for InboundView {
    fn from(row: InboundRow) -> Self {
        InboundView {
            id: row.id.to_string(),
            from: row.from_number.as_deref().map(mask_digits),
            to: row.to_number.as_deref().map(mask_digits),
            status: row.status,
            backend: row.backend,
            pages: row.pages,
            size_bytes: row.size_bytes,
            received_at: row.received_at.to_wire(),
            document_available: row.document_key.is_some(),
        }
    }
}

/// What a tool answers: structured content and a short text for clients that show only text.
struct Answer {
    text: String,
    structured: Value,
    /// A document, when the caller asked for one: its URI, media type and base64 content.
    document: Option<(String, String, String)>,
}

/// The MCP server: one per request (stateless), holding the API server's state.
#[derive(Clone)]
pub struct FaxTools {
    app: AppState,
}

impl FaxTools {
    /// The tools over `app`.
    pub fn new(app: AppState) -> FaxTools {
        FaxTools { app }
    }

    fn rpm(&self, spec: &Spec) -> u32 {
        match spec.scope {
            Scope::InboundList => self.app.settings.inbound_list_rpm,
            Scope::InboundRead => self.app.settings.inbound_get_rpm,
            _ => self.app.settings.rate_limit_rpm,
        }
    }

    async fn run(
        &self,
        spec: &Spec,
        identity: &Identity,
        args: JsonObject,
    ) -> Result<Result<Answer, ApiError>, ErrorData> {
        Ok(match spec.name {
            "send_fax" => self.send_fax(identity, parse(spec, args)?).await,
            "get_fax_status" => {
                let a: JobArgs = parse(spec, args)?;
                fax::find_job(&self.app, &a.id).await.map(job_answer)
            }
            "cancel_fax" => {
                let a: JobArgs = parse(spec, args)?;
                fax::cancel_job(&self.app, identity, &a.id).await.map(|(_, row)| job_answer(row))
            }
            "list_faxes" => self.list_faxes(parse(spec, args)?).await,
            "list_inbound" => self.list_inbound(parse(spec, args)?).await,
            "get_inbound" => self.get_inbound(parse(spec, args)?).await,
            "get_inbound_pdf" => self.get_inbound_pdf(identity, parse(spec, args)?).await,
            "list_providers" => {
                parse::<NoArgs>(spec, args)?;
                let report = plugins::slot_health(&self.app).await;
                let text = report
                    .items
                    .iter()
                    .map(|i| format!("{}: {} ({})", i.slot, i.plugin, if i.healthy { "healthy" } else { "failing" }))
                    .collect::<Vec<_>>()
                    .join("; ");
                Ok(Answer { text, structured: json!(report), document: None })
            }
            _ => return Err(unknown_tool()),
        })
    }

    async fn send_fax(&self, identity: &Identity, a: SendFaxArgs) -> Result<Answer, ApiError> {
        let idempotency_key = Some(a.idempotency_key.as_str()).filter(|k| !k.is_empty());
        if let Some(key) = idempotency_key {
            fax::valid_idempotency_key(key)?;
        }
        // The decoded size is known before decoding: refuse an oversized document without allocating it.
        let decoded_max = a.document_base64.len() / 4 * 3;
        if decoded_max as u64 > self.app.settings.max_file_bytes.saturating_add(2) {
            return Err(fax::upload::too_large(&self.app));
        }
        let encoded = a.document_base64;
        // Decoding megabytes is CPU work: above a small size it waits for a turn off the async threads, like the
        // page count of an upload.
        let decoded = if encoded.len() <= SMALL_DOCUMENT {
            DOCUMENT_BASE64.decode(encoded.as_bytes())
        } else {
            crate::work::run(move || DOCUMENT_BASE64.decode(encoded.as_bytes())).await?
        };
        let bytes = decoded
            .map_err(|_| ApiError::new(axum::http::StatusCode::BAD_REQUEST, "document_base64 is not valid base64"))?;
        let mut stager = fax::upload::Stager::new(&self.app);
        if stager.push(&self.app, &bytes).await?.is_err() {
            return Err(fax::upload::too_large(&self.app));
        }
        drop(bytes);
        let staged = stager.finish().await?;
        let (row, replayed) = match fax::accept(&self.app, identity, &a.to, staged, idempotency_key).await? {
            fax::Accepted::New(row) => (row, false),
            fax::Accepted::Replayed(row) => (row, true),
        };
        let mut answer = job_answer(row);
        if replayed {
            answer.text = format!("{} (the job of an earlier call with this idempotency_key)", answer.text);
        }
        Ok(answer)
    }

    async fn list_faxes(&self, a: ListArgs) -> Result<Answer, ApiError> {
        let status = Some(a.status.as_str()).filter(|s| !s.is_empty());
        let rows = jobs::recent(&self.app.db, limit(a.limit)?, status).await?;
        let views: Vec<JobView> = rows.into_iter().map(JobView::from).collect();
        let text = format!("{} fax job(s)", views.len());
        Ok(Answer { text, structured: json!({ "faxes": views }), document: None })
    }

    async fn list_inbound(&self, a: ListArgs) -> Result<Answer, ApiError> {
        inbound::enabled(&self.app)?;
        let status = Some(a.status).filter(|s| !s.is_empty());
        let filter = ListFilter { to_number: None, status, mailbox: None };
        let rows = records::list(&self.app.db, &filter, limit(a.limit)?).await?;
        let views: Vec<InboundView> = rows.into_iter().map(InboundView::from).collect();
        let text = format!("{} received fax(es)", views.len());
        Ok(Answer { text, structured: json!({ "faxes": views }), document: None })
    }

    async fn get_inbound(&self, a: InboundArgs) -> Result<Answer, ApiError> {
        inbound::enabled(&self.app)?;
        let view = InboundView::from(inbound::find(&self.app, &a.id).await?);
        let text = format!("Received fax {}: {} page(s), {}", view.id, pages(view.pages), view.status);
        Ok(Answer { text, structured: json!(view), document: None })
    }

    async fn get_inbound_pdf(&self, identity: &Identity, a: InboundPdfArgs) -> Result<Answer, ApiError> {
        let (token, row) = inbound::download_token(&self.app, identity, &a.id).await?;
        let mut answer = Answer {
            text: format!("Download link for received fax {} (valid until {} UTC)", row.id, token.expires_at),
            structured: json!({ "id": row.id.to_string(), "url": token.url, "expires_at": token.expires_at }),
            document: None,
        };
        if a.include_document {
            let size = row.size_bytes.and_then(|n| u64::try_from(n).ok()).unwrap_or(u64::MAX);
            if size > INLINE_DOCUMENT_LIMIT {
                return Err(ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "The document is larger than 5 MiB; download it from the link instead",
                ));
            }
            let key = row.document_key.clone().ok_or_else(|| ApiError::not_found("PDF file not found"))?;
            let mut file = match self.app.documents.open(&key).await {
                Ok(f) => f,
                Err(crate::documents::StorageError::NotFound) => return Err(ApiError::not_found("PDF file not found")),
                Err(e) => return Err(ApiError::internal(e)),
            };
            let mut bytes = Vec::new();
            let read = tokio::io::AsyncReadExt::take(&mut file, INLINE_DOCUMENT_LIMIT + 1);
            tokio::io::AsyncReadExt::read_to_end(&mut Box::pin(read), &mut bytes).await.map_err(ApiError::internal)?;
            if bytes.len() as u64 > INLINE_DOCUMENT_LIMIT {
                return Err(ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "The document is larger than 5 MiB; download it from the link instead",
                ));
            }
            crate::audit!("inbound_pdf_served", inbound_id = %row.id, method = "mcp",
                key_id = identity.key_id().unwrap_or("anonymous"));
            let mime = if key.ends_with(".tif") { "image/tiff" } else { "application/pdf" };
            let uri = format!("faxbot://inbound/{}/document", row.id);
            answer.document = Some((uri, mime.to_string(), base64::engine::general_purpose::STANDARD.encode(&bytes)));
        }
        Ok(answer)
    }
}

fn job_answer(row: JobRow) -> Answer {
    let view = JobView::from(row);
    let mut text = format!("Fax {} to {}: {}", view.id, view.to, view.status);
    if let Some(error) = &view.error {
        text.push_str(&format!(" ({error})"));
    }
    Answer { text, structured: json!(view), document: None }
}

fn pages(n: Option<i64>) -> String {
    n.map_or_else(|| "?".to_string(), |n| n.to_string())
}

fn limit(requested: u32) -> Result<i64, ApiError> {
    match requested {
        n @ 1..=100 => Ok(i64::from(n)),
        _ => Err(ApiError::new(axum::http::StatusCode::BAD_REQUEST, "limit must be between 1 and 100")),
    }
}

fn unknown_tool() -> ErrorData {
    ErrorData::invalid_params("Unknown tool", None)
}

/// The tool's arguments in its type. Serde's messages can quote a value the caller sent; digit runs in them are
/// masked (the caller has the value, but an error can travel further than an answer).
fn parse<T: DeserializeOwned>(spec: &Spec, args: JsonObject) -> Result<T, ErrorData> {
    serde_json::from_value(Value::Object(args)).map_err(|e| {
        let reason = crate::phi_guard::guard_text(&e.to_string());
        ErrorData::invalid_params(format!("Invalid arguments for {}: {reason}", spec.name), None)
    })
}

/// The REST answer of an error, as a tool error: the same status and message.
fn tool_error(e: ApiError) -> CallToolResult {
    let (status, detail) = e.into_message();
    let mut result = CallToolResult::error(vec![ContentBlock::text(detail.clone())]);
    result.structured_content = Some(json!({ "status": status.as_u16(), "detail": detail }));
    result
}

/// The caller the `/mcp` gate identified (it put the identity into the HTTP request's extensions, which the SDK
/// hands to the handler).
fn identity_of(context: &RequestContext<RoleServer>) -> Option<Identity> {
    context.extensions.get::<axum::http::request::Parts>().and_then(|parts| parts.extensions.get::<Identity>()).cloned()
}

/// Whether `identity` may use `spec` (the scope alone; the rate limit is checked per call).
fn allowed(spec: &Spec, identity: &Identity) -> bool {
    match identity {
        Identity::Key { scopes, .. } => spec.scope.granted_by(scopes),
        Identity::Env | Identity::Anonymous => true,
    }
}

fn describe(spec: &Spec) -> Tool {
    let mut annotations = ToolAnnotations::default();
    annotations.read_only_hint = Some(spec.read_only);
    annotations.destructive_hint = Some(spec.destructive);
    let mut tool = Tool::new(spec.name, spec.description, Arc::new((spec.schema)()));
    tool.annotations = Some(annotations);
    tool
}

/// The rate-limit bucket of plugin tools.
const PLUGIN_TOOL_ROUTE: &str = "mcp:plugin_tool";

/// The tools of the plugins in use (the outbound chain), with their MCP names (`<plugin id>_<tool>`).
fn plugin_tools(
    app: &AppState,
) -> Vec<(String, Arc<dyn crate::plugins::OutboundProvider>, faxbot_contract::manifest::ToolSpec)> {
    let runtime = app.runtime.load_current();
    let chain =
        std::iter::once((runtime.outbound_id.clone(), runtime.outbound.clone())).chain(runtime.failover.clone());
    let mut out = Vec::new();
    for (id, provider) in chain {
        for tool in provider.tools() {
            out.push((format!("{id}_{}", tool.name), provider.clone(), tool.clone()));
        }
    }
    out
}

fn tool_scope(tool: &faxbot_contract::manifest::ToolSpec) -> Scope {
    // The manifest check allows only known scopes; anything else would need the most privileged one.
    Scope::parse(&tool.scope).unwrap_or(Scope::KeysManage)
}

fn describe_plugin_tool(name: &str, tool: &faxbot_contract::manifest::ToolSpec) -> Tool {
    let mut properties = serde_json::Map::new();
    for a in &tool.arguments {
        properties.insert(a.name.clone(), json!({"type": "string", "description": a.description}));
    }
    let required: Vec<&str> = tool.arguments.iter().filter(|a| a.required).map(|a| a.name.as_str()).collect();
    let schema =
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});
    let Value::Object(schema) = schema else { unreachable!("a JSON object literal") };
    let mut annotations = ToolAnnotations::default();
    annotations.open_world_hint = Some(true);
    let mut t = Tool::new(name.to_string(), tool.description.clone(), Arc::new(schema));
    t.annotations = Some(annotations);
    t
}

/// A plugin tool's arguments: strings, only the declared ones, the required ones present.
fn plugin_arguments(
    name: &str,
    tool: &faxbot_contract::manifest::ToolSpec,
    args: JsonObject,
) -> Result<std::collections::BTreeMap<String, String>, ErrorData> {
    let invalid = |why: String| ErrorData::invalid_params(format!("Invalid arguments for {name}: {why}"), None);
    let mut out = std::collections::BTreeMap::new();
    for (key, value) in args {
        if !tool.arguments.iter().any(|a| a.name == key) {
            return Err(invalid(format!("unknown argument `{key}`")));
        }
        let Value::String(value) = value else { return Err(invalid(format!("`{key}` must be a string"))) };
        out.insert(key, value);
    }
    if let Some(missing) = tool.arguments.iter().find(|a| a.required && !out.contains_key(&a.name)) {
        return Err(invalid(format!("missing argument `{}`", missing.name)));
    }
    Ok(out)
}

/// A provider's answer with every string and long number passed through the PHI guard: a tool's answer
/// goes to an assistant's model, and a number lookup answers with numbers.
fn guard_json(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(crate::phi_guard::guard_text(&s)),
        Value::Number(n) => {
            let text = n.to_string();
            let guarded = crate::phi_guard::guard_text(&text);
            if guarded == text { Value::Number(n) } else { Value::String(guarded) }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(guard_json).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, guard_json(v))).collect()),
        other => other,
    }
}

impl FaxTools {
    /// Calls a plugin's tool: scope and rate limit as for the built-in tools, the provider's answer guarded.
    async fn call_plugin_tool(
        &self,
        name: &str,
        identity: &Identity,
        args: JsonObject,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some((_, provider, tool)) = plugin_tools(&self.app).into_iter().find(|(n, _, _)| n == name) else {
            return Err(unknown_tool());
        };
        let key_id = identity.key_id().unwrap_or("anonymous").to_string();
        let rpm = self.app.settings.rate_limit_rpm;
        if let Err(e) = self.app.auth.permit(identity, tool_scope(&tool), PLUGIN_TOOL_ROUTE, rpm) {
            crate::audit!("mcp_tool_called", tool = %name, key_id = %key_id, outcome = "refused");
            return Ok(tool_error(e).into());
        }
        let arguments = plugin_arguments(name, &tool, args).inspect_err(|_| {
            crate::audit!("mcp_tool_called", tool = %name, key_id = %key_id, outcome = "invalid_arguments");
        })?;
        match provider.call_tool(&tool.name, &arguments).await {
            Ok(answer) => {
                crate::audit!("mcp_tool_called", tool = %name, key_id = %key_id, outcome = "ok");
                let answer = guard_json(answer);
                let mut result = CallToolResult::success(vec![ContentBlock::text(answer.to_string())]);
                result.structured_content = Some(json!({ "result": answer }));
                Ok(result.into())
            }
            Err(e) => {
                crate::audit!("mcp_tool_called", tool = %name, key_id = %key_id, outcome = "error", kind = e.kind());
                let detail = crate::phi_guard::guard_text(&e.to_string());
                let mut result = CallToolResult::error(vec![ContentBlock::text(detail.clone())]);
                result.structured_content = Some(json!({ "status": 502, "detail": detail }));
                Ok(result.into())
            }
        }
    }
}

impl ServerHandler for FaxTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(rmcp::model::Implementation::new("faxbot", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let Some(identity) = identity_of(&context) else { return Ok(ListToolsResult::with_all_items(Vec::new())) };
        let mut tools: Vec<Tool> = TOOLS.iter().filter(|t| allowed(t, &identity)).map(describe).collect();
        for (name, _, tool) in plugin_tools(&self.app) {
            let permitted = match &identity {
                Identity::Key { scopes, .. } => tool_scope(&tool).granted_by(scopes),
                Identity::Env | Identity::Anonymous => true,
            };
            if permitted {
                tools.push(describe_plugin_tool(&name, &tool));
            }
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let identity = identity_of(&context).ok_or_else(|| ErrorData::internal_error("no caller", None))?;
        self.call(request, identity).await
    }
}

impl FaxTools {
    /// `tools/call` for `identity`: what the SDK's dispatch calls, and what the gate's direct path
    /// ([`super::direct`]) calls without the SDK's per-request service.
    pub(super) async fn call(
        &self,
        request: CallToolRequestParams,
        identity: Identity,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(spec) = TOOLS.iter().find(|t| t.name == request.name) else {
            return self.call_plugin_tool(&request.name, &identity, request.arguments.unwrap_or_default()).await;
        };
        let key_id = identity.key_id().unwrap_or("anonymous").to_string();
        if let Err(e) = self.app.auth.permit(&identity, spec.scope, spec.route, self.rpm(spec)) {
            crate::audit!("mcp_tool_called", tool = spec.name, key_id = %key_id, outcome = "refused");
            return Ok(tool_error(e).into());
        }
        let result = match self.run(spec, &identity, request.arguments.unwrap_or_default()).await {
            Ok(result) => result,
            Err(protocol) => {
                crate::audit!("mcp_tool_called", tool = spec.name, key_id = %key_id, outcome = "invalid_arguments");
                return Err(protocol);
            }
        };
        Ok(match result {
            Ok(answer) => {
                crate::audit!("mcp_tool_called", tool = spec.name, key_id = %key_id, outcome = "ok");
                let mut content = vec![ContentBlock::text(answer.text)];
                if let Some((uri, mime, blob)) = answer.document {
                    content.push(ContentBlock::resource(ResourceContents::BlobResourceContents {
                        uri,
                        mime_type: Some(mime),
                        blob,
                        meta: None,
                    }));
                }
                let mut result = CallToolResult::success(content);
                result.structured_content = Some(answer.structured);
                result.into()
            }
            Err(e) => {
                crate::audit!("mcp_tool_called", tool = spec.name, key_id = %key_id, outcome = "error",
                    status = e.status().as_u16());
                tool_error(e).into()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_schema_and_a_unique_name() {
        let mut names = std::collections::BTreeSet::new();
        for spec in TOOLS {
            assert!(names.insert(spec.name), "{} twice", spec.name);
            let schema = (spec.schema)();
            assert_eq!(schema.get("type"), Some(&json!("object")), "{}", spec.name);
            // One type per property: the portable form (see SendFaxArgs).
            for (name, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
                assert!(property["type"].is_string(), "{}.{name}: {property}", spec.name);
            }
        }
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn a_key_sees_only_the_tools_of_its_scopes() {
        let key = |scopes: &[&str]| Identity::Key {
            key_id: "0123456789ab".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        };
        let visible =
            |identity: &Identity| TOOLS.iter().filter(|t| allowed(t, identity)).map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(visible(&key(&["fax:send"])), ["send_fax", "cancel_fax"]);
        assert_eq!(visible(&key(&["fax:read"])), ["get_fax_status", "list_faxes"]);
        assert_eq!(
            visible(&key(&["inbound:list", "inbound:read"])),
            ["list_inbound", "get_inbound", "get_inbound_pdf"]
        );
        assert_eq!(visible(&key(&["*"])).len(), 7, "* grants every user scope but not admin");
        assert_eq!(visible(&key(&["keys:manage"])), ["list_providers"]);
        assert_eq!(visible(&Identity::Env).len(), 8);
        assert!(visible(&key(&[])).is_empty());
    }

    #[test]
    fn tool_descriptions_pass_the_phi_guard() {
        // Descriptions and schemas reach the assistant's model: no number may appear in them, not even an
        // example one.
        let schemas: Vec<String> = TOOLS.iter().map(|t| Value::Object((t.schema)()).to_string()).collect();
        let texts = TOOLS.iter().map(|t| t.description).chain([INSTRUCTIONS]).chain(schemas.iter().map(String::as_str));
        for text in texts {
            assert_eq!(crate::phi_guard::guard_text(text), text, "the PHI guard would change: {text}");
            assert!(!faxbot_contract::phi::may_hold_number(text, 7), "{text}");
        }
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_refused() {
        assert_eq!(limit(default_limit()).unwrap(), 20);
        assert_eq!(limit(1).unwrap(), 1);
        assert_eq!(limit(100).unwrap(), 100);
        assert!(limit(0).is_err());
        assert!(limit(101).is_err());
    }

    #[test]
    fn arguments_of_the_wrong_shape_are_invalid_params_without_the_digits_sent() {
        let spec = &TOOLS[0];
        let args = json!({"to": 15551234567_u64, "document_base64": "eA=="});
        let Value::Object(args) = args else { unreachable!() };
        let e = parse::<SendFaxArgs>(spec, args).unwrap_err();
        assert_eq!(e.code, rmcp::model::ErrorCode::INVALID_PARAMS);
        assert!(!e.message.contains("15551234567"), "{}", e.message);
        let Value::Object(extra) = json!({"to": "+1", "document_base64": "", "cc": "x"}) else { unreachable!() };
        assert!(parse::<SendFaxArgs>(spec, extra).is_err(), "unknown fields are refused");
    }
}
