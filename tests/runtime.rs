//! The poll-mode runtime over in-memory and capture ports.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::veth::is_root;
use common::*;
use rondo::config::load_config;
use rondo::datapath::{PacketBuf, Snapshot};
use rondo::drivers::{mem, BufPool, Port};
use rondo::runtime::control::{ConfigSource, Control};
use rondo::runtime::{IdlePolicy, Runtime, RuntimeError, RuntimeOptions};

/// Tests share 2 cores with each other: workers sleep when idle instead of spinning.
fn opts(workers: usize) -> RuntimeOptions {
    RuntimeOptions {
        workers,
        idle: IdlePolicy::Sleep {
            after: 16,
            micros: 50,
        },
        ..Default::default()
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const CONFIG: &str = common::configs::WEB_DIRECTOR;

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("director.toml");
    // write + rename so a reader never sees half a file
    let tmp = dir.join("director.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
    p
}

#[test]
fn mem_port_forwards_every_packet_with_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), CONFIG);
    let pool = BufPool::new(4096, 2048).unwrap();
    let (port, peer) = mem::pair("fwd", 2, 512, pool.clone()).unwrap();
    let mac = port.mac().unwrap();
    let mut control = Control::new(Some(ConfigSource::Native(path)), Some(mac));
    let rt = Runtime::start(port, control.initial().unwrap(), opts(2)).unwrap();
    let n = 20_000u32;
    let mut got = 0u64;
    let mut i = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < u64::from(n) {
        assert!(
            Instant::now() < deadline,
            "only {got} of {n} came back: {:?}",
            rt.totals()
        );
        // At most 256 in flight: the TX ring (1024) never fills, so nothing is refused.
        if i < n && u64::from(i) - got < 256 && peer.send((i % 2) as usize, &client_syn(i)) {
            i += 1;
        }
        while let Some(b) = peer.recv() {
            let (_, hops, _, inner) =
                check_outer_v4(b.data(), [2, 0, 0, 0, 0, 0xfe], mac.0, [192, 0, 2, 10]);
            assert_eq!(hops.len(), 1);
            assert_eq!(inner.len(), 40);
            got += 1;
        }
    }
    wait_until("counters", 20, || rt.totals().forwarded == u64::from(n));
    let per_worker = rt.worker_counters();
    assert!(
        per_worker.iter().all(|c| c.forwarded > 0),
        "both workers forwarded: {per_worker:?}"
    );
    let t = rt.shutdown();
    assert_eq!(
        (t.rx_packets, t.forwarded, t.total_drops(), t.tx_refused),
        (u64::from(n), u64::from(n), 0, 0)
    );
    assert_eq!(pool.available(), 4096, "every buffer back in the pool");
}

