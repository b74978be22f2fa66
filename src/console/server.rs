//! The console socket: a unix stream socket of mode 0660 and group `rondo` when that group
//! exists (its members may use the console; the Debian package makes it), of mode 0600
//! otherwise (the director's user only); one thread per session.
//!
//! Input is bounded: lines longer than [`MAX_LINE`] bytes are answered with an error and
//! skipped, bytes that are not UTF-8 likewise, and at most `max_clients` sessions are
//! served at once. When they are all taken, a new session is still let in: the session
//! idle the longest (at least [`EVICT_IDLE`]) is told why and closed to make room, so idle
//! sessions left open by scripts or forgotten terminals never lock the operator out; only
//! when every session is busy or was active within [`EVICT_IDLE`] is the new one told so
//! and closed. Only complete lines run, so a client that disconnects mid-command changes
//! nothing. Sessions idle for an hour are closed; a client that stops reading its replies
//! for 5 s is dropped.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::exec::{Executor, Origin, Session};
use super::{encode_reply, Reply, MAX_LINE};

/// Sessions idle this long are closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// When every session slot is taken, a session idle at least this long may be closed to
/// let a new one in (the one idle the longest).
pub const EVICT_IDLE: Duration = Duration::from_secs(5);
/// A reply not taken by the client within this long ends the session.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console socket {path}: another rondo is serving it (stop it, or give this one another --console-socket)")]
    InUse { path: PathBuf },
    #[error("console socket {path}: the path exists and is not a socket; refusing to replace it")]
    NotSocket { path: PathBuf },
    #[error("console socket {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> ConsoleError + 'a {
    move |source| ConsoleError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// The group whose members may use the console socket, when it exists.
pub const CONSOLE_GROUP: &str = "rondo";

/// Who may use the socket: mode 0660 and group `group` when a group of that name exists
/// (and we may give the socket to it: we are root or one of its members), 0600 otherwise.
fn socket_access(group: &str) -> (u32, Option<nix::unistd::Gid>) {
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => (0o660, Some(g.gid)),
        Ok(None) => (0o600, None),
        Err(e) => {
            tracing::warn!(group, "cannot look up group: {e}; console socket is 0600");
            (0o600, None)
        }
    }
}

/// Bind `path` with its final mode from the first moment (see [`socket_access`]): the
/// socket is made in a fresh directory of mode 0700 next to it, restricted, and renamed
/// into place. A stale socket (nobody listening) is replaced; a live one or any other file
/// is an error.
fn bind(path: &Path) -> Result<(UnixListener, u64), ConsoleError> {
    bind_for(path, CONSOLE_GROUP)
}

fn bind_for(path: &Path, group: &str) -> Result<(UnixListener, u64), ConsoleError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&parent)
        .map_err(io(&parent, "create directory"))?;
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(ConsoleError::NotSocket {
                path: path.to_path_buf(),
            });
        }
        if UnixStream::connect(path).is_ok() {
            return Err(ConsoleError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io(path, "remove stale socket"))?;
        tracing::info!(path = %path.display(), "removed a stale console socket");
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rondo.sock".into());
    let tmp_dir = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp_dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp_dir)
        .map_err(io(&tmp_dir, "create private directory"))?;
    let tmp = tmp_dir.join("s");
    let result = (|| {
        let l = UnixListener::bind(&tmp).map_err(io(path, "bind"))?;
        let mode = match socket_access(group) {
            (mode, Some(gid)) => match std::os::unix::fs::chown(&tmp, None, Some(gid.as_raw())) {
                Ok(()) => mode,
                Err(e) => {
                    tracing::warn!(
                        group,
                        "cannot give the console socket to group {group}: {e}; it is 0600"
                    );
                    0o600
                }
            },
            (mode, None) => mode,
        };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(io(path, "chmod"))?;
        std::fs::rename(&tmp, path).map_err(io(path, "move into place"))?;
        let ino = std::fs::metadata(path).map_err(io(path, "stat"))?.ino();
        Ok((l, ino))
    })();
    let _ = std::fs::remove_dir_all(&tmp_dir);
    result
}

/// A running console socket. Dropping it stops it (see [`ConsoleServer::shutdown`]).
pub struct ConsoleServer {
    path: PathBuf,
    ino: u64,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    sessions: Arc<Mutex<Vec<JoinHandle<()>>>>,
    active: Arc<AtomicUsize>,
}

struct Shared {
    exec: Arc<Executor>,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    max_clients: usize,
    next_id: AtomicU64,
    /// The open sessions, for choosing one to close when all slots are taken.
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Origin of [`Slot::last`].
    epoch: Instant,
}

