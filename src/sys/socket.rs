//! Sockets the way the drivers and `rondo redirect` open them: non-blocking and
//! close-on-exec, with typed `setsockopt`/`getsockopt`, link-layer and IP binds, `sendto`,
//! and socket addresses in the kernel's layout (made and parsed without allocating).
//!
//! Creation goes through `socket2` (no `unsafe` here for it); options whose layout
//! `socket2` does not know (packet rings, fanout, filters) go through the typed helpers.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};

use socket2::{Domain, Protocol, Socket, Type};

/// `Err(last OS error)` for a negative return value of a libc call.
pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A new non-blocking, close-on-exec socket (`socket(domain, kind | SOCK_NONBLOCK |
/// SOCK_CLOEXEC, proto)`).
pub fn new_socket(
    domain: libc::c_int,
    kind: libc::c_int,
    proto: libc::c_int,
) -> io::Result<OwnedFd> {
    socket(domain, Type::from(kind).nonblocking(), proto)
}

/// A new blocking, close-on-exec socket (for request/answer sockets that wait with a
/// receive timeout, such as `NETLINK_SOCK_DIAG`).
pub fn new_blocking_socket(
    domain: libc::c_int,
    kind: libc::c_int,
    proto: libc::c_int,
) -> io::Result<OwnedFd> {
    socket(domain, Type::from(kind), proto)
}

/// A close-on-exec socket of `kind` (socket2 sets `SOCK_CLOEXEC` itself).
fn socket(domain: libc::c_int, kind: Type, proto: libc::c_int) -> io::Result<OwnedFd> {
    let s = Socket::new(Domain::from(domain), kind, Some(Protocol::from(proto)))?;
    Ok(s.into())
}

/// A socket option value: a plain `#[repr(C)]` type the kernel defines for some option
/// (integers, arrays of integers, the ring and membership requests, `sock_fprog`).
///
/// # Safety
/// Implementors must be `#[repr(C)]` (or primitive) types with the exact layout the kernel
/// expects for the options they are used with, for which every bit pattern the kernel may
/// write back is a valid value, and any pointer they hold must point to memory the kernel
/// may read for as long as the value is borrowed.
pub unsafe trait SockOpt: Copy {}

// SAFETY: plain integers; every bit pattern is valid.
unsafe impl SockOpt for i32 {}
// SAFETY: plain integers; every bit pattern is valid.
unsafe impl SockOpt for u32 {}
// SAFETY: `timeval` is two integers, the layout of SO_RCVTIMEO/SO_SNDTIMEO.
unsafe impl SockOpt for libc::timeval {}
// SAFETY: `sock_fprog` is a length and a pointer to the filter; callers keep the filter
// alive while the value is borrowed (see `setsockopt`), and the kernel only reads it.
unsafe impl SockOpt for libc::sock_fprog {}

/// `setsockopt(fd, level, name, val, sizeof *val)`.
pub fn setsockopt<T: SockOpt>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to an initialised `T` that lives across the call and its exact
    // size is passed; the kernel only reads that many bytes (padding, if any, is never
    // interpreted). `T: SockOpt` promises the layout the kernel defines for the option, and
    // that a pointer inside (`sock_fprog`) points to memory alive while `val` is borrowed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    cvt(r).map(|_| ())
}

/// `setsockopt` of an `int` option.
pub fn set_int(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &v)
}

/// `getsockopt(fd, level, name)` into a `T`.
pub fn getsockopt<T: SockOpt + Default>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut val = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a writable `T` of `len` bytes and `len` a writable socklen_t, both
    // living across the call; the kernel writes at most `len` bytes, and `T: SockOpt`
    // promises any bit pattern it writes is a valid `T`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut val as *mut T).cast(),
            &mut len,
        )
    };
    cvt(r).map(|_| val)
}

/// Bind an `AF_PACKET` socket to interface `ifindex` for frames of `protocol` (host byte
/// order; 0: send only, `ETH_P_ALL`: every frame).
pub fn bind_ll(fd: &impl AsRawFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain integers and arrays, for which all-zero bytes are valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is an initialised sockaddr_ll living across the call and its exact size
    // is passed; bind(2) only reads it.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    cvt(r).map(|_| ())
}

/// An IP socket address in the kernel's layout (`sockaddr_in`/`sockaddr_in6`), built on
/// the stack: no allocation, so it may be made per packet.
pub enum RawSockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl RawSockAddr {
    pub fn new(a: SocketAddr) -> RawSockAddr {
        match a {
            SocketAddr::V4(a) => RawSockAddr::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(a) => RawSockAddr::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            }),
        }
    }

    /// Pointer and length for a syscall; valid while `self` is.
    pub fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            RawSockAddr::V4(a) => (
                (a as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ),
            RawSockAddr::V6(a) => (
                (a as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            ),
        }
    }
}

/// `bind(fd, addr)`.
pub fn bind(fd: &impl AsRawFd, addr: SocketAddr) -> io::Result<()> {
    let raw = RawSockAddr::new(addr);
    let (p, len) = raw.as_ptr();
    // SAFETY: `p`/`len` describe the initialised sockaddr in `raw`, alive across the call;
    // bind(2) only reads it.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), p, len) }).map(|_| ())
}