#[test]
fn reloads_under_continuous_traffic_lose_nothing_and_bad_reloads_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), CONFIG);
    let pool = BufPool::new(8192, 2048).unwrap();
    let (port, peer) = mem::pair("reload", 1, 1024, pool.clone()).unwrap();
    let mut control = Control::new(Some(ConfigSource::Native(path.clone())), port.mac());
    let rt = Runtime::start(port, control.initial().unwrap(), opts(1)).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let gen = {
        let (peer, stop, sent, received) =
            (peer.clone(), stop.clone(), sent.clone(), received.clone());
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // Flow control: never more in flight than the TX ring holds, so that a slow
                // (debug-build) sink cannot cause TX refusals; loss here would be reload loss.
                let in_flight = sent.load(Ordering::Relaxed) - received.load(Ordering::Relaxed);
                if in_flight < 768 && peer.send(0, &client_syn(i)) {
                    sent.fetch_add(1, Ordering::Relaxed);
                    i = i.wrapping_add(1);
                } else {
                    std::thread::yield_now();
                }
            }
        })
    };
    let sink = {
        let (peer, stop, received) = (peer.clone(), stop.clone(), received.clone());
        std::thread::spawn(move || loop {
            match peer.recv() {
                Some(_) => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                None if stop.load(Ordering::Relaxed) && peer.rx_pending() == 0 => break,
                None => std::thread::yield_now(),
            }
        })
    };
    // 30 good reloads alternating between two tables while traffic flows.
    let drained = CONFIG.replace(
        "{ ip = \"10.1.0.2\" }",
        "{ ip = \"10.1.0.2\", state = \"draining\" }",
    );
    for k in 0..30 {
        write_config(dir.path(), if k % 2 == 0 { &drained } else { CONFIG });
        control.reload(&rt, "test").unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let gen_before = rt.snapshot().generation;
    // A broken config is refused; the running tables stay.
    write_config(dir.path(), &CONFIG.replace("10.1.0.3", "10.1.0"));
    let err = control.reload(&rt, "test").unwrap_err();
    assert!(err.contains("backends") && err.contains("10.1.0"), "{err}");
    assert_eq!(rt.snapshot().generation, gen_before);
    assert_eq!(control.reloads_failed.load(Ordering::Relaxed), 1);
    assert_eq!(control.reloads_ok.load(Ordering::Relaxed), 30);
    let before = rt.totals().forwarded;
    wait_until("traffic after a failed reload", 20, || {
        rt.totals().forwarded > before + 1000
    });

    stop.store(true, Ordering::Relaxed);
    gen.join().unwrap();
    let sent = sent.load(Ordering::Relaxed);
    wait_until("drain", 20, || rt.totals().forwarded == sent);
    sink.join().unwrap();
    while peer.recv().is_some() {
        received.fetch_add(1, Ordering::Relaxed);
    }
    let t = rt.shutdown();
    assert_eq!(
        (t.total_drops(), t.tx_refused, t.forwarded),
        (0, 0, sent),
        "{t:?}"
    );
    assert!(sent > 10_000, "traffic was continuous: {sent}");
    assert_eq!(
        received.load(Ordering::Relaxed),
        sent,
        "no packet lost across 30 swaps"
    );
    assert_eq!((t.total_drops(), t.tx_refused), (0, 0));
}

