//! The burst pipeline: classify, hash, look up, encapsulate, one verdict per packet.
//! Generic over the buffer type so that every driver runs exactly this code.

use super::buf::PacketBuf;
use super::burst::{Bits, BURST_MAX};
use super::classify::{classify_into, FlowOut};
use super::counters::{CoreCounters, QuicOutcome, Verdict};
use super::encap::{encapsulate, prefetch_hops};
use super::express::Lane;
use super::flow::{with_field_set, Flow};
use super::snapshot::{SentCounters, Snapshot};
use crate::hash::batch::hash_many;
use crate::hash::lanes::{Columns, HashInput};
use std::sync::atomic::AtomicU64;

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

/// Counts forwarded packets per backend: where the pipeline bumps the counter of each
/// forwarded packet's first hop, as it encapsulates the packet.
pub trait SentSink {
    /// The counters of this burst, called once per burst: slot `s` counts packets whose
    /// first hop is [`SentCounters`] slot `s` (a table's base plus the backend's index).
    /// Slots beyond the region are not counted, so a sink that counts nothing gives an
    /// empty region (and, inlined, costs nothing).
    fn region<'s>(&mut self, snap: &'s Snapshot) -> &'s [AtomicU64];
}

/// Counts nothing (compiles to nothing).
pub struct NoSink;

impl SentSink for NoSink {
    #[inline(always)]
    fn region<'s>(&mut self, _: &'s Snapshot) -> &'s [AtomicU64] {
        &[]
    }
}

/// Counts each forwarded packet against its first hop in one worker's region of the
/// snapshot's [`SentCounters`].
pub struct WorkerSink {
    pub worker: usize,
}

impl SentSink for WorkerSink {
    #[inline(always)]
    fn region<'s>(&mut self, snap: &'s Snapshot) -> &'s [AtomicU64] {
        snap.sent.region(self.worker)
    }
}

/// [`process_burst`], also counting every forwarded packet in `sink` (the runtime counts
/// packets per backend this way). Returns how many packets have the verdict `Forward`
/// (all of them, in the usual burst).
pub fn process_burst_counted<B: PacketBuf, S: SentSink>(
    snap: &Snapshot,
    pkts: &mut [B],
    verdicts: &mut [Verdict],
    ctr: &mut CoreCounters,
    sink: &mut S,
) -> usize {
    let n = pkts.len().min(verdicts.len());
    let mut forwarded = 0;
    for (pkts, verdicts) in pkts[..n]
        .chunks_mut(BURST_MAX)
        .zip(verdicts[..n].chunks_mut(BURST_MAX))
    {
        forwarded += process_chunk(snap, pkts, verdicts, ctr, sink);
    }
    forwarded
}

/// The per-packet records of one burst: flows, the inputs of their hashes and the hashes.
/// Kept per thread and reused from burst to burst rather than zeroed for each (3 KB of
/// stores per burst). A burst reads only records it wrote itself, except the inputs of
/// lanes that the eight-lane hasher computes without anyone using the result, which need
/// only be initialised.
struct Scratch {
    flows: [Flow; BURST_MAX],
    inputs: [HashInput; BURST_MAX],
    alts: [HashInput; BURST_MAX],
    /// The express lane's hash inputs.
    cols: Columns,
    /// The hash of each packet.
    hashes: [u64; BURST_MAX],
}

impl Scratch {
    const NEW: Scratch = Scratch {
        flows: [Flow::EMPTY; BURST_MAX],
        inputs: [HashInput::EMPTY; BURST_MAX],
        alts: [HashInput::EMPTY; BURST_MAX],
        cols: Columns::EMPTY,
        hashes: [0; BURST_MAX],
    };
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = const { std::cell::RefCell::new(Scratch::NEW) };
}

