//! Timestamps: stored as microseconds since the Unix epoch (one integer column that sorts and compares the
//! same way in SQLite and PostgreSQL), printed as the reference does.

use chrono::{DateTime, NaiveDateTime, Utc};

/// A UTC instant with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_micros())
    }

    /// From stored microseconds.
    pub fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the epoch, for storage.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// This instant plus `d`.
    pub fn plus(self, d: std::time::Duration) -> Self {
        Timestamp(self.0.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
    }

    /// This instant minus `d`.
    pub fn minus(self, d: std::time::Duration) -> Self {
        Timestamp(self.0.saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
    }

    /// Naive UTC ISO-8601 without a zone suffix, microseconds included and omitted when zero — exactly what
    /// the reference (Pydantic) prints, e.g. `2025-09-20T06:57:01.215761`.
    pub fn to_wire(self) -> String {
        let Some(dt) = DateTime::<Utc>::from_timestamp_micros(self.0) else { return String::new() };
        if self.0.rem_euclid(1_000_000) == 0 {
            dt.format("%Y-%m-%dT%H:%M:%S").to_string()
        } else {
            dt.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
        }
    }

    /// Parses a client-supplied ISO-8601 date-time: RFC 3339 with an offset, or naive (taken as UTC) with
    /// or without fractional seconds.
    pub fn parse_iso(raw: &str) -> Option<Self> {
        if let Ok(dt) = DateTime::parse_from_rfc3339(raw) {
            return Some(Timestamp(dt.with_timezone(&Utc).timestamp_micros()));
        }
        for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
            if let Ok(n) = NaiveDateTime::parse_from_str(raw, fmt) {
                return Some(Timestamp(n.and_utc().timestamp_micros()));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_matches_the_reference() {
        let t = Timestamp::parse_iso("2025-09-20T06:57:01.215761").unwrap();
        assert_eq!(t.to_wire(), "2025-09-20T06:57:01.215761");
        let whole = Timestamp::parse_iso("2025-09-20T06:57:01").unwrap();
        assert_eq!(whole.to_wire(), "2025-09-20T06:57:01");
        let z = Timestamp::parse_iso("2025-09-20T08:57:01.5+02:00").unwrap();
        assert_eq!(z.to_wire(), "2025-09-20T06:57:01.500000");
        assert!(Timestamp::parse_iso("yesterday").is_none());
    }
}
