//! The floor plan of the source tree: imports run one way. Inside `src/datapath/` the
//! order is `pipeline -> express -> {encap, classify} -> snapshot -> leaves`; `src/hash/`
//! and `src/sys/` never both use each other, and no modules of either import in a circle;
//! `src/quic_lb/` (the QUIC-LB codec) imports nothing else of Rondo.
//!
//! Read from the source text (module paths only, comments left out): a reference
//! `super::x` (at a file's top level), `crate::datapath::x`, `crate::hash::x` or
//! `crate::sys::x` is an edge from the file's module to `x` (or to the directory's
//! `mod.rs` when `x` is not one of its files); in a `mod.rs`, `use x::` and `pub use x::`
//! name its children.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module `group::name` -> the modules it references.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The groups (directories under `src/`) whose modules the test reads.
const GROUPS: [&str; 3] = ["datapath", "hash", "sys"];

/// The `.rs` files of `src/<group>/` and below, as (module name, text); a file in a
/// subdirectory is named by its path (`drivers/x.rs` -> `drivers::x`, `x/mod.rs` -> `x`).
fn modules(group: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(group);
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(&root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.len() > 1 && parts.last().is_some_and(|l| l == "mod") {
                    parts.pop();
                }
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((parts.join("::"), text));
            }
        }
    }
    out.sort();
    out
}

