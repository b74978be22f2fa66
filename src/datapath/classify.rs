//! Classification (spec section 5): find the bind a packet belongs to and hash its flow.
//! Total over any bytes: every frame becomes a [`Flow`] or a [`Verdict`] with a reason.

use crate::wire::ip_proto::{ICMP, ICMPV6, TCP, UDP};
use crate::wire::{
    self, ethernet, icmpv4, icmpv6, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet,
};
use siphasher::sip::SipHasher24;

use super::counters::{DropReason, ExceptionReason, Verdict};
use super::snapshot::{FieldSet, Snapshot};

/// A packet that belongs to a bind: where its IP packet is and how it hashed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    /// Index of the table in the snapshot.
    pub table: u16,
    /// Offset of the IP header in the frame (Ethernet + VLAN length).
    pub l3_off: u16,
    /// Length of the IP packet (without Ethernet padding).
    pub ip_len: u16,
    /// Inner packet is IPv6 (GUE proto 41) rather than IPv4 (4).
    pub inner_v6: bool,
    /// Hash with `hash_fields`.
    pub hash: u64,
    /// Hash with `alt_hash_fields` (0 when unused).
    pub alt_hash: u64,
    /// GLB's flow hint, mixed into the UDP source port.
    pub hint: u16,
}

/// The fields a flow is hashed on (network order); `N` is the address size (4 or 16).
struct FlowKey<const N: usize> {
    src: [u8; N],
    dst: [u8; N],
    sport: u16,
    dport: u16,
}

