//! The exception path: frames that match no bind go to the kernel through a TAP interface,
//! and what the kernel sends on that TAP leaves through the port. It runs on its own thread
//! (syscalls never happen on a worker core).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::queue::ArrayQueue;

use super::{RuntimeError, Shared};
use crate::datapath::PacketBuf;
use crate::drivers::tap::TapDevice;
use crate::drivers::{Burst, Port, TxQueue};
use crate::sys::poll::poll_readable;

#[derive(Default)]
struct Counts {
    to_kernel: AtomicU64,
    to_kernel_failed: AtomicU64,
    from_kernel: AtomicU64,
    from_kernel_dropped: AtomicU64,
}

/// Exception-path counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExceptionCounts {
    /// Frames written to the TAP.
    pub to_kernel: u64,
    /// Frames the TAP refused (kernel queue full).
    pub to_kernel_failed: u64,
    /// Frames read from the TAP and sent out the port (handed to its TX queue, or to worker
    /// 0 to send: those it could not send are its `kernel_tx_dropped`).
    pub from_kernel: u64,
    /// Frames read from the TAP that could not be sent (no buffer, TX full).
    pub from_kernel_dropped: u64,
}

/// Handle to read the exception thread's counters.
#[derive(Clone)]
pub struct ExceptionStats(Arc<Counts>);

impl ExceptionStats {
    pub fn read(&self) -> ExceptionCounts {
        let c = &self.0;
        ExceptionCounts {
            to_kernel: c.to_kernel.load(Ordering::Relaxed),
            to_kernel_failed: c.to_kernel_failed.load(Ordering::Relaxed),
            from_kernel: c.from_kernel.load(Ordering::Relaxed),
            from_kernel_dropped: c.from_kernel_dropped.load(Ordering::Relaxed),
        }
    }
}

/// How frames from the kernel leave through the port.
pub(crate) enum KernelOut<P: Port> {
    /// A TX queue of the exception path's own.
    Queue(P::Tx),
    /// The device has no spare TX queue: worker 0 sends what is put in this ring.
    ViaWorker(Arc<ArrayQueue<P::Buf>>),
}

pub(crate) fn start<P: Port + 'static>(
    name: &str,
    port: Arc<P>,
    ring: Arc<ArrayQueue<P::Buf>>,
    mut out: KernelOut<P>,
    shared: Arc<Shared>,
) -> Result<(JoinHandle<()>, ExceptionStats), RuntimeError> {
    // The TAP takes the port's MAC when it is a usable unicast address (in-memory and
    // ring ports may have none, or all zeros).
    let mac = port.mac().filter(|m| m.0[0] & 1 == 0 && m.0 != [0; 6]);
    if mac.is_none() {
        tracing::info!(
            tap = name,
            "the port has no unicast MAC: the TAP keeps its own"
        );
    }
    let tap =
        TapDevice::open_with_mac(name, mac).map_err(|e| RuntimeError::Exception(e.to_string()))?;
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let h = std::thread::Builder::new()
        .name("rondo-exc".into())
        .spawn(move || {
            let mut scratch = vec![0u8; 65536];
            let mut burst = Burst::new();
            let workers_done = || {
                shared
                    .workers
                    .iter()
                    .all(|w| !w.running.load(Ordering::Acquire))
            };
            // Keep serving until asked to stop AND every worker has exited (they may still be
            // queueing exceptions of their last burst).
            while !(shared.stop.load(Ordering::Relaxed) && workers_done()) {
                let mut busy = false;
                // workers -> kernel
                while let Some(b) = ring.pop() {
                    busy = true;
                    match tap.send(b.data()) {
                        Ok(true) => c.to_kernel.fetch_add(1, Ordering::Relaxed),
                        _ => c.to_kernel_failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
                // kernel -> wire, unless forwarding is stopped (nothing leaves the port
                // then; the TAP's queue holds or drops what the kernel sends).
                let held = shared.paused.load(Ordering::Relaxed);
                while !held && burst.room() > 0 {
                    match tap.recv(&mut scratch) {
                        Ok(Some(n)) => {
                            busy = true;
                            match port.alloc(&scratch[..n]) {
                                Some(b) => {
                                    let _ = burst.push(b);
                                }
                                None => {
                                    c.from_kernel_dropped.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(tap = %tap.name(), "reading the exception TAP: {e}");
                            break;
                        }
                    }
                }
                if !burst.is_empty() {
                    let n = burst.len() as u64;
                    match &mut out {
                        KernelOut::Queue(tx) => {
                            tx.tx_burst(&mut burst);
                            tx.flush();
                        }
                        KernelOut::ViaWorker(q) => {
                            burst.send_each(|b| q.push(b));
                        }
                    }
                    let left = burst.len() as u64;
                    burst.drain().for_each(drop);
                    c.from_kernel.fetch_add(n - left, Ordering::Relaxed);
                    c.from_kernel_dropped.fetch_add(left, Ordering::Relaxed);
                }
                if held {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                } else if !busy {
                    // Wait for the kernel (1 ms) so the worker->kernel ring is still served promptly.
                    let _ = poll_readable(tap.fd(), 1);
                }
            }
            // Kernel frames handed to worker 0 that it can no longer send (queued after it
            // emptied the ring for the last time): not sent after all, so counted dropped.
            if let KernelOut::ViaWorker(q) = &out {
                while q.pop().is_some() {
                    c.from_kernel.fetch_sub(1, Ordering::Relaxed);
                    c.from_kernel_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Workers have exited: hand over what they queued last.
            while let Some(b) = ring.pop() {
                match tap.send(b.data()) {
                    Ok(true) => c.to_kernel.fetch_add(1, Ordering::Relaxed),
                    _ => c.to_kernel_failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
        .map_err(|source| RuntimeError::Thread {
            name: "rondo-exc".into(),
            source,
        })?;
    Ok((h, ExceptionStats(counts)))
}
