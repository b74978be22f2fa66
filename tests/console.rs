//! The console, driven through the socket of a running `rondo run` (a paced, looped capture
//! as its port): every command, changes through the rebuild path, bad input of every kind
//! with no state change and forwarding going on, the `rondo console` client and `-i`.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::director::{number_after, Director, Session, DEADLINE};

/// One backend line of `show backends`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    ip: String,
    state: String,
    health: String,
    weight: u32,
    primary: f64,
    secondary: f64,
    packets: u64,
    over: String,
}

fn backends(d: &Director) -> Vec<Row> {
    let t = d.ok("show backends web");
    t.lines()
        .filter(|l| l.trim_start().starts_with("10.1.0."))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Row {
                ip: w[0].into(),
                state: w[1].into(),
                health: format!("{} {}", w[2], w[3]),
                weight: w[4].parse().unwrap(),
                primary: w[5].trim_end_matches('%').parse().unwrap(),
                secondary: w[6].trim_end_matches('%').parse().unwrap(),
                packets: w[7].parse().unwrap(),
                over: w[8..].join(" "),
            }
        })
        .collect()
}

fn row<'a>(rows: &'a [Row], ip: &str) -> &'a Row {
    rows.iter().find(|r| r.ip == ip).unwrap()
}

fn generation(d: &Director) -> u64 {
    number_after(&d.ok("show tables"), "generation")
}

/// What a backend is, without the counters that move with traffic.
fn states(d: &Director) -> Vec<(String, String, String, u32, String)> {
    backends(d)
        .into_iter()
        .map(|r| (r.ip, r.state, r.health, r.weight, r.over))
        .collect()
}

