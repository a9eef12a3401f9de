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
//! Modules: [`ami`] (the manager-interface client), [`call`] (what events mean) and [`inbound`] (the
//! receiving side); sending is here.

pub mod ami;
pub mod call;
pub mod inbound;

pub use inbound::{MAX_RECEIVED_TIFF, SipInbound, build_inbound};

use super::{
    InboundProvider, OutboundProvider, PluginError, ProviderError, ReceivedFax, RemoteStatus, SendRequest, Submission,
    WebhookRequest, settings_error,
};
use crate::db::writer::{WriteOp, Writer};
use crate::db::{Db, sipcalls};
use crate::domain::{JobId, Timestamp};
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

/// A poisoned lock still holds consistent data here (every critical section is a single map operation).
pub(super) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
