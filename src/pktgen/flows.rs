//! Flows and their prebuilt frames. Every frame carries a [trailer](TRAILER_LEN) right after
//! its L4 header (sequence number and send time); the generator only patches those 16 bytes
//! and the L4 checksum (incrementally) per packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::PktgenError;
use crate::table::{Proto, TableSpec};

/// `RNDG`: marks a frame as ours.
pub const MAGIC: u32 = 0x524e_4447;
/// Trailer: magic u32, flow u32, seq u64, send time (ns since the run's epoch) u64, big endian.
pub const TRAILER_LEN: usize = 24;
/// Largest frame generated (1500-byte MTU); the director adds its encapsulation on top.
pub const MAX_FRAME: usize = 1514;
/// Simple IMIX: 7 x 64, 4 x 594, 1 x 1514 bytes (raised to each kind's minimum).
pub const IMIX: [usize; 12] = [64, 64, 64, 64, 64, 64, 64, 594, 594, 594, 594, 1514];

/// What a flow's packets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Syn,
    /// Established: ACK|PSH with payload.
    Ack,
    Fin,
    /// ICMP(v6) echo request to the VIP.
    Echo,
    /// ICMP frag-needed / ICMPv6 packet-too-big quoting a packet the VIP sent the client.
    FragNeeded,
    /// UDP datagram (flows to UDP binds; not part of `--mix`).
    Udp,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Syn,
        Kind::Ack,
        Kind::Fin,
        Kind::Echo,
        Kind::FragNeeded,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Syn => "syn",
            Kind::Ack => "ack",
            Kind::Fin => "fin",
            Kind::Echo => "echo",
            Kind::FragNeeded => "frag",
            Kind::Udp => "udp",
        }
    }
}

/// Weights of each [`Kind`] among the flows (`syn=1,ack=8,fin=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix(pub [u32; 5]);

impl Default for Mix {
    fn default() -> Self {
        Mix([1, 0, 0, 0, 0])
    }
}

impl std::str::FromStr for Mix {
    type Err = PktgenError;
    fn from_str(s: &str) -> Result<Mix, PktgenError> {
        let bad = |why: String| PktgenError::Usage(format!("--mix {s:?}: {why}"));
        let mut w = [0u32; 5];
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not KIND=WEIGHT")))?;
            let i = Kind::ALL
                .iter()
                .position(|x| x.name() == k.trim())
                .ok_or_else(|| {
                    bad(format!(
                        "unknown kind {k:?}; expected syn, ack, fin, echo, frag"
                    ))
                })?;
            w[i] = v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 1000)
                .ok_or_else(|| bad(format!("weight {v:?} is not 0..=1000")))?;
        }
        if w.iter().all(|x| *x == 0) {
            return Err(bad("all weights are 0".into()));
        }
        Ok(Mix(w))
    }
}

/// Frame sizes (Ethernet header included, FCS excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Fixed(usize),
    Imix,
}

impl std::str::FromStr for Size {
    type Err = PktgenError;
    fn from_str(s: &str) -> Result<Size, PktgenError> {
        if s == "imix" {
            return Ok(Size::Imix);
        }
        match s.parse::<usize>() {
            Ok(n @ 60..=MAX_FRAME) => Ok(Size::Fixed(n)),
            _ => Err(PktgenError::Usage(format!(
                "--size {s:?}: expected 60..={MAX_FRAME} or imix"
            ))),
        }
    }
}

/// An address range: `base/prefix` (the host part counts up from `base`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub base: IpAddr,
    pub prefix: u8,
}

impl std::str::FromStr for Range {
    type Err = PktgenError;
    fn from_str(s: &str) -> Result<Range, PktgenError> {
        let (base, prefix) = crate::config::parse_ip_or_cidr(s)
            .map_err(|e| PktgenError::Usage(format!("{s:?}: {e}")))?;
        Ok(Range { base, prefix })
    }
}

