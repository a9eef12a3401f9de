//! Job status as the reference puts it on the wire.

/// The status strings of the reference API. The mixed case is deliberate and kept for compatibility:
/// upper-case `SUCCESS`/`FAILED` come from the provider (the fax itself succeeded or failed), lower-case
/// `failed` means Faxbot could not hand the fax to the provider at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Accepted and durable, waiting for a worker (or held while sending is disabled).
    Queued,
    /// Handed to the provider, transmission not finished.
    InProgress,
    /// The provider reports the fax delivered.
    Success,
    /// The provider reports the transmission failed.
    Failed,
    /// Faxbot could not submit the fax (permanent provider refusal, retries exhausted, or an interrupted
    /// submission that could not be repeated safely).
    DispatchFailed,
}

impl JobStatus {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::InProgress => "in_progress",
            JobStatus::Success => "SUCCESS",
            JobStatus::Failed => "FAILED",
            JobStatus::DispatchFailed => "failed",
        }
    }

    /// Parses a stored status string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "in_progress" => JobStatus::InProgress,
            "SUCCESS" => JobStatus::Success,
            "FAILED" => JobStatus::Failed,
            "failed" => JobStatus::DispatchFailed,
            _ => return None,
        })
    }

    /// Terminal states never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Success | JobStatus::Failed | JobStatus::DispatchFailed)
    }

    /// Outcome label for metrics.
    pub fn outcome_label(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::InProgress => "in_progress",
            JobStatus::Success => "success",
            JobStatus::Failed => "transmission_failed",
            JobStatus::DispatchFailed => "dispatch_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_round_trip() {
        for s in
            [JobStatus::Queued, JobStatus::InProgress, JobStatus::Success, JobStatus::Failed, JobStatus::DispatchFailed]
        {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        assert!(JobStatus::Success.is_terminal() && JobStatus::DispatchFailed.is_terminal());
        assert!(!JobStatus::InProgress.is_terminal());
    }
}
