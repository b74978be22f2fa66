//! Console front ends: `rondo console` over the socket ([`Remote`]) and `rondo run -i` in
//! process ([`Local`]). On a terminal: line editing, history (`~/.rondo_history`) and tab
//! completion through rustyline; otherwise (a pipe, a script) one command per input line.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::exec::{Executor, Origin, Session};
use super::{read_reply, Reply, MAX_LINE};

/// Something that runs console lines.
pub trait Console {
    /// Run one line; `Err` when the console cannot be reached any more.
    fn send(&mut self, line: &str) -> Result<Reply, String>;
    /// Completion candidates for the last word of `partial`.
    fn complete(&mut self, partial: &str) -> Vec<String>;
}

/// A session on a running director's console socket.
pub struct Remote {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Remote {
    /// Connect to the socket at `path`; replies wait at most `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Remote, String> {
        let s = UnixStream::connect(path).map_err(|e| {
            format!(
                "cannot connect to the console socket {}: {e} (is `rondo run` running, and is \
                 this the socket it serves? see `[console] socket` or --console-socket)",
                path.display()
            )
        })?;
        let _ = s.set_read_timeout(Some(timeout));
        let _ = s.set_write_timeout(Some(timeout));
        let writer = s.try_clone().map_err(|e| format!("console socket: {e}"))?;
        Ok(Remote {
            reader: BufReader::new(s),
            writer,
        })
    }
}

impl Console for Remote {
    fn send(&mut self, line: &str) -> Result<Reply, String> {
        if line.contains('\n') {
            return Err("one command per line".into());
        }
        if line.len() > MAX_LINE {
            return Err(format!("line longer than {MAX_LINE} bytes"));
        }
        let mut msg = line.as_bytes().to_vec();
        msg.push(b'\n');
        self.writer
            .write_all(&msg)
            .map_err(|e| format!("console socket: {e}"))?;
        match read_reply(&mut self.reader) {
            Ok(Some(mut r)) => {
                // The server ends the session after `quit`.
                r.close = r.ok
                    && matches!(
                        super::grammar::parse(line),
                        Ok(Some(super::grammar::Command::Quit))
                    );
                Ok(r)
            }
            Ok(None) => Err("the director closed the console session".into()),
            Err(e) => Err(format!("console socket: {e}")),
        }
    }

    fn complete(&mut self, partial: &str) -> Vec<String> {
        match self.send(&format!("complete {partial}")) {
            Ok(r) if r.ok => r.text.lines().map(str::to_string).collect(),
            _ => Vec::new(),
        }
    }
}

/// The console inside `rondo run -i`.
pub struct Local {
    exec: Arc<Executor>,
    session: Session,
}

impl Local {
    pub fn new(exec: Arc<Executor>) -> Local {
        Local {
            exec,
            session: Session::new(Origin::Stdin),
        }
    }
}

impl Console for Local {
    fn send(&mut self, line: &str) -> Result<Reply, String> {
        Ok(self.exec.execute(&mut self.session, line))
    }
    fn complete(&mut self, partial: &str) -> Vec<String> {
        super::grammar::complete(partial, &self.exec.completion_context())
    }
}

struct LineHelper<C: Console> {
    console: RefCell<C>,
}

impl<C: Console> Completer for LineHelper<C> {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = line.get(..pos).unwrap_or(line);
        let start = head.rfind(char::is_whitespace).map_or(0, |i| {
            i + head[i..].chars().next().map_or(1, char::len_utf8)
        });
        let words = self.console.borrow_mut().complete(head);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

impl<C: Console> Hinter for LineHelper<C> {
    type Hint = String;
}

impl<C: Console> Highlighter for LineHelper<C> {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl<C: Console> Validator for LineHelper<C> {}
impl<C: Console> Helper for LineHelper<C> {}

/// Print a reply: normal output to stdout, errors to stderr.
fn print(r: &Reply) {
    if r.ok {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(r.text.as_bytes());
        let _ = out.flush();
    } else {
        eprint!("{}", r.text);
    }
}

/// Where the interactive history lives.
pub fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rondo_history"))
}

/// Run `commands` one after the other; `Ok(true)` when every one succeeded. Stops at a
/// lost connection.
pub fn run_commands<C: Console>(c: &mut C, commands: &[String]) -> Result<bool, String> {
    let mut all_ok = true;
    for cmd in commands {
        let r = c.send(cmd)?;
        print(&r);
        all_ok &= r.ok;
        if r.close {
            break;
        }
    }
    Ok(all_ok)
}

/// The read-eval-print loop on standard input, until `quit` or end of input. On a
/// terminal, `Ok(false)` only when the director went away; from a pipe, `Ok(true)` when
/// every command succeeded.
pub fn repl<C: Console>(c: C, banner: &str) -> Result<bool, String> {
    if !std::io::stdin().is_terminal() {
        return script(c);
    }
    let config = rustyline::Config::builder()
        .completion_type(rustyline::CompletionType::List)
        .max_history_size(1000)
        .map_err(|e| format!("terminal: {e}"))?
        .build();
    let mut ed: Editor<LineHelper<C>, FileHistory> =
        Editor::with_config(config).map_err(|e| format!("terminal: {e}"))?;
    ed.set_helper(Some(LineHelper {
        console: RefCell::new(c),
    }));
    let hist = history_file();
    if let Some(h) = &hist {
        let _ = ed.load_history(h);
    }
    println!("{banner}");
    let mut all_ok = true;
    loop {
        match ed.readline("rondo> ") {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = ed.add_history_entry(line.as_str());
                let Some(h) = ed.helper() else { break };
                let r = h.console.borrow_mut().send(&line);
                match r {
                    Ok(r) => {
                        // Interactive: a failed command is part of the dialogue, not a
                        // failure of the session.
                        print(&r);
                        if r.close {
                            break;
                        }
                    }
                    Err(e) => {
                        eprintln!("rondo: {e}");
                        all_ok = false;
                        break;
                    }
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(format!("terminal: {e}")),
        }
    }
    if let Some(h) = &hist {
        if let Err(e) = ed.save_history(h) {
            eprintln!("rondo: history not saved to {}: {e}", h.display());
        }
    }
    Ok(all_ok)
}

/// Commands from a pipe or file, one per line, no prompt.
fn script<C: Console>(mut c: C) -> Result<bool, String> {
    let stdin = std::io::stdin();
    let mut all_ok = true;
    let mut line = Vec::new();
    let mut input = stdin.lock();
    loop {
        line.clear();
        // Bounded: a line longer than the console takes is read in pieces and refused.
        let n = input
            .by_ref()
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("standard input: {e}"))?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') && n > MAX_LINE {
            // Skip the rest of the over-long line.
            let mut rest = Vec::new();
            let _ = input.read_until(b'\n', &mut rest);
            eprintln!("error: line longer than {MAX_LINE} bytes; it was skipped");
            all_ok = false;
            continue;
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.trim_end_matches(['\n', '\r']),
            Err(_) => {
                eprintln!("error: the line is not UTF-8 text; it was skipped");
                all_ok = false;
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        let r = c.send(text)?;
        print(&r);
        all_ok &= r.ok;
        if r.close {
            break;
        }
    }
    Ok(all_ok)
}
