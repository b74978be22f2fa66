//! GUE encapsulation (spec section 6), written in place in front of the inner IP packet.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::checksum;
use crate::wire::ethernet::{self, ethertype};
use crate::wire::{
    emit_glb_v4, emit_glb_v6, ip_proto, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpPacket,
    UdpRepr,
};

use super::buf::PacketBuf;
use super::classify::Flow;
use super::counters::DropReason;
use super::snapshot::{CompiledTable, Family, Snapshot, MAX_HOPS};
use crate::sys::prefetch;
use crate::table::TABLE_ROWS;

/// GLB's GUE port ('LB' + 1).
pub const GUE_PORT: u16 = crate::wire::gue::PORT;
const ETH: usize = 14;
const UDP_GUE: usize = 8 + 4 + 4;

/// Outer headers of one table, built once with the wire emitters when the snapshot is
/// compiled: Ethernet, IPv4 or IPv6, UDP and the fixed 8 bytes of GUE with the per-packet
/// fields zeroed, plus their checksum partial sums. Per packet only the addresses, lengths,
/// source port, GUE protocol and hop list are patched in, and the checksums are finished
/// incrementally (RFC 1071 sums are order-independent over 16-bit words).
#[derive(Debug, Clone)]
pub struct OuterTemplate {
    bytes: [u8; ETH + 40 + UDP_GUE],
    family: Family,
    /// IPv4: sum of the header with total length, destination and checksum zero.
    ip_sum: u32,
    /// Pseudo-header source + protocol, UDP destination port, fixed GUE words.
    udp_sum: u32,
    /// `udp_sum` folded and byte-swapped: the same sum in the little-endian domain of
    /// [`checksum::sum_le`].
    udp_sum_le: u64,
}

const V4_LEN: usize = ETH + 20 + UDP_GUE;
const V6_LEN: usize = ETH + 40 + UDP_GUE;
const IP4_TOTAL: usize = ETH + 2;
const IP4_CSUM: usize = ETH + 10;
const IP4_DST: usize = ETH + 16;
const IP6_PAYLOAD: usize = ETH + 4;
const IP6_DST: usize = ETH + 24;

impl OuterTemplate {
    /// Bytes of the template in use: 50 (IPv4 outer) or 70 (IPv6 outer).
    #[inline]
    fn len(&self) -> usize {
        match self.family {
            Family::V4 => V4_LEN,
            Family::V6 => V6_LEN,
        }
    }

