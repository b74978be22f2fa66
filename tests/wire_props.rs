//! Property tests for `rondo::wire`: every `Repr` round-trips through emit/parse, and every
//! view and parser is total on arbitrary bytes (Ok or Err, never a panic; when Ok, every
//! getter works).

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use rondo::wire::{
    self, checksum, ethernet, gue, icmpv4, icmpv6, ipv6, EthernetFrame, EthernetRepr, GuePacket,
    GueRepr, HopFamily, HopList, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, Ipv4Packet,
    Ipv4Repr, Ipv6Packet, Ipv6Repr, MacAddr, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};

fn v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

/// Arbitrary bytes, sometimes starting with a prefix that gets past the first checks.
fn bytes_with_prefix(prefixes: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    (
        0..=prefixes.len(),
        proptest::collection::vec(any::<u8>(), 0..160),
    )
        .prop_map(move |(i, mut v)| {
            if let Some(p) = prefixes.get(i) {
                let n = p.len().min(v.len());
                v[..n].copy_from_slice(&p[..n]);
            }
            v
        })
}

fn touch_ipv4<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) {
    let _ = (
        p.version(),
        p.header_len(),
        p.dscp_ecn(),
        p.total_len(),
        p.ident(),
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
        p.is_fragment(),
        p.hop_limit(),
        p.ttl(),
        p.next_header(),
        p.protocol(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
        p.verify_checksum(),
        p.options(),
        p.payload(),
    );
    assert!(p.header_len() + p.payload().len() <= p.total_len() as usize);
}

fn touch_ipv6<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) {
    let _ = (
        p.version(),
        p.traffic_class(),
        p.flow_label(),
        p.payload_len(),
        p.next_header(),
        p.hop_limit(),
        p.src_addr(),
        p.dst_addr(),
        p.payload(),
        p.packet(),
    );
    if let Ok(u) = ipv6::upper_layer(p) {
        assert!(u.offset >= ipv6::HEADER_LEN);
        assert!(u.offset <= ipv6::HEADER_LEN + p.payload().len());
    }
}

fn touch_tcp<T: AsRef<[u8]>>(p: &TcpPacket<T>) {
    let _ = (
        p.src_port(),
        p.dst_port(),
        p.seq_number(),
        p.ack_number(),
        p.header_len(),
        p.flags(),
        p.fin(),
        p.syn(),
        p.rst(),
        p.psh(),
        p.ack(),
        p.urg(),
        p.ece(),
        p.cwr(),
        p.window(),
        p.checksum(),
        p.urgent(),
        p.options(),
        p.payload(),
        p.verify_checksum_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST),
        p.verify_checksum_v6(&Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST),
    );
}

fn touch_udp<T: AsRef<[u8]>>(p: &UdpPacket<T>) {
    let _ = (
        p.src_port(),
        p.dst_port(),
        p.len(),
        p.is_empty(),
        p.checksum(),
        p.payload(),
        p.verify_checksum_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST),
        p.verify_checksum_v6(&Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST),
    );
    assert_eq!(p.payload().len() + 8, p.len() as usize);
}

fn touch_icmpv4<T: AsRef<[u8]>>(p: &Icmpv4Packet<T>) {
    let _ = (
        p.msg_type(),
        p.code(),
        p.checksum(),
        p.echo_ident(),
        p.echo_seq_no(),
        p.next_hop_mtu(),
        p.is_frag_needed(),
        p.data(),
        p.verify_checksum(),
    );
    if let Ok(q) = p.quoted_ipv4() {
        touch_ipv4(&q);
    }
}

fn touch_icmpv6<T: AsRef<[u8]>>(p: &Icmpv6Packet<T>) {
    let _ = (
        p.msg_type(),
        p.code(),
        p.checksum(),
        p.echo_ident(),
        p.echo_seq_no(),
        p.mtu(),
        p.is_packet_too_big(),
        p.data(),
        p.verify_checksum(&Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST),
    );
    if let Ok(q) = p.quoted_ipv6() {
        touch_ipv6(&q);
    }
}

fn touch_gue<T: AsRef<[u8]>>(p: &GuePacket<T>) {
    let _ = (
        p.family(),
        p.version(),
        p.is_control(),
        p.hlen(),
        p.proto(),
        p.flags(),
        p.private_type(),
        p.next_hop(),
        p.hop_count(),
        p.header_len(),
        p.payload(),
    );
    for i in 0..=p.hop_count() as usize + 1 {
        let _ = (p.hop_v4(i), p.hop_v6(i), p.hop(i));
    }
    for i in 0..p.hop_count() as usize {
        assert!(p.hop(i).is_some());
    }
}

