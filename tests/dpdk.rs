//! The DPDK driver end to end (needs `--features dpdk`; `scripts/test` enables it).
//!
//! In process: ports over rings this test owns (`rte_eth_from_rings`, the real ethdev and
//! mbuf path) with every packet checked, and the mbuf leak test. Through the `rondo`
//! binary: net_pcap (same bytes as `rondo pcap`), net_null, bad settings. The af_packet and
//! net_tap vdevs over veth/TAP run in `tests/run_af_packet.rs` (root).
//!
//! EAL runs once per process, `--no-huge` so no hugepages are needed; the tests of this
//! file share one mempool, so they take turns (LOCK).

mod common;

#[cfg(not(feature = "dpdk"))]
#[test]
fn a_dpdk_port_in_a_build_without_the_feature_names_the_feature() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args([
            "run",
            "--config",
            "configs/director.toml",
            "--port",
            "dpdk:net_null0",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--features dpdk"), "names the feature: {err}");
}

/// The AF_XDP driver is gated the same way (its own tests are tests/af_xdp.rs); this file
/// is the one `scripts/test` also runs without features, so the twin check lives here.
#[cfg(not(feature = "af_xdp"))]
#[test]
fn an_af_xdp_port_in_a_build_without_the_feature_names_the_feature() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args([
            "run",
            "--config",
            "configs/director.toml",
            "--port",
            "af_xdp:lo",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--features af_xdp"),
        "names the feature: {err}"
    );
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::common::veth::is_root;
    use super::common::*;
    use rondo::config::DpdkSettings;
    use rondo::datapath::{HeapBuf, PacketBuf, Snapshot};
    use rondo::drivers::dpdk::{ring_pair, DpdkPortOptions, Mbuf};
    use rondo::drivers::Port;
    use rondo::runtime::{ExceptionPath, IdlePolicy, Runtime, RuntimeOptions};

    static LOCK: Mutex<()> = Mutex::new(());

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        LOCK.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// EAL without hugepages, a file prefix of this process, no telemetry socket.
    fn eal_args(tag: &str) -> Vec<String> {
        format!(
            "--no-huge -m 512 --no-shconf --no-telemetry --file-prefix rondo-{tag}-{} --log-level=lib.eal:error",
            std::process::id()
        )
        .split_whitespace()
        .map(str::to_string)
        .collect()
    }

    fn port_opts(pool_size: usize) -> DpdkPortOptions {
        DpdkPortOptions {
            settings: DpdkSettings {
                eal_args: Some(eal_args("lib")),
                ..DpdkSettings::default()
            },
            pool_size,
            worker_cores: None,
        }
    }

    fn opts(workers: usize, exception: ExceptionPath) -> RuntimeOptions {
        RuntimeOptions {
            workers,
            idle: IdlePolicy::Sleep {
                after: 16,
                micros: 50,
            },
            exception,
            ..Default::default()
        }
    }

    const CONFIG: &str = crate::common::configs::WEB_DIRECTOR;

    fn snapshot(mac: Option<rondo::wire::MacAddr>) -> Snapshot {
        let cfg = rondo::config::config_from_str(CONFIG, "test.toml").unwrap();
        Snapshot::compile(cfg, mac, 1).unwrap()
    }

    #[test]
    fn ring_port_forwards_every_packet_with_two_workers() {
        let _l = lock();
        let (port, peer) = ring_pair("fwd2", 2, 1024, port_opts(8192)).unwrap();
        let pool = peer.pool();
        let mac = port.mac().unwrap();
        let rt = Runtime::start(port, snapshot(Some(mac)), opts(2, ExceptionPath::Drop)).unwrap();
        let start = pool.in_use();
        let n = 50_000u32;
        let (mut i, mut got) = (0u32, 0u64);
        let deadline = Instant::now() + Duration::from_secs(120);
        while got < u64::from(n) {
            assert!(
                Instant::now() < deadline,
                "only {got} of {n}: {:?}",
                rt.totals()
            );
            // At most 512 in flight: the TX rings never fill, so nothing is refused.
            while i < n && u64::from(i) - got < 512 && peer.send((i % 2) as usize, &client_syn(i)) {
                i += 1;
            }
            while let Some(b) = peer.recv() {
                let (_, hops, _, inner) =
                    check_outer_v4(b.data(), [2, 0, 0, 0, 0, 0xfe], mac.0, [192, 0, 2, 10]);
                assert_eq!(hops.len(), 1);
                assert_eq!(inner.len(), 40);
                got += 1;
            }
            std::thread::yield_now();
        }
        wait_until("counters", 60, || rt.totals().forwarded == u64::from(n));
        let per_worker = rt.worker_counters();
        assert!(
            per_worker.iter().all(|c| c.forwarded > 0),
            "both workers forwarded: {per_worker:?}"
        );
        let ps = rt.port_stats();
        assert_eq!((ps.rx_packets, ps.tx_packets), (u64::from(n), u64::from(n)));
        let x = rt.port().xstats();
        assert!(
            x.iter()
                .any(|(k, v)| k == "rx_good_packets" && *v == u64::from(n)),
            "{x:?}"
        );
        assert!(rt.port().link().is_some_and(|l| l.up));
        assert_eq!(rt.port().driver(), "dpdk/net_ring");
        let t = rt.shutdown();
        assert_eq!(
            (t.rx_packets, t.forwarded, t.total_drops(), t.tx_refused),
            (u64::from(n), u64::from(n), 0, 0)
        );
        drop(peer);
        assert_eq!(pool.in_use(), start, "every mbuf back in the pool");
    }

    /// Millions of packets: forwarded, malformed (dropped), not for a VIP (exceptions), and
    /// TX refusals (the test drains the small TX ring only now and then). Every mbuf goes
    /// back to the pool.
    #[test]
    fn no_mbuf_leak_through_drops_exceptions_and_tx_refusals() {
        let _l = lock();
        let tap = format!("rdk{}", std::process::id() % 100_000);
        let exception = if is_root() && Path::new("/dev/net/tun").exists() {
            ExceptionPath::Tap(tap)
        } else {
            println!("note: not root: exceptions are dropped instead of going to a TAP");
            ExceptionPath::Drop
        };
        let (port, peer) = ring_pair("leak", 1, 256, port_opts(4096)).unwrap();
        let pool = peer.pool();
        let before = pool.in_use();
        let mac = port.mac();
        let rt = Runtime::start(port, snapshot(mac), opts(1, exception)).unwrap();
        let n: u64 = 2_000_000;
        let frames: Vec<Vec<u8>> = (0..64u32)
            .map(|i| match i % 8 {
                // malformed: truncated IPv4 header
                0 => client_syn(i)[..20].to_vec(),
                // not for a VIP: goes to the exception path
                1 => syn_v4([10, 0, 0, 9], [192, 0, 2, 99], 40000 + i as u16, 22),
                _ => client_syn(i),
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut sent = 0u64;
        let mut rounds = 0u64;
        while sent < n {
            assert!(
                Instant::now() < deadline,
                "stuck at {sent}: {:?}",
                rt.totals()
            );
            let mut k = 0;
            while sent < n && k < 256 && peer.send(0, &frames[(sent % 64) as usize]) {
                sent += 1;
                k += 1;
            }
            rounds += 1;
            // Drain the 255-slot TX ring only every 4th round, and only once the worker
            // has met a full ring and had to drop (so it does, however fast either side
            // runs).
            if rounds.is_multiple_of(4) && rt.totals().tx_refused > 0 {
                while peer.recv().is_some() {}
            }
            if k == 0 {
                std::thread::yield_now();
            }
        }
        wait_until("every frame handled", 60, || rt.totals().rx_packets == n);
        let t = rt.shutdown();
        while peer.recv().is_some() {}
        assert_eq!(
            t.forwarded + t.total_drops() + t.total_exceptions(),
            n,
            "{t:?}"
        );
        assert_eq!(t.total_drops(), n / 8, "malformed frames dropped: {t:?}");
        assert_eq!(t.total_exceptions(), n / 8, "exceptions: {t:?}");
        assert!(t.tx_refused > 0, "the test meant to make TX refuse: {t:?}");
        drop(peer);
        assert_eq!(
            pool.in_use(),
            before,
            "mbufs in use after {n} packets ({} refused by TX)",
            t.tx_refused
        );
    }

    fn rondo(args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rondo"))
            .args(args)
            .current_dir(root())
            .output()
            .unwrap()
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    fn eal(tag: &str) -> String {
        eal_args(tag).join(" ")
    }

    fn frames_of(path: &Path) -> Vec<Vec<u8>> {
        let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let mut v = Vec::new();
        while let Some(p) = r.next_packet() {
            v.push(p.unwrap().data.into_owned());
        }
        v
    }

    /// The mbuf's one-step `reframe` (the encapsulation's) gives what a heap buffer with
    /// the same headroom gives, and refuses the same requests without changing the frame.
    #[test]
    fn mbuf_reframe_matches_the_heap_buffer() {
        let _l = lock();
        let (port, peer) = ring_pair("reframe", 1, 64, port_opts(1024)).unwrap();
        let pool = peer.pool();
        let start = pool.in_use();
        let frame: Vec<u8> = (0..60).collect();
        for at in [0, 14, 18, 59, 60, 61] {
            for len in [0, 1, 40, 46, 47] {
                for outer in [0, 14, 54, 60, 128, 142, 143, 200] {
                    let mut m = Mbuf::alloc_with(&pool, &frame).unwrap();
                    let mut h = HeapBuf::from_frame(&frame);
                    assert_eq!(m.headroom(), h.headroom(), "same headroom as DPDK's");
                    let case = format!("at {at} len {len} outer {outer}");
                    let a = m.reframe(at, len, outer).map(|d| d.len());
                    let b = h.reframe(at, len, outer).map(|d| d.len());
                    assert_eq!(a, b, "{case}");
                    assert_eq!(m.data(), h.data(), "{case}");
                    if a.is_some() {
                        assert_eq!(&m.data()[outer..], &frame[at..at + len], "{case}");
                        assert_eq!(m.headroom(), h.headroom(), "{case}");
                    }
                }
            }
        }
        drop((port, peer));
        assert_eq!(pool.in_use(), start);
    }

    #[test]
    fn version_says_dpdk_is_compiled_in() {
        let o = rondo(&["--version"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("DPDK 22.11") && out.contains("compiled in"),
            "{out}"
        );
    }

    /// GLB's capture through DPDK's net_pcap gives the bytes `rondo pcap` gives, except the
    /// source MAC, which is the DPDK port's own.
    #[test]
    fn net_pcap_forwarding_equals_the_pcap_tool() {
        let v = glb_vectors();
        let dir = tempfile::tempdir().unwrap();
        let (dout, pout) = (dir.path().join("dpdk.pcap"), dir.path().join("tool.pcap"));
        let conf = root().join("configs/glb/director.conf");
        let (table, input) = (v.join("table.bin"), v.join("1k_pkts.pcap"));
        let port = format!("dpdk:net_pcap0,rx_pcap={},tx_pcap={}", s(&input), s(&dout));
        let o = rondo(&[
            "run",
            "--glb-config",
            s(&conf),
            "--forwarding-table",
            s(&table),
            "--port",
            &port,
            "--eal-args",
            &eal("pcap"),
            "--exception",
            "drop",
            "--stop-when-idle",
            "1",
            "--stats-interval",
            "0",
        ]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains("port        rx 1000 tx 1000"), "{out}");
        let o = rondo(&[
            "pcap",
            "--config",
            s(&conf),
            "--forwarding-table",
            s(&table),
            "--in",
            s(&input),
            "--out",
            s(&pout),
        ]);
        assert!(o.status.success());
        let (a, b) = (frames_of(&dout), frames_of(&pout));
        assert_eq!((a.len(), b.len()), (1000, 1000));
        let pcap_mac = &a[0][6..12];
        assert_eq!(
            pcap_mac,
            &[0x02, 0x70, 0x63, 0x61, 0x70, 0x00],
            "net_pcap's MAC"
        );
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!((&x[..6], &x[12..]), (&y[..6], &y[12..]), "packet {i}");
            assert_eq!(&x[6..12], pcap_mac);
        }
    }

    #[test]
    fn net_null_frames_are_counted_as_exceptions() {
        let o = rondo(&[
            "run",
            "--config",
            "configs/director.toml",
            "--port",
            "dpdk:net_null0",
            "--eal-args",
            &eal("null"),
            "--exception",
            "drop",
            "--duration",
            "0.5",
            "--workers",
            "1",
            "--stats-interval",
            "0",
        ]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let rx: u64 = out
            .lines()
            .find(|l| l.starts_with("rx "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{out}"));
        assert!(rx > 1000, "{out}");
        // net_null's frames are all zeros: ethertype 0 is not IP, so they are exceptions
        // (the kernel's business, e.g. ARP), dropped here since the exception path is off.
        let exc = out.lines().find(|l| l.starts_with("exception")).unwrap();
        assert!(exc.contains(&format!(" {rx} packets")), "{out}");
        assert!(
            out.lines().any(|l| l
                .split_whitespace()
                .eq(["not_ip".to_string(), rx.to_string()])),
            "{out}"
        );
    }

    #[test]
    fn bad_dpdk_settings_exit_nonzero_naming_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.pcap");
        {
            let mut w =
                pcap_file::pcap::PcapWriter::new(std::fs::File::create(&one).unwrap()).unwrap();
            let f = client_syn(1);
            w.write_packet(&pcap_file::pcap::PcapPacket::new(
                Duration::ZERO,
                f.len() as u32,
                &f,
            ))
            .unwrap();
        }
        let pcap = format!("dpdk:net_pcap0,rx_pcap={}", s(&one));
        let cfg = "configs/director.toml";
        let cases: Vec<(Vec<String>, &[&str])> = vec![
            (
                vec![
                    "--port".into(),
                    "dpdk:net_bogus0".into(),
                    "--eal-args".into(),
                    eal("b1"),
                ],
                &["dpdk:net_bogus0", "cannot create the device"],
            ),
            (
                vec![
                    "--port".into(),
                    "dpdk:0000:99:00.0".into(),
                    "--eal-args".into(),
                    eal("b2"),
                ],
                &["no DPDK port named \"0000:99:00.0\"", "vfio-pci"],
            ),
            (
                vec![
                    "--port".into(),
                    pcap.clone(),
                    "--workers".into(),
                    "2".into(),
                    "--eal-args".into(),
                    eal("b3"),
                ],
                &["runtime.workers = 2", "at most 1 RX queue"],
            ),
            (
                vec![
                    "--port".into(),
                    pcap.clone(),
                    "--eal-args".into(),
                    format!("{} --bogus-option", eal("b4")),
                ],
                &["dpdk.eal_args", "EAL initialisation failed"],
            ),
        ];
        for (args, want) in cases {
            let mut a = vec![
                "run",
                "--config",
                cfg,
                "--stats-interval",
                "0",
                "--duration",
                "5",
            ];
            a.extend(args.iter().map(String::as_str));
            let start = Instant::now();
            let o = rondo(&a);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{args:?} should fail");
            for w in want {
                assert!(err.contains(w), "{args:?}: expected {w:?} in: {err}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{args:?}: no hang"
            );
        }
        // A pool larger than EAL's memory: the error names runtime.pool_size.
        let big = dir.path().join("big.toml");
        let text = std::fs::read_to_string(root().join(cfg)).unwrap();
        std::fs::write(&big, format!("{text}\n[runtime]\npool_size = 4000000\n")).unwrap();
        let o = rondo(&[
            "run",
            "--config",
            s(&big),
            "--port",
            &pcap,
            "--eal-args",
            &eal("b5"),
            "--stats-interval",
            "0",
            "--duration",
            "5",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains("runtime.pool_size = 4000000"), "{err}");
    }

    /// Hugepages, the default EAL memory: `--in-memory`. Runs where hugepages are free
    /// (scripts/test reserves some); says why it skipped elsewhere.
    #[test]
    fn default_eal_args_use_hugepages_in_memory() {
        let free: u64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .find(|l| l.starts_with("HugePages_Free:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        if free < 64 || !is_root() {
            skip(&format!(
                "needs root and 64 free hugepages (HugePages_Free: {free})"
            ));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("d.toml");
        let text = std::fs::read_to_string(root().join("configs/director.toml")).unwrap();
        std::fs::write(&cfg, format!("{text}\n[runtime]\npool_size = 8192\n")).unwrap();
        let o = rondo(&[
            "run",
            "--config",
            s(&cfg),
            "--port",
            "dpdk:net_null0",
            "--exception",
            "drop",
            "--duration",
            "0.3",
            "--stats-interval",
            "0",
        ]);
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{out}{err}");
        assert!(err.contains("--in-memory"), "{err}");
    }

    /// A marked frame on the local experimental ethertype, to `dst`.
    fn marked(dst: [u8; 6], seq: u8) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&[2, 0, 0, 0, 0, 0x42, 0x88, 0xb5]);
        f.extend_from_slice(b"RONDO-STALE");
        f.push(seq);
        f.resize(64, 0);
        f
    }

    /// DPDK's net_af_packet receives from probe on (and, until it binds, every interface's
    /// frames): what its queues hold when the port starts is discarded, as a NIC receives
    /// nothing before it starts; what arrives afterwards reaches the queues.
    #[test]
    fn net_af_packet_starts_with_empty_queues() {
        use rondo::drivers::af_packet::{AfPacketOptions, AfPacketPort};
        use rondo::drivers::{BufPool, Burst, RxQueue, TxQueue};
        let _l = lock();
        let Some(v) = super::common::veth::Veth::new('q') else {
            return;
        };
        let mut port = rondo::drivers::dpdk::DpdkPort::open(
            &format!("net_af_packet5,iface={}", v.a),
            port_opts(4096),
        )
        .unwrap();
        let dst = port.mac().unwrap().0;
        let mut sender = AfPacketPort::open(
            &v.b,
            BufPool::new(256, 2048).unwrap(),
            AfPacketOptions::default(),
        )
        .unwrap();
        let (_, mut tx) = sender.take_queues(1).unwrap().pop().unwrap();
        let mut send = |seqs: std::ops::Range<u8>| {
            let mut b = Burst::new();
            for i in seqs {
                b.push(sender.alloc(&marked(dst, i)).unwrap()).ok().unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while !b.is_empty() && Instant::now() < deadline {
                tx.tx_burst(&mut b);
                tx.flush();
            }
            assert!(b.is_empty(), "the sender took every frame");
        };
        // Probed, not started: the socket is bound and already receiving.
        send(0..10);
        std::thread::sleep(Duration::from_millis(200));
        let (mut rx, _tx) = port.take_queues(1).unwrap().pop().unwrap();
        send(100..110);
        // Read until the 10 arrived (or 5 s), then 100 ms more for anything behind them.
        let mut seen = Vec::new();
        let mut burst = Burst::new();
        let mut until = Instant::now() + Duration::from_secs(5);
        let mut complete = false;
        while Instant::now() < until {
            rx.rx_burst(&mut burst);
            seen.extend(burst.drain().filter_map(|m| {
                let d = m.data();
                (d.get(14..25) == Some(&b"RONDO-STALE"[..]))
                    .then(|| d.get(25).copied())
                    .flatten()
            }));
            if seen.len() >= 10 && !complete {
                complete = true;
                until = Instant::now() + Duration::from_millis(100);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            seen,
            (100..110).collect::<Vec<u8>>(),
            "only the frames sent after start"
        );
    }
}
