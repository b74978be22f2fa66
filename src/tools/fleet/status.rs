//! `rondo fleet status` and `rondo fleet wait`: the directors' reports under `directors/`
//! against the desired document's revision.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;

use super::doc::Doc;
use super::{connect, doc_name, now_ms, ConnArgs, Fail, Outcome};
use crate::fleet::docs::{DirectorStatus, HealthDoc, DESIRED, HEALTH, STATUS_DIR, STATUS_REFRESH};
use crate::fleet::etcd::EtcdStore;

/// One key under `directors/`: its report, or why it cannot be read.
pub struct Report {
    pub key: String,
    pub status: Result<DirectorStatus, String>,
}

pub fn directors(store: &mut EtcdStore) -> Result<Vec<Report>, Fail> {
    let list = store
        .list(STATUS_DIR)
        .map_err(|e| Fail::Failed(e.to_string()))?;
    let prefix = store.settings().prefix.clone();
    Ok(list
        .into_iter()
        .map(|(key, d)| Report {
            status: serde_json::from_slice::<DirectorStatus>(&d.bytes).map_err(|e| {
                format!(
                    "{prefix}/{STATUS_DIR}/{key}@{}: not a director status: {e}",
                    d.mod_revision
                )
            }),
            key,
        })
        .collect())
}

/// The desired document's revision and whether it parses and builds.
pub struct DesiredState {
    pub revision: i64,
    pub error: Option<String>,
}

pub fn desired(store: &mut EtcdStore) -> Result<DesiredState, Fail> {
    match store.get_document(DESIRED) {
        Ok(None) => Ok(DesiredState {
            revision: 0,
            error: Some(format!(
                "no desired document at {}/{DESIRED}: push one (rondo fleet push FILE)",
                store.settings().prefix
            )),
        }),
        Ok(Some(d)) => {
            let what = doc_name(store, DESIRED, d.mod_revision);
            Ok(DesiredState {
                revision: d.mod_revision,
                error: Doc::parse(d.bytes, &what).err(),
            })
        }
        // A document too large to read is a state to report, not a reason to stop.
        Err(e @ crate::fleet::etcd::EtcdError::TooLarge { .. }) => Ok(DesiredState {
            revision: -1,
            error: Some(e.to_string()),
        }),
        Err(e) => Err(Fail::Failed(e.to_string())),
    }
}

/// What is wrong with director `s` against revision `rev` (None: it runs `rev` or later).
fn problem(s: &DirectorStatus, rev: i64) -> Option<String> {
    match &s.refused {
        Some(r) if r.revision >= rev && rev > 0 => {
            return Some(format!(
                "{} refused revision {}: {}",
                s.name, r.revision, r.error
            ))
        }
        _ => {}
    }
    (s.applied_revision < rev).then(|| {
        format!(
            "{} is behind (applied {} < desired {rev})",
            s.name, s.applied_revision
        )
    })
}

fn age(ms: u64, now: u64) -> String {
    let a = now.saturating_sub(ms);
    if a < 10_000 {
        format!("{:.1}s", a as f64 / 1000.0)
    } else {
        format!("{}s", a / 1000)
    }
}

/// Per table: fingerprint -> directors.
fn fingerprints(ok: &[&DirectorStatus]) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut m: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for s in ok {
        for t in &s.tables {
            m.entry(t.name.clone())
                .or_default()
                .entry(t.fingerprint.clone())
                .or_default()
                .push(s.name.clone());
        }
    }
    // A director without the table counts as a fingerprint of its own.
    for (table, fps) in m.iter_mut() {
        let missing: Vec<String> = ok
            .iter()
            .filter(|s| !s.tables.iter().any(|t| &t.name == table))
            .map(|s| s.name.clone())
            .collect();
        if !missing.is_empty() {
            fps.insert("(no such table)".into(), missing);
        }
    }
    m
}

