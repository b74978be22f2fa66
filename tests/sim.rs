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

/// Client affinity (issue 22, item 4): hashed on the client address, every client keeps one
/// backend until a change moves it, each change moves a client at most once, and no client
/// comes back to a backend it left; hashed on address and port, clients spread over every
/// backend (the harness can tell the difference).
#[test]
fn sticky_clients_keep_one_backend_and_move_once_per_change() {
    use rondo_sim::{affinity, AffinityParams, Plan};
    for plan in [Plan::Separate, Plan::Replace] {
        let r = affinity(AffinityParams {
            plan,
            ..AffinityParams::default()
        })
        .unwrap();
        println!("{r}");
        assert!(r.connections >= 2000, "{r}");
        assert_eq!(r.run.broken() + r.run.new_failed, 0, "{r}");
        assert!(r.run.new_judged >= 2000, "{r}");
        assert_eq!(r.split_before_change, 0, "{r}");
        assert_eq!(r.moved_more_per_change, 0, "{r}");
        assert_eq!(r.returned, 0, "{r}");
        assert!(r.flapped_in_rollout <= r.clients / 10, "{r}");
        // Backend 0 held about a quarter of the clients, and they all moved.
        assert!(r.moved_once + r.moved_more >= r.clients / 8, "{r}");
        assert!(r.kept_one >= r.clients / 3, "{r}");
        if plan == Plan::Replace {
            assert_eq!(
                r.moved_more, 0,
                "one change moves a client once at most\n{r}"
            );
        }
        let five = affinity(AffinityParams {
            plan,
            sticky: false,
            ..AffinityParams::default()
        })
        .unwrap();
        println!("{five}");
        assert_eq!(five.run.broken() + five.run.new_failed, 0, "{five}");
        assert!(five.kept_one < r.kept_one / 4, "{five}\n{r}");
        assert!(five.split_before_change > five.clients / 2, "{five}");
    }
}

/// With every director swapping at once (no rollout window), not even one client goes back
/// and forth.
#[test]
fn sticky_clients_never_flap_when_directors_swap_together() {
    use rondo_sim::{affinity, AffinityParams, Params};
    let d = AffinityParams::default();
    let r = affinity(AffinityParams {
        base: Params {
            stagger_ms: 0,
            ..d.base
        },
        ..d
    })
    .unwrap();
    println!("{r}");
    assert_eq!(
        (r.returned, r.flapped_in_rollout, r.moved_more_per_change),
        (0, 0, 0),
        "{r}"
    );
    assert!(r.moved_once >= r.clients / 8, "{r}");
}
