//! The SIP/Asterisk plugin (`sip`): faxes over the organisation's own SIP trunk, through Asterisk.
//!
//! Sending: the PDF is rasterised into a fax TIFF in the spool directory Asterisk shares, a call record is
//! committed, and an async `Originate` with a forced `ChannelId` dials the destination into the
//! `fax-tx` context of `config/asterisk/extensions.conf`, which runs `SendFAX` and reports the result from a
//! hangup handler as `UserEvent: FaxResult`. The AMI events are recorded by [`call`] rules into the shared
//! database, and status checks read them, so a call always ends: answered or not, result or hangup, or the
//! deadline. A call is never dialled twice: an Originate whose answer was lost is not repeated (its events or
//! a channel check decide), and a repeated submission of the same job adopts the call already recorded.
//!
//! Receiving: Asterisk's receive context stores the TIFF in `inboundDir` and posts to
//! `POST /_internal/asterisk/inbound` with `X-Internal-Secret`; the TIFF becomes a PDF and is stored like
//! every inbound fax.
//!
//! Modules: [`ami`] (the manager-interface client) and [`call`] (what events mean).

pub mod ami;
pub mod call;

use super::{
    InboundProvider, OutboundProvider, PluginError, ProviderError, ReceivedFax, RemoteStatus, SendRequest, Submission,
    WebhookRequest, settings_error,
};
use crate::domain::{JobId, Timestamp};
use crate::store::writer::{WriteOp, Writer};
use crate::store::{Db, sipcalls};
use ami::{Action, AmiClient, AmiConfig, AmiError};
use async_trait::async_trait;
use call::{CHANNEL_PREFIX, CallEvent, CallRecord, Verdict};
use faxbot_contract::SlotBinding;
use faxbot_contract::plugins::{
    self as manifests, FaxCompression, FaxPaperSize, FaxResolution, PluginManifest, SipSettings,
};
use faxbot_documents::fax::{self as pipeline, Compression, FaxImageOptions, PaperSize, Resolution, Tools};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Slack on top of ring and fax timeouts before a silent call is given up.
const DEADLINE_SLACK: Duration = Duration::from_secs(30);

/// The outbound side: one AMI session per plugin instance.
pub struct SipLine {
    manifest: PluginManifest,
    settings: SipSettings,
    client: AmiClient,
    db: Db,
    writer: Writer,
    tools: Tools,
    listener: tokio::task::JoinHandle<()>,
    /// When the spool was last swept of images left behind by a crash.
    last_sweep: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often the spool is swept (at most; only while faxes are being sent).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

impl std::fmt::Debug for SipLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipLine").field("client", &self.client).finish_non_exhaustive()
    }
}

impl Drop for SipLine {
    // A replaced configuration drops its plugin: log off and stop reconnecting.
    fn drop(&mut self) {
        self.listener.abort();
        let client = self.client.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { client.shutdown().await });
        }
    }
}

fn settings_of(binding: &SlotBinding) -> Result<SipSettings, PluginError> {
    manifests::parse_settings(&binding.settings).map_err(settings_error(binding))
}

/// The document converters, from `GHOSTSCRIPT`, `TIFF2PDF` and `FAXBOT_CONVERT_TIMEOUT_SECS`.
fn tools(binding: &SlotBinding) -> Result<Tools, PluginError> {
    Tools::from_env().map_err(|e| PluginError::Settings { plugin: binding.plugin.clone(), problems: e.to_string() })
}

fn manifest() -> Result<PluginManifest, PluginError> {
    manifests::manifest(manifests::SIP).ok_or_else(|| PluginError::Unknown(manifests::SIP.into()))
}

