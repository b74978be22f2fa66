//! Row builder: rendezvous hashing over the available backends (GLB's rendezvous
//! ranking).
//!
//! For every row `r` of the 65536 rows:
//!
//! ```text
//! row_seed = siphash(seed, r as big-endian u32).to_le_bytes()     // GLB's 8 output bytes
//! score(b) = siphash(seed, row_seed || ip bytes (4 or 16)).swap_bytes()
//! ```
//!
//! Byte order, checked against GLB's test vectors and its `glb-director-cli`: SipHash
//! writes its result as 8 little-endian bytes; those bytes are the `row_seed` that is
//! concatenated with the IP, and the score is those 8 output bytes read as a big-endian
//! u64, i.e. `h.swap_bytes()` of the native hash value. Backends are ranked by ascending
//! score; equal scores (only possible for duplicate IPs) keep JSON order.
//!
//! Two row policies ([`RowPolicy`]):
//!
//! - [`RowPolicy::Glb`] reproduces `glb-director-cli` exactly, including its bugs: primary
//!   and secondary are the two lowest scores, swapped when the primary is draining or
//!   unhealthy and the secondary is `active` (health of the secondary and anything past it
//!   are never looked at; a `filling` secondary does not trigger the swap). Rondo only fixes
//!   what GLB leaves undefined: 1 available backend gives `secondary = primary`, 0 fails.
//! - [`RowPolicy::Native`] walks the whole rendezvous order: the primary is the first
//!   backend that is healthy and not draining (active or filling), else the first healthy
//!   draining one, else the first of all. The further hops are the remaining backends in
//!   rendezvous order, healthy ones (draining included: second chance keeps their
//!   connections) before unhealthy ones, and the primary again when there are fewer
//!   backends than hops. With equal weights the order is exactly GLB's score order, so a
//!   native 2-hop table equals the GLB table whenever GLB's bugs are not hit. With unequal
//!   weights it is weighted rendezvous: `u = 1 - score / 2^64` in `(0, 1]`,
//!   `key = -ln(u) / weight`, ascending, so a backend's share of rows is proportional to
//!   its weight.
//!
//! Speed: no per-row sort (each row keeps only the best few candidates in a tiny sorted
//! array), the SipHash state after `row_seed` is computed once per row, each backend's
//! message words are precomputed and eight backends are hashed at once from that state
//! (AVX-512 lanes where the CPU has them, [`crate::hash::batch::finish_groups`]), and rows are
//! split across [`std::thread::available_parallelism`] threads (which follows the
//! affinity mask: a director keeps its control threads off the worker cores).

use super::{Backend, BackendState, ForwardingTable, RowPolicy, TableError, TableSpec, TABLE_ROWS};
use crate::hash::batch::finish_groups;
use crate::hash::lanes::LANES;
use crate::hash::{SipKey, SipState};
use std::net::IpAddr;

/// Most backends a GLB-format table can hold.
pub const GLB_MAX_BACKENDS: usize = 256;
/// Most binds a GLB-format table can hold.
pub const GLB_MAX_BINDS: usize = 256;
/// Most hops a native row can have: GUE's 5-bit `hlen` counts 32-bit words and the hop
/// list takes `hops` words (4-byte private header plus `hops - 1` IPv4 addresses).
pub const MAX_NATIVE_HOPS: usize = 31;

/// Below this many `rows x available backends` hash evaluations the build stays on the
/// calling thread (thread start-up would cost more than it saves).
const PARALLEL_THRESHOLD: usize = TABLE_ROWS * 4;

