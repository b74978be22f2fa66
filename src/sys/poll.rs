//! Waiting for descriptors to become readable (`poll(2)`), for the threads that sleep
//! between bursts: the exception path on its TAP, `rondo redirect` on its GUE sockets;
//! and readable or writable ([`Poller`]) for the metrics endpoint's connections.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

/// Revents that make a descriptor "readable": data, or an error/hang-up state that the
/// next read reports.
const READABLE: libc::c_short = libc::POLLIN | libc::POLLERR | libc::POLLHUP;

/// `poll(2)` on `p`; the number of entries with revents, 0 on timeout or when a signal
/// interrupted the wait; `EBADF` when one entry is not an open descriptor.
fn poll_in(p: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    if p.iter().any(|q| q.fd < 0) {
        // poll(2) would silently skip a negative descriptor (and time out).
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `p` is a valid, writable array of `p.len()` pollfds living across the call;
    // poll(2) on any descriptor value is sound (a closed one is reported as POLLNVAL).
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            p.iter_mut().for_each(|q| q.revents = 0);
            Ok(0)
        } else {
            Err(e)
        };
    }
    if p.iter().any(|q| q.revents & libc::POLLNVAL != 0) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(r as usize)
}

fn entry(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Wait until `fd` is readable or `timeout_ms` passes (negative: no limit). `Ok(true)` when
/// readable (or in an error/hang-up state a read will report), `Ok(false)` on timeout or
/// when a signal interrupted the wait; `EBADF` for a negative or closed descriptor.
pub fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = [entry(fd)];
    poll_in(&mut p, timeout_ms)?;
    Ok(p[0].revents & READABLE != 0)
}

/// A fixed set of descriptors to wait on together; the `pollfd` array is made once.
#[derive(Debug)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    pub fn new(fds: &[RawFd]) -> PollSet {
        PollSet {
            fds: fds.iter().map(|&fd| entry(fd)).collect(),
        }
    }

    /// Wait until one of the descriptors is readable or `timeout_ms` passes; sets
    /// `ready[i]` for each readable descriptor `i` (as [`poll_readable`] judges it) and
    /// returns how many are (0 on timeout or when a signal interrupted the wait).
    pub fn wait(&mut self, timeout_ms: i32, ready: &mut [bool]) -> io::Result<usize> {
        ready.iter_mut().for_each(|r| *r = false);
        self.fds.iter_mut().for_each(|q| q.revents = 0);
        poll_in(&mut self.fds, timeout_ms)?;
        let mut n = 0;
        for (r, q) in ready.iter_mut().zip(&self.fds) {
            *r = q.revents & READABLE != 0;
            n += usize::from(*r);
        }
        Ok(n)
    }
}

/// A changing set of descriptors, each waited on for reading or for writing, for a
/// thread that multiplexes many connections (the metrics endpoint). The `pollfd` array is
/// kept across rounds: [`Poller::clear`], [`Poller::add`] each, [`Poller::wait`], then
/// [`Poller::ready`] by the index `add` gave.
#[derive(Debug, Default)]
pub struct Poller {
    fds: Vec<libc::pollfd>,
}

impl Poller {
    pub fn new() -> Poller {
        Poller::default()
    }

    /// Forget every descriptor (the array's room is kept).
    pub fn clear(&mut self) {
        self.fds.clear();
    }

    /// Wait on `fd` for reading, or for writing when `write`; returns its index.
    pub fn add(&mut self, fd: RawFd, write: bool) -> usize {
        self.fds.push(libc::pollfd {
            fd,
            events: if write { libc::POLLOUT } else { libc::POLLIN },
            revents: 0,
        });
        self.fds.len() - 1
    }

    /// Wait until a descriptor is ready or `timeout_ms` passes; how many are ready (0 on
    /// timeout or when a signal interrupted the wait). `EBADF` as [`poll_readable`].
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<usize> {
        self.fds.iter_mut().for_each(|q| q.revents = 0);
        poll_in(&mut self.fds, timeout_ms)
    }

    /// Whether entry `i` is ready for what it was added for, or in an error/hang-up state
    /// that the next read or write reports.
    pub fn ready(&self, i: usize) -> bool {
        self.fds
            .get(i)
            .is_some_and(|q| q.revents & (q.events | libc::POLLERR | libc::POLLHUP) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    /// A descriptor number that is certainly not open: above the process's limit.
    fn never_open() -> RawFd {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a writable rlimit living across the call.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        RawFd::try_from(lim.rlim_cur).unwrap_or(RawFd::MAX - 1) + 1
    }

    #[test]
    fn poll_reports_timeouts_readiness_and_bad_fds() {
        let (a, b) = UnixDatagram::pair().unwrap();
        assert!(!poll_readable(a.as_raw_fd(), 0).unwrap());
        b.send(b"x").unwrap();
        assert!(poll_readable(a.as_raw_fd(), 1000).unwrap());
        let mut buf = [0u8; 4];
        assert_eq!(a.recv(&mut buf).unwrap(), 1);
        assert!(!poll_readable(a.as_raw_fd(), 0).unwrap(), "drained");
        // The peer closed: readable (the read reports end of stream / an error).
        let (c, d) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(d);
        assert!(poll_readable(c.as_raw_fd(), 0).unwrap());
        // Negative and never-open descriptors are refused, not polled as "nothing yet".
        for fd in [-1, never_open()] {
            let e = poll_readable(fd, 0).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EBADF), "fd {fd}: {e}");
        }
    }

    #[test]
    fn pollers_wait_for_reading_or_writing() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut p = Poller::new();
        let r = p.add(a.as_raw_fd(), false);
        let w = p.add(b.as_raw_fd(), true);
        assert_eq!(p.wait(1000).unwrap(), 1);
        assert!(!p.ready(r) && p.ready(w), "writable, nothing to read");
        (&b).write_all(b"x").unwrap();
        p.clear();
        let r = p.add(a.as_raw_fd(), false);
        assert_eq!(p.wait(1000).unwrap(), 1);
        assert!(p.ready(r));
        assert!(!p.ready(7), "no such entry");
        p.clear();
        p.add(never_open(), false);
        assert_eq!(p.wait(0).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn poll_sets_mark_the_ready_descriptors() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let (c, d) = UnixDatagram::pair().unwrap();
        let mut set = PollSet::new(&[a.as_raw_fd(), c.as_raw_fd()]);
        let mut ready = [true, true];
        assert_eq!(set.wait(0, &mut ready).unwrap(), 0);
        assert_eq!(ready, [false, false]);
        d.send(b"x").unwrap();
        assert_eq!(set.wait(1000, &mut ready).unwrap(), 1);
        assert_eq!(ready, [false, true]);
        b.send(b"y").unwrap();
        assert_eq!(set.wait(1000, &mut ready).unwrap(), 2);
        assert_eq!(ready, [true, true]);
        let mut bad = PollSet::new(&[a.as_raw_fd(), never_open()]);
        let e = bad.wait(0, &mut ready).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
        let e = PollSet::new(&[-1]).wait(0, &mut ready).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
    }
}
