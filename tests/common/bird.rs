//! Real BIRD 2 daemons in network namespaces, for the tests of `rondo::fleet::bgp`
//! (tests/bgp_bird.rs) and of `rondo run` with `[bgp]` (tests/bgp_run.rs): two namespaces
//! joined by a veth, a "director" bird (BGP over IPv4 and IPv6 to the router, BFD on, the
//! generated include) and a "router" bird importing what it learns into its kernel FIB.
//!
//! ```text
//!  director ns (bird -s d.ctl)              router ns (bird -s r.ctl)
//!  rondo-life (lifeline TAP)                kernel FIB <- BGP d4, d6
//!  dveth 10.77.0.1/30 fd00:77::1/64 -- veth -- rveth 10.77.0.2/30 fd00:77::2/64
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rondo::fleet::bgp::bird_conf;
use rondo::fleet::bgp::{BgpError, BgpSettings, Bird, Desired};

/// Why this machine cannot run these tests, if it cannot.
pub fn cannot_run() -> Option<String> {
    if let Err(why) = super::veth::privileged() {
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

/// A BIRD 2 daemon in the foreground inside a namespace (`bird -f -s CTL -c CONF -P PID`),
/// its standard error in `log`; killed and reaped on drop. Shared by the lab below and
/// tests/e2e.rs.
pub struct BirdProc {
    pub name: String,
    pub ctl: PathBuf,
    pub conf: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl BirdProc {
    /// Not running yet: [`BirdProc::start_in`] starts it.
    pub fn new(name: &str, ctl: PathBuf, conf: PathBuf, log: PathBuf) -> BirdProc {
        BirdProc {
            name: name.to_string(),
            ctl,
            conf,
            log,
            child: None,
        }
    }

    /// Start it in namespace `ns` and wait for its control socket to answer.
    pub fn start(name: &str, ns: &str, ctl: PathBuf, conf: PathBuf, log: PathBuf) -> BirdProc {
        let mut b = BirdProc::new(name, ctl, conf, log);
        b.start_in(ns);
        b
    }

    /// Start it in namespace `ns` (it must not be running) and wait for its control socket.
    pub fn start_in(&mut self, ns: &str) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "bird", "-f", "-s"])
            .arg(&self.ctl)
            .arg("-c")
            .arg(&self.conf)
            .arg("-P")
            .arg(self.conf.with_extension("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).expect("bird log"))
            .spawn()
            .expect("spawn bird");
        self.child = Some(child);
        let up = super::poll(super::fleet::START, Duration::from_millis(20), || {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                panic!("{}: bird exited ({st}): {}", self.name, self.log_text());
            }
            self.birdc(&["show", "status"]).0
        });
        assert!(
            up,
            "{}: no control socket within {:?}",
            self.name,
            super::fleet::START
        );
    }

    /// `birdc -s CTL ARGS`: (succeeded, output).
    pub fn birdc(&self, args: &[&str]) -> (bool, String) {
        match Command::new("birdc")
            .arg("-s")
            .arg(&self.ctl)
            .args(args)
            .output()
        {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                // birdc exits 0 even for a refused command; BIRD's error replies are 8xxx/9xxx.
                let refused = text
                    .lines()
                    .any(|l| l.starts_with('8') || l.starts_with('9'));
                (o.status.success() && !refused, text)
            }
            Err(e) => (false, format!("birdc: {e}")),
        }
    }

    /// Load the (rewritten) config file; panics when BIRD refuses it.
    pub fn configure(&self) {
        let (ok, text) = self.birdc(&["configure"]);
        assert!(ok, "{}: configure: {text}", self.name);
    }

    /// The daemon's standard error (and its log, where bird.conf says `log stderr`).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The running daemon's pid (`ip netns exec` execs bird in place).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("{} is not running", self.name))
    }

    /// Whether the daemon this test started is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// SIGKILL (only the child this test started, by its pid) and reap it.
    pub fn kill(&mut self) {
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
pub struct Lab {
    pub d: String,
    pub r: String,
    pub dir: tempfile::TempDir,
    pub director: BirdProc,
    pub router: BirdProc,
}

pub fn ip(args: &[&str]) {
    super::veth::ip(args).unwrap_or_else(|e| panic!("{e}"));
}

impl Lab {
    /// `t` tells this test's namespaces from the others' (tests run in parallel).
    pub fn new(t: char) -> Option<Lab> {
        if let Some(why) = cannot_run() {
            super::skip(&why);
            return None;
        }
        let pid = std::process::id() % 100_000;
        let (d, r) = (format!("rdb{t}{pid}d"), format!("rdb{t}{pid}r"));
        for ns in [&d, &r] {
            let _ = super::veth::ip(&["netns", "del", ns]);
        }
        let dir = tempfile::tempdir().unwrap();
        let bird = |who: &str| {
            let p = |s: &str| dir.path().join(format!("{who}.{s}"));
            BirdProc::new(&format!("{who} bird"), p("ctl"), p("conf"), p("stderr"))
        };
        let (director, router) = (bird("d"), bird("r"));
        let mut lab = Lab {
            d: d.clone(),
            r: r.clone(),
            dir,
            director,
            router,
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
        // BFD at 200 ms x 5 (1 s to declare a peer down): 50 ms x 3 flapped while CI built
        // and ran other tests on the 2-vCPU machine, and a BFD flap takes the BGP session
        // (and its routes) down with it. No test here measures BFD's detection time.
        let bfd = "protocol bfd { interface \"*\" { min rx interval 200 ms; min tx interval 200 ms; multiplier 5; }; }\n";
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
        lab.director.start_in(&d);
        lab.router.start_in(&r);
        Some(lab)
    }

    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    pub fn include(&self) -> PathBuf {
        self.path("rondo.conf")
    }

    pub fn settings(&self) -> BgpSettings {
        let doc = format!(
            "[bgp]\nsocket = \"{}\"\ninclude = \"{}\"\ncommunities = [\"65000:100\"]\n\
             large_communities = [\"65000:1:2\"]\nmed = 50\nsessions = [\"router4\", \"router6\"]\n",
            self.path("d.ctl").display(),
            self.include().display()
        );
        BgpSettings::from_toml_str(&doc).unwrap()
    }

    /// `Bird::new` on a thread inside the director namespace (where the lifeline lives).
    pub fn bird(&self, settings: BgpSettings) -> Result<Bird, BgpError> {
        super::netns::in_netns(&self.d, move || Bird::new(settings))
    }

    /// Whether the router's kernel FIB has a route for `prefix`.
    pub fn in_fib(&self, prefix: &str) -> bool {
        let fam = if prefix.contains(':') { "-6" } else { "-4" };
        let out = Command::new("ip")
            .args(["-n", &self.r, fam, "route", "show", prefix])
            .output()
            .expect("ip route");
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    }

    pub fn wait_fib(&self, prefix: &str, present: bool) {
        super::wait_until(
            &format!(
                "{prefix} {} the router's FIB",
                if present { "in" } else { "gone from" }
            ),
            30,
            || self.in_fib(prefix) == present,
        );
    }

    /// The router's `show route all PREFIX`, through birdc (independent of our client).
    pub fn router_route(&self, prefix: &str) -> String {
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
            if let Err(e) = super::veth::ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}
