//! The commands that write the desired document: `push`, `set backend`, `clear`,
//! `rollback`. Every write is a compare-and-swap on the revision read (or the one given),
//! so two operators never overwrite each other: the loser is told and nothing is written.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use super::compare;
use super::doc::{find_table, parse_change, refusal, Doc, Overrides};
use super::edit::write_overrides;
use super::{connect, doc_name, settings, ConnArgs, Fail, Outcome};
use crate::config::desired::check_rule;
use crate::fleet::docs::DESIRED;
use crate::fleet::etcd::{Document, EtcdError, EtcdStore};
use crate::runtime::overrides::Change;
use crate::table::diff::diff;

/// Write `bytes` if the document is still at `expected`. `Ok(None)`: lost the race (said so).
fn cas(store: &mut EtcdStore, bytes: &[u8], expected: i64) -> Result<Option<i64>, Fail> {
    match store.put_document_if(DESIRED, bytes, expected) {
        Ok(rev) => Ok(Some(rev)),
        Err(EtcdError::Conflict { current, .. }) => {
            println!(
                "lost: desired is now revision {current} (expected {expected}); nothing written"
            );
            Ok(None)
        }
        Err(e) => Err(Fail::Failed(e.to_string())),
    }
}

/// The current document: `None` when there is none; an error names the key.
fn current(store: &mut EtcdStore) -> Result<Option<Document>, Fail> {
    store
        .get_document(DESIRED)
        .map_err(|e| Fail::Failed(e.to_string()))
}

/// The current document, parsed (it must exist and be valid to be edited).
fn current_doc(store: &mut EtcdStore) -> Result<(Document, Doc), Fail> {
    let Some(d) = current(store)? else {
        return Err(Fail::Failed(format!(
            "no desired document at {}/{DESIRED}: push one first (rondo fleet push FILE)",
            store.settings().prefix
        )));
    };
    let what = doc_name(store, DESIRED, d.mod_revision);
    let doc = Doc::parse(d.bytes.clone(), &what).map_err(|e| {
        Fail::Failed(format!(
            "the current desired document is invalid, so it cannot be edited: {e}; push a fixed one"
        ))
    })?;
    Ok((d, doc))
}

/// `doc` (a file about to be pushed) with `cur`'s overrides carried over when it has
/// none: in its own format, dropping (and naming) any whose backend is gone. Returns the
/// document to write and what was carried.
pub fn carry(
    doc: Doc,
    cur: &Doc,
    cur_rev: i64,
    limit: u64,
    what: &str,
) -> Result<(Doc, Vec<String>), Fail> {
    let mut notes = Vec::new();
    if !doc.desired.overrides.is_empty() || cur.desired.overrides.is_empty() {
        return Ok((doc, notes));
    }
    let mut kept = Vec::new();
    for r in &cur.desired.overrides {
        match check_rule(&doc.desired.specs, &kept, r) {
            Ok(()) => kept.push(r.clone()),
            Err(why) => notes.push(format!("override {} {} dropped: {why}", r.table, r.ip)),
        }
    }
    if !kept.is_empty() {
        let list: Vec<String> = Overrides::from_rules(&kept)
            .set
            .iter()
            .map(|((t, ip), o)| format!("{t} {ip} ({})", o.describe()))
            .collect();
        notes.push(format!(
            "carried {} override(s) over from revision {cur_rev} (use --replace-overrides to drop them): {}",
            kept.len(),
            list.join("; ")
        ));
    }
    let bytes = write_overrides(&doc.bytes, doc.desired.format, &kept)
        .map_err(|e| Fail::Failed(format!("{what}: carrying the overrides over: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(Fail::Failed(format!(
            "refused, nothing written: {what} with the carried overrides is {} bytes, over max_document_bytes {limit}",
            bytes.len()
        )));
    }
    let doc = Doc::parse(bytes, &format!("{what} (with the carried overrides)"))
        .map_err(|e| Fail::Failed(format!("refused, nothing written: {e}")))?;
    Ok((doc, notes))
}

