//! The simulated provider: an in-memory fax provider that follows the conformance numbers
//! ([`crate::scenario`]), so a plugin built on it passes `faxbot-plugin-conformance` before it calls any real
//! provider. Replace its calls with your provider's, one method at a time.

use std::collections::HashMap;
use std::sync::Mutex;

use faxbot_contract::sidecar::scenario::{self, Outcome};
use hmac::{Hmac, Mac};

use crate::{ErrorKind, FaxAnswer, FaxState, PluginError, SendRequest, WebhookRequest};

/// The header of the simulated provider's callback signatures.
pub const SIGNATURE_HEADER: &str = "x-sim-signature";

/// `hex(HMAC-SHA256(secret, body))`: the simulated provider's callback signature.
pub fn sign(secret: &str, body: &[u8]) -> String {
    match <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC accepts keys of any length.
        Err(_) => String::new(),
    }
}

#[derive(Clone)]
struct Fax {
    outcome: Outcome,
    status: FaxState,
    error: Option<String>,
}

#[derive(Default)]
struct Book {
    faxes: HashMap<String, Fax>,
    by_key: HashMap<String, String>,
}

/// The simulated provider.
pub struct SimulatedProvider {
    webhook_secret: Option<String>,
    book: Mutex<Book>,
}

fn answer(id: &str, fax: &Fax, check_after_ms: Option<u64>) -> FaxAnswer {
    FaxAnswer { provider_id: id.to_string(), status: fax.status, error: fax.error.clone(), check_after_ms }
}

fn e164(to: &str) -> bool {
    let digits = to.strip_prefix('+').unwrap_or("");
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

impl SimulatedProvider {
    /// A provider whose callbacks are signed with `webhook_secret` (none: every callback is refused).
    pub fn new(webhook_secret: Option<String>) -> Self {
        SimulatedProvider {
            webhook_secret: webhook_secret.filter(|s| !s.is_empty()),
            book: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> Result<std::sync::MutexGuard<'_, Book>, PluginError> {
        self.book.lock().map_err(|_| PluginError::new(ErrorKind::Unavailable, "simulated provider state lost"))
    }

    /// Submits: by the last four digits, refused (`0102`), busy (`0103`), or accepted in progress.
    pub fn send(&self, request: &SendRequest) -> Result<FaxAnswer, PluginError> {
        if !e164(&request.to) {
            return Err(PluginError::new(ErrorKind::Rejected, "invalid destination"));
        }
        let outcome = scenario::outcome(&request.to);
        match outcome {
            Outcome::Rejected => {
                return Err(PluginError::new(ErrorKind::Rejected, "the provider refused the destination"));
            }
            Outcome::Busy => {
                return Err(
                    PluginError::new(ErrorKind::Unavailable, "all lines busy, try again later").retry_after(1000)
                );
            }
            _ => {}
        }
        let mut book = self.book()?;
        if let Some(id) = book.by_key.get(&request.idempotency_key).cloned()
            && let Some(fax) = book.faxes.get(&id)
        {
            return Ok(answer(&id, fax, None));
        }
        let id = format!("sim-{}", book.faxes.len() + 1);
        let fax = Fax { outcome, status: FaxState::InProgress, error: None };
        let first = answer(&id, &fax, Some(0));
        book.faxes.insert(id.clone(), fax);
        book.by_key.insert(request.idempotency_key.clone(), id);
        Ok(first)
    }

    /// The fax's state: final from the first read on.
    pub fn status(&self, id: &str) -> Result<FaxAnswer, PluginError> {
        let mut book = self.book()?;
        let fax = book.faxes.get_mut(id).ok_or_else(|| PluginError::new(ErrorKind::NotFound, "no such fax"))?;
        if fax.status == FaxState::InProgress {
            if fax.outcome == Outcome::Fails {
                fax.status = FaxState::Failed;
                fax.error = Some("no answer from the receiving fax machine".into());
            } else {
                fax.status = FaxState::Delivered;
            }
        }
        Ok(answer(id, fax, None))
    }

    /// Stops an unfinished fax (it fails as `cancelled`); a finished one stays as it is.
    pub fn cancel(&self, id: &str) -> Result<(), PluginError> {
        let mut book = self.book()?;
        let fax = book.faxes.get_mut(id).ok_or_else(|| PluginError::new(ErrorKind::NotFound, "no such fax"))?;
        if fax.status == FaxState::InProgress {
            fax.status = FaxState::Failed;
            fax.error = Some("cancelled".into());
        }
        Ok(())
    }

    /// Verifies `X-Sim-Signature` over the body, then reads `{"providerId","status","error"?}`.
    pub fn webhook(&self, request: &WebhookRequest, body: &[u8]) -> Result<Vec<FaxAnswer>, PluginError> {
        let refused = || PluginError::new(ErrorKind::Unauthenticated, "callback signature missing or wrong");
        let secret = self.webhook_secret.as_deref().ok_or_else(refused)?;
        let presented = request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(SIGNATURE_HEADER))
            .map(|(_, v)| v.as_str())
            .ok_or_else(refused)?;
        let expected = sign(secret, body);
        use subtle::ConstantTimeEq;
        if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(refused());
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Callback {
            provider_id: String,
            status: FaxState,
            #[serde(default)]
            error: Option<String>,
        }
        let callback: Callback = serde_json::from_slice(body).map_err(|_| {
            PluginError::new(ErrorKind::BadRequest, "the callback is not a simulated provider callback")
        })?;
        let mut book = self.book()?;
        if let Some(fax) = book.faxes.get_mut(&callback.provider_id) {
            fax.status = callback.status;
            fax.error = callback.error.clone();
        }
        Ok(vec![FaxAnswer {
            provider_id: callback.provider_id,
            status: callback.status,
            error: callback.error,
            check_after_ms: None,
        }])
    }
}
