//! Real etcd for tests: a one-member or three-member cluster on loopback, free ports, data
//! in a temporary directory; members can be killed (SIGKILL), stopped (SIGTERM) and
//! restarted on the same data. Everything is killed when the cluster is dropped, also
//! when a test panics. A missing `etcd`/`etcdctl` is a [`super::skip`] (Debian:
//! `etcd-server`, `etcd-client`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Member {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

pub struct EtcdCluster {
    pub members: Vec<Member>,
    dir: tempfile::TempDir,
    /// The network namespace the members run in (`None`: this one).
    netns: Option<String>,
    /// Flags every `etcdctl` of [`EtcdCluster::ctl`] gets (TLS files, a user).
    ctl_flags: Vec<String>,
}

fn free_ports(n: usize) -> Vec<u16> {
    // Hold them all at once so no two are the same; etcd binds them right after.
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn have(bin: &str, arg: &str) -> bool {
    Command::new(bin)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `etcdctl` against `endpoints`, API v3; returns (success, stdout+stderr).
pub fn etcdctl(endpoints: &str, args: &[&str]) -> (bool, String) {
    etcdctl_in(None, endpoints, args)
}

/// [`etcdctl`] run inside network namespace `ns` (`None`: this one).
pub fn etcdctl_in(ns: Option<&str>, endpoints: &str, args: &[&str]) -> (bool, String) {
    etcdctl_with(ns, &[], endpoints, args)
}

/// [`etcdctl_in`] with `flags` before the command (`--cacert=...`, `--user=...`).
pub fn etcdctl_with(
    ns: Option<&str>,
    flags: &[String],
    endpoints: &str,
    args: &[&str],
) -> (bool, String) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "etcdctl"]);
            c
        }
        None => Command::new("etcdctl"),
    };
    let out = cmd
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=2s")
        .arg("--dial-timeout=1s")
        .args(flags)
        .args(args)
        .output()
        .expect("run etcdctl");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

