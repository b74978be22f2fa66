//! The fleet simulation (issue 7, item 3): every scenario keeps every connection that did
//! not live on a killed backend, and new connections succeed throughout; with second chance
//! off, the same harness sees connections break.

use rondo_sim::{run, Params, Report, Scenario};

fn check(s: Scenario) -> Report {
    let r = match run(s, Params::default()) {
        Ok(r) => r,
        Err(e) => panic!("{}: {e}", s.name()),
    };
    println!("{r}");
    assert_eq!(r.broken(), 0, "{}: connections broke\n{r}", s.name());
    assert_eq!(r.new_failed, 0, "{}: new connections failed\n{r}", s.name());
    assert!(
        r.new_judged >= 100,
        "{}: too few new connections\n{r}",
        s.name()
    );
    assert!(r.long_opened >= 200, "{}\n{r}", s.name());
    assert!(!r.changes.is_empty(), "{}: nothing changed\n{r}", s.name());
    assert!(
        r.changes.iter().all(|(_, c)| !c.contains("pending")),
        "{}: the scenario did not finish\n{r}",
        s.name()
    );
    r
}

#[test]
fn add_backend() {
    let r = check(Scenario::AddBackend);
    assert!(r.backends.forwarded > 0, "second chance never used\n{r}");
    assert!(
        r.local_per_backend[4] > 0,
        "the new backend served nothing\n{r}"
    );
    assert_eq!(r.long_alive, r.long_opened, "{r}");
}

#[test]
fn drain() {
    let r = check(Scenario::Drain);
    assert!(r.backends.forwarded > 0, "second chance never used\n{r}");
    assert!(
        r.flows_at_end[0] > 0,
        "the draining backend lost its connections\n{r}"
    );
    assert_eq!(r.long_alive, r.long_opened, "{r}");
}

#[test]
fn kill_backend() {
    let r = check(Scenario::KillBackend);
    assert!(r.long_on_killed > 0, "the killed backend held nothing\n{r}");
    assert_eq!(r.long_alive + r.long_on_killed, r.long_opened, "{r}");
    // The harness sees the killed backend's connections break (stall), as it must.
    assert_eq!(
        r.killed_seen_broken,
        r.long_on_killed + r.new_on_killed,
        "{r}"
    );
    assert_eq!(r.flows_at_end[1], 0, "{r}");
}

#[test]
fn director_restart() {
    let r = check(Scenario::DirectorRestart);
    assert_eq!(r.long_alive, r.long_opened, "{r}");
}

#[test]
fn reload() {
    let r = check(Scenario::Reload);
    assert_eq!(r.long_alive, r.long_opened, "{r}");
}

#[test]
fn remove() {
    let r = check(Scenario::Remove);
    assert!(
        r.changes.iter().any(|(_, c)| c.contains("Remove(0)")),
        "backend 0 never drained\n{r}"
    );
    assert_eq!(r.flows_at_end[0], 0, "{r}");
    assert!(r.long_completed > 0, "{r}");
}

#[test]
fn alt_hash_migration() {
    let r = check(Scenario::AltHashMigration);
    assert!(r.backends.forwarded > 0, "second chance never used\n{r}");
    assert_eq!(r.long_alive, r.long_opened, "{r}");
}

/// The harness can fail: without second chance, the changes that move rows break
/// established connections.
#[test]
fn without_second_chance_connections_break() {
    for s in [
        Scenario::AddBackend,
        Scenario::Drain,
        Scenario::AltHashMigration,
    ] {
        let p = Params {
            second_chance: false,
            ..Params::default()
        };
        let r = run(s, p).unwrap_or_else(|e| panic!("{}: {e}", s.name()));
        println!("{r}");
        assert!(
            r.broken() > 0,
            "{}: nothing broke without second chance\n{r}",
            s.name()
        );
        assert_eq!(r.backends.forwarded, 0, "{r}");
    }
}

/// Same seed, same run: every count identical.
#[test]
fn runs_are_deterministic() {
    let p = Params {
        long_conns: 40,
        new_conn_every_ms: 40,
        settle_ms: 2700,
        ..Params::default()
    };
    let a = run(Scenario::AddBackend, p).map(|r| r.to_string());
    let b = run(Scenario::AddBackend, p).map(|r| r.to_string());
    assert_eq!(a.as_ref().ok(), b.as_ref().ok());
    assert!(a.is_ok(), "{a:?}");
    let other = run(Scenario::AddBackend, Params { seed: 8, ..p }).map(|r| r.to_string());
    assert!(other.is_ok(), "{other:?}");
}

#[test]
fn bad_params_are_an_error() {
    let p = Params {
        backends: 1,
        ..Params::default()
    };
    assert!(run(Scenario::Drain, p).is_err());
}
