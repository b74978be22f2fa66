//! `rondo run` on a real interface: a veth pair whose director end lives in a network
//! namespace made for the test (rondo runs there, with its TAP), while the test plays the
//! router and the clients on the other end. Needs root (CI is root); otherwise prints why
//! it skipped.

mod common;

use std::net::IpAddr;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::veth::{self, Netns, Veth};
use common::*;
use rondo::config::load_config;
use rondo::datapath::PacketBuf;
use rondo::drivers::{Burst, Port, RxQueue, TxQueue};
use rondo::table::ForwardingTable;

const GW: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

fn config(tap: &str, spec: &str) -> String {
    format!(
        r#"[[ports]]
spec = "{spec}"

[runtime]
workers = 1
idle = "sleep"
exception = "tap:{tap}"

[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{{ ip = "1.1.1.1", proto = "tcp", port = 80 }}, {{ ip = "fdb4:98ce:52d4::42", proto = "tcp", port = 80 }}]
backends = [{{ ip = "10.1.0.1" }}, {{ ip = "10.1.0.2" }}, {{ ip = "10.1.0.3" }}]
"#
    )
}

struct Director {
    child: Child,
    log: PathBuf,
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

/// How the director meets the wire in a scenario.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// Rondo's af_packet driver on a veth, rondo in a namespace, with the receive ring the
    /// spec names (`None`: no `rx=`, the default, TPACKET_V2).
    AfPacket(Option<&'static str>),
    /// DPDK's net_af_packet on a veth, rondo in a namespace (one queue pair: kernel
    /// frames of the exception path leave through the worker's queue).
    #[cfg(feature = "dpdk")]
    DpdkAfPacket,
    /// DPDK's net_tap: the test talks to the TAP's kernel side; rondo in this namespace.
    #[cfg(feature = "dpdk")]
    DpdkTap,
}

#[test]
fn director_on_a_veth_forwards_vips_and_hands_the_rest_to_the_kernel() {
    scenario(Wire::AfPacket(None));
}

#[test]
fn director_with_a_v2_rx_ring_forwards_through_a_veth() {
    scenario(Wire::AfPacket(Some("v2")));
}

#[test]
fn director_with_a_v3_rx_ring_forwards_through_a_veth() {
    scenario(Wire::AfPacket(Some("v3")));
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_net_af_packet_on_a_veth_forwards_vips_and_hands_the_rest_to_the_kernel() {
    scenario(Wire::DpdkAfPacket);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_net_tap_forwards_vips_and_hands_the_rest_to_the_kernel() {
    scenario(Wire::DpdkTap);
}

#[cfg(feature = "dpdk")]
fn dpdk_section() -> String {
    format!(
        "\n[dpdk]\neal_args = [\"--no-huge\", \"-m\", \"256\", \"--no-shconf\", \"--no-telemetry\", \"--file-prefix\", \"rondo-afp-{}\"]\n",
        std::process::id()
    )
}

fn scenario(wire: Wire) {
    let tag = match wire {
        Wire::AfPacket(None) => 'r',
        Wire::AfPacket(Some("v2")) => 's',
        Wire::AfPacket(Some(_)) => 'v',
        #[cfg(feature = "dpdk")]
        Wire::DpdkAfPacket => 'd',
        #[cfg(feature = "dpdk")]
        Wire::DpdkTap => 't',
    };
    let Some(v) = Veth::new(tag) else { return };
    let ns = match Netns::new(tag) {
        Ok(ns) => ns,
        Err(e) => {
            common::skip(&format!("cannot create a network namespace: {e}"));
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let tap = format!("rd{tag}{}", std::process::id() % 100_000);
    #[allow(unused_mut)]
    let mut in_ns = true;
    // The director's MAC, the interface the test sends and receives on, the port spec.
    let (director_mac, test_iface, text) = match wire {
        Wire::AfPacket(rx) => {
            let mac = mac_of(&v.a);
            ns.adopt(&v.a).unwrap();
            let spec = match rx {
                Some(r) => format!("af_packet:{},rx={r}", v.a),
                None => format!("af_packet:{}", v.a),
            };
            (mac, v.b.clone(), config(&tap, &spec))
        }
        #[cfg(feature = "dpdk")]
        Wire::DpdkAfPacket => {
            let mac = mac_of(&v.a);
            ns.adopt(&v.a).unwrap();
            let spec = format!("dpdk:net_af_packet0,iface={}", v.a);
            (mac, v.b.clone(), config(&tap, &spec) + &dpdk_section())
        }
        #[cfg(feature = "dpdk")]
        Wire::DpdkTap => {
            in_ns = false;
            let mac = [0x02, 0, 0, 0xd0, 0x7a, 0x01];
            let wire_tap = format!("rdw{}", std::process::id() % 100_000);
            let spec = format!("dpdk:net_tap0,iface={wire_tap},mac=02:00:00:d0:7a:01");
            (mac, wire_tap, config(&tap, &spec) + &dpdk_section())
        }
    };
    let cfg_path = dir.path().join("director.toml");
    std::fs::write(&cfg_path, &text).unwrap();
    let cfg = load_config(&cfg_path, None).unwrap();
    let table: ForwardingTable = cfg.tables[0].clone();

    // Readiness through the systemd protocol.
    let notify = dir.path().join("notify");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let log = dir.path().join("log");
    // `ip netns exec` enters the namespace and execs rondo (same pid).
    let mut cmd = if in_ns {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_rondo")]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_rondo"))
    };
    let child = cmd
        .args(["run", "--stats-interval", "0", "--config"])
        .arg(&cfg_path)
        .env("NOTIFY_SOCKET", &notify)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut d = Director { child, log };
    assert_eq!(recv_notify(&listener, &d.log), b"READY=1");
    // The director says which receive ring it opened (the default is V2).
    #[allow(irrefutable_let_patterns)] // without the dpdk feature, the only kind of wire
    if let Wire::AfPacket(rx) = wire {
        let log = std::fs::read_to_string(&d.log).unwrap_or_default();
        let want = format!("rx={}", rx.unwrap_or("v2"));
        assert!(
            log.lines()
                .any(|l| l.contains("af_packet receive ring") && l.contains(&want)),
            "no {want} in the log: {log}"
        );
    }

    // The test's side of the wire.
    if !in_ns {
        veth::ip(&["link", "set", &test_iface, "up"]).unwrap();
    }
    let (peer, mut rx, mut tx) = veth::test_port(&test_iface, 4096, 32);
    let peer_mac = mac_of(&test_iface);
    let send = |tx: &mut rondo::drivers::af_packet::AfPacketTx, frames: &[Vec<u8>]| {
        for chunk in frames.chunks(16) {
            let mut b = Burst::new();
            for f in chunk {
                let mut f = f.clone();
                f[0..6].copy_from_slice(&director_mac);
                b.push(peer.alloc(&f).unwrap()).ok().unwrap();
            }
            while !b.is_empty() {
                tx.tx_burst(&mut b);
                tx.flush();
            }
        }
    };

    // 50 IPv4 and 50 IPv6 clients and one ping to the VIPs (the other ICMP cases are in
    // tests/pipeline.rs).
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
    send(&mut tx, &frames);

    let key = hex16("12345678901234561234567890123456");
    let backend = |h: u64| -> (IpAddr, IpAddr) {
        let r = table.row(h as u16);
        (
            table.spec.backends[r[0] as usize].ip,
            table.spec.backends[r[1] as usize].ip,
        )
    };
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut burst = Burst::new();
    while got < 101 && Instant::now() < deadline {
        if rx.rx_burst(&mut burst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for b in burst.drain() {
            let f = b.data();
            if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[23] != 17 || f[36..38] != [0x4c, 0x43]
            {
                continue; // not GUE: kernel chatter
            }
            let (dst, hops, _, inner) = check_outer_v4(f, GW, director_mac, [192, 0, 2, 10]);
            let src: Vec<u8> = if inner[0] >> 4 == 4 {
                inner[12..16].to_vec()
            } else {
                inner[8..24].to_vec()
            };
            let (p, s) = backend(siphash(&key, &src));
            assert_eq!(
                (IpAddr::from(dst), IpAddr::from(hops[0])),
                (p, s),
                "flow from {src:?}"
            );
            got += 1;
        }
    }
    assert_eq!(
        got,
        101,
        "all VIP traffic came back encapsulated: {}",
        std::fs::read_to_string(&d.log).unwrap_or_default()
    );

    // Exception path both ways: an ARP request for the TAP's address goes to the kernel,
    // and the kernel's reply comes back out of the port.
    if in_ns {
        ns.ip(&["addr", "add", "198.18.0.1/24", "dev", &tap])
            .unwrap();
    } else {
        veth::ip(&["addr", "add", "198.18.0.1/24", "dev", &tap]).unwrap();
    }
    let arp = arp_request(peer_mac, [198, 18, 0, 2], [198, 18, 0, 1]);
    let mut reply = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    'outer: while Instant::now() < deadline {
        send(&mut tx, std::slice::from_ref(&arp));
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            if rx.rx_burst(&mut burst) == 0 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            for b in burst.drain() {
                let f = b.data();
                if f.len() >= 42
                    && f[12..14] == [0x08, 0x06]
                    && f[20..22] == [0, 2]
                    && f[28..32] == [198, 18, 0, 1]
                {
                    reply = Some(f.to_vec());
                    break 'outer;
                }
            }
        }
    }
    let reply = reply.unwrap_or_else(|| {
        panic!(
            "no ARP reply through the TAP: {}",
            std::fs::read_to_string(&d.log).unwrap_or_default()
        )
    });
    assert_eq!(&reply[0..6], &peer_mac, "reply addressed to the asker");

    // Clean stop on SIGTERM, with a summary.
    assert!(Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = std::mem::replace(&mut d.child, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        std::fs::read_to_string(&d.log).unwrap_or_default()
    );
    assert!(stdout.contains("exception   to kernel"), "{stdout}");
    assert!(
        !std::path::Path::new(&format!("/sys/class/net/{tap}")).exists(),
        "TAP removed on exit"
    );
}