    /// Build the template for a table with `family` hops, `hops` of them per packet.
    pub fn new(
        settings: &crate::config::DirectorSettings,
        src_mac: crate::wire::MacAddr,
        family: Family,
        hops: usize,
    ) -> OuterTemplate {
        let mut bytes = [0u8; ETH + 40 + UDP_GUE];
        let zero4 = [Ipv4Addr::UNSPECIFIED; MAX_HOPS];
        let zero6 = [Ipv6Addr::UNSPECIFIED; MAX_HOPS];
        let list = hops.saturating_sub(1);
        let (len, ip_sum, pseudo) = match family {
            Family::V4 => {
                let src = settings.src_ipv4;
                let _ = ethernet::emit_header(
                    &mut bytes,
                    settings.gateway_mac,
                    src_mac,
                    ethertype::IPV4,
                );
                let _ = Ipv4Repr {
                    src_addr: src,
                    dst_addr: Ipv4Addr::UNSPECIFIED,
                    next_header: ip_proto::UDP,
                    payload_len: 0,
                    hop_limit: 64,
                    dont_frag: true,
                    ident: 0,
                    dscp_ecn: 0,
                }
                .emit(&mut Ipv4Packet::new_unchecked(&mut bytes[ETH..]));
                bytes[IP4_TOTAL..IP4_TOTAL + 2].fill(0);
                bytes[IP4_CSUM..IP4_CSUM + 2].fill(0);
                let udp_off = ETH + 20;
                let mut gue = [0u8; 8 + 4 * MAX_HOPS];
                let _ = emit_glb_v4(&mut gue, 0, &zero4[..list.min(MAX_HOPS - 1)], 0);
                bytes[udp_off + 8..udp_off + 16].copy_from_slice(&gue[..8]);
                let ip_sum = checksum::sum(&bytes[ETH..udp_off]);
                (
                    udp_off + UDP_GUE,
                    ip_sum,
                    checksum::pseudo_header_v4(src, Ipv4Addr::UNSPECIFIED, ip_proto::UDP, 0),
                )
            }
            Family::V6 => {
                let src = settings.src_ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED);
                let _ = ethernet::emit_header(
                    &mut bytes,
                    settings.gateway_mac,
                    src_mac,
                    ethertype::IPV6,
                );
                let _ = Ipv6Repr {
                    src_addr: src,
                    dst_addr: Ipv6Addr::UNSPECIFIED,
                    next_header: ip_proto::UDP,
                    payload_len: 0,
                    hop_limit: 64,
                    traffic_class: 0,
                    flow_label: 0,
                }
                .emit(&mut Ipv6Packet::new_unchecked(&mut bytes[ETH..]));
                let udp_off = ETH + 40;
                let mut gue = [0u8; 8 + 16 * 8];
                let _ = emit_glb_v6(&mut gue, 0, &zero6[..list.min(7)], 0);
                bytes[udp_off + 8..udp_off + 16].copy_from_slice(&gue[..8]);
                (
                    udp_off + UDP_GUE,
                    0,
                    checksum::pseudo_header_v6(&src, &Ipv6Addr::UNSPECIFIED, ip_proto::UDP, 0),
                )
            }
        };
        let udp_off = len - UDP_GUE;
        let _ = UdpRepr {
            src_port: 0,
            dst_port: GUE_PORT,
            payload_len: 0,
        }
        .emit(&mut UdpPacket::new_unchecked(&mut bytes[udp_off..]));
        bytes[udp_off + 4..udp_off + 6].fill(0); // length: per packet
        let udp_sum = checksum::add(pseudo, checksum::sum(&bytes[udp_off..len]));
        OuterTemplate {
            bytes,
            family,
            ip_sum,
            udp_sum,
            udp_sum_le: u64::from(checksum::fold(udp_sum).swap_bytes()),
        }
    }
}

/// An IPv4 backend as the encapsulation uses it: its address, and the ones-complement sum
/// of the table's outer IPv4 header with that address as destination, so that a packet's
/// header checksum only adds its length.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct BackendV4 {
    /// Network order.
    pub(crate) addr: [u8; 4],
    /// The header's sum in the little-endian domain of [`checksum::sum_le`], folded (at
    /// most 0xffff), without the total length.
    ip_le: u16,
}

impl OuterTemplate {
    /// The backend at `addr` for packets of this template (IPv4 outer headers).
    pub(crate) fn backend_v4(&self, addr: [u8; 4]) -> BackendV4 {
        BackendV4 {
            addr,
            // `ip_sum` byte-swapped into that domain, plus the address.
            ip_le: checksum::fold(
                u64::from(checksum::fold(self.ip_sum).swap_bytes())
                    + u64::from(u32::from_le_bytes(addr)),
            ),
        }
    }
}

#[inline(always)]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Encapsulate `buf` (holding the classified frame) for `flow` in place. On success the
/// buffer holds the outer frame, ready to transmit, and the result is the first hop: the
/// backend's index in the flow's table. Inlined into the burst loop: the common case (a
/// table with resolved rows) is a few dozen instructions, and a call per packet would cost
/// a good part of that again.
#[inline(always)]
pub fn encapsulate<B: PacketBuf>(
    snap: &Snapshot,
    flow: &Flow,
    buf: &mut B,
) -> Result<u32, DropReason> {
    let table = &snap.tables[usize::from(flow.table)];
    match PairTable::of(table) {
        Some(x) => x.encapsulate_inner(Inner::of(flow), flow.hash, buf),
        None => {
            let row = table.table.row(flow.hash as u16);
            encap_any(table, flow, row, alt_row(snap, table, flow), buf)
        }
    }
}

