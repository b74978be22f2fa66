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

use common::bird::Lab;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rondo::fleet::bgp::{
    Announcement, BfdState, BgpError, BgpSettings, Bird, BirdCtl, CtlError, Desired, Prefix,
    Restored,
};

const VIP1: &str = "10.10.0.1/32";
const VIP2: &str = "10.10.0.2/32";
const VIP3: &str = "10.10.0.3/32";
const VIP6: &str = "fd00:10::1/128";

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
/// SIGKILLs, with `--ignored` (ignored otherwise, so it never counts as a passed test).
#[test]
#[ignore = "a child process of the lifeline test, not a test"]
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
            "--ignored",
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
