//! Faults of the real world (issue 18): config and table paths that are FIFOs or devices,
//! reloads that would hang the loop handling SIGTERM, and `rondo pcap` on bad captures.
//! Every wait is bounded; a hang fails the test instead of stalling the run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::director::{number_after, Director};

/// Longer than any answer should take, far shorter than a hang.
const BOUND: Duration = Duration::from_secs(10);

fn rondo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rondo"))
}

/// GLB's `director.conf` for the vectors' table.
fn glb_director_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/glb/director.conf")
}

/// `rondo pcap` over GLB's table (its `director.conf` and `table.bin`), `input` to `out`.
fn pcap_cmd(input: &Path, out: &Path) -> Command {
    let mut cmd = rondo();
    cmd.arg("pcap")
        .arg("--glb-config")
        .arg(glb_director_conf())
        .arg("--forwarding-table")
        .arg(common::glb_vectors().join("table.bin"))
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(out);
    cmd
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success(), "mkfifo {}", p.display());
}

/// Run `cmd` to its end, or kill it (only this child, by its pid) after `bound`:
/// `None` then.
fn run_bounded(mut cmd: Command, bound: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + bound;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(child.wait_with_output().unwrap());
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A native config whose tables come from `table`.
fn config_with_table(table: &Path, port: &str) -> String {
    format!(
        "forwarding_table = \"{}\"\n\n[[ports]]\nspec = \"{port}\"\n\n[runtime]\nidle = \"sleep\"\n\n[console]\nsocket = \"off\"\n\n[director]\noutbound_gateway_mac = \"02:00:00:00:00:fe\"\noutbound_src_ip = \"192.0.2.10\"\n",
        table.display()
    )
}

#[test]
fn a_fifo_as_forwarding_table_fails_start_fast_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("forwarding_table.bin");
    mkfifo(&fifo);
    let input = common::glb_vectors().join("1k_pkts.pcap");
    let cfg = dir.path().join("director.toml");
    std::fs::write(
        &cfg,
        config_with_table(&fifo, &format!("pcap:{}", input.display())),
    )
    .unwrap();
    let expected = format!(
        "{}: is a FIFO (named pipe), not a regular file",
        fifo.display()
    );

    // Native TOML naming the FIFO.
    let mut cmd = rondo();
    cmd.args(["run", "--stats-interval", "0", "--config"])
        .arg(&cfg);
    let out = run_bounded(cmd, BOUND).expect("rondo run hung on a FIFO forwarding_table");
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));

    // GLB's form: director.conf plus the FIFO as --forwarding-table.
    let mut cmd = rondo();
    cmd.args(["run", "--stats-interval", "0", "--console-socket", "off"])
        .args(["--metrics-listen", "off", "--glb-config"])
        .arg(glb_director_conf())
        .arg("--forwarding-table")
        .arg(&fifo)
        .arg("--port")
        .arg(format!("pcap:{}", input.display()));
    let out = run_bounded(cmd, BOUND).expect("rondo run hung on a FIFO --forwarding-table");
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));

    // check-config too.
    let mut cmd = rondo();
    cmd.arg("check-config").arg(&cfg);
    let out = run_bounded(cmd, BOUND).expect("check-config hung on a FIFO forwarding_table");
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
}

#[test]
fn check_config_refuses_devices_and_directories_fast() {
    for (path, what) in [
        (PathBuf::from("/dev/zero"), "a character device"),
        (std::env::temp_dir(), "a directory"),
    ] {
        let mut cmd = rondo();
        cmd.arg("check-config").arg(&path);
        let out = run_bounded(cmd, BOUND).expect("check-config did not end");
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains(&format!(
                "{}: is {what}, not a regular file",
                path.display()
            )),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn check_config_refuses_an_oversized_config_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    // Sparse: 17 MiB of nothing, over the 16 MiB config limit.
    f.set_len(17 << 20).unwrap();
    let mut cmd = rondo();
    cmd.arg("check-config").arg(&big);
    let out = run_bounded(cmd, BOUND).expect("check-config did not end");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("larger than 16777216 bytes (16.0 MiB), the most read for a config"),
        "{}",
        stderr(&out)
    );
}

