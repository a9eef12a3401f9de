//! What a call's recorded events mean for its fax: pure functions, so every branch is unit-tested.
//!
//! A call is recorded before it is originated (see [`crate::db::sipcalls`]); AMI events then fill in the
//! answer, the fax result and the hangup. Every replica connected to Asterisk records the events it sees, so
//! any replica's status check reads the same row. The rules below make sure a call always reaches a final
//! state — unanswered, busy, hung up without a result, or silent past its deadline — instead of staying in
//! progress forever as the older implementation's did.

use super::ami::Message;
use crate::plugins::RemoteStatus;

/// Prefix of every channel id this plugin forces with `ChannelId`; events of other channels are not ours.
pub const CHANNEL_PREFIX: &str = "faxbot-";

/// How long a hangup may precede the fax result before the result counts as missing. The hangup handler
/// raises the result before the channel is destroyed, so on one connection the order is fixed; the grace
/// only covers replicas recording the two events through different connections.
pub const RESULT_GRACE_MICROS: i64 = 2_000_000;

pub use crate::db::sipcalls::{CallEvent, CallRecord};

/// Interprets an event: `(channel id, what happened)` when it concerns one of our calls.
pub fn interpret(event: &Message) -> Option<(String, CallEvent)> {
    let name = event.event()?;
    let channel = event.get("Uniqueid").filter(|u| u.starts_with(CHANNEL_PREFIX))?.to_string();
    let parsed = if name.eq_ignore_ascii_case("OriginateResponse") {
        if event.get("Response").is_some_and(|r| r.eq_ignore_ascii_case("success")) {
            CallEvent::Answered
        } else {
            CallEvent::Result { success: false, error: Some(unanswered_reason(event.get("Reason"))), pages: Some(0) }
        }
    } else if name.eq_ignore_ascii_case("UserEvent") {
        if !event.get("UserEvent").is_some_and(|u| u.eq_ignore_ascii_case("FaxResult")) {
            return None;
        }
        let status = event.get("Status").unwrap_or_default();
        // res_fax sets FAILED although its docs say FAILURE; SUCCESS is the only success.
        let success = status.eq_ignore_ascii_case("SUCCESS");
        let pages = event.get("Pages").and_then(|p| p.trim().parse().ok());
        let error = (!success).then(|| {
            let why = event.get("Error").map(str::trim).filter(|e| !e.is_empty()).unwrap_or("no reason given");
            format!("fax transmission failed: {}", clip(why))
        });
        CallEvent::Result { success, error, pages }
    } else if name.eq_ignore_ascii_case("Hangup") {
        let cause = event.get("Cause-txt").or(event.get("Cause")).map(clip);
        CallEvent::Ended { cause }
    } else {
        return None;
    };
    Some((channel, parsed))
}

/// The job error for an Originate that was not answered, from `Reason` (the last control frame:
/// include/asterisk/frame.h).
pub fn unanswered_reason(reason: Option<&str>) -> String {
    match reason.map(str::trim) {
        Some("5") => "line busy".into(),
        Some("8") => "congestion: the trunk or the network refused the call".into(),
        Some("3") => "no answer before the ring timeout".into(),
        Some("1") => "the far end hung up before answering".into(),
        Some("0") | None => "the call could not be placed (trunk unavailable or no such channel)".into(),
        Some(other) => format!("the call was not answered (reason {})", clip(other)),
    }
}

/// What a status check should answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A final (or in-progress) status.
    Status(RemoteStatus),
    /// Events may have been missed (a reconnect, a gap, or an uncertain Originate): ask Asterisk whether the
    /// channel still exists before answering.
    CheckChannel,
}

/// Decides a call's status from its record. `missed_since` is when events may last have been missed by this
/// process (its current AMI login, or a dropped-event gap); a call older than that is checked with Asterisk.
pub fn verdict(call: &CallRecord, now: i64, missed_since: i64) -> Verdict {
    if let Some(outcome) = &call.outcome {
        return Verdict::Status(if outcome == "success" {
            RemoteStatus::Delivered
        } else {
            RemoteStatus::Failed(call.error.clone().unwrap_or_else(|| "fax transmission failed".into()))
        });
    }
    if let Some(ended) = call.ended_at {
        if now - ended >= RESULT_GRACE_MICROS {
            // A Hangup event always carries a cause; no cause means the channel was found gone by a check,
            // after events were missed.
            let what = match call.hangup_cause.as_deref() {
                Some(cause) => {
                    format!(
                        "the call ended without a fax result (hangup cause: {cause}); the far end may have hung up mid-fax"
                    )
                }
                None => "the call ended or never started while the connection to Asterisk was interrupted; \
                         whether the fax went through is unknown"
                    .to_string(),
            };
            return Verdict::Status(RemoteStatus::Failed(what));
        }
        return Verdict::Status(RemoteStatus::InProgress);
    }
    if now >= call.deadline_at {
        return Verdict::Status(RemoteStatus::Failed(
            "no fax result from Asterisk before the call deadline (ringTimeoutSeconds + faxTimeoutSeconds); \
             whether the fax went through is unknown"
                .into(),
        ));
    }
    if call.uncertain || call.created_at < missed_since {
        return Verdict::CheckChannel;
    }
    Verdict::Status(if call.answered_at.is_some() { RemoteStatus::InProgress } else { RemoteStatus::Queued })
}

