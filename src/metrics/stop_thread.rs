//! A background thread with a stop flag: told to stop and joined on drop. The metrics
//! server and the statsd pusher both run on one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::MetricsError;

pub(crate) struct StopThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl StopThread {
    /// Start `body` on a thread called `name`; it should return soon after the flag it is
    /// given turns true.
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) -> Result<StopThread, MetricsError> {
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(st))
            .map_err(|source| MetricsError::Io {
                what: "start thread",
                source,
            })?;
        Ok(StopThread {
            stop,
            handle: Some(handle),
        })
    }

    /// Raise the flag and wait for the thread.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for StopThread {
    fn drop(&mut self) {
        self.stop();
    }
}
