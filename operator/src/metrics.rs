//! Prometheus metrics of the operator: reconciles, failures by kind, durations, leadership and per-config
//! readiness. Labels are bounded: controller names, error kinds and object names (which are not PHI), never
//! messages or values.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-controller series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `faxpluginconfig` or `faxprovider`.
    pub controller: &'static str,
}

/// Labels of failure series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Which controller failed.
    pub controller: &'static str,
    /// [`crate::Error::metric_label`].
    pub error: &'static str,
}

/// Labels of per-object series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// Namespace of the FaxPluginConfig.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Reconciles started.
    pub reconciliations: Family<ControllerLabels, Counter>,
    /// Reconciles that failed with an error (invalid specs are not failures; they are reported in status).
    pub failures: Family<ErrorLabels, Counter>,
    /// Reconcile duration in seconds.
    pub duration: Family<ControllerLabels, Histogram>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
    /// 1 when the config's Ready condition is True, 0 otherwise.
    pub config_ready: Family<ObjectLabels, Gauge>,
    /// Canary phase per config: 0 Stable, 1 Progressing, 2 Paused, 3 RolledBack.
    pub canary_phase: Family<ObjectLabels, Gauge>,
    /// Actual canary weight per config, percent.
    pub canary_weight: Family<ObjectLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Current canary step index per config.
    pub canary_step: Family<ObjectLabels, Gauge>,
    /// Failed checks of the current canary per config.
    pub canary_failed_checks: Family<ObjectLabels, Gauge>,
    /// Canary error rate of the last check per config, percent.
    pub canary_error_rate: Family<ObjectLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Canary ÷ stable latency (the worse of HTTP and provider submissions) of the last check per config.
    pub canary_latency_ratio: Family<ObjectLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Canaries rolled back per config.
    pub canary_rollbacks: Family<ObjectLabels, Counter>,
    /// Webhook notifications by result (`delivered`, `failed`).
    pub notifications: Family<NotificationLabels, Counter>,
}

/// Labels of notification deliveries.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// `delivered` or `failed`.
    pub result: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("faxbot_operator");
        let reconciliations = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 12))
        });
        let leader = Gauge::default();
        let config_ready = Family::<ObjectLabels, Gauge>::default();
        registry.register("reconciliations", "Reconciles started", reconciliations.clone());
        registry.register("reconcile_failures", "Reconciles that ended in an error", failures.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration", duration.clone());
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        registry.register("config_ready", "1 when a FaxPluginConfig is Ready", config_ready.clone());
        let canary_phase = Family::<ObjectLabels, Gauge>::default();
        let canary_weight = Family::<ObjectLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let canary_step = Family::<ObjectLabels, Gauge>::default();
        let canary_failed_checks = Family::<ObjectLabels, Gauge>::default();
        let canary_error_rate = Family::<ObjectLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let canary_latency_ratio = Family::<ObjectLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let canary_rollbacks = Family::<ObjectLabels, Counter>::default();
        registry.register(
            "canary_phase",
            "Canary phase: 0 Stable, 1 Progressing, 2 Paused, 3 RolledBack",
            canary_phase.clone(),
        );
        registry.register("canary_weight_percent", "Actual canary weight", canary_weight.clone());
        registry.register("canary_step", "Current canary step index", canary_step.clone());
        registry.register("canary_failed_checks", "Failed checks of the current canary", canary_failed_checks.clone());
        registry.register(
            "canary_error_rate_percent",
            "Canary error rate at the last check",
            canary_error_rate.clone(),
        );
        registry.register(
            "canary_latency_ratio",
            "Canary / stable latency at the last check (the worse of HTTP and provider submissions)",
            canary_latency_ratio.clone(),
        );
        registry.register("canary_rollbacks", "Canaries rolled back", canary_rollbacks.clone());
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register("notifications", "Rollout webhook notifications by result", notifications.clone());
        Metrics {
            registry,
            reconciliations,
            failures,
            duration,
            leader,
            config_ready,
            canary_phase,
            canary_weight,
            canary_step,
            canary_failed_checks,
            canary_error_rate,
            canary_latency_ratio,
            canary_rollbacks,
            notifications,
        }
    }

    /// Records one finished reconcile.
    pub fn observe(&self, controller: &'static str, took: Duration, error: Option<&'static str>) {
        self.reconciliations.get_or_create(&ControllerLabels { controller }).inc();
        self.duration.get_or_create(&ControllerLabels { controller }).observe(took.as_secs_f64());
        if let Some(error) = error {
            self.failures.get_or_create(&ErrorLabels { controller, error }).inc();
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_bounded_labels() {
        let m = Metrics::new();
        m.observe("faxpluginconfig", Duration::from_millis(12), None);
        m.observe("faxpluginconfig", Duration::from_millis(12), Some("conflict"));
        let text = m.render();
        assert!(text.contains("faxbot_operator_reconciliations_total{controller=\"faxpluginconfig\"} 2"), "{text}");
        assert!(
            text.contains(
                "faxbot_operator_reconcile_failures_total{controller=\"faxpluginconfig\",error=\"conflict\"} 1"
            )
        );
    }
}
