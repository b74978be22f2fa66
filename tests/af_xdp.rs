//! `rondo run` on `af_xdp:` (cargo feature `af_xdp`): a veth pair whose director end lives
//! in a network namespace made for the test, with native XDP on it; the test plays the
//! router and the clients on the other end through its own AF_PACKET port. VIP flows come
//! back encapsulated to the right backends, ARP and ping to the host address are answered
//! by the kernel while rondo runs (the XDP program passes them), SIGTERM leaves no XDP
//! program attached, a stale program of ours is replaced and a foreign one is refused.
//! Needs root; otherwise prints why it skipped.
#![cfg(feature = "af_xdp")]

mod common;

use std::net::IpAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::director::Session;
use common::veth::{self, Netns, Veth};
use common::*;
use rondo::config::load_config;
use rondo::datapath::PacketBuf;
use rondo::drivers::af_packet::{AfPacketPort, AfPacketRx, AfPacketTx};
use rondo::drivers::{Burst, Port, RxQueue, TxQueue};
use rondo::table::ForwardingTable;

const GW: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const HOST: [u8; 4] = [198, 18, 0, 1];
const PEER: [u8; 4] = [198, 18, 0, 2];

const BINDS: &str = r#"{ ip = "1.1.1.1", proto = "tcp", port = 80 }, { ip = "fdb4:98ce:52d4::42", proto = "tcp", port = 80 }"#;

fn config_binds(spec: &str, binds: &str) -> String {
    let workers = if spec.contains("queues=2") { 2 } else { 1 };
    format!(
        r#"[[ports]]
spec = "{spec}"

[runtime]
workers = {workers}
idle = "sleep"

[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{binds}]
backends = [{{ ip = "10.1.0.1" }}, {{ ip = "10.1.0.2" }}, {{ ip = "10.1.0.3" }}]
"#
    )
}

struct Director {
    child: Child,
    log: PathBuf,
}

impl Director {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mac_of(iface: &str) -> [u8; 6] {
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).unwrap();
    let m: rondo::wire::MacAddr = s.trim().parse().unwrap();
    m.0
}

fn arp_request(src_mac: [u8; 6], src_ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&src_ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.resize(60, 0);
    f
}

/// The veth pair, the director's namespace holding end `a` (with address 198.18.0.1/24),
/// a temporary directory; `None` after printing why the test is skipped.
struct Rig {
    v: Veth,
    ns: Netns,
    dir: tempfile::TempDir,
    director_mac: [u8; 6],
    /// The port spec rondo runs on.
    spec: String,
}

impl Rig {
    fn new(tag: char) -> Option<Rig> {
        Rig::with_veth(tag, Veth::new(tag)?)
    }

    /// A rig on a veth pair with `queues` RX and TX queues per end.
    fn with_queues(tag: char, queues: u32) -> Option<Rig> {
        if let Err(why) = veth::privileged() {
            skip(&why);
            return None;
        }
        let pid = std::process::id() % 100_000;
        let v = Veth {
            a: format!("rdo{tag}{pid}a"),
            b: format!("rdo{tag}{pid}b"),
        };
        let _ = veth::ip(&["link", "del", &v.a]);
        let q = queues.to_string();
        let made = veth::ip(&[
            "link",
            "add",
            &v.a,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &v.b,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ]);
        if let Err(e) = made {
            skip(&format!(
                "cannot create a veth pair with {queues} queues: {e}"
            ));
            return None;
        }
        veth::ip(&["link", "set", &v.b, "up"]).unwrap();
        Rig::with_veth(tag, v)
    }

    fn with_veth(tag: char, v: Veth) -> Option<Rig> {
        let ns = match Netns::new(tag) {
            Ok(ns) => ns,
            Err(e) => {
                skip(&format!("cannot create a network namespace: {e}"));
                return None;
            }
        };
        let director_mac = mac_of(&v.a);
        ns.adopt(&v.a).unwrap();
        ns.ip(&["addr", "add", "198.18.0.1/24", "dev", &v.a])
            .unwrap();
        ns.ip(&["link", "set", "lo", "up"]).unwrap();
        Some(Rig {
            spec: format!("af_xdp:{}", v.a),
            v,
            ns,
            dir: tempfile::tempdir().unwrap(),
            director_mac,
        })
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("director.toml")
    }

    /// Write the config with `binds` (replacing the file at once, as a deploy would).
    fn write_config(&self, binds: &str) -> PathBuf {
        let p = self.config_path();
        let tmp = self.dir.path().join("director.toml.new");
        std::fs::write(&tmp, config_binds(&self.spec, binds)).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        p
    }

