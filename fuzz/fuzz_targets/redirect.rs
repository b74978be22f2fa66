//! The backend's decision (`rondo redirect`) on any bytes: never a panic; a local packet is
//! a whole inner IP packet inside the input; a forward advances next_hop within hop_count,
//! goes to an allowed backend that is neither us nor the sender, and the forwarded packet
//! (built by the real forward path) is the same GUE payload with only next_hop changed.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rondo::redirect::forward::{self, Received};
use rondo::quic_lb::{QuicLbConfig, QuicLbConfigs, ServerId};
use rondo::redirect::{
    decide, AddrSet, Decision, FlowKey, Outer, Policy, QuicPolicy, SocketLookup, SocketState,
};
use rondo::wire::{Ipv4Packet, Ipv6Packet, UdpPacket};

struct Kernel {
    state: SocketState,
    cookies: bool,
}

impl SocketLookup for Kernel {
    fn lookup(&mut self, _: &FlowKey) -> SocketState {
        self.state
    }
    fn syncookies_in_use(&mut self) -> bool {
        self.cookies
    }
}

fn quic_policy(encrypted: bool) -> QuicPolicy {
    let key = [0x42u8; 16];
    let c = QuicLbConfig::new(1, 2, 6, encrypted.then_some(&key[..])).unwrap();
    QuicPolicy {
        configs: QuicLbConfigs::new([c]).unwrap(),
        server_id: ServerId::new(&[0, 1]).unwrap(),
        ports: vec![443],
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, payload)) = data.split_first() else {
        return;
    };
    let v6 = ctl & 1 != 0;
    let (me, director, peer): (IpAddr, IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).into(),
            Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3).into(),
        )
    } else {
        (
            Ipv4Addr::new(10, 0, 0, 2).into(),
            Ipv4Addr::new(10, 0, 1, 1).into(),
            Ipv4Addr::new(10, 0, 0, 3).into(),
        )
    };
    let policy = Policy {
        directors: AddrSet::new(vec![
            (Ipv4Addr::new(10, 0, 1, 0).into(), 24),
            (Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0).into(), 64),
        ]),
        backends: AddrSet::new(vec![
            (Ipv4Addr::new(10, 0, 0, 0).into(), 16),
            (Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0).into(), 48),
        ]),
        own: vec![Ipv4Addr::new(10, 0, 0, 9).into()],
        hop_limit: if ctl & 2 != 0 { 8 } else { 30 },
        subnet_broadcasts: rondo::redirect::decide::SubnetBroadcasts::default(),
        // QUIC-LB on UDP 443 (plaintext, or AES when bit 3 is set) for half the inputs.
        quic: (ctl & 4 != 0).then(|| quic_policy(ctl & 8 != 0)),
    };
    let outer = Outer {
        src: if ctl & 4 != 0 { peer } else { director },
        dst: me,
        ttl: ctl >> 5,
    };
    let mut k = Kernel {
        state: [SocketState::Absent, SocketState::Listener, SocketState::Flow][usize::from((ctl >> 3) & 3) % 3],
        cookies: ctl & 0x80 != 0,
    };
    match decide(payload, &outer, &policy, &mut k) {
        Decision::Local { inner, .. } => {
            let p = &payload[inner];
            match p.first().map(|b| b >> 4) {
                Some(4) => assert!(Ipv4Packet::new_checked(p).is_ok()),
                Some(6) => assert!(Ipv6Packet::new_checked(p).is_ok()),
                _ => panic!("local packet is not IP"),
            }
        }
        Decision::Forward { to, next_hop, .. } => {
            assert!(next_hop > payload[6] && next_hop <= payload[7]);
            assert!(policy.backends.contains(to) && to != me && to != outer.src);
            assert!(outer.ttl > 1);
            let mut out = vec![0u8; payload.len() + 48];
            let rx = Received { outer, sport: 0x8001, tos: 0 };
            let n = forward::build(&mut out, payload, &rx, to, next_hop).expect("forward builds");
            let hl = if v6 { 40 } else { 20 };
            let udp = UdpPacket::new_checked(&out[hl..n]).expect("udp");
            let g = udp.payload();
            assert_eq!(g.len(), payload.len());
            assert_eq!(g[6], next_hop);
            assert_eq!((&g[..6], &g[7..]), (&payload[..6], &payload[7..]));
        }
        Decision::Drop(r) => {
            let _ = r.name();
        }
    }
});
