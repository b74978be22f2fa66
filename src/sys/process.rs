//! Process control that std does not offer.
#![allow(unsafe_code)]

use std::io;

/// Send SIGKILL to every process of process group `pgid` (a child started with
/// `CommandExt::process_group(0)` leads the group whose id is its pid).
///
/// Refuses 0 and ids that are not positive `pid_t`s, which `kill(2)` would read as "my own
/// group" or "every process I may signal".
pub fn kill_process_group(pgid: u32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a process group id"))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `-pgid` with
    // pgid > 1 names exactly one process group, never our own group (0) or every process
    // (-1).
    let rc = unsafe { libc::kill(-pgid, libc::SIGKILL) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Let SIGPIPE end the process, as it does every Unix filter (`rondo table show ... |
/// head`): Rust ignores SIGPIPE, so a print to a closed pipe would panic instead. Only for
/// commands whose sole output is stdout; servers keep it ignored (a client hanging up
/// must not kill them).
pub fn default_sigpipe() {
    // SAFETY: signal(2) with SIG_DFL installs no handler of ours; it only changes what the
    // kernel does on SIGPIPE for this process.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_ids_that_are_not_a_single_group() {
        for bad in [0, 1, u32::MAX] {
            assert_eq!(
                kill_process_group(bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    fn kills_a_group() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        kill_process_group(child.id()).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
    }
}
