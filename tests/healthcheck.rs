//! Health checks against real servers.
//!
//! Loopback (runs everywhere): HTTP servers that answer 200, 500, garbage, slowly, truncated
//! or never, and closed ports: every check fails within its timeout, concurrently. Stopping
//! a server flips its backend after `trigger` rounds and its rows move to the secondary;
//! restarting it flips back. The `rondo healthcheck` binary in `--once` and continuous mode.
//!
//! Root only (counted as skipped otherwise; a failure with `CI=true`): a backend in its own network
//! namespace behind a veth pair, with a real HTTP server and a real GUE responder (it
//! decapsulates the probe and answers the inner ping from the backend's address, as a
//! backend's kernel does after glb-redirect), checked by the `rondo healthcheck` binary.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rondo::health::checker::run_round;
use rondo::health::{self, CheckError, CheckKind, Checker, CheckerOptions, Target};
use rondo::table::{
    Backend, BackendState, ForwardingTable, HealthChecks, RowPolicy, TableSpec, TABLE_ROWS,
};

// ---------------------------------------------------------------------------------------
// Test servers

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ok,
    Status500,
    /// Accepts and never answers.
    Hang,
    /// Answers bytes that are not HTTP.
    Garbage,
    /// A 200 response, one byte every 50 ms.
    Slow,
    /// Half a response head, then closes.
    Truncated,
}

