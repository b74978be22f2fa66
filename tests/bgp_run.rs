//! `rondo run` with `[bgp]` against real BIRD 2 daemons in namespaces (issue 19, items
//! 1-4): the lab of tests/common/bird.rs (a director-side bird peering with a router-side
//! bird that puts what it learns into its kernel FIB) plus a second veth in the director's
//! namespace that rondo runs on (af_packet). Needs root and BIRD 2; otherwise counted as
//! skipped (and a failure under `CI=true`). The start-up refusal without a daemon needs
//! neither.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bird::{ip, Lab};
use common::director::Session;

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
        out.contains("bgp         packets after withdrawal "),
        "{out}"
    );
    assert!(r.log().contains("packets arrived after the withdrawal"));
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
