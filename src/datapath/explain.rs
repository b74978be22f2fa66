//! "Where does this flow go?": one flow (addresses, ports, protocol) explained against a
//! snapshot, for `rondo table lookup` and the console's `show flow`. The answer comes from
//! the data path itself: a frame of the flow is built and classified by
//! [`classify`](super::classify::classify), so the bind, the hash and the row are the
//! pipeline's own (tested against [`process_burst`](super::process_burst) for random
//! flows in `tests/lookup.rs`); the hash input is rebuilt alongside for the reader and
//! checked to give the same hash.

use std::fmt;
use std::net::IpAddr;

use crate::config::HashFields;
use crate::hash::SipKey;
use crate::table::{Backend, BackendState, Bind, Proto};

use super::classify::classify;
use super::counters::{QuicOutcome, Verdict};
use super::quic::pinned_hops;
use super::snapshot::Snapshot;

/// The flow to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowQuery {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub proto: Proto,
    /// A QUIC destination connection ID: the frame carries a short header with it (UDP).
    pub cid: Option<Cid>,
}

/// A connection ID of up to 20 bytes, by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cid {
    len: u8,
    bytes: [u8; crate::quic_lb::MAX_CID_LEN],
}

impl Cid {
    /// From hex (`:` between bytes allowed), 1 to 20 bytes.
    pub fn from_hex(hex: &str) -> Result<Cid, QueryError> {
        let mut bytes = [0u8; crate::quic_lb::MAX_CID_LEN + 1];
        match crate::quic_lb::parse_hex(hex, &mut bytes) {
            Ok(n) if (1..=crate::quic_lb::MAX_CID_LEN).contains(&n) => {
                let mut c = Cid {
                    len: n as u8,
                    bytes: [0; crate::quic_lb::MAX_CID_LEN],
                };
                c.bytes[..n].copy_from_slice(&bytes[..n]);
                Ok(c)
            }
            _ => Err(QueryError::Cid(hex.into())),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Why a query could not be asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("{what} {text:?}: expected an IPv4 or IPv6 address, with :PORT (IPv6: [ADDR]:PORT) where the hash or the bind needs one")]
    Addr { what: &'static str, text: String },
    #[error("protocol {0:?}: expected tcp or udp")]
    Proto(String),
    #[error("connection ID {0:?}: expected 1 to 20 bytes of hex")]
    Cid(String),
    #[error("a connection ID goes with udp (QUIC)")]
    CidNeedsUdp,
    #[error("source {src} and destination {dst} are not of one address family")]
    Families { src: IpAddr, dst: IpAddr },
}

impl FlowQuery {
    /// From the command line's words: `SRC[:PORT] DST[:PORT] tcp|udp` (missing ports are
    /// 0; IPv6 with a port as `[ADDR]:PORT`).
    pub fn parse(src: &str, dst: &str, proto: &str) -> Result<FlowQuery, QueryError> {
        let (src_ip, sport) = addr_port(src).ok_or_else(|| QueryError::Addr {
            what: "source",
            text: src.into(),
        })?;
        let (dst_ip, dport) = addr_port(dst).ok_or_else(|| QueryError::Addr {
            what: "destination",
            text: dst.into(),
        })?;
        let proto = match proto.to_ascii_lowercase().as_str() {
            "tcp" | "6" => Proto::Tcp,
            "udp" | "17" => Proto::Udp,
            _ => return Err(QueryError::Proto(proto.into())),
        };
        if src_ip.is_ipv4() != dst_ip.is_ipv4() {
            return Err(QueryError::Families {
                src: src_ip,
                dst: dst_ip,
            });
        }
        Ok(FlowQuery {
            src: src_ip,
            sport,
            dst: dst_ip,
            dport,
            proto,
            cid: None,
        })
    }

    /// The same flow carrying QUIC destination connection ID `hex` (UDP only).
    pub fn with_cid(mut self, hex: &str) -> Result<FlowQuery, QueryError> {
        if self.proto != Proto::Udp {
            return Err(QueryError::CidNeedsUdp);
        }
        self.cid = Some(Cid::from_hex(hex)?);
        Ok(self)
    }

    /// A TCP SYN (or an 8-byte UDP datagram, or a QUIC short header packet with the
    /// query's CID) of this flow, as it would arrive: untagged Ethernet, no IP options.
    pub fn frame(&self) -> Vec<u8> {
        // A short header: first octet (form 0, fixed bit 1), the DCID, 16 bytes of
        // "protected payload".
        let quic: Vec<u8> = match &self.cid {
            Some(c) => std::iter::once(0x41)
                .chain(c.as_bytes().iter().copied())
                .chain([0u8; 16])
                .collect(),
            None => Vec::new(),
        };
        let l4_len = match self.proto {
            Proto::Tcp => 20,
            Proto::Udp => 8 + quic.len(),
        };
        let mut f = vec![0u8; 14];
        f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        let mut l4 = vec![0u8; l4_len];
        l4[0..2].copy_from_slice(&self.sport.to_be_bytes());
        l4[2..4].copy_from_slice(&self.dport.to_be_bytes());
        match self.proto {
            Proto::Tcp => {
                l4[12] = 5 << 4;
                l4[13] = 0x02; // SYN
                l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
            }
            Proto::Udp => {
                l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                l4[8..].copy_from_slice(&quic);
            }
        }
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f[12..14].copy_from_slice(&[0x08, 0x00]);
                let mut ip = [0u8; 20];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
                ip[8] = 64;
                ip[9] = self.proto.number();
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                let sum = crate::wire::checksum::sum(&ip) as u16;
                ip[10..12].copy_from_slice(&(!sum).to_be_bytes());
                f.extend_from_slice(&ip);
            }
            (s, d) => {
                let (s, d) = (v6(s), v6(d));
                f[12..14].copy_from_slice(&[0x86, 0xdd]);
                let mut ip = [0u8; 40];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                ip[6] = self.proto.number();
                ip[7] = 64;
                ip[8..24].copy_from_slice(&s);
                ip[24..40].copy_from_slice(&d);
                f.extend_from_slice(&ip);
            }
        }
        f.extend_from_slice(&l4);
        f
    }
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6]:PORT` or a bare IPv6 address.
fn addr_port(s: &str) -> Option<(IpAddr, u16)> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some((a, 0));
    }
    let sa: std::net::SocketAddr = s.parse().ok()?;
    Some((sa.ip(), sa.port()))
}

/// One hop of the flow's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Index of the backend in its table.
    pub index: u32,
    pub ip: IpAddr,
    pub state: BackendState,
    pub healthy: bool,
}

impl Hop {
    /// Takes new connections: active or filling, and healthy.
    pub fn usable(&self) -> bool {
        self.healthy && matches!(self.state, BackendState::Active | BackendState::Filling)
    }
}

/// A hash of the flow: the fields, their bytes, the hash, its row and the row's hops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub fields: Vec<&'static str>,
    /// The bytes hashed (SipHash-2-4 under the table's `hash_key`), in GLB's order.
    pub input: Vec<u8>,
    pub hash: u64,
    pub row: u16,
    pub hops: Vec<Hop>,
}

/// How QUIC-LB routed a flow: the outcome and, when its CID named a usable backend, the
/// hops it is sent with instead of the row's (that backend first, then the row's others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicAnswer {
    pub outcome: QuicOutcome,
    pub hops: Vec<Hop>,
}

/// The answer for one flow.
// Made once per question (a tool's and the console's), never per packet: the size of the
// forwarded variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Forwarded: through `table`'s `bind`, to `hashed.hops[0]` first.
    Forwarded {
        query: FlowQuery,
        table: String,
        bind: Bind,
        hashed: Hashed,
        /// The alternate hash's row (`alt_hash_fields`), whose hops follow in the GUE hop
        /// list; `None` without `alt_hash_fields`.
        alt: Option<Hashed>,
        /// A UDP packet to a QUIC-LB table: how its connection ID routed it.
        quic: Option<QuicAnswer>,
    },
    /// Not forwarded: the pipeline's verdict and why.
    NotForwarded {
        query: FlowQuery,
        verdict: Verdict,
        why: String,
    },
}

impl Answer {
    /// The backend the director sends the packet to (the row's first hop).
    pub fn sent_to(&self) -> Option<IpAddr> {
        match self {
            Answer::Forwarded { hashed, quic, .. } => {
                Self::hops(hashed, quic).first().map(|h| h.ip)
            }
            Answer::NotForwarded { .. } => None,
        }
    }

    /// The first hop that takes new connections (where a new connection of this flow
    /// lands: the ones before it hand unknown flows on).
    pub fn first_usable(&self) -> Option<&Hop> {
        match self {
            Answer::Forwarded {
                hashed, alt, quic, ..
            } => Self::hops(hashed, quic)
                .iter()
                .chain(alt.iter().flat_map(|a| a.hops.iter()))
                .find(|h| h.usable()),
            Answer::NotForwarded { .. } => None,
        }
    }

    /// The hops the packet is sent with (before the alternate hash's): QUIC-LB's when its
    /// CID routed it, else the row's.
    fn hops<'a>(hashed: &'a Hashed, quic: &'a Option<QuicAnswer>) -> &'a [Hop] {
        match quic {
            Some(q) if !q.hops.is_empty() => &q.hops,
            _ => &hashed.hops,
        }
    }
}

fn field_names(h: &HashFields) -> Vec<&'static str> {
    let on = [h.src_addr, h.dst_addr, h.src_port, h.dst_port];
    HashFields::NAMES
        .iter()
        .zip(on)
        .filter_map(|(n, o)| o.then_some(*n))
        .collect()
}

/// GLB's hash input for `q` over `h`: source address, destination address, source port,
/// destination port, as many as are on.
fn hash_input(h: &HashFields, q: &FlowQuery) -> Vec<u8> {
    let addr = |a: IpAddr| match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut v = Vec::new();
    if h.src_addr {
        v.extend(addr(q.src));
    }
    if h.dst_addr {
        v.extend(addr(q.dst));
    }
    if h.src_port {
        v.extend(q.sport.to_be_bytes());
    }
    if h.dst_port {
        v.extend(q.dport.to_be_bytes());
    }
    v
}

fn hop(b: &[Backend], i: u32) -> Hop {
    match b.get(i as usize) {
        Some(b) => Hop {
            index: i,
            ip: b.ip,
            state: b.state,
            healthy: b.healthy,
        },
        // A row never names a backend its table lacks (tables are checked on load).
        None => Hop {
            index: i,
            ip: IpAddr::from([0, 0, 0, 0]),
            state: BackendState::Inactive,
            healthy: false,
        },
    }
}

/// The bind of `table` that takes `q` (the longest prefix holding the destination, then
/// protocol and port, as the classifier's index).
fn bind_of(binds: &[Bind], q: &FlowQuery) -> Option<Bind> {
    binds
        .iter()
        .filter(|b| {
            b.proto == q.proto
                && (b.port_start..=b.port_end).contains(&q.dport)
                && b.contains(q.dst)
        })
        .max_by_key(|b| b.prefix_len)
        .copied()
}

/// Explain `q` against `snap`.
pub fn explain(snap: &Snapshot, q: &FlowQuery) -> Answer {
    let frame = q.frame();
    let flow = match classify(snap, &frame) {
        Ok(f) => f,
        Err(verdict) => {
            let why = match verdict {
                Verdict::Exception(_) => {
                    let any_bind = snap
                        .tables
                        .iter()
                        .any(|t| t.table.spec.binds.iter().any(|b| b.contains(q.dst)));
                    if any_bind {
                        format!(
                            "{} is a VIP, but no bind of it takes {} port {}: the packet goes to the kernel",
                            q.dst,
                            proto_name(q.proto),
                            q.dport
                        )
                    } else {
                        format!(
                            "no bind holds {}: not a VIP, the packet goes to the kernel",
                            q.dst
                        )
                    }
                }
                Verdict::Drop(r) => format!("dropped: {r:?}"),
                Verdict::Forward => String::new(),
            };
            return Answer::NotForwarded {
                query: *q,
                verdict,
                why,
            };
        }
    };
    let t = &snap.tables[usize::from(flow.table)];
    let spec = &t.table.spec;
    let key = SipKey::from_bytes(&spec.hash_key);
    let hashed = |fields: &HashFields, hash: u64| {
        let input = hash_input(fields, q);
        debug_assert_eq!(crate::hash::siphash24(&key, &input), hash);
        let row = hash as u16;
        Hashed {
            fields: field_names(fields),
            input,
            hash,
            row,
            hops: t
                .table
                .row(row)
                .iter()
                .map(|&i| hop(&spec.backends, i))
                .collect(),
        }
    };
    let main = hashed(&snap.settings.hash_fields, flow.hash);
    let alt = snap
        .settings
        .alt_hash_fields
        .as_ref()
        .map(|f| hashed(f, flow.alt_hash));
    let quic = QuicOutcome::from_code(flow.quic).map(|outcome| {
        let hops = if flow.pin == 0 {
            Vec::new()
        } else {
            let mut pinned = [0u32; 16];
            let row = t.table.row(flow.hash as u16);
            let n = pinned_hops(u32::from(flow.pin - 1), row, &mut pinned);
            pinned[..n]
                .iter()
                .map(|&i| hop(&spec.backends, i))
                .collect()
        };
        QuicAnswer { outcome, hops }
    });
    Answer::Forwarded {
        query: *q,
        quic,
        table: spec.name.clone(),
        bind: bind_of(&spec.binds, q).unwrap_or(Bind {
            addr: q.dst,
            prefix_len: if q.dst.is_ipv4() { 32 } else { 128 },
            proto: q.proto,
            port_start: q.dport,
            port_end: q.dport,
        }),
        hashed: main,
        alt,
    }
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

fn state_name(s: BackendState) -> &'static str {
    match s {
        BackendState::Filling => "filling",
        BackendState::Active => "active",
        BackendState::Draining => "draining",
        BackendState::Inactive => "inactive",
    }
}

fn endpoint(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

impl fmt::Display for Hashed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: String = self.input.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(
            f,
            "  fields   {} (input {} bytes: {hex})",
            self.fields.join(", "),
            self.input.len()
        )?;
        writeln!(f, "  hash     {:#018x}", self.hash)?;
        writeln!(f, "  row      {}", self.row)?;
        for (n, h) in self.hops.iter().enumerate() {
            writeln!(f, "  hop {}    {}", n + 1, HopText(h))?;
        }
        Ok(())
    }
}

/// `IP (backend N, state, health)`.
struct HopText<'a>(&'a Hop);

impl fmt::Display for HopText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.0;
        write!(
            f,
            "{} (backend {}, {}, {})",
            h.ip,
            h.index,
            state_name(h.state),
            if h.healthy { "healthy" } else { "unhealthy" }
        )
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::NotForwarded { query: q, why, .. } => writeln!(
                f,
                "flow {} -> {} {}: not forwarded: {why}",
                endpoint(q.src, q.sport),
                endpoint(q.dst, q.dport),
                proto_name(q.proto)
            ),
            Answer::Forwarded {
                query: q,
                table,
                bind,
                hashed,
                alt,
                quic,
            } => {
                writeln!(
                    f,
                    "flow {} -> {} {}",
                    endpoint(q.src, q.sport),
                    endpoint(q.dst, q.dport),
                    proto_name(q.proto)
                )?;
                writeln!(
                    f,
                    "  bind     {}/{} {} ports {}-{} (table {table})",
                    bind.addr,
                    bind.prefix_len,
                    proto_name(bind.proto),
                    bind.port_start,
                    bind.port_end
                )?;
                write!(f, "{hashed}")?;
                match alt {
                    Some(a) => {
                        writeln!(
                            f,
                            "  alt_hash_fields (their hops follow in the GUE hop list):"
                        )?;
                        write!(f, "{a}")?;
                    }
                    None => writeln!(f, "  alt_hash_fields: none")?,
                }
                if let Some(qa) = quic {
                    let cid = q
                        .cid
                        .map(|c| crate::quic_lb::to_hex(c.as_bytes()))
                        .unwrap_or_else(|| "none".into());
                    match qa.outcome {
                        QuicOutcome::Routed => {
                            writeln!(f, "  quic-lb  routed: DCID {cid} names a usable backend, sent with these hops instead of the row's:")?;
                            for (n, h) in qa.hops.iter().enumerate() {
                                writeln!(f, "  hop {}    {}", n + 1, HopText(h))?;
                            }
                        }
                        o => writeln!(
                            f,
                            "  quic-lb  hashed ({}): DCID {cid} names no usable backend, the row's hops stand",
                            o.name()
                        )?,
                    }
                }
                if let Some(to) = self.sent_to() {
                    writeln!(f, "  sent to  {to} (hop 1)")?;
                }
                match self.first_usable() {
                    Some(h) if Some(h.ip) == self.sent_to() => {
                        writeln!(f, "  lands on {} (hop 1 takes new connections)", h.ip)
                    }
                    Some(h) => writeln!(
                        f,
                        "  lands on {} (the first hop that takes new connections; the ones before hand unknown flows on)",
                        h.ip
                    ),
                    None => writeln!(
                        f,
                        "  lands on nothing: no hop takes new connections (all draining, inactive or unhealthy)"
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_or_say_what_is_wrong() {
        let q = FlowQuery::parse("10.0.0.1:1234", "1.1.1.1:80", "tcp").unwrap();
        assert_eq!((q.sport, q.dport, q.proto), (1234, 80, Proto::Tcp));
        let q = FlowQuery::parse("[2001:db8::1]:5", "2001:db8::2", "UDP").unwrap();
        assert_eq!((q.sport, q.dport, q.proto), (5, 0, Proto::Udp));
        assert!(matches!(
            FlowQuery::parse("nope", "1.1.1.1", "tcp"),
            Err(QueryError::Addr { what: "source", .. })
        ));
        assert!(matches!(
            FlowQuery::parse("1.1.1.1", "1.1.1.1", "icmp"),
            Err(QueryError::Proto(_))
        ));
        assert!(matches!(
            FlowQuery::parse("1.1.1.1", "::1", "tcp"),
            Err(QueryError::Families { .. })
        ));
    }

    #[test]
    fn built_frames_are_well_formed() {
        let q = FlowQuery::parse("10.0.0.1:1234", "1.1.1.1:80", "tcp").unwrap();
        let f = q.frame();
        assert_eq!(f.len(), 14 + 20 + 20);
        let ip = crate::wire::Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.protocol(), 6);
        assert!(ip.verify_checksum());
        let q = FlowQuery::parse("[2001:db8::1]:9", "[2001:db8::2]:53", "udp").unwrap();
        assert_eq!(q.frame().len(), 14 + 40 + 8);
    }
}
