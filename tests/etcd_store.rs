//! fleet::etcd against a real etcd that the tests start themselves (tests/common/etcd.rs):
//! documents and compare-and-swap, watches across member kills and restarts, leases and
//! the election across SIGKILLed holders, a deposed leader's writes, bad endpoints and
//! oversize documents. Built with the `etcd` feature (scripts/test enables it).
#![cfg(feature = "etcd")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::etcd::{etcdctl, EtcdCluster};
use rondo::fleet::etcd::{EtcdError, EtcdSettings, EtcdStore, WatchEvent};

const PREFIX: &str = "/rondo/test";

fn settings(endpoints: Vec<String>, name: &str) -> EtcdSettings {
    let mut s = EtcdSettings::new(endpoints, PREFIX, name);
    s.connect_timeout_ms = 500;
    s.request_timeout_ms = 2000;
    s
}

fn store(c: &EtcdCluster, name: &str) -> EtcdStore {
    EtcdStore::connect(settings(c.endpoints(), name)).expect("connect to the test etcd")
}

/// Write until it lands (the store reconnects to another member after a failure).
fn put_retrying(s: &mut EtcdStore, key: &str, bytes: &[u8], deadline: Duration) -> i64 {
    let end = Instant::now() + deadline;
    loop {
        let cur = match s.get_document(key) {
            Ok(d) => d.map(|d| d.mod_revision).unwrap_or(0),
            Err(e) => {
                assert!(Instant::now() < end, "no write within {deadline:?}: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        match s.put_document_if(key, bytes, cur) {
            Ok(r) => return r,
            Err(e) => {
                assert!(Instant::now() < end, "no write within {deadline:?}: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Collect the watch's Put revisions until `want` is seen; checks they strictly rise.
fn collect_until(
    w: &rondo::fleet::etcd::Watch,
    want: i64,
    timeout: Duration,
) -> (Vec<(i64, Vec<u8>)>, Vec<WatchEvent>) {
    let end = Instant::now() + timeout;
    let mut puts: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut other = Vec::new();
    let mut last = 0;
    while Instant::now() < end {
        match w.recv_timeout(Duration::from_millis(200)) {
            Some(WatchEvent::Put { revision, bytes }) => {
                assert!(
                    revision > last,
                    "revision {revision} after {last}: went backwards or repeated"
                );
                last = revision;
                puts.push((revision, bytes));
                if revision >= want {
                    return (puts, other);
                }
            }
            Some(WatchEvent::Deleted { revision }) => {
                assert!(revision > last, "delete at {revision} after {last}");
                last = revision;
                other.push(WatchEvent::Deleted { revision });
                if revision >= want {
                    return (puts, other);
                }
            }
            Some(e) => other.push(e),
            None => {}
        }
    }
    panic!("revision {want} not seen within {timeout:?}; got {puts:?} and {other:?}");
}

#[test]
fn get_put_cas_conflict_and_history() {
    let Some(c) = EtcdCluster::start(1) else {
        return;
    };
    let mut a = store(&c, "a");
    let mut b = store(&c, "b");
    assert_eq!(a.get_document("desired").unwrap(), None);
    let r1 = a.put_document_if("desired", b"v1", 0).unwrap();
    let d = b.get_document("desired").unwrap().unwrap();
    assert_eq!(
        (d.bytes.as_slice(), d.mod_revision, d.version),
        (&b"v1"[..], r1, 1)
    );
    // Create again: refused, with the current revision.
    match b.put_document_if("desired", b"other", 0) {
        Err(EtcdError::Conflict {
            current,
            expected: 0,
            ..
        }) => assert_eq!(current, r1),
        other => panic!("create over an existing key: {other:?}"),
    }
    // Two writers read r1, both write: one wins, the other is told the winner's revision.
    let ra = a.put_document_if("desired", b"from a", r1).unwrap();
    match b.put_document_if("desired", b"from b", r1) {
        Err(e @ EtcdError::Conflict { .. }) => {
            let EtcdError::Conflict {
                current, expected, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((*current, *expected), (ra, r1));
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("{PREFIX}/desired")) && msg.contains("someone else"),
                "{msg}"
            );
        }
        other => panic!("second writer on a stale revision: {other:?}"),
    }
    assert_eq!(a.get_document("desired").unwrap().unwrap().bytes, b"from a");
    let r3 = b.put_document_if("desired", b"v3", ra).unwrap();
    let h = a.history("desired", 10).unwrap();
    let revs: Vec<i64> = h.iter().map(|d| d.mod_revision).collect();
    assert_eq!(revs, vec![r3, ra, r1]);
    assert_eq!(h[2].bytes, b"v1");
    assert_eq!(a.history("desired", 2).unwrap().len(), 2);
    // Another prefix does not see it.
    let mut other = EtcdStore::connect(EtcdSettings {
        prefix: "/rondo/elsewhere".into(),
        ..settings(c.endpoints(), "o")
    })
    .unwrap();
    assert_eq!(other.get_document("desired").unwrap(), None);
    assert!(matches!(
        a.get_document("../x"),
        Err(EtcdError::BadKey { .. })
    ));
}

#[test]
fn watch_sees_every_revision_in_order_and_deletes_and_compaction() {
    let Some(c) = EtcdCluster::start(1) else {
        return;
    };
    let mut s = store(&c, "w");
    let first = s.put_document_if("doc", b"0", 0).unwrap();
    let w = s.watch("doc", first).unwrap();
    let mut rev = first;
    let mut written = vec![(first, b"0".to_vec())];
    for i in 1..40 {
        let v = format!("{i}").into_bytes();
        rev = s.put_document_if("doc", &v, rev).unwrap();
        written.push((rev, v));
    }
    let (puts, _) = collect_until(&w, rev, Duration::from_secs(10));
    assert_eq!(puts, written, "every revision, in order, with its bytes");
    s.delete("doc").unwrap();
    let (_, other) = collect_until(&w, rev + 1, Duration::from_secs(5));
    assert!(
        other.contains(&WatchEvent::Deleted { revision: rev + 1 }),
        "{other:?}"
    );
    drop(w);
    // Compaction: a watch from a compacted revision says so, then gets the current value.
    let now = s.put_document_if("doc", b"after", 0).unwrap();
    let (ok, out) = etcdctl(&c.endpoints()[0], &["compaction", &now.to_string()]);
    assert!(ok, "etcdctl compact: {out}");
    let w = s.watch("doc", first).unwrap();
    let (puts, other) = collect_until(&w, now, Duration::from_secs(10));
    assert_eq!(puts.last().unwrap(), &(now, b"after".to_vec()));
    assert!(
        other
            .iter()
            .any(|e| matches!(e, WatchEvent::Compacted { wanted, .. } if *wanted == first)),
        "{other:?}"
    );
}

#[test]
fn watch_survives_killing_its_member_in_a_three_member_cluster() {
    let Some(mut c) = EtcdCluster::start(3) else {
        return;
    };
    let mut s = store(&c, "w3");
    let mut rev = s.put_document_if("doc", b"0", 0).unwrap();
    let w = s.watch("doc", rev).unwrap();
    let connected = loop {
        match w.recv_timeout(Duration::from_secs(10)) {
            Some(WatchEvent::Connected { endpoint, .. }) => break endpoint,
            Some(_) => {}
            None => panic!("the watch never connected"),
        }
    };
    let victim = c.index_of(&connected).unwrap();
    let mut written = vec![rev];
    for i in 1..10 {
        rev = put_retrying(
            &mut s,
            "doc",
            format!("{i}").as_bytes(),
            Duration::from_secs(10),
        );
        written.push(rev);
    }
    c.kill(victim);
    for i in 10..20 {
        rev = put_retrying(
            &mut s,
            "doc",
            format!("{i}").as_bytes(),
            Duration::from_secs(15),
        );
        written.push(rev);
    }
    let (puts, other) = collect_until(&w, rev, Duration::from_secs(20));
    let seen: Vec<i64> = puts.iter().map(|p| p.0).collect();
    assert_eq!(
        seen, written,
        "every revision once, in order, across the member's death"
    );
    let reconnected: Vec<&String> = other
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Connected { endpoint, .. } => Some(endpoint),
            _ => None,
        })
        .collect();
    assert!(
        reconnected.iter().any(|e| **e != connected),
        "reconnected to another member: {other:?}"
    );
    eprintln!("watch moved from {connected} to {reconnected:?}");
}

/// The raft leader dies while a client is connected to a follower: the next reads and
/// writes, with no retry of the caller's own, ride the election out (etcd answers
/// "leader changed" or "no leader" meanwhile) and succeed within the request timeout.
#[test]
fn killing_the_raft_leader_is_ridden_out_by_the_next_calls() {
    let Some(mut c) = EtcdCluster::start(3) else {
        return;
    };
    let leader = (0..50)
        .find_map(|_| {
            c.leader().or_else(|| {
                std::thread::sleep(Duration::from_millis(100));
                None
            })
        })
        .expect("the test cluster has a leader");
    // Connect to a follower: the endpoints without the leader.
    let followers: Vec<String> = c
        .endpoints()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, e)| e)
        .collect();
    let mut s = EtcdStore::connect(settings(followers, "lk")).unwrap();
    let rev = s.put_document_if("doc", b"before", 0).unwrap();
    c.kill(leader);
    let t = Instant::now();
    let got = s.get_document("doc").expect("a read across the election");
    assert_eq!(got.map(|d| d.bytes), Some(b"before".to_vec()));
    let rev2 = s
        .put_document_if("doc", b"after", rev)
        .expect("a compare-and-put across the election");
    assert!(rev2 > rev);
    let now = s.get_document("doc").unwrap().unwrap();
    assert_eq!((now.bytes, now.mod_revision), (b"after".to_vec(), rev2));
    eprintln!(
        "leader {leader} killed: read and write done {:?} later",
        t.elapsed()
    );
}

#[test]
fn watch_survives_etcd_stopped_and_restarted() {
    let Some(mut c) = EtcdCluster::start(1) else {
        return;
    };
    let mut s = store(&c, "ws");
    let mut rev = s.put_document_if("doc", b"0", 0).unwrap();
    let w = s.watch("doc", rev + 1).unwrap();
    rev = s.put_document_if("doc", b"1", rev).unwrap();
    collect_until(&w, rev, Duration::from_secs(5));
    c.stop(0);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match w.recv_timeout(Duration::from_millis(200)) {
            Some(WatchEvent::Disconnected { .. }) => break,
            _ => assert!(Instant::now() < end, "no Disconnected after etcd stopped"),
        }
    }
    assert!(
        s.get_document("doc").is_err(),
        "a read while etcd is down fails"
    );
    // Down long enough for the watch's backoff to reach its 2 s cap: the writes below
    // then land before it reconnects, and it must resume from its revision, not from now.
    std::thread::sleep(Duration::from_secs(3));
    c.restart(0);
    let r2 = put_retrying(&mut s, "doc", b"2", Duration::from_secs(10));
    let r3 = s.put_document_if("doc", b"3", r2).unwrap();
    let (puts, _) = collect_until(&w, r3, Duration::from_secs(15));
    let seen: Vec<i64> = puts.iter().map(|p| p.0).collect();
    assert_eq!(seen, vec![r2, r3]);
}

// --- child processes: this test binary re-run as a lease holder or a candidate ---------

const ROLE: &str = "RONDO_ETCD_TEST_ROLE";

/// Not a test of its own: the body of the child processes below, run by them with
/// `--ignored` (ignored otherwise, so it never counts as a passed test).
#[test]
#[ignore = "a child process of the tests in this file, not a test"]
fn child_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let eps: Vec<String> = std::env::var("RONDO_ETCD_TEST_ENDPOINTS")
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    let name = std::env::var("RONDO_ETCD_TEST_NAME").unwrap();
    let mut s = EtcdStore::connect(settings(eps, &name)).unwrap();
    let lease = s.lease_keepalive(Duration::from_secs(2)).unwrap();
    match role.as_str() {
        "lease" => {
            s.put_with_lease(&lease, &format!("status/{name}"), b"alive")
                .unwrap();
            println!("READY");
        }
        "candidate" => {
            println!("STANDING");
            let l = loop {
                match s.campaign("checker", name.as_bytes(), &lease, Duration::from_secs(30)) {
                    Ok(l) => break l,
                    Err(EtcdError::CampaignTimeout { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            };
            assert!(l.is_leader());
            println!("LEADER");
        }
        r => panic!("unknown role {r}"),
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

struct ChildProc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ChildProc {
    fn spawn(c: &EtcdCluster, role: &str, name: &str) -> ChildProc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_role",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role)
            .env("RONDO_ETCD_TEST_ENDPOINTS", c.endpoints().join(","))
            .env("RONDO_ETCD_TEST_NAME", name)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        ChildProc { child, lines }
    }

    fn wait_line(&self, want: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                // libtest prints "test child_role ... " without a newline first.
                Ok(l) if l.split_whitespace().any(|w| w == want) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.sigkill();
    }
}

#[test]
fn lease_key_vanishes_after_its_holder_is_sigkilled() {
    let Some(c) = EtcdCluster::start(1) else {
        return;
    };
    let mut s = store(&c, "observer");
    let mut holder = ChildProc::spawn(&c, "lease", "holder");
    assert!(
        holder.wait_line("READY", Duration::from_secs(20)),
        "the holder never wrote its key"
    );
    assert_eq!(
        s.get_document("status/holder").unwrap().unwrap().bytes,
        b"alive"
    );
    // Alive holder: the key stays past the TTL (the keepalive works).
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        s.get_document("status/holder").unwrap().is_some(),
        "key gone while its holder lives"
    );
    let t = Instant::now();
    holder.sigkill();
    while s.get_document("status/holder").unwrap().is_some() {
        assert!(
            t.elapsed() < Duration::from_secs(2 + 3),
            "key still there {:?} after SIGKILL (TTL 2 s)",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "lease key gone {:?} after its holder's SIGKILL (TTL 2 s)",
        t.elapsed()
    );
}

#[test]
fn election_one_leader_and_failover_after_sigkill() {
    let Some(c) = EtcdCluster::start(1) else {
        return;
    };
    let mut s = store(&c, "observer");
    let mut a = ChildProc::spawn(&c, "candidate", "cand-a");
    assert!(a.wait_line("STANDING", Duration::from_secs(20)));
    assert!(
        a.wait_line("LEADER", Duration::from_secs(10)),
        "the first candidate was not elected"
    );
    let mut b = ChildProc::spawn(&c, "candidate", "cand-b");
    assert!(b.wait_line("STANDING", Duration::from_secs(20)));
    // Exactly one leader: b stands by while a lives (well past a TTL).
    assert!(
        !b.wait_line("LEADER", Duration::from_secs(3)),
        "two leaders"
    );
    assert_eq!(
        s.leader("checker").unwrap().as_deref(),
        Some(&b"cand-a"[..])
    );
    let t = Instant::now();
    a.sigkill();
    assert!(
        b.wait_line("LEADER", Duration::from_secs(2 + 3)),
        "no failover within TTL + 3 s"
    );
    let took = t.elapsed();
    assert_eq!(
        s.leader("checker").unwrap().as_deref(),
        Some(&b"cand-b"[..])
    );
    eprintln!("election failover after the leader's SIGKILL: {took:?} (lease TTL 2 s)");
    b.sigkill();
}

#[test]
fn a_deposed_leader_cannot_write_and_learns_it() {
    let Some(c) = EtcdCluster::start(1) else {
        return;
    };
    let mut a = store(&c, "a");
    let la = a.lease_keepalive(Duration::from_secs(2)).unwrap();
    let lead = a
        .campaign("checker", b"a", &la, Duration::from_secs(5))
        .unwrap();
    assert!(lead.is_leader());
    a.put_if_leader(&lead, "health", b"from a").unwrap();
    let eps = c.endpoints();
    let (tx, rx) = mpsc::channel();
    let standby = std::thread::spawn(move || {
        let mut b = EtcdStore::connect(settings(eps, "b")).unwrap();
        let lb = b.lease_keepalive(Duration::from_secs(2)).unwrap();
        let l = b
            .campaign("checker", b"b", &lb, Duration::from_secs(20))
            .unwrap();
        tx.send(()).unwrap();
        let r = b.put_if_leader(&l, "health", b"from b");
        (r.map_err(|e| e.to_string()), l.is_leader())
    });
    // Depose a as a partition would: its lease ends in etcd (here: revoked from outside).
    std::thread::sleep(Duration::from_millis(500));
    let (ok, out) = etcdctl(
        &c.endpoints()[0],
        &["lease", "revoke", &format!("{:x}", la.id())],
    );
    assert!(ok, "etcdctl lease revoke: {out}");
    let local = lead.is_leader();
    match a.put_if_leader(&lead, "health", b"late write from a") {
        Err(EtcdError::NotLeader { .. }) => {}
        other => panic!("a deposed leader's write (local check said leader: {local}): {other:?}"),
    }
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the standby was not elected");
    let (r, b_leader) = standby.join().unwrap();
    r.expect("the new leader writes");
    assert!(b_leader);
    assert!(
        lead.wait_lost(Duration::from_secs(3)),
        "the deposed leader never learned it"
    );
    assert!(!lead.is_leader());
    assert!(matches!(
        a.put_if_leader(&lead, "health", b"x"),
        Err(EtcdError::NotLeader { .. })
    ));
    assert_eq!(a.get_document("health").unwrap().unwrap().bytes, b"from b");
    eprintln!("deposed leader's write refused (its local check still said leader: {local})");
}

#[test]
fn resign_hands_leadership_over_at_once() {
    let Some(c) = EtcdCluster::start(1) else {
        return;
    };
    let mut a = store(&c, "a");
    let la = a.lease_keepalive(Duration::from_secs(5)).unwrap();
    let lead = a
        .campaign("checker", b"a", &la, Duration::from_secs(5))
        .unwrap();
    let eps = c.endpoints();
    let standby = std::thread::spawn(move || {
        let mut b = EtcdStore::connect(settings(eps, "b")).unwrap();
        let lb = b.lease_keepalive(Duration::from_secs(5)).unwrap();
        b.campaign("checker", b"b", &lb, Duration::from_secs(20))
            .unwrap();
        Instant::now()
    });
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    a.resign(lead).unwrap();
    let elected = standby.join().unwrap();
    let gap = elected.saturating_duration_since(t);
    assert!(
        gap < Duration::from_secs(2),
        "handover took {gap:?} (the lease TTL is 5 s)"
    );
    eprintln!("planned handover by resign: {gap:?}");
}

#[test]
fn unreachable_endpoint_is_a_clear_error_within_the_timeout() {
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ep = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    let e = match EtcdStore::connect(settings(vec![ep.clone()], "x")) {
        Err(e) => e,
        Ok(_) => panic!("connected to nothing"),
    };
    let took = t.elapsed();
    assert!(matches!(e, EtcdError::Unreachable { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&ep) && msg.contains("500 ms"), "{msg}");
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} with a 500 ms connect timeout"
    );
    // A bad endpoint in settings is refused before any connection, naming the field.
    match EtcdStore::connect(settings(vec!["127.0.0.1:2379".into()], "x")) {
        Err(EtcdError::Settings(s)) => assert_eq!(s.field, "endpoints[0]"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn oversize_documents_are_refused() {
    let Some(c) = EtcdCluster::start(1) else {
        return;
    };
    let mut small = EtcdStore::connect(EtcdSettings {
        max_document_bytes: 1024,
        ..settings(c.endpoints(), "small")
    })
    .unwrap();
    let mut big = store(&c, "big");
    match small.put_document_if("doc", &[b'x'; 2000], 0) {
        Err(e @ EtcdError::TooLarge { .. }) => {
            assert!(
                e.to_string().contains("2000 bytes") && e.to_string().contains("1024"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(big.get_document("doc").unwrap(), None, "nothing written");
    let w = small.watch("doc", 0).unwrap();
    let r = big.put_document_if("doc", &[b'y'; 200_000], 0).unwrap();
    match small.get_document("doc") {
        Err(EtcdError::TooLarge { .. }) => {}
        other => panic!("a 200 kB document read with a 1 KiB limit: {other:?}"),
    }
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match w.recv_timeout(Duration::from_millis(200)) {
            Some(WatchEvent::TooLarge { revision, size }) => {
                assert_eq!((revision, size), (r, 200_000));
                break;
            }
            Some(WatchEvent::Put { .. }) => panic!("an oversize document was delivered"),
            _ => assert!(Instant::now() < end, "no TooLarge event"),
        }
    }
}
