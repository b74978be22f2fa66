//! GLB's GUE tunnel check (`TunnelHealthChecker`): send the backend, on
//! UDP `ip:port` (19523), the GUE header `01 04 00 00 00 00 00 00` (version 0, hlen 1, inner
//! IPv4, GLB private data with no further hops) followed by an IPv4 ICMP echo request from
//! our address to the backend (DF, TTL 255, id 0, as GLB builds it) whose payload is a unique
//! `glbhc_...` identifier. The backend decapsulates it and its kernel answers the ping
//! directly (no tunnel), so the reply is read from a raw ICMP socket and matched by ICMP id,
//! sequence and payload. A reply within the timeout passes.
//!
//! IPv6 backends (Rondo native tables; GLB checks IPv4 only) get the same probe with GUE
//! proto 41 and an inner ICMPv6 echo request.
//!
//! An ICMP "port unreachable" for the probe (nothing listens on the GUE port) fails the check
//! at once rather than at the timeout.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};

use super::check::{is_timeout, left, CheckError};
use crate::wire::checksum;
use crate::wire::gue::emit_glb_v4;

/// Length of the probe payload: `glbhc_` and 20 hex digits (GLB uses `glbhc_` + a 20-character xid).
pub const PAYLOAD_LEN: usize = 26;

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_UNREACHABLE: u8 = 3;
const ICMP_PORT_UNREACHABLE: u8 = 3;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP6_UNREACHABLE: u8 = 1;
const ICMP6_PORT_UNREACHABLE: u8 = 4;
const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;

/// One echo request's identity: ICMP id, sequence and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub id: u16,
    pub seq: u16,
    pub payload: [u8; PAYLOAD_LEN],
}

impl Probe {
    /// A probe no other probe of this host shares: id from the process id, sequence and payload
    /// from a process-wide counter and the clock.
    pub fn new() -> Probe {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        let text = format!("glbhc_{nanos:08x}{:04x}{n:08x}", pid as u16);
        let mut payload = [0u8; PAYLOAD_LEN];
        payload.copy_from_slice(&text.as_bytes()[..PAYLOAD_LEN]);
        Probe {
            id: (pid as u16) ^ 0x4742,
            seq: n as u16,
            payload,
        }
    }

    fn icmp(&self, kind: u8) -> Vec<u8> {
        let mut m = vec![kind, 0, 0, 0];
        m.extend_from_slice(&self.id.to_be_bytes());
        m.extend_from_slice(&self.seq.to_be_bytes());
        m.extend_from_slice(&self.payload);
        m
    }

    /// The UDP payload for an IPv4 backend: GUE header and inner IPv4 + ICMP echo request.
    pub fn packet_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let mut icmp = self.icmp(ICMP_ECHO_REQUEST);
        let c = checksum::data(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let total = (20 + icmp.len()) as u16;
        let mut out = vec![0u8; 8];
        // 8 bytes always fit; no hops is within every limit.
        let _ = emit_glb_v4(&mut out, 4, &[], 0);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 255, 1, 0, 0]); // id 0, DF, TTL 255, ICMP
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        let c = checksum::data(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        out.extend(ip);
        out.extend(icmp);
        out
    }

    /// The UDP payload for an IPv6 backend: GUE header (proto 41) and inner IPv6 + ICMPv6
    /// echo request.
    pub fn packet_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut icmp = self.icmp(ICMP6_ECHO_REQUEST);
        let len = icmp.len() as u32;
        let c = checksum::combine(&[
            checksum::pseudo_header_v6(&src, &dst, 58, len),
            checksum::sum(&icmp),
        ]);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut out = vec![0u8; 8];
        let _ = emit_glb_v4(&mut out, 41, &[], 0);
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&[58, 255]);
        out.extend_from_slice(&src.octets());
        out.extend_from_slice(&dst.octets());
        out.extend(icmp);
        out
    }

    fn is_echo_reply(&self, icmp: &[u8], reply_type: u8) -> bool {
        icmp.len() == 8 + PAYLOAD_LEN
            && icmp[0] == reply_type
            && icmp[1] == 0
            && icmp[4..6] == self.id.to_be_bytes()
            && icmp[6..8] == self.seq.to_be_bytes()
            && icmp[8..] == self.payload
    }

    /// What an IPv4 packet read from a raw ICMP socket (IP header included) means for this probe.
    pub fn classify_v4(&self, packet: &[u8], target: SocketAddr, local_port: u16) -> Reply {
        let Some(icmp) = ipv4_payload(packet, 1) else {
            return Reply::Other;
        };
        if self.is_echo_reply(icmp, ICMP_ECHO_REPLY) {
            return Reply::Echo;
        }
        // Port unreachable quoting our UDP datagram to the target.
        if icmp.len() >= 8 && icmp[0] == ICMP_UNREACHABLE && icmp[1] == ICMP_PORT_UNREACHABLE {
            if let Some(udp) = ipv4_payload_unchecked_len(&icmp[8..], 17) {
                if quotes_udp(udp, target.port(), local_port)
                    && icmp[8..].get(16..20) == Some(&ip_octets(target.ip())[..])
                {
                    return Reply::PortUnreachable;
                }
            }
        }
        Reply::Other
    }

    /// What an ICMPv6 message read from a raw ICMPv6 socket (no IP header) means for this probe.
    pub fn classify_v6(&self, icmp: &[u8], target: SocketAddr, local_port: u16) -> Reply {
        if self.is_echo_reply(icmp, ICMP6_ECHO_REPLY) {
            return Reply::Echo;
        }
        if icmp.len() >= 8 + 40 + 8
            && icmp[0] == ICMP6_UNREACHABLE
            && icmp[1] == ICMP6_PORT_UNREACHABLE
        {
            let quoted = &icmp[8..];
            if quoted[6] == 17
                && quoted[24..40] == ip_octets(target.ip())[..]
                && quotes_udp(&quoted[40..], target.port(), local_port)
            {
                return Reply::PortUnreachable;
            }
        }
        Reply::Other
    }
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new()
    }
}

