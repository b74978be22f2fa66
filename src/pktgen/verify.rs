//! The receive side: decapsulate what the director sent, check the outer headers (the
//! GUE encapsulation GLB emits) and the hop list against an expectation computed independently of the data
//! path (bind matching and SipHash here, rows from [`ForwardingTable::row`]), track each
//! flow's sequence numbers and the latency carried in the trailer.

use std::collections::HashMap;
use std::net::IpAddr;

use hdrhistogram::Histogram;
use siphasher::sip::SipHasher24;

use super::flows::{GeneratedFlow, Kind, MAGIC, TRAILER_LEN};
use super::report::{FlowTotals, Latency};
use super::PktgenError;
use crate::config::{Config, HashFields};
use crate::table::{ForwardingTable, Proto};

const GUE_PORT: u16 = 19523;
/// Most examples of failures kept for the report.
const MAX_EXAMPLES: usize = 8;
/// Sequence window for telling duplicates from late arrivals.
const WINDOW: u64 = 128;

/// What one flow's packets must look like on the way out of the director.
#[derive(Debug, Clone)]
struct Expect {
    /// Backends: outer destination then the GUE hop list.
    hops: Vec<IpAddr>,
    /// Expected UDP source port.
    sport: u16,
    /// Other acceptable (hops, source port), from [`Verifier::accept_also`].
    alt: Vec<(Vec<IpAddr>, u16)>,
    /// The flow's frame without Ethernet header (the inner packet).
    inner: Box<[u8]>,
    /// Offsets in `inner` that vary per packet: checksum, seq + time.
    csum_at: usize,
    trailer_at: usize,
    /// A replayed frame: found by its content, compared whole, no sequence numbers.
    replay: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct SeqState {
    received: u64,
    top: u64,
    window: u128,
    dups: u64,
    reordered: u64,
}

impl SeqState {
    fn see(&mut self, seq: u64) {
        if self.received == 0 {
            self.top = seq;
            self.window = 1;
        } else if seq > self.top {
            let shift = seq - self.top;
            self.window = if shift >= WINDOW {
                0
            } else {
                self.window << shift
            };
            self.window |= 1;
            self.top = seq;
        } else {
            let d = self.top - seq;
            if d < WINDOW {
                let bit = 1u128 << d;
                if self.window & bit != 0 {
                    self.dups += 1;
                } else {
                    self.window |= bit;
                    self.reordered += 1;
                }
            } else {
                self.reordered += 1;
            }
        }
        self.received += 1;
    }
}

/// The verification outcome of one received frame: what became of it (not the director's
/// per-packet [`crate::datapath::Verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Ours, headers and backends as the table says.
    Verified,
    /// Ours, but sent to other backends than the table's row.
    WrongBackend,
    /// Ours, but the encapsulation or the inner packet is not what it must be.
    BadHeader,
    /// Not a packet of this run.
    Foreign,
}

/// Checks frames; one per receiving thread.
pub struct Verifier {
    expect: Vec<Expect>,
    seq: Vec<SeqState>,
    gateway: [u8; 6],
    director_mac: Option<[u8; 6]>,
    src_v4: std::net::Ipv4Addr,
    src_v6: Option<std::net::Ipv6Addr>,
    latency: Histogram<u64>,
    pub verified: u64,
    /// Of `verified`: sent as only a config given to [`Verifier::accept_also`] says.
    pub verified_alt: u64,
    pub wrong_backend: u64,
    pub bad_header: u64,
    pub foreign: u64,
    pub rx_bytes: u64,
    pub examples: Vec<String>,
    /// Replayed frames by a hash of their IP packet.
    replay_index: HashMap<u64, usize>,
    /// Frames sent that the director must not forward (replayed frames no bind takes).
    pub unforwardable: Vec<bool>,
}

/// FNV-1a over an IP packet (finding replayed frames without allocating).
pub(crate) fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Bind matching as GLB's director picks a table, independent of the classifier: host binds first,
/// then longer prefixes, then config order.
fn table_for(cfg: &Config, flow: &GeneratedFlow) -> Option<usize> {
    let mut best: Option<(u8, usize)> = None;
    for (t, table) in cfg.tables.iter().enumerate() {
        for b in &table.spec.binds {
            let proto = if flow.kind == Kind::Udp {
                Proto::Udp
            } else {
                Proto::Tcp
            };
            let l4 = flow.kind == Kind::Echo
                || (b.proto == proto && (b.port_start..=b.port_end).contains(&flow.vip_port));
            if l4 && b.contains(flow.vip) && best.is_none_or(|(p, _)| b.prefix_len > p) {
                best = Some((b.prefix_len, t));
            }
        }
    }
    best.map(|(_, t)| t)
}

