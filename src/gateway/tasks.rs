//! Running many jobs at once for the adapters, which start no task or thread of their own
//! (the command line's load generators in `bench`).

use std::future::Future;

use super::GatewayError;

/// Runs every job on its own thread, all at once; their results in order (`None` for a job
/// that panicked).
pub fn on_threads<'a, T: Send>(jobs: Vec<Box<dyn FnOnce() -> T + Send + 'a>>) -> Vec<Option<T>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs.into_iter().map(|job| scope.spawn(job)).collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    })
}

/// Runs every future as a task of the current runtime, all at once; their outputs in order.
pub async fn as_tasks<F>(futures: Vec<F>) -> Vec<Result<F::Output, GatewayError>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(
            handle
                .await
                .map_err(|e| GatewayError::Worker(e.to_string())),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_return_in_order() {
        let jobs: Vec<Box<dyn FnOnce() -> usize + Send>> =
            (0..4usize).map(|i| Box::new(move || i * 10) as _).collect();
        assert_eq!(
            on_threads(jobs),
            vec![Some(0), Some(10), Some(20), Some(30)]
        );
    }
}
