//! TUN and TAP devices (`/dev/net/tun`): one open routine for both, and non-blocking
//! reads and writes of whole packets (TUN: IP packets, TAP: Ethernet frames; no extra
//! header, `IFF_NO_PI`). The interface exists while the device is open.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::iface::{check_ifname, ioctl_ifreq, IfCtl, IfReq};

const TUN_PATH: &CStr = c"/dev/net/tun";

/// Which device `/dev/net/tun` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunTapKind {
    /// Layer 3: IPv4/IPv6 packets.
    Tun,
    /// Layer 2: Ethernet frames.
    Tap,
}

impl TunTapKind {
    /// `TUN` or `TAP`, as the messages name it.
    pub fn label(self) -> &'static str {
        match self {
            TunTapKind::Tun => "TUN",
            TunTapKind::Tap => "TAP",
        }
    }

    fn flags(self) -> libc::c_int {
        match self {
            TunTapKind::Tun => libc::IFF_TUN | libc::IFF_NO_PI,
            TunTapKind::Tap => libc::IFF_TAP | libc::IFF_NO_PI,
        }
    }

    fn setiff_op(self) -> &'static str {
        match self {
            TunTapKind::Tun => "creating the TUN (TUNSETIFF)",
            TunTapKind::Tap => "creating the TAP (TUNSETIFF)",
        }
    }
}

/// How to set the interface up before it is brought up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunTapSetup {
    /// Give the interface this MAC address (TAP only).
    pub mac: Option<[u8; 6]>,
    /// Try to set this MTU; a failure is not fatal (see [`TunTap::mtu_error`]).
    pub mtu: Option<i32>,
}

/// A step of [`TunTap::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TunTapError {
    /// The name is not one the kernel accepts (checked before any syscall).
    #[error("{0}")]
    Name(String),
    /// A syscall failed; [`TunTapError::hint`] names the usual cause when there is one.
    #[error("{op}: {source}")]
    Os {
        kind: TunTapKind,
        /// The interface name (as the kernel named it, once TUNSETIFF succeeded).
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl TunTapError {
    /// The usual cause of a failed step, for the message.
    pub fn hint(&self) -> Option<&'static str> {
        let TunTapError::Os {
            kind, op, source, ..
        } = self
        else {
            return None;
        };
        hint(*kind, op, source)
    }
}

/// The usual cause of error `e` at step `op` of opening a `kind` device.
pub fn hint(kind: TunTapKind, op: &str, e: &io::Error) -> Option<&'static str> {
    match e.raw_os_error()? {
        libc::EPERM | libc::EACCES => Some("needs root or CAP_NET_ADMIN"),
        libc::ENOENT | libc::ENODEV if op == OPEN_OP => {
            Some("no /dev/net/tun (load the tun module: modprobe tun)")
        }
        libc::EBUSY => Some("an interface of that name exists and is in use"),
        libc::EINVAL if op == kind.setiff_op() => Some(match kind {
            TunTapKind::Tun => "an interface of that name exists and is not a TUN",
            TunTapKind::Tap => "an interface of that name exists and is not a TAP",
        }),
        _ => None,
    }
}

/// The step that opens `/dev/net/tun`.
pub const OPEN_OP: &str = "opening /dev/net/tun";

/// An open TUN or TAP device, up, non-blocking. Removed by the kernel when dropped.
#[derive(Debug)]
pub struct TunTap {
    fd: OwnedFd,
    name: String,
    mac: [u8; 6],
    mtu_error: Option<io::Error>,
}

