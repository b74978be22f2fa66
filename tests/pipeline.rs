//! The encap pipeline end to end, against GLB's vectors and independent computations.

mod common;

use common::*;
use proptest::prelude::*;
use rondo::config::{load_config, Config};
use rondo::datapath::counters::ExceptionReason;
use rondo::datapath::{
    process_burst, CoreCounters, DropReason, HeapBuf, PacketBuf, Snapshot, Verdict,
};
use rondo::wire::ethernet::MacAddr;

const KEY: &str = "12345678901234561234567890123456";
const GW: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const SRC_IP: [u8; 4] = [1, 2, 3, 4];

fn glb_config() -> (Config, Vec<u8>) {
    let dir = glb_vectors();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = load_config(
        &root.join("configs/glb/director.conf"),
        Some(&dir.join("table.bin")),
    )
    .unwrap();
    (cfg, std::fs::read(dir.join("table.bin")).unwrap())
}

fn snap(cfg: Config) -> Snapshot {
    Snapshot::compile(cfg, Some(MacAddr(DIRECTOR_MAC)), 1).unwrap()
}

/// Run frames through the pipeline; returns (verdict, output bytes) per frame.
fn run(s: &Snapshot, frames: &[Vec<u8>]) -> (Vec<(Verdict, Vec<u8>)>, CoreCounters) {
    let mut bufs: Vec<HeapBuf> = frames.iter().map(|f| HeapBuf::from_frame(f)).collect();
    let mut verdicts = vec![Verdict::Forward; bufs.len()];
    let mut c = CoreCounters::default();
    process_burst(s, &mut bufs, &mut verdicts, &mut c);
    (
        verdicts
            .into_iter()
            .zip(bufs.iter().map(|b| b.data().to_vec()))
            .collect(),
        c,
    )
}

/// Hash on all four fields, with GLB's default fields (source address) as the alt hash.
fn all_fields_and_alt_hash(cfg: &mut Config) {
    cfg.settings.hash_fields = rondo::config::HashFields {
        src_addr: true,
        dst_addr: true,
        src_port: true,
        dst_port: true,
    };
    cfg.settings.alt_hash_fields = Some(rondo::config::HashFields::default());
}

fn run1(s: &Snapshot, frame: Vec<u8>) -> (Verdict, Vec<u8>) {
    run(s, &[frame]).0.remove(0)
}

fn expect_v4(bin: &[u8], table: usize, hash_input: &[u8], hint: u16) -> ([u8; 4], [u8; 4], u16) {
    let h = siphash(&hex16(KEY), hash_input);
    let (p, s) = bin_row(bin, table, (h & 0xffff) as usize);
    (p, s, 0x8000 | ((h as u16 ^ hint) & 0x7fff))
}

#[test]
fn glb_capture_known_answers() {
    let (cfg, bin) = glb_config();
    let s = snap(cfg);
    let file = std::fs::File::open(glb_vectors().join("1k_pkts.pcap")).unwrap();
    let mut r = pcap_file::pcap::PcapReader::new(file).unwrap();
    let mut frames = Vec::new();
    while let Some(p) = r.next_packet() {
        frames.push(p.unwrap().data.to_vec());
    }
    assert_eq!(frames.len(), 1000);
    let (out, c) = run(&s, &frames);
    assert_eq!(c.forwarded, 1000, "{c:?}");
    assert_eq!(c.rx_packets, 1000);
    assert_eq!(c.bursts, 32, "1000 packets in bursts of 32");
    let (p, sec, sport) = expect_v4(&bin, 0, &[10, 11, 12, 13], 45678);
    for ((v, o), f) in out.iter().zip(&frames) {
        assert_eq!(*v, Verdict::Forward);
        let (dst, hops, sp, inner) = check_outer_v4(o, GW, DIRECTOR_MAC, SRC_IP);
        assert_eq!(dst, p);
        assert_eq!(hops, vec![sec]);
        assert_eq!(sp, sport);
        let ip_len = u16::from_be_bytes([f[16], f[17]]) as usize;
        assert_eq!(inner, f[14..14 + ip_len], "inner packet unchanged");
        assert_eq!(
            o.len(),
            14 + 20 + 8 + 12 + ip_len,
            "40 bytes of overhead (H=2)"
        );
    }
}

