//! Classification: find the bind a packet belongs to (GLB's rules: longest prefix, then
//! protocol and port range; ICMP to the flow it is about) and the input of its flow hash.
//! Total over any bytes: every frame becomes a [`Flow`] or a [`Verdict`] with a reason.

use crate::hash::lanes::{hash_one, HashInput};
use crate::wire::checksum;
use crate::wire::ip_proto::{ICMP, ICMPV6, TCP, UDP};
use crate::wire::{
    self, ethernet, icmpv4, icmpv6, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet,
};

use super::counters::{DropReason, ExceptionReason, Verdict};
use super::flow::{with_field_set, FieldSet, Flow};
use super::rows::ExpressTable;
use super::snapshot::Snapshot;

/// The fields a flow is hashed on (network order); `N` is the address size (4 or 16).
struct FlowKey<const N: usize> {
    src: [u8; N],
    dst: [u8; N],
    sport: u16,
    dport: u16,
}

/// Write the hash input of `k` for `fields` (in GLB's order: source address, destination
/// address, source port, destination port; 36 bytes at most) under `key`.
#[inline(always)]
fn hash_input<const N: usize>(
    input: &mut HashInput,
    key: (u64, u64),
    fields: FieldSet,
    k: &FlowKey<N>,
) {
    if N == 4 {
        packed_v4_input(input, key, fields, k);
    } else {
        written_input(input, key, fields, k);
    }
}

/// [`hash_input`] through the general writer (any address size).
#[inline(always)]
fn written_input<const N: usize>(
    input: &mut HashInput,
    key: (u64, u64),
    fields: FieldSet,
    k: &FlowKey<N>,
) {
    let mut w = input.writer(key);
    if fields.has(FieldSet::SRC_ADDR) {
        w.push_bytes(&k.src);
    }
    if fields.has(FieldSet::DST_ADDR) {
        w.push_bytes(&k.dst);
    }
    if fields.has(FieldSet::SRC_PORT) {
        w.push_be16(k.sport);
    }
    if fields.has(FieldSet::DST_PORT) {
        w.push_be16(k.dport);
    }
    w.finish();
}

/// [`hash_input`] for 4-byte addresses: at most 12 bytes, assembled with constant shifts
/// by the [`packed_v4`] of the snapshot's field set (one well-predicted jump per packet)
/// rather than the writer's word-boundary bookkeeping. The same input as
/// [`written_input`] (tested for every field set).
#[inline(always)]
fn packed_v4_input<const N: usize>(
    input: &mut HashInput,
    key: (u64, u64),
    fields: FieldSet,
    k: &FlowKey<N>,
) {
    let Some((&src, &dst)) = k.src.first_chunk::<4>().zip(k.dst.first_chunk::<4>()) else {
        return written_input(input, key, fields, k); // N < 4: not an address size
    };
    let (sport, dport) = (k.sport, k.dport);
    let (msg, len) = with_field_set!(fields.0, F => packed_v4::<F>(src, dst, sport, dport));
    input.k0 = key.0;
    input.k1 = key.1;
    input.words[0] = msg as u64;
    input.words[1] = (msg >> 64) as u64;
    input.len = len;
}

/// The message of field set `F` ([`FieldSet`] bits) as a little-endian 128-bit value and
/// its length in bytes, from the addresses as on the wire and the ports as numbers.
#[inline(always)]
fn packed_v4<const F: u8>(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> (u128, u8) {
    // Each field as a little-endian value of its message (network order) bytes.
    let (src, dst) = (u32::from_le_bytes(src), u32::from_le_bytes(dst));
    let (sport, dport) = (sport.swap_bytes(), dport.swap_bytes());
    let (mut msg, mut bits) = (0u128, 0u32);
    for (bit, v, n) in [
        (FieldSet::SRC_ADDR, u128::from(src), 32),
        (FieldSet::DST_ADDR, u128::from(dst), 32),
        (FieldSet::SRC_PORT, u128::from(sport), 16),
        (FieldSet::DST_PORT, u128::from(dport), 16),
    ] {
        if F & bit != 0 {
            msg |= v << bits;
            bits += n;
        }
    }
    (msg, (bits / 8) as u8)
}

/// Where the classifier writes a packet that belongs to a bind: its [`Flow`] (hashes not
/// yet filled in) and the inputs of its hashes, which the pipeline hashes for a whole
/// burst at once. Written in place, so the pipeline never copies a flow record.
pub struct FlowOut<'a> {
    pub flow: &'a mut Flow,
    /// Input of `hash` (`hash_fields`).
    pub input: &'a mut HashInput,
    /// Input of `alt_hash` (`alt_hash_fields`); left alone when there are none.
    pub alt: &'a mut HashInput,
}

