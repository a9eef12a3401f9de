//! Canary analysis numbers from Prometheus (`spec.rollout.analysis.prometheus`): one PromQL query template
//! per metric, rendered for a config and a window, and the answers turned into the same per-revision
//! [`Counters`] the pod scrapes give, so one judge ([`super::analysis::judge`]) decides either way.
//!
//! Every query must return an instant vector with a `revision` label (and `le` for the histogram buckets):
//! the API server labels each series with the config revision that served it. The defaults take the series
//! of the config's API pods by the labels a Prometheus with the usual Kubernetes pod discovery gives them
//! (`namespace`, and the pod labels `app.kubernetes.io/name` and `app.kubernetes.io/instance` mapped to
//! `app_kubernetes_io_name` and `app_kubernetes_io_instance`); a Prometheus that labels targets differently
//! sets `selector`, and any query can be replaced whole.
//!
//! Nothing here does I/O: the HTTP client is [`crate::analysis_source::PrometheusClient`].

use std::collections::BTreeMap;
use std::time::Duration;

use faxbot_crds::PrometheusAnalysisSpec;

use super::sample::{Bound, Counters};

/// Which counter a query fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// HTTP requests except probes and scrapes.
    Requests,
    /// Of those, 5xx answers.
    ServerErrors,
    /// Provider submissions.
    Submissions,
    /// Of those, not accepted.
    FailedSubmissions,
    /// HTTP latency histogram buckets (by `le`).
    LatencyBuckets,
    /// Provider submission latency histogram buckets (by `le`).
    SubmitLatencyBuckets,
    /// PHI-guard catches in log lines.
    PhiGuardHits,
    /// Audit events not written.
    AuditWriteFailures,
}

impl Metric {
    /// Every metric, in query order.
    pub const ALL: [Metric; 8] = [
        Metric::Requests,
        Metric::ServerErrors,
        Metric::Submissions,
        Metric::FailedSubmissions,
        Metric::LatencyBuckets,
        Metric::SubmitLatencyBuckets,
        Metric::PhiGuardHits,
        Metric::AuditWriteFailures,
    ];

    /// The default template. `{{selector}}` is the label matchers of the config's pods, `{{window}}` the
    /// check's window as a PromQL duration.
    pub fn default_template(self) -> &'static str {
        match self {
            Metric::Requests => {
                r#"sum by (revision) (increase(faxbot_http_requests_total{{{selector}},route!~"/health.*|/metrics"}[{{window}}]))"#
            }
            Metric::ServerErrors => {
                r#"sum by (revision) (increase(faxbot_http_requests_total{{{selector}},route!~"/health.*|/metrics",status=~"5.."}[{{window}}]))"#
            }
            Metric::Submissions => {
                r#"sum by (revision) (increase(faxbot_provider_submissions_total{{{selector}}}[{{window}}]))"#
            }
            Metric::FailedSubmissions => {
                r#"sum by (revision) (increase(faxbot_provider_submissions_total{{{selector}},outcome!="accepted"}[{{window}}]))"#
            }
            Metric::LatencyBuckets => {
                r#"sum by (revision, le) (increase(faxbot_http_request_duration_seconds_bucket{{{selector}},route!~"/health.*|/metrics"}[{{window}}]))"#
            }
            Metric::SubmitLatencyBuckets => {
                r#"sum by (revision, le) (increase(faxbot_provider_submission_duration_seconds_bucket{{{selector}}}[{{window}}]))"#
            }
            Metric::PhiGuardHits => {
                r#"sum by (revision) (increase(faxbot_phi_guard_hits_total{{{selector}},sink="log"}[{{window}}]))"#
            }
            Metric::AuditWriteFailures => {
                r#"sum by (revision) (increase(faxbot_audit_write_failures_total{{{selector}}}[{{window}}]))"#
            }
        }
    }

    fn is_histogram(self) -> bool {
        matches!(self, Metric::LatencyBuckets | Metric::SubmitLatencyBuckets)
    }
}

/// The default label matchers of a config's API pods.
pub const DEFAULT_SELECTOR: &str =
    r#"namespace="{{namespace}}",app_kubernetes_io_name="faxbot-api",app_kubernetes_io_instance="{{config}}""#;

/// A parsed `analysis.prometheus`.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Base URL of the Prometheus HTTP API, without a trailing slash.
    pub address: String,
    selector: String,
    templates: BTreeMap<Metric, String>,
}

