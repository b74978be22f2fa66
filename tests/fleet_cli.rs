//! `rondo fleet` (the real binary) against a real etcd the tests start themselves
//! (tests/common/etcd.rs): push and status (director reports written here as real
//! `DirectorStatus` JSON on a lease, as a director writes them), concurrent pushes, backend
//! changes with the console's rules, GLB JSON documents, diff, history, rollback, wait,
//! and bad input. Built with the `etcd` feature.
#![cfg(feature = "etcd")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::etcd::EtcdCluster;
use rondo::config::desired::parse_desired;
use rondo::fleet::docs::{
    status_key, DirectorStatus, HealthDoc, Refusal, TableFingerprint, DESIRED, HEALTH,
};
use rondo::fleet::etcd::{EtcdSettings, EtcdStore, Lease};

const DOC: &str = r#"# the fleet's tables: kept by the network team
[[tables]]
name = "web" # the web VIP
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]
backends = [{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }, { ip = "10.1.0.3" }]
"#;

const JSON_DOC: &str = r#"{"tables": [{"name": "glb", "hash_key": "12345678901234561234567890123456",
  "seed": "34567890123456783456789012345678",
  "binds": [{"ip": "2.2.2.2", "proto": "tcp", "port": 443}],
  "backends": [{"ip": "10.2.0.1", "state": "active", "healthy": true},
               {"ip": "10.2.0.2", "state": "active", "healthy": true}]}]}"#;

struct Fleet {
    etcd: EtcdCluster,
    prefix: String,
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    out: String,
    took: Duration,
}

