//! Reading configuration and table files without letting them hang or exhaust the process.
//!
//! [`read_bounded`] is the one reader for every config and table file Rondo loads (at start,
//! on reload, in `check-config` and the table tools). It opens with `O_NONBLOCK`, so a FIFO
//! cannot block the `open()` waiting for a writer; it refuses anything that is not a
//! regular file (FIFO, socket, device, directory), naming what it found; and it reads at
//! most `limit + 1` bytes, so `/dev/zero` or a runaway file is refused with a clear error
//! instead of growing the process.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest configuration file read (native TOML, GLB `director.conf`, JSON tables, health
/// and `rondo redirect` configs): 16 MiB, far more than any real config.
pub const CONFIG_LIMIT: u64 = 16 << 20;

/// Largest forwarding-table file read: a GLB `.bin` of 256 tables, the largest file GLB's
/// `build-config` writes for a 256-table director (24 + 256 x 537 624 bytes = 137 631 768
/// bytes, 131.3 MiB). Kept in step with [`crate::table::glb_bin`] by a unit test.
pub const TABLE_LIMIT: u64 = 24 + 256 * 537_624;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: is {what}, not a regular file; give the path of a file")]
    NotRegular { file: String, what: &'static str },
    #[error("{file}: larger than {limit} bytes ({}), the most read for {kind}; is this the right file?", human(*limit))]
    TooLarge {
        file: String,
        limit: u64,
        kind: &'static str,
    },
}

fn human(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// What a non-regular file is, for messages.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Read all of `path`, a regular file of at most `limit` bytes (`kind` names what it is
/// for in the error, e.g. "a config file"). Never blocks on a FIFO and never reads more
/// than `limit + 1` bytes.
pub fn read_bounded(path: &Path, limit: u64, kind: &'static str) -> Result<Vec<u8>, ReadError> {
    let file = || path.display().to_string();
    let io = |source| ReadError::Io {
        file: file(),
        source,
    };
    let f = open_nonblocking(path).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular {
            file: file(),
            what: kind_of(meta.file_type()),
        });
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            file: file(),
            limit,
            kind,
        });
    }
    read_limited(f, limit, kind, path)
}

/// The first `N` bytes of `path` (zeros past its end), opened as [`read_bounded`] does.
pub fn read_head<const N: usize>(path: &Path) -> Result<[u8; N], ReadError> {
    let io = |source| ReadError::Io {
        file: path.display().to_string(),
        source,
    };
    let f = open_nonblocking(path).map_err(io)?;
    let mut head = Vec::with_capacity(N);
    f.take(N as u64).read_to_end(&mut head).map_err(io)?;
    let mut out = [0u8; N];
    out[..head.len()].copy_from_slice(&head);
    Ok(out)
}

/// Open `path` for reading without waiting: `O_NONBLOCK`, so opening a FIFO with no
/// writer returns at once instead of blocking.
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

fn read_limited(
    f: File,
    limit: u64,
    kind: &'static str,
    path: &Path,
) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            file: path.display().to_string(),
            source,
        })?;
    // The file grew between the size check and the read.
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            file: path.display().to_string(),
            limit,
            kind,
        });
    }
    Ok(bytes)
}

/// [`read_bounded`] for text: the bytes as UTF-8, or an error naming the byte offset.
pub fn read_text_bounded(path: &Path, limit: u64, kind: &'static str) -> Result<String, ReadError> {
    let bytes = read_bounded(path, limit, kind)?;
    String::from_utf8(bytes).map_err(|e| ReadError::Io {
        file: path.display().to_string(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        ),
    })
}

/// A file written under a temporary name (`.NAME.tmp.PID.N`) in its destination's
/// directory and renamed over the destination by [`AtomicFile::commit`], after an `fsync`:
/// readers see the old file or the complete new one. Dropped without a commit (an error on
/// the way), the temporary file is removed and the destination is untouched.
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Create the temporary file for `dest`; write to the returned [`File`], then
    /// [`AtomicFile::commit`] it.
    pub fn create(dest: &Path) -> Result<(AtomicFile, File), ReadError> {
        let io = |source| ReadError::Io {
            file: dest.display().to_string(),
            source,
        };
        let name = dest.file_name().ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a file path (no file name)",
            ))
        })?;
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp.{}.{n}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io)?;
        Ok((
            AtomicFile {
                tmp,
                dest: dest.to_path_buf(),
                committed: false,
            },
            f,
        ))
    }

    /// `fsync` the written `file` and rename it over the destination.
    pub fn commit(mut self, file: File) -> Result<(), ReadError> {
        let io = |source| ReadError::Io {
            file: self.dest.display().to_string(),
            source,
        };
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(io)?;
        self.committed = true;
        if let Some(d) = self.dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(d) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn reads_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_bounded(&p, 5, "a config file").unwrap(), b"hello");
    }

    #[test]
    fn refuses_a_file_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, b"hello!").unwrap();
        let e = read_bounded(&p, 5, "a config file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than 5 bytes"), "{e}");
        assert!(e.contains("a config file"), "{e}");
    }

    #[test]
    fn refuses_a_fifo_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        nix_mkfifo(&p);
        let t = Instant::now();
        let e = read_bounded(&p, CONFIG_LIMIT, "a config file")
            .unwrap_err()
            .to_string();
        assert!(t.elapsed() < Duration::from_secs(10));
        assert!(
            e.contains("is a FIFO (named pipe), not a regular file"),
            "{e}"
        );
        assert!(e.contains(&p.display().to_string()), "{e}");
    }

    #[test]
    fn refuses_devices_and_directories() {
        let e = read_bounded(Path::new("/dev/zero"), CONFIG_LIMIT, "a config file")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/dev/zero: is a character device, not a regular file; give the path of a file"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = read_bounded(dir.path(), CONFIG_LIMIT, "a config file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");
    }

    #[test]
    fn the_table_limit_is_a_bin_of_256_tables() {
        use crate::table::glb_bin::{HEADER_LEN, TABLE_LEN};
        assert_eq!(TABLE_LIMIT, (HEADER_LEN + 256 * TABLE_LEN) as u64);
    }

    #[test]
    fn atomic_file_replaces_on_commit_and_leaves_nothing_on_drop() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.pcap");
        std::fs::write(&p, b"old").unwrap();
        let (a, mut f) = AtomicFile::create(&p).unwrap();
        f.write_all(b"half").unwrap();
        drop((a, f));
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let (a, mut f) = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        a.commit(f).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn nix_mkfifo(p: &Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    }
}
