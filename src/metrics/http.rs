//! A minimal HTTP/1.0 server for Prometheus: `GET /metrics` (and `HEAD`). One short-lived
//! thread per connection, at most [`MAX_CONNECTIONS`] at once; requests are bounded in size
//! and time. Anything else gets 400, 404, 405 or 503.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::stop_thread::StopThread;
use super::{render, MetricsError};
use crate::runtime::plane::ControlPlane;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Largest request head read.
pub const MAX_REQUEST: usize = 8192;
/// Time a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

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

impl MetricsServer {
    /// Listen on `addr` (port 0: any free port, see [`MetricsServer::addr`]).
    pub fn start<S: Source>(
        addr: SocketAddr,
        source: Arc<S>,
    ) -> Result<MetricsServer, MetricsError> {
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
        let thread = StopThread::spawn("rondo-metrics", move |stop| {
            accept_loop(listener, source, stop)
        })?;
        tracing::info!("metrics on http://{local}/metrics");
        Ok(MetricsServer {
            addr: local,
            thread,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shutdown(mut self) {
        self.thread.stop();
    }
}

fn accept_loop<S: Source>(listener: TcpListener, source: Arc<S>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                tracing::warn!("metrics accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        handles.retain(|h| !h.is_finished());
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        if active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            respond(stream, 503, "text/plain", b"busy, try again\n", false);
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (src, act) = (source.clone(), active.clone());
        match std::thread::Builder::new()
            .name("rondo-metrics-c".into())
            .spawn(move || {
                serve(stream, &*src);
                act.fetch_sub(1, Ordering::AcqRel);
            }) {
            Ok(h) => handles.push(h),
            Err(_) => {
                active.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
}

/// Read the request head: up to the blank line, [`MAX_REQUEST`] bytes and
/// [`REQUEST_TIMEOUT`] at most. `None` when the client sent no complete head.
fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let end = Instant::now() + REQUEST_TIMEOUT;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return (!head.is_empty()).then_some(head);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Some(head);
        }
        if head.len() > MAX_REQUEST {
            return Some(head);
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

fn serve<S: Source>(mut stream: TcpStream, source: &S) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    match route(&head) {
        (200, true, head_only) => {
            let body = source.metrics();
            respond(
                stream,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
                head_only,
            )
        }
        (200, false, head_only) => respond(
            stream,
            200,
            "text/plain; charset=utf-8",
            b"rondo: metrics at /metrics\n",
            head_only,
        ),
        (code, _, head_only) => respond(
            stream,
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

fn respond(mut stream: TcpStream, code: u16, ctype: &str, body: &[u8], head_only: bool) {
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.0 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        reason(code),
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    if !head_only {
        let _ = stream.write_all(body);
    }
    let _ = stream.flush();
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
}