#[test]
fn malformed_frames_never_stop_a_worker() {
    let cfg = load_config(&root().join("configs/director.toml"), None).unwrap();
    let pool = BufPool::new(2048, 2048).unwrap();
    let (port, peer) = mem::pair("junk", 1, 1024, pool).unwrap();
    let rt = Runtime::start(port, Snapshot::compile(cfg, None, 1).unwrap(), opts(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut x = 0x1234_5678u32;
    let mut sent = 0u64;
    for i in 0..20_000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let mut f = client_syn(i);
        let len = (x as usize) % f.len();
        let at = (x as usize >> 8) % f.len();
        f[at] ^= (x >> 16) as u8;
        f.truncate(len.max(1));
        while !peer.send(0, &f) {
            assert!(
                Instant::now() < deadline,
                "worker stopped taking frames: {:?}",
                rt.totals()
            );
            std::thread::yield_now();
        }
        sent += 1;
        while peer.recv().is_some() {}
    }
    wait_until("all frames handled", 20, || rt.totals().rx_packets == sent);
    assert!(!rt.finished(), "worker still running");
    let t = rt.shutdown();
    assert_eq!(t.forwarded + t.total_drops() + t.total_exceptions(), sent);
    assert!(t.total_drops() > 0);
}

#[test]
fn start_up_errors_name_the_setting() {
    let cfg = load_config(&root().join("configs/director.toml"), None).unwrap();
    let pool = BufPool::new(64, 2048).unwrap();
    let snap = || Snapshot::compile(cfg.clone(), None, 1).unwrap();
    let (port, _peer) = mem::pair("e1", 1, 16, pool.clone()).unwrap();
    let e = Runtime::start(
        port,
        snap(),
        RuntimeOptions {
            workers: 1,
            cores: Some(vec![4096]),
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(
        matches!(e, RuntimeError::NoSuchCore { core: 4096, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("core 4096 does not exist"), "{e}");
    let (port, _peer) = mem::pair("e2", 1, 16, pool.clone()).unwrap();
    let e = Runtime::start(
        port,
        snap(),
        RuntimeOptions {
            workers: 2,
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("2 queues wanted"), "{e}");
    let (port, _peer) = mem::pair("e3", 1, 16, pool.clone()).unwrap();
    let e = Runtime::start(
        port,
        snap(),
        RuntimeOptions {
            workers: 0,
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("at least one worker"), "{e}");
    assert!(BufPool::new(0, 2048).is_err());
}

fn rondo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rondo"))
}

#[test]
fn run_forwards_a_capture_like_the_pcap_tool() {
    let v = glb_vectors();
    let dir = tempfile::tempdir().unwrap();
    let out_run = dir.path().join("run.pcap");
    let out_tool = dir.path().join("tool.pcap");
    let conf = root().join("configs/glb/director.conf");
    let o = rondo()
        .args(["run", "--glb-config"])
        .arg(&conf)
        .arg("--forwarding-table")
        .arg(v.join("table.bin"))
        .arg("--port")
        .arg(format!(
            "pcap:{},{}",
            v.join("1k_pkts.pcap").display(),
            out_run.display()
        ))
        // GLB's config asks for the kernel exception path; keep the kernel's own chatter
        // (router solicitations on a new TAP) out of this byte comparison.
        .args(["--exception", "drop"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("mapped GLB's distributor/worker lcores"),
        "GLB lcores mapping logged: {stderr}"
    );
    let o = rondo()
        .args(["pcap", "--config"])
        .arg(&conf)
        .arg("--forwarding-table")
        .arg(v.join("table.bin"))
        .arg("--in")
        .arg(v.join("1k_pkts.pcap"))
        .arg("--out")
        .arg(&out_tool)
        .output()
        .unwrap();
    assert!(o.status.success());
    let frames = |p: &Path| {
        let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(p).unwrap()).unwrap();
        let mut v = Vec::new();
        while let Some(p) = r.next_packet() {
            v.push(p.unwrap().data.to_vec());
        }
        v
    };
    let (a, b) = (frames(&out_run), frames(&out_tool));
    assert_eq!(a.len(), 1000);
    // pcap mode uses the default source MAC; rondo run too (capture ports have none)
    assert!(
        a == b,
        "same bytes from `rondo run` on a capture port and `rondo pcap`"
    );
}

#[test]
fn run_reloads_on_sighup_and_stops_on_sigterm() {
    let v = glb_vectors();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[ports]]\nspec = \"pcap:{},loop\"\n\n{CONFIG}\n[runtime]\nidle = \"sleep\"\n",
            v.join("1k_pkts.pcap").display()
        ),
    );
    let pid = dir.path().join("rondo.pid");
    let log = dir.path().join("log");
    let child = rondo()
        .args(["run", "--stats-interval", "0", "--config"])
        .arg(&cfg)
        .arg("--pid-file")
        .arg(&pid)
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let logtext = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("pid file", 20, || pid.exists());
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success());
    };
    // Changing [runtime] is reported as needing a restart; the tables still reload.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("idle = \"sleep\"", "idle = \"sleep\"\nidle_sleep_us = 77");
    std::fs::write(&cfg, text).unwrap();
    signal("-HUP");
    wait_until("restart warning", 20, || {
        logtext().contains("only on restart")
    });
    wait_until("reload on SIGHUP", 20, || {
        logtext().matches("new forwarding snapshot live").count() >= 1
    });
    // A broken file is rejected and logged; the process keeps running.
    std::fs::write(&cfg, "[director\n").unwrap();
    signal("-USR1");
    wait_until("rejected reload", 20, || {
        logtext().contains("reload rejected")
    });
    signal("-TERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", logtext());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ok: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("reloads     ok "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no reload line: {stdout}"));
    // The SIGHUP reload (and possibly one more for the file change it was sent with).
    assert!((1..=2).contains(&ok), "{stdout}");
    assert!(
        !stdout.contains("failed 0"),
        "the broken file was refused and counted: {stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("forwarded") && !l.contains(" 0 packets")),
        "{stdout}"
    );
    assert!(!pid.exists(), "pid file removed on exit");
}

#[test]
fn run_start_up_errors_exit_nonzero_with_the_cause() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--config", "configs/director.toml"], "no port"),
        (
            &[
                "run",
                "--config",
                "configs/director.toml",
                "--port",
                "bogus:x",
            ],
            "unknown driver",
        ),
        (
            &[
                "run",
                "--config",
                "configs/director.toml",
                "--port",
                "pcap:/nonexistent.pcap",
            ],
            "/nonexistent.pcap",
        ),
        (
            &[
                "run",
                "--config",
                "configs/director.toml",
                "--port",
                "dpdk:0000:3b:00.0",
            ],
            if cfg!(feature = "dpdk") {
                "no DPDK port named \"0000:3b:00.0\""
            } else {
                "--features dpdk"
            },
        ),
        (
            &[
                "run",
                "--config",
                "configs/director.toml",
                "--port",
                "mem:x",
            ],
            "rondo demo",
        ),
        (
            &[
                "run",
                "--config",
                "configs/director.toml",
                "--port",
                "pcap:configs/director.toml",
            ],
            "not a pcap capture",
        ),
        (
            &[
                "run",
                "--config",
                "configs/director.toml",
                "--port",
                "af_packet:rdo-nonexist0",
            ],
            "rdo-nonexist0",
        ),
    ];
    for (args, want) in cases {
        let o = rondo().current_dir(root()).args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err}");
    }
}