fn hash(key: &[u8; 16], f: HashFields, flow: &GeneratedFlow) -> u64 {
    let mut input = Vec::with_capacity(36);
    let (sport, dport) = match flow.kind {
        Kind::Echo => (0, 0),
        _ => (flow.client_port, flow.vip_port),
    };
    if f.src_addr {
        input.extend(octets(flow.client));
    }
    if f.dst_addr {
        input.extend(octets(flow.vip));
    }
    if f.src_port {
        input.extend_from_slice(&sport.to_be_bytes());
    }
    if f.dst_port {
        input.extend_from_slice(&dport.to_be_bytes());
    }
    SipHasher24::new_with_key(key).hash(&input)
}

fn row_ips(t: &ForwardingTable, h: u64) -> Result<Vec<IpAddr>, PktgenError> {
    t.row(h as u16)
        .iter()
        .map(|&i| {
            t.spec
                .backends
                .get(i as usize)
                .map(|b| b.ip)
                .ok_or_else(|| {
                    PktgenError::Setup(format!(
                        "table {}: row names backend {i}, which it does not have",
                        t.spec.name
                    ))
                })
        })
        .collect()
}

/// Hops (outer destination, then the GUE list) and UDP source port of `fl` under table `t`.
fn expected(cfg: &Config, t: usize, fl: &GeneratedFlow) -> Result<(Vec<IpAddr>, u16), PktgenError> {
    let s = &cfg.settings;
    let table = &cfg.tables[t];
    let h = hash(&table.spec.hash_key, s.hash_fields, fl);
    let mut hops = row_ips(table, h)?;
    if let Some(alt) = s.alt_hash_fields {
        hops.extend(row_ips(table, hash(&table.spec.hash_key, alt, fl))?);
    }
    Ok((hops, 0x8000 | ((h as u16 ^ fl.hint) & 0x7fff)))
}

impl Verifier {
    /// Also accept what `cfg`'s tables say for `flows` (the same flows as [`Verifier::new`]):
    /// a table change under traffic, where packets forwarded under either set of tables are
    /// right. They count as verified, and also in `verified_alt` when only `cfg` explains them.
    pub fn accept_also(
        &mut self,
        cfg: &Config,
        flows: &[GeneratedFlow],
    ) -> Result<(), PktgenError> {
        for (fl, e) in flows.iter().zip(self.expect.iter_mut()) {
            if e.hops.is_empty() {
                continue;
            }
            if let Some(t) = table_for(cfg, fl) {
                let (hops, sport) = expected(cfg, t, fl)?;
                if (hops != e.hops || sport != e.sport) && !e.alt.contains(&(hops.clone(), sport)) {
                    e.alt.push((hops, sport));
                }
            }
        }
        Ok(())
    }

    /// Expectations of every flow under `cfg`'s tables. `director_mac`: the source MAC the
    /// encapsulated frames must carry (unchecked when `None`).
    pub fn new(
        cfg: &Config,
        flows: &[GeneratedFlow],
        director_mac: Option<[u8; 6]>,
    ) -> Result<Verifier, PktgenError> {
        let s = &cfg.settings;
        let mut expect = Vec::with_capacity(flows.len());
        let mut replay_index = HashMap::new();
        let mut unforwardable = vec![false; flows.len()];
        for fl in flows {
            let inner = fl.frame.get(14..).unwrap_or_default();
            if fl.replay {
                replay_index.entry(fnv(inner)).or_insert(expect.len());
            }
            let pings_dropped = fl.kind == Kind::Echo && !s.forward_icmp_ping_responses;
            let t = match table_for(cfg, fl) {
                Some(t) if !pings_dropped => t,
                _ if fl.replay => {
                    unforwardable[expect.len()] = true;
                    expect.push(Expect {
                        hops: Vec::new(),
                        sport: 0,
                        alt: Vec::new(),
                        inner: inner.into(),
                        csum_at: 0,
                        trailer_at: 0,
                        replay: true,
                    });
                    continue;
                }
                Some(_) => {
                    return Err(PktgenError::Setup(
                        "the config does not forward pings (forward_icmp_ping_responses = false): leave echo out of --mix".into(),
                    ))
                }
                None => {
                    return Err(PktgenError::Setup(format!(
                        "flow {} to {}:{} matches no table of the config",
                        fl.id, fl.vip, fl.vip_port
                    )))
                }
            };
            let (hops, sport) = expected(cfg, t, fl)?;
            expect.push(Expect {
                hops,
                sport,
                alt: Vec::new(),
                inner: inner.into(),
                csum_at: fl.csum_at.saturating_sub(14),
                trailer_at: fl.trailer_at.saturating_sub(14),
                replay: fl.replay,
            });
        }
        Ok(Verifier {
            seq: vec![SeqState::default(); expect.len()],
            expect,
            gateway: s.gateway_mac.0,
            director_mac,
            src_v4: s.src_ipv4,
            src_v6: s.src_ipv6,
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .map_err(|e| PktgenError::Setup(format!("latency histogram: {e}")))?,
            verified: 0,
            verified_alt: 0,
            wrong_backend: 0,
            bad_header: 0,
            foreign: 0,
            rx_bytes: 0,
            examples: Vec::new(),
            replay_index,
            unforwardable,
        })
    }

