//! Logging: JSON lines on stdout (or human-readable with `FAXBOT_LOG_FORMAT=pretty`), filtered by
//! `RUST_LOG` (default `info`). Audit events share the stream under the `audit` target and, with
//! `AUDIT_LOG_FILE`, are appended to that file as well. Every line passes the PHI guard
//! ([`crate::phi_guard`]) on its way out.

use std::path::Path;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

use crate::phi_guard::{AuditFile, GuardedStdout};

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(format: &str, audit_file: Option<&Path>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stdout = if format == "pretty" {
        tracing_subscriber::fmt::layer().with_writer(GuardedStdout).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(GuardedStdout)
            .boxed()
    };
    // The audit file takes the audit events (target `audit`) that RUST_LOG lets through, as stdout does.
    // RUST_LOG is a global filter, not a per-layer one: with the EnvFilter as the stdout layer's own filter
    // beside the audit layer's, some audit events (`job_created`, `plugin.started`) reached neither output on
    // the PostgreSQL path, every run (the black-box test of the audit file caught it; the cause inside
    // tracing-subscriber's per-layer filtering was not pinned down).
    let audit = audit_file.map(|path| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(AuditFile::open(path))
            .with_filter(filter::filter_fn(|meta| meta.target() == "audit"))
    });
    // The admin console's audit view: the last audit events, in memory.
    tracing_subscriber::registry().with(filter).with(stdout).with(audit).with(crate::audit::Recent).init();
}
