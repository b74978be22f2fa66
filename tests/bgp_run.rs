//! `rondo run` with `[bgp]` against real BIRD 2 daemons in namespaces (issue 19, items
//! 1-4): the lab of tests/common/bird.rs (a director-side bird peering with a router-side
//! bird that puts what it learns into its kernel FIB) plus a second veth in the director's
//! namespace that rondo runs on (af_packet). Needs root and BIRD 2; otherwise counted as
//! skipped (and a failure under `CI=true`). The start-up refusal without a daemon needs
//! neither. Also: SIGKILL of rondo (the lifeline takes the routes away, timed), the
//! director's bird stopped and started again while rondo runs (forwarding goes on, the
//! failure is counted, the announcements come back), and a stalled worker (the fault
//! wrapper's `rx-stall`: withdrawn as WorkerStalled, the watchdog ping withheld).

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::bird::{ip, Lab};
use common::director::{number_after, Session};
use rondo::drivers::{Burst, Port, TxQueue};

const VIP1: &str = "10.10.0.1/32";
const VIP2: &str = "10.10.0.2/32";
const VIP3: &str = "10.10.0.3/32";

fn config(port: &str, console: &Path, bgp: &str) -> String {
    format!(
        r#"[[ports]]
spec = "{port}"

[runtime]
workers = 1
idle = "sleep"

[console]
socket = "{}"

[metrics]
listen = "off"

[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{{ ip = "10.10.0.1", proto = "tcp", port = 80 }}, {{ ip = "10.10.0.2", proto = "tcp", port = 80 }}]
backends = [{{ ip = "10.1.0.1" }}, {{ ip = "10.1.0.2" }}]

[[tables]]
name = "api"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{{ ip = "10.10.0.3", proto = "tcp", port = 443 }}]
backends = [{{ ip = "10.1.0.5" }}]

{bgp}
"#,
        console.display()
    )
}

struct Rondo {
    child: Option<Child>,
    log: std::path::PathBuf,
    out: std::path::PathBuf,
}

impl Rondo {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn out(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Rondo {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(ns: Option<&str>, config: &Path, dir: &Path) -> Rondo {
    start_env(ns, config, dir, &[])
}

fn start_env(ns: Option<&str>, config: &Path, dir: &Path, env: &[(&str, &str)]) -> Rondo {
    let log = dir.join("rondo.log");
    let out = dir.join("rondo.out");
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_rondo")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_rondo")),
    };
    let child = cmd
        .args(["run", "--stats-interval", "0", "--config"])
        .arg(config)
        .env("RONDO_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn rondo run");
    Rondo {
        child: Some(child),
        log,
        out,
    }
}

fn cmd(socket: &Path, line: &str) -> String {
    let (ok, text) = Session::open(socket).cmd(line);
    assert!(ok, "{line}: {text}");
    text
}

