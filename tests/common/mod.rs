//! Helpers shared by integration tests: independent frame builders and checks (they do not
//! use Rondo's own wire code, so they can catch its mistakes).
#![allow(dead_code)]

use std::path::PathBuf;

pub mod bird;
pub mod configs;
pub mod director;
pub mod etcd;
pub mod fleet;
pub mod netns;
pub mod skip;
pub mod topology;
pub mod veth;

#[allow(unused_imports)]
pub use skip::{every_test_must_run, skip};

/// GLB's own files, kept in the repository (`tests/vectors/glb/`, with their licence and
/// provenance): `table.json`, the `table.bin` GLB's `glb-director-cli` built from it, and
/// `1k_pkts.pcap`. A missing file is a failure, never a skip.
pub fn glb_vectors() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/glb");
    for f in ["table.json", "table.bin", "1k_pkts.pcap"] {
        assert!(
            p.join(f).is_file(),
            "GLB vector {} is missing: it is part of the repository (see tests/vectors/glb/README.md)",
            p.join(f).display()
        );
    }
    p
}

/// RFC 1071 checksum over `parts` concatenated (each part even-length except the last).
pub fn csum(parts: &[&[u8]]) -> u16 {
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(p);
    }
    if all.len() % 2 == 1 {
        all.push(0);
    }
    let mut s: u32 = 0;
    for c in all.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

pub const CLIENT_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 1];

pub fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&DIRECTOR_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// IPv4 header (no options) for a payload of `len` bytes.
pub fn ipv4_hdr(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize, id: u16, frag: u16) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + len) as u16).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = csum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// A TCP header with the given flags and no options, checksum over the IPv4 pseudo-header.
pub fn tcp_v4(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&1000u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    let len = (t.len() as u16).to_be_bytes();
    let c = csum(&[&src, &dst, &[0, 6], &len, &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// Ethernet + IPv4 + ICMP echo request with IP id `id`.
pub fn echo_v4(src: [u8; 4], dst: [u8; 4], id: u16) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, 1, b'p', b'i', b'n', b'g'];
    let c = csum(&[&icmp]);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(0x0800);
    f.extend(ipv4_hdr(src, dst, 1, icmp.len(), id, 0));
    f.extend(icmp);
    f
}

/// Ethernet + IPv4 + TCP SYN frame.
pub fn syn_v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let tcp = tcp_v4(src, dst, sport, dport, 0x02, &[]);
    let mut f = eth(0x0800);
    f.extend(ipv4_hdr(src, dst, 6, tcp.len(), 1, 0x4000));
    f.extend(tcp);
    f
}

pub fn udp_v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let mut f = eth(0x0800);
    f.extend(ipv4_hdr(src, dst, 17, u.len(), 7, 0));
    f.extend(u);
    f
}

