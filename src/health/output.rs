//! What the standalone checker reads and writes: the source forwarding table (GLB JSON), the
//! checked copy with every backend's `healthy` filled in, and the reload command.
//!
//! The checked table is the source document with only `healthy` changed, so keys Rondo or
//! GLB do not know survive (keys come out sorted, indented by two spaces like GLB's output):
//! - a checked backend: its checked health;
//! - an active/draining/filling backend without checks: `true` (GLB: no failing check);
//! - an inactive backend (not checked): its source value, `false` when missing or not a bool.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::TableHealthSettings;
use super::state::HealthSnapshot;
use super::{HealthError, Target};
use crate::table::{glb_bin, glb_json, BackendState, TableError, TableSpec};

/// The source forwarding table, parsed.
#[derive(Debug, Clone)]
pub struct Source {
    pub doc: Value,
    pub specs: Vec<TableSpec>,
    pub settings: TableHealthSettings,
}

impl Source {
    /// Read and validate a GLB forwarding-table JSON file.
    pub fn load(path: &Path) -> Result<Source, HealthError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| HealthError::Io {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        Source::parse(&text, &file)
    }

    pub fn parse(text: &str, file: &str) -> Result<Source, HealthError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| TableError::Format {
            file: file.to_string(),
            reason: format!("line {}: invalid JSON: {e}", e.line()),
        })?;
        let specs = glb_json::parse_value(&doc, file)?;
        let settings = TableHealthSettings::from_table(&doc, file)?;
        Ok(Source {
            doc,
            specs,
            settings,
        })
    }

    /// Every backend's health to write: `[table][backend]`.
    pub fn health(&self, snapshot: &HealthSnapshot) -> Vec<Vec<bool>> {
        self.specs
            .iter()
            .enumerate()
            .map(|(ti, t)| {
                t.backends
                    .iter()
                    .enumerate()
                    .map(|(bi, b)| {
                        if b.state == BackendState::Inactive {
                            b.healthy
                        } else if Target::of_backend(b).is_empty() {
                            true
                        } else {
                            snapshot.get(ti, bi).map_or(b.healthy, |h| h.healthy)
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The source document with `healthy` set from `health` (as [`Source::health`] gives it).
    pub fn checked(&self, health: &[Vec<bool>]) -> Value {
        let mut doc = self.doc.clone();
        if let Some(tables) = doc.get_mut("tables").and_then(Value::as_array_mut) {
            for (t, h) in tables.iter_mut().zip(health) {
                if let Some(backends) = t.get_mut("backends").and_then(Value::as_array_mut) {
                    for (b, &healthy) in backends.iter_mut().zip(h) {
                        if let Some(o) = b.as_object_mut() {
                            o.insert("healthy".into(), Value::Bool(healthy));
                        }
                    }
                }
            }
        }
        doc
    }
}

/// Write `doc` (pretty-printed, newline at the end) to `path` atomically.
pub fn write_json(path: &Path, doc: &Value) -> Result<(), HealthError> {
    let mut text = serde_json::to_string_pretty(doc).map_err(|e| HealthError::Io {
        file: path.display().to_string(),
        message: format!("cannot encode JSON: {e}"),
    })?;
    text.push('\n');
    glb_bin::write_file_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Run `command` with `/bin/sh -c` (as GLB does), waiting at most `timeout`; on timeout its
/// whole process group is killed. Output goes to ours. The error says what went wrong.
pub fn run_reload(command: &str, timeout: Duration) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start /bin/sh: {e}"))?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("exited with {status}")),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
        if started.elapsed() >= timeout {
            // The shell and whatever it started: the group is the shell's pid.
            if let Err(e) = crate::sys::process::kill_process_group(child.id()) {
                tracing::warn!("cannot kill the reload command's process group: {e}");
                let _ = child.kill();
            }
            let _ = child.wait();
            return Err(format!(
                "still running after {} ms; killed",
                timeout.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"{"healthchecks": {"trigger": 2}, "tables": [{"name": "t",
        "hash_key": "12345678901234561234567890123456", "seed": "34567890123456783456789012345678",
        "binds": [{"ip": "1.1.1.1", "proto": "tcp", "port": 80}],
        "backends": [
          {"ip": "10.0.0.1", "state": "active", "healthchecks": {"http": 80}, "extra": "kept"},
          {"ip": "10.0.0.2", "state": "active", "healthy": false, "healthchecks": {}},
          {"ip": "10.0.0.3", "state": "inactive", "healthy": "yes", "healthchecks": {"http": 80}},
          {"ip": "10.0.0.4", "state": "inactive", "healthy": true}
        ]}]}"#;

    #[test]
    fn checked_json_fills_healthy_and_keeps_the_rest() {
        let s = Source::parse(SRC, "src.json").unwrap();
        assert_eq!(s.settings.trigger, Some(2));
        let h = s.health(&HealthSnapshot::default());
        // Not yet checked: as configured (missing = false); no checks: true; inactive: as is.
        assert_eq!(h, vec![vec![false, true, false, true]]);
        let mut h2 = h.clone();
        h2[0][0] = true;
        let doc = s.checked(&h2);
        let b = &doc["tables"][0]["backends"];
        assert_eq!(b[0]["healthy"], true);
        assert_eq!(b[0]["extra"], "kept");
        assert_eq!(b[2]["healthy"], false);
        assert_eq!(doc["healthchecks"]["trigger"], 2);
        // It is still a forwarding table Rondo (and GLB) reads.
        let again = glb_json::parse_value(&doc, "checked.json").unwrap();
        assert!(again[0].backends[0].healthy);
        assert!(again[0].backends[1].healthy);
    }

    #[test]
    fn bad_source_names_the_file() {
        let e = Source::parse("{", "src.json").unwrap_err().to_string();
        assert!(e.starts_with("src.json: line 1: invalid JSON"), "{e}");
        let e = Source::parse(r#"{"tables": [{}]}"#, "src.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("src.json: tables[0].hash_key: missing"), "{e}");
    }

    #[test]
    fn write_json_is_atomic_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        let doc: Value = serde_json::from_str(r#"{"tables": []}"#).unwrap();
        write_json(&p, &doc).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.ends_with("}\n"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        let missing = dir.path().join("no/such/dir/out.json");
        assert!(write_json(&missing, &doc).is_err());
    }

    #[test]
    fn reload_command_success_failure_and_timeout() {
        assert_eq!(run_reload("true", Duration::from_secs(5)), Ok(()));
        let e = run_reload("exit 3", Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("exit status: 3"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let started = Instant::now();
        // A background job of the shell: killed only if the whole group is.
        let cmd = format!("(sleep 0.4; touch {}) & wait", marker.display());
        let e = run_reload(&cmd, Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("killed"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(800));
        assert!(!marker.exists(), "the whole group was killed");
    }
}