#[test]
fn run_announces_once_ready_follows_the_decision_and_drains_on_sigterm() {
    let Some(lab) = Lab::new('r') else { return };
    // The data port: a second veth, rondo's af_packet port in the director namespace.
    ip(&[
        "link", "add", "ddata", "netns", &lab.d, "type", "veth", "peer", "name", "rdata", "netns",
        &lab.r,
    ]);
    ip(&["-n", &lab.d, "link", "set", "ddata", "up"]);
    ip(&["-n", &lab.r, "link", "set", "rdata", "up"]);
    let console = lab.path("rondo.sock");
    let bgp = format!(
        "[bgp]\nsocket = \"{}\"\ninclude = \"{}\"\ncommunities = [\"65000:100\"]\nsessions = [\"router4\"]\ngraceful_ms = 1500\ndrain_ms = 1000\n",
        lab.path("d.ctl").display(),
        lab.include().display()
    );
    let cfg = lab.path("rondo.toml");
    std::fs::write(&cfg, config("af_packet:ddata", &console, &bgp)).unwrap();
    let mut r = start(Some(&lab.d), &cfg, lab.dir.path());
    let fail = |r: &Rondo, what: &str| -> ! {
        panic!(
            "{what}\n--- rondo log\n{}\n--- stdout\n{}",
            r.log(),
            r.out()
        )
    };
    // Announced once ready (BGP sessions take a moment to come up).
    if !common::poll(Duration::from_secs(30), Duration::from_millis(20), || {
        lab.in_fib(VIP1) && lab.in_fib(VIP2) && lab.in_fib(VIP3)
    }) {
        fail(&r, "VIPs never reached the router's FIB");
    }
    let log = r.log();
    let ready = log
        .find("BGP: ready")
        .unwrap_or_else(|| fail(&r, "no ready line"));
    let announced = log
        .find("BGP: 10.10.0.1/32 announced")
        .unwrap_or_else(|| fail(&r, "no announce line"));
    assert!(ready < announced, "announced before ready:\n{log}");
    // One VIP withdrawn by the operator; the others stay.
    cmd(&console, "bgp withdraw 10.10.0.2");
    lab.wait_fib(VIP2, false);
    assert!(lab.in_fib(VIP1) && lab.in_fib(VIP3));
    let show = cmd(&console, "show bgp");
    let line = show
        .lines()
        .find(|l| l.trim_start().starts_with("10.10.0.2/32"))
        .unwrap_or_else(|| fail(&r, &show));
    assert!(
        line.contains("withdrawn") && line.contains("operator"),
        "{show}"
    );
    assert!(show.contains("router4"), "{show}");
    cmd(&console, "bgp announce 10.10.0.2");
    lab.wait_fib(VIP2, true);
    // Every backend of table api drained: only its VIP goes.
    cmd(&console, "set backend api 10.1.0.5 state draining force");
    lab.wait_fib(VIP3, false);
    assert!(lab.in_fib(VIP1) && lab.in_fib(VIP2));
    let show = cmd(&console, "show bgp");
    assert!(show.contains("no usable backend in table api"), "{show}");
    cmd(&console, "set backend api 10.1.0.5 state active force");
    lab.wait_fib(VIP3, true);
    // The link going down withdraws everything; up announces again.
    ip(&["-n", &lab.d, "link", "set", "ddata", "down"]);
    lab.wait_fib(VIP1, false);
    assert!(cmd(&console, "show bgp").contains("link down"));
    ip(&["-n", &lab.d, "link", "set", "ddata", "up"]);
    lab.wait_fib(VIP1, true);
    lab.wait_fib(VIP3, true);
    // SIGTERM: GRACEFUL_SHUTDOWN first, then the withdrawal, then exit 0.
    let pid = r.child.as_ref().unwrap().id().to_string();
    let sent = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut saw_gs = false;
    let gone = common::poll(Duration::from_secs(20), Duration::from_millis(20), || {
        if !lab.in_fib(VIP1) {
            return true;
        }
        saw_gs |= lab.router_route(VIP1).contains("(65535,0)");
        false
    });
    assert!(gone, "VIP1 never withdrawn after SIGTERM");
    assert!(
        saw_gs,
        "the router never saw GRACEFUL_SHUTDOWN before the withdrawal"
    );
    eprintln!("SIGTERM to withdrawal: {:?}", sent.elapsed());
    let mut child = r.child.take().unwrap();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if sent.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            fail(&r, "rondo did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(st.success(), "exit {st}: {}", r.log());
    let out = r.out();
    assert!(
        out.contains("bgp         VIP packets after withdrawal "),
        "{out}"
    );
    assert!(r.log().contains("VIP packets arrived after the withdrawal"));
}

#[test]
fn bgp_without_a_daemon_at_start_is_a_clear_error_and_forwards_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    common::director::write_pcap(&input, &common::director::traffic(100));
    let bgp = format!(
        "[bgp]\nsocket = \"{}\"\ninclude = \"{}\"\n",
        dir.path().join("no-bird.ctl").display(),
        dir.path().join("rondo.conf").display()
    );
    let cfg = dir.path().join("rondo.toml");
    let port = format!("pcap:{},{}", input.display(), output.display());
    std::fs::write(&cfg, config(&port, &dir.path().join("c.sock"), &bgp)).unwrap();
    let mut r = start(None, &cfg, dir.path());
    let st = r.child.take().unwrap().wait().unwrap();
    assert!(!st.success(), "rondo started without BIRD: {}", r.log());
    let log = r.log();
    assert!(
        log.contains("[bgp]") && log.contains("BIRD must be running"),
        "{log}"
    );
    assert!(log.contains("no-bird.ctl"), "{log}");
    assert!(log.contains("nothing was forwarded"), "{log}");
    let sent = if output.exists() {
        common::director::read_pcap(&output).len()
    } else {
        0
    };
    assert_eq!(sent, 0, "frames forwarded without BIRD");
}