/// Run `line` on the director's console in a thread; its reply, or `None` after `bound`.
fn cmd_bounded(d: &Director, line: &str, bound: Duration) -> Option<(bool, String)> {
    let (tx, rx) = mpsc::channel();
    let mut s = d.session();
    let line = line.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(s.cmd(&line));
    });
    rx.recv_timeout(bound).ok()
}

#[test]
fn a_reload_onto_a_fifo_is_refused_sigterm_still_stops_and_the_old_table_stays() {
    let mut d = Director::start(3000, 2000, false, "", &[]);
    let generation = |d: &Director| number_after(&d.ok("show tables"), "generation");
    let g = generation(&d);
    let before = d.ok("show backends web");
    assert!(before.contains("10.1.0.3"), "{before}");

    // The config now takes its tables from a FIFO nobody writes to.
    let fifo = d.dir.path().join("forwarding_table.json");
    mkfifo(&fifo);
    let text = std::fs::read_to_string(&d.config).unwrap();
    let head = text.split("[[tables]]").next().unwrap();
    std::fs::write(
        &d.config,
        format!("forwarding_table = \"{}\"\n{head}", fifo.display()),
    )
    .unwrap();

    // The console answers with the reason, within the bound.
    let (ok, reply) = cmd_bounded(&d, "reload", BOUND).expect("console reload hung on a FIFO");
    assert!(!ok, "{reply}");
    assert!(
        reply.contains("reload refused, the running tables stay")
            && reply.contains(&format!(
                "{}: is a FIFO (named pipe), not a regular file",
                fifo.display()
            )),
        "{reply}"
    );

    // The file watcher sees the next change (once it settled, 2 s) and is refused as
    // well; the old table keeps forwarding.
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("{text}\n# touched\n")).unwrap();
    d.wait_for("the watcher's refused reload", || {
        d.log_text().matches("reload rejected").count() >= 2
    });
    let forwarded = d.forwarded();
    d.wait_for("forwarding after the refused reloads", || {
        d.forwarded() > forwarded
    });
    assert_eq!(generation(&d), g, "no new snapshot");
    let after = d.ok("show backends web");
    assert!(after.contains("10.1.0.3"), "{after}");
    assert!(
        d.ok("show tables").contains("web"),
        "the running table is kept"
    );

    // SIGTERM stops the director promptly.
    assert!(d.alive());
    let st = Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let end = Instant::now() + BOUND;
    let status = loop {
        if let Ok(Some(st)) = d.child.try_wait() {
            break st;
        }
        assert!(
            Instant::now() < end,
            "SIGTERM did not stop the director within {BOUND:?}: {}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}: {}", d.log_text());
}

/// `rondo pcap` on `input` with existing `--out` and `--exceptions` files: it must fail
/// with `expected` in its message and leave both files byte-identical, with nothing else
/// in their folder.
fn pcap_fails_and_keeps_outputs(input_bytes: &[u8], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    std::fs::write(&input, input_bytes).unwrap();
    let outdir = dir.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("out.pcap");
    let exc = outdir.join("exc.pcap");
    let good = std::fs::read(common::glb_vectors().join("1k_pkts.pcap")).unwrap();
    std::fs::write(&out, &good).unwrap();
    std::fs::write(&exc, b"exceptions of an earlier run").unwrap();
    let mut cmd = pcap_cmd(&input, &out);
    cmd.arg("--exceptions").arg(&exc);
    let o = run_bounded(cmd, BOUND).expect("rondo pcap did not end");
    assert!(!o.status.success(), "{}", stderr(&o));
    let msg = stderr(&o);
    assert!(
        msg.contains(&format!("{}: {expected}", input.display())),
        "expected {expected:?} in: {msg}"
    );
    assert!(std::fs::read(&out).unwrap() == good, "--out was changed");
    assert_eq!(
        std::fs::read(&exc).unwrap(),
        b"exceptions of an earlier run",
        "--exceptions was changed"
    );
    let mut names: Vec<String> = std::fs::read_dir(&outdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["exc.pcap", "out.pcap"], "no temporary files left");
}