pub fn status(conn: &ConnArgs, as_json: bool) -> Outcome {
    let mut store = connect(conn)?;
    let d = desired(&mut store)?;
    let reports = directors(&mut store)?;
    let health = store.get_document(HEALTH);
    let now = now_ms();
    let mut problems: Vec<String> = Vec::new();
    if let Some(e) = &d.error {
        problems.push(format!("desired document: {e}"));
    }
    let ok: Vec<&DirectorStatus> = reports
        .iter()
        .filter_map(|r| r.status.as_ref().ok())
        .collect();
    for r in &reports {
        if let Err(e) = &r.status {
            problems.push(e.clone());
        }
    }
    for s in &ok {
        if let Some(p) = problem(s, d.revision) {
            problems.push(p);
        }
    }
    let fps = fingerprints(&ok);
    for (table, groups) in &fps {
        if groups.len() > 1 {
            let who: Vec<String> = groups
                .iter()
                .map(|(fp, names)| format!("{fp}: {}", names.join(",")))
                .collect();
            problems.push(format!(
                "table {table:?} fingerprints DIFFERENT ({})",
                who.join("; ")
            ));
        }
    }
    let health: Option<Result<HealthDoc, String>> = match health {
        Ok(None) => None,
        Ok(Some(h)) => Some(serde_json::from_slice(&h.bytes).map_err(|e| {
            format!(
                "{}: not a health document: {e}",
                doc_name(&store, HEALTH, h.mod_revision)
            )
        })),
        Err(e) => Some(Err(e.to_string())),
    };
    if as_json {
        let dirs: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| match &r.status {
                Ok(s) => {
                    json!({"key": r.key, "status": s, "age_ms": now.saturating_sub(s.updated_ms),
                    "problem": problem(s, d.revision)})
                }
                Err(e) => json!({"key": r.key, "error": e}),
            })
            .collect();
        let tables: Vec<serde_json::Value> = fps
            .iter()
            .map(|(t, g)| json!({"table": t, "equal": g.len() == 1, "fingerprints": g}))
            .collect();
        let h = match &health {
            None => serde_json::Value::Null,
            Some(Ok(h)) => {
                json!({"leader": h.leader, "term": h.term, "desired_revision": h.desired_revision,
                "age_ms": now.saturating_sub(h.round_ms), "backends": h.backends.len()})
            }
            Some(Err(e)) => json!({"error": e}),
        };
        let v = json!({"prefix": store.settings().prefix, "desired": {"revision": d.revision, "error": d.error},
            "directors": dirs, "tables": tables, "health": h, "ok": problems.is_empty(), "problems": problems});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(problems.is_empty());
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "fleet {}: desired revision {}{}",
        store.settings().prefix,
        d.revision,
        match &d.error {
            Some(e) => format!(" INVALID: {e}"),
            None => String::new(),
        }
    );
    let _ = writeln!(
        o,
        "{:<20} {:<16} {:>8} {:>8} {:<6} {:<11} {:>6}  {:<24} STATE",
        "DIRECTOR", "HOST", "APPLIED", "SEEN", "SOURCE", "FORWARDING", "AGE", "PORTS"
    );
    for r in &reports {
        match &r.status {
            Err(e) => {
                let _ = writeln!(o, "{:<20} UNREADABLE: {e}", r.key);
            }
            Ok(s) => {
                let ports: Vec<String> = s
                    .ports
                    .iter()
                    .map(|p| format!("{}{}", p.spec, if p.link_up { "" } else { "(down)" }))
                    .collect();
                let mut state = match problem(s, d.revision) {
                    None => "ok".to_string(),
                    Some(p) => p.strip_prefix(&s.name).unwrap_or(&p).trim().to_string(),
                };
                if let Some(r) = &s.refused {
                    if !state.starts_with("refused") {
                        let _ = write!(state, "; refused {}: {}", r.revision, r.error);
                    }
                }
                let idle = now.saturating_sub(s.updated_ms);
                if idle > 3 * STATUS_REFRESH.as_millis() as u64 {
                    let _ = write!(state, "; stale: no report for {}s", idle / 1000);
                }
                if let Some(e) = &s.last_error {
                    let _ = write!(state, "; last error: {e}");
                }
                let _ = writeln!(
                    o,
                    "{:<20} {:<16} {:>8} {:>8} {:<6} {:<11} {:>6}  {:<24} {}",
                    s.name,
                    s.host,
                    s.applied_revision,
                    s.seen_revision,
                    s.source,
                    s.forwarding,
                    age(s.updated_ms, now),
                    ports.join(","),
                    state
                );
            }
        }
    }
    if reports.is_empty() {
        let _ = writeln!(
            o,
            "(no director reports under {}/{STATUS_DIR}/)",
            store.settings().prefix
        );
    }
    for (t, g) in &fps {
        if g.len() == 1 {
            let (fp, names) = g.iter().next().expect("one group");
            let _ = writeln!(
                o,
                "table {t:?}: fingerprints equal ({fp} on {} directors)",
                names.len()
            );
        } else {
            let _ = writeln!(o, "table {t:?}: fingerprints DIFFERENT:");
            for (fp, names) in g {
                let _ = writeln!(o, "  {fp}: {}", names.join(", "));
            }
        }
    }
    match &health {
        None => {
            let _ = writeln!(
                o,
                "health: no health document (no fleet checker has written)"
            );
        }
        Some(Ok(h)) => {
            let _ = writeln!(
                o,
                "health: leader {} term {}, round {} ago, {} backends, checked desired revision {}",
                h.leader,
                h.term,
                age(h.round_ms, now),
                h.backends.len(),
                h.desired_revision
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(o, "health: {e}");
        }
    }
    if problems.is_empty() {
        let _ = writeln!(
            o,
            "OK: {} director(s) run revision {}, fingerprints equal",
            ok.len(),
            d.revision
        );
    } else {
        let _ = writeln!(o, "NOT OK: {}", problems.join("; "));
    }
    print!("{o}");
    Ok(problems.is_empty())
}

