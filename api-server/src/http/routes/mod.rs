//! Route handlers, one module per resource.

pub mod admin;
pub mod fax;
pub mod health;
pub mod inbound;
pub mod keys;
pub mod plugins;
pub mod webhooks;
