//! `rondo redirect` end to end, in network namespaces (needs root; counted as skipped
//! otherwise, a failure with `CI=true`).
//!
//! ```text
//!   netns D (director + client)          netns B1 (backend)              netns B2 (backend)
//!   br0 10.77.0.1, 10.77.0.9, fd77::1 -- b1 10.77.0.2, fd77::2        -- b2 10.77.0.3
//!   client 10.99.0.x, fd99::x on lo     VIP 10.200.0.1, fd77:200::1 on lo  a UDP socket on
//!   GUE built by the real director       `rondo redirect` + a TCP server     19523 that records
//!   pipeline (process_burst)             on the VIPs (a std TcpListener)     what B1 forwards
//! ```
//! Checked: GLB's GUE health check gets an echo reply; a SYN (IPv4 and IPv6 inner) reaches
//! the server and the SYN-ACK goes straight to the client; the ACK completing the handshake
//! stays on B1 (its SYN-RECV socket) and the server accepts the connection; an ACK of an
//! unknown flow is forwarded to B2 with next_hop incremented, the outer source rewritten and
//! the UDP source port kept; bad input is dropped and counted; counters print on SIGUSR1
//! and on exit.
//!
//! Sockets are opened inside a namespace by a thread that entered it with setns(2)
//! (`common::netns`): a socket stays in the namespace it was created in, whichever thread
//! uses it afterwards. The only `unsafe` here is the raw socket calls.
#![allow(unsafe_code)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::netns::{in_netns, sysctl};
use common::veth::{privileged, skip, Netns};
use common::{csum, eth, ipv4_hdr};
use rondo::datapath::{process_burst, CoreCounters, HeapBuf, PacketBuf, Snapshot, Verdict};
use rondo::wire::emit_glb_v4;

const D: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const STRANGER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 9);
const B1: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const B2: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const VIP6: &str = "fd77:200::1";
const WAIT: Duration = Duration::from_secs(5);

/// A raw socket. `UdpSocket` only serves as a safe owner of the descriptor for recv(2) and
/// sendto(2), which work the same on raw sockets.
fn raw_socket(family: i32, proto: i32) -> UdpSocket {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just returned by socket(2): open and owned by nobody else.
    let s = UdpSocket::from(unsafe { OwnedFd::from_raw_fd(fd) });
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// The `rondo redirect` child, killed on drop; its stderr lines arrive on a channel.
struct Redirect {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Redirect {
    fn start(ns: &Netns, config: &std::path::Path) -> Redirect {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                env!("CARGO_BIN_EXE_rondo"),
                "redirect",
                "--config",
            ])
            .arg(config)
            .env("RONDO_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rondo redirect");
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut r = Redirect {
            child,
            lines,
            log: Vec::new(),
        };
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match r.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    let ready = l.contains("redirect ready");
                    r.log.push(l);
                    if ready {
                        return r;
                    }
                }
                Err(_) => {
                    if let Ok(Some(st)) = r.child.try_wait() {
                        panic!("rondo redirect exited ({st}): {:?}", r.log);
                    }
                }
            }
        }
        panic!("rondo redirect not ready within {WAIT:?}: {:?}", r.log);
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// SIGTERM, then everything it printed on stdout.
    fn stop(mut self) -> String {
        self.signal("TERM");
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut out = String::new();
                self.child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                assert!(st.success(), "exit {st}: {out} {:?}", self.log);
                return out;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("rondo redirect did not stop on SIGTERM");
    }
}

