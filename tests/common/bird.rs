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
use rondo::fleet::bgp::{BgpError, BgpSettings, Bird, BirdCtl, Desired};

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

/// A bird process (foreground), killed and reaped on drop.
pub struct BirdProc {
    pub child: Option<Child>,
}

impl BirdProc {
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
            super::wait_until(&format!("bird {who} control socket"), 30, || {
                BirdCtl::connect(&sock, Duration::from_secs(1)).is_ok()
            });
        }
        Some(lab)
    }

    pub fn start_bird(&self, ns: &str, who: &str) -> Child {
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
