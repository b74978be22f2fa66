//! `rondo healthcheck --fleet`: three real checker processes against a real three-member
//! etcd cluster (tests/common/etcd.rs), checking real TCP listeners on loopback (two up,
//! one down) named by a desired document the test puts. Every write of the health document
//! is watched: exactly one leader writes at a time and terms only grow, across a SIGKILLed
//! leader (restarted afterwards), a SIGTERMed one (it resigns: no gap) and a partitioned one
//! (SIGSTOP past its lease, then SIGCONT: it must not write again); no backend's health
//! flips because of a failover (the dampeners are carried over); a real change (a listener
//! stopped) is still reported; a new desired revision brings new targets, a bad one is
//! refused; an etcd member's SIGKILL changes nothing. Times are measured and printed.
#![cfg(feature = "etcd")]

mod common;

use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::etcd::EtcdCluster;
use rondo::fleet::docs::{self, HealthDoc};
use rondo::fleet::etcd::{EtcdSettings, EtcdStore, WatchEvent};

const PREFIX: &str = "/rondo/hc";
const INTERVAL_MS: u64 = 200;
const TRIGGER: u32 = 3;
const LEASE_TTL_MS: u64 = 2000;

fn settings(endpoints: Vec<String>, name: &str) -> EtcdSettings {
    let mut s = EtcdSettings::new(endpoints, PREFIX, name);
    s.connect_timeout_ms = 500;
    s.request_timeout_ms = 2000;
    s
}

/// A listener on a loopback address until stopped: TCP (accepts and drops connections),
/// or HTTP (answers 200, or 500 to the next `fail_next` requests).
struct Listener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    fail_next: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
}

fn answer(mut c: TcpStream, fail_next: &AtomicU32) {
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let fail = fail_next
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok();
    let _ = if fail {
        c.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
    } else {
        c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    };
}

