//! The express lane: the common case of a burst, in loops of its own.
//!
//! Nearly every packet a director forwards is an untagged IPv4 TCP or UDP packet to a bind
//! of a table with IPv4 backends, two hops (primary and secondary) and no alternate hash
//! fields. The pipeline first offers every packet of a burst to this lane. The packets it
//! takes keep four small columns here (table, IP length, flow hint, checksum sum of the IP
//! packet) instead of the general flow records, and their hash inputs by columns
//! ([`Columns`]: all of the lane's hashes in one pass of the rounds, [`hash_columns`]).
//! Short loops classify, hash and encapsulate them, with the snapshot's hash field set
//! fixed at compile time (one loop per field set, chosen once per burst). Every other
//! packet takes the general path, and so does a whole burst when no table of the snapshot
//! takes the lane. A packet gets the same verdict, bytes and counts either way (tested
//! against the general code and fuzzed).

use super::buf::PacketBuf;
use super::burst::{self, Bits, BURST_MAX};
use super::classify::{classify_express, express_len, LastBind};
use super::counters::{CoreCounters, DropReason, Verdict};
use super::outer::PAIR_LEN;
use super::rows::ExpressTable;
use super::snapshot::{SentCounters, Snapshot};
use crate::hash::batch::hash_columns;
use crate::hash::lanes::{Columns, COLUMN_LANES};
use crate::sys::prefetch;
use std::sync::atomic::AtomicU64;

// The lane's hash inputs have a column lane per packet of a burst.
const _: () = assert!(BURST_MAX == COLUMN_LANES);
// A packet's table in the lane is one pointer, `None` when the packet is not in the lane.
const _: () = assert!(std::mem::size_of::<Option<&ExpressTable>>() == 8);

/// The packets of one burst in the express lane.
pub(crate) struct Lane<'s> {
    /// Bit `i` set: packet `i` is in the lane.
    mask: u32,
    /// Length of every hash message of the lane (they all have the same field set and
    /// family).
    len: usize,
    /// The table of every packet in the lane, when they all have the same (the usual
    /// burst).
    single: Option<&'s ExpressTable>,
    /// Each packet's table: `None` for the packets that are not in the lane.
    table: [Option<&'s ExpressTable>; BURST_MAX],
    ip_len: [u16; BURST_MAX],
    hint: [u16; BURST_MAX],
    sum: [u64; BURST_MAX],
    /// The sum of `ip_len` over the lane.
    ip_bytes: u64,
}

impl<'s> Lane<'s> {
    pub(crate) fn new() -> Self {
        Lane {
            mask: 0,
            len: 0,
            single: None,
            table: [None; BURST_MAX],
            ip_len: [0; BURST_MAX],
            hint: [0; BURST_MAX],
            sum: [0; BURST_MAX],
            ip_bytes: 0,
        }
    }

    /// The packets of a burst of `n` that are not in the lane, as a mask.
    #[inline(always)]
    pub(crate) fn others(&self, n: usize) -> u32 {
        burst::first(n) & !self.mask
    }

    /// Pass 1: offer every packet of `pkts` (at most [`BURST_MAX`]) to the lane, with the
    /// snapshot's hash field set `F` (the pipeline picks the instance once per burst with
    /// `with_field_set!`). A packet it takes gets its hash input in its lane of `cols` and
    /// the verdict `Forward`; the others are left for the general classifier. Every
    /// packet's headroom starts loading. Returns the bytes received. Only for snapshots
    /// with an express table (`Snapshot::express`).
    #[inline(always)]
    pub(crate) fn classify<B: PacketBuf, const F: u8>(
        &mut self,
        snap: &'s Snapshot,
        pkts: &[B],
        cols: &mut Columns,
        verdicts: &mut [Verdict],
    ) -> u64 {
        self.len = express_len::<F>();
        let (mut rx_bytes, mut ip_bytes) = (0u64, 0u64);
        let (mut mask, mut last) = (0u32, LastBind::NONE);
        for (i, (p, v)) in pkts.iter().zip(verdicts.iter_mut()).enumerate() {
            let i = i & (BURST_MAX - 1);
            // The outer headers go in front of the frame, in a cache line receiving it did
            // not touch: start fetching that line now, for pass 3.
            p.prefetch_headroom(64);
            let data = p.data();
            rx_bytes += data.len() as u64;
            if let Some(x) = classify_express::<F>(snap, data, &mut last) {
                mask |= 1 << i;
                self.table[i] = Some(x.table);
                self.ip_len[i] = x.ip_len;
                ip_bytes += u64::from(x.ip_len);
                self.hint[i] = x.hint;
                self.sum[i] = x.sum;
                cols.set(i, x.msg, self.len);
                *v = Verdict::Forward;
            }
        }
        (self.mask, self.ip_bytes) = (mask, ip_bytes);
        // The hash keys: one for the whole burst when one table has all its lane packets.
        match last.single() {
            Some(t) => cols.fill_key(t.sip_key),
            None => {
                for i in Bits(mask) {
                    if let Some(t) = self.table[i] {
                        cols.set_key(i, t.sip_key);
                    }
                }
            }
        }
        self.single = last.single();
        rx_bytes
    }

