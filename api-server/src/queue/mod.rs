//! The durable job queue: the retry policy (pure) and the worker that dispatches jobs to providers.

pub mod retry;
pub mod worker;
