//! systemd readiness notification and pid files.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Send `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET` when set. Returns whether it was sent.
pub fn sd_notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), Path::new(&path))?;
    }
    Ok(true)
}

/// A pid file that is removed when dropped.
pub struct PidFile(PathBuf);

impl PidFile {
    /// Write our pid to `path` (atomically: temp file + rename).
    pub fn create(path: &Path) -> std::io::Result<PidFile> {
        let tmp = path.with_extension("pid.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{}", std::process::id())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_a_listening_socket_and_pid_file_is_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
        listener
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        // Set NOTIFY_SOCKET in a child process rather than mutating this test process.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "runtime::notify::tests::child_sends_ready",
                "--ignored",
                "--nocapture",
            ])
            .env("NOTIFY_SOCKET", &sock_path)
            .env("RONDO_NOTIFY_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let pid = dir.path().join("rondo.pid");
        let p = PidFile::create(&pid).unwrap();
        assert_eq!(
            std::fs::read_to_string(&pid).unwrap().trim(),
            std::process::id().to_string()
        );
        drop(p);
        assert!(!pid.exists());
    }

    /// Run only as the child of the test above, which sets NOTIFY_SOCKET.
    #[test]
    #[ignore = "helper process of notify_reaches_a_listening_socket_and_pid_file_is_cleaned"]
    fn child_sends_ready() {
        assert!(
            std::env::var_os("RONDO_NOTIFY_CHILD").is_some(),
            "run by the notify test only"
        );
        assert!(sd_notify("READY=1").unwrap());
    }
}
