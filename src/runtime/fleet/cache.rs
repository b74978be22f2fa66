//! The fleet director's local copy of the last desired document it applied (`[fleet]
//! cache`), written atomically ([`AtomicFile`]) after every successful apply, so a restart
//! while etcd is unreachable starts on the last good tables.
//!
//! The file is JSON: `{"format": "rondo-fleet-cache", "version": 1, "prefix": ...,
//! "revision": N, "saved_ms": ..., "document": "<the desired document's text>"}`. A file
//! that is not that, or whose prefix is another fleet's, is an error naming the file: a
//! director never starts on tables it cannot vouch for.

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sys::file::{read_bounded, AtomicFile, ReadError, CONFIG_LIMIT};

const FORMAT: &str = "rondo-fleet-cache";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CacheFile {
    format: String,
    version: u32,
    prefix: String,
    revision: i64,
    saved_ms: u64,
    document: String,
}

/// A cached desired document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub revision: i64,
    pub saved_ms: u64,
    pub document: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("fleet cache {file}: {message}")]
    Corrupt { file: String, message: String },
    #[error("fleet cache: {0}")]
    Io(#[from] ReadError),
}

/// Read the cache; `Ok(None)` when the file does not exist.
pub fn read(path: &Path, prefix: &str) -> Result<Option<Cached>, CacheError> {
    let file = path.display().to_string();
    let bytes = match read_bounded(path, CONFIG_LIMIT * 2, "a fleet cache") {
        Ok(b) => b,
        Err(ReadError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e.into()),
    };
    parse(&bytes, &file, prefix).map(Some)
}

/// Parse a cache file's bytes (`file` names it in errors): total, any bytes are a cached
/// document of fleet `prefix` or an error.
pub fn parse(bytes: &[u8], file: &str, prefix: &str) -> Result<Cached, CacheError> {
    let corrupt = |message: String| CacheError::Corrupt {
        file: file.to_string(),
        message,
    };
    let c: CacheFile = serde_json::from_slice(bytes).map_err(|e| {
        corrupt(format!(
            "not a fleet cache ({e}); expected the JSON rondo writes there (delete the file to start only from etcd)"
        ))
    })?;
    if c.format != FORMAT || c.version != 1 {
        return Err(corrupt(format!(
            "format {:?} version {}: expected {FORMAT:?} version 1",
            c.format, c.version
        )));
    }
    if c.prefix != prefix {
        return Err(corrupt(format!(
            "holds fleet {:?}'s document, not {prefix:?}'s ([fleet] prefix changed? delete the file)",
            c.prefix
        )));
    }
    if c.revision <= 0 {
        return Err(corrupt(format!(
            "revision {} is not a revision",
            c.revision
        )));
    }
    Ok(Cached {
        revision: c.revision,
        saved_ms: c.saved_ms,
        document: c.document.into_bytes(),
    })
}

/// Write the cache atomically: readers (a restart) see the old copy or the new one whole.
pub fn write(path: &Path, prefix: &str, revision: i64, document: &[u8]) -> Result<(), CacheError> {
    let c = CacheFile {
        format: FORMAT.into(),
        version: 1,
        prefix: prefix.into(),
        revision,
        saved_ms: super::unix_ms(),
        document: String::from_utf8_lossy(document).into_owned(),
    };
    let text = serde_json::to_vec(&c).map_err(|e| CacheError::Corrupt {
        file: path.display().to_string(),
        message: e.to_string(),
    })?;
    let (tmp, mut f) = AtomicFile::create(path)?;
    f.write_all(&text).map_err(|source| ReadError::Io {
        file: path.display().to_string(),
        source,
    })?;
    tmp.commit(f)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fleet.cache");
        assert_eq!(read(&p, "/r").unwrap(), None, "absent: no cache");
        write(&p, "/r", 42, b"[[tables]]\n").unwrap();
        let c = read(&p, "/r").unwrap().unwrap();
        assert_eq!(
            (c.revision, c.document.as_slice()),
            (42, &b"[[tables]]\n"[..])
        );
        let e = read(&p, "/other").unwrap_err().to_string();
        assert!(e.contains("fleet.cache") && e.contains("\"/r\""), "{e}");
        std::fs::write(&p, b"{\"format\": \"rondo-fleet-cache\"").unwrap();
        let e = read(&p, "/r").unwrap_err().to_string();
        assert!(
            e.contains("fleet.cache") && e.contains("not a fleet cache"),
            "{e}"
        );
        std::fs::write(&p, b"garbage").unwrap();
        assert!(read(&p, "/r").is_err());
    }
}