#[test]
fn demo_runs_and_verifies() {
    let o = rondo()
        .args(["demo", "--seconds", "2", "--clients", "512"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("table change"), "{out}");
    assert!(out.contains("OK: every packet"), "{out}");
    assert!(out.contains("lost                   0"), "{out}");
}

#[test]
fn run_hands_non_vip_frames_to_the_kernel_tap() {
    if !is_root() || !Path::new("/dev/net/tun").exists() {
        common::skip("needs root and /dev/net/tun for a TAP interface");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 20 SYNs to the VIP, 7 ARP requests and 5 SSH packets to the host: the 12 go to the kernel.
    let input = dir.path().join("in.pcap");
    {
        let f = std::fs::File::create(&input).unwrap();
        let mut w = pcap_file::pcap::PcapWriter::new(f).unwrap();
        let mut put = |d: &[u8]| {
            w.write_packet(&pcap_file::pcap::PcapPacket::new(
                Duration::ZERO,
                d.len() as u32,
                d,
            ))
            .unwrap();
        };
        for i in 0..20 {
            put(&client_syn(i));
        }
        for i in 0..7u8 {
            let mut arp = eth(0x0806);
            arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            arp.extend_from_slice(&CLIENT_MAC);
            arp.extend_from_slice(&[10, 0, 0, i, 0, 0, 0, 0, 0, 0, 10, 0, 0, 200]);
            put(&arp);
        }
        for i in 0..5 {
            put(&syn_v4([10, 0, 0, 9], [192, 0, 2, 10], 40000 + i, 22));
        }
    }
    let tap = format!("rdox{}", std::process::id() % 100_000);
    let cfg = write_config(dir.path(), CONFIG);
    let o = rondo()
        .args(["run", "--stats-interval", "0", "--config"])
        .arg(&cfg)
        .arg("--port")
        .arg(format!("pcap:{}", input.display()))
        .arg("--exception")
        .arg(format!("tap:{tap}"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("forwarded") && l.contains(" 20 packets")),
        "{out}"
    );
    assert!(
        out.contains("exception   to kernel 12 (refused 0)"),
        "{out}"
    );
    assert!(
        !Path::new(&format!("/sys/class/net/{tap}")).exists(),
        "TAP removed on exit"
    );
}

/// `start_paused`: the workers take nothing from RX until `resume` (how `rondo run` waits
/// for its sockets and files before it forwards).
#[test]
fn a_runtime_started_paused_forwards_nothing_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), CONFIG);
    let pool = BufPool::new(1024, 2048).unwrap();
    let (port, peer) = mem::pair("held", 1, 512, pool.clone()).unwrap();
    let mac = port.mac().unwrap();
    let mut control = Control::new(Some(ConfigSource::Native(path)), Some(mac));
    let o = RuntimeOptions {
        start_paused: true,
        ..opts(1)
    };
    let rt = Runtime::start(port, control.initial().unwrap(), o).unwrap();
    assert!(rt.is_paused());
    for i in 0..100 {
        assert!(peer.send(0, &client_syn(i)));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rt.totals().rx_packets, 0, "{:?}", rt.totals());
    assert!(peer.recv().is_none(), "forwarded while paused");
    // A stop in the meantime (console `stop` while `rondo run` starts) is kept.
    assert!(rt.pause(Duration::from_secs(10)));
    assert!(!rt.release(), "released a runtime stopped since its start");
    assert!(rt.is_paused());
    rt.resume();
    assert!(!rt.is_paused());
    let mut got = 0;
    wait_until("the held packets forwarded", 30, || {
        while peer.recv().is_some() {
            got += 1;
        }
        got == 100
    });
    rt.shutdown();
}