    fn console(&self) -> PathBuf {
        self.dir.path().join("console.sock")
    }

    /// `ip -d link show` of the director's end, in its namespace.
    fn link_show(&self) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.ns.name, "-d", "link", "show", "dev", &self.v.a])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn command(&self, cfg: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns.name, env!("CARGO_BIN_EXE_rondo")]);
        c.args(["run", "--stats-interval", "0", "--metrics-listen", "off"])
            .arg("--console-socket")
            .arg(self.console())
            .arg("--config")
            .arg(cfg);
        c
    }

    /// Start rondo and wait for READY=1.
    fn start(&self) -> Director {
        let cfg = if self.config_path().exists() {
            self.config_path()
        } else {
            self.write_config(BINDS)
        };
        let notify = self.dir.path().join("notify");
        let _ = std::fs::remove_file(&notify);
        let listener = UnixDatagram::bind(&notify).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let log = self.dir.path().join("log");
        let child = self
            .command(&cfg)
            .env("NOTIFY_SOCKET", &notify)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Director { child, log };
        assert_eq!(
            recv_notify(&listener, &d.log),
            b"READY=1",
            "{}",
            d.log_text()
        );
        d
    }

    /// Compile `src` (C) with clang for BPF into the temporary directory.
    fn bpf_object(&self, name: &str, src: &str) -> PathBuf {
        let c = self.dir.path().join(format!("{name}.c"));
        std::fs::write(&c, src).unwrap();
        let o = self.dir.path().join(format!("{name}.o"));
        let out = Command::new("clang")
            .args([
                "-target",
                "bpf",
                "-O2",
                "-g",
                "-I/usr/include/x86_64-linux-gnu",
                "-c",
            ])
            .arg(&c)
            .arg("-o")
            .arg(&o)
            .output()
            .expect("clang (the af_xdp feature needs it to build)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        o
    }

    /// Attach `obj` with iproute2 (netlink, as a killed old director or another tool would
    /// leave it); `false` after printing why when this iproute2 cannot.
    fn attach_by_hand(&self, obj: &Path) -> bool {
        let r = self.ns.ip(&[
            "link",
            "set",
            "dev",
            &self.v.a,
            "xdpdrv",
            "obj",
            obj.to_str().unwrap(),
            "sec",
            "xdp",
        ]);
        if let Err(e) = r {
            skip(&format!("iproute2 cannot attach an XDP object here: {e}"));
            return false;
        }
        assert!(self.link_show().contains("xdp"), "{}", self.link_show());
        true
    }
}

fn send(peer: &AfPacketPort, tx: &mut AfPacketTx, dst: [u8; 6], frames: &[Vec<u8>]) {
    for chunk in frames.chunks(16) {
        let mut b = Burst::new();
        for f in chunk {
            let mut f = f.clone();
            f[0..6].copy_from_slice(&dst);
            b.push(peer.alloc(&f).unwrap()).ok().unwrap();
        }
        while !b.is_empty() {
            tx.tx_burst(&mut b);
            tx.flush();
        }
    }
}