/// A packet seen while waiting for the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The echo reply to this probe.
    Echo,
    /// The backend refused the GUE datagram (ICMP port unreachable quoting it).
    PortUnreachable,
    /// Anything else (other pings, other ICMP traffic).
    Other,
}

fn ip_octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The payload of a whole IPv4 packet carrying `proto` (lengths checked).
fn ipv4_payload(p: &[u8], proto: u8) -> Option<&[u8]> {
    let ihl = usize::from(*p.first()? & 0x0f) * 4;
    if *p.first()? >> 4 != 4 || ihl < 20 || *p.get(9)? != proto {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
    p.get(ihl..total.min(p.len()))
}

/// The payload of a quoted IPv4 header (the quote is cut short, so the total length is not checked).
fn ipv4_payload_unchecked_len(p: &[u8], proto: u8) -> Option<&[u8]> {
    let ihl = usize::from(*p.first()? & 0x0f) * 4;
    if *p.first()? >> 4 != 4 || ihl < 20 || *p.get(9)? != proto {
        return None;
    }
    p.get(ihl..)
}

fn quotes_udp(udp: &[u8], dst_port: u16, src_port: u16) -> bool {
    udp.len() >= 4 && udp[0..2] == src_port.to_be_bytes() && udp[2..4] == dst_port.to_be_bytes()
}

/// Run the GUE check against `ip:port`, answering by `deadline`.
pub fn check(ip: IpAddr, port: u16, deadline: Instant) -> Result<(), CheckError> {
    let started = Instant::now();
    let target = SocketAddr::new(ip, port);
    let (domain, proto, family) = match ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, "ICMP"),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, "ICMPv6"),
    };
    // Listen before sending, so a fast reply cannot be missed.
    let raw = Socket::new(domain, Type::RAW, Some(proto)).map_err(|e| CheckError::RawSocket {
        family,
        message: e.to_string(),
    })?;
    let io = |stage: &'static str| {
        move |e: std::io::Error| CheckError::Io {
            stage,
            message: e.to_string(),
        }
    };
    let any: SocketAddr = match ip {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let udp = UdpSocket::bind(any).map_err(io("open UDP socket"))?;
    udp.connect(target).map_err(io("route to the backend"))?;
    let local = udp.local_addr().map_err(io("local address"))?;
    let probe = Probe::new();
    let packet = match (local.ip(), ip) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => probe.packet_v4(src, dst),
        (IpAddr::V6(src), IpAddr::V6(dst)) => probe.packet_v6(src, dst),
        _ => {
            return Err(CheckError::Io {
                stage: "local address",
                message: format!("{} is not of the backend's family", local.ip()),
            })
        }
    };
    udp.send(&packet).map_err(io("send GUE probe"))?;
    tracing::trace!(%target, id = probe.id, seq = probe.seq, "GUE probe sent");
    let mut buf = [0u8; 2048];
    loop {
        let budget = left(deadline, started, "wait for the echo reply")?;
        raw.set_read_timeout(Some(budget))
            .map_err(io("wait for the echo reply"))?;
        let n = match (&raw).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                return Err(CheckError::Timeout {
                    stage: "wait for the echo reply",
                    after: started.elapsed(),
                })
            }
            Err(e) => return Err(io("wait for the echo reply")(e)),
        };
        let got = &buf[..n];
        let reply = match ip {
            IpAddr::V4(_) => probe.classify_v4(got, target, local.port()),
            IpAddr::V6(_) => probe.classify_v6(got, target, local.port()),
        };
        match reply {
            Reply::Echo => return Ok(()),
            Reply::PortUnreachable => return Err(CheckError::PortUnreachable(target)),
            Reply::Other => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_v4(probe: &Probe, from: Ipv4Addr, to: Ipv4Addr) -> Vec<u8> {
        // Turn the inner request around the way a kernel does.
        let pkt = probe.packet_v4(to, from);
        let mut inner = pkt[8..].to_vec();
        inner[12..16].copy_from_slice(&from.octets());
        inner[16..20].copy_from_slice(&to.octets());
        inner[20] = ICMP_ECHO_REPLY;
        inner
    }

    #[test]
    fn v4_probe_is_glbs_bytes() {
        let p = Probe::new();
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let b = p.packet_v4(src, dst);
        assert_eq!(&b[..8], &[1, 4, 0, 0, 0, 0, 0, 0], "GUE header");
        let ip = &b[8..28];
        assert_eq!(ip[0], 0x45);
        assert_eq!(
            usize::from(u16::from_be_bytes([ip[2], ip[3]])),
            b.len() - 8,
            "total length"
        );
        assert_eq!(
            &ip[4..10],
            &[0, 0, 0x40, 0, 255, 1],
            "id 0, DF, TTL 255, ICMP"
        );
        assert_eq!(checksum::data(ip), 0, "IP checksum");
        assert_eq!(&ip[12..16], &src.octets());
        assert_eq!(&ip[16..20], &dst.octets());
        let icmp = &b[28..];
        assert_eq!(icmp[0], 8, "echo request");
        assert_eq!(checksum::data(icmp), 0, "ICMP checksum");
        assert!(icmp[8..].starts_with(b"glbhc_"));
        assert_eq!(icmp.len(), 8 + PAYLOAD_LEN);
    }

    #[test]
    fn v6_probe_has_valid_checksum() {
        let p = Probe::new();
        let src: Ipv6Addr = "fd00::1".parse().unwrap();
        let dst: Ipv6Addr = "fd00::2".parse().unwrap();
        let b = p.packet_v6(src, dst);
        assert_eq!(&b[..8], &[1, 41, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b[8] >> 4, 6);
        let icmp = &b[48..];
        assert_eq!(icmp[0], 128);
        let sum = checksum::combine(&[
            checksum::pseudo_header_v6(&src, &dst, 58, icmp.len() as u32),
            checksum::sum(icmp),
        ]);
        assert_eq!(sum, 0);
    }

    #[test]
    fn probes_are_unique() {
        let a = Probe::new();
        let b = Probe::new();
        assert_ne!(a.payload, b.payload);
        assert_ne!(a.seq, b.seq);
    }

    #[test]
    fn replies_match_only_their_probe() {
        let t: SocketAddr = "10.0.0.2:19523".parse().unwrap();
        let (us, them) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let p = Probe::new();
        let other = Probe::new();
        let r = reply_v4(&p, them, us);
        assert_eq!(p.classify_v4(&r, t, 5000), Reply::Echo);
        assert_eq!(other.classify_v4(&r, t, 5000), Reply::Other);
        // A request (our own probe looped back) is not a reply.
        let req = p.packet_v4(us, them)[8..].to_vec();
        assert_eq!(p.classify_v4(&req, t, 5000), Reply::Other);
        // Truncated and garbage packets are ignored without panicking.
        for i in 0..r.len() {
            assert_eq!(p.classify_v4(&r[..i], t, 5000), Reply::Other);
        }
        assert_eq!(p.classify_v4(&[0xff; 64], t, 5000), Reply::Other);
        assert_eq!(p.classify_v6(&[0xff; 3], t, 5000), Reply::Other);
    }

    #[test]
    fn port_unreachable_for_our_datagram_is_recognised() {
        let t: SocketAddr = "10.0.0.2:19523".parse().unwrap();
        let p = Probe::new();
        // Quoted: IPv4 header us -> them, UDP 5000 -> 19523.
        let mut quoted = vec![0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 17, 0, 0];
        quoted.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        quoted.extend_from_slice(&5000u16.to_be_bytes());
        quoted.extend_from_slice(&19523u16.to_be_bytes());
        quoted.extend_from_slice(&[0, 40, 0, 0]);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend(&quoted);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
        ip.extend(icmp);
        assert_eq!(p.classify_v4(&ip, t, 5000), Reply::PortUnreachable);
        assert_eq!(p.classify_v4(&ip, t, 5001), Reply::Other, "someone else's");
    }
}
