//! A minimal HTTP/1.0 server for Prometheus: `GET /metrics` (and `HEAD`). Anything else
//! gets 400, 404 or 405.
//!
//! One thread multiplexes every connection with `poll(2)`, non-blocking: a client that
//! trickles its request (slowloris) holds a slot, not a thread, and never delays another.
//! A request head must be complete within [`REQUEST_TIMEOUT`] of the connection being
//! accepted (one deadline for the whole head, not per read) and the response written within
//! [`WRITE_TIMEOUT`]. At most [`MAX_CONNECTIONS`] are open: a new connection beyond that
//! closes the oldest one still sending its request, so a scraper whose request is complete
//! at once always gets through.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stop_thread::StopThread;
use super::{render, MetricsError};
use crate::runtime::plane::ControlPlane;
use crate::sys::poll::Poller;

/// Connections open at once (beyond that, the oldest still sending its request is closed).
pub const MAX_CONNECTIONS: usize = 256;
/// Largest request head read.
pub const MAX_REQUEST: usize = 8192;
/// Time a client has, from being accepted, to send its whole request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a client has to take the response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait between looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);

/// The metrics endpoint. Dropping it stops it.
pub struct MetricsServer {
    addr: SocketAddr,
    thread: StopThread,
}

/// What the server needs for a response body.
pub trait Source: Send + Sync + 'static {
    fn metrics(&self) -> String;
}

impl Source for ControlPlane {
    fn metrics(&self) -> String {
        render(self)
    }
}

/// A metrics endpoint bound but not served yet: `rondo run` binds it before its data plane
/// forwards and serves it once everything else is set up (connections wait in the
/// backlog meanwhile).
pub struct MetricsListener {
    addr: SocketAddr,
    listener: TcpListener,
}

