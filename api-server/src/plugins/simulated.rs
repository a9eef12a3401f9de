//! The built-in simulated fax line (`test`).
//!
//! It behaves like a remote provider with idempotent submissions: it keeps its own durable records (see
//! [`crate::db::simline`]), answers a repeated submission with the original fax, and moves each fax
//! `in_progress → SUCCESS|FAILED` after a configurable latency. Failure injection is keyed on the
//! destination's last digits, so tests choose a branch by choosing a number.

use super::{
    InboundProvider, OutboundProvider, ProviderError, ReceivedFax, RemoteStatus, SendRequest, Submission,
    WebhookRequest,
};
use crate::db::Db;
use crate::db::simline::{self, SimFax};
use crate::db::writer::{WriteOp, WriteReply, Writer};
use crate::domain::Timestamp;
use async_trait::async_trait;
use faxbot_contract::plugins::{PluginManifest, SIMULATED_LINE, SimulatedLineSettings};
use std::time::Duration;

/// The simulated line.
#[derive(Debug)]
pub struct SimulatedLine {
    settings: SimulatedLineSettings,
    manifest: PluginManifest,
    db: Db,
    writer: Writer,
}

impl SimulatedLine {
    /// A line with the given settings, keeping its records in `db`.
    pub fn new(settings: SimulatedLineSettings, db: Db, writer: Writer) -> Self {
        let manifest = faxbot_contract::manifest(SIMULATED_LINE).unwrap_or_else(unreachable_manifest);
        SimulatedLine { settings, manifest, db, writer }
    }
}

/// The simulated line in the inbound slot. It has no provider that could call back, so it takes no webhooks;
/// faxes "arrive" through `POST /admin/inbound/simulate`, which stores them like any received fax.
#[derive(Debug)]
pub struct SimulatedInbound {
    manifest: PluginManifest,
}

impl SimulatedInbound {
    /// The simulated receiver (settings only matter for sending).
    pub fn new(_settings: SimulatedLineSettings) -> Self {
        SimulatedInbound { manifest: faxbot_contract::manifest(SIMULATED_LINE).unwrap_or_else(unreachable_manifest) }
    }
}

#[async_trait]
impl InboundProvider for SimulatedInbound {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    async fn receive(&self, _request: &WebhookRequest<'_>) -> Result<Vec<ReceivedFax>, ProviderError> {
        Err(ProviderError::Unsupported)
    }
}

fn unreachable_manifest() -> PluginManifest {
    // The contract crate always lists the simulated line; this keeps the constructor infallible.
    PluginManifest {
        id: SIMULATED_LINE.into(),
        name: SIMULATED_LINE.into(),
        version: String::new(),
        description: String::new(),
        categories: vec![],
        capabilities: vec![],
        hipaa_compliant: true,
        settings_schema: serde_json::Value::Null,
        credentials: vec![],
    }
}

/// Reads the completion time and outcome from an id made by [`SimulatedLine::send`].
fn parse_sid(sid: &str) -> Option<(Timestamp, bool)> {
    let mut parts = sid.strip_prefix("sim_")?.split('_');
    let (_id, micros, outcome) = (parts.next()?, parts.next()?, parts.next()?);
    let complete_at = Timestamp::from_micros(micros.parse().ok()?);
    match outcome {
        "S" => Some((complete_at, true)),
        "F" => Some((complete_at, false)),
        _ => None,
    }
}

fn ends_with(digits: &str, suffix: &Option<String>) -> bool {
    suffix.as_deref().is_some_and(|s| digits.ends_with(s))
}

fn store_err(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unavailable { message: format!("simulated line storage error: {e}"), retry_after: None }
}

#[async_trait]
impl OutboundProvider for SimulatedLine {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    async fn send(&self, request: &SendRequest<'_>) -> Result<Submission, ProviderError> {
        let digits = request.to.digits();
        if ends_with(digits, &self.settings.reject_suffix) {
            return Err(ProviderError::Rejected("destination refused by the simulated line".into()));
        }
        if ends_with(digits, &self.settings.busy_suffix) {
            let so_far = simline::busy_count(&self.db, request.idempotency_key).await.map_err(store_err)?;
            if so_far < i64::from(self.settings.busy_attempts) {
                self.writer
                    .submit(WriteOp::SimBusy { key: request.idempotency_key.to_string() })
                    .await
                    .map_err(store_err)?;
                return Err(ProviderError::Unavailable {
                    message: "line busy (simulated)".into(),
                    retry_after: Some(Duration::from_millis(self.settings.busy_retry_after_ms)),
                });
            }
        }
        let now = Timestamp::now();
        let failed = ends_with(digits, &self.settings.fail_suffix);
        let complete_at = now.plus(Duration::from_millis(self.settings.delivery_latency_ms));
        let fax = SimFax {
            // The id carries the completion time and outcome, so a status check needs no lookup.
            provider_sid: format!(
                "sim_{}_{}_{}",
                crate::domain::JobId::generate(),
                complete_at.micros(),
                if failed { 'F' } else { 'S' }
            ),
            complete_at,
            outcome: if failed { "FAILED".into() } else { "SUCCESS".into() },
            error: failed.then(|| self.settings.fail_error.clone()),
        };
        let op = WriteOp::SimSubmit {
            key: request.idempotency_key.to_string(),
            job_id: request.job_id.to_string(),
            fax,
            now,
        };
        match self.writer.submit(op).await.map_err(store_err)? {
            WriteReply::Sim(stored) => {
                let remaining = stored.complete_at.micros().saturating_sub(Timestamp::now().micros()).max(0);
                Ok(Submission {
                    provider_sid: stored.provider_sid,
                    status: RemoteStatus::InProgress,
                    check_after: Some(Duration::from_micros(u64::try_from(remaining).unwrap_or(0))),
                })
            }
            other => Err(store_err(format!("unexpected reply {other:?}"))),
        }
    }

    async fn status(&self, provider_sid: &str) -> Result<RemoteStatus, ProviderError> {
        if let Some((complete_at, succeeded)) = parse_sid(provider_sid) {
            if Timestamp::now() < complete_at {
                return Ok(RemoteStatus::InProgress);
            }
            if succeeded {
                return Ok(RemoteStatus::Delivered);
            }
        }
        let Some(fax) = simline::find(&self.db, provider_sid).await.map_err(store_err)? else {
            return Err(ProviderError::Rejected("unknown fax id".into()));
        };
        if Timestamp::now() < fax.complete_at {
            return Ok(RemoteStatus::InProgress);
        }
        Ok(match fax.outcome.as_str() {
            "SUCCESS" => RemoteStatus::Delivered,
            _ => RemoteStatus::Failed(fax.error.unwrap_or_else(|| "transmission failed".into())),
        })
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.settings.poll_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_carry_completion_and_outcome() {
        assert_eq!(
            parse_sid("sim_abc_1700000000000000_S"),
            Some((Timestamp::from_micros(1_700_000_000_000_000), true))
        );
        assert_eq!(parse_sid("sim_abc_5_F"), Some((Timestamp::from_micros(5), false)));
        for bad in ["sim_abc", "sim_abc_x_S", "sim_abc_5_X", "other_abc_5_S"] {
            assert_eq!(parse_sid(bad), None, "{bad}");
        }
    }

    #[test]
    fn suffixes_match_digits_only() {
        assert!(ends_with("15557770000", &Some("0000".into())));
        assert!(!ends_with("15557770001", &Some("0000".into())));
        assert!(!ends_with("15557770000", &None));
    }
}