#[test]
fn many_clients_hit_the_rows_glb_built() {
    let (cfg, bin) = glb_config();
    let s = snap(cfg);
    for i in 0..500u32 {
        let src = (0x0a00_0000 + i * 7919).to_be_bytes();
        let sport = 1024 + (i as u16);
        let (v, o) = run1(&s, syn_v4(src, [1, 1, 1, 1], sport, 443));
        assert_eq!(v, Verdict::Forward);
        let (dst, hops, sp, _) = check_outer_v4(&o, GW, DIRECTOR_MAC, SRC_IP);
        let (p, sec, e_sport) = expect_v4(&bin, 0, &src, sport);
        assert_eq!((dst, hops, sp), (p, vec![sec], e_sport), "client {src:?}");
    }
    // second table, two binds
    for dst_vip in [[1, 1, 1, 2], [1, 1, 1, 3]] {
        let (v, o) = run1(&s, syn_v4([10, 0, 0, 9], dst_vip, 5555, 80));
        assert_eq!(v, Verdict::Forward);
        let (dst, hops, _, _) = check_outer_v4(&o, GW, DIRECTOR_MAC, SRC_IP);
        let (p, sec, _) = expect_v4(&bin, 1, &[10, 0, 0, 9], 0);
        assert_eq!((dst, hops), (p, vec![sec]));
    }
}

fn frag_needed(router: [u8; 4], vip: [u8; 4], client: [u8; 4], vport: u16, cport: u16) -> Vec<u8> {
    // Quote: the backend's reply from the VIP to the client, header + 8 bytes.
    let quoted_tcp = tcp_v4(vip, client, vport, cport, 0x10, &[]);
    let mut quote = ipv4_hdr(vip, client, 6, quoted_tcp.len(), 3, 0x4000);
    quote.extend_from_slice(&quoted_tcp[..8]);
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0xdc];
    icmp.extend(quote);
    let c = csum(&[&icmp]);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(0x0800);
    f.extend(ipv4_hdr(router, vip, 1, icmp.len(), 9, 0));
    f.extend(icmp);
    f
}

#[test]
fn icmp_frag_needed_reaches_the_flow_owner() {
    let (cfg, _) = glb_config();
    let s = snap(cfg);
    let (_, syn_out) = run1(&s, syn_v4([10, 11, 12, 13], [1, 1, 1, 1], 45678, 80));
    let (syn_dst, syn_hops, syn_sport, _) = check_outer_v4(&syn_out, GW, DIRECTOR_MAC, SRC_IP);
    let (v, o) = run1(
        &s,
        frag_needed([9, 9, 9, 9], [1, 1, 1, 1], [10, 11, 12, 13], 80, 45678),
    );
    assert_eq!(v, Verdict::Forward);
    let (dst, hops, sport, inner) = check_outer_v4(&o, GW, DIRECTOR_MAC, SRC_IP);
    assert_eq!(
        (dst, hops, sport),
        (syn_dst, syn_hops, syn_sport),
        "same backends and same UDP source port as the flow"
    );
    assert_eq!(inner[9], 1, "inner is the ICMP packet itself");

    // A quote cut short is dropped, not guessed.
    let mut short = frag_needed([9, 9, 9, 9], [1, 1, 1, 1], [10, 11, 12, 13], 80, 45678);
    short.truncate(short.len() - 6);
    let ip_len = (short.len() - 14) as u16;
    short[16..18].copy_from_slice(&ip_len.to_be_bytes());
    short[24..26].copy_from_slice(&[0, 0]);
    let c = csum(&[&short[14..34]]);
    short[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        run1(&s, short).0,
        Verdict::Drop(DropReason::IcmpQuoteTruncated)
    );
    // Frag-needed quoting a port no bind covers goes to the kernel.
    let other = frag_needed([9, 9, 9, 9], [1, 1, 1, 1], [10, 11, 12, 13], 22, 45678);
    assert_eq!(run1(&s, other).0, Verdict::Exception(ExceptionReason::Icmp));
}

#[test]
fn icmp_echo_forwarded_with_ip_id_hint_unless_disabled() {
    let (mut cfg, bin) = glb_config();
    let s = snap(cfg.clone());
    let (v, o) = run1(&s, echo_v4([10, 9, 8, 7], [1, 1, 1, 1], 0x1234));
    assert_eq!(v, Verdict::Forward);
    let (dst, hops, sport, _) = check_outer_v4(&o, GW, DIRECTOR_MAC, SRC_IP);
    let (p, sec, e_sport) = expect_v4(&bin, 0, &[10, 9, 8, 7], 0x1234);
    assert_eq!((dst, hops, sport), (p, vec![sec], e_sport));
    // Echo to an address with no bind, and echo replies: kernel.
    assert_eq!(
        run1(&s, echo_v4([10, 9, 8, 7], [8, 8, 8, 8], 1)).0,
        Verdict::Exception(ExceptionReason::NoBind)
    );
    cfg.settings.forward_icmp_ping_responses = false;
    let s = snap(cfg);
    assert_eq!(
        run1(&s, echo_v4([10, 9, 8, 7], [1, 1, 1, 1], 1)).0,
        Verdict::Exception(ExceptionReason::Icmp)
    );
}