fn clip(s: &str) -> String {
    // Error texts are copied into job errors; keep them short and on one line.
    s.chars().filter(|c| !c.is_control()).take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(fields: &[(&str, &str)]) -> Message {
        Message::from_fields(fields.iter().copied())
    }

    #[test]
    fn events_of_our_channels_are_interpreted() {
        let answered =
            ev(&[("Event", "OriginateResponse"), ("Response", "Success"), ("Reason", "4"), ("Uniqueid", "faxbot-1")]);
        assert_eq!(interpret(&answered), Some(("faxbot-1".into(), CallEvent::Answered)));
        for (reason, text) in
            [("5", "line busy"), ("3", "no answer"), ("8", "congestion"), ("0", "could not be placed")]
        {
            let failed = ev(&[
                ("Event", "OriginateResponse"),
                ("Response", "Failure"),
                ("Reason", reason),
                ("Uniqueid", "faxbot-2"),
            ]);
            let Some((_, CallEvent::Result { success: false, error: Some(e), .. })) = interpret(&failed) else {
                panic!("{reason}")
            };
            assert!(e.contains(text), "{reason}: {e}");
        }
        let ok = ev(&[
            ("Event", "UserEvent"),
            ("UserEvent", "FaxResult"),
            ("Uniqueid", "faxbot-3"),
            ("Status", "SUCCESS"),
            ("Error", ""),
            ("Pages", "5"),
        ]);
        assert_eq!(interpret(&ok).unwrap().1, CallEvent::Result { success: true, error: None, pages: Some(5) });
        for status in ["FAILED", "FAILURE"] {
            let bad = ev(&[
                ("Event", "UserEvent"),
                ("UserEvent", "FaxResult"),
                ("Uniqueid", "faxbot-3"),
                ("Status", status),
                ("Error", "T38_NEG_ERROR"),
                ("Pages", "0"),
            ]);
            let CallEvent::Result { success, error, .. } = interpret(&bad).unwrap().1 else { panic!() };
            assert!(!success);
            assert_eq!(error.as_deref(), Some("fax transmission failed: T38_NEG_ERROR"));
        }
        let hangup =
            ev(&[("Event", "Hangup"), ("Uniqueid", "faxbot-4"), ("Cause", "16"), ("Cause-txt", "Normal Clearing")]);
        assert_eq!(interpret(&hangup).unwrap().1, CallEvent::Ended { cause: Some("Normal Clearing".into()) });
        // Not ours, or not relevant.
        assert_eq!(interpret(&ev(&[("Event", "Hangup"), ("Uniqueid", "1700000000.12")])), None);
        assert_eq!(interpret(&ev(&[("Event", "UserEvent"), ("UserEvent", "Other"), ("Uniqueid", "faxbot-5")])), None);
        assert_eq!(interpret(&ev(&[("Event", "VarSet"), ("Uniqueid", "faxbot-5")])), None);
        assert_eq!(interpret(&ev(&[("Response", "Success"), ("Uniqueid", "faxbot-5")])), None);
    }

    fn call() -> CallRecord {
        CallRecord { channel_id: "faxbot-x".into(), created_at: 100, deadline_at: 10_000_000, ..Default::default() }
    }

    #[test]
    fn results_are_final() {
        let mut c = call();
        c.outcome = Some("success".into());
        assert_eq!(verdict(&c, 200, 0), Verdict::Status(RemoteStatus::Delivered));
        c.outcome = Some("failed".into());
        c.error = Some("line busy".into());
        assert_eq!(verdict(&c, 200, 0), Verdict::Status(RemoteStatus::Failed("line busy".into())));
        // A result wins over everything else, even past the deadline or after a reconnect.
        assert_eq!(verdict(&c, 99_000_000, 99_000_000), Verdict::Status(RemoteStatus::Failed("line busy".into())));
    }

    #[test]
    fn a_hangup_without_a_result_fails_after_the_grace() {
        let mut c = call();
        c.answered_at = Some(150);
        c.ended_at = Some(1_000);
        c.hangup_cause = Some("Normal Clearing".into());
        assert_eq!(verdict(&c, 1_000 + RESULT_GRACE_MICROS - 1, 0), Verdict::Status(RemoteStatus::InProgress));
        let Verdict::Status(RemoteStatus::Failed(e)) = verdict(&c, 1_000 + RESULT_GRACE_MICROS, 0) else { panic!() };
        assert!(e.contains("without a fax result") && e.contains("Normal Clearing"), "{e}");
    }

    #[test]
    fn silence_is_given_up_at_the_deadline() {
        let c = call();
        assert_eq!(verdict(&c, 200, 0), Verdict::Status(RemoteStatus::Queued));
        let Verdict::Status(RemoteStatus::Failed(e)) = verdict(&c, c.deadline_at, 0) else { panic!() };
        assert!(e.contains("deadline"), "{e}");
    }

    #[test]
    fn possibly_missed_events_ask_asterisk() {
        let mut c = call();
        // Logged in again after the call started: its events may be lost.
        assert_eq!(verdict(&c, 200, 150), Verdict::CheckChannel);
        assert_eq!(verdict(&c, 200, 50), Verdict::Status(RemoteStatus::Queued));
        c.uncertain = true;
        assert_eq!(verdict(&c, 200, 0), Verdict::CheckChannel);
        // Found gone (recorded as ended without a cause): a clear failure after the grace.
        c.ended_at = Some(300);
        let Verdict::Status(RemoteStatus::Failed(e)) = verdict(&c, 300 + RESULT_GRACE_MICROS, 1_000) else { panic!() };
        assert!(e.contains("unknown"), "{e}");
    }
}
