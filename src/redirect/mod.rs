//! `rondo redirect`: the backend side of GLB's second chance, in userspace.
//!
//! GLB runs this on every backend as a kernel module (`glb-redirect`, an iptables target)
//! plus the kernel's `fou` module for decapsulation. Rondo needs neither:
//! - GUE arrives on a UDP socket bound to port 19523 ([`socket`]);
//! - [`decide()`] applies the second-chance rules (SYN, a kernel socket for the flow found
//!   through `sock_diag` ([`diag`]), a possible syncookie ACK, hops exhausted, the next hop
//!   is us: local; otherwise forward), plus the bad-input and anti-loop checks, in the order
//!   its table documents;
//! - local packets are decapsulated and written to a TUN device ([`tun`]): the kernel
//!   receives the inner packet as if from the wire, so any server listening on the VIP
//!   answers the client directly;
//! - forwarded packets get a new outer header from us to the next hop with `next_hop`
//!   advanced ([`forward`]) and leave through a raw socket.
//!
//! QUIC has a second chance too ([`quic`]): a QUIC datagram whose connection ID carries
//! another server's QUIC-LB server ID goes to the next hop, as a TCP packet without a
//! kernel socket does.
//!
//! GLB's GUE health check (`01 04 00 00 00 00 00 00` + an ICMP echo request to us) is an
//! inner ICMP packet: it is delivered locally and the kernel answers the echo itself.
//!
//! Who may talk to us: GUE is only accepted from `directors` (directors and health checkers)
//! and `backends` (peers forwarding a second chance); packets are only forwarded to
//! `backends`. Both lists are required in the config.

pub mod config;
pub mod decide;
pub mod diag;
pub mod forward;
pub mod quic;
pub mod service;
pub mod socket;
pub mod tun;

use std::fmt::Write as _;

pub use config::RedirectConfig;
pub use decide::{
    decide, AddrSet, Decision, FlowKey, GueDropReason, LocalReason, Outer, Policy, SocketLookup,
    SocketState,
};
pub use quic::{QuicClass, QuicPolicy};
pub use service::{Redirect, RedirectError};

/// Per-decision counters of `rondo redirect` (the director's are
/// [`crate::datapath::CoreCounters`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RedirectCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub local: [u64; LocalReason::COUNT],
    pub forwarded: u64,
    /// Of `forwarded`: QUIC packets whose CID named another server.
    pub forwarded_quic: u64,
    /// Hops passed over because they already had the packet (decision row 18).
    pub revisit_skipped: u64,
    pub drops: [u64; GueDropReason::COUNT],
    /// Local packets the TUN device refused.
    pub tun_errors: u64,
    /// Forwarded packets the raw socket refused.
    pub send_errors: u64,
}

impl RedirectCounters {
    /// Count one decision.
    pub fn count(&mut self, d: &Decision) {
        match d {
            Decision::Local { why, skipped, .. } => {
                self.local[why.index()] += 1;
                self.revisit_skipped += u64::from(*skipped);
            }
            Decision::Forward { skipped, quic, .. } => {
                self.forwarded += 1;
                self.forwarded_quic += u64::from(*quic);
                self.revisit_skipped += u64::from(*skipped);
            }
            Decision::Drop(r) => self.drops[r.index()] += 1,
        }
    }

    pub fn local_count(&self, r: LocalReason) -> u64 {
        self.local[r.index()]
    }

    pub fn drop_count(&self, r: GueDropReason) -> u64 {
        self.drops[r.index()]
    }

    pub fn total_local(&self) -> u64 {
        self.local.iter().sum()
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// One line per total and per non-zero reason, `name count`, as printed on exit and on
    /// SIGUSR1.
    pub fn format(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "rx          {:>12} packets {:>14} bytes",
            self.rx_packets, self.rx_bytes
        );
        let _ = writeln!(o, "local       {:>12} packets", self.total_local());
        for r in LocalReason::ALL {
            if self.local_count(r) > 0 {
                let _ = writeln!(o, "  local_{:<20}{:>12}", r.name(), self.local_count(r));
            }
        }
        let _ = writeln!(o, "forwarded   {:>12} packets", self.forwarded);
        if self.forwarded_quic > 0 {
            let _ = writeln!(o, "  forwarded_quic        {:>12}", self.forwarded_quic);
        }
        let _ = writeln!(o, "  revisit_skipped       {:>12}", self.revisit_skipped);
        let _ = writeln!(o, "dropped     {:>12} packets", self.total_drops());
        for r in GueDropReason::ALL {
            if self.drop_count(r) > 0 {
                let _ = writeln!(o, "  drop_{:<21}{:>12}", r.name(), self.drop_count(r));
            }
        }
        let _ = writeln!(
            o,
            "errors      tun {} send {}",
            self.tun_errors, self.send_errors
        );
        o
    }
}
