//! `rondo console`: attach to a running `rondo run` through its console socket.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::DEFAULT_CONSOLE_SOCKET;
use crate::console::client::{repl, run_commands, Remote};

#[derive(clap::Args, Debug)]
pub struct ConsoleArgs {
    /// The director's console socket ([console] socket in its config).
    #[arg(long, short = 's', default_value = DEFAULT_CONSOLE_SOCKET)]
    socket: PathBuf,
    /// Run this command and exit (repeatable; exit status 1 if any fails). Without -c:
    /// interactive on a terminal, else one command per line of standard input.
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    commands: Vec<String>,
    /// Seconds to wait for a reply.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// `Ok(true)` when every command succeeded.
pub fn run(a: &ConsoleArgs) -> Result<bool, String> {
    let mut remote = Remote::connect(&a.socket, Duration::from_secs(a.timeout.max(1)))?;
    if !a.commands.is_empty() {
        return run_commands(&mut remote, &a.commands);
    }
    let banner = format!(
        "rondo console on {}: `help` lists commands, tab completes, `quit` leaves",
        a.socket.display()
    );
    repl(remote, &banner)
}