#[test]
fn ipv6_vip_to_ipv4_backends() {
    let (cfg, bin) = glb_config();
    let s = snap(cfg);
    let vip: [u8; 16] = "fdb4:98ce:52d4::42"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let client: [u8; 16] = "2001:db8::99"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let f = syn_v6(client, vip, 40000, 80);
    let (v, o) = run1(&s, f.clone());
    assert_eq!(v, Verdict::Forward);
    let (dst, hops, sport, inner) = check_outer_v4(&o, GW, DIRECTOR_MAC, SRC_IP);
    assert_eq!(o[34 + 9], 41, "GUE proto 41 for inner IPv6");
    let (p, sec, e_sport) = expect_v4(&bin, 1, &client, 40000);
    assert_eq!((dst, hops, sport), (p, vec![sec], e_sport));
    assert_eq!(inner, f[14..]);
}

#[test]
fn hash_fields_order_and_alt_hash_give_four_hops() {
    let (mut cfg, bin) = glb_config();
    all_fields_and_alt_hash(&mut cfg);
    let s = snap(cfg);
    let (v, o) = run1(&s, syn_v4([10, 1, 2, 3], [1, 1, 1, 1], 0xabcd, 443));
    assert_eq!(v, Verdict::Forward);
    let (dst, hops, sport, _) = check_outer_v4(&o, GW, DIRECTOR_MAC, SRC_IP);
    let input = [10, 1, 2, 3, 1, 1, 1, 1, 0xab, 0xcd, 0x01, 0xbb];
    let (p, sec, e_sport) = expect_v4(&bin, 0, &input, 0xabcd);
    let (p2, s2, _) = expect_v4(&bin, 0, &[10, 1, 2, 3], 0);
    assert_eq!(dst, p);
    assert_eq!(
        hops,
        vec![sec, p2, s2],
        "primary, secondary, alt primary, alt secondary"
    );
    assert_eq!(sport, e_sport, "UDP source port from the main hash");
}

#[test]
fn vlan_tag_and_ethernet_padding() {
    let (cfg, bin) = glb_config();
    let s = snap(cfg);
    let f = syn_v4([10, 11, 12, 13], [1, 1, 1, 1], 45678, 80);
    let mut tagged = f[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&f[12..]);
    let (v, o) = run1(&s, tagged);
    assert_eq!(v, Verdict::Forward);
    let (dst, _, _, inner) = check_outer_v4(&o, GW, DIRECTOR_MAC, SRC_IP);
    assert_eq!(dst, expect_v4(&bin, 0, &[10, 11, 12, 13], 0).0);
    assert_eq!(inner, f[14..]);
    let mut padded = f.clone();
    padded.resize(60, 0xee);
    let (v, o) = run1(&s, padded);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(
        check_outer_v4(&o, GW, DIRECTOR_MAC, SRC_IP).3,
        f[14..],
        "padding not carried"
    );
}