impl MetricsListener {
    /// Listen on `addr` (port 0: any free port, see [`MetricsListener::addr`]).
    pub fn bind(addr: SocketAddr) -> Result<MetricsListener, MetricsError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| MetricsError::Listen { addr, source })?;
        let local = listener.local_addr().map_err(|source| MetricsError::Io {
            what: "local address",
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| MetricsError::Io {
                what: "set non-blocking",
                source,
            })?;
        Ok(MetricsListener {
            addr: local,
            listener,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve `source` on it.
    pub fn serve<S: Source>(self, source: Arc<S>) -> Result<MetricsServer, MetricsError> {
        let MetricsListener { addr, listener } = self;
        let thread = StopThread::spawn("rondo-metrics", move |stop| {
            accept_loop(listener, source, stop)
        })?;
        tracing::info!("metrics on http://{addr}/metrics");
        Ok(MetricsServer { addr, thread })
    }
}

impl MetricsServer {
    /// Listen on `addr` (port 0: any free port, see [`MetricsServer::addr`]).
    pub fn start<S: Source>(
        addr: SocketAddr,
        source: Arc<S>,
    ) -> Result<MetricsServer, MetricsError> {
        MetricsListener::bind(addr)?.serve(source)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shutdown(mut self) {
        self.thread.stop();
    }
}

/// One connection: reading its head, then writing its response.
struct Conn {
    stream: TcpStream,
    /// Accepted at: the oldest open connections are evicted first.
    since: Instant,
    /// The request head or head-so-far while reading; the response while writing.
    buf: Vec<u8>,
    /// Bytes of the response written.
    sent: usize,
    writing: bool,
    /// When the head (reading) or the response (writing) must be done.
    deadline: Instant,
}

impl Conn {
    /// Read what the client sent; `false` when the connection is done with.
    fn on_readable<S: Source>(&mut self, source: &S) -> bool {
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    // The client closed its side: answer a head it sent, if any.
                    if self.buf.is_empty() {
                        return false;
                    }
                    break;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if head_complete(&self.buf) || self.buf.len() > MAX_REQUEST {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        self.buf = response(&self.buf, source);
        self.writing = true;
        self.deadline = Instant::now() + WRITE_TIMEOUT;
        self.on_writable()
    }

    /// Write what the socket takes; `false` once all is written (or the client is gone).
    fn on_writable(&mut self) -> bool {
        while self.sent < self.buf.len() {
            match self.stream.write(&self.buf[self.sent..]) {
                Ok(0) => return false,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        false
    }
}

fn head_complete(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

fn accept_loop<S: Source>(listener: TcpListener, source: Arc<S>, stop: Arc<AtomicBool>) {
    let mut conns: Vec<Conn> = Vec::new();
    let mut poller = Poller::new();
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        // Past their deadline: closed (a head never completed, a response never taken).
        conns.retain(|c| c.deadline > now);
        let wait = conns
            .iter()
            .map(|c| c.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(TICK)
            .min(TICK);
        poller.clear();
        let l = poller.add(listener.as_raw_fd(), false);
        for c in &conns {
            poller.add(c.stream.as_raw_fd(), c.writing);
        }
        // Rounded up so that a deadline less than 1 ms away does not spin.
        let ms = i32::try_from(wait.as_millis() + 1).unwrap_or(i32::MAX);
        if let Err(e) = poller.wait(ms) {
            tracing::warn!("metrics: poll failed: {e}");
            std::thread::sleep(TICK);
            continue;
        }
        // Serve the open connections first (indexes match the poller's entries), then
        // take new ones.
        let mut i = 0;
        conns.retain_mut(|c| {
            i += 1;
            if !poller.ready(l + i) {
                return true;
            }
            if c.writing {
                c.on_writable()
            } else {
                c.on_readable(&*source)
            }
        });
        if poller.ready(l) {
            accept_new(&listener, &mut conns, &*source);
        }
    }
}

/// Accept every connection waiting (at most a round's worth), evicting the oldest
/// connections still sending their request when all slots are taken.
fn accept_new<S: Source>(listener: &TcpListener, conns: &mut Vec<Conn>, source: &S) {
    for _ in 0..MAX_CONNECTIONS {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of descriptors, for instance: try again next round.
                tracing::warn!("metrics accept failed: {e}");
                return;
            }
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        if conns.len() >= MAX_CONNECTIONS {
            let oldest = conns
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.writing)
                .min_by_key(|(_, c)| c.since)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    conns.swap_remove(i);
                }
                // Every slot is writing a response: this one waits for none.
                None => continue,
            }
        }
        let now = Instant::now();
        let mut c = Conn {
            stream,
            since: now,
            buf: Vec::new(),
            sent: 0,
            writing: false,
            deadline: now + REQUEST_TIMEOUT,
        };
        // A client that sent its request with the connection is answered now.
        if c.on_readable(source) {
            conns.push(c);
        }
    }
}

/// Status code and whether to send the metrics for a request head.
pub fn route(head: &[u8]) -> (u16, bool, bool) {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = std::str::from_utf8(line)
        .unwrap_or("")
        .trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return (400, false, false);
    };
    if parts.next().is_some() || !version.starts_with("HTTP/") || head.len() > MAX_REQUEST {
        return (400, false, false);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return (405, false, false),
    };
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => (200, true, head_only),
        "/" => (200, false, head_only),
        _ => (404, false, head_only),
    }
}

/// The whole response (head and body) to a request head.
fn response<S: Source>(head: &[u8], source: &S) -> Vec<u8> {
    match route(head) {
        (200, true, head_only) => {
            let body = source.metrics();
            respond(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
                head_only,
            )
        }
        (200, false, head_only) => respond(
            200,
            "text/plain; charset=utf-8",
            b"rondo: metrics at /metrics\n",
            head_only,
        ),
        (code, _, head_only) => respond(
            code,
            "text/plain; charset=utf-8",
            reason(code).as_bytes(),
            head_only,
        ),
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    }
}

fn respond(code: u16, ctype: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.0 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        reason(code),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Source for Fixed {
        fn metrics(&self) -> String {
            "m_total 1\n".into()
        }
    }

    fn get(addr: SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(req);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            (200, true, false)
        );
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            (200, true, false)
        );
        assert_eq!(route(b"HEAD /metrics HTTP/1.0\r\n\r\n"), (200, true, true));
        assert_eq!(route(b"GET / HTTP/1.0\r\n\r\n"), (200, false, false));
        assert_eq!(route(b"GET /nope HTTP/1.0\r\n\r\n").0, 404);
        assert_eq!(route(b"POST /metrics HTTP/1.0\r\n\r\n").0, 405);
        assert_eq!(route(b"garbage\r\n\r\n").0, 400);
        assert_eq!(route(b"\xff\xfe /metrics HTTP/1.0\r\n\r\n").0, 400);
        assert_eq!(route(b"").0, 400);
    }

    #[test]
    fn serves_metrics_and_survives_bad_clients() {
        let srv = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(Fixed)).unwrap();
        let a = srv.addr();
        let r = get(a, b"GET /metrics HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.0 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
        assert!(r.ends_with("\r\n\r\nm_total 1\n"), "{r}");
        assert!(get(a, b"DELETE /metrics HTTP/1.0\r\n\r\n").contains("405"));
        // An oversized head and a client that says nothing: answered or dropped, and the
        // server still serves.
        let big = vec![b'a'; 3 * MAX_REQUEST];
        let _ = get(a, &big);
        let silent = TcpStream::connect(a).unwrap();
        let r = get(a, b"GET /metrics HTTP/1.0\r\n\r\n");
        assert!(r.contains("m_total 1"), "{r}");
        drop(silent);
        srv.shutdown();
        assert!(TcpStream::connect(a).is_err(), "closed after shutdown");
    }

    /// 100 clients that send their request a byte a second (and connect again when
    /// closed): scrapes get through all along.
    #[test]
    fn scrapes_get_through_while_slow_clients_trickle() {
        let srv = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(Fixed)).unwrap();
        let a = srv.addr();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let trickler = std::thread::spawn(move || {
            let req = b"GET /metrics HTTP/1.0\r\n\r\n";
            let mut slow: Vec<(TcpStream, usize)> = (0..100)
                .map(|_| (TcpStream::connect(a).unwrap(), 0))
                .collect();
            let end = Instant::now() + Duration::from_secs(60);
            while !st.load(Ordering::Acquire) && Instant::now() < end {
                for (s, sent) in &mut slow {
                    if s.write_all(&req[*sent % 4..*sent % 4 + 1]).is_err() {
                        // Closed by the server: come back, as an attacker would.
                        if let Ok(n) = TcpStream::connect(a) {
                            *s = n;
                        }
                    }
                    *sent += 1;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        // Let them connect and start trickling.
        std::thread::sleep(Duration::from_millis(1500));
        for round in 0..5 {
            let t = Instant::now();
            let r = get(a, b"GET /metrics HTTP/1.0\r\n\r\n");
            assert!(
                r.starts_with("HTTP/1.0 200 OK\r\n") && r.ends_with("m_total 1\n"),
                "scrape {round} after {:?}: {r:?}",
                t.elapsed()
            );
            std::thread::sleep(Duration::from_millis(700));
        }
        stop.store(true, Ordering::Release);
        trickler.join().unwrap();
        srv.shutdown();
    }

    /// More silent connections than there are slots: the oldest are closed for new ones,
    /// and a scrape still gets through.
    #[test]
    fn new_connections_evict_the_oldest_incomplete_ones() {
        let srv = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(Fixed)).unwrap();
        let a = srv.addr();
        let silent: Vec<TcpStream> = (0..MAX_CONNECTIONS + 20)
            .map(|_| TcpStream::connect(a).unwrap())
            .collect();
        let r = get(a, b"GET /metrics HTTP/1.0\r\n\r\n");
        assert!(r.ends_with("m_total 1\n"), "{r:?}");
        // The first ones were closed (end of stream), well before their 2 s deadline.
        let mut first = &silent[0];
        first.set_read_timeout(Some(REQUEST_TIMEOUT / 2)).unwrap();
        let t = Instant::now();
        assert_eq!(first.read(&mut [0u8; 16]).unwrap_or(1), 0, "evicted");
        assert!(t.elapsed() < REQUEST_TIMEOUT / 2, "{:?}", t.elapsed());
        drop(silent);
        srv.shutdown();
    }

    /// A request head sent a byte at a time within the deadline is answered; one that
    /// takes longer than REQUEST_TIMEOUT in all is closed, however often it sends.
    #[test]
    fn the_request_deadline_is_for_the_whole_head() {
        let srv = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(Fixed)).unwrap();
        let a = srv.addr();
        let mut s = TcpStream::connect(a).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for b in b"GET /metrics HTTP/1.0\r\n\r\n" {
            s.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.ends_with("m_total 1\n"), "{out:?}");
        let mut slow = TcpStream::connect(a).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let t = Instant::now();
        let mut closed = false;
        while t.elapsed() < REQUEST_TIMEOUT * 3 {
            if slow.write_all(b"X").is_err() {
                closed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            closed,
            "a head trickled for {:?} was not closed",
            t.elapsed()
        );
        srv.shutdown();
    }
}