#[inline]
fn hash<const N: usize>(key: &SipHasher24, fields: FieldSet, k: &FlowKey<N>) -> u64 {
    // 16 + 16 + 2 + 2 = 36 bytes at most.
    let mut buf = [0u8; 48];
    let mut n = 0;
    if fields.has(FieldSet::SRC_ADDR) {
        buf[n..n + N].copy_from_slice(&k.src);
        n += N;
    }
    if fields.has(FieldSet::DST_ADDR) {
        buf[n..n + N].copy_from_slice(&k.dst);
        n += N;
    }
    if fields.has(FieldSet::SRC_PORT) {
        buf[n..n + 2].copy_from_slice(&k.sport.to_be_bytes());
        n += 2;
    }
    if fields.has(FieldSet::DST_PORT) {
        buf[n..n + 2].copy_from_slice(&k.dport.to_be_bytes());
        n += 2;
    }
    key.hash(&buf[..n])
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

/// Classify one frame against `snap`.
#[inline]
pub fn classify(snap: &Snapshot, frame: &[u8]) -> Result<Flow, Verdict> {
    let l2 = match ethernet::parse_l2(frame) {
        Ok(l2) => l2,
        Err(wire::Error::StackedVlan) => return Err(Verdict::Drop(DropReason::StackedVlan)),
        Err(wire::Error::NotEthernetII) => return Err(Verdict::Exception(ExceptionReason::NotIp)),
        Err(_) => return Err(Verdict::Drop(DropReason::TruncatedL2)),
    };
    let l3 = &frame[l2.header_len..];
    match l2.ethertype {
        ethernet::ethertype::IPV4 => classify_v4(snap, l3, l2.header_len),
        ethernet::ethertype::IPV6 => classify_v6(snap, l3, l2.header_len),
        _ => Err(Verdict::Exception(ExceptionReason::NotIp)),
    }
}

#[inline]
fn finish<const N: usize>(
    snap: &Snapshot,
    table: u16,
    key: &FlowKey<N>,
    hint: u16,
    l3_off: usize,
    ip_len: usize,
    inner_v6: bool,
) -> Result<Flow, Verdict> {
    let t = &snap.tables[usize::from(table)];
    Ok(Flow {
        table,
        l3_off: l3_off as u16,
        ip_len: ip_len as u16,
        inner_v6,
        hash: hash(&t.sip, snap.hash, key),
        alt_hash: snap.alt_hash.map_or(0, |f| hash(&t.sip, f, key)),
        hint,
    })
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

fn classify_v4(snap: &Snapshot, l3: &[u8], l3_off: usize) -> Result<Flow, Verdict> {
    let ip = Ipv4Packet::new_checked(l3).map_err(ip_drop)?;
    let (src, dst) = (ip.src_addr().octets(), ip.dst_addr().octets());
    let dst_n = u32::from_be_bytes(dst);
    let is_vip = || snap.binds.is_vip_v4(dst_n);
    let total = usize::from(ip.total_len());
    if ip.is_fragment() {
        return Err(vip_drop(is_vip(), DropReason::Fragment));
    }
    let l4 = ip.payload();
    match ip.next_header() {
        proto @ (TCP | UDP) => {
            let min = if proto == TCP { 20 } else { 8 };
            let (sport, dport) =
                ports(l4, min).ok_or_else(|| vip_drop(is_vip(), DropReason::TruncatedL4))?;
            let table = snap
                .binds
                .lookup_v4(dst_n, proto, dport)
                .ok_or(Verdict::Exception(ExceptionReason::NoBind))?;
            let key = FlowKey {
                src,
                dst,
                sport,
                dport,
            };
            finish(snap, table, &key, sport, l3_off, total, false)
        }
        ICMP => {
            let icmp = Icmpv4Packet::new_checked(l4)
                .map_err(|_| vip_drop(is_vip(), DropReason::TruncatedIcmp))?;
            let (ty, code) = (icmp.msg_type(), icmp.code());
            if ty == icmpv4::DEST_UNREACHABLE && code == icmpv4::FRAG_NEEDED {
                // The quote is a packet a backend sent from the VIP: reverse it.
                let quoted = icmp.quoted_ipv4().ok().and_then(|q| {
                    Some((
                        q.next_header(),
                        q.src_addr().octets(),
                        q.dst_addr().octets(),
                        wire::l4_ports(q.payload()).ok()?,
                    ))
                });
                let Some((qproto, qsrc, qdst, (qsport, qdport))) = quoted else {
                    return Err(vip_drop(is_vip(), DropReason::IcmpQuoteTruncated));
                };
                let table = snap
                    .binds
                    .lookup_v4_addr(u32::from_be_bytes(qsrc), Some((qproto, qsport)), dst_n)
                    .ok_or_else(|| icmp_exception(is_vip()))?;
                let key = FlowKey {
                    src: qdst,
                    dst: qsrc,
                    sport: qdport,
                    dport: qsport,
                };
                finish(snap, table, &key, qdport, l3_off, total, false)
            } else if ty == icmpv4::ECHO_REQUEST
                && code == 0
                && snap.settings.forward_icmp_ping_responses
            {
                let table = snap
                    .binds
                    .lookup_v4_addr(dst_n, None, dst_n)
                    .ok_or(Verdict::Exception(ExceptionReason::NoBind))?;
                let key = FlowKey {
                    src,
                    dst,
                    sport: 0,
                    dport: 0,
                };
                finish(snap, table, &key, ip.ident(), l3_off, total, false)
            } else {
                Err(icmp_exception(is_vip()))
            }
        }
        _ => Err(Verdict::Exception(ExceptionReason::NoBind)),
    }
}

fn classify_v6(snap: &Snapshot, l3: &[u8], l3_off: usize) -> Result<Flow, Verdict> {
    let ip = Ipv6Packet::new_checked(l3).map_err(ip_drop)?;
    let (src, dst) = (ip.src_addr().octets(), ip.dst_addr().octets());
    let dst_n = u128::from_be_bytes(dst);
    let is_vip = || snap.binds.is_vip_v6(dst_n);
    let total = 40 + usize::from(ip.payload_len());
    let upper = wire::ipv6_upper_layer(&ip).map_err(|e| match ip_drop(e) {
        Verdict::Drop(r) => vip_drop(is_vip(), r),
        v => v,
    })?;
    if upper.fragment.is_some() {
        return Err(vip_drop(is_vip(), DropReason::Fragment));
    }
    let l4 = l3.get(upper.offset..total).unwrap_or(&[]);
    match upper.next_header {
        proto @ (TCP | UDP) => {
            let min = if proto == TCP { 20 } else { 8 };
            let (sport, dport) =
                ports(l4, min).ok_or_else(|| vip_drop(is_vip(), DropReason::TruncatedL4))?;
            let table = snap
                .binds
                .lookup_v6(dst_n, proto, dport)
                .ok_or(Verdict::Exception(ExceptionReason::NoBind))?;
            let key = FlowKey {
                src,
                dst,
                sport,
                dport,
            };
            finish(snap, table, &key, sport, l3_off, total, true)
        }
        ICMPV6 => {
            let icmp = Icmpv6Packet::new_checked(l4)
                .map_err(|_| vip_drop(is_vip(), DropReason::TruncatedIcmp))?;
            let (ty, code) = (icmp.msg_type(), icmp.code());
            if ty == icmpv6::PACKET_TOO_BIG && code == 0 {
                let quoted = icmp.quoted_ipv6().ok().and_then(|q| {
                    Some((
                        q.next_header(),
                        q.src_addr().octets(),
                        q.dst_addr().octets(),
                        wire::l4_ports(q.payload()).ok()?,
                    ))
                });
                let Some((qproto, qsrc, qdst, (qsport, qdport))) = quoted else {
                    return Err(vip_drop(is_vip(), DropReason::IcmpQuoteTruncated));
                };
                if qproto != TCP && qproto != UDP {
                    // Extension headers in the quote: the flow cannot be found reliably.
                    return Err(icmp_exception(is_vip()));
                }
                let table = snap
                    .binds
                    .lookup_v6_addr(u128::from_be_bytes(qsrc), Some((qproto, qsport)), dst_n)
                    .ok_or_else(|| icmp_exception(is_vip()))?;
                let key = FlowKey {
                    src: qdst,
                    dst: qsrc,
                    sport: qdport,
                    dport: qsport,
                };
                finish(snap, table, &key, qdport, l3_off, total, true)
            } else if ty == icmpv6::ECHO_REQUEST
                && code == 0
                && snap.settings.forward_icmp_ping_responses
            {
                let table = snap
                    .binds
                    .lookup_v6_addr(dst_n, None, dst_n)
                    .ok_or(Verdict::Exception(ExceptionReason::NoBind))?;
                let key = FlowKey {
                    src,
                    dst,
                    sport: 0,
                    dport: 0,
                };
                // GLB quirk: the low 16 bits of the flow label, byte-swapped.
                let hint = (ip.flow_label() as u16).swap_bytes();
                finish(snap, table, &key, hint, l3_off, total, true)
            } else {
                Err(icmp_exception(is_vip()))
            }
        }
        _ => Err(Verdict::Exception(ExceptionReason::NoBind)),
    }
}
