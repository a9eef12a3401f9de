//! Faithful local fakes of the fax providers, following `shared/reference/providers.md` §5 (where the
//! older Faxbot and the real provider differ, the provider wins).
//!
//! A fake is a real HTTP server on loopback with state: fax objects that move through the provider's status
//! progression on a timer, webhooks posted to the callback URL with the provider's own authentication, and
//! error injection (401, 422, 429 with and without Retry-After, 5xx, timeouts, transmission failures) so
//! every branch of a provider plugin can be exercised without the internet. The HTTP fakes also serve HTTPS
//! ([`tls`]) for API servers that run in pods and call them as they would call the real provider. Tests start one in-process;
//! developers run the binaries (`faxbot-fake-phaxio`). Modules: [`phaxio`] (API v2.1), [`sinch`] (Fax API v3),
//! [`signalwire`] (LaML fax API), [`telnyx`] (Programmable Fax, API v2) and [`ami`] (Asterisk's manager interface,
//! a TCP server).

pub mod ami;
pub mod phaxio;
pub mod signalwire;
pub mod sinch;
pub mod telnyx;
pub mod tls;

use std::time::Duration;

/// A failure to inject, consumed in order by the next API requests (or webhooks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Injection {
    /// Answer this HTTP status in the provider's error shape (401, 422, 429, 500, 503…), optionally with Retry-After
    /// in seconds. Nothing is created.
    Status {
        /// HTTP status.
        code: u16,
        /// `Retry-After` seconds, if any.
        retry_after: Option<u64>,
    },
    /// Accept the request (a `POST /faxes` creates its fax) but stall this long before answering: the client
    /// times out while the fax exists, the ambiguous case a plugin must not turn into a second fax.
    Stall(Duration),
    /// Authenticate the next webhook wrongly (Phaxio: a signature from the wrong token; Sinch: wrong Basic
    /// credentials).
    WrongSignature,
    /// Do not send the next webhook.
    DropWebhook,
}

impl Injection {
    fn is_webhook(&self) -> bool {
        matches!(self, Injection::WrongSignature | Injection::DropWebhook)
    }
}

/// Takes the first queued injection of one kind: webhook injections for a webhook, the others for a request.
pub(crate) fn take_injection(queue: &mut std::collections::VecDeque<Injection>, webhook: bool) -> Option<Injection> {
    let pos = queue.iter().position(|i| i.is_webhook() == webhook)?;
    queue.remove(pos)
}

/// Adds `Retry-After: secs` to an injected error response.
pub(crate) fn set_retry_after(response: &mut axum::response::Response, retry_after: Option<u64>) {
    if let Some(secs) = retry_after
        && let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
}

/// Whether `number` is E.164 with a leading `+`, as both providers require.
pub(crate) fn valid_e164(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or("");
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// Pages of a PDF by counting page objects (good enough for a fake; documents come from our own tests).
pub(crate) fn pages(pdf: &[u8]) -> i64 {
    let needle = b"/Type /Page";
    let n = pdf.windows(needle.len() + 1).filter(|w| &w[..needle.len()] == needle && w[needle.len()] != b's').count();
    i64::try_from(n.max(1)).unwrap_or(i64::MAX)
}
