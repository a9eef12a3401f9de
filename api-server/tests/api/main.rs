//! Black-box tests of the API server: each test spawns the real binary on a random port with its own
//! database (SQLite file or a fresh PostgreSQL database) and talks HTTP to it.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod helpers;

mod auth;
mod cancel;
mod config;
mod console;
mod crash;
mod external;
mod failover;
mod health;
mod hostile;
mod inbound;
mod keys;
mod lifecycle;
mod logs;
mod manifests;
mod mcp;
mod phaxio;
mod plugins;
mod readme;
mod replicas;
mod s3;
mod s3_support;
mod schemathesis;
mod send_fax;
mod signalwire;
mod sinch;
mod sip;
mod telnyx;
