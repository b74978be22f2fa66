//! pktgen against the director: in-process on mem ports (every packet verified, none lost,
//! the report consistent), a deliberately wrong table the verifier must catch, rates above
//! what the port takes, foreign frames, and `rondo pktgen` against `rondo run` on a veth
//! pair (root only).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::veth::{Netns, Veth};
use rondo::config::{config_from_str, Config};
use rondo::drivers::{mem, BufPool, Port};
use rondo::pktgen::{
    self, flows, FlowSpec, Kind, MemPeerRx, MemPeerTx, Options, Report, Size, Verification,
    Verifier,
};
use rondo::runtime::control::Control;
use rondo::runtime::{ExceptionPath, IdlePolicy, Runtime, RuntimeOptions};

const CONFIG: &str = r#"
[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }, { ip = "fdb4:98ce:52d4::42", proto = "tcp", port = 80 }]
backends = [{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }, { ip = "10.1.0.3" }, { ip = "10.1.0.4" }]

[[tables]]
name = "api"
hash_key = "00112233445566778899aabbccddeeff"
seed = "12345678901234561234567890123456"
binds = [{ ip = "1.1.2.0/24", proto = "tcp", port = 443 }]
backends = [{ ip = "10.2.0.1" }, { ip = "10.2.0.2" }, { ip = "10.2.0.3" }]

[[tables]]
name = "dns"
hash_key = "0123456789abcdef0123456789abcdef"
seed = "fedcba9876543210fedcba9876543210"
binds = [{ ip = "1.1.3.0/24", proto = "udp", port = 53 }]
backends = [{ ip = "10.3.0.1" }, { ip = "10.3.0.2" }]
"#;

fn config() -> Config {
    config_from_str(CONFIG, "pktgen.toml").unwrap()
}

fn spec(cfg: &Config, flows: u32) -> FlowSpec {
    let tables: Vec<_> = cfg.tables.iter().map(|t| t.spec.clone()).collect();
    FlowSpec {
        flows,
        clients: vec![
            "10.200.0.0/16".parse().unwrap(),
            "2001:db8:c::/64".parse().unwrap(),
        ],
        client_ports: (1024, 65535),
        vips: flows::vips_from_tables(&tables),
        size: Size::Imix,
        mix: "syn=2,ack=4,fin=1,echo=1,frag=1".parse().unwrap(),
        dst_mac: [2, 0, 0, 0, 0, 0x10],
        src_mac: [2, 0, 0, 0, 0, 0x20],
    }
}

/// pktgen on the far side of a mem port with the runtime forwarding `cfg`; the verifier
/// checks against `verify_cfg`.
fn in_process(cfg: &Config, verify_cfg: &Config, opts: &Options) -> Report {
    in_process_with(
        cfg,
        verify_cfg,
        opts,
        flows::build(&spec(cfg, 512)).unwrap(),
    )
}

fn in_process_with(
    cfg: &Config,
    verify_cfg: &Config,
    opts: &Options,
    flows: Vec<rondo::pktgen::GeneratedFlow>,
) -> Report {
    in_process_also(cfg, verify_cfg, &[], opts, flows)
}

/// The same, the verifier also accepting what the `also` configs say.
fn in_process_also(
    cfg: &Config,
    verify_cfg: &Config,
    also: &[&Config],
    opts: &Options,
    flows: Vec<rondo::pktgen::GeneratedFlow>,
) -> Report {
    let pool = BufPool::new(16384, 2048).unwrap();
    let (port, peer) = mem::pair("pktgen", 2, 2048, pool).unwrap();
    let mac = Port::mac(&port).unwrap();
    let mut control = Control::new(None, Some(mac));
    let snap = control.compile(cfg.clone()).unwrap();
    let rt = Runtime::start(
        port,
        snap,
        RuntimeOptions {
            workers: 2,
            idle: IdlePolicy::Sleep {
                after: 64,
                micros: 20,
            },
            exception: ExceptionPath::Drop,
            ..RuntimeOptions::default()
        },
    )
    .unwrap();
    let mut verifier = Verifier::new(verify_cfg, &flows, Some(mac.0)).unwrap();
    for c in also {
        verifier.accept_also(c, &flows).unwrap();
    }
    let lines = AtomicU64::new(0);
    let report = pktgen::run(
        "mem:pktgen",
        MemPeerTx(peer.clone()),
        Some((MemPeerRx(peer), verifier)),
        &flows,
        opts,
        |_| {
            lines.fetch_add(1, Ordering::Relaxed);
        },
    )
    .unwrap();
    let totals = rt.shutdown();
    println!("{}", report.summary());
    println!(
        "director: forwarded {} drops {}",
        totals.forwarded,
        totals.total_drops()
    );
    if opts.dashboard.is_some() {
        assert!(lines.load(Ordering::Relaxed) >= 1, "dashboard lines");
    }
    report
}

