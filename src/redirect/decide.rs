//! The second-chance decision: what a backend does with one GUE packet (GLB's
//! glb-redirect rules, plus Rondo's input and anti-loop checks, in the table below).
//!
//! [`decide`] is a pure function of the packet bytes, the outer addresses, the [`Policy`]
//! and what a [`SocketLookup`] says about the kernel's sockets. It never panics, never
//! allocates and loops at most `hop_count` times, for any input bytes.
//!
//! The order of the checks (the first one that applies wins):
//!
//! | # | condition | decision |
//! |---|---|---|
//! | 1 | outer source outside `directors` and `backends` | drop `source_not_allowed` |
//! | 2 | GUE header invalid (truncated, version, C bit, hlen 0, private type, hlen != hop_count + 1 (4 * hop_count + 1 for IPv6 hops)) | drop, one reason per fault |
//! | 3 | GUE proto not 4 / 41 | drop `bad_gue_proto` |
//! | 4 | hop_count above the configured hop limit | drop `hop_limit` |
//! | 5 | next_hop > hop_count (no sender ever produces it) | drop `next_hop_out_of_range` |
//! | 6 | inner packet truncated, bad header, IP version not the GUE proto's | drop `truncated_inner` / `bad_inner_header` / `inner_version_mismatch` |
//! | 7 | inner UDP, not to a QUIC port (or no `quic_lb` configured) | local `udp` |
//! | 7a | inner UDP to a QUIC port: an Initial or 0-RTT packet | local `quic_initial` |
//! | 7b | ... a DCID carrying our QUIC-LB server ID | local `quic_own` |
//! | 7c | ... a DCID carrying another server ID | as a TCP packet without a socket: rows 15-21 |
//! | 7d | ... anything else (not QUIC, no server ID in the DCID) | local `udp` |
//! | 8 | inner ICMP other than frag-needed / Packet Too Big (the GUE health check) | local `icmp` |
//! | 9 | frag-needed / PTB: the quoted header, reversed, is the flow (no flags); a quote of a non-TCP packet is local `icmp`; a quote too short for the ports is dropped `truncated_inner` | as TCP below |
//! | 10 | other inner protocol | drop `unsupported_inner_proto` |
//! | 11 | inner TCP fragment (the director never sends one; its flow cannot be checked) | drop `inner_fragment` |
//! | 12 | TCP SYN | local `syn` |
//! | 13 | a kernel socket for the 4-tuple (any state but LISTEN: SYN-received, established, closing, TIME-WAIT) | local `socket` |
//! | 14 | a possible syncookie ACK (ACK without SYN/RST/FIN, a listener for the destination, and the [`SocketLookup`] says syncookies are in use; rule in [`super::diag`]) | local `syncookie` |
//! | 15 | next_hop == hop_count: hops exhausted | local `last_resort` |
//! | 16 | `hops[next_hop]` is one of our own addresses (the outer destination or a configured one) | local `self_hop` (GLB's "forwarded to self") |
//! | 17 | `hops[next_hop]` is not a routable unicast address (unspecified, loopback, multicast, broadcast, link-local, reserved), or is the directed broadcast address of one of this host's IPv4 subnets ([`Policy::subnet_broadcasts`]) | drop `bad_hop_address` |
//! | 18 | `hops[next_hop]` already had this packet: it is the outer source (the node that just sent it to us) or appears earlier in the hop list | skip that hop (counted `revisit_skipped`) and go back to 15 with the next index |
//! | 19 | `hops[next_hop]` outside `backends` | drop `hop_not_allowed` |
//! | 20 | outer TTL / hop limit 1 or less | drop `ttl_exceeded` |
//! | 21 | otherwise | forward to `hops[i]`, `next_hop = i + 1` |
//!
//! Rows 1, 4, 5, 11, 17-20 are Rondo's additions to GLB's checks (GLB trusts its network);
//! rows 7a-7d are QUIC's second chance (QUIC-LB, [`super::quic`]);
//! rows 7-10 and 12-16 are GLB's glb-redirect. Row 18 keeps GLB's outcome while cutting a
//! useless round trip: a hop that already had the packet has already decided to pass it on.
//!
//! Why a loop cannot happen and nothing is amplified: a packet is only forwarded when
//! `i < hop_count <= hop limit`, and the forwarded copy carries `next_hop = i + 1`, strictly
//! more than it arrived with, so a packet travels at most `hop_count` forwards in total
//! whatever the hop list says; one packet in gives at most one packet out, of the same size;
//! it never goes back to its sender or to us; the TTL drops by one per forward.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr};
use core::ops::Range;

use super::quic::{QuicClass, QuicPolicy};
use crate::wire::{
    self, icmpv4, icmpv6, ip_proto, ipv6, tcp, Error as WireError, GuePacket, HopFamily,
    Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};

/// A set of addresses given as CIDRs (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrSet {
    nets: Vec<(IpAddr, u8)>,
}

impl AddrSet {
    /// The set of `nets` (address, prefix length); host bits are ignored.
    pub fn new(nets: Vec<(IpAddr, u8)>) -> AddrSet {
        AddrSet { nets }
    }

    /// The CIDRs in the set.
    pub fn nets(&self) -> &[(IpAddr, u8)] {
        &self.nets
    }

    /// True when `a` is in one of the CIDRs (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, a: IpAddr) -> bool {
        let a = a.to_canonical();
        self.nets.iter().any(|&(net, bits)| match (net, a) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(bits.min(32)))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(bits.min(128)))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

/// What the backend trusts and who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Directors (and health checkers) that may send us GUE.
    pub directors: AddrSet,
    /// Backends that may forward GUE to us and that we may forward to.
    pub backends: AddrSet,
    /// Our own addresses besides the outer destination of each packet.
    pub own: Vec<IpAddr>,
    /// Most hops a GUE header may list (GLB sends 1; 3 with alt_hash_fields).
    pub hop_limit: u8,
    /// The directed broadcast addresses of this host's IPv4 subnets (10.1.2.255 for an
    /// interface on 10.1.2.0/24): never a hop. Read from the interfaces off the packet
    /// path and refreshed by the service; looked up without allocation.
    pub subnet_broadcasts: SubnetBroadcasts,
    /// QUIC-LB: QUIC's second chance by connection ID (rows 7a-7d); `None`: every UDP
    /// datagram is local.
    pub quic: Option<QuicPolicy>,
}

/// A small fixed set of IPv4 directed broadcast addresses ([`Policy::subnet_broadcasts`]):
/// a lookup is a scan of at most [`SubnetBroadcasts::MAX`] words, no allocation, no lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetBroadcasts {
    addrs: [u32; SubnetBroadcasts::MAX],
    len: usize,
}

impl Default for SubnetBroadcasts {
    fn default() -> Self {
        SubnetBroadcasts {
            addrs: [0; SubnetBroadcasts::MAX],
            len: 0,
        }
    }
}

impl SubnetBroadcasts {
    /// Most subnets kept; more are left out (and reported by [`SubnetBroadcasts::from_subnets`]).
    pub const MAX: usize = 64;

    /// The directed broadcasts of `subnets` (an address and its prefix length). /31 and
    /// /32 have none (RFC 3021: both /31 addresses are hosts), nor has 0.0.0.0/0.
    /// Returns the set and how many broadcasts did not fit.
    pub fn from_subnets(subnets: &[(Ipv4Addr, u8)]) -> (SubnetBroadcasts, usize) {
        let mut set = SubnetBroadcasts::default();
        let mut left_out = 0;
        for &(a, bits) in subnets {
            if !(1..=30).contains(&bits) {
                continue;
            }
            let b = u32::from(a) | (u32::MAX >> bits);
            if set.addrs[..set.len].contains(&b) {
                continue;
            }
            if set.len == Self::MAX {
                left_out += 1;
                continue;
            }
            set.addrs[set.len] = b;
            set.len += 1;
        }
        (set, left_out)
    }

    #[inline]
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let a = u32::from(a);
        self.addrs[..self.len].contains(&a)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.addrs[..self.len].iter().map(|&a| Ipv4Addr::from(a))
    }
}

/// Outer header facts the UDP socket reports for a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    /// Outer source address (director or forwarding backend).
    pub src: IpAddr,
    /// Outer destination address (ours).
    pub dst: IpAddr,
    /// Outer TTL / hop limit as received.
    pub ttl: u8,
}

/// The inner TCP flow as the server sees it: `src` is the client, `dst` the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sa = core::net::SocketAddr::new(self.src, self.sport);
        let da = core::net::SocketAddr::new(self.dst, self.dport);
        write!(f, "{sa} -> {da}")
    }
}

