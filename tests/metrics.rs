//! Metrics scraped over HTTP from a running `rondo run` and statsd datagrams it pushes,
//! checked against the packets it actually sent (its output capture, read here) and the
//! frames it was fed.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::director::{read_pcap, Director, DEADLINE};

fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Samples of a scrape by `name{labels}`, after checking the text format: every sample
/// belongs to a family announced with `# HELP` and `# TYPE`, and its value is a number.
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let r = http(addr, "GET /metrics HTTP/1.0\r\n\r\n");
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    let mut typed = std::collections::HashSet::new();
    let mut helped = std::collections::HashSet::new();
    let mut out = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "summary"].contains(&kind), "{line}");
            assert!(
                typed.insert(name.to_string()),
                "one TYPE per family: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap();
        let name = key.split('{').next().unwrap();
        let family = name
            .strip_suffix("_sum")
            .or_else(|| name.strip_suffix("_count"))
            .filter(|f| typed.contains(*f))
            .unwrap_or(name);
        assert!(typed.contains(family) && helped.contains(family), "{line}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(out.insert(key.to_string(), v).is_none(), "duplicate {line}");
    }
    out
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> u64 {
    *m.get(key).unwrap_or_else(|| panic!("no {key}")) as u64
}

fn sum(m: &BTreeMap<String, f64>, prefix: &str) -> u64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| *v as u64)
        .sum()
}

/// statsd lines received so far, as (name, tags) -> sum of values.
fn statsd_sums(lines: &[String]) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for l in lines {
        let (name, rest) = l.split_once(':').unwrap_or_else(|| panic!("{l}"));
        let (value, rest) = rest.split_once("|c|#").unwrap_or_else(|| panic!("{l}"));
        *out.entry((name.to_string(), rest.to_string())).or_default() +=
            value.parse::<u64>().unwrap_or_else(|_| panic!("{l}"));
    }
    out
}

