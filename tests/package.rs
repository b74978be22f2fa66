//! The Debian package (`packaging/build-deb`): built, its contents checked, linted, its
//! units verified, installed with `dpkg -i`, run from the installed path, removed (only the
//! conffiles stay) and purged (nothing stays).
//!
//! Needs root (it installs the package on this machine) and dpkg-deb, dpkg-shlibdeps,
//! lintian and strip; otherwise it says why and is skipped (a failure with `CI=true`). It
//! builds the package's binary with `cargo build --release` (the package's features), so
//! it reuses a release binary already built with them; `RONDO_DEB=FILE.deb` tests a package
//! built before instead. It is purged at the end, also when the test fails.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::skip;

const UNITS: [&str; 3] = [
    "rondo.service",
    "rondo-redirect.service",
    "rondo-healthcheck.service",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// `dpkg-query`'s status of package rondo ("install ok installed", "deinstall ok
/// config-files"), or None when dpkg knows nothing of it.
fn status() -> Option<String> {
    let o = run("dpkg-query", &["-W", "-f=${Status}", "rondo"]);
    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !s.is_empty() && !s.contains("not-installed")).then_some(s)
}

fn group_exists(name: &str) -> bool {
    run("getent", &["group", name]).status.success()
}

/// Purges the package when dropped: also when an assertion failed half way.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if status().is_some() {
            let o = run("dpkg", &["--purge", "rondo"]);
            if !o.status.success() {
                eprintln!(
                    "cleanup: dpkg --purge rondo failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }
}

/// The package's paths (`./usr/bin/rondo` as `/usr/bin/rondo`), and which are not folders.
fn contents(deb: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let listing = ok("dpkg-deb", &["-c", deb.to_str().unwrap()]);
    let mut all = BTreeSet::new();
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        // drwxr-xr-x root/root 0 2024-01-01 00:00 ./usr/bin/  (symlinks: "x -> y")
        let Some(i) = line.find(" ./") else { continue };
        let path = line[i + 2..].split(" -> ").next().unwrap();
        let path = path.trim_end_matches('/').to_string();
        if path.is_empty() {
            continue;
        }
        if !line.starts_with('d') {
            files.insert(path.clone());
        }
        all.insert(path);
    }
    (all, files)
}

fn build(out: &Path) -> PathBuf {
    if let Ok(deb) = std::env::var("RONDO_DEB") {
        eprintln!("testing the package built before: {deb}");
        return PathBuf::from(deb);
    }
    let mut args = vec!["--out".to_string(), out.display().to_string()];
    // The package's default has the DPDK driver; a machine without libdpdk-dev (never CI:
    // scripts/test installs it) tests the build without it.
    let dpdk = run("pkg-config", &["--exists", "libdpdk"]).status.success();
    if !dpdk {
        eprintln!("libdpdk-dev is not installed: testing the package built with --no-dpdk");
        args.push("--no-dpdk".into());
    }
    let o = Command::new(root().join("packaging/build-deb"))
        .args(&args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "packaging/build-deb failed: {}",
        o.status
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("build-deb names the package")
            .trim(),
    )
}

