//! `rondo::fleet::bgp` against real BIRD 2 daemons (issue 19, the foundation): two network
//! namespaces joined by a veth, a "director" bird driven by the library (BGP over IPv4 and
//! IPv6 to the router, BFD on, the generated include) and a "router" bird importing what it
//! learns into its kernel FIB. Needs root and `bird` (Debian `bird2`); otherwise counted as
//! skipped (and a failure under `CI=true`).
//!
//! ```text
//!  director ns (bird -s d.ctl)              router ns (bird -s r.ctl)
//!  rondo-life (lifeline TAP)                kernel FIB <- BGP d4, d6
//!  dveth 10.77.0.1/30 fd00:77::1/64 -- veth -- rveth 10.77.0.2/30 fd00:77::2/64
//! ```
//! The test process talks to both daemons through their control sockets (paths, not
//! namespace-bound); the lifeline is created on a thread that entered the director's
//! namespace (or, for the SIGKILL test, by a child process started in it).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rondo::fleet::bgp::bird_conf;
use rondo::fleet::bgp::{
    Announcement, BfdState, BgpError, BgpSettings, Bird, BirdCtl, CtlError, Desired, Prefix,
    Restored,
};

const VIP1: &str = "10.10.0.1/32";
const VIP2: &str = "10.10.0.2/32";
const VIP3: &str = "10.10.0.3/32";
const VIP6: &str = "fd00:10::1/128";

/// Why this machine cannot run these tests, if it cannot.
fn cannot_run() -> Option<String> {
    if let Err(why) = common::veth::privileged() {
        return Some(why);
    }
    match Command::new("bird").arg("--version").output() {
        Ok(o)
            if String::from_utf8_lossy(&o.stdout).contains("BIRD version 2.")
                || String::from_utf8_lossy(&o.stderr).contains("BIRD version 2.") =>
        {
            None
        }
        Ok(_) => Some("`bird` is not BIRD 2 (install Debian bird2)".into()),
        Err(e) => Some(format!("no `bird` binary ({e}): install Debian bird2")),
    }
}

/// A bird process (foreground), killed and reaped on drop.
struct BirdProc {
    child: Option<Child>,
}