/// Build the rows of `spec` under `policy`.
///
/// Errors: [`TableError::NoBackends`] when no backend is available (all inactive or none);
/// [`TableError::TooMany`] for a GLB table with more than 256 backends or binds;
/// [`TableError::Invalid`] for a missing seed (tables decoded from a GLB .bin), weights
/// other than 1 in a GLB table, weight 0, or a hop count outside `1..=31`.
pub fn build(spec: TableSpec, policy: RowPolicy) -> Result<ForwardingTable, TableError> {
    let invalid = |reason: String| TableError::Invalid {
        table: spec.name.clone(),
        reason,
    };
    let Some(seed) = spec.seed else {
        return Err(invalid(
            "no rendezvous seed: a table decoded from a GLB .bin file cannot be rebuilt; \
             build it from its JSON or TOML source"
                .to_string(),
        ));
    };
    if spec.backends.len() > u32::MAX as usize {
        return Err(invalid(format!(
            "{} backends is more than a row index can address",
            spec.backends.len()
        )));
    }
    let hops = match policy {
        RowPolicy::Glb => {
            if spec.backends.len() > GLB_MAX_BACKENDS {
                return Err(TableError::TooMany {
                    table: spec.name.clone(),
                    what: "backends",
                    count: spec.backends.len(),
                });
            }
            if spec.binds.len() > GLB_MAX_BINDS {
                return Err(TableError::TooMany {
                    table: spec.name.clone(),
                    what: "binds",
                    count: spec.binds.len(),
                });
            }
            if let Some((i, b)) = spec
                .backends
                .iter()
                .enumerate()
                .find(|(_, b)| b.weight != 1)
            {
                return Err(invalid(format!(
                    "backend {i} ({}) has weight {}, but GLB tables have no weights \
                     (every backend counts once); use a native table for weights",
                    b.ip, b.weight
                )));
            }
            2
        }
        RowPolicy::Native { hops } => {
            if hops == 0 || hops > MAX_NATIVE_HOPS {
                return Err(invalid(format!(
                    "{hops} hops per row: expected 1 to {MAX_NATIVE_HOPS}"
                )));
            }
            if let Some((i, b)) = spec
                .backends
                .iter()
                .enumerate()
                .find(|(_, b)| b.weight == 0)
            {
                return Err(invalid(format!(
                    "backend {i} ({}) has weight 0; weights must be at least 1 \
                     (set its state to inactive to take it out of the table)",
                    b.ip
                )));
            }
            hops
        }
    };

    let prep = Prepared::new(candidates(
        &spec.backends,
        matches!(policy, RowPolicy::Native { .. }),
    ));
    let cands = &prep.cands;
    if cands.is_empty() {
        return Err(TableError::NoBackends {
            table: spec.name.clone(),
        });
    }

    let key = SipKey::from_bytes(&seed);
    let mut rows = vec![0u32; TABLE_ROWS * hops].into_boxed_slice();
    let fill = |first_row: usize, out: &mut [u32]| match policy {
        RowPolicy::Glb => fill_glb(&key, &prep, first_row, out),
        RowPolicy::Native { hops } => fill_native(&key, &prep, hops, first_row, out),
    };

    let threads = if cands.len().saturating_mul(TABLE_ROWS) >= PARALLEL_THRESHOLD {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(64)
    } else {
        1
    };
    if threads <= 1 {
        fill(0, &mut rows);
    } else {
        let rows_per_chunk = TABLE_ROWS.div_ceil(threads);
        let chunk_len = rows_per_chunk * hops;
        // Chunks whose thread could not be started are done afterwards on this thread.
        let mut not_started = Vec::new();
        std::thread::scope(|s| {
            let fill = &fill;
            let mut chunks = rows.chunks_mut(chunk_len).enumerate();
            let own = chunks.next();
            for (i, chunk) in chunks {
                let started = std::thread::Builder::new()
                    .name("table-build".to_string())
                    .spawn_scoped(s, move || fill(i * rows_per_chunk, chunk));
                if started.is_err() {
                    not_started.push(i);
                }
            }
            if let Some((_, chunk)) = own {
                fill(0, chunk);
            }
        });
        for i in not_started {
            let start = i * chunk_len;
            let end = (start + chunk_len).min(rows.len());
            fill(i * rows_per_chunk, &mut rows[start..end]);
        }
    }
    ForwardingTable::from_parts(spec, policy, hops, rows)
}

impl ForwardingTable {
    /// Build the rows of `spec` under `policy`; see [`build()`](fn@build).
    pub fn build(spec: TableSpec, policy: RowPolicy) -> Result<ForwardingTable, TableError> {
        build(spec, policy)
    }
}

/// The 8 bytes GLB prepends to every backend IP for row `row`:
/// `siphash(seed, row as big-endian u32)` written as little-endian bytes.
#[inline]
pub fn row_seed(seed: &SipKey, row: u16) -> [u8; 8] {
    seed.hash(&u32::from(row).to_be_bytes()).to_le_bytes()
}