/// Send `count` packets at `rate` pps, then wait 2 s for the last replies; no dashboard.
fn counted(rate: u64, count: u64) -> Options {
    Options {
        rate: Some(rate),
        duration: None,
        count: Some(count),
        drain: Duration::from_secs(2),
        stop: Arc::new(AtomicBool::new(false)),
        dashboard: None,
    }
}

/// `cfg` with its first table (web) rebuilt after `change` to its spec.
fn with_web_table(cfg: &Config, change: impl FnOnce(&mut rondo::table::TableSpec)) -> Config {
    let mut c = cfg.clone();
    let mut spec = c.tables[0].spec.clone();
    change(&mut spec);
    c.tables[0] = rondo::table::ForwardingTable::build(spec, c.settings.row_policy).unwrap();
    c
}

#[test]
fn every_packet_is_verified_and_none_lost_on_mem_ports() {
    let cfg = config();
    let opts = Options {
        rate: Some(8000),
        duration: None,
        count: Some(8000),
        drain: Duration::from_secs(2),
        stop: Arc::new(AtomicBool::new(false)),
        dashboard: Some(Duration::from_millis(300)),
    };
    let r = in_process(&cfg, &cfg, &opts);
    assert!(r.ok, "{}", r.summary());
    assert_eq!(r.tx_packets, 8000);
    assert_eq!(r.verified, 8000);
    assert_eq!(r.rx_packets, 8000);
    assert_eq!((r.wrong_backend, r.bad_header, r.foreign), (0, 0, 0));
    assert_eq!((r.seq.lost, r.seq.duplicates, r.seq.unexpected), (0, 0, 0));
    assert!(
        !r.rate_not_reached,
        "8000 pps is well below what mem ports take"
    );
    // Pacing: 8000 packets at 8000 pps take about a second.
    assert!(
        (0.9..1.5).contains(&r.tx_seconds),
        "paced over {} s",
        r.tx_seconds
    );
    let l = r.latency;
    assert_eq!(l.samples, 8000);
    assert!(l.p50_us > 0.0 && l.p50_us <= l.p90_us && l.p90_us <= l.p99_us);
    assert!(l.p99_us <= l.p999_us && l.p999_us <= l.max_us);
    assert!(l.max_us < 5_000_000.0, "latency in microseconds: {l:?}");
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "tx_packets",
        "achieved_tx_pps",
        "requested_pps",
        "verified",
        "lost",
        "duplicates",
        "reordered",
        "foreign",
        "ok",
    ] {
        assert!(json.get(key).is_some(), "report has {key}: {json}");
    }
    assert_eq!(json["latency"]["samples"], 8000);
    assert!(
        r.tx_bytes > 8000 * 60 && r.rx_bytes > r.tx_bytes,
        "GUE adds bytes"
    );
}