/// What the kernel holds for a 4-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketState {
    /// A socket for exactly this flow, in any state but LISTEN (SYN-received request
    /// sockets and TIME-WAIT included).
    Flow,
    /// No socket for the flow, but a listener for its destination address and port.
    Listener,
    /// Nothing.
    Absent,
}

/// The kernel, as the decision sees it.
pub trait SocketLookup {
    /// The socket state for `flow`.
    fn lookup(&mut self, flow: &FlowKey) -> SocketState;
    /// Whether an ACK to a listener may carry a syncookie the kernel issued.
    fn syncookies_in_use(&mut self) -> bool;
    /// A SYN for `flow` is being delivered: forget anything cached about it (the kernel is
    /// about to create a socket for it).
    fn syn_delivered(&mut self, flow: &FlowKey) {
        let _ = flow;
    }
}

/// The kernel as seen with second chance off (`second_chance = false`,
/// `rondo redirect --no-second-chance`): every flow "has a socket", so every well-formed
/// packet is delivered locally and nothing is forwarded. For experiments and tests that must
/// show what breaks without second chance; never for production.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysLocal;

impl SocketLookup for AlwaysLocal {
    fn lookup(&mut self, _: &FlowKey) -> SocketState {
        SocketState::Flow
    }
    fn syncookies_in_use(&mut self) -> bool {
        false
    }
}

/// Why a packet is delivered to the local stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalReason {
    Udp,
    Icmp,
    Syn,
    Socket,
    Syncookie,
    LastResort,
    SelfHop,
    QuicInitial,
    QuicOwn,
}

impl LocalReason {
    pub const COUNT: usize = 9;
    pub const ALL: [LocalReason; Self::COUNT] = [
        LocalReason::Udp,
        LocalReason::Icmp,
        LocalReason::Syn,
        LocalReason::Socket,
        LocalReason::Syncookie,
        LocalReason::LastResort,
        LocalReason::SelfHop,
        LocalReason::QuicInitial,
        LocalReason::QuicOwn,
    ];

    /// Counter label.
    pub const fn name(self) -> &'static str {
        match self {
            LocalReason::Udp => "udp",
            LocalReason::Icmp => "icmp",
            LocalReason::Syn => "syn",
            LocalReason::Socket => "socket",
            LocalReason::Syncookie => "syncookie",
            LocalReason::LastResort => "last_resort",
            LocalReason::SelfHop => "self_hop",
            LocalReason::QuicInitial => "quic_initial",
            LocalReason::QuicOwn => "quic_own",
        }
    }

    /// Index in [`LocalReason::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Why `rondo redirect` drops a GUE datagram (counted as `drop_<name>`): not from an
/// allowed sender, malformed GUE or inner packet, or a hop it must not follow. Not the
/// director's [`crate::datapath::DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GueDropReason {
    SourceNotAllowed,
    TruncatedGue,
    BadGueVersion,
    GueControl,
    BadGueHlen,
    BadGuePrivateType,
    BadGueHopCount,
    BadGueProto,
    HopLimit,
    NextHopOutOfRange,
    TruncatedInner,
    BadInnerHeader,
    InnerVersionMismatch,
    UnsupportedInnerProto,
    InnerFragment,
    BadHopAddress,
    HopNotAllowed,
    TtlExceeded,
    /// Datagram larger than the receive buffer (set by the receive loop, not [`decide`]).
    Oversize,
}

impl GueDropReason {
    pub const COUNT: usize = 19;
    pub const ALL: [GueDropReason; Self::COUNT] = [
        GueDropReason::SourceNotAllowed,
        GueDropReason::TruncatedGue,
        GueDropReason::BadGueVersion,
        GueDropReason::GueControl,
        GueDropReason::BadGueHlen,
        GueDropReason::BadGuePrivateType,
        GueDropReason::BadGueHopCount,
        GueDropReason::BadGueProto,
        GueDropReason::HopLimit,
        GueDropReason::NextHopOutOfRange,
        GueDropReason::TruncatedInner,
        GueDropReason::BadInnerHeader,
        GueDropReason::InnerVersionMismatch,
        GueDropReason::UnsupportedInnerProto,
        GueDropReason::InnerFragment,
        GueDropReason::BadHopAddress,
        GueDropReason::HopNotAllowed,
        GueDropReason::TtlExceeded,
        GueDropReason::Oversize,
    ];

    /// Counter label.
    pub const fn name(self) -> &'static str {
        match self {
            GueDropReason::SourceNotAllowed => "source_not_allowed",
            GueDropReason::TruncatedGue => "truncated_gue",
            GueDropReason::BadGueVersion => "bad_gue_version",
            GueDropReason::GueControl => "gue_control",
            GueDropReason::BadGueHlen => "bad_gue_hlen",
            GueDropReason::BadGuePrivateType => "bad_gue_private_type",
            GueDropReason::BadGueHopCount => "bad_gue_hop_count",
            GueDropReason::BadGueProto => "bad_gue_proto",
            GueDropReason::HopLimit => "hop_limit",
            GueDropReason::NextHopOutOfRange => "next_hop_out_of_range",
            GueDropReason::TruncatedInner => "truncated_inner",
            GueDropReason::BadInnerHeader => "bad_inner_header",
            GueDropReason::InnerVersionMismatch => "inner_version_mismatch",
            GueDropReason::UnsupportedInnerProto => "unsupported_inner_proto",
            GueDropReason::InnerFragment => "inner_fragment",
            GueDropReason::BadHopAddress => "bad_hop_address",
            GueDropReason::HopNotAllowed => "hop_not_allowed",
            GueDropReason::TtlExceeded => "ttl_exceeded",
            GueDropReason::Oversize => "oversize",
        }
    }

    /// Index in [`GueDropReason::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    fn from_gue(e: WireError) -> GueDropReason {
        match e {
            WireError::BadGueVersion => GueDropReason::BadGueVersion,
            WireError::GueControl => GueDropReason::GueControl,
            WireError::BadGueHlen => GueDropReason::BadGueHlen,
            WireError::BadGuePrivateType => GueDropReason::BadGuePrivateType,
            WireError::BadGueHopCount => GueDropReason::BadGueHopCount,
            WireError::BadGueProto => GueDropReason::BadGueProto,
            _ => GueDropReason::TruncatedGue,
        }
    }

    fn from_inner(e: WireError) -> GueDropReason {
        match e {
            WireError::Truncated => GueDropReason::TruncatedInner,
            WireError::BadVersion => GueDropReason::InnerVersionMismatch,
            _ => GueDropReason::BadInnerHeader,
        }
    }
}

/// What to do with one GUE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Decapsulate: hand `payload[inner]` (the inner IP packet, cut to its own length) to
    /// the local stack.
    Local {
        why: LocalReason,
        inner: Range<usize>,
        /// Hops skipped because they already had the packet (row 18).
        skipped: u8,
    },
    /// Send on to `to` with the GUE `next_hop` set to `next_hop`.
    Forward {
        to: IpAddr,
        next_hop: u8,
        /// Hops skipped because they already had the packet (row 18).
        skipped: u8,
        /// A QUIC packet whose CID names another server (row 7c), not a TCP flow.
        quic: bool,
    },
    Drop(GueDropReason),
}

/// The inner packet, reduced to what the decision needs.
enum Inner<'a> {
    Local(LocalReason),
    /// A UDP datagram: its UDP header and payload.
    Udp(&'a [u8]),
    Tcp {
        flow: FlowKey,
        flags: u8,
    },
}

/// Decide what to do with `payload`, the UDP payload (GUE header and inner packet) of a
/// datagram that arrived as `outer`.
pub fn decide<L: SocketLookup + ?Sized>(
    payload: &[u8],
    outer: &Outer,
    policy: &Policy,
    kernel: &mut L,
) -> Decision {
    match decide_inner(payload, outer, policy, kernel) {
        Ok(d) => d,
        Err(r) => Decision::Drop(r),
    }
}