/// GLB's rendezvous score of the backend with address `ip` in the row whose seed bytes are
/// `row_seed`: the SipHash output bytes read as a big-endian u64. Lower ranks first.
#[inline]
pub fn glb_score(seed: &SipKey, row_seed: [u8; 8], ip: IpAddr) -> u64 {
    let state = seed.prefix8(row_seed);
    let h = match ip {
        IpAddr::V4(v4) => state.finish_with(&v4.octets()),
        IpAddr::V6(v6) => state.finish_with(&v6.octets()),
    };
    h.swap_bytes()
}

/// The full (unweighted, GLB) rendezvous order of row `row`: indices into `spec.backends`
/// of the available (not inactive) backends, best first. For tests and diagnostics; the
/// builder itself never sorts.
pub fn rendezvous_order(spec: &TableSpec, row: u16) -> Result<Vec<usize>, TableError> {
    let seed = spec.seed.ok_or_else(|| TableError::Invalid {
        table: spec.name.clone(),
        reason: "no rendezvous seed".to_string(),
    })?;
    let key = SipKey::from_bytes(&seed);
    let rs = row_seed(&key, row);
    let mut order: Vec<(u64, usize)> = spec
        .backends
        .iter()
        .enumerate()
        .filter(|(_, b)| b.state != BackendState::Inactive)
        .map(|(i, b)| (glb_score(&key, rs, b.ip), i))
        .collect();
    order.sort_unstable();
    Ok(order.into_iter().map(|(_, i)| i).collect())
}

/// Health/state class of a candidate, for the native policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Healthy and active or filling: may be a primary.
    Usable,
    /// Healthy but draining: keeps its connections as a later hop.
    Draining,
    /// Unhealthy: only to fill hops.
    Down,
}

/// An available backend, prepared for hashing.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// Index into `spec.backends` (what rows store).
    index: u32,
    /// The message words after `row_seed`, final length word included.
    words: [u64; 3],
    /// How many of `words` are used (1 for IPv4, 3 for IPv6).
    nwords: u8,
    /// GLB: primary is draining or unhealthy ("bad"); secondary is active ("good").
    glb_bad: bool,
    glb_active: bool,
    class: Class,
    /// `1 / weight` when weights differ (native), else `None` (plain GLB scores).
    inv_weight: Option<f64>,
}

/// The message words for `row_seed || ip`, from byte 8 on, with SipHash's final
/// length byte folded into the last word.
fn message_words(ip: IpAddr) -> ([u64; 3], u8) {
    match ip {
        IpAddr::V4(v4) => {
            let total = 12u64;
            let w = u64::from(u32::from_le_bytes(v4.octets())) | (total << 56);
            ([w, 0, 0], 1)
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a.copy_from_slice(&o[..8]);
            b.copy_from_slice(&o[8..]);
            let total = 24u64;
            (
                [u64::from_le_bytes(a), u64::from_le_bytes(b), total << 56],
                3,
            )
        }
    }
}

/// The available backends, in JSON order.
fn candidates(backends: &[Backend], native: bool) -> Vec<Candidate> {
    let available = || {
        backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.state != BackendState::Inactive)
    };
    let mut weights = available().map(|(_, b)| b.weight);
    let first = weights.next();
    let weighted = native && weights.any(|w| Some(w) != first);
    available()
        .map(|(i, b)| {
            let (words, nwords) = message_words(b.ip);
            let draining = b.state == BackendState::Draining;
            Candidate {
                // `build` refuses more than u32::MAX backends.
                index: i as u32,
                words,
                nwords,
                glb_bad: draining || !b.healthy,
                glb_active: b.state == BackendState::Active,
                class: match (b.healthy, draining) {
                    (true, false) => Class::Usable,
                    (true, true) => Class::Draining,
                    (false, _) => Class::Down,
                },
                inv_weight: weighted.then(|| 1.0 / f64::from(b.weight.max(1))),
            }
        })
        .collect()
}

/// The available backends, prepared for the row loop: their message words in groups of
/// eight of the same length (IPv4 and IPv6 apart), column by column, for the lane hasher.
struct Prepared {
    cands: Vec<Candidate>,
    batches: Vec<Batch>,
}