impl Source {
    /// The spec with defaults filled in.
    pub fn from_spec(spec: &PrometheusAnalysisSpec) -> Source {
        let q = &spec.queries;
        let overrides = [
            (Metric::Requests, &q.requests),
            (Metric::ServerErrors, &q.server_errors),
            (Metric::Submissions, &q.submissions),
            (Metric::FailedSubmissions, &q.failed_submissions),
            (Metric::LatencyBuckets, &q.latency_buckets),
            (Metric::SubmitLatencyBuckets, &q.submit_latency_buckets),
            (Metric::PhiGuardHits, &q.phi_guard_hits),
            (Metric::AuditWriteFailures, &q.audit_write_failures),
        ];
        Source {
            address: spec.address.trim_end_matches('/').to_string(),
            selector: spec.selector.clone().unwrap_or_else(|| DEFAULT_SELECTOR.to_string()),
            templates: overrides
                .into_iter()
                .map(|(m, o)| (m, o.clone().unwrap_or_else(|| m.default_template().to_string())))
                .collect(),
        }
    }

    /// Every query for config `config` in `namespace` over `window`.
    pub fn queries(&self, namespace: &str, config: &str, window: Duration) -> Vec<(Metric, String)> {
        // Names are DNS labels (the API server refuses anything else), so they need no PromQL escaping;
        // escape anyway, so a template can never be broken out of.
        let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let selector =
            self.selector.replace("{{namespace}}", &escape(namespace)).replace("{{config}}", &escape(config));
        let window = format!("{}ms", window.as_millis().max(1));
        self.templates
            .iter()
            .map(|(m, t)| (*m, t.replace("{{selector}}", &selector).replace("{{window}}", &window)))
            .collect()
    }
}

/// One sample of an instant vector: its labels and value.
pub type Sample = (BTreeMap<String, String>, f64);

/// Why an answer could not be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AnswerError {
    /// Not the JSON of the query API.
    #[error("not a Prometheus query answer: {0}")]
    Malformed(String),
    /// Prometheus said the query failed.
    #[error("the query failed: {0}")]
    Failed(String),
    /// Not an instant vector.
    #[error("expected an instant vector, got {0}")]
    NotAVector(String),
}

#[derive(serde::Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(serde::Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Reads an answer of `GET /api/v1/query` (format documented at prometheus.io, "HTTP API": `status`,
/// `data.resultType`, `data.result[].metric` and `value: [time, "value"]`, values as strings such as
/// `"1.5"`, `"NaN"`, `"+Inf"`).
pub fn parse_answer(body: &[u8]) -> Result<Vec<Sample>, AnswerError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| AnswerError::Malformed(e.to_string()))?;
    if answer.status != "success" {
        return Err(AnswerError::Failed(format!(
            "{}: {}",
            answer.error_type.unwrap_or_default(),
            answer.error.unwrap_or_default()
        )));
    }
    let data = answer.data.ok_or_else(|| AnswerError::Malformed("no data".into()))?;
    if data.result_type != "vector" {
        return Err(AnswerError::NotAVector(data.result_type));
    }
    let samples: Vec<VectorSample> =
        serde_json::from_value(data.result).map_err(|e| AnswerError::Malformed(e.to_string()))?;
    Ok(samples
        .into_iter()
        .filter_map(|s| {
            let value = match s.value.1.as_str() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse::<f64>().ok()?,
            };
            // `increase` of a series with one sample is NaN-free but can be negative on float error; a
            // NaN (0/0 in a user's query) means nothing was measured.
            (!value.is_nan()).then_some((s.metric, value.max(0.0)))
        })
        .collect())
}