/// The first identifier of `s` (letters, digits, `_`).
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level module of `group` that `name` (the segment after `crate::group::` or a
/// top-level `super::`) belongs to: one of its files, else its `mod.rs`.
fn target(group: &str, files: &BTreeSet<String>, name: &str) -> String {
    let first = name.split("::").next().unwrap_or(name);
    if files.contains(first) && first != "mod" {
        format!("{group}::{first}")
    } else {
        format!("{group}::mod")
    }
}

/// Add the edges of every module of every group to `g`.
fn graph() -> Graph {
    let mut g = Graph::new();
    let all: Vec<(&str, Vec<(String, String)>)> =
        GROUPS.iter().map(|grp| (*grp, modules(grp))).collect();
    let tops: BTreeMap<&str, BTreeSet<String>> = all
        .iter()
        .map(|(grp, mods)| {
            let names = mods
                .iter()
                .map(|(m, _)| m.split("::").next().unwrap().to_string())
                .collect();
            (*grp, names)
        })
        .collect();
    for (grp, mods) in &all {
        for (name, text) in mods {
            let from = format!("{grp}::{name}");
            let edges = g.entry(from.clone()).or_default();
            // Inline modules (`mod tests {`) open at these brace depths; `super::` inside
            // one names the file (or an outer inline module), not a sibling.
            let mut inline: Vec<i32> = Vec::new();
            let mut depth = 0i32;
            for line in text.lines() {
                let code = match line.find("//") {
                    Some(i) => &line[..i],
                    None => line,
                };
                let t = code.trim_start();
                let t = t.strip_prefix("pub(crate) ").unwrap_or(t);
                let t = t.strip_prefix("pub ").unwrap_or(t);
                if t.starts_with("mod ") && t.trim_end().ends_with('{') {
                    inline.push(depth);
                }
                // crate::<group>::x, from anywhere in the file.
                for (other, files) in &tops {
                    let pat = format!("crate::{other}::");
                    for (i, _) in code.match_indices(&pat) {
                        let rest = &code[i + pat.len()..];
                        let to = target(other, files, ident(rest));
                        if to != from {
                            edges.insert(to);
                        }
                    }
                    // `crate::sys` alone (a function of sys/mod.rs, e.g. `crate::sys::prefetch`
                    // is caught above; `use crate::sys;` here).
                    let bare = format!("crate::{other};");
                    if code.contains(&bare) && format!("{other}::mod") != from {
                        edges.insert(format!("{other}::mod"));
                    }
                }
                // super::x at the file's top level (in mod.rs: the crate root, not ours).
                let files = &tops[grp];
                let levels = inline.len();
                for (i, _) in code.match_indices("super::") {
                    if i >= 7 && code[..i].ends_with("super::") {
                        continue; // counted at the first `super::` of the path
                    }
                    let mut rest = &code[i..];
                    let mut supers = 0;
                    while let Some(r) = rest.strip_prefix("super::") {
                        rest = r;
                        supers += 1;
                    }
                    if supers == levels + 1 && name != "mod" && !name.contains("::") {
                        let id = ident(rest);
                        if !id.is_empty() {
                            let to = target(grp, files, id);
                            if to != from {
                                edges.insert(to);
                            }
                        }
                    }
                }
                // In mod.rs: `use x::...` and `pub use x::...` of its own files.
                if name == "mod" && levels == 0 {
                    let u = t
                        .strip_prefix("use ")
                        .map(|r| r.strip_prefix("self::").unwrap_or(r));
                    if let Some(r) = u {
                        let id = ident(r);
                        if files.contains(id) && id != "mod" {
                            edges.insert(format!("{grp}::{id}"));
                        }
                    }
                }
                for c in code.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                while inline.last().is_some_and(|&d| depth <= d) {
                    inline.pop();
                }
            }
        }
    }
    g
}

/// A circle of `g`, if it has one (as the modules along it).
fn circle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = path.iter().position(|p| p == n).unwrap_or(0);
                let mut c = path[at..].to_vec();
                c.push(n.to_string());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, m, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if let Some(c) = visit(g, n, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

fn edge(g: &Graph, from: &str, to: &str) -> bool {
    g.get(from).is_some_and(|e| e.contains(to))
}

#[test]
fn the_circle_finder_finds_circles() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(circle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    let c = circle(&g).expect("a -> b -> c -> a");
    assert_eq!(c.first(), c.last());
    assert_eq!(c.len(), 4);
}

#[test]
fn the_reader_sees_the_modules_and_their_imports() {
    let g = graph();
    for m in [
        "datapath::mod",
        "datapath::pipeline",
        "datapath::express",
        "datapath::classify",
        "datapath::encap",
        "datapath::snapshot",
        "datapath::buf",
        "datapath::counters",
        "datapath::burst",
        "datapath::flow",
        "datapath::outer",
        "datapath::rows",
        "hash::mod",
        "hash::lanes",
        "hash::simd",
        "hash::batch",
        "sys::mod",
    ] {
        assert!(g.contains_key(m), "module {m} not found");
    }
    // Edges the code is known to have: the reader is not blind.
    for (a, b) in [
        ("datapath::pipeline", "datapath::express"),
        ("datapath::express", "datapath::classify"),
        ("datapath::encap", "datapath::snapshot"),
        ("datapath::classify", "datapath::snapshot"),
        ("datapath::snapshot", "datapath::rows"),
        ("datapath::rows", "datapath::outer"),
        ("datapath::mod", "datapath::pipeline"),
        ("datapath::express", "hash::batch"),
        ("datapath::encap", "sys::mod"),
        ("hash::batch", "hash::simd"),
        ("hash::simd", "hash::lanes"),
        ("hash::lanes", "hash::mod"),
    ] {
        assert!(edge(&g, a, b), "{a} -> {b} not seen");
    }
    // `use super::*` in a file's `mod tests` is the file itself, not the directory.
    assert!(!edge(&g, "datapath::counters", "datapath::mod"));
    let n: usize = g.values().map(BTreeSet::len).sum();
    assert!(n >= 30, "only {n} edges");
}

#[test]
fn no_import_circles_in_datapath_hash_and_sys() {
    let g = graph();
    if let Some(c) = circle(&g) {
        panic!("import circle: {}", c.join(" -> "));
    }
    let uses = |a: &str, b: &str| {
        g.iter().any(|(from, to)| {
            from.starts_with(&format!("{a}::"))
                && to.iter().any(|t| t.starts_with(&format!("{b}::")))
        })
    };
    assert!(
        !(uses("hash", "sys") && uses("sys", "hash")),
        "hash and sys use each other"
    );
}

#[test]
fn datapath_imports_run_one_way() {
    // pipeline -> express -> {encap, classify} -> snapshot -> leaves; a module may only
    // import modules of a lower rank (leaves: each other, without circles).
    let rank = |m: &str| match m.strip_prefix("datapath::")? {
        "buf" | "counters" | "burst" | "flow" | "outer" | "rows" | "quic" => Some(0),
        "snapshot" => Some(1),
        "encap" | "classify" => Some(2),
        "express" | "explain" => Some(3),
        "pipeline" => Some(4),
        "mod" => Some(5),
        _ => None,
    };
    let g = graph();
    for (from, to) in &g {
        let Some(rf) = rank(from) else { continue };
        for t in to {
            let Some(rt) = rank(t) else { continue };
            assert!(
                rt < rf || (rf == 0 && rt == 0),
                "{from} imports {t}, against the floor plan"
            );
        }
    }
}

#[test]
fn quic_lb_is_a_leaf() {
    // The QUIC-LB codec is a library the datapath uses, not the other way round: it
    // imports no other part of Rondo (no `crate::x` but `crate::quic_lb`, and `mod.rs`,
    // whose `super` is the crate root, no `super::`).
    let mods = modules("quic_lb");
    for m in ["mod", "cid", "config", "feistel", "header", "server_id"] {
        assert!(mods.iter().any(|(n, _)| n == m), "quic_lb::{m} not found");
    }
    for (name, text) in &mods {
        for (no, line) in text.lines().enumerate() {
            let code = match line.find("//") {
                Some(i) => &line[..i],
                None => line,
            };
            for (i, _) in code.match_indices("crate::") {
                assert!(
                    code[i + "crate::".len()..].starts_with("quic_lb"),
                    "quic_lb::{name} line {}: {}",
                    no + 1,
                    line.trim()
                );
            }
            if name == "mod" {
                assert!(!code.contains("super::"), "quic_lb::mod line {}", no + 1);
            }
            assert!(
                !code.contains("super::super::"),
                "quic_lb::{name} line {}: reaches out of quic_lb",
                no + 1
            );
        }
    }
}