/// Start loading what [`encapsulate`] reads of the flow's table: its resolved row, or the
/// first line of its row.
#[inline(always)]
pub(crate) fn prefetch_hops(snap: &Snapshot, flow: &Flow) {
    let table = &snap.tables[usize::from(flow.table)];
    match PairTable::of(table) {
        Some(x) => prefetch(x.row(flow.hash)),
        None => {
            if let Some(first) = table.table.row(flow.hash as u16).first() {
                prefetch(first);
            }
        }
    }
}

/// A row of an express table with both hops resolved: all that the encapsulation reads of
/// the table per packet, besides the outer template, in 16 bytes (one load of a line the
/// pipeline prefetched, and no backend lookup). Built once per table when the snapshot is
/// compiled ([`OuterTemplate::pair_rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(16))]
pub(crate) struct PairRow {
    /// The primary's address (network order): the outer destination.
    dst: [u8; 4],
    /// The secondary's address: the GUE hop.
    hop: [u8; 4],
    /// The primary's index in the table.
    primary: u32,
    /// The outer IPv4 header's sum with `dst` ([`BackendV4`]), without the total length.
    ip_le: u16,
    /// The UDP checksum's sum over the template and both addresses, folded, in the
    /// little-endian domain of [`checksum::sum_le`]: what is left per packet is its
    /// source port, lengths, GUE protocol and the inner packet.
    udp_le: u16,
}

impl PairRow {
    fn new(t: &OuterTemplate, primary: BackendV4, secondary: BackendV4, index: u32) -> PairRow {
        let le = |a: [u8; 4]| u64::from(u32::from_le_bytes(a));
        PairRow {
            dst: primary.addr,
            hop: secondary.addr,
            primary: index,
            ip_le: primary.ip_le,
            udp_le: checksum::fold(t.udp_sum_le + le(primary.addr) + le(secondary.addr)),
        }
    }
}

impl OuterTemplate {
    /// The resolved rows of a two-hop table of this (IPv4) template, whose backends are
    /// `addrs`: `None` if a row names a backend `addrs` does not have.
    pub(crate) fn pair_rows(
        &self,
        pairs: &[[u32; 2]; TABLE_ROWS],
        addrs: &[BackendV4],
    ) -> Option<Box<[PairRow; TABLE_ROWS]>> {
        let rows: Box<[PairRow]> = pairs
            .iter()
            .map(|&[first, second]| {
                let (p, s) = (addrs.get(first as usize)?, addrs.get(second as usize)?);
                Some(PairRow::new(self, *p, *s, first))
            })
            .collect::<Option<_>>()?;
        rows.try_into().ok()
    }
}

/// An express table ([`CompiledTable::express`]) as the pipeline's express lane
/// encapsulates for it: its resolved rows, looked up by a `u16` with no bounds check, its
/// outer headers and counter base. Found once per burst (or per packet when a burst's
/// lane spans tables), not per field.
#[derive(Clone, Copy)]
pub(crate) struct PairTable<'t> {
    rows: &'t [PairRow; TABLE_ROWS],
    outer: &'t OuterTemplate,
    sent_base: usize,
}

impl<'t> PairTable<'t> {
    /// `t` as a table of resolved IPv4 pairs; `None` unless it is express.
    #[inline(always)]
    pub(crate) fn of(t: &'t CompiledTable) -> Option<Self> {
        Some(PairTable {
            rows: t.pair_rows.as_deref()?,
            outer: &t.outer,
            sent_base: t.sent_base,
        })
    }

    /// The row of a flow hash.
    #[inline(always)]
    pub(crate) fn row(&self, hash: u64) -> &'t PairRow {
        &self.rows[usize::from(hash as u16)]
    }

    /// Encapsulate a packet of the express lane (see
    /// [`super::classify::classify_express`]): an IPv4 packet of `ip_len` bytes right
    /// after an untagged Ethernet header, `hash` its flow hash, `sum` the
    /// [`checksum::sum_le`] of the IP packet. The same bytes as [`encapsulate`] with the
    /// flow the general classifier gives such a packet. The result is the
    /// [`super::snapshot::SentCounters`] slot of the first hop.
    #[inline(always)]
    pub(crate) fn encapsulate<B: PacketBuf>(
        &self,
        ip_len: u16,
        hint: u16,
        sum: u64,
        hash: u64,
        buf: &mut B,
    ) -> Result<usize, DropReason> {
        let inner = Inner {
            l3_off: ETH as u16,
            ip_len,
            sport: sport(hash, hint),
            proto: ip_proto::IPV4,
            sum: Some(sum),
        };
        let primary = self.encapsulate_inner(inner, hash, buf)?;
        Ok(self.sent_base + primary as usize)
    }

    /// Encapsulate `inner` through the row of `hash`: the first hop's index in the table.
    #[inline(always)]
    fn encapsulate_inner<B: PacketBuf>(
        &self,
        inner: Inner,
        hash: u64,
        buf: &mut B,
    ) -> Result<u32, DropReason> {
        let row = self.row(hash);
        encap_v4_row(self.outer, row, inner, buf)?;
        Ok(row.primary)
    }
}