/// Frames already waiting on the receive side when a run begins (here: packets with this
/// run's flow ids and sequence numbers, forwarded earlier by a director with another MAC,
/// as a previous run or another pktgen leaves them) are discarded and counted as stale,
/// not judged as this run's output.
#[test]
fn frames_queued_before_the_run_are_discarded_as_stale() {
    let cfg = config();
    let pool = BufPool::new(8192, 2048).unwrap();
    let (port, peer) = mem::pair("stale", 1, 2048, pool).unwrap();
    let mac = Port::mac(&port).unwrap();
    let other = rondo::wire::MacAddr([2, 0, 0, 0, 0x5e, 0x01]);
    assert_ne!(other, mac);
    let rt = Runtime::start(
        port,
        Control::new(None, Some(other))
            .compile(cfg.clone())
            .unwrap(),
        RuntimeOptions {
            workers: 1,
            exception: ExceptionPath::Drop,
            ..RuntimeOptions::default()
        },
    )
    .unwrap();
    let flows = flows::build(&spec(&cfg, 64)).unwrap();
    let mut queued = 0;
    for fl in flows.iter().filter(|f| f.kind == Kind::Syn).take(8) {
        let mut frame = fl.frame.to_vec();
        fl.stamp(&mut frame, 0, 0);
        assert!(peer.send(0, &frame));
        queued += 1;
    }
    let t = std::time::Instant::now();
    while peer.tx_pending() < queued && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        peer.tx_pending(),
        queued,
        "the director forwarded the early frames: {:?}",
        rt.totals()
    );
    // From now on the director sends with the MAC the verifier expects.
    rt.swap(Control::new(None, Some(mac)).compile(cfg.clone()).unwrap());
    let verifier = Verifier::new(&cfg, &flows, Some(mac.0)).unwrap();
    let r = pktgen::run(
        "mem:stale",
        MemPeerTx(peer.clone()),
        Some((MemPeerRx(peer), verifier)),
        &flows,
        &counted(4000, 1000),
        |_| {},
    )
    .unwrap();
    rt.shutdown();
    println!("{}", r.summary());
    assert!(r.ok, "{}", r.summary());
    assert_eq!(r.stale, queued as u64);
    assert_eq!((r.verified, r.rx_packets), (1000, 1000));
    assert_eq!((r.bad_header, r.foreign, r.seq.duplicates), (0, 0, 0));
    assert!(r.summary().contains("stale"), "{}", r.summary());
}

#[test]
fn a_wrong_table_fails_verification() {
    let cfg = config();
    // The verifier believes the web table has a different hash key: the director's choices
    // no longer match most flows.
    let wrong = with_web_table(&cfg, |t| t.hash_key[0] ^= 0xff);
    let opts = counted(4000, 2000);
    let r = in_process(&cfg, &wrong, &opts);
    assert!(!r.ok, "the verifier must fail: {}", r.summary());
    assert!(r.wrong_backend > 100, "{}", r.summary());
    assert!(r.verified > 0, "the api table is still right");
    // Flows whose wrong row happens to name the same backends still carry the wrong hash
    // in the UDP source port: those are bad headers.
    assert_eq!(r.verified + r.wrong_backend + r.bad_header, 2000);
    assert_eq!(r.seq.lost, 0, "wrong packets arrived: not lost");
    assert!(
        r.examples.iter().any(|e| e.contains("the table says")),
        "{:?}",
        r.examples
    );
}

/// A table change under traffic (perf/run's reload scenario): the director forwards with a
/// backend draining while the verifier knows the file's tables; with `accept_also` the
/// changed tables, every packet is verified and the report says how many only they explain.
#[test]
fn accept_also_verifies_packets_forwarded_under_changed_tables() {
    let cfg = config();
    let changed = with_web_table(&cfg, |t| {
        t.backends[1].state = rondo::table::BackendState::Draining
    });
    let opts = counted(4000, 2000);
    let flows = || flows::build(&spec(&cfg, 512)).unwrap();
    let strict = in_process_with(&changed, &cfg, &opts, flows());
    assert!(
        strict.wrong_backend > 0,
        "the change moves some flows: {}",
        strict.summary()
    );
    let r = in_process_also(&changed, &cfg, &[&changed], &opts, flows());
    assert!(r.ok, "{}", r.summary());
    assert_eq!(r.verified, 2000);
    assert_eq!(r.verified_alt, strict.wrong_backend, "{}", r.summary());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["verified_alt"], r.verified_alt);
    // The file's own tables still verify without the alternative being used.
    let same = in_process_also(&cfg, &cfg, &[&changed], &opts, flows());
    assert!(same.ok && same.verified_alt == 0, "{}", same.summary());
}

