//! The Faxbot API server.
//!
//! Layout, in reading order:
//! - [`configuration`]: process settings from the environment.
//! - [`startup`]: wiring and graceful shutdown.
//! - [`http`]: router, errors, auth, route handlers, OpenAPI.
//! - [`domain`]: validated types (numbers, ids, statuses, scopes, timestamps) that keep PHI masked.
//! - [`store`]: SQLite/PostgreSQL persistence and the group-commit writer.
//! - [`queue`]: the retry policy and the dispatch worker.
//! - [`plugins`]: the provider trait and the built-in simulated line.
//! - [`storage`]: document stores.
//! - [`runtime`]: the live config document and its reload.
//! - [`inbound`]: storing received faxes exactly once.
//! - [`events`]: the event bus (PHI-guarded domain events feeding the audit trail and metrics).
//! - [`retention`]: deletion of expired documents.
//! - [`work`]: turns for CPU-heavy document work, off the async threads.
//! - [`metrics`], [`audit`], [`telemetry`]: observability.

pub mod audit;
pub mod configuration;
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
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod work;