/// `rondo fleet push FILE`.
pub fn push(conn: &ConnArgs, file: &Path, expect: Option<i64>, replace: bool) -> Outcome {
    let s = settings(conn)?;
    let limit = s.max_document_bytes as u64;
    let what = file.display().to_string();
    // Validated before anything reaches etcd: size, parse, every table built.
    let bytes =
        crate::sys::file::read_bounded(file, limit, "a desired document (max_document_bytes)")
            .map_err(|e| Fail::Failed(format!("refused, nothing written: {e}")))?;
    let mut doc = Doc::parse(bytes, &what)
        .map_err(|e| Fail::Failed(format!("refused, nothing written: {e}")))?;
    let mut store = connect(conn)?;
    let cur = current(&mut store)?;
    let cur_rev = cur.as_ref().map_or(0, |d| d.mod_revision);
    let expected = expect.unwrap_or(cur_rev);
    let cur_doc = cur
        .as_ref()
        .and_then(|d| Doc::parse(d.bytes.clone(), &doc_name(&store, DESIRED, d.mod_revision)).ok());
    let mut notes = Vec::new();
    if !replace {
        match (&cur, &cur_doc) {
            (Some(_), None) if doc.desired.overrides.is_empty() => notes.push(format!(
                "the current document (revision {cur_rev}) is invalid: no overrides carried over"
            )),
            (_, Some(c)) => {
                let (carried, n) = carry(doc, c, cur_rev, limit, &what)?;
                doc = carried;
                notes.extend(n);
            }
            _ => {}
        }
    }
    if let Some(c) = &cur {
        if c.bytes == doc.bytes && expect.is_none_or(|e| e == cur_rev) {
            println!("unchanged: revision {cur_rev} already holds this document; nothing written");
            return Ok(true);
        }
    }
    let Some(rev) = cas(&mut store, &doc.bytes, expected)? else {
        return Ok(false);
    };
    let mut o = format!(
        "pushed {what} ({}, {} table(s), {} override(s)) as revision {rev} (was {})\n",
        doc.desired.format.as_str(),
        doc.desired.specs.len(),
        doc.desired.overrides.len(),
        if cur_rev == 0 {
            "none".to_string()
        } else {
            cur_rev.to_string()
        }
    );
    for n in notes {
        let _ = writeln!(o, "{n}");
    }
    if let Some(c) = &cur_doc {
        let _ = writeln!(o, "change: {}", compare::summary(c, &doc));
    }
    print!("{o}");
    Ok(true)
}

/// What `set`/`clear` change, applied to the current document with CAS.
struct Edit<'a> {
    /// (table, backend, changes) for `set backend`/`clear backend`; `None`: clear all.
    backend: Option<(&'a str, IpAddr, Vec<Change>)>,
    force: bool,
    dry_run: bool,
}

fn flags(words: &[String]) -> Result<(Vec<&str>, bool, bool), Fail> {
    let mut rest = Vec::new();
    let (mut force, mut dry) = (false, false);
    for w in words {
        match w.as_str() {
            "force" | "--force" => force = true,
            "dry-run" | "--dry-run" => dry = true,
            other => rest.push(other),
        }
    }
    Ok((rest, force, dry))
}

fn parse_ip(ip: &str) -> Result<IpAddr, Fail> {
    ip.parse()
        .map_err(|_| Fail::Usage(format!("expected a backend IP address, got {ip:?}")))
}

/// `rondo fleet set backend TABLE IP CHANGE... [force] [dry-run]`.
pub fn set(conn: &ConnArgs, what: &str, table: &str, ip: &str, words: &[String]) -> Outcome {
    if what != "backend" {
        return Err(Fail::Usage(format!(
            "expected `set backend TABLE IP state=S|weight=W|health=up|down|auto [force] [dry-run]`, got `set {what}`"
        )));
    }
    let ip = parse_ip(ip)?;
    let (rest, force, dry_run) = flags(words)?;
    let changes = rest
        .iter()
        .map(|w| parse_change(w))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Fail::Usage)?;
    if changes.is_empty() {
        return Err(Fail::Usage(
            "nothing to set: give state=S, weight=W or health=up|down|auto".into(),
        ));
    }
    edit(
        conn,
        Edit {
            backend: Some((table, ip, changes)),
            force,
            dry_run,
        },
    )
}

/// `rondo fleet clear backend TABLE IP [force] [dry-run]` / `clear all [dry-run]`.
pub fn clear(conn: &ConnArgs, what: &str, words: &[String]) -> Outcome {
    let (rest, force, dry_run) = flags(words)?;
    match (what, rest.as_slice()) {
        ("all", []) => edit(
            conn,
            Edit {
                backend: None,
                force,
                dry_run,
            },
        ),
        ("backend", [table, ip]) => edit(
            conn,
            Edit {
                backend: Some((table, parse_ip(ip)?, vec![Change::Clear])),
                force,
                dry_run,
            },
        ),
        _ => Err(Fail::Usage(
            "expected `clear backend TABLE IP [force] [dry-run]` or `clear all [dry-run]`".into(),
        )),
    }
}

