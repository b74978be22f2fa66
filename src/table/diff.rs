//! What changing one table into another moves: rows whose primary or later hops change and
//! each backend's share of rows before and after. Backends are matched by address, so a
//! reordered backend list is not a change. Used by `rondo table diff` and by the console,
//! which shows it for every change it applies (or would apply, with `dry-run`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::{ForwardingTable, TABLE_ROWS};

/// Rows a backend holds: as primary (first hop) and as any later hop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Share {
    pub primary: u32,
    pub secondary: u32,
}

/// The difference between two versions of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableDiff {
    /// Rows whose primary backend changes.
    pub primary_moved: u32,
    /// Rows whose later hops (second chance and beyond) change.
    pub later_moved: u32,
    /// Every backend of either version: (before, after).
    pub shares: BTreeMap<IpAddr, (Share, Share)>,
}

/// Percentage of the table's rows.
pub fn pct(rows: u32) -> f64 {
    f64::from(rows) * 100.0 / TABLE_ROWS as f64
}

/// Rows per backend index of `t`, as primary and as later hops.
pub fn shares(t: &ForwardingTable) -> Vec<Share> {
    let mut s = vec![Share::default(); t.spec.backends.len()];
    for row in t.rows().chunks_exact(t.hops()) {
        if let Some(p) = s.get_mut(row[0] as usize) {
            p.primary += 1;
        }
        for &b in &row[1..] {
            if let Some(x) = s.get_mut(b as usize) {
                x.secondary += 1;
            }
        }
    }
    s
}

/// Compare `a` (before) with `b` (after), row by row.
pub fn diff(a: &ForwardingTable, b: &ForwardingTable) -> TableDiff {
    let ip = |t: &ForwardingTable, idx: u32| t.spec.backends[idx as usize].ip;
    let mut d = TableDiff::default();
    for (i, s) in shares(a).into_iter().enumerate() {
        d.shares.entry(a.spec.backends[i].ip).or_default().0 = s;
    }
    for (i, s) in shares(b).into_iter().enumerate() {
        d.shares.entry(b.spec.backends[i].ip).or_default().1 = s;
    }
    for r in 0..TABLE_ROWS {
        let (ra, rb) = (a.row(r as u16), b.row(r as u16));
        if ip(a, ra[0]) != ip(b, rb[0]) {
            d.primary_moved += 1;
        }
        let later_a = ra[1..].iter().map(|&x| ip(a, x));
        let later_b = rb[1..].iter().map(|&x| ip(b, x));
        if !later_a.eq(later_b) {
            d.later_moved += 1;
        }
    }
    d
}

impl TableDiff {
    /// One line: how many rows move.
    pub fn summary(&self, table: &str) -> String {
        format!(
            "table {table:?}: primary changes in {} rows ({:.2}%), later hops change in {} rows ({:.2}%)",
            self.primary_moved,
            pct(self.primary_moved),
            self.later_moved,
            pct(self.later_moved)
        )
    }

    /// Per-backend shares before and after; with `changed_only`, only backends whose shares
    /// change.
    pub fn share_lines(&self, changed_only: bool) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "  {:<40} {:>17} {:>17}",
            "backend", "primary before/after", "secondary before/after"
        );
        for (ip, (before, after)) in &self.shares {
            if changed_only && before == after {
                continue;
            }
            let _ = writeln!(
                o,
                "  {:<40} {:>7.2}% {:>7.2}%   {:>7.2}% {:>7.2}%",
                ip.to_string(),
                pct(before.primary),
                pct(after.primary),
                pct(before.secondary),
                pct(after.secondary)
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Backend, BackendState, HealthChecks, RowPolicy, TableSpec};

    fn table(states: &[BackendState]) -> ForwardingTable {
        let backends = states
            .iter()
            .enumerate()
            .map(|(i, &state)| Backend {
                ip: format!("10.0.0.{}", i + 1).parse().unwrap(),
                state,
                healthy: true,
                weight: 1,
                healthchecks: HealthChecks::default(),
            })
            .collect();
        let spec = TableSpec {
            name: "t".into(),
            hash_key: [1; 16],
            seed: Some([2; 16]),
            binds: vec![],
            backends,
            quic_lb: None,
        };
        ForwardingTable::build(spec, RowPolicy::Native { hops: 2 }).unwrap()
    }

    #[test]
    fn identical_tables_move_nothing_and_draining_moves_its_primaries() {
        use BackendState::*;
        let a = table(&[Active, Active, Active, Active]);
        let d = diff(&a, &a);
        assert_eq!((d.primary_moved, d.later_moved), (0, 0));
        assert_eq!(d.share_lines(true).lines().count(), 1, "header only");
        let b = table(&[Active, Draining, Active, Active]);
        let d = diff(&a, &b);
        let drained: IpAddr = "10.0.0.2".parse().unwrap();
        let (before, after) = d.shares[&drained];
        assert_eq!(after.primary, 0);
        assert_eq!(d.primary_moved, before.primary, "exactly its rows move");
        assert!(
            (0.22..0.28).contains(&(f64::from(before.primary) / TABLE_ROWS as f64)),
            "{before:?}"
        );
        let total: u32 = d.shares.values().map(|(_, a)| a.primary).sum();
        assert_eq!(total as usize, TABLE_ROWS);
        assert!(d
            .summary("t")
            .contains(&format!("{} rows", d.primary_moved)));
        assert!(d.share_lines(true).contains("10.0.0.2"));
    }
}