/// The candidates whose messages have `nwords` words, in groups of eight lanes.
struct Batch {
    nwords: usize,
    /// Group `g`'s word `w` for its eight lanes at `cols[g * nwords + w]`.
    cols: Vec<[u64; LANES]>,
    /// Candidate position of each lane, a multiple of eight long.
    pos: Vec<usize>,
    /// Real candidates: lanes from here on repeat the last one and are not reported.
    count: usize,
}

impl Prepared {
    fn new(cands: Vec<Candidate>) -> Prepared {
        let mut batches = Vec::new();
        for nwords in [1u8, 3] {
            let mut pos: Vec<usize> = (0..cands.len())
                .filter(|&p| cands[p].nwords == nwords)
                .collect();
            let count = pos.len();
            let Some(&last) = pos.last() else {
                continue;
            };
            pos.resize(count.div_ceil(LANES) * LANES, last);
            let nw = usize::from(nwords);
            let mut cols = Vec::with_capacity(pos.len() / LANES * nw);
            for group in pos.chunks_exact(LANES) {
                for w in 0..nw {
                    cols.push(std::array::from_fn(|lane| cands[group[lane]].words[w]));
                }
            }
            batches.push(Batch {
                nwords: nw,
                cols,
                pos,
                count,
            });
        }
        Prepared { cands, batches }
    }

    /// Scratch space for [`Prepared::for_each_score`].
    fn scratch(&self) -> Vec<[u64; LANES]> {
        let groups = self.batches.iter().map(|b| b.pos.len() / LANES).max();
        vec![[0; LANES]; groups.unwrap_or(0)]
    }

    /// Call `f(position, GLB score)` for every candidate, for the row whose midstate is
    /// `state`: eight backends per SipHash pass ([`crate::hash::batch::finish_groups`]). The
    /// calls come batch by batch, not in candidate order; callers rank by (score,
    /// position), so the order does not matter.
    #[inline(always)]
    fn for_each_score(
        &self,
        state: &SipState,
        scratch: &mut [[u64; LANES]],
        mut f: impl FnMut(usize, u64),
    ) {
        for b in &self.batches {
            let groups = b.pos.len() / LANES;
            let Some(out) = scratch.get_mut(..groups) else {
                continue; // `scratch` comes from `Prepared::scratch`: never short
            };
            finish_groups(state, b.nwords, &b.cols, out);
            let hashes = out.iter().flatten();
            for (&pos, h) in b.pos[..b.count].iter().zip(hashes) {
                f(pos, h.swap_bytes());
            }
        }
    }
}

/// Ranking key of a candidate from its GLB score: the score itself, or for unequal
/// weights the weighted rendezvous key (`-ln(u) / weight` as ordered bits; both ascend).
#[inline(always)]
fn rank(c: &Candidate, s: u64) -> u64 {
    match c.inv_weight {
        None => s,
        Some(inv_w) => {
            // u in (0, 1]: 1 for the lowest score, towards 0 for the highest, so a lower
            // score still ranks first.
            let u = ((1u64 << 53) - (s >> 11)) as f64 * (1.0 / (1u64 << 53) as f64);
            let k = -u.ln() * inv_w;
            // Non-negative finite floats order like their bit patterns; -0.0 becomes 0.
            if k > 0.0 {
                k.to_bits()
            } else {
                0
            }
        }
    }
}

/// Combine a ranking key and the candidate position into one totally ordered key (ties
/// keep JSON order).
#[inline(always)]
fn full_key(rank: u64, pos: usize) -> u128 {
    (u128::from(rank) << 64) | pos as u128
}

/// Fill rows `first_row..` (2 hops each) with GLB's rule.
fn fill_glb(key: &SipKey, prep: &Prepared, first_row: usize, out: &mut [u32]) {
    let cands = &prep.cands[..];
    let mut scratch = prep.scratch();
    for (i, row) in out.chunks_exact_mut(2).enumerate() {
        // Row numbers are < 65536.
        let rs = row_seed(key, (first_row + i) as u16);
        let state = key.prefix8(rs);
        let (mut k0, mut p0) = (u128::MAX, 0usize);
        let (mut k1, mut p1) = (u128::MAX, 0usize);
        prep.for_each_score(&state, &mut scratch, |pos, score| {
            let k = full_key(score, pos);
            if k < k1 {
                if k < k0 {
                    (k1, p1) = (k0, p0);
                    (k0, p0) = (k, pos);
                } else {
                    (k1, p1) = (k, pos);
                }
            }
        });
        if k1 == u128::MAX {
            // One available backend: GLB reads garbage here; Rondo repeats the primary.
            p1 = p0;
        }
        let (p, s) = (&cands[p0], &cands[p1]);
        let (p, s) = if p.glb_bad && s.glb_active {
            (s, p)
        } else {
            (p, s)
        };
        row[0] = p.index;
        row[1] = s.index;
    }
}

