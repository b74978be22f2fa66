//! The fleet simulation (issue 7, item 3): every scenario keeps every connection that did
//! not live on a killed backend, and new connections succeed throughout; with second chance
//! off, the same harness sees connections break.

use rondo::sim::{run, Params, Report, Scenario};

fn check(s: Scenario) -> Report {
    let r = match run(s, Params::default()) {
        Ok(r) => r,
        Err(e) => panic!("{}: {e}", s.name()),
    };
    println!("{r}");
    assert_eq!(r.broken(), 0, "{}: connections broke\n{r}", s.name());
    assert_eq!(r.new_failed, 0, "{}: new connections failed\n{r}", s.name());
    assert!(r.new_judged >= 100, "{}: too few new connections\n{r}", s.name());
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
    assert_eq!(r.long_alive, r.long_opened, "{r}");
}