/// Builds the sending side for a slot (`<slot>.amiSecret` is its credential file).
pub fn build_outbound(
    binding: &SlotBinding,
    slot: &str,
    db: &Db,
    writer: &Writer,
) -> Result<Arc<SipLine>, PluginError> {
    let settings = settings_of(binding)?;
    let secret = super::credential(slot, "amiSecret", "ASTERISK_AMI_SECRET").ok_or_else(|| PluginError::Settings {
        plugin: binding.plugin.clone(),
        problems: format!(
            "credential `amiSecret` missing: mount it as $FAXBOT_CREDENTIALS_DIR/{slot}.amiSecret or set \
                 ASTERISK_AMI_SECRET"
        ),
    })?;
    let tools = tools(binding)?;
    if let Err(e) = tools.check() {
        // Not fatal (the tools may be mounted later), but every fax would fail: say so at once.
        tracing::error!(error = %e, "the sip plugin needs Ghostscript and tiff2pdf to prepare faxes");
    }
    let client = AmiClient::spawn(AmiConfig {
        address: format!("{}:{}", settings.ami_host, settings.ami_port),
        username: settings.ami_username.clone(),
        secret,
        ping_interval: Duration::from_secs(20),
        action_timeout: Duration::from_secs(10),
        min_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(30),
    });
    let listener = tokio::spawn(listen(client.clone(), writer.clone()));
    Ok(Arc::new(SipLine {
        manifest: manifest()?,
        settings,
        client,
        db: db.clone(),
        writer: writer.clone(),
        tools,
        listener,
        last_sweep: std::sync::Mutex::new(None),
    }))
}

