//! The sending side: one AMI session per plugin instance, the Originate of each fax, the recording of the
//! AMI events about our calls, and the status checks that read those records.

use super::ami::{Action, AmiClient, AmiConfig, AmiError};
use super::call::{self, CHANNEL_PREFIX, CallEvent, CallRecord, Verdict};
use super::spool::Spool;
use super::{longest_call, manifest, settings_of, tools, unavailable};
use crate::db::writer::{WriteOp, Writer};
use crate::db::{Db, sipcalls};
use crate::domain::{JobId, Timestamp};
use crate::plugins::{OutboundProvider, PluginError, ProviderError, RemoteStatus, SendRequest, Submission};
use async_trait::async_trait;
use faxbot_contract::SlotBinding;
use faxbot_contract::plugins::{PluginManifest, SipSettings};
use std::sync::Arc;
use std::time::Duration;

/// The outbound side: one AMI session per plugin instance.
pub struct SipLine {
    manifest: PluginManifest,
    settings: SipSettings,
    client: AmiClient,
    db: Db,
    writer: Writer,
    spool: Spool,
    listener: tokio::task::JoinHandle<()>,
}

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

/// Builds the sending side for a slot (`<slot>.amiSecret` is its credential file).
pub fn build_outbound(
    binding: &SlotBinding,
    slot: &str,
    db: &Db,
    writer: &Writer,
) -> Result<Arc<SipLine>, PluginError> {
    let settings = settings_of(binding)?;
    let secret =
        crate::plugins::credential(slot, "amiSecret", "ASTERISK_AMI_SECRET").ok_or_else(|| PluginError::Settings {
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
        client,
        db: db.clone(),
        writer: writer.clone(),
        spool: Spool::new(&settings, tools),
        settings,
        listener,
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

impl SipLine {
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
        self.spool.sweep();
        let Some(document) = request.document.as_ref() else {
            return Err(ProviderError::Rejected("no document to send".into()));
        };
        // A fresh channel id per attempt: Asterisk refuses a ChannelId that is still in use.
        let channel_id = format!("{CHANNEL_PREFIX}{}-{}", request.job_id, &JobId::generate().as_str()[..8]);
        self.spool.prepare(document, &channel_id).await?;
        let now = Timestamp::now();
        let ring = Duration::from_secs(u64::from(self.settings.ring_timeout_seconds));
        let whole = longest_call(&self.settings);
        let record = CallRecord {
            channel_id: channel_id.clone(),
            created_at: now.micros(),
            deadline_at: now.plus(whole).micros(),
            ..Default::default()
        };
        if let Err(e) =
            self.writer.submit(WriteOp::SipInsert { job_id: request.job_id.to_string(), call: Box::new(record) }).await
        {
            self.spool.discard(&channel_id).await;
            return Err(unavailable(format!("recording the call failed: {e}")));
        }
        let number = format!("+{}", request.to.digits());
        let mut variables =
            vec![format!("JOBID={}", request.job_id), format!("FAXFILE={}", self.spool.asterisk_path(&channel_id))];
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
                self.spool.discard(&channel_id).await;
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
                self.spool.discard(&channel_id).await;
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
            self.spool.discard(provider_sid).await;
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
