//! The operator console: a testpmd-like command language over a unix socket served by
//! `rondo run` (and on standard input with `rondo run -i`), and the `rondo console` client.
//!
//! - [`grammar`]: commands, help, completion.
//! - [`exec`]: runs commands against the [`crate::runtime::plane::ControlPlane`].
//! - [`server`]: the socket (mode 0660 group `rondo` when that group exists, else 0600), one thread per session, bounded lines and sessions.
//! - [`client`]: the interactive client (line editing, history, completion) and `-c`.
//!
//! Protocol: the client sends one command per line (LF, at most [`MAX_LINE`] bytes, UTF-8).
//! The server answers with the reply's lines, each starting with `.` doubled (as SMTP does),
//! then `.ok` or `.error` alone on a line. Only complete lines run: a client that goes away
//! mid-line runs nothing.

pub mod client;
pub mod exec;
pub mod grammar;
pub mod server;

use std::io::BufRead;

/// Longest command line, in bytes (longer lines are answered with an error and skipped).
pub const MAX_LINE: usize = 4096;
/// Last line of a successful reply.
pub const END_OK: &str = ".ok";
/// Last line of a failed reply.
pub const END_ERR: &str = ".error";

/// A command's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub ok: bool,
    pub text: String,
    /// The session ends after this reply (`quit`).
    pub close: bool,
}

impl Reply {
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply {
            ok: true,
            text: text.into(),
            close: false,
        }
    }
    pub fn err(text: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            text: text.into(),
            close: false,
        }
    }
}

/// A reply as sent on the socket.
pub fn encode_reply(r: &Reply) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.text.len() + 16);
    for line in r.text.lines() {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(if r.ok { END_OK } else { END_ERR }.as_bytes());
    out.push(b'\n');
    out
}

/// Most bytes of reply a client accepts (a reply is never near this).
pub const MAX_REPLY: usize = 64 << 20;

/// Read one reply; `Ok(None)` when the server closed the connection first.
pub fn read_reply(r: &mut impl BufRead) -> std::io::Result<Option<Reply>> {
    let mut text = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let l = line.strip_suffix('\n').unwrap_or(&line);
        match l {
            END_OK | END_ERR => {
                return Ok(Some(Reply {
                    ok: l == END_OK,
                    text,
                    close: false,
                }))
            }
            _ => {
                text.push_str(l.strip_prefix('.').unwrap_or(l));
                text.push('\n');
                if text.len() > MAX_REPLY {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "reply larger than 64 MiB",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip_whatever_their_lines_start_with() {
        for (ok, text) in [
            (true, "plain\n"),
            (false, ".ok\n..error\n.\nlast\n"),
            (true, ""),
        ] {
            let r = Reply {
                ok,
                text: text.to_string(),
                close: false,
            };
            let bytes = encode_reply(&r);
            let mut cur = std::io::Cursor::new(bytes);
            let back = read_reply(&mut cur).unwrap().unwrap();
            assert_eq!(back, r);
            assert_eq!(read_reply(&mut cur).unwrap(), None, "nothing after");
        }
    }
}
