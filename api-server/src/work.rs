//! Turns for CPU-heavy document work: page counting, text rendering and the Ghostscript and tiff2pdf
//! conversions.
//!
//! Each piece of that work is bounded on its own (the page counter's work budget, the renderer's page
//! limit, the converters' timeouts), but a burst of them could still take every core: two hostile PDFs
//! counted at once on the async threads once made `/health` wait 8 s. So all of it runs off the async
//! threads and takes a turn from one process-wide semaphore first; a burst queues for turns (up to
//! [`DEFAULT_WAIT`], `FAXBOT_DOCUMENT_WAIT_SECS`) while the async threads keep answering everything else.
//!
//! The limiter is process-wide state on purpose: the resource it shares out (the machine's cores) is
//! process-wide, and the provider plugins that convert documents are built without the HTTP state.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for a turn before it is told to come back later, unless [`init`] says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

static TURNS: OnceLock<Arc<Semaphore>> = OnceLock::new();
static WAIT: OnceLock<Duration> = OnceLock::new();

fn wait() -> Duration {
    *WAIT.get_or_init(|| DEFAULT_WAIT)
}

/// Why document work did not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// No turn came free in time.
    #[error("document work is busy: no turn came free within {} s", wait().as_secs())]
    Busy,
    /// The work panicked (a bug); the panic is logged by the runtime.
    #[error("document work failed unexpectedly")]
    Failed,
}

/// Sets the number of turns (`FAXBOT_DOCUMENT_WORKERS`) and how long a request waits for one
/// (`FAXBOT_DOCUMENT_WAIT_SECS`); the first call wins. Without a call: one turn per CPU, [`DEFAULT_WAIT`].
pub fn init(turns: usize, wait: Duration) {
    let _ = TURNS.set(Arc::new(Semaphore::new(turns.max(1))));
    let _ = WAIT.set(wait);
}

/// The default number of turns: one per CPU the process may use.
pub fn default_turns() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

fn turns() -> Arc<Semaphore> {
    Arc::clone(TURNS.get_or_init(|| Arc::new(Semaphore::new(default_turns()))))
}

/// Waits for a turn, for work that happens in a subprocess: hold the permit until the process has ended.
pub async fn turn() -> Result<OwnedSemaphorePermit, WorkError> {
    match tokio::time::timeout(wait(), turns().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        // The semaphore is never closed; treat it as busy rather than panic.
        Ok(Err(_)) | Err(_) => Err(WorkError::Busy),
    }
}

/// Runs `f` on the blocking pool once a turn is free. The turn is released when `f` returns, even if the
/// caller stopped waiting (a client that disconnects does not free a turn while its work still runs).
pub async fn run<T, F>(f: F) -> Result<T, WorkError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let permit = turn().await?;
    tokio::task::spawn_blocking(move || {
        let _turn = permit;
        f()
    })
    .await
    .map_err(|_| WorkError::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_off_the_async_thread_and_returns_its_value() {
        let here = std::thread::current().id();
        let (value, there) = run(|| (41 + 1, std::thread::current().id())).await.unwrap_or((0, here));
        assert_eq!(value, 42);
        assert_ne!(there, here);
    }

    #[tokio::test]
    async fn a_panic_is_an_error_not_a_crash() {
        let result = run(|| -> u32 { panic!("bug") }).await;
        assert!(matches!(result, Err(WorkError::Failed)));
    }
}
