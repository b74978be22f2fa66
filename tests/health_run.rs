//! `rondo run` with built-in health checks: a backend whose TCP check target goes away is
//! marked down after GLB's dampening (trigger 3 at 2 s intervals), its rows move to the
//! secondaries, and it comes back when the target returns. Loopback only (127.0.0.x).

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::director::{traffic, write_pcap, Session};

fn backend_line(s: &mut Session, ip: &str) -> String {
    let (ok, text) = s.cmd("show backends web");
    assert!(ok, "{text}");
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(ip))
        .unwrap_or_else(|| panic!("no {ip} in {text}"))
        .to_string()
}

/// Column 6 of a backend line: its share of rows as primary, in percent.
fn primary_share(line: &str) -> f64 {
    line.split_whitespace()
        .nth(5)
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap()
}

#[test]
fn a_failing_tcp_check_moves_rows_and_a_recovered_one_brings_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.11:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &traffic(16));
    let socket = dir.path().join("rondo.sock");
    let cfg = dir.path().join("director.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[[ports]]
spec = "pcap:{},loop,pps=200"

[runtime]
workers = 1
idle = "sleep"

[console]
socket = "{}"

[metrics]
listen = "off"

[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{{ ip = "1.1.1.1", proto = "tcp", port = 80 }}]
backends = [
  {{ ip = "127.0.0.11", healthchecks = {{ tcp = {port} }} }},
  {{ ip = "127.0.0.12" }},
  {{ ip = "127.0.0.13" }},
]
"#,
            input.display(),
            socket.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args(["run", "--stats-interval", "0", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let end = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < end, "no console: {}", logs());
        assert!(child.try_wait().unwrap().is_none(), "exited: {}", logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = Session::open(&socket);
    let healthy_share = primary_share(&backend_line(&mut s, "127.0.0.11"));
    assert!(
        healthy_share > 20.0,
        "{}",
        backend_line(&mut s, "127.0.0.11")
    );

    // Wait for `what` within 30 s (trigger 3 x interval 2 s = 6 s, plus the check timeout).
    let mut wait = |what: &str, f: &dyn Fn(&str) -> bool| {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let line = backend_line(&mut s, "127.0.0.11");
            if f(&line) {
                return line;
            }
            assert!(Instant::now() < end, "{what}: {line}\n{}", logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    drop(listener); // the check target goes away: connections are refused
    let down = wait("backend marked down", &|l| primary_share(l) == 0.0);
    assert!(down.contains("down"), "{down}");
    let listener = TcpListener::bind(("127.0.0.11", port)).unwrap();
    let up = wait("backend back up", &|l| primary_share(l) > 20.0);
    assert_eq!(
        primary_share(&up),
        healthy_share,
        "the same rows come back: {up}"
    );
    drop(listener);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        logs().contains("health changed; table rebuilt"),
        "{}",
        logs()
    );
}