#[test]
fn bad_input_is_counted_never_forwarded_wrongly() {
    let (cfg, _) = glb_config();
    let s = snap(cfg);
    let good = syn_v4([10, 11, 12, 13], [1, 1, 1, 1], 45678, 80);
    // Every truncation of a valid SYN: a drop or exception, never a forward, never a panic.
    for n in 0..good.len() {
        let (v, _) = run1(&s, good[..n].to_vec());
        assert!(
            !matches!(v, Verdict::Forward),
            "truncated to {n} bytes forwarded"
        );
    }
    let refix = |mut f: Vec<u8>| {
        f[24..26].copy_from_slice(&[0, 0]);
        let ihl = (f[14] & 0x0f) as usize * 4;
        let c = csum(&[&f[14..14 + ihl.clamp(20, f.len() - 14)]]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    };
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    assert_eq!(run1(&s, bad_ihl).0, Verdict::Drop(DropReason::BadIhl));
    let mut big_ihl = good.clone();
    big_ihl[14] = 0x4f; // 60-byte header in a 40-byte packet
    assert!(matches!(run1(&s, big_ihl).0, Verdict::Drop(_)));
    let mut long = good.clone();
    long[16..18].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(
        run1(&s, refix(long)).0,
        Verdict::Drop(DropReason::TruncatedIp),
        "total length beyond the frame"
    );
    let mut short = good.clone();
    short[16..18].copy_from_slice(&12u16.to_be_bytes());
    assert_eq!(
        run1(&s, refix(short)).0,
        Verdict::Drop(DropReason::BadIpLength),
        "total length below the header"
    );
    let mut v5 = good.clone();
    v5[14] = 0x55;
    assert_eq!(run1(&s, v5).0, Verdict::Drop(DropReason::BadIpVersion));
    // Fragments to a VIP: first (MF) and non-first (offset).
    for frag in [0x2000u16, 0x0010] {
        let mut f = good.clone();
        f[20..22].copy_from_slice(&frag.to_be_bytes());
        assert_eq!(
            run1(&s, refix(f)).0,
            Verdict::Drop(DropReason::Fragment),
            "frag {frag:#x}"
        );
    }
    // A fragment to someone else is the kernel's business.
    let mut f = syn_v4([10, 11, 12, 13], [192, 0, 2, 1], 45678, 80);
    f[20..22].copy_from_slice(&0x2000u16.to_be_bytes());
    assert_eq!(
        run1(&s, refix(f)).0,
        Verdict::Exception(ExceptionReason::NoBind)
    );
    // Zero-length L4 to a VIP.
    let mut z = eth(0x0800);
    z.extend(ipv4_hdr([10, 0, 0, 1], [1, 1, 1, 1], 6, 0, 1, 0));
    assert_eq!(run1(&s, z).0, Verdict::Drop(DropReason::TruncatedL4));
    // Unknown ethertype and ARP go to the kernel.
    let mut arp = eth(0x0806);
    arp.extend_from_slice(&[0; 28]);
    assert_eq!(run1(&s, arp).0, Verdict::Exception(ExceptionReason::NotIp));
    // QinQ is dropped.
    let mut qinq = good[..12].to_vec();
    qinq.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x81, 0x00, 0x00, 0x65]);
    qinq.extend_from_slice(&good[12..]);
    assert_eq!(run1(&s, qinq).0, Verdict::Drop(DropReason::StackedVlan));
    // No bind for this port / address: kernel.
    assert_eq!(
        run1(&s, syn_v4([10, 0, 0, 1], [1, 1, 1, 1], 1, 22)).0,
        Verdict::Exception(ExceptionReason::NoBind)
    );
    assert_eq!(
        run1(&s, udp_v4([10, 0, 0, 1], [1, 1, 1, 1], 1, 80, b"x")).0,
        Verdict::Exception(ExceptionReason::NoBind)
    );
}

fn ipv6_with_ext(chain: &[(u8, Vec<u8>)], last: u8, l4: &[u8]) -> Vec<u8> {
    let src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99];
    let vip: [u8; 16] = "fdb4:98ce:52d4::42"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let mut payload = Vec::new();
    for (i, (_, body)) in chain.iter().enumerate() {
        let next = chain.get(i + 1).map_or(last, |c| c.0);
        payload.push(next);
        payload.extend_from_slice(body);
    }
    payload.extend_from_slice(l4);
    let first = chain.first().map_or(last, |c| c.0);
    let mut f = eth(0x86dd);
    f.extend(ipv6_hdr(src, vip, first, payload.len(), 0));
    f.extend(payload);
    f
}

#[test]
fn ipv6_extension_headers() {
    let (cfg, _) = glb_config();
    let s = snap(cfg);
    let tcp = {
        let mut t = vec![
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ];
        t[16] = 0;
        t
    };
    let opts = vec![0u8, 1, 4, 0, 0, 0, 0]; // len 0 (8 bytes total): PadN
                                            // hop-by-hop + destination options, then TCP: forwarded.
    let f = ipv6_with_ext(&[(0, opts.clone()), (60, opts.clone())], 6, &tcp);
    assert_eq!(run1(&s, f).0, Verdict::Forward);
    // A fragment header: dropped as a fragment.
    let frag = vec![0u8, 0, 1, 0, 0, 0, 7];
    assert_eq!(
        run1(&s, ipv6_with_ext(&[(44, frag)], 6, &tcp)).0,
        Verdict::Drop(DropReason::Fragment)
    );
    // A long chain of destination options is cut off.
    let chain: Vec<(u8, Vec<u8>)> = (0..20).map(|_| (60, opts.clone())).collect();
    assert_eq!(
        run1(&s, ipv6_with_ext(&chain, 6, &tcp)).0,
        Verdict::Drop(DropReason::TooManyExtHeaders)
    );
    // An extension header that claims more bytes than there are.
    let big = vec![0xffu8, 1, 4, 0, 0, 0, 0];
    assert!(matches!(
        run1(&s, ipv6_with_ext(&[(60, big)], 6, &tcp)).0,
        Verdict::Drop(_)
    ));
}

