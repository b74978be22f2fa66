use std::fmt::Write as _;

use crate::datapath::counters::ExceptionReason;
use crate::datapath::counters::QuicOutcome;
use crate::datapath::{CoreCounters, DropReason};

/// Counters per verdict and reason, one per line; zero reasons omitted. Then every other
/// counter of [`CoreCounters`], zero or not: forwarded packets the TX queue refused
/// (`tx_refused`), exception packets dropped (no exception path, or its queue full),
/// packets forwarded with 4 hops (`alt_hashed`) and bursts.
pub fn format_counters(c: &CoreCounters) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "rx          {:>12} packets {:>14} bytes",
        c.rx_packets, c.rx_bytes
    );
    let _ = writeln!(
        o,
        "forwarded   {:>12} packets {:>14} bytes",
        c.forwarded, c.forwarded_bytes
    );
    let _ = writeln!(o, "exception   {:>12} packets", c.total_exceptions());
    for r in ExceptionReason::ALL {
        if c.exception_count(r) > 0 {
            let _ = writeln!(o, "  {:<22}{:>12}", r.name(), c.exception_count(r));
        }
    }
    let _ = writeln!(o, "dropped     {:>12} packets", c.total_drops());
    for r in DropReason::ALL {
        if c.drop_count(r) > 0 {
            let _ = writeln!(o, "  {:<22}{:>12}", r.name(), c.drop_count(r));
        }
    }
    for q in QuicOutcome::ALL {
        if c.quic_count(q) > 0 {
            let _ = writeln!(o, "quic {:<22}{:>12} packets", q.name(), c.quic_count(q));
        }
    }
    let _ = writeln!(o, "tx_refused  {:>12} packets", c.tx_refused);
    let _ = writeln!(o, "exception_dropped {:>6} packets", c.exception_dropped);
    let _ = writeln!(o, "alt_hashed  {:>12} packets", c.alt_hashed);
    let _ = writeln!(o, "bursts      {:>12}", c.bursts);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_in_the_summary() {
        let c = CoreCounters {
            tx_refused: 1001,
            exception_dropped: 1002,
            alt_hashed: 1003,
            bursts: 1004,
            ..CoreCounters::default()
        };
        let t = format_counters(&c);
        for (label, n) in [
            ("tx_refused", 1001),
            ("exception_dropped", 1002),
            ("alt_hashed", 1003),
            ("bursts", 1004),
        ] {
            assert!(
                t.lines()
                    .any(|l| l.starts_with(label)
                        && l.split_whitespace().nth(1) == Some(&n.to_string())),
                "{label} {n}: {t}"
            );
        }
    }
}