#[test]
fn pcap_with_a_wrong_magic_says_so_and_keeps_the_outputs() {
    pcap_fails_and_keeps_outputs(
        b"GLBD\x02\0\0\0\x01\0\0\0\0\0\x01\0\0\x01\0\0\0\x01\0\0and more",
        "not a pcap capture: wrong magic 47 4c 42 44 (a pcap file starts with a1 b2 c3 d4",
    );
}

#[test]
fn pcap_with_pcapng_says_pcapng() {
    pcap_fails_and_keeps_outputs(
        b"\x0a\x0d\x0d\x0a\x1c\0\0\0\x4d\x3c\x2b\x1a\x01\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff\x1c\0\0\0",
        "is a pcapng capture (magic 0a 0d 0d 0a); only pcap is supported",
    );
}

#[test]
fn pcap_with_an_empty_or_short_input_says_so_and_keeps_the_outputs() {
    pcap_fails_and_keeps_outputs(b"", "is empty (0 bytes); expected a pcap capture");
    let good = std::fs::read(common::glb_vectors().join("1k_pkts.pcap")).unwrap();
    pcap_fails_and_keeps_outputs(
        &good[..10],
        "is 10 bytes, shorter than a pcap file header (24 bytes)",
    );
}

#[test]
fn pcap_with_a_truncated_record_names_the_packet_and_offset_and_keeps_the_outputs() {
    let good = std::fs::read(common::glb_vectors().join("1k_pkts.pcap")).unwrap();
    // Walk the records to cut the third one in its data, and the fourth in its header.
    let le = good[..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let mut offs = vec![24usize];
    for _ in 0..4 {
        let o = *offs.last().unwrap();
        let f: [u8; 4] = good[o + 8..o + 12].try_into().unwrap();
        let incl = if le {
            u32::from_le_bytes(f)
        } else {
            u32::from_be_bytes(f)
        } as usize;
        offs.push(o + 16 + incl);
    }
    pcap_fails_and_keeps_outputs(
        &good[..offs[2] + 16 + 5],
        &format!(
            "packet 3 (the record at byte offset {}) is truncated: the file ends 5 bytes into its captured data; the 2 packet(s) before it are complete",
            offs[2]
        ),
    );
    pcap_fails_and_keeps_outputs(
        &good[..offs[3] + 7],
        &format!(
            "packet 4 (the record at byte offset {}) is truncated: its record header is cut short (7 of 16 bytes)",
            offs[3]
        ),
    );
}

#[test]
fn pcap_on_success_replaces_the_outputs_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let v = common::glb_vectors();
    let out = dir.path().join("out.pcap");
    std::fs::write(&out, b"stale").unwrap();
    let cmd = pcap_cmd(&v.join("1k_pkts.pcap"), &out);
    let o = run_bounded(cmd, BOUND).expect("rondo pcap did not end");
    assert!(o.status.success(), "{}", stderr(&o));
    let frames = common::director::read_pcap(&out);
    assert!(!frames.is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// The number after `label` on the line of `text` that starts with `label`.
fn summary_number(text: &str, label: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(label))
        .map(|l| number_after(l, label))
        .unwrap_or_else(|| panic!("no {label:?} line in the summary:\n{text}"))
}

#[test]
fn the_final_summary_of_run_has_every_counter() {
    let v = common::glb_vectors();
    let mut cmd = rondo();
    cmd.args(["run", "--stats-interval", "0", "--console-socket", "off"])
        .args([
            "--metrics-listen",
            "off",
            "--exception",
            "drop",
            "--glb-config",
        ])
        .arg(glb_director_conf())
        .arg("--forwarding-table")
        .arg(v.join("table.bin"))
        .arg("--port")
        .arg(format!("pcap:{}", v.join("1k_pkts.pcap").display()));
    let out = run_bounded(cmd, Duration::from_secs(60)).expect("rondo run did not end");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(summary_number(&text, "rx "), 1000, "{text}");
    // Worker counters beyond the verdicts, zero or not.
    assert_eq!(summary_number(&text, "tx_refused"), 0, "{text}");
    let exceptions = summary_number(&text, "exception ");
    assert_eq!(
        summary_number(&text, "exception_dropped"),
        exceptions,
        "the exception path is off: every exception is dropped\n{text}"
    );
    summary_number(&text, "alt_hashed");
    assert!(summary_number(&text, "bursts") > 0, "{text}");
    // Every port counter, the reasons of tx_dropped included.
    let port = text
        .lines()
        .find(|l| l.starts_with("port "))
        .unwrap_or_else(|| panic!("no port line:\n{text}"));
    for label in [
        " rx ",
        " tx ",
        "rx_dropped ",
        "tx_dropped ",
        "tx_too_big ",
        "tx_kernel_refused ",
        "rx_errors ",
        "tx_errors ",
        "rx_bytes ",
        "tx_bytes ",
    ] {
        number_after(port, label);
    }
    assert!(number_after(port, "rx_bytes ") > 0, "{port}");
}

const API_TABLE: &str = r#"
[[tables]]
name = "api"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "2.2.2.2", proto = "tcp", port = 443 }]
backends = [{ ip = "10.2.0.1" }, { ip = "10.2.0.2" }]
"#;

