//! CPU and OS facing primitives. Like the driver modules, this is where `unsafe` may live:
//! each module that needs it opts in with its own `#![allow(unsafe_code)]`, each block with
//! its `// SAFETY:` reasoning.
//!
//! The OS side has one home here, shared by the drivers and `rondo redirect`: interfaces
//! and their ioctls ([`iface`]), TUN/TAP devices ([`tuntap`]), sockets and socket options
//! ([`socket`]), batched datagram receive ([`mmsg`]), netlink requests to the kernel
//! ([`netlink`]), link-state notifications ([`link`]), waiting for readiness ([`poll`]), the process ([`process`]), claims on an interface or file that one process may drive ([`claim`]) and bounded reads of config
//! and table files that refuse FIFOs and devices ([`file`]). The CPU
//! side is the hot path's prefetch hints ([`cpu`]).
pub mod claim;
pub mod cpu;
pub mod file;
pub mod iface;
pub mod link;
pub mod mmsg;
pub mod netlink;
pub mod poll;
pub mod process;
pub mod socket;
pub mod tuntap;

pub use cpu::{prefetch, prefetch_ptr};
