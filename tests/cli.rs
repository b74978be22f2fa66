//! The `rondo` commands end to end, as an operator runs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rondo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn table_build_is_byte_identical_to_glb() {
    let v = common::glb_vectors();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let o = rondo(&["table", "build", s(&v.join("table.json")), s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(v.join("table.bin")).unwrap(),
        "not identical to GLB's table.bin"
    );
    // only the output file: the temp file was renamed away
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

fn json_with_backends(n: usize, binds: usize) -> String {
    let backends: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"ip": "10.{}.{}.{}", "state": "active", "healthy": true}}"#,
                i / 65536,
                (i / 256) % 256,
                i % 256
            )
        })
        .collect();
    let binds: Vec<String> = (0..binds)
        .map(|i| {
            format!(
                r#"{{"ip": "1.1.{}.{}", "proto": "tcp", "port": 80}}"#,
                i / 256,
                i % 256
            )
        })
        .collect();
    format!(
        r#"{{"tables": [{{"hash_key": "12345678901234561234567890123456", "seed": "34567890123456783456789012345678", "binds": [{}], "backends": [{}]}}]}}"#,
        binds.join(","),
        backends.join(",")
    )
}

#[test]
fn table_build_refuses_what_glb_would_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    for (n, b, what) in [(257, 1, "257 backends"), (3, 257, "257 binds")] {
        let inp = dir.path().join("t.json");
        std::fs::write(&inp, json_with_backends(n, b)).unwrap();
        let out = dir.path().join("t.bin");
        let o = rondo(&["table", "build", s(&inp), s(&out)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains("256"), "{what}: {err}");
        assert!(!out.exists(), "{what}: nothing may be written");
    }
    // 256 is fine
    let inp = dir.path().join("ok.json");
    std::fs::write(&inp, json_with_backends(256, 256)).unwrap();
    let o = rondo(&["table", "build", s(&inp), s(&dir.path().join("ok.bin"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn table_build_bad_json_names_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("t.json");
    std::fs::write(&inp, json_with_backends(3, 1).replace("10.0.0.2", "10.0.0")).unwrap();
    let out = dir.path().join("t.bin");
    std::fs::write(&out, b"previous").unwrap();
    let o = rondo(&["table", "build", s(&inp), s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("t.json") && err.contains("backends[2].ip"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"previous",
        "existing output untouched"
    );
}

#[test]
fn pcap_forwards_glb_capture() {
    let v = common::glb_vectors();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pcap");
    let o = rondo(&[
        "pcap",
        "--config",
        s(&root().join("configs/glb/director.conf")),
        "--forwarding-table",
        s(&v.join("table.bin")),
        "--in",
        s(&v.join("1k_pkts.pcap")),
        "--out",
        s(&out),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("forwarded") && l.contains(" 1000 packets")),
        "{stdout}"
    );
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        common::check_outer_v4(
            &p.data,
            [0, 0x11, 0x22, 0x33, 0x44, 0x55],
            [2, 0, 0, 0, 0, 1],
            [1, 2, 3, 4],
        );
        n += 1;
    }
    assert_eq!(n, 1000);
}

#[test]
fn pcap_with_json_table_equals_bin_table() {
    let v = common::glb_vectors();
    let dir = tempfile::tempdir().unwrap();
    let run = |table: &Path, out: &Path| {
        let o = rondo(&[
            "pcap",
            "--config",
            s(&root().join("configs/glb/director.conf")),
            "--forwarding-table",
            s(table),
            "--in",
            s(&v.join("1k_pkts.pcap")),
            "--out",
            s(out),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(out).unwrap()
    };
    let a = run(&v.join("table.bin"), &dir.path().join("a.pcap"));
    let b = run(&v.join("table.json"), &dir.path().join("b.pcap"));
    assert!(a == b, "GLB .json and .bin give the same output bytes");
}

#[test]
fn show_and_diff_report_shares_and_moves() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    let base = json_with_backends(3, 1);
    std::fs::write(&a, &base).unwrap();
    // drain 10.0.0.1: its primary rows move, it stays as a secondary
    std::fs::write(
        &b,
        base.replacen(
            r#""ip": "10.0.0.1", "state": "active""#,
            r#""ip": "10.0.0.1", "state": "draining""#,
            1,
        ),
    )
    .unwrap();
    let o = rondo(&["table", "show", s(&a), "--row", "0"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        out.contains("10.0.0.1") && out.contains("row 0x0000:"),
        "{out}"
    );
    let o = rondo(&["table", "diff", s(&a), s(&b)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let moved: f64 = out
        .split("primary changes in ")
        .nth(1)
        .and_then(|x| x.split(" rows").next())
        .and_then(|x| x.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{out}"));
    let frac = moved / 65536.0;
    assert!(
        (0.30..0.37).contains(&frac),
        "about a third of rows move when one of three drains: {frac}\n{out}"
    );
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("10.0.0.1 "))
        .unwrap();
    assert!(
        line.contains("0.00%"),
        "drained backend owns no primary rows after: {line}"
    );
}

#[test]
fn check_config_accepts_every_kind_of_file() {
    for f in [
        "configs/director.toml",
        "configs/glb/director.conf",
        "configs/glb/forwarding_table.json",
    ] {
        let o = rondo(&["check-config", s(&root().join(f))]);
        assert!(
            o.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = rondo(&[
        "check-config",
        s(&root().join("configs/glb/director.conf")),
        "--forwarding-table",
        s(&root().join("configs/glb/forwarding_table.json")),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A config with [bgp] says what rondo run will do with BIRD.
    let o = rondo(&["check-config", s(&root().join("configs/af_packet.toml"))]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("bgp: BIRD at /run/bird/bird.ctl, include /etc/bird/rondo.conf (1 community, MED 50, sessions router1); on SIGTERM graceful 1000 ms, drain up to 2000 ms; a worker stalled 1000 ms withdraws"),
        "{out}"
    );
    let o = rondo(&["check-config", "/nonexistent/x.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/x.toml"));
}

#[test]
fn check_config_refuses_overlapping_binds_in_a_table_file() {
    let dir = tempfile::tempdir().unwrap();
    let one = json_with_backends(2, 1);
    // two tables that both claim 1.1.0.0:80/tcp
    let tables = one
        .strip_prefix("{\"tables\": [")
        .and_then(|t| t.strip_suffix("]}"))
        .unwrap();
    let two = format!("{{\"tables\": [{tables}, {tables}]}}");
    let p = dir.path().join("t.json");
    std::fs::write(&p, two).unwrap();
    let o = rondo(&["check-config", s(&p)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("overlaps") && err.contains("t.json"), "{err}");
}

/// A director.conf, a GLB table built by `rondo table build` from JSON written here, the
/// equivalent native TOML config, and a capture of SYNs (with ARP and runts) to its VIP.
struct PcapFixture {
    dir: tempfile::TempDir,
}

impl PcapFixture {
    fn new() -> PcapFixture {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(
            p("table.json"),
            json_with_backends(5, 0).replace(
                r#""binds": []"#,
                r#""binds": [{"ip": "1.1.1.1", "proto": "tcp", "port": 80}]"#,
            ),
        )
        .unwrap();
        let o = rondo(&["table", "build", s(&p("table.json")), s(&p("table.bin"))]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::write(
            p("director.conf"),
            r#"{
  "outbound_gateway_mac": "00:11:22:33:44:55",
  "outbound_src_ip": "1.2.3.4",
  "forward_icmp_ping_responses": true,
  "hash_fields": { "src_addr": true, "dst_addr": true, "src_port": true },
  "num_worker_queues": 1,
  "flow_paths": [{ "rx_port": 0, "rx_queue": 0, "tx_port": 0, "tx_queue": 0 }],
  "lcores": { "lcore-1": { "rx": true, "tx": true, "flow_paths": [0], "dist": true, "num_dist_workers": 1, "kni": true } }
}"#,
        )
        .unwrap();
        std::fs::write(
            p("director.toml"),
            format!(
                r#"forwarding_table = "{}"

[director]
outbound_gateway_mac = "00:11:22:33:44:55"
outbound_src_ip = "1.2.3.4"
forward_icmp_ping_responses = true
hash_fields = ["src_addr", "dst_addr", "src_port"]
"#,
                s(&p("table.bin"))
            ),
        )
        .unwrap();
        common::director::write_pcap(&p("in.pcap"), &common::director::traffic(300));
        PcapFixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `rondo pcap` with these config arguments: (stdout, forwarded bytes, exception bytes).
    fn pcap(&self, config: &[&str], tag: &str) -> (String, Vec<u8>, Vec<u8>) {
        let out = self.path(&format!("{tag}.out.pcap"));
        let exc = self.path(&format!("{tag}.exc.pcap"));
        let mut args = vec!["pcap"];
        args.extend_from_slice(config);
        let input = self.path("in.pcap");
        args.extend_from_slice(&["--in", s(&input), "--out", s(&out), "--exceptions", s(&exc)]);
        let o = rondo(&args);
        assert!(
            o.status.success(),
            "{config:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        (
            String::from_utf8(o.stdout).unwrap(),
            std::fs::read(out).unwrap(),
            std::fs::read(exc).unwrap(),
        )
    }
}

#[test]
fn pcap_takes_glb_config_and_forwarding_table_as_run_does() {
    let f = PcapFixture::new();
    let (conf, table, toml) = (
        f.path("director.conf"),
        f.path("table.bin"),
        f.path("director.toml"),
    );
    let glb = f.pcap(
        &["--glb-config", s(&conf), "--forwarding-table", s(&table)],
        "glb",
    );
    assert!(
        glb.0
            .lines()
            .any(|l| l.starts_with("forwarded") && l.contains(" 291 packets")),
        "{}",
        glb.0
    );
    assert!(glb.1.len() > 291 * 60, "forwarded frames written");
    assert!(glb.2.len() > 24, "exception frames (ARP) written");
    let native = f.pcap(&["--config", s(&toml)], "native");
    assert!(
        glb == native,
        "--glb-config/--forwarding-table and the equivalent --config give the same bytes"
    );
    // The form `rondo pcap` took first still works.
    let legacy = f.pcap(
        &["--config", s(&conf), "--forwarding-table", s(&table)],
        "legacy",
    );
    assert!(
        glb == legacy,
        "--config director.conf --forwarding-table gives the same bytes"
    );
}

#[test]
fn pcap_config_arguments_refuse_both_or_neither() {
    let f = PcapFixture::new();
    let (conf, table, toml, input) = (
        f.path("director.conf"),
        f.path("table.bin"),
        f.path("director.toml"),
        f.path("in.pcap"),
    );
    let fails = |config: &[&str], expect: &str| {
        let mut args = vec!["pcap", "--in", s(&input)];
        args.extend_from_slice(config);
        let o = rondo(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{config:?} accepted");
        assert!(stderr.contains(expect), "{config:?}: {stderr}");
    };
    fails(
        &[
            "--config",
            s(&toml),
            "--glb-config",
            s(&conf),
            "--forwarding-table",
            s(&table),
        ],
        "cannot be used with",
    );
    fails(
        &[],
        "give --config FILE.toml, or --glb-config director.conf --forwarding-table TABLE",
    );
    fails(&["--glb-config", s(&conf)], "--forwarding-table");
    fails(
        &["--forwarding-table", s(&table)],
        "give --config FILE.toml",
    );
    fails(
        &["--config", s(&toml), "--forwarding-table", s(&table)],
        "a TOML config names its own tables",
    );
}

#[test]
fn healthcheck_fleet_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[healthchecks]\ntrigger = 3\n").unwrap();
    let o = rondo(&["healthcheck", "--fleet", s(&bad)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("bad.toml") && err.contains("fleet") && err.contains("missing"),
        "{err}"
    );
    let o = rondo(&["healthcheck", "--fleet", s(&bad), "--config", s(&bad)]);
    assert!(!o.status.success(), "--fleet and --config together");
    let example = root().join("configs/healthcheck-fleet.toml");
    #[cfg(not(feature = "etcd"))]
    {
        let o = rondo(&["healthcheck", "--fleet", s(&example)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains("--features etcd"), "{err}");
    }
    #[cfg(feature = "etcd")]
    {
        let text = std::fs::read_to_string(&example)
            .unwrap()
            .replace("prefix = \"/rondo/prod\"", "prefix = \"rondo/prod\"");
        let f = dir.path().join("relative-prefix.toml");
        std::fs::write(&f, text).unwrap();
        let o = rondo(&["healthcheck", "--fleet", s(&f)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains("fleet.prefix"), "{err}");
    }
}