/// A session waits for input.
const IDLE: u8 = 0;
/// A session runs a command or writes its reply.
const BUSY: u8 = 1;
/// The accept loop closed the session to let a new one in (its slot is already free).
const EVICTED: u8 = 2;
/// The session ended by itself.
const CLOSED: u8 = 3;

/// One session as the accept loop sees it. `state` moves IDLE <-> BUSY on the session's
/// thread and IDLE -> EVICTED on the accept loop (compare-and-swap both ways, so a command
/// that started is never cut, and a session is freed exactly once).
struct Slot {
    id: u64,
    state: AtomicU8,
    /// Milliseconds since [`Shared::epoch`] of the last input.
    last: AtomicU64,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Close the session idle the longest, if one has been idle at least [`EVICT_IDLE`]:
    /// its slot is free on return. Returns (its id, how long it was idle).
    fn evict_longest_idle(&self) -> Option<(u64, Duration)> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|s| s.state.load(Ordering::Acquire) < EVICTED);
        let now = self.now_ms();
        let mut idle: Vec<&Arc<Slot>> = slots
            .iter()
            .filter(|s| s.state.load(Ordering::Acquire) == IDLE)
            .filter(|s| {
                now.saturating_sub(s.last.load(Ordering::Acquire)) >= EVICT_IDLE.as_millis() as u64
            })
            .collect();
        idle.sort_by_key(|s| s.last.load(Ordering::Acquire));
        for s in idle {
            if s.state
                .compare_exchange(IDLE, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.active.fetch_sub(1, Ordering::AcqRel);
                let for_ms = now.saturating_sub(s.last.load(Ordering::Acquire));
                return Some((s.id, Duration::from_millis(for_ms)));
            }
        }
        None
    }
}

/// A console socket bound but not served yet: `rondo run` binds it before its data plane
/// forwards and serves it once everything else is set up (connections wait in the
/// backlog meanwhile). Dropped unserved, it removes its socket file.
pub struct ConsoleListener {
    path: PathBuf,
    ino: u64,
    listener: Option<UnixListener>,
}

impl ConsoleListener {
    /// Bind the socket at `path` (refused when a live console serves it).
    pub fn bind(path: &Path) -> Result<ConsoleListener, ConsoleError> {
        let (listener, ino) = bind(path)?;
        let l = ConsoleListener {
            path: path.to_path_buf(),
            ino,
            listener: Some(listener),
        };
        if let Some(s) = &l.listener {
            s.set_nonblocking(true)
                .map_err(io(path, "set non-blocking"))?;
        }
        Ok(l)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serve `exec` on it.
    pub fn serve(
        mut self,
        max_clients: usize,
        exec: Arc<Executor>,
    ) -> Result<ConsoleServer, ConsoleError> {
        let Some(listener) = self.listener.take() else {
            unreachable!("a ConsoleListener is served once (serve takes it by value)");
        };
        let path = self.path.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let sessions: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let shared = Arc::new(Shared {
            exec,
            stop: stop.clone(),
            active: active.clone(),
            max_clients: max_clients.max(1),
            next_id: AtomicU64::new(1),
            slots: Mutex::default(),
            epoch: Instant::now(),
        });
        let s2 = sessions.clone();
        let accept = match std::thread::Builder::new()
            .name("rondo-console".into())
            .spawn(move || accept_loop(listener, shared, s2))
        {
            Ok(h) => h,
            Err(e) => {
                remove_if_ours(&path, self.ino);
                return Err(io(&path, "start thread")(e));
            }
        };
        tracing::info!(path = %path.display(), max_clients, "console listening");
        Ok(ConsoleServer {
            path,
            ino: self.ino,
            stop,
            accept: Some(accept),
            sessions,
            active,
        })
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        if self.listener.take().is_some() {
            remove_if_ours(&self.path, self.ino);
        }
    }
}

/// Remove the socket file at `path` if it is still the one we bound (inode `ino`).
fn remove_if_ours(path: &Path, ino: u64) {
    if std::fs::metadata(path).is_ok_and(|m| m.ino() == ino) {
        let _ = std::fs::remove_file(path);
    }
}

impl ConsoleServer {
    /// Serve `exec` on a socket at `path`.
    pub fn start(
        path: &Path,
        max_clients: usize,
        exec: Arc<Executor>,
    ) -> Result<ConsoleServer, ConsoleError> {
        ConsoleListener::bind(path)?.serve(max_clients, exec)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Stop accepting, end every session, wait for their threads (at most about
    /// [`WRITE_TIMEOUT`] plus a command's run time) and remove the socket file if it is
    /// still ours.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let handles: Vec<JoinHandle<()>> = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for h in handles {
            let _ = h.join();
        }
        remove_if_ours(&self.path, self.ino);
    }
}

impl Drop for ConsoleServer {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.stop_now();
        }
    }
}