impl EtcdCluster {
    /// Start `n` members and wait until each answers health checks. `None` after a skip
    /// when etcd is not installed.
    pub fn start(n: usize) -> Option<EtcdCluster> {
        if !have("etcd", "--version") || !have("etcdctl", "version") {
            super::skip("etcd and etcdctl are not installed (Debian: etcd-server etcd-client)");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir for etcd");
        let ports = free_ports(2 * n);
        let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let peers: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", ports[2 * i + 1]))
            .collect();
        let initial: Vec<String> = (0..n)
            .map(|i| format!("{}={}", names[i], peers[i]))
            .collect();
        let token = format!("rondo-test-{}", ports[0]);
        let mut members = Vec::new();
        for i in 0..n {
            let client_url = format!("http://127.0.0.1:{}", ports[2 * i]);
            let data = dir.path().join(&names[i]);
            let args = vec![
                format!("--name={}", names[i]),
                format!("--data-dir={}", data.display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={}", peers[i]),
                format!("--initial-advertise-peer-urls={}", peers[i]),
                format!("--initial-cluster={}", initial.join(",")),
                "--initial-cluster-state=new".into(),
                format!("--initial-cluster-token={token}"),
                // Fast elections so failover tests stay short.
                "--heartbeat-interval=50".into(),
                "--election-timeout=500".into(),
            ];
            members.push(Member {
                name: names[i].clone(),
                client_url,
                peer_url: peers[i].clone(),
                args,
                log: dir.path().join(format!("{}.log", names[i])),
                child: None,
            });
        }
        let mut c = EtcdCluster {
            members,
            dir,
            netns: None,
            ctl_flags: Vec::new(),
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_healthy(i, Duration::from_secs(20));
        }
        Some(c)
    }

    /// One member inside network namespace `ns`, serving clients on port 2379 of
    /// 127.0.0.1 and of every address in `ips` (addresses of that namespace), so processes
    /// in other namespaces reach it over their links. `None` after a skip when etcd is not
    /// installed.
    pub fn start_in_netns(ns: &str, ips: &[String]) -> Option<EtcdCluster> {
        if !have("etcd", "--version") || !have("etcdctl", "version") {
            super::skip("etcd and etcdctl are not installed (Debian: etcd-server etcd-client)");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir for etcd");
        let client_url = "http://127.0.0.1:2379".to_string();
        let urls: Vec<String> = std::iter::once(client_url.clone())
            .chain(ips.iter().map(|ip| format!("http://{ip}:2379")))
            .collect();
        let peer = "http://127.0.0.1:2380".to_string();
        let args = vec![
            "--name=m0".to_string(),
            format!("--data-dir={}", dir.path().join("m0").display()),
            format!("--listen-client-urls={}", urls.join(",")),
            format!("--advertise-client-urls={}", urls.join(",")),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=m0={peer}"),
            "--initial-cluster-state=new".into(),
            "--heartbeat-interval=50".into(),
            "--election-timeout=500".into(),
        ];
        let mut c = EtcdCluster {
            members: vec![Member {
                name: "m0".into(),
                client_url,
                peer_url: peer,
                args,
                log: dir.path().join("m0.log"),
                child: None,
            }],
            dir,
            netns: Some(ns.to_string()),
            ctl_flags: Vec::new(),
        };
        c.spawn(0);
        c.wait_healthy(0, Duration::from_secs(20));
        Some(c)
    }

    /// `etcdctl` against member `i`, in the members' namespace.
    pub fn ctl(&self, i: usize, args: &[&str]) -> (bool, String) {
        etcdctl_with(
            self.netns.as_deref(),
            &self.ctl_flags,
            &self.members[i].client_url,
            args,
        )
    }

    /// One member on loopback serving clients over TLS only (`https://127.0.0.1:PORT`)
    /// with `server_cert`/`server_key`, requiring a client certificate signed by `ca`;
    /// `ctl_flags` are what its own `etcdctl` calls need (`--cacert`, `--cert`, `--key`).
    /// `None` after a skip when etcd is not installed.
    pub fn start_tls(
        ca: &std::path::Path,
        server_cert: &std::path::Path,
        server_key: &std::path::Path,
        ctl_flags: Vec<String>,
    ) -> Option<EtcdCluster> {
        if !have("etcd", "--version") || !have("etcdctl", "version") {
            super::skip("etcd and etcdctl are not installed (Debian: etcd-server etcd-client)");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir for etcd");
        let ports = free_ports(2);
        let client_url = format!("https://127.0.0.1:{}", ports[0]);
        let peer = format!("http://127.0.0.1:{}", ports[1]);
        let args = vec![
            "--name=m0".to_string(),
            format!("--data-dir={}", dir.path().join("m0").display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=m0={peer}"),
            "--initial-cluster-state=new".into(),
            format!("--cert-file={}", server_cert.display()),
            format!("--key-file={}", server_key.display()),
            format!("--trusted-ca-file={}", ca.display()),
            "--client-cert-auth".into(),
        ];
        let mut c = EtcdCluster {
            members: vec![Member {
                name: "m0".into(),
                client_url,
                peer_url: peer,
                args,
                log: dir.path().join("m0.log"),
                child: None,
            }],
            dir,
            netns: None,
            ctl_flags,
        };
        c.spawn(0);
        c.wait_healthy(0, Duration::from_secs(20));
        Some(c)
    }

    fn spawn(&mut self, i: usize) {
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "member {} is already running", m.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("etcd log file");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "etcd"]);
                c
            }
            None => Command::new("etcd"),
        };
        let child = cmd
            .args(&m.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        m.child = Some(child);
    }

    /// Client URLs of every member, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    pub fn index_of(&self, client_url: &str) -> Option<usize> {
        self.members.iter().position(|m| m.client_url == client_url)
    }

    /// Wait until member `i` says it is healthy (it has a leader and answers); panics
    /// with its log's tail after `timeout`.
    pub fn wait_healthy(&self, i: usize, timeout: Duration) {
        let end = Instant::now() + timeout;
        let url = &self.members[i].client_url;
        loop {
            let (ok, _) = self.ctl(i, &["endpoint", "health"]);
            if ok {
                return;
            }
            if Instant::now() > end {
                panic!(
                    "etcd member {} ({url}) not healthy within {timeout:?}; log:\n{}",
                    self.members[i].name,
                    self.log_tail(i)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_tail(&self, i: usize) -> String {
        let s = std::fs::read_to_string(&self.members[i].log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn signal(&mut self, i: usize, sig: &str) {
        if let Some(mut ch) = self.members[i].child.take() {
            if sig == "KILL" {
                let _ = ch.kill();
            } else {
                let _ = Command::new("kill")
                    .arg(format!("-{sig}"))
                    .arg(ch.id().to_string())
                    .status();
            }
            let _ = ch.wait();
        }
    }

    /// SIGKILL member `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        self.signal(i, "KILL");
    }

    /// SIGTERM member `i` (a clean stop) and reap it.
    pub fn stop(&mut self, i: usize) {
        self.signal(i, "TERM");
    }

    /// Start member `i` again on its data (after kill or stop) and wait until healthy.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(i, Duration::from_secs(20));
    }

    /// Start every stopped member again (together: a lone member of a stopped cluster has
    /// no quorum to be healthy on) and wait until each is healthy.
    pub fn restart_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.spawn(i);
            }
        }
        for i in 0..self.members.len() {
            self.wait_healthy(i, Duration::from_secs(20));
        }
    }

    /// The index of the member that is the raft leader now, if one says so.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| {
            let (ok, out) = self.ctl(i, &["endpoint", "status"]);
            ok && out.split(", ").nth(4) == Some("true")
        })
    }

    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
