//! What one API server pod has counted so far, read from its `/metrics`, and the increase between two
//! readings.
//!
//! Only the series that describe real work count: HTTP requests except probes and scrapes (`/health*`,
//! `/metrics`), and provider submissions. The API server labels every series with the config revision that
//! served it, so a pod's reading can be attributed to a revision even during the moment a reload changes it.

use std::collections::BTreeMap;

/// Cumulative counters of one pod for one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// HTTP requests (excluding probes and scrapes).
    pub requests: f64,
    /// Of those, 5xx answers.
    pub server_errors: f64,
    /// Provider submissions.
    pub submissions: f64,
    /// Of those, failed (any result other than `accepted`).
    pub failed_submissions: f64,
    /// Request-latency histogram: upper bound (seconds, `+Inf` last) → cumulative count.
    pub buckets: BTreeMap<Bound, f64>,
    /// Provider submission latency histogram, the same way.
    pub submit_buckets: BTreeMap<Bound, f64>,
    /// Phone-number-like values the pod's PHI guard masked in its log lines.
    pub phi_log_hits: f64,
    /// Audit events the pod could not write to its audit file.
    pub audit_write_failures: f64,
}

/// A histogram bucket bound that sorts numerically (`+Inf` last).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound(pub f64);

impl Eq for Bound {}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Routes that are not user traffic.
fn ignored_route(route: &str) -> bool {
    route.starts_with("/health") || route == "/metrics"
}