/// Receive until `f` says it has seen enough or `secs` pass.
fn receive(rx: &mut AfPacketRx, secs: u64, mut f: impl FnMut(&[u8]) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut burst = Burst::new();
    while Instant::now() < deadline {
        if rx.rx_burst(&mut burst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for b in burst.drain() {
            if f(b.data()) {
                return true;
            }
        }
    }
    false
}

fn sigterm(d: &mut Director) -> std::process::Output {
    assert!(Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    std::mem::replace(&mut d.child, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap()
}

/// VIP SYNs (50 IPv4, 50 IPv6) and a ping to a VIP come back encapsulated to the
/// backends the table picks.
fn check_vip_forwarding(
    rig: &Rig,
    d: &Director,
    peer: &AfPacketPort,
    rx: &mut AfPacketRx,
    tx: &mut AfPacketTx,
) {
    let cfg = load_config(&rig.config_path(), None).unwrap();
    let table: ForwardingTable = cfg.tables[0].clone();
    let mut frames = vec![echo_v4([10, 11, 0, 200], [1, 1, 1, 1], 0x4242)];
    for i in 0..50u32 {
        let src = (0x0a0b_0000 + i).to_be_bytes();
        frames.push(syn_v4(src, [1, 1, 1, 1], 2000 + i as u16, 80));
    }
    let vip6: [u8; 16] = "fdb4:98ce:52d4::42"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    for i in 0..50u8 {
        let mut src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i];
        src[14] = 7;
        frames.push(syn_v6(src, vip6, 3000 + u16::from(i), 80));
    }
    send(peer, tx, rig.director_mac, &frames);
    let key = hex16("12345678901234561234567890123456");
    let backend = |h: u64| -> (IpAddr, IpAddr) {
        let r = table.row(h as u16);
        (
            table.spec.backends[r[0] as usize].ip,
            table.spec.backends[r[1] as usize].ip,
        )
    };
    let (mut got, mut v6) = (0, 0);
    receive(rx, 20, |f| {
        if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[23] != 17 || f[36..38] != [0x4c, 0x43] {
            return false; // not GUE: kernel chatter
        }
        let (dst, hops, _, inner) = check_outer_v4(f, GW, rig.director_mac, [192, 0, 2, 10]);
        let src: Vec<u8> = if inner[0] >> 4 == 4 {
            inner[12..16].to_vec()
        } else {
            v6 += 1;
            inner[8..24].to_vec()
        };
        let (p, s) = backend(siphash(&key, &src));
        assert_eq!(
            (IpAddr::from(dst), IpAddr::from(hops[0])),
            (p, s),
            "flow from {src:?}"
        );
        got += 1;
        got == 101
    });
    assert_eq!(
        (got, v6),
        (101, 50),
        "all VIP traffic came back encapsulated: {}",
        d.log_text()
    );
}

/// ARP and ping to the host address (not a VIP) are answered by the kernel.
fn check_kernel_answers(
    rig: &Rig,
    d: &Director,
    peer_mac: [u8; 6],
    peer: &AfPacketPort,
    rx: &mut AfPacketRx,
    tx: &mut AfPacketTx,
) {
    let arp = arp_request(peer_mac, PEER, HOST);
    let mut answered = false;
    for _ in 0..20 {
        send(peer, tx, [0xff; 6], std::slice::from_ref(&arp));
        answered = receive(rx, 1, |f| {
            f.len() >= 42
                && f[12..14] == [0x08, 0x06]
                && f[20..22] == [0, 2]
                && f[28..32] == HOST
                && f[0..6] == peer_mac
        });
        if answered {
            break;
        }
    }
    assert!(answered, "no ARP reply from the kernel: {}", d.log_text());
    let mut ping = echo_v4(PEER, HOST, 0x7777);
    ping[6..12].copy_from_slice(&peer_mac);
    let mut pong = false;
    for _ in 0..10 {
        send(peer, tx, rig.director_mac, std::slice::from_ref(&ping));
        pong = receive(rx, 1, |f| {
            f.len() >= 42
                && f[12..14] == [0x08, 0x00]
                && f[23] == 1
                && f[26..30] == HOST
                && f[34] == 0
        });
        if pong {
            break;
        }
    }
    assert!(pong, "no echo reply from the kernel: {}", d.log_text());
}

#[test]
fn af_xdp_forwards_vips_and_the_kernel_keeps_the_rest() {
    let Some(rig) = Rig::new('x') else { return };
    let mut d = rig.start();
    let shown = rig.link_show();
    assert!(
        shown.contains("xdp"),
        "program attached while running: {shown}"
    );
    let (peer, mut rx, mut tx) = veth::test_port(&rig.v.b, 4096, 32);
    let peer_mac = mac_of(&rig.v.b);
    check_vip_forwarding(&rig, &d, &peer, &mut rx, &mut tx);
    check_kernel_answers(&rig, &d, peer_mac, &peer, &mut rx, &mut tx);
    let log = d.log_text();
    assert!(log.contains("AF_XDP sockets bound"), "{log}");
    assert!(rig.console().exists(), "console socket: {log}");
    let (ok, info) = Session::open(&rig.console()).cmd("show port info all");
    assert!(
        ok && info.contains("af_xdp/native/"),
        "show port info says the XDP and socket modes: {info}"
    );
    let out = sigterm(&mut d);
    assert!(out.status.success(), "{}", d.log_text());
    let shown = rig.link_show();
    assert!(
        !shown.contains("xdp"),
        "no XDP program left after SIGTERM: {shown}"
    );
}

#[test]
fn af_xdp_replaces_a_stale_program_of_its_own() {
    let Some(rig) = Rig::new('s') else { return };
    let src =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/bpf/steer.bpf.c")).unwrap();
    let obj = rig.bpf_object("steer", &src);
    if !rig.attach_by_hand(&obj) {
        return;
    }
    let mut d = rig.start();
    let log = d.log_text();
    assert!(log.contains("stale rondo XDP program"), "{log}");
    let (peer, mut rx, mut tx) = veth::test_port(&rig.v.b, 4096, 32);
    check_vip_forwarding(&rig, &d, &peer, &mut rx, &mut tx);
    let out = sigterm(&mut d);
    assert!(out.status.success(), "{}", d.log_text());
    assert!(!rig.link_show().contains("xdp"), "{}", rig.link_show());
}

#[test]
fn af_xdp_refuses_a_foreign_xdp_program_and_leaves_it_alone() {
    let Some(rig) = Rig::new('f') else { return };
    let obj = rig.bpf_object(
        "foreign",
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nSEC(\"xdp\") int someone_elses(struct xdp_md *ctx) { return XDP_PASS; }\nchar _l[] SEC(\"license\") = \"GPL\";\n",
    );
    if !rig.attach_by_hand(&obj) {
        return;
    }
    let cfg = rig.write_config(BINDS);
    let out = rig.command(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("another XDP program is attached") && err.contains("someone_elses"),
        "{err}"
    );
    let shown = rig.link_show();
    assert!(
        shown.contains("xdp"),
        "the foreign program is left attached: {shown}"
    );
}

/// Whether a SYN to `vip` comes back encapsulated within a second (a few tries).
fn steered(
    rig: &Rig,
    peer: &AfPacketPort,
    rx: &mut AfPacketRx,
    tx: &mut AfPacketTx,
    vip: [u8; 4],
    sport: u16,
) -> bool {
    for _ in 0..3 {
        send(
            peer,
            tx,
            rig.director_mac,
            &[syn_v4([10, 12, 0, 1], vip, sport, 80)],
        );
        let seen = receive(rx, 1, |f| {
            f.len() >= 42 + 20
                && f[12..14] == [0x08, 0x00]
                && f[23] == 17
                && f[36..38] == [0x4c, 0x43]
                && f.windows(4).any(|w| w == vip)
        });
        if seen {
            return true;
        }
    }
    false
}

#[test]
fn af_xdp_a_reload_that_adds_and_removes_a_vip_changes_what_is_steered() {
    let Some(rig) = Rig::new('l') else { return };
    let mut d = rig.start();
    let (peer, mut rx, mut tx) = veth::test_port(&rig.v.b, 4096, 32);
    assert!(
        steered(&rig, &peer, &mut rx, &mut tx, [1, 1, 1, 1], 4000),
        "{}",
        d.log_text()
    );
    assert!(
        !steered(&rig, &peer, &mut rx, &mut tx, [1, 1, 1, 2], 4001),
        "not a VIP yet"
    );
    rig.write_config(r#"{ ip = "1.1.1.2", proto = "tcp", port = 80 }"#);
    assert!(Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    wait_until("the reload", 20, || {
        d.log_text().contains("new forwarding snapshot live")
    });
    assert!(
        steered(&rig, &peer, &mut rx, &mut tx, [1, 1, 1, 2], 4002),
        "the new VIP is steered: {}",
        d.log_text()
    );
    assert!(
        !steered(&rig, &peer, &mut rx, &mut tx, [1, 1, 1, 1], 4003),
        "the removed VIP goes to the kernel"
    );
    let out = sigterm(&mut d);
    assert!(out.status.success(), "{}", d.log_text());
}

#[test]
fn af_xdp_bad_settings_are_clear_errors_and_leave_nothing_attached() {
    let Some(rig) = Rig::new('b') else { return };
    let cfg = rig.dir.path().join("bad.toml");
    for (spec, says) in [
        (
            format!("af_xdp:{},queues=2", rig.v.a),
            "queues=2: the interface has 1 RX queue",
        ),
        ("af_xdp:rdonosuchif".to_string(), "no such interface"),
    ] {
        std::fs::write(&cfg, config_binds(&spec, BINDS)).unwrap();
        let out = rig.command(&cfg).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{spec}: {err}");
        assert!(
            err.contains(says) && err.contains("af_xdp:"),
            "{spec}: {err}"
        );
        assert!(
            !rig.link_show().contains("xdp"),
            "{spec}: nothing attached: {}",
            rig.link_show()
        );
    }
}

#[test]
fn af_xdp_two_queues_two_workers() {
    let Some(mut rig) = Rig::with_queues('q', 2) else {
        return;
    };
    rig.spec = format!("af_xdp:{},queues=2", rig.v.a);
    let mut d = rig.start();
    let log = d.log_text();
    assert!(
        log.contains("queues=2") && log.contains("workers=2"),
        "{log}"
    );
    let (peer, mut rx, mut tx) = veth::test_port(&rig.v.b, 4096, 32);
    check_vip_forwarding(&rig, &d, &peer, &mut rx, &mut tx);
    let out = sigterm(&mut d);
    assert!(out.status.success(), "{}", d.log_text());
    assert!(!rig.link_show().contains("xdp"), "{}", rig.link_show());
}

#[test]
fn af_xdp_forwards_again_after_link_down_and_up() {
    let Some(rig) = Rig::new('k') else { return };
    let mut d = rig.start();
    let (peer, mut rx, mut tx) = veth::test_port(&rig.v.b, 4096, 32);
    assert!(
        steered(&rig, &peer, &mut rx, &mut tx, [1, 1, 1, 1], 5000),
        "{}",
        d.log_text()
    );
    rig.ns.ip(&["link", "set", &rig.v.a, "down"]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    rig.ns.ip(&["link", "set", &rig.v.a, "up"]).unwrap();
    let back = (0..10).any(|i| steered(&rig, &peer, &mut rx, &mut tx, [1, 1, 1, 1], 5001 + i));
    assert!(
        back,
        "forwarding after the link came back: {}",
        d.log_text()
    );
    assert!(d.child.try_wait().unwrap().is_none(), "still running");
    let out = sigterm(&mut d);
    assert!(out.status.success(), "{}", d.log_text());
    assert!(!rig.link_show().contains("xdp"), "{}", rig.link_show());
}

/// Run the director as `wrap` says (setpriv, prlimit) and check it exits 1 with an error
/// naming the port and `says`, leaving nothing attached.
fn refused_with(rig: &Rig, wrap: &[&str], says: &[&str]) {
    let cfg = rig.write_config(BINDS);
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &rig.ns.name]).args(wrap);
    c.args([env!("CARGO_BIN_EXE_rondo"), "run", "--stats-interval", "0"])
        .args(["--metrics-listen", "off", "--console-socket"])
        .arg(rig.console())
        .arg("--config")
        .arg(&cfg);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{wrap:?}: {err}");
    for s in says {
        assert!(err.contains(s), "{wrap:?}: wanted {s:?} in: {err}");
    }
    assert!(
        !rig.link_show().contains("xdp"),
        "{wrap:?}: nothing attached: {}",
        rig.link_show()
    );
}

#[test]
fn af_xdp_without_permission_locked_memory_or_zero_copy_says_why() {
    let Some(mut rig) = Rig::new('p') else { return };
    // No capabilities at all (root's uid, but an empty bounding set): loading BPF fails.
    refused_with(
        &rig,
        &[
            "setpriv",
            "--bounding-set",
            "-all",
            "--inh-caps",
            "-all",
            "--",
        ],
        &["af_xdp:", "loading the XDP program", "CAP_BPF"],
    );
    // No CAP_IPC_LOCK and a 64 KiB locked-memory limit: the 16 MiB UMEM cannot be
    // registered.
    refused_with(
        &rig,
        &[
            "setpriv",
            "--bounding-set",
            "-ipc_lock",
            "--inh-caps",
            "-ipc_lock",
            "--",
            "prlimit",
            "--memlock=65536:65536",
            "--",
        ],
        &["af_xdp:", "XDP_UMEM_REG", "locked-memory limit"],
    );
    // veth has no zero-copy AF_XDP.
    rig.spec = format!("af_xdp:{},mode=zerocopy", rig.v.a);
    refused_with(&rig, &[], &["af_xdp:", "zero-copy", "mode=copy"]);
}

#[test]
fn af_xdp_pktgen_on_af_xdp_verifies_every_reply() {
    let Some(rig) = Rig::new('g') else { return };
    let mut d = rig.start();
    let mac = rig
        .director_mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let out = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args(["pktgen", "--config"])
        .arg(rig.config_path())
        .args(["--port", &format!("af_xdp:{}", rig.v.b), "--dst-mac", &mac])
        .args([
            "--rate",
            "20000",
            "--duration",
            "1",
            "--flows",
            "64",
            "--quiet",
        ])
        .args(["--clients", "10.200.0.0/16"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{}", d.log_text());
    assert!(
        text.contains("AF_XDP sockets bound") && text.contains("OK"),
        "{text}"
    );
    let peer = Command::new("ip")
        .args(["-d", "link", "show", "dev", &rig.v.b])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&peer.stdout).contains("xdp"),
        "pktgen detached its program"
    );
    let out = sigterm(&mut d);
    assert!(out.status.success(), "{}", d.log_text());
}