fn decide_inner<L: SocketLookup + ?Sized>(
    payload: &[u8],
    outer: &Outer,
    policy: &Policy,
    kernel: &mut L,
) -> Result<Decision, GueDropReason> {
    let src = outer.src.to_canonical();
    let dst = outer.dst.to_canonical();
    if !policy.directors.contains(src) && !policy.backends.contains(src) {
        return Err(GueDropReason::SourceNotAllowed);
    }
    let family = match dst {
        IpAddr::V4(_) => HopFamily::V4,
        IpAddr::V6(_) => HopFamily::V6,
    };
    let gue = GuePacket::new_checked(payload, family).map_err(GueDropReason::from_gue)?;
    let proto = gue.proto();
    if proto != ip_proto::IPV4 && proto != ip_proto::IPV6 {
        return Err(GueDropReason::BadGueProto);
    }
    let hop_count = gue.hop_count();
    if hop_count > policy.hop_limit {
        return Err(GueDropReason::HopLimit);
    }
    let next_hop = gue.next_hop();
    if next_hop > hop_count {
        return Err(GueDropReason::NextHopOutOfRange);
    }
    let start = gue.header_len();
    let inner_bytes = gue.payload();
    let (inner, len) = if proto == ip_proto::IPV4 {
        inner_v4(inner_bytes)?
    } else {
        inner_v6(inner_bytes)?
    };
    let range = start..start + len;
    let local = |why| Decision::Local {
        why,
        inner: range.clone(),
        skipped: 0,
    };
    let (flow, flags) = match inner {
        Inner::Local(why) => return Ok(local(why)),
        Inner::Udp(l4) => {
            return Ok(match quic_class(policy.quic.as_ref(), l4) {
                QuicClass::Initial => local(LocalReason::QuicInitial),
                QuicClass::Own => local(LocalReason::QuicOwn),
                QuicClass::Unroutable => local(LocalReason::Udp),
                QuicClass::OtherServer => {
                    next_hops(&gue, outer, policy, range.clone(), next_hop, true)?
                }
            })
        }
        Inner::Tcp { flow, flags } => (flow, flags),
    };
    if flags & tcp::flags::SYN != 0 {
        kernel.syn_delivered(&flow);
        return Ok(local(LocalReason::Syn));
    }
    let state = kernel.lookup(&flow);
    if state == SocketState::Flow {
        return Ok(local(LocalReason::Socket));
    }
    let pure_ack = flags & (tcp::flags::ACK | tcp::flags::SYN | tcp::flags::RST | tcp::flags::FIN)
        == tcp::flags::ACK;
    if pure_ack && state == SocketState::Listener && kernel.syncookies_in_use() {
        return Ok(local(LocalReason::Syncookie));
    }
    next_hops(&gue, outer, policy, range, next_hop, false)
}

/// The class of an inner UDP datagram (`l4`: its header and payload) under `quic`: not
/// QUIC ([`QuicClass::Unroutable`]) without a QUIC-LB policy, off its ports, or with a
/// UDP header that does not parse (the kernel drops that one).
#[inline]
fn quic_class(quic: Option<&QuicPolicy>, l4: &[u8]) -> QuicClass {
    let Some(q) = quic else {
        return QuicClass::Unroutable;
    };
    match UdpPacket::new_checked(l4) {
        Ok(u) if q.is_quic_port(u.dst_port()) => q.classify(u.payload()),
        _ => QuicClass::Unroutable,
    }
}

/// Rows 15-21: where a packet goes that this backend does not hold (a TCP flow without a
/// socket, a QUIC CID of another server).
fn next_hops(
    gue: &GuePacket<&[u8]>,
    outer: &Outer,
    policy: &Policy,
    range: Range<usize>,
    next_hop: u8,
    quic: bool,
) -> Result<Decision, GueDropReason> {
    let src = outer.src.to_canonical();
    let dst = outer.dst.to_canonical();
    let hop_count = gue.hop_count();
    let mut skipped = 0u8;
    for i in next_hop..hop_count {
        let Some(hop) = gue.hop(usize::from(i)) else {
            // new_checked guarantees every hop below hop_count is present.
            return Err(GueDropReason::TruncatedGue);
        };
        if hop == dst || policy.own.iter().any(|&a| a.to_canonical() == hop) {
            return Ok(Decision::Local {
                why: LocalReason::SelfHop,
                inner: range,
                skipped,
            });
        }
        if !routable_unicast(hop)
            || matches!(hop, IpAddr::V4(h) if policy.subnet_broadcasts.contains(h))
        {
            return Err(GueDropReason::BadHopAddress);
        }
        let earlier = (0..usize::from(i)).any(|j| gue.hop(j) == Some(hop));
        if hop == src || earlier {
            skipped += 1;
            continue;
        }
        if !policy.backends.contains(hop) {
            return Err(GueDropReason::HopNotAllowed);
        }
        if outer.ttl <= 1 {
            return Err(GueDropReason::TtlExceeded);
        }
        return Ok(Decision::Forward {
            to: hop,
            next_hop: i + 1,
            skipped,
            quic,
        });
    }
    Ok(Decision::Local {
        why: LocalReason::LastResort,
        inner: range,
        skipped,
    })
}

/// Unicast addresses a GUE packet may be forwarded to.
pub fn routable_unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(o[0] == 0
                || a.is_loopback()
                || a.is_multicast()
                || o[0] >= 240
                || a.is_link_local()
                || a == Ipv4Addr::BROADCAST)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped().is_some())
        }
    }
}

/// Ports of a quoted (cut-short) L4 header, reversed into the flow the quote belongs to.
fn quoted_flow(qsrc: IpAddr, qdst: IpAddr, l4: &[u8]) -> Result<Inner<'static>, GueDropReason> {
    let (qsport, qdport) = wire::l4_ports(l4).map_err(|_| GueDropReason::TruncatedInner)?;
    Ok(Inner::Tcp {
        flow: FlowKey {
            src: qdst,
            dst: qsrc,
            sport: qdport,
            dport: qsport,
        },
        flags: 0,
    })
}

fn tcp_flow(src: IpAddr, dst: IpAddr, l4: &[u8]) -> Result<Inner<'static>, GueDropReason> {
    let t = TcpPacket::new_checked(l4).map_err(GueDropReason::from_inner)?;
    Ok(Inner::Tcp {
        flow: FlowKey {
            src,
            dst,
            sport: t.src_port(),
            dport: t.dst_port(),
        },
        flags: t.flags(),
    })
}

/// The inner IPv4 packet: what it is and its length.
fn inner_v4(b: &[u8]) -> Result<(Inner<'_>, usize), GueDropReason> {
    let ip = Ipv4Packet::new_checked(b).map_err(GueDropReason::from_inner)?;
    let len = usize::from(ip.total_len());
    let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
    let proto = ip.protocol();
    let l4 = ip.payload();
    let inner = match proto {
        // A fragment is no whole datagram to read a CID from (QUIC never fragments).
        ip_proto::UDP if ip.is_fragment() => Inner::Local(LocalReason::Udp),
        // The same bytes as `l4`, borrowed from `b` rather than from `ip`.
        ip_proto::UDP => Inner::Udp(b.get(ip.header_len()..len.min(b.len())).unwrap_or(&[])),
        ip_proto::ICMP if ip.frag_offset() != 0 => Inner::Local(LocalReason::Icmp),
        ip_proto::ICMP => {
            let icmp = Icmpv4Packet::new_checked(l4).map_err(GueDropReason::from_inner)?;
            if icmp.msg_type() == icmpv4::DEST_UNREACHABLE && icmp.code() == icmpv4::FRAG_NEEDED {
                let q = icmp.quoted_ipv4().map_err(GueDropReason::from_inner)?;
                if q.protocol() == ip_proto::TCP {
                    quoted_flow(
                        IpAddr::V4(q.src_addr()),
                        IpAddr::V4(q.dst_addr()),
                        q.payload(),
                    )?
                } else {
                    Inner::Local(LocalReason::Icmp)
                }
            } else {
                Inner::Local(LocalReason::Icmp)
            }
        }
        ip_proto::TCP if ip.is_fragment() => return Err(GueDropReason::InnerFragment),
        ip_proto::TCP => tcp_flow(src, dst, l4)?,
        _ => return Err(GueDropReason::UnsupportedInnerProto),
    };
    Ok((inner, len))
}

