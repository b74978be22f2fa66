//! The lifeline: what makes a dead director's routes go, even after SIGKILL.
//!
//! Rondo owns a TAP interface opened without `IFF_TUN_PERSIST`: the kernel deletes it when
//! the last descriptor of the device closes, which happens when the process dies however it
//! dies (the descriptor is `O_CLOEXEC`, so no child keeps it alive). Every route of the
//! generated include is a device route `via "<lifeline>"`; BIRD learns of the deletion at
//! once through its netlink link notifications (the device protocol's `scan time` is only
//! the fallback rescan) and withdraws the routes from its BGP sessions.
//!
//! Measured with BIRD 2.0.12: the static routes are gone from BIRD within 0.2 s of the
//! interface's deletion, and the router's kernel FIB loses them within a second of the
//! SIGKILL (`tests/bgp_bird.rs` prints the time). This was chosen over running bird as
//! Rondo's child with `PR_SET_PDEATHSIG`: that would tie the operator's daemon (and every
//! other route it announces) to Rondo's lifetime and make Rondo its supervisor, while the
//! lifeline takes only Rondo's routes away and leaves the daemon and its sessions up, so a
//! restarted Rondo announces again without a BGP session re-establishing.

use super::bird_conf::LifelineName;
use crate::sys::tuntap::{TunTap, TunTapError, TunTapKind, TunTapSetup};

/// Why the lifeline could not be created.
#[derive(Debug, thiserror::Error)]
pub enum LifelineError {
    #[error("lifeline interface {name}: an interface of that name exists already (a persistent TAP left behind? check `ip link show {name}`, remove it with `ip link del {name}`, or name another lifeline): a lifeline must be created by this process so it dies with it")]
    Exists { name: String },
    #[error("lifeline interface {name}: {source}{}", .hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Open {
        name: String,
        hint: Option<&'static str>,
        #[source]
        source: TunTapError,
    },
}

/// The lifeline TAP; the interface exists exactly as long as this value (and the process).
#[derive(Debug)]
pub struct Lifeline {
    tap: TunTap,
}

impl Lifeline {
    /// Create the TAP `name`, up, with IPv6 off on it (no link-local chatter). Refuses a
    /// name that exists already: attaching to a persistent TAP would outlive the process.
    pub fn open(name: &LifelineName) -> Result<Lifeline, LifelineError> {
        let name = name.as_str();
        if crate::sys::iface::ifindex(name).is_ok() {
            return Err(LifelineError::Exists {
                name: name.to_string(),
            });
        }
        let tap = TunTap::open(TunTapKind::Tap, name, TunTapSetup::default()).map_err(|e| {
            LifelineError::Open {
                name: name.to_string(),
                hint: e.hint(),
                source: e,
            }
        })?;
        // Best effort: a kernel without IPv6 has no such file.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
        Ok(Lifeline { tap })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        self.tap.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs CAP_NET_ADMIN, like the TAP tests of `sys::tuntap`.
    #[test]
    fn lives_while_held_and_refuses_an_existing_name() {
        let name = LifelineName::new(&format!("rdlf{}", std::process::id() % 100_000)).unwrap();
        let l = Lifeline::open(&name).unwrap();
        assert_eq!(l.name(), name.as_str());
        assert!(crate::sys::iface::ifindex(name.as_str()).is_ok());
        let e = Lifeline::open(&name).unwrap_err();
        assert!(matches!(e, LifelineError::Exists { .. }), "{e}");
        assert!(e.to_string().contains("ip link del"), "{e}");
        drop(l);
        assert!(
            crate::sys::iface::ifindex(name.as_str()).is_err(),
            "the kernel removes the interface with its last descriptor"
        );
    }
}