fn edit(conn: &ConnArgs, e: Edit) -> Outcome {
    let mut store = connect(conn)?;
    let (cur, doc) = current_doc(&mut store)?;
    let before = doc.overrides();
    let (next, label) = match &e.backend {
        None => (Overrides::default(), "every override cleared".to_string()),
        Some((table, ip, changes)) => {
            let mut next = before.clone();
            for c in changes {
                next = next.with(&doc.base, table, *ip, *c).map_err(Fail::Failed)?;
            }
            let words: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
            (
                next,
                format!("backend {ip} of table {table:?}: {}", words.join(", ")),
            )
        }
    };
    let after = next.apply(&doc.base).map_err(Fail::Failed)?;
    let why = match &e.backend {
        Some((table, ip, changes)) => refusal(find_table(&after, table)?, *ip, changes),
        None => None,
    };
    let mut moves = String::new();
    for (a, b) in doc.effective.iter().zip(&after) {
        if a != b
            || e.backend
                .as_ref()
                .is_some_and(|(t, _, _)| *t == a.spec.name)
        {
            let d = diff(a, b);
            let _ = writeln!(moves, "{}", d.summary(&a.spec.name));
            moves.push_str(&d.share_lines(true));
        }
    }
    if e.dry_run {
        print!("dry run, nothing written: {label}\n{moves}");
        if let Some(w) = why.filter(|_| !e.force) {
            println!("would be refused without `force`: {w}");
        }
        return Ok(true);
    }
    if let Some(w) = why.filter(|_| !e.force) {
        println!("refused, nothing written: {w}");
        return Ok(false);
    }
    if next == before {
        println!(
            "unchanged: revision {} already says that; nothing written",
            cur.mod_revision
        );
        return Ok(true);
    }
    let bytes = write_overrides(&cur.bytes, doc.desired.format, &next.to_rules()).map_err(|m| {
        Fail::Failed(format!(
            "{}: {m}",
            doc_name(&store, DESIRED, cur.mod_revision)
        ))
    })?;
    // The edited document must still be one every director can build.
    Doc::parse(bytes.clone(), "the edited document").map_err(Fail::Failed)?;
    let Some(rev) = cas(&mut store, &bytes, cur.mod_revision)? else {
        return Ok(false);
    };
    print!(
        "revision {rev} written (was {}): {label}\n{moves}",
        cur.mod_revision
    );
    Ok(true)
}

/// `rondo fleet rollback REV`: revision REV's bytes written as a new revision.
pub fn rollback(conn: &ConnArgs, rev: i64) -> Outcome {
    if rev <= 0 {
        return Err(Fail::Usage(format!(
            "rollback {rev}: expected a revision >= 1"
        )));
    }
    let mut store = connect(conn)?;
    let prefix = store.settings().prefix.clone();
    let old = match store.get_document_at(DESIRED, rev) {
        Ok(Some(d)) => d,
        Ok(None) => {
            return Err(Fail::Failed(format!(
                "{prefix}/{DESIRED} did not exist at revision {rev}; see rondo fleet history"
            )))
        }
        Err(e) => return Err(Fail::Failed(e.to_string())),
    };
    if old.mod_revision != rev {
        return Err(Fail::Failed(format!(
            "revision {rev} did not write {prefix}/{DESIRED} (the document then was revision {}); see rondo fleet history",
            old.mod_revision
        )));
    }
    let old_doc = Doc::parse(old.bytes.clone(), &doc_name(&store, DESIRED, rev)).map_err(|e| {
        Fail::Failed(format!(
            "refused, nothing written: revision {rev} does not validate: {e}"
        ))
    })?;
    let cur = current(&mut store)?;
    let cur_rev = cur.as_ref().map_or(0, |d| d.mod_revision);
    if cur.as_ref().is_some_and(|c| c.bytes == old.bytes) {
        println!("unchanged: revision {cur_rev} already holds revision {rev}'s document; nothing written");
        return Ok(true);
    }
    let Some(new) = cas(&mut store, &old.bytes, cur_rev)? else {
        return Ok(false);
    };
    println!("rolled back: revision {rev}'s document written as revision {new} (was {cur_rev})");
    if let Some(c) = cur.and_then(|c| Doc::parse(c.bytes, "current").ok()) {
        println!("change: {}", compare::summary(&c, &old_doc));
    }
    Ok(true)
}
