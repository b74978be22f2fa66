//! The parsers on replies recorded from a real BIRD 2.0.12 (`tests/vectors/bird/`, see its
//! README for provenance), and the client against fake daemons for the failure paths.
use super::*;
use std::os::unix::net::UnixListener;

macro_rules! vector {
    ($f:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/bird/",
            $f
        ))
    };
}

fn reply(bytes: &[u8]) -> Reply {
    let (r, used) = parse_reply(bytes).unwrap().expect("a complete reply");
    assert_eq!(used, bytes.len(), "one reply, nothing after it");
    r
}

#[test]
fn status_gives_the_daemon_start_time() {
    let r = reply(vector!("status.txt"));
    assert_eq!(r.code(), 13);
    assert_eq!(
        parse_last_reboot(&r).as_deref(),
        Some("2026-12-04 22:49:15.829")
    );
    assert_eq!(parse_last_reboot(&reply(vector!("configure_ok.txt"))), None);
}

#[test]
fn greeting_and_configure_replies() {
    let g = reply(vector!("greeting.txt"));
    assert_eq!((g.code(), g.message()), (1, "BIRD 2.0.12 ready."));
    let c = reply(vector!("configure_check_ok.txt"));
    assert_eq!((c.code(), c.message()), (20, "Configuration OK"));
    assert_eq!(c.lines[0].code, 2);
    assert_eq!(reply(vector!("configure_ok.txt")).code(), 3);
    let bad = reply(vector!("configure_refused.txt"));
    assert!(bad.is_error());
    match reply_error("configure check", &bad) {
        CtlError::ConfigRefused {
            file,
            line,
            column,
            message,
        } => {
            assert_eq!(
                (file.as_str(), line, column),
                ("/tmp/birdx/rondo.conf", 1, 82)
            );
            assert_eq!(message, "syntax error, unexpected '}', expecting ';'");
        }
        e => panic!("{e}"),
    }
    let e = reply_error("show nonsense", &reply(vector!("syntax_error.txt")));
    assert!(matches!(e, CtlError::Command { code: 9001, .. }), "{e}");
    let e = reply_error("x", &reply(vector!("no_such_protocol.txt")));
    assert_eq!(
        e.to_string(),
        "BIRD answered \"x\" with error 8003: No protocols match"
    );
}

#[test]
fn bgp_protocol_states() {
    let p = parse_protocol(&reply(vector!("protocol_bgp_established.txt"))).unwrap();
    assert_eq!(p.name, "router4");
    assert_eq!(p.proto, "BGP");
    assert_eq!(p.state, "up");
    assert_eq!(p.info, "Established");
    assert!(p.is_established());
    assert_eq!(p.neighbor, Some("10.77.0.2".parse().unwrap()));
    assert_eq!(p.last_error, None);
    let p6 = parse_protocol(&reply(vector!("protocol_bgp6_established.txt"))).unwrap();
    assert_eq!(p6.neighbor, Some("fd00:77::2".parse().unwrap()));
    assert!(p6.is_established());

    let a = parse_protocol(&reply(vector!("protocol_bgp_active.txt"))).unwrap();
    assert_eq!(a.state, "start");
    assert_eq!(a.bgp_state, Some(BgpState::Active));
    assert_eq!(a.info, "Active Received: Administrative shutdown");
    assert_eq!(
        a.last_error.as_deref(),
        Some("Received: Administrative shutdown")
    );
    let l = parse_protocol(&reply(vector!("protocol_bgp_later.txt"))).unwrap();
    assert_eq!(l.last_error.as_deref(), Some("Socket: Connection refused"));

    let s = parse_protocol(&reply(vector!("protocol_static.txt"))).unwrap();
    assert_eq!((s.proto.as_str(), s.bgp_state.as_ref()), ("Static", None));
}

#[test]
fn since_column_with_a_date() {
    let r = reply(
        b"2002-Name Proto Table State Since Info\n\
          1002-r1 BGP --- start 2026-12-03 10:00:00 Connect\n\
          1006-  BGP state:          Connect\n0000 \n",
    );
    let p = parse_protocol(&r).unwrap();
    assert_eq!(
        (p.info.as_str(), p.bgp_state),
        ("Connect", Some(BgpState::Connect))
    );
    let r = reply(b"1002-r1 BGP --- start 2026-12-03 Idle\n1006-  BGP state: Passive\n0000 \n");
    let p = parse_protocol(&r).unwrap();
    assert_eq!(
        (p.info.as_str(), p.bgp_state),
        ("Idle", Some(BgpState::Passive))
    );
}

#[test]
fn malformed_protocol_replies_are_refused() {
    assert!(parse_protocol(&reply(b"0000 \n")).is_err());
    assert!(parse_protocol(&reply(b"1002-a b c\n0000 \n")).is_err());
    assert!(
        parse_protocol(&reply(b"1002-a BGP --- up 1:2 Est\n0000 \n")).is_err(),
        "no BGP state"
    );
    let p = parse_protocol(&reply(
        b"1002-a BGP --- up 1:2 Est\n1006-  BGP state: Weird\n0000 \n",
    ));
    assert_eq!(p.unwrap().bgp_state, Some(BgpState::Other("Weird".into())));
}

