//! One worker: run to completion on its own queue pair.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use super::{IdlePolicy, Shared};
use crate::datapath::{
    process_burst_counted, CoreCounters, PacketBuf, Verdict, WorkerSink, BURST_MAX,
};
use crate::drivers::{Burst, RxQueue, TxQueue};

/// Bursts between two publications of a busy worker's counters: publishing copies every
/// counter (some forty words), a cost worth sharing between bursts.
const PUBLISH_EVERY: u32 = 8;

pub(crate) struct Worker<Rx: RxQueue, Tx: TxQueue<Buf = Rx::Buf>> {
    pub(crate) id: usize,
    pub(crate) core: Option<usize>,
    pub(crate) rx: Rx,
    pub(crate) tx: Tx,
    pub(crate) shared: Arc<Shared>,
    pub(crate) exceptions: Option<Arc<ArrayQueue<Rx::Buf>>>,
    /// Frames from the kernel to send on this worker's TX queue (worker 0, when the port
    /// has no TX queue to spare for the exception path).
    pub(crate) inject: Option<Arc<ArrayQueue<Rx::Buf>>>,
    pub(crate) idle: IdlePolicy,
    pub(crate) tx_retries: u32,
}

impl<Rx: RxQueue, Tx: TxQueue<Buf = Rx::Buf>> Worker<Rx, Tx>
where
    Rx::Buf: PacketBuf,
{
    pub(crate) fn run(mut self) {
        if let Some(core) = self.core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                tracing::warn!(
                    worker = self.id,
                    core,
                    "could not pin worker to its core; running unpinned"
                );
            }
        }
        if let Err(e) = self.rx.attach_thread() {
            tracing::warn!(worker = self.id, "{e}");
        }
        let slot = &self.shared.workers[self.id];
        let mut rx = Burst::new();
        let mut tx = Burst::new();
        let mut verdicts = [Verdict::Forward; BURST_MAX];
        let mut ctr = CoreCounters::default();
        let mut empty_polls: u32 = 0;
        // Bursts processed since the counters were last published.
        let mut unpublished: u32 = 0;
        let mut sink = WorkerSink { worker: self.id };
        let mut iterations: u64 = 0;
        while !self.shared.stop.load(Ordering::Relaxed) {
            // Liveness for the watchdog: one plain store per iteration, to this worker's
            // own slot.
            iterations = iterations.wrapping_add(1);
            slot.progress.store(iterations, Ordering::Relaxed);
            if self.shared.paused.load(Ordering::Relaxed) {
                // Forwarding stopped (console `stop`): nothing is taken from RX, so the
                // port's ring fills and the driver or NIC drops (and counts) what arrives.
                if !slot.paused.load(Ordering::Relaxed) {
                    self.tx.flush();
                    slot.publish(&ctr);
                    slot.paused.store(true, Ordering::Release);
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            if slot.paused.load(Ordering::Relaxed) {
                slot.paused.store(false, Ordering::Release);
            }
            if let Some(q) = &self.inject {
                if !q.is_empty() {
                    while tx.room() > 0 {
                        match q.pop() {
                            Some(b) => {
                                let _ = tx.push(b);
                            }
                            None => break,
                        }
                    }
                    // Kernel frames: what stays refused is counted apart from forwarded
                    // packets (`tx_refused` counts those only).
                    let lost = send(&mut self.tx, self.tx_retries, &mut tx);
                    ctr.kernel_tx_dropped += lost;
                    // Counters changed: the next empty poll publishes them, even on an
                    // idle port.
                    empty_polls = 0;
                }
            }
            let n = self.rx.rx_burst(&mut rx);
            if n == 0 {
                if self.rx.is_exhausted() {
                    break;
                }
                empty_polls = empty_polls.saturating_add(1);
                if empty_polls == 1 {
                    self.tx.flush();
                    slot.publish(&ctr);
                    unpublished = 0;
                }
                match self.idle {
                    IdlePolicy::BusyPoll => std::hint::spin_loop(),
                    IdlePolicy::Sleep { after, micros } => {
                        if empty_polls > after {
                            std::thread::sleep(std::time::Duration::from_micros(micros));
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                }
                continue;
            }
            empty_polls = 0;
            let forwarded = {
                // One snapshot load per burst; no per-packet reference counting.
                let snap = self.shared.snapshot.load();
                process_burst_counted(
                    &snap,
                    rx.as_mut_slice(),
                    &mut verdicts[..n],
                    &mut ctr,
                    &mut sink,
                )
            };
            if tx.is_empty() && forwarded == n {
                // The usual burst: everything forwarded. The received burst becomes the
                // burst to send, buffers in place (the bursts have the same capacity).
                std::mem::swap(&mut rx, &mut tx);
            }
            for (buf, v) in rx.drain().zip(verdicts.iter()) {
                match v {
                    Verdict::Forward => {
                        let _ = tx.push(buf);
                    }
                    Verdict::Exception(_) => match &self.exceptions {
                        Some(ring) => {
                            if ring.push(buf).is_err() {
                                ctr.exception_dropped += 1;
                            }
                        }
                        None => ctr.exception_dropped += 1,
                    },
                    Verdict::Drop(_) => drop(buf),
                }
            }
            ctr.tx_refused += send(&mut self.tx, self.tx_retries, &mut tx);
            // Under load the counters are published every PUBLISH_EVERY bursts (a few
            // microseconds apart); the first empty poll publishes whatever is left.
            unpublished += 1;
            if unpublished >= PUBLISH_EVERY {
                slot.publish(&ctr);
                unpublished = 0;
            }
        }
        if let Some(q) = &self.inject {
            // Kernel frames nobody will send any more: give the buffers back, counted.
            while q.pop().is_some() {
                ctr.kernel_tx_dropped += 1;
            }
        }
        self.tx.flush();
        slot.publish(&ctr);
        self.rx.detach_thread();
        slot.running.store(false, Ordering::Release);
        tracing::debug!(
            worker = self.id,
            rx = ctr.rx_packets,
            forwarded = ctr.forwarded,
            "worker stopped"
        );
    }
}

/// Send the burst, retrying refusals `retries` times; what is still refused is dropped, and
/// the number returned for the caller to count.
#[inline]
fn send<T: TxQueue>(txq: &mut T, retries: u32, tx: &mut Burst<T::Buf>) -> u64 {
    let mut tries = 0;
    while !tx.is_empty() {
        txq.tx_burst(tx);
        if tx.is_empty() || tries >= retries {
            break;
        }
        tries += 1;
        std::hint::spin_loop();
    }
    let lost = tx.len() as u64;
    tx.drain().for_each(drop);
    lost
}
