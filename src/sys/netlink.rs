//! Netlink request/answer sockets to the kernel (`rondo redirect`'s `NETLINK_SOCK_DIAG`
//! lookups): blocking, with a receive timeout, messages built by the caller; and
//! [`messages`], the one walk over the messages of a received datagram (the link watch
//! and the socket lookups both read theirs with it).
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

/// Length of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;

/// One message of a datagram: its header fields and body (the bytes after the header, up
/// to the message's length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlMsg<'a> {
    /// Its offset in the datagram.
    pub at: usize,
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub body: &'a [u8],
}

/// A datagram whose messages do not add up; no message past this point is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("netlink message at byte {at}: {what}")]
pub struct NlMalformed {
    pub at: usize,
    pub what: &'static str,
}

/// The messages of datagram `b`, in order. Total: every byte is a header, a body or
/// alignment padding (the last message may omit its padding); a length that does not fit
/// yields one error and ends the walk.
pub fn messages(b: &[u8]) -> Messages<'_> {
    Messages { b, at: 0 }
}

/// Iterator of [`messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<NlMsg<'a>, NlMalformed>;

    fn next(&mut self) -> Option<Self::Item> {
        let (b, at) = (self.b, self.at);
        if at >= b.len() {
            return None;
        }
        let fail = |what| Some(Err(NlMalformed { at, what }));
        let rest = &b[at..];
        let Some(h) = rest.get(..NLMSG_HDRLEN) else {
            self.at = b.len();
            return fail("shorter than a netlink header");
        };
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < NLMSG_HDRLEN {
            self.at = b.len();
            return fail("length shorter than its header");
        }
        if len > rest.len() {
            self.at = b.len();
            return fail("length runs past the datagram");
        }
        self.at = (at + ((len + 3) & !3)).min(b.len());
        Some(Ok(NlMsg {
            at,
            kind: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            body: &rest[NLMSG_HDRLEN..len],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&3u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&[0; 4]);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn messages_walk_padding_and_reject_what_does_not_fit() {
        // Two messages, the first padded to 4 bytes, the last without its padding.
        let mut d = msg(16, 1, &[1, 2, 3]);
        d.push(0);
        d.extend(msg(3, 2, &[9, 9, 9]));
        let got: Vec<_> = messages(&d).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].kind, got[0].seq, got[0].body, got[0].flags),
            (16, 1, &[1u8, 2, 3][..], 3)
        );
        assert_eq!(
            (got[1].at, got[1].kind, got[1].body),
            (20, 3, &[9u8, 9, 9][..])
        );
        assert_eq!(messages(&[]).count(), 0);
        // Every cut: whole messages, then exactly one error, then nothing.
        for n in 1..d.len() {
            let items: Vec<_> = messages(&d[..n]).collect();
            let errs = items.iter().filter(|r| r.is_err()).count();
            let whole = if n >= 19 { 1 } else { 0 };
            if n == 19 || n == 20 {
                assert_eq!((items.len(), errs), (1, 0), "{n}");
            } else {
                assert_eq!((items.len(), errs), (whole + 1, 1), "{n}");
                assert!(items.last().unwrap().is_err(), "{n}");
            }
        }
        let mut short = msg(1, 1, &[]);
        short[0] = 8;
        assert_eq!(
            messages(&short).next(),
            Some(Err(NlMalformed {
                at: 0,
                what: "length shorter than its header"
            }))
        );
    }

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
