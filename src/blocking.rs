//! Running blocking work (crypto, parsing, file I/O) off the async runtime, and on a few worker
//! threads with results kept in input order. Bottom layer.

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

/// Runs `work` over `items` on `workers` threads and hands each result to `emit` in the
/// order of `items`, as soon as every earlier one has been emitted (many-file verification
/// prints its JSON Lines in input order while later files are still being checked).
pub fn in_order_parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    work: impl Fn(&T) -> R + Sync,
    mut emit: impl FnMut(usize, R),
) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..workers.min(items.len()) {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if tx.send((i, work(item))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = std::collections::BTreeMap::new();
        let mut due = 0;
        for (i, result) in rx {
            pending.insert(i, result);
            while let Some(result) = pending.remove(&due) {
                emit(due, result);
                due += 1;
            }
        }
    });
}

#[cfg(test)]
mod order_tests {
    #[test]
    fn results_come_out_in_input_order() {
        let items: Vec<u64> = (0..200).collect();
        let mut seen = Vec::new();
        super::in_order_parallel(
            &items,
            4,
            |n| {
                // Later items finish first, so the order has to be restored.
                std::thread::sleep(std::time::Duration::from_micros((200 - n) * 20));
                n * 2
            },
            |i, r| seen.push((i, r)),
        );
        let want: Vec<(usize, u64)> = items.iter().map(|&n| (n as usize, n * 2)).collect();
        assert_eq!(seen, want);
    }
}