/// An HTTP server on its own thread; stopping it closes the port.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(addr: SocketAddr, mode: Mode) -> Server {
        // A restart may find the port briefly busy.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("bind {addr}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("bind {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((c, _)) => {
                        let st = st.clone();
                        conns.push(std::thread::spawn(move || serve(c, mode, &st)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            drop(listener);
            for c in conns {
                let _ = c.join();
            }
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(mut c: TcpStream, mode: Mode, stop: &AtomicBool) {
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(3);
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match c.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
            Err(_) if stop.load(Ordering::Relaxed) => return,
            Err(_) => {}
        }
    }
    let _ = match mode {
        Mode::Ok => c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        Mode::Status500 => c.write_all(b"HTTP/1.1 500 Internal Server Error\r\n\r\n"),
        Mode::Garbage => c.write_all(b"\x16\x03\x01 this is not HTTP at all\r\n\r\n"),
        Mode::Truncated => c.write_all(b"HTTP/1.1 200 OK\r\nContent-"),
        Mode::Hang => {
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        }
        Mode::Slow => {
            for b in b"HTTP/1.1 200 OK\r\nServer: slow\r\n\r\n" {
                if stop.load(Ordering::Relaxed) || c.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        }
    };
}

fn closed_port() -> u16 {
    // Bound then dropped: nothing listens there any more.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http(ip: &str, port: u16) -> Target {
    Target {
        kind: CheckKind::Http {
            uri: "/health".into(),
        },
        ip: ip.parse().unwrap(),
        port,
    }
}

// ---------------------------------------------------------------------------------------
// Loopback

#[test]
fn bad_peers_fail_within_the_timeout_concurrently() {
    let servers: Vec<Server> = [
        Mode::Ok,
        Mode::Status500,
        Mode::Hang,
        Mode::Garbage,
        Mode::Slow,
        Mode::Truncated,
    ]
    .into_iter()
    .map(|m| Server::start("127.0.0.1:0".parse().unwrap(), m))
    .collect();
    let port = |i: usize| servers[i].addr.port();
    let closed = closed_port();
    let udp_closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let targets = vec![
        http("127.0.0.1", port(0)),
        http("127.0.0.1", port(1)),
        http("127.0.0.1", port(2)),
        http("127.0.0.1", port(3)),
        http("127.0.0.1", port(4)),
        http("127.0.0.1", port(5)),
        http("127.0.0.1", closed),
        Target {
            kind: CheckKind::Tcp,
            ip: "127.0.0.1".parse().unwrap(),
            port: port(2),
        },
        Target {
            kind: CheckKind::Tcp,
            ip: "127.0.0.1".parse().unwrap(),
            port: closed,
        },
        Target {
            kind: CheckKind::Gue,
            ip: "127.0.0.1".parse().unwrap(),
            port: udp_closed,
        },
    ];
    let timeout = Duration::from_millis(400);
    let started = Instant::now();
    let results = run_round(&targets, timeout, 16, None);
    let total = started.elapsed();
    assert!(
        total < timeout + Duration::from_millis(1500),
        "ten checks, three of them slow, run concurrently: {total:?}"
    );
    let r: Vec<&Result<(), CheckError>> = results.iter().map(|(_, o)| &o.result).collect();
    for (t, o) in &results {
        assert!(
            o.elapsed < timeout + Duration::from_millis(300),
            "{t} took {:?}",
            o.elapsed
        );
        println!("{t}: {:?} in {:?}", o.result, o.elapsed);
    }
    assert_eq!(r[0], &Ok(()), "200");
    assert_eq!(r[1], &Err(CheckError::Status(500)));
    assert!(
        matches!(r[2], Err(CheckError::Timeout { .. })),
        "hang: {:?}",
        r[2]
    );
    assert!(
        matches!(r[3], Err(CheckError::Malformed(_))),
        "garbage: {:?}",
        r[3]
    );
    assert!(
        matches!(r[4], Err(CheckError::Timeout { .. })),
        "slow: {:?}",
        r[4]
    );
    assert!(
        matches!(r[5], Err(CheckError::Truncated(_))),
        "truncated: {:?}",
        r[5]
    );
    assert!(
        matches!(r[6], Err(CheckError::Connect(_))),
        "closed: {:?}",
        r[6]
    );
    assert_eq!(
        r[7],
        &Ok(()),
        "tcp connect to a server that never answers still connects"
    );
    assert!(matches!(r[8], Err(CheckError::Connect(_))));
    // GUE: no raw socket without root, else nothing answers (port unreachable or timeout).
    assert!(r[9].is_err(), "gue to a closed port: {:?}", r[9]);
    // Garbage and refusals fail fast, not at the timeout.
    for i in [1, 3, 5, 6, 8] {
        assert!(
            results[i].1.elapsed < timeout / 2,
            "{} took {:?}",
            results[i].0,
            results[i].1.elapsed
        );
    }
}

const KEY: [u8; 16] = *b"0123456789abcdef";

fn backend(ip: &str, http: Option<u16>) -> Backend {
    Backend {
        ip: ip.parse().unwrap(),
        state: BackendState::Active,
        healthy: true,
        weight: 1,
        healthchecks: HealthChecks {
            http,
            http_uri: Some("/health".into()),
            tcp: None,
            gue: None,
        },
    }
}

fn spec(port: u16) -> TableSpec {
    TableSpec {
        name: "web".into(),
        hash_key: KEY,
        seed: Some(*b"fedcba9876543210"),
        binds: vec![],
        quic_lb: None,
        backends: vec![
            backend("127.0.0.1", Some(port)),
            backend("127.0.0.2", None),
            backend("127.0.0.3", None),
        ],
    }
}

/// Rows whose primary was backend 0 now have their old secondary as primary; others are unchanged.
fn assert_moved_to_secondary(before: &ForwardingTable, after: &ForwardingTable) -> usize {
    let mut moved = 0;
    for r in 0..TABLE_ROWS {
        let (b, a) = (before.row(r as u16), after.row(r as u16));
        if b[0] == 0 {
            assert_eq!(a[0], b[1], "row {r}: {b:?} -> {a:?}");
            moved += 1;
        } else {
            assert_eq!(a[0], b[0], "row {r}: {b:?} -> {a:?}");
        }
    }
    moved
}

fn recv_event(rx: &mpsc::Receiver<health::HealthEvent>, secs: u64) -> health::HealthEvent {
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("a health event within the deadline")
}

#[test]
fn stopping_the_server_flips_after_trigger_rounds_and_rows_move() {
    let mut server = Server::start("127.0.0.1:0".parse().unwrap(), Mode::Ok);
    let addr = server.addr;
    let trigger = 3;
    let opts = CheckerOptions {
        interval: Duration::from_millis(100),
        // Refusals are fast; a generous timeout keeps a loaded machine from failing checks.
        timeout: Duration::from_millis(500),
        trigger,
        threads: 4,
        // Keep off core 0 when there is another core to go to.
        avoid_cores: vec![0],
    };
    let mut glb = vec![ForwardingTable::build(spec(addr.port()), RowPolicy::Glb).unwrap()];
    let mut native =
        vec![ForwardingTable::build(spec(addr.port()), RowPolicy::Native { hops: 2 }).unwrap()];
    let (glb0, native0) = (glb[0].clone(), native[0].clone());
    let (checker, events) = Checker::start(opts, &[spec(addr.port())]).unwrap();

    // Healthy as configured: a few rounds, no event.
    let deadline = Instant::now() + Duration::from_secs(10);
    while checker.snapshot().rounds < 3 {
        assert!(Instant::now() < deadline, "checker makes no rounds");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(events.try_recv().is_err(), "no flip while the server is up");
    let snap = checker.snapshot();
    assert_eq!(snap.counts(), (1, 0));
    assert!(snap.to_string().contains("http://127.0.0.1:"), "{snap}");

    // Stop: unhealthy after `trigger` failing rounds.
    let stopped_at = checker.snapshot().rounds;
    server.stop();
    let down = recv_event(&events, 10);
    let rounds = checker.snapshot().rounds - stopped_at;
    assert!(!down.healthy);
    assert_eq!((down.table.as_str(), down.backend), ("web", addr.ip()));
    assert!(down.reason.contains("connect"), "{}", down.reason);
    assert!(
        (u64::from(trigger)..=u64::from(trigger) + 2).contains(&rounds),
        "flipped after {rounds} rounds, trigger is {trigger}"
    );
    // The chain: flip -> unhealthy in the config -> tables rebuilt -> rows on the secondary.
    assert_eq!(
        health::rebuild(&mut glb, std::slice::from_ref(&down)).unwrap(),
        1
    );
    assert_eq!(
        health::rebuild(&mut native, std::slice::from_ref(&down)).unwrap(),
        1
    );
    assert!(!glb[0].spec.backends[0].healthy);
    let moved = assert_moved_to_secondary(&glb0, &glb[0]);
    assert!(
        moved > TABLE_ROWS / 5,
        "backend 0 had about a third of the rows: {moved}"
    );
    assert_moved_to_secondary(&native0, &native[0]);
    // GLB rule: the old primary becomes the secondary.
    for r in (0..TABLE_ROWS).step_by(97) {
        if glb0.row(r as u16)[0] == 0 {
            assert_eq!(glb[0].row(r as u16), [glb0.row(r as u16)[1], 0]);
        }
    }

    // Restart on the same port: healthy again after `trigger` passing rounds.
    let _server = Server::start(addr, Mode::Ok);
    let up = recv_event(&events, 10);
    assert!(up.healthy, "{up:?}");
    assert_eq!(
        health::rebuild(&mut glb, std::slice::from_ref(&up)).unwrap(),
        1
    );
    assert_eq!(health::rebuild(&mut native, &[up]).unwrap(), 1);
    assert_eq!(glb[0], glb0, "rows are back");
    assert_eq!(native[0], native0);
    assert_eq!(checker.snapshot().backends[0].flips, 2);
    let stop_started = Instant::now();
    checker.stop();
    assert!(stop_started.elapsed() < Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------------
// The standalone binary

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait for a child with a deadline; kill it when the deadline passes.
fn wait_with_deadline(p: &mut Proc, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "rondo healthcheck did not finish in {secs} s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rondo() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rondo"));
    c.env("RONDO_LOG", "info");
    c
}

fn table_json(name: &str, backends: &[String]) -> String {
    format!(
        r#"{{"name": "{name}", "hash_key": "12345678901234561234567890123456",
            "seed": "34567890123456783456789012345678",
            "binds": [{{"ip": "1.1.1.1", "proto": "tcp", "port": 80}}],
            "backends": [{}]}}"#,
        backends.join(", ")
    )
}

