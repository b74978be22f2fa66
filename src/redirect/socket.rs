//! The sockets of `rondo redirect`: GUE arrives on plain UDP sockets (batched with
//! `recvmmsg`), forwarded packets leave through raw sockets.
//!
//! Receiving on a UDP socket lets the kernel do what it does best: the outer IP and UDP
//! checksums are verified, outer fragments are reassembled, and only GUE datagrams reach us.
//! `IP_PKTINFO`/`IPV6_RECVPKTINFO` give the outer destination (ours: the source of a
//! forwarded copy and the "self" of the hop check), `IP_RECVTTL`/`IPV6_RECVHOPLIMIT` and
//! `IP_RECVTOS`/`IPV6_RECVTCLASS` the rest of what forwarding keeps.
//!
//! Forwarding needs an outer source address of ours that may differ from the socket's and a
//! UDP source port that is the director's, not 19523 (it carries the flow's entropy for ECMP
//! and RSS, and GLB's module keeps it). A UDP socket can set the first (`IP_PKTINFO`) but not
//! the second, so forwarded packets go out whole through `IPPROTO_RAW` sockets (the header is
//! ours, [`super::forward`] builds it). `IPPROTO_RAW` sockets receive nothing.
//!
//! The syscalls are [`crate::sys`]'s (socket options, the `recvmmsg` batch, `sendto`); this
//! module says which options GUE needs and reads what the kernel reports per datagram.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys::mmsg::MsgBatch;
use crate::sys::socket::{bind, new_socket, parse_sockaddr, send_to, set_int, RawSockAddr};

/// Linux UAPI socket options and control-message types used here (ABI, never change).
mod uapi {
    use libc::c_int;
    pub const IP_TOS: c_int = 1;
    pub const IP_TTL: c_int = 2;
    pub const IP_PKTINFO: c_int = 8;
    pub const IP_RECVTTL: c_int = 12;
    pub const IP_RECVTOS: c_int = 13;
    pub const IPV6_V6ONLY: c_int = 26;
    pub const IPV6_RECVPKTINFO: c_int = 49;
    pub const IPV6_PKTINFO: c_int = 50;
    pub const IPV6_RECVHOPLIMIT: c_int = 51;
    pub const IPV6_HOPLIMIT: c_int = 52;
    pub const IPV6_RECVTCLASS: c_int = 66;
    pub const IPV6_TCLASS: c_int = 67;
}

/// A UDP socket receiving GUE.
#[derive(Debug)]
pub struct GueSocket {
    fd: OwnedFd,
    local: SocketAddr,
}

impl GueSocket {
    /// Bind `addr` (IPv6 sockets are IPv6-only; bind `0.0.0.0` for IPv4) and ask for the
    /// per-datagram control messages.
    pub fn bind(addr: SocketAddr) -> io::Result<GueSocket> {
        let (domain, opts): (_, &[(libc::c_int, libc::c_int)]) = match addr {
            SocketAddr::V4(_) => (
                libc::AF_INET,
                &[
                    (libc::IPPROTO_IP, uapi::IP_PKTINFO),
                    (libc::IPPROTO_IP, uapi::IP_RECVTTL),
                    (libc::IPPROTO_IP, uapi::IP_RECVTOS),
                ],
            ),
            SocketAddr::V6(_) => (
                libc::AF_INET6,
                &[
                    (libc::IPPROTO_IPV6, uapi::IPV6_V6ONLY),
                    (libc::IPPROTO_IPV6, uapi::IPV6_RECVPKTINFO),
                    (libc::IPPROTO_IPV6, uapi::IPV6_RECVHOPLIMIT),
                    (libc::IPPROTO_IPV6, uapi::IPV6_RECVTCLASS),
                ],
            ),
        };
        let fd = new_socket(domain, libc::SOCK_DGRAM, 0)?;
        for &(level, name) in opts {
            set_int(&fd, level, name, 1)?;
        }
        // A deeper queue absorbs bursts while a batch is being handled (best effort).
        let _ = set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20);
        bind(&fd, addr)?;
        Ok(GueSocket { fd, local: addr })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The descriptor, for [`crate::sys::poll::PollSet`].
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receive up to a batch of datagrams into `batch` without blocking; returns how many
    /// (0 when none are queued).
    pub fn recv(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        let n = batch.raw.recv(&self.fd)?;
        for i in 0..n {
            let Some(r) = batch.raw.get(i) else { break };
            let mut d = Datagram {
                len: r.payload.len(),
                truncated: r.truncated,
                src: parse_sockaddr(r.name),
                dst: None,
                ttl: None,
                tos: None,
            };
            parse_cmsgs(r.control, &mut d);
            batch.meta[i] = d;
        }
        Ok(n)
    }
}

