//! Fuzz every `rondo::wire` parser: L2, IPv4/IPv6 (with extension headers), TCP, UDP,
//! ICMPv4/v6 (with quoted headers), GUE in both hop families and checksum completion. Each must return Ok or Err,
//! never panic; when Ok, every getter is called.

#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rondo::wire::{
    self, ethernet, ip_proto, ipv6, GuePacket, GueRepr, HopFamily, Icmpv4Packet, Icmpv4Repr,
    Icmpv6Packet, Icmpv6Repr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpPacket, TcpRepr,
    UdpPacket, UdpRepr,
};

fn l4_v4(proto: u8, data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    match proto {
        ip_proto::TCP => tcp(data, |p| p.verify_checksum_v4(src, dst)),
        ip_proto::UDP => udp(data, |p| p.verify_checksum_v4(src, dst)),
        ip_proto::ICMP => icmpv4(data),
        _ => {}
    }
}

fn l4_v6(proto: u8, data: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
    match proto {
        ip_proto::TCP => tcp(data, |p| p.verify_checksum_v6(src, dst)),
        ip_proto::UDP => udp(data, |p| p.verify_checksum_v6(src, dst)),
        ip_proto::ICMPV6 => icmpv6(data, src, dst),
        _ => {}
    }
}

fn tcp(data: &[u8], verify: impl Fn(&TcpPacket<&[u8]>) -> bool) {
    let _ = wire::l4_ports(data);
    if let Ok(p) = TcpPacket::new_checked(data) {
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
            verify(&p),
        );
        let _ = TcpRepr::parse(&p);
    }
}

fn udp(data: &[u8], verify: impl Fn(&UdpPacket<&[u8]>) -> bool) {
    if let Ok(p) = UdpPacket::new_checked(data) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.checksum(),
            p.payload(),
            verify(&p),
        );
        let _ = UdpRepr::parse(&p);
        gue(p.payload());
    }
}

fn icmpv4(data: &[u8]) {
    if let Ok(p) = Icmpv4Packet::new_checked(data) {
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
        let _ = Icmpv4Repr::parse(&p);
        if let Ok(q) = p.quoted_ipv4() {
            ipv4_getters(&q);
            let _ = wire::l4_ports(q.payload());
        }
    }
}

fn icmpv6(data: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
    if let Ok(p) = Icmpv6Packet::new_checked(data) {
        let _ = (
            p.msg_type(),
            p.code(),
            p.checksum(),
            p.echo_ident(),
            p.echo_seq_no(),
            p.mtu(),
            p.is_packet_too_big(),
            p.data(),
            p.verify_checksum(src, dst),
        );
        let _ = Icmpv6Repr::parse(&p);
        if let Ok(q) = p.quoted_ipv6() {
            ipv6_getters(&q);
            if let Ok(u) = ipv6::upper_layer(&q) {
                let _ = wire::l4_ports(q.packet().get(u.offset..).unwrap_or(&[]));
            }
        }
    }
}

fn gue(data: &[u8]) {
    for fam in [HopFamily::V4, HopFamily::V6] {
        if let Ok(p) = GuePacket::new_checked(data, fam) {
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
            for i in 0..=p.hop_count() as usize {
                let _ = (p.hop_v4(i), p.hop_v6(i), p.hop(i));
            }
            if let Ok(r) = GueRepr::parse(&p) {
                assert_eq!(r.hops.len(), p.hop_count() as usize);
                match r.proto {
                    ip_proto::IPV4 => ipv4(p.payload()),
                    _ => ipv6_packet(p.payload()),
                }
            }
        }
    }
}

fn ipv4_getters<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) {
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
        p.ttl(),
        p.protocol(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
        p.verify_checksum(),
        p.options(),
        p.payload(),
    );
}

fn ipv6_getters<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) {
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
}

fn ipv4(data: &[u8]) {
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        ipv4_getters(&p);
        let _ = Ipv4Repr::parse(&p);
        if p.frag_offset() == 0 {
            l4_v4(p.protocol(), p.payload(), p.src_addr(), p.dst_addr());
        }
    }
}

fn ipv6_packet(data: &[u8]) {
    if let Ok(p) = Ipv6Packet::new_checked(data) {
        ipv6_getters(&p);
        let _ = Ipv6Repr::parse(&p);
        if let Ok(u) = ipv6::upper_layer(&p) {
            assert!(u.offset >= ipv6::HEADER_LEN);
            if !u.fragment.is_some_and(|f| f.is_non_first()) {
                if let Some(l4) = p.packet().get(u.offset..) {
                    l4_v6(u.next_header, l4, &p.src_addr(), &p.dst_addr());
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match ethernet::parse_l2(data) {
        Ok(l2) => {
            let rest = data.get(l2.header_len..).unwrap_or(&[]);
            match l2.ethertype {
                ethernet::ethertype::IPV4 => ipv4(rest),
                ethernet::ethertype::IPV6 => ipv6_packet(rest),
                _ => {}
            }
        }
        Err(e) => {
            let _ = e.reason();
        }
    }
    // Also feed the raw bytes to every parser directly.
    ipv4(data);
    ipv6_packet(data);
    icmpv4(data);
    icmpv6(data, &Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST);
    tcp(data, |p| {
        p.verify_checksum_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
    });
    udp(data, |p| {
        p.verify_checksum_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
    });
    gue(data);
    // Checksum completion: total, and a completed checksum is stable.
    let mut frame = data.to_vec();
    if wire::offload::complete_l4_checksum(&mut frame) {
        let once = frame.clone();
        assert!(wire::offload::complete_l4_checksum(&mut frame));
        assert_eq!(frame, once);
    }
});