/// Splits `name{a="x",b="y"} value` into its parts; `None` for comments and lines we cannot read.
fn parse_line(line: &str) -> Option<(&str, BTreeMap<&str, String>, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    let mut map = BTreeMap::new();
    let mut rest = labels;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        // Values are escaped Prometheus strings; ours never contain quotes, but honour backslash escapes.
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end?;
        map.insert(key.trim_start_matches(','), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some((name, map, value))
}

/// Reads one pod's `/metrics` text into counters per revision label.
pub fn parse(text: &str) -> BTreeMap<String, Counters> {
    let mut out: BTreeMap<String, Counters> = BTreeMap::new();
    for (name, labels, value) in text.lines().filter_map(parse_line) {
        let Some(revision) = labels.get("revision") else { continue };
        let route = labels.get("route").map(String::as_str).unwrap_or("");
        match name {
            "faxbot_http_requests_total" if !ignored_route(route) => {
                let c = out.entry(revision.clone()).or_default();
                c.requests += value;
                if labels.get("status").is_some_and(|s| s.starts_with('5')) {
                    c.server_errors += value;
                }
            }
            "faxbot_http_request_duration_seconds_bucket" if !ignored_route(route) => {
                let Some(le) = labels.get("le") else { continue };
                let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
                if bound.is_nan() {
                    continue;
                }
                *out.entry(revision.clone()).or_default().buckets.entry(Bound(bound)).or_default() += value;
            }
            "faxbot_provider_submission_duration_seconds_bucket" => {
                let Some(le) = labels.get("le") else { continue };
                let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
                if bound.is_nan() {
                    continue;
                }
                *out.entry(revision.clone()).or_default().submit_buckets.entry(Bound(bound)).or_default() += value;
            }
            "faxbot_phi_guard_hits_total" if labels.get("sink").is_some_and(|s| s == "log") => {
                out.entry(revision.clone()).or_default().phi_log_hits += value;
            }
            "faxbot_audit_write_failures_total" => {
                out.entry(revision.clone()).or_default().audit_write_failures += value;
            }
            "faxbot_provider_submissions_total" => {
                let c = out.entry(revision.clone()).or_default();
                c.submissions += value;
                if labels.get("outcome").is_some_and(|o| o != "accepted") {
                    c.failed_submissions += value;
                }
            }
            _ => {}
        }
    }
    out
}

/// Increase of one counter between two readings; a decrease means the process restarted, and then the
/// whole new value is the increase (Prometheus' `increase` does the same).
fn increase(before: f64, after: f64) -> f64 {
    if after >= before { after - before } else { after }
}

impl Counters {
    /// What happened between `before` and `self` on the same pod.
    pub fn since(&self, before: &Counters) -> Counters {
        // A reset shows in the request counter first; apply one decision to every field so a restarted
        // pod is not half-subtracted.
        let reset = self.requests < before.requests || self.submissions < before.submissions;
        let inc = |b: f64, a: f64| if reset { a } else { increase(b, a) };
        Counters {
            requests: inc(before.requests, self.requests),
            server_errors: inc(before.server_errors, self.server_errors),
            submissions: inc(before.submissions, self.submissions),
            failed_submissions: inc(before.failed_submissions, self.failed_submissions),
            phi_log_hits: inc(before.phi_log_hits, self.phi_log_hits),
            audit_write_failures: inc(before.audit_write_failures, self.audit_write_failures),
            buckets: self
                .buckets
                .iter()
                .map(|(bound, after)| (*bound, inc(before.buckets.get(bound).copied().unwrap_or(0.0), *after)))
                .collect(),
            submit_buckets: self
                .submit_buckets
                .iter()
                .map(|(bound, after)| (*bound, inc(before.submit_buckets.get(bound).copied().unwrap_or(0.0), *after)))
                .collect(),
        }
    }

    /// Adds another pod's window (several pods serve one side).
    pub fn add(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.server_errors += other.server_errors;
        self.submissions += other.submissions;
        self.failed_submissions += other.failed_submissions;
        self.phi_log_hits += other.phi_log_hits;
        self.audit_write_failures += other.audit_write_failures;
        for (bound, count) in &other.buckets {
            *self.buckets.entry(*bound).or_default() += count;
        }
        for (bound, count) in &other.submit_buckets {
            *self.submit_buckets.entry(*bound).or_default() += count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# HELP faxbot_http_requests HTTP requests by route and status
# TYPE faxbot_http_requests counter
faxbot_http_requests_total{method="POST",route="/fax",status="202",revision="r1"} 90
faxbot_http_requests_total{method="POST",route="/fax",status="503",revision="r1"} 2
faxbot_http_requests_total{method="GET",route="/health/ready",status="200",revision="r1"} 500
faxbot_http_requests_total{method="GET",route="/fax/{id}",status="200",revision="r2"} 7
faxbot_http_request_duration_seconds_bucket{method="POST",route="/fax",status="202",revision="r1",le="0.01"} 80
faxbot_http_request_duration_seconds_bucket{method="POST",route="/fax",status="202",revision="r1",le="0.1"} 90
faxbot_http_request_duration_seconds_bucket{method="POST",route="/fax",status="202",revision="r1",le="+Inf"} 90
faxbot_http_request_duration_seconds_bucket{method="GET",route="/health/ready",status="200",revision="r1",le="+Inf"} 500
faxbot_http_request_duration_seconds_sum{method="POST",route="/fax",status="202",revision="r1"} 1.5
faxbot_provider_submissions_total{plugin="phaxio",outcome="accepted",revision="r1"} 40
faxbot_provider_submission_duration_seconds_bucket{plugin="phaxio",revision="r1",le="0.5"} 41
faxbot_provider_submission_duration_seconds_bucket{plugin="phaxio",revision="r1",le="+Inf"} 43
faxbot_provider_submissions_total{plugin="phaxio",outcome="unauthorized",revision="r1"} 3
faxbot_phi_guard_hits_total{revision="r2",sink="log"} 4
faxbot_phi_guard_hits_total{revision="r2",sink="text"} 9
faxbot_audit_write_failures_total{revision="r2"} 2
# EOF
"#;

    #[test]
    fn scrapes_are_read_per_revision_without_probes() {
        let parsed = parse(SCRAPE);
        let r1 = &parsed["r1"];
        assert_eq!((r1.requests, r1.server_errors), (92.0, 2.0));
        assert_eq!((r1.submissions, r1.failed_submissions), (43.0, 3.0));
        assert_eq!(r1.buckets[&Bound(0.01)], 80.0);
        assert_eq!(r1.buckets[&Bound(f64::INFINITY)], 90.0, "probe latencies are not counted");
        assert_eq!(parsed["r2"].requests, 7.0);
        assert_eq!(parsed["r2"].phi_log_hits, 4.0, "only catches in log lines count");
        assert_eq!(parsed["r2"].audit_write_failures, 2.0);
        assert_eq!((r1.phi_log_hits, r1.audit_write_failures), (0.0, 0.0));
        assert_eq!(r1.submit_buckets[&Bound(0.5)], 41.0);
    }

    #[test]
    fn increases_survive_counter_resets() {
        let before = Counters { requests: 100.0, server_errors: 5.0, ..Default::default() };
        let after = Counters { requests: 150.0, server_errors: 6.0, ..Default::default() };
        let d = after.since(&before);
        assert_eq!((d.requests, d.server_errors), (50.0, 1.0));
        // The pod restarted: its counters start again from zero.
        let restarted = Counters { requests: 30.0, server_errors: 2.0, ..Default::default() };
        let d = restarted.since(&before);
        assert_eq!((d.requests, d.server_errors), (30.0, 2.0), "the new values are the increase");
    }
}
