//! The durable job queue: the job rules (pure: [`decide`], [`retry`]) and the worker that does the I/O around
//! them, dispatching jobs to providers.

pub mod decide;
pub mod retry;
pub mod worker;