impl Listener {
    fn open(ip: &str, http: bool) -> Listener {
        let l = TcpListener::bind(format!("{ip}:0")).expect("bind a loopback listener");
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let fail_next = Arc::new(AtomicU32::new(0));
        let (s, f) = (stop.clone(), fail_next.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                match l.accept() {
                    Ok((c, _)) if http => answer(c, &f),
                    Ok((c, _)) => drop(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Listener {
            addr,
            stop,
            fail_next,
            thread: Some(thread),
        }
    }

    /// Answer the next `n` HTTP checks with 500.
    fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::Release);
    }

    /// Wait until the failing answers asked for are all given.
    fn wait_failures_given(&self, what: &str) {
        let end = Instant::now() + Duration::from_secs(10);
        while self.fail_next.load(Ordering::Acquire) > 0 {
            assert!(
                Instant::now() < end,
                "{what}: the new leader ran no HTTP checks"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn close(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.close();
    }
}

/// A port on `ip` nothing listens on (bound, then closed).
fn closed_port(ip: &str) -> u16 {
    TcpListener::bind(format!("{ip}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn desired(backends: &[(String, &str, u16)]) -> String {
    let mut s = String::from(
        r#"[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]
"#,
    );
    for (ip, kind, port) in backends {
        s.push_str(&format!(
            "\n[[tables.backends]]\nip = \"{ip}\"\nhealthchecks = {{ {kind} = {port} }}\n"
        ));
    }
    s
}

/// One `rondo healthcheck --fleet` process; SIGKILLed on drop.
struct Checker {
    name: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Logs of earlier runs.
    earlier: String,
}

impl Checker {
    fn new(dir: &std::path::Path, name: &str, endpoints: &[String]) -> Checker {
        let config = dir.join(format!("{name}.toml"));
        let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        std::fs::write(
            &config,
            format!(
                "[fleet]\nendpoints = [{}]\nprefix = \"{PREFIX}\"\nname = \"{name}\"\nconnect_timeout_ms = 500\nrequest_timeout_ms = 1000\nlease_ttl_ms = {LEASE_TTL_MS}\n\n[healthchecks]\ninterval_ms = {INTERVAL_MS}\ntimeout_ms = 150\ntrigger = {TRIGGER}\nwrite_every_rounds = 5\n",
                eps.join(", ")
            ),
        )
        .unwrap();
        Checker {
            name: name.into(),
            config,
            log: dir.join(format!("{name}.log")),
            child: None,
            earlier: String::new(),
        }
    }

    fn start(&mut self) {
        assert!(self.child.is_none());
        self.earlier.push_str(&self.log_text());
        let child = Command::new(env!("CARGO_BIN_EXE_rondo"))
            .args(["healthcheck", "--fleet"])
            .arg(&self.config)
            .env("RONDO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).unwrap())
            .spawn()
            .expect("spawn rondo healthcheck --fleet");
        self.child = Some(child);
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {}", self.name);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Wait up to `timeout` for the process to exit; its status.
    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < end,
                "{} did not exit within {timeout:?}: {}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            // A SIGSTOPped process must be woken to die cleanly after the kill.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill();
    }
}

/// Every write of the health document, as the watch delivered it, with its arrival time.
struct Write {
    at: Instant,
    revision: i64,
    doc: HealthDoc,
}

struct Recorder {
    writes: Arc<Mutex<Vec<Write>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    fn start(endpoints: Vec<String>) -> Recorder {
        let mut store = EtcdStore::connect(settings(endpoints, "recorder")).unwrap();
        let watch = store.watch(docs::HEALTH, 0).unwrap();
        let writes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (writes.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                match watch.receiver().recv_timeout(Duration::from_millis(50)) {
                    Ok(WatchEvent::Put { revision, bytes }) => {
                        let doc: HealthDoc = serde_json::from_slice(&bytes)
                            .unwrap_or_else(|e| panic!("health document at {revision}: {e}"));
                        w.lock().unwrap().push(Write {
                            at: Instant::now(),
                            revision,
                            doc,
                        });
                    }
                    Ok(WatchEvent::Deleted { revision }) => {
                        panic!("the health document was deleted at {revision}")
                    }
                    Ok(_) | Err(_) => {}
                }
            }
            drop(store);
        });
        Recorder {
            writes,
            stop,
            thread: Some(thread),
        }
    }

    /// Wait until a write satisfies `f`; its arrival time and document.
    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Write) -> bool,
    ) -> (Instant, HealthDoc) {
        let end = Instant::now() + timeout;
        loop {
            if let Some(w) = self.writes.lock().unwrap().iter().find(|w| f(w)) {
                return (w.at, w.doc.clone());
            }
            assert!(
                Instant::now() < end,
                "no health write {what} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn last(&self) -> Option<HealthDoc> {
        self.writes.lock().unwrap().last().map(|w| w.doc.clone())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn health_of(doc: &HealthDoc, ip: &str) -> bool {
    doc.backends
        .iter()
        .find(|b| b.ip == ip)
        .unwrap_or_else(|| panic!("{ip} missing from {doc:?}"))
        .healthy
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[test]
fn one_leader_fails_over_without_flips() {
    let Some(mut cluster) = EtcdCluster::start(3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let eps = cluster.endpoints();

    // Backends: two up (TCP), one down (TCP), one up (HTTP) that the test makes fail
    // the first checks a new leader runs, fewer than `trigger` of them: a leader that
    // carries the dampener on keeps it up, one that started afresh would take the first
    // failure as is and flip it down.
    let up1 = Listener::open("127.0.0.2", false);
    let mut up2 = Listener::open("127.0.0.3", false);
    let down_port = closed_port("127.0.0.4");
    let web = Listener::open("127.0.0.5", true);
    let backends = vec![
        ("127.0.0.2".to_string(), "tcp", up1.addr.port()),
        ("127.0.0.3".to_string(), "tcp", up2.addr.port()),
        ("127.0.0.4".to_string(), "tcp", down_port),
        ("127.0.0.5".to_string(), "http", web.addr.port()),
    ];
    let mut store = EtcdStore::connect(settings(eps.clone(), "test")).unwrap();
    let desired_rev = store
        .put_document_if(docs::DESIRED, desired(&backends).as_bytes(), 0)
        .unwrap();
    let rec = Recorder::start(eps.clone());

    let mut checkers: Vec<Checker> = ["c1", "c2", "c3"]
        .iter()
        .map(|n| Checker::new(dir.path(), n, &eps))
        .collect();
    let t0 = Instant::now();
    checkers[0].start();
    let (first_at, first) = rec.wait_for("by anyone", Duration::from_secs(20), |_| true);
    println!(
        "first health write {} ms after the first checker started (leader {}, term {})",
        ms(first_at - t0),
        first.leader,
        first.term
    );
    assert_eq!(first.leader, "c1");
    assert_eq!(first.desired_revision, desired_rev);
    for c in &mut checkers[1..] {
        c.start();
    }
    let expected = |doc: &HealthDoc| {
        health_of(doc, "127.0.0.2")
            && health_of(doc, "127.0.0.3")
            && !health_of(doc, "127.0.0.4")
            && health_of(doc, "127.0.0.5")
    };
    assert!(expected(&first), "first round: {first:?}");
    // Let the standbys stand.
    std::thread::sleep(Duration::from_millis(1500));
    // c1, c2, c3 are checkers[0..3].
    let leader_idx = |name: &str| name[1..].parse::<usize>().unwrap() - 1;

    // 1. SIGKILL the leader: a standby takes over within about the lease TTL.
    let l1 = rec.last().unwrap();
    let i1 = leader_idx(&l1.leader);
    let killed_at = Instant::now();
    checkers[i1].kill();
    web.fail_next(TRIGGER - 1);
    let (at, doc) = rec.wait_for("after the SIGKILL", Duration::from_secs(15), |w| {
        w.at >= killed_at && w.doc.leader != l1.leader
    });
    let sigkill_failover = at - killed_at;
    println!(
        "SIGKILL {} (term {}): {} took over (term {}) after {} ms (lease TTL {LEASE_TTL_MS} ms)",
        l1.leader,
        l1.term,
        doc.leader,
        doc.term,
        ms(sigkill_failover)
    );
    assert!(doc.term > l1.term);
    assert!(expected(&doc), "no flip after the SIGKILL: {doc:?}");
    web.wait_failures_given("after the SIGKILL");
    // Restart it: it becomes a standby.
    checkers[i1].start();
    std::thread::sleep(Duration::from_millis(1500));

    // 2. SIGTERM the leader: it resigns, the next takes over at once.
    let l2 = rec.last().unwrap();
    let i2 = leader_idx(&l2.leader);
    let termed_at = Instant::now();
    web.fail_next(TRIGGER - 1);
    checkers[i2].signal("TERM");
    let (at, doc) = rec.wait_for("after the SIGTERM", Duration::from_secs(15), |w| {
        w.at >= termed_at && w.doc.leader != l2.leader
    });
    let sigterm_gap = at - termed_at;
    let st = checkers[i2].wait_exit(Duration::from_secs(10));
    assert!(st.success(), "{}: {st}", checkers[i2].name);
    let log = checkers[i2].log_text();
    assert!(log.contains("resigned the leadership"), "{log}");
    println!(
        "SIGTERM {} (term {}): resigned; {} took over (term {}) after {} ms",
        l2.leader,
        l2.term,
        doc.leader,
        doc.term,
        ms(sigterm_gap)
    );
    assert!(doc.term > l2.term);
    assert!(expected(&doc), "no flip after the SIGTERM: {doc:?}");
    web.wait_failures_given("after the SIGTERM");
    checkers[i2].start();
    std::thread::sleep(Duration::from_millis(1500));

    // 3. Partition the leader: SIGSTOP past its lease, then SIGCONT.
    let l3 = rec.last().unwrap();
    let i3 = leader_idx(&l3.leader);
    let stopped_at = Instant::now();
    checkers[i3].signal("STOP");
    web.fail_next(TRIGGER - 1);
    let (at, doc) = rec.wait_for("after the SIGSTOP", Duration::from_secs(15), |w| {
        w.at >= stopped_at && w.doc.leader != l3.leader
    });
    let partition_failover = at - stopped_at;
    let new_leader = doc.leader.clone();
    let new_term = doc.term;
    assert!(new_term > l3.term);
    assert!(expected(&doc), "no flip after the partition: {doc:?}");
    web.wait_failures_given("after the partition");
    // Keep it stopped well past its lease, then wake it.
    let hold = Duration::from_millis(2 * LEASE_TTL_MS);
    std::thread::sleep(hold.saturating_sub(stopped_at.elapsed()));
    let woken_at = Instant::now();
    checkers[i3].signal("CONT");
    std::thread::sleep(Duration::from_millis(3000));
    {
        let writes = rec.writes.lock().unwrap();
        for w in writes.iter().filter(|w| w.at >= at) {
            assert_eq!(
                (w.doc.leader.as_str(), w.doc.term),
                (new_leader.as_str(), new_term),
                "after the partition only the new leader writes (revision {})",
                w.revision
            );
        }
    }
    let log = checkers[i3].log_text();
    assert!(log.contains("leadership lost"), "{log}");
    if let Some(line) = log.lines().find(|l| l.contains("leadership lost")) {
        println!("woken leader's log: {}", line.trim());
    }
    let standing = log.matches("standing for election").count();
    assert!(standing >= 2, "the woken leader stands again: {log}");
    println!(
        "SIGSTOP {} (term {}) for {} ms: {} took over (term {}) after {} ms; the old leader, woken, wrote nothing in 3000 ms and stands by again",
        l3.leader,
        l3.term,
        ms(woken_at - stopped_at),
        new_leader,
        new_term,
        ms(partition_failover)
    );

    // 4. A real change is still reported, after `trigger` rounds.
    let closed_at = Instant::now();
    up2.close();
    let (at, doc) = rec.wait_for("with 127.0.0.3 down", Duration::from_secs(15), |w| {
        w.at >= closed_at && !health_of(&w.doc, "127.0.0.3")
    });
    println!(
        "listener 127.0.0.3 closed: reported down after {} ms (trigger {TRIGGER} x interval {INTERVAL_MS} ms) by {}",
        ms(at - closed_at),
        doc.leader
    );
    assert!(health_of(&doc, "127.0.0.2") && !health_of(&doc, "127.0.0.4"));
    assert_eq!(doc.leader, new_leader);

    // 5. A new desired revision brings new targets; a bad one is refused and the last
    // good one's backends stay checked.
    let extra = Listener::open("127.0.0.6", false);
    let mut more = backends.clone();
    more.push(("127.0.0.6".to_string(), "tcp", extra.addr.port()));
    let pushed_at = Instant::now();
    let rev2 = store
        .put_document_if(docs::DESIRED, desired(&more).as_bytes(), desired_rev)
        .unwrap();
    let (at, doc) = rec.wait_for(
        "of the new desired revision",
        Duration::from_secs(10),
        |w| w.doc.desired_revision == rev2,
    );
    assert!(health_of(&doc, "127.0.0.6"), "{doc:?}");
    println!(
        "desired revision {rev2} (a backend added): checked and written after {} ms",
        ms(at - pushed_at)
    );
    let rev3 = store
        .put_document_if(docs::DESIRED, b"[[tables]]\nname = 1\n", rev2)
        .unwrap();
    let bad_at = Instant::now();
    let (_, doc) = rec.wait_for("after the bad revision", Duration::from_secs(10), |w| {
        w.at >= bad_at + Duration::from_millis(1500)
    });
    assert_eq!(doc.desired_revision, rev2, "bad revision {rev3} refused");
    assert_eq!(doc.backends.len(), 5);
    let log = checkers[leader_idx(&new_leader)].log_text();
    assert!(log.contains("desired revision refused"), "{log}");

    // 6. SIGTERM on a standby: it withdraws its candidacy and exits; the leader leads on.
    let s = checkers
        .iter()
        .position(|c| c.name != new_leader && c.child.is_some())
        .unwrap();
    checkers[s].signal("TERM");
    let st = checkers[s].wait_exit(Duration::from_secs(10));
    assert!(st.success(), "{}: {st}", checkers[s].name);
    let log = checkers[s].log_text();
    assert!(log.contains("withdrawing the candidacy"), "{log}");
    let left_at = Instant::now();
    let (_, doc) = rec.wait_for("after a standby left", Duration::from_secs(10), |w| {
        w.at >= left_at
    });
    assert_eq!(doc.leader, new_leader);

    // 7. SIGKILL the etcd member every checker connected to first: the checking goes on
    // through the other members (the leadership may move, never to two writers).
    let state_of = |d: &HealthDoc| {
        let mut v: Vec<(String, bool)> = d
            .backends
            .iter()
            .map(|b| (b.ip.clone(), b.healthy))
            .collect();
        v.sort();
        v
    };
    let before = rec.last().unwrap();
    cluster.kill(0);
    let killed_at = Instant::now();
    let (at, doc) = rec.wait_for(
        "after the etcd member's SIGKILL",
        Duration::from_secs(20),
        |w| w.at >= killed_at + Duration::from_millis(100),
    );
    assert_eq!(
        state_of(&doc),
        state_of(&before),
        "no flip when an etcd member dies"
    );
    println!(
        "etcd member m0 SIGKILLed: next health write {} ms later by {} (term {}; before: {}, term {})",
        ms(at - killed_at),
        doc.leader,
        doc.term,
        before.leader,
        before.term
    );
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(state_of(&rec.last().unwrap()), state_of(&before));

    // Every write: terms only grow, one leader per term, nothing flipped before step 4
    // (from then on, only 127.0.0.3 changed).
    let writes = rec.writes.lock().unwrap();
    let mut terms: Vec<(i64, String)> = Vec::new();
    for pair in writes.windows(2) {
        assert!(pair[1].revision > pair[0].revision);
        assert!(
            pair[1].doc.term >= pair[0].doc.term,
            "term went back at revision {}: {} -> {}",
            pair[1].revision,
            pair[0].doc.term,
            pair[1].doc.term
        );
    }
    for w in writes.iter() {
        match terms.iter().find(|(t, _)| *t == w.doc.term) {
            Some((_, l)) => assert_eq!(l, &w.doc.leader, "two leaders in term {}", w.doc.term),
            None => terms.push((w.doc.term, w.doc.leader.clone())),
        }
        if w.at < closed_at {
            assert!(
                expected(&w.doc),
                "a backend flipped at revision {} (leader {}): {:?}",
                w.revision,
                w.doc.leader,
                w.doc.backends
            );
        }
    }
    println!(
        "{} health writes, terms {:?}: one writer per term, terms only grow, no flip across 3 failovers",
        writes.len(),
        terms
    );
    assert!(terms.len() >= 4, "four terms at least: {terms:?}");
    drop(writes);
    drop(up1);
}
