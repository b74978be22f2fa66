//! The XDP program (`bpf/steer.bpf.c`, compiled by build.rs and embedded here): loading
//! and attaching it with aya, the stale and foreign programs found on the interface, and
//! the steering maps ([`Steering`]).
//!
//! Why aya: it is pure Rust (no libbpf, no C library at run time, so the af_xdp build has
//! no run-time dependency beyond the kernel), well kept (the most used eBPF crate), and
//! attaches XDP through a BPF link on Linux >= 5.9, which the kernel takes off the
//! interface when the last descriptor of the link is closed: a director that is killed
//! leaves nothing attached. A stale program can still be there when it was attached
//! through netlink (an older kernel, or by hand): ours, by its name, is taken off with a
//! log line; any other XDP program is an error and is left alone.

use std::net::IpAddr;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{MapData, XskMap};
use aya::programs::{loaded_programs, Xdp, XdpFlags};
use aya::Ebpf;

use super::netlink;
use super::AfXdpError;

/// The program's name in the kernel (its function name).
pub const PROG_NAME: &str = "rondo_steer";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer.bpf.o"));

/// How the program got attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (native XDP).
    Native,
    /// Generic XDP (the kernel's skb path): works everywhere, slower.
    Generic,
}

/// The loaded and attached program; dropping it detaches it.
pub struct Loaded {
    /// Holds the program and its link (detached when this is dropped).
    ebpf: Ebpf,
    pub xsks: XskMap<MapData>,
    pub mode: AttachMode,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("mode", &self.mode).finish()
    }
}

/// The name of the program of id `id`, if it is loaded.
fn prog_name(id: u32) -> Option<String> {
    loaded_programs()
        .flatten()
        .find(|p| p.id() == id)
        .map(|p| p.name_as_str().unwrap_or("").to_string())
}

/// Take a stale program of ours off `iface`; refuse when another program is attached.
fn clear_stale(iface: &str, ifindex: u32) -> Result<(), AfXdpError> {
    let att = netlink::attached(ifindex).map_err(|source| AfXdpError::Os {
        iface: iface.into(),
        op: "reading the interface's XDP state (RTM_GETLINK)",
        source,
    })?;
    for (id, mode) in att.any() {
        let name = prog_name(id).unwrap_or_default();
        if name != PROG_NAME {
            return Err(AfXdpError::Foreign {
                iface: iface.into(),
                id,
                name,
            });
        }
        tracing::warn!(
            iface,
            prog_id = id,
            "a stale rondo XDP program is attached (a director that was killed?): replacing it"
        );
        netlink::detach(ifindex, mode).map_err(|source| AfXdpError::Os {
            iface: iface.into(),
            op: "detaching the stale rondo XDP program (another director still running?)",
            source,
        })?;
    }
    Ok(())
}

/// Load the program and attach it to `iface`: native mode, or generic mode where the
/// driver has no native XDP (logged).
pub fn load_and_attach(iface: &str, ifindex: u32) -> Result<Loaded, AfXdpError> {
    clear_stale(iface, ifindex)?;
    let mut ebpf = Ebpf::load(OBJECT).map_err(|e| AfXdpError::Load {
        iface: iface.into(),
        reason: e.to_string(),
    })?;
    let prog: &mut Xdp = ebpf
        .program_mut(PROG_NAME)
        .ok_or_else(|| AfXdpError::Load {
            iface: iface.into(),
            reason: format!("the object has no program {PROG_NAME}"),
        })?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| AfXdpError::Load {
            iface: iface.into(),
            reason: e.to_string(),
        })?;
    prog.load().map_err(|e| AfXdpError::Load {
        iface: iface.into(),
        reason: format!("the verifier refused it or BPF is not permitted: {e}"),
    })?;
    let mode = match prog.attach_to_if_index(ifindex, XdpFlags::DRV_MODE) {
        Ok(_) => AttachMode::Native,
        Err(native) => match prog.attach_to_if_index(ifindex, XdpFlags::SKB_MODE) {
            Ok(_) => {
                tracing::warn!(iface, error = %native, "no native XDP on this interface: generic XDP (slower)");
                AttachMode::Generic
            }
            Err(e) => {
                return Err(AfXdpError::Attach {
                    iface: iface.into(),
                    reason: format!("native: {native}; generic: {e}"),
                })
            }
        },
    };
    let mut map = |name: &str| {
        ebpf.take_map(name).ok_or_else(|| AfXdpError::Load {
            iface: iface.into(),
            reason: format!("the object has no map {name}"),
        })
    };
    let xsks = XskMap::try_from(map("rondo_xsks")?).map_err(|e| AfXdpError::Load {
        iface: iface.into(),
        reason: e.to_string(),
    })?;
    Ok(Loaded { ebpf, xsks, mode })
}

