//! Packets sent per backend since start, across snapshot swaps.
//!
//! Workers count into the live snapshot's [`crate::datapath::SentCounters`]. When a swap
//! retires a snapshot, workers may still be finishing a burst on it, so it is kept here and
//! read live until nobody else holds it; then its counts are folded into a total per
//! (table name, backend address) and it is freed. Reading never touches the workers.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::datapath::Snapshot;

/// Per (table name, backend address): packets sent with that backend as the first hop.
pub type SentTotals = BTreeMap<(String, IpAddr), u64>;

#[derive(Default)]
struct Inner {
    folded: SentTotals,
    retired: Vec<Arc<Snapshot>>,
}

/// See the module documentation.
#[derive(Default)]
pub struct SentLedger {
    inner: Mutex<Inner>,
}

fn add(into: &mut SentTotals, snap: &Snapshot) {
    for (i, t) in snap.tables.iter().enumerate() {
        for (b, n) in t.table.spec.backends.iter().zip(snap.sent_per_backend(i)) {
            if n > 0 {
                *into.entry((t.table.spec.name.clone(), b.ip)).or_default() += n;
            }
        }
    }
}

impl SentLedger {
    /// Keep a snapshot that a swap just replaced.
    pub fn retire(&self, old: Arc<Snapshot>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.retired.push(old);
        Self::fold(&mut g);
    }

    fn fold(g: &mut Inner) {
        let Inner { folded, retired } = g;
        retired.retain(|s| {
            // Only this ledger holds it: no worker can write to it any more.
            if Arc::strong_count(s) == 1 {
                add(folded, s);
                false
            } else {
                true
            }
        });
    }

    /// Totals since start, `live` (the snapshot in force) included.
    pub fn totals(&self, live: &Arc<Snapshot>) -> SentTotals {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Self::fold(&mut g);
        let mut out = g.folded.clone();
        for s in g.retired.iter().filter(|s| !Arc::ptr_eq(s, live)) {
            add(&mut out, s);
        }
        add(&mut out, live);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::config_from_str;
    use crate::datapath::SentCounters;

    fn cfg() -> String {
        crate::config::testing::web_table(r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }]"#)
    }

    fn snap(workers: usize) -> Arc<Snapshot> {
        let mut s = Snapshot::compile(config_from_str(&cfg(), "t.toml").unwrap(), None, 1).unwrap();
        s.attach_sent_counters(workers);
        Arc::new(s)
    }

    #[test]
    fn totals_survive_swaps_and_count_each_snapshot_once() {
        let key = |ip: &str| ("web".to_string(), ip.parse().unwrap());
        let ledger = SentLedger::default();
        let a = snap(2);
        SentCounters::bump(a.sent.region(0), 1);
        SentCounters::bump(a.sent.region(1), 1);
        SentCounters::bump(a.sent.region(1), 0);
        // Out-of-range slots and workers are ignored, not a panic.
        SentCounters::bump(a.sent.region(7), 0);
        SentCounters::bump(a.sent.region(0), 10_000);
        assert_eq!(a.sent_per_backend(0), vec![1, 2]);
        let t = ledger.totals(&a);
        assert_eq!((t[&key("10.1.0.1")], t[&key("10.1.0.2")]), (1, 2));
        // Swap: `a` is retired while a "worker" (this clone) still holds it.
        let worker_ref = a.clone();
        ledger.retire(a);
        let b = snap(2);
        SentCounters::bump(b.sent.region(0), 0);
        SentCounters::bump(worker_ref.sent.region(0), 0);
        let t = ledger.totals(&b);
        assert_eq!((t[&key("10.1.0.1")], t[&key("10.1.0.2")]), (3, 2));
        // The worker lets go: folded, same totals.
        drop(worker_ref);
        let t = ledger.totals(&b);
        assert_eq!((t[&key("10.1.0.1")], t[&key("10.1.0.2")]), (3, 2));
        assert!(ledger.inner.lock().unwrap().retired.is_empty());
        // The live snapshot also among the retired ones (a racing swap) counts once.
        ledger.retire(b.clone());
        let t = ledger.totals(&b);
        assert_eq!(t[&key("10.1.0.1")], 3);
    }
}
