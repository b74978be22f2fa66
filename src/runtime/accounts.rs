//! The accounting invariant: every packet a port delivered is accounted for by a counter.
//!
//! For every worker: received = forwarded + to the kernel (exceptions) + dropped (by
//! reason). For the port: what it delivered (`rx_packets`) is what the workers received;
//! what it took for sending (`tx_packets + tx_dropped - tx_kernel_refused`: a frame the
//! kernel refused was counted as sent when it was queued) is what the workers sent
//! (`forwarded - tx_refused`) plus the kernel's frames that reached it. On the exception
//! path, exceptions not dropped by the worker are written to the TAP or counted as
//! refused there; frames from the kernel the exception thread handed on are sent, or
//! counted dropped by the worker that was to send them.
//!
//! The counters are published every few bursts, so the equalities are exact once the
//! workers have stopped (after [`crate::runtime::Runtime::shutdown`], or the final summary
//! of `rondo run`); while traffic flows, [`Accounts::check`] may see a worker's counters a
//! burst behind its port's.

use crate::datapath::CoreCounters;
use crate::drivers::PortStats;
use crate::runtime::exception::ExceptionCounts;

/// The counters the invariant is written over.
#[derive(Debug, Clone)]
pub struct Accounts<'a> {
    /// Each worker's counters.
    pub workers: &'a [CoreCounters],
    /// The port's own counters.
    pub port: PortStats,
    /// The exception path's counters, when it is a TAP (`None`: exceptions are dropped).
    pub exception: Option<ExceptionCounts>,
}

/// Counts that do not add up, one line each, naming the counters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("packets unaccounted for:\n  {}", .0.join("\n  "))]
pub struct Unaccounted(pub Vec<String>);

impl Accounts<'_> {
    /// Check the invariant (see the module documentation).
    pub fn check(&self) -> Result<(), Unaccounted> {
        self.check_terms(true)
    }

    /// Check the workers' and the exception path's terms only: for ports whose counters
    /// are the NIC's (DPDK), which count frames still in its rings when the workers stop.
    pub fn check_workers(&self) -> Result<(), Unaccounted> {
        self.check_terms(false)
    }

    fn check_terms(&self, port_terms: bool) -> Result<(), Unaccounted> {
        let mut bad = Vec::new();
        let mut t = CoreCounters::default();
        for (i, w) in self.workers.iter().enumerate() {
            if w.unaccounted() != 0 {
                bad.push(format!(
                    "worker {i}: rx {} != forwarded {} + exceptions {} + dropped {} (off by {})",
                    w.rx_packets,
                    w.forwarded,
                    w.total_exceptions(),
                    w.total_drops(),
                    w.unaccounted()
                ));
            }
            if w.tx_refused > w.forwarded {
                bad.push(format!(
                    "worker {i}: tx_refused {} > forwarded {}",
                    w.tx_refused, w.forwarded
                ));
            }
            if w.exception_dropped > w.total_exceptions() {
                bad.push(format!(
                    "worker {i}: exception_dropped {} > exceptions {}",
                    w.exception_dropped,
                    w.total_exceptions()
                ));
            }
            t.accumulate(w);
        }
        let p = &self.port;
        if port_terms && p.rx_packets != t.rx_packets {
            bad.push(format!(
                "port rx_packets {} != workers' rx {}",
                p.rx_packets, t.rx_packets
            ));
        }
        let taken =
            i128::from(p.tx_packets) + i128::from(p.tx_dropped) - i128::from(p.tx_kernel_refused);
        let (from_kernel, exc_line) = match &self.exception {
            Some(e) => {
                let handed = i128::from(t.total_exceptions()) - i128::from(t.exception_dropped);
                let tap = i128::from(e.to_kernel) + i128::from(e.to_kernel_failed);
                let line = (handed != tap).then(|| {
                    format!(
                        "exceptions {} - exception_dropped {} != to_kernel {} + to_kernel_failed {}",
                        t.total_exceptions(),
                        t.exception_dropped,
                        e.to_kernel,
                        e.to_kernel_failed
                    )
                });
                (i128::from(e.from_kernel), line)
            }
            None => {
                let line = (t.exception_dropped != t.total_exceptions()).then(|| {
                    format!(
                        "no exception path, but exception_dropped {} != exceptions {}",
                        t.exception_dropped,
                        t.total_exceptions()
                    )
                });
                (0, line)
            }
        };
        bad.extend(exc_line);
        let sent = i128::from(t.forwarded) - i128::from(t.tx_refused) + from_kernel
            - i128::from(t.kernel_tx_dropped);
        if port_terms && taken != sent {
            bad.push(format!(
                "port took {taken} (tx_packets {} + tx_dropped {} - tx_kernel_refused {}) != \
                 forwarded {} - tx_refused {} + from_kernel {from_kernel} - kernel_tx_dropped {}",
                p.tx_packets,
                p.tx_dropped,
                p.tx_kernel_refused,
                t.forwarded,
                t.tx_refused,
                t.kernel_tx_dropped
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Unaccounted(bad))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::counters::ExceptionReason;
    use crate::datapath::DropReason;

    #[test]
    fn balanced_counts_pass_and_each_imbalance_is_named() {
        let mut w = CoreCounters {
            rx_packets: 10,
            forwarded: 7,
            tx_refused: 2,
            exception_dropped: 1,
            ..CoreCounters::default()
        };
        w.exceptions[ExceptionReason::NoBind as usize] = 2;
        w.drops[DropReason::TruncatedL2 as usize] = 1;
        let port = PortStats {
            rx_packets: 10,
            tx_packets: 4,
            tx_dropped: 2,
            tx_kernel_refused: 1,
            ..PortStats::default()
        };
        let exc = ExceptionCounts {
            to_kernel: 1,
            from_kernel: 3,
            ..ExceptionCounts::default()
        };
        let mut w2 = w.clone();
        w2.kernel_tx_dropped = 3;
        let ok = Accounts {
            workers: std::slice::from_ref(&w2),
            port,
            exception: Some(exc),
        };
        // taken 4 + 2 - 1 = 5 = 7 - 2 + 3 - 3
        assert_eq!(ok.check(), Ok(()));
        let mut lost = w2.clone();
        lost.rx_packets += 1;
        let e = Accounts {
            workers: std::slice::from_ref(&lost),
            port: PortStats {
                rx_packets: 11,
                ..port
            },
            exception: Some(exc),
        }
        .check()
        .unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].contains("worker 0: rx 11"), "{e}");
        let e = Accounts {
            workers: std::slice::from_ref(&w2),
            port: PortStats {
                tx_packets: 3,
                ..port
            },
            exception: None,
        }
        .check()
        .unwrap_err();
        assert!(e.to_string().contains("no exception path"), "{e}");
        assert!(e.to_string().contains("port took 4"), "{e}");
    }
}
