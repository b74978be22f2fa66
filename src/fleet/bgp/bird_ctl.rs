//! A client for BIRD 2's control socket (the unix stream socket of `bird -s`), speaking the
//! line protocol `birdc` speaks, without spawning `birdc`.
//!
//! The protocol (BIRD's `client/client.c`, `nest/cli.c`, `doc/reply_codes`): on connect the
//! daemon greets with `0001 BIRD <version> ready.`; a command is one line; the reply is
//! lines of `DDDD-text` (more follow), ` text` (continues the previous code) and a final
//! `DDDD text` (DDDD a 4-digit code); `+text` is an asynchronous message. Codes 0xxx are
//! success, 1xxx/2xxx table rows and headings, 8xxx run-time errors (8002: configuration
//! file error, `FILE:LINE:COL message`), 9xxx parse errors.
//!
//! Every operation has a deadline (connect, each write and read), so a hung daemon never
//! hangs the caller. Parsing is total: any bytes give a [`Reply`] or a [`CtlError`].

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most bytes one reply may take (a `show route all` of a full table is far more, but
/// Rondo never asks for one).
pub const REPLY_LIMIT: usize = 4 << 20;

/// What went wrong talking to BIRD.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("BIRD control socket {path}: no such file (is bird running with `-s {path}`?)")]
    SocketMissing { path: PathBuf },
    #[error("BIRD control socket {path}: connection refused (the socket exists but no bird daemon is listening: not running?)")]
    NotRunning { path: PathBuf },
    #[error(
        "BIRD control socket {path}: permission denied (rondo needs write access to the socket)"
    )]
    Permission { path: PathBuf },
    #[error("BIRD control socket {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("BIRD control socket {path}: no complete reply to {command:?} within {}ms (daemon hung or overloaded?)", .after.as_millis())]
    Timeout {
        path: PathBuf,
        command: String,
        after: Duration,
    },
    #[error("BIRD control socket {path}: the daemon closed the connection during the reply to {command:?}")]
    Closed { path: PathBuf, command: String },
    #[error("BIRD refused the configuration: {file}:{line}:{column}: {message}")]
    ConfigRefused {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("BIRD answered {command:?} with error {code}: {message}")]
    Command {
        command: String,
        code: u16,
        message: String,
    },
    #[error("BIRD's reply to {command:?} is not what was expected: {what} (reply: {excerpt:?})")]
    Unexpected {
        command: String,
        what: String,
        excerpt: String,
    },
}

/// One line of a reply: its code (the code of the line it continues for ` text`) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub code: u16,
    pub text: String,
}

/// A complete reply: every line, the last one carrying the final code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub lines: Vec<Line>,
}

impl Reply {
    /// The final line's code.
    pub fn code(&self) -> u16 {
        self.lines.last().map_or(0, |l| l.code)
    }

    /// The final line's text.
    pub fn message(&self) -> &str {
        self.lines.last().map_or("", |l| l.text.as_str())
    }

    /// 8xxx or 9xxx.
    pub fn is_error(&self) -> bool {
        self.code() >= 8000
    }

    /// The reply as text, one line each (for logs and errors).
    pub fn text(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(&l.text);
            s.push('\n');
        }
        s
    }

    /// Lines of code `code`.
    pub fn with_code(&self, code: u16) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .filter(move |l| l.code == code)
            .map(|l| l.text.as_str())
    }
}

/// A line the protocol does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine(pub String);

/// Parse one reply from the start of `buf`: `Ok(Some((reply, consumed)))` once its final
/// line is there, `Ok(None)` when more bytes are needed, `Err` on a line that is not of the
/// protocol. Asynchronous `+` lines are skipped. Total: never panics on any input.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, BadLine> {
    let mut lines = Vec::new();
    let mut pos = 0;
    let mut last_code: Option<u16> = None;
    while let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') {
        let raw = &buf[pos..pos + nl];
        pos += nl + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = String::from_utf8_lossy(raw);
        match raw.first() {
            Some(b'+') => continue,
            Some(b' ') => {
                let Some(code) = last_code else {
                    return Err(BadLine(format!("continuation before any code: {text:?}")));
                };
                lines.push(Line {
                    code,
                    text: text[1..].to_string(),
                });
            }
            _ => {
                let code = raw
                    .get(..4)
                    .filter(|d| d.iter().all(u8::is_ascii_digit))
                    .map(|d| d.iter().fold(0u16, |n, &b| n * 10 + u16::from(b - b'0')));
                let (Some(code), Some(&sep)) = (code, raw.get(4)) else {
                    return Err(BadLine(format!("not a BIRD reply line: {text:?}")));
                };
                if sep != b' ' && sep != b'-' {
                    return Err(BadLine(format!("not a BIRD reply line: {text:?}")));
                }
                last_code = Some(code);
                lines.push(Line {
                    code,
                    text: String::from_utf8_lossy(&raw[5..]).into_owned(),
                });
                if sep == b' ' {
                    return Ok(Some((Reply { lines }, pos)));
                }
            }
        }
    }
    Ok(None)
}