/// The swap hook sees each snapshot before it is live (the old one still is) and after
/// (it is): what the af_xdp steering relies on to narrow first and widen last.
#[test]
fn the_swap_hook_runs_before_and_after_each_swap() {
    use rondo::runtime::SwapPhase;
    let cfg = load_config(&root().join("configs/director.toml"), None).unwrap();
    let pool = BufPool::new(256, 2048).unwrap();
    let (port, _peer) = mem::pair("hook", 1, 64, pool).unwrap();
    let first = Snapshot::compile(cfg.clone(), None, 1).unwrap();
    let rt = Arc::new(Runtime::start(port, first, opts(1)).unwrap());
    let seen: Arc<std::sync::Mutex<Vec<(SwapPhase, bool)>>> = Arc::default();
    let (s, r) = (seen.clone(), rt.clone());
    // Whether the snapshot handed to the hook is the live one at that moment.
    let hook: rondo::runtime::SwapHook = Box::new(move |phase, snap| {
        let live = std::ptr::eq(&*r.snapshot(), snap);
        s.lock().unwrap().push((phase, live));
    });
    assert!(rt.set_on_swap(hook));
    assert_eq!(
        *seen.lock().unwrap(),
        [(SwapPhase::Before, true), (SwapPhase::After, true)],
        "the live snapshot at once, both phases"
    );
    seen.lock().unwrap().clear();
    rt.swap(Snapshot::compile(cfg, None, 1).unwrap());
    assert_eq!(
        *seen.lock().unwrap(),
        [(SwapPhase::Before, false), (SwapPhase::After, true)]
    );
    // The hook holds the runtime: stop its workers by hand.
    rt.stop();
}

/// `--log-format json`: every log line on stderr is one JSON object with a timestamp,
/// a level, a target and the message with its fields; stdout (the summary) is unchanged.
#[test]
fn json_logs_are_one_object_per_line() {
    let o = rondo()
        .args([
            "--log-format",
            "json",
            "demo",
            "--seconds",
            "1",
            "--clients",
            "64",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("OK: every packet"), "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "{err}");
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        for k in ["timestamp", "level", "target"] {
            assert!(v.get(k).is_some_and(|x| x.is_string()), "{k} in {l}");
        }
        assert!(v["fields"]["message"].is_string(), "{l}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"message\":\"data plane started\"")),
        "{err}"
    );
    // A bad value is a usage error naming the choices.
    let o = rondo()
        .args(["--log-format", "xml", "demo"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("text") && err.contains("json"), "{err}");
}