impl Drop for Redirect {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `name value` from the counters report (the last report when several were printed).
fn counter(report: &str, name: &str) -> u64 {
    report
        .lines()
        .rev()
        .find_map(|l| {
            let mut t = l.split_whitespace();
            (t.next() == Some(name)).then(|| t.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

const DIRECTOR_TOML: &str = r#"
[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "10.77.0.1"
[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "10.200.0.1", proto = "tcp", port = 80 }, { ip = "fd77:200::1", proto = "tcp", port = 80 }]
[[tables.backends]]
ip = "10.77.0.2"
[[tables.backends]]
ip = "10.77.0.3"
"#;

/// The real director pipeline: encapsulates `frame` and returns the outer IPv4 packet (the
/// Ethernet header removed) with its hops: (packet, outer destination, hop list).
fn encapsulate(snap: &Snapshot, frame: &[u8]) -> (Vec<u8>, Ipv4Addr, Vec<Ipv4Addr>) {
    let mut bufs = [HeapBuf::from_frame(frame)];
    let mut v = [Verdict::Forward];
    let mut c = CoreCounters::default();
    process_burst(snap, &mut bufs, &mut v, &mut c);
    assert_eq!(v[0], Verdict::Forward, "the director forwards it");
    let out = bufs[0].data()[14..].to_vec();
    let dst = Ipv4Addr::new(out[16], out[17], out[18], out[19]);
    let gue = &out[28..];
    let hops = (0..gue[7] as usize)
        .map(|i| {
            Ipv4Addr::new(
                gue[8 + 4 * i],
                gue[9 + 4 * i],
                gue[10 + 4 * i],
                gue[11 + 4 * i],
            )
        })
        .collect();
    (out, dst, hops)
}

/// Ethernet + IPv4 + TCP with explicit sequence numbers.
fn tcp_frame(src: Ipv4Addr, sport: u16, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let (s, d) = (src.octets(), VIP.octets());
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&80u16.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    let c = csum(&[&s, &d, &[0, 6], &(t.len() as u16).to_be_bytes(), &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(0x0800);
    f.extend(ipv4_hdr(s, d, 6, t.len(), 1, 0x4000));
    f.extend(t);
    f
}

/// Waits for a TCP segment VIP:80 -> client:port on the raw socket; returns (flags, seq, ack).
fn await_tcp_v4(raw: &UdpSocket, client: Ipv4Addr, port: u16) -> Option<(u8, u32, u32)> {
    let deadline = Instant::now() + WAIT;
    let mut b = [0u8; 2048];
    while Instant::now() < deadline {
        let Ok(n) = raw.recv(&mut b) else { continue };
        let p = &b[..n];
        let ihl = usize::from(p[0] & 0x0f) * 4;
        if n < ihl + 20 || p[9] != 6 || p[12..16] != VIP.octets() || p[16..20] != client.octets() {
            continue;
        }
        let t = &p[ihl..];
        if u16::from_be_bytes([t[0], t[1]]) == 80 && u16::from_be_bytes([t[2], t[3]]) == port {
            let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
            let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
            return Some((t[13], seq, ack));
        }
    }
    None
}

#[test]
fn redirect_in_network_namespaces() {
    if let Err(why) = privileged() {
        return skip(&why);
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return skip("no /dev/net/tun");
    }
    let nd = Netns::new('D').expect("netns D");
    let n1 = Netns::new('1').expect("netns B1");
    let n2 = Netns::new('2').expect("netns B2");

    // Links: a bridge in D, one veth to each backend.
    nd.ip(&[
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ])
    .unwrap();
    for (d, b, ns) in [("d1", "b1", &n1), ("d2", "b2", &n2)] {
        nd.ip(&[
            "link", "add", d, "type", "veth", "peer", "name", b, "netns", &ns.name,
        ])
        .unwrap();
        nd.ip(&["link", "set", d, "master", "br0", "up"]).unwrap();
        ns.ip(&["link", "set", b, "up"]).unwrap();
        ns.ip(&["link", "set", "lo", "up"]).unwrap();
    }
    nd.ip(&["link", "set", "br0", "up"]).unwrap();
    nd.ip(&["link", "set", "lo", "up"]).unwrap();
    for (ns, cmd) in [
        (&nd, vec!["addr", "add", "10.77.0.1/24", "dev", "br0"]),
        (&nd, vec!["addr", "add", "10.77.0.9/24", "dev", "br0"]),
        (
            &nd,
            vec!["addr", "add", "fd77::1/64", "dev", "br0", "nodad"],
        ),
        (&n1, vec!["addr", "add", "10.77.0.2/24", "dev", "b1"]),
        (&n1, vec!["addr", "add", "fd77::2/64", "dev", "b1", "nodad"]),
        (&n1, vec!["addr", "add", "10.200.0.1/32", "dev", "lo"]),
        (&n1, vec!["addr", "add", "fd77:200::1/128", "dev", "lo"]),
        (
            &n1,
            vec!["route", "add", "10.99.0.0/24", "via", "10.77.0.1"],
        ),
        (
            &n1,
            vec!["-6", "route", "add", "fd99::/64", "via", "fd77::1"],
        ),
        (&n2, vec!["addr", "add", "10.77.0.3/24", "dev", "b2"]),
    ] {
        ns.ip(&cmd).unwrap_or_else(|e| panic!("{e}"));
    }
    // D has no route to the VIPs, so it cannot answer the server's SYN-ACKs with a RST (it
    // has no socket for the client ports): the test plays the client's part by hand.
    for ns in [&nd, &n1] {
        for kv in [
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            sysctl(ns, kv);
        }
    }

    // The director's pipeline, and a client address whose row puts B1 first and B2 second.
    let cfg = rondo::config::config_from_str(DIRECTOR_TOML, "director.toml").unwrap();
    let snap = Snapshot::compile(cfg, None, 0).unwrap();
    let client = (1..=254)
        .map(|i| Ipv4Addr::new(10, 99, 0, i))
        .find(|&c| {
            let (_, dst, hops) = encapsulate(&snap, &tcp_frame(c, 1, 0x02, 0, 0));
            dst == B1 && hops == [B2]
        })
        .expect("a client hashed to (B1, B2)");
    nd.ip(&["addr", "add", &format!("{client}/32"), "dev", "lo"])
        .unwrap();
    let v6: Ipv6Addr = VIP6.parse().unwrap();
    let c6 = (1..=0xffu16)
        .map(|i| Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, i))
        .find(|c| encapsulate(&snap, &common::syn_v6(c.octets(), v6.octets(), 1, 80)).1 == B1)
        .expect("an IPv6 client hashed to B1");
    nd.ip(&["addr", "add", &format!("{c6}/128"), "dev", "lo", "nodad"])
        .unwrap();

    // B1: the server on both VIPs, then rondo redirect.
    let (srv4, srv6) = in_netns(&n1.name, || {
        (
            TcpListener::bind((VIP, 80)).unwrap(),
            TcpListener::bind((VIP6.parse::<Ipv6Addr>().unwrap(), 80)).unwrap(),
        )
    });
    srv4.set_nonblocking(true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("backend.toml");
    std::fs::write(
        &conf,
        "[redirect]\nlisten = [\"0.0.0.0:19523\"]\ndirectors = [\"10.77.0.1\"]\n\
         backends = [\"10.77.0.2\", \"10.77.0.3\"]\ntun = \"rdotun0\"\nstats_interval_secs = 0\n",
    )
    .unwrap();
    let redirect = Redirect::start(&n1, &conf);

    // D's sockets; B2's recorder.
    let (raw_out, cap_tcp, cap_tcp6, cap_icmp, udp, stranger) = in_netns(&nd.name, || {
        let raw_out = raw_socket(libc::AF_INET, libc::IPPROTO_RAW);
        let udp = UdpSocket::bind((D, 0)).unwrap();
        let stranger = UdpSocket::bind((STRANGER, 0)).unwrap();
        (
            raw_out,
            raw_socket(libc::AF_INET, libc::IPPROTO_TCP),
            raw_socket(libc::AF_INET6, libc::IPPROTO_TCP),
            raw_socket(libc::AF_INET, libc::IPPROTO_ICMP),
            udp,
            stranger,
        )
    });
    let recorder = in_netns(&n2.name, || UdpSocket::bind((B2, 19523)).unwrap());
    recorder.set_read_timeout(Some(WAIT)).unwrap();
    let gue_to_b1 = SocketAddr::new(IpAddr::V4(B1), 19523);

    // 1. GLB's GUE health check: 01 04 00 00 00 00 00 00 + ICMP echo request D -> B1.
    let mut echo = vec![8, 0, 0, 0, 0x42, 0x42, 0, 1];
    echo.extend_from_slice(b"rondo-health");
    let c = csum(&[&echo]);
    echo[2..4].copy_from_slice(&c.to_be_bytes());
    let mut hc = vec![0x01, 0x04, 0, 0, 0, 0, 0, 0];
    hc.extend(ipv4_hdr(D.octets(), B1.octets(), 1, echo.len(), 9, 0));
    hc.extend_from_slice(&echo);
    udp.send_to(&hc, gue_to_b1).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut replied = false;
    let mut b = [0u8; 2048];
    while !replied && Instant::now() < deadline {
        let Ok(n) = cap_icmp.recv(&mut b) else {
            continue;
        };
        let p = &b[..n];
        let ihl = usize::from(p[0] & 0x0f) * 4;
        replied = p[12..16] == B1.octets()
            && p[ihl] == 0
            && p[ihl + 4..ihl + 6] == [0x42, 0x42]
            && p[ihl + 8..] == *b"rondo-health";
    }
    assert!(replied, "the health check got an echo reply from B1");

    // 2. A SYN through the director pipeline: the server answers the client directly.
    let (pkt, dst, hops) = encapsulate(&snap, &tcp_frame(client, 40001, 0x02, 1000, 0));
    assert_eq!((dst, hops.as_slice()), (B1, &[B2][..]));
    raw_out.send_to(&pkt, gue_to_b1).unwrap();
    let (flags, isn, ack) =
        await_tcp_v4(&cap_tcp, client, 40001).expect("a SYN-ACK from the VIP to the client");
    assert_eq!(
        (flags & 0x12, ack),
        (0x12, 1001),
        "SYN-ACK acknowledging the SYN"
    );

    // 3. The handshake's ACK: B1 holds a SYN-RECV socket for it, so it stays there (not to
    //    B2) and the server accepts the connection.
    let (pkt, _, _) = encapsulate(
        &snap,
        &tcp_frame(client, 40001, 0x10, 1001, isn.wrapping_add(1)),
    );
    raw_out.send_to(&pkt, gue_to_b1).unwrap();
    let deadline = Instant::now() + WAIT;
    let peer = loop {
        match srv4.accept() {
            Ok((_, peer)) => break peer,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("the server never accepted the connection: {e}"),
        }
    };
    assert_eq!(peer, SocketAddr::new(IpAddr::V4(client), 40001));

    // 4. An IPv6 SYN (inside IPv4 GUE, as GLB sends it): answered from the IPv6 VIP.
    let (pkt, _, _) = encapsulate(&snap, &common::syn_v6(c6.octets(), v6.octets(), 40003, 80));
    raw_out.send_to(&pkt, gue_to_b1).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut got = false;
    while !got && Instant::now() < deadline {
        let Ok((n, from)) = cap_tcp6.recv_from(&mut b) else {
            continue;
        };
        let t = &b[..n];
        got = from.ip() == IpAddr::V6(v6)
            && n >= 20
            && u16::from_be_bytes([t[0], t[1]]) == 80
            && u16::from_be_bytes([t[2], t[3]]) == 40003
            && t[13] & 0x12 == 0x12
            && u32::from_be_bytes([t[8], t[9], t[10], t[11]]) == 2;
    }
    assert!(got, "a SYN-ACK from the IPv6 VIP to the IPv6 client");
    drop(srv6);

    // 5. An ACK of a flow B1 does not know: forwarded to B2, next_hop 1, outer source B1,
    //    the director's UDP source port kept, the inner packet unchanged.
    let (pkt, _, _) = encapsulate(&snap, &tcp_frame(client, 40002, 0x10, 5000, 7000));
    raw_out.send_to(&pkt, gue_to_b1).unwrap();
    let (n, from) = recorder
        .recv_from(&mut b)
        .expect("the forwarded packet at B2");
    let sport = u16::from_be_bytes([pkt[20], pkt[21]]);
    assert_eq!(from, SocketAddr::new(IpAddr::V4(B1), sport));
    let fwd = &b[..n];
    let orig = &pkt[28..];
    assert_eq!(fwd.len(), orig.len());
    assert_eq!(fwd[6], 1, "next_hop incremented");
    assert_eq!(fwd[7], 1, "hop_count unchanged");
    assert_eq!(
        (&fwd[..6], &fwd[7..]),
        (&orig[..6], &orig[7..]),
        "nothing else changed"
    );

    // 6. Bad input: a stranger, next_hop out of range, hlen/hop_count inconsistent. And a hop
    //    list pointing back at B1 itself: local, never forwarded.
    let inner = &tcp_frame(client, 40004, 0x10, 1, 1)[14..];
    let gue = |hops: &[Ipv4Addr], next_hop: u8| {
        let mut g = vec![0u8; 8 + 4 * hops.len()];
        emit_glb_v4(&mut g, 4, hops, next_hop).unwrap();
        g.extend_from_slice(inner);
        g
    };
    stranger.send_to(&gue(&[B2], 0), gue_to_b1).unwrap();
    udp.send_to(&gue(&[B2], 2), gue_to_b1).unwrap();
    let mut inconsistent = gue(&[B2], 0);
    inconsistent[7] = 3;
    udp.send_to(&inconsistent, gue_to_b1).unwrap();
    udp.send_to(&gue(&[B1, B2], 0), gue_to_b1).unwrap();
    recorder
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        recorder.recv_from(&mut b).is_err(),
        "nothing else reached B2"
    );

    // Counters: on SIGUSR1 and on exit.
    redirect.signal("USR1");
    std::thread::sleep(Duration::from_millis(300));
    let out = redirect.stop();
    assert_eq!(
        out.matches("rx ").count(),
        2,
        "a report on SIGUSR1 and one on exit: {out}"
    );
    for (name, want) in [
        ("local_icmp", 1),
        ("local_syn", 2),
        ("local_socket", 1),
        ("local_self_hop", 1),
        ("forwarded", 1),
        ("drop_source_not_allowed", 1),
        ("drop_next_hop_out_of_range", 1),
        ("drop_bad_gue_hop_count", 1),
        ("dropped", 3),
        ("rx", 9),
    ] {
        assert_eq!(counter(&out, name), want, "{name} in:\n{out}");
    }
}

/// A hop that is the directed broadcast address of one of the backend's own IPv4 subnets
/// is a bad hop address, not a forward; the subnets are read again while it runs.
#[test]
fn a_subnet_broadcast_hop_is_a_bad_hop_address() {
    if let Err(why) = privileged() {
        return skip(&why);
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return skip("no /dev/net/tun");
    }
    let ns = Netns::new('S').expect("netns S");
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    ns.ip(&["link", "add", "s0", "type", "veth", "peer", "name", "s1"])
        .unwrap();
    for l in ["s0", "s1"] {
        ns.ip(&["link", "set", l, "up"]).unwrap();
    }
    let me = Ipv4Addr::new(10, 88, 0, 2);
    ns.ip(&["addr", "add", "10.88.0.2/24", "dev", "s0"])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("backend.toml");
    std::fs::write(
        &conf,
        "[redirect]\nlisten = [\"0.0.0.0:19523\"]\ndirectors = [\"10.88.0.2\"]\n\
         backends = [\"10.88.0.0/16\", \"10.66.0.0/16\"]\ntun = \"rdotun1\"\nstats_interval_secs = 0\n",
    )
    .unwrap();
    let mut redirect = Redirect::start(&ns, &conf);
    let udp = in_netns(&ns.name, move || UdpSocket::bind((me, 0)).unwrap());
    let to = SocketAddr::new(IpAddr::V4(me), 19523);
    let inner = &tcp_frame(Ipv4Addr::new(10, 99, 0, 1), 40009, 0x10, 1, 1)[14..];
    let gue = |hop: Ipv4Addr| {
        let mut g = vec![0u8; 12];
        emit_glb_v4(&mut g, 4, &[hop], 0).unwrap();
        g.extend_from_slice(inner);
        g
    };
    // 10.88.0.255: the broadcast of s0's 10.88.0.0/24. 10.88.0.7: a neighbour, forwarded.
    udp.send_to(&gue(Ipv4Addr::new(10, 88, 0, 255)), to)
        .unwrap();
    udp.send_to(&gue(Ipv4Addr::new(10, 88, 0, 7)), to).unwrap();
    // A subnet added while it runs: its broadcast is refused once it has been read again.
    ns.ip(&["addr", "add", "10.66.0.2/16", "dev", "s1"])
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while !redirect
        .log
        .iter()
        .any(|l| l.contains("IPv4 subnets changed"))
    {
        assert!(
            Instant::now() < deadline,
            "the new subnet was not read within {WAIT:?}: {:?}",
            redirect.log
        );
        if let Ok(l) = redirect.lines.recv_timeout(Duration::from_millis(100)) {
            redirect.log.push(l);
        }
    }
    udp.send_to(&gue(Ipv4Addr::new(10, 66, 255, 255)), to)
        .unwrap();
    // And a plain address of that subnet still goes.
    udp.send_to(&gue(Ipv4Addr::new(10, 66, 1, 1)), to).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = redirect.stop();
    for (name, want) in [("rx", 4), ("drop_bad_hop_address", 2), ("forwarded", 2)] {
        assert_eq!(counter(&out, name), want, "{name} in:\n{out}");
    }
}

const QUIC_KEY: [u8; 16] = [
    0x95, 0x09, 0x83, 0x48, 0x2b, 0x06, 0x92, 0xf7, 0x8f, 0x60, 0x57, 0xba, 0xee, 0x94, 0x11, 0x8c,
];

/// A QUIC-LB CID (config 1: 2-byte server IDs, 6-byte nonces, AES) for server ID `sid`.
fn quic_cid(sid: [u8; 2]) -> Vec<u8> {
    use rondo::quic_lb::{QuicLbConfig, RandomNonce, ServerId};
    let c = QuicLbConfig::new(1, 2, 6, Some(&QUIC_KEY)).unwrap();
    let mut out = [0u8; 20];
    let n = c
        .encode(
            &ServerId::new(&sid).unwrap(),
            &mut RandomNonce::new(),
            &mut out,
        )
        .unwrap();
    out[..n].to_vec()
}

/// Ethernet + IPv4 + UDP `src:sport -> VIP:dport` carrying `payload`, checksummed.
fn udp_frame(src: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (s, d) = (src.octets(), VIP.octets());
    let len = (8 + payload.len()) as u16;
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = csum(&[&s, &d, &[0, 17], &len.to_be_bytes(), &u]);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(0x0800);
    f.extend(ipv4_hdr(s, d, 17, u.len(), 1, 0x4000));
    f.extend(u);
    f
}

/// QUIC's second chance behind a director that hashes (no `quic_lb` in its table, as GLB):
/// B1 runs `rondo redirect` with `[redirect.quic_lb]` and server ID 0001; a QUIC packet
/// whose CID names 0002 (B2's) goes on to B2, one naming 0001 reaches B1's server, as do
/// an Initial naming 0002 (a new connection stays where the director sent it) and the same
/// bytes to a port that is not QUIC's.
#[test]
fn quic_packets_follow_their_connection_id_to_the_next_hop() {
    if let Err(why) = privileged() {
        return skip(&why);
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return skip("no /dev/net/tun");
    }
    let nd = Netns::new('Q').expect("netns Q (director)");
    let n1 = Netns::new('3').expect("netns B1");
    let n2 = Netns::new('4').expect("netns B2");
    // 10.78.0.0/24 here, so that the test can run beside redirect_in_network_namespaces.
    let (b1, b2) = (Ipv4Addr::new(10, 78, 0, 2), Ipv4Addr::new(10, 78, 0, 3));
    nd.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    for (dl, bl, ns, a) in [("q1", "b1", &n1, b1), ("q2", "b2", &n2, b2)] {
        nd.ip(&[
            "link", "add", dl, "type", "veth", "peer", "name", bl, "netns", &ns.name,
        ])
        .unwrap();
        nd.ip(&["link", "set", dl, "master", "br0", "up"]).unwrap();
        ns.ip(&["link", "set", bl, "up"]).unwrap();
        ns.ip(&["link", "set", "lo", "up"]).unwrap();
        ns.ip(&["addr", "add", &format!("{a}/24"), "dev", bl])
            .unwrap();
    }
    nd.ip(&["link", "set", "br0", "up"]).unwrap();
    nd.ip(&["addr", "add", "10.78.0.1/24", "dev", "br0"])
        .unwrap();
    n1.ip(&["addr", "add", "10.200.0.1/32", "dev", "lo"])
        .unwrap();
    n1.ip(&["route", "add", "10.99.0.0/24", "via", "10.78.0.1"])
        .unwrap();
    for ns in [&nd, &n1] {
        for kv in [
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            sysctl(ns, kv);
        }
    }

    // The director hashes UDP 443 (no quic_lb): a client whose row is (B1, B2).
    let toml = DIRECTOR_TOML
        .replace("10.77.0.", "10.78.0.")
        .replace(
            "{ ip = \"fd77:200::1\", proto = \"tcp\", port = 80 }",
            "{ ip = \"10.200.0.1\", proto = \"udp\", port = 443 }, { ip = \"10.200.0.1\", proto = \"udp\", port = 8443 }",
        );
    let cfg = rondo::config::config_from_str(&toml, "director.toml").unwrap();
    let snap = Snapshot::compile(cfg, None, 0).unwrap();
    let short = |sid: [u8; 2]| {
        let mut p = vec![0x41];
        p.extend(quic_cid(sid));
        p.extend_from_slice(&[0x5a; 40]);
        p
    };
    let client = (1..=254)
        .map(|i| Ipv4Addr::new(10, 99, 0, i))
        .find(|&c| {
            let (_, dst, hops) = encapsulate(&snap, &udp_frame(c, 5000, 443, &short([0, 1])));
            let (_, dst2, hops2) = encapsulate(&snap, &udp_frame(c, 5000, 8443, &short([0, 1])));
            (dst, hops.as_slice(), dst2, hops2.as_slice()) == (b1, &[b2][..], b1, &[b2][..])
        })
        .expect("a client hashed to (B1, B2) on both ports");

    // B1: a UDP server on VIP:443 and VIP:8443, then rondo redirect with QUIC-LB on 443.
    let (srv, srv_other) = in_netns(&n1.name, || {
        (
            UdpSocket::bind((VIP, 443)).unwrap(),
            UdpSocket::bind((VIP, 8443)).unwrap(),
        )
    });
    for s in [&srv, &srv_other] {
        s.set_read_timeout(Some(WAIT)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("backend.toml");
    std::fs::write(
        &conf,
        "[redirect]\nlisten = [\"0.0.0.0:19523\"]\ndirectors = [\"10.78.0.1\"]\n\
         backends = [\"10.78.0.2\", \"10.78.0.3\"]\ntun = \"rdotun2\"\nstats_interval_secs = 0\n\
         [redirect.quic_lb]\nserver_id = \"0001\"\nports = [443]\n\
         configs = [{ config_id = 1, server_id_len = 2, nonce_len = 6, key = \"950983482b0692f78f6057baee94118c\" }]\n",
    )
    .unwrap();
    let redirect = Redirect::start(&n1, &conf);
    let raw_out = in_netns(&nd.name, || raw_socket(libc::AF_INET, libc::IPPROTO_RAW));
    let recorder = in_netns(&n2.name, move || UdpSocket::bind((b2, 19523)).unwrap());
    recorder.set_read_timeout(Some(WAIT)).unwrap();
    let to_b1 = SocketAddr::new(IpAddr::V4(b1), 19523);
    let mut b = [0u8; 2048];

    // 1. Our own server ID: the server on B1 gets it.
    let ours = short([0, 1]);
    let (pkt, _, _) = encapsulate(&snap, &udp_frame(client, 5000, 443, &ours));
    raw_out.send_to(&pkt, to_b1).unwrap();
    let (n, from) = srv.recv_from(&mut b).expect("B1's server gets its own CID");
    assert_eq!(
        (&b[..n], from),
        (&ours[..], SocketAddr::new(IpAddr::V4(client), 5000))
    );

    // 2. B2's server ID: forwarded to B2, next_hop 1, nothing else changed.
    let (pkt, _, _) = encapsulate(&snap, &udp_frame(client, 5000, 443, &short([0, 2])));
    raw_out.send_to(&pkt, to_b1).unwrap();
    let (n, _) = recorder
        .recv_from(&mut b)
        .expect("B2 gets the CID naming it");
    let orig = &pkt[28..];
    assert_eq!(n, orig.len());
    assert_eq!((b[6], b[7]), (1, 1), "next_hop incremented, hop_count kept");
    assert_eq!((&b[..6], &b[7..n]), (&orig[..6], &orig[7..]));

    // 3. An Initial whose DCID names B2: a new connection, kept on B1.
    let mut initial = vec![0xc0, 0, 0, 0, 1];
    let cid = quic_cid([0, 2]);
    initial.push(cid.len() as u8);
    initial.extend(&cid);
    initial.push(0);
    initial.extend_from_slice(&[0x5a; 40]);
    let (pkt, _, _) = encapsulate(&snap, &udp_frame(client, 5000, 443, &initial));
    raw_out.send_to(&pkt, to_b1).unwrap();
    let (n, _) = srv.recv_from(&mut b).expect("B1's server gets the Initial");
    assert_eq!(&b[..n], &initial[..]);

    // 4. B2's CID to port 8443 (not a QUIC port here): plain UDP, local.
    let other = short([0, 2]);
    let (pkt, _, _) = encapsulate(&snap, &udp_frame(client, 5000, 8443, &other));
    raw_out.send_to(&pkt, to_b1).unwrap();
    let (n, _) = srv_other
        .recv_from(&mut b)
        .expect("UDP off the QUIC ports stays");
    assert_eq!(&b[..n], &other[..]);

    recorder
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        recorder.recv_from(&mut b).is_err(),
        "only one packet went to B2"
    );
    let out = redirect.stop();
    for (name, want) in [
        ("rx", 4),
        ("local_quic_own", 1),
        ("local_quic_initial", 1),
        ("local_udp", 1),
        ("forwarded", 1),
        ("forwarded_quic", 1),
        ("dropped", 0),
    ] {
        assert_eq!(counter(&out, name), want, "{name} in:\n{out}");
    }
}
