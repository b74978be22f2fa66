//! One health check: what it probes ([`Target`]) and how ([`run`]): HTTP GET with GLB's
//! status-200 rule, TCP connect, or the GUE tunnel probe ([`super::gue`]).
//!
//! Every check is bounded by its timeout, measured from its start to its verdict: connect,
//! send and every read use the time left, so a peer that accepts and never answers, trickles
//! one byte at a time or sends garbage gives a failed check, never a stuck one.

use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::table::Backend;

/// The kind of a check and what it needs beyond the address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckKind {
    /// `GET http://ip:port<uri>`; passes on status 200.
    Http { uri: String },
    /// A TCP connection is accepted.
    Tcp,
    /// A GUE-encapsulated ICMP echo request to `ip:port` is answered (GLB's tunnel check).
    Gue,
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Http { .. } => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::Gue => "gue",
        }
    }
}

/// One thing to check. GLB checks each distinct (kind, ip, port, uri) once per round, however
/// many tables list the backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub kind: CheckKind,
    pub ip: IpAddr,
    pub port: u16,
}

impl Target {
    /// The checks configured for `backend`, in GLB's order (http, gue, tcp). An `http_uri`
    /// without a leading `/` gets one; a missing one is `/` (GLB's default).
    pub fn of_backend(backend: &Backend) -> Vec<Target> {
        let hc = &backend.healthchecks;
        let mut out = Vec::with_capacity(3);
        if let Some(port) = hc.http {
            let uri = match hc.http_uri.as_deref() {
                None | Some("") => "/".to_string(),
                Some(u) if u.starts_with('/') => u.to_string(),
                Some(u) => format!("/{u}"),
            };
            out.push(Target {
                kind: CheckKind::Http { uri },
                ip: backend.ip,
                port,
            });
        }
        if let Some(port) = hc.gue {
            out.push(Target {
                kind: CheckKind::Gue,
                ip: backend.ip,
                port,
            });
        }
        if let Some(port) = hc.tcp {
            out.push(Target {
                kind: CheckKind::Tcp,
                ip: backend.ip,
                port,
            });
        }
        out
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            CheckKind::Http { uri } => write!(f, "http://{}{uri}", self.addr()),
            other => write!(f, "{} {}", other.name(), self.addr()),
        }
    }
}

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("no answer after {} ms ({stage})", .after.as_millis())]
    Timeout {
        stage: &'static str,
        after: Duration,
    },
    #[error("connect: {0}")]
    Connect(String),
    #[error("{stage}: {message}")]
    Io {
        stage: &'static str,
        message: String,
    },
    #[error("HTTP server responded with {0}, expecting 200")]
    Status(u16),
    #[error("not an HTTP response: {0}")]
    Malformed(String),
    #[error("connection closed after {0} bytes, before the end of the HTTP headers")]
    Truncated(usize),
    #[error("HTTP response headers longer than {0} bytes")]
    TooLong(usize),
    #[error("http_uri {0:?} cannot be sent: it holds spaces or control characters")]
    BadUri(String),
    #[error("{0} answered ICMP port unreachable: nothing listens there for GUE")]
    PortUnreachable(SocketAddr),
    #[error("cannot open a raw {family} socket to receive the echo reply (needs root or CAP_NET_RAW): {message}")]
    RawSocket {
        family: &'static str,
        message: String,
    },
}

/// Largest HTTP response head accepted (status line plus headers).
pub const MAX_HTTP_HEAD: usize = 64 * 1024;

/// Run one check, bounded by `timeout`.
pub fn run(target: &Target, timeout: Duration) -> Result<(), CheckError> {
    let deadline = Instant::now() + timeout;
    match &target.kind {
        CheckKind::Http { uri } => http(target.addr(), uri, deadline),
        CheckKind::Tcp => tcp(target.addr(), deadline).map(drop),
        CheckKind::Gue => super::gue::check(target.ip, target.port, deadline),
    }
}

