//! `rondo fleet diff [FILE]` and `rondo fleet history`: the desired document's revisions
//! and what each one moves.

use std::path::Path;

use serde_json::json;

use super::compare::{self, table_changes};
use super::doc::Doc;
use super::{connect, doc_name, ConnArgs, Fail, Outcome};
use crate::fleet::docs::DESIRED;

/// `rondo fleet diff [FILE]`.
pub fn diff(conn: &ConnArgs, file: Option<&Path>, replace: bool, as_json: bool) -> Outcome {
    let mut store = connect(conn)?;
    let (a, b, label, notes) = match file {
        Some(f) => {
            let s = store.settings().max_document_bytes as u64;
            let what = f.display().to_string();
            let bytes = crate::sys::file::read_bounded(f, s, "a desired document")
                .map_err(|e| Fail::Failed(e.to_string()))?;
            let b = Doc::parse(bytes, &what).map_err(Fail::Failed)?;
            let cur = store
                .get_document(DESIRED)
                .map_err(|e| Fail::Failed(e.to_string()))?
                .ok_or_else(|| {
                    Fail::Failed(format!(
                        "no desired document at {}/{DESIRED} to compare with",
                        store.settings().prefix
                    ))
                })?;
            let name = doc_name(&store, DESIRED, cur.mod_revision);
            let a = Doc::parse(cur.bytes, &name).map_err(Fail::Failed)?;
            // As `push` would write it: the current overrides carried over unless told.
            let (b, notes) = if replace {
                (b, vec![])
            } else {
                super::write::carry(b, &a, cur.mod_revision, s, &what)?
            };
            (
                a,
                b,
                format!("revision {} -> {what}", cur.mod_revision),
                notes,
            )
        }
        None => {
            let h = store
                .history(DESIRED, 2)
                .map_err(|e| Fail::Failed(e.to_string()))?;
            match h.as_slice() {
                [new, old] => {
                    let a = Doc::parse(
                        old.bytes.clone(),
                        &doc_name(&store, DESIRED, old.mod_revision),
                    )
                    .map_err(Fail::Failed)?;
                    let b = Doc::parse(
                        new.bytes.clone(),
                        &doc_name(&store, DESIRED, new.mod_revision),
                    )
                    .map_err(Fail::Failed)?;
                    (
                        a,
                        b,
                        format!("revision {} -> {}", old.mod_revision, new.mod_revision),
                        vec![],
                    )
                }
                [only] => {
                    println!(
                        "revision {} is the first (or the history before it is compacted): nothing to compare with",
                        only.mod_revision
                    );
                    return Ok(true);
                }
                _ => {
                    return Err(Fail::Failed(format!(
                        "no desired document at {}/{DESIRED}",
                        store.settings().prefix
                    )))
                }
            }
        }
    };
    if as_json {
        let v = json!({"compare": label, "tables": table_changes(&a, &b),
            "overrides": compare::override_changes(&a.overrides(), &b.overrides()),
            "identical": a.bytes == b.bytes, "carried": notes});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("{label}:");
        for n in &notes {
            println!("{n}");
        }
        print!("{}", compare::render(&a, &b));
    }
    Ok(true)
}

/// `rondo fleet history [--max N]`.
pub fn history(conn: &ConnArgs, max: usize, as_json: bool) -> Outcome {
    let mut store = connect(conn)?;
    // One more than shown, so the oldest shown has a summary too.
    let h = store
        .history(DESIRED, max.saturating_add(1))
        .map_err(|e| Fail::Failed(e.to_string()))?;
    if h.is_empty() {
        println!(
            "no desired document at {}/{DESIRED}",
            store.settings().prefix
        );
        return Ok(true);
    }
    let docs: Vec<Result<Doc, String>> = h
        .iter()
        .map(|d| Doc::parse(d.bytes.clone(), &doc_name(&store, DESIRED, d.mod_revision)))
        .collect();
    let mut rows = Vec::new();
    for (i, d) in h.iter().enumerate().take(max) {
        let (tables, overrides, summary) = match (&docs[i], docs.get(i + 1)) {
            (Err(e), _) => (0, 0, format!("INVALID: {e}")),
            (Ok(doc), prev) => {
                let s = match prev {
                    Some(Ok(p)) => compare::summary(p, doc),
                    Some(Err(_)) => "after an invalid revision".to_string(),
                    None if d.version <= 1 => "created".to_string(),
                    None if i + 1 < max => "(earlier history compacted)".to_string(),
                    None => String::new(),
                };
                (doc.desired.specs.len(), doc.desired.overrides.len(), s)
            }
        };
        rows.push((d.mod_revision, d.bytes.len(), tables, overrides, summary));
    }
    if as_json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(rev, size, t, o, s)| json!({"revision": rev, "size": size, "tables": t, "overrides": o, "summary": s}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(true);
    }
    // etcd keeps no time per revision: none is shown.
    println!(
        "{:>9} {:>8} {:>6} {:>9}  CHANGE",
        "REVISION", "BYTES", "TABLES", "OVERRIDES"
    );
    for (rev, size, t, o, s) in rows {
        println!("{rev:>9} {size:>8} {t:>6} {o:>9}  {s}");
    }
    Ok(true)
}