/// IPv6 header for `payload_len` bytes after it.
pub fn ipv6_hdr(src: [u8; 16], dst: [u8; 16], next: u8, payload_len: usize, flow: u32) -> Vec<u8> {
    let mut h = vec![0x60 | ((flow >> 16) as u8 & 0x0f) & 0x6f, 0, 0, 0];
    h[0] = 0x60;
    h[1] = ((flow >> 16) & 0x0f) as u8;
    h[2] = (flow >> 8) as u8;
    h[3] = flow as u8;
    h.extend_from_slice(&(payload_len as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h
}

pub fn syn_v6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    let len = (t.len() as u32).to_be_bytes();
    let c = csum(&[&src, &dst, &len, &[0, 0, 0, 6], &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(0x86dd);
    f.extend(ipv6_hdr(src, dst, 6, t.len(), 0x12345));
    f.extend(t);
    f
}

/// Read GLB .bin rows independently of Rondo: (primary ip, secondary ip) for table `t`, row `r`.
pub fn bin_row(bin: &[u8], t: usize, r: usize) -> ([u8; 4], [u8; 4]) {
    let base = 24 + t * 537624;
    let rows = base + 13336 + r * 8;
    let p = u32::from_le_bytes(bin[rows..rows + 4].try_into().unwrap()) as usize;
    let s = u32::from_le_bytes(bin[rows + 4..rows + 8].try_into().unwrap()) as usize;
    let ip = |i: usize| {
        let off = base + 4 + i * 24 + 4;
        [bin[off], bin[off + 1], bin[off + 2], bin[off + 3]]
    };
    (ip(p), ip(s))
}

/// SipHash-2-4 by the independent `siphasher` crate, keyed as GLB keys it (k0, k1: the
/// key's two little-endian halves).
pub fn siphash(key: &[u8; 16], data: &[u8]) -> u64 {
    use siphasher::sip::SipHasher24;
    SipHasher24::new_with_key(key).hash(data)
}

pub fn hex16(s: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    k
}

/// Check an encapsulated IPv4 frame: outer headers as GLB writes them (Ethernet, IPv4,
/// UDP, GUE with the hop list). Returns (outer dst, hop list, udp source port, inner packet).
pub fn check_outer_v4(
    f: &[u8],
    gw: [u8; 6],
    src_mac: [u8; 6],
    src_ip: [u8; 4],
) -> ([u8; 4], Vec<[u8; 4]>, u16, Vec<u8>) {
    assert_eq!(&f[0..6], &gw, "eth dst");
    assert_eq!(&f[6..12], &src_mac, "eth src");
    assert_eq!(&f[12..14], &[0x08, 0x00], "ethertype");
    let ip = &f[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(ip[1], 0);
    assert_eq!(
        u16::from_be_bytes([ip[2], ip[3]]) as usize,
        f.len() - 14,
        "ip total length"
    );
    assert_eq!(&ip[4..6], &[0, 0], "id 0");
    assert_eq!(&ip[6..8], &[0x40, 0], "DF");
    assert_eq!(ip[8], 64, "ttl");
    assert_eq!(ip[9], 17, "udp");
    assert_eq!(csum(&[ip]), 0, "ip checksum");
    assert_eq!(&ip[12..16], &src_ip);
    let dst: [u8; 4] = ip[16..20].try_into().unwrap();
    let udp = &f[34..];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 19523);
    assert_eq!(
        u16::from_be_bytes([udp[4], udp[5]]) as usize,
        udp.len(),
        "udp length"
    );
    let ulen = (udp.len() as u16).to_be_bytes();
    assert_eq!(
        csum(&[&ip[12..20], &[0, 17], &ulen, udp]),
        0,
        "udp checksum"
    );
    assert_ne!(&udp[6..8], &[0, 0], "udp checksum present");
    let gue = &udp[8..];
    let hlen = gue[0] as usize;
    assert_eq!(gue[0] >> 5, 0, "GUE version 0, C 0");
    assert_eq!(&gue[2..4], &[0, 0], "GUE flags");
    assert_eq!(&gue[4..6], &[0, 0], "private type");
    assert_eq!(gue[6], 0, "next_hop");
    let hop_count = gue[7] as usize;
    assert_eq!(hlen, hop_count + 1);
    let hops = (0..hop_count)
        .map(|i| gue[8 + 4 * i..12 + 4 * i].try_into().unwrap())
        .collect();
    let inner = gue[4 + 4 * hlen..].to_vec();
    match gue[1] {
        4 => assert_eq!(inner[0] >> 4, 4),
        41 => assert_eq!(inner[0] >> 4, 6),
        p => panic!("GUE proto {p}"),
    }
    (dst, hops, sport, inner)
}

/// A SYN from client `i` (10.0.0.0 + i, port 1024 + i % 50000) to the VIP 1.1.1.1:80.
pub fn client_syn(i: u32) -> Vec<u8> {
    syn_v4(
        (0x0a00_0000 + i).to_be_bytes(),
        [1, 1, 1, 1],
        1024 + (i % 50000) as u16,
        80,
    )
}

/// Poll `f` every few milliseconds until it holds; fail after `secs` seconds naming `what`.
pub fn wait_until(what: &str, secs: u64, f: impl FnMut() -> bool) {
    let timeout = std::time::Duration::from_secs(secs);
    assert!(
        poll(timeout, std::time::Duration::from_millis(2), f),
        "timed out waiting for {what}"
    );
}

/// Call `f` every `step` until it holds: `true`, or `false` once `timeout` has passed
/// (the caller then fails with what it knows, a process log for instance).
pub fn poll(
    timeout: std::time::Duration,
    step: std::time::Duration,
    mut f: impl FnMut() -> bool,
) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(step);
    }
}

/// The first datagram on a `NOTIFY_SOCKET` listener (with the listener's read timeout),
/// waiting again when a signal interrupts the wait: other tests of the same binary run
/// DPDK in this process. Panics with the director's log (`log`) when none comes.
#[allow(dead_code)] // not every test binary starts a director
pub fn recv_notify(listener: &std::os::unix::net::UnixDatagram, log: &std::path::Path) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let n = loop {
        match listener.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    }
    .unwrap_or_else(|e| {
        panic!(
            "no READY=1: {e}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
    buf[..n].to_vec()
}