#[test]
fn rates_above_the_port_are_reported_and_foreign_frames_counted() {
    let cfg = config();
    let opts = counted(500_000_000, 3000);
    let r = in_process(&cfg, &cfg, &opts);
    assert_eq!(r.requested_pps, Some(500_000_000));
    assert!(r.rate_not_reached, "{}", r.summary());
    assert!(r.achieved_tx_pps < 500_000_000.0 && r.achieved_tx_pps > 0.0);
    assert_eq!(r.tx_packets, 3000, "nothing silently dropped at the sender");
    // Whatever arrived is accounted for exactly once.
    assert_eq!(r.verified + r.seq.lost, 3000, "{}", r.summary());

    // Foreign frames: ARP, a GUE frame not from this run, garbage.
    let flows = flows::build(&spec(&cfg, 4)).unwrap();
    let mut v = Verifier::new(&cfg, &flows, None).unwrap();
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.resize(60, 0);
    assert_eq!(v.check(&arp, 0), Verification::Foreign);
    assert_eq!(v.check(&[], 0), Verification::Foreign);
    assert_eq!(v.check(&[0x45; 7], 0), Verification::Foreign);
    let mut gue = common::udp_v4([1, 2, 3, 4], [5, 6, 7, 8], 40000, 19523, &[0; 64]);
    gue[42] = 2; // hlen 2
    assert_eq!(v.check(&gue, 0), Verification::Foreign);
    assert_eq!(v.foreign, 4);
}