/// One burst of at most [`BURST_MAX`]: the packets forwarded.
#[inline]
fn process_chunk<B: PacketBuf, S: SentSink>(
    snap: &Snapshot,
    pkts: &mut [B],
    verdicts: &mut [Verdict],
    ctr: &mut CoreCounters,
    sink: &mut S,
) -> usize {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => process_in(&mut scratch, snap, pkts, verdicts, ctr, sink),
        // Only if a sink ran a burst from inside `region` (none of Rondo's do): fresh
        // records for that one, off the stack.
        Err(_) => {
            let mut fresh = Box::new(Scratch::NEW);
            process_in(&mut fresh, snap, pkts, verdicts, ctr, sink)
        }
    })
}

#[inline(always)]
fn process_in<B: PacketBuf, S: SentSink>(
    scratch: &mut Scratch,
    snap: &Snapshot,
    pkts: &mut [B],
    verdicts: &mut [Verdict],
    ctr: &mut CoreCounters,
    sink: &mut S,
) -> usize {
    let n = pkts.len().min(BURST_MAX);
    let (pkts, verdicts) = (&mut pkts[..n], &mut verdicts[..n]);
    let Scratch {
        flows,
        inputs,
        alts,
        cols,
        hashes,
    } = scratch;
    let mut want = [false; BURST_MAX];
    // Alternate hash inputs only when the snapshot has `alt_hash_fields`.
    let with_alt = snap.alt_hash.is_some();
    ctr.bursts += 1;
    // Pass 1: parse and classify; the express lane takes the common case, the general
    // classifier the rest, writing flows and hash inputs in place.
    let mut lane = Lane::new();
    let rx_bytes = if snap.express {
        with_field_set!(snap.hash.0, F => lane.classify::<B, F>(snap, pkts, cols, verdicts))
    } else {
        // No table takes the lane (alternate hash fields, IPv6 backends): decided once per
        // burst rather than after parsing each packet.
        let mut rx_bytes = 0;
        for p in pkts.iter() {
            p.prefetch_headroom(64);
            rx_bytes += p.len() as u64;
        }
        rx_bytes
    };
    let general = lane.others(n);
    for i in Bits(general) {
        let Some(p) = pkts.get(i) else { break };
        let out = FlowOut {
            flow: &mut flows[i],
            input: &mut inputs[i],
            alt: &mut alts[if with_alt { i } else { 0 }],
        };
        match classify_into(snap, p.data(), out) {
            Ok(()) => {
                verdicts[i] = Verdict::Forward;
                want[i] = true;
            }
            Err(v) => verdicts[i] = v,
        }
    }
    ctr.rx_packets += n as u64;
    ctr.rx_bytes += rx_bytes;
    // Pass 2: hash the whole burst (eight flows per SipHash pass), the general path's
    // packets first (a group of eight is written whole) and then the lane's (written by
    // mask); start fetching each flow's table row.
    if general != 0 {
        hash_many(&inputs[..n], &want[..n], &mut hashes[..n]);
    }
    lane.hash(cols, hashes);
    lane.prefetch_rows(hashes);
    for i in Bits(general) {
        if want[i] {
            flows[i].hash = hashes[i];
            prefetch_hops(snap, &flows[i]);
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
    let region = sink.region(snap);
    let (mut forwarded, mut forwarded_bytes) =
        lane.encapsulate(pkts, hashes, verdicts, region, ctr);
    for i in Bits(general) {
        let Some(p) = pkts.get_mut(i) else { break };
        if verdicts[i] == Verdict::Forward {
            if let Some(q) = QuicOutcome::from_code(flows[i].quic) {
                ctr.quic[q as usize] += 1;
            }
        }
        match verdicts[i] {
            Verdict::Forward => match encapsulate(snap, &flows[i], p) {
                Ok(primary) => {
                    forwarded += 1;
                    forwarded_bytes += p.len() as u64;
                    let t = &snap.tables[usize::from(flows[i].table)];
                    SentCounters::bump(region, t.sent_base + primary as usize);
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
    forwarded as usize
}
