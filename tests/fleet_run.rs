//! `rondo run` with `[fleet]` against a real etcd (tests/common/etcd.rs) and real director
//! processes on looped, paced capture ports: three directors follow pushes of the desired
//! document (push-to-applied time measured), refuse a bad push with the reason in their
//! status, keep forwarding through an etcd leader kill and a full etcd outage and catch up
//! afterwards, and restart on their local cache while etcd is down. Built with the `etcd`
//! feature (`cargo test --features etcd --test fleet_run`).
#![cfg(feature = "etcd")]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::director::{number_after, traffic, write_pcap, Session};
use common::etcd::EtcdCluster;
use rondo::fleet::docs::{self, DirectorStatus};
use rondo::fleet::etcd::{EtcdError, EtcdSettings, EtcdStore};

const PREFIX: &str = "/rondo/fleettest";
/// Generous correctness deadline for every wait.
const DEADLINE: Duration = Duration::from_secs(40);

/// A desired document: table "web" (1.1.1.1:80) over 10.1.0.1-3, with `overrides` TOML.
fn desired(overrides: &str) -> String {
    format!(
        r#"[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{{ ip = "1.1.1.1", proto = "tcp", port = 80 }}]
backends = [{{ ip = "10.1.0.1" }}, {{ ip = "10.1.0.2" }}, {{ ip = "10.1.0.3" }}]
{overrides}"#
    )
}

/// The `n`th good push: a weight override that moves rows.
fn push_doc(n: u32) -> String {
    desired(&format!(
        "[[overrides]]\ntable = \"web\"\nip = \"10.1.0.{}\"\nweight = {}\n",
        1 + n % 3,
        2 + n % 7
    ))
}

fn settings(endpoints: Vec<String>) -> EtcdSettings {
    let mut s = EtcdSettings::new(endpoints, PREFIX, "test");
    s.connect_timeout_ms = 500;
    s.request_timeout_ms = 2000;
    s
}