/// Facts about one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Datagram {
    /// Payload bytes in the buffer.
    pub len: usize,
    /// The datagram was larger than the buffer (the tail is lost).
    pub truncated: bool,
    /// Sender (outer source address and UDP source port).
    pub src: Option<SocketAddr>,
    /// Outer destination address.
    pub dst: Option<IpAddr>,
    /// Outer TTL / hop limit.
    pub ttl: Option<u8>,
    /// Outer DSCP/ECN / traffic class.
    pub tos: Option<u8>,
}

/// Buffers for one `recvmmsg` batch, allocated once.
pub struct RecvBatch {
    raw: MsgBatch,
    meta: Vec<Datagram>,
}

impl RecvBatch {
    /// `n` datagrams of up to `buf_size` bytes each.
    pub fn new(n: usize, buf_size: usize) -> RecvBatch {
        let raw = MsgBatch::new(n, buf_size);
        let meta = vec![Datagram::default(); raw.capacity()];
        RecvBatch { raw, meta }
    }

    /// Datagrams of the last receive.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True when the last receive got nothing.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Datagram `i` of the last receive: its facts and payload.
    pub fn get(&self, i: usize) -> Option<(&Datagram, &[u8])> {
        let r = self.raw.get(i)?;
        Some((self.meta.get(i)?, r.payload))
    }
}

/// Walks the control messages (`struct cmsghdr` headers, `size_t`-aligned) of one datagram.
fn parse_cmsgs(mut b: &[u8], d: &mut Datagram) {
    const W: usize = size_of::<usize>();
    let align = |n: usize| (n + W - 1) & !(W - 1);
    let hdr = align(W + 8);
    while b.len() >= hdr {
        let mut len_bytes = [0u8; W];
        len_bytes.copy_from_slice(&b[..W]);
        let len = usize::from_ne_bytes(len_bytes);
        let level = i32::from_ne_bytes([b[W], b[W + 1], b[W + 2], b[W + 3]]);
        let ty = i32::from_ne_bytes([b[W + 4], b[W + 5], b[W + 6], b[W + 7]]);
        if len < hdr || len > b.len() {
            return;
        }
        let data = &b[hdr..len];
        let int = || {
            data.get(..4)
                .map(|x| i32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
        };
        match (level, ty) {
            (libc::IPPROTO_IP, uapi::IP_PKTINFO) => {
                if let Some(a) = data.get(8..12) {
                    d.dst = Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])));
                }
            }
            (libc::IPPROTO_IP, uapi::IP_TTL) => d.ttl = int().map(|v| v.clamp(0, 255) as u8),
            (libc::IPPROTO_IP, uapi::IP_TOS) => d.tos = data.first().copied(),
            (libc::IPPROTO_IPV6, uapi::IPV6_PKTINFO) => {
                if let Some(a) = data.get(..16).and_then(|a| <[u8; 16]>::try_from(a).ok()) {
                    d.dst = Some(IpAddr::V6(Ipv6Addr::from(a)));
                }
            }
            (libc::IPPROTO_IPV6, uapi::IPV6_HOPLIMIT) => {
                d.ttl = int().map(|v| v.clamp(0, 255) as u8)
            }
            (libc::IPPROTO_IPV6, uapi::IPV6_TCLASS) => d.tos = int().map(|v| v.clamp(0, 255) as u8),
            _ => {}
        }
        b = b.get(align(len)..).unwrap_or(&[]);
    }
}

