//! Prometheus metrics. Labels are bounded (route templates, status codes, plugin ids, outcomes and the
//! config revision) — never ids, numbers or anything a caller chose — so cardinality stays fixed and no PHI
//! can reach a time-series database. The `revision` label lets a canary analysis compare two revisions.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of HTTP metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// HTTP method.
    pub method: String,
    /// Route template such as `/fax/{id}`, or `unmatched`.
    pub route: String,
    /// Response status code.
    pub status: u16,
    /// Config revision serving the request.
    pub revision: String,
}

/// Labels of job metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// Plugin id.
    pub plugin: String,
    /// Outcome.
    pub outcome: String,
    /// Config revision.
    pub revision: String,
}

/// Labels by plugin and config revision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginRevisionLabels {
    /// Plugin id.
    pub plugin: String,
    /// Config revision.
    pub revision: String,
}

/// Labels of webhook metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// Plugin id.
    pub plugin: String,
    /// `status` (outbound status callbacks) or `inbound`.
    pub kind: String,
    /// `accepted`, `replayed`, `ignored` or `rejected`.
    pub result: String,
}

/// Labels for single-valued info metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// Outcome or reason.
    pub result: String,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Request latency by route and status.
    pub http_duration: Family<HttpLabels, Histogram>,
    /// Jobs reaching a terminal state, and accepted jobs (`outcome="accepted"`).
    pub jobs: Family<JobLabels, Counter>,
    /// Provider submissions by result (`accepted` or an error kind). Failed submissions feed the canary's
    /// error rate.
    pub provider_submissions: Family<JobLabels, Counter>,
    /// Time a provider took to answer a submission, by plugin and revision: a canary whose provider got
    /// slower is judged on this next to HTTP latency.
    pub submission_duration: Family<PluginRevisionLabels, Histogram>,
    /// Jobs with scheduled work.
    pub queue_depth: Gauge,
    /// Config reloads by result.
    pub config_reloads: Family<ResultLabels, Counter>,
    /// Rejected credentials by reason.
    pub auth_failures: Family<ResultLabels, Counter>,
    /// Revision currently served (value 1, label carries the revision).
    pub config_info: Family<ResultLabels, Gauge>,
    /// Events published on the event bus, by type (`fax.delivered`, `plugin.error`, ...).
    pub events: Family<ResultLabels, Counter>,
    /// Faxes received, by plugin.
    pub inbound_received: Family<ResultLabels, Counter>,
    /// Provider webhooks by plugin and result (`accepted`, `rejected`, `replayed`).
    pub webhooks: Family<WebhookLabels, Counter>,
    /// Jobs moved to the next outbound provider, by the provider they left (`plugin`) and the one that took
    /// them over (`outcome`).
    pub failovers: Family<JobLabels, Counter>,
    /// MCP messages by the path that answered them: `direct` (a plain `tools/call`, answered by the gate) or
    /// `sdk` (every other
    /// authenticated message, which the SDK answers or refuses).
    pub mcp_messages: Family<ResultLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
}

impl Metrics {
    /// Registers every metric under the `faxbot` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("faxbot");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration =
            Family::<HttpLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let jobs = Family::<JobLabels, Counter>::default();
        let provider_submissions = Family::<JobLabels, Counter>::default();
        let submission_duration =
            Family::<PluginRevisionLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let queue_depth = Gauge::default();
        let config_reloads = Family::<ResultLabels, Counter>::default();
        let auth_failures = Family::<ResultLabels, Counter>::default();
        let config_info = Family::<ResultLabels, Gauge>::default();
        let events = Family::<ResultLabels, Counter>::default();
        let inbound_received = Family::<ResultLabels, Counter>::default();
        let webhooks = Family::<WebhookLabels, Counter>::default();
        let failovers = Family::<JobLabels, Counter>::default();
        let mcp_messages = Family::<ResultLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route and status", http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency", http_duration.clone());
        registry.register("jobs", "Fax jobs accepted and reaching a terminal state", jobs.clone());
        registry.register("provider_submissions", "Submissions to providers by result", provider_submissions.clone());
        registry.register(
            "provider_submission_duration_seconds",
            "Time providers took to answer submissions",
            submission_duration.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs with scheduled work (queued, retrying or awaiting status)",
            queue_depth.clone(),
        );
        registry.register("config_reloads", "Runtime config reload attempts by result", config_reloads.clone());
        registry.register("auth_failures", "Rejected credentials by reason", auth_failures.clone());
        registry.register("config_revision", "Config revision being served", config_info.clone());
        registry.register("events", "Events published on the event bus, by type", events.clone());
        registry.register("inbound_faxes", "Faxes received, by plugin", inbound_received.clone());
        registry.register("webhooks", "Provider webhooks by plugin and result", webhooks.clone());
        registry.register(
            "provider_failovers",
            "Jobs moved from one outbound provider (plugin) to the next (outcome)",
            failovers.clone(),
        );
        registry.register(
            "mcp_messages",
            "MCP messages by the path that answered them (direct or sdk)",
            mcp_messages.clone(),
        );
        crate::phi_guard::register(&mut registry);
        Metrics {
            registry,
            http_requests,
            http_duration,
            jobs,
            provider_submissions,
            submission_duration,
            queue_depth,
            config_reloads,
            auth_failures,
            config_info,
            events,
            inbound_received,
            webhooks,
            failovers,
            mcp_messages,
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }

    /// Counts a job event.
    pub fn job(&self, plugin: &str, outcome: &str, revision: &str) {
        self.jobs
            .get_or_create(&JobLabels { plugin: plugin.into(), outcome: outcome.into(), revision: revision.into() })
            .inc();
    }

    /// Counts a provider submission result.
    pub fn submission(&self, plugin: &str, result: &str, revision: &str) {
        self.provider_submissions
            .get_or_create(&JobLabels { plugin: plugin.into(), outcome: result.into(), revision: revision.into() })
            .inc();
    }

    /// Records how long a provider took to answer a submission.
    pub fn submission_latency(&self, plugin: &str, revision: &str, took: std::time::Duration) {
        self.submission_duration
            .get_or_create(&PluginRevisionLabels { plugin: plugin.into(), revision: revision.into() })
            .observe(took.as_secs_f64());
    }

    /// Counts a provider webhook.
    pub fn webhook(&self, plugin: &str, kind: &str, result: &str) {
        self.webhooks
            .get_or_create(&WebhookLabels { plugin: plugin.into(), kind: kind.into(), result: result.into() })
            .inc();
    }

    /// How many webhooks of `plugin` and `kind` ended with `result` since start.
    pub fn webhook_count(&self, plugin: &str, kind: &str, result: &str) -> u64 {
        self.webhooks
            .get_or_create(&WebhookLabels { plugin: plugin.into(), kind: kind.into(), result: result.into() })
            .get()
    }

    /// Counts a labelled event in a result family.
    pub fn count(family: &Family<ResultLabels, Counter>, result: &str) {
        family.get_or_create(&ResultLabels { result: result.into() }).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
