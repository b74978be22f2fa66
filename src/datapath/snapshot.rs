//! The compiled, immutable form of a configuration: everything a worker reads per packet,
//! loaded once per burst. Built by the control thread off the data path.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{Config, DirectorSettings};
use crate::table::{Bind, ForwardingTable};
use crate::wire::ethernet::MacAddr;

use super::flow::FieldSet;
use super::outer::{BackendV4, Family, OuterTemplate, MAX_HOPS};
use super::quic::QuicRoute;
use super::rows::ExpressTable;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("table {table:?}: {source}")]
    Quic {
        table: String,
        #[source]
        source: super::quic::QuicRouteError,
    },
    #[error("table {table:?} mixes IPv4 and IPv6 backends ({v4} and {v6}); a hop list carries one address family, split it into two tables")]
    MixedFamilies {
        table: String,
        v4: IpAddr,
        v6: IpAddr,
    },
    #[error("table {table:?} has IPv6 backends but no outer IPv6 source is configured (set director.outbound_src_ip6)")]
    NoIpv6Source { table: String },
    #[error("table {table:?}: {hops} hops per packet do not fit GUE's 5-bit header length for {family} hops (at most {max})")]
    TooManyHops {
        table: String,
        hops: usize,
        family: &'static str,
        max: usize,
    },
    #[error("bind {bind} of table {a:?} overlaps bind {other} of table {b:?}: a packet could match both; make the ranges disjoint")]
    OverlappingBinds {
        a: String,
        bind: String,
        b: String,
        other: String,
    },
    #[error("more than 65535 tables")]
    TooManyTables,
}

/// A table ready for the hot path: rows plus backend addresses in wire order.
#[derive(Debug)]
pub struct CompiledTable {
    pub table: ForwardingTable,
    /// The table's `hash_key` as SipHash key halves `(k0, k1)`, for the flow hash.
    pub(crate) sip_key: (u64, u64),
    /// Outer headers, ready to copy in front of each packet.
    pub(crate) outer: OuterTemplate,
    /// IPv4 backends by index: address and outer header sum (v4 tables).
    pub(crate) addrs_v4: Box<[BackendV4]>,
    /// Backend addresses by index (v6 tables).
    pub(crate) addrs_v6: Box<[[u8; 16]]>,
    /// Where this table's backends start in each worker's [`SentCounters`] region.
    pub(crate) sent_base: usize,
    /// The table with its rows resolved, for the express lane (express tables only: 1 MiB
    /// each).
    express: Option<ExpressTable>,
    /// QUIC-LB routing for the table's UDP binds (tables with `quic_lb`; never express).
    pub(crate) quic: Option<Box<QuicRoute>>,
}

impl CompiledTable {
    /// The table's QUIC-LB routing, if it has `quic_lb`.
    pub fn quic(&self) -> Option<&QuicRoute> {
        self.quic.as_deref()
    }

    /// The table as the pipeline's express lane takes it: `Some` for IPv4 backends, two
    /// hops (primary and secondary) and no alternate hash fields, which is when the
    /// snapshot resolved its rows.
    #[inline(always)]
    pub(crate) fn express(&self) -> Option<&ExpressTable> {
        self.express.as_ref()
    }
}

/// Packets sent to each backend (as the first hop), per worker. Each worker writes only its
/// own region, with plain load/store (no read-modify-write, no line shared with another
/// writer); the control side reads. Owned by the snapshot, so backend indices always mean
/// the backends of this snapshot's tables; the runtime sizes it for its workers when the
/// snapshot goes live ([`Snapshot::attach_sent_counters`]).
#[derive(Debug, Default)]
pub struct SentCounters {
    words: Box<[AtomicU64]>,
    /// Words per worker region: the backends of all tables plus a cache line of padding, so
    /// that no two workers' counters share a line whatever the allocation's alignment.
    stride: usize,
    workers: usize,
}

/// u64 words in a cache line.
const LINE_WORDS: usize = 8;

impl SentCounters {
    fn new(workers: usize, backends: usize) -> SentCounters {
        let stride = backends.div_ceil(LINE_WORDS) * LINE_WORDS + LINE_WORDS;
        SentCounters {
            words: (0..stride * workers).map(|_| AtomicU64::new(0)).collect(),
            stride,
            workers,
        }
    }

