//! Running blocking work (crypto, parsing, file I/O) off the async runtime. Bottom layer.

use crate::code::ErrorCode;

/// The blocking task did not finish: it panicked or the runtime is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("background worker failed: {0}")]
pub struct WorkerFailed(String);

impl WorkerFailed {
    /// Always [`ErrorCode::Internal`]: a bug or an environment failure.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Internal
    }
}

/// Runs `f` on tokio's blocking pool and returns its result; a task that did not finish
/// becomes `E` through [`WorkerFailed`].
pub async fn run<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<WorkerFailed> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(WorkerFailed(e.to_string()).into()),
    }
}
