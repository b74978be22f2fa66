//! Metrics: the Prometheus text format (0.0.4) served over HTTP ([`http`]) and an optional
//! statsd push with GLB's metric names ([`statsd`]). Both read only what the control side
//! publishes: the workers' counters, the port's counters, the live snapshot and the
//! control statistics.

mod fleet;
pub mod http;
pub mod statsd;
mod stop_thread;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::datapath::counters::ExceptionReason;
use crate::datapath::counters::QuicOutcome;
use crate::datapath::{CoreCounters, DropReason};
use crate::runtime::plane::ControlPlane;
use crate::table::diff::shares;
use crate::table::BackendState;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics: cannot listen on {addr}: {source} (set [metrics] listen or --metrics-listen, or \"off\")")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics: {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Escape a label value (backslash, double quote, newline).
pub fn escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// A Prometheus text exposition being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Start a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The core a worker runs on, as a label: its pinned core, or `none`.
fn core_label(plane: &ControlPlane, worker: usize) -> String {
    plane
        .runtime()
        .options()
        .cores
        .as_ref()
        .and_then(|c| c.get(worker))
        .map_or("none".to_string(), |c| c.to_string())
}

/// Every metric, in the Prometheus text format.
pub fn render(plane: &ControlPlane) -> String {
    let rt = plane.runtime();
    let mut e = Exposition::default();
    let port = rt.port_stats();
    let name = rt.port_name().to_string();
    let pl: [(&str, &str); 2] = [("port", "0"), ("name", &name)];
    for (metric, help, v) in [
        (
            "rondo_port_rx_packets_total",
            "Packets the port received.",
            port.rx_packets,
        ),
        (
            "rondo_port_rx_bytes_total",
            "Bytes the port received.",
            port.rx_bytes,
        ),
        (
            "rondo_port_tx_packets_total",
            "Packets the port sent.",
            port.tx_packets,
        ),
        (
            "rondo_port_tx_bytes_total",
            "Bytes the port sent.",
            port.tx_bytes,
        ),
        (
            "rondo_port_rx_dropped_total",
            "Packets the driver or NIC dropped before the workers saw them (ring full, no buffer).",
            port.rx_dropped,
        ),
        (
            "rondo_port_tx_dropped_total",
            "Packets the port could not send.",
            port.tx_dropped,
        ),
        (
            "rondo_port_rx_errors_total",
            "Receive errors.",
            port.rx_errors,
        ),
        (
            "rondo_port_tx_errors_total",
            "Transmit errors.",
            port.tx_errors,
        ),
        (
            "rondo_port_tx_too_big_total",
            "Frames longer than the interface MTU allows, dropped (counted in tx_dropped too).",
            port.tx_too_big,
        ),
        (
            "rondo_port_tx_kernel_refused_total",
            "Frames the kernel refused to send after retries (peer MTU below the frame, say), dropped from the TX ring (counted in tx_dropped too).",
            port.tx_kernel_refused,
        ),
    ] {
        e.family(metric, "counter", help);
        e.sample(metric, &pl, v);
    }
    if let Some(l) = rt.port().link() {
        let m = "rondo_port_link_up";
        e.family(
            m,
            "gauge",
            "1 while the port's link is up (carrier and administratively up), 0 while down.",
        );
        e.sample(m, &pl, u8::from(l.up));
        if let Some(c) = l.changes {
            let m = "rondo_port_link_changes_total";
            e.family(m, "counter", "Link up/down transitions since start.");
            e.sample(m, &pl, c);
        }
    }

    let workers = rt.worker_counters();
    let labels: Vec<(String, String)> = (0..workers.len())
        .map(|i| (i.to_string(), core_label(plane, i)))
        .collect();
    type Get = fn(&CoreCounters) -> u64;
    let per_worker: [(&str, &str, Get); 9] = [
        (
            "rondo_worker_rx_packets_total",
            "Packets a worker received.",
            |c| c.rx_packets,
        ),
        (
            "rondo_worker_rx_bytes_total",
            "Bytes a worker received.",
            |c| c.rx_bytes,
        ),
        (
            "rondo_worker_forwarded_packets_total",
            "Packets a worker encapsulated and forwarded.",
            |c| c.forwarded,
        ),
        (
            "rondo_worker_forwarded_bytes_total",
            "Bytes a worker forwarded (with encapsulation).",
            |c| c.forwarded_bytes,
        ),
        (
            "rondo_worker_tx_refused_packets_total",
            "Forwarded packets the TX queue refused after retries (dropped).",
            |c| c.tx_refused,
        ),
        (
            "rondo_worker_exception_dropped_packets_total",
            "Exception packets dropped (exception path off or full).",
            |c| c.exception_dropped,
        ),
        (
            "rondo_worker_kernel_tx_dropped_packets_total",
            "Kernel frames (exception path) a worker was to send and dropped (TX refused, or queued at stop).",
            |c| c.kernel_tx_dropped,
        ),
        (
            "rondo_worker_alt_hashed_packets_total",
            "Packets forwarded with the alt_hash_fields hops too.",
            |c| c.alt_hashed,
        ),
        (
            "rondo_worker_bursts_total",
            "Bursts a worker processed.",
            |c| c.bursts,
        ),
    ];
    for (metric, help, get) in per_worker {
        e.family(metric, "counter", help);
        for (c, (w, core)) in workers.iter().zip(&labels) {
            e.sample(metric, &[("worker", w), ("core", core)], get(c));
        }
    }
    let m = "rondo_worker_last_progress_seconds";
    e.family(
        m,
        "gauge",
        "Seconds since a worker was last seen to make progress (its loop turns while busy, idle or paused); growing means it is stuck. Stopped workers are not listed.",
    );
    for (age, (w, core)) in rt.worker_progress_ages().iter().zip(&labels) {
        if let Some(a) = age {
            e.sample(
                m,
                &[("worker", w), ("core", core)],
                format!("{:.3}", a.as_secs_f64()),
            );
        }
    }
    let m = "rondo_worker_exception_packets_total";
    e.family(
        m,
        "counter",
        "Packets a worker handed to the kernel, per reason.",
    );
    for (c, (w, core)) in workers.iter().zip(&labels) {
        for r in ExceptionReason::ALL {
            e.sample(
                m,
                &[("worker", w), ("core", core), ("reason", r.name())],
                c.exception_count(r),
            );
        }
    }
    let m = "rondo_worker_dropped_packets_total";
    e.family(m, "counter", "Packets a worker dropped, per reason.");
    for (c, (w, core)) in workers.iter().zip(&labels) {
        for r in DropReason::ALL {
            e.sample(
                m,
                &[("worker", w), ("core", core), ("reason", r.name())],
                c.drop_count(r),
            );
        }
    }
    let mut total = CoreCounters::default();
    for c in &workers {
        total.accumulate(c);
    }
    let m = "rondo_dropped_packets_total";
    e.family(m, "counter", "Packets dropped by all workers, per reason.");
    for r in DropReason::ALL {
        e.sample(m, &[("reason", r.name())], total.drop_count(r));
    }
    let m = "rondo_quic_packets_total";
    e.family(
        m,
        "counter",
        "Packets to QUIC-LB binds forwarded, per outcome: routed by the server ID in the connection ID, or hashed and why.",
    );
    for o in QuicOutcome::ALL {
        e.sample(m, &[("outcome", o.name())], total.quic_count(o));
    }

    if let Some(x) = rt.exception_stats() {
        for (metric, help, v) in [
            (
                "rondo_exception_to_kernel_packets_total",
                "Frames written to the exception TAP.",
                x.to_kernel,
            ),
            (
                "rondo_exception_to_kernel_failed_total",
                "Frames the exception TAP refused.",
                x.to_kernel_failed,
            ),
            (
                "rondo_exception_from_kernel_packets_total",
                "Frames from the kernel sent out the port.",
                x.from_kernel,
            ),
            (
                "rondo_exception_from_kernel_dropped_total",
                "Frames from the kernel that could not be sent.",
                x.from_kernel_dropped,
            ),
        ] {
            e.family(metric, "counter", help);
            e.sample(metric, &[], v);
        }
    }

    let snap = rt.snapshot();
    let sent = plane.sent_totals();
    let m = "rondo_table_backends";
    e.family(m, "gauge", "Backends of a table, per state.");
    for t in &snap.tables {
        for s in [
            BackendState::Active,
            BackendState::Draining,
            BackendState::Filling,
            BackendState::Inactive,
        ] {
            let n = t
                .table
                .spec
                .backends
                .iter()
                .filter(|b| b.state == s)
                .count();
            e.sample(
                m,
                &[("table", &t.table.spec.name), ("state", s.as_str())],
                n,
            );
        }
    }
    let m = "rondo_table_binds";
    e.family(m, "gauge", "Binds (VIP, protocol, port range) of a table.");
    for t in &snap.tables {
        e.sample(
            m,
            &[("table", &t.table.spec.name)],
            t.table.spec.binds.len(),
        );
    }
    let m = "rondo_table_sent_packets_total";
    e.family(
        m,
        "counter",
        "Packets forwarded through a table (its backends' sums).",
    );
    for t in &snap.tables {
        let n: u64 = sent
            .iter()
            .filter(|((tn, _), _)| *tn == t.table.spec.name)
            .map(|(_, v)| v)
            .sum();
        e.sample(m, &[("table", &t.table.spec.name)], n);
    }

    let m = "rondo_backend_sent_packets_total";
    e.family(
        m,
        "counter",
        "Packets sent to a backend as the first hop, since start.",
    );
    for ((t, ip), n) in &sent {
        e.sample(m, &[("table", t), ("backend", &ip.to_string())], n);
    }
    let mut state = Exposition::default();
    let mut health = Exposition::default();
    let mut weight = Exposition::default();
    let mut rows = Exposition::default();
    state.family(
        "rondo_backend_state",
        "gauge",
        "1 for a backend's current state, 0 for the others.",
    );
    health.family(
        "rondo_backend_healthy",
        "gauge",
        "1 when the backend counts as healthy.",
    );
    weight.family(
        "rondo_backend_weight",
        "gauge",
        "Rendezvous weight of a backend.",
    );
    rows.family(
        "rondo_backend_rows",
        "gauge",
        "Rows of the table a backend holds, as primary or as a later hop.",
    );
    for t in &snap.tables {
        let tn = &t.table.spec.name;
        for (b, sh) in t.table.spec.backends.iter().zip(shares(&t.table)) {
            let ip = b.ip.to_string();
            for s in [
                BackendState::Active,
                BackendState::Draining,
                BackendState::Filling,
                BackendState::Inactive,
            ] {
                state.sample(
                    "rondo_backend_state",
                    &[("table", tn), ("backend", &ip), ("state", s.as_str())],
                    u8::from(b.state == s),
                );
            }
            health.sample(
                "rondo_backend_healthy",
                &[("table", tn), ("backend", &ip)],
                u8::from(b.healthy),
            );
            weight.sample(
                "rondo_backend_weight",
                &[("table", tn), ("backend", &ip)],
                b.weight,
            );
            rows.sample(
                "rondo_backend_rows",
                &[("table", tn), ("backend", &ip), ("hop", "primary")],
                sh.primary,
            );
            rows.sample(
                "rondo_backend_rows",
                &[("table", tn), ("backend", &ip), ("hop", "secondary")],
                sh.secondary,
            );
        }
    }
    for part in [state, health, weight, rows] {
        e.out.push_str(&part.finish());
    }

    let m = "rondo_reloads_total";
    e.family(
        m,
        "counter",
        "Snapshot rebuilds (reloads and console or health changes), by result.",
    );
    e.sample(
        m,
        &[("result", "ok")],
        plane.reloads_ok.load(Ordering::Relaxed),
    );
    e.sample(
        m,
        &[("result", "failed")],
        plane.reloads_failed.load(Ordering::Relaxed),
    );
    let us = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
    let m = "rondo_table_build_seconds";
    e.family(m, "summary", "Time to load, build and compile a snapshot.");
    e.sample(
        "rondo_table_build_seconds_sum",
        &[],
        us(&plane.builds.total_us),
    );
    e.sample(
        "rondo_table_build_seconds_count",
        &[],
        plane.builds.count.load(Ordering::Relaxed),
    );
    let m = "rondo_table_build_last_seconds";
    e.family(m, "gauge", "Time the last snapshot took to build.");
    e.sample(m, &[], us(&plane.builds.last_us));
    let m = "rondo_snapshot_generation";
    e.family(m, "gauge", "Generation of the snapshot in force.");
    e.sample(m, &[], snap.generation);
    let m = "rondo_forwarding_started";
    e.family(
        m,
        "gauge",
        "1 while forwarding, 0 after the console's stop.",
    );
    e.sample(m, &[], u8::from(!rt.is_paused()));
    let m = "rondo_uptime_seconds";
    e.family(m, "gauge", "Seconds since the director started.");
    e.sample(m, &[], plane.uptime().as_secs());
    bgp_metrics(&mut e, &plane.bgp);
    fleet::fleet_metrics(&mut e, plane);
    e.finish()
}

/// `[bgp]`: per VIP announced or not and why, apply failures, session state. Nothing when
/// BGP is not configured.
fn bgp_metrics(e: &mut Exposition, b: &crate::fleet::bgp::shared::BgpShared) {
    use crate::fleet::bgp::decide::{Reason, Verdict};
    use std::sync::atomic::Ordering;
    if !b.configured() {
        return;
    }
    let v = b.view();
    let vips: Vec<String> = v.decisions.iter().map(|d| d.prefix.to_string()).collect();
    let m = "rondo_vip_announced";
    e.family(
        m,
        "gauge",
        "1 while this director asks its BGP daemon to announce the VIP (bind prefix), 0 while withdrawn.",
    );
    for (d, vip) in v.decisions.iter().zip(&vips) {
        e.sample(m, &[("vip", vip)], u8::from(d.verdict.is_announced()));
    }
    let m = "rondo_vip_withdrawn_reason";
    e.family(
        m,
        "gauge",
        "1 for the reason a VIP is withdrawn (starting, link_down, port_gone, stopped, worker_stalled, no_usable_backend, operator, draining), 0 for the others.",
    );
    for (d, vip) in v.decisions.iter().zip(&vips) {
        let why = match &d.verdict {
            Verdict::Withdrawn(r) => Some(r.label()),
            Verdict::Announced { .. } => None,
        };
        for l in Reason::LABELS {
            e.sample(m, &[("vip", vip), ("reason", l)], u8::from(why == Some(l)));
        }
    }
    let m = "rondo_bgp_apply_failures_total";
    e.family(
        m,
        "counter",
        "Announcement changes BIRD did not take (daemon missing, stopped or refusing); retried.",
    );
    e.sample(m, &[], b.apply_failures.load(Ordering::Relaxed));
    let m = "rondo_bgp_in_sync";
    e.family(
        m,
        "gauge",
        "1 while BIRD has the announcements this director decided, 0 while an apply is pending or failing.",
    );
    e.sample(m, &[], u8::from(v.in_sync));
    let m = "rondo_bgp_session_up";
    e.family(
        m,
        "gauge",
        "1 while a configured BGP session ([bgp] sessions) is Established, as BIRD last reported.",
    );
    for sv in &v.sessions {
        let up = sv
            .status
            .as_ref()
            .is_ok_and(|p| p.bgp_state == Some(crate::fleet::bgp::BgpState::Established));
        e.sample(m, &[("session", &sv.name)], u8::from(up));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgp_metrics_say_per_vip_whether_announced_and_why() {
        use crate::fleet::bgp::decide::{Decision, Reason, Verdict};
        use crate::fleet::bgp::shared::{BgpShared, SessionView};
        let b = BgpShared::default();
        let mut e = Exposition::default();
        bgp_metrics(&mut e, &b);
        assert_eq!(e.finish(), "", "nothing without [bgp]");
        b.set_configured();
        b.apply_failures
            .store(3, std::sync::atomic::Ordering::Relaxed);
        b.update_view(|v| {
            v.decisions = vec![
                Decision {
                    prefix: "10.0.0.1".parse().unwrap(),
                    tables: vec!["web".into()],
                    verdict: Verdict::Announced { graceful: false },
                },
                Decision {
                    prefix: "10.0.0.2".parse().unwrap(),
                    tables: vec!["web".into()],
                    verdict: Verdict::Withdrawn(Reason::Operator),
                },
            ];
            v.sessions = vec![SessionView {
                name: "router1".into(),
                status: Err("no such protocol".into()),
            }];
        });
        let mut e = Exposition::default();
        bgp_metrics(&mut e, &b);
        let t = e.finish();
        for want in [
            "rondo_vip_announced{vip=\"10.0.0.1/32\"} 1\n",
            "rondo_vip_announced{vip=\"10.0.0.2/32\"} 0\n",
            "rondo_vip_withdrawn_reason{vip=\"10.0.0.2/32\",reason=\"operator\"} 1\n",
            "rondo_vip_withdrawn_reason{vip=\"10.0.0.2/32\",reason=\"starting\"} 0\n",
            "rondo_vip_withdrawn_reason{vip=\"10.0.0.1/32\",reason=\"operator\"} 0\n",
            "rondo_bgp_apply_failures_total 3\n",
            "rondo_bgp_session_up{session=\"router1\"} 0\n",
            "rondo_bgp_in_sync 0\n",
        ] {
            assert!(t.contains(want), "{want} in\n{t}");
        }
    }

    #[test]
    fn label_values_are_escaped_and_samples_formatted() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut e = Exposition::default();
        e.family("x_total", "counter", "Things.");
        e.sample("x_total", &[("a", "1"), ("b", "q\"")], 5);
        e.sample("x_total", &[], 0);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"\"} 5\nx_total 0\n"
        );
    }
}
