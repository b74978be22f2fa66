//! Verdicts, drop reasons and per-core counters.

/// Why a packet was dropped. Each reason has its own counter; names are stable (metrics and
/// console use [`DropReason::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Frame shorter than its Ethernet (and VLAN) header.
    TruncatedL2,
    /// More than one VLAN tag (QinQ) on a director port.
    StackedVlan,
    /// IP header or packet (IPv4 total length, IPv6 payload length) runs past the frame.
    TruncatedIp,
    /// IP version field does not match the ethertype.
    BadIpVersion,
    /// IPv4 IHL below 5 or beyond the frame.
    BadIhl,
    /// IPv4 total length below its own header length.
    BadIpLength,
    /// IPv6 extension header malformed or running past the payload.
    BadExtHeader,
    /// More IPv6 extension headers than Rondo walks (bounds loops).
    TooManyExtHeaders,
    /// IP fragment addressed to a VIP: cannot be hashed on ports safely.
    Fragment,
    /// TCP/UDP header missing or truncated (zero-length L4 included).
    TruncatedL4,
    /// ICMP header truncated.
    TruncatedIcmp,
    /// ICMP error quoting a header too short to find the flow.
    IcmpQuoteTruncated,
    /// Not enough headroom in the buffer to prepend the encapsulation.
    NoHeadroom,
    /// Encapsulated packet would exceed 65535 bytes.
    TooBig,
}

impl DropReason {
    pub const COUNT: usize = 14;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::TruncatedL2,
        DropReason::StackedVlan,
        DropReason::TruncatedIp,
        DropReason::BadIpVersion,
        DropReason::BadIhl,
        DropReason::BadIpLength,
        DropReason::BadExtHeader,
        DropReason::TooManyExtHeaders,
        DropReason::Fragment,
        DropReason::TruncatedL4,
        DropReason::TruncatedIcmp,
        DropReason::IcmpQuoteTruncated,
        DropReason::NoHeadroom,
        DropReason::TooBig,
    ];

    /// Stable snake_case name for counters, metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::TruncatedL2 => "truncated_l2",
            DropReason::StackedVlan => "stacked_vlan",
            DropReason::TruncatedIp => "truncated_ip",
            DropReason::BadIpVersion => "bad_ip_version",
            DropReason::BadIhl => "bad_ihl",
            DropReason::BadIpLength => "bad_ip_length",
            DropReason::BadExtHeader => "bad_ext_header",
            DropReason::TooManyExtHeaders => "too_many_ext_headers",
            DropReason::Fragment => "fragment",
            DropReason::TruncatedL4 => "truncated_l4",
            DropReason::TruncatedIcmp => "truncated_icmp",
            DropReason::IcmpQuoteTruncated => "icmp_quote_truncated",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::TooBig => "too_big",
        }
    }
}

/// What happens to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Encapsulated in place; send it out the port.
    Forward,
    /// Not for a VIP (ARP, BGP, SSH to the host, ...): hand to the kernel unchanged.
    Exception(ExceptionReason),
    /// Dropped; the reason's counter was incremented.
    Drop(DropReason),
}

/// How a packet to a QUIC-LB bind (a UDP bind of a table with `quic_lb`) was routed: by
/// the server ID in its destination connection ID, or by the flow hash (the draft's
/// fallback) and why. Forwarded either way; each outcome has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum QuicOutcome {
    /// The DCID names a usable backend of the table: it is the first hop.
    Routed,
    /// Not a QUIC packet the director can read (empty, truncated, a DCID over 20 bytes, a
    /// short header whose codepoint no configuration gives a length): hashed.
    NotQuic,
    /// A Version Negotiation packet: hashed.
    VersionNegotiation,
    /// Codepoint 7, a server without a configuration: hashed.
    Unroutable,
    /// A codepoint without a configuration here (client-chosen Initial and 0-RTT DCIDs,
    /// mostly): hashed.
    UnknownConfig,
    /// Shorter than the configuration's CIDs: hashed.
    TooShort,
    /// A server ID no backend of the table has: hashed.
    UnknownServer,
    /// The server ID of an unhealthy or inactive backend: hashed.
    UnusableServer,
}