#[test]
fn a_config_caught_half_written_by_the_watcher_never_goes_live_and_removals_are_warned() {
    let d = Director::start(2000, 2000, false, "", &[]);
    let generation = |d: &Director| number_after(&d.ok("show tables"), "generation");
    let base = std::fs::read_to_string(&d.config).unwrap();
    // Two tables, live at once by the console's reload.
    std::fs::write(&d.config, format!("{base}{API_TABLE}")).unwrap();
    let (ok, reply) = d.cmd("reload");
    assert!(ok && !reply.contains("removed"), "{reply}");
    let g = generation(&d);
    assert!(d.ok("show tables").contains("api"));

    // A writer rewrites the file in two steps with a pause longer than the watcher's 1 s
    // poll: first everything up to the api table (a file that parses, with one table
    // fewer), then the rest (api with a third backend).
    let full = format!(
        "{base}{}",
        API_TABLE.replace(
            "{ ip = \"10.2.0.2\" }]",
            "{ ip = \"10.2.0.2\" }, { ip = \"10.2.0.3\" }]"
        )
    );
    let (head, tail) = full.split_at(base.len());
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&d.config).unwrap();
        f.write_all(head.as_bytes()).unwrap();
        f.sync_all().unwrap();
        std::thread::sleep(Duration::from_millis(1300));
        f.write_all(tail.as_bytes()).unwrap();
    }
    d.wait_for("the watcher's reload of the finished file", || {
        d.ok("show backends api").contains("10.2.0.3")
    });
    assert_eq!(
        generation(&d),
        g + 1,
        "one reload, of the finished file: the half-written one went live in between\n{}",
        d.log_text()
    );
    assert!(
        !d.log_text().contains("no longer served"),
        "{}",
        d.log_text()
    );

    // A reload that does remove a table says so, naming it and its VIP.
    std::fs::write(&d.config, &base).unwrap();
    let (ok, reply) = d.cmd("reload");
    assert!(ok, "{reply}");
    assert!(
        reply.contains(
            "warning: this reload removed table \"api\", VIP 2.2.2.2/32 tcp 443 (table \"api\"): no longer served"
        ),
        "{reply}"
    );
    assert!(
        d.log_text().contains("removed table \"api\""),
        "{}",
        d.log_text()
    );
}