fn shared_snapshot() -> &'static Snapshot {
    static S: std::sync::OnceLock<Snapshot> = std::sync::OnceLock::new();
    S.get_or_init(|| snap(glb_config().0))
}

#[test]
fn ipv6_backends_get_an_ipv6_outer_header_and_16_byte_hops() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = load_config(&root.join("configs/ipv6-backends.toml"), None).unwrap();
    let table = cfg.tables[0].clone();
    let s = snap(cfg);
    let vip: [u8; 16] = "2001:db8:100::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let client: [u8; 16] = "2001:db8:ffff::7"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let f = syn_v6(client, vip, 33333, 443);
    let (v, o) = run1(&s, f.clone());
    assert_eq!(v, Verdict::Forward);
    assert_eq!(&o[0..6], &[2, 0, 0, 0, 0, 0xfe]);
    assert_eq!(&o[12..14], &[0x86, 0xdd]);
    let ip = &o[14..54];
    assert_eq!(ip[0] >> 4, 6);
    assert_eq!(ip[6], 17);
    assert_eq!(
        u16::from_be_bytes([ip[4], ip[5]]) as usize,
        o.len() - 54,
        "payload length"
    );
    let src6: [u8; 16] = "2001:db8::10"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    assert_eq!(&ip[8..24], &src6);
    let udp = &o[54..];
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 19523);
    let ulen = (udp.len() as u32).to_be_bytes();
    assert_eq!(
        csum(&[&ip[8..40], &ulen, &[0, 0, 0, 17], udp]),
        0,
        "udp checksum over the v6 pseudo-header"
    );
    let gue = &udp[8..];
    // 3 hops per row: 2 in the list, 16 bytes each -> hlen = 1 + 2*4
    assert_eq!(gue[0], 9);
    assert_eq!(gue[1], 41);
    assert_eq!(gue[7], 2, "hop_count");
    // Hash: src_addr then src_port, with the table's key; hops are that row's backends.
    let mut input = client.to_vec();
    input.extend_from_slice(&33333u16.to_be_bytes());
    let h = siphash(&hex16("00112233445566778899aabbccddeeff"), &input);
    let row = table.row(h as u16);
    let ip_of = |i: u32| match table.spec.backends[i as usize].ip {
        std::net::IpAddr::V6(a) => a.octets(),
        _ => panic!("v4 backend"),
    };
    assert_eq!(&ip[24..40], &ip_of(row[0]));
    assert_eq!(&gue[8..24], &ip_of(row[1]));
    assert_eq!(&gue[24..40], &ip_of(row[2]));
    assert_eq!(&gue[40..], &f[14..], "inner packet unchanged");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn any_bytes_get_a_verdict(frame in proptest::collection::vec(any::<u8>(), 0..200), prefix in 0usize..3) {
        let s = shared_snapshot();
        // Bias towards plausible headers: sometimes start from a real SYN.
        let mut f = match prefix {
            0 => frame.clone(),
            _ => {
                let mut g = syn_v4([10, 11, 12, 13], [1, 1, 1, 1], 45678, 80);
                let n = frame.len().min(g.len() - 14);
                for (i, b) in frame.iter().take(n).enumerate() {
                    if b % 7 == 0 { g[14 + i] = *b; }
                }
                g
            }
        };
        f.truncate(1600);
        let (out, c) = run(s, std::slice::from_ref(&f));
        prop_assert_eq!(c.rx_packets, 1);
        prop_assert_eq!(c.forwarded + c.total_drops() + c.total_exceptions(), 1);
        if out[0].0 == Verdict::Forward {
            check_outer_v4(&out[0].1, GW, DIRECTOR_MAC, SRC_IP);
        }
    }
}