impl QuicOutcome {
    pub const COUNT: usize = 8;
    pub const ALL: [QuicOutcome; Self::COUNT] = [
        QuicOutcome::Routed,
        QuicOutcome::NotQuic,
        QuicOutcome::VersionNegotiation,
        QuicOutcome::Unroutable,
        QuicOutcome::UnknownConfig,
        QuicOutcome::TooShort,
        QuicOutcome::UnknownServer,
        QuicOutcome::UnusableServer,
    ];

    /// Stable snake_case name for counters, metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            QuicOutcome::Routed => "routed",
            QuicOutcome::NotQuic => "not_quic",
            QuicOutcome::VersionNegotiation => "version_negotiation",
            QuicOutcome::Unroutable => "unroutable",
            QuicOutcome::UnknownConfig => "unknown_config",
            QuicOutcome::TooShort => "too_short",
            QuicOutcome::UnknownServer => "unknown_server",
            QuicOutcome::UnusableServer => "unusable_server",
        }
    }

    /// The outcome a [`Flow`](super::flow::Flow) carries as `quic` (0: no QUIC-LB bind).
    #[inline(always)]
    pub(crate) fn code(self) -> u8 {
        self as u8 + 1
    }

    /// The outcome of a [`QuicOutcome::code`]; `None` for 0 (not a QUIC-LB packet).
    #[inline(always)]
    pub(crate) fn from_code(code: u8) -> Option<QuicOutcome> {
        Self::ALL.get(usize::from(code.checked_sub(1)?)).copied()
    }
}

/// Why a packet went to the exception path (counted, not an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExceptionReason {
    /// Not IPv4/IPv6 (ARP, LLDP, 802.3 frames, ...).
    NotIp,
    /// IP packet whose destination/protocol/port matches no bind.
    NoBind,
    /// ICMP to a VIP that Rondo does not forward (echo with forwarding off, other types).
    Icmp,
}

impl ExceptionReason {
    pub const COUNT: usize = 3;
    pub const ALL: [ExceptionReason; Self::COUNT] = [
        ExceptionReason::NotIp,
        ExceptionReason::NoBind,
        ExceptionReason::Icmp,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ExceptionReason::NotIp => "not_ip",
            ExceptionReason::NoBind => "no_bind",
            ExceptionReason::Icmp => "icmp",
        }
    }
}

/// Counters of [`CoreCounters`] before the per-reason arrays in [`CoreCounters::to_words`].
const FIXED: usize = 9;

/// Counters of one worker core, alone on their cache lines (no false sharing). Written only by
/// their core; the control thread reads them (torn reads of a u64 cannot happen on x86_64,
/// and the values only grow).
#[derive(Debug, Clone, Default)]
#[repr(C, align(64))]
pub struct CoreCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub forwarded: u64,
    pub forwarded_bytes: u64,
    pub exceptions: [u64; ExceptionReason::COUNT],
    pub drops: [u64; DropReason::COUNT],
    /// Packets forwarded with 4 hops (alt_hash_fields in use).
    pub alt_hashed: u64,
    /// Packets to QUIC-LB binds, per [`QuicOutcome`] (forwarded or dropped after).
    pub quic: [u64; QuicOutcome::COUNT],
    pub bursts: u64,
    /// Forwarded packets the TX queue still refused after retries (dropped, counted).
    pub tx_refused: u64,
    /// Exception packets dropped: exception path off or its queue full.
    pub exception_dropped: u64,
    /// Frames from the kernel (exception path) that this worker was to send, when the port
    /// has no exception TX queue of its own, and did not: refused by the TX queue after
    /// retries, or still queued when the worker stopped. Not part of `tx_refused`, which
    /// counts forwarded packets only.
    pub kernel_tx_dropped: u64,
}