/// Map a wire parse error of the outer IP header to its drop reason.
fn ip_drop(e: wire::Error) -> Verdict {
    Verdict::Drop(match e {
        wire::Error::BadVersion => DropReason::BadIpVersion,
        wire::Error::BadHeaderLen => DropReason::BadIhl,
        wire::Error::BadTotalLen | wire::Error::BadLength => DropReason::BadIpLength,
        wire::Error::TooManyExtHeaders => DropReason::TooManyExtHeaders,
        wire::Error::BadExtHeader | wire::Error::HopByHopNotFirst => DropReason::BadExtHeader,
        // Truncated, and anything else a header parser may grow: the frame is too short.
        _ => DropReason::TruncatedIp,
    })
}

/// Source and destination port of a TCP/UDP header that must be complete (`min` bytes).
#[inline]
fn ports(l4: &[u8], min: usize) -> Option<(u16, u16)> {
    if l4.len() < min {
        return None;
    }
    wire::l4_ports(l4).ok()
}

/// Classify one frame against `snap`: its flow, hashed, or what to do with it instead.
#[inline]
pub fn classify(snap: &Snapshot, frame: &[u8]) -> Result<Flow, Verdict> {
    hashed(snap, |out| classify_into(snap, frame, out))
}

/// Run a classifier into fresh records and hash its flow one packet at a time.
#[inline(always)]
fn hashed(
    snap: &Snapshot,
    classify: impl FnOnce(FlowOut<'_>) -> Result<(), Verdict>,
) -> Result<Flow, Verdict> {
    let mut flow = Flow::default();
    let (mut input, mut alt) = (HashInput::default(), HashInput::default());
    classify(FlowOut {
        flow: &mut flow,
        input: &mut input,
        alt: &mut alt,
    })?;
    flow.hash = hash_one(&input);
    if snap.alt_hash.is_some() {
        flow.alt_hash = hash_one(&alt);
    }
    Ok(flow)
}

/// Classify one frame against `snap`, writing its flow and hash inputs to `out` (the
/// burst pipeline's form of [`classify`]; the hashes are left to the caller). On `Err`
/// `out` holds nothing meaningful.
#[inline(always)]
pub fn classify_into(snap: &Snapshot, frame: &[u8], out: FlowOut<'_>) -> Result<(), Verdict> {
    match common_v4(frame) {
        Some(c) => {
            // The L4 segment of an option-less IPv4 packet (bounds checked by common_v4).
            let l4 = frame
                .get(c.meta.l3_off + 20..c.meta.l3_off + c.meta.total)
                .unwrap_or_default();
            c.meta.ported(snap, out, c.proto, c.sport, c.dport, l4)
        }
        None => classify_general(snap, frame, out),
    }
}

/// [`classify`] through the general parser alone, without the common-case shortcut: the
/// reference that the shortcut is tested and fuzzed against.
pub fn classify_without_shortcut(snap: &Snapshot, frame: &[u8]) -> Result<Flow, Verdict> {
    hashed(snap, |out| classify_general(snap, frame, out))
}

/// Any frame: VLAN tags, IPv4 options, IPv6 extension headers, ICMP, every malformed case.
#[inline]
fn classify_general(snap: &Snapshot, frame: &[u8], out: FlowOut<'_>) -> Result<(), Verdict> {
    let l2 = match ethernet::parse_l2(frame) {
        Ok(l2) => l2,
        Err(wire::Error::StackedVlan) => return Err(Verdict::Drop(DropReason::StackedVlan)),
        Err(wire::Error::NotEthernetII) => return Err(Verdict::Exception(ExceptionReason::NotIp)),
        Err(_) => return Err(Verdict::Drop(DropReason::TruncatedL2)),
    };
    let l3 = &frame[l2.header_len..];
    match l2.ethertype {
        ethernet::ethertype::IPV4 => classify_v4(snap, l3, l2.header_len, out),
        ethernet::ethertype::IPV6 => classify_v6(snap, l3, l2.header_len, out),
        _ => Err(Verdict::Exception(ExceptionReason::NotIp)),
    }
}

/// A frame of the common case: untagged Ethernet, IPv4 without options, not a fragment,
/// TCP or UDP with its whole header inside the IP packet, which fits in the frame.
struct CommonV4 {
    meta: IpMeta<[u8; 4]>,
    proto: u8,
    sport: u16,
    dport: u16,
}

/// Recognise the common case with one length check and fixed offsets. `None` for any
/// other frame, which the general parser then takes; for a frame it recognises, the
/// general parser would reach [`IpMeta::ported`] with the same values (tested against it
/// on every frame of the pipeline tests and fuzzed).
#[inline(always)]
fn common_v4(frame: &[u8]) -> Option<CommonV4> {
    const ETH: usize = ethernet::HEADER_LEN;
    let h = frame.first_chunk::<{ ETH + 24 }>()?;
    let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    let total = usize::from(be16(ETH + 2));
    let proto = h[ETH + 9];
    let l4_min = match proto {
        TCP => 20,
        UDP => 8,
        _ => return None,
    };
    let ok = be16(12) == ethernet::ethertype::IPV4
        && h[ETH] == 0x45
        && be16(ETH + 6) & 0x3fff == 0 // MF clear, offset 0
        && total >= 20 + l4_min
        && ETH + total <= frame.len();
    if !ok {
        return None;
    }
    let addr = |at: usize| [h[at], h[at + 1], h[at + 2], h[at + 3]];
    Some(CommonV4 {
        meta: IpMeta {
            src: addr(ETH + 12),
            dst: addr(ETH + 16),
            l3_off: ETH,
            total,
        },
        proto,
        sport: be16(ETH + 20),
        dport: be16(ETH + 22),
    })
}

/// A packet of the express lane: the common case of [`common_v4`] to a bind of a table
/// that takes two IPv4 hops per packet and no alternate hash (an [`ExpressTable`]).
pub(crate) struct Express<'s> {
    pub table: &'s ExpressTable,
    /// Length of the IP packet (it starts right after the Ethernet header).
    pub ip_len: u16,
    /// The flow hint: the TCP/UDP source port.
    pub hint: u16,
    /// The IP packet's ones-complement sum ([`checksum::sum_le`]), for the UDP checksum.
    pub sum: u64,
    /// The message of its hash (field set `F`), bytes as a little-endian value; as long
    /// as [`express_len`] says.
    pub msg: u128,
}