impl Loaded {
    /// The steering maps (taken once).
    pub fn steering(&mut self, iface: &str) -> Result<Steering, AfXdpError> {
        let err = |reason: String| AfXdpError::Load {
            iface: iface.into(),
            reason,
        };
        let v4 = self
            .ebpf
            .take_map("rondo_vip4")
            .ok_or_else(|| err("no map rondo_vip4".into()))?;
        let v6 = self
            .ebpf
            .take_map("rondo_vip6")
            .ok_or_else(|| err("no map rondo_vip6".into()))?;
        Ok(Steering {
            iface: iface.into(),
            v4: LpmTrie::try_from(v4).map_err(|e| err(e.to_string()))?,
            v6: LpmTrie::try_from(v6).map_err(|e| err(e.to_string()))?,
            now: Vec::new(),
        })
    }
}

/// The VIP prefixes the program steers to the sockets.
pub struct Steering {
    iface: String,
    v4: LpmTrie<MapData, [u8; 4], u8>,
    v6: LpmTrie<MapData, [u8; 16], u8>,
    /// What the maps hold now.
    now: Vec<(IpAddr, u8)>,
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering")
            .field("prefixes", &self.now)
            .finish()
    }
}

impl Steering {
    /// Make the maps hold exactly `prefixes` (added first, then the old ones removed, so a
    /// VIP in both sets is steered throughout).
    pub fn set(&mut self, prefixes: &[(IpAddr, u8)]) -> Result<(), AfXdpError> {
        let mut want: Vec<(IpAddr, u8)> = prefixes.iter().map(|&(a, l)| mask(a, l)).collect();
        want.sort();
        want.dedup();
        for &(a, l) in &want {
            let r = match a {
                IpAddr::V4(a) => self.v4.insert(&Key::new(u32::from(l), a.octets()), 1, 0),
                IpAddr::V6(a) => self.v6.insert(&Key::new(u32::from(l), a.octets()), 1, 0),
            };
            r.map_err(|e| AfXdpError::Steering {
                iface: self.iface.clone(),
                reason: format!("adding {a}/{l}: {e}"),
            })?;
        }
        // Every removal is tried; one that fails leaves that prefix steered (its packets
        // reach the workers, which no longer know it: counted as non-VIP), so say so.
        let mut failed = Vec::new();
        let gone: Vec<(IpAddr, u8)> = self
            .now
            .iter()
            .filter(|p| !want.contains(p))
            .copied()
            .collect();
        for (a, l) in gone {
            let r = match a {
                IpAddr::V4(a) => self.v4.remove(&Key::new(u32::from(l), a.octets())),
                IpAddr::V6(a) => self.v6.remove(&Key::new(u32::from(l), a.octets())),
            };
            if let Err(e) = r {
                failed.push(format!("{a}/{l}: {e}"));
                want.push((a, l));
            }
        }
        want.sort();
        self.now = want;
        if failed.is_empty() {
            Ok(())
        } else {
            Err(AfXdpError::Steering {
                iface: self.iface.clone(),
                reason: format!("removing {} (still steered)", failed.join(", ")),
            })
        }
    }

    /// The prefixes steered now.
    pub fn prefixes(&self) -> &[(IpAddr, u8)] {
        &self.now
    }
}

/// `addr/len` with the host bits cleared (the LPM trie compares prefix bits only, but one
/// key per prefix keeps removal exact).
pub(super) fn mask(a: IpAddr, len: u8) -> (IpAddr, u8) {
    match a {
        IpAddr::V4(v) => {
            let l = len.min(32);
            let m = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            (IpAddr::V4((u32::from(v) & m).into()), l)
        }
        IpAddr::V6(v) => {
            let l = len.min(128);
            let m = if l == 0 { 0 } else { u128::MAX << (128 - l) };
            (IpAddr::V6((u128::from(v) & m).into()), l)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_keyed_without_host_bits() {
        let p = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(mask(p("1.1.1.77"), 24), (p("1.1.1.0"), 24));
        assert_eq!(mask(p("1.1.1.77"), 32), (p("1.1.1.77"), 32));
        assert_eq!(mask(p("1.1.1.77"), 40), (p("1.1.1.77"), 32));
        assert_eq!(mask(p("9.9.9.9"), 0), (p("0.0.0.0"), 0));
        assert_eq!(mask(p("fdb4::42"), 64), (p("fdb4::"), 64));
        assert_eq!(mask(p("fdb4::42"), 200), (p("fdb4::42"), 128));
    }
}