#[test]
fn debian_package_builds_lints_installs_and_removes_cleanly() {
    if !nix_is_root() {
        skip("needs root: it installs the package with dpkg -i");
        return;
    }
    for tool in ["dpkg-deb", "dpkg-shlibdeps", "lintian", "strip", "dpkg"] {
        if !have(tool) {
            skip(&format!(
                "{tool} is not installed (Debian dpkg-dev, lintian, binutils)"
            ));
            return;
        }
    }
    if let Some(s) = status() {
        skip(&format!(
            "a rondo package is on this machine already ({s}); this test installs and purges \
             its own: `dpkg --purge rondo` first"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let deb = build(dir.path());
    let debs = deb.to_str().unwrap();

    // --- contents ----------------------------------------------------------------------
    let (all, files) = contents(&deb);
    let mut want: Vec<String> = vec![
        "/usr/bin/rondo".into(),
        "/etc/rondo/director.toml".into(),
        "/etc/rondo/backend.toml".into(),
        "/etc/rondo/healthcheck.toml".into(),
        "/etc/rondo/glb/forwarding_table.src.json".into(),
        "/usr/share/bash-completion/completions/rondo".into(),
        "/usr/share/zsh/vendor-completions/_rondo".into(),
        "/usr/share/fish/vendor_completions.d/rondo.fish".into(),
        "/usr/share/doc/rondo/copyright".into(),
        "/usr/share/doc/rondo/changelog.Debian.gz".into(),
    ];
    want.extend(UNITS.iter().map(|u| format!("/lib/systemd/system/{u}")));
    // A man page for rondo and for every subcommand (and theirs: rondo-table-build).
    for page in [
        "rondo",
        "table",
        "table-build",
        "table-show",
        "table-diff",
        "check-config",
        "pcap",
        "run",
        "demo",
        "healthcheck",
        "redirect",
        "console",
        "pktgen",
        "fleet",
        "quic-lb",
        "quic-lb-keygen",
    ] {
        let name = if page == "rondo" {
            "rondo".to_string()
        } else {
            format!("rondo-{page}")
        };
        want.push(format!("/usr/share/man/man1/{name}.1.gz"));
    }
    // Monitoring (tests/dashboards.rs checks the files themselves): the dashboard and the
    // alerting rules by name, and whatever else the repository's folders hold.
    want.push("/usr/share/rondo/grafana/rondo.json".into());
    want.push("/usr/share/rondo/prometheus/rondo-alerts.yml".into());
    for (src, dst, ext) in [
        ("monitoring/grafana", "/usr/share/rondo/grafana", ".json"),
        (
            "monitoring/prometheus",
            "/usr/share/rondo/prometheus",
            ".yml",
        ),
    ] {
        for e in std::fs::read_dir(root().join(src)).unwrap_or_else(|e| panic!("{src}: {e}")) {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            if n.ends_with(ext) {
                want.push(format!("{dst}/{n}"));
            }
        }
    }
    let missing: Vec<&String> = want.iter().filter(|p| !files.contains(*p)).collect();
    assert!(
        missing.is_empty(),
        "missing from the package: {missing:?}\n{files:#?}"
    );
    assert!(
        !files.iter().any(|p| p.contains("gen-docs")),
        "the hidden generator is documented"
    );

    // Every file under /etc is a conffile, and nothing else is.
    let conffiles: BTreeSet<String> = ok("dpkg-deb", &["-I", debs, "conffiles"])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let etc: BTreeSet<String> = files
        .iter()
        .filter(|p| p.starts_with("/etc/"))
        .cloned()
        .collect();
    assert_eq!(conffiles, etc, "conffiles");

    // Depends: from dpkg-shlibdeps; with the DPDK driver, Debian's DPDK 22.11 libraries.
    let depends = ok("dpkg-deb", &["-f", debs, "Depends"]);
    assert!(depends.contains("libc6"), "Depends: {depends}");
    assert!(depends.contains("adduser"), "Depends: {depends}");
    let description = ok("dpkg-deb", &["-f", debs, "Description"]);
    if description.contains("with the DPDK driver") {
        assert!(depends.contains("librte-eal23"), "Depends: {depends}");
    } else {
        assert!(!depends.contains("librte"), "Depends: {depends}");
    }
    eprintln!("Depends: {}", depends.trim());

    // --- lintian: no errors (warnings are printed) -----------------------------------
    let o = run("lintian", &["--tag-display-limit", "0", debs]);
    let report = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!(
        "lintian (exit {}):\n{report}{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors: {errors:#?}");

    // --- install ------------------------------------------------------------------------
    let _purge = Purge;
    ok("dpkg", &["-i", debs]);
    assert_eq!(status().as_deref(), Some("install ok installed"));
    let version = ok("/usr/bin/rondo", &["--version"]);
    assert!(
        version.starts_with(&format!("rondo {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    eprintln!("installed: {}", version.trim());
    assert!(group_exists("rondo"), "postinst made no rondo group");
    ok(
        "/usr/bin/rondo",
        &["check-config", "/etc/rondo/director.toml"],
    );
    ok(
        "/usr/bin/rondo",
        &["check-config", "/etc/rondo/backend.toml"],
    );
    for page in ["rondo", "rondo-run"] {
        let p = format!("/usr/share/man/man1/{page}.1.gz");
        assert!(Path::new(&p).is_file(), "{p}");
    }
    for (installed, repo) in [
        (
            "/usr/share/rondo/grafana/rondo.json",
            "monitoring/grafana/rondo.json",
        ),
        (
            "/usr/share/rondo/prometheus/rondo-alerts.yml",
            "monitoring/prometheus/rondo-alerts.yml",
        ),
    ] {
        assert_eq!(
            std::fs::read(installed).unwrap_or_else(|e| panic!("{installed}: {e}")),
            std::fs::read(root().join(repo)).unwrap(),
            "{installed} is not the repository's {repo}"
        );
    }

    // The units as installed, where systemd-analyze runs (it needs no running systemd).
    if have("systemd-analyze") {
        let paths: Vec<String> = UNITS
            .iter()
            .map(|u| format!("/lib/systemd/system/{u}"))
            .collect();
        let mut args = vec!["verify"];
        args.extend(paths.iter().map(String::as_str));
        let o = run("systemd-analyze", &args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!("systemd-analyze verify: {}\n{text}", o.status);
        assert!(o.status.success(), "systemd-analyze verify: {text}");
        let ours: Vec<&str> = text.lines().filter(|l| l.contains("rondo")).collect();
        assert!(ours.is_empty(), "systemd-analyze on our units: {ours:#?}");
    } else {
        eprintln!("note: no systemd-analyze here: the units were not verified");
    }

    // An edited conffile survives reinstalling (an upgrade with the same files).
    let edited = "/etc/rondo/backend.toml";
    let mut text = std::fs::read_to_string(edited).unwrap();
    text.push_str("# edited by the operator\n");
    std::fs::write(edited, &text).unwrap();
    ok("dpkg", &["-i", debs]);
    assert_eq!(std::fs::read_to_string(edited).unwrap(), text);

    // --- remove: only the conffiles stay --------------------------------------------------
    ok("dpkg", &["--remove", "rondo"]);
    assert_eq!(status().as_deref(), Some("deinstall ok config-files"));
    for p in &all {
        let there = Path::new(p).symlink_metadata().is_ok();
        if conffiles.contains(p) {
            assert!(there, "conffile {p} was removed with the package");
        } else if files.contains(p) {
            assert!(!there, "{p} is still there after dpkg --remove");
        } else if p.contains("rondo") {
            // Our own folders (/usr/share/doc/rondo, ...), but /etc/rondo with its conffiles.
            assert!(
                !there || conffiles.iter().any(|c| c.starts_with(&format!("{p}/"))),
                "folder {p} is still there after dpkg --remove"
            );
        }
    }
    assert_eq!(std::fs::read_to_string(edited).unwrap(), text);

    // --- purge: nothing stays ---------------------------------------------------------------
    ok("dpkg", &["--purge", "rondo"]);
    assert_eq!(status(), None);
    for p in all.iter().filter(|p| p.contains("rondo")) {
        assert!(
            Path::new(p).symlink_metadata().is_err(),
            "{p} is still there after dpkg --purge"
        );
    }
    assert!(!group_exists("rondo"), "the rondo group outlived the purge");
}

fn nix_is_root() -> bool {
    run("id", &["-u"]).stdout.starts_with(b"0\n")
}
