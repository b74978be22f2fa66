//! Netlink request/answer sockets to the kernel (`rondo redirect`'s `NETLINK_SOCK_DIAG`
//! lookups): blocking, with a receive timeout, messages built and parsed by the caller.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::socket::{new_blocking_socket, setsockopt};

/// A netlink socket of protocol `NETLINK_*` talking to the kernel.
#[derive(Debug)]
pub struct NetlinkSocket {
    fd: OwnedFd,
}

impl NetlinkSocket {
    /// A socket of netlink `protocol` (receives wait without limit until
    /// [`NetlinkSocket::set_recv_timeout`]).
    pub fn open(protocol: libc::c_int) -> io::Result<NetlinkSocket> {
        let fd = new_blocking_socket(libc::AF_NETLINK, libc::SOCK_RAW, protocol)?;
        Ok(NetlinkSocket { fd })
    }

    /// Receives wait at most `timeout` (`SO_RCVTIMEO`; zero: no limit).
    pub fn set_recv_timeout(&self, timeout: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        setsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
    }

    /// Send one request to the kernel (port id 0), retrying when a signal interrupts.
    pub fn send_to_kernel(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value (then family set).
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: `msg` is a readable buffer of `msg.len()` bytes and `kernel` an
            // initialised sockaddr_nl whose exact size is passed; both outlive the call and
            // the kernel only reads them.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    (&kernel as *const libc::sockaddr_nl).cast(),
                    size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receive one datagram into `buf` (waiting at most the timeout: `WouldBlock` or
    /// `TimedOut` then; `Interrupted` when a signal came first). Returns its length, at
    /// most `buf.len()`.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a writable buffer of `buf.len()` bytes borrowed for the whole
        // call; recv(2) writes at most that many bytes.
        let r = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok((r as usize).min(buf.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `NETLINK_ROUTE` answers an `RTM_GETLINK` request for the loopback (index 1) with a
    /// message of the same sequence number; with nothing asked, a receive times out.
    #[test]
    fn asks_the_kernel_and_times_out() {
        let s = NetlinkSocket::open(libc::NETLINK_ROUTE).unwrap();
        s.set_recv_timeout(Duration::from_millis(50)).unwrap();
        let mut buf = [0u8; 8192];
        let e = s.recv(&mut buf).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{e}"
        );
        // nlmsghdr (16) + ifinfomsg (16): RTM_GETLINK, NLM_F_REQUEST, seq 77, ifindex 1.
        let mut req = [0u8; 32];
        req[0..4].copy_from_slice(&32u32.to_ne_bytes());
        req[4..6].copy_from_slice(&libc::RTM_GETLINK.to_ne_bytes());
        req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
        req[8..12].copy_from_slice(&77u32.to_ne_bytes());
        req[16] = libc::AF_UNSPEC as u8;
        req[20..24].copy_from_slice(&1i32.to_ne_bytes());
        s.send_to_kernel(&req).unwrap();
        let n = s.recv(&mut buf).unwrap();
        assert!(n >= 32, "{n}");
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), libc::RTM_NEWLINK);
        assert_eq!(u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]), 77);
        assert_eq!(i32::from_ne_bytes([buf[20], buf[21], buf[22], buf[23]]), 1);
    }
}