/// A connection to BIRD's control socket; one per operation is the intended use (a
/// restarted daemon is then picked up by the next call).
#[derive(Debug)]
pub struct BirdCtl {
    stream: UnixStream,
    path: PathBuf,
    timeout: Duration,
    buf: Vec<u8>,
    /// The daemon's greeting, e.g. `BIRD 2.0.12 ready.`.
    pub greeting: String,
}

impl BirdCtl {
    /// Connect to `path` and read the greeting, each step bounded by `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<BirdCtl, CtlError> {
        let stream = UnixStream::connect(path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => CtlError::SocketMissing {
                path: path.to_path_buf(),
            },
            Some(libc::ECONNREFUSED) => CtlError::NotRunning {
                path: path.to_path_buf(),
            },
            Some(libc::EACCES) | Some(libc::EPERM) => CtlError::Permission {
                path: path.to_path_buf(),
            },
            _ => CtlError::Io {
                path: path.to_path_buf(),
                op: "connecting",
                source: e,
            },
        })?;
        let io = |op, source| CtlError::Io {
            path: path.to_path_buf(),
            op,
            source,
        };
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| io("setting the write timeout", e))?;
        let mut ctl = BirdCtl {
            stream,
            path: path.to_path_buf(),
            timeout,
            buf: Vec::new(),
            greeting: String::new(),
        };
        let hello = ctl.read_reply("(greeting)")?;
        if hello.code() != 1 {
            return Err(ctl.unexpected("(greeting)", "expected code 0001 (ready)", &hello));
        }
        ctl.greeting = hello.message().to_string();
        Ok(ctl)
    }

    fn unexpected(&self, command: &str, what: &str, r: &Reply) -> CtlError {
        unexpected(command, what, &r.text())
    }

    /// Send `command` (one line; refused if it holds a newline) and read its reply. An
    /// error reply is returned as a [`Reply`]; see [`BirdCtl::command`] for one that is an
    /// `Err`.
    pub fn request(&mut self, command: &str) -> Result<Reply, CtlError> {
        if command.contains(['\n', '\r']) {
            return Err(unexpected(command, "a command is one line", ""));
        }
        let mut line = Vec::with_capacity(command.len() + 1);
        line.extend_from_slice(command.as_bytes());
        line.push(b'\n');
        self.stream
            .write_all(&line)
            .map_err(|e| self.io_err(command, "sending a command", e))?;
        self.read_reply(command)
    }

    /// [`BirdCtl::request`], with an 8xxx/9xxx reply as [`CtlError::Command`] (or
    /// [`CtlError::ConfigRefused`] for 8002).
    pub fn command(&mut self, command: &str) -> Result<Reply, CtlError> {
        let r = self.request(command)?;
        if r.is_error() {
            return Err(reply_error(command, &r));
        }
        Ok(r)
    }

    fn io_err(&self, command: &str, op: &'static str, e: io::Error) -> CtlError {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            CtlError::Timeout {
                path: self.path.clone(),
                command: command.to_string(),
                after: self.timeout,
            }
        } else {
            CtlError::Io {
                path: self.path.clone(),
                op,
                source: e,
            }
        }
    }

    fn read_reply(&mut self, command: &str) -> Result<Reply, CtlError> {
        let deadline = Instant::now() + self.timeout;
        let mut chunk = [0u8; 8192];
        loop {
            match parse_reply(&self.buf) {
                Ok(Some((r, used))) => {
                    self.buf.drain(..used);
                    return Ok(r);
                }
                Ok(None) => {}
                Err(BadLine(what)) => {
                    let excerpt =
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(512)]).into_owned();
                    return Err(unexpected(command, &what, &excerpt));
                }
            }
            if self.buf.len() > REPLY_LIMIT {
                return Err(unexpected(
                    command,
                    &format!("reply longer than {REPLY_LIMIT} bytes"),
                    "",
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.io_err(command, "reading", io::ErrorKind::TimedOut.into()));
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| self.io_err(command, "setting the read timeout", e))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(CtlError::Closed {
                        path: self.path.clone(),
                        command: command.to_string(),
                    })
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(command, "reading a reply", e)),
            }
        }
    }

    /// `configure check`: parse the daemon's config (and so the include) without applying it.
    pub fn configure_check(&mut self) -> Result<Reply, CtlError> {
        let r = self.command("configure check")?;
        expect_code("configure check", &r, &[20])?;
        Ok(r)
    }

    /// `configure`: apply the daemon's config file. Success is 0003 (reconfigured), 0004
    /// (in progress: protocols restart in the background), 0005 (queued behind one in
    /// progress) or 0019 (nothing to do).
    pub fn configure(&mut self) -> Result<Reply, CtlError> {
        let r = self.command("configure")?;
        expect_code("configure", &r, &[3, 4, 5, 19])?;
        Ok(r)
    }

    /// `show protocols all NAME`.
    pub fn show_protocol(&mut self, name: &str) -> Result<ProtocolStatus, CtlError> {
        let cmd = format!("show protocols all \"{name}\"");
        if name.contains(['"', '\\']) {
            return Err(unexpected(&cmd, "a protocol name holds no quote", ""));
        }
        let r = self.command(&cmd)?;
        parse_protocol(&r).map_err(|what| unexpected(&cmd, &what, &r.text()))
    }

    /// `show status`: when the daemon started (its `Last reboot on` line), which tells one
    /// run of the daemon from the next (a restarted bird must be given the announcements
    /// again: it read whatever include was on disk).
    pub fn show_status(&mut self) -> Result<String, CtlError> {
        let cmd = "show status";
        let r = self.command(cmd)?;
        parse_last_reboot(&r).ok_or_else(|| unexpected(cmd, "no `Last reboot on` line", &r.text()))
    }

    /// `show bfd sessions`.
    pub fn show_bfd_sessions(&mut self) -> Result<Vec<BfdSession>, CtlError> {
        let cmd = "show bfd sessions";
        let r = self.command(cmd)?;
        parse_bfd_sessions(&r).map_err(|what| unexpected(cmd, &what, &r.text()))
    }
}

