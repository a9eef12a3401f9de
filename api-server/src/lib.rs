//! The Faxbot API server.
//!
//! Layout, in reading order:
//! - [`configuration`]: process settings from the environment.
//! - [`startup`]: wiring and graceful shutdown.
//! - [`http`]: router, errors, auth, route handlers, OpenAPI.
//! - [`domain`]: validated types (numbers, ids, statuses, scopes, timestamps) that keep PHI masked.
//! - [`db`]: SQLite/PostgreSQL persistence and the group-commit writer.
//! - [`queue`]: the retry policy and the dispatch worker.
//! - [`plugins`]: the provider, storage and auth plugins (simulated line, Phaxio, Sinch, SIP/Asterisk).
//! - [`documents`]: where documents are kept (local directory or S3).
//! - [`runtime`]: the live config document and its reload.
//! - [`inbound`]: storing received faxes exactly once.
//! - [`events`]: the event bus (PHI-guarded domain events feeding the audit trail and metrics).
//! - [`retention`]: deletion of expired documents.
//! - [`work`]: turns for CPU-heavy document work, off the async threads.
//! - [`metrics`], [`audit`], [`telemetry`]: observability.

pub mod audit;
pub mod configuration;
pub mod db;
pub mod documents;
pub mod domain;
pub mod events;
pub mod http;
pub mod inbound;
pub mod metrics;
pub mod phi_guard;
pub mod plugins;
pub mod queue;
pub mod retention;
pub mod runtime;
pub mod startup;
pub mod telemetry;
pub mod work;