/// `rondo fleet wait`: every live director applied `revision` (or refused it).
pub fn wait(
    conn: &ConnArgs,
    revision: Option<i64>,
    timeout: Duration,
    min_directors: usize,
) -> Outcome {
    let started = Instant::now();
    let mut store = connect(conn)?;
    let rev = match revision {
        Some(r) if r > 0 => r,
        Some(r) => {
            return Err(Fail::Usage(format!(
                "--revision {r}: expected a revision >= 1"
            )))
        }
        None => {
            let d = desired(&mut store)?;
            if d.revision <= 0 {
                return Err(Fail::Failed(d.error.unwrap_or_default()));
            }
            d.revision
        }
    };
    println!("waiting up to {timeout:?} for every director to apply revision {rev}");
    let mut last = String::new();
    loop {
        // A failed read (etcd restarting) is retried until the deadline.
        let reports = match directors(&mut store) {
            Ok(r) => r,
            Err(Fail::Failed(e)) | Err(Fail::Usage(e)) => {
                if started.elapsed() >= timeout {
                    println!("timeout after {:.1}s: {e}", started.elapsed().as_secs_f64());
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let mut applied = Vec::new();
        let mut behind = Vec::new();
        let mut refused = Vec::new();
        for r in &reports {
            match &r.status {
                Err(e) => behind.push(format!("{} (unreadable: {e})", r.key)),
                Ok(s) => match &s.refused {
                    Some(x) if x.revision >= rev && s.applied_revision < rev => refused.push(
                        format!("{} refused revision {}: {}", s.name, x.revision, x.error),
                    ),
                    _ if s.applied_revision >= rev => applied.push(s.name.clone()),
                    _ => behind.push(format!("{} (applied {})", s.name, s.applied_revision)),
                },
            }
        }
        let line = format!(
            "{}/{} applied{}{}",
            applied.len(),
            reports.len(),
            if behind.is_empty() {
                String::new()
            } else {
                format!("; waiting for {}", behind.join(", "))
            },
            if refused.is_empty() {
                String::new()
            } else {
                format!("; {}", refused.join("; "))
            },
        );
        if line != last {
            println!("{:>6.1}s {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        let enough = reports.len() >= min_directors;
        if enough && behind.is_empty() {
            if refused.is_empty() {
                println!(
                    "all {} director(s) applied revision {rev} in {:.2}s",
                    applied.len(),
                    started.elapsed().as_secs_f64()
                );
                return Ok(true);
            }
            println!("refused: {}", refused.join("; "));
            return Ok(false);
        }
        if started.elapsed() >= timeout {
            let mut who = behind.clone();
            who.extend(refused.iter().cloned());
            if !enough {
                who.push(format!(
                    "{} director(s) report, {min_directors} expected",
                    reports.len()
                ));
            }
            println!(
                "timeout after {:.1}s waiting for revision {rev}: {}",
                started.elapsed().as_secs_f64(),
                who.join(", ")
            );
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