/// Records every event about our calls. Runs for the life of the plugin instance.
async fn listen(client: AmiClient, writer: Writer) {
    let mut events = client.subscribe();
    loop {
        match events.recv().await {
            Ok(event) => {
                let Some((channel_id, what)) = call::interpret(&event) else { continue };
                let at = Timestamp::now().micros();
                let op = WriteOp::SipRecord { channel_id, event: what, at };
                if let Err(e) = writer.submit(op).await {
                    // Lost facts are recovered by the channel check; make sure one happens.
                    tracing::error!(error = %e, "recording an AMI event failed");
                    client.note_gap();
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "AMI events were dropped; calls in progress will be checked with Asterisk");
                client.note_gap();
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn image_options(s: &SipSettings) -> FaxImageOptions {
    FaxImageOptions {
        resolution: match s.resolution {
            FaxResolution::Fine => Resolution::Fine,
            FaxResolution::Standard => Resolution::Standard,
        },
        paper: match s.paper_size {
            FaxPaperSize::Letter => PaperSize::Letter,
            FaxPaperSize::A4 => PaperSize::A4,
        },
        compression: match s.compression {
            FaxCompression::G4 => Compression::G4,
            FaxCompression::G3 => Compression::G3,
        },
    }
}

fn unavailable(message: impl Into<String>) -> ProviderError {
    ProviderError::Unavailable { message: message.into(), retry_after: None }
}

impl SipLine {
    fn tiff_path(&self, channel_id: &str) -> PathBuf {
        Path::new(&self.settings.spool_dir).join(format!("{channel_id}.tif"))
    }

    /// The TIFF path as Asterisk sees it.
    fn asterisk_path(&self, channel_id: &str) -> String {
        let dir = self.settings.asterisk_spool_dir.as_deref().unwrap_or(&self.settings.spool_dir);
        format!("{}/{channel_id}.tif", dir.trim_end_matches('/'))
    }

    /// Rasterises the document into the spool directory.
    async fn prepare(&self, document: &[u8], channel_id: &str) -> Result<PathBuf, ProviderError> {
        let spool = Path::new(&self.settings.spool_dir);
        tokio::fs::create_dir_all(spool)
            .await
            .map_err(|e| unavailable(format!("the spool directory is not writable: {e}")))?;
        let staged = tempfile::Builder::new()
            .prefix(".faxbot-")
            .suffix(".pdf")
            .tempfile_in(spool)
            .map_err(|e| unavailable(format!("the spool directory is not writable: {e}")))?
            .into_temp_path();
        tokio::fs::write(&staged, document)
            .await
            .map_err(|e| unavailable(format!("writing the spool file failed: {e}")))?;
        let out = self.tiff_path(channel_id);
        let options = image_options(&self.settings);
        // Ghostscript takes a core: it waits for a turn like the server's own document work.
        let _turn = crate::work::turn().await.map_err(|e| unavailable(e.to_string()))?;
        match pipeline::pdf_to_fax_tiff(&self.tools, &staged, &out, &options, faxbot_documents::pdf::MAX_PAGES).await {
            Ok(summary) => {
                tracing::info!(pages = summary.page_count(), "fax image prepared");
                Ok(out)
            }
            Err(e @ (pipeline::ConvertError::Damaged(_) | pipeline::ConvertError::TooManyPages { .. })) => {
                Err(ProviderError::Rejected(format!("the document cannot be faxed: {e}")))
            }
            Err(e) => Err(unavailable(format!("preparing the fax image failed: {e}"))),
        }
    }

    /// Removes fax images (and staged PDFs) that a crash left in the spool: PHI must not linger on the shared
    /// volume. Only files older than twice the longest a call can take are touched, so no replica's call in
    /// progress loses its image.
    fn sweep_spool(&self) {
        {
            let mut last = lock(&self.last_sweep);
            if last.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let spool = PathBuf::from(&self.settings.spool_dir);
        let longest = Duration::from_secs(
            u64::from(self.settings.ring_timeout_seconds) + u64::from(self.settings.fax_timeout_seconds),
        ) + DEADLINE_SLACK;
        let max_age = longest * 2;
        tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&spool) else { return };
            let mut removed = 0;
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let ours = name.starts_with(CHANNEL_PREFIX) || name.starts_with(".faxbot-");
                let old =
                    entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|a| a > max_age));
                if ours && old && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
            if removed > 0 {
                tracing::info!(removed, "removed fax images left in the spool by an interrupted send");
            }
        });
    }

    async fn discard(&self, channel_id: &str) {
        if let Err(e) = tokio::fs::remove_file(self.tiff_path(channel_id)).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "removing a spooled fax image failed");
        }
    }

    async fn record(&self, channel_id: &str, event: CallEvent) {
        let op = WriteOp::SipRecord { channel_id: channel_id.to_string(), event, at: Timestamp::now().micros() };
        if let Err(e) = self.writer.submit(op).await {
            tracing::error!(error = %e, "recording a call outcome failed");
        }
    }

    /// Asks Asterisk whether the channel still exists; a gone channel is recorded as ended.
    async fn check_channel(&self, channel_id: &str) -> Result<(), ProviderError> {
        let probe = Action::new("Getvar").field("Channel", channel_id).field("Variable", "FAXSTATUS");
        match self.client.action(probe).await {
            Ok(answer) if answer.is_success() => Ok(()),
            Ok(answer) => {
                let message = answer.get("Message").unwrap_or_default();
                if message.to_ascii_lowercase().contains("no such channel") {
                    self.record(channel_id, CallEvent::Ended { cause: None }).await;
                    Ok(())
                } else if message.eq_ignore_ascii_case("permission denied") {
                    // Asterisk allows Getvar to users with write class `call` or `reporting`; without it
                    // no channel can ever be checked, so say what to fix instead of retrying in silence.
                    tracing::error!(
                        "Asterisk refused Getvar: the manager user needs `write = originate,reporting` \
                         (config/asterisk/manager.conf)"
                    );
                    Err(unavailable(
                        "Asterisk refused the channel check: the manager user lacks write permission `reporting`"
                            .to_string(),
                    ))
                } else {
                    Err(unavailable(format!(
                        "Asterisk refused the channel check: {}",
                        message.chars().take(80).collect::<String>()
                    )))
                }
            }
            Err(e) => Err(unavailable(e.to_string())),
        }
    }
}