/// Length in bytes of the express lane's hash messages with the field set `F`: every
/// packet of the lane is IPv4, so all have this length.
#[inline(always)]
pub(crate) fn express_len<const F: u8>() -> usize {
    usize::from(packed_v4::<F>([0; 4], [0; 4], 0, 0).1)
}

/// The express table that the lane found last in a burst, and for which destination:
/// the packets of a burst mostly go to one VIP and port, whose bind lookup is then one
/// comparison. Lives for one burst (one snapshot).
#[derive(Clone, Copy)]
pub(crate) struct LastBind<'s> {
    /// Destination address, protocol and port, packed (never `u64::MAX`).
    key: u64,
    table: Option<&'s ExpressTable>,
    /// How many times the lookup ran (and set `table`) in this burst.
    lookups: u32,
}

impl<'s> LastBind<'s> {
    /// Nothing found yet.
    pub const NONE: LastBind<'static> = LastBind {
        key: u64::MAX,
        table: None,
        lookups: 0,
    };

    /// The one table of every packet this has taken, if they all have one (one lookup
    /// found them all).
    #[inline(always)]
    pub fn single(&self) -> Option<&'s ExpressTable> {
        if self.lookups == 1 {
            self.table
        } else {
            None
        }
    }
}

/// Classify `frame` for the express lane, with the hash field set `F` (the snapshot's
/// `hash_fields` bits): `None` for any frame the lane does not take (the general path then
/// classifies it). `last` remembers the last express table found for this burst. For a
/// frame it takes, [`classify_into`] gives the same flow, and the same hash input as the
/// table's key with `msg` (tested and fuzzed).
#[inline(always)]
pub(crate) fn classify_express<'s, const F: u8>(
    snap: &'s Snapshot,
    frame: &[u8],
    last: &mut LastBind<'s>,
) -> Option<Express<'s>> {
    const ETH: usize = ethernet::HEADER_LEN;
    let c = common_v4(frame)?;
    // 56 bits: never u64::MAX.
    let key = u64::from(u32::from_ne_bytes(c.meta.dst)) << 24
        | u64::from(c.proto) << 16
        | u64::from(c.dport);
    let table = match last.table {
        Some(t) if last.key == key => t,
        _ => {
            let index = <[u8; 4]>::lookup(snap, c.meta.dst, c.proto, c.dport)?;
            let table = snap.tables.get(usize::from(index))?.express()?;
            *last = LastBind {
                key,
                table: Some(table),
                lookups: last.lookups + 1,
            };
            table
        }
    };
    let (msg, _) = packed_v4::<F>(c.meta.src, c.meta.dst, c.sport, c.dport);
    Some(Express {
        table,
        ip_len: c.meta.total as u16,
        hint: c.sport,
        sum: {
            // The IP and TCP or UDP headers are there (`common_v4` checked the length):
            // summed without a loop.
            let ip = frame.get(ETH..ETH + c.meta.total)?;
            if c.proto == TCP {
                checksum::sum_le_min::<40>(ip)
            } else {
                checksum::sum_le_min::<24>(ip)
            }
        },
        msg,
    })
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn finish<const N: usize>(
    snap: &Snapshot,
    out: FlowOut<'_>,
    table: u16,
    key: &FlowKey<N>,
    hint: u16,
    l3_off: usize,
    ip_len: usize,
    inner_v6: bool,
) -> Result<(), Verdict> {
    let t = &snap.tables[usize::from(table)];
    *out.flow = Flow {
        table,
        l3_off: l3_off as u16,
        ip_len: ip_len as u16,
        inner_v6,
        hash: 0,
        alt_hash: 0,
        hint,
        pin: 0,
        quic: 0,
    };
    hash_input(out.input, t.sip_key, snap.hash, key);
    if let Some(f) = snap.alt_hash {
        hash_input(out.alt, t.sip_key, f, key);
    }
    Ok(())
}

