//! Load any configuration or table file Rondo accepts, deciding by content.

use std::path::Path;

use super::glb::{parse_director_conf, GlbRuntime};
use super::native::{self, NativeTables};
use super::{Config, ConfigError, DirectorSettings};
use crate::sys::file::{read_bounded, read_head, ReadError, CONFIG_LIMIT, TABLE_LIMIT};
use crate::table::{glb_bin, glb_json, ForwardingTable, RowPolicy};

/// What a file turned out to be.
#[derive(Debug)]
pub enum Loaded {
    /// Settings and tables: a native TOML config.
    Config(Box<Config>),
    /// GLB `director.conf` alone (tables come from another file).
    Director(DirectorSettings, GlbRuntime),
    /// A GLB table file (`forwarding_table.json` built with GLB's rules, or a `.bin`).
    Tables(Vec<ForwardingTable>),
}

/// Read a file that may be a GLB `.bin` table (up to [`TABLE_LIMIT`]) or text (a config or
/// JSON table, up to [`CONFIG_LIMIT`]): a regular file only, never blocking (see
/// [`crate::sys::file`]). Only a file that starts with the `.bin` magic is read past the
/// config limit.
fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    match read_bounded(path, CONFIG_LIMIT, "a config file") {
        Err(ReadError::TooLarge { .. })
            if read_head::<4>(path)? == glb_bin::MAGIC.to_le_bytes() =>
        {
            Ok(read_bounded(path, TABLE_LIMIT, "a forwarding table")?)
        }
        r => Ok(r?),
    }
}

fn utf8<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| ConfigError::File {
        file: file.to_string(),
        message: format!(
            "not UTF-8 text (byte {}); expected TOML or JSON",
            e.valid_up_to()
        ),
    })
}

/// Load a file of any supported kind: TOML config, GLB JSON (director.conf or forwarding
/// table) or GLB binary table. Tables are built (rows computed) before this returns.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let bytes = read(path)?;
    if bytes.starts_with(&glb_bin::MAGIC.to_le_bytes()) {
        return Ok(Loaded::Tables(glb_bin::decode(&bytes, &file)?));
    }
    let text = utf8(&bytes, &file)?;
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            ConfigError::field(&file, Some(e.line()), "", format!("invalid JSON: {e}"))
        })?;
        if v.get("tables").is_some() {
            return Ok(Loaded::Tables(build(
                glb_json::parse(text, &file)?,
                RowPolicy::Glb,
                &file,
            )?));
        }
        let (s, r) = parse_director_conf(text, &file)?;
        return Ok(Loaded::Director(s, r));
    }
    Ok(Loaded::Config(Box::new(config_from_str(text, &file)?)))
}

/// Parse a native TOML config and build its tables (a `forwarding_table` path is resolved
/// against `file`'s folder). `file` names the text in errors.
pub fn config_from_str(text: &str, file: &str) -> Result<Config, ConfigError> {
    let cfg = native::parse(text, file)?;
    let tables = match cfg.tables {
        NativeTables::Inline(specs) => build(specs, cfg.settings.row_policy, file)?,
        NativeTables::GlbFile(p) => load_tables(&p)?,
        // Built from etcd's desired document when `rondo run` starts.
        NativeTables::Fleet => Vec::new(),
    };
    Ok(Config {
        settings: cfg.settings,
        tables,
        run: cfg.run,
    })
}

fn build(
    specs: Vec<crate::table::TableSpec>,
    policy: RowPolicy,
    file: &str,
) -> Result<Vec<ForwardingTable>, ConfigError> {
    specs
        .into_iter()
        .map(|s| {
            ForwardingTable::build(s, policy).map_err(|e| ConfigError::File {
                file: file.to_string(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Load a GLB table file (`.json` source or `.bin`).
pub fn load_tables(path: &Path) -> Result<Vec<ForwardingTable>, ConfigError> {
    match load_file(path)? {
        Loaded::Tables(t) => Ok(t),
        _ => Err(ConfigError::File {
            file: path.display().to_string(),
            message: "expected a forwarding table (GLB .json with \"tables\" or .bin)".into(),
        }),
    }
}

/// Load a configuration: a native TOML file alone, or GLB's `director.conf` plus a table
/// file. Returns the GLB runtime section when `director.conf` was given.
pub fn load_glb(director_conf: &Path, table: &Path) -> Result<(Config, GlbRuntime), ConfigError> {
    let (settings, runtime) = parse_director_conf_file(director_conf)?;
    let tables = load_tables(table)?;
    Ok((
        Config {
            settings,
            tables,
            run: Default::default(),
        },
        runtime,
    ))
}

/// Load whatever the operator pointed at into a full [`Config`]: a TOML config, or
/// `director.conf` + table file.
pub fn load_config(config: &Path, table: Option<&Path>) -> Result<Config, ConfigError> {
    match (load_file(config)?, table) {
        (Loaded::Config(c), None) => Ok(*c),
        (Loaded::Director(..), Some(t)) => Ok(load_glb(config, t)?.0),
        (Loaded::Director(..), None) => Err(ConfigError::File {
            file: config.display().to_string(),
            message: "this is a GLB director.conf; also give the forwarding table (--forwarding-table FILE)".into(),
        }),
        (Loaded::Tables(_), _) => Err(ConfigError::File {
            file: config.display().to_string(),
            message: "this is a forwarding table, not a director config; give a TOML config or a GLB director.conf".into(),
        }),
        (Loaded::Config(_), Some(_)) => Err(ConfigError::File {
            file: config.display().to_string(),
            message: "a TOML config names its own tables; drop --forwarding-table (or use `forwarding_table = ...` in the TOML)".into(),
        }),
    }
}

/// Read and parse a GLB `director.conf`.
pub fn parse_director_conf_file(
    path: &Path,
) -> Result<(DirectorSettings, GlbRuntime), ConfigError> {
    let file = path.display().to_string();
    let bytes = read_bounded(path, CONFIG_LIMIT, "a config file")?;
    parse_director_conf(utf8(&bytes, &file)?, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sparse file of `len` bytes starting with `head`.
    fn sparse(dir: &Path, name: &str, head: &[u8], len: u64) -> std::path::PathBuf {
        use std::io::Write;
        let p = dir.join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(head).unwrap();
        f.set_len(len).unwrap();
        p
    }

    #[test]
    fn only_a_bin_table_is_read_past_the_config_limit() {
        let dir = tempfile::tempdir().unwrap();
        let text = sparse(dir.path(), "big.json", b"{\"tables\": [", CONFIG_LIMIT + 1);
        let e = load_file(&text).unwrap_err().to_string();
        assert!(
            e.contains("larger than 16777216 bytes (16.0 MiB), the most read for a config file"),
            "{e}"
        );
        // A .bin past the config limit is read (and here refused by the decoder for its
        // header, not for its size).
        let bin = sparse(
            dir.path(),
            "big.bin",
            &glb_bin::MAGIC.to_le_bytes(),
            CONFIG_LIMIT + 1,
        );
        let e = load_file(&bin).unwrap_err().to_string();
        assert!(!e.contains("larger than"), "{e}");
        let huge = sparse(
            dir.path(),
            "huge.bin",
            &glb_bin::MAGIC.to_le_bytes(),
            TABLE_LIMIT + 1,
        );
        let e = load_file(&huge).unwrap_err().to_string();
        assert!(e.contains("the most read for a forwarding table"), "{e}");
    }
}