impl BirdProc {
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for BirdProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two namespaces, a veth, two birds; everything removed on drop (even when a test fails).
struct Lab {
    d: String,
    r: String,
    dir: tempfile::TempDir,
    director: BirdProc,
    router: BirdProc,
}

fn ip(args: &[&str]) {
    common::veth::ip(args).unwrap_or_else(|e| panic!("{e}"));
}

impl Lab {
    /// `t` tells this test's namespaces from the others' (tests run in parallel).
    fn new(t: char) -> Option<Lab> {
        if let Some(why) = cannot_run() {
            common::skip(&why);
            return None;
        }
        let pid = std::process::id() % 100_000;
        let (d, r) = (format!("rdb{t}{pid}d"), format!("rdb{t}{pid}r"));
        for ns in [&d, &r] {
            let _ = common::veth::ip(&["netns", "del", ns]);
        }
        let mut lab = Lab {
            d: d.clone(),
            r: r.clone(),
            dir: tempfile::tempdir().unwrap(),
            director: BirdProc { child: None },
            router: BirdProc { child: None },
        };
        ip(&["netns", "add", &d]);
        ip(&["netns", "add", &r]);
        ip(&[
            "link", "add", "dveth", "netns", &d, "type", "veth", "peer", "name", "rveth", "netns",
            &r,
        ]);
        for (ns, dev, v4, v6) in [
            (&d, "dveth", "10.77.0.1/30", "fd00:77::1/64"),
            (&r, "rveth", "10.77.0.2/30", "fd00:77::2/64"),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
            ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        let bgp = |name: &str,
                   local: &str,
                   peer: &str,
                   las: u32,
                   pas: u32,
                   chan: &str,
                   filters: &str| {
            format!(
                "protocol bgp {name} {{\n  local {local} as {las};\n  neighbor {peer} as {pas};\n  \
                 bfd on;\n  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 2;\n  \
                 {chan} {{ {filters} }};\n}}\n"
            )
        };
        let bfd = "protocol bfd { interface \"*\" { min rx interval 50 ms; min tx interval 50 ms; multiplier 3; }; }\n";
        // The director's bird.conf as an operator writes it: the include and the export
        // filter it defines are the only lines about Rondo.
        let include = lab.include();
        let dconf = format!(
            "router id 10.77.0.1;\nlog \"{}\" all;\nprotocol device {{ }}\n{bfd}\
             include \"{}\";\n{}{}",
            lab.path("d.log").display(),
            include.display(),
            bgp(
                "router4",
                "10.77.0.1",
                "10.77.0.2",
                65001,
                65000,
                "ipv4",
                "import none; export filter rondo_export;"
            ),
            bgp(
                "router6",
                "fd00:77::1",
                "fd00:77::2",
                65001,
                65000,
                "ipv6",
                "import none; export filter rondo_export;"
            ),
        );
        let rconf = format!(
            "router id 10.77.0.2;\nlog \"{}\" all;\nprotocol device {{ }}\n{bfd}\
             protocol kernel {{ ipv4 {{ export all; }}; }}\nprotocol kernel {{ ipv6 {{ export all; }}; }}\n{}{}",
            lab.path("r.log").display(),
            bgp("d4", "10.77.0.2", "10.77.0.1", 65000, 65001, "ipv4", "import all; export none;"),
            bgp("d6", "fd00:77::2", "fd00:77::1", 65000, 65001, "ipv6", "import all; export none;"),
        );
        std::fs::write(lab.path("d.conf"), dconf).unwrap();
        std::fs::write(lab.path("r.conf"), rconf).unwrap();
        // The include must exist before bird starts: the empty set's, as an operator
        // bootstraps it.
        let settings = lab.settings();
        std::fs::write(
            &include,
            bird_conf::render(&Desired::new(), &settings.names),
        )
        .unwrap();
        lab.director.child = Some(lab.start_bird(&d, "d"));
        lab.router.child = Some(lab.start_bird(&r, "r"));
        for who in ["d", "r"] {
            let sock = lab.path(&format!("{who}.ctl"));
            common::wait_until(&format!("bird {who} control socket"), 30, || {
                BirdCtl::connect(&sock, Duration::from_secs(1)).is_ok()
            });
        }
        Some(lab)
    }

    fn start_bird(&self, ns: &str, who: &str) -> Child {
        let p = |s: &str| self.path(&format!("{who}.{s}")).display().to_string();
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "bird",
                "-f",
                "-s",
                &p("ctl"),
                "-c",
                &p("conf"),
                "-P",
                &p("pid"),
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("start bird")
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn include(&self) -> PathBuf {
        self.path("rondo.conf")
    }

    fn settings(&self) -> BgpSettings {
        let doc = format!(
            "[bgp]\nsocket = \"{}\"\ninclude = \"{}\"\ncommunities = [\"65000:100\"]\n\
             large_communities = [\"65000:1:2\"]\nmed = 50\nsessions = [\"router4\", \"router6\"]\n",
            self.path("d.ctl").display(),
            self.include().display()
        );
        BgpSettings::from_toml_str(&doc).unwrap()
    }

    /// `Bird::new` on a thread inside the director namespace (where the lifeline lives).
    fn bird(&self, settings: BgpSettings) -> Result<Bird, BgpError> {
        common::netns::in_netns(&self.d, move || Bird::new(settings))
    }

    /// Whether the router's kernel FIB has a route for `prefix`.
    fn in_fib(&self, prefix: &str) -> bool {
        let fam = if prefix.contains(':') { "-6" } else { "-4" };
        let out = Command::new("ip")
            .args(["-n", &self.r, fam, "route", "show", prefix])
            .output()
            .expect("ip route");
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    }

    fn wait_fib(&self, prefix: &str, present: bool) {
        common::wait_until(
            &format!(
                "{prefix} {} the router's FIB",
                if present { "in" } else { "gone from" }
            ),
            30,
            || self.in_fib(prefix) == present,
        );
    }

    /// The router's `show route all PREFIX`, through birdc (independent of our client).
    fn router_route(&self, prefix: &str) -> String {
        let out = Command::new("birdc")
            .args([
                "-s",
                &self.path("r.ctl").display().to_string(),
                "show",
                "route",
                "all",
                prefix,
            ])
            .output()
            .expect("birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.director.kill();
        self.router.kill();
        if std::thread::panicking() {
            for f in ["d.log", "r.log"] {
                if let Ok(s) = std::fs::read_to_string(self.path(f)) {
                    let tail: Vec<&str> = s.lines().rev().take(30).collect();
                    eprintln!("--- {f} (last lines, newest first)\n{}", tail.join("\n"));
                }
            }
        }
        for ns in [&self.d, &self.r] {
            if let Err(e) = common::veth::ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn set(settings: &BgpSettings, prefixes: &[&str]) -> Desired {
    prefixes
        .iter()
        .map(|p| settings.announcement(p.parse::<Prefix>().unwrap()))
        .collect()
}

#[test]
fn announces_and_withdraws_vips_with_their_attributes() {
    let Some(lab) = Lab::new('a') else { return };
    let s = lab.settings();
    let mut bird = lab.bird(s.clone()).unwrap();
    assert!(!lab.in_fib(VIP1));

    let applied = bird.apply(&set(&s, &[VIP1, VIP2, VIP6])).unwrap();
    assert_eq!(
        (applied.changed, applied.v4_routes, applied.v6_routes),
        (true, 2, 1)
    );
    for p in [VIP1, VIP2, VIP6] {
        lab.wait_fib(p, true);
    }
    let r = lab.router_route(VIP1);
    for want in [
        "BGP.community: (65000,100)",
        "BGP.large_community: (65000, 1, 2)",
        "BGP.med: 50",
    ] {
        assert!(
            r.contains(want),
            "router's view of {VIP1} lacks {want}:\n{r}"
        );
    }

    // Both sessions up, BFD up towards the router on both families.
    common::wait_until("BGP sessions and BFD up", 30, || {
        let st = bird.status().unwrap();
        st.sessions.len() == 2
            && st
                .sessions
                .iter()
                .all(|(_, p)| p.as_ref().is_ok_and(|p| p.is_established()))
            && st.bfd.len() == 2
            && st.bfd.iter().all(|b| b.state == BfdState::Up)
    });
    let st = bird.status().unwrap();
    assert_eq!(st.sessions[0].0, "router4");
    assert_eq!(
        st.sessions[0].1.as_ref().unwrap().neighbor,
        Some("10.77.0.2".parse().unwrap())
    );

    // Withdraw one: only it goes.
    let applied = bird.apply(&set(&s, &[VIP1, VIP6])).unwrap();
    assert_eq!((applied.changed, applied.v4_routes), (true, 1));
    lab.wait_fib(VIP2, false);
    assert!(lab.in_fib(VIP1) && lab.in_fib(VIP6));
    // The same set again sends nothing.
    assert!(!bird.apply(&set(&s, &[VIP1, VIP6])).unwrap().changed);

    // RFC 8326 before a planned withdrawal: the router sees GRACEFUL_SHUTDOWN.
    let mut d = set(&s, &[VIP1, VIP6]);
    let mut a: Announcement = d.get(&VIP1.parse().unwrap()).unwrap().clone();
    a.graceful_shutdown = true;
    d.insert(a);
    bird.apply(&d).unwrap();
    common::wait_until("GRACEFUL_SHUTDOWN on the router", 30, || {
        lab.router_route(VIP1).contains("(65535,0)")
    });

    // Everything withdrawn.
    bird.apply(&Desired::new()).unwrap();
    lab.wait_fib(VIP1, false);
    lab.wait_fib(VIP6, false);
}

#[test]
fn a_refused_config_keeps_the_previous_routes() {
    let Some(lab) = Lab::new('b') else { return };
    let s = lab.settings();
    let mut bird = lab.bird(s.clone()).unwrap();
    bird.apply(&set(&s, &[VIP1])).unwrap();
    lab.wait_fib(VIP1, true);
    let good = std::fs::read(lab.include()).unwrap();

    // The operator's bird.conf gets broken: BIRD refuses any reconfigure.
    let dconf = lab.path("d.conf");
    let original = std::fs::read_to_string(&dconf).unwrap();
    std::fs::write(&dconf, format!("{original}protocol nonsense {{\n")).unwrap();
    let e = bird.apply(&set(&s, &[VIP1, VIP3])).unwrap_err();
    let msg = e.to_string();
    match (&e, e.ctl()) {
        (BgpError::Apply(a), Some(CtlError::ConfigRefused { file, line, .. })) => {
            assert_eq!(a.step, "configure check", "{msg}");
            assert_eq!(a.restored, Restored::Previous, "{msg}");
            assert!(file.ends_with("d.conf"), "{msg}");
            assert!(*line > 1, "{msg}");
        }
        _ => panic!("expected a refused config: {msg}"),
    }
    assert!(msg.contains("d.conf") && msg.contains("restored"), "{msg}");
    assert_eq!(
        std::fs::read(lab.include()).unwrap(),
        good,
        "previous include back"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(lab.in_fib(VIP1), "the previous route is still announced");
    assert!(!lab.in_fib(VIP3));

    // Fixed: the next apply goes through.
    std::fs::write(&dconf, original).unwrap();
    assert!(bird.apply(&set(&s, &[VIP1, VIP3])).unwrap().changed);
    lab.wait_fib(VIP3, true);
    assert!(lab.in_fib(VIP1));
}

#[test]
fn a_missing_or_stopped_daemon_is_a_clear_error() {
    let Some(mut lab) = Lab::new('c') else { return };
    let s = lab.settings();

    let mut missing = s.clone();
    missing.socket = lab.path("nobody.ctl");
    let e = lab.bird(missing).unwrap_err();
    assert!(
        matches!(e.ctl(), Some(CtlError::SocketMissing { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("nobody.ctl"), "{e}");

    let mut bird = lab.bird(s.clone()).unwrap();
    bird.apply(&set(&s, &[VIP1])).unwrap();
    let before = std::fs::read(lab.include()).unwrap();
    // SIGKILL: the daemon leaves its socket file behind, nobody listens on it.
    lab.director.kill();
    let e = bird.apply(&set(&s, &[VIP1, VIP2])).unwrap_err();
    assert!(
        matches!(
            e.ctl(),
            Some(CtlError::NotRunning { .. }) | Some(CtlError::SocketMissing { .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("d.ctl"), "{e}");
    let e = bird.status().unwrap_err();
    assert!(e.ctl().is_some(), "{e}");
    assert_eq!(
        std::fs::read(lab.include()).unwrap(),
        before,
        "include untouched"
    );
}

/// Not a test: the process the lifeline test starts in the director namespace and
/// SIGKILLs. Without its environment variables it does nothing.
#[test]
fn helper_lifeline_holder() {
    let (Ok(sock), Ok(include)) = (
        std::env::var("RONDO_BGP_HOLDER_SOCKET"),
        std::env::var("RONDO_BGP_HOLDER_INCLUDE"),
    ) else {
        return;
    };
    let s = BgpSettings::new(sock.into(), include.into()).unwrap();
    let mut bird = Bird::new(s.clone()).expect("holder: Bird::new");
    bird.apply(&set(&s, &[VIP1, VIP6])).expect("holder: apply");
    println!("RONDO-HOLDER-READY {}", bird.lifeline().name());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn a_sigkilled_director_loses_its_routes_through_the_lifeline() {
    let Some(lab) = Lab::new('d') else { return };
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.d])
        .arg(&exe)
        .args([
            "--exact",
            "helper_lifeline_holder",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RONDO_BGP_HOLDER_SOCKET", lab.path("d.ctl"))
        .env("RONDO_BGP_HOLDER_INCLUDE", lab.include())
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    struct KillOnDrop<'a>(&'a mut Child);
    impl Drop for KillOnDrop<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let guard = KillOnDrop(&mut child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("RONDO-HOLDER-READY") {
                let _ = tx.send(line);
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the holder announced");
    assert!(ready.ends_with("rondo-life"), "{ready}");
    lab.wait_fib(VIP1, true);
    lab.wait_fib(VIP6, true);

    guard.0.kill().unwrap(); // SIGKILL
    let t0 = Instant::now();
    let gone = common::poll(Duration::from_secs(10), Duration::from_millis(5), || {
        !lab.in_fib(VIP1) && !lab.in_fib(VIP6)
    });
    let took = t0.elapsed();
    println!(
        "lifeline: SIGKILL to routes gone from the router's FIB: {} ms",
        took.as_millis()
    );
    assert!(
        gone,
        "routes still in the router's FIB 10 s after the SIGKILL"
    );
    drop(guard);

    // It was the lifeline, not a lost session: bird and its BGP session are still up.
    let mut ctl = BirdCtl::connect(&lab.path("d.ctl"), Duration::from_secs(5)).unwrap();
    assert!(ctl.show_protocol("router4").unwrap().is_established());
    let out = Command::new("ip")
        .args(["-n", &lab.d, "link", "show", "rondo-life"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the lifeline is gone with its process"
    );
}
