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
//! Modules: [`ami`] (the manager-interface client), [`call`] (what events mean), [`outbound`] (sending),
//! [`spool`] (the fax images Asterisk reads) and [`inbound`] (the receiving side).

pub mod ami;
pub mod call;
pub mod inbound;
pub mod outbound;
mod spool;

pub use inbound::{MAX_RECEIVED_TIFF, SipInbound, build_inbound};
pub use outbound::{SipLine, build_outbound};

use super::{PluginError, ProviderError, settings_error};
use faxbot_contract::SlotBinding;
use faxbot_contract::plugins::{self as manifests, PluginManifest, SipSettings};
use faxbot_documents::fax::Tools;
use std::time::Duration;

/// Slack on top of ring and fax timeouts before a silent call is given up.
const DEADLINE_SLACK: Duration = Duration::from_secs(30);

/// The longest a call can take: ring, fax, and slack; after it a silent call is given up.
fn longest_call(s: &SipSettings) -> Duration {
    Duration::from_secs(u64::from(s.ring_timeout_seconds) + u64::from(s.fax_timeout_seconds)) + DEADLINE_SLACK
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

fn unavailable(message: impl Into<String>) -> ProviderError {
    ProviderError::Unavailable { message: message.into(), retry_after: None }
}

/// A poisoned lock still holds consistent data here (every critical section is a single map operation).
pub(super) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
