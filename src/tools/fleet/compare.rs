//! What one desired document changes against another: per table, backends added, removed
//! and changed, and the rows that move (`crate::table::diff`, as `rondo table diff` and the
//! console's dry-run show them); overrides added, removed and changed; and a one-line
//! summary for `rondo fleet history`.

use std::fmt::Write as _;

use super::doc::{Doc, Overrides};
use crate::table::diff::{self, pct};
use crate::table::{Backend, ForwardingTable};

/// One table's change.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableChange {
    pub table: String,
    /// "added", "removed" or "changed"/"unchanged".
    pub what: &'static str,
    pub backends_added: Vec<String>,
    pub backends_removed: Vec<String>,
    /// `IP: field old -> new, ...`.
    pub backends_changed: Vec<String>,
    pub primary_moved: u32,
    pub later_moved: u32,
    pub primary_moved_pct: f64,
    pub later_moved_pct: f64,
    #[serde(skip)]
    pub shares: String,
}

fn describe(b: &Backend) -> [(&'static str, String); 3] {
    [
        ("state", b.state.as_str().to_string()),
        ("weight", b.weight.to_string()),
        ("health", if b.healthy { "up" } else { "down" }.to_string()),
    ]
}

fn backend_changes(a: &ForwardingTable, b: &ForwardingTable, c: &mut TableChange) {
    for x in &a.spec.backends {
        match b.spec.backends.iter().find(|y| y.ip == x.ip) {
            None => c.backends_removed.push(x.ip.to_string()),
            Some(y) => {
                let moved: Vec<String> = describe(x)
                    .into_iter()
                    .zip(describe(y))
                    .filter(|(p, q)| p.1 != q.1)
                    .map(|(p, q)| format!("{} {} -> {}", p.0, p.1, q.1))
                    .collect();
                if !moved.is_empty() {
                    c.backends_changed
                        .push(format!("{}: {}", x.ip, moved.join(", ")));
                }
            }
        }
    }
    for y in &b.spec.backends {
        if !a.spec.backends.iter().any(|x| x.ip == y.ip) {
            c.backends_added.push(y.ip.to_string());
        }
    }
}

fn empty(table: &str, what: &'static str) -> TableChange {
    TableChange {
        table: table.to_string(),
        what,
        backends_added: vec![],
        backends_removed: vec![],
        backends_changed: vec![],
        primary_moved: 0,
        later_moved: 0,
        primary_moved_pct: 0.0,
        later_moved_pct: 0.0,
        shares: String::new(),
    }
}

/// Every table's change from `a` to `b` (their effective tables: overrides applied),
/// matched by name.
pub fn table_changes(a: &Doc, b: &Doc) -> Vec<TableChange> {
    let mut out = Vec::new();
    for ta in &a.effective {
        let Some(tb) = b.effective.iter().find(|t| t.spec.name == ta.spec.name) else {
            out.push(empty(&ta.spec.name, "removed"));
            continue;
        };
        let mut c = empty(&ta.spec.name, "unchanged");
        backend_changes(ta, tb, &mut c);
        let d = diff::diff(ta, tb);
        c.primary_moved = d.primary_moved;
        c.later_moved = d.later_moved;
        c.primary_moved_pct = pct(d.primary_moved);
        c.later_moved_pct = pct(d.later_moved);
        c.shares = d.share_lines(true);
        if ta != tb {
            c.what = "changed";
        }
        out.push(c);
    }
    for tb in &b.effective {
        if !a.effective.iter().any(|t| t.spec.name == tb.spec.name) {
            let mut c = empty(&tb.spec.name, "added");
            c.backends_added = tb.spec.backends.iter().map(|b| b.ip.to_string()).collect();
            out.push(c);
        }
    }
    out
}

/// Overrides added, removed or changed from `a` to `b`, one line each.
pub fn override_changes(a: &Overrides, b: &Overrides) -> Vec<String> {
    let mut out = Vec::new();
    for ((t, ip), o) in &a.set {
        match b.set.get(&(t.clone(), *ip)) {
            None => out.push(format!("override {t} {ip} cleared (was {})", o.describe())),
            Some(n) if n != o => out.push(format!(
                "override {t} {ip}: {} -> {}",
                o.describe(),
                n.describe()
            )),
            Some(_) => {}
        }
    }
    for ((t, ip), n) in &b.set {
        if !a.set.contains_key(&(t.clone(), *ip)) {
            out.push(format!("override {t} {ip} set: {}", n.describe()));
        }
    }
    out
}

/// The full text of `rondo fleet diff`.
pub fn render(a: &Doc, b: &Doc) -> String {
    let mut o = String::new();
    let changes = table_changes(a, b);
    for c in &changes {
        match c.what {
            "added" => {
                let _ = writeln!(
                    o,
                    "table {:?}: added ({} backends)",
                    c.table,
                    c.backends_added.len()
                );
            }
            "removed" => {
                let _ = writeln!(o, "table {:?}: removed", c.table);
            }
            _ => {
                let _ = writeln!(
                    o,
                    "table {:?}: {}; primary moves in {} rows ({:.2}%), later hops in {} rows ({:.2}%)",
                    c.table, c.what, c.primary_moved, c.primary_moved_pct, c.later_moved, c.later_moved_pct
                );
                for ip in &c.backends_added {
                    let _ = writeln!(o, "  backend {ip} added");
                }
                for ip in &c.backends_removed {
                    let _ = writeln!(o, "  backend {ip} removed");
                }
                for l in &c.backends_changed {
                    let _ = writeln!(o, "  backend {l}");
                }
                if c.what == "changed" {
                    o.push_str(&c.shares);
                }
            }
        }
    }
    for l in override_changes(&a.overrides(), &b.overrides()) {
        let _ = writeln!(o, "{l}");
    }
    if a.bytes == b.bytes {
        let _ = writeln!(o, "the documents are identical");
    }
    o
}

/// One line: what `b` changes against `a` (for `history`).
pub fn summary(a: &Doc, b: &Doc) -> String {
    let mut parts = Vec::new();
    for c in table_changes(a, b) {
        match c.what {
            "added" | "removed" => parts.push(format!("table {} {}", c.table, c.what)),
            "changed" => {
                let mut p = format!("{}: {:.1}% rows move", c.table, c.primary_moved_pct);
                let n = c.backends_added.len() + c.backends_removed.len();
                if n > 0 {
                    let _ = write!(
                        p,
                        " (+{} -{} backends)",
                        c.backends_added.len(),
                        c.backends_removed.len()
                    );
                }
                parts.push(p);
            }
            _ => {}
        }
    }
    parts.extend(override_changes(&a.overrides(), &b.overrides()));
    if parts.is_empty() {
        if a.bytes == b.bytes {
            "same bytes".into()
        } else {
            "no change to the tables (text only)".into()
        }
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }]
backends = [{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }, { ip = "10.1.0.3" }, { ip = "10.1.0.4" }]
"#;

    #[test]
    fn a_drain_moves_a_quarter_of_the_rows() {
        let a = Doc::parse(DOC.as_bytes().to_vec(), "a").unwrap();
        let b = format!(
            "{DOC}\n[[overrides]]\ntable = \"web\"\nip = \"10.1.0.2\"\nstate = \"draining\"\n"
        );
        let b = Doc::parse(b.into_bytes(), "b").unwrap();
        let c = &table_changes(&a, &b)[0];
        assert_eq!(c.what, "changed");
        assert_eq!(
            c.backends_changed,
            vec!["10.1.0.2: state active -> draining"]
        );
        assert!((15.0..35.0).contains(&c.primary_moved_pct), "{c:?}");
        let s = summary(&a, &b);
        assert!(
            s.contains("web: ") && s.contains("override web 10.1.0.2 set"),
            "{s}"
        );
        let r = render(&a, &b);
        assert!(
            r.contains("primary moves in") && r.contains("10.1.0.2"),
            "{r}"
        );
        assert_eq!(summary(&a, &a), "same bytes");
    }
}