/// Encapsulate a packet of the express lane for a table that is not a [`PairTable`] (never
/// one the lane takes: see [`CompiledTable::express`]), with the general code and the flow
/// the general classifier gives the packet.
#[inline(never)]
pub(crate) fn encapsulate_express_any<B: PacketBuf>(
    table: &CompiledTable,
    ip_len: u16,
    hint: u16,
    hash: u64,
    buf: &mut B,
) -> Result<u32, DropReason> {
    let flow = Flow {
        table: 0, // not read: the table is given
        l3_off: ETH as u16,
        ip_len,
        inner_v6: false,
        hash,
        alt_hash: 0,
        hint,
    };
    encap_any(table, &flow, table.table.row(hash as u16), &[], buf)
}

/// [`encapsulate`] through the general code alone (any family, any number of hops),
/// without the common-case shortcut: the reference that the shortcut is tested and fuzzed
/// against.
pub fn encapsulate_without_shortcut<B: PacketBuf>(
    snap: &Snapshot,
    flow: &Flow,
    buf: &mut B,
) -> Result<u32, DropReason> {
    let table = &snap.tables[usize::from(flow.table)];
    let row = table.table.row(flow.hash as u16);
    encap_any(table, flow, row, alt_row(snap, table, flow), buf)
}

/// The hops of `alt_hash` when the snapshot has alternate hash fields, else none.
#[inline(always)]
fn alt_row<'a>(snap: &Snapshot, table: &'a CompiledTable, flow: &Flow) -> &'a [u32] {
    if snap.alt_hash.is_some() {
        table.table.row(flow.alt_hash as u16)
    } else {
        &[]
    }
}

/// Outer bytes in front of the inner packet for an IPv4 outer header and two hops.
pub(crate) const PAIR_LEN: usize = V4_LEN + 4;

/// The common case of [`encap_any`]: IPv4 backends, a primary and a secondary (resolved
/// in `row`), no alternate hash. The same bytes (tested against it), written into a
/// fixed-size header with no per-field bounds checks.
#[inline(always)]
fn encap_v4_row<B: PacketBuf>(
    t: &OuterTemplate,
    row: &PairRow,
    inner: Inner,
    buf: &mut B,
) -> Result<(), DropReason> {
    let ip_len = usize::from(inner.ip_len);
    let udp_len = UDP_GUE + 4 + ip_len;
    if 20 + udp_len > usize::from(u16::MAX) {
        return Err(DropReason::TooBig);
    }
    let data = buf
        .reframe(usize::from(inner.l3_off), ip_len, PAIR_LEN)
        .ok_or(DropReason::NoHeadroom)?;
    let Some((hdr, packet)) = data.split_first_chunk_mut::<PAIR_LEN>() else {
        return Err(DropReason::NoHeadroom); // unreachable: reframe made PAIR_LEN + ip_len
    };
    let (sport, gue_proto) = (inner.sport, inner.proto);
    let (total, udp_len) = ((20 + udp_len) as u16, udp_len as u16);
    let udp_off = V4_LEN - UDP_GUE;
    hdr[..V4_LEN].copy_from_slice(&t.bytes[..V4_LEN]);
    hdr[V4_LEN..].copy_from_slice(&row.hop);
    hdr[IP4_TOTAL..IP4_TOTAL + 2].copy_from_slice(&total.to_be_bytes());
    hdr[IP4_DST..IP4_DST + 4].copy_from_slice(&row.dst);
    hdr[udp_off..udp_off + 2].copy_from_slice(&sport.to_be_bytes());
    hdr[udp_off + 4..udp_off + 6].copy_from_slice(&udp_len.to_be_bytes());
    hdr[udp_off + 9] = gue_proto;
    // Both checksums in the little-endian domain of `checksum::sum_le` (each big-endian
    // 16-bit term byte-swapped), stored as little-endian bytes: no fold and swap of the
    // inner packet's sum on its own.
    let ip_le = checksum::add16(row.ip_le, total.swap_bytes());
    hdr[IP4_CSUM..IP4_CSUM + 2].copy_from_slice(&(!ip_le).to_le_bytes());
    let udp_le = u64::from(row.udp_le)
        + u64::from(sport.swap_bytes())
        + 2 * u64::from(udp_len.swap_bytes())
        + (u64::from(gue_proto) << 8)
        + inner.sum.unwrap_or_else(|| checksum::sum_le(packet));
    let udp_csum = udp_checksum(udp_le).to_le_bytes();
    hdr[udp_off + 6..udp_off + 8].copy_from_slice(&udp_csum);
    Ok(())
}

