//! Table fingerprints (every director) and, with `[fleet]`, the fleet thread's state.

use std::sync::atomic::Ordering;

use super::Exposition;
use crate::runtime::plane::ControlPlane;

/// `rondo_table_fingerprint` (an info metric: value 1, the 16 hex digits as the
/// `fingerprint` label, since a 64-bit digest does not fit a float) and the `rondo_fleet_*`
/// families when the director follows a fleet.
pub fn fleet_metrics(e: &mut Exposition, plane: &ControlPlane) {
    let f = &plane.fleet;
    let m = "rondo_table_fingerprint";
    e.family(
        m,
        "gauge",
        "1 per live table, its fingerprint (SipHash-2-4 of rows, binds and backends as compiled) as 16 hex digits in the fingerprint label: equal on two directors exactly when they forward every flow of the table alike.",
    );
    for (name, fp) in f.fingerprints(&plane.runtime().snapshot()) {
        let hex = crate::table::fingerprint::hex(fp);
        e.sample(m, &[("table", &name), ("fingerprint", &hex)], 1);
    }
    if !f.configured() {
        return;
    }
    let v = f.view();
    let m = "rondo_fleet_connected";
    e.family(
        m,
        "gauge",
        "1 while etcd answers (the desired watch is up and the last status write went through); 0 during an outage, forwarding on the last applied tables.",
    );
    e.sample(m, &[], u8::from(v.connected));
    for (m, help, val) in [
        (
            "rondo_fleet_applied_revision",
            "The desired document revision whose tables are live.",
            v.applied_revision,
        ),
        (
            "rondo_fleet_seen_revision",
            "The newest desired document revision seen.",
            v.seen_revision,
        ),
        (
            "rondo_fleet_health_revision",
            "The health document revision last applied.",
            v.health_revision,
        ),
    ] {
        e.family(m, "gauge", help);
        e.sample(m, &[], val);
    }
    let m = "rondo_fleet_from_cache";
    e.family(
        m,
        "gauge",
        "1 while the live tables came from the local fleet cache (started without etcd), 0 once etcd's document is applied.",
    );
    e.sample(m, &[], u8::from(v.source == "cache"));
    let m = "rondo_fleet_refused_total";
    e.family(
        m,
        "counter",
        "Desired revisions refused (invalid, too large): the running tables stayed.",
    );
    e.sample(m, &[], f.refused_total.load(Ordering::Relaxed));
    let m = "rondo_fleet_apply_seconds";
    e.family(
        m,
        "summary",
        "Time to parse, build, swap in and cache an applied desired revision.",
    );
    e.sample(
        "rondo_fleet_apply_seconds_sum",
        &[],
        f.apply_us_total.load(Ordering::Relaxed) as f64 / 1e6,
    );
    e.sample(
        "rondo_fleet_apply_seconds_count",
        &[],
        f.applied_total.load(Ordering::Relaxed),
    );
    let m = "rondo_fleet_status_write_failures_total";
    e.family(
        m,
        "counter",
        "Status document writes (directors/<name>) that failed.",
    );
    e.sample(m, &[], f.status_failures.load(Ordering::Relaxed));
}