/// A malformed packet to a VIP is dropped with `reason`; to anyone else it is the kernel's.
#[inline]
fn vip_drop(is_vip: bool, reason: DropReason) -> Verdict {
    if is_vip {
        Verdict::Drop(reason)
    } else {
        Verdict::Exception(ExceptionReason::NoBind)
    }
}

#[inline]
fn icmp_exception(is_vip: bool) -> Verdict {
    Verdict::Exception(if is_vip {
        ExceptionReason::Icmp
    } else {
        ExceptionReason::NoBind
    })
}

/// What the classifier needs from an address family: its bind lookups.
trait Addr: Copy {
    const V6: bool;
    fn lookup(snap: &Snapshot, dst: Self, proto: u8, port: u16) -> Option<u16>;
    /// First bind holding `dst` (and `also`), for ICMP: any port, or `proto_port`.
    fn lookup_addr(
        snap: &Snapshot,
        dst: Self,
        proto_port: Option<(u8, u16)>,
        also: Self,
    ) -> Option<u16>;
    fn is_vip(snap: &Snapshot, dst: Self) -> bool;
}

impl Addr for [u8; 4] {
    const V6: bool = false;
    #[inline(always)]
    fn lookup(snap: &Snapshot, dst: Self, proto: u8, port: u16) -> Option<u16> {
        snap.binds.lookup_v4(u32::from_be_bytes(dst), proto, port)
    }
    #[inline]
    fn lookup_addr(snap: &Snapshot, dst: Self, pp: Option<(u8, u16)>, also: Self) -> Option<u16> {
        snap.binds
            .lookup_v4_addr(u32::from_be_bytes(dst), pp, u32::from_be_bytes(also))
    }
    #[inline]
    fn is_vip(snap: &Snapshot, dst: Self) -> bool {
        snap.binds.is_vip_v4(u32::from_be_bytes(dst))
    }
}

impl Addr for [u8; 16] {
    const V6: bool = true;
    #[inline]
    fn lookup(snap: &Snapshot, dst: Self, proto: u8, port: u16) -> Option<u16> {
        snap.binds.lookup_v6(u128::from_be_bytes(dst), proto, port)
    }
    #[inline]
    fn lookup_addr(snap: &Snapshot, dst: Self, pp: Option<(u8, u16)>, also: Self) -> Option<u16> {
        snap.binds
            .lookup_v6_addr(u128::from_be_bytes(dst), pp, u128::from_be_bytes(also))
    }
    #[inline]
    fn is_vip(snap: &Snapshot, dst: Self) -> bool {
        snap.binds.is_vip_v6(u128::from_be_bytes(dst))
    }
}

/// What an ICMP error quotes: protocol, source, destination and the two ports.
type Quote<A> = Option<(u8, A, A, (u16, u16))>;

