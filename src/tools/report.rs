use std::fmt::Write as _;

use crate::datapath::counters::ExceptionReason;
use crate::datapath::{CoreCounters, DropReason};

/// Counters per verdict and reason, one per line; zero reasons omitted.
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
    o
}