#[test]
fn bfd_sessions() {
    let up = parse_bfd_sessions(&reply(vector!("bfd_up.txt"))).unwrap();
    assert_eq!(up.len(), 2);
    assert_eq!(up[0].protocol, "bfd1");
    assert_eq!(up[0].peer, "fd00:77::2".parse::<IpAddr>().unwrap());
    assert_eq!(up[1].peer, "10.77.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(up[1].interface, "rxa");
    assert!(up.iter().all(|s| s.state == BfdState::Up));
    let down = parse_bfd_sessions(&reply(vector!("bfd_down.txt"))).unwrap();
    assert!(down.iter().all(|s| s.state == BfdState::Down));
    assert_eq!(parse_bfd_sessions(&reply(b"0000 \n")).unwrap(), vec![]);
    assert!(parse_bfd_sessions(&reply(b"1020-bfd1:\n nonsense rxa Up\n0000 \n")).is_err());
    assert!(parse_bfd_sessions(&reply(b"1020- 10.0.0.1 rxa Up 1 2 3\n0000 \n")).is_err());
}

#[test]
fn reply_framing() {
    // Incomplete: no final line yet, at any cut of a real reply.
    let full = vector!("protocol_bgp_established.txt");
    for cut in 0..full.len() {
        assert_eq!(parse_reply(&full[..cut]), Ok(None), "cut at {cut}");
    }
    // Async lines are skipped; CRLF tolerated; what follows the final line is left.
    let (r, used) = parse_reply(b"+log message\r\n0003 Reconfigured\r\n0001 x\n")
        .unwrap()
        .unwrap();
    assert_eq!((r.code(), r.message(), used), (3, "Reconfigured", 33));
    for bad in [
        &b" continuation first\n"[..],
        b"12 short\n",
        b"12345 five digits\n",
        b"0001\n",
        b"0001x\n",
        b"abcd text\n",
        b"\n",
    ] {
        assert!(
            parse_reply(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Not UTF-8: still parsed (lossy), never a panic.
    let r = reply(b"1002-\xff\xfe BGP --- up\n0000 \n");
    assert!(r.lines[0].text.contains('\u{fffd}'));
}

#[test]
fn missing_socket_and_no_daemon_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bird.ctl");
    let t = Duration::from_secs(2);
    let e = BirdCtl::connect(&p, t).unwrap_err();
    assert!(matches!(e, CtlError::SocketMissing { .. }), "{e}");
    assert!(e.to_string().contains("bird.ctl"), "{e}");
    // A socket file nobody listens on (the daemon died without removing it).
    drop(UnixListener::bind(&p).unwrap());
    let e = BirdCtl::connect(&p, t).unwrap_err();
    assert!(matches!(e, CtlError::NotRunning { .. }), "{e}");
    assert!(e.to_string().contains("connection refused"), "{e}");
}

/// A daemon that accepts and writes `greeting`, then answers every command with `answer`
/// (or never, when `None`).
fn fake_daemon(
    greeting: &'static [u8],
    answer: Option<&'static [u8]>,
) -> (tempfile::TempDir, PathBuf, std::thread::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bird.ctl");
    let l = UnixListener::bind(&p).unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(greeting).unwrap();
        let mut buf = [0u8; 256];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Some(a) = answer {
                let _ = s.write_all(a);
            }
        }
    });
    (dir, p, h)
}

#[test]
fn a_hung_daemon_times_out() {
    let (_d, p, _h) = fake_daemon(b"", None);
    let t0 = Instant::now();
    let e = BirdCtl::connect(&p, Duration::from_millis(300)).unwrap_err();
    assert!(matches!(e, CtlError::Timeout { .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(10));

    let (_d, p, _h) = fake_daemon(b"0001 BIRD 2.0.12 ready.\n", None);
    let mut c = BirdCtl::connect(&p, Duration::from_millis(300)).unwrap();
    assert_eq!(c.greeting, "BIRD 2.0.12 ready.");
    let e = c.configure_check().unwrap_err();
    assert!(
        matches!(e, CtlError::Timeout { ref command, .. } if command == "configure check"),
        "{e}"
    );
}

#[test]
fn unexpected_replies_are_errors() {
    let (_d, p, _h) = fake_daemon(b"HTTP/1.1 400 Bad Request\n", None);
    let e = BirdCtl::connect(&p, Duration::from_secs(2)).unwrap_err();
    assert!(matches!(e, CtlError::Unexpected { .. }), "{e}");
    let (_d, p, _h) = fake_daemon(b"0001 BIRD ready.\n", Some(b"0003 Reconfigured\n"));
    let mut c = BirdCtl::connect(&p, Duration::from_secs(2)).unwrap();
    let e = c.configure_check().unwrap_err();
    assert!(e.to_string().contains("expected one of [20]"), "{e}");
    assert!(c.configure().is_ok());
    assert!(c.request("a\nb").is_err(), "a command is one line");
    let e = c.show_protocol("a\"b").unwrap_err();
    assert!(matches!(e, CtlError::Unexpected { .. }), "{e}");
}

#[test]
fn a_daemon_that_closes_mid_reply() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bird.ctl");
    let l = UnixListener::bind(&p).unwrap();
    let _h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"0001 BIRD ready.\n").unwrap();
        let mut b = [0u8; 64];
        let _ = s.read(&mut b);
        let _ = s.write_all(b"0002-Reading configuration\n");
    });
    let mut c = BirdCtl::connect(&p, Duration::from_secs(5)).unwrap();
    let e = c.configure().unwrap_err();
    assert!(matches!(e, CtlError::Closed { .. }), "{e}");
}