/// The director MAC of the data veth (set by [`Setup::new`]).
const DDATA_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xdd, 0x01];

/// A lab, the data veth, rondo running on it with `[bgp]`, every VIP in the router's FIB.
struct Setup {
    lab: Lab,
    r: Rondo,
    console: PathBuf,
}

impl Setup {
    /// `port`: the port spec around `af_packet:ddata` (`{}` stands for it); `bgp_extra`:
    /// more `[bgp]` keys; `env`: more environment for rondo.
    fn new(t: char, port: &str, bgp_extra: &str, env: &[(&str, &str)]) -> Option<Setup> {
        let lab = Lab::new(t)?;
        ip(&[
            "link", "add", "ddata", "netns", &lab.d, "type", "veth", "peer", "name", "rdata",
            "netns", &lab.r,
        ]);
        ip(&[
            "-n",
            &lab.d,
            "link",
            "set",
            "ddata",
            "address",
            "02:00:00:00:dd:01",
        ]);
        ip(&["-n", &lab.d, "link", "set", "ddata", "up"]);
        ip(&["-n", &lab.r, "link", "set", "rdata", "up"]);
        let console = lab.path("rondo.sock");
        let bgp = format!(
            "[bgp]\nsocket = \"{}\"\ninclude = \"{}\"\nsessions = [\"router4\"]\n{bgp_extra}",
            lab.path("d.ctl").display(),
            lab.include().display()
        );
        let cfg = lab.path("rondo.toml");
        let spec = port.replace("{}", "af_packet:ddata");
        std::fs::write(&cfg, config(&spec, &console, &bgp)).unwrap();
        let r = start_env(Some(&lab.d), &cfg, lab.dir.path(), env);
        let s = Setup { lab, r, console };
        if !common::poll(Duration::from_secs(30), Duration::from_millis(20), || {
            s.lab.in_fib(VIP1) && s.lab.in_fib(VIP2) && s.lab.in_fib(VIP3)
        }) {
            s.fail("VIPs never reached the router's FIB");
        }
        Some(s)
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- rondo log\n{}\n--- stdout\n{}",
            self.r.log(),
            self.r.out()
        )
    }

    fn cmd(&self, line: &str) -> String {
        cmd(&self.console, line)
    }

    fn forwarded(&self) -> u64 {
        let t = self.cmd("show fwd stats");
        let all = t
            .split("Accumulated forward statistics")
            .nth(1)
            .unwrap_or_else(|| self.fail(&t));
        number_after(all, "Forwarded:")
    }

    fn wait(&self, what: &str, secs: u64, f: impl FnMut() -> bool) {
        if !common::poll(Duration::from_secs(secs), Duration::from_millis(20), f) {
            self.fail(&format!("timed out ({secs} s): {what}"));
        }
    }

    fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.lab.path("d.ctl"))
            .args(args)
            .output()
            .expect("birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// SYNs to VIP1 from the router's side of the data veth, one every 2 ms, until dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Traffic {
    fn start(ns: &str) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = common::netns::spawn_in_netns(ns, 0, move || {
            let (port, _rx, mut tx) = common::veth::test_port("rdata", 1024, 8);
            let mut sent = 0u64;
            while !st.load(Ordering::Relaxed) {
                let i = (sent % 50_000) as u32;
                let mut f = common::syn_v4(
                    (0x0a0b_0000 + i).to_be_bytes(),
                    [10, 10, 0, 1],
                    1024 + i as u16,
                    80,
                );
                f[0..6].copy_from_slice(&DDATA_MAC);
                let mut b = Burst::new();
                if let Some(buf) = port.alloc(&f) {
                    let _ = b.push(buf);
                    tx.tx_burst(&mut b);
                    tx.flush();
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            sent
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn sigkill_of_rondo_takes_the_routes_away_through_the_lifeline_while_bird_stays_up() {
    let Some(mut s) = Setup::new('k', "{}", "", &[]) else {
        return;
    };
    let mut child = s.r.child.take().unwrap();
    let killed = Instant::now();
    child.kill().unwrap();
    let mut gone_after = None;
    while killed.elapsed() < Duration::from_secs(5) {
        if !s.lab.in_fib(VIP1) && !s.lab.in_fib(VIP2) && !s.lab.in_fib(VIP3) {
            gone_after = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.wait();
    let Some(took) = gone_after else {
        s.fail("the VIPs stayed in the router's FIB 5 s after SIGKILL of rondo");
    };
    eprintln!("SIGKILL of rondo to the VIPs gone from the router's FIB: {took:?}");
    // The director's bird and its session stay up: only rondo's routes went.
    assert!(
        s.lab.director.is_running(),
        "the director's bird died with rondo"
    );
    let p = s.birdc(&["show", "protocols", "router4"]);
    assert!(p.contains("Established"), "router4 not up: {p}");
    let routes = s.birdc(&["show", "route", "protocol", "rondo_v4"]);
    assert!(
        !routes.contains("10.10.0."),
        "bird still has rondo's routes: {routes}"
    );
}

#[test]
fn bird_stopped_at_run_time_forwarding_goes_on_and_rondo_resyncs_when_it_is_back() {
    let Some(mut s) = Setup::new('b', "{}", "", &[]) else {
        return;
    };
    let _traffic = Traffic::start(&s.lab.r);
    let f0 = s.forwarded();
    s.wait("traffic forwarded", 20, || s.forwarded() > f0 + 50);
    // The director's bird dies (SIGKILL): its BGP session goes, so do the routes.
    s.lab.director.kill();
    s.lab.wait_fib(VIP1, false);
    s.wait("show bgp says the daemon is unreachable", 10, || {
        s.cmd("show bgp").contains("BIRD daemon unreachable")
    });
    // A change to apply while bird is down: counted as a failure, nothing panics.
    let show = s.cmd("show bgp");
    let failures = number_after(&show, "apply failures:");
    s.cmd("bgp withdraw 10.10.0.2");
    s.wait("an apply failure counted", 10, || {
        number_after(&s.cmd("show bgp"), "apply failures:") > failures
    });
    assert!(s.cmd("show bgp").contains("in force in BIRD: no"));
    // Forwarding goes on without bird.
    let f1 = s.forwarded();
    s.wait("traffic forwarded while bird is down", 10, || {
        s.forwarded() > f1 + 50
    });
    // bird comes back with the same config and socket, and the include its unit seeds:
    // the empty set. Rondo applies its set again (VIP2 still withdrawn by the operator).
    std::fs::write(
        s.lab.include(),
        rondo::fleet::bgp::bird_conf::render(
            &rondo::fleet::bgp::Desired::new(),
            &s.lab.settings().names,
        ),
    )
    .unwrap();
    let back = Instant::now();
    s.lab.director.start_in(&s.lab.d);
    s.wait("VIP1 and VIP3 back in the router's FIB", 20, || {
        s.lab.in_fib(VIP1) && s.lab.in_fib(VIP3)
    });
    eprintln!("bird restarted to the routes back: {:?}", back.elapsed());
    assert!(!s.lab.in_fib(VIP2), "VIP2 is withdrawn by the operator");
    s.wait("show bgp in sync again", 10, || {
        let t = s.cmd("show bgp");
        t.contains("in force in BIRD: yes") && !t.contains("unreachable")
    });
    assert!(s.r.log().contains("BIRD answers again"), "{}", s.r.log());
    // A quick restart (down shorter than the status poll, maybe) with the empty include
    // again: detected by BIRD's start time, or by the failed poll; routes come back.
    std::fs::write(
        s.lab.include(),
        rondo::fleet::bgp::bird_conf::render(
            &rondo::fleet::bgp::Desired::new(),
            &s.lab.settings().names,
        ),
    )
    .unwrap();
    s.lab.director.kill();
    s.lab.director.start_in(&s.lab.d);
    s.lab.wait_fib(VIP1, false);
    s.wait("VIP1 back after the quick restart", 20, || {
        s.lab.in_fib(VIP1) && s.lab.in_fib(VIP3)
    });
    // Per-VIP announce after withdrawing every VIP: that one back, the others stay out.
    s.cmd("bgp withdraw");
    s.lab.wait_fib(VIP1, false);
    s.lab.wait_fib(VIP3, false);
    let said = s.cmd("bgp announce 10.10.0.3");
    assert!(said.contains("operator withdrawal cleared"), "{said}");
    s.lab.wait_fib(VIP3, true);
    assert!(!s.lab.in_fib(VIP1) && !s.lab.in_fib(VIP2));
    assert!(s
        .cmd("show bgp")
        .contains("operator withdrawals: all VIPs except 10.10.0.3/32"));
    assert!(matches!(s.r.child.as_mut().unwrap().try_wait(), Ok(None)));
    assert!(!s.r.log().contains("panicked"), "{}", s.r.log());
}

#[test]
fn a_stalled_worker_withdraws_every_vip_until_it_loops_again_and_withholds_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    // The notifications, with when each came, until the test ends.
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let pings = std::thread::spawn(move || {
        let mut got: Vec<(Instant, String)> = Vec::new();
        let mut buf = [0u8; 128];
        while !d2.load(Ordering::Relaxed) {
            if let Ok(n) = listener.recv(&mut buf) {
                got.push((
                    Instant::now(),
                    String::from_utf8_lossy(&buf[..n]).into_owned(),
                ));
            }
        }
        got
    });
    // The stall: 2 s, from 9 s after the port was made (announced well before).
    let Some(s) = Setup::new(
        's',
        "fault:rx-stall@ms=9000..11000/{}",
        "stall_ms = 300\n",
        &[
            ("NOTIFY_SOCKET", notify.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    ) else {
        done.store(true, Ordering::Relaxed);
        return;
    };
    let stalled = "worker 0 stalled";
    s.wait("withdrawn as worker 0 stalled", 20, || {
        s.cmd("show bgp").contains(stalled)
    });
    let show = s.cmd("show bgp");
    for v in ["10.10.0.1/32", "10.10.0.2/32", "10.10.0.3/32"] {
        let line = show
            .lines()
            .find(|l| l.trim_start().starts_with(v))
            .unwrap_or_else(|| s.fail(&show));
        assert!(
            line.contains("withdrawn") && line.contains(stalled),
            "{show}"
        );
    }
    s.lab.wait_fib(VIP1, false);
    // Announced again once the worker loops.
    s.wait("announced after the stall", 20, || {
        s.lab.in_fib(VIP1) && s.lab.in_fib(VIP2) && s.lab.in_fib(VIP3)
    });
    assert!(!s.cmd("show bgp").contains(stalled));
    let log = s.r.log();
    assert!(log.contains("withdrawn: worker 0 stalled"), "{log}");
    // The watchdog: pinged before, withheld during the stall, pinged again after.
    assert!(
        log.contains("withholding the systemd watchdog ping"),
        "{log}"
    );
    s.wait("the watchdog pings resume", 10, || {
        s.r.log().contains("watchdog pings resume")
    });
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    let got = pings.join().unwrap();
    let times: Vec<Instant> = got
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    let gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "watchdog pings: {}, longest gap {gap:?} (interval 200 ms, stall 2 s)",
        times.len()
    );
    assert!(times.len() > 10, "{got:?}");
    assert!(
        gap >= Duration::from_millis(1000),
        "no gap in the pings during the stall: {gap:?}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