#[test]
fn every_command_answers_and_changes_go_through_the_rebuild() {
    let d = Director::start(3000, 10_000, false, "[metrics]\nlisten = \"off\"\n", &[]);
    d.wait_for("traffic", || d.forwarded() > 500);

    // show port stats: totals, then rates since this session's last show.
    let mut s = d.session();
    let (ok, first) = s.cmd("show port stats all");
    assert!(ok, "{first}");
    assert!(first.contains("NIC statistics for port 0"), "{first}");
    assert!(first.contains("since start"), "{first}");
    let rx1 = number_after(&first, "RX-packets:");
    assert!(
        rx1 > 0 && number_after(&first, "TX-packets:") > 0,
        "{first}"
    );
    for label in ["RX-dropped:", "RX-errors:", "TX-errors:", "Dropped:"] {
        number_after(&first, label);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (ok, second) = s.cmd("show port stats 0");
    assert!(ok && second.contains("since last show"), "{second}");
    assert!(number_after(&second, "Rx-pps:") > 0, "{second}");
    assert!(number_after(&second, "Tx-bps:") > 0, "{second}");
    assert!(d.fails("show port stats 1").contains("no port 1"));

    let info = d.ok("show port info all");
    for w in [
        "Infos for port 0",
        "pcap:",
        "Workers:          1",
        "Forwarding:       started",
        "Exception path:   drop",
    ] {
        assert!(info.contains(w), "{w}: {info}");
    }
    d.ok("show port info 0");

    // clear port stats: console totals restart from zero.
    let before = number_after(&d.ok("show port stats all"), "RX-packets:");
    assert!(d.ok("clear port stats all").contains("cleared"));
    let after = number_after(&d.ok("show port stats all"), "RX-packets:");
    assert!(after < before, "{after} after clearing, {before} before");
    d.ok("clear port stats 0");

    // show fwd stats: per worker, per verdict, per reason.
    let fwd = d.ok("show fwd stats");
    assert!(fwd.contains("worker 0 (unpinned)"), "{fwd}");
    let all = fwd.split("Accumulated").nth(1).unwrap();
    assert!(number_after(all, "exception not_ip") > 0, "{fwd}");
    assert!(number_after(all, "drop truncated_l2") > 0, "{fwd}");
    assert!(fwd.contains("Forwarding started"), "{fwd}");

    let tables = d.ok("show tables");
    assert!(
        tables.contains("generation 1") && tables.contains(" web "),
        "{tables}"
    );
    assert!(tables.contains("native"), "{tables}");
    let t = d.ok("show table web row 0");
    assert!(t.contains("row 0x0000: 10.1.0."), "{t}");
    assert!(d.ok("show table web row 0xffff").contains("row 0xffff:"));
    assert!(d.ok("show table web").contains("binds (1)"));
    let e = d.fails("show table nope");
    assert!(e.contains("no table \"nope\"; tables are: web"), "{e}");

    let rows = backends(&d);
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(
            (r.state.as_str(), r.health.as_str(), r.weight),
            ("active", "up (config)", 1)
        );
        assert!(r.packets > 0, "{r:?}");
        assert!((r.primary - 33.3).abs() < 2.0, "{r:?}");
        assert_eq!(r.over, "-");
    }
    assert!(d.ok("show backends").contains("table \"web\""));
    assert!(d.fails("show backends nope").contains("no table"));

    // A dry run moves nothing.
    let dry = d.ok("set backend web 10.1.0.1 state draining dry-run");
    assert!(
        dry.contains("dry run, nothing applied") && dry.contains("primary changes in"),
        "{dry}"
    );
    assert_eq!(generation(&d), 1);
    assert_eq!(row(&backends(&d), "10.1.0.1").state, "active");

    // A change: rebuilt, swapped, the diff shown, the override listed.
    let r = d.ok("set backend web 10.1.0.1 state draining");
    assert!(r.contains("generation 2 live"), "{r}");
    let moved = number_after(&r, "primary changes in");
    assert!(
        (20_000..24_000).contains(&moved),
        "about a third of the rows: {r}"
    );
    let rows = backends(&d);
    let one = row(&rows, "10.1.0.1");
    assert_eq!((one.state.as_str(), one.primary), ("draining", 0.0));
    assert_eq!(one.over, "state draining (kept across reloads)");
    assert!(d.log_text().contains("backend changed by the console"));

    // show flow answers from the running snapshot: the override is in it.
    let mut draining_hop_seen = false;
    for i in 0..64 {
        let f = d.ok(&format!("show flow 10.0.0.{i}:4000 1.1.1.1:80 tcp"));
        assert!(
            f.contains("(table web)") && f.contains("lands on 10.1.0."),
            "{f}"
        );
        assert!(!f.contains("lands on 10.1.0.1"), "{f}");
        draining_hop_seen |= f.contains("10.1.0.1 (backend 0, draining, healthy)");
    }
    assert!(
        draining_hop_seen,
        "the drained backend is still a hop of some rows"
    );
    let f = d.ok("show flow 10.0.0.1:4000 1.1.1.1:22 tcp");
    assert!(f.contains("no bind of it takes tcp port 22"), "{f}");
    assert!(d.fails("show flow 10.0.0.1 1.1.1.1 sctp").contains("sctp"));

    // A second non-active backend: refused with the reason, unless forced.
    let e = d.fails("set backend web 10.1.0.2 state filling");
    assert!(
        e.contains("refused") && e.contains("2 backends") && e.contains("force"),
        "{e}"
    );
    assert_eq!(generation(&d), 2);
    assert_eq!(row(&backends(&d), "10.1.0.2").state, "active");
    let dry = d.ok("set backend web 10.1.0.2 state filling dry-run");
    assert!(dry.contains("would be refused without `force`"), "{dry}");
    assert!(d
        .ok("set backend web 10.1.0.2 state filling force")
        .contains("generation 3 live"));
    assert_eq!(row(&backends(&d), "10.1.0.2").state, "filling");
    d.ok("set backend web 10.1.0.2 state active");

    // Weights 1:2:1 share the rows 25/50/25 (within 2 points).
    d.ok("clear backend web 10.1.0.1");
    let r = d.ok("set backend web 10.1.0.2 weight 2");
    assert!(r.contains("10.1.0.2"), "the diff lists the backend: {r}");
    let rows = backends(&d);
    for (ip, want) in [("10.1.0.1", 25.0), ("10.1.0.2", 50.0), ("10.1.0.3", 25.0)] {
        let r = row(&rows, ip);
        assert!((r.primary - want).abs() < 2.0, "{r:?} vs {want}");
    }
    assert_eq!(row(&rows, "10.1.0.2").weight, 2);
    assert_eq!(row(&rows, "10.1.0.1").over, "-");

    // Health: pinned by the operator, then back to auto.
    d.ok("set backend web 10.1.0.3 health down");
    let r3 = row(&backends(&d), "10.1.0.3").clone();
    assert_eq!((r3.health.as_str(), r3.primary), ("down (operator)", 0.0));
    d.ok("set backend web 10.1.0.3 health auto");
    assert_eq!(row(&backends(&d), "10.1.0.3").health, "up (config)");

    // Reload keeps the console's overrides.
    let g = generation(&d);
    let r = d.ok("reload");
    assert!(
        r.contains(&format!("reloaded: generation {} live", g + 1)),
        "{r}"
    );
    let rows = backends(&d);
    assert_eq!(row(&rows, "10.1.0.2").weight, 2);
    assert!(row(&rows, "10.1.0.2").over.contains("kept across reloads"));
    d.ok("clear backend web 10.1.0.2");
    assert!(states(&d).iter().all(|s| s.4 == "-"));

    // stop / start.
    assert_eq!(d.ok("stop").trim(), "forwarding stopped");
    assert!(d
        .ok("show port info all")
        .contains("Forwarding:       stopped"));
    let f1 = d.forwarded();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.forwarded(), f1, "nothing forwarded while stopped");
    assert!(d.ok("stop").contains("already stopped"));
    assert_eq!(d.ok("start").trim(), "forwarding started");
    assert!(d.ok("start").contains("already started"));
    d.wait_for("forwarding again", || d.forwarded() > f1);

    let cfg = d.ok("show config");
    for w in [
        format!("source:      {}", d.config.display()),
        format!("console:     {} (", d.socket.display()),
        "metrics:     off".to_string(),
        "overrides:   none".to_string(),
    ] {
        assert!(cfg.contains(&w), "{w}: {cfg}");
    }

    let help = d.ok("help");
    for w in [
        "show port stats all|PORT",
        "set backend TABLE IP weight W",
        "quit",
    ] {
        assert!(help.contains(w), "{w}: {help}");
    }
    assert!(d
        .ok("help show port stats")
        .contains("rates since the previous"));
    assert!(d.fails("help bogus").contains("no command"));
    let c = d.ok("complete set backend web 10.1.0.");
    assert_eq!(
        c.lines().collect::<Vec<_>>(),
        ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    );

    // quit ends the session (not the director).
    let (ok, bye) = s.cmd("quit");
    assert!(ok && bye.trim() == "bye", "{bye}");
    assert!(s.reply().is_none(), "closed after quit");
    d.ok("show tables");

    // The `rondo console` client.
    let rondo = || Command::new(env!("CARGO_BIN_EXE_rondo"));
    let sock = d.socket.to_str().unwrap();
    let o = rondo()
        .args([
            "console",
            "-s",
            sock,
            "-c",
            "show tables",
            "-c",
            "show backends web",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("generation") && out.contains("10.1.0.3"),
        "{out}"
    );
    let o = rondo()
        .args(["console", "-s", sock, "-c", "frobnicate"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown command \"frobnicate\""));
    let mut child = rondo()
        .args(["console", "-s", sock])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"show tables\n\nshow port info 0\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("Infos for port 0"),
        "{out}"
    );
    let o = rondo()
        .args([
            "console",
            "-s",
            "/nonexistent/rondo.sock",
            "-c",
            "show tables",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot connect"));
}

#[test]
fn bad_input_changes_nothing_and_forwarding_continues() {
    let mut d = Director::start(
        2000,
        10_000,
        false,
        "max_clients = 60\n[metrics]\nlisten = \"off\"\n",
        &[],
    );
    // Console sockets are private: to the `rondo` group when it exists (the Debian package
    // makes it), else to the director's user.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&d.socket).unwrap().permissions(),
    );
    let group = std::fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("rondo:"));
    assert_eq!(mode & 0o777, if group { 0o660 } else { 0o600 });
    d.wait_for("traffic", || d.forwarded() > 200);
    let gen = generation(&d);
    let before = states(&d);
    let fwd_before = d.forwarded();

    // Unknown commands, wrong arguments, unknown tables and backends.
    let cases: &[(&str, &str)] = &[
        ("frobnicate", "unknown command \"frobnicate\""),
        ("show", "usage: show port stats"),
        ("show port stats", "which port?"),
        ("show port stats 7", "no port 7"),
        ("set backend web 10.1.0.1 state paused", "got \"paused\""),
        ("set backend web 10.1.0.1 weight 0", "1..=1000"),
        (
            "set backend web 10.1.0.1 weight 99999999999",
            "expected a number",
        ),
        (
            "set backend web 10.1.0.1 weight 2 force",
            "`force` only applies",
        ),
        (
            "set backend web 10.9.9.9 state draining",
            "no backend 10.9.9.9; its backends are: 10.1.0.1",
        ),
        (
            "set backend nope 10.1.0.1 weight 2",
            "no table \"nope\"; tables are: web",
        ),
        (
            "set backend web not-an-ip health up",
            "expected a backend IP address",
        ),
        ("clear backend web 10.9.9.9", "no backend 10.9.9.9"),
        ("reload please", "unexpected \"please\""),
        ("stop now", "unexpected \"now\""),
    ];
    for (line, want) in cases {
        let e = d.fails(line);
        assert!(
            e.starts_with("error: ") && e.contains(want),
            "{line:?}: {e}"
        );
    }

    let mut s = d.session();
    // A 1 MB line: refused once, the session goes on.
    let mut big = vec![b'x'; 1 << 20];
    big.push(b'\n');
    s.send_raw(&big);
    let (ok, e) = s.reply().unwrap();
    assert!(!ok && e.contains("longer than 4096 bytes"), "{e}");
    assert!(s.cmd("show tables").0);
    // Not UTF-8, NULs and terminal escapes: refused, never echoed raw.
    s.send_raw(b"show \xff\xfe tables\n");
    let (ok, e) = s.reply().unwrap();
    assert!(!ok && e.contains("not UTF-8"), "{e}");
    s.send_raw(b"\x00\x01\x1b[2J\x07\n");
    let (ok, e) = s.reply().unwrap();
    assert!(!ok && !e.contains('\u{1b}') && !e.contains('\0'), "{e:?}");
    s.send_raw("show t\u{e9}bles \u{1F600}\n".as_bytes());
    assert!(!s.reply().unwrap().0);
    // Tabs, CRLF and blank lines are fine.
    s.send_raw(b"\t show\ttables \r\n");
    assert!(s.reply().unwrap().0);
    s.send_raw(b"\n");
    assert_eq!(s.reply().unwrap(), (true, String::new()));
    // A hundred commands in one write: a hundred replies, in order.
    s.send_raw("show tables\nhelp quit\n".repeat(50).as_bytes());
    for i in 0..100 {
        let (ok, t) = s.reply().unwrap();
        assert!(ok, "{i}: {t}");
        assert_eq!(t.contains("generation"), i % 2 == 0, "{i}: {t}");
    }

    // Clients that leave mid-command: a cut line runs nothing; a reply nobody reads is
    // dropped.
    let mut cut = d.session();
    cut.send_raw(b"set backend web 10.1.0.1 state draini");
    drop(cut);
    let mut cut = d.session();
    cut.send_raw(b"set backend web 10.1.0.1 wei");
    cut.writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(cut.reply().is_none(), "nothing runs, the session ends");
    let mut gone = d.session();
    gone.send_raw(b"show fwd stats\nshow backends\n");
    drop(gone);
    // A client that sends a lot and never reads does not hold up anyone else.
    let mut deaf = d.session();
    deaf.send_raw("show fwd stats\n".repeat(2000).as_bytes());
    let t0 = Instant::now();
    d.ok("show tables");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    drop(deaf);

    // 50 clients at once.
    let barrier = Arc::new(Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let (b, sock) = (barrier.clone(), d.socket.clone());
            std::thread::spawn(move || {
                let mut s = Session::open(&sock);
                b.wait();
                for cmd in [
                    "show backends",
                    "show port stats all",
                    "show fwd stats",
                    "help",
                ] {
                    let (ok, t) = s.cmd(cmd);
                    assert!(ok, "{cmd}: {t}");
                }
                s.cmd("set backend web 10.1.0.1 weight 0").0
            })
        })
        .collect();
    for t in threads {
        assert!(!t.join().unwrap(), "bad change refused in every session");
    }

    // Sessions beyond max_clients are told so; a freed slot serves again. (Closed sessions
    // are freed as soon as the server reads their end.)
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    let mut held: Vec<Session> = Vec::new();
    let refused = loop {
        let mut s = d.session();
        match s.reply_or_cmd("show tables") {
            Some((true, _)) => held.push(s),
            Some((false, e)) => break e,
            None => panic!("closed without a word"),
        }
        assert!(held.len() <= 60, "limit not enforced");
    };
    assert!(
        refused.contains("too many console sessions (at most 60)"),
        "{refused}"
    );
    assert_eq!(held.len(), 60);
    held.pop();
    d.wait_for("a free session slot", || {
        matches!(d.session().reply_or_cmd("show tables"), Some((true, _)))
    });
    drop(held);

    // Nothing changed, and forwarding went on throughout.
    assert_eq!(generation(&d), gen);
    assert_eq!(states(&d), before);
    d.wait_for("forwarding continues", || d.forwarded() > fwd_before + 500);
    assert!(d.alive());
    let log = d.log_text();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("console session refused: too many sessions"),
        "{log}"
    );
}

