//! One director per port, and a start that fails forwards nothing: `rondo run` on a veth
//! whose director end lives in a network namespace made for the test, while the test
//! plays the router on the other end, sending VIP traffic all along and watching for
//! encapsulated packets. Needs root (CI is root); otherwise skips (and fails under CI).

mod common;

use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::veth::{Netns, Veth};
use common::*;
use rondo::drivers::{Burst, Port, RxQueue, TxQueue};

/// The director's outer source address: what marks a packet it forwarded.
const OUTER_SRC: [u8; 4] = [192, 0, 2, 10];

fn config(iface: &str) -> String {
    format!(
        r#"[[ports]]
spec = "af_packet:{iface}"

[runtime]
workers = 1
idle = "sleep"

[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{{ ip = "1.1.1.1", proto = "tcp", port = 80 }}]
backends = [{{ ip = "10.1.0.1" }}, {{ ip = "10.1.0.2" }}]
"#
    )
}

/// A veth pair with its `a` end in a namespace of its own, a director config for it.
struct Wire {
    ns: Netns,
    v: Veth,
    dir: tempfile::TempDir,
    cfg: PathBuf,
}

impl Wire {
    fn new(tag: char) -> Option<Wire> {
        let v = Veth::new(tag)?;
        let ns = match Netns::new(tag) {
            Ok(ns) => ns,
            Err(e) => {
                common::skip(&format!("cannot create a network namespace: {e}"));
                return None;
            }
        };
        ns.adopt(&v.a).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("director.toml");
        std::fs::write(&cfg, config(&v.a)).unwrap();
        Some(Wire { ns, v, dir, cfg })
    }

    /// `rondo run` in the namespace (`ip netns exec` execs rondo: same pid), its console at
    /// `console`, no metrics endpoint, readiness to `notify`.
    fn director(&self, console: &Path, notify: Option<&Path>, log: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns.name, env!("CARGO_BIN_EXE_rondo")])
            .args(["run", "--stats-interval", "0", "--metrics-listen", "off"])
            .arg("--console-socket")
            .arg(console)
            .arg("--config")
            .arg(&self.cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        if let Some(n) = notify {
            c.env("NOTIFY_SOCKET", n);
        }
        c
    }

    fn notify(&self, name: &str) -> (PathBuf, UnixDatagram) {
        let p = self.dir.path().join(name);
        let l = UnixDatagram::bind(&p).unwrap();
        l.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        (p, l)
    }
}