#[test]
fn the_duration_ends_the_run_when_the_port_takes_no_frames() {
    // Nobody reads the port side of the pair: its rings fill and then refuse every frame.
    let cfg = config();
    let pool = BufPool::new(16384, 2048).unwrap();
    let (_port, peer) = mem::pair("stuck", 1, 256, pool).unwrap();
    let flows = flows::build(&spec(&cfg, 16)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let opts = Options {
        rate: None,
        duration: Some(Duration::from_secs(2)),
        count: None,
        drain: Duration::from_millis(100),
        stop: stop.clone(),
        dashboard: None,
    };
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let started = std::time::Instant::now();
    let h = std::thread::spawn(move || {
        let r = pktgen::run(
            "mem:stuck",
            MemPeerTx(peer),
            None::<(MemPeerRx, Verifier)>,
            &flows,
            &opts,
            |_| {},
        );
        let _ = done_tx.send(started.elapsed());
        r
    });
    let took = done_rx.recv_timeout(Duration::from_secs(10));
    // Unblock a run that ignored its deadline, so the test ends either way.
    stop.store(true, Ordering::Relaxed);
    let r = h.join().unwrap().unwrap();
    let took = took.unwrap_or_else(|_| panic!("--duration 2 still running after 10 s"));
    assert!(took < Duration::from_secs(10), "{took:?}");
    println!("{}", r.summary());
    assert_eq!(r.tx_packets, 256, "what the rings held: {}", r.summary());
    assert!(r.tx_unsent > 0, "{}", r.summary());
    assert!(r.summary().contains("would not take"), "{}", r.summary());
}

// ---- rondo pktgen against rondo run on a veth pair ----

struct Director(Child);

impl Drop for Director {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn rondo_pktgen_against_rondo_run_on_a_veth() {
    veth_scenario('g', |iface| (format!("af_packet:{iface}"), Vec::new()));
}

/// The same with pktgen on DPDK's net_af_packet (the director stays on af_packet).
#[cfg(feature = "dpdk")]
#[test]
fn rondo_pktgen_on_dpdk_against_rondo_run_on_a_veth() {
    veth_scenario('h', |iface| {
        (
            format!("dpdk:net_af_packet0,iface={iface}"),
            vec![
                "--eal-args".to_string(),
                format!(
                    "--no-huge -m 256 --no-shconf --no-telemetry --file-prefix rondo-pg-{}",
                    std::process::id()
                ),
            ],
        )
    });
}

fn veth_scenario(tag: char, port: impl Fn(&str) -> (String, Vec<String>)) {
    let Some(v) = Veth::new(tag) else { return };
    let ns = match Netns::new(tag) {
        Ok(ns) => ns,
        Err(e) => {
            common::skip(&format!("cannot create a network namespace: {e}"));
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let director_mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", v.a))
        .unwrap()
        .trim()
        .to_string();
    ns.adopt(&v.a).unwrap();
    let cfg_path = dir.path().join("director.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[[ports]]\nspec = \"af_packet:{}\"\n\n[runtime]\nworkers = 1\nidle = \"sleep\"\n{CONFIG}",
            v.a
        ),
    )
    .unwrap();
    let notify = dir.path().join("notify");
    let listener = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let log = dir.path().join("run.log");
    let _d = Director(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_rondo")])
            .args(["run", "--stats-interval", "0", "--config"])
            .arg(&cfg_path)
            .env("NOTIFY_SOCKET", &notify)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    assert_eq!(common::recv_notify(&listener, &log), b"READY=1");

    let report: PathBuf = dir.path().join("report.json");
    let (spec, extra) = port(&v.b);
    let out = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args(["pktgen", "--config"])
        .arg(&cfg_path)
        .args(["--port", &spec])
        .args(&extra)
        .args(["--dst-mac", &director_mac])
        .args(["--rate", "2000", "--count", "3000", "--flows", "128"])
        .args(["--size", "128", "--mix", "syn=1,ack=2,fin=1,echo=1,frag=1"])
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stdout}{stderr}{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(stderr.contains("Mpps"), "dashboard: {stderr}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    println!("{r:#}");
    assert_eq!(r["tx_packets"], 3000);
    assert_eq!(r["verified"], 3000);
    assert_eq!(r["lost"], 0);
    assert_eq!(r["wrong_backend"], 0);
    assert_eq!(r["ok"], true);
    assert!(r["latency"]["p99_us"].as_f64().unwrap() > 0.0);
}

fn rondo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_writes_a_capture_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("d.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let cfg = cfg.to_str().unwrap();
    let pcap = dir.path().join("out.pcap");
    let json = dir.path().join("r.json");
    let out = rondo(&[
        "pktgen",
        "--config",
        cfg,
        "--port",
        &format!("pcap:{}", pcap.display()),
        "--rate",
        "max",
        "--count",
        "500",
        "--size",
        "imix",
        "--mix",
        "syn=1,ack=1,fin=1,echo=1,frag=1",
        "--report",
        json.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{out:?}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["tx_packets"], 500);
    assert_eq!(r["verifying"], false);
    assert_eq!(r["requested_pps"], serde_json::Value::Null);
    // The capture holds the 500 frames (pcap record headers are 16 bytes).
    let bytes = std::fs::read(&pcap).unwrap();
    assert_eq!(
        bytes.len() as u64,
        24 + 500 * 16 + r["tx_bytes"].as_u64().unwrap()
    );

    for (args, want) in [
        (
            vec!["--port", "mem:x", "--count", "1"],
            "inside one process",
        ),
        (vec!["--port", "bogus", "--count", "1"], "af_packet:IFACE"),
        (vec!["--port", "pcap:/dev/null", "--rate", "0"], "--rate"),
        (vec!["--port", "pcap:/dev/null", "--count", "0"], "--count"),
        (
            vec!["--port", "pcap:/dev/null", "--duration=-1"],
            "--duration",
        ),
        (
            vec!["--port", "pcap:/dev/null", "--duration", "0"],
            "--duration",
        ),
        (vec!["--port", "pcap:/dev/null", "--size", "20"], "--size"),
        (vec!["--port", "pcap:/dev/null", "--mix", "syn=0"], "--mix"),
        (vec!["--port", "pcap:/dev/null", "--clients", "x"], "\"x\""),
        (
            vec!["--port", "pcap:/dev/null", "--client-ports", "9-1"],
            "--client-ports",
        ),
        (
            vec!["--port", "pcap:/dev/null", "--dst-mac", "zz"],
            "--dst-mac",
        ),
        (vec!["--port", "pcap:/dev/null", "--flows", "0"], "--flows"),
    ] {
        let mut a = vec!["pktgen", "--config", cfg, "--quiet"];
        a.extend(args.iter().copied());
        let out = rondo(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// A capture of varied frames: SYNs from many IPv4 and IPv6 clients, pings, DNS queries,
/// and frames no bind takes (another address, ARP).
fn capture(path: &std::path::Path) -> usize {
    use common::*;
    let mut frames = Vec::new();
    let vip6: [u8; 16] = "fdb4:98ce:52d4::42"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    for i in 0..200u32 {
        let src = (0x0a0b_0000 + i).to_be_bytes();
        frames.push(syn_v4(src, [1, 1, 1, 1], 2000 + i as u16, 80));
        frames.push(syn_v4(src, [1, 1, 2, 7], 3000 + i as u16, 443));
        frames.push(udp_v4(src, [1, 1, 3, 9], 4000 + i as u16, 53, b"query"));
        let mut src6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        src6[12..16].copy_from_slice(&i.to_be_bytes());
        frames.push(syn_v6(src6, vip6, 5000 + i as u16, 80));
        if i % 10 == 0 {
            frames.push(echo_v4(src, [1, 1, 1, 1], i as u16));
            // Not a VIP: the director must not forward these.
            frames.push(syn_v4(src, [9, 9, 9, 9], 6000 + i as u16, 80));
        }
    }
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.resize(60, 0);
    frames.push(arp);
    let mut w = pcap_file::pcap::PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for f in &frames {
        w.write_packet(&pcap_file::pcap::PcapPacket::new(
            Duration::ZERO,
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
    frames.len()
}

#[test]
fn replaying_a_capture_verifies_every_forwarded_packet() {
    let cfg = config();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.pcap");
    let n = capture(&path);
    let flows = rondo::pktgen::replay::load(&path, None).unwrap();
    assert_eq!(flows.len(), n, "all distinct");
    let count = 2 * n as u64;
    let opts = counted(5000, count);
    let r = in_process_with(&cfg, &cfg, &opts, flows);
    assert!(r.ok, "{}", r.summary());
    assert_eq!(r.tx_packets, count);
    // 20 non-VIP SYNs and the ARP, each sent twice.
    assert_eq!(r.not_expected_back, 2 * 21, "{}", r.summary());
    assert_eq!(r.verified, count - 2 * 21);
    assert_eq!((r.wrong_backend, r.bad_header, r.seq.lost), (0, 0, 0));
    assert_eq!(r.latency.samples, 0, "replayed frames carry no timestamps");

    // The same capture checked against a web table whose hash key differs: caught.
    let wrong = with_web_table(&cfg, |t| t.hash_key[3] ^= 0x55);
    let flows = rondo::pktgen::replay::load(&path, None).unwrap();
    let r = in_process_with(&cfg, &wrong, &opts, flows);
    assert!(!r.ok);
    assert!(r.wrong_backend > 100, "{}", r.summary());
}

#[test]
fn replaying_glb_vectors_verifies_every_forwarded_packet() {
    let vectors = common::glb_vectors();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cfg = rondo::config::load_config(
        &root.join("configs/glb/director.conf"),
        Some(&vectors.join("table.bin")),
    )
    .unwrap();
    // GLB's capture repeats one frame a thousand times: one distinct frame, replayed.
    let flows = rondo::pktgen::replay::load(&vectors.join("1k_pkts.pcap"), None).unwrap();
    assert_eq!(flows.len(), 1);
    let count = 300;
    let opts = counted(5000, count);
    let r = in_process_with(&cfg, &cfg, &opts, flows);
    assert!(r.ok, "{}", r.summary());
    assert_eq!(r.tx_packets, count);
    assert_eq!(r.verified, count, "{}", r.summary());
    assert_eq!((r.wrong_backend, r.bad_header, r.seq.lost), (0, 0, 0));
    assert_eq!(r.latency.samples, 0, "replayed frames carry no timestamps");
}
