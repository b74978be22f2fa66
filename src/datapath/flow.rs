//! What the classifier tells the rest of the data path about a packet: its [`Flow`], and
//! the `FieldSet` that its hashes are computed over.

use crate::config::HashFields;

/// Which fields feed a hash, as a bit set for a cheap test per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldSet(pub(crate) u8);

impl FieldSet {
    pub(crate) const SRC_ADDR: u8 = 1;
    pub(crate) const DST_ADDR: u8 = 2;
    pub(crate) const SRC_PORT: u8 = 4;
    pub(crate) const DST_PORT: u8 = 8;
    pub(crate) fn from(h: &HashFields) -> Self {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        FieldSet(
            bit(h.src_addr, Self::SRC_ADDR)
                | bit(h.dst_addr, Self::DST_ADDR)
                | bit(h.src_port, Self::SRC_PORT)
                | bit(h.dst_port, Self::DST_PORT),
        )
    }
    #[inline]
    pub(crate) fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// Evaluate `$body` with `$F` a constant holding the [`FieldSet`] bits `$bits` (0 to 15),
/// so that code generic over the field set is chosen once rather than per packet.
macro_rules! with_field_set {
    ($bits:expr, $F:ident => $body:expr) => {
        match $bits & 15 {
            0 => {
                const $F: u8 = 0;
                $body
            }
            1 => {
                const $F: u8 = 1;
                $body
            }
            2 => {
                const $F: u8 = 2;
                $body
            }
            3 => {
                const $F: u8 = 3;
                $body
            }
            4 => {
                const $F: u8 = 4;
                $body
            }
            5 => {
                const $F: u8 = 5;
                $body
            }
            6 => {
                const $F: u8 = 6;
                $body
            }
            7 => {
                const $F: u8 = 7;
                $body
            }
            8 => {
                const $F: u8 = 8;
                $body
            }
            9 => {
                const $F: u8 = 9;
                $body
            }
            10 => {
                const $F: u8 = 10;
                $body
            }
            11 => {
                const $F: u8 = 11;
                $body
            }
            12 => {
                const $F: u8 = 12;
                $body
            }
            13 => {
                const $F: u8 = 13;
                $body
            }
            14 => {
                const $F: u8 = 14;
                $body
            }
            _ => {
                const $F: u8 = 15;
                $body
            }
        }
    };
}
pub(crate) use with_field_set;

/// A packet that belongs to a bind: where its IP packet is and how it hashed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    /// Index of the table in the snapshot.
    pub table: u16,
    /// Offset of the IP header in the frame (Ethernet + VLAN length).
    pub l3_off: u16,
    /// Length of the IP packet (without Ethernet padding).
    pub ip_len: u16,
    /// Inner packet is IPv6 (GUE proto 41) rather than IPv4 (4).
    pub inner_v6: bool,
    /// Hash with `hash_fields`.
    pub hash: u64,
    /// Hash with `alt_hash_fields` (0 when unused).
    pub alt_hash: u64,
    /// GLB's flow hint, mixed into the UDP source port.
    pub hint: u16,
    /// QUIC-LB: the backend its connection ID names, as its index in the table plus one
    /// (0: none, the row's hops as they are).
    pub pin: u16,
    /// QUIC-LB: the [`QuicOutcome`](super::counters::QuicOutcome) code (0: not a packet to
    /// a QUIC-LB bind).
    pub quic: u8,
}

impl Flow {
    /// All zero (as `Default`), usable in constants.
    pub const EMPTY: Flow = Flow {
        table: 0,
        l3_off: 0,
        ip_len: 0,
        inner_v6: false,
        hash: 0,
        alt_hash: 0,
        hint: 0,
        pin: 0,
        quic: 0,
    };
}