impl CoreCounters {
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
    pub fn total_exceptions(&self) -> u64 {
        self.exceptions.iter().sum()
    }
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }
    pub fn exception_count(&self, r: ExceptionReason) -> u64 {
        self.exceptions[r as usize]
    }
    pub fn quic_count(&self, o: QuicOutcome) -> u64 {
        self.quic[o as usize]
    }
    /// Received packets with no verdict counted: `rx_packets - forwarded - exceptions -
    /// drops`. Zero whenever the counters were published whole (a worker publishes after
    /// whole bursts only); anything else is a packet lost without a counter.
    pub fn unaccounted(&self) -> i128 {
        i128::from(self.rx_packets)
            - i128::from(self.forwarded)
            - i128::from(self.total_exceptions())
            - i128::from(self.total_drops())
    }
    /// Forwarded packets the TX queue took: `forwarded - tx_refused`.
    pub fn sent(&self) -> u64 {
        self.forwarded.saturating_sub(self.tx_refused)
    }
    /// Add another core's counters into this one (for totals).
    pub fn accumulate(&mut self, o: &CoreCounters) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.forwarded += o.forwarded;
        self.forwarded_bytes += o.forwarded_bytes;
        for (a, b) in self.exceptions.iter_mut().zip(o.exceptions) {
            *a += b;
        }
        for (a, b) in self.drops.iter_mut().zip(o.drops) {
            *a += b;
        }
        for (a, b) in self.quic.iter_mut().zip(o.quic) {
            *a += b;
        }
        self.alt_hashed += o.alt_hashed;
        self.bursts += o.bursts;
        self.tx_refused += o.tx_refused;
        self.exception_dropped += o.exception_dropped;
        self.kernel_tx_dropped += o.kernel_tx_dropped;
    }

    /// Number of u64 words in [`CoreCounters::to_words`].
    pub const WORDS: usize =
        FIXED + ExceptionReason::COUNT + DropReason::COUNT + QuicOutcome::COUNT;

    /// All counters as words, for publishing through atomics.
    pub fn to_words(&self) -> [u64; Self::WORDS] {
        let mut w = [0u64; Self::WORDS];
        let fixed = [
            self.rx_packets,
            self.rx_bytes,
            self.forwarded,
            self.forwarded_bytes,
            self.alt_hashed,
            self.bursts,
            self.tx_refused,
            self.exception_dropped,
            self.kernel_tx_dropped,
        ];
        w[..FIXED].copy_from_slice(&fixed);
        w[FIXED..FIXED + ExceptionReason::COUNT].copy_from_slice(&self.exceptions);
        let quic = FIXED + ExceptionReason::COUNT + DropReason::COUNT;
        w[FIXED + ExceptionReason::COUNT..quic].copy_from_slice(&self.drops);
        w[quic..].copy_from_slice(&self.quic);
        w
    }

    /// Inverse of [`CoreCounters::to_words`].
    pub fn from_words(w: &[u64; Self::WORDS]) -> Self {
        let mut c = CoreCounters {
            rx_packets: w[0],
            rx_bytes: w[1],
            forwarded: w[2],
            forwarded_bytes: w[3],
            alt_hashed: w[4],
            bursts: w[5],
            tx_refused: w[6],
            exception_dropped: w[7],
            kernel_tx_dropped: w[8],
            ..CoreCounters::default()
        };
        c.exceptions
            .copy_from_slice(&w[FIXED..FIXED + ExceptionReason::COUNT]);
        let quic = FIXED + ExceptionReason::COUNT + DropReason::COUNT;
        c.drops
            .copy_from_slice(&w[FIXED + ExceptionReason::COUNT..quic]);
        c.quic.copy_from_slice(&w[quic..]);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_own_slot() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.name());
        }
        for (i, r) in ExceptionReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.name());
        }
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
        assert_eq!(std::mem::align_of::<CoreCounters>(), 64);
        let mut c = CoreCounters::default();
        for (i, w) in c.drops.iter_mut().enumerate() {
            *w = 100 + i as u64;
        }
        c.exceptions[2] = 7;
        c.tx_refused = 3;
        c.rx_bytes = 9;
        c.kernel_tx_dropped = 4;
        c.quic[QuicOutcome::UnusableServer as usize] = 11;
        for (i, o) in QuicOutcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "{}", o.name());
        }
        assert_eq!(
            CoreCounters::from_words(&c.to_words()).to_words(),
            c.to_words()
        );
    }
}
