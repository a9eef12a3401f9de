//! Domain types that make invalid states unrepresentable and keep PHI out of logs by construction.

pub mod fax_number;
pub mod ids;
pub mod job;
pub mod scope;
pub mod timestamp;

pub use fax_number::{FaxNumber, mask_digits};
pub use ids::{JobId, new_secret_token};
pub use job::JobStatus;
pub use scope::Scope;
pub use timestamp::Timestamp;