/// A full burst goes through the eight-lane hasher; every packet must come out exactly as
/// the independent computation says (all four hash fields, alt hash on), and a burst mixing
/// families, tables and bad frames must give each frame what it gets alone.
#[test]
fn a_burst_hashes_like_one_packet_at_a_time() {
    let (mut cfg, bin) = glb_config();
    all_fields_and_alt_hash(&mut cfg);
    let s = snap(cfg);
    let frames: Vec<Vec<u8>> = (0..32u16)
        .map(|i| {
            syn_v4(
                [10, 7, (i >> 8) as u8, i as u8],
                [1, 1, 1, 1],
                1000 + i,
                443,
            )
        })
        .collect();
    let (out, c) = run(&s, &frames);
    assert_eq!(c.forwarded, 32);
    for (i, (v, o)) in out.iter().enumerate() {
        assert_eq!(*v, Verdict::Forward);
        let (dst, hops, sport, _) = check_outer_v4(o, GW, DIRECTOR_MAC, SRC_IP);
        let cport = (1000 + i as u16).to_be_bytes();
        let input = [
            10, 7, 0, i as u8, 1, 1, 1, 1, cport[0], cport[1], 0x01, 0xbb,
        ];
        let (p, sec, e_sport) = expect_v4(&bin, 0, &input, 1000 + i as u16);
        let (p2, s2, _) = expect_v4(&bin, 0, &[10, 7, 0, i as u8], 0);
        assert_eq!(
            (dst, hops, sport),
            (p, vec![sec, p2, s2], e_sport),
            "packet {i}"
        );
    }

    let vip6: [u8; 16] = "fdb4:98ce:52d4::42"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let mut mixed = Vec::new();
    for i in 0..40u16 {
        let mut c6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        c6[15] = i as u8;
        mixed.push(match i % 5 {
            0 | 1 => syn_v4([10, 8, 0, i as u8], [1, 1, 1, 1], 2000 + i, 80),
            2 => syn_v6(c6, vip6, 3000 + i, 80),
            3 => echo_v4([10, 9, 0, i as u8], [1, 1, 1, 1], i),
            _ => syn_v4([10, 8, 0, i as u8], [1, 1, 1, 1], 2000 + i, 80)[..30].to_vec(),
        });
    }
    let (burst, _) = run(&s, &mixed);
    for (i, f) in mixed.iter().enumerate() {
        assert_eq!(
            burst[i],
            run1(&s, f.clone()),
            "frame {i} in a burst and alone"
        );
    }
}

/// The GLB snapshot under every hash field set (1..16, bit 0 source address, 1 destination
/// address, 2 source port, 3 destination port), without and with alternate hash fields.
fn field_set_snapshots() -> &'static [Snapshot] {
    static S: std::sync::OnceLock<Vec<Snapshot>> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let (cfg, _) = glb_config();
        let mut all = Vec::new();
        for alt in [false, true] {
            for bits in 1u8..16 {
                let mut c = cfg.clone();
                c.settings.hash_fields = rondo::config::HashFields {
                    src_addr: bits & 1 != 0,
                    dst_addr: bits & 2 != 0,
                    src_port: bits & 4 != 0,
                    dst_port: bits & 8 != 0,
                };
                c.settings.alt_hash_fields = alt.then(rondo::config::HashFields::default);
                all.push(snap(c));
            }
        }
        all
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
    /// The classifier's common-case shortcut and the encapsulation's IPv4 two-hop shortcut
    /// give exactly what the general code gives, on frames near the common case (edited
    /// headers, cut or padded frames, TCP and UDP, every hash field set).
    #[test]
    fn the_common_case_shortcuts_equal_the_general_code(
        udp in any::<bool>(),
        dport in prop::sample::select(vec![80u16, 443, 53, 8080]),
        payload in 0usize..40,
        fill in prop::sample::select(vec![0u8, 0x5a, 0xff]),
        edits in proptest::collection::vec((0usize..64, any::<u8>()), 0..4),
        cut in 0usize..120,
        pad in 0usize..24,
        which in 0usize..30,
    ) {
        let snaps = field_set_snapshots();
        let s = &snaps[which];
        let (src, vip) = ([10, 1, 2, 3], [1, 1, 1, 1]);
        let mut f = if udp {
            udp_v4(src, vip, 5353, dport, &vec![fill; payload])
        } else {
            syn_v4(src, vip, 40000, dport)
        };
        f.extend(std::iter::repeat_n(0xee, pad));
        for (at, b) in edits {
            if let Some(x) = f.get_mut(at) {
                *x = b;
            }
        }
        f.truncate(cut.max(1));
        let fast = rondo::datapath::classify::classify(s, &f);
        let general = rondo::datapath::classify::classify_without_shortcut(s, &f);
        prop_assert_eq!(fast, general);
        if let Ok(flow) = fast {
            let (mut a, mut b) = (HeapBuf::from_frame(&f), HeapBuf::from_frame(&f));
            let ra = rondo::datapath::encap::encapsulate(s, &flow, &mut a);
            let rb = rondo::datapath::encap::encapsulate_without_shortcut(s, &flow, &mut b);
            prop_assert_eq!(ra, rb);
            prop_assert_eq!(a.data(), b.data());
        }
    }
}

