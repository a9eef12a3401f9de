//! What a sidecar plugin's answers mean: pure functions from (HTTP status, `Retry-After`, body) to the
//! server's provider results, and back for [`super::host`]. Table-tested, no I/O.

use std::time::Duration;

use faxbot_contract::phi;
use faxbot_contract::sidecar::{ErrorBody, ErrorDetail, ErrorKind, FaxAnswer, FaxState, WebhookAnswer};
use serde::de::DeserializeOwned;

use crate::plugins::{ProviderError, RemoteStatus, Submission};

/// Longest message from a sidecar that is kept (errors become job errors, which people read).
const MESSAGE_LIMIT: usize = 300;

/// A 2xx answer's body as `T`; any other answer as the provider error it stands for.
pub fn answer<T: DeserializeOwned>(status: u16, retry_after: Option<&str>, body: &[u8]) -> Result<T, ProviderError> {
    if (200..300).contains(&status) {
        serde_json::from_slice(body).map_err(|_| ProviderError::Unavailable {
            message: "the sidecar plugin's answer does not follow the protocol".into(),
            retry_after: None,
        })
    } else {
        Err(error(status, retry_after, body, false))
    }
}

/// A webhook's answer: as [`answer`], except that `unauthenticated` means the callback was not authentic.
pub fn webhook_answer(status: u16, retry_after: Option<&str>, body: &[u8]) -> Result<WebhookAnswer, ProviderError> {
    if (200..300).contains(&status) {
        answer(status, retry_after, body)
    } else {
        Err(error(status, retry_after, body, true))
    }
}

/// An answer that carries nothing on success (`cancel`).
pub fn no_content(status: u16, retry_after: Option<&str>, body: &[u8]) -> Result<(), ProviderError> {
    if (200..300).contains(&status) { Ok(()) } else { Err(error(status, retry_after, body, false)) }
}

/// The provider error for a non-2xx answer: by the error body's `kind` when there is one, else by status.
pub fn error(status: u16, retry_after: Option<&str>, body: &[u8], webhook: bool) -> ProviderError {
    let detail = serde_json::from_slice::<ErrorBody>(body).ok().map(|b| b.error);
    let kind = detail.as_ref().map_or_else(|| ErrorKind::from_status(status), |d| d.kind);
    let message = detail
        .as_ref()
        .map(|d| clean(&d.message))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("the sidecar plugin answered {status}"));
    let retry_after = detail
        .as_ref()
        .and_then(|d| d.retry_after_ms)
        .map(Duration::from_millis)
        .or_else(|| retry_after.and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs));
    match kind {
        ErrorKind::Unauthenticated if webhook => ProviderError::Unauthorized(message),
        ErrorKind::Unauthenticated => {
            ProviderError::Unauthorized(format!("the sidecar plugin refused the server's plugin token: {message}"))
        }
        ErrorKind::Credentials => ProviderError::Unauthorized(message),
        ErrorKind::Rejected | ErrorKind::BadRequest | ErrorKind::NotFound => ProviderError::Rejected(message),
        ErrorKind::RateLimited => ProviderError::RateLimited { message, retry_after },
        ErrorKind::Unavailable => ProviderError::Unavailable { message, retry_after },
        ErrorKind::Unsupported => ProviderError::Unsupported,
    }
}

/// A sidecar's text as the server keeps it: digit runs masked, control characters dropped, cut short.
fn clean(message: &str) -> String {
    let text: String = message.chars().filter(|c| !c.is_control()).take(MESSAGE_LIMIT).collect();
    phi::mask_numbers(text.trim(), phi::LOG_MIN_DIGITS)
}

/// The server's view of a fax state.
pub fn remote_status(answer: &FaxAnswer) -> RemoteStatus {
    match answer.status {
        FaxState::Queued => RemoteStatus::Queued,
        FaxState::InProgress => RemoteStatus::InProgress,
        FaxState::Delivered => RemoteStatus::Delivered,
        FaxState::Failed => RemoteStatus::Failed(
            answer
                .error
                .as_deref()
                .map(clean)
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "transmission failed".into()),
        ),
    }
}

/// A send answer as a submission; an answer without a usable provider id breaks the protocol.
pub fn submission(answer: FaxAnswer) -> Result<Submission, ProviderError> {
    let id = answer.provider_id.trim();
    if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Err(ProviderError::Transport("the sidecar plugin accepted the fax without a usable id".into()));
    }
    Ok(Submission {
        provider_sid: id.to_string(),
        status: remote_status(&answer),
        check_after: answer.check_after_ms.map(|ms| Duration::from_millis(ms.min(86_400_000))),
    })
}

/// A provider id as one path segment (percent-encoded).
pub fn path_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>().replace('+', "%20")
}

