//! GUE encapsulation, written in place in front of the inner IP packet: GLB's outer
//! Ethernet, IPv4 or IPv6, UDP (source port from the flow hash, destination 19523) and GUE
//! header with the hop list after the first hop, byte for byte what GLB Director sends.

use crate::wire::checksum;
use crate::wire::ip_proto;

use super::buf::PacketBuf;
use super::counters::DropReason;
use super::flow::Flow;
use super::outer::{
    Family, OuterTemplate, ETH, IP4_CSUM, IP4_DST, IP4_TOTAL, IP6_DST, IP6_PAYLOAD, MAX_HOPS,
    PAIR_LEN, UDP_GUE, V4_LEN, V6_LEN,
};
use super::quic::pinned_hops;
use super::rows::{ExpressTable, PairRow};
use super::snapshot::{CompiledTable, Snapshot};
use crate::sys::prefetch;

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
    match table.express() {
        Some(x) => x.encapsulate_inner(Inner::of(flow), flow.hash, buf),
        None => encap_hops(snap, table, flow, buf),
    }
}

/// [`encap_any`] with the hops of `flow`'s row or, for a flow a QUIC-LB connection ID
/// pinned to a backend ([`Flow::pin`]), that backend followed by the row's others. The
/// pinned list is built on the stack only for pinned flows.
#[inline(always)]
fn encap_hops<B: PacketBuf>(
    snap: &Snapshot,
    table: &CompiledTable,
    flow: &Flow,
    buf: &mut B,
) -> Result<u32, DropReason> {
    let row = table.table.row(flow.hash as u16);
    let alt = alt_row(snap, table, flow);
    if flow.pin == 0 {
        return encap_any(table, flow, row, alt, buf);
    }
    let mut pinned = [0u32; MAX_HOPS];
    let n = pinned_hops(u32::from(flow.pin - 1), row, &mut pinned);
    encap_any(table, flow, &pinned[..n], alt, buf)
}

/// Start loading what [`encapsulate`] reads of the flow's table: its resolved row, or the
/// first line of its row.
#[inline(always)]
pub(crate) fn prefetch_hops(snap: &Snapshot, flow: &Flow) {
    let table = &snap.tables[usize::from(flow.table)];
    match table.express() {
        Some(x) => prefetch(x.row(flow.hash)),
        None => {
            if let Some(first) = table.table.row(flow.hash as u16).first() {
                prefetch(first);
            }
        }
    }
}

impl ExpressTable {
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
        encap_v4_row(&self.outer, row, inner, buf)?;
        Ok(row.primary)
    }
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
    encap_hops(snap, table, flow, buf)
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