const PREFIXES_V4: &[&[u8]] = &[
    &[0x45],
    &[0x46, 0, 0, 40],
    &[0x45, 0, 0, 20],
    &[0x4f, 0, 0, 80],
];
const PREFIXES_V6: &[&[u8]] = &[
    &[0x60, 0, 0, 0, 0, 16, 0],
    &[0x60, 0, 0, 0, 0, 40, 60],
    &[0x60, 0, 0, 0, 0, 24, 44],
    &[0x60, 0, 0, 0, 0, 32, 43],
    &[0x60, 0, 0, 0, 0, 64, 51],
];
const PREFIXES_L4: &[&[u8]] = &[
    &[0, 1, 0, 2, 0, 20],
    &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x50],
];
const PREFIXES_ICMP: &[&[u8]] = &[&[3, 4], &[8, 0], &[128, 0], &[2, 0], &[0, 0], &[129, 0]];
const PREFIXES_GUE: &[&[u8]] = &[
    &[0x01, 4, 0, 0, 0, 0, 0, 0],
    &[0x02, 4, 0, 0, 0, 0, 0, 1],
    &[0x03, 41, 0, 0, 0, 0, 1, 2],
    &[0x05, 41, 0, 0, 0, 0, 0, 1],
    &[0x09, 4, 0, 0, 0, 0, 0, 2],
];
const PREFIXES_L2: &[&[u8]] = &[
    &[0; 12],
    &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00],
    &[
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00, 0, 1, 0x81, 0x00,
    ],
    &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00],
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ethernet_round_trip(src in mac(), dst in mac(), ethertype in any::<u16>()) {
        let r = EthernetRepr { src_addr: src, dst_addr: dst, ethertype };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut EthernetFrame::new_unchecked(&mut b[..])).unwrap();
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&f).unwrap(), r);
        prop_assert_eq!(src.to_string().parse::<MacAddr>().unwrap(), src);
        let l2 = ethernet::parse_l2(&b);
        if ethertype >= 0x0600 && ethertype != 0x8100 && ethertype != 0x88a8 && ethertype != 0x9100 {
            prop_assert_eq!(l2.unwrap().ethertype, ethertype);
        } else {
            prop_assert!(l2.is_err());
        }
    }

    #[test]
    fn ipv4_round_trip(
        src in v4(), dst in v4(), next_header in any::<u8>(), payload_len in 0usize..1500,
        hop_limit in any::<u8>(), dont_frag in any::<bool>(), ident in any::<u16>(),
        dscp_ecn in any::<u8>(),
    ) {
        let r = Ipv4Repr {
            src_addr: src, dst_addr: dst, next_header, payload_len, hop_limit, dont_frag, ident,
            dscp_ecn,
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut Ipv4Packet::new_unchecked(&mut b[..])).unwrap();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!(Ipv4Repr::parse_verified(&p).unwrap(), r);
        prop_assert_eq!(p.payload().len(), payload_len);
    }

    #[test]
    fn ipv6_round_trip(
        src in v6(), dst in v6(), next_header in any::<u8>(), payload_len in 0usize..1500,
        hop_limit in any::<u8>(), traffic_class in any::<u8>(), flow_label in 0u32..(1 << 20),
    ) {
        let r = Ipv6Repr {
            src_addr: src, dst_addr: dst, next_header, payload_len, hop_limit, traffic_class,
            flow_label,
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut Ipv6Packet::new_unchecked(&mut b[..])).unwrap();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&p).unwrap(), r);
        prop_assert_eq!(p.payload().len(), payload_len);
    }

    #[test]
    fn tcp_round_trip(
        src_port in any::<u16>(), dst_port in any::<u16>(), seq_number in any::<u32>(),
        ack_number in any::<u32>(), flags in any::<u8>(), window in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        s4 in v4(), d4 in v4(), s6 in v6(), d6 in v6(),
    ) {
        let r = TcpRepr {
            src_port, dst_port, seq_number, ack_number, flags, window,
            payload_len: payload.len(),
        };
        let mut b = vec![0u8; r.buffer_len()];
        b[20..].copy_from_slice(&payload);
        r.emit_v4(&mut TcpPacket::new_unchecked(&mut b[..]), s4, d4).unwrap();
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        prop_assert!(p.verify_checksum_v4(s4, d4));
        prop_assert_eq!(TcpRepr::parse(&p).unwrap(), r);
        prop_assert_eq!(p.payload(), &payload[..]);
        r.emit_v6(&mut TcpPacket::new_unchecked(&mut b[..]), &s6, &d6).unwrap();
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        prop_assert!(p.verify_checksum_v6(&s6, &d6));
        prop_assert_eq!(TcpRepr::parse(&p).unwrap(), r);
    }

    #[test]
    fn udp_round_trip(
        src_port in any::<u16>(), dst_port in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        s4 in v4(), d4 in v4(), s6 in v6(), d6 in v6(),
    ) {
        let r = UdpRepr { src_port, dst_port, payload_len: payload.len() };
        let mut b = vec![0u8; r.buffer_len()];
        b[8..].copy_from_slice(&payload);
        r.emit_v4(&mut UdpPacket::new_unchecked(&mut b[..]), s4, d4).unwrap();
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        prop_assert!(p.checksum() != 0);
        prop_assert!(p.verify_checksum_v4(s4, d4));
        prop_assert_eq!(UdpRepr::parse(&p).unwrap(), r);
        r.emit_v6(&mut UdpPacket::new_unchecked(&mut b[..]), &s6, &d6).unwrap();
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        prop_assert!(p.verify_checksum_v6(&s6, &d6));
        prop_assert_eq!(UdpRepr::parse(&p).unwrap(), r);
        prop_assert_eq!(p.payload(), &payload[..]);
    }

    #[test]
    fn icmpv4_round_trip(
        kind in 0u8..3, ident in any::<u16>(), seq_no in any::<u16>(),
        data in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let r = match kind {
            0 => Icmpv4Repr::EchoRequest { ident, seq_no, data: &data },
            1 => Icmpv4Repr::EchoReply { ident, seq_no, data: &data },
            _ => Icmpv4Repr::FragNeeded { mtu: seq_no, data: &data },
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut Icmpv4Packet::new_unchecked(&mut b[..])).unwrap();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!(Icmpv4Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn icmpv6_round_trip(
        kind in 0u8..3, ident in any::<u16>(), seq_no in any::<u16>(), mtu in any::<u32>(),
        data in proptest::collection::vec(any::<u8>(), 0..100), s in v6(), d in v6(),
    ) {
        let r = match kind {
            0 => Icmpv6Repr::EchoRequest { ident, seq_no, data: &data },
            1 => Icmpv6Repr::EchoReply { ident, seq_no, data: &data },
            _ => Icmpv6Repr::PacketTooBig { mtu, data: &data },
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&s, &d, &mut Icmpv6Packet::new_unchecked(&mut b[..])).unwrap();
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        prop_assert!(p.verify_checksum(&s, &d));
        prop_assert_eq!(Icmpv6Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn gue_v4_round_trip(
        v6_inner in any::<bool>(), next_hop in any::<u8>(),
        hops in proptest::collection::vec(v4(), 0..=gue::MAX_HOPS_V4),
        tail in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let proto = if v6_inner { 41 } else { 4 };
        let r = GueRepr { proto, next_hop, hops: HopList::from_v4(&hops).unwrap() };
        let mut b = vec![0u8; r.buffer_len()];
        b.extend_from_slice(&tail);
        r.emit(&mut GuePacket::new_unchecked(&mut b[..], HopFamily::V4)).unwrap();
        let p = GuePacket::new_checked(&b[..], HopFamily::V4).unwrap();
        prop_assert_eq!(GueRepr::parse(&p).unwrap(), r);
        prop_assert_eq!(p.payload(), &tail[..]);
        prop_assert_eq!(p.header_len(), gue::glb_header_len_v4(hops.len()));
        prop_assert_eq!(p.hlen() as usize, hops.len() + 1);
        for (i, h) in hops.iter().enumerate() {
            prop_assert_eq!(p.hop_v4(i), Some(*h));
        }
        let mut c = vec![0u8; b.len()];
        let n = gue::emit_glb_v4(&mut c, proto, &hops, next_hop).unwrap();
        prop_assert_eq!(&c[..n], &b[..n]);
    }

    #[test]
    fn gue_v6_round_trip(
        v6_inner in any::<bool>(), next_hop in any::<u8>(),
        hops in proptest::collection::vec(v6(), 0..=gue::MAX_HOPS_V6),
        tail in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let proto = if v6_inner { 41 } else { 4 };
        let r = GueRepr { proto, next_hop, hops: HopList::from_v6(&hops).unwrap() };
        let mut b = vec![0u8; r.buffer_len()];
        b.extend_from_slice(&tail);
        r.emit(&mut GuePacket::new_unchecked(&mut b[..], HopFamily::V6)).unwrap();
        let p = GuePacket::new_checked(&b[..], HopFamily::V6).unwrap();
        prop_assert_eq!(GueRepr::parse(&p).unwrap(), r);
        prop_assert_eq!(p.payload(), &tail[..]);
        prop_assert_eq!(p.header_len(), gue::glb_header_len_v6(hops.len()));
        for (i, h) in hops.iter().enumerate() {
            prop_assert_eq!(p.hop_v6(i), Some(*h));
        }
    }

    #[test]
    fn checksum_fold_invariants(data in proptest::collection::vec(any::<u8>(), 0..600), split in 0usize..300) {
        // Splitting at an even offset gives the same sum.
        let k = (split * 2).min(data.len() & !1);
        let whole = checksum::fold(checksum::sum(&data));
        let parts = checksum::fold(checksum::add(checksum::sum(&data[..k]), checksum::sum(&data[k..])));
        prop_assert_eq!(whole, parts);
        prop_assert_eq!(checksum::combine(&[checksum::sum(&data)]), checksum::data(&data));
    }

    #[test]
    fn any_bytes_l2(b in bytes_with_prefix(PREFIXES_L2)) {
        match ethernet::parse_l2(&b) {
            Ok(l2) => {
                prop_assert!(l2.header_len <= b.len());
                prop_assert!(l2.ethertype >= 0x0600);
            }
            Err(e) => { let _ = e.reason(); }
        }
        if let Ok(f) = EthernetFrame::new_checked(&b[..]) {
            let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.payload());
            prop_assert!(EthernetRepr::parse(&f).is_ok());
        }
    }

    #[test]
    fn any_bytes_ipv4(mut b in bytes_with_prefix(PREFIXES_V4)) {
        if let Ok(p) = Ipv4Packet::new_checked(&b[..]) {
            touch_ipv4(&p);
            let _ = Ipv4Repr::parse(&p);
            let _ = Ipv4Repr::parse_verified(&p);
        }
        if let Ok(p) = Ipv4Packet::new_quoted(&b[..]) {
            touch_ipv4(&p);
        }
        if let Ok(mut p) = Ipv4Packet::new_checked(&mut b[..]) {
            p.fill_checksum();
            prop_assert!(p.verify_checksum());
            p.set_ident(1);
            p.set_dont_frag(true);
            p.set_frag_offset(8);
            p.set_hop_limit(1);
            let _ = p.payload_mut();
        }
    }

    #[test]
    fn any_bytes_ipv6(b in bytes_with_prefix(PREFIXES_V6)) {
        if let Ok(p) = Ipv6Packet::new_checked(&b[..]) {
            touch_ipv6(&p);
            prop_assert!(Ipv6Repr::parse(&p).is_ok());
        }
        if let Ok(p) = Ipv6Packet::new_quoted(&b[..]) {
            touch_ipv6(&p);
        }
    }

    /// Checksum completion is total on Ethernet frames of any content, and a checksum it
    /// completed verifies and is stable (a second pass writes the same bytes).
    #[test]
    fn any_frame_checksum_completion(
        tag in proptest::option::of(any::<u16>()),
        v6 in any::<bool>(),
        proto in prop_oneof![Just(6u8), Just(17u8), any::<u8>()],
        mut rest in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        let mut f = vec![0x02; 12];
        if let Some(tci) = tag {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&tci.to_be_bytes());
        }
        // An IP header often valid enough to reach the L4 code: version, lengths, protocol.
        if v6 {
            f.extend_from_slice(&[0x86, 0xdd]);
            if rest.len() >= 40 {
                rest[0] = 0x60 | (rest[0] & 0x0f);
                let len = (rest.len() - 40) as u16;
                rest[4..6].copy_from_slice(&len.to_be_bytes());
                rest[6] = proto;
            }
        } else {
            f.extend_from_slice(&[0x08, 0x00]);
            if rest.len() >= 20 {
                rest[0] = 0x45;
                let len = rest.len() as u16;
                rest[2..4].copy_from_slice(&len.to_be_bytes());
                rest[6] &= 0x40;
                rest[7] = 0;
                rest[9] = proto;
            }
        }
        f.extend_from_slice(&rest);
        let before = f.clone();
        if wire::offload::complete_l4_checksum(&mut f) {
            prop_assert!(proto == 6 || proto == 17);
            // The whole segment, pseudo-header included, sums to zero.
            let (pseudo, p, range) = wire::offload::l4_segment(&f).unwrap();
            prop_assert_eq!(p, proto);
            let ok = checksum::combine(&[pseudo, checksum::sum(&f[range])]) == 0;
            prop_assert!(ok, "completed checksum does not verify: {:02x?}", f);
            let once = f.clone();
            prop_assert!(wire::offload::complete_l4_checksum(&mut f));
            prop_assert_eq!(&f, &once);
        } else {
            prop_assert_eq!(&f, &before, "a frame left alone is not changed");
        }
    }

    #[test]
    fn any_bytes_tcp_udp(b in bytes_with_prefix(PREFIXES_L4)) {
        let _ = wire::l4_ports(&b);
        if let Ok(p) = TcpPacket::new_checked(&b[..]) {
            touch_tcp(&p);
            prop_assert!(TcpRepr::parse(&p).is_ok());
        }
        if let Ok(p) = UdpPacket::new_checked(&b[..]) {
            touch_udp(&p);
            prop_assert!(UdpRepr::parse(&p).is_ok());
        }
    }

    #[test]
    fn any_bytes_icmp(b in bytes_with_prefix(PREFIXES_ICMP)) {
        if let Ok(p) = Icmpv4Packet::new_checked(&b[..]) {
            touch_icmpv4(&p);
            let _ = Icmpv4Repr::parse(&p);
            prop_assert_eq!(p.is_frag_needed(), p.msg_type() == icmpv4::DEST_UNREACHABLE && p.code() == icmpv4::FRAG_NEEDED);
        }
        if let Ok(p) = Icmpv6Packet::new_checked(&b[..]) {
            touch_icmpv6(&p);
            let _ = Icmpv6Repr::parse(&p);
            prop_assert_eq!(p.is_packet_too_big(), p.msg_type() == icmpv6::PACKET_TOO_BIG);
        }
    }

    #[test]
    fn any_bytes_gue(b in bytes_with_prefix(PREFIXES_GUE)) {
        for fam in [HopFamily::V4, HopFamily::V6] {
            match GuePacket::new_checked(&b[..], fam) {
                Ok(p) => {
                    touch_gue(&p);
                    if let Ok(r) = GueRepr::parse(&p) {
                        prop_assert_eq!(r.hops.len(), p.hop_count() as usize);
                        prop_assert_eq!(r.header_len(), p.header_len());
                    }
                }
                Err(e) => { let _ = e.reason(); }
            }
        }
    }
}

/// Every prefix of a valid encapsulated packet (Ethernet, IPv4, UDP, GUE, inner IPv4 + TCP)
/// either parses or returns an error at each layer.
#[test]
fn every_prefix_of_encapsulated_packet() {
    let inner = [
        0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0x40, 0x06, 0x62, 0xb6, 0x0a, 0x0b, 0x0c,
        0x0d, 0x01, 0x01, 0x01, 0x01, 0xb2, 0x6e, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x50, 0x02, 0x20, 0x00, 0xc5, 0x0a, 0x00, 0x00,
    ];
    let mut pkt = vec![0u8; 14 + 20 + 8 + 12 + inner.len()];
    ethernet::emit_header(&mut pkt, MacAddr::BROADCAST, MacAddr::ZERO, 0x0800).unwrap();
    pkt[54..].copy_from_slice(&inner);
    gue::emit_glb_v4(&mut pkt[42..], 4, &[Ipv4Addr::new(10, 0, 0, 2)], 0).unwrap();
    let (s, d) = (Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 1));
    UdpRepr {
        src_port: 0x8123,
        dst_port: gue::PORT,
        payload_len: 12 + inner.len(),
    }
    .emit_v4(&mut UdpPacket::new_unchecked(&mut pkt[34..]), s, d)
    .unwrap();
    Ipv4Repr {
        src_addr: s,
        dst_addr: d,
        next_header: 17,
        payload_len: 8 + 12 + inner.len(),
        hop_limit: 64,
        dont_frag: true,
        ident: 0,
        dscp_ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut pkt[14..]))
    .unwrap();

    let mut full_parses = 0;
    for n in 0..=pkt.len() {
        let b = &pkt[..n];
        let Ok(l2) = ethernet::parse_l2(b) else {
            continue;
        };
        let Ok(ip) = Ipv4Packet::new_checked(&b[l2.header_len..]) else {
            continue;
        };
        let Ok(u) = UdpPacket::new_checked(ip.payload()) else {
            continue;
        };
        assert!(u.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
        let Ok(g) = GuePacket::new_checked(u.payload(), HopFamily::V4) else {
            continue;
        };
        let Ok(inner_ip) = Ipv4Packet::new_checked(g.payload()) else {
            continue;
        };
        let t = TcpPacket::new_checked(inner_ip.payload()).unwrap();
        assert!(t.syn());
        assert!(t.verify_checksum_v4(inner_ip.src_addr(), inner_ip.dst_addr()));
        full_parses += 1;
    }
    // Only the complete packet parses through every layer.
    assert_eq!(full_parses, 1);
}
