//! The kernel exception path: a TAP interface. Frames the director does not handle are
//! written to it (the kernel receives them as if from the wire) and frames the kernel sends
//! out of it are read and put on the port.
//!
//! The device is opened non-blocking; [`poll_readable`] lets the exception thread sleep
//! until the kernel has a frame. The interface exists while the [`TapDevice`] is open.
//!
//! One of the few modules where `unsafe` is allowed (the TUN ioctls, read/write/poll); each
//! block states why it is sound.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::af_packet::{check_ifname, ioctl_ifreq, new_socket, IfReq};
use super::DriverError;
use crate::wire::MacAddr;

const TUN_PATH: &CStr = c"/dev/net/tun";

/// A TAP interface (`IFF_TAP | IFF_NO_PI`: whole Ethernet frames, no extra header), up,
/// non-blocking. Removed by the kernel when dropped.
#[derive(Debug)]
pub struct TapDevice {
    fd: OwnedFd,
    name: String,
    mac: MacAddr,
}

fn tap_err(name: &str, reason: impl Into<String>) -> DriverError {
    DriverError::Port {
        port: format!("tap:{name}"),
        reason: reason.into(),
    }
}

/// An OS error while setting the TAP up, with the usual causes spelled out.
fn tap_os_err(name: &str, op: &'static str, e: io::Error) -> DriverError {
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => "needs root or CAP_NET_ADMIN",
        Some(libc::ENOENT) | Some(libc::ENODEV) if op == "opening /dev/net/tun" => {
            "no /dev/net/tun (load the tun module: modprobe tun)"
        }
        Some(libc::EBUSY) => "an interface of that name exists and is in use",
        Some(libc::EINVAL) if op == "creating the TAP (TUNSETIFF)" => {
            "an interface of that name exists and is not a TAP"
        }
        _ => {
            return DriverError::Os {
                port: format!("tap:{name}"),
                op,
                source: e,
            }
        }
    };
    tap_err(name, format!("{op}: {hint} ({e})"))
}

impl TapDevice {
    /// Create (or attach to) TAP interface `name` and bring it up.
    ///
    /// Errors name the TAP and the cause: a name longer than 15 bytes, no `/dev/net/tun`,
    /// missing privileges (CAP_NET_ADMIN), a non-TAP interface of that name.
    pub fn open(name: &str) -> Result<TapDevice, DriverError> {
        Self::open_with_mac(name, None)
    }

    /// As [`TapDevice::open`], giving the interface `mac` first (the exception path uses
    /// the port's MAC, so the kernel takes frames addressed to the port as its own, as
    /// GLB's KNI interface did).
    pub fn open_with_mac(name: &str, mac: Option<MacAddr>) -> Result<TapDevice, DriverError> {
        check_ifname(name).map_err(|r| tap_err(name, r))?;
        // SAFETY: `TUN_PATH` is a NUL-terminated string constant; open(2) only reads it.
        let fd = unsafe {
            libc::open(
                TUN_PATH.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(tap_os_err(
                name,
                "opening /dev/net/tun",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `fd` was just returned by open(2): it is open and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };

        let mut ifr = IfReq::new(name);
        ifr.set_short((libc::IFF_TAP | libc::IFF_NO_PI) as i16);
        ioctl_ifreq(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr)
            .map_err(|e| tap_os_err(name, "creating the TAP (TUNSETIFF)", e))?;
        let name = ifr.name();

        // Interface ioctls go through any socket.
        let ctl = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
            .or_else(|_| new_socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0))
            .map_err(|e| tap_os_err(&name, "opening a control socket", e))?;
        if let Some(mac) = mac {
            let mut ifr = IfReq::new(&name);
            ifr.set_hwaddr(mac);
            ioctl_ifreq(ctl.as_raw_fd(), libc::SIOCSIFHWADDR, &mut ifr)
                .map_err(|e| tap_os_err(&name, "setting the MAC address", e))?;
        }
        let mut ifr = IfReq::new(&name);
        ioctl_ifreq(ctl.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr)
            .map_err(|e| tap_os_err(&name, "reading the interface flags", e))?;
        let flags = ifr.short() | libc::IFF_UP as i16;
        ifr.set_short(flags);
        ioctl_ifreq(ctl.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr)
            .map_err(|e| tap_os_err(&name, "bringing the interface up", e))?;
        let mut ifr = IfReq::new(&name);
        ioctl_ifreq(ctl.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr)
            .map_err(|e| tap_os_err(&name, "reading the MAC address", e))?;
        let mac = ifr.hwaddr().1;
        Ok(TapDevice { fd, name, mac })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's MAC address (the kernel's side of the TAP).
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The device's file descriptor, for [`poll_readable`].
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Read one frame the kernel sent out of the TAP into `buf`; `None` when there is none.
    /// A frame longer than `buf` is cut to it (size `buf` for the MTU plus 18 bytes).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: `buf` is a writable buffer of `buf.len()` bytes borrowed for the whole
            // call; read(2) writes at most that many bytes into it.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r >= 0 {
                return Ok(Some(r as usize));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(e),
            }
        }
    }

    /// Hand `frame` to the kernel as if it came in on the TAP; `false` when the device
    /// cannot take it now (would block).
    pub fn send(&self, frame: &[u8]) -> io::Result<bool> {
        loop {
            // SAFETY: `frame` is a readable buffer of `frame.len()` bytes borrowed for the
            // whole call; write(2) only reads it.
            let r = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
            if r >= 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(false),
                _ => return Err(e),
            }
        }
    }
}

impl AsRawFd for TapDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TapDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Wait until `fd` is readable or `timeout_ms` passes (negative: no limit). `Ok(true)` when
/// readable (or in an error/hang-up state a read will report), `Ok(false)` on timeout or
/// when a signal interrupted the wait; an error for a bad descriptor.
pub fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid, writable pollfd living across the call and the count is 1;
    // poll(2) on any descriptor value is sound (an invalid one is reported as POLLNVAL).
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    if r == 0 {
        return Ok(false);
    }
    if p.revents & libc::POLLNVAL != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        let e = TapDevice::open("averyveryverylongname")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("averyveryverylongname") && e.contains("at most 15"),
            "{e}"
        );
        assert!(TapDevice::open("").is_err());
        assert!(TapDevice::open("a/b")
            .unwrap_err()
            .to_string()
            .contains("tap:a/b"));
    }

    #[test]
    fn os_errors_say_what_to_do() {
        let e = tap_os_err(
            "t0",
            "opening /dev/net/tun",
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert!(e.to_string().contains("no /dev/net/tun"), "{e}");
        let e = tap_os_err(
            "t0",
            "creating the TAP (TUNSETIFF)",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        let s = e.to_string();
        assert!(s.contains("tap:\"t0\"") || s.contains("t0"), "{s}");
        assert!(s.contains("CAP_NET_ADMIN"), "{s}");
        let e = tap_os_err("t0", "reading", io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(e, DriverError::Os { .. }));
    }

    #[test]
    fn poll_reports_timeouts_readiness_and_bad_fds() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        assert!(!poll_readable(a.as_raw_fd(), 0).unwrap());
        b.send(b"x").unwrap();
        assert!(poll_readable(a.as_raw_fd(), 1000).unwrap());
        assert!(poll_readable(-1, 0).is_ok_and(|r| !r) || poll_readable(-1, 0).is_err());
        let fd = a.as_raw_fd();
        drop(a);
        assert!(poll_readable(fd, 0).is_err());
    }
}
