//! Fleet mode of the end-to-end harness (issue 20): the directors take their tables from
//! etcd instead of their config files, and two `rondo healthcheck --fleet` instances (one
//! per director host) elect a leader that checks every backend over GUE and writes the
//! health document the directors apply. etcd runs in the router's namespace, reached by
//! each director host over its own link; `rondo fleet` runs there too.
//!
//! Everything here runs processes (etcd, `rondo fleet`, `rondo healthcheck --fleet`), so it
//! compiles in every build; the plan runs it only when `rondo` is built with the `etcd`
//! feature.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::etcd::EtcdCluster;
use super::{router_side, Fleet, DIRECTORS, FLEET_PREFIX, HOSTS};

/// etcd and the checkers; dropped (killed) with the fleet, before the namespaces.
pub struct FleetMode {
    pub etcd: EtcdCluster,
    pub checkers: Vec<CheckerProc>,
}

/// `rondo healthcheck --fleet CONFIG` in a director host's namespace; killed on drop.
pub struct CheckerProc {
    pub name: String,
    ns: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl CheckerProc {
    fn start(name: &str, ns: &str, config: PathBuf, log: PathBuf) -> CheckerProc {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_rondo")])
            .args(["healthcheck", "--fleet"])
            .arg(&config)
            .env("RONDO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("checker log"))
            .spawn()
            .expect("spawn rondo healthcheck --fleet");
        CheckerProc {
            name: name.to_string(),
            ns: ns.to_string(),
            config,
            log,
            child: Some(child),
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for CheckerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `rondo fleet ARGS` in the router's namespace against its etcd: (success, output).
pub fn fleet_cmd(router_ns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", router_ns, env!("CARGO_BIN_EXE_rondo")])
        .args([
            "fleet",
            "--endpoints",
            "http://127.0.0.1:2379",
            "--prefix",
            FLEET_PREFIX,
        ])
        .args(args)
        .output()
        .expect("run rondo fleet");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

/// The health document's `leader` and whether every backend in it is healthy.
pub fn parse_health(json: &str) -> Option<(String, i64, bool)> {
    let d: rondo::fleet::docs::HealthDoc = serde_json::from_str(json.trim()).ok()?;
    let all = !d.backends.is_empty() && d.backends.iter().all(|b| b.healthy);
    Some((d.leader, d.term, all))
}

impl Fleet {
    /// Switch to fleet mode: etcd in the router's namespace, the tables pushed as the
    /// desired document, every director restarted on a `[fleet]` config, a checker on
    /// each director host; returns once every director applied the document and the
    /// checker leader's health document says every backend is up.
    pub fn enter_fleet_mode(&mut self) -> Result<(), String> {
        for d in 0..HOSTS {
            // The checkers on the director hosts reach the backends through the router.
            self.d[d].ip(&[
                "route",
                "replace",
                "10.70.0.0/24",
                "via",
                &router_side(d).to_string(),
            ])?;
        }
        let ips: Vec<String> = (0..HOSTS).map(|d| router_side(d).to_string()).collect();
        let etcd =
            EtcdCluster::start_in_netns(&self.r.name, &ips).ok_or("etcd is not installed")?;
        self.fleet_mode = Some(FleetMode {
            etcd,
            checkers: Vec::new(),
        });
        // No director follows etcd yet: push without waiting for one.
        self.push_desired(false);
        for d in 0..HOSTS {
            let cfg = self.tables.config(d, self.dir.path(), true);
            std::fs::write(&self.directors[d].config, cfg).map_err(|e| e.to_string())?;
            if self.directors[d].running() {
                self.directors[d].kill();
                self.directors[d].start();
            }
        }
        for d in 0..DIRECTORS {
            let config = self.dir.path().join(format!("c{d}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[fleet]\nendpoints = [\"http://{}:2379\"]\nprefix = \"{FLEET_PREFIX}\"\nname = \"c{d}\"\nlease_ttl_ms = 2000\n\n[healthchecks]\ninterval_ms = 300\ntimeout_ms = 250\ntrigger = 3\n",
                    router_side(d)
                ),
            )
            .map_err(|e| e.to_string())?;
            let log = self.dir.path().join(format!("c{d}.log"));
            let c = CheckerProc::start(&format!("c{d}"), &self.d[d].name, config, log);
            self.fleet_mode.as_mut().unwrap().checkers.push(c);
        }
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let health = self.health();
            let (ok, status) = fleet_cmd(&self.r.name, &["status"]);
            if ok && health.as_ref().is_some_and(|h| h.2) {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(format!(
                    "fleet mode never settled: health {health:?}, status:\n{status}\n{}",
                    self.diagnostics()
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// In fleet mode: the tables as the desired document, pushed, and with `wait` waited
    /// for until every director applied it.
    pub fn push_desired(&mut self, wait: bool) {
        let file = self.dir.path().join("desired.toml");
        std::fs::write(&file, self.tables.tables_toml(None, true)).unwrap();
        let (ok, out) = fleet_cmd(&self.r.name, &["push", file.to_str().unwrap()]);
        assert!(ok, "rondo fleet push: {out}");
        if wait {
            let (ok, out) = fleet_cmd(&self.r.name, &["wait", "--timeout", "30s"]);
            assert!(ok, "rondo fleet wait: {out}\n{}", self.diagnostics());
        }
    }

    /// The health document now: (leader, term, every backend healthy).
    pub fn health(&self) -> Option<(String, i64, bool)> {
        let m = self.fleet_mode.as_ref()?;
        let key = format!("{FLEET_PREFIX}/{}", rondo::fleet::docs::HEALTH);
        let (ok, out) = m.etcd.ctl(0, &["get", "--print-value-only", &key]);
        ok.then(|| parse_health(&out)).flatten()
    }

    /// SIGKILL the checker that leads now; its name.
    pub fn kill_checker_leader(&mut self) -> Option<String> {
        let (leader, _, _) = self.health()?;
        let m = self.fleet_mode.as_mut()?;
        let c = m.checkers.iter_mut().find(|c| c.name == leader)?;
        c.kill();
        Some(leader)
    }

    /// The checkers' logs, for a failure message.
    pub fn fleet_diagnostics(&self) -> String {
        let Some(m) = &self.fleet_mode else {
            return String::new();
        };
        let mut s = String::new();
        for c in &m.checkers {
            s.push_str(&format!(
                "--- checker {} ({} in {}) log (tail):\n{}\n",
                c.name,
                c.config.display(),
                c.ns,
                super::tail(&c.log_text(), 20)
            ));
        }
        s.push_str(&format!("--- etcd log (tail):\n{}\n", m.etcd.log_tail(0)));
        s
    }
}
