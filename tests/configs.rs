//! Every example config loads; bad configs give precise errors through `rondo check-config`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use rondo::config::{load_config, load_file, Loaded};
use rondo::datapath::Snapshot;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn configs(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            configs(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn every_example_config_loads_and_compiles() {
    let mut files = Vec::new();
    configs(&root().join("configs"), &mut files);
    let mut tomls = 0;
    let mut backends = 0;
    for f in &files {
        // Health checker configs (`rondo healthcheck`) are not director configs.
        if f.file_stem().and_then(|s| s.to_str()) == Some("healthcheck") {
            healthcheck_config_loads(f);
            continue;
        }
        // Nor are the fleet checker's (`rondo healthcheck --fleet`).
        if f.file_stem().and_then(|s| s.to_str()) == Some("healthcheck-fleet") {
            fleet_healthcheck_config_loads(f);
            continue;
        }
        match f.extension().and_then(|e| e.to_str()) {
            Some("toml")
                if rondo::redirect::config::is_redirect_config(
                    &std::fs::read_to_string(f).unwrap(),
                ) =>
            {
                backends += 1;
                rondo::redirect::config::load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            }
            Some("toml") => {
                tomls += 1;
                let cfg = load_config(f, None).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                // The port specs parse as `rondo run` parses them (af_packet's rx=, ...).
                for spec in &cfg.run.ports {
                    spec.parse::<rondo::drivers::PortSpec>()
                        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                }
                Snapshot::compile(cfg, None, 0).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            }
            Some("json") | Some("conf") => {
                load_file(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            }
            _ => {}
        }
    }
    assert!(tomls >= 3, "examples found: {files:?}");
    assert!(
        backends >= 1,
        "a backend (rondo redirect) example: {files:?}"
    );
    let glb = load_config(
        &root().join("configs/glb/director.conf"),
        Some(&root().join("configs/glb/forwarding_table.json")),
    )
    .unwrap();
    assert_eq!(glb.tables.len(), 2);
    Snapshot::compile(glb, None, 0).unwrap();
}

/// A `rondo healthcheck` config loads; when its source table is in the repo, that loads too
/// and has targets to check.
fn healthcheck_config_loads(f: &Path) {
    let cfg = rondo::health::config::load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    assert_ne!(cfg.src, cfg.dst);
    if cfg.src.exists() {
        let src = rondo::health::output::Source::load(&cfg.src)
            .unwrap_or_else(|e| panic!("{}: {e}", cfg.src.display()));
        let opts = cfg.options(&src.settings);
        assert_eq!(opts.trigger, 3);
        let state = rondo::health::HealthState::new(opts.trigger, &src.specs);
        assert!(
            !state.targets().is_empty(),
            "{}: nothing to check",
            f.display()
        );
    }
}

/// A `rondo healthcheck --fleet` config loads; with the etcd feature its `[fleet]` table is
/// valid etcd settings too.
fn fleet_healthcheck_config_loads(f: &Path) {
    let cfg =
        rondo::health::fleet_config::load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    assert!(cfg.write_every_rounds >= 1);
    #[cfg(feature = "etcd")]
    {
        let s = cfg
            .etcd_settings()
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!s.name.is_empty());
    }
}

#[test]
fn fleet_healthcheck_example_is_there() {
    let f = root().join("configs/healthcheck-fleet.toml");
    let c = rondo::health::fleet_config::load(&f).unwrap();
    assert_eq!(c.options.trigger, 3);
    assert_eq!(c.write_every_rounds, 5);
    assert_eq!(
        c.fleet.get("name").and_then(|v| v.as_str()),
        Some("checker-1")
    );
    fleet_healthcheck_config_loads(&f);
}

#[test]
fn healthcheck_examples_are_there() {
    let toml = root().join("configs/healthcheck.toml");
    let glb = root().join("configs/glb/healthcheck.conf");
    assert!(toml.exists() && glb.exists());
    let t = rondo::health::config::load(&toml).unwrap();
    // The example source: 4 backends, one inactive (not checked); two checks on each of the other three.
    let src = rondo::health::output::Source::load(&t.src).unwrap();
    let state = rondo::health::HealthState::new(3, &src.specs);
    assert_eq!(state.targets().len(), 6);
    let g = rondo::health::config::load(&glb).unwrap();
    assert!(g
        .reload_command
        .unwrap()
        .starts_with("glb-director-cli build-config"));
}

#[test]
fn native_example_has_what_it_says() {
    let Loaded::Config(c) = load_file(&root().join("configs/director.toml")).unwrap() else {
        panic!("not a config")
    };
    assert_eq!(c.tables.len(), 2);
    assert_eq!(c.tables[0].spec.name, "web");
    assert_eq!(c.tables[1].spec.binds[0].prefix_len, 24);
    assert_eq!(c.tables[1].spec.backends[0].weight, 2);
    assert!(!c.tables[1].spec.backends[2].healthy);
}

#[test]
fn af_packet_example_sets_console_and_metrics() {
    use rondo::config::Endpoint;
    let c = load_config(&root().join("configs/af_packet.toml"), None).unwrap();
    assert_eq!(
        c.run.console.socket,
        Endpoint::At(PathBuf::from("/run/rondo/rondo.sock"))
    );
    assert_eq!(
        c.run.metrics.listen,
        Endpoint::At("127.0.0.1:9525".parse().unwrap())
    );
    assert_eq!(
        c.run.metrics.statsd,
        Some("127.0.0.1:28125".parse().unwrap())
    );
    assert_eq!(c.run.metrics.statsd_interval_ms, 10_000);
}

#[test]
fn dpdk_example_has_what_it_says() {
    let c = load_config(&root().join("configs/dpdk.toml"), None).unwrap();
    assert!(c.run.ports[0].starts_with("dpdk:net_pcap0"));
    let d = &c.run.dpdk;
    assert_eq!(
        d.eal_args.as_deref(),
        Some(&["--no-huge", "-m", "512", "--no-shconf"].map(String::from)[..])
    );
    assert_eq!(
        (d.rx_desc, d.tx_desc, d.mbuf_cache, d.mbuf_data_room),
        (1024, 1024, 256, 2048)
    );
    assert_eq!(c.run.pool_size, 8192);
}

fn check(text: &str, ext: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(format!("bad.{ext}"));
    std::fs::write(&p, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .arg("check-config")
        .arg(&p)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = r#"[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]

[[tables.backends]]
ip = "10.1.0.1"
"#;

#[test]
fn backend_example_has_what_it_says() {
    let c = rondo::redirect::config::load(&root().join("configs/backend.toml")).unwrap();
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.tun, "rondo-gue0");
    assert!(c.directors.contains("192.0.2.5".parse().unwrap()));
    assert!(c.backends.contains("10.1.0.77".parse().unwrap()));
    assert!(!c.backends.contains("192.0.2.5".parse().unwrap()));
    let out = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .arg("check-config")
        .arg(root().join("configs/backend.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backend config (rondo redirect)"));
    let (code, err) = check(
        "[redirect]\ndirectors = [\"192.0.2.1\"]\nbackends = [\"10.1.0.0/24\"]\nhop_limit = 40\n",
        "toml",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.toml:4: redirect.hop_limit: expected 0..=30 hops, got 40"),
        "{err}"
    );
}

/// The QUIC backend example is backend 10.3.0.1 of the QUIC director example: the same
/// configurations (keys included) and that backend's server ID, so the two stay in step.
#[test]
fn quic_backend_example_matches_the_quic_director_example() {
    let b = rondo::redirect::config::load(&root().join("configs/backend-quic.toml")).unwrap();
    let q = b.quic_lb.expect("[redirect.quic_lb]");
    let d = load_config(&root().join("configs/quic.toml"), None).unwrap();
    let t = d.tables[0]
        .spec
        .quic_lb
        .as_ref()
        .expect("the table's quic_lb");
    assert_eq!(
        q.configs,
        rondo::quic_lb::QuicLbConfigs::from_specs(t.configs.iter()).unwrap()
    );
    let me: std::net::IpAddr = "10.3.0.1".parse().unwrap();
    assert!(b.addresses.contains(&me));
    assert_eq!(
        t.server_ids
            .iter()
            .find(|(ip, _)| *ip == me)
            .map(|(_, id)| *id),
        Some(q.server_id)
    );
    assert_eq!(q.ports, vec![443]);
}

#[test]
fn good_config_passes() {
    let (code, err) = check(GOOD, "toml");
    assert_eq!(code, 0, "{err}");
}

#[test]
fn bad_configs_name_file_line_field_and_expectation() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "ip = \"10.1.0.1\"",
            "ip = \"10.1.0\"",
            &[
                ":12:",
                "tables[0] (\"web\").backends[0].ip",
                "expected an IPv4 or IPv6 address",
                "\"10.1.0\"",
            ],
        ),
        (
            "outbound_src_ip = \"192.0.2.10\"",
            "outbound_src_ip = \"fe80::1\"",
            &[
                ":3:",
                "director.outbound_src_ip",
                "expected an IPv4 address",
            ],
        ),
        (
            "proto = \"tcp\"",
            "proto = \"sctp\"",
            &[":9:", "binds[0].proto", "expected \"tcp\" or \"udp\""],
        ),
        (
            "port = 80",
            "port = 70000",
            &[":9:", "binds[0].port", "0..=65535"],
        ),
        (
            "hash_key = \"12345678901234561234567890123456\"",
            "hash_key = \"1234\"",
            &[":7:", "hash_key", "32 hex"],
        ),
        (
            "[[tables.backends]]\nip = \"10.1.0.1\"",
            "[[tables.backends]]\nip = \"10.1.0.1\"\nstate = \"paused\"",
            &["backends[0].state", "active, draining, filling, inactive"],
        ),
        (
            "[[tables.backends]]\nip = \"10.1.0.1\"",
            "[[tables.backends]]\nip = \"10.1.0.1\"\nweight = 0",
            &["backends[0].weight", "1..=1000"],
        ),
        (
            "outbound_src_ip = \"192.0.2.10\"",
            "outbound_src_ip = \"192.0.2.10\"\ncolour = \"blue\"",
            &[":4:", "unknown field `colour`"],
        ),
        (
            "[[tables.backends]]\nip = \"10.1.0.1\"",
            "[[tables.backends]]\nip = \"10.1.0.1\"\n[[tables.backends]]\nip = \"10.1.0.1\"",
            &["backends[1].ip", "already listed as backends[0]"],
        ),
        (
            "[[tables.backends]]\nip = \"10.1.0.1\"",
            "",
            &["no backend is available"],
        ),
        (
            "ip = \"1.1.1.1\"",
            "ip = \"1.1.1.1/33\"",
            &["binds[0].ip", "prefix length"],
        ),
        (
            "ip = \"10.1.0.1\"\n",
            "ip = \"10.1.0.1\"\n[dpdk]\nrx_desc = 8\n",
            &[":14:", "dpdk.rx_desc", "32..=32768", "got 8"],
        ),
        (
            "ip = \"10.1.0.1\"\n",
            "ip = \"10.1.0.1\"\n[dpdk]\neal_args = [\"--in-memory\", \"\"]\n",
            &[":14:", "dpdk.eal_args", "non-empty"],
        ),
    ];
    for (from, to, wants) in cases {
        assert!(GOOD.contains(from), "case {from:?}");
        let text = GOOD.replacen(from, to, 1);
        let (code, err) = check(&text, "toml");
        assert_eq!(code, 1, "{to:?} should fail: {err}");
        assert!(err.contains("bad.toml"), "names the file: {err}");
        for w in *wants {
            assert!(err.contains(w), "{to:?}: expected {w:?} in: {err}");
        }
    }
}