/// The answers of every query, as counters per revision. Samples without a `revision` label are ignored
/// (a query that aggregated it away cannot be attributed); a bucket without a readable `le` too.
pub fn counters(answers: &[(Metric, Vec<Sample>)]) -> BTreeMap<String, Counters> {
    let mut out: BTreeMap<String, Counters> = BTreeMap::new();
    for (metric, samples) in answers {
        for (labels, value) in samples {
            let Some(revision) = labels.get("revision") else { continue };
            let bound = if metric.is_histogram() {
                match labels.get("le").map(String::as_str) {
                    Some("+Inf") => Some(Bound(f64::INFINITY)),
                    Some(le) => match le.parse::<f64>() {
                        Ok(b) if !b.is_nan() => Some(Bound(b)),
                        _ => continue,
                    },
                    None => continue,
                }
            } else {
                None
            };
            let c = out.entry(revision.clone()).or_default();
            match (metric, bound) {
                (Metric::Requests, _) => c.requests += value,
                (Metric::ServerErrors, _) => c.server_errors += value,
                (Metric::Submissions, _) => c.submissions += value,
                (Metric::FailedSubmissions, _) => c.failed_submissions += value,
                (Metric::LatencyBuckets, Some(b)) => *c.buckets.entry(b).or_default() += value,
                (Metric::SubmitLatencyBuckets, Some(b)) => *c.submit_buckets.entry(b).or_default() += value,
                (Metric::PhiGuardHits, _) => c.phi_log_hits += value,
                (Metric::AuditWriteFailures, _) => c.audit_write_failures += value,
                (Metric::LatencyBuckets | Metric::SubmitLatencyBuckets, None) => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PrometheusAnalysisSpec {
        serde_json::from_value(serde_json::json!({"address": "http://prometheus.monitoring:9090/"})).unwrap()
    }

    #[test]
    fn templates_render_for_the_config_and_window() {
        let source = Source::from_spec(&spec());
        assert_eq!(source.address, "http://prometheus.monitoring:9090");
        let queries = source.queries("fax", "main", Duration::from_secs(60));
        assert_eq!(queries.len(), Metric::ALL.len());
        let requests = &queries.iter().find(|(m, _)| *m == Metric::Requests).unwrap().1;
        assert_eq!(
            requests,
            r#"sum by (revision) (increase(faxbot_http_requests_total{namespace="fax",app_kubernetes_io_name="faxbot-api",app_kubernetes_io_instance="main",route!~"/health.*|/metrics"}[60000ms]))"#
        );
        for (_, q) in &queries {
            assert!(!q.contains("{{"), "every placeholder is filled: {q}");
        }
        let mut custom = spec();
        custom.selector = Some(r#"kubernetes_namespace="{{namespace}}",faxbot="{{config}}""#.into());
        custom.queries.requests = Some("sum by (revision) (rate(my_requests{{{selector}}}[{{window}}]))".into());
        let queries = Source::from_spec(&custom).queries("a\"b", "main", Duration::from_millis(1500));
        let requests = &queries.iter().find(|(m, _)| *m == Metric::Requests).unwrap().1;
        assert_eq!(
            requests,
            r#"sum by (revision) (rate(my_requests{kubernetes_namespace="a\"b",faxbot="main"}[1500ms]))"#
        );
        let submissions = &queries.iter().find(|(m, _)| *m == Metric::Submissions).unwrap().1;
        assert!(submissions.contains(r#"{kubernetes_namespace="a\"b",faxbot="main"}"#), "{submissions}");
    }

    #[test]
    fn answers_are_read_as_the_http_api_documents_them() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"revision":"r1"},"value":[1733400000.123,"12.5"]},
            {"metric":{"revision":"r2"},"value":[1733400000.123,"NaN"]},
            {"metric":{"revision":"r3","le":"+Inf"},"value":[1733400000.123,"+Inf"]}]}}"#;
        let samples = parse_answer(body).unwrap();
        assert_eq!(samples.len(), 2, "NaN means nothing measured");
        assert_eq!(samples[0].1, 12.5);
        let failed = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        assert_eq!(parse_answer(failed), Err(AnswerError::Failed("bad_data: parse error at char 5".into())));
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(parse_answer(matrix), Err(AnswerError::NotAVector("matrix".into())));
        assert!(matches!(parse_answer(b"<html>"), Err(AnswerError::Malformed(_))));
    }

    #[test]
    fn answers_become_counters_per_revision() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let answers = vec![
            (Metric::Requests, vec![(labels(&[("revision", "r1")]), 90.0), (labels(&[("revision", "r2")]), 10.0)]),
            (Metric::ServerErrors, vec![(labels(&[("revision", "r2")]), 1.0)]),
            (Metric::Submissions, vec![(labels(&[]), 5.0)]),
            (
                Metric::LatencyBuckets,
                vec![
                    (labels(&[("revision", "r1"), ("le", "0.1")]), 80.0),
                    (labels(&[("revision", "r1"), ("le", "+Inf")]), 90.0),
                    (labels(&[("revision", "r1")]), 7.0),
                ],
            ),
            (Metric::PhiGuardHits, vec![(labels(&[("revision", "r2")]), 3.0)]),
        ];
        let c = counters(&answers);
        assert_eq!((c["r1"].requests, c["r2"].requests, c["r2"].server_errors), (90.0, 10.0, 1.0));
        assert_eq!(c["r1"].submissions, 0.0, "a sample without a revision is not attributed");
        assert_eq!(c["r1"].buckets.len(), 2, "a bucket without `le` is dropped");
        assert_eq!(c["r1"].buckets[&Bound(f64::INFINITY)], 90.0);
        assert_eq!(c["r2"].phi_log_hits, 3.0);
    }
}