trait ReplyOrCmd {
    /// Send `line`; the reply, or the refusal a full server sends before closing.
    fn reply_or_cmd(&mut self, line: &str) -> Option<(bool, String)>;
}

impl ReplyOrCmd for Session {
    fn reply_or_cmd(&mut self, line: &str) -> Option<(bool, String)> {
        // A refused session gets its error and EOF; writing may fail by then.
        let _ = self.writer.write_all(format!("{line}\n").as_bytes());
        self.reply()
    }
}

/// Longer than the server's eviction threshold (`console::server::EVICT_IDLE`, 5 s).
const PAST_EVICT_IDLE: Duration = Duration::from_millis(5600);

#[test]
fn a_full_console_closes_the_longest_idle_session_to_let_the_operator_in() {
    let mut d = Director::start(
        500,
        2000,
        false,
        "max_clients = 3\n[metrics]\nlisten = \"off\"\n",
        &[],
    );
    // Every slot taken by a session that ran one command and then sat idle.
    let mut a = d.session();
    assert!(a.cmd("show tables").0);
    let mut b = d.session();
    assert!(b.cmd("show tables").0);
    let mut c = d.session();
    assert!(c.cmd("show tables").0);
    std::thread::sleep(PAST_EVICT_IDLE);
    // b works again: now a and c are the idle ones, a the longest.
    assert!(b.cmd("show tables").0);

    // A fourth session gets in and works; a is told why and closed.
    let mut e = d.session();
    let (ok, t) = e
        .reply_or_cmd("show tables")
        .expect("the new session was closed without a word");
    assert!(ok, "the operator was locked out: {t}");
    let (ok, why) = a
        .reply()
        .expect("the evicted session was closed without a word");
    assert!(!ok);
    assert!(
        why.contains("all 3 console sessions were taken") && why.contains("idle the longest"),
        "{why}"
    );
    assert!(a.reply().is_none(), "the evicted session is closed");

    // A fifth: c (idle the longest now, past the threshold) makes room.
    let mut f = d.session();
    let (ok, t) = f
        .reply_or_cmd("show tables")
        .expect("closed without a word");
    assert!(ok, "{t}");
    let (ok, why) = c.reply().expect("c closed without a word");
    assert!(!ok && why.contains("idle the longest"), "{why}");

    // Now every session was active within the threshold: a sixth is refused, and the
    // ones held still work.
    let mut g = d.session();
    let (ok, refused) = g
        .reply_or_cmd("show tables")
        .expect("closed without a word");
    assert!(!ok, "{refused}");
    assert!(
        refused.contains("too many console sessions (at most 3)"),
        "{refused}"
    );
    for s in [&mut b, &mut e, &mut f] {
        assert!(s.cmd("show tables").0);
    }
    assert!(d.alive());
    let log = d.log_text();
    assert!(log.contains("closed the session idle the longest"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn run_i_takes_commands_on_stdin_and_quit_stops_the_director() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    common::director::write_pcap(&input, &common::director::traffic(500));
    let cfg = dir.path().join("director.toml");
    let text = common::director::config(
        &format!("pcap:{},loop,pps=5000", input.display()),
        &dir.path().join("unused.sock"),
        "",
        "[metrics]\nlisten = \"off\"\n",
    )
    .replace(
        &format!("socket = \"{}\"", dir.path().join("unused.sock").display()),
        "socket = \"off\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args(["run", "-i", "--stats-interval", "0", "--config"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"show tables\nfrobnicate\nstop\nshow port info 0\nstart\nset backend web 10.1.0.1 state draining\nquit\n")
        .unwrap();
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("rondo run -i did not stop on quit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    for w in [
        "generation 1",
        "forwarding stopped",
        "Forwarding:       stopped",
        "forwarding started",
        "generation 2 live",
        "bye",
        "reloads     ok 1 failed 0",
    ] {
        assert!(out.contains(w), "{w}: {out}");
    }
    assert!(err.contains("unknown command \"frobnicate\""), "{err}");
    assert!(
        err.contains("stop requested on the console (quit)"),
        "{err}"
    );
}