    /// The region of `worker` (empty when the snapshot has none for it).
    #[inline]
    pub(crate) fn region(&self, worker: usize) -> &[AtomicU64] {
        if worker < self.workers {
            &self.words[worker * self.stride..(worker + 1) * self.stride]
        } else {
            &[]
        }
    }

    /// Count one packet in a region; only the region's own worker may call this.
    #[inline]
    pub(crate) fn bump(region: &[AtomicU64], slot: usize) {
        if let Some(w) = region.get(slot) {
            w.store(w.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
    }

    /// Workers this snapshot counts for.
    pub fn workers(&self) -> usize {
        self.workers
    }
}

impl Snapshot {
    /// Give every worker of a runtime with `workers` workers its own counters of packets
    /// sent per backend. Called by the runtime before the snapshot goes live.
    pub fn attach_sent_counters(&mut self, workers: usize) {
        let backends = self
            .tables
            .iter()
            .map(|t| t.table.spec.backends.len())
            .sum();
        self.sent = SentCounters::new(workers, backends);
    }

    /// Packets sent so far to each backend of table `table` (index), summed over workers,
    /// by backend index.
    pub fn sent_per_backend(&self, table: usize) -> Vec<u64> {
        let Some(t) = self.tables.get(table) else {
            return Vec::new();
        };
        let n = t.table.spec.backends.len();
        let mut out = vec![0u64; n];
        for w in 0..self.sent.workers {
            let region = self.sent.region(w);
            for (o, c) in out.iter_mut().zip(region.iter().skip(t.sent_base).take(n)) {
                *o += c.load(Ordering::Relaxed);
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy)]
struct Rule<A> {
    net: A,
    prefix: u8,
    proto: u8,
    port_start: u16,
    port_end: u16,
    table: u16,
}

impl<A: Copy> Rule<A> {
    #[inline]
    fn matches_l4(&self, proto: u8, port: u16) -> bool {
        self.proto == proto && self.port_start <= port && port <= self.port_end
    }
}

/// Multiplicative hasher for address keys (std's SipHash is needlessly slow here and the
/// keys come from the operator's config, not from the network).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Up to this many host binds are looked up by scanning.
const LINEAR_EXACT: usize = 16;

type AddrMap<K> = HashMap<K, (u32, u32), BuildHasherDefault<AddrHasher>>;

/// Bind lookup for one family: host binds (/32, /128) through a hash map, prefixes through a
/// list ordered longest prefix first (config order within a length).
#[derive(Debug)]
struct FamilyIndex<A: Copy + Eq + std::hash::Hash> {
    exact_rules: Vec<Rule<A>>,
    exact: AddrMap<A>,
    cidr: Vec<Rule<A>>,
}

impl<A: Copy + Eq + std::hash::Hash + std::fmt::Debug> FamilyIndex<A> {
    fn new(mut rules: Vec<Rule<A>>, host_bits: u8, mask: impl Fn(A, u8) -> A) -> Self {
        for r in &mut rules {
            r.net = mask(r.net, r.prefix);
        }
        let (mut exact_rules, mut cidr): (Vec<_>, Vec<_>) =
            rules.into_iter().partition(|r| r.prefix == host_bits);
        cidr.sort_by_key(|r| std::cmp::Reverse(r.prefix)); // stable: config order kept
        let mut order: Vec<usize> = (0..exact_rules.len()).collect();
        // group equal addresses together, keeping config order inside a group
        let mut seen: Vec<A> = Vec::new();
        for r in &exact_rules {
            if !seen.contains(&r.net) {
                seen.push(r.net);
            }
        }
        order.sort_by_key(|&i| seen.iter().position(|a| *a == exact_rules[i].net));
        exact_rules = order.into_iter().map(|i| exact_rules[i]).collect();
        let mut exact = AddrMap::default();
        let mut i = 0;
        while i < exact_rules.len() {
            let mut j = i;
            while j < exact_rules.len() && exact_rules[j].net == exact_rules[i].net {
                j += 1;
            }
            exact.insert(exact_rules[i].net, (i as u32, (j - i) as u32));
            i = j;
        }
        FamilyIndex {
            exact_rules,
            exact,
            cidr,
        }
    }

    #[inline(always)]
    fn lookup(
        &self,
        ip: A,
        mask: impl Fn(A, u8) -> A,
        pred: impl Fn(&Rule<A>) -> bool,
    ) -> Option<&Rule<A>> {
        // A handful of host binds: a scan beats hashing. Many: the hash map.
        let exact = if self.exact_rules.len() <= LINEAR_EXACT {
            self.exact_rules.iter().find(|r| r.net == ip && pred(r))
        } else {
            self.exact.get(&ip).and_then(|&(start, len)| {
                self.exact_rules[start as usize..(start + len) as usize]
                    .iter()
                    .find(|r| pred(r))
            })
        };
        if exact.is_some() {
            return exact;
        }
        self.cidr
            .iter()
            .find(|r| mask(ip, r.prefix) == r.net && pred(r))
    }

    fn is_empty(&self) -> bool {
        self.exact_rules.is_empty() && self.cidr.is_empty()
    }
}

#[inline]
fn mask_v4(a: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        a & (u32::MAX << (32 - u32::from(prefix.min(32))))
    }
}

#[inline]
fn mask_v6(a: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        a & (u128::MAX << (128 - u32::from(prefix.min(128))))
    }
}

/// All binds of all tables.
#[derive(Debug)]
pub struct BindIndex {
    v4: FamilyIndex<u32>,
    v6: FamilyIndex<u128>,
}

impl BindIndex {
    fn new(tables: &[ForwardingTable]) -> Result<Self, SnapshotError> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (ti, t) in tables.iter().enumerate() {
            for b in &t.spec.binds {
                let (proto, port_start, port_end, table) =
                    (b.proto.number(), b.port_start, b.port_end, ti as u16);
                match b.addr {
                    IpAddr::V4(a) => v4.push(Rule {
                        net: u32::from(a),
                        prefix: b.prefix_len,
                        proto,
                        port_start,
                        port_end,
                        table,
                    }),
                    IpAddr::V6(a) => v6.push(Rule {
                        net: u128::from(a),
                        prefix: b.prefix_len,
                        proto,
                        port_start,
                        port_end,
                        table,
                    }),
                }
            }
        }
        check_overlaps(tables)?;
        Ok(BindIndex {
            v4: FamilyIndex::new(v4, 32, mask_v4),
            v6: FamilyIndex::new(v6, 128, mask_v6),
        })
    }

    /// Table for a TCP/UDP packet to `dst`:`port`.
    #[inline(always)]
    pub fn lookup_v4(&self, dst: u32, proto: u8, port: u16) -> Option<u16> {
        self.v4
            .lookup(dst, mask_v4, |r| r.matches_l4(proto, port))
            .map(|r| r.table)
    }

    #[inline]
    pub fn lookup_v6(&self, dst: u128, proto: u8, port: u16) -> Option<u16> {
        self.v6
            .lookup(dst, mask_v6, |r| r.matches_l4(proto, port))
            .map(|r| r.table)
    }

    /// Table of the first bind whose prefix holds `dst` and also holds `also` (ICMP: echo
    /// requests match any bind of the address; frag-needed needs the quoted source too).
    #[inline]
    pub fn lookup_v4_addr(
        &self,
        dst: u32,
        proto_port: Option<(u8, u16)>,
        also: u32,
    ) -> Option<u16> {
        self.v4
            .lookup(dst, mask_v4, |r| {
                proto_port.is_none_or(|(p, port)| r.matches_l4(p, port))
                    && mask_v4(also, r.prefix) == r.net
            })
            .map(|r| r.table)
    }

    #[inline]
    pub fn lookup_v6_addr(
        &self,
        dst: u128,
        proto_port: Option<(u8, u16)>,
        also: u128,
    ) -> Option<u16> {
        self.v6
            .lookup(dst, mask_v6, |r| {
                proto_port.is_none_or(|(p, port)| r.matches_l4(p, port))
                    && mask_v6(also, r.prefix) == r.net
            })
            .map(|r| r.table)
    }

    /// Whether any bind covers this address (used to decide drop vs. exception for
    /// malformed or fragmented packets).
    #[inline]
    pub fn is_vip_v4(&self, dst: u32) -> bool {
        self.v4.lookup(dst, mask_v4, |_| true).is_some()
    }

    #[inline]
    pub fn is_vip_v6(&self, dst: u128) -> bool {
        self.v6.lookup(dst, mask_v6, |_| true).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

fn bind_str(b: &Bind) -> String {
    let ports = if b.port_start == b.port_end {
        b.port_start.to_string()
    } else {
        format!("{}-{}", b.port_start, b.port_end)
    };
    format!("{}/{} {} {}", b.addr, b.prefix_len, b.proto.as_str(), ports)
}

/// Two binds in different tables that a packet could both match make forwarding depend on
/// rule order: refuse them. (Within one table it is harmless: same rows either way.)
pub fn check_overlaps(tables: &[ForwardingTable]) -> Result<(), SnapshotError> {
    let all: Vec<(usize, &Bind)> = tables
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.spec.binds.iter().map(move |b| (i, b)))
        .collect();
    for (k, (ti, a)) in all.iter().enumerate() {
        for (tj, b) in &all[k + 1..] {
            if ti == tj || a.proto != b.proto {
                continue;
            }
            if a.port_start > b.port_end || b.port_start > a.port_end {
                continue;
            }
            let same_prefix = a.prefix_len == b.prefix_len;
            let nets_overlap = match (a.addr, b.addr) {
                (IpAddr::V4(x), IpAddr::V4(y)) => {
                    let p = a.prefix_len.min(b.prefix_len);
                    mask_v4(u32::from(x), p) == mask_v4(u32::from(y), p)
                }
                (IpAddr::V6(x), IpAddr::V6(y)) => {
                    let p = a.prefix_len.min(b.prefix_len);
                    mask_v6(u128::from(x), p) == mask_v6(u128::from(y), p)
                }
                _ => false,
            };
            // Nested prefixes of different lengths are fine: the longest prefix wins.
            if nets_overlap && same_prefix {
                return Err(SnapshotError::OverlappingBinds {
                    a: tables[*ti].spec.name.clone(),
                    bind: bind_str(a),
                    b: tables[*tj].spec.name.clone(),
                    other: bind_str(b),
                });
            }
        }
    }
    Ok(())
}

/// Everything a worker needs, immutable once built.
#[derive(Debug)]
pub struct Snapshot {
    pub settings: DirectorSettings,
    /// Source MAC of encapsulated frames: the port's own MAC where the driver knows it.
    pub src_mac: MacAddr,
    pub binds: BindIndex,
    pub tables: Vec<CompiledTable>,
    pub(crate) hash: FieldSet,
    pub(crate) alt_hash: Option<FieldSet>,
    /// Some table takes the pipeline's express lane ([`CompiledTable::express`]); without
    /// one, bursts skip the lane altogether.
    pub(crate) express: bool,
    /// Increases with every swap; lets tools tell snapshots apart.
    pub generation: u64,
    /// Packets sent per backend, per worker (empty until a runtime attaches it).
    pub sent: SentCounters,
}

impl Snapshot {
    /// Compile a config. `src_mac` overrides the config's source MAC (ports know their own).
    pub fn compile(
        config: Config,
        src_mac: Option<MacAddr>,
        generation: u64,
    ) -> Result<Snapshot, SnapshotError> {
        let Config {
            settings, tables, ..
        } = config;
        if tables.len() > usize::from(u16::MAX) {
            return Err(SnapshotError::TooManyTables);
        }
        let binds = BindIndex::new(&tables)?;
        let per_packet = |t: &ForwardingTable| {
            t.hops()
                * if settings.alt_hash_fields.is_some() {
                    2
                } else {
                    1
                }
        };
        let mut compiled = Vec::with_capacity(tables.len());
        let mut sent_base = 0;
        for table in tables {
            let v4 = table
                .spec
                .backends
                .iter()
                .find(|b| b.ip.is_ipv4())
                .map(|b| b.ip);
            let v6 = table
                .spec
                .backends
                .iter()
                .find(|b| b.ip.is_ipv6())
                .map(|b| b.ip);
            let family = match (v4, v6) {
                (Some(v4), Some(v6)) => {
                    return Err(SnapshotError::MixedFamilies {
                        table: table.spec.name.clone(),
                        v4,
                        v6,
                    })
                }
                (None, Some(_)) => Family::V6,
                _ => Family::V4,
            };
            let hops = per_packet(&table);
            let (max, fam) = match family {
                Family::V4 => (MAX_HOPS, "IPv4"),
                Family::V6 => (8, "IPv6"),
            };
            if hops > max {
                return Err(SnapshotError::TooManyHops {
                    table: table.spec.name.clone(),
                    hops,
                    family: fam,
                    max,
                });
            }
            if family == Family::V6 && settings.src_ipv6.is_none() {
                return Err(SnapshotError::NoIpv6Source {
                    table: table.spec.name.clone(),
                });
            }
            let outer =
                OuterTemplate::new(&settings, src_mac.unwrap_or(settings.src_mac), family, hops);
            let addrs_v4: Box<[BackendV4]> = table
                .spec
                .backends
                .iter()
                .map(|b| {
                    outer.backend_v4(match b.ip {
                        IpAddr::V4(a) => a.octets(),
                        IpAddr::V6(_) => [0; 4],
                    })
                })
                .collect();
            let addrs_v6 = table
                .spec
                .backends
                .iter()
                .map(|b| match b.ip {
                    IpAddr::V6(a) => a.octets(),
                    IpAddr::V4(_) => [0; 16],
                })
                .collect();
            let sip_key = crate::hash::SipKey::from_bytes(&table.spec.hash_key).halves();
            let quic = QuicRoute::compile(&table.spec)
                .map_err(|source| SnapshotError::Quic {
                    table: table.spec.name.clone(),
                    source,
                })?
                .map(Box::new);
            // A QUIC-LB table's UDP packets need their CID read: the general path.
            let express = match table.pairs() {
                Some(pairs)
                    if family == Family::V4
                        && settings.alt_hash_fields.is_none()
                        && quic.is_none() =>
                {
                    ExpressTable::resolve(&outer, pairs, &addrs_v4, sip_key, sent_base)
                }
                _ => None,
            };
            compiled.push(CompiledTable {
                sip_key,
                outer,
                addrs_v4,
                addrs_v6,
                sent_base,
                express,
                quic,
                table,
            });
            sent_base += compiled.last().map_or(0, |t| t.table.spec.backends.len());
        }
        Ok(Snapshot {
            express: compiled.iter().any(|t| t.express().is_some()),
            src_mac: src_mac.unwrap_or(settings.src_mac),
            hash: FieldSet::from(&settings.hash_fields),
            alt_hash: settings.alt_hash_fields.as_ref().map(FieldSet::from),
            settings,
            binds,
            tables: compiled,
            generation,
            sent: SentCounters::default(),
        })
    }

    /// Send every packet down the general path, as if no table took the express lane: for
    /// the benchmark that measures what the lane gains (`pipeline_burst_of_32_general` in
    /// `benches/datapath.rs`) and for tests. Decided per snapshot, so the pipeline's burst
    /// loop is the same code either way.
    #[doc(hidden)]
    pub fn disable_express_lane(&mut self) {
        self.express = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::config_from_str;
    use crate::wire::checksum;

    fn cfg() -> String {
        crate::config::testing::web_table(
            r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }, { ip = "10.255.3.4" }]"#,
        )
    }

    #[test]
    fn pair_rows_resolve_each_row_and_refuse_unknown_backends() {
        let s = Snapshot::compile(config_from_str(&cfg(), "t.toml").unwrap(), None, 1).unwrap();
        let t = &s.tables[0];
        let x = t.express().unwrap();
        assert_eq!((x.sip_key, x.sent_base), (t.sip_key, t.sent_base));
        assert_eq!(x.outer.bytes, t.outer.bytes);
        let pairs = t.table.pairs().unwrap();
        for h in [0u64, 1, 0x1234, 0xffff, 0x5_0000_fffe] {
            let [first, second] = pairs[usize::from(h as u16)];
            let (p, q) = (t.addrs_v4[first as usize], t.addrs_v4[second as usize]);
            let row = *x.row(h);
            assert_eq!((row.dst, row.hop, row.primary), (p.addr, q.addr, first));
            assert_eq!(row.ip_le, p.ip_le);
            let le = |a: [u8; 4]| u64::from(u32::from_le_bytes(a));
            let udp = t.outer.udp_sum_le + le(p.addr) + le(q.addr);
            assert_eq!(row.udp_le, checksum::fold(udp), "hash {h:#x}");
        }
        // A row naming a backend the table does not have: no resolved rows (the table
        // then stays out of the express lane).
        assert!(pairs.iter().any(|p| p.contains(&2)));
        assert!(t.outer.pair_rows(pairs, &t.addrs_v4[..2]).is_none());
        assert!(t.outer.pair_rows(pairs, &[]).is_none());
        assert!(ExpressTable::resolve(&t.outer, pairs, &t.addrs_v4[..2], t.sip_key, 0).is_none());
        assert_eq!(
            t.outer.pair_rows(pairs, &t.addrs_v4).as_deref(),
            Some(x.rows())
        );
    }
}
