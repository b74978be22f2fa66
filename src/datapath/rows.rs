//! The rows of an express table with both hops resolved, and the [`ExpressTable`] that
//! holds them: the proof, by its type, that a table can take the express lane.

use super::outer::{BackendV4, OuterTemplate};
use crate::table::TABLE_ROWS;
use crate::wire::checksum;

/// A row of an express table with both hops resolved: all that the encapsulation reads of
/// the table per packet, besides the outer template, in 16 bytes (one load of a line the
/// pipeline prefetched, and no backend lookup). Built once per table when the snapshot is
/// compiled ([`ExpressTable::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(16))]
pub(crate) struct PairRow {
    /// The primary's address (network order): the outer destination.
    pub(super) dst: [u8; 4],
    /// The secondary's address: the GUE hop.
    pub(super) hop: [u8; 4],
    /// The primary's index in the table.
    pub(super) primary: u32,
    /// The outer IPv4 header's sum with `dst` ([`BackendV4`]), without the total length.
    pub(super) ip_le: u16,
    /// The UDP checksum's sum over the template and both addresses, folded, in the
    /// little-endian domain of [`checksum::sum_le`]: what is left per packet is its
    /// source port, lengths, GUE protocol and the inner packet.
    pub(super) udp_le: u16,
}

impl PairRow {
    fn new(t: &OuterTemplate, primary: BackendV4, secondary: BackendV4, index: u32) -> PairRow {
        let le = |a: [u8; 4]| u64::from(u32::from_le_bytes(a));
        PairRow {
            dst: primary.addr,
            hop: secondary.addr,
            primary: index,
            ip_le: primary.ip_le,
            udp_le: checksum::fold(t.udp_sum_le + le(primary.addr) + le(secondary.addr)),
        }
    }
}

impl OuterTemplate {
    /// The resolved rows of a two-hop table of this (IPv4) template, whose backends are
    /// `addrs`: `None` if a row names a backend `addrs` does not have.
    pub(crate) fn pair_rows(
        &self,
        pairs: &[[u32; 2]; TABLE_ROWS],
        addrs: &[BackendV4],
    ) -> Option<Box<[PairRow; TABLE_ROWS]>> {
        let rows: Box<[PairRow]> = pairs
            .iter()
            .map(|&[first, second]| {
                let (p, s) = (addrs.get(first as usize)?, addrs.get(second as usize)?);
                Some(PairRow::new(self, *p, *s, first))
            })
            .collect::<Option<_>>()?;
        rows.try_into().ok()
    }
}

/// A table the express lane can take: IPv4 backends, two hops per packet (primary and
/// secondary), no alternate hash fields, and every row resolved. Only
/// [`ExpressTable::resolve`] makes one, so holding one is the proof that the rows are
/// there: the lane keeps `&ExpressTable`s (8 bytes each) and never checks again. Its
/// template, key and counter base are copies of its table's, so that the lane reads this
/// one struct (and the prefetched row) per packet.
#[derive(Debug)]
pub(crate) struct ExpressTable {
    rows: Box<[PairRow; TABLE_ROWS]>,
    /// The table's outer headers (IPv4).
    pub(super) outer: OuterTemplate,
    /// The table's `hash_key` as SipHash key halves `(k0, k1)`.
    pub(super) sip_key: (u64, u64),
    /// Where the table's backends start in each worker's `SentCounters` region.
    pub(super) sent_base: usize,
}

impl ExpressTable {
    /// The express form of a two-hop table with IPv4 outer headers `outer`, whose rows are
    /// `pairs` and backends `addrs`: `None` if a row names a backend `addrs` does not have
    /// (the table then takes the general path).
    pub(super) fn resolve(
        outer: &OuterTemplate,
        pairs: &[[u32; 2]; TABLE_ROWS],
        addrs: &[BackendV4],
        sip_key: (u64, u64),
        sent_base: usize,
    ) -> Option<ExpressTable> {
        Some(ExpressTable {
            rows: outer.pair_rows(pairs, addrs)?,
            outer: outer.clone(),
            sip_key,
            sent_base,
        })
    }

    /// The row of a flow hash (its low 16 bits: no bounds check).
    #[inline(always)]
    pub(super) fn row(&self, hash: u64) -> &PairRow {
        &self.rows[usize::from(hash as u16)]
    }

    /// All rows, by the low 16 bits of the hash.
    #[cfg(test)]
    pub(super) fn rows(&self) -> &[PairRow; TABLE_ROWS] {
        &self.rows
    }
}
