//! The local delivery path: a TUN interface (`IFF_TUN | IFF_NO_PI`). A decapsulated inner
//! IP packet written to it is received by the kernel as if it arrived on that interface, so
//! any server listening on the VIP handles it and answers the client directly.
//!
//! The interface exists while the [`TunDevice`] is open. Rondo never reads from it: nothing
//! routes to it, and what the kernel may queue there (IPv6 router solicitations) is dropped
//! by the kernel once the queue is full.
//!
//! One of the few modules where `unsafe` is allowed (open, write, the TUN ioctls); each block
//! states why it is sound.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::drivers::af_packet::{check_ifname, ioctl_ifreq, new_socket, IfReq};

const TUN_PATH: &CStr = c"/dev/net/tun";
/// MTU set on the device: larger than any inner packet, so the kernel never refuses one.
const TUN_MTU: i32 = 65535;

/// A TUN device could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("tun:{name}: {reason}")]
    Setup { name: String, reason: String },
    #[error("tun:{name}: {op}: {source}")]
    Os {
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

fn os_err(name: &str, op: &'static str, e: io::Error) -> TunError {
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => "needs root or CAP_NET_ADMIN",
        Some(libc::ENOENT) | Some(libc::ENODEV) if op == "opening /dev/net/tun" => {
            "no /dev/net/tun (load the tun module: modprobe tun)"
        }
        Some(libc::EBUSY) => "an interface of that name exists and is in use",
        Some(libc::EINVAL) if op == "creating the TUN (TUNSETIFF)" => {
            "an interface of that name exists and is not a TUN"
        }
        _ => {
            return TunError::Os {
                name: name.to_string(),
                op,
                source: e,
            }
        }
    };
    TunError::Setup {
        name: name.to_string(),
        reason: format!("{op}: {hint} ({e})"),
    }
}

/// A TUN interface, up, with a large MTU. Removed by the kernel when dropped.
#[derive(Debug)]
pub struct TunDevice {
    fd: OwnedFd,
    name: String,
}

impl TunDevice {
    /// Create (or attach to) TUN interface `name` and bring it up.
    pub fn open(name: &str) -> Result<TunDevice, TunError> {
        check_ifname(name).map_err(|r| TunError::Setup {
            name: name.to_string(),
            reason: r,
        })?;
        // SAFETY: `TUN_PATH` is a NUL-terminated string constant; open(2) only reads it.
        let fd = unsafe {
            libc::open(
                TUN_PATH.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(os_err(
                name,
                "opening /dev/net/tun",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `fd` was just returned by open(2): it is open and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut ifr = IfReq::new(name);
        ifr.set_short((libc::IFF_TUN | libc::IFF_NO_PI) as i16);
        ioctl_ifreq(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr)
            .map_err(|e| os_err(name, "creating the TUN (TUNSETIFF)", e))?;
        let name = ifr.name();

        let ctl = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
            .or_else(|_| new_socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0))
            .map_err(|e| os_err(&name, "opening a control socket", e))?;
        let mut ifr = IfReq::new(&name);
        ifr.data[..4].copy_from_slice(&TUN_MTU.to_ne_bytes());
        if let Err(e) = ioctl_ifreq(ctl.as_raw_fd(), libc::SIOCSIFMTU, &mut ifr) {
            tracing::warn!(tun = %name, "could not raise the MTU to {TUN_MTU}: {e}");
        }
        let mut ifr = IfReq::new(&name);
        ioctl_ifreq(ctl.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr)
            .map_err(|e| os_err(&name, "reading the interface flags", e))?;
        ifr.set_short(ifr.short() | libc::IFF_UP as i16);
        ioctl_ifreq(ctl.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr)
            .map_err(|e| os_err(&name, "bringing the interface up", e))?;
        Ok(TunDevice { fd, name })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hand one IP packet (IPv4 or IPv6, no extra header) to the kernel.
    pub fn write(&self, packet: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `packet` is a readable buffer of `packet.len()` bytes borrowed for
            // the whole call; write(2) only reads it.
            let r =
                unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        let e = TunDevice::open("averyveryverylongname").unwrap_err();
        assert!(e.to_string().contains("at most 15"), "{e}");
        assert!(TunDevice::open("a/b")
            .unwrap_err()
            .to_string()
            .contains("tun:a/b"));
    }

    #[test]
    fn os_errors_say_what_to_do() {
        let e = os_err(
            "t0",
            "creating the TUN (TUNSETIFF)",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        let e = os_err("t0", "x", io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(e, TunError::Os { .. }));
    }
}
