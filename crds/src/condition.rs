//! Status conditions following the Kubernetes API conventions.
//!
//! The one rule that matters for GitOps tools: `lastTransitionTime` changes only when the status flips.
//! A controller that stamps "now" on every reconcile makes every status write a change, which triggers
//! its own watch again and floods etcd.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The three values a condition status may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell yet.
    Unknown,
}

impl ConditionStatus {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value { ConditionStatus::True } else { ConditionStatus::False }
    }
}

/// Sets condition `type_` in `conditions`, keeping `lastTransitionTime` from the previous condition of that
/// type when its status is unchanged, and using `now` otherwise.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Timestamp,
) {
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(old) if old.status == status.as_str() => old.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation,
        last_transition_time,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let t2: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let mut conditions = Vec::new();
        set_condition(&mut conditions, "Ready", ConditionStatus::False, "Pending", "starting", Some(1), t0);
        set_condition(&mut conditions, "Ready", ConditionStatus::False, "SecretMissing", "gone", Some(2), t1);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, Time(t0));
        assert_eq!(conditions[0].reason, "SecretMissing");
        assert_eq!(conditions[0].observed_generation, Some(2));
        set_condition(&mut conditions, "Ready", ConditionStatus::True, "Available", "ok", Some(2), t2);
        assert_eq!(conditions[0].last_transition_time, Time(t2));
        set_condition(&mut conditions, "Degraded", ConditionStatus::False, "AsExpected", "", Some(2), t2);
        assert_eq!(conditions.len(), 2);
    }
}