#[async_trait]
impl OutboundProvider for SipLine {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<Submission, ProviderError> {
        if !self.client.connection().borrow().connected {
            return Err(unavailable("not connected to the Asterisk manager interface"));
        }
        // A repeated submission (a provider timeout, or a restart mid-submission) adopts the job's call that
        // has no outcome yet: the record is committed before the Originate, so a call that may exist is
        // always found and never dialled twice.
        match sipcalls::open_call_for_job(&self.db, request.job_id.as_str()).await {
            Ok(Some(channel_id)) => {
                tracing::info!("adopting the call of a repeated submission instead of dialling again");
                // Whether the earlier attempt reached Asterisk is unknown: let a channel check decide.
                let op = WriteOp::SipUncertain { channel_id: channel_id.clone(), at: Timestamp::now().micros() };
                if let Err(e) = self.writer.submit(op).await {
                    return Err(unavailable(format!("recording the adopted call failed: {e}")));
                }
                return Ok(Submission { provider_sid: channel_id, status: RemoteStatus::Queued, check_after: None });
            }
            Ok(None) => {}
            Err(e) => return Err(unavailable(format!("reading the call records failed: {e}"))),
        }
        self.sweep_spool();
        let Some(document) = request.document.as_ref() else {
            return Err(ProviderError::Rejected("no document to send".into()));
        };
        // A fresh channel id per attempt: Asterisk refuses a ChannelId that is still in use.
        let channel_id = format!("{CHANNEL_PREFIX}{}-{}", request.job_id, &JobId::generate().as_str()[..8]);
        self.prepare(document, &channel_id).await?;
        let now = Timestamp::now();
        let ring = Duration::from_secs(u64::from(self.settings.ring_timeout_seconds));
        let whole = ring + Duration::from_secs(u64::from(self.settings.fax_timeout_seconds)) + DEADLINE_SLACK;
        let record = CallRecord {
            channel_id: channel_id.clone(),
            created_at: now.micros(),
            deadline_at: now.plus(whole).micros(),
            ..Default::default()
        };
        if let Err(e) =
            self.writer.submit(WriteOp::SipInsert { job_id: request.job_id.to_string(), call: Box::new(record) }).await
        {
            self.discard(&channel_id).await;
            return Err(unavailable(format!("recording the call failed: {e}")));
        }
        let number = format!("+{}", request.to.digits());
        let mut variables =
            vec![format!("JOBID={}", request.job_id), format!("FAXFILE={}", self.asterisk_path(&channel_id))];
        if let Some(id) = &self.settings.station_id {
            variables.push(format!("STATIONID={id}"));
        }
        if let Some(header) = &self.settings.header_text {
            variables.push(format!("FAXHEADER={header}"));
        }
        let mut originate = Action::new("Originate")
            .field("Channel", self.settings.channel_template.replace("{number}", &number))
            .field("Context", self.settings.context.clone())
            .field("Exten", "s")
            .field("Priority", "1")
            .field("Timeout", (ring.as_millis() as u64).to_string())
            .field("Async", "true")
            .field("ChannelId", channel_id.clone());
        if let Some(id) = &self.settings.station_id {
            originate = originate.field("CallerID", id.clone());
        }
        for v in variables {
            originate = originate.field("Variable", v);
        }
        match self.client.action(originate).await {
            Ok(answer) if answer.is_success() => {
                tracing::info!(to = %request.to.masked(), "call queued with Asterisk");
                Ok(Submission {
                    provider_sid: channel_id,
                    status: RemoteStatus::Queued,
                    check_after: Some(self.poll_interval()),
                })
            }
            Ok(answer) => {
                let message: String = answer.get("Message").unwrap_or("Originate failed").chars().take(120).collect();
                self.record(
                    &channel_id,
                    CallEvent::Result { success: false, error: Some(message.clone()), pages: Some(0) },
                )
                .await;
                self.discard(&channel_id).await;
                Err(ProviderError::Rejected(format!("Asterisk refused the call: {message}")))
            }
            Err(e) if e.maybe_sent() => {
                // Asterisk may be dialling: never originate again. The call's events, or a channel check
                // once the session is back, decide how it ended.
                tracing::warn!(error = %e, "the answer to an Originate was lost; the call is tracked, not repeated");
                let at = Timestamp::now().micros();
                if let Err(err) = self.writer.submit(WriteOp::SipUncertain { channel_id: channel_id.clone(), at }).await
                {
                    tracing::error!(error = %err, "marking an uncertain call failed");
                }
                Ok(Submission {
                    provider_sid: channel_id,
                    status: RemoteStatus::Queued,
                    check_after: Some(self.poll_interval()),
                })
            }
            Err(e) => {
                let reason = if e == AmiError::NotConnected { "not sent: not connected" } else { "not sent" };
                self.record(
                    &channel_id,
                    CallEvent::Result { success: false, error: Some(reason.into()), pages: Some(0) },
                )
                .await;
                self.discard(&channel_id).await;
                Err(unavailable(e.to_string()))
            }
        }
    }