/// What the encapsulation needs of the inner packet: where it is, its length, and the
/// per-flow fields of the outer headers.
#[derive(Clone, Copy)]
struct Inner {
    l3_off: u16,
    ip_len: u16,
    /// The outer UDP source port ([`sport`]).
    sport: u16,
    /// The GUE protocol field: the inner packet's IP version as a protocol number.
    proto: u8,
    /// The packet's [`checksum::sum_le`] if known already (else summed here).
    sum: Option<u64>,
}

impl Inner {
    #[inline(always)]
    fn of(flow: &Flow) -> Inner {
        Inner {
            l3_off: flow.l3_off,
            ip_len: flow.ip_len,
            sport: sport(flow.hash, flow.hint),
            proto: if flow.inner_v6 {
                ip_proto::IPV6
            } else {
                ip_proto::IPV4
            },
            sum: None,
        }
    }
}

/// GLB's UDP source port: the flow hash mixed with the flow hint.
#[inline(always)]
fn sport(hash: u64, hint: u16) -> u16 {
    0x8000 | ((hash as u16 ^ hint) & 0x7fff)
}

/// The UDP checksum field for a sum over the pseudo-header and the datagram (a computed
/// zero is sent as all ones).
#[inline(always)]
fn udp_checksum(sum: u64) -> u16 {
    match !checksum::fold(sum) {
        0 => 0xffff,
        c => c,
    }
}