    fn example(&mut self, what: std::fmt::Arguments<'_>) {
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(what.to_string());
        }
    }

    /// Check one received frame; `now_ns` on the same clock as the trailer's send time.
    pub fn check(&mut self, f: &[u8], now_ns: u64) -> Verification {
        self.rx_bytes += f.len() as u64;
        let v = self.classify(f, now_ns);
        match v {
            Verification::Verified => self.verified += 1,
            Verification::WrongBackend => self.wrong_backend += 1,
            Verification::BadHeader => self.bad_header += 1,
            Verification::Foreign => self.foreign += 1,
        }
        v
    }

    fn classify(&mut self, f: &[u8], now_ns: u64) -> Verification {
        // Outer IP and UDP to the GUE port; anything else is not the director's output.
        let Some(&[t0, t1]) = f.get(12..14) else {
            return Verification::Foreign;
        };
        let (ip_len, v4) = match [t0, t1] {
            [0x08, 0x00] => (20, true),
            [0x86, 0xdd] => (40, false),
            _ => return Verification::Foreign,
        };
        let Some(ip) = f.get(14..14 + ip_len) else {
            return Verification::Foreign;
        };
        let proto = if v4 { ip[9] } else { ip[6] };
        let udp_at = 14 + ip_len;
        let Some(udp) = f.get(udp_at..) else {
            return Verification::Foreign;
        };
        if proto != 17
            || (v4 && ip[0] != 0x45)
            || udp.len() < 16
            || udp[2..4] != GUE_PORT.to_be_bytes()
        {
            return Verification::Foreign;
        }
        let gue = &udp[8..];
        let hlen = usize::from(gue[0] & 0x1f);
        let Some(inner) = gue.get(4 + 4 * hlen..) else {
            return Verification::Foreign;
        };
        // The trailer tells which flow this is; replayed frames are found by content.
        let be4 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let be8 = |b: &[u8]| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let trailer = trailer_offset(inner)
            .and_then(|at| inner.get(at..at + TRAILER_LEN))
            .filter(|tr| be4(&tr[0..4]) == MAGIC);
        let (id, seq, sent_ns) = match trailer {
            Some(tr) => (
                be4(&tr[4..8]) as usize,
                be8(&tr[8..16]),
                Some(be8(&tr[16..24])),
            ),
            None => match self.replay_of(inner) {
                Some(id) => (id, 0, None),
                None => return Verification::Foreign,
            },
        };
        let Some(e) = self.expect.get(id) else {
            return Verification::Foreign;
        };
        // It arrived (right or wrong): sequence and latency accounting.
        if let Some(s) = self.seq.get_mut(id) {
            if e.replay {
                s.received += 1;
            } else {
                s.see(seq);
            }
        }
        if let Some(sent_ns) = sent_ns {
            let _ = self.latency.record(now_ns.saturating_sub(sent_ns).max(1));
        }
        // From here on it is ours: anything off is the director's fault.
        if let Err(why) = self.check_outer(f, v4, e) {
            self.example(format_args!("flow {id} seq {seq}: {why}"));
            return Verification::BadHeader;
        }
        if e.hops.is_empty() {
            self.example(format_args!(
                "replayed frame {id}: forwarded, but no bind of the config takes it"
            ));
            return Verification::WrongBackend;
        }
        // Hops: outer destination then the list.
        let dst = if v4 {
            IpAddr::from(<[u8; 4]>::try_from(&ip[16..20]).unwrap_or_default())
        } else {
            IpAddr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap_or_default())
        };
        let step = if v4 { 4 } else { 16 };
        let hop_count = usize::from(gue[7]);
        let hops_ok = |hops: &[IpAddr]| {
            hops.first() == Some(&dst)
                && hop_count + 1 == hops.len()
                && hops[1..].iter().enumerate().all(|(i, want)| {
                    gue.get(8 + i * step..8 + (i + 1) * step)
                        .is_some_and(|b| same_addr(b, *want))
                })
        };
        let sport = u16::from_be_bytes([udp[0], udp[1]]);
        // The file's tables first, then those given to `accept_also` (same source port too).
        let (want_sport, alt) = if hops_ok(&e.hops) {
            (e.sport, false)
        } else {
            match e.alt.iter().find(|(h, p)| *p == sport && hops_ok(h)) {
                Some((_, p)) => (*p, true),
                None => (0, false),
            }
        };
        if want_sport == 0 {
            if self.examples.len() < MAX_EXAMPLES {
                let got: Vec<IpAddr> = (0..hop_count)
                    .filter_map(|i| gue.get(8 + i * step..8 + (i + 1) * step))
                    .filter_map(|b| match *b {
                        [a, b, c, d] => Some(IpAddr::from([a, b, c, d])),
                        _ => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
                    })
                    .collect();
                let want = e.hops.clone();
                self.example(format_args!(
                    "flow {id} seq {seq}: sent to {dst} then {got:?}, the table says {want:?}"
                ));
            }
            return Verification::WrongBackend;
        }
        if sport != want_sport {
            let want = want_sport;
            self.example(format_args!(
                "flow {id} seq {seq}: UDP source port {sport}, expected {want}"
            ));
            return Verification::BadHeader;
        }
        // The inner packet is what we sent, untouched.
        let (c, t) = (e.csum_at, e.trailer_at + 8);
        let same = if e.replay {
            inner.get(..e.inner.len()) == Some(&e.inner[..])
        } else {
            inner.len() == e.inner.len()
                && inner[..c] == e.inner[..c]
                && inner[c + 2..t] == e.inner[c + 2..t]
                && inner[t + 16..] == e.inner[t + 16..]
        };
        if !same {
            self.example(format_args!(
                "flow {id} seq {seq}: inner packet differs from the one sent"
            ));
            return Verification::BadHeader;
        }
        if alt {
            self.verified_alt += 1;
        }
        Verification::Verified
    }

    /// The replayed frame whose IP packet `inner` is (padding after it allowed).
    fn replay_of(&self, inner: &[u8]) -> Option<usize> {
        if self.replay_index.is_empty() {
            return None;
        }
        let len = match inner.first()? >> 4 {
            4 => usize::from(u16::from_be_bytes([*inner.get(2)?, *inner.get(3)?])),
            6 => 40 + usize::from(u16::from_be_bytes([*inner.get(4)?, *inner.get(5)?])),
            _ => return None,
        };
        self.replay_index.get(&fnv(inner.get(..len)?)).copied()
    }

    fn check_outer(&self, f: &[u8], v4: bool, e: &Expect) -> Result<(), String> {
        if f[0..6] != self.gateway {
            return Err(format!(
                "Ethernet destination {:02x?} is not the gateway",
                &f[0..6]
            ));
        }
        if let Some(m) = self.director_mac {
            if f[6..12] != m {
                return Err(format!(
                    "Ethernet source {:02x?} is not the director's",
                    &f[6..12]
                ));
            }
        }
        let ip_len = if v4 { 20 } else { 40 };
        let ip = &f[14..14 + ip_len];
        let udp = &f[14 + ip_len..];
        let mut pseudo = 0u64;
        if v4 {
            if u16::from_be_bytes([ip[2], ip[3]]) as usize != f.len() - 14 {
                return Err("IPv4 total length".into());
            }
            if ip[1] != 0 || ip[4..8] != [0, 0, 0x40, 0] || ip[8] != 64 {
                return Err(format!("IPv4 tos/id/DF/ttl {:02x?}", &ip[1..9]));
            }
            if super::flows::checksum(ip) != 0 {
                return Err("IPv4 header checksum".into());
            }
            if ip[12..16] != self.src_v4.octets() {
                return Err("IPv4 source is not outbound_src_ip".into());
            }
            pseudo += sum(&ip[12..20]);
        } else {
            if ip[0] >> 4 != 6 || u16::from_be_bytes([ip[4], ip[5]]) as usize != udp.len() {
                return Err("IPv6 version or payload length".into());
            }
            if self.src_v6.is_some_and(|s| ip[8..24] != s.octets()) {
                return Err("IPv6 source is not the configured one".into());
            }
            pseudo += sum(&ip[8..40]);
        }
        if u16::from_be_bytes([udp[4], udp[5]]) as usize != udp.len() {
            return Err("UDP length".into());
        }
        pseudo += 17 + udp.len() as u64 + sum(udp);
        if udp[6..8] == [0, 0] || fold(pseudo) != 0xffff {
            return Err("UDP checksum".into());
        }
        let gue = &udp[8..];
        let want_proto = if e.inner.first().map(|b| b >> 4) == Some(4) {
            4
        } else {
            41
        };
        if gue[0] >> 5 != 0 || gue[1] != want_proto || gue[2..6] != [0, 0, 0, 0] || gue[6] != 0 {
            return Err(format!("GUE header {:02x?}", &gue[0..8]));
        }
        let step = if v4 { 4 } else { 16 };
        if usize::from(gue[0] & 0x1f) * 4 != 4 + usize::from(gue[7]) * step {
            return Err("GUE hlen does not match hop_count".into());
        }
        Ok(())
    }

    /// Per-flow counts against what the generator sent (`sent[flow]`).
    pub fn flow_totals(&self, sent: &[u64]) -> FlowTotals {
        let mut t = FlowTotals::default();
        for (i, s) in self.seq.iter().enumerate() {
            if self.unforwardable.get(i) == Some(&true) {
                continue;
            }
            let n = sent.get(i).copied().unwrap_or(0);
            let dups = if self.expect.get(i).is_some_and(|e| e.replay) {
                s.received.saturating_sub(n)
            } else {
                s.dups
            };
            t.duplicates += dups - s.dups;
            let unique = s.received - dups;
            let lost = n.saturating_sub(unique);
            t.lost += lost;
            t.duplicates += s.dups;
            t.reordered += s.reordered;
            t.unexpected += unique.saturating_sub(n);
            if lost > 0 {
                t.flows_with_loss += 1;
            }
        }
        t
    }

    /// Latency percentiles so far, in microseconds.
    pub fn latency(&self) -> Latency {
        Latency::of(&self.latency)
    }
}