/// A tiny sorted array of the best `cap` keys (ascending).
struct TopK {
    keys: [u128; MAX_NATIVE_HOPS],
    len: usize,
    cap: usize,
}

impl TopK {
    fn new(cap: usize) -> TopK {
        TopK {
            keys: [u128::MAX; MAX_NATIVE_HOPS],
            len: 0,
            cap: cap.min(MAX_NATIVE_HOPS),
        }
    }

    #[inline(always)]
    fn clear(&mut self) {
        self.len = 0;
    }

    #[inline(always)]
    fn insert(&mut self, k: u128) {
        if self.len == self.cap {
            if self.cap == 0 || k >= self.keys[self.len - 1] {
                return;
            }
            self.len -= 1;
        }
        let mut i = self.len;
        while i > 0 && self.keys[i - 1] > k {
            self.keys[i] = self.keys[i - 1];
            i -= 1;
        }
        self.keys[i] = k;
        self.len += 1;
    }

    fn first(&self) -> Option<u128> {
        self.keys[..self.len].first().copied()
    }

    fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        self.keys[..self.len].iter().copied()
    }
}

/// Candidate position from a full key.
#[inline(always)]
fn pos_of(k: u128) -> usize {
    // The low 64 bits hold the position (see `full_key`).
    (k as u64) as usize
}