    async fn status(&self, provider_sid: &str) -> Result<RemoteStatus, ProviderError> {
        let find = || async {
            sipcalls::find(&self.db, provider_sid)
                .await
                .map_err(|e| unavailable(format!("reading the call record failed: {e}")))?
                .ok_or_else(|| ProviderError::Rejected("unknown call".into()))
        };
        let mut call = find().await?;
        let connection = *self.client.connection().borrow();
        let missed_since = connection.since_micros.max(connection.gap_micros);
        let now = Timestamp::now().micros();
        let mut verdict = call::verdict(&call, now, missed_since);
        if verdict == Verdict::CheckChannel {
            if !connection.connected {
                // Nothing can be learnt until the session is back; the deadline still applies.
                return Ok(RemoteStatus::InProgress);
            }
            self.check_channel(provider_sid).await?;
            call = find().await?;
            verdict = call::verdict(&call, Timestamp::now().micros(), 0);
        }
        let status = match verdict {
            Verdict::Status(status) => status,
            Verdict::CheckChannel => RemoteStatus::InProgress,
        };
        if matches!(status, RemoteStatus::Delivered | RemoteStatus::Failed(_)) {
            self.discard(provider_sid).await;
        }
        Ok(status)
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.settings.poll_interval_ms)
    }

    fn needs_document(&self) -> bool {
        true
    }
}

/// The receiving side: Asterisk's callback with a received TIFF.
#[derive(Debug)]
pub struct SipInbound {
    manifest: PluginManifest,
    settings: SipSettings,
    secret: Option<String>,
    tools: Tools,
    /// Received TIFFs by provider id, removed from the shared volume once their fax is stored.
    received: std::sync::Mutex<std::collections::HashMap<String, PathBuf>>,
}

/// Builds the receiving side (`inbound.inboundSecret` is its credential file).
pub fn build_inbound(binding: &SlotBinding) -> Result<Arc<SipInbound>, PluginError> {
    let settings = settings_of(binding)?;
    let secret = super::credential("inbound", "inboundSecret", "ASTERISK_INBOUND_SECRET");
    if secret.is_none() {
        tracing::warn!("sip inbound has no inboundSecret credential: every inbound callback will be refused");
    }
    Ok(Arc::new(SipInbound {
        manifest: manifest()?,
        settings,
        secret,
        tools: tools(binding)?,
        received: std::sync::Mutex::new(std::collections::HashMap::new()),
    }))
}

/// The callback body: Faxbot's JSON (`tiff_path`, `to_number`, `from_number`, `faxstatus`, `faxpages`,
/// `uniqueid`), or the same keys form-encoded (what Asterisk's `CURL()` posts).
#[derive(Debug, Default, serde::Deserialize)]
struct InboundCallback {
    tiff_path: String,
    #[serde(default)]
    to_number: Option<String>,
    #[serde(default)]
    from_number: Option<String>,
    #[serde(default)]
    faxstatus: Option<String>,
    #[serde(default)]
    faxpages: Option<serde_json::Value>,
    #[serde(default)]
    uniqueid: Option<String>,
}