impl TunTap {
    /// Create (or attach to) the `kind` interface `name`, apply `setup` and bring it up.
    pub fn open(kind: TunTapKind, name: &str, setup: TunTapSetup) -> Result<TunTap, TunTapError> {
        check_ifname(name).map_err(TunTapError::Name)?;
        let os = |name: &str, op, source| TunTapError::Os {
            kind,
            name: name.to_string(),
            op,
            source,
        };
        // SAFETY: `TUN_PATH` is a NUL-terminated string constant; open(2) only reads it.
        let fd = unsafe {
            libc::open(
                TUN_PATH.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(os(name, OPEN_OP, io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just returned by open(2): it is open and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };

        let mut ifr = IfReq::new(name);
        ifr.set_short(kind.flags() as i16);
        ioctl_ifreq(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr)
            .map_err(|e| os(name, kind.setiff_op(), e))?;
        let name = ifr.name();

        let ctl = IfCtl::open().map_err(|e| os(&name, "opening a control socket", e))?;
        if let Some(mac) = setup.mac {
            ctl.set_hwaddr(&name, mac)
                .map_err(|e| os(&name, "setting the MAC address", e))?;
        }
        let mtu_error = setup.mtu.and_then(|m| ctl.set_mtu(&name, m).err());
        let flags = ctl
            .flags(&name)
            .map_err(|e| os(&name, "reading the interface flags", e))?;
        ctl.set_flags(&name, flags | libc::IFF_UP as i16)
            .map_err(|e| os(&name, "bringing the interface up", e))?;
        let mac = match kind {
            TunTapKind::Tap => {
                ctl.hwaddr(&name)
                    .map_err(|e| os(&name, "reading the MAC address", e))?
                    .1
            }
            TunTapKind::Tun => [0; 6],
        };
        Ok(TunTap {
            fd,
            name,
            mac,
            mtu_error,
        })
    }

    /// The interface name (as the kernel named it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's MAC address (a TAP's; all zero for a TUN).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Why the MTU asked for in [`TunTapSetup::mtu`] could not be set, if it could not.
    pub fn mtu_error(&self) -> Option<&io::Error> {
        self.mtu_error.as_ref()
    }

    /// Read one packet the kernel sent out of the interface into `buf`; `None` when there
    /// is none. A packet longer than `buf` is cut to it.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
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

    /// Hand one packet to the kernel as if it came in on the interface; `Ok(false)` when
    /// the device cannot take it now (would block).
    pub fn write(&self, packet: &[u8]) -> io::Result<bool> {
        loop {
            // SAFETY: `packet` is a readable buffer of `packet.len()` bytes borrowed for the
            // whole call; write(2) only reads it.
            let r =
                unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
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

impl AsRawFd for TunTap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TunTap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        for kind in [TunTapKind::Tun, TunTapKind::Tap] {
            let e =
                TunTap::open(kind, "averyveryverylongname", TunTapSetup::default()).unwrap_err();
            assert!(
                matches!(e, TunTapError::Name(ref m) if m.contains("at most 15")),
                "{e}"
            );
            assert!(matches!(
                TunTap::open(kind, "a/b", TunTapSetup::default()),
                Err(TunTapError::Name(_))
            ));
        }
    }

    #[test]
    fn hints_name_the_usual_causes() {
        let e = |errno| io::Error::from_raw_os_error(errno);
        for kind in [TunTapKind::Tun, TunTapKind::Tap] {
            assert_eq!(
                hint(kind, OPEN_OP, &e(libc::ENOENT)),
                Some("no /dev/net/tun (load the tun module: modprobe tun)")
            );
            assert_eq!(
                hint(kind, "reading the MAC address", &e(libc::ENOENT)),
                None
            );
            assert_eq!(
                hint(kind, kind.setiff_op(), &e(libc::EPERM)),
                Some("needs root or CAP_NET_ADMIN")
            );
            assert_eq!(
                hint(kind, "x", &e(libc::EBUSY)),
                Some("an interface of that name exists and is in use")
            );
            assert_eq!(hint(kind, "x", &e(libc::EINVAL)), None);
            assert_eq!(hint(kind, "x", &e(libc::EIO)), None);
        }
        assert!(hint(
            TunTapKind::Tap,
            "creating the TAP (TUNSETIFF)",
            &e(libc::EINVAL)
        )
        .unwrap()
        .ends_with("not a TAP"));
        assert!(hint(
            TunTapKind::Tun,
            "creating the TUN (TUNSETIFF)",
            &e(libc::EINVAL)
        )
        .unwrap()
        .ends_with("not a TUN"));
    }

    /// Real devices (needs CAP_NET_ADMIN, as the TAP and TUN tests of the drivers and of
    /// `rondo redirect` do). Names carry the pid so parallel test runs share no device.
    #[test]
    fn opens_real_devices() {
        let id = std::process::id() % 100_000;
        let mac = [0x02, 0x52, 0x44, 0x4f, 0x00, 0x01];
        let tap = TunTap::open(
            TunTapKind::Tap,
            &format!("rdtap{id}"),
            TunTapSetup {
                mac: Some(mac),
                mtu: None,
            },
        )
        .unwrap();
        assert_eq!(tap.name(), format!("rdtap{id}"));
        assert_eq!(tap.mac(), mac);
        let ctl = IfCtl::open().unwrap();
        assert_ne!(i32::from(ctl.flags(tap.name()).unwrap()) & libc::IFF_UP, 0);
        assert_eq!(ctl.hwaddr(tap.name()).unwrap(), (libc::ARPHRD_ETHER, mac));
        let mut buf = [0u8; 2048];
        // Whatever the kernel sent out of the TAP so far (IPv6 solicitations), then none.
        while tap.read(&mut buf).unwrap().is_some() {}
        assert_eq!(tap.read(&mut buf).unwrap(), None);
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&mac);
        frame[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
        assert!(tap.write(&frame).unwrap());

        let tun = TunTap::open(
            TunTapKind::Tun,
            &format!("rdtun{id}"),
            TunTapSetup {
                mac: None,
                mtu: Some(65535),
            },
        )
        .unwrap();
        assert!(tun.mtu_error().is_none());
        assert_eq!(ctl.mtu(tun.name()).unwrap(), 65535);
        assert_ne!(i32::from(ctl.flags(tun.name()).unwrap()) & libc::IFF_UP, 0);
        assert_eq!(tun.mac(), [0; 6]);
        // A TAP of the TUN's name: the kernel refuses, and the hint says why.
        let e = TunTap::open(TunTapKind::Tap, tun.name(), TunTapSetup::default()).unwrap_err();
        assert!(
            matches!(
                e,
                TunTapError::Os {
                    op: "creating the TAP (TUNSETIFF)",
                    ..
                }
            ),
            "{e}"
        );
        let name = tun.name().to_string();
        drop(tun);
        assert!(
            crate::sys::iface::ifindex(&name).is_err(),
            "removed on drop"
        );
    }
}