/// Time left before `deadline`, or a timeout error naming `stage`. Socket timeouts must not
/// be zero, so "nothing left" is an error here rather than a zero timeout there.
pub(crate) fn left(
    deadline: Instant,
    started: Instant,
    stage: &'static str,
) -> Result<Duration, CheckError> {
    let now = Instant::now();
    match deadline.checked_duration_since(now) {
        Some(d) if d >= Duration::from_micros(100) => Ok(d),
        _ => Err(CheckError::Timeout {
            stage,
            after: now.saturating_duration_since(started),
        }),
    }
}

pub(crate) fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// TCP connect within the time left.
fn tcp(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, CheckError> {
    let started = Instant::now();
    let budget = left(deadline, started, "connect")?;
    TcpStream::connect_timeout(&addr, budget).map_err(|e| {
        if is_timeout(&e) {
            CheckError::Timeout {
                stage: "connect",
                after: started.elapsed(),
            }
        } else {
            CheckError::Connect(e.to_string())
        }
    })
}

/// The request GLB's Go client sends, minus what does not matter to a server.
fn request(addr: SocketAddr, uri: &str) -> Result<Vec<u8>, CheckError> {
    if uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(CheckError::BadUri(uri.to_string()));
    }
    Ok(format!(
        "GET {uri} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: rondo-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes())
}

/// HTTP GET: passes when the response head is complete and its status is 200 (the body is
/// not read, as GLB closes it unread).
fn http(addr: SocketAddr, uri: &str, deadline: Instant) -> Result<(), CheckError> {
    let req = request(addr, uri)?;
    let started = Instant::now();
    let mut s = tcp(addr, deadline)?;
    let _ = s.set_nodelay(true);
    let io = |stage: &'static str| {
        move |e: std::io::Error| {
            if is_timeout(&e) {
                CheckError::Timeout {
                    stage,
                    after: started.elapsed(),
                }
            } else {
                CheckError::Io {
                    stage,
                    message: e.to_string(),
                }
            }
        }
    };
    s.set_write_timeout(Some(left(deadline, started, "send request")?))
        .map_err(io("send request"))?;
    s.write_all(&req).map_err(io("send request"))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    loop {
        let budget = left(deadline, started, "read response")?;
        s.set_read_timeout(Some(budget))
            .map_err(io("read response"))?;
        let n = s.read(&mut buf).map_err(io("read response"))?;
        if n == 0 {
            // Closed: judge what arrived (a bad status line says more than "truncated").
            return match parse_head(&head)? {
                Some(200) => Ok(()),
                Some(code) => Err(CheckError::Status(code)),
                None => Err(CheckError::Truncated(head.len())),
            };
        }
        head.extend_from_slice(&buf[..n]);
        match parse_head(&head)? {
            Some(200) => return Ok(()),
            Some(code) => return Err(CheckError::Status(code)),
            None if head.len() > MAX_HTTP_HEAD => return Err(CheckError::TooLong(MAX_HTTP_HEAD)),
            None => {}
        }
    }
}

/// Judge the bytes of an HTTP response received so far.
///
/// - `Ok(Some(status))`: the head (status line and headers, up to the empty line) is complete
///   and well formed.
/// - `Ok(None)`: more bytes are needed; what arrived is a valid beginning.
/// - `Err`: not HTTP (garbage), decided as early as possible: a wrong first byte fails at once.
///
/// As Go's client: `HTTP/<digit>.<digit> <3-digit status>[ reason]`, then header lines that
/// each hold a `:` (lines may end in CRLF or bare LF); a status other than 200 fails.
pub fn parse_head(data: &[u8]) -> Result<Option<u16>, CheckError> {
    const PREFIX: &[u8] = b"HTTP/";
    let cut = data.len().min(PREFIX.len());
    if data[..cut] != PREFIX[..cut] {
        return Err(CheckError::Malformed(format!(
            "starts with {:?}",
            printable(&data[..data.len().min(32)])
        )));
    }
    let Some(eol) = data.iter().position(|&b| b == b'\n') else {
        if data.len() > MAX_HTTP_HEAD {
            return Err(CheckError::TooLong(MAX_HTTP_HEAD));
        }
        return Ok(None);
    };
    let status = status_line(trim_cr(&data[..eol]))?;
    let mut rest = &data[eol + 1..];
    loop {
        let Some(eol) = rest.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line = trim_cr(&rest[..eol]);
        if line.is_empty() {
            return Ok(Some(status));
        }
        if !line.contains(&b':') {
            return Err(CheckError::Malformed(format!(
                "header line without a colon: {:?}",
                printable(&line[..line.len().min(64)])
            )));
        }
        rest = &rest[eol + 1..];
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn status_line(line: &[u8]) -> Result<u16, CheckError> {
    let bad = || {
        CheckError::Malformed(format!(
            "bad status line {:?}",
            printable(&line[..line.len().min(64)])
        ))
    };
    // "HTTP/1.1 200" is 12 bytes; the reason phrase is optional.
    let version = line.get(5..8).ok_or_else(bad)?;
    if !(version[0].is_ascii_digit() && version[1] == b'.' && version[2].is_ascii_digit()) {
        return Err(bad());
    }
    if line.get(8) != Some(&b' ') {
        return Err(bad());
    }
    let code = line.get(9..12).ok_or_else(bad)?;
    if !code.iter().all(u8::is_ascii_digit) || !matches!(line.get(12), None | Some(b' ')) {
        return Err(bad());
    }
    Ok(code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0')))
}

fn printable(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{BackendState, HealthChecks};

    #[test]
    fn parses_status_200_and_others() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap(), Some(200));
        assert_eq!(parse_head(b"HTTP/1.0 200\n\n").unwrap(), Some(200));
        assert_eq!(
            parse_head(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\nbody")
                .unwrap(),
            Some(500)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap(),
            Some(204)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\n").unwrap(),
            Some(301)
        );
    }

    #[test]
    fn incomplete_heads_wait_for_more() {
        for part in [
            &b""[..],
            b"H",
            b"HTTP/",
            b"HTTP/1.1 200 OK",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nServer: x\r\n",
            b"HTTP/1.1 200 OK\r\nServer: x\r\n\r",
        ] {
            assert_eq!(parse_head(part).unwrap(), None, "{:?}", printable(part));
        }
    }

    #[test]
    fn garbage_fails_early() {
        for bad in [
            &b"garbage"[..],
            b"\x00\x01\x02",
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"HTTP/x.y 200 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"http/1.1 200 OK\r\n\r\n",
        ] {
            let e = parse_head(bad).unwrap_err();
            assert!(
                matches!(e, CheckError::Malformed(_)),
                "{:?}: {e}",
                printable(bad)
            );
        }
    }

    #[test]
    fn parse_head_never_panics_on_any_prefix() {
        let full = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n";
        for i in 0..=full.len() {
            let _ = parse_head(&full[..i]);
        }
        // Every byte value at every position of a short buffer.
        for pos in 0..14 {
            for b in 0..=255u8 {
                let mut v = b"HTTP/1.1 200 \r\n\r\n".to_vec();
                v[pos] = b;
                let _ = parse_head(&v);
            }
        }
    }

    #[test]
    fn targets_follow_glb_order_and_uri_default() {
        let b = Backend {
            ip: "10.0.0.1".parse().unwrap(),
            state: BackendState::Active,
            healthy: true,
            weight: 1,
            healthchecks: HealthChecks {
                http: Some(80),
                http_uri: Some("status".into()),
                tcp: Some(22),
                gue: Some(19523),
            },
        };
        let t = Target::of_backend(&b);
        let shown: Vec<String> = t.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "http://10.0.0.1:80/status",
                "gue 10.0.0.1:19523",
                "tcp 10.0.0.1:22"
            ]
        );
        let mut b6 = b.clone();
        b6.ip = "fd00::1".parse().unwrap();
        b6.healthchecks.http_uri = None;
        assert_eq!(
            Target::of_backend(&b6)[0].to_string(),
            "http://[fd00::1]:80/"
        );
        let none = Backend {
            healthchecks: HealthChecks::default(),
            ..b
        };
        assert!(Target::of_backend(&none).is_empty());
    }

    #[test]
    fn uri_with_spaces_is_refused_before_connecting() {
        let t = Target {
            kind: CheckKind::Http { uri: "/a b".into() },
            ip: "127.0.0.1".parse().unwrap(),
            port: 1,
        };
        assert!(matches!(
            run(&t, Duration::from_millis(50)),
            Err(CheckError::BadUri(_))
        ));
    }
}
