//! Tasks owned by an actor, and blocking work run for one.
//!
//! An actor that is killed skips `post_stop`, but its state is still
//! dropped: a task kept in a [`TaskGuard`] is aborted then, so a killed
//! listener never leaves its accept loop (and its port) behind for its
//! successor to trip over. [`blocking`] is how actors run store reads,
//! file I/O and CPU-heavy parsing without holding an async worker.

use tokio::task::JoinHandle;

pub struct TaskGuard(JoinHandle<()>);

impl TaskGuard {
    pub fn spawn<F>(future: F) -> TaskGuard
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        TaskGuard(tokio::spawn(future))
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `f` on tokio's blocking pool and waits for it; its error, or the
/// pool's (a panic in `f`), comes back as text for a protocol reply.
pub async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, String>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}
