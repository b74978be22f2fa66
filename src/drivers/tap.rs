//! The kernel exception path: a TAP interface. Frames the director does not handle are
//! written to it (the kernel receives them as if from the wire) and frames the kernel sends
//! out of it are read and put on the port.
//!
//! The device is opened non-blocking ([`crate::sys::tuntap`] opens it);
//! [`crate::sys::poll::poll_readable`] lets the exception thread sleep until the kernel has a frame. The
//! interface exists while the [`TapDevice`] is open.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use crate::sys::tuntap::{TunTap, TunTapError, TunTapKind, TunTapSetup};

use super::DriverError;
use crate::wire::MacAddr;

/// A TAP interface (`IFF_TAP | IFF_NO_PI`: whole Ethernet frames, no extra header), up,
/// non-blocking. Removed by the kernel when dropped.
#[derive(Debug)]
pub struct TapDevice {
    dev: TunTap,
    mac: MacAddr,
}

fn tap_err(name: &str, reason: impl Into<String>) -> DriverError {
    DriverError::Port {
        port: format!("tap:{name}"),
        reason: reason.into(),
    }
}

/// A failed open step as a driver error, with the usual cause spelled out.
fn open_err(requested: &str, e: TunTapError) -> DriverError {
    let hint = e.hint();
    match e {
        TunTapError::Name(reason) => tap_err(requested, reason),
        TunTapError::Os {
            name, op, source, ..
        } => match hint {
            Some(hint) => tap_err(&name, format!("{op}: {hint} ({source})")),
            None => DriverError::Os {
                port: format!("tap:{name}"),
                op,
                source,
            },
        },
    }
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
        let setup = TunTapSetup {
            mac: mac.map(|m| m.0),
            mtu: None,
        };
        let dev = TunTap::open(TunTapKind::Tap, name, setup).map_err(|e| open_err(name, e))?;
        let mac = MacAddr(dev.mac());
        Ok(TapDevice { dev, mac })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        self.dev.name()
    }

    /// The interface's MAC address (the kernel's side of the TAP).
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The device's file descriptor, for [`crate::sys::poll::poll_readable`].
    pub fn fd(&self) -> RawFd {
        self.dev.as_raw_fd()
    }

    /// Read one frame the kernel sent out of the TAP into `buf`; `None` when there is none.
    /// A frame longer than `buf` is cut to it (size `buf` for the MTU plus 18 bytes).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.dev.read(buf)
    }

    /// Hand `frame` to the kernel as if it came in on the TAP; `false` when the device
    /// cannot take it now (would block).
    pub fn send(&self, frame: &[u8]) -> io::Result<bool> {
        self.dev.write(frame)
    }
}

impl AsRawFd for TapDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.dev.as_raw_fd()
    }
}

impl AsFd for TapDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }
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
        let e = TapDevice::open("").unwrap_err().to_string();
        assert_eq!(e, "port \"tap:\": empty interface name");
        assert!(TapDevice::open("a/b")
            .unwrap_err()
            .to_string()
            .contains("tap:a/b"));
    }

    fn tap_os_err(name: &str, op: &'static str, e: io::Error) -> DriverError {
        open_err(
            name,
            TunTapError::Os {
                kind: TunTapKind::Tap,
                name: name.to_string(),
                op,
                source: e,
            },
        )
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
        assert!(s.starts_with("port \"tap:t0\": "), "{s}");
        assert!(s.contains("CAP_NET_ADMIN"), "{s}");
        let e = tap_os_err("t0", "reading", io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(e, DriverError::Os { .. }));
        let e = tap_os_err(
            "t0",
            "creating the TAP (TUNSETIFF)",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert_eq!(
            e.to_string(),
            "port \"tap:t0\": creating the TAP (TUNSETIFF): an interface of that name exists \
             and is not a TAP (Invalid argument (os error 22))"
        );
    }
}