/// The protocol's error for a provider error (the [`super::host`] direction). On `webhook`, refused
/// credentials mean the callback was not authentic.
pub fn detail(e: &ProviderError, webhook: bool) -> ErrorDetail {
    let retry_after_ms = e.retry_after().map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let (kind, message) = match e {
        ProviderError::Unauthorized(m) if webhook => (ErrorKind::Unauthenticated, m.clone()),
        ProviderError::Unauthorized(m) => (ErrorKind::Credentials, m.clone()),
        ProviderError::Rejected(m) => (ErrorKind::Rejected, m.clone()),
        ProviderError::RateLimited { message, .. } => (ErrorKind::RateLimited, message.clone()),
        ProviderError::Unavailable { message, .. } => (ErrorKind::Unavailable, message.clone()),
        ProviderError::Transport(m) => (ErrorKind::Unavailable, m.clone()),
        ProviderError::Unsupported => (ErrorKind::Unsupported, "not supported by this plugin".into()),
    };
    ErrorDetail { kind, message: clean(&message), retry_after_ms }
}

/// The protocol's answer for a status.
pub fn fax_answer(provider_id: &str, status: &RemoteStatus, check_after: Option<Duration>) -> FaxAnswer {
    let (state, error) = match status {
        RemoteStatus::Queued => (FaxState::Queued, None),
        RemoteStatus::InProgress => (FaxState::InProgress, None),
        RemoteStatus::Delivered => (FaxState::Delivered, None),
        RemoteStatus::Failed(reason) => (FaxState::Failed, Some(clean(reason))),
    };
    FaxAnswer {
        provider_id: provider_id.to_string(),
        status: state,
        error,
        check_after_ms: check_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: &str, message: &str, retry: Option<u64>) -> Vec<u8> {
        serde_json::json!({"error": {"kind": kind, "message": message, "retryAfterMs": retry}}).to_string().into_bytes()
    }

    /// Status, `Retry-After`, body, on the webhook route, what it means.
    type Case = (u16, Option<&'static str>, Vec<u8>, bool, ProviderError);

    #[test]
    fn errors_mean_what_their_kind_says() {
        let table: Vec<Case> = vec![
            (422, None, body("rejected", "bad number", None), false, ProviderError::Rejected("bad number".into())),
            (
                429,
                None,
                body("rate_limited", "slow down", Some(1500)),
                false,
                ProviderError::RateLimited {
                    message: "slow down".into(),
                    retry_after: Some(Duration::from_millis(1500)),
                },
            ),
            (
                503,
                Some("7"),
                b"gateway down".to_vec(),
                false,
                ProviderError::Unavailable {
                    message: "the sidecar plugin answered 503".into(),
                    retry_after: Some(Duration::from_secs(7)),
                },
            ),
            (
                502,
                None,
                body("credentials", "key refused", None),
                false,
                ProviderError::Unauthorized("key refused".into()),
            ),
            (401, None, body("unauthenticated", "forged", None), true, ProviderError::Unauthorized("forged".into())),
            (501, None, body("unsupported", "no", None), false, ProviderError::Unsupported),
            (404, None, Vec::new(), false, ProviderError::Rejected("the sidecar plugin answered 404".into())),
            // The body's kind wins over the status.
            (500, None, body("rejected", "x", None), false, ProviderError::Rejected("x".into())),
            // Numbers in messages are masked.
            (
                422,
                None,
                body("rejected", "cannot reach +1 555 555 0100", None),
                false,
                ProviderError::Rejected("cannot reach …0100".into()),
            ),
        ];
        for (status, retry_after, b, webhook, expected) in table {
            assert_eq!(error(status, retry_after, &b, webhook), expected, "{status} {}", String::from_utf8_lossy(&b));
        }
        assert!(matches!(
            error(401, None, &body("unauthenticated", "token", None), false),
            ProviderError::Unauthorized(m) if m.contains("plugin token")
        ));
    }

    #[test]
    fn answers_become_submissions_and_statuses() {
        let ok: FaxAnswer =
            answer(200, None, br#"{"providerId":"sim-1","status":"in_progress","checkAfterMs":2000}"#).unwrap();
        assert_eq!(
            submission(ok).unwrap(),
            Submission {
                provider_sid: "sim-1".into(),
                status: RemoteStatus::InProgress,
                check_after: Some(Duration::from_secs(2))
            }
        );
        let failed: FaxAnswer = answer(200, None, br#"{"providerId":"sim-2","status":"failed"}"#).unwrap();
        assert_eq!(remote_status(&failed), RemoteStatus::Failed("transmission failed".into()));
        assert!(submission(FaxAnswer { provider_id: " ".into(), ..failed.clone() }).is_err());
        assert!(matches!(
            answer::<FaxAnswer>(200, None, br#"{"providerId":"x","status":"lost"}"#),
            Err(ProviderError::Unavailable { .. })
        ));
    }

    #[test]
    fn provider_errors_round_trip_through_the_protocol() {
        let errors = [
            ProviderError::Rejected("no".into()),
            ProviderError::RateLimited { message: "r".into(), retry_after: Some(Duration::from_millis(250)) },
            ProviderError::Unavailable { message: "u".into(), retry_after: None },
            ProviderError::Unauthorized("c".into()),
            ProviderError::Unsupported,
        ];
        for e in errors {
            let d = detail(&e, false);
            let b = serde_json::to_vec(&ErrorBody { error: d.clone() }).unwrap();
            assert_eq!(error(d.kind.status(), None, &b, false), e);
        }
        assert_eq!(detail(&ProviderError::Unauthorized("sig".into()), true).kind, ErrorKind::Unauthenticated);
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(path_segment("a/b c?d"), "a%2Fb%20c%3Fd");
    }
}