fn unexpected(command: &str, what: &str, excerpt: &str) -> CtlError {
    let mut excerpt = excerpt.to_string();
    if excerpt.len() > 512 {
        let mut cut = 512;
        while !excerpt.is_char_boundary(cut) {
            cut -= 1;
        }
        excerpt.truncate(cut);
    }
    CtlError::Unexpected {
        command: command.to_string(),
        what: what.to_string(),
        excerpt,
    }
}

fn expect_code(command: &str, r: &Reply, ok: &[u16]) -> Result<(), CtlError> {
    if ok.contains(&r.code()) {
        Ok(())
    } else {
        Err(unexpected(
            command,
            &format!("final code {:04}, expected one of {ok:?}", r.code()),
            &r.text(),
        ))
    }
}

/// The error an 8xxx/9xxx reply stands for.
pub fn reply_error(command: &str, r: &Reply) -> CtlError {
    if r.code() == 8002 {
        if let Some(e) = config_error(r.message()) {
            return e;
        }
    }
    CtlError::Command {
        command: command.to_string(),
        code: r.code(),
        message: r.message().to_string(),
    }
}

/// `FILE:LINE:COL message` (BIRD's 8002 text) as [`CtlError::ConfigRefused`].
fn config_error(msg: &str) -> Option<CtlError> {
    let (loc, message) = msg.split_once(' ')?;
    let mut it = loc.rsplitn(3, ':');
    let column = it.next()?.parse().ok()?;
    let line = it.next()?.parse().ok()?;
    let file = it.next()?.to_string();
    Some(CtlError::ConfigRefused {
        file,
        line,
        column,
        message: message.to_string(),
    })
}

/// The `Last reboot on TIME` of a `show status` reply (TIME as BIRD prints it).
pub fn parse_last_reboot(r: &Reply) -> Option<String> {
    r.lines.iter().find_map(|l| {
        l.text
            .trim()
            .strip_prefix("Last reboot on ")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    })
}

/// A BGP session's state as BIRD names it (`BGP state:` of `show protocols all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BgpState {
    Down,
    Passive,
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
    Close,
    /// A name this version does not know.
    Other(String),
}

impl BgpState {
    pub fn parse(s: &str) -> BgpState {
        match s {
            "Down" => BgpState::Down,
            "Passive" => BgpState::Passive,
            "Idle" => BgpState::Idle,
            "Connect" => BgpState::Connect,
            "Active" => BgpState::Active,
            "OpenSent" => BgpState::OpenSent,
            "OpenConfirm" => BgpState::OpenConfirm,
            "Established" => BgpState::Established,
            "Close" => BgpState::Close,
            o => BgpState::Other(o.to_string()),
        }
    }
}

