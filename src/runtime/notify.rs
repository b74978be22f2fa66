//! systemd readiness notification, the systemd watchdog, and pid files.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Send `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET` when set. Returns whether it was sent.
pub fn sd_notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    sd_notify_to(&path, state)?;
    Ok(true)
}

/// Send `state` to the notify socket at `path` (a path, or `@name` in the abstract
/// namespace).
pub fn sd_notify_to(path: &OsStr, state: &str) -> std::io::Result<()> {
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), Path::new(path))?;
    }
    Ok(())
}

/// Which running workers did not move since the previous check: each entry is a worker's
/// progress counter, `None` for a worker that has stopped (it is not waited for). With no
/// previous check, every worker counts as having moved.
pub fn stuck_workers(previous: Option<&[Option<u64>]>, now: &[Option<u64>]) -> Vec<usize> {
    let Some(prev) = previous else {
        return Vec::new();
    };
    now.iter()
        .enumerate()
        .filter_map(|(i, p)| match (p, prev.get(i).copied().flatten()) {
            (Some(n), Some(before)) if *n == before => Some(i),
            _ => None,
        })
        .collect()
}

/// The systemd watchdog (`WatchdogSec=` in the unit): `WATCHDOG=1` every half timeout,
/// sent only while every running worker makes progress, so that a stuck worker gets the
/// director killed and restarted rather than left "running" while it forwards nothing.
/// Driven by the control loop ([`Watchdog::tick`]).
#[derive(Debug)]
pub struct Watchdog {
    socket: OsString,
    every: Duration,
    last_check: Option<Instant>,
    last: Option<Vec<Option<u64>>>,
    /// Workers reported stuck (pings withheld) at the last check.
    stuck: Vec<usize>,
    pings: u64,
}

impl Watchdog {
    /// The watchdog systemd asked for: `WATCHDOG_USEC` set (and `WATCHDOG_PID`, when set,
    /// naming this process) with `NOTIFY_SOCKET`. `Ok(None)`: none asked; `Err`: asked in
    /// a way that cannot be followed (said in the message).
    pub fn from_env() -> Result<Option<Watchdog>, String> {
        let Some(usec) = std::env::var_os("WATCHDOG_USEC") else {
            return Ok(None);
        };
        if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
            let ours = std::process::id().to_string();
            if pid.to_str() != Some(ours.as_str()) {
                return Ok(None); // meant for another process (we were started by it)
            }
        }
        let usec: u64 = usec
            .to_str()
            .and_then(|u| u.parse().ok())
            .filter(|&u| u > 0)
            .ok_or_else(|| {
                format!("WATCHDOG_USEC={usec:?}: expected a positive number of microseconds")
            })?;
        let socket = std::env::var_os("NOTIFY_SOCKET")
            .ok_or("WATCHDOG_USEC is set but NOTIFY_SOCKET is not: no watchdog pings")?;
        Ok(Some(Watchdog::new(socket, Duration::from_micros(usec))))
    }

    /// A watchdog of `timeout` pinging `socket` every `timeout / 2`.
    pub fn new(socket: impl Into<OsString>, timeout: Duration) -> Watchdog {
        Watchdog {
            socket: socket.into(),
            every: timeout / 2,
            last_check: None,
            last: None,
            stuck: Vec::new(),
            pings: 0,
        }
    }

    /// How often it checks and pings.
    pub fn interval(&self) -> Duration {
        self.every
    }

    /// Pings sent so far.
    pub fn pings(&self) -> u64 {
        self.pings
    }

    /// Call often (every control-loop tick) with [`crate::runtime::Runtime::worker_progress`]:
    /// once an interval has passed, pings when every running worker moved since the last
    /// check; otherwise logs once which worker is stuck and withholds the ping (and says so
    /// when they move again). Returns whether it pinged now.
    pub fn tick(&mut self, now: Instant, progress: &[Option<u64>]) -> bool {
        if self
            .last_check
            .is_some_and(|t| now.saturating_duration_since(t) < self.every)
        {
            return false;
        }
        self.last_check = Some(now);
        let stuck = stuck_workers(self.last.as_deref(), progress);
        self.last = Some(progress.to_vec());
        if !stuck.is_empty() {
            if stuck != self.stuck {
                tracing::error!(workers = ?stuck, "worker(s) made no progress for {:?}: withholding the systemd watchdog ping, so systemd restarts the director", self.every);
            }
            self.stuck = stuck;
            return false;
        }
        if !self.stuck.is_empty() {
            tracing::info!(workers = ?self.stuck, "worker(s) progress again; watchdog pings resume");
            self.stuck.clear();
        }
        match sd_notify_to(&self.socket, "WATCHDOG=1") {
            Ok(()) => {
                self.pings += 1;
                true
            }
            Err(e) => {
                tracing::warn!("systemd watchdog ping failed: {e}");
                false
            }
        }
    }
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
    fn a_worker_is_stuck_when_its_counter_did_not_move() {
        assert!(stuck_workers(None, &[Some(0), Some(5)]).is_empty());
        let prev = [Some(10), Some(20), None, Some(7)];
        // Worker 2 had stopped; worker 3 stopped since: neither is waited for.
        assert!(stuck_workers(Some(&prev), &[Some(11), Some(21), None, None]).is_empty());
        assert_eq!(
            stuck_workers(Some(&prev), &[Some(10), Some(21), Some(3), None]),
            vec![0]
        );
        assert_eq!(
            stuck_workers(Some(&prev), &[Some(10), Some(20), None, Some(7)]),
            vec![0, 1, 3]
        );
        // More workers now than before: the new ones count as moved.
        assert!(stuck_workers(Some(&[Some(1)]), &[Some(2), Some(0)]).is_empty());
    }

    #[test]
    fn watchdog_pings_each_interval_only_while_every_worker_moves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut w = Watchdog::new(path.as_os_str(), Duration::from_secs(2));
        assert_eq!(w.interval(), Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(w.tick(t0, &[Some(1), Some(1)]), "first check pings");
        assert!(
            !w.tick(t0 + Duration::from_millis(500), &[Some(2), Some(2)]),
            "not due"
        );
        assert!(w.tick(t0 + Duration::from_secs(1), &[Some(3), Some(9)]));
        // Worker 1 stuck: no ping, then none again while it stays so.
        assert!(!w.tick(t0 + Duration::from_secs(2), &[Some(4), Some(9)]));
        assert!(!w.tick(t0 + Duration::from_secs(3), &[Some(5), Some(9)]));
        // It moves again: pings resume.
        assert!(w.tick(t0 + Duration::from_secs(4), &[Some(6), Some(10)]));
        // A stopped worker is not waited for.
        assert!(w.tick(t0 + Duration::from_secs(5), &[Some(7), None]));
        assert_eq!(w.pings(), 4);
        let mut buf = [0u8; 32];
        let mut got = 0;
        while let Ok(n) = listener.recv(&mut buf) {
            assert_eq!(&buf[..n], b"WATCHDOG=1");
            got += 1;
        }
        assert_eq!(got, 4);
    }

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
