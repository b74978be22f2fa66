//! Network fixtures for tests that need root: veth pairs removed on drop.
#![allow(dead_code)]

use std::process::Command;

pub use super::skip::skip;

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Root and `ip` are available, or why not.
pub fn privileged() -> Result<(), String> {
    if !is_root() {
        return Err("needs root (creates network interfaces)".into());
    }
    Command::new("ip")
        .arg("-V")
        .output()
        .map_err(|e| format!("iproute2 `ip` not runnable: {e}"))?;
    Ok(())
}

/// A veth pair `rdo<tag><pid>a` / `...b`, both up, deleted on drop.
pub struct Veth {
    pub a: String,
    pub b: String,
}

impl Veth {
    /// The pair, or `None` after printing why the test is skipped.
    pub fn new(tag: char) -> Option<Veth> {
        if let Err(why) = privileged() {
            skip(&why);
            return None;
        }
        let pid = std::process::id() % 100_000;
        let (a, b) = (format!("rdo{tag}{pid}a"), format!("rdo{tag}{pid}b"));
        let _ = ip(&["link", "del", &a]);
        if let Err(e) = ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]) {
            skip(&format!("cannot create a veth pair: {e}"));
            return None;
        }
        let v = Veth { a, b };
        for n in [&v.a, &v.b] {
            // Less kernel chatter on the link (best effort).
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{n}/disable_ipv6"), "1");
            ip(&["link", "set", n, "up"]).expect("bring veth up");
        }
        Some(v)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting one end deletes the pair. An end moved into a namespace is gone with the
        // namespace already; then the other end is too.
        let exists = |n: &str| std::path::Path::new(&format!("/sys/class/net/{n}")).exists();
        for end in [&self.a, &self.b] {
            if exists(end) {
                if let Err(e) = ip(&["link", "del", end]) {
                    eprintln!("cleanup: {e}");
                }
                return;
            }
        }
    }
}

/// A network namespace `rdo<tag><pid>` (or another prefix), deleted on drop (with what was moved into it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: char) -> Result<Netns, String> {
        Netns::prefixed("rdo", tag)
    }

    /// A namespace `<prefix><tag><pid>`: tests that may run at the same time as others
    /// (tests/e2e.rs and tests/e2e_quic.rs) each name theirs with a prefix of their own.
    pub fn prefixed(prefix: &str, tag: char) -> Result<Netns, String> {
        let name = format!("{prefix}{tag}{}", std::process::id() % 100_000);
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        Ok(Netns { name })
    }

    /// Move `iface` into this namespace and bring it up there.
    pub fn adopt(&self, iface: &str) -> Result<(), String> {
        ip(&["link", "set", iface, "netns", &self.name])?;
        ip(&["-n", &self.name, "link", "set", iface, "up"])
    }

    /// Run `ip -n NS ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Whether `iface` exists in this namespace.
    pub fn has(&self, iface: &str) -> bool {
        self.ip(&["link", "show", iface]).is_ok()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// The test's own side of a wire: an AF_PACKET port on `iface` with `frames` buffers of
/// 2048 bytes and an RX ring of `blocks` 64 KiB blocks, and its one queue pair. Keep the
/// port: it owns the buffers the queues use.
pub fn test_port(
    iface: &str,
    frames: usize,
    blocks: usize,
) -> (
    rondo::drivers::af_packet::AfPacketPort,
    rondo::drivers::af_packet::AfPacketRx,
    rondo::drivers::af_packet::AfPacketTx,
) {
    use rondo::drivers::af_packet::{AfPacketOptions, AfPacketPort};
    use rondo::drivers::Port;
    let mut port = AfPacketPort::open(
        iface,
        rondo::drivers::BufPool::new(frames, 2048).unwrap(),
        AfPacketOptions {
            block_size: 1 << 16,
            block_count: blocks,
            ..AfPacketOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("af_packet on {iface}: {e}"));
    let (rx, tx) = port
        .take_queues(1)
        .unwrap_or_else(|e| panic!("queues of {iface}: {e}"))
        .pop()
        .unwrap();
    (port, rx, tx)
}
