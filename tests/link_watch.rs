//! `rondo run` on a veth whose link goes down and up, and whose interface is deleted and
//! recreated, under traffic: the director follows the link (log, console, metrics) and
//! keeps forwarding through a down/up; a deleted interface makes it stop and exit with the
//! documented status, and a restart on the recreated interface forwards again. Needs root
//! (CI is root); otherwise says why it skipped.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::director::{config, Session};
use common::netns::in_netns;
use common::veth::{self, Netns, Veth};
use common::*;
use rondo::drivers::{Burst, Port, RxQueue, TxQueue};

/// `rondo run`'s status when its interface is gone (`EX_UNAVAILABLE`).
const EXIT_PORT_GONE: i32 = 69;

struct Director {
    child: Child,
    log: PathBuf,
    socket: PathBuf,
}

impl Drop for Director {
    fn drop(&mut self) {
        // Only the child this test started, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Director {
    /// `rondo run` inside `ns` on `af_packet:IFACE`, metrics on 127.0.0.1:9525 of the
    /// namespace; returns after READY=1.
    fn start(ns: &Netns, iface: &str, dir: &Path, run: u32) -> Director {
        let socket = dir.join(format!("rondo{run}.sock"));
        let cfg = dir.join("director.toml");
        let text = config(
            &format!("af_packet:{iface}"),
            &socket,
            "",
            "[metrics]\nlisten = \"127.0.0.1:9525\"\n",
        );
        std::fs::write(&cfg, text).unwrap();
        let notify = dir.join(format!("notify{run}"));
        let listener = UnixDatagram::bind(&notify).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let log = dir.join(format!("log{run}"));
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_rondo")])
            .args(["run", "--stats-interval", "0", "--config"])
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &notify)
            .env("RONDO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Director { child, log, socket };
        assert_eq!(recv_notify(&listener, &d.log), b"READY=1");
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn console(&self, line: &str) -> String {
        let (ok, text) = Session::open(&self.socket).cmd(line);
        assert!(ok, "{line}: {text}");
        text
    }

    /// Wait (bounded) until `f` holds, failing with the log.
    fn wait(&self, what: &str, f: impl FnMut() -> bool) {
        assert!(
            poll(Duration::from_secs(20), Duration::from_millis(50), f),
            "timed out waiting for {what}: {}",
            self.log_text()
        );
    }
}

/// The metrics page of the director in `ns`.
fn metrics(ns: &Netns) -> String {
    in_netns(&ns.name, || {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9525").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
}

fn metric(page: &str, name: &str) -> Option<u64> {
    page.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn mac_of(iface: &str) -> [u8; 6] {
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).unwrap();
    let m: rondo::wire::MacAddr = s.trim().parse().unwrap();
    m.0
}

/// Send VIP SYNs from the test's end `iface` to `director_mac` until encapsulated frames
/// come back (a fresh socket each time: the test's own socket is not under test).
fn forwards(iface: &str, director_mac: [u8; 6]) -> bool {
    let (peer, mut rx, mut tx) = veth::test_port(iface, 1024, 8);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut burst = Burst::new();
    let mut i = 0u32;
    while Instant::now() < deadline {
        let mut b = Burst::new();
        for _ in 0..8 {
            let mut f = client_syn(i);
            i += 1;
            f[0..6].copy_from_slice(&director_mac);
            let _ = b.push(peer.alloc(&f).unwrap());
        }
        tx.tx_burst(&mut b);
        tx.flush();
        drop(b);
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until {
            if rx.rx_burst(&mut burst) == 0 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            for b in burst.drain() {
                let f = rondo::datapath::PacketBuf::data(&b);
                // IPv4 / UDP to the GUE port 19523.
                if f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 17 && f[36..38] == [0x4c, 0x43]
                {
                    return true;
                }
            }
        }
    }
    false
}

fn setup(tag: char) -> Option<(Veth, Netns, tempfile::TempDir, [u8; 6])> {
    let v = Veth::new(tag)?;
    let ns = match Netns::new(tag) {
        Ok(ns) => ns,
        Err(e) => {
            common::skip(&format!("cannot create a network namespace: {e}"));
            return None;
        }
    };
    let mac = mac_of(&v.a);
    ns.adopt(&v.a).unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    Some((v, ns, tempfile::tempdir().unwrap(), mac))
}

#[test]
fn link_down_and_up_is_followed_and_forwarding_resumes() {
    let Some((v, ns, dir, mac)) = setup('l') else {
        return;
    };
    let mut d = Director::start(&ns, &v.a, dir.path(), 0);
    assert!(forwards(&v.b, mac), "forwards at first: {}", d.log_text());
    let page = metrics(&ns);
    assert_eq!(metric(&page, "rondo_port_link_up"), Some(1), "{page}");
    assert_eq!(
        metric(&page, "rondo_port_link_changes_total"),
        Some(0),
        "{page}"
    );

    // The peer goes down: the director's end loses its carrier.
    veth::ip(&["link", "set", &v.b, "down"]).unwrap();
    d.wait("link down in the log", || {
        d.log_text().contains("link down")
    });
    d.wait("link down on the console and in metrics", || {
        d.console("show port info all")
            .contains("Link:             down")
            && metric(&metrics(&ns), "rondo_port_link_up") == Some(0)
    });

    veth::ip(&["link", "set", &v.b, "up"]).unwrap();
    d.wait("link up in the log", || d.log_text().contains("link up"));
    let page = metrics(&ns);
    assert_eq!(metric(&page, "rondo_port_link_up"), Some(1), "{page}");
    assert_eq!(
        metric(&page, "rondo_port_link_changes_total"),
        Some(2),
        "{page}"
    );
    assert!(d
        .console("show port info all")
        .contains("Link:             up (2 changes since start)"));
    let log = d.log_text();
    assert_eq!(log.matches("link down").count(), 1, "logged once: {log}");
    assert_eq!(log.matches("link up").count(), 1, "logged once: {log}");
    assert!(
        forwards(&v.b, mac),
        "forwards again after the link came back: {}",
        d.log_text()
    );
    assert!(matches!(d.child.try_wait(), Ok(None)), "still running");

    // A clean stop still exits 0.
    assert!(Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let st = d.child.wait().unwrap();
    assert!(st.success(), "{st}: {}", d.log_text());
}

#[test]
fn deleted_interface_stops_the_director_with_its_status_and_a_restart_forwards() {
    let Some((v, ns, dir, mac)) = setup('k') else {
        return;
    };
    let mut d = Director::start(&ns, &v.a, dir.path(), 0);
    assert!(forwards(&v.b, mac), "forwards at first: {}", d.log_text());

    // Delete the interface and recreate one of the same name right away.
    ns.ip(&["link", "del", &v.a]).unwrap();
    veth::ip(&["link", "add", &v.a, "type", "veth", "peer", "name", &v.b]).unwrap();
    veth::ip(&["link", "set", &v.b, "up"]).unwrap();
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", v.b), "1");
    let mac = mac_of(&v.a);
    ns.adopt(&v.a).unwrap();

    let end = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < end,
            "still running after its interface was deleted: {}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = d.log_text();
    assert_eq!(status.code(), Some(EXIT_PORT_GONE), "{status}: {log}");
    assert!(log.contains(&v.a) && log.contains("deleted"), "{log}");
    let mut out = String::new();
    d.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        out.contains("reloads     ok"),
        "final summary printed: {out}"
    );

    // What the supervisor does: start again, on the new interface of that name.
    let d2 = Director::start(&ns, &v.a, dir.path(), 1);
    assert!(
        forwards(&v.b, mac),
        "the restarted director forwards: {}",
        d2.log_text()
    );
}
