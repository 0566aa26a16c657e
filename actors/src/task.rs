//! Tasks owned by an actor. An actor that is killed skips `post_stop`, but
//! its state is still dropped: a task kept in a [`TaskGuard`] is aborted
//! then, so a killed listener never leaves its accept loop (and its port)
//! behind for its successor to trip over.

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
