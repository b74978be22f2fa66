//! The run's numbers: a JSON report for machines and a one-line dashboard for people.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in microseconds (send time in the trailer to receive time).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub samples: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            samples: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
        }
    }
}

/// Sequence-number accounting over all flows.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct FlowTotals {
    /// Packets sent and never received (per flow, summed).
    pub lost: u64,
    pub duplicates: u64,
    /// Packets that arrived after a later packet of their flow.
    pub reordered: u64,
    /// Packets received with sequence numbers the generator never sent.
    pub unexpected: u64,
    pub flows_with_loss: u64,
}

/// Everything a run measured (`--report FILE`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub port: String,
    pub flows: u32,
    /// Frames per second asked for; `None`: as fast as possible.
    pub requested_pps: Option<u64>,
    pub achieved_tx_pps: f64,
    /// The driver could not keep up with the requested rate (achieved below 98 %).
    pub rate_not_reached: bool,
    pub tx_seconds: f64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_gbps: f64,
    /// Bursts the driver refused at least in part (retried until the run ended).
    pub tx_refused: u64,
    /// Frames made but never taken by the port: it still refused them when the run ended
    /// (not in `tx_packets`).
    pub tx_unsent: u64,
    /// Frames the port took (in `tx_packets`) but dropped: too big for the MTU, refused by
    /// the kernel (the port's `tx_dropped` over the run).
    pub tx_port_dropped: u64,
    /// Whether the receive side ran (false for write-only ports such as pcap output).
    pub verifying: bool,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_pps: f64,
    pub verified: u64,
    /// Of `verified`: as only a config given with `--accept-also` says (a table change).
    pub verified_alt: u64,
    pub wrong_backend: u64,
    pub bad_header: u64,
    /// Frames that are not this run's packets (other traffic on the link).
    pub foreign: u64,
    /// Frames already queued when the run began, discarded unchecked (not in `rx_packets`).
    pub stale: u64,
    #[serde(flatten)]
    pub seq: FlowTotals,
    /// Replayed frames sent that the director must not forward (no bind takes them).
    pub not_expected_back: u64,
    pub latency: Latency,
    /// The first few failures, described.
    pub examples: Vec<String>,
    /// Every packet sent came back verified, once, to the right backends.
    pub ok: bool,
}

impl Report {
    /// Whether the run passed: all sent packets verified, none wrong, lost or duplicated.
    pub fn judge(&mut self) {
        self.ok = if self.verifying {
            self.tx_packets > 0
                && self.verified + self.not_expected_back == self.tx_packets
                && self.wrong_backend == 0
                && self.bad_header == 0
                && self.seq.lost == 0
                && self.seq.duplicates == 0
                && self.seq.unexpected == 0
        } else {
            self.tx_packets > 0
        };
    }

    /// Human summary, several lines.
    pub fn summary(&self) -> String {
        let rate = match self.requested_pps {
            Some(r) => format!("{r} pps requested, {:.0} achieved", self.achieved_tx_pps),
            None => format!("max rate: {:.0} pps achieved", self.achieved_tx_pps),
        };
        let mut s = format!(
            "sent        {:>12} packets {:>14} bytes in {:.2} s ({rate}{})\n",
            self.tx_packets,
            self.tx_bytes,
            self.tx_seconds,
            if self.rate_not_reached {
                "; the port could not send faster"
            } else {
                ""
            }
        );
        if self.tx_unsent > 0 || self.tx_port_dropped > 0 {
            s += &format!(
                "refused     {:>12} frames the port would not take by the end, {} it took and dropped (MTU, kernel)\n",
                self.tx_unsent, self.tx_port_dropped
            );
        }
        if self.verifying {
            s += &format!(
                "received    {:>12} packets: verified {}, wrong backend {}, bad header {}, foreign {}\n",
                self.rx_packets, self.verified, self.wrong_backend, self.bad_header, self.foreign
            );
            if self.stale > 0 {
                s += &format!(
                    "stale       {:>12} frames queued before the first packet was sent, discarded\n",
                    self.stale
                );
            }
            if self.verified_alt > 0 {
                s += &format!(
                    "other tables {:>11} of the verified packets as only an --accept-also config says\n",
                    self.verified_alt
                );
            }
            if self.not_expected_back > 0 {
                s += &format!(
                    "not for the director {:>3} replayed packets (no bind takes them)\n",
                    self.not_expected_back
                );
            }
            s += &format!(
                "flows       {:>12}: lost {} ({} flows), duplicates {}, reordered {}\n",
                self.flows,
                self.seq.lost,
                self.seq.flows_with_loss,
                self.seq.duplicates,
                self.seq.reordered
            );
            let l = &self.latency;
            s += &format!(
                "latency us  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}\n",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
            );
            for e in &self.examples {
                s += &format!("  {e}\n");
            }
        }
        s += if self.ok { "OK\n" } else { "FAILED\n" };
        s
    }
}

/// One dashboard line: rates over the last interval and running totals.
#[allow(clippy::too_many_arguments)]
pub fn dashboard_line(
    secs: f64,
    dt: f64,
    d_tx: (u64, u64),
    d_rx: (u64, u64),
    tx_total: u64,
    verified: u64,
    bad: u64,
    foreign: u64,
    lat: (f64, f64, f64),
    verifying: bool,
) -> String {
    let mpps = |p: u64| p as f64 / dt.max(1e-9) / 1e6;
    let gbps = |b: u64| b as f64 * 8.0 / dt.max(1e-9) / 1e9;
    if !verifying {
        return format!(
            "[{secs:6.1}s] tx {:7.3} Mpps {:6.2} Gbps | sent {tx_total} (no receive side)",
            mpps(d_tx.0),
            gbps(d_tx.1)
        );
    }
    format!(
        "[{secs:6.1}s] tx {:7.3} Mpps {:6.2} Gbps | rx {:7.3} Mpps {:6.2} Gbps | sent {tx_total} verified {verified} bad {bad} foreign {foreign} missing {} | lat us p50 {:.1} p99 {:.1} max {:.1}",
        mpps(d_tx.0),
        gbps(d_tx.1),
        mpps(d_rx.0),
        gbps(d_rx.1),
        tx_total.saturating_sub(verified + bad),
        lat.0,
        lat.1,
        lat.2
    )
}