/// A `sockaddr_in`/`sockaddr_in6` as the kernel wrote it (`None` for other families and
/// short buffers).
pub fn parse_sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match family {
        libc::AF_INET => {
            let a: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(a), port)))
        }
        libc::AF_INET6 => {
            let a: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let scope: [u8; 4] = b.get(24..28)?.try_into().ok()?;
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a),
                port,
                0,
                u32::from_ne_bytes(scope),
            )))
        }
        _ => None,
    }
}

/// The address `fd` is bound to (`getsockname`).
pub fn local_addr(fd: &impl AsRawFd) -> io::Result<SocketAddr> {
    let mut b = [0u8; 128];
    let mut len = b.len() as libc::socklen_t;
    // SAFETY: `b` is a writable 128-byte buffer (the size of sockaddr_storage) and `len`
    // its size, both alive across the call; getsockname(2) writes at most `len` bytes.
    cvt(unsafe { libc::getsockname(fd.as_raw_fd(), b.as_mut_ptr().cast(), &mut len) })?;
    let len = (len as usize).min(b.len());
    parse_sockaddr(&b[..len])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket address"))
}

/// `sendto(fd, buf, addr)`, retrying when a signal interrupts; the bytes sent.
pub fn send_to(fd: &impl AsRawFd, buf: &[u8], addr: &RawSockAddr) -> io::Result<usize> {
    let (p, len) = addr.as_ptr();
    loop {
        // SAFETY: `buf` is a readable buffer of `buf.len()` bytes and `p`/`len` the
        // initialised sockaddr in `addr`; both outlive the call and are only read.
        let r = unsafe { libc::sendto(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0, p, len) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_nonblocking_and_cloexec() {
        // The descriptor's status and descriptor flags.
        let flags = |s: &OwnedFd| {
            // SAFETY: fcntl F_GETFL/F_GETFD on an open descriptor take no pointers.
            unsafe {
                (
                    libc::fcntl(s.as_raw_fd(), libc::F_GETFL),
                    libc::fcntl(s.as_raw_fd(), libc::F_GETFD),
                )
            }
        };
        let (fl, fd) = flags(&new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap());
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        assert_ne!(fd & libc::FD_CLOEXEC, 0);
        let (fl, fd) = flags(&new_blocking_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap());
        assert_eq!(fl & libc::O_NONBLOCK, 0);
        assert_ne!(fd & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn options_round_trip_and_errors_are_reported() {
        let s = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        set_int(&s, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
        let v: i32 = getsockopt(&s, libc::SOL_SOCKET, libc::SO_REUSEADDR).unwrap();
        assert_eq!(v, 1);
        set_int(&s, libc::SOL_SOCKET, libc::SO_REUSEADDR, 0).unwrap();
        let v: i32 = getsockopt(&s, libc::SOL_SOCKET, libc::SO_REUSEADDR).unwrap();
        assert_eq!(v, 0);
        // A packet-socket option on a UDP socket: the kernel refuses it.
        let e = set_int(&s, libc::SOL_PACKET, 10, 2).unwrap_err();
        assert!(e.raw_os_error().is_some(), "{e}");
        bind(&s, "127.0.0.1:0".parse().unwrap()).unwrap();
        let e = bind(&s, "127.0.0.1:0".parse().unwrap()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "bound twice: {e}");
    }

    #[test]
    fn raw_addresses_have_the_kernel_layout() {
        let a = RawSockAddr::new("10.1.2.3:80".parse().unwrap());
        let RawSockAddr::V4(v4) = a else {
            panic!("not v4")
        };
        assert_eq!(v4.sin_family, libc::AF_INET as libc::sa_family_t);
        assert_eq!(v4.sin_port, 80u16.to_be());
        assert_eq!(v4.sin_addr.s_addr.to_ne_bytes(), [10, 1, 2, 3]);
        let a = RawSockAddr::new("[2001:db8::1]:53".parse().unwrap());
        assert_eq!(a.as_ptr().1 as usize, size_of::<libc::sockaddr_in6>());
    }

    #[test]
    fn sends_and_reads_its_own_address() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        bind(&tx, "127.0.0.1:0".parse().unwrap()).unwrap();
        let from = local_addr(&tx).unwrap();
        assert_eq!(from.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
        assert_ne!(from.port(), 0);
        let to = RawSockAddr::new(rx.local_addr().unwrap());
        assert_eq!(send_to(&tx, b"hi", &to).unwrap(), 2);
        let mut b = [0u8; 8];
        let (n, src) = rx.recv_from(&mut b).unwrap();
        assert_eq!((&b[..n], src), (&b"hi"[..], from));
        // Addresses in the kernel's layout read back as they were made.
        for a in ["10.1.2.3:80", "[2001:db8::1]:53"] {
            let a: SocketAddr = a.parse().unwrap();
            let raw = RawSockAddr::new(a);
            let (p, len) = raw.as_ptr();
            // SAFETY: `p`/`len` describe the sockaddr inside `raw`, alive for this borrow.
            let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len as usize) };
            assert_eq!(parse_sockaddr(bytes), Some(a));
            assert_eq!(parse_sockaddr(&bytes[..7]), None, "{a} cut short");
        }
        assert_eq!(parse_sockaddr(&[]), None);
        assert_eq!(parse_sockaddr(&[0; 16]), None, "AF_UNSPEC");
    }
}