/// Kills the director on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait (bounded) for a director that must exit by itself.
fn exits(mut c: Child, log: &Path) -> Output {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = c.try_wait().unwrap() {
            return Output {
                status,
                stdout: Vec::new(),
                stderr: std::fs::read(log).unwrap_or_default(),
            };
        }
        if Instant::now() > end {
            let _ = c.kill();
            let _ = c.wait();
            panic!(
                "the director did not exit: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The router's side: sends SYNs to the VIP at the director's MAC until stopped, and counts
/// what comes back encapsulated by a director (outer IPv4 from [`OUTER_SRC`]).
struct Router {
    stop: Arc<AtomicBool>,
    encapsulated: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Router {
    fn start(iface: &str, director_mac: [u8; 6]) -> Router {
        let (port, mut rx, mut tx) = common::veth::test_port(iface, 4096, 32);
        let (stop, encapsulated, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, e, n) = (stop.clone(), encapsulated.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(120);
            let mut i = 0u32;
            let mut burst = Burst::new();
            while !s.load(Ordering::Acquire) && Instant::now() < end {
                let mut b = Burst::new();
                for _ in 0..8 {
                    let mut f = client_syn(i % 1000);
                    f[0..6].copy_from_slice(&director_mac);
                    if let Some(buf) = port.alloc(&f) {
                        let _ = b.push(buf);
                    }
                    i += 1;
                }
                let k = b.len() as u64;
                tx.tx_burst(&mut b);
                tx.flush();
                n.fetch_add(k - b.len() as u64, Ordering::Relaxed);
                b.drain().for_each(drop);
                rx.rx_burst(&mut burst);
                for f in burst.drain() {
                    use rondo::datapath::PacketBuf;
                    let d = f.data();
                    if d.len() >= 34 && d[12..14] == [0x08, 0x00] && d[26..30] == OUTER_SRC {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        Router {
            stop,
            encapsulated,
            sent,
            thread: Some(thread),
        }
    }

    fn encapsulated(&self) -> u64 {
        self.encapsulated.load(Ordering::Relaxed)
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_start_that_fails_on_a_busy_console_socket_forwards_nothing() {
    let Some(w) = Wire::new('e') else { return };
    let router = Router::start(&w.v.b, mac_of_in(&w.ns, &w.v.a));
    wait_until("the router sending", 10, || {
        router.sent.load(Ordering::Relaxed) > 100
    });
    // The console socket is busy: something listens there, and is slow to answer (its
    // backlog is full), so the director's check that the socket is live takes a while:
    // long enough for a director already forwarding to forward this traffic.
    let busy = w.dir.path().join("busy.sock");
    let holder = UnixListener::bind(&busy).unwrap();
    let mut queued = Vec::new();
    for _ in 0..10_000 {
        let s = socket2::Socket::new(
            socket2::Domain::UNIX,
            socket2::Type::STREAM.nonblocking(),
            None,
        )
        .unwrap();
        match s.connect(&socket2::SockAddr::unix(&busy).unwrap()) {
            Ok(()) => queued.push(s),
            Err(_) => break,
        }
    }
    assert!(!queued.is_empty(), "the holder's backlog filled");
    let log = w.dir.path().join("log1");
    let child = w.director(&busy, None, &log).spawn().unwrap();
    // Give a director that starts its data plane before checking the console socket
    // (as rondo did) the time to say so, and then a second to forward; one that checks
    // first waits on the holder all along.
    let _ = poll(Duration::from_secs(5), Duration::from_millis(10), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("data plane started"))
    });
    std::thread::sleep(Duration::from_millis(1000));
    // Answer: the director's check connects, finds the socket live and gives up.
    holder.set_nonblocking(true).unwrap();
    let answered = Arc::new(AtomicBool::new(false));
    let done = answered.clone();
    let drain = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end && !done.load(Ordering::Acquire) {
            match holder.accept() {
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    let out = exits(child, &log);
    answered.store(true, Ordering::Release);
    drain.join().unwrap();
    drop(queued);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&busy.display().to_string()) && err.contains("another rondo"),
        "the error names the busy socket: {err}"
    );
    // Anything it forwarded would be on the wire by now.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        router.encapsulated(),
        0,
        "a director that failed to start forwarded packets: {err}"
    );

    // The same director with a free console socket does forward this traffic.
    let (notify, listener) = w.notify("notify");
    let log = w.dir.path().join("log2");
    let sock = w.dir.path().join("free.sock");
    let _d = Running(w.director(&sock, Some(&notify), &log).spawn().unwrap());
    assert_eq!(recv_notify(&listener, &log), b"READY=1");
    wait_until("encapsulated packets from the running director", 20, || {
        router.encapsulated() > 0
    });
}

/// The MAC of `iface` in namespace `ns`.
fn mac_of_in(ns: &Netns, iface: &str) -> [u8; 6] {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "cat"])
        .arg(format!("/sys/class/net/{iface}/address"))
        .output()
        .unwrap();
    let m: rondo::wire::MacAddr = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    m.0
}

#[test]
fn a_second_director_on_one_interface_is_refused_until_the_first_is_gone() {
    let Some(w) = Wire::new('k') else { return };
    let (notify, listener) = w.notify("notify");
    let log1 = w.dir.path().join("log1");
    let mut first = Running(
        w.director(&w.dir.path().join("a.sock"), Some(&notify), &log1)
            .spawn()
            .unwrap(),
    );
    assert_eq!(recv_notify(&listener, &log1), b"READY=1");

    // The second: its own console socket, no metrics; it would start but for the claim.
    let log2 = w.dir.path().join("log2");
    let second = w
        .director(&w.dir.path().join("b.sock"), Some(&notify), &log2)
        .spawn()
        .unwrap();
    let out = exits(second, &log2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let pid = first.0.id();
    assert!(
        err.contains(&format!("interface {}", w.v.a)) && err.contains(&format!("pid {pid}")),
        "the error names the interface and the holder (pid {pid}): {err}"
    );
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        listener.recv(&mut [0u8; 64]).is_err(),
        "the refused director said READY"
    );

    // Once the first is gone, even by SIGKILL, the interface is free again.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let log3 = w.dir.path().join("log3");
    let _third = Running(
        w.director(&w.dir.path().join("c.sock"), Some(&notify), &log3)
            .spawn()
            .unwrap(),
    );
    assert_eq!(recv_notify(&listener, &log3), b"READY=1");
}

#[test]
fn a_second_run_writing_the_same_capture_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    common::director::write_pcap(&input, &common::director::traffic(100));
    let out = dir.path().join("out.pcap");
    let port = format!("pcap:{},{},loop", input.display(), out.display());
    let cfg = dir.path().join("director.toml");
    std::fs::write(
        &cfg,
        common::director::config(&port, &dir.path().join("a.sock"), "", ""),
    )
    .unwrap();
    let (notify, listener) = {
        let p = dir.path().join("notify");
        let l = UnixDatagram::bind(&p).unwrap();
        l.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        (p, l)
    };
    let run = |console: &str, log: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rondo"));
        c.args(["run", "--stats-interval", "0", "--metrics-listen", "off"])
            .args(["--console-socket", console, "--duration", "60", "--config"])
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &notify)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        c
    };
    let log1 = dir.path().join("log1");
    let first = Running(run("off", &log1).spawn().unwrap());
    assert_eq!(recv_notify(&listener, &log1), b"READY=1");
    let log2 = dir.path().join("log2");
    let o = exits(run("off", &log2).spawn().unwrap(), &log2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("output file is already written")
            && err.contains(&format!("pid {}", first.0.id())),
        "{err}"
    );
}