fn refuse(mut stream: UnixStream, why: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&encode_reply(&Reply::err(format!("error: {why}"))));
}

fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    sessions: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    while !shared.stop.load(Ordering::Acquire) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                tracing::warn!("console accept failed: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        if shared.active.load(Ordering::Acquire) >= shared.max_clients {
            match shared.evict_longest_idle() {
                Some((old, idle)) => tracing::warn!(
                    max = shared.max_clients,
                    session = old,
                    idle_s = idle.as_secs(),
                    "console full: closed the session idle the longest to let a new one in"
                ),
                None => {
                    tracing::warn!(
                        max = shared.max_clients,
                        "console session refused: too many sessions"
                    );
                    refuse(
                        stream,
                        &format!(
                            "too many console sessions (at most {}), none idle for {} s or more; try again later",
                            shared.max_clients,
                            EVICT_IDLE.as_secs()
                        ),
                    );
                    continue;
                }
            }
        }
        shared.active.fetch_add(1, Ordering::AcqRel);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            id,
            state: AtomicU8::new(IDLE),
            last: AtomicU64::new(shared.now_ms()),
        });
        shared
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(slot.clone());
        let sh = shared.clone();
        let sl = slot.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("rondo-cons-{id}"))
            .spawn(move || {
                session(stream, &sh, &sl);
                // Freed here unless the accept loop freed it when it evicted the session.
                if sl.state.swap(CLOSED, Ordering::AcqRel) != EVICTED {
                    sh.active.fetch_sub(1, Ordering::AcqRel);
                }
            });
        let mut list = sessions.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|h| !h.is_finished());
        match spawned {
            Ok(h) => list.push(h),
            Err(e) => {
                slot.state.store(CLOSED, Ordering::Release);
                shared.active.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!("cannot start a console session thread: {e}");
            }
        }
    }
}

/// What to do with the bytes of one session: complete lines come out, over-long lines are
/// reported once and skipped.
#[derive(Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    discarding: bool,
}

/// One event from [`LineBuffer::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Line(Vec<u8>),
    TooLong,
}

impl LineBuffer {
    /// Feed bytes; returns the complete lines (without LF and a CR before it) and a
    /// [`Input::TooLong`] for each over-long one. Never holds more than [`MAX_LINE`] bytes.
    pub fn push(&mut self, data: &[u8]) -> Vec<Input> {
        let mut out = Vec::new();
        for piece in data.split_inclusive(|&b| b == b'\n') {
            let complete = piece.last() == Some(&b'\n');
            let content = if complete {
                &piece[..piece.len() - 1]
            } else {
                piece
            };
            if self.discarding {
                if complete {
                    self.discarding = false;
                    out.push(Input::TooLong);
                }
                continue;
            }
            if self.buf.len() + content.len() > MAX_LINE + 1 {
                self.buf.clear();
                if complete {
                    out.push(Input::TooLong);
                } else {
                    self.discarding = true;
                }
                continue;
            }
            self.buf.extend_from_slice(content);
            if complete {
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > MAX_LINE {
                    out.push(Input::TooLong);
                } else {
                    out.push(Input::Line(line));
                }
            }
        }
        out
    }
}

/// The reply to one line of input.
pub fn answer(exec: &Executor, s: &mut Session, input: Input) -> Reply {
    match input {
        Input::TooLong => Reply::err(format!(
            "error: line longer than {MAX_LINE} bytes; it was skipped\n"
        )),
        Input::Line(bytes) => match std::str::from_utf8(&bytes) {
            Ok(line) => exec.execute(s, line),
            Err(e) => Reply::err(format!(
                "error: the line is not UTF-8 text (bad byte at offset {}); it was skipped\n",
                e.valid_up_to()
            )),
        },
    }
}

/// The message an evicted session gets before it is closed.
fn evicted_message(max: usize) -> String {
    format!(
        "error: session closed: all {max} console sessions were taken and a new one came in; this one was idle the longest\n"
    )
}