#[test]
fn metrics_match_the_packets_actually_sent() {
    let statsd = UdpSocket::bind("127.0.0.1:0").unwrap();
    statsd
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let statsd_addr = statsd.local_addr().unwrap();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let collector = {
        let (lines, done) = (lines.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !done.load(Ordering::Acquire) {
                if let Ok(n) = statsd.recv(&mut buf) {
                    let text = String::from_utf8(buf[..n].to_vec()).unwrap();
                    assert!(n <= 1400, "datagram of {n} bytes");
                    lines
                        .lock()
                        .unwrap()
                        .extend(text.lines().map(str::to_string));
                }
            }
        })
    };
    let d = Director::start(
        3000,
        10_000,
        true,
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\nstatsd = \"{statsd_addr}\"\nstatsd_interval_ms = 200\n"
        ),
        &[],
    );
    let addr = d.metrics_addr();
    let fwd = |m: &BTreeMap<String, f64>| sum(m, "rondo_worker_forwarded_packets_total{");
    d.wait_for("traffic", || fwd(&scrape(addr)) > 1000);
    // A table change under traffic: per-backend counts carry across the swap.
    d.ok("set backend web 10.1.0.1 state draining");
    let at_change = fwd(&scrape(addr));
    d.wait_for("more traffic", || fwd(&scrape(addr)) > at_change + 1000);
    assert_eq!(d.ok("stop").trim(), "forwarding stopped");

    let m = scrape(addr);
    let sent = read_pcap(&d.dir.path().join("out.pcap"));
    let n = sent.len() as u64;
    assert!(
        n > 2000,
        "{n} frames, {:?} bytes",
        std::fs::metadata(d.dir.path().join("out.pcap")).map(|m| m.len())
    );
    let mut per_backend: BTreeMap<String, u64> = BTreeMap::new();
    for f in &sent {
        let (dst, ..) = common::check_outer_v4(
            f,
            [2, 0, 0, 0, 0, 0xfe],
            [2, 0, 0, 0, 0, 1],
            [192, 0, 2, 10],
        );
        let ip = std::net::Ipv4Addr::from(dst).to_string();
        *per_backend.entry(ip).or_default() += 1;
    }
    let port = "port=\"0\",name=\"pcap:";
    let port_metric = |name: &str| sum(&m, &format!("{name}{{{port}"));
    assert_eq!(port_metric("rondo_port_tx_packets_total"), n);
    assert_eq!(
        port_metric("rondo_port_tx_bytes_total"),
        sent.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!(fwd(&m), n);
    assert_eq!(get(&m, "rondo_table_sent_packets_total{table=\"web\"}"), n);
    assert_eq!(per_backend.len(), 3, "{per_backend:?}");
    for (ip, count) in &per_backend {
        let key = format!("rondo_backend_sent_packets_total{{table=\"web\",backend=\"{ip}\"}}");
        assert_eq!(get(&m, &key), *count, "{ip}");
    }

    // What came in: the capture replayed from its start, frame by frame.
    let rx = port_metric("rondo_port_rx_packets_total");
    assert_eq!(sum(&m, "rondo_worker_rx_packets_total{"), rx);
    let fed: Vec<&Vec<u8>> = d.frames.iter().cycle().take(rx as usize).collect();
    let arp = fed
        .iter()
        .filter(|f| f.len() >= 14 && f[12..14] == [8, 6])
        .count() as u64;
    let runts = fed.iter().filter(|f| f.len() < 14).count() as u64;
    assert!(arp > 0 && runts > 0);
    assert_eq!(
        get(
            &m,
            "rondo_worker_exception_packets_total{worker=\"0\",core=\"none\",reason=\"not_ip\"}"
        ),
        arp
    );
    assert_eq!(
        get(&m, "rondo_worker_dropped_packets_total{worker=\"0\",core=\"none\",reason=\"truncated_l2\"}"),
        runts
    );
    assert_eq!(
        get(&m, "rondo_dropped_packets_total{reason=\"truncated_l2\"}"),
        runts
    );
    assert_eq!(rx - arp - runts, n, "everything else was forwarded");

    // Control side.
    assert_eq!(get(&m, "rondo_reloads_total{result=\"ok\"}"), 1);
    assert_eq!(get(&m, "rondo_reloads_total{result=\"failed\"}"), 0);
    assert_eq!(get(&m, "rondo_table_build_seconds_count"), 2);
    assert!(m["rondo_table_build_seconds_sum"] > 0.0);
    assert_eq!(get(&m, "rondo_snapshot_generation"), 2);
    assert_eq!(get(&m, "rondo_forwarding_started"), 0);
    assert_eq!(
        get(
            &m,
            "rondo_backend_state{table=\"web\",backend=\"10.1.0.1\",state=\"draining\"}"
        ),
        1
    );
    assert_eq!(
        get(
            &m,
            "rondo_backend_rows{table=\"web\",backend=\"10.1.0.1\",hop=\"primary\"}"
        ),
        0
    );
    assert_eq!(
        sum(
            &m,
            "rondo_backend_rows{table=\"web\",backend=\"10.1.0.2\",hop=\"primary\"}"
        ) + sum(
            &m,
            "rondo_backend_rows{table=\"web\",backend=\"10.1.0.3\",hop=\"primary\"}"
        ),
        65536
    );
    assert_eq!(
        get(&m, "rondo_table_backends{table=\"web\",state=\"active\"}"),
        2
    );
    assert_eq!(
        get(
            &m,
            "rondo_backend_weight{table=\"web\",backend=\"10.1.0.2\"}"
        ),
        1
    );
    assert_eq!(
        get(
            &m,
            "rondo_backend_healthy{table=\"web\",backend=\"10.1.0.3\"}"
        ),
        1
    );

    // Other requests.
    assert!(http(addr, "HEAD /metrics HTTP/1.0\r\n\r\n").ends_with("\r\n\r\n"));
    assert!(http(addr, "GET /other HTTP/1.0\r\n\r\n").starts_with("HTTP/1.0 404"));
    let r = http(addr, "POST /metrics HTTP/1.0\r\n\r\n");
    assert!(
        r.starts_with("HTTP/1.0 405") && r.contains("Allow: GET, HEAD"),
        "{r}"
    );

    // statsd: GLB's names; the deltas add up to the same totals once a push has followed
    // the stop.
    std::thread::sleep(Duration::from_millis(700));
    done.store(true, Ordering::Release);
    collector.join().unwrap();
    let lines = lines.lock().unwrap();
    let s = statsd_sums(&lines);
    let key = |name: &str, tags: &str| (format!("glb_director_ng.{name}"), tags.to_string());
    assert_eq!(s.get(&key("port.packets.tx", "port:00")), Some(&n), "{s:?}");
    assert_eq!(s.get(&key("port.packets.rx", "port:00")), Some(&rx));
    assert_eq!(s.get(&key("core.packets.total", "core:00")), Some(&rx));
    assert_eq!(
        s.get(&key("core.packets.encap.success", "core:00")),
        Some(&n)
    );
    assert_eq!(s.get(&key("core.packets.kni", "core:00")), Some(&arp));
    assert_eq!(
        s.get(&key("core.config_reload_count", "core:control")),
        Some(&1)
    );
    for (ip, count) in &per_backend {
        let tags = format!("table:web,backend:{ip}");
        assert_eq!(
            s.get(&key("backend.packets.sent", &tags)),
            Some(count),
            "{ip}"
        );
    }
}
