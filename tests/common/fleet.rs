//! Processes and servers of a fleet in network namespaces: `rondo run` directors and
//! `rondo redirect` backends started with `ip netns exec` (killed on drop), and an echo
//! server on a kernel TCP socket opened inside a backend's namespace.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::director::Session;
use super::netns::in_netns;

/// Every start-up wait ends by this deadline.
pub const START: Duration = Duration::from_secs(20);

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `rondo run --config CONFIG` inside namespace `ns`, its log in a file; killed on drop.
pub struct DirectorProc {
    pub name: String,
    pub ns: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    /// Logs of earlier runs (before a restart).
    pub earlier: String,
}

impl DirectorProc {
    pub fn new(name: &str, ns: &str, config: PathBuf, socket: PathBuf, log: PathBuf) -> Self {
        DirectorProc {
            name: name.to_string(),
            ns: ns.to_string(),
            config,
            socket,
            log,
            child: None,
            earlier: String::new(),
        }
    }

    /// Start it and wait for its console to answer.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        self.earlier.push_str(&self.log_text());
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_rondo")])
            .args(["run", "--stats-interval", "0", "--config"])
            .arg(&self.config)
            .env("RONDO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).expect("director log"))
            .spawn()
            .expect("spawn rondo run");
        self.child = Some(child);
        let up = super::poll(START, Duration::from_millis(50), || {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited ({st}): {}", self.name, self.log_text());
            }
            UnixStream::connect(&self.socket).is_ok() && self.cmd("show port info all").0
        });
        assert!(
            up,
            "{}: no console within {START:?}: {}",
            self.name,
            self.log_text()
        );
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send SIGTERM (a planned stop) and return at once; [`DirectorProc::exited`] tells
    /// when it is gone.
    pub fn send_term(&self) {
        if let Some(c) = &self.child {
            signal(c.id(), "TERM");
        }
    }

    /// Its exit status once it has exited (then it counts as not running), else `None`.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let st = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(st)
    }

    /// The running process's pid (`ip netns exec` execs rondo in place).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One console command in a new session: (succeeded, reply).
    pub fn cmd(&self, line: &str) -> (bool, String) {
        Session::open(&self.socket).cmd(line)
    }

    /// A console command that must succeed.
    pub fn ok(&self, line: &str) -> String {
        let (ok, text) = self.cmd(line);
        assert!(
            ok,
            "{}: {line:?} failed: {text}\nlog:\n{}",
            self.name,
            tail(&self.log_text(), 40)
        );
        text
    }
}

impl Drop for DirectorProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Lines a child printed, collected by a reader thread.
type Lines = Arc<Mutex<Vec<String>>>;

fn collect(r: impl Read + Send + 'static) -> Lines {
    let lines: Lines = Arc::default();
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    lines
}

/// `rondo redirect --config CONFIG [ARGS]` inside namespace `ns`; killed on drop.
pub struct RedirectProc {
    pub name: String,
    child: Child,
    stdout: Lines,
    stderr: Lines,
}

/// Totals from one `rondo redirect` counters report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedirectCounters {
    pub rx: u64,
    pub local: u64,
    pub forwarded: u64,
    /// Of `forwarded`: QUIC packets whose CID named another server (`[redirect.quic_lb]`).
    pub forwarded_quic: u64,
    pub dropped: u64,
}

impl RedirectProc {
    /// Start it and wait for `redirect ready` in its log.
    pub fn start(name: &str, ns: &str, config: &Path, args: &[&str]) -> RedirectProc {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_rondo"), "redirect"])
            .arg("--config")
            .arg(config)
            .args(args)
            .env("RONDO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rondo redirect");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let mut r = RedirectProc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        };
        let ready = super::poll(START, Duration::from_millis(20), || {
            let ready = r
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("redirect ready"));
            if !ready {
                if let Ok(Some(st)) = r.child.try_wait() {
                    panic!("{name}: rondo redirect exited ({st}): {}", r.log());
                }
            }
            ready
        });
        assert!(ready, "{name}: not ready: {}", r.log());
        r
    }

    /// Everything it logged and printed so far.
    pub fn log(&self) -> String {
        format!(
            "{}\n{}",
            self.stderr.lock().unwrap().join("\n"),
            self.stdout.lock().unwrap().join("\n")
        )
    }

    /// The counters now (SIGUSR1 makes it print a report; the report ends with `diag`).
    pub fn counters(&self) -> RedirectCounters {
        let before = self.reports();
        let st = Command::new("kill")
            .args(["-USR1", &self.child.id().to_string()])
            .status()
            .expect("kill -USR1");
        assert!(st.success(), "{}: kill -USR1 failed", self.name);
        let reported = super::poll(START, Duration::from_millis(10), || {
            self.reports() != before
        });
        assert!(
            reported,
            "{}: no counters report on SIGUSR1: {}",
            self.name,
            self.log()
        );
        let out = self.stdout.lock().unwrap();
        let last_rx = out.iter().rposition(|l| l.starts_with("rx ")).unwrap();
        let value = |name: &str| {
            out[last_rx..]
                .iter()
                .find_map(|l| {
                    let mut t = l.split_whitespace();
                    (t.next() == Some(name)).then(|| t.next()?.parse().ok())?
                })
                .unwrap_or(0)
        };
        RedirectCounters {
            rx: value("rx"),
            local: value("local"),
            forwarded: value("forwarded"),
            forwarded_quic: value("forwarded_quic"),
            dropped: value("dropped"),
        }
    }

    fn reports(&self) -> usize {
        let out = self.stdout.lock().unwrap();
        out.iter().filter(|l| l.starts_with("diag ")).count()
    }
}

impl Drop for RedirectProc {
    fn drop(&mut self) {
        // Only the child this test started, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A kernel TCP echo server on `addr` inside a namespace: on accept it sends one byte, its
/// `id`, then echoes everything. One thread per connection; stopped on drop.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl EchoServer {
    pub fn start(ns: &str, addr: SocketAddr, id: u8) -> EchoServer {
        let listener = in_netns(ns, move || TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("echo server on {addr} in {ns}: {e}"));
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let accept = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = s.clone();
                        let _ = std::thread::Builder::new()
                            .stack_size(128 << 10)
                            .spawn(move || echo(conn, id, &s));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        EchoServer {
            stop,
            accept: Some(accept),
        }
    }
}

fn echo(mut c: TcpStream, id: u8, stop: &AtomicBool) {
    let _ = c.set_nonblocking(false);
    let _ = c.set_nodelay(true);
    let _ = c.set_read_timeout(Some(Duration::from_millis(300)));
    let _ = c.set_write_timeout(Some(Duration::from_secs(2)));
    if c.write_all(&[id]).is_err() {
        return;
    }
    let mut b = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match c.read(&mut b) {
            Ok(0) => return,
            Ok(n) => {
                if c.write_all(&b[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Send `sig` (`STOP`, `CONT`, `TERM`, ...) to the process `pid` this test started.
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}