/// Any table: IPv4 or IPv6 backends, any number of hops, `alt_row`'s hops after `row`'s.
/// Kept out of line so that the common case inlines small.
#[inline(never)]
fn encap_any<B: PacketBuf>(
    table: &CompiledTable,
    flow: &Flow,
    row: &[u32],
    alt_row: &[u32],
    buf: &mut B,
) -> Result<u32, DropReason> {
    let t = &table.outer;
    let (primary, rest) = match row.split_first() {
        Some((&first, rest)) => (first, rest.iter().chain(alt_row)),
        // Unreachable (`ForwardingTable` refuses zero hops); dropped rather than trusted.
        None => return Err(DropReason::NoHeadroom),
    };
    let first = primary as usize;
    let n = row.len() + alt_row.len();
    let addr_len = match t.family {
        Family::V4 => 4,
        Family::V6 => 16,
    };
    let list = addr_len * (n - 1);
    let outer = t.len() + list;
    let udp_off = t.len() - UDP_GUE;
    let ip_len = usize::from(flow.ip_len);
    let udp_len = UDP_GUE + list + ip_len;
    if udp_len + (udp_off - ETH) > usize::from(u16::MAX) {
        return Err(DropReason::TooBig);
    }
    let data = buf
        .reframe(usize::from(flow.l3_off), ip_len, outer)
        .ok_or(DropReason::NoHeadroom)?;
    if data.len() < outer {
        return Err(DropReason::NoHeadroom); // unreachable: reframe made outer + ip_len
    }
    let Inner {
        sport,
        proto: gue_proto,
        ..
    } = Inner::of(flow);
    // Fixed-size copies (a few vector moves), not a variable-length memcpy.
    match t.family {
        Family::V4 => data[..V4_LEN].copy_from_slice(&t.bytes[..V4_LEN]),
        Family::V6 => data[..V6_LEN].copy_from_slice(&t.bytes[..V6_LEN]),
    }
    let list_bytes = &mut data[t.len()..outer];
    let mut sum = t.udp_sum as u64 + u64::from(sport) + 2 * udp_len as u64 + u64::from(gue_proto);
    // The hop list enters the UDP checksum from the table's addresses, not from the bytes
    // just written (reading those back would stall on store forwarding).
    match t.family {
        Family::V4 => {
            let dst = table.addrs_v4[first].addr;
            for (chunk, &h) in list_bytes.chunks_exact_mut(4).zip(rest) {
                let a = table.addrs_v4[h as usize].addr;
                chunk.copy_from_slice(&a);
                sum += u64::from(u32::from_be_bytes(a));
            }
            let total = (20 + udp_len) as u16;
            let dst_sum = u64::from(u16::from_be_bytes([dst[0], dst[1]]))
                + u64::from(u16::from_be_bytes([dst[2], dst[3]]));
            put16(data, IP4_TOTAL, total);
            data[IP4_DST..IP4_DST + 4].copy_from_slice(&dst);
            let ip_csum = !checksum::fold(t.ip_sum as u64 + u64::from(total) + dst_sum);
            put16(data, IP4_CSUM, ip_csum);
            sum += dst_sum;
        }
        Family::V6 => {
            let dst = table.addrs_v6[first];
            for (chunk, &h) in list_bytes.chunks_exact_mut(16).zip(rest) {
                let a = &table.addrs_v6[h as usize];
                chunk.copy_from_slice(a);
                sum += u64::from(checksum::sum(a));
            }
            put16(data, IP6_PAYLOAD, udp_len as u16);
            data[IP6_DST..IP6_DST + 16].copy_from_slice(&dst);
            sum += u64::from(checksum::sum(&dst));
        }
    }
    data[udp_off..udp_off + 2].copy_from_slice(&sport.to_be_bytes());
    put16(data, udp_off + 4, udp_len as u16);
    data[udp_off + 9] = gue_proto;
    // The inner packet, as received.
    sum += u64::from(checksum::sum(&data[outer..]));
    put16(data, udp_off + 6, udp_checksum(sum));
    Ok(primary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::config_from_str;

    fn cfg() -> String {
        crate::config::testing::web_table(
            r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }, { ip = "10.255.3.4" }]"#,
        )
    }

    #[test]
    fn pair_rows_resolve_each_row_and_refuse_unknown_backends() {
        let s = Snapshot::compile(config_from_str(&cfg(), "t.toml").unwrap(), None, 1).unwrap();
        let t = &s.tables[0];
        assert!(t.express());
        let x = PairTable::of(t).unwrap();
        let pairs = t.table.pairs().unwrap();
        for h in [0u64, 1, 0x1234, 0xffff, 0x5_0000_fffe] {
            let [first, second] = pairs[usize::from(h as u16)];
            let (p, q) = (t.addrs_v4[first as usize], t.addrs_v4[second as usize]);
            let row = *x.row(h);
            assert_eq!((row.dst, row.hop, row.primary), (p.addr, q.addr, first));
            assert_eq!(row.ip_le, p.ip_le);
            let le = |a: [u8; 4]| u64::from(u32::from_le_bytes(a));
            let udp = t.outer.udp_sum_le + le(p.addr) + le(q.addr);
            assert_eq!(row.udp_le, checksum::fold(udp), "hash {h:#x}");
        }
        // A row naming a backend the table does not have: no resolved rows (the table
        // then stays out of the express lane).
        assert!(pairs.iter().any(|p| p.contains(&2)));
        assert!(t.outer.pair_rows(pairs, &t.addrs_v4[..2]).is_none());
        assert!(t.outer.pair_rows(pairs, &[]).is_none());
        assert_eq!(
            t.outer.pair_rows(pairs, &t.addrs_v4).as_deref(),
            t.pair_rows.as_deref()
        );
    }
}