impl Range {
    /// The `i`-th address (wrapping inside the range).
    pub fn nth(&self, i: u64) -> IpAddr {
        match self.base {
            IpAddr::V4(b) => {
                let host = 32 - u32::from(self.prefix.min(32));
                let size = 1u64 << host;
                IpAddr::V4(Ipv4Addr::from(u32::from(b).wrapping_add((i % size) as u32)))
            }
            IpAddr::V6(b) => {
                let host = 128 - u32::from(self.prefix.min(128));
                let off = if host >= 64 {
                    u128::from(i)
                } else {
                    u128::from(i % (1u64 << host))
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(b).wrapping_add(off)))
            }
        }
    }
}

/// A destination the flows go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vip {
    pub addr: IpAddr,
    pub proto: Proto,
    pub ports: (u16, u16),
}

/// VIPs from a config's binds: the bind address (its first host for a prefix), its ports.
/// Flows to TCP VIPs follow `--mix`; flows to UDP VIPs are UDP.
pub fn vips_from_tables(tables: &[TableSpec]) -> Vec<Vip> {
    let mut out = Vec::new();
    for t in tables {
        for b in &t.binds {
            let addr = match b.addr {
                IpAddr::V4(a) if b.prefix_len < 31 => IpAddr::V4(Ipv4Addr::from(u32::from(a) | 1)),
                IpAddr::V6(a) if b.prefix_len < 127 => {
                    IpAddr::V6(Ipv6Addr::from(u128::from(a) | 1))
                }
                a => a,
            };
            let v = Vip {
                addr,
                proto: b.proto,
                ports: (b.port_start, b.port_end),
            };
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// What flows to build.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    pub flows: u32,
    /// Client address ranges (IPv4 and/or IPv6); flows to a VIP use ranges of its family.
    pub clients: Vec<Range>,
    /// Client source ports, inclusive.
    pub client_ports: (u16, u16),
    pub vips: Vec<Vip>,
    pub size: Size,
    pub mix: Mix,
    /// Destination MAC of generated frames (the director's port).
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
}

/// One flow the generator sends (built from a [`FlowSpec`] or replayed from a capture) and
/// its prebuilt frame (the data path's record of a classified packet is
/// [`crate::datapath::classify::Flow`]).
#[derive(Debug, Clone)]
pub struct GeneratedFlow {
    pub id: u32,
    pub kind: Kind,
    pub client: IpAddr,
    pub client_port: u16,
    pub vip: IpAddr,
    pub vip_port: u16,
    /// IPv4 identification (echo's flow hint).
    pub ip_id: u16,
    pub frame: Box<[u8]>,
    /// Offset of the trailer in `frame`.
    pub trailer_at: usize,
    /// Offset of the L4 checksum in `frame`.
    pub csum_at: usize,
    /// Ones-complement sum of the checksummed bytes with seq and time zero (not folded).
    pub(crate) base_sum: u64,
    /// The director's flow hint for this packet (GLB's, mixed into the outer UDP source port).
    pub hint: u16,
    /// A frame replayed from a capture: sent as is, no trailer.
    pub replay: bool,
}

/// An L4 checksum as sent: UDP sends a computed 0 as 0xffff.
fn on_wire(c: u16, kind: Kind) -> u16 {
    if c == 0 && kind == Kind::Udp {
        0xffff
    } else {
        c
    }
}

impl GeneratedFlow {
    /// Write `seq` and `time_ns` into a copy of `frame` and fix the L4 checksum.
    #[inline]
    pub fn stamp(&self, frame: &mut [u8], seq: u64, time_ns: u64) {
        let t = self.trailer_at;
        if self.replay || frame.len() < t + TRAILER_LEN || frame.len() < self.csum_at + 2 {
            return;
        }
        frame[t + 8..t + 16].copy_from_slice(&seq.to_be_bytes());
        frame[t + 16..t + 24].copy_from_slice(&time_ns.to_be_bytes());
        let words = |v: u64| (v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff);
        let c = on_wire(
            !fold(self.base_sum + words(seq) + words(time_ns)),
            self.kind,
        );
        frame[self.csum_at..self.csum_at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

fn sum(data: &[u8]) -> u64 {
    let mut s = 0u64;
    let mut it = data.chunks_exact(2);
    for c in &mut it {
        s += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = it.remainder() {
        s += u64::from(*b) << 8;
    }
    s
}

fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// RFC 1071 checksum of `data`.
pub(crate) fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Which kind flow `i` has under `mix` (weights laid out in a repeating pattern).
fn kind_of(mix: &Mix, i: u32) -> Kind {
    let total: u32 = mix.0.iter().sum();
    let mut r = i % total.max(1);
    for (k, w) in Kind::ALL.iter().zip(mix.0) {
        if r < w {
            return *k;
        }
        r -= w;
    }
    Kind::Syn
}

/// Build every flow's frame.
pub fn build(spec: &FlowSpec) -> Result<Vec<GeneratedFlow>, PktgenError> {
    if spec.flows == 0 {
        return Err(PktgenError::Usage("--flows must be at least 1".into()));
    }
    if spec.vips.is_empty() {
        return Err(PktgenError::Usage(
            "no VIP to send to: the config has no bind".into(),
        ));
    }
    if spec.client_ports.0 > spec.client_ports.1 {
        return Err(PktgenError::Usage("client ports: start above end".into()));
    }
    let mut out = Vec::with_capacity(spec.flows as usize);
    for i in 0..spec.flows {
        let vip = spec.vips[i as usize % spec.vips.len()];
        let ranges: Vec<&Range> = spec
            .clients
            .iter()
            .filter(|r| r.base.is_ipv4() == vip.addr.is_ipv4())
            .collect();
        let Some(range) = ranges.get((i as usize / spec.vips.len()) % ranges.len().max(1)) else {
            return Err(PktgenError::Usage(format!(
                "VIP {} needs a client range of its family (--clients)",
                vip.addr
            )));
        };
        let round = u64::from(i) / spec.vips.len() as u64;
        let client = range.nth(round / ranges.len() as u64);
        let pspan = u32::from(spec.client_ports.1 - spec.client_ports.0) + 1;
        let client_port = spec.client_ports.0 + (i % pspan) as u16;
        let vspan = u32::from(vip.ports.1.saturating_sub(vip.ports.0)) + 1;
        let vip_port = vip.ports.0 + ((i / spec.vips.len() as u32) % vspan) as u16;
        let size = match spec.size {
            Size::Fixed(n) => n,
            Size::Imix => IMIX[i as usize % IMIX.len()],
        };
        let kind = match vip.proto {
            Proto::Tcp => kind_of(&spec.mix, i),
            Proto::Udp => Kind::Udp,
        };
        out.push(make(
            spec,
            i,
            kind,
            client,
            client_port,
            vip.addr,
            vip_port,
            size,
        ));
    }
    Ok(out)
}

const ROUTER_V4: [u8; 4] = [198, 51, 100, 1];
const ROUTER_V6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
];

#[allow(clippy::too_many_arguments)]
fn make(
    spec: &FlowSpec,
    id: u32,
    kind: Kind,
    client: IpAddr,
    client_port: u16,
    vip: IpAddr,
    vip_port: u16,
    size: usize,
) -> GeneratedFlow {
    let v4 = client.is_ipv4();
    let ip_id = (id as u16) ^ 0x5a5a;
    let octets = |a: IpAddr| match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    // L4 header (checksum zero) and where the trailer goes inside the L4 bytes.
    let tcp = |sport: u16, dport: u16, flags: u8| {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[4..8].copy_from_slice(&(0x1000_0000u32 ^ id).to_be_bytes());
        if flags & 0x10 != 0 {
            t[8..12].copy_from_slice(&0x2000_0000u32.to_be_bytes());
        }
        t[12] = 0x50;
        t[13] = flags;
        t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        t
    };
    let (l4_proto, mut l4, src) = match kind {
        Kind::Syn | Kind::Ack | Kind::Fin => {
            let flags = match kind {
                Kind::Syn => 0x02,
                Kind::Ack => 0x18,
                _ => 0x11,
            };
            (6u8, tcp(client_port, vip_port, flags), octets(client))
        }
        Kind::Udp => {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&client_port.to_be_bytes());
            u[2..4].copy_from_slice(&vip_port.to_be_bytes());
            (17u8, u, octets(client))
        }
        Kind::Echo => {
            let mut e = vec![if v4 { 8 } else { 128 }, 0, 0, 0];
            e.extend_from_slice(&(id as u16).to_be_bytes());
            e.extend_from_slice(&1u16.to_be_bytes());
            (if v4 { 1 } else { 58 }, e, octets(client))
        }
        Kind::FragNeeded => {
            // The quoted packet went VIP -> client; its IP header says it was 1500 bytes.
            let mut e = if v4 {
                vec![3, 4, 0, 0, 0, 0, 0x05, 0x78]
            } else {
                vec![2, 0, 0, 0, 0, 0, 0x05, 0x00]
            };
            let quoted_tcp = &tcp(vip_port, client_port, 0x18)[..8];
            if v4 {
                let mut q = vec![0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0];
                q.extend(octets(vip));
                q.extend(octets(client));
                let c = checksum(&q);
                q[10..12].copy_from_slice(&c.to_be_bytes());
                e.extend(q);
            } else {
                e.extend_from_slice(&[0x60, 0, 0, 0, 0x05, 0xb4, 6, 64]);
                e.extend(octets(vip));
                e.extend(octets(client));
            }
            e.extend_from_slice(quoted_tcp);
            let router = if v4 {
                ROUTER_V4.to_vec()
            } else {
                ROUTER_V6.to_vec()
            };
            (if v4 { 1 } else { 58 }, e, router)
        }
    };
    let dst = octets(vip);
    let trailer_in_l4 = l4.len();
    let ip_len = if v4 { 20 } else { 40 };
    let min = 14 + ip_len + l4.len() + TRAILER_LEN;
    let total = size.clamp(min, MAX_FRAME.max(min));
    l4.extend_from_slice(&MAGIC.to_be_bytes());
    l4.extend_from_slice(&id.to_be_bytes());
    l4.resize(total - 14 - ip_len, 0);
    // Padding: a recognisable pattern.
    for (j, b) in l4.iter_mut().enumerate().skip(trailer_in_l4 + TRAILER_LEN) {
        *b = j as u8;
    }
    let csum_in_l4 = match l4_proto {
        6 => 16,
        17 => 6,
        _ => 2,
    };
    let l4_len = l4.len();
    if l4_proto == 17 {
        l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    }
    // IPv4 ICMP has no pseudo-header; TCP, UDP and ICMPv6 do.
    let base_sum = if v4 && l4_proto == 1 {
        sum(&l4)
    } else {
        sum(&src) + sum(&dst) + u64::from(l4_proto) + l4_len as u64 + sum(&l4)
    };
    let mut f = Vec::with_capacity(total);
    f.extend_from_slice(&spec.dst_mac);
    f.extend_from_slice(&spec.src_mac);
    if v4 {
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        ip.extend_from_slice(&ip_id.to_be_bytes());
        ip.extend_from_slice(&[0x40, 0, 64, l4_proto, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend(ip);
    } else {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[l4_proto, 64]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
    }
    let l4_at = f.len();
    f.extend(l4);
    let flow = GeneratedFlow {
        id,
        kind,
        client,
        client_port,
        vip,
        vip_port,
        ip_id,
        frame: f.into_boxed_slice(),
        trailer_at: l4_at + trailer_in_l4,
        csum_at: l4_at + csum_in_l4,
        base_sum,
        hint: if kind == Kind::Echo && v4 {
            ip_id
        } else if kind == Kind::Echo {
            0
        } else {
            client_port
        },
        replay: false,
    };
    let mut frame = flow.frame.clone();
    flow.stamp(&mut frame, 0, 0);
    GeneratedFlow { frame, ..flow }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mix: &str, size: Size) -> FlowSpec {
        FlowSpec {
            flows: 40,
            clients: vec![
                "10.0.0.0/16".parse().unwrap(),
                "2001:db8::/64".parse().unwrap(),
            ],
            client_ports: (1024, 65535),
            vips: vec![
                Vip {
                    addr: "1.1.1.1".parse().unwrap(),
                    proto: Proto::Tcp,
                    ports: (80, 80),
                },
                Vip {
                    addr: "fd00::1".parse().unwrap(),
                    proto: Proto::Tcp,
                    ports: (443, 444),
                },
                Vip {
                    addr: "1.1.2.1".parse().unwrap(),
                    proto: Proto::Udp,
                    ports: (53, 53),
                },
                Vip {
                    addr: "fd00::2".parse().unwrap(),
                    proto: Proto::Udp,
                    ports: (53, 53),
                },
            ],
            size,
            mix: mix.parse().unwrap(),
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
        }
    }

    /// Verify the L4 checksum of a stamped frame from scratch.
    fn l4_ok(f: &[u8]) -> bool {
        if f[12..14] == [0x08, 0x00] {
            let l4 = &f[34..];
            if f[23] == 1 {
                return checksum(l4) == 0;
            }
            if f[23] == 17 && l4[6..8] == [0, 0] {
                return false;
            }
            let mut p = f[26..34].to_vec();
            p.extend_from_slice(&[0, f[23]]);
            p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            p.extend_from_slice(l4);
            checksum(&p) == 0 && checksum(&f[14..34]) == 0
        } else {
            let l4 = &f[54..];
            let mut p = f[22..54].to_vec();
            p.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, f[20]]);
            p.extend_from_slice(l4);
            checksum(&p) == 0
        }
    }

    #[test]
    fn every_kind_stamps_with_a_valid_checksum() {
        for size in [Size::Fixed(60), Size::Fixed(333), Size::Imix] {
            let flows = build(&spec("syn=1,ack=1,fin=1,echo=1,frag=1", size)).unwrap();
            let kinds: std::collections::HashSet<_> = flows.iter().map(|f| f.kind).collect();
            assert_eq!(kinds.len(), 6);
            for fl in &flows {
                assert!(l4_ok(&fl.frame), "{:?}", fl.kind);
                let mut f = fl.frame.to_vec();
                for (seq, t) in [(1u64, 5u64), (u64::MAX, 0x1234_5678_9abc), (77, u64::MAX)] {
                    fl.stamp(&mut f, seq, t);
                    assert!(l4_ok(&f), "{:?} seq {seq}", fl.kind);
                    let tr = &f[fl.trailer_at..fl.trailer_at + TRAILER_LEN];
                    assert_eq!(tr[0..4], MAGIC.to_be_bytes());
                    assert_eq!(tr[4..8], fl.id.to_be_bytes());
                    assert_eq!(tr[8..16], seq.to_be_bytes());
                }
                if let Size::Fixed(n) = size {
                    assert!(f.len() >= n && f.len() <= MAX_FRAME);
                }
            }
        }
    }

    #[test]
    fn bad_options_are_errors() {
        assert!("syn=0".parse::<Mix>().is_err());
        assert!("bogus=1".parse::<Mix>().is_err());
        assert!("syn".parse::<Mix>().is_err());
        assert!("59".parse::<Size>().is_err());
        assert!("9000".parse::<Size>().is_err());
        let mut s = spec("syn=1", Size::Fixed(64));
        s.clients.truncate(1);
        assert!(build(&s).is_err(), "IPv6 VIP without IPv6 clients");
        s.flows = 0;
        assert!(build(&s).is_err());
    }
}
