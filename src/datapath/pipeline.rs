//! The burst pipeline: classify, hash, look up, encapsulate, one verdict per packet.
//! Generic over the buffer type so that every driver runs exactly this code.

use super::buf::PacketBuf;
use super::classify::{classify_into, Flow, FlowOut};
use super::counters::{CoreCounters, Verdict};
use super::encap::encapsulate;
use super::snapshot::{SentCounters, Snapshot};
use crate::hash::lanes::{hash_many, HashInput};
use crate::sys::prefetch;

/// Packets per burst, as in DPDK applications.
pub const BURST_MAX: usize = 32;

/// Process `pkts` in place: each forwarded packet is encapsulated in its buffer, and
/// `verdicts[i]` says what to do with `pkts[i]` (forward it, hand it to the kernel, or drop
/// it). `verdicts` must be at least as long as `pkts`; extra packets beyond it are not
/// touched. Counters are updated for every packet.
///
/// No allocation, lock or syscall; the snapshot is read-only.
pub fn process_burst<B: PacketBuf>(
    snap: &Snapshot,
    pkts: &mut [B],
    verdicts: &mut [Verdict],
    ctr: &mut CoreCounters,
) {
    process_burst_counted(snap, pkts, verdicts, ctr, &mut NoSink);
}

/// Told about the forwarded packets of each burst, after they were encapsulated:
/// `flows[i]` was forwarded where `verdicts[i]` is [`Verdict::Forward`].
pub trait SentSink {
    fn sent(&mut self, snap: &Snapshot, flows: &[Flow], verdicts: &[Verdict]);
}

/// Counts nothing (compiles to nothing).
pub struct NoSink;

impl SentSink for NoSink {
    #[inline(always)]
    fn sent(&mut self, _: &Snapshot, _: &[Flow], _: &[Verdict]) {}
}

/// Counts each forwarded packet against its first hop in one worker's region of the
/// snapshot's [`SentCounters`]. The rows were just read for the encapsulation, so they are
/// in cache.
pub struct WorkerSink {
    pub worker: usize,
}

impl SentSink for WorkerSink {
    #[inline(always)]
    fn sent(&mut self, snap: &Snapshot, flows: &[Flow], verdicts: &[Verdict]) {
        let region = snap.sent.region(self.worker);
        for (flow, v) in flows.iter().zip(verdicts) {
            if *v != Verdict::Forward {
                continue;
            }
            if let Some(t) = snap.tables.get(usize::from(flow.table)) {
                let primary = t.table.row(flow.hash as u16)[0] as usize;
                SentCounters::bump(region, t.sent_base + primary);
            }
        }
    }
}

/// [`process_burst`], also telling `sink` about every forwarded packet (the runtime counts
/// packets per backend this way).
pub fn process_burst_counted<B: PacketBuf, S: SentSink>(
    snap: &Snapshot,
    pkts: &mut [B],
    verdicts: &mut [Verdict],
    ctr: &mut CoreCounters,
    sink: &mut S,
) {
    let n = pkts.len().min(verdicts.len());
    for (pkts, verdicts) in pkts[..n]
        .chunks_mut(BURST_MAX)
        .zip(verdicts[..n].chunks_mut(BURST_MAX))
    {
        process_chunk(snap, pkts, verdicts, ctr, sink);
    }
}

#[inline]
fn process_chunk<B: PacketBuf, S: SentSink>(
    snap: &Snapshot,
    pkts: &mut [B],
    verdicts: &mut [Verdict],
    ctr: &mut CoreCounters,
    sink: &mut S,
) {
    let n = pkts.len().min(BURST_MAX);
    let mut flows = [Flow::default(); BURST_MAX];
    let mut inputs = [HashInput::default(); BURST_MAX];
    let mut want = [false; BURST_MAX];
    let mut hashes = [0u64; BURST_MAX];
    // Alternate hash inputs only when the snapshot has `alt_hash_fields`.
    let with_alt = snap.alt_hash.is_some();
    let mut alt_inputs;
    let mut alt_unused = HashInput::default();
    let alts: &mut [HashInput] = if with_alt {
        alt_inputs = [HashInput::default(); BURST_MAX];
        &mut alt_inputs
    } else {
        std::slice::from_mut(&mut alt_unused)
    };
    ctr.bursts += 1;
    // The outer headers go in front of each frame, in a cache line receiving it did not
    // touch: start fetching those lines for the whole burst now.
    for p in &pkts[..n] {
        p.prefetch_headroom(64);
    }
    // Pass 1: parse and classify; flows and hash inputs are written in place.
    let mut rx_bytes = 0u64;
    for (i, p) in pkts[..n].iter().enumerate() {
        let data = p.data();
        rx_bytes += data.len() as u64;
        let out = FlowOut {
            flow: &mut flows[i],
            input: &mut inputs[i],
            alt: &mut alts[if with_alt { i } else { 0 }],
        };
        match classify_into(snap, data, out) {
            Ok(()) => {
                verdicts[i] = Verdict::Forward;
                want[i] = true;
            }
            Err(v) => verdicts[i] = v,
        }
    }
    ctr.rx_packets += n as u64;
    ctr.rx_bytes += rx_bytes;
    // Pass 2: hash the whole burst (eight flows per SipHash pass); start fetching each
    // flow's table row.
    hash_many(&inputs[..n], &want[..n], &mut hashes[..n]);
    for i in 0..n {
        if want[i] {
            flows[i].hash = hashes[i];
            let t = &snap.tables[usize::from(flows[i].table)].table;
            prefetch(&t.row(hashes[i] as u16)[0]);
        }
    }
    if with_alt {
        hash_many(&alts[..n], &want[..n], &mut hashes[..n]);
        for i in 0..n {
            if want[i] {
                flows[i].alt_hash = hashes[i];
            }
        }
    }
    // Pass 3: rows are (likely) in cache now; encapsulate.
    let (mut forwarded, mut forwarded_bytes) = (0u64, 0u64);
    for (i, p) in pkts[..n].iter_mut().enumerate() {
        match verdicts[i] {
            Verdict::Forward => match encapsulate(snap, &flows[i], p) {
                Ok(()) => {
                    forwarded += 1;
                    forwarded_bytes += p.data().len() as u64;
                }
                Err(r) => {
                    verdicts[i] = Verdict::Drop(r);
                    ctr.drops[r as usize] += 1;
                }
            },
            Verdict::Exception(r) => ctr.exceptions[r as usize] += 1,
            Verdict::Drop(r) => ctr.drops[r as usize] += 1,
        }
    }
    ctr.forwarded += forwarded;
    ctr.forwarded_bytes += forwarded_bytes;
    if with_alt {
        ctr.alt_hashed += forwarded;
    }
    sink.sent(snap, &flows[..n], &verdicts[..n]);
}
