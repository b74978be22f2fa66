//! The local delivery path: a TUN interface (`IFF_TUN | IFF_NO_PI`). A decapsulated inner
//! IP packet written to it is received by the kernel as if it arrived on that interface, so
//! any server listening on the VIP handles it and answers the client directly.
//!
//! The interface exists while the [`TunDevice`] is open ([`crate::sys::tuntap`] opens it).
//! Rondo never reads from it: nothing routes to it, and what the kernel may queue there
//! (IPv6 router solicitations) is dropped by the kernel once the queue is full.

use std::io;

use crate::sys::tuntap::{TunTap, TunTapError, TunTapKind, TunTapSetup};

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

/// A failed open step as a [`TunError`], with the usual cause spelled out.
fn open_err(requested: &str, e: TunTapError) -> TunError {
    let hint = e.hint();
    match e {
        TunTapError::Name(reason) => TunError::Setup {
            name: requested.to_string(),
            reason,
        },
        TunTapError::Os {
            name, op, source, ..
        } => match hint {
            Some(hint) => TunError::Setup {
                reason: format!("{op}: {hint} ({source})"),
                name,
            },
            None => TunError::Os { name, op, source },
        },
    }
}

/// A TUN interface, up, with a large MTU. Removed by the kernel when dropped.
#[derive(Debug)]
pub struct TunDevice {
    dev: TunTap,
}

impl TunDevice {
    /// Create (or attach to) TUN interface `name` and bring it up.
    pub fn open(name: &str) -> Result<TunDevice, TunError> {
        let setup = TunTapSetup {
            mac: None,
            mtu: Some(TUN_MTU),
        };
        let dev = TunTap::open(TunTapKind::Tun, name, setup).map_err(|e| open_err(name, e))?;
        if let Some(e) = dev.mtu_error() {
            tracing::warn!(tun = %dev.name(), "could not raise the MTU to {TUN_MTU}: {e}");
        }
        Ok(TunDevice { dev })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        self.dev.name()
    }

    /// Hand one IP packet (IPv4 or IPv6, no extra header) to the kernel; `EAGAIN` when the
    /// device cannot take it now.
    pub fn write(&self, packet: &[u8]) -> io::Result<()> {
        if self.dev.write(packet)? {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EAGAIN))
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

    fn os_err(name: &str, op: &'static str, e: io::Error) -> TunError {
        open_err(
            name,
            TunTapError::Os {
                kind: TunTapKind::Tun,
                name: name.to_string(),
                op,
                source: e,
            },
        )
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
        let e = os_err(
            "t0",
            "creating the TUN (TUNSETIFF)",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert_eq!(
            e.to_string(),
            "tun:t0: creating the TUN (TUNSETIFF): an interface of that name exists and is \
             not a TUN (Invalid argument (os error 22))"
        );
    }
}