fn healthy_of(path: &Path) -> Vec<Vec<serde_json::Value>> {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["backends"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["healthy"].clone())
                .collect()
        })
        .collect()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn standalone_once_writes_the_checked_table_and_reloads() {
    let server = Server::start("127.0.0.1:0".parse().unwrap(), Mode::Ok);
    let port = server.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("forwarding_table.src.json");
    let dst = dir.path().join("forwarding_table.checked.json");
    let marker = dir.path().join("reloaded");
    let backends = [
        format!(
            r#"{{"ip": "127.0.0.1", "state": "active", "healthchecks": {{"http": {port}, "tcp": {port}}}}}"#
        ),
        // Loopback, but the server listens on 127.0.0.1 only: refused.
        format!(
            r#"{{"ip": "127.0.0.2", "state": "active", "healthy": true, "healthchecks": {{"http": {port}}}}}"#
        ),
        r#"{"ip": "127.0.0.3", "state": "inactive", "healthchecks": {"http": 1}}"#.to_string(),
        r#"{"ip": "127.0.0.4", "state": "draining", "healthy": false, "healthchecks": {}}"#
            .to_string(),
    ];
    std::fs::write(
        &src,
        format!(
            r#"{{"healthchecks": {{"timeout_ms": 500}}, "tables": [{}]}}"#,
            table_json("web", &backends)
        ),
    )
    .unwrap();
    // GLB's config format, unchanged (relative paths: next to the config).
    let cfg = dir.path().join("healthcheck.conf");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"forwarding_table": {{"src": "forwarding_table.src.json", "dst": "{}"}},
                "reload_command": "echo reloaded >> '{}'"}}"#,
            dst.display(),
            marker.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut p = Proc(
        rondo()
            .args(["healthcheck", "--once", "--config"])
            .arg(&cfg)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = wait_with_deadline(&mut p, 20);
    let mut out = String::new();
    p.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(status.success(), "{status}: {out}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        healthy_of(&dst),
        vec![vec![
            serde_json::Value::Bool(true),
            serde_json::Value::Bool(false),
            serde_json::Value::Bool(false),
            serde_json::Value::Bool(true),
        ]]
    );
    assert_eq!(lines(&marker), 1, "the reload command ran once");
    assert!(out.contains("web 127.0.0.1 healthy\n"), "{out}");
    assert!(
        out.contains("web 127.0.0.2 unhealthy (http://127.0.0.2:"),
        "{out}"
    );
    assert!(
        out.contains("web 127.0.0.3 unhealthy (inactive: not checked)"),
        "{out}"
    );
    // The checked table is a valid forwarding table.
    assert!(rondo::config::load_tables(&dst).is_ok());
}