fn session(mut stream: UnixStream, shared: &Shared, slot: &Slot) {
    let id = slot.id;
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    tracing::debug!(session = id, "console session opened");
    let mut s = Session::new(Origin::Socket(id));
    let mut lines = LineBuffer::default();
    let mut chunk = [0u8; 4096];
    let mut last = Instant::now();
    'session: while !shared.stop.load(Ordering::Acquire) {
        if slot.state.load(Ordering::Acquire) == EVICTED {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = stream.write_all(&encode_reply(&Reply::err(evicted_message(
                shared.max_clients,
            ))));
            tracing::info!(session = id, "console session closed to let a new one in");
            break;
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if last.elapsed() > IDLE_TIMEOUT {
                    let _ = stream.write_all(&encode_reply(&Reply::err(
                        "error: session idle for an hour; closed\n",
                    )));
                    break;
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        last = Instant::now();
        // Input arrived: the session is busy now, unless the accept loop just closed it
        // (then it is told so on the next turn, and this input is not run).
        if slot
            .state
            .compare_exchange(IDLE, BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue;
        }
        for input in lines.push(&chunk[..n]) {
            let reply = answer(&shared.exec, &mut s, input);
            if stream.write_all(&encode_reply(&reply)).is_err() {
                break 'session;
            }
            if reply.close {
                break 'session;
            }
            if shared.stop.load(Ordering::Acquire) {
                break 'session;
            }
        }
        slot.last.store(shared.now_ms(), Ordering::Release);
        slot.state.store(IDLE, Ordering::Release);
    }
    tracing::debug!(session = id, "console session closed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_buffer_splits_lines_and_skips_long_ones_in_bounded_memory() {
        let mut lb = LineBuffer::default();
        assert_eq!(lb.push(b"show "), vec![]);
        assert_eq!(
            lb.push(b"tables\r\nstart\nsto"),
            vec![
                Input::Line(b"show tables".to_vec()),
                Input::Line(b"start".to_vec())
            ]
        );
        assert_eq!(lb.push(b"p\n"), vec![Input::Line(b"stop".to_vec())]);
        // A megabyte without a newline, in pieces: one error once it ends.
        let big = vec![b'x'; 1 << 20];
        for c in big.chunks(4096) {
            assert_eq!(lb.push(c), vec![]);
            assert!(lb.buf.len() <= MAX_LINE + 1);
        }
        assert_eq!(
            lb.push(b"yyy\nquit\n"),
            vec![Input::TooLong, Input::Line(b"quit".to_vec())]
        );
        // Exactly MAX_LINE is fine; one more is not.
        let mut at = vec![b'a'; MAX_LINE];
        at.push(b'\n');
        assert!(matches!(&lb.push(&at)[..], [Input::Line(l)] if l.len() == MAX_LINE));
        let mut over = vec![b'a'; MAX_LINE + 1];
        over.push(b'\n');
        assert_eq!(lb.push(&over), vec![Input::TooLong]);
        // A long line in one read, followed by a good one.
        let mut both = vec![b'z'; 3 * MAX_LINE];
        both.extend_from_slice(b"\nreload\n");
        assert_eq!(
            lb.push(&both),
            vec![Input::TooLong, Input::Line(b"reload".to_vec())]
        );
        assert_eq!(lb.push(b"\n"), vec![Input::Line(vec![])]);
    }

    #[test]
    fn socket_is_for_the_console_group_when_it_exists_else_private() {
        let dir = tempfile::tempdir().unwrap();
        // A group that exists and that we may give files to: our own effective group.
        let gid = nix::unistd::getegid();
        let ours = nix::unistd::Group::from_gid(gid).unwrap().unwrap().name;
        let p = dir.path().join("grp.sock");
        let (_l, _) = bind_for(&p, &ours).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o660);
        assert_eq!(m.gid(), gid.as_raw());
        // No such group: owner only.
        let q = dir.path().join("own.sock");
        let (_l2, _) = bind_for(&q, "rondo-no-such-group-for-tests").unwrap();
        assert_eq!(
            std::fs::metadata(&q).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            socket_access("rondo-no-such-group-for-tests"),
            (0o600, None)
        );
    }

    #[test]
    fn socket_is_private_and_stale_ones_are_replaced_but_not_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/rondo.sock");
        let (l, _) = bind_for(&p, "rondo-no-such-group-for-tests").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(bind(&p), Err(ConsoleError::InUse { .. })));
        drop(l);
        // Stale now (nobody listens): replaced.
        let (_l2, _) = bind(&p).unwrap();
        // No temporary directory left behind.
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = bind(&file).unwrap_err().to_string();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn line_buffer_is_bounded_and_loses_no_short_line(
            chunks in proptest::collection::vec(proptest::collection::vec(
                proptest::prop_oneof![proptest::prelude::Just(b'\n'), proptest::prelude::any::<u8>()], 0..6000), 0..8)
        ) {
            let mut lb = LineBuffer::default();
            let all: Vec<u8> = chunks.concat();
            let mut got = Vec::new();
            for c in &chunks {
                got.extend(lb.push(c));
                proptest::prop_assert!(lb.buf.len() <= MAX_LINE + 1);
            }
            // The same bytes in one piece give the same lines.
            let mut one = LineBuffer::default();
            proptest::prop_assert_eq!(&one.push(&all), &got);
            let complete = all.iter().filter(|&&b| b == b'\n').count();
            proptest::prop_assert_eq!(got.len(), complete);
        }
    }
}