/// An IP packet after its header was parsed: addresses and where it sits in the frame.
struct IpMeta<A> {
    src: A,
    dst: A,
    l3_off: usize,
    total: usize,
}

impl<const N: usize> IpMeta<[u8; N]>
where
    [u8; N]: Addr,
{
    #[inline]
    fn is_vip(&self, snap: &Snapshot) -> bool {
        <[u8; N]>::is_vip(snap, self.dst)
    }

    #[inline(always)]
    fn flow(
        &self,
        snap: &Snapshot,
        out: FlowOut<'_>,
        table: u16,
        key: &FlowKey<N>,
        hint: u16,
    ) -> Result<(), Verdict> {
        finish(
            snap,
            out,
            table,
            key,
            hint,
            self.l3_off,
            self.total,
            <[u8; N]>::V6,
        )
    }

    /// TCP or UDP: the bind is found by destination, protocol and port.
    #[inline]
    fn transport(
        &self,
        snap: &Snapshot,
        out: FlowOut<'_>,
        proto: u8,
        l4: &[u8],
    ) -> Result<(), Verdict> {
        let min = if proto == TCP { 20 } else { 8 };
        let (sport, dport) =
            ports(l4, min).ok_or_else(|| vip_drop(self.is_vip(snap), DropReason::TruncatedL4))?;
        self.ported(snap, out, proto, sport, dport, l4)
    }

    /// TCP or UDP with its ports read; `l4` is the whole segment (a UDP packet to a
    /// QUIC-LB table is routed by the connection ID in it).
    #[inline(always)]
    fn ported(
        &self,
        snap: &Snapshot,
        out: FlowOut<'_>,
        proto: u8,
        sport: u16,
        dport: u16,
        l4: &[u8],
    ) -> Result<(), Verdict> {
        let table = <[u8; N]>::lookup(snap, self.dst, proto, dport)
            .ok_or(Verdict::Exception(ExceptionReason::NoBind))?;
        let key = FlowKey {
            src: self.src,
            dst: self.dst,
            sport,
            dport,
        };
        let quic = match snap.tables[usize::from(table)].quic() {
            Some(q) if proto == UDP => Some(q.route(l4)),
            _ => None,
        };
        let FlowOut { flow, input, alt } = out;
        let out = FlowOut {
            flow: &mut *flow,
            input,
            alt,
        };
        self.flow(snap, out, table, &key, sport)?;
        if let Some((pin, outcome)) = quic {
            // QuicRoute pins only backends whose index + 1 fits (checked when compiled).
            flow.pin = pin.map_or(0, |b| (b + 1) as u16);
            flow.quic = outcome.code();
        }
        Ok(())
    }

    /// Frag-needed / packet-too-big: the quote is a packet a backend sent from the VIP,
    /// reversed so that it hashes like the flow it belongs to.
    fn quoted(
        &self,
        snap: &Snapshot,
        out: FlowOut<'_>,
        quote: Quote<[u8; N]>,
    ) -> Result<(), Verdict> {
        let Some((qproto, qsrc, qdst, (qsport, qdport))) = quote else {
            return Err(vip_drop(self.is_vip(snap), DropReason::IcmpQuoteTruncated));
        };
        if qproto != TCP && qproto != UDP {
            // Extension headers (or another protocol) in the quote: the flow cannot be found.
            return Err(icmp_exception(self.is_vip(snap)));
        }
        let table = <[u8; N]>::lookup_addr(snap, qsrc, Some((qproto, qsport)), self.dst)
            .ok_or_else(|| icmp_exception(self.is_vip(snap)))?;
        let key = FlowKey {
            src: qdst,
            dst: qsrc,
            sport: qdport,
            dport: qsport,
        };
        self.flow(snap, out, table, &key, qdport)
    }

    /// Echo request to a VIP: hashed with ports 0.
    fn echo(&self, snap: &Snapshot, out: FlowOut<'_>, hint: u16) -> Result<(), Verdict> {
        let table = <[u8; N]>::lookup_addr(snap, self.dst, None, self.dst)
            .ok_or(Verdict::Exception(ExceptionReason::NoBind))?;
        let key = FlowKey {
            src: self.src,
            dst: self.dst,
            sport: 0,
            dport: 0,
        };
        self.flow(snap, out, table, &key, hint)
    }
}