#[test]
fn standalone_bad_config_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hc.toml");
    std::fs::write(
        &cfg,
        "[forwarding_table]\nsrc = \"a.json\"\ndst = \"b.json\"\n[healthchecks]\ntrigger = 0\n",
    )
    .unwrap();
    let out = rondo()
        .args(["healthcheck", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hc.toml:5: healthchecks.trigger: expected an integer 1..=1000, got 0"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        "[forwarding_table]\nsrc = \"missing.json\"\ndst = \"b.json\"\n",
    )
    .unwrap();
    let out = rondo()
        .args(["healthcheck", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.json: cannot read"), "{err}");
}

/// Poll `path` until `pred` holds on its healthy values, or panic at the deadline.
fn wait_for(path: &Path, secs: u64, what: &str, pred: impl Fn(&[Vec<serde_json::Value>]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if path.exists() && pred(&healthy_of(path)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(p: &Proc) {
    let ok = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Write `src.json` with `backends` as table "web" and a TOML config (100 ms interval,
/// 500 ms timeout, `trigger`, `hold_ms`; the reload command appends a line to `marker`)
/// in `dir`, and start `rondo healthcheck` on it.
fn start_standalone(
    dir: &Path,
    backends: &[String],
    marker: &Path,
    trigger: u32,
    hold_ms: u64,
) -> Proc {
    std::fs::write(
        dir.join("src.json"),
        format!(r#"{{"tables": [{}]}}"#, table_json("web", backends)),
    )
    .unwrap();
    let cfg = dir.join("hc.toml");
    std::fs::write(
        &cfg,
        format!(
            "reload_command = \"echo x >> '{}'\"\n[forwarding_table]\nsrc = \"src.json\"\ndst = \"checked.json\"\n\
             [healthchecks]\ninterval_ms = 100\ntimeout_ms = 500\ntrigger = {trigger}\nhold_ms = {hold_ms}\n",
            marker.display()
        ),
    )
    .unwrap();
    Proc(
        rondo()
            .args(["healthcheck", "--config"])
            .arg(&cfg)
            .spawn()
            .unwrap(),
    )
}

#[test]
fn standalone_follows_a_server_going_down_and_up() {
    let mut server = Server::start("127.0.0.1:0".parse().unwrap(), Mode::Ok);
    let addr = server.addr;
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("checked.json");
    let marker = dir.path().join("reloads");
    let backends = [
        format!(
            r#"{{"ip": "127.0.0.1", "state": "active", "healthchecks": {{"http": {}, "http_uri": "/health"}}}}"#,
            addr.port()
        ),
        r#"{"ip": "127.0.0.2", "state": "active", "healthchecks": {}}"#.to_string(),
    ];
    let mut p = start_standalone(dir.path(), &backends, &marker, 3, 0);
    let up = |h: &[Vec<serde_json::Value>]| h[0][0] == true;
    wait_for(&dst, 10, "first write", up);
    // The reload command runs right after the write.
    wait_for(&dst, 10, "first reload", |_| lines(&marker) == 1);
    let stopped = Instant::now();
    server.stop();
    wait_for(&dst, 10, "unhealthy after the server stopped", |h| {
        h[0][0] == false
    });
    // Three failing rounds 100 ms apart: not before two intervals.
    assert!(
        stopped.elapsed() >= Duration::from_millis(180),
        "flipped after {:?}",
        stopped.elapsed()
    );
    let _server = Server::start(addr, Mode::Ok);
    wait_for(&dst, 10, "healthy after the restart", up);
    assert_eq!(healthy_of(&dst)[0][1], true, "no checks: healthy");
    wait_for(&dst, 10, "one reload per change", |_| lines(&marker) == 3);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(&marker), 3, "no reload without a change");
    sigterm(&p);
    let status = wait_with_deadline(&mut p, 10);
    assert!(status.success(), "clean stop on SIGTERM: {status}");
}

#[test]
fn standalone_holds_writes_apart_like_glb() {
    let mut server = Server::start("127.0.0.1:0".parse().unwrap(), Mode::Ok);
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("checked.json");
    let marker = dir.path().join("reloads");
    let backends = [format!(
        r#"{{"ip": "127.0.0.1", "state": "active", "healthchecks": {{"http": {}}}}}"#,
        server.addr.port()
    )];
    let mut p = start_standalone(dir.path(), &backends, &marker, 1, 1500);
    wait_for(&dst, 10, "first write", |h| h[0][0] == true);
    let first = Instant::now();
    // Trigger 1: the next round flips, but the write waits for the hold.
    server.stop();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(healthy_of(&dst)[0][0], true, "held");
    assert_eq!(lines(&marker), 1);
    wait_for(&dst, 10, "the held change", |h| h[0][0] == false);
    assert!(
        first.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        first.elapsed()
    );
    wait_for(&dst, 10, "its reload", |_| lines(&marker) == 2);
    sigterm(&p);
    assert!(wait_with_deadline(&mut p, 10).success());
}

// ---------------------------------------------------------------------------------------
// A backend in a network namespace (root)

const HELPER_ENV: &str = "RONDO_HC_BACKEND";

/// The backend side, run by `backend_in_a_namespace_*` inside the namespace (it re-runs this
/// test binary there). Serves HTTP on :8080 and answers GUE probes on :19523 until its stdin
/// closes; `http off` / `http on` on stdin stop and start the HTTP server.
#[test]
#[ignore = "helper: started by backend_in_a_namespace_is_checked_over_a_real_link"]
fn backend_helper() {
    let Ok(ip) = std::env::var(HELPER_ENV) else {
        // Not a test of its own (it is ignored): without the variable there is nothing to serve.
        return;
    };
    let ip: Ipv4Addr = ip.parse().unwrap();
    let http_addr = SocketAddr::new(IpAddr::V4(ip), 8080);
    let mut http = Some(Server::start(http_addr, Mode::Ok));
    let stop = Arc::new(AtomicBool::new(false));
    let gue = {
        let stop = stop.clone();
        let udp = UdpSocket::bind((ip, 19523)).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        std::thread::spawn(move || gue_responder(&udp, IpAddr::V4(ip), &stop))
    };
    println!("helper ready");
    std::io::stdout().flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(cmd) if cmd == "http off" => drop(http.take()),
            Ok(cmd) if cmd == "http on" => drop(http.replace(Server::start(http_addr, Mode::Ok))),
            Ok(other) => panic!("unknown command {other:?}"),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        println!(
            "helper done: http {}",
            if http.is_some() { "on" } else { "off" }
        );
        std::io::stdout().flush().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    gue.join().unwrap();
}

/// Decapsulate GUE probes and answer the inner ICMP (or ICMPv6) echo request from `me` with a
/// raw socket, as the backend's kernel does once glb-redirect hands it the inner packet.
fn gue_responder(udp: &UdpSocket, me: IpAddr, stop: &AtomicBool) {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let raw = match me {
        IpAddr::V4(_) => Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)),
        IpAddr::V6(_) => Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)),
    }
    .unwrap();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = udp.recv(&mut buf) else { continue };
        let gue = &buf[..n];
        // GUE v0, not control, GLB private data with hop_count + 1 == hlen.
        if n < 8 || gue[0] >> 5 != 0 || usize::from(gue[0] & 0x1f) != usize::from(gue[7]) + 1 {
            continue;
        }
        let inner = &gue[4 + 4 * usize::from(gue[0] & 0x1f)..];
        let (icmp, to) = match me {
            IpAddr::V4(me) => {
                if gue[1] != 4
                    || inner.len() < 28
                    || inner[0] != 0x45
                    || inner[9] != 1
                    || inner[16..20] != me.octets()
                    || inner[20] != 8
                {
                    continue;
                }
                let to = Ipv4Addr::new(inner[12], inner[13], inner[14], inner[15]);
                let mut reply = inner[20..].to_vec();
                reply[0] = 0;
                reply[2..4].copy_from_slice(&[0, 0]);
                let c = common::csum(&[&reply]);
                reply[2..4].copy_from_slice(&c.to_be_bytes());
                (reply, IpAddr::V4(to))
            }
            IpAddr::V6(me) => {
                if gue[1] != 41
                    || inner.len() < 48
                    || inner[0] >> 4 != 6
                    || inner[6] != 58
                    || inner[24..40] != me.octets()
                    || inner[40] != 128
                {
                    continue;
                }
                let to: [u8; 16] = inner[8..24].try_into().unwrap();
                let mut reply = inner[40..].to_vec();
                reply[0] = 129;
                // The kernel fills in the checksum of raw ICMPv6 sockets.
                reply[2..4].copy_from_slice(&[0, 0]);
                (reply, IpAddr::V6(to.into()))
            }
        };
        raw.send_to(&icmp, &SockAddr::from(SocketAddr::new(to, 0)))
            .unwrap();
    }
}

#[test]
fn gue_probe_is_answered_on_loopback_v4_and_v6() {
    if let Err(why) = common::veth::privileged() {
        common::skip(&why);
        return;
    }
    for ip in ["127.0.0.1", "::1"] {
        let ip: IpAddr = ip.parse().unwrap();
        let udp = match UdpSocket::bind((ip, 0)) {
            Ok(u) => u,
            Err(e) => {
                common::skip(&format!("{ip}: {e}"));
                continue;
            }
        };
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let port = udp.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let responder = std::thread::spawn(move || gue_responder(&udp, ip, &st));
        let t = Target {
            kind: CheckKind::Gue,
            ip,
            port,
        };
        let started = Instant::now();
        assert_eq!(
            rondo::health::check::run(&t, Duration::from_secs(2)),
            Ok(()),
            "{t}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        // Many at once: each reply reaches its own probe.
        let many = vec![t.clone(); 8];
        for (t, o) in run_round(&many, Duration::from_secs(2), 8, None) {
            assert_eq!(o.result, Ok(()), "{t}");
        }
        stop.store(true, Ordering::Relaxed);
        responder.join().unwrap();
        // Nobody answers now: port unreachable, fast.
        let r = rondo::health::check::run(&t, Duration::from_secs(2));
        assert!(
            matches!(&r, Err(CheckError::PortUnreachable(a)) if a.port() == port),
            "{r:?}"
        );
    }
}

struct Helper {
    child: Proc,
    lines: mpsc::Receiver<String>,
}

impl Helper {
    fn start(ns: &str, ip: &str) -> Helper {
        let exe = std::env::current_exe().unwrap();
        let mut child = Proc(
            Command::new("ip")
                .args(["netns", "exec", ns])
                .arg(&exe)
                .args([
                    "--exact",
                    "backend_helper",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(HELPER_ENV, ip)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let out = child.0.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let h = Helper { child, lines };
        h.expect("helper ready");
        h
    }

    fn expect(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return,
                Ok(_) => {}
                Err(e) => panic!("helper: no {what:?}: {e}"),
            }
        }
    }

    fn send(&mut self, cmd: &str) {
        let stdin = self.child.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        self.expect("helper done");
    }
}

/// Rows of table `t` in a GLB .bin: (primary, secondary) addresses.
fn bin_rows(path: &Path, t: usize) -> Vec<([u8; 4], [u8; 4])> {
    let bin = std::fs::read(path).unwrap();
    (0..TABLE_ROWS)
        .map(|r| common::bin_row(&bin, t, r))
        .collect()
}

#[test]
fn backend_in_a_namespace_is_checked_over_a_real_link() {
    let Some(v) = common::veth::Veth::new('h') else {
        return;
    };
    let ns = match common::veth::Netns::new('h') {
        Ok(ns) => ns,
        Err(e) => {
            common::skip(&format!("cannot create a network namespace: {e}"));
            return;
        }
    };
    let net = format!("10.77.{}", std::process::id() % 250 + 1);
    let (host, be) = (format!("{net}.1"), format!("{net}.2"));
    common::veth::ip(&["addr", "add", &format!("{host}/24"), "dev", &v.a]).unwrap();
    ns.adopt(&v.b).unwrap();
    ns.ip(&["addr", "add", &format!("{be}/24"), "dev", &v.b])
        .unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let mut helper = Helper::start(&ns.name, &be);

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.json");
    let dst = dir.path().join("checked.json");
    let bin = dir.path().join("checked.bin");
    let marker = dir.path().join("reloads");
    let a = format!(
        r#"{{"ip": "{be}", "state": "active", "healthchecks": {{"http": 8080, "http_uri": "/health", "gue": 19523}}}}"#
    );
    let c = format!(r#"{{"ip": "{net}.3", "state": "active", "healthchecks": {{}}}}"#);
    let d = format!(r#"{{"ip": "{net}.4", "state": "active", "healthchecks": {{}}}}"#);
    // Nobody at .9 (no ARP answer): both checks time out.
    let gone = format!(
        r#"{{"ip": "{net}.9", "state": "active", "healthy": true, "healthchecks": {{"http": 8080, "gue": 19523}}}}"#
    );
    // The backend, but a GUE port nobody listens on: ICMP port unreachable.
    let bad_gue = format!(
        r#"{{"ip": "{be}", "state": "active", "healthchecks": {{"gue": 19524, "tcp": 8080}}}}"#
    );
    let tables = [
        table_json("web", &[a, c.clone(), d]),
        table_json("gone", &[gone, c.clone()]),
        table_json("badgue", &[bad_gue, c]),
    ];
    std::fs::write(&src, format!(r#"{{"tables": [{}]}}"#, tables.join(", "))).unwrap();
    let reload = format!(
        "'{}' table build '{}' '{}' && echo x >> '{}'",
        env!("CARGO_BIN_EXE_rondo"),
        dst.display(),
        bin.display(),
        marker.display()
    );
    let write_cfg = |name: &str, extra: &str| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                r#"{{"forwarding_table": {{"src": "{}", "dst": "{}"}}, "reload_command": {},
                    "healthchecks": {{"timeout_ms": 300 {extra}}}}}"#,
                src.display(),
                dst.display(),
                serde_json::Value::String(reload.clone())
            ),
        )
        .unwrap();
        p
    };

    // One round.
    let once = write_cfg("once.json", "");
    let mut p = Proc(
        rondo()
            .args(["healthcheck", "--once", "--config"])
            .arg(&once)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = wait_with_deadline(&mut p, 30);
    let mut out = String::new();
    p.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(status.success(), "{status}: {out}");
    let t = serde_json::Value::Bool(true);
    let f = serde_json::Value::Bool(false);
    assert_eq!(
        healthy_of(&dst),
        vec![
            vec![t.clone(), t.clone(), t.clone()],
            vec![f.clone(), t.clone()],
            vec![f.clone(), t.clone()],
        ],
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "gone {net}.9 unhealthy (http://{net}.9:8080/: no answer after"
        )),
        "{out}"
    );
    assert!(out.contains("port unreachable"), "{out}");
    assert_eq!(lines(&marker), 1, "the reload command ran");
    let rows_up = bin_rows(&bin, 0);

    // Continuous: the HTTP server stops and starts.
    let cont = write_cfg(
        "cont.json",
        r#", "interval_ms": 200, "trigger": 3, "hold_ms": 0"#,
    );
    let mut p = Proc(
        rondo()
            .args(["healthcheck", "--config"])
            .arg(&cont)
            .spawn()
            .unwrap(),
    );
    wait_for(&dst, 10, "first write", |_| lines(&marker) >= 2);
    let stopped = Instant::now();
    helper.send("http off");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        healthy_of(&dst)[0][0],
        t,
        "not flipped before `trigger` rounds"
    );
    wait_for(&dst, 15, "unhealthy after the HTTP server stopped", |h| {
        h[0][0] == false
    });
    assert!(
        stopped.elapsed() >= Duration::from_millis(350),
        "{:?}",
        stopped.elapsed()
    );
    wait_for(&dst, 10, "reload after the flip", |_| lines(&marker) >= 3);
    // The reload command built the .bin: the backend's rows went to their secondary.
    let be_ip: Ipv4Addr = be.parse().unwrap();
    let rows_down = bin_rows(&bin, 0);
    let mut moved = 0;
    for (r, (before, after)) in rows_up.iter().zip(&rows_down).enumerate() {
        if before.0 == be_ip.octets() {
            assert_eq!(*after, (before.1, before.0), "row {r}");
            moved += 1;
        } else {
            assert_eq!(after, before, "row {r}");
        }
    }
    assert!(moved > TABLE_ROWS / 5, "{moved}");
    helper.send("http on");
    wait_for(&dst, 15, "healthy after the HTTP server restarted", |h| {
        h[0][0] == true
    });
    wait_for(&dst, 10, "reload after the flip back", |_| {
        lines(&marker) >= 4
    });
    assert_eq!(bin_rows(&bin, 0), rows_up, "rows are back");
    sigterm(&p);
    assert!(wait_with_deadline(&mut p, 10).success());
}