    /// Pass 2, first half: hash the lane's packets into `hashes` (the entries of the
    /// others are left alone).
    #[inline(always)]
    pub(crate) fn hash(&self, cols: &Columns, hashes: &mut [u64; BURST_MAX]) {
        if self.mask != 0 {
            hash_columns(cols, self.len, self.mask, hashes);
        }
    }

    /// Pass 2, second half: start loading the row of each packet's hash in its table.
    #[inline(always)]
    pub(crate) fn prefetch_rows(&self, hashes: &[u64; BURST_MAX]) {
        match self.single {
            Some(x) => {
                for i in Bits(self.mask) {
                    prefetch(x.row(hashes[i]));
                }
            }
            None => {
                for (t, &h) in self.table.iter().zip(hashes) {
                    if let Some(x) = t {
                        prefetch(x.row(h));
                    }
                }
            }
        }
    }

    /// Pass 3: encapsulate the lane's packets of `pkts` and count them; a packet that
    /// cannot be encapsulated gets a `Drop` verdict. Returns the packets forwarded and
    /// their bytes.
    #[inline(always)]
    pub(crate) fn encapsulate<B: PacketBuf>(
        &self,
        pkts: &mut [B],
        hashes: &[u64; BURST_MAX],
        verdicts: &mut [Verdict],
        region: &[AtomicU64],
        ctr: &mut CoreCounters,
    ) -> (u64, u64) {
        let mut drop = |v: &mut Verdict, r: DropReason| {
            *v = Verdict::Drop(r);
            ctr.drops[r as usize] += 1;
        };
        let (ip_len, hint, sum) = (&self.ip_len, &self.hint, &self.sum);
        // A forwarded packet's frame: the outer headers and the IP packet.
        let framed = |ip_len: u64| PAIR_LEN as u64 + ip_len;
        let Some(x) = self.single else {
            let (mut forwarded, mut bytes) = (0u64, 0u64);
            for (i, (p, v)) in pkts.iter_mut().zip(verdicts.iter_mut()).enumerate() {
                let i = i & (BURST_MAX - 1);
                // Not in the lane: the general path's packet.
                let Some(x) = self.table[i] else { continue };
                match x.encapsulate(ip_len[i], hint[i], sum[i], hashes[i], p) {
                    Ok(slot) => {
                        forwarded += 1;
                        bytes += framed(u64::from(ip_len[i]));
                        SentCounters::bump(region, slot);
                    }
                    Err(r) => drop(v, r),
                }
            }
            return (forwarded, bytes);
        };
        // One table: every packet of the lane counts as forwarded, its IP packet's bytes
        // summed in pass 1, less the (rare) ones that fail here.
        let (mut failed, mut failed_ip) = (0u64, 0u64);
        for i in Bits(self.mask) {
            let (Some(p), Some(v)) = (pkts.get_mut(i), verdicts.get_mut(i)) else {
                (failed, failed_ip) = (failed + 1, failed_ip + u64::from(ip_len[i]));
                continue;
            };
            match x.encapsulate(ip_len[i], hint[i], sum[i], hashes[i], p) {
                Ok(slot) => SentCounters::bump(region, slot),
                Err(r) => {
                    (failed, failed_ip) = (failed + 1, failed_ip + u64::from(ip_len[i]));
                    drop(v, r);
                }
            }
        }
        let forwarded = u64::from(self.mask.count_ones()) - failed;
        (forwarded, framed(0) * forwarded + self.ip_bytes - failed_ip)
    }
}
