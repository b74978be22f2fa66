//! statsd push, as GLB's director does it: every interval, the increase of each counter
//! since the previous push, as DogStatsD counters under GLB's namespace `glb_director_ng`
//! with GLB's names and tags (`port.packets.rx:N|c|#port:00`, `core.packets.total:N|c|#core:01`).
//! Rondo adds a few of its own (per backend, per drop reason, build time) under the same
//! namespace. Lines are packed into datagrams of at most [`MAX_DATAGRAM`] bytes.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stop_thread::StopThread;
use super::MetricsError;
use crate::datapath::{CoreCounters, DropReason};
use crate::runtime::plane::ControlPlane;

/// GLB's statsd namespace.
pub const NAMESPACE: &str = "glb_director_ng";
/// Largest datagram sent.
pub const MAX_DATAGRAM: usize = 1400;

/// Counter values at one push, by (metric name, tags).
pub type Sample = BTreeMap<(String, String), u64>;

/// A tag value without statsd's separators.
fn tag(v: &str) -> String {
    v.chars()
        .map(|c| {
            if matches!(c, '|' | ',' | '#' | '\n' | '@') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn encap_failures(c: &CoreCounters) -> u64 {
    c.drop_count(DropReason::NoHeadroom) + c.drop_count(DropReason::TooBig)
}

/// Every counter pushed, with its current value.
pub fn sample(plane: &ControlPlane) -> Sample {
    let rt = plane.runtime();
    let mut s = Sample::new();
    let mut put = |name: &str, tags: String, v: u64| {
        s.insert((name.to_string(), tags), v);
    };
    let p = rt.port_stats();
    let port = "port:00".to_string();
    put("port.packets.rx", port.clone(), p.rx_packets);
    put("port.packets.tx", port.clone(), p.tx_packets);
    put("port.bytes.rx", port.clone(), p.rx_bytes);
    put("port.bytes.tx", port.clone(), p.tx_bytes);
    put("port.packets.rx_missed", port.clone(), p.rx_dropped);
    put("port.packets.rx_errors", port.clone(), p.rx_errors);
    put("port.packets.tx_errors", port.clone(), p.tx_errors);
    put("port.packets.tx_too_big", port.clone(), p.tx_too_big);
    put(
        "port.packets.tx_kernel_refused",
        port.clone(),
        p.tx_kernel_refused,
    );
    put("port.packets.tx_dropped", port, p.tx_dropped);
    let cores = rt.options().cores.clone();
    let mut total = CoreCounters::default();
    for (i, c) in rt.worker_counters().iter().enumerate() {
        total.accumulate(c);
        let id = cores
            .as_ref()
            .and_then(|cs| cs.get(i))
            .copied()
            .unwrap_or(i);
        let t = format!("core:{id:02}");
        let matched = c.forwarded + encap_failures(c);
        put("core.packets.total", t.clone(), c.rx_packets);
        put("core.packets.matched", t.clone(), matched);
        put(
            "core.packets.unmatched",
            t.clone(),
            c.rx_packets.saturating_sub(matched),
        );
        put("core.packets.kni", t.clone(), c.total_exceptions());
        put("core.packets.encap.success", t.clone(), c.forwarded);
        put("core.packets.encap.failure", t.clone(), encap_failures(c));
        put(
            "core.packets.eth_tx_sent",
            t.clone(),
            c.forwarded.saturating_sub(c.tx_refused),
        );
        put("core.packets.tx_refused", t, c.tx_refused);
    }
    if let Some(x) = rt.exception_stats() {
        put("core.packets.kni_tx_sent", "core:kni".into(), x.from_kernel);
    }
    put(
        "core.config_reload_count",
        "core:control".into(),
        plane.reloads_ok.load(Ordering::Relaxed) + plane.reloads_failed.load(Ordering::Relaxed),
    );
    put(
        "reloads.failed",
        "core:control".into(),
        plane.reloads_failed.load(Ordering::Relaxed),
    );
    for r in DropReason::ALL {
        put(
            "packets.dropped",
            format!("reason:{}", r.name()),
            total.drop_count(r),
        );
    }
    for ((t, ip), n) in plane.sent_totals() {
        put(
            "backend.packets.sent",
            format!("table:{},backend:{}", tag(&t), ip),
            n,
        );
    }
    s
}

/// statsd lines for the increase from `prev` to `now` (counters that went down, e.g. a
/// backend that left, count from zero), packed into datagrams.
pub fn datagrams(prev: &Sample, now: &Sample) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ((name, tags), v) in now {
        let before = prev
            .get(&(name.clone(), tags.clone()))
            .copied()
            .unwrap_or(0);
        let delta = if *v >= before { v - before } else { *v };
        let line = format!("{NAMESPACE}.{name}:{delta}|c|#{tags}");
        if !cur.is_empty() && cur.len() + 1 + line.len() > MAX_DATAGRAM {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(&line);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The push thread. Dropping it stops it.
pub struct StatsdPusher {
    thread: StopThread,
}

impl StatsdPusher {
    /// Push to `target` every `interval`, counting from now.
    pub fn start(
        target: SocketAddr,
        interval: Duration,
        plane: Arc<ControlPlane>,
    ) -> Result<StatsdPusher, MetricsError> {
        let bind: SocketAddr = if target.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(bind).map_err(|source| MetricsError::Io {
            what: "statsd socket",
            source,
        })?;
        sock.connect(target).map_err(|source| MetricsError::Io {
            what: "statsd target",
            source,
        })?;
        let thread = StopThread::spawn("rondo-statsd", move |stop| {
            push_loop(sock, interval, &plane, &stop)
        })?;
        tracing::info!(%target, interval_ms = interval.as_millis() as u64, "statsd push on");
        Ok(StatsdPusher { thread })
    }

    /// Push once more (the last interval's counts) and stop.
    pub fn shutdown(mut self) {
        self.thread.stop();
    }
}

fn push_loop(sock: UdpSocket, interval: Duration, plane: &ControlPlane, stop: &AtomicBool) {
    // The first push counts from start (the counters start at zero with the director).
    let mut prev = Sample::new();
    let mut next = Instant::now() + interval;
    let mut warned = false;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        if !stopping && Instant::now() < next {
            std::thread::sleep(Duration::from_millis(20).min(interval));
            continue;
        }
        next += interval;
        let now = sample(plane);
        for d in datagrams(&prev, &now) {
            if let Err(e) = sock.send(d.as_bytes()) {
                // Nobody listening yet (ICMP port unreachable) is normal for statsd.
                if !warned {
                    tracing::debug!("statsd push failed (will keep trying): {e}");
                    warned = true;
                }
            }
        }
        prev = now;
        if stopping {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_in_glb_format_packed_into_bounded_datagrams() {
        let mut prev = Sample::new();
        prev.insert(("port.packets.rx".into(), "port:00".into()), 10);
        prev.insert(("core.packets.total".into(), "core:01".into()), 5);
        let mut now = prev.clone();
        now.insert(("port.packets.rx".into(), "port:00".into()), 25);
        now.insert(("core.packets.total".into(), "core:01".into()), 3);
        for i in 0..200 {
            now.insert(
                (
                    "backend.packets.sent".into(),
                    format!("table:t,backend:10.0.{i}.1"),
                ),
                i,
            );
        }
        let d = datagrams(&prev, &now);
        assert!(d.len() > 1 && d.iter().all(|x| x.len() <= MAX_DATAGRAM));
        let all: Vec<&str> = d.iter().flat_map(|x| x.lines()).collect();
        assert_eq!(all.len(), 202);
        assert!(all.contains(&"glb_director_ng.port.packets.rx:15|c|#port:00"));
        // Went down: counts from zero rather than wrapping.
        assert!(all.contains(&"glb_director_ng.core.packets.total:3|c|#core:01"));
        assert!(all.contains(&"glb_director_ng.backend.packets.sent:7|c|#table:t,backend:10.0.7.1"));
        assert_eq!(tag("a|b,c#d"), "a_b_c_d");
    }
}