/// Fill rows `first_row..` (`hops` each) with the native (fixed) semantics.
fn fill_native(key: &SipKey, prep: &Prepared, hops: usize, first_row: usize, out: &mut [u32]) {
    let cands = &prep.cands[..];
    let mut healthy = TopK::new(hops);
    let mut down = TopK::new(hops);
    let mut scratch = prep.scratch();
    for (i, row) in out.chunks_exact_mut(hops).enumerate() {
        let rs = row_seed(key, (first_row + i) as u16);
        let state = key.prefix8(rs);
        healthy.clear();
        down.clear();
        let mut best_usable = u128::MAX;
        prep.for_each_score(&state, &mut scratch, |pos, score| {
            let c = &cands[pos];
            let k = full_key(rank(c, score), pos);
            match c.class {
                Class::Usable => {
                    best_usable = best_usable.min(k);
                    healthy.insert(k);
                }
                Class::Draining => healthy.insert(k),
                Class::Down => down.insert(k),
            }
        });
        let primary = if best_usable != u128::MAX {
            best_usable
        } else if let Some(k) = healthy.first() {
            k
        } else {
            // No healthy backend at all: the first in rendezvous order. `cands` is not
            // empty, so `down` holds at least one key.
            down.first().unwrap_or(0)
        };
        let first = cands[pos_of(primary)].index;
        row[0] = first;
        let mut rest = healthy
            .iter()
            .chain(down.iter())
            .filter(|&k| k != primary)
            .map(|k| cands[pos_of(k)].index);
        for slot in &mut row[1..] {
            *slot = rest.next().unwrap_or(first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::parse_hex_key;
    use crate::table::HealthChecks;
    use std::net::Ipv4Addr;

    fn backend(ip: &str, state: BackendState, healthy: bool) -> Backend {
        Backend {
            ip: ip.parse().unwrap(),
            state,
            healthy,
            weight: 1,
            healthchecks: HealthChecks::default(),
        }
    }

    fn spec_with(backends: Vec<Backend>) -> TableSpec {
        TableSpec {
            name: "t".to_string(),
            hash_key: [0; 16],
            seed: Some(parse_hex_key("49a3d861d661ae5ab06ed9326871a2f5").unwrap()),
            binds: vec![],
            backends,
            quic_lb: None,
        }
    }

    fn four_hosts() -> Vec<Backend> {
        (1..=4)
            .map(|i| backend(&format!("1.1.1.{i}"), BackendState::Active, true))
            .collect()
    }

    #[test]
    fn spec_order_vectors() {
        let spec = spec_with(four_hosts());
        // Expected orders name hosts .4 .3 ... -> indices 3 2 ...
        for (row, order) in [
            (0x0000u16, [3, 2, 1, 0]),
            (0xffff, [0, 1, 3, 2]),
            (0xbb44, [3, 0, 1, 2]),
        ] {
            assert_eq!(rendezvous_order(&spec, row).unwrap(), order, "row {row:#x}");
        }
    }

    #[test]
    fn glb_rows_follow_order() {
        let spec = spec_with(four_hosts());
        let t = build(spec, RowPolicy::Glb).unwrap();
        assert_eq!(t.row(0), &[3, 2]);
        assert_eq!(t.row(0xffff), &[0, 1]);
        assert_eq!(t.row(0xbb44), &[3, 0]);
    }

    #[test]
    fn builder_matches_full_sort() {
        let mut backends = four_hosts();
        backends.push(backend("fdb4:98ce:52d4::42", BackendState::Active, true));
        backends.push(backend("10.0.0.1", BackendState::Inactive, true));
        let spec = spec_with(backends);
        let t = build(spec.clone(), RowPolicy::Glb).unwrap();
        let n = build(spec.clone(), RowPolicy::Native { hops: 4 }).unwrap();
        for row in (0..=u16::MAX).step_by(97) {
            let order = rendezvous_order(&spec, row).unwrap();
            let want: Vec<u32> = order.iter().map(|&i| i as u32).collect();
            assert_eq!(t.row(row), &want[..2], "row {row}");
            assert_eq!(n.row(row), &want[..4], "row {row}");
        }
    }

    #[test]
    fn pairs_are_the_rows_of_two_hop_tables() {
        let spec = spec_with(four_hosts());
        let t = build(spec.clone(), RowPolicy::Glb).unwrap();
        for row in [0, 1, 2, 0x7fff, 0xbb44, 0xfffe, u16::MAX] {
            assert_eq!(t.pair(row).map(|p| &p[..]), Some(t.row(row)), "row {row}");
        }
        for hops in [1, 3] {
            let n = build(spec.clone(), RowPolicy::Native { hops }).unwrap();
            assert_eq!(n.pair(0), None, "{hops} hops");
        }
    }

    #[test]
    fn parallel_equals_serial() {
        let backends: Vec<Backend> = (0..16)
            .map(|i| {
                backend(
                    &Ipv4Addr::new(10, 0, 0, i).to_string(),
                    BackendState::Active,
                    i % 3 != 0,
                )
            })
            .collect();
        let spec = spec_with(backends);
        let key = SipKey::from_bytes(&spec.seed.unwrap());
        let prep = Prepared::new(candidates(&spec.backends, false));
        let mut serial = vec![0u32; TABLE_ROWS * 2];
        fill_glb(&key, &prep, 0, &mut serial);
        let t = build(spec, RowPolicy::Glb).unwrap();
        assert_eq!(t.rows(), &serial[..]);
    }

    #[test]
    fn errors() {
        let mut spec = spec_with(vec![backend("1.1.1.1", BackendState::Inactive, true)]);
        let e = build(spec.clone(), RowPolicy::Glb).unwrap_err();
        assert!(matches!(e, TableError::NoBackends { .. }), "{e}");
        spec.seed = None;
        let e = build(spec.clone(), RowPolicy::Glb).unwrap_err().to_string();
        assert!(e.contains("no rendezvous seed"), "{e}");
        let mut spec = spec_with(four_hosts());
        spec.backends[1].weight = 0;
        let e = build(spec.clone(), RowPolicy::Native { hops: 2 })
            .unwrap_err()
            .to_string();
        assert!(e.contains("weight 0"), "{e}");
        let e = build(spec.clone(), RowPolicy::Glb).unwrap_err().to_string();
        assert!(e.contains("no weights"), "{e}");
        let e = build(spec_with(four_hosts()), RowPolicy::Native { hops: 0 })
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected 1 to 31"), "{e}");
    }

    #[test]
    fn topk_keeps_best() {
        let mut t = TopK::new(3);
        for k in [9u128, 3, 7, 1, 8, 2] {
            t.insert(k);
        }
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![1, 2, 3]);
        let mut one = TopK::new(1);
        for k in [5u128, 4, 6] {
            one.insert(k);
        }
        assert_eq!(one.first(), Some(4));
    }
}