/// One protocol of `show protocols all NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolStatus {
    pub name: String,
    /// `BGP`, `Static`, `BFD`, ...
    pub proto: String,
    /// BIRD's protocol state: `up`, `start`, `down`, `flush`, ...
    pub state: String,
    /// The info column (for BGP: the session state and, when down, why).
    pub info: String,
    /// BGP protocols only.
    pub bgp_state: Option<BgpState>,
    pub neighbor: Option<IpAddr>,
    /// `Last error:` when BIRD reports one.
    pub last_error: Option<String>,
}

impl ProtocolStatus {
    pub fn is_established(&self) -> bool {
        self.bgp_state == Some(BgpState::Established)
    }
}

/// Parse the reply of `show protocols all NAME` (one protocol).
pub fn parse_protocol(r: &Reply) -> Result<ProtocolStatus, String> {
    let row = r
        .with_code(1002)
        .next()
        .ok_or("no protocol row (code 1002)")?;
    // Name Proto Table State Since Info; Since may be one or two words (time or date time),
    // so the info column is taken after the state.
    let mut words = row.split_whitespace();
    let (Some(name), Some(proto), Some(_table), Some(state)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(format!("protocol row {row:?} has fewer than 4 columns"));
    };
    let rest: Vec<&str> = words.collect();
    // The Since column is one word (hh:mm:ss.sss) or, past a day, a date and maybe a time.
    let skip = match rest.get(1) {
        Some(w) if w.contains(':') && rest.first().is_some_and(|d| d.contains('-')) => 2,
        _ => 1,
    };
    let info = rest.get(skip..).unwrap_or(&[]).join(" ");
    let mut st = ProtocolStatus {
        name: name.to_string(),
        proto: proto.to_string(),
        state: state.to_string(),
        info,
        bgp_state: None,
        neighbor: None,
        last_error: None,
    };
    for l in r.with_code(1006) {
        let l = l.trim();
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k {
            "BGP state" => st.bgp_state = Some(BgpState::parse(v)),
            "Neighbor address" => {
                // `10.0.0.2` or `fe80::1%eth0`.
                st.neighbor = v.split('%').next().and_then(|a| a.parse().ok())
            }
            "Last error" => st.last_error = Some(v.to_string()),
            _ => {}
        }
    }
    if st.proto == "BGP" && st.bgp_state.is_none() {
        return Err(format!("BGP protocol {name} without a 'BGP state:' line"));
    }
    Ok(st)
}

/// A BFD session's state (RFC 5880).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BfdState {
    AdminDown,
    Down,
    Init,
    Up,
    Other(String),
}

/// One row of `show bfd sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdSession {
    /// The BFD protocol instance (`bfd1`).
    pub protocol: String,
    pub peer: IpAddr,
    /// `---` for multihop sessions.
    pub interface: String,
    pub state: BfdState,
}

/// Parse the reply of `show bfd sessions`: per BFD protocol a `NAME:` line (code 1020), a
/// heading, then one row per session: address, interface, state, since, interval, timeout.
pub fn parse_bfd_sessions(r: &Reply) -> Result<Vec<BfdSession>, String> {
    let mut out = Vec::new();
    let mut protocol: Option<String> = None;
    for l in r.with_code(1020) {
        let t = l.trim();
        if t.is_empty() || t.starts_with("IP address") {
            continue;
        }
        if let Some(name) = t.strip_suffix(':').filter(|n| !n.contains(' ')) {
            protocol = Some(name.to_string());
            continue;
        }
        let mut w = t.split_whitespace();
        let (Some(peer), Some(interface), Some(state)) = (w.next(), w.next(), w.next()) else {
            return Err(format!("BFD row {t:?} has fewer than 3 columns"));
        };
        let peer = peer
            .split('%')
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("BFD row {t:?}: {peer:?} is not an address"))?;
        let state = match state {
            "AdminDown" => BfdState::AdminDown,
            "Down" => BfdState::Down,
            "Init" => BfdState::Init,
            "Up" => BfdState::Up,
            o => BfdState::Other(o.to_string()),
        };
        out.push(BfdSession {
            protocol: protocol
                .clone()
                .ok_or_else(|| format!("BFD row {t:?} before any protocol name"))?,
            peer,
            interface: interface.to_string(),
            state,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