#[inline]
fn classify_v4(snap: &Snapshot, l3: &[u8], l3_off: usize, out: FlowOut<'_>) -> Result<(), Verdict> {
    let ip = Ipv4Packet::new_checked(l3).map_err(ip_drop)?;
    let meta = IpMeta {
        src: ip.src_addr().octets(),
        dst: ip.dst_addr().octets(),
        l3_off,
        total: usize::from(ip.total_len()),
    };
    if ip.is_fragment() {
        return Err(vip_drop(meta.is_vip(snap), DropReason::Fragment));
    }
    let l4 = ip.payload();
    match ip.next_header() {
        proto @ (TCP | UDP) => meta.transport(snap, out, proto, l4),
        ICMP => {
            let icmp = Icmpv4Packet::new_checked(l4)
                .map_err(|_| vip_drop(meta.is_vip(snap), DropReason::TruncatedIcmp))?;
            let (ty, code) = (icmp.msg_type(), icmp.code());
            if ty == icmpv4::DEST_UNREACHABLE && code == icmpv4::FRAG_NEEDED {
                let quote = icmp.quoted_ipv4().ok().and_then(|q| {
                    Some((
                        q.next_header(),
                        q.src_addr().octets(),
                        q.dst_addr().octets(),
                        wire::l4_ports(q.payload()).ok()?,
                    ))
                });
                meta.quoted(snap, out, quote)
            } else if ty == icmpv4::ECHO_REQUEST
                && code == 0
                && snap.settings.forward_icmp_ping_responses
            {
                meta.echo(snap, out, ip.ident())
            } else {
                Err(icmp_exception(meta.is_vip(snap)))
            }
        }
        _ => Err(Verdict::Exception(ExceptionReason::NoBind)),
    }
}

#[inline]
fn classify_v6(snap: &Snapshot, l3: &[u8], l3_off: usize, out: FlowOut<'_>) -> Result<(), Verdict> {
    let ip = Ipv6Packet::new_checked(l3).map_err(ip_drop)?;
    let meta = IpMeta {
        src: ip.src_addr().octets(),
        dst: ip.dst_addr().octets(),
        l3_off,
        total: 40 + usize::from(ip.payload_len()),
    };
    let upper = wire::ipv6_upper_layer(&ip).map_err(|e| match ip_drop(e) {
        Verdict::Drop(r) => vip_drop(meta.is_vip(snap), r),
        v => v,
    })?;
    if upper.fragment.is_some() {
        return Err(vip_drop(meta.is_vip(snap), DropReason::Fragment));
    }
    let l4 = l3.get(upper.offset..meta.total).unwrap_or(&[]);
    match upper.next_header {
        proto @ (TCP | UDP) => meta.transport(snap, out, proto, l4),
        ICMPV6 => {
            let icmp = Icmpv6Packet::new_checked(l4)
                .map_err(|_| vip_drop(meta.is_vip(snap), DropReason::TruncatedIcmp))?;
            let (ty, code) = (icmp.msg_type(), icmp.code());
            if ty == icmpv6::PACKET_TOO_BIG && code == 0 {
                let quote = icmp.quoted_ipv6().ok().and_then(|q| {
                    Some((
                        q.next_header(),
                        q.src_addr().octets(),
                        q.dst_addr().octets(),
                        wire::l4_ports(q.payload()).ok()?,
                    ))
                });
                meta.quoted(snap, out, quote)
            } else if ty == icmpv6::ECHO_REQUEST
                && code == 0
                && snap.settings.forward_icmp_ping_responses
            {
                // GLB quirk: the low 16 bits of the flow label, byte-swapped.
                meta.echo(snap, out, (ip.flow_label() as u16).swap_bytes())
            } else {
                Err(icmp_exception(meta.is_vip(snap)))
            }
        }
        _ => Err(Verdict::Exception(ExceptionReason::NoBind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_v4_input_equals_the_writer_for_every_field_set() {
        let k = FlowKey {
            src: [10, 1, 2, 3],
            dst: [1, 1, 1, 1],
            sport: 0xabcd,
            dport: 0x0050,
        };
        for bits in 0u8..16 {
            let fields = FieldSet(bits);
            let (mut a, mut b) = (HashInput::default(), HashInput::default());
            packed_v4_input(&mut a, (7, 9), fields, &k);
            written_input(&mut b, (7, 9), fields, &k);
            assert_eq!(a, b, "field set {bits:04b}");
            assert_eq!(hash_one(&a), hash_one(&b));
        }
    }
}
