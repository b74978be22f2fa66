//! Claims on things only one process may drive (an interface, an output file), held as
//! a listening abstract unix socket named after the thing.
//!
//! Abstract socket names live in the network namespace, as interfaces do, and vanish
//! with the last descriptor, so a claim is released however its holder ends (SIGKILL
//! too): there is no stale lock file to clean up. Whoever finds the name taken connects
//! to it and asks the kernel (`SO_PEERCRED`) which process listens there.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

/// The longest abstract name (`sun_path` is 108 bytes, the first is the NUL).
pub const MAX_NAME: usize = 107;

/// Why a claim was not had.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another process holds it.
    #[error("{name} is held by {}", holder(*.pid))]
    Held { name: String, pid: Option<u32> },
    #[error("claim name {name:?} is empty or longer than {MAX_NAME} bytes")]
    BadName { name: String },
    #[error("claiming {name}: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("process {p}"),
        None => "another process (its pid could not be read)".into(),
    }
}

/// A held claim; dropping it releases the name.
#[derive(Debug)]
pub struct Claim {
    name: String,
    listener: UnixListener,
}

impl Claim {
    /// Take the abstract name `name` (without the leading NUL) in this network namespace.
    pub fn take(name: &str) -> Result<Claim, ClaimError> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(ClaimError::BadName { name: name.into() });
        }
        let io_err = |source| ClaimError::Io {
            name: name.into(),
            source,
        };
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).map_err(io_err)?;
        match UnixListener::bind_addr(&addr) {
            Ok(listener) => {
                listener.set_nonblocking(true).map_err(io_err)?;
                Ok(Claim {
                    name: name.into(),
                    listener,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(ClaimError::Held {
                name: name.into(),
                pid: holder_pid(&addr),
            }),
            Err(e) => Err(io_err(e)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Close the connections of processes that asked who holds the claim (so that they
    /// never fill the listen backlog). Never blocks.
    pub fn drain(&self) {
        while self.listener.accept().is_ok() {}
    }
}

/// The pid of the process listening on `addr`, from `SO_PEERCRED` of a connection to it.
fn holder_pid(addr: &SocketAddr) -> Option<u32> {
    let s = UnixStream::connect_addr(addr).ok()?;
    peer_pid(&s)
}

/// The pid of the peer of a connected unix stream socket (the process that called
/// `listen` or `connect` on the other end).
pub fn peer_pid(s: &UnixStream) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable `ucred`, the layout SO_PEERCRED fills, and `len` says
    // its size; both live across the call; the descriptor is owned by `s`.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0 && cred.pid > 0).then_some(cred.pid as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_exclusive_names_its_holder_and_is_released_on_drop() {
        let name = format!("rondo/test/claim:{}", std::process::id());
        let c = Claim::take(&name).unwrap();
        assert_eq!(c.name(), name);
        match Claim::take(&name) {
            Err(ClaimError::Held { name: n, pid }) => {
                assert_eq!(n, name);
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("{other:?}"),
        }
        let e = Claim::take(&name).unwrap_err().to_string();
        assert!(
            e.contains(&format!("process {}", std::process::id())),
            "{e}"
        );
        c.drain();
        drop(c);
        let _again = Claim::take(&name).unwrap();
        assert!(matches!(Claim::take(""), Err(ClaimError::BadName { .. })));
        assert!(matches!(
            Claim::take(&"x".repeat(MAX_NAME + 1)),
            Err(ClaimError::BadName { .. })
        ));
    }
}