fn header<'a>(request: &'a WebhookRequest<'_>, name: &str) -> Option<&'a str> {
    request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The received file's name: only a plain file name in the inbound directory is accepted, so a callback can
/// never make the server read anything else.
fn inbound_file_name(tiff_path: &str) -> Option<&str> {
    let name = tiff_path.rsplit('/').next()?;
    let ok = !name.is_empty()
        && name.len() <= 160
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
        && (name.ends_with(".tif") || name.ends_with(".tiff"));
    ok.then_some(name)
}

/// The largest received TIFF taken from the inbound directory. A G4 fax page is 20–100 KB; at the page limit
/// this leaves a wide margin, and anything bigger is not a fax.
pub const MAX_RECEIVED_TIFF: u64 = 64 * 1024 * 1024;

/// Reads a received TIFF from the shared inbound directory, which another container (Asterisk) writes:
/// opened without following a symbolic link (one could point anywhere this process may read) and without
/// blocking (a FIFO named `x.tif` would hang the open), then required to be a regular file of at most
/// [`MAX_RECEIVED_TIFF`] bytes, read through the one descriptor that was checked. `None` when it does not
/// exist.
fn read_received(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err("the TIFF is a symbolic link".into()),
        Err(_) => return Err("the TIFF cannot be opened".into()),
    };
    let metadata = file.metadata().map_err(|_| "the TIFF cannot be read".to_string())?;
    if !metadata.is_file() {
        return Err("the TIFF is not a regular file".into());
    }
    if metadata.len() > MAX_RECEIVED_TIFF {
        return Err(format!("the TIFF is larger than {} MiB", MAX_RECEIVED_TIFF >> 20));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(MAX_RECEIVED_TIFF + 1).read_to_end(&mut bytes).map_err(|_| "the TIFF cannot be read".to_string())?;
    if bytes.len() as u64 > MAX_RECEIVED_TIFF {
        return Err(format!("the TIFF is larger than {} MiB", MAX_RECEIVED_TIFF >> 20));
    }
    Ok(Some(bytes))
}

/// A TIFF header: byte order `II` or `MM`, then 42 (classic) or 43 (BigTIFF) in that order.
fn is_tiff(bytes: &[u8]) -> bool {
    matches!(bytes.get(..4), Some(b"II*\0" | b"MM\0*" | b"II+\0" | b"MM\0+"))
}

impl SipInbound {
    fn parse(&self, request: &WebhookRequest<'_>) -> Result<InboundCallback, ProviderError> {
        let bad = |what: &str| ProviderError::Rejected(format!("invalid inbound callback: {what}"));
        let json =
            header(request, "content-type").is_some_and(|c| c.contains("json")) || request.body.first() == Some(&b'{');
        if json {
            serde_json::from_slice(request.body).map_err(|_| bad("not the documented JSON body"))
        } else {
            let mut cb = InboundCallback::default();
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(request.body).map_err(|_| bad("not a form-encoded body"))?;
            for (k, v) in pairs {
                match k.as_str() {
                    "tiff_path" => cb.tiff_path = v,
                    "to_number" => cb.to_number = Some(v),
                    "from_number" => cb.from_number = Some(v),
                    "faxstatus" => cb.faxstatus = Some(v),
                    "faxpages" => cb.faxpages = Some(serde_json::Value::String(v)),
                    "uniqueid" => cb.uniqueid = Some(v),
                    _ => {}
                }
            }
            if cb.tiff_path.is_empty() { Err(bad("tiff_path missing")) } else { Ok(cb) }
        }
    }
}

#[async_trait]
impl InboundProvider for SipInbound {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    /// The shared secret is a header: checked completely before the body is read.
    fn precheck(&self, headers: &[(String, String)]) -> Result<(), ProviderError> {
        use subtle::ConstantTimeEq;
        let Some(expected) = &self.secret else {
            return Err(ProviderError::Unauthorized("no inboundSecret configured".into()));
        };
        let given = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-internal-secret"))
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ProviderError::Unauthorized("X-Internal-Secret mismatch".into()));
        }
        Ok(())
    }

    async fn receive(&self, request: &WebhookRequest<'_>) -> Result<Vec<ReceivedFax>, ProviderError> {
        self.precheck(request.headers)?;
        let callback = self.parse(request)?;
        let name = inbound_file_name(&callback.tiff_path)
            .ok_or_else(|| ProviderError::Rejected("invalid inbound callback: tiff_path".into()))?;
        let path = Path::new(&self.settings.inbound_dir).join(name);
        let failed = callback
            .faxstatus
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("FAILED") || s.eq_ignore_ascii_case("FAILURE"));
        let received = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || read_received(&path))
                .await
                .map_err(|e| unavailable(format!("reading the TIFF failed: {e}")))?
        };
        let received = match received {
            Ok(Some(bytes)) => bytes,
            Ok(None) if failed => return Ok(Vec::new()), // a failed reception that left nothing behind
            Ok(None) => {
                return Err(ProviderError::Rejected("invalid inbound callback: the TIFF does not exist".into()));
            }
            Err(reason) => return Err(ProviderError::Rejected(format!("invalid inbound callback: {reason}"))),
        };
        if received.is_empty() && failed {
            return Ok(Vec::new());
        }
        if !is_tiff(&received) {
            return Err(ProviderError::Rejected("invalid inbound callback: the file is not a TIFF".into()));
        }
        let provider_sid = callback
            .uniqueid
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| name.trim_end_matches(".tiff").trim_end_matches(".tif").to_string());
        // Convert a private copy, never the shared path: what is converted is exactly what was checked.
        let copy = tempfile::Builder::new()
            .suffix(".tif")
            .tempfile()
            .map_err(|e| unavailable(format!("no temporary space: {e}")))?
            .into_temp_path();
        tokio::fs::write(&copy, &received).await.map_err(|e| unavailable(format!("no temporary space: {e}")))?;
        let pdf = tempfile::Builder::new()
            .suffix(".pdf")
            .tempfile()
            .map_err(|e| unavailable(format!("no temporary space: {e}")))?
            .into_temp_path();
        let turn = crate::work::turn().await.map_err(|e| unavailable(e.to_string()))?;
        let converted = pipeline::tiff_to_pdf(&self.tools, &copy, &pdf, faxbot_documents::pdf::MAX_PAGES).await;
        drop(turn);
        let (document, pages) = match converted {
            Ok(summary) => {
                let bytes =
                    tokio::fs::read(&pdf).await.map_err(|e| unavailable(format!("reading the PDF failed: {e}")))?;
                (bytes, Some(i64::from(summary.page_count())))
            }
            Err(e) => {
                // Never lose a received fax: keep the TIFF itself when it cannot be converted.
                tracing::warn!(error = %e, "converting a received fax to PDF failed; storing the TIFF as received");
                (received, None)
            }
        };
        let pages = pages.or_else(|| match &callback.faxpages {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        });
        lock(&self.received).insert(provider_sid.clone(), path);
        Ok(vec![ReceivedFax {
            provider_sid,
            from: callback.from_number.filter(|s| !s.is_empty()),
            to: callback.to_number.filter(|s| !s.is_empty()),
            pages,
            document: Some(document.into()),
        }])
    }

    async fn stored(&self, provider_sid: &str) {
        let path = lock(&self.received).remove(provider_sid);
        if let Some(path) = path
            && let Err(e) = tokio::fs::remove_file(&path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "removing a received TIFF from the inbound directory failed");
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_tiffs_are_read_only_when_they_are_regular_files_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let tiff = dir.path().join("ok.tif");
        std::fs::write(&tiff, b"II*\0rest").unwrap();
        assert_eq!(read_received(&tiff).unwrap().unwrap(), b"II*\0rest");
        assert_eq!(read_received(&dir.path().join("missing.tif")).unwrap(), None);

        let link = dir.path().join("link.tif");
        std::os::unix::fs::symlink(&tiff, &link).unwrap();
        assert_eq!(read_received(&link).unwrap_err(), "the TIFF is a symbolic link");

        let fifo = dir.path().join("pipe.tif");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert_eq!(read_received(&fifo).unwrap_err(), "the TIFF is not a regular file", "and the open did not block");

        let subdir = dir.path().join("dir.tif");
        std::fs::create_dir(&subdir).unwrap();
        assert_eq!(read_received(&subdir).unwrap_err(), "the TIFF is not a regular file");

        let big = dir.path().join("big.tif");
        std::fs::File::create(&big).unwrap().set_len(MAX_RECEIVED_TIFF + 1).unwrap();
        assert_eq!(read_received(&big).unwrap_err(), "the TIFF is larger than 64 MiB");
    }

    #[test]
    fn only_tiff_headers_are_tiffs() {
        for good in [&b"II*\0\x08\0\0\0"[..], b"MM\0*\0\0\0\x08", b"II+\0", b"MM\0+"] {
            assert!(is_tiff(good), "{good:?}");
        }
        for bad in [&b""[..], b"II*", b"%PDF-1.4", b"MM*\0", b"GIF89a"] {
            assert!(!is_tiff(bad), "{bad:?}");
        }
    }
}