/// Whether `b` holds address `a` (no allocation: this runs per packet).
fn same_addr(b: &[u8], a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => b == a.octets(),
        IpAddr::V6(a) => b == a.octets(),
    }
}

fn sum(data: &[u8]) -> u64 {
    data.chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum()
}

fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Where the trailer sits in an inner IP packet, by protocol (see [`super::flows`]).
fn trailer_offset(inner: &[u8]) -> Option<usize> {
    let (hl, proto) = match inner.first()? >> 4 {
        4 => (usize::from(inner[0] & 0x0f) * 4, *inner.get(9)?),
        6 => (40, *inner.get(6)?),
        _ => return None,
    };
    let l4 = inner.get(hl..)?;
    match (proto, *l4.first()?) {
        (6, _) => Some(hl + usize::from(l4.get(12)? >> 4) * 4),
        (17, _) => Some(hl + 8),
        (1, 8) | (58, 128) => Some(hl + 8),
        (1, 3) => Some(hl + 8 + usize::from(l4.get(8)? & 0x0f) * 4 + 8),
        (58, 2) => Some(hl + 8 + 40 + 8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_tracking_tells_loss_duplicates_and_reordering() {
        let mut s = SeqState::default();
        for q in [0u64, 1, 3, 2, 2, 5, 0, 400, 6] {
            s.see(q);
        }
        // 0,1,3,2,5,400 unique and 6 late; dups: 2 and 0.
        assert_eq!(s.dups, 2);
        assert_eq!(
            s.reordered, 2,
            "2 after 3, 6 after 400 (outside the window): {s:?}"
        );
        assert_eq!(s.received, 9);
    }
}