/// Write `doc` with compare-and-swap on the current revision, retrying while etcd is
/// changing leaders; the new revision.
fn push(store: &mut EtcdStore, doc: &str) -> i64 {
    let end = Instant::now() + DEADLINE;
    loop {
        let cur = match store.get_document(docs::DESIRED) {
            Ok(d) => d.map_or(0, |d| d.mod_revision),
            Err(e) => {
                assert!(Instant::now() < end, "cannot read desired: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        match store.put_document_if(docs::DESIRED, doc.as_bytes(), cur) {
            Ok(r) => return r,
            Err(e @ EtcdError::Conflict { .. }) => panic!("nobody else writes here: {e}"),
            Err(e) => {
                assert!(Instant::now() < end, "cannot push: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// One `rondo run` with `[fleet]`, its files in a temporary folder; killed on drop.
struct Director {
    name: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Director {
    fn new(name: &str, endpoints: &[String], metrics: Option<u16>) -> Director {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.pcap");
        write_pcap(&input, &traffic(500));
        let socket = dir.path().join("rondo.sock");
        let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        let config = dir.path().join("director.toml");
        std::fs::write(
            &config,
            format!(
                r#"[[ports]]
spec = "pcap:{},loop,pps=2000"

[runtime]
workers = 1
idle = "sleep"

[console]
socket = "{}"

[metrics]
listen = "{}"

[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[fleet]
endpoints = [{}]
prefix = "{PREFIX}"
name = "{name}"
connect_timeout_ms = 500
request_timeout_ms = 1000
lease_ttl_ms = 2000
cache = "{}"
"#,
                input.display(),
                socket.display(),
                metrics.map_or("off".to_string(), |p| format!("127.0.0.1:{p}")),
                eps.join(", "),
                dir.path().join("fleet.cache").display()
            ),
        )
        .unwrap();
        let log = dir.path().join("log");
        Director {
            name: name.into(),
            dir,
            config,
            socket,
            log,
            child: None,
        }
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(env!("CARGO_BIN_EXE_rondo"))
            .args(["run", "--stats-interval", "0", "--config"])
            .arg(&self.config)
            .env("RONDO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Start and wait for the console.
    fn start(&mut self) {
        self.spawn();
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited ({st}): {}", self.name, self.log_text());
            }
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
                && self.cmd("show fleet").0
            {
                return;
            }
            assert!(
                Instant::now() < end,
                "{}: no console: {}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let end = Instant::now() + DEADLINE;
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > end {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("{}: still running after SIGTERM", self.name);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn log_text(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        common::fleet::tail(&t, 40)
    }

    fn cmd(&self, line: &str) -> (bool, String) {
        Session::open(&self.socket).cmd(line)
    }

    fn ok(&self, line: &str) -> String {
        let (ok, t) = self.cmd(line);
        assert!(ok, "{}: {line}: {t}\n{}", self.name, self.log_text());
        t
    }

    fn forwarded(&self) -> u64 {
        let t = self.ok("show fwd stats");
        let all = t.split("Accumulated forward statistics").nth(1).unwrap();
        number_after(all, "Forwarded:")
    }

    /// `show fleet`'s fingerprint of table web.
    fn fingerprint(&self) -> String {
        let t = self.ok("show fleet");
        t.lines()
            .find_map(|l| l.trim().strip_prefix("web "))
            .unwrap_or_else(|| panic!("no fingerprint in {t}"))
            .to_string()
    }

    fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + DEADLINE;
        while !f() {
            assert!(
                Instant::now() < end,
                "{}: timed out waiting for {what}: {}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET /metrics` (d0 has a metrics endpoint).
    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let cfg = std::fs::read_to_string(&self.config).unwrap();
        let addr = cfg
            .lines()
            .find_map(|l| l.strip_prefix("listen = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("a metrics address");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("fleet.cache")
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn status(store: &mut EtcdStore, name: &str) -> Option<DirectorStatus> {
    let d = store.get_document(&docs::status_key(name)).ok()??;
    Some(serde_json::from_slice(&d.bytes).expect("a status document"))
}

/// Wait until every director's status satisfies `f`; how long it took.
fn wait_all(
    store: &mut EtcdStore,
    ds: &[Director],
    what: &str,
    f: impl Fn(&DirectorStatus) -> bool,
) -> Duration {
    let t0 = Instant::now();
    let mut done = vec![false; ds.len()];
    loop {
        for (i, d) in ds.iter().enumerate() {
            if !done[i] {
                done[i] = status(store, &d.name).is_some_and(|s| f(&s));
            }
        }
        if done.iter().all(|d| *d) {
            return t0.elapsed();
        }
        if t0.elapsed() > DEADLINE {
            let i = done.iter().position(|d| !d).unwrap();
            panic!(
                "{}: timed out waiting for {what}; status {:?}\n{}",
                ds[i].name,
                status(store, &ds[i].name),
                ds[i].log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: {} pushes, median {:.1} ms, max {:.1} ms (push to the last of 3 directors' status showing it)",
        v.len(),
        ms(v[v.len() / 2]),
        ms(*v.last().unwrap())
    );
}

fn start_three(c: &EtcdCluster) -> Vec<Director> {
    let mut ds: Vec<Director> = (0..3)
        .map(|i| {
            let metrics = (i == 0).then(|| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            });
            Director::new(&format!("d{i}"), &c.endpoints(), metrics)
        })
        .collect();
    for d in &mut ds {
        d.start();
    }
    ds
}

#[test]
fn three_directors_apply_pushes_and_refuse_a_bad_one() {
    let Some(c) = EtcdCluster::start(1) else {
        return;
    };
    let mut store = EtcdStore::connect(settings(c.endpoints())).unwrap();
    // No desired document, no cache: a director cannot start, and says why.
    let mut lone = Director::new("lone", &c.endpoints(), None);
    lone.spawn();
    let st = lone.child.as_mut().unwrap().wait().unwrap();
    assert!(!st.success());
    let log = lone.log_text();
    assert!(
        log.contains("/desired does not exist") && log.contains("fleet cache"),
        "{log}"
    );
    // A corrupt cache is an error naming the file, not a start on it.
    std::fs::write(lone.cache(), b"{\"format\": 1").unwrap();
    lone.child = None;
    lone.spawn();
    let st = lone.child.as_mut().unwrap().wait().unwrap();
    assert!(!st.success());
    let log = lone.log_text();
    let cache = lone.cache().display().to_string();
    assert!(
        log.contains(&format!("fleet cache {cache}: not a fleet cache")),
        "{log}"
    );
    let r0 = push(&mut store, &push_doc(0));
    let ds = start_three(&c);
    wait_all(&mut store, &ds, "the first revision", |s| {
        s.applied_revision == r0 && s.source == "etcd"
    });
    let fp0 = ds[0].fingerprint();
    for d in &ds {
        assert_eq!(d.fingerprint(), fp0, "{}: same document, same rows", d.name);
        assert!(d.ok("show fleet").contains("etcd: connected"));
        // The console does not change what etcd says.
        let (ok, t) = d.cmd("set backend web 10.1.0.1 state draining");
        assert!(!ok && t.contains("follows etcd /rondo/fleettest"), "{t}");
        let (ok, t) = d.cmd("reload");
        assert!(!ok && t.contains("use rondo fleet set"), "{t}");
    }
    let mut took = Vec::new();
    let mut last = r0;
    for n in 1..=10 {
        let t0 = Instant::now();
        let r = push(&mut store, &push_doc(n));
        wait_all(&mut store, &ds, "a push", |s| s.applied_revision == r);
        took.push(t0.elapsed());
        last = r;
    }
    summary("push applied (1-member etcd)", took);
    // How much of that is the director's own build and swap (its log says).
    let full = std::fs::read_to_string(&ds[0].log).unwrap_or_default();
    let apply: Vec<String> = full
        .lines()
        .filter(|l| l.contains("desired revision applied"))
        .filter_map(|l| {
            let n = |k: &str| l.split(k).nth(1)?.split_whitespace().next();
            Some(format!("{}/{}", n("parse_build_ms=")?, n(" apply_ms=")?))
        })
        .collect();
    println!("d0 per revision, ms: parsing the document and building its rows / all of it (also the overrides' rebuild, compile, swap, cache): {apply:?}");
    let fp = ds[0].fingerprint();
    assert_ne!(fp, fp0, "the overrides moved rows");
    for d in &ds {
        assert_eq!(d.fingerprint(), fp, "{}", d.name);
    }
    // A bad push: every backend inactive, the table cannot be built.
    let bad = desired(
        "[[overrides]]\ntable = \"web\"\nip = \"10.1.0.1\"\nstate = \"inactive\"\n[[overrides]]\ntable = \"web\"\nip = \"10.1.0.2\"\nstate = \"inactive\"\n[[overrides]]\ntable = \"web\"\nip = \"10.1.0.3\"\nstate = \"inactive\"\n",
    );
    let rb = push(&mut store, &bad);
    let t = wait_all(&mut store, &ds, "the refusal", |s| {
        s.refused.as_ref().is_some_and(|r| r.revision == rb) && s.seen_revision == rb
    });
    println!(
        "bad push refused by all 3 in {:.1} ms",
        t.as_secs_f64() * 1e3
    );
    for d in &ds {
        let s = status(&mut store, &d.name).unwrap();
        assert_eq!(
            s.applied_revision, last,
            "{}: the running tables stay",
            d.name
        );
        let why = &s.refused.unwrap().error;
        assert!(why.contains("web") && why.contains("backend"), "{why}");
        assert_eq!(d.fingerprint(), fp, "{}: tables unchanged", d.name);
        assert_eq!(s.tables[0].fingerprint, fp);
        let f = d.ok("show fleet");
        assert!(f.contains(&format!("refused revision {rb}")), "{f}");
    }
    // The operator's view: `rondo fleet status` names every director's refusal and its
    // reason, and exits 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args([
            "fleet",
            "--endpoints",
            &c.endpoints().join(","),
            "--prefix",
            PREFIX,
        ])
        .arg("status")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("rondo fleet status after the bad push:\n{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    for d in &ds {
        assert!(text.contains(&d.name), "{}: {text}", d.name);
    }
    assert!(
        text.contains(&rb.to_string()) && text.contains("backend"),
        "the refused revision and its reason: {text}"
    );
    // A bad document (not TOML) too.
    let rj = push(&mut store, "[[tables]\nname = ");
    wait_all(&mut store, &ds, "the second refusal", |s| {
        s.refused.as_ref().is_some_and(|r| r.revision == rj)
    });
    let rg = push(&mut store, &push_doc(3));
    wait_all(&mut store, &ds, "the next good push", |s| {
        s.applied_revision == rg && s.refused.is_none()
    });
    // Metrics: the fingerprint (hex as a label) and the fleet's state.
    let m = ds[0].metrics();
    let fp_now = ds[0].fingerprint();
    for want in [
        format!("rondo_table_fingerprint{{table=\"web\",fingerprint=\"{fp_now}\"}} 1"),
        "rondo_fleet_connected 1".to_string(),
        format!("rondo_fleet_applied_revision {rg}"),
        "rondo_fleet_refused_total 2".to_string(),
        "rondo_fleet_from_cache 0".to_string(),
    ] {
        assert!(m.contains(&want), "no {want:?} in:\n{m}");
    }
    // check-config names the fleet.
    let out = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .arg("check-config")
        .arg(&ds[0].config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("fleet: endpoints http://127.0.0.1:")
            && text.contains("prefix /rondo/fleettest, name d0"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Health from the fleet's checker: 10.1.0.2 down moves rows on every director alike;
    // unknown backends are ignored; an override's health wins over the document.
    let health = |backends: &[(&str, bool)]| {
        let h = docs::HealthDoc {
            leader: "test".into(),
            term: 1,
            desired_revision: rg,
            round_ms: 0,
            backends: backends
                .iter()
                .map(|(ip, healthy)| docs::BackendHealth {
                    table: "web".into(),
                    ip: ip.to_string(),
                    healthy: *healthy,
                })
                .collect(),
            targets: vec![],
        };
        serde_json::to_vec(&h).unwrap()
    };
    let t0 = Instant::now();
    let hr = store
        .put_document_if(
            docs::HEALTH,
            &health(&[("10.1.0.2", false), ("10.9.9.9", false)]),
            0,
        )
        .unwrap();
    wait_all(&mut store, &ds, "the health document", |s| {
        s.health_revision == hr && s.tables[0].fingerprint != fp_now
    });
    println!(
        "health document applied by all 3 in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let fp_down = ds[0].fingerprint();
    for d in &ds {
        assert_eq!(d.fingerprint(), fp_down, "{}", d.name);
        let b = d.ok("show backends web");
        assert!(b.contains("10.1.0.2"), "{b}");
    }
    let hr2 = store
        .put_document_if(docs::HEALTH, &health(&[("10.1.0.2", true)]), hr)
        .unwrap();
    wait_all(&mut store, &ds, "health back", |s| {
        s.health_revision == hr2 && s.tables[0].fingerprint == fp_now
    });
    // The cache holds the applied revision.
    let cache = std::fs::read_to_string(ds[0].cache()).unwrap();
    assert!(cache.contains(&format!("\"revision\":{rg}")), "{cache}");
}

#[test]
fn etcd_outages_forwarding_goes_on_and_directors_catch_up() {
    let Some(mut c) = EtcdCluster::start(3) else {
        return;
    };
    let mut store = EtcdStore::connect(settings(c.endpoints())).unwrap();
    let r0 = push(&mut store, &push_doc(0));
    let mut ds = start_three(&c);
    wait_all(&mut store, &ds, "the first revision", |s| {
        s.applied_revision == r0
    });
    let forwarding = |ds: &[Director]| {
        for d in ds {
            let f0 = d.forwarded();
            d.wait_for("forwarding", || d.forwarded() > f0 + 50);
        }
    };
    forwarding(&ds);
    // Kill the raft leader: directors follow the next push through the others.
    let leader = c.leader().expect("a leader");
    let t0 = Instant::now();
    c.kill(leader);
    let r1 = push(&mut store, &push_doc(1));
    let t = wait_all(&mut store, &ds, "the push after the leader kill", |s| {
        s.applied_revision == r1
    });
    println!(
        "etcd leader m{leader} SIGKILLed: the next push landed {:.0} ms after the kill and was applied by all 3 directors {:.0} ms after it landed",
        (t0.elapsed() - t).as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e3
    );
    forwarding(&ds);
    c.restart(leader);
    // Stop every member: forwarding goes on, the console says so.
    c.stop_all();
    let t0 = Instant::now();
    for d in &ds {
        d.wait_for("the outage in show fleet", || {
            d.ok("show fleet").contains("NOT connected")
        });
    }
    println!(
        "etcd stopped: all 3 directors show the outage after {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    forwarding(&ds);
    let f = ds[0].ok("show fleet");
    assert!(f.contains(&format!("applied revision: {r1}")), "{f}");
    assert!(!f.contains("last error: none"), "{f}");
    // A director restarted while etcd is down starts on its cache.
    ds[2].stop();
    let t0 = Instant::now();
    ds[2].start();
    println!(
        "director restarted with etcd down: console up on its cache after {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let f = ds[2].ok("show fleet");
    assert!(
        f.contains("source: cache") && f.contains(&format!("applied revision: {r1}")),
        "{f}"
    );
    forwarding(&ds[2..]);
    // etcd back: statuses come back (new leases), the next push is applied everywhere.
    let t0 = Instant::now();
    // Statuses written from now on (etcd renews every lease when it restarts, so the old
    // d2's status, whose lease could not be revoked while etcd was down, is still there
    // for a TTL).
    let back_ms = rondo::runtime::fleet::unix_ms();
    c.restart_all();
    let mut store = EtcdStore::connect(settings(c.endpoints())).unwrap();
    let d2_pid = ds[2].child.as_ref().unwrap().id();
    let t = wait_all(&mut store, &ds, "statuses after the outage", |s| {
        s.applied_revision == r1 && s.updated_ms >= back_ms && (s.name != "d2" || s.pid == d2_pid)
    });
    println!(
        "etcd restarted (healthy after {:.0} ms): every status back {:.0} ms later",
        (t0.elapsed() - t).as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e3
    );
    // d2 started on its cache: etcd still holds that revision, so its tables are etcd's.
    wait_all(&mut store, &ds[2..], "d2 confirming its cache", |s| {
        s.source == "etcd" && s.applied_revision == r1
    });
    let r2 = push(&mut store, &push_doc(2));
    let t = wait_all(&mut store, &ds, "the push after the outage", |s| {
        s.applied_revision == r2 && s.source == "etcd"
    });
    println!(
        "push after the outage applied by all 3 in {:.0} ms",
        t.as_secs_f64() * 1e3
    );
    for d in &ds {
        d.wait_for("connected again", || {
            d.ok("show fleet").contains("etcd: connected")
        });
    }
    forwarding(&ds);
}