/// `frame` in a buffer with only `headroom` bytes in front of it.
fn with_headroom(frame: &[u8], headroom: usize) -> HeapBuf {
    let mut b = HeapBuf::from_frame(frame);
    let k = b.headroom().saturating_sub(headroom);
    assert!(b.prepend(k));
    b.data_mut()[..frame.len()].copy_from_slice(frame);
    assert!(b.trim(k));
    assert_eq!(b.data(), frame);
    b
}

/// What the general code alone does with `frame`: its verdict and, when forwarded, the
/// encapsulated bytes (otherwise the frame as it came).
fn general_path(s: &Snapshot, frame: &[u8], headroom: usize) -> (Verdict, Vec<u8>) {
    use rondo::datapath::classify::classify_without_shortcut;
    use rondo::datapath::encap::encapsulate_without_shortcut;
    match classify_without_shortcut(s, frame) {
        Err(v) => (v, frame.to_vec()),
        Ok(flow) => {
            let mut b = with_headroom(frame, headroom);
            match encapsulate_without_shortcut(s, &flow, &mut b) {
                Ok(_) => (Verdict::Forward, b.data().to_vec()),
                Err(r) => (Verdict::Drop(r), frame.to_vec()),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]
    /// A burst through the pipeline, where the express lane takes the common case and the
    /// general path the rest, gives every frame exactly what the general code alone gives
    /// it: the verdict, the encapsulated bytes, the frame untouched when it goes to the
    /// kernel, and the counts. Frames near the common case, to the VIPs of both tables and
    /// to none (edited headers, cut or padded frames, TCP and UDP, too little headroom),
    /// every hash field set, with and without alternate hash fields (no express lane then).
    #[test]
    fn a_burst_through_the_express_lane_equals_the_general_code(
        frames in proptest::collection::vec((
            (any::<bool>(), prop::sample::select(vec![1u8, 1, 1, 2, 3, 9])),
            prop::sample::select(vec![80u16, 443, 53, 8080]),
            0usize..40,
            proptest::collection::vec((0usize..64, any::<u8>()), 0..3),
            prop::sample::select(vec![0usize, 30, 53, 54, 55, 60, 200]),
            0usize..24,
            prop::sample::select(vec![128usize, 128, 128, 60, 54, 53, 0]),
        ), 1..40),
        which in 0usize..30,
    ) {
        let snaps = field_set_snapshots();
        let s = &snaps[which];
        let mut built = Vec::new();
        for (k, ((udp, vip), dport, payload, edits, cut, pad, headroom)) in frames.into_iter().enumerate() {
            let (src, dst) = ([10, 1, 2, k as u8], [1, 1, 1, vip]);
            let mut f = if udp {
                udp_v4(src, dst, 5353, dport, &vec![0x5a; payload])
            } else {
                syn_v4(src, dst, 40000 + k as u16, dport)
            };
            f.extend(std::iter::repeat_n(0xee, pad));
            for (at, b) in edits {
                if let Some(x) = f.get_mut(at) {
                    *x = b;
                }
            }
            if cut != 0 {
                f.truncate(cut);
            }
            built.push((f, headroom));
        }
        let mut bufs: Vec<HeapBuf> = built.iter().map(|(f, h)| with_headroom(f, *h)).collect();
        let mut verdicts = vec![Verdict::Forward; bufs.len()];
        let mut c = CoreCounters::default();
        let sent = rondo::datapath::process_burst_counted(s, &mut bufs, &mut verdicts, &mut c, &mut rondo::datapath::NoSink);
        prop_assert_eq!(sent, verdicts.iter().filter(|v| **v == Verdict::Forward).count());
        let mut want = CoreCounters::default();
        for (i, (f, h)) in built.iter().enumerate() {
            let (v, bytes) = general_path(s, f, *h);
            prop_assert_eq!(verdicts[i], v, "frame {}", i);
            match v {
                Verdict::Forward => {
                    prop_assert_eq!(bufs[i].data(), &bytes[..], "frame {}", i);
                    want.forwarded += 1;
                    want.forwarded_bytes += bytes.len() as u64;
                }
                Verdict::Exception(r) => {
                    prop_assert_eq!(bufs[i].data(), &f[..], "frame {} to the kernel", i);
                    want.exceptions[r as usize] += 1;
                }
                Verdict::Drop(r) => want.drops[r as usize] += 1,
            }
        }
        prop_assert_eq!(c.forwarded, want.forwarded);
        prop_assert_eq!(c.forwarded_bytes, want.forwarded_bytes);
        prop_assert_eq!(c.drops, want.drops);
        prop_assert_eq!(c.exceptions, want.exceptions);
        prop_assert_eq!(c.rx_packets, built.len() as u64);
        prop_assert_eq!(c.rx_bytes, built.iter().map(|(f, _)| f.len() as u64).sum::<u64>());
    }
}

/// The same bursts with the express lane switched off (`Snapshot::disable_express_lane`,
/// what `pipeline_burst_of_32_general` in `benches/datapath.rs` measures): every frame gets
/// the same verdict and bytes, and the counters agree, so the bench row compares like
/// with like.
#[test]
fn a_burst_without_the_express_lane_is_the_same() {
    let (cfg, _) = glb_config();
    let lane = snap(cfg.clone());
    let mut general = snap(cfg);
    general.disable_express_lane();
    // One table (the usual burst), then several tables, families and bad frames.
    let one: Vec<Vec<u8>> = (0..32u16)
        .map(|i| syn_v4([10, 5, (i >> 8) as u8, i as u8], [1, 1, 1, 1], 3000 + i, 80))
        .collect();
    let mut mixed = Vec::new();
    for i in 0..40u16 {
        mixed.push(match i % 6 {
            0 => syn_v4([10, 6, 0, i as u8], [1, 1, 1, 1], 2000 + i, 80),
            1 => syn_v4([10, 6, 0, i as u8], [1, 1, 1, 2], 2000 + i, 80),
            2 => udp_v4([10, 6, 1, i as u8], [1, 1, 1, 3], 5353, 53, &[0x5a; 9]),
            3 => echo_v4([10, 9, 0, i as u8], [1, 1, 1, 1], i),
            4 => syn_v4([10, 6, 0, i as u8], [9, 9, 9, 9], 2000 + i, 80),
            _ => syn_v4([10, 6, 0, i as u8], [1, 1, 1, 1], 2000 + i, 80)[..30].to_vec(),
        });
    }
    for frames in [one, mixed] {
        let (a, ca) = run(&lane, &frames);
        let (b, cb) = run(&general, &frames);
        assert!(ca.forwarded > 0);
        assert_eq!(a, b);
        assert_eq!(
            (ca.forwarded, ca.forwarded_bytes, ca.rx_packets, ca.rx_bytes),
            (cb.forwarded, cb.forwarded_bytes, cb.rx_packets, cb.rx_bytes)
        );
        assert_eq!((ca.drops, ca.exceptions), (cb.drops, cb.exceptions));
    }
}

/// A sink that runs a burst of its own from inside `region` (the pipeline's per-thread
/// records are in use then): the inner burst gets fresh records and both come out as if
/// run one after the other.
#[test]
fn a_burst_inside_a_sink_gets_its_own_records() {
    use rondo::datapath::{process_burst_counted, SentSink};
    let s = shared_snapshot();
    struct Nested<'a> {
        snap: &'a Snapshot,
        frames: Vec<Vec<u8>>,
        out: Vec<(Verdict, Vec<u8>)>,
    }
    impl SentSink for Nested<'_> {
        fn region<'s>(&mut self, _: &'s Snapshot) -> &'s [std::sync::atomic::AtomicU64] {
            self.out = run(self.snap, &self.frames).0;
            &[]
        }
    }
    let outer: Vec<Vec<u8>> = (0..32u8)
        .map(|i| syn_v4([10, 3, 0, i], [1, 1, 1, 1], 5000 + u16::from(i), 80))
        .collect();
    let inner: Vec<Vec<u8>> = (0..32u8)
        .map(|i| syn_v4([10, 4, 0, i], [1, 1, 1, 1], 6000 + u16::from(i), 80))
        .collect();
    let mut sink = Nested {
        snap: s,
        frames: inner.clone(),
        out: Vec::new(),
    };
    let mut bufs: Vec<HeapBuf> = outer.iter().map(|f| HeapBuf::from_frame(f)).collect();
    let mut verdicts = vec![Verdict::Forward; bufs.len()];
    let mut c = CoreCounters::default();
    process_burst_counted(s, &mut bufs, &mut verdicts, &mut c, &mut sink);
    assert_eq!(c.forwarded, 32);
    assert_eq!(sink.out, run(s, &inner).0, "inner burst as if alone");
    let alone = run(s, &outer).0;
    for (i, b) in bufs.iter().enumerate() {
        assert_eq!(
            (verdicts[i], b.data().to_vec()),
            alone[i].clone(),
            "outer {i}"
        );
    }
}