impl Fleet {
    fn start(prefix: &str) -> Option<Fleet> {
        let etcd = EtcdCluster::start(1)?;
        Some(Fleet {
            etcd,
            prefix: prefix.to_string(),
            dir: tempfile::tempdir().unwrap(),
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rondo"));
        c.arg("fleet")
            .arg("--endpoints")
            .arg(self.etcd.endpoints().join(","))
            .arg("--prefix")
            .arg(&self.prefix)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        let t = Instant::now();
        let o = self.cmd(args).output().expect("run rondo fleet");
        let r = run_of(o, t.elapsed());
        println!(
            "$ rondo fleet {} -> {} in {:?}\n{}",
            args.join(" "),
            r.code,
            r.took,
            r.out
        );
        r
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn store(&self) -> EtcdStore {
        let mut s = EtcdSettings::new(self.etcd.endpoints(), &self.prefix, "test");
        s.connect_timeout_ms = 1000;
        EtcdStore::connect(s).expect("connect to the test etcd")
    }

    fn desired(&self) -> (i64, String) {
        let d = self
            .store()
            .get_document(DESIRED)
            .unwrap()
            .expect("a desired document");
        (d.mod_revision, String::from_utf8(d.bytes).unwrap())
    }
}

fn run_of(o: Output, took: Duration) -> Run {
    let mut out = String::from_utf8_lossy(&o.stdout).into_owned();
    out.push_str(&String::from_utf8_lossy(&o.stderr));
    Run {
        code: o.status.code().unwrap_or(-1),
        out,
        took,
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn director(name: &str, applied: i64, fingerprint: &str) -> DirectorStatus {
    DirectorStatus {
        name: name.into(),
        pid: 1,
        host: format!("host-{name}"),
        version: "0.1.0".into(),
        started_ms: now_ms() - 5000,
        updated_ms: now_ms(),
        seen_revision: applied,
        applied_revision: applied,
        refused: None,
        source: "etcd".into(),
        tables: vec![TableFingerprint {
            name: "web".into(),
            fingerprint: fingerprint.into(),
        }],
        health_revision: 0,
        ports: vec![rondo::fleet::docs::PortStatus {
            spec: "mem:0".into(),
            link_up: true,
        }],
        forwarding: "forwarding".into(),
        bgp: vec![],
        last_error: None,
    }
}

fn report(store: &mut EtcdStore, lease: &Lease, s: &DirectorStatus) {
    store
        .put_with_lease(lease, &status_key(&s.name), &serde_json::to_vec(s).unwrap())
        .unwrap();
}

#[test]
fn push_then_status_reports_every_director_and_fingerprints() {
    let Some(f) = Fleet::start("/rondo/status") else {
        return;
    };
    let doc = f.file("doc.toml", DOC);
    let r = f.run(&["push", path(&doc)]);
    assert_eq!(r.code, 0, "{}", r.out);
    let (rev, _) = f.desired();
    assert!(r.out.contains(&format!("as revision {rev}")), "{}", r.out);

    let mut store = f.store();
    let lease = store.lease_keepalive(Duration::from_secs(5)).unwrap();
    report(&mut store, &lease, &director("d1", rev, "00112233445566ff"));
    report(&mut store, &lease, &director("d2", rev, "00112233445566ff"));
    let mut h = HealthDoc {
        leader: "checker-a".into(),
        term: 42,
        desired_revision: rev,
        round_ms: now_ms(),
        backends: vec![],
        targets: vec![],
    };
    h.backends.push(rondo::fleet::docs::BackendHealth {
        table: "web".into(),
        ip: "10.1.0.1".into(),
        healthy: true,
    });
    store
        .put_document_if(HEALTH, &serde_json::to_vec(&h).unwrap(), 0)
        .unwrap();
    let r = f.run(&["status"]);
    assert_eq!(r.code, 0, "{}", r.out);
    for want in [
        "d1",
        "host-d2",
        "mem:0",
        "fingerprints equal",
        "leader checker-a term 42",
    ] {
        assert!(r.out.contains(want), "{want}: {}", r.out);
    }
    assert!(
        r.out.trim_end().lines().last().unwrap().starts_with("OK"),
        "{}",
        r.out
    );

    // Different fingerprints: named, exit 1.
    report(&mut store, &lease, &director("d2", rev, "ffffffffffffffff"));
    let r = f.run(&["status"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("DIFFERENT") && r.out.contains("ffffffffffffffff: d2"),
        "{}",
        r.out
    );
    let last = r.out.trim_end().lines().last().unwrap().to_string();
    assert!(
        last.starts_with("NOT OK") && last.contains("fingerprints DIFFERENT"),
        "{last}"
    );

    // Behind, and refused with the reason.
    report(&mut store, &lease, &director("d2", rev, "00112233445566ff"));
    report(
        &mut store,
        &lease,
        &director("d1", rev - 1, "00112233445566ff"),
    );
    let r = f.run(&["status"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains(&format!(
            "d1 is behind (applied {} < desired {rev})",
            rev - 1
        )),
        "{}",
        r.out
    );
    let mut d1 = director("d1", rev - 1, "00112233445566ff");
    d1.refused = Some(Refusal {
        revision: rev,
        error: "table \"web\": no backend is available".into(),
    });
    report(&mut store, &lease, &d1);
    let r = f.run(&["status", "--json"]);
    assert_eq!(r.code, 1, "{}", r.out);
    let v: serde_json::Value = serde_json::from_str(r.out.trim()).expect("status --json is JSON");
    assert_eq!(v["ok"], false);
    assert_eq!(v["desired"]["revision"], rev);
    assert_eq!(v["directors"].as_array().unwrap().len(), 2);
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("d1 refused revision") && problems.contains("no backend"),
        "{problems}"
    );
    assert_eq!(v["health"]["leader"], "checker-a");

    // A corrupt document in etcd: status says so.
    let cur = f.desired().0;
    store
        .put_document_if(DESIRED, b"[[tables]]\nname = 3\n", cur)
        .unwrap();
    let r = f.run(&["status"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("INVALID") && r.out.contains("/rondo/status/desired@"),
        "{}",
        r.out
    );
    // A corrupt director report is named, not fatal.
    store
        .put_with_lease(&lease, "directors/broken", b"{not json")
        .unwrap();
    let r = f.run(&["status"]);
    assert!(
        r.out.contains("directors/broken") && r.out.contains("not a director status"),
        "{}",
        r.out
    );
}

#[test]
fn two_concurrent_pushes_one_wins_the_other_is_told() {
    let Some(f) = Fleet::start("/rondo/race") else {
        return;
    };
    let r = f.run(&["push", path(&f.file("a.toml", DOC))]);
    assert_eq!(r.code, 0, "{}", r.out);
    let (rev, _) = f.desired();
    let b = f.file("b.toml", &DOC.replace("10.1.0.3", "10.1.0.4"));
    let c = f.file("c.toml", &DOC.replace("10.1.0.3", "10.1.0.5"));
    let rs = rev.to_string();
    let t = Instant::now();
    let pb = f
        .cmd(&["push", path(&b), "--expect-revision", &rs])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pc = f
        .cmd(&["push", path(&c), "--expect-revision", &rs])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rb = run_of(pb.wait_with_output().unwrap(), t.elapsed());
    let rc = run_of(pc.wait_with_output().unwrap(), t.elapsed());
    println!(
        "push b -> {} ({:?}): {}\npush c -> {} ({:?}): {}",
        rb.code, rb.took, rb.out, rc.code, rc.took, rc.out
    );
    let codes = [rb.code, rc.code];
    assert!(
        codes.contains(&0) && codes.contains(&1),
        "exactly one wins: {codes:?}"
    );
    let (winner, loser, wanted) = if rb.code == 0 {
        (&rb, &rc, "10.1.0.4")
    } else {
        (&rc, &rb, "10.1.0.5")
    };
    let (now, text) = f.desired();
    assert!(
        text.contains(wanted),
        "the winner's document is stored:\n{text}"
    );
    assert!(
        winner.out.contains(&format!("as revision {now}")),
        "{}",
        winner.out
    );
    assert!(
        loser.out.contains(&format!(
            "lost: desired is now revision {now} (expected {rev}); nothing written"
        )),
        "{}",
        loser.out
    );
    // A stale expectation loses too, and writes nothing.
    let r = f.run(&["push", path(&c), "--expect-revision", &rs]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("lost:"), "{}", r.out);
    assert_eq!(f.desired().0, now);
}

#[test]
fn set_backend_follows_the_console_rules_and_keeps_comments() {
    let Some(f) = Fleet::start("/rondo/set") else {
        return;
    };
    assert_eq!(f.run(&["push", path(&f.file("doc.toml", DOC))]).code, 0);
    let r = f.run(&["set", "backend", "web", "10.1.0.1", "state=draining"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("primary changes in"), "{}", r.out);
    let (rev, text) = f.desired();
    for c in [
        "# the fleet's tables: kept by the network team",
        "# the web VIP",
    ] {
        assert!(text.contains(c), "comment {c:?} lost:\n{text}");
    }
    let d = parse_desired(text.as_bytes(), "stored").unwrap();
    assert_eq!(d.overrides.len(), 1);

    // A second backend not active: refused without force, nothing written.
    let r = f.run(&["set", "backend", "web", "10.1.0.2", "state=inactive"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("refused") && r.out.contains("force"),
        "{}",
        r.out
    );
    assert_eq!(f.desired().0, rev);
    // dry-run shows what moves and writes nothing.
    let r = f.run(&[
        "set",
        "backend",
        "web",
        "10.1.0.2",
        "state=inactive",
        "dry-run",
    ]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        r.out.contains("dry run, nothing written") && r.out.contains("primary changes in"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("would be refused without `force`"),
        "{}",
        r.out
    );
    assert_eq!(f.desired().0, rev);
    // With force it is written.
    let r = f.run(&[
        "set",
        "backend",
        "web",
        "10.1.0.2",
        "state=inactive",
        "force",
    ]);
    assert_eq!(r.code, 0, "{}", r.out);
    let (rev2, text) = f.desired();
    assert!(rev2 > rev);
    assert_eq!(
        parse_desired(text.as_bytes(), "stored")
            .unwrap()
            .overrides
            .len(),
        2
    );
    assert!(text.contains("# the web VIP"));

    // Unknown table or backend, bad words.
    let r = f.run(&["set", "backend", "nope", "10.1.0.1", "weight=2"]);
    assert_eq!(r.code, 1);
    assert!(
        r.out.contains("no table \"nope\"; tables are: web"),
        "{}",
        r.out
    );
    let r = f.run(&["set", "backend", "web", "10.9.9.9", "weight=2"]);
    assert_eq!(r.code, 1);
    assert!(r.out.contains("has no backend 10.9.9.9"), "{}", r.out);
    assert_eq!(
        f.run(&["set", "backend", "web", "10.1.0.1", "colour=red"])
            .code,
        2
    );
    assert_eq!(
        f.run(&["set", "frontend", "web", "10.1.0.1", "weight=2"])
            .code,
        2
    );

    // A push of a file without overrides keeps them (and says so), unless told.
    let r = f.run(&[
        "push",
        path(&f.file("doc2.toml", &DOC.replace("# the web VIP", "# v2"))),
    ]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("carried 2 override(s) over"), "{}", r.out);
    let (_, text) = f.desired();
    assert!(text.contains("# v2"));
    assert_eq!(
        parse_desired(text.as_bytes(), "stored")
            .unwrap()
            .overrides
            .len(),
        2
    );

    // clear backend, then clear all.
    let r = f.run(&["clear", "backend", "web", "10.1.0.2"]);
    assert_eq!(r.code, 0, "{}", r.out);
    let (_, text) = f.desired();
    assert_eq!(
        parse_desired(text.as_bytes(), "stored")
            .unwrap()
            .overrides
            .len(),
        1
    );
    let r = f.run(&["clear", "all"]);
    assert_eq!(r.code, 0, "{}", r.out);
    let (_, text) = f.desired();
    assert!(parse_desired(text.as_bytes(), "stored")
        .unwrap()
        .overrides
        .is_empty());
    assert!(
        !text.contains("[[overrides]]") && text.contains("# v2"),
        "{text}"
    );
    let r = f.run(&[
        "push",
        path(&f.file("doc3.toml", DOC)),
        "--replace-overrides",
    ]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(!r.out.contains("carried"), "{}", r.out);
}

#[test]
fn a_glb_json_document_gets_its_overrides_array() {
    let Some(f) = Fleet::start("/rondo/json") else {
        return;
    };
    assert_eq!(f.run(&["push", path(&f.file("t.json", JSON_DOC))]).code, 0);
    let r = f.run(&[
        "set",
        "backend",
        "glb",
        "10.2.0.2",
        "state=draining",
        "health=down",
    ]);
    assert_eq!(r.code, 0, "{}", r.out);
    let (_, text) = f.desired();
    let v: serde_json::Value = serde_json::from_str(&text).expect("still JSON");
    assert_eq!(v["overrides"][0]["ip"], "10.2.0.2");
    assert_eq!(v["overrides"][0]["state"], "draining");
    assert_eq!(v["overrides"][0]["health"], "down");
    assert_eq!(v["tables"][0]["backends"].as_array().unwrap().len(), 2);
    let r = f.run(&["clear", "backend", "glb", "10.2.0.2"]);
    assert_eq!(r.code, 0, "{}", r.out);
    let (_, text) = f.desired();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v.get("overrides").is_none(), "{text}");
}

#[test]
fn diff_history_and_rollback() {
    let Some(f) = Fleet::start("/rondo/history") else {
        return;
    };
    assert_eq!(f.run(&["push", path(&f.file("doc.toml", DOC))]).code, 0);
    let (first, first_text) = f.desired();
    let r = f.run(&["diff"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("nothing to compare with"), "{}", r.out);
    assert_eq!(
        f.run(&["set", "backend", "web", "10.1.0.2", "state=draining"])
            .code,
        0
    );
    let (second, _) = f.desired();
    let r = f.run(&["diff"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        r.out.contains(&format!("revision {first} -> {second}")),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("backend 10.1.0.2: state active -> draining"),
        "{}",
        r.out
    );
    assert!(r.out.contains("primary moves in"), "{}", r.out);
    // A file against the current document.
    let more = f.file(
        "more.toml",
        &DOC.replace(
            "{ ip = \"10.1.0.3\" }",
            "{ ip = \"10.1.0.3\" }, { ip = \"10.1.0.4\" }",
        ),
    );
    let r = f.run(&["diff", path(&more), "--json"]);
    assert_eq!(r.code, 0, "{}", r.out);
    let v: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!(v["tables"][0]["backends_added"][0], "10.1.0.4");
    // As push would write it: the current override is carried into a file without any.
    assert!(
        v["carried"][0]
            .as_str()
            .unwrap()
            .contains("carried 1 override(s)"),
        "{v}"
    );
    assert_eq!(v["overrides"], serde_json::json!([]), "{v}");
    let moved = v["tables"][0]["primary_moved_pct"].as_f64().unwrap();
    assert!(moved > 0.0 && moved < 60.0, "{moved}");
    assert_eq!(f.desired().0, second, "diff writes nothing");

    let r = f.run(&["history"]);
    assert_eq!(r.code, 0, "{}", r.out);
    let lines: Vec<&str> = r
        .out
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(lines.len(), 2, "{}", r.out);
    assert!(
        lines[0].trim_start().starts_with(&second.to_string())
            && lines[0].contains("override web 10.1.0.2 set"),
        "{}",
        r.out
    );
    assert!(
        lines[1].trim_start().starts_with(&first.to_string()) && lines[1].contains("created"),
        "{}",
        r.out
    );
    let r = f.run(&["history", "--json", "--max", "1"]);
    let v: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["overrides"], 1);

    let r = f.run(&["rollback", &first.to_string()]);
    assert_eq!(r.code, 0, "{}", r.out);
    let (third, text) = f.desired();
    assert!(third > second);
    assert_eq!(text, first_text, "revision {first}'s bytes, written again");
    assert!(
        r.out.contains(&format!("written as revision {third}")),
        "{}",
        r.out
    );
    // Not a revision of the document: refused, named.
    let r = f.run(&["rollback", &(first - 1).to_string()]);
    assert_eq!(r.code, 1, "{}", r.out);
    let r = f.run(&["rollback", "0"]);
    assert_eq!(r.code, 2, "{}", r.out);
    assert_eq!(f.desired().0, third);
}

#[test]
fn wait_times_out_on_a_director_behind_and_returns_when_it_applies() {
    let Some(f) = Fleet::start("/rondo/wait") else {
        return;
    };
    assert_eq!(f.run(&["push", path(&f.file("doc.toml", DOC))]).code, 0);
    let (rev, _) = f.desired();
    let mut store = f.store();
    let lease = store.lease_keepalive(Duration::from_secs(5)).unwrap();
    report(&mut store, &lease, &director("d1", rev, "00112233445566ff"));
    report(
        &mut store,
        &lease,
        &director("d2", rev - 1, "00112233445566ff"),
    );
    let r = f.run(&["wait", "--timeout", "1s"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("timeout") && r.out.contains("d2 (applied"),
        "{}",
        r.out
    );
    assert!(r.took < Duration::from_secs(10), "bounded: {:?}", r.took);

    let t = Instant::now();
    let child = f
        .cmd(&["wait", "--timeout", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let updated = Instant::now();
    report(&mut store, &lease, &director("d2", rev, "00112233445566ff"));
    let r = run_of(child.wait_with_output().unwrap(), t.elapsed());
    println!(
        "wait returned {:?} after the update (total {:?}):\n{}",
        updated.elapsed(),
        r.took,
        r.out
    );
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        r.out
            .contains(&format!("all 2 director(s) applied revision {rev}")),
        "{}",
        r.out
    );

    // A director that refused the revision: wait fails at once, naming it.
    let mut d2 = director("d2", rev - 1, "00112233445566ff");
    d2.refused = Some(Refusal {
        revision: rev,
        error: "bad table".into(),
    });
    report(&mut store, &lease, &d2);
    let r = f.run(&["wait", "--timeout", "20s"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("d2 refused revision") && r.out.contains("bad table"),
        "{}",
        r.out
    );
    assert!(
        r.took < Duration::from_secs(10),
        "refusal ends the wait: {:?}",
        r.took
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let Some(f) = Fleet::start("/rondo/bad") else {
        return;
    };
    // Unreachable endpoint: a clear error naming it, in bounded time.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args([
            "fleet",
            "--endpoints",
            &dead,
            "--prefix",
            "/rondo/bad",
            "status",
        ])
        .output()
        .unwrap();
    let r = run_of(o, t.elapsed());
    println!("unreachable: {} in {:?}: {}", r.code, r.took, r.out);
    assert_eq!(r.code, 1);
    assert!(
        r.out.contains(&dead) && r.out.contains("no endpoint"),
        "{}",
        r.out
    );
    assert!(r.took < Duration::from_secs(10), "{:?}", r.took);
    // No connection settings: usage.
    let o = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args(["fleet", "status"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));

    assert_eq!(f.run(&["push", path(&f.file("doc.toml", DOC))]).code, 0);
    let (rev, _) = f.desired();
    // Huge: refused locally.
    let huge = format!(
        "{DOC}\n{}",
        "# padding padding padding padding\n".repeat(60_000)
    );
    let r = f.run(&["push", path(&f.file("huge.toml", &huge))]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("refused, nothing written") && r.out.contains("larger than"),
        "{}",
        r.out
    );
    // Invalid: refused before writing, naming file and field.
    let r = f.run(&[
        "push",
        path(&f.file(
            "bad.toml",
            &DOC.replace("12345678901234561234567890123456", "xyz"),
        )),
    ]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("refused, nothing written") && r.out.contains("bad.toml"),
        "{}",
        r.out
    );
    // Parses but cannot build (every backend inactive): refused before writing.
    let inactive = DOC.replace(
        "backends = [{ ip = \"10.1.0.1\" }, { ip = \"10.1.0.2\" }, { ip = \"10.1.0.3\" }]",
        "backends = [{ ip = \"10.1.0.1\", state = \"inactive\" }]",
    );
    let r = f.run(&["push", path(&f.file("inactive.toml", &inactive))]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("cannot be built"), "{}", r.out);
    assert_eq!(f.desired().0, rev, "nothing was written");
    // A config file without [fleet].
    let cfg = f.file("director.toml", "[director]\nhops = 2\n");
    let o = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args(["fleet", "--config", path(&cfg), "status"])
        .output()
        .unwrap();
    let r = run_of(o, Duration::ZERO);
    assert_eq!(r.code, 1);
    assert!(r.out.contains("no [fleet] table"), "{}", r.out);
    // A director's config with [fleet] works (other tables ignored).
    let cfg = f.file(
        "director2.toml",
        &format!(
            "[director]\nhops = 2\n\n[fleet]\nendpoints = [\"{}\"]\nprefix = \"/rondo/bad\"\nname = \"d1\"\n",
            f.etcd.endpoints()[0]
        ),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args(["fleet", "--config", path(&cfg), "history"])
        .output()
        .unwrap();
    let r = run_of(o, Duration::ZERO);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains(&rev.to_string()), "{}", r.out);
}

#[test]
fn a_dead_etcd_member_is_skipped_and_an_unroutable_endpoint_fails_in_bounded_time() {
    let Some(mut etcd) = EtcdCluster::start(3) else {
        return;
    };
    etcd.kill(0);
    let f = Fleet {
        etcd,
        prefix: "/rondo/members".into(),
        dir: tempfile::tempdir().unwrap(),
    };
    // The dead member is first in the list: the next one answers.
    let r = f.run(&["push", path(&f.file("doc.toml", DOC))]);
    assert_eq!(r.code, 0, "{}", r.out);
    let r = f.run(&["status"]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("desired revision"), "{}", r.out);
    // An endpoint nothing answers on (TEST-NET-1; refused or silent, depending on the
    // network): bounded by the connect timeout either way.
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args([
            "fleet",
            "--endpoints",
            "http://192.0.2.1:2379",
            "--prefix",
            "/r",
            "history",
        ])
        .output()
        .unwrap();
    let r = run_of(o, t.elapsed());
    println!("silent endpoint: {} in {:?}: {}", r.code, r.took, r.out);
    assert_eq!(r.code, 1);
    assert!(r.out.contains("http://192.0.2.1:2379"), "{}", r.out);
    assert!(r.took < Duration::from_secs(10), "{:?}", r.took);
}
