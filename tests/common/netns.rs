//! Running code inside a network namespace: a thread that entered it with setns(2). A socket
//! stays in the namespace it was created in, whichever thread uses it afterwards; threads a
//! thread spawns after entering inherit its namespace.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread::JoinHandle;

use super::veth::Netns;

/// Move the calling thread into network namespace `ns` (a name under /run/netns).
pub fn enter(ns: &str) {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: setns(2) with a valid namespace descriptor (open for the whole call) only
    // moves this thread, which owns nothing tied to its old namespace.
    let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// Run `f` on a thread that entered network namespace `ns`, and wait for it.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_netns(ns, 0, f).join().expect("netns thread")
}

/// Start `f` on a thread that entered network namespace `ns` (`stack` bytes of stack, or
/// the default when 0).
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    stack: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let ns = ns.to_string();
    let mut b = std::thread::Builder::new().name(format!("in-{ns}"));
    if stack > 0 {
        b = b.stack_size(stack);
    }
    b.spawn(move || {
        enter(&ns);
        f()
    })
    .expect("spawn a thread")
}

/// `sysctl -w KEY=VALUE` inside `ns`; panics with the error.
pub fn sysctl(ns: &Netns, kv: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sysctl", "-qw", kv])
        .output()
        .expect("sysctl");
    assert!(
        out.status.success(),
        "sysctl {kv} in {}: {}",
        ns.name,
        String::from_utf8_lossy(&out.stderr)
    );
}