#[test]
fn overlapping_binds_across_tables_are_refused() {
    let two = format!(
        "{GOOD}\n[[tables]]\nname = \"other\"\nhash_key = \"12345678901234561234567890123456\"\nseed = \"12345678901234561234567890123456\"\nbinds = [{{ ip = \"1.1.1.1\", proto = \"tcp\", port_start = 79, port_end = 81 }}]\n[[tables.backends]]\nip = \"10.2.0.1\"\n"
    );
    let (code, err) = check(&two, "toml");
    assert_eq!(code, 1);
    assert!(
        err.contains("overlaps") && err.contains("\"web\"") && err.contains("\"other\""),
        "{err}"
    );
    let dup = two.replace("name = \"other\"", "name = \"web\"");
    let (code, err) = check(&dup, "toml");
    assert_eq!(code, 1);
    assert!(err.contains("already used by tables[0]"), "{err}");
}

#[test]
fn bad_glb_director_conf() {
    let (code, err) = check(
        r#"{"outbound_gateway_mac": "00:11:22:33:44", "outbound_src_ip": "1.2.3.4"}"#,
        "json",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("outbound_gateway_mac") && err.contains("MAC"),
        "{err}"
    );
    let (code, err) = check(
        r#"{"outbound_gateway_mac": "00:11:22:33:44:55", "outbound_src_ip": "1.2.3.4", "hash_fields": {"src_ip": true}}"#,
        "json",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("hash_fields.src_ip") && err.contains("unknown hash field"),
        "{err}"
    );
    let (code, err) = check("{\n\"outbound_gateway_mac\": \n", "json");
    assert_eq!(code, 1);
    assert!(err.contains("invalid JSON"), "{err}");
    let (code, err) = check(
        &[0xffu8, 0xfe, 0]
            .iter()
            .map(|&b| b as char)
            .collect::<String>(),
        "toml",
    );
    assert_eq!(code, 1, "{err}");
}