/// An `IPPROTO_RAW` socket: sends whole IP packets whose header we built.
#[derive(Debug)]
pub struct RawSender {
    fd: OwnedFd,
    v6: bool,
}

impl RawSender {
    /// A raw IPv4 (`v6 == false`) or IPv6 sender. Needs CAP_NET_RAW.
    pub fn open(v6: bool) -> io::Result<RawSender> {
        let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        let fd = new_socket(domain, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
        Ok(RawSender { fd, v6 })
    }

    /// Send `packet` (a complete IP packet) towards `to` (its destination).
    pub fn send(&self, packet: &[u8], to: IpAddr) -> io::Result<()> {
        let to = match (to.to_canonical(), self.v6) {
            (IpAddr::V4(a), false) => SocketAddr::new(IpAddr::V4(a), 0),
            (IpAddr::V6(a), true) => SocketAddr::new(IpAddr::V6(a), 0),
            _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
        };
        send_to(&self.fd, packet, &RawSockAddr::new(to)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::poll::poll_readable;
    use std::net::UdpSocket;

    #[test]
    fn cmsgs_and_addresses_parse_and_never_panic() {
        let mut c = Vec::new();
        let mut push = |level: i32, ty: i32, data: &[u8]| {
            let w = size_of::<usize>();
            let len = w + 8 + data.len();
            c.extend_from_slice(&len.to_ne_bytes());
            c.extend_from_slice(&level.to_ne_bytes());
            c.extend_from_slice(&ty.to_ne_bytes());
            c.extend_from_slice(data);
            while c.len() % w != 0 {
                c.push(0);
            }
        };
        push(
            libc::IPPROTO_IP,
            uapi::IP_PKTINFO,
            &[3, 0, 0, 0, 9, 9, 9, 9, 10, 0, 0, 2],
        );
        push(libc::IPPROTO_IP, uapi::IP_TTL, &63i32.to_ne_bytes());
        push(libc::IPPROTO_IP, uapi::IP_TOS, &[0x2e]);
        let mut d = Datagram::default();
        parse_cmsgs(&c, &mut d);
        assert_eq!(d.dst, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
        assert_eq!((d.ttl, d.tos), (Some(63), Some(0x2e)));
        for n in 0..c.len() {
            parse_cmsgs(&c[..n], &mut Datagram::default());
        }
        let mut bad = c.clone();
        bad[0] = 0xff; // a length past the buffer stops the walk
        parse_cmsgs(&bad, &mut Datagram::default());
        assert_eq!(parse_sockaddr(&[]), None);
        assert_eq!(parse_sockaddr(&[0; 16]), None);
    }

    #[test]
    fn receives_a_batch_with_destination_and_ttl() {
        let s = GueSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = crate::sys::socket::local_addr(&s.fd).unwrap().port();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..3u8 {
            tx.send_to(&[i; 10], ("127.0.0.1", port)).unwrap();
        }
        let mut batch = RecvBatch::new(8, 64);
        assert!(poll_readable(s.fd(), 2000).unwrap());
        let mut got = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while got < 3 && std::time::Instant::now() < deadline {
            let n = s.recv(&mut batch).unwrap();
            for i in 0..n {
                let (d, p) = batch.get(i).unwrap();
                assert_eq!(p, &[got; 10]);
                assert_eq!(d.dst, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
                assert_eq!(d.src, Some(tx.local_addr().unwrap()));
                assert!(d.ttl.is_some() && d.tos.is_some() && !d.truncated);
                got += 1;
            }
        }
        assert_eq!(got, 3);
        assert!(batch.get(3).is_none());
        tx.send_to(&[7; 100], ("127.0.0.1", port)).unwrap();
        assert!(poll_readable(s.fd(), 2000).unwrap());
        assert_eq!(s.recv(&mut batch).unwrap(), 1);
        assert!(batch.get(0).unwrap().0.truncated);
        assert_eq!(s.recv(&mut batch).unwrap(), 0);
    }
}
