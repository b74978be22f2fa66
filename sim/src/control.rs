//! The fleet's forwarding config, as the operator edits it: native TOML text that every
//! director compiles with [`config_from_str`] and [`Snapshot::compile`], as `rondo run` does
//! on a reload.

use std::fmt::Write;

use super::net::{backend_ip, director_ip, VIP, VIP_PORT};
use super::SimError;
use rondo::config::config_from_str;
use rondo::datapath::Snapshot;
use rondo::table::BackendState;

/// One backend's line in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Backend index (its address is [`backend_ip`]).
    pub backend: usize,
    pub state: BackendState,
    pub healthy: bool,
}

/// What the operator controls.
#[derive(Debug, Clone)]
pub struct Control {
    pub entries: Vec<Entry>,
    pub hash_fields: Vec<&'static str>,
    pub alt_hash_fields: Option<Vec<&'static str>>,
    /// Hops per row (the config's `hops`).
    pub hops: usize,
    /// Bumped by every compile, so snapshots can be told apart.
    pub generation: u64,
}

impl Control {
    /// Backends `0..n`, all active and healthy, hashed on the client address and port.
    pub fn new(n: usize) -> Control {
        Control {
            entries: (0..n)
                .map(|backend| Entry {
                    backend,
                    state: BackendState::Active,
                    healthy: true,
                })
                .collect(),
            hash_fields: vec!["src_addr", "src_port"],
            alt_hash_fields: None,
            hops: 2,
            generation: 0,
        }
    }

    /// The entry of `backend`, if it is in the table.
    pub fn entry_mut(&mut self, backend: usize) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.backend == backend)
    }

    /// The config text director `director` loads.
    pub fn text(&self, director: usize) -> String {
        let list = |v: &[&str]| {
            v.iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut t = String::new();
        let _ = writeln!(t, "[director]");
        let _ = writeln!(t, "outbound_gateway_mac = \"02:00:00:00:00:fe\"");
        let _ = writeln!(t, "outbound_src_ip = \"{}\"", director_ip(director));
        let _ = writeln!(t, "hash_fields = [{}]", list(&self.hash_fields));
        if let Some(alt) = &self.alt_hash_fields {
            let _ = writeln!(t, "alt_hash_fields = [{}]", list(alt));
        }
        let _ = writeln!(t, "hops = {}", self.hops);
        let _ = writeln!(t, "\n[[tables]]\nname = \"sim\"");
        let _ = writeln!(t, "hash_key = \"12345678901234561234567890123456\"");
        let _ = writeln!(t, "seed = \"34567890123456783456789012345678\"");
        let _ = writeln!(
            t,
            "binds = [{{ ip = \"{VIP}\", proto = \"tcp\", port = {VIP_PORT} }}]"
        );
        for e in &self.entries {
            let _ = writeln!(
                t,
                "[[tables.backends]]\nip = \"{}\"\nstate = \"{}\"\nhealthy = {}",
                backend_ip(e.backend),
                e.state.as_str(),
                e.healthy
            );
        }
        t
    }

    /// Compile the current config for `director`, as its reload would.
    pub fn compile(&mut self, director: usize) -> Result<Snapshot, SimError> {
        self.generation += 1;
        let cfg = config_from_str(&self.text(director), "sim.toml")
            .map_err(|source| SimError::Config { director, source })?;
        Snapshot::compile(cfg, None, self.generation)
            .map_err(|source| SimError::Snapshot { director, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_edit_compiles() {
        let mut c = Control::new(3);
        assert!(c.compile(0).is_ok());
        c.entries.push(Entry {
            backend: 3,
            state: BackendState::Filling,
            healthy: true,
        });
        if let Some(e) = c.entry_mut(0) {
            e.state = BackendState::Draining;
        }
        c.alt_hash_fields = Some(vec!["src_addr"]);
        let s = c.compile(1).unwrap();
        assert_eq!(s.tables[0].table.spec.backends.len(), 4);
        assert_eq!(s.generation, 2);
        c.entries.clear();
        assert!(c.compile(0).is_err(), "a table without backends is refused");
    }
}