/// The inner IPv6 packet: what it is and its length.
fn inner_v6(b: &[u8]) -> Result<(Inner<'_>, usize), GueDropReason> {
    let ip = Ipv6Packet::new_checked(b).map_err(GueDropReason::from_inner)?;
    let len = ipv6::HEADER_LEN + usize::from(ip.payload_len());
    let (src, dst) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
    let upper = ipv6::upper_layer(&ip).map_err(GueDropReason::from_inner)?;
    let non_first = upper.fragment.is_some_and(|f| f.is_non_first());
    let l4 = ip.packet().get(upper.offset..len).unwrap_or(&[]);
    let inner = match upper.next_header {
        ip_proto::UDP if upper.fragment.is_some() => Inner::Local(LocalReason::Udp),
        ip_proto::UDP => Inner::Udp(b.get(upper.offset..len).unwrap_or(&[])),
        ip_proto::ICMPV6 if non_first => Inner::Local(LocalReason::Icmp),
        ip_proto::ICMPV6 => {
            let icmp = Icmpv6Packet::new_checked(l4).map_err(GueDropReason::from_inner)?;
            if icmp.msg_type() == icmpv6::PACKET_TOO_BIG {
                let q = icmp.quoted_ipv6().map_err(GueDropReason::from_inner)?;
                if q.next_header() == ip_proto::TCP {
                    quoted_flow(
                        IpAddr::V6(q.src_addr()),
                        IpAddr::V6(q.dst_addr()),
                        q.payload(),
                    )?
                } else {
                    Inner::Local(LocalReason::Icmp)
                }
            } else {
                Inner::Local(LocalReason::Icmp)
            }
        }
        ip_proto::TCP if upper.fragment.is_some() => return Err(GueDropReason::InnerFragment),
        ip_proto::TCP => tcp_flow(src, dst, l4)?,
        _ => return Err(GueDropReason::UnsupportedInnerProto),
    };
    Ok((inner, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redirect::forward::{self, Received};
    use crate::redirect::RedirectCounters;
    use crate::wire::{emit_glb_v4, emit_glb_v6, Ipv4Repr, Ipv6Repr, TcpRepr, UdpPacket, UdpRepr};
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    const DIRECTOR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
    const PEER2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 10);
    const ME6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
    const DIRECTOR6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);

    fn policy() -> Policy {
        Policy {
            directors: AddrSet::new(vec![
                (IpAddr::V4(Ipv4Addr::new(10, 0, 1, 0)), 24),
                (IpAddr::V6(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0)), 64),
            ]),
            backends: AddrSet::new(vec![
                (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 24),
                (IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0)), 64),
            ]),
            own: vec![],
            hop_limit: 8,
            subnet_broadcasts: SubnetBroadcasts::default(),
            quic: None,
        }
    }

    /// A kernel that answers `state` for every flow and records what it was asked.
    struct Fake {
        state: SocketState,
        cookies: bool,
        asked: Vec<FlowKey>,
        syns: Vec<FlowKey>,
    }

    fn fake(state: SocketState) -> Fake {
        Fake {
            state,
            cookies: false,
            asked: vec![],
            syns: vec![],
        }
    }

    impl SocketLookup for Fake {
        fn lookup(&mut self, flow: &FlowKey) -> SocketState {
            self.asked.push(*flow);
            self.state
        }
        fn syncookies_in_use(&mut self) -> bool {
            self.cookies
        }
        fn syn_delivered(&mut self, flow: &FlowKey) {
            self.syns.push(*flow);
        }
    }

    fn ip4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 20 + l4.len()];
        b[20..].copy_from_slice(l4);
        Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: proto,
            payload_len: l4.len(),
            hop_limit: 64,
            dont_frag: true,
            ident: 7,
            dscp_ecn: 0,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut b[..]))
        .unwrap();
        b
    }

    fn ip6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 40 + l4.len()];
        b[40..].copy_from_slice(l4);
        Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: proto,
            payload_len: l4.len(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut b[..]))
        .unwrap();
        b
    }

    fn tcp_seg(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut b = vec![0u8; 20];
        TcpRepr {
            src_port: sport,
            dst_port: dport,
            seq_number: 1000,
            ack_number: 2000,
            flags,
            window: 1024,
            payload_len: 0,
        }
        .emit(&mut TcpPacket::new_unchecked(&mut b[..]), 0)
        .unwrap();
        b
    }

    fn tcp4(flags: u8) -> Vec<u8> {
        ip4(CLIENT, VIP, ip_proto::TCP, &tcp_seg(40000, 80, flags))
    }

    fn tcp6(flags: u8) -> Vec<u8> {
        ip6(CLIENT6, VIP6, ip_proto::TCP, &tcp_seg(40000, 80, flags))
    }

    fn gue4(inner: &[u8], proto: u8, hops: &[Ipv4Addr], next_hop: u8) -> Vec<u8> {
        let mut b = vec![0u8; 8 + 4 * hops.len() + inner.len()];
        let n = emit_glb_v4(&mut b, proto, hops, next_hop).unwrap();
        b[n..].copy_from_slice(inner);
        b
    }

    fn gue6(inner: &[u8], proto: u8, hops: &[Ipv6Addr], next_hop: u8) -> Vec<u8> {
        let mut b = vec![0u8; 8 + 16 * hops.len() + inner.len()];
        let n = emit_glb_v6(&mut b, proto, hops, next_hop).unwrap();
        b[n..].copy_from_slice(inner);
        b
    }

    fn from(src: Ipv4Addr) -> Outer {
        Outer {
            src: IpAddr::V4(src),
            dst: IpAddr::V4(ME),
            ttl: 64,
        }
    }

    fn from6(src: Ipv6Addr) -> Outer {
        Outer {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(ME6),
            ttl: 64,
        }
    }

    fn flow4() -> FlowKey {
        FlowKey {
            src: IpAddr::V4(CLIENT),
            dst: IpAddr::V4(VIP),
            sport: 40000,
            dport: 80,
        }
    }

    fn flow6() -> FlowKey {
        FlowKey {
            src: IpAddr::V6(CLIENT6),
            dst: IpAddr::V6(VIP6),
            sport: 40000,
            dport: 80,
        }
    }

    fn why(d: &Decision) -> Option<LocalReason> {
        match d {
            Decision::Local { why, .. } => Some(*why),
            _ => None,
        }
    }

    /// The inner packets of every supported encapsulation: (GUE payload, outer, flow).
    fn cases(flags: u8, hops: usize, next_hop: u8) -> Vec<(Vec<u8>, Outer, FlowKey)> {
        let h4 = [PEER, PEER2, PEER, PEER2];
        let h6 = [PEER6; 4];
        vec![
            (
                gue4(&tcp4(flags), 4, &h4[..hops], next_hop),
                from(DIRECTOR),
                flow4(),
            ),
            (
                gue4(&tcp6(flags), 41, &h4[..hops], next_hop),
                from(DIRECTOR),
                flow6(),
            ),
            (
                gue6(&tcp6(flags), 41, &h6[..hops], next_hop),
                from6(DIRECTOR6),
                flow6(),
            ),
            (
                gue6(&tcp4(flags), 4, &h6[..hops], next_hop),
                from6(DIRECTOR6),
                flow4(),
            ),
        ]
    }

    #[test]
    fn glb_health_check_is_delivered_locally() {
        // glb-healthcheck: 01 04 00 00 00 00 00 00 + an ICMP echo request to the backend.
        let echo = ip4(
            DIRECTOR,
            ME,
            ip_proto::ICMP,
            &[8, 0, 0xf7, 0xfe, 0, 1, 0, 0, b'h', b'i'],
        );
        let mut p = vec![0x01, 0x04, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&echo);
        let d = decide(
            &p,
            &from(DIRECTOR),
            &policy(),
            &mut fake(SocketState::Absent),
        );
        assert_eq!(
            d,
            Decision::Local {
                why: LocalReason::Icmp,
                inner: 8..8 + echo.len(),
                skipped: 0
            }
        );
        // Trailing bytes after the inner packet are cut off.
        p.extend_from_slice(&[0; 6]);
        let d = decide(
            &p,
            &from(DIRECTOR),
            &policy(),
            &mut fake(SocketState::Absent),
        );
        assert!(matches!(d, Decision::Local { inner, .. } if inner == (8..8 + echo.len())));
    }

    #[test]
    fn syn_is_local_without_asking_the_kernel() {
        for flags in [tcp::flags::SYN, tcp::flags::SYN | tcp::flags::ACK] {
            for (p, o, flow) in cases(flags, 1, 0) {
                let mut k = fake(SocketState::Absent);
                let d = decide(&p, &o, &policy(), &mut k);
                assert_eq!(why(&d), Some(LocalReason::Syn));
                assert!(k.asked.is_empty());
                assert_eq!(k.syns, vec![flow]);
                let Decision::Local { inner, .. } = d else {
                    unreachable!()
                };
                assert_eq!(inner.end, p.len());
                assert_eq!(p[inner.start] >> 4, if flow.src.is_ipv4() { 4 } else { 6 });
            }
        }
    }

    #[test]
    fn a_kernel_socket_keeps_the_flow_local() {
        for (p, o, flow) in cases(tcp::flags::ACK, 1, 0) {
            let mut k = fake(SocketState::Flow);
            let d = decide(&p, &o, &policy(), &mut k);
            assert_eq!(why(&d), Some(LocalReason::Socket));
            assert_eq!(k.asked, vec![flow], "the lookup is the inner 4-tuple");
        }
    }

    #[test]
    fn syncookie_acks_are_local_only_when_cookies_are_in_use() {
        use tcp::flags::{ACK, FIN, PSH, RST};
        for (flags, state, cookies, want) in [
            (
                ACK,
                SocketState::Listener,
                true,
                Some(LocalReason::Syncookie),
            ),
            (
                ACK | PSH,
                SocketState::Listener,
                true,
                Some(LocalReason::Syncookie),
            ),
            (ACK, SocketState::Listener, false, None),
            (ACK, SocketState::Absent, true, None),
            (ACK | FIN, SocketState::Listener, true, None),
            (ACK | RST, SocketState::Listener, true, None),
            (PSH, SocketState::Listener, true, None),
        ] {
            for (p, o, _) in cases(flags, 1, 0) {
                let mut k = fake(state);
                k.cookies = cookies;
                let d = decide(&p, &o, &policy(), &mut k);
                match want {
                    Some(w) => assert_eq!(why(&d), Some(w), "{flags:#x} {state:?}"),
                    None => assert!(matches!(d, Decision::Forward { next_hop: 1, .. }), "{d:?}"),
                }
            }
        }
    }

    fn quic_policy() -> Policy {
        use crate::quic_lb::{QuicLbConfig, QuicLbConfigs, ServerId};
        let c = QuicLbConfig::new(1, 2, 6, Some(&[9u8; 16])).unwrap();
        Policy {
            quic: Some(QuicPolicy {
                configs: QuicLbConfigs::new([c]).unwrap(),
                server_id: ServerId::new(&[0, 1]).unwrap(),
                ports: vec![443],
            }),
            ..policy()
        }
    }

    /// A QUIC short header packet whose DCID carries server ID `sid`, to VIP:`dport`.
    fn quic_udp(sid: &[u8], dport: u16) -> Vec<u8> {
        use crate::quic_lb::{RandomNonce, ServerId};
        let p = quic_policy();
        let c = p.quic.as_ref().unwrap().configs.get(1).unwrap().clone();
        let mut cid = [0u8; 20];
        let n = c
            .encode(
                &ServerId::new(sid).unwrap(),
                &mut RandomNonce::new(),
                &mut cid,
            )
            .unwrap();
        let mut payload = vec![0x41];
        payload.extend_from_slice(&cid[..n]);
        payload.extend_from_slice(&[0x5a; 30]);
        let mut u = vec![0u8; 8 + payload.len()];
        u[8..].copy_from_slice(&payload);
        UdpRepr {
            src_port: 50000,
            dst_port: dport,
            payload_len: payload.len(),
        }
        .emit(&mut UdpPacket::new_unchecked(&mut u[..]))
        .unwrap();
        u
    }

    #[test]
    fn quic_follows_the_server_id_in_its_connection_id() {
        let q = quic_policy();
        let v4 = |l4: &[u8]| ip4(CLIENT, VIP, ip_proto::UDP, l4);
        let v6 = |l4: &[u8]| ip6(CLIENT6, VIP6, ip_proto::UDP, l4);
        // Ours: local, the kernel never asked.
        let mut k = fake(SocketState::Absent);
        let d = decide(
            &gue4(&v4(&quic_udp(&[0, 1], 443)), 4, &[PEER], 0),
            &from(DIRECTOR),
            &q,
            &mut k,
        );
        assert_eq!(why(&d), Some(LocalReason::QuicOwn));
        assert!(k.asked.is_empty());
        // Another server's: second chance on the next hop, counted as QUIC.
        let d = decide(
            &gue4(&v4(&quic_udp(&[0, 2], 443)), 4, &[PEER], 0),
            &from(DIRECTOR),
            &q,
            &mut k,
        );
        assert_eq!(
            d,
            Decision::Forward {
                to: IpAddr::V4(PEER),
                next_hop: 1,
                skipped: 0,
                quic: true
            }
        );
        let mut c = RedirectCounters::default();
        c.count(&d);
        assert_eq!((c.forwarded, c.forwarded_quic), (1, 1));
        let p6 = gue6(&v6(&quic_udp(&[0, 2], 443)), 41, &[PEER6], 0);
        let d = decide(&p6, &from6(DIRECTOR6), &q, &mut k);
        assert!(
            matches!(
                d,
                Decision::Forward {
                    quic: true,
                    next_hop: 1,
                    ..
                }
            ),
            "{d:?}"
        );
        // ... and at the last hop, the last resort; a hop that is us, self_hop.
        let d = decide(
            &gue4(&v4(&quic_udp(&[0, 2], 443)), 4, &[ME], 1),
            &from(PEER),
            &q,
            &mut k,
        );
        assert_eq!(why(&d), Some(LocalReason::LastResort));
        let d = decide(
            &gue4(&v4(&quic_udp(&[0, 2], 443)), 4, &[ME], 0),
            &from(DIRECTOR),
            &q,
            &mut k,
        );
        assert_eq!(why(&d), Some(LocalReason::SelfHop));
        // Another port, or no QUIC-LB configured: plain UDP, local.
        let d = decide(
            &gue4(&v4(&quic_udp(&[0, 2], 8443)), 4, &[PEER], 0),
            &from(DIRECTOR),
            &q,
            &mut k,
        );
        assert_eq!(why(&d), Some(LocalReason::Udp));
        let d = decide(
            &gue4(&v4(&quic_udp(&[0, 2], 443)), 4, &[PEER], 0),
            &from(DIRECTOR),
            &policy(),
            &mut k,
        );
        assert_eq!(why(&d), Some(LocalReason::Udp));
        // A UDP fragment, a truncated UDP header: local UDP, never forwarded.
        let mut frag = v4(&quic_udp(&[0, 2], 443));
        frag[6] |= 0x20; // more fragments
        let d = decide(&gue4(&frag, 4, &[PEER], 0), &from(DIRECTOR), &q, &mut k);
        assert_eq!(why(&d), Some(LocalReason::Udp));
        let d = decide(
            &gue4(&ip4(CLIENT, VIP, ip_proto::UDP, &[1, 2, 3]), 4, &[PEER], 0),
            &from(DIRECTOR),
            &q,
            &mut k,
        );
        assert_eq!(why(&d), Some(LocalReason::Udp));
        // An Initial whose DCID happens to name another server stays (a new connection).
        let mut initial = quic_udp(&[0, 2], 443);
        initial[8] = 0xc0;
        let cid = initial[9..18].to_vec();
        let mut payload = vec![0xc0, 0, 0, 0, 1, 9];
        payload.extend_from_slice(&cid);
        payload.extend_from_slice(&[0, 0x5a, 0x5a]);
        initial.truncate(8);
        initial.extend_from_slice(&payload);
        let udp_len = initial.len() as u16;
        initial[4..6].copy_from_slice(&udp_len.to_be_bytes());
        let d = decide(
            &gue4(&v4(&initial), 4, &[PEER], 0),
            &from(DIRECTOR),
            &q,
            &mut k,
        );
        assert_eq!(why(&d), Some(LocalReason::QuicInitial));
        assert!(
            k.asked.is_empty(),
            "QUIC never asks the kernel about sockets"
        );
    }

    #[test]
    fn exhausted_hops_are_the_last_resort() {
        for hops in [0, 1, 3] {
            for (p, o, _) in cases(tcp::flags::ACK, hops, hops as u8) {
                let d = decide(&p, &o, &policy(), &mut fake(SocketState::Absent));
                assert_eq!(why(&d), Some(LocalReason::LastResort), "{hops} hops");
            }
        }
    }

    #[test]
    fn an_unknown_flow_goes_to_the_next_hop() {
        for (p, o, _) in cases(tcp::flags::ACK, 1, 0) {
            let d = decide(&p, &o, &policy(), &mut fake(SocketState::Absent));
            let to = if o.dst.is_ipv4() {
                IpAddr::V4(PEER)
            } else {
                IpAddr::V6(PEER6)
            };
            assert_eq!(
                d,
                Decision::Forward {
                    to,
                    next_hop: 1,
                    skipped: 0,
                    quic: false
                }
            );
        }
        // The second hop of a 4-hop list (alt_hash_fields), from the peer that had it.
        let p = gue4(&tcp4(tcp::flags::ACK), 4, &[ME, PEER2, PEER], 1);
        let d = decide(&p, &from(PEER), &policy(), &mut fake(SocketState::Absent));
        assert_eq!(
            d,
            Decision::Forward {
                to: IpAddr::V4(PEER2),
                next_hop: 2,
                skipped: 0,
                quic: false
            }
        );
    }

    #[test]
    fn a_hop_that_is_a_subnet_broadcast_of_ours_is_a_bad_hop_address() {
        // ME is on 10.0.0.0/24 (backends allow all of it): 10.0.0.255 is that subnet's
        // directed broadcast, a perfectly "routable unicast" address by its bits alone.
        let bcast = Ipv4Addr::new(10, 0, 0, 255);
        let p = gue4(&tcp4(tcp::flags::ACK), 4, &[bcast], 0);
        let mut pol = policy();
        let (set, left_out) = SubnetBroadcasts::from_subnets(&[(ME, 24), (Ipv4Addr::LOCALHOST, 8)]);
        assert_eq!(left_out, 0);
        pol.subnet_broadcasts = set;
        assert_eq!(
            decide(&p, &from(DIRECTOR), &pol, &mut fake(SocketState::Absent)),
            Decision::Drop(GueDropReason::BadHopAddress)
        );
        // Without that subnet it would be forwarded (what the policy alone allows).
        assert!(matches!(
            decide(
                &p,
                &from(DIRECTOR),
                &policy(),
                &mut fake(SocketState::Absent)
            ),
            Decision::Forward { .. }
        ));
        // Other hops of the same subnet still go.
        let p = gue4(&tcp4(tcp::flags::ACK), 4, &[PEER], 0);
        assert!(matches!(
            decide(&p, &from(DIRECTOR), &pol, &mut fake(SocketState::Absent)),
            Decision::Forward { .. }
        ));
        // The set: /31, /32 and /0 have no broadcast; duplicates kept once; bounded.
        let (s, _) = SubnetBroadcasts::from_subnets(&[
            (Ipv4Addr::new(10, 1, 2, 3), 24),
            (Ipv4Addr::new(10, 1, 2, 4), 24),
            (Ipv4Addr::new(192, 0, 2, 0), 31),
            (Ipv4Addr::new(192, 0, 2, 9), 32),
            (Ipv4Addr::new(8, 8, 8, 8), 0),
            (Ipv4Addr::new(172, 16, 0, 1), 12),
        ]);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![
                Ipv4Addr::new(10, 1, 2, 255),
                Ipv4Addr::new(172, 31, 255, 255)
            ]
        );
        assert!(!s.contains(Ipv4Addr::new(192, 0, 2, 1)));
        let many: Vec<(Ipv4Addr, u8)> = (0..100u8)
            .map(|i| (Ipv4Addr::new(10, i, 0, 1), 24))
            .collect();
        let (s, left_out) = SubnetBroadcasts::from_subnets(&many);
        assert_eq!(
            (s.len(), left_out),
            (SubnetBroadcasts::MAX, 100 - SubnetBroadcasts::MAX)
        );
    }

    #[test]
    fn a_hop_that_is_us_is_local() {
        let p = gue4(&tcp4(tcp::flags::ACK), 4, &[ME], 0);
        let d = decide(
            &p,
            &from(DIRECTOR),
            &policy(),
            &mut fake(SocketState::Absent),
        );
        assert_eq!(why(&d), Some(LocalReason::SelfHop));
        // A configured address of ours that is not the outer destination.
        let other = Ipv4Addr::new(10, 0, 0, 222);
        let p = gue4(&tcp4(tcp::flags::ACK), 4, &[other], 0);
        let mut pol = policy();
        assert!(matches!(
            decide(&p, &from(DIRECTOR), &pol, &mut fake(SocketState::Absent)),
            Decision::Forward { .. }
        ));
        pol.own = vec![IpAddr::V4(other)];
        let d = decide(&p, &from(DIRECTOR), &pol, &mut fake(SocketState::Absent));
        assert_eq!(why(&d), Some(LocalReason::SelfHop));
        let p = gue6(&tcp6(tcp::flags::ACK), 41, &[ME6], 0);
        let d = decide(
            &p,
            &from6(DIRECTOR6),
            &policy(),
            &mut fake(SocketState::Absent),
        );
        assert_eq!(why(&d), Some(LocalReason::SelfHop));
    }

    #[test]
    fn udp_and_plain_icmp_are_local() {
        let udp = ip4(CLIENT, VIP, ip_proto::UDP, &[0, 53, 0, 53, 0, 8, 0, 0]);
        let echo = ip4(CLIENT, VIP, ip_proto::ICMP, &[8, 0, 0, 0, 0, 1, 0, 1]);
        let unreach = ip4(CLIENT, VIP, ip_proto::ICMP, &[3, 3, 0, 0, 0, 0, 0, 0]);
        let udp6 = ip6(CLIENT6, VIP6, ip_proto::UDP, &[0, 53, 0, 53, 0, 8, 0, 0]);
        let echo6 = ip6(CLIENT6, VIP6, ip_proto::ICMPV6, &[128, 0, 0, 0, 0, 1, 0, 1]);
        for (inner, proto, want) in [
            (&udp, 4, LocalReason::Udp),
            (&echo, 4, LocalReason::Icmp),
            (&unreach, 4, LocalReason::Icmp),
            (&udp6, 41, LocalReason::Udp),
            (&echo6, 41, LocalReason::Icmp),
        ] {
            let p = gue4(inner, proto, &[PEER], 0);
            let mut k = fake(SocketState::Absent);
            let d = decide(&p, &from(DIRECTOR), &policy(), &mut k);
            assert_eq!(why(&d), Some(want));
            assert!(k.asked.is_empty());
        }
    }

    /// An ICMP error about a packet the server sent (VIP:80 -> client:40000).
    fn frag_needed_v4(quote_proto: u8, quote_len: usize) -> Vec<u8> {
        let quoted = ip4(
            VIP,
            CLIENT,
            quote_proto,
            &tcp_seg(80, 40000, tcp::flags::ACK),
        );
        let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0xdc];
        icmp.extend_from_slice(&quoted[..quote_len]);
        ip4(Ipv4Addr::new(192, 0, 2, 1), VIP, ip_proto::ICMP, &icmp)
    }

    fn ptb_v6(quote_proto: u8, quote_len: usize) -> Vec<u8> {
        let quoted = ip6(
            VIP6,
            CLIENT6,
            quote_proto,
            &tcp_seg(80, 40000, tcp::flags::ACK),
        );
        let mut icmp = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
        icmp.extend_from_slice(&quoted[..quote_len]);
        ip6(
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
            VIP6,
            ip_proto::ICMPV6,
            &icmp,
        )
    }

    #[test]
    fn frag_needed_and_packet_too_big_follow_the_quoted_flow_reversed() {
        for (inner, proto, flow) in [
            (frag_needed_v4(ip_proto::TCP, 28), 4, flow4()),
            (ptb_v6(ip_proto::TCP, 48), 41, flow6()),
        ] {
            let p = gue4(&inner, proto, &[PEER], 0);
            let mut k = fake(SocketState::Flow);
            let d = decide(&p, &from(DIRECTOR), &policy(), &mut k);
            assert_eq!(why(&d), Some(LocalReason::Socket));
            assert_eq!(k.asked, vec![flow]);
            // No socket: a quote has no flags (never a SYN, never a syncookie ACK): forward.
            let mut k = fake(SocketState::Listener);
            k.cookies = true;
            let d = decide(&p, &from(DIRECTOR), &policy(), &mut k);
            assert!(matches!(d, Decision::Forward { next_hop: 1, .. }), "{d:?}");
        }
        // A quote of a UDP packet belongs to a flow that is always local.
        for (inner, proto) in [
            (frag_needed_v4(ip_proto::UDP, 28), 4),
            (ptb_v6(ip_proto::UDP, 48), 41),
        ] {
            let p = gue4(&inner, proto, &[PEER], 0);
            let d = decide(
                &p,
                &from(DIRECTOR),
                &policy(),
                &mut fake(SocketState::Absent),
            );
            assert_eq!(why(&d), Some(LocalReason::Icmp));
        }
        // A quote too short for the ports.
        for (inner, proto) in [
            (frag_needed_v4(ip_proto::TCP, 22), 4),
            (frag_needed_v4(ip_proto::TCP, 12), 4),
            (ptb_v6(ip_proto::TCP, 42), 41),
            (ptb_v6(ip_proto::TCP, 20), 41),
        ] {
            let p = gue4(&inner, proto, &[PEER], 0);
            let d = decide(
                &p,
                &from(DIRECTOR),
                &policy(),
                &mut fake(SocketState::Absent),
            );
            assert_eq!(d, Decision::Drop(GueDropReason::TruncatedInner));
        }
    }

    /// Every bad input, each under its own reason and nothing else.
    #[test]
    fn bad_inputs_are_dropped_each_under_its_own_reason() {
        let ack = tcp4(tcp::flags::ACK);
        let good = gue4(&ack, 4, &[PEER], 0);
        let edit = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = good.clone();
            f(&mut p);
            p
        };
        let mut tcp_frag = tcp4(tcp::flags::ACK);
        tcp_frag[6] = 0x20; // MF
        let mut v6_frag_hdr = tcp_seg(40000, 80, tcp::flags::ACK);
        let mut fh = vec![ip_proto::TCP, 0, 0, 8, 0, 0, 0, 1]; // offset 1, non-first
        fh.append(&mut v6_frag_hdr);
        let tcp6_frag = ip6(CLIENT6, VIP6, ip_proto::IPV6_FRAG, &fh);
        let short_tcp = ip4(CLIENT, VIP, ip_proto::TCP, &[0, 80, 0, 80, 0, 0, 0]);
        let mut bad_ihl = tcp4(tcp::flags::ACK);
        bad_ihl[0] = 0x44;
        let gre = ip4(CLIENT, VIP, 47, &[0; 8]);
        let cases: Vec<(&str, Vec<u8>, Outer, GueDropReason)> = vec![
            (
                "stranger",
                good.clone(),
                from(Ipv4Addr::new(192, 0, 2, 66)),
                GueDropReason::SourceNotAllowed,
            ),
            ("empty", vec![], from(DIRECTOR), GueDropReason::TruncatedGue),
            (
                "3 bytes",
                good[..3].to_vec(),
                from(DIRECTOR),
                GueDropReason::TruncatedGue,
            ),
            (
                "hlen past the end",
                good[..10].to_vec(),
                from(DIRECTOR),
                GueDropReason::TruncatedGue,
            ),
            (
                "version 1",
                edit(&|p| p[0] |= 0x40),
                from(DIRECTOR),
                GueDropReason::BadGueVersion,
            ),
            (
                "control",
                edit(&|p| p[0] |= 0x20),
                from(DIRECTOR),
                GueDropReason::GueControl,
            ),
            (
                "hlen 0",
                edit(&|p| p[0] = 0),
                from(DIRECTOR),
                GueDropReason::BadGueHlen,
            ),
            (
                "private type",
                edit(&|p| p[5] = 1),
                from(DIRECTOR),
                GueDropReason::BadGuePrivateType,
            ),
            (
                "hop_count > hlen - 1",
                edit(&|p| p[7] = 2),
                from(DIRECTOR),
                GueDropReason::BadGueHopCount,
            ),
            (
                "hop_count < hlen - 1",
                edit(&|p| p[7] = 0),
                from(DIRECTOR),
                GueDropReason::BadGueHopCount,
            ),
            (
                "proto 17",
                edit(&|p| p[1] = 17),
                from(DIRECTOR),
                GueDropReason::BadGueProto,
            ),
            (
                "9 hops",
                gue4(&ack, 4, &[PEER; 9], 0),
                from(DIRECTOR),
                GueDropReason::HopLimit,
            ),
            (
                "next_hop past hop_count",
                gue4(&ack, 4, &[PEER], 2),
                from(DIRECTOR),
                GueDropReason::NextHopOutOfRange,
            ),
            (
                "next_hop 255",
                gue4(&ack, 4, &[PEER, PEER2], 255),
                from(DIRECTOR),
                GueDropReason::NextHopOutOfRange,
            ),
            (
                "inner cut",
                good[..good.len() - 1].to_vec(),
                from(DIRECTOR),
                GueDropReason::TruncatedInner,
            ),
            (
                "no inner",
                good[..12].to_vec(),
                from(DIRECTOR),
                GueDropReason::TruncatedInner,
            ),
            (
                "tcp header cut",
                gue4(&short_tcp, 4, &[PEER], 0),
                from(DIRECTOR),
                GueDropReason::TruncatedInner,
            ),
            (
                "ihl 4",
                gue4(&bad_ihl, 4, &[PEER], 0),
                from(DIRECTOR),
                GueDropReason::BadInnerHeader,
            ),
            (
                "v6 inside proto 4",
                gue4(&tcp6(tcp::flags::ACK), 4, &[PEER], 0),
                from(DIRECTOR),
                GueDropReason::InnerVersionMismatch,
            ),
            (
                "v4 inside proto 41",
                gue4(&ack, 41, &[PEER], 0),
                from(DIRECTOR),
                GueDropReason::InnerVersionMismatch,
            ),
            (
                "gre",
                gue4(&gre, 4, &[PEER], 0),
                from(DIRECTOR),
                GueDropReason::UnsupportedInnerProto,
            ),
            (
                "tcp fragment",
                gue4(&tcp_frag, 4, &[PEER], 0),
                from(DIRECTOR),
                GueDropReason::InnerFragment,
            ),
            (
                "tcp v6 fragment",
                gue4(&tcp6_frag, 41, &[PEER], 0),
                from(DIRECTOR),
                GueDropReason::InnerFragment,
            ),
            (
                "hop loopback",
                gue4(&ack, 4, &[Ipv4Addr::LOCALHOST], 0),
                from(DIRECTOR),
                GueDropReason::BadHopAddress,
            ),
            (
                "hop multicast",
                gue4(&ack, 4, &[Ipv4Addr::new(224, 0, 0, 1)], 0),
                from(DIRECTOR),
                GueDropReason::BadHopAddress,
            ),
            (
                "hop broadcast",
                gue4(&ack, 4, &[Ipv4Addr::BROADCAST], 0),
                from(DIRECTOR),
                GueDropReason::BadHopAddress,
            ),
            (
                "hop 0.0.0.0",
                gue4(&ack, 4, &[Ipv4Addr::UNSPECIFIED], 0),
                from(DIRECTOR),
                GueDropReason::BadHopAddress,
            ),
            (
                "hop ::1",
                gue6(&ack, 4, &[Ipv6Addr::LOCALHOST], 0),
                from6(DIRECTOR6),
                GueDropReason::BadHopAddress,
            ),
            (
                "hop ff02::1",
                gue6(&ack, 4, &["ff02::1".parse().unwrap()], 0),
                from6(DIRECTOR6),
                GueDropReason::BadHopAddress,
            ),
            (
                "hop outside backends",
                gue4(&ack, 4, &[Ipv4Addr::new(192, 0, 2, 99)], 0),
                from(DIRECTOR),
                GueDropReason::HopNotAllowed,
            ),
            (
                "ttl 1",
                good.clone(),
                Outer {
                    ttl: 1,
                    ..from(DIRECTOR)
                },
                GueDropReason::TtlExceeded,
            ),
        ];
        for (name, p, o, want) in cases {
            let mut c = RedirectCounters::default();
            let d = decide(&p, &o, &policy(), &mut fake(SocketState::Absent));
            c.count(&d);
            assert_eq!(d, Decision::Drop(want), "{name}");
            assert_eq!(c.drop_count(want), 1, "{name}");
            assert_eq!(c.total_drops(), 1, "{name}");
            assert_eq!((c.total_local(), c.forwarded), (0, 0), "{name}");
        }
        // Peers may send too; the same hop list from a peer is forwarded.
        let d = decide(
            &good,
            &from(PEER2),
            &policy(),
            &mut fake(SocketState::Absent),
        );
        assert!(matches!(d, Decision::Forward { .. }));
    }

    /// One node of a simulated backend fleet: runs `decide` and, for a forward, the real
    /// forward path; returns the next (payload, outer) or the final decision.
    fn hop(me: IpAddr, payload: &[u8], outer: Outer) -> Result<(IpAddr, Vec<u8>, Outer), Decision> {
        let mut pol = policy();
        pol.hop_limit = 30;
        let o = Outer { dst: me, ..outer };
        let d = decide(payload, &o, &pol, &mut fake(SocketState::Absent));
        let Decision::Forward { to, next_hop, .. } = d else {
            return Err(d);
        };
        let mut out = vec![0u8; 70000];
        let rx = Received {
            outer: o,
            sport: 0x8123,
            tos: 0,
        };
        let n = forward::build(&mut out, payload, &rx, to, next_hop).unwrap();
        let (src, dst, ttl, udp) = match to {
            IpAddr::V4(_) => {
                let ip = Ipv4Packet::new_checked(&out[..n]).unwrap();
                assert!(ip.verify_checksum());
                let u = UdpPacket::new_checked(ip.payload()).unwrap();
                assert!(u.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
                (
                    IpAddr::V4(ip.src_addr()),
                    IpAddr::V4(ip.dst_addr()),
                    ip.ttl(),
                    UdpRepr::parse(&u).unwrap(),
                )
            }
            IpAddr::V6(_) => {
                let ip = Ipv6Packet::new_checked(&out[..n]).unwrap();
                let u = UdpPacket::new_checked(ip.payload()).unwrap();
                assert!(u.verify_checksum_v6(&ip.src_addr(), &ip.dst_addr()));
                (
                    IpAddr::V6(ip.src_addr()),
                    IpAddr::V6(ip.dst_addr()),
                    ip.hop_limit(),
                    UdpRepr::parse(&u).unwrap(),
                )
            }
        };
        assert_eq!((src, dst, ttl), (me, to, o.ttl - 1), "outer rewritten");
        assert_eq!((udp.src_port, udp.dst_port), (0x8123, 19523));
        let hl = if to.is_ipv4() { 20 } else { 40 };
        let new_payload = out[hl + 8..n].to_vec();
        assert_eq!(
            new_payload.len(),
            payload.len(),
            "same size: nothing amplified"
        );
        assert_eq!(new_payload[6], next_hop);
        assert!(next_hop > payload[6], "next_hop strictly increases");
        assert_eq!(
            (&new_payload[..6], &new_payload[7..]),
            (&payload[..6], &payload[7..]),
            "only next_hop changes"
        );
        Ok((to, new_payload, Outer { src, dst, ttl }))
    }

    /// Runs a packet through the fleet from its first backend; returns (forwards, end).
    fn travel(first: IpAddr, payload: Vec<u8>, src: IpAddr) -> (usize, Decision, Vec<IpAddr>) {
        let mut at = first;
        let mut p = payload;
        let mut o = Outer {
            src,
            dst: first,
            ttl: 64,
        };
        let mut path = vec![first];
        for forwards in 0.. {
            match hop(at, &p, o) {
                Ok((to, np, no)) => {
                    assert_ne!(to, at, "never to ourselves");
                    assert_ne!(to, o.src, "never back to the sender");
                    (at, p, o) = (to, np, no);
                    path.push(to);
                }
                Err(d) => return (forwards, d, path),
            }
            assert!(forwards <= 30, "a loop");
        }
        unreachable!()
    }

    #[test]
    fn loops_are_bounded_by_hop_count() {
        let a = IpAddr::V4(ME);
        let b = IpAddr::V4(PEER);
        let d = IpAddr::V4(DIRECTOR);
        let ack = tcp4(tcp::flags::ACK);
        // Pointing back at ourselves: local, nothing forwarded.
        let (n, end, _) = travel(a, gue4(&ack, 4, &[ME], 0), d);
        assert_eq!((n, why(&end)), (0, Some(LocalReason::SelfHop)));
        // A -> B -> A: B does not send it back to A; it ends on B.
        let (n, end, path) = travel(a, gue4(&ack, 4, &[PEER, ME], 0), d);
        assert_eq!((n, why(&end)), (1, Some(LocalReason::LastResort)));
        assert_eq!(path, vec![a, b]);
        // A long ping-pong list: one forward, then B finds itself.
        let (n, end, _) = travel(
            a,
            gue4(&ack, 4, &[PEER, ME, PEER, ME, PEER, ME, PEER, ME], 0),
            d,
        );
        assert_eq!((n, why(&end)), (1, Some(LocalReason::SelfHop)));
        // Duplicates from alt_hash_fields (P2 == P1): the visited hop is skipped, not lost.
        let p2 = IpAddr::V4(PEER2);
        let (n, end, path) = travel(a, gue4(&ack, 4, &[PEER, ME, PEER2], 0), d);
        assert_eq!(path, vec![a, b, p2]);
        assert_eq!((n, why(&end)), (2, Some(LocalReason::LastResort)));
        // IPv6 hops.
        let (n, end, _) = travel(
            IpAddr::V6(ME6),
            gue6(&tcp6(tcp::flags::ACK), 41, &[PEER6, ME6, PEER6], 0),
            IpAddr::V6(DIRECTOR6),
        );
        assert_eq!((n, why(&end)), (1, Some(LocalReason::SelfHop)));
    }

    fn node(i: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, 2 + i)
    }

    proptest! {
        /// Any hop list over a small fleet: the packet is forwarded at most hop_count times,
        /// never to itself or back to its sender, and no node in the hop list gets it twice
        /// (the first backend is not in the list, so it may see it once more).
        #[test]
        fn any_hop_list_terminates(hops in prop::collection::vec(0u8..4, 0..12), first in 0u8..4, start in 0u8..12) {
            let list: Vec<Ipv4Addr> = hops.iter().map(|&i| node(i)).collect();
            let next = start.min(list.len() as u8);
            let p = gue4(&tcp4(tcp::flags::ACK), 4, &list, next);
            let (n, end, path) = travel(IpAddr::V4(node(first)), p, IpAddr::V4(DIRECTOR));
            prop_assert!(n <= list.len() - usize::from(next));
            prop_assert!(matches!(end, Decision::Local { .. }), "{:?}", end);
            let mut seen = path[1..].to_vec();
            seen.sort();
            seen.dedup();
            prop_assert_eq!(seen.len(), path.len() - 1, "a node had the packet twice: {:?}", path);
            prop_assert!(path[1..].iter().filter(|&&a| a == path[0]).count() <= 1);
        }

        /// Any bytes from any address: a decision, never a panic; a forward always advances
        /// next_hop within hop_count, to an allowed address.
        #[test]
        fn any_bytes_get_a_decision(bytes in prop::collection::vec(any::<u8>(), 0..200), v6 in any::<bool>(), state in 0u8..3, cookies in any::<bool>(), quic in any::<bool>()) {
            let o = if v6 { from6(DIRECTOR6) } else { from(DIRECTOR) };
            let mut k = fake([SocketState::Flow, SocketState::Listener, SocketState::Absent][usize::from(state)]);
            k.cookies = cookies;
            let p = if quic { quic_policy() } else { policy() };
            match decide(&bytes, &o, &p, &mut k) {
                Decision::Forward { to, next_hop, .. } => {
                    prop_assert!(next_hop > bytes[6] && next_hop <= bytes[7]);
                    prop_assert!(policy().backends.contains(to));
                }
                Decision::Local { inner, .. } => prop_assert!(inner.end <= bytes.len()),
                Decision::Drop(_) => {}
            }
        }
    }

    #[test]
    fn addr_sets_and_unicast() {
        let s = AddrSet::new(vec![
            (IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), 16),
            (IpAddr::V6("fd00::".parse().unwrap()), 8),
            (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 32),
        ]);
        assert!(s.contains("10.1.200.1".parse().unwrap()));
        assert!(!s.contains("10.2.0.1".parse().unwrap()));
        assert!(s.contains("fdff::1".parse().unwrap()));
        assert!(!s.contains("fe00::1".parse().unwrap()));
        assert!(s.contains("192.0.2.7".parse().unwrap()));
        assert!(!s.contains("192.0.2.8".parse().unwrap()));
        assert!(
            s.contains("::ffff:10.1.0.1".parse().unwrap()),
            "v4-mapped counts as v4"
        );
        assert!(AddrSet::new(vec![(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)])
            .contains("1.2.3.4".parse().unwrap()));
        assert!(!AddrSet::default().contains("1.2.3.4".parse().unwrap()));
        for (a, ok) in [
            ("10.0.0.1", true),
            ("2001:db8::1", true),
            ("0.1.2.3", false),
            ("127.0.0.2", false),
            ("169.254.0.1", false),
            ("239.1.1.1", false),
            ("240.0.0.1", false),
            ("::", false),
            ("fe80::1", false),
            ("::ffff:10.0.0.1", false),
        ] {
            assert_eq!(routable_unicast(a.parse().unwrap()), ok, "{a}");
        }
        assert_eq!(flow4().to_string(), "198.51.100.7:40000 -> 203.0.113.10:80");
        let mut names: Vec<_> = LocalReason::ALL.iter().map(|r| r.name()).collect();
        names.extend(GueDropReason::ALL.iter().map(|r| r.name()));
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "unique counter names");
        for (i, r) in GueDropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        for (i, r) in LocalReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn always_local_takes_every_packet_that_would_be_forwarded() {
        // An ACK of a flow we do not know, with a peer left in the hop list: forwarded with
        // second chance, delivered here without it; bad input is still dropped.
        let p = policy();
        let g = gue4(&tcp4(tcp::flags::ACK), 4, &[PEER], 0);
        assert!(matches!(
            decide(&g, &from(DIRECTOR), &p, &mut fake(SocketState::Absent)),
            Decision::Forward { .. }
        ));
        assert!(matches!(
            decide(&g, &from(DIRECTOR), &p, &mut AlwaysLocal),
            Decision::Local {
                why: LocalReason::Socket,
                ..
            }
        ));
        assert_eq!(
            decide(&g, &from(Ipv4Addr::new(192, 0, 2, 1)), &p, &mut AlwaysLocal),
            Decision::Drop(GueDropReason::SourceNotAllowed)
        );
    }
}
