//! Asking the kernel about TCP sockets: `inet_diag` over `NETLINK_SOCK_DIAG`, a small cache,
//! and the syncookie rule.
//!
//! ## Socket lookup
//! One `SOCK_DIAG_BY_FAMILY` request without `NLM_F_DUMP` per flow: the kernel runs its own
//! receive-path lookup (`inet_lookup`) on the exact 4-tuple, so the answer is what a packet of
//! the flow would find: first a socket of the flow in any state (SYN-received request
//! sockets and TIME-WAIT included, as GLB's `inet_lookup_established`), else the listener
//! for the destination address and port, else nothing (`ENOENT`). IPv4 and IPv6 flows both
//! work, including IPv4 flows accepted by a dual-stack IPv6 listener.
//!
//! Answers are cached in a direct-mapped table of a fixed number of slots (allocated once),
//! each entry valid for a short TTL; a flood of distinct flows overwrites slots and never
//! grows memory. When a SYN is delivered for a flow its slot is cleared, so the handshake's
//! ACK is never judged by a stale "nothing here" answer. If the kernel does not answer
//! (timeout, error), the flow is treated as local (GLB's last resort: the primary is the
//! likeliest owner) and `diag_errors` counts it.
//!
//! The lookup is on the per-packet path of `rondo redirect`: every non-SYN packet whose
//! flow is not cached costs one request and one answer, so both are built and parsed here
//! in fixed buffers (72 bytes out, one 8 KiB receive buffer allocated once); the socket
//! itself is [`crate::sys::netlink`]. The `netlink-packet-sock-diag` crate (0.5, with
//! `netlink-packet-core` 0.9) builds the same request, but parsing an answer allocates:
//! a found socket comes back as `SockDiagMessage::InetResponse(Box<InetResponse>)`, and
//! the `ENOENT` answer (no socket: the usual case of a flow to forward) as an
//! `ErrorMessage` whose `header: Vec<u8>` copies the echoed request. It would add an
//! allocation per looked-up packet (and five crates) for about 60 lines of layout code.
//!
//! ## Syncookies (the exact rule, and its limits)
//! GLB's kernel module checks a syncookie ACK with the kernel's secret
//! (`__cookie_v4_check`), only when the listener recently overflowed its SYN queue or
//! `tcp_syncookies` is 2. Userspace cannot read the secret, so Rondo accepts an ACK as a
//! possible syncookie ACK when all of these hold:
//! 1. it is a pure ACK (ACK set, SYN, RST and FIN clear) and no socket exists for its flow;
//! 2. the kernel has a listener for its destination address and port (the lookup above);
//! 3. `net.ipv4.tcp_syncookies` is 2 (cookies always sent), or it is 1 and the namespace's
//!    `TcpExtSyncookiesSent` counter (`/proc/net/netstat`) grew within the last
//!    `syncookie_window` (default 120 s: the kernel accepts a cookie for at most two of its
//!    64-second periods, so any valid cookie ACK falls inside the window of the SYN-ACK that
//!    carried it).
//!
//! The kernel then validates the cookie itself: a valid one completes the connection, an
//! invalid one is answered with a RST, exactly as for any stray ACK.
//!
//! Limits: while cookies are being sent (a SYN flood on this host, or `tcp_syncookies = 2`),
//! an ACK of a flow that lives on another backend and reaches this one while it also has a
//! listener on that port is kept here and reset instead of being forwarded; outside those
//! windows the behaviour is exactly GLB's. The counter is per network namespace, not per
//! listener (GLB looks at the one listener's overflow time). Cookies sent before
//! `rondo redirect` started are not seen: their ACKs fall back to the other rows (last
//! resort on the final hop).

use std::hash::BuildHasher;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::decide::{FlowKey, SocketLookup, SocketState};
use crate::sys::netlink::NetlinkSocket;

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
use crate::sys::netlink::NLMSG_HDRLEN;
const REQ_LEN: usize = NLMSG_HDRLEN + 56;
/// `inet_diag_msg`: family, state, timer, retrans, sockid (48), 5 x u32.
const DIAG_MSG_LEN: usize = 4 + 48 + 20;
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

/// A failed kernel query.
#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error("opening a NETLINK_SOCK_DIAG socket: {0} (needs a kernel with CONFIG_INET_DIAG)")]
    Open(#[source] io::Error),
    #[error("sock_diag {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("sock_diag: no answer within {0:?}")]
    Timeout(Duration),
    #[error("sock_diag: kernel error {0}")]
    Kernel(io::Error),
    #[error("sock_diag: malformed answer ({0})")]
    Malformed(&'static str),
    #[error("sock_diag: flow addresses of different families")]
    MixedFamilies,
}

/// A `NETLINK_SOCK_DIAG` socket doing exact-tuple TCP lookups.
#[derive(Debug)]
pub struct DiagSocket {
    sock: NetlinkSocket,
    seq: u32,
    timeout: Duration,
    buf: Vec<u8>,
}

/// The request for `flow`, as the kernel lays out `nlmsghdr` + `inet_diag_req_v2`.
fn request(flow: &FlowKey, seq: u32) -> Result<[u8; REQ_LEN], DiagError> {
    let mut b = [0u8; REQ_LEN];
    b[0..4].copy_from_slice(&(REQ_LEN as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    let r = &mut b[NLMSG_HDRLEN..];
    // The socket's view: local = the VIP (packet destination), remote = the client.
    // inet_diag_req_v2: family, protocol, ext, pad, states (4..8), then inet_diag_sockid:
    // sport 8..10, dport 10..12, src 12..28, dst 28..44, if 44..48, cookie 48..56.
    let family = match (flow.dst.to_canonical(), flow.src.to_canonical()) {
        (IpAddr::V4(local), IpAddr::V4(remote)) => {
            r[12..16].copy_from_slice(&local.octets());
            r[28..32].copy_from_slice(&remote.octets());
            libc::AF_INET
        }
        (IpAddr::V6(local), IpAddr::V6(remote)) => {
            r[12..28].copy_from_slice(&local.octets());
            r[28..44].copy_from_slice(&remote.octets());
            libc::AF_INET6
        }
        _ => return Err(DiagError::MixedFamilies),
    };
    r[0] = family as u8;
    r[1] = libc::IPPROTO_TCP as u8;
    r[4..8].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
    r[8..10].copy_from_slice(&flow.dport.to_be_bytes()); // idiag_sport: the local port
    r[10..12].copy_from_slice(&flow.sport.to_be_bytes()); // idiag_dport: the remote port
                                                          // idiag_if 0 (any), idiag_cookie INET_DIAG_NOCOOKIE.
    r[48..56].copy_from_slice(&[0xff; 8]);
    Ok(b)
}

/// Reads the answer to request `seq` out of one datagram: `Some(state)` when found.
fn parse_answer(d: &[u8], seq: u32) -> Result<Option<SocketState>, DiagError> {
    for m in crate::sys::netlink::messages(d) {
        let m = m.map_err(|e| DiagError::Malformed(e.what))?;
        if m.seq != seq {
            continue;
        }
        let body = m.body;
        match m.kind {
            NLMSG_ERROR => {
                let e = body
                    .get(..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or(DiagError::Malformed("short error"))?;
                return match -e {
                    0 => Ok(None),
                    libc::ENOENT => Ok(Some(SocketState::Absent)),
                    errno => Err(DiagError::Kernel(io::Error::from_raw_os_error(errno))),
                };
            }
            SOCK_DIAG_BY_FAMILY => {
                if body.len() < DIAG_MSG_LEN {
                    return Err(DiagError::Malformed("short inet_diag_msg"));
                }
                return Ok(Some(match body[1] {
                    TCP_LISTEN => SocketState::Listener,
                    TCP_CLOSE => SocketState::Absent,
                    _ => SocketState::Flow,
                }));
            }
            _ => {}
        }
    }
    Ok(None)
}

impl DiagSocket {
    /// A socket whose queries wait at most `timeout` for the kernel.
    pub fn open(timeout: Duration) -> Result<DiagSocket, DiagError> {
        let sock = NetlinkSocket::open(NETLINK_SOCK_DIAG).map_err(DiagError::Open)?;
        sock.set_recv_timeout(timeout).map_err(|e| DiagError::Io {
            op: "setting the receive timeout",
            source: e,
        })?;
        Ok(DiagSocket {
            sock,
            seq: 0,
            timeout,
            buf: vec![0u8; 8192],
        })
    }

    /// What the kernel holds for `flow` (an exact lookup, no dump).
    pub fn query(&mut self, flow: &FlowKey) -> Result<SocketState, DiagError> {
        self.seq = self.seq.wrapping_add(1);
        let req = request(flow, self.seq)?;
        self.sock.send_to_kernel(&req).map_err(|e| DiagError::Io {
            op: "send",
            source: e,
        })?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let n = match self.sock.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted if Instant::now() < deadline => continue,
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => return Err(DiagError::Timeout(self.timeout)),
                    _ => {
                        return Err(DiagError::Io {
                            op: "receive",
                            source: e,
                        })
                    }
                },
            };
            if let Some(state) = parse_answer(&self.buf[..n], self.seq)? {
                return Ok(state);
            }
            if Instant::now() >= deadline {
                return Err(DiagError::Timeout(self.timeout));
            }
        }
    }
}

/// A direct-mapped cache of lookups: `slots` entries allocated once, each valid for `ttl`.
#[derive(Debug)]
pub struct FlowCache {
    slots: Vec<Option<(FlowKey, SocketState, Instant)>>,
    ttl: Duration,
    hasher: std::collections::hash_map::RandomState,
}

impl FlowCache {
    /// `slots` is rounded up to a power of two (at least 1).
    pub fn new(slots: usize, ttl: Duration) -> FlowCache {
        let n = slots.max(1).next_power_of_two();
        FlowCache {
            slots: vec![None; n],
            ttl,
            hasher: Default::default(),
        }
    }

    fn slot(&self, k: &FlowKey) -> usize {
        (self.hasher.hash_one(k) as usize) & (self.slots.len() - 1)
    }

    /// The cached state of `k`, if fresh at `now`.
    pub fn get(&self, k: &FlowKey, now: Instant) -> Option<SocketState> {
        match self.slots.get(self.slot(k))? {
            Some((key, state, at)) if key == k && now.saturating_duration_since(*at) < self.ttl => {
                Some(*state)
            }
            _ => None,
        }
    }

    /// Remember `state` for `k` as of `now` (replacing whatever shared its slot).
    pub fn put(&mut self, k: FlowKey, state: SocketState, now: Instant) {
        let i = self.slot(&k);
        if let Some(s) = self.slots.get_mut(i) {
            *s = Some((k, state, now));
        }
    }

    /// Forget `k`.
    pub fn remove(&mut self, k: &FlowKey) {
        let i = self.slot(k);
        if let Some(s) = self.slots.get_mut(i) {
            if s.as_ref().is_some_and(|(key, _, _)| key == k) {
                *s = None;
            }
        }
    }

    /// Number of slots (fixed).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// Reads counter `name` of section `section` (e.g. `TcpExt`, `SyncookiesSent`) from the
/// text of `/proc/net/netstat` (pairs of header and value lines).
pub fn parse_netstat(text: &str, section: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines();
    let prefix = format!("{section}:");
    while let Some(head) = lines.next() {
        let values = lines.next()?;
        if !head.starts_with(&prefix) || !values.starts_with(&prefix) {
            continue;
        }
        let i = head.split_whitespace().position(|h| h == name)?;
        return values.split_whitespace().nth(i)?.parse().ok();
    }
    None
}

/// The syncookie rule's state (module docs): the sysctl mode and when the namespace's
/// `SyncookiesSent` counter last grew.
#[derive(Debug, Clone)]
pub struct SyncookieRule {
    window: Duration,
    mode: u8,
    sent: Option<u64>,
    grew_at: Option<Instant>,
}

impl SyncookieRule {
    pub fn new(window: Duration) -> SyncookieRule {
        SyncookieRule {
            window,
            mode: 0,
            sent: None,
            grew_at: None,
        }
    }

    /// Record a reading taken at `now`: `tcp_syncookies` and the `SyncookiesSent` counter.
    /// The first reading is the baseline (growth before it is unknown).
    pub fn observe(&mut self, now: Instant, mode: u8, sent: Option<u64>) {
        self.mode = mode;
        if let (Some(old), Some(new)) = (self.sent, sent) {
            if new != old {
                self.grew_at = Some(now);
            }
        }
        if sent.is_some() {
            self.sent = sent;
        }
    }

    /// Whether a pure ACK to a listener may be a syncookie ACK at `now`.
    pub fn in_use(&self, now: Instant) -> bool {
        match self.mode {
            0 => false,
            2 => true,
            _ => self
                .grew_at
                .is_some_and(|t| now.saturating_duration_since(t) <= self.window),
        }
    }
}

/// Counters of the kernel lookups.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiagStats {
    pub queries: u64,
    pub cache_hits: u64,
    pub errors: u64,
}

/// The real kernel behind [`SocketLookup`]: sock_diag, the cache and the syncookie rule
/// (re-read from `/proc` at most once a second).
#[derive(Debug)]
pub struct KernelSockets {
    diag: DiagSocket,
    cache: FlowCache,
    cookies: SyncookieRule,
    cookies_read: Option<Instant>,
    pub stats: DiagStats,
    last_error_log: Option<Instant>,
}

impl KernelSockets {
    pub fn new(
        cache_slots: usize,
        ttl: Duration,
        cookie_window: Duration,
    ) -> Result<KernelSockets, DiagError> {
        let mut k = KernelSockets {
            diag: DiagSocket::open(Duration::from_millis(200))?,
            cache: FlowCache::new(cache_slots, ttl),
            cookies: SyncookieRule::new(cookie_window),
            cookies_read: None,
            stats: DiagStats::default(),
            last_error_log: None,
        };
        k.refresh_cookies(Instant::now());
        Ok(k)
    }

    /// A lookup that must work: used at start-up to fail early without INET_DIAG.
    pub fn probe(&mut self) -> Result<SocketState, DiagError> {
        let flow = FlowKey {
            src: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)),
            sport: 9,
            dport: 9,
        };
        self.diag.query(&flow)
    }

    fn refresh_cookies(&mut self, now: Instant) {
        if self
            .cookies_read
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.cookies_read = Some(now);
        let mode = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_syncookies")
            .ok()
            .and_then(|s| s.trim().parse::<u8>().ok())
            .unwrap_or(1);
        let sent = std::fs::read_to_string("/proc/net/netstat")
            .ok()
            .and_then(|t| parse_netstat(&t, "TcpExt", "SyncookiesSent"));
        self.cookies.observe(now, mode, sent);
    }

    /// Slots in the cache.
    pub fn cache_capacity(&self) -> usize {
        self.cache.capacity()
    }
}

impl SocketLookup for KernelSockets {
    fn lookup(&mut self, flow: &FlowKey) -> SocketState {
        let now = Instant::now();
        if let Some(s) = self.cache.get(flow, now) {
            self.stats.cache_hits += 1;
            return s;
        }
        self.stats.queries += 1;
        match self.diag.query(flow) {
            Ok(s) => {
                self.cache.put(*flow, s, now);
                s
            }
            Err(e) => {
                self.stats.errors += 1;
                if self
                    .last_error_log
                    .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(10))
                {
                    self.last_error_log = Some(now);
                    tracing::warn!(flow = %flow, "socket lookup failed, treating the flow as local: {e}");
                }
                SocketState::Flow
            }
        }
    }

    fn syncookies_in_use(&mut self) -> bool {
        let now = Instant::now();
        self.refresh_cookies(now);
        self.cookies.in_use(now)
    }

    fn syn_delivered(&mut self, flow: &FlowKey) {
        self.cache.remove(flow);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};

    fn key(src: &str, sport: u16, dst: &str, dport: u16) -> FlowKey {
        FlowKey {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport,
            dport,
        }
    }

    #[test]
    fn request_layout() {
        let r = request(&key("198.51.100.7", 40000, "203.0.113.10", 80), 7).unwrap();
        assert_eq!(&r[0..4], &72u32.to_ne_bytes());
        assert_eq!(&r[4..6], &20u16.to_ne_bytes());
        assert_eq!(&r[6..8], &1u16.to_ne_bytes());
        assert_eq!(&r[8..12], &7u32.to_ne_bytes());
        let q = &r[16..];
        assert_eq!((q[0], q[1]), (libc::AF_INET as u8, 6));
        assert_eq!(
            &q[8..12],
            &[0, 80, 0x9c, 0x40],
            "local port then remote port"
        );
        assert_eq!(&q[12..16], &[203, 0, 113, 10], "local address: the VIP");
        assert_eq!(&q[28..32], &[198, 51, 100, 7], "remote address: the client");
        assert_eq!(&q[48..56], &[0xff; 8]);
        let r = request(&key("2001:db8::7", 1, "2001:db8::10", 2), 1).unwrap();
        assert_eq!(r[16], libc::AF_INET6 as u8);
        assert_eq!(r[16 + 12 + 15], 0x10);
        assert_eq!(r[16 + 28 + 15], 0x07);
        assert!(matches!(
            request(&key("2001:db8::7", 1, "10.0.0.1", 2), 1),
            Err(DiagError::MixedFamilies)
        ));
    }

    fn msg(ty: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn answers_parse() {
        let enoent = msg(2, 5, &(-libc::ENOENT).to_ne_bytes());
        assert_eq!(parse_answer(&enoent, 5).unwrap(), Some(SocketState::Absent));
        assert_eq!(
            parse_answer(&enoent, 6).unwrap(),
            None,
            "another request's answer"
        );
        let eperm = msg(2, 5, &(-libc::EPERM).to_ne_bytes());
        assert!(matches!(parse_answer(&eperm, 5), Err(DiagError::Kernel(_))));
        for (state, want) in [
            (10, SocketState::Listener),
            (1, SocketState::Flow),
            (3, SocketState::Flow),
            (6, SocketState::Flow),
            (7, SocketState::Absent),
        ] {
            let mut body = vec![0u8; DIAG_MSG_LEN];
            body[1] = state;
            // A stale answer first, then ours, in one datagram.
            let mut d = msg(20, 4, &body);
            d.extend(msg(20, 5, &body));
            assert_eq!(parse_answer(&d, 5).unwrap(), Some(want));
        }
        assert!(matches!(
            parse_answer(&msg(20, 5, &[0; 10]), 5),
            Err(DiagError::Malformed("short inet_diag_msg"))
        ));
        let mut bad = enoent.clone();
        bad[0] = 200;
        assert!(matches!(
            parse_answer(&bad, 5),
            Err(DiagError::Malformed("length runs past the datagram"))
        ));
        // Every cut of the answer: an empty datagram holds no answer; any other cut leaves a
        // header or a message that does not fit, which is malformed.
        assert!(matches!(parse_answer(&[], 5), Ok(None)));
        for n in 1..enoent.len() {
            let r = parse_answer(&enoent[..n], 5);
            assert!(matches!(r, Err(DiagError::Malformed(_))), "{n}: {r:?}");
        }
    }

    #[test]
    fn netstat_parsing() {
        let t = "TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed\nTcpExt: 12 3 4\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(parse_netstat(t, "TcpExt", "SyncookiesSent"), Some(12));
        assert_eq!(parse_netstat(t, "TcpExt", "SyncookiesFailed"), Some(4));
        assert_eq!(parse_netstat(t, "IpExt", "InNoRoutes"), Some(0));
        assert_eq!(parse_netstat(t, "TcpExt", "Nope"), None);
        assert_eq!(parse_netstat("", "TcpExt", "SyncookiesSent"), None);
        assert_eq!(parse_netstat("TcpExt: a\n", "TcpExt", "a"), None);
        let real = std::fs::read_to_string("/proc/net/netstat").unwrap();
        assert!(parse_netstat(&real, "TcpExt", "SyncookiesSent").is_some());
    }

    #[test]
    fn syncookie_rule() {
        let t0 = Instant::now();
        let mut r = SyncookieRule::new(Duration::from_secs(120));
        r.observe(t0, 1, Some(5));
        assert!(!r.in_use(t0), "growth before the first reading is unknown");
        r.observe(t0 + Duration::from_secs(1), 1, Some(5));
        assert!(!r.in_use(t0 + Duration::from_secs(1)));
        let grew = t0 + Duration::from_secs(2);
        r.observe(grew, 1, Some(6));
        assert!(r.in_use(grew));
        assert!(r.in_use(grew + Duration::from_secs(120)));
        assert!(!r.in_use(grew + Duration::from_secs(121)));
        r.observe(grew, 0, Some(6));
        assert!(!r.in_use(grew), "tcp_syncookies = 0: never");
        r.observe(grew + Duration::from_secs(500), 2, None);
        assert!(
            r.in_use(grew + Duration::from_secs(500)),
            "tcp_syncookies = 2: always"
        );
    }

    #[test]
    fn cache_is_bounded_and_expires() {
        let t0 = Instant::now();
        let mut c = FlowCache::new(100, Duration::from_millis(500));
        assert_eq!(c.capacity(), 128);
        let k = key("10.0.0.1", 1, "10.0.0.2", 80);
        assert_eq!(c.get(&k, t0), None);
        c.put(k, SocketState::Flow, t0);
        assert_eq!(
            c.get(&k, t0 + Duration::from_millis(499)),
            Some(SocketState::Flow)
        );
        assert_eq!(c.get(&k, t0 + Duration::from_millis(500)), None);
        c.remove(&k);
        assert_eq!(c.get(&k, t0), None);
        for p in 0..10_000u16 {
            c.put(key("10.0.0.1", p, "10.0.0.2", 80), SocketState::Absent, t0);
        }
        assert_eq!(c.capacity(), 128, "a flood does not grow the cache");
        let zero = FlowCache::new(0, Duration::ZERO);
        let mut zero = zero;
        zero.put(k, SocketState::Flow, t0);
        assert_eq!(zero.get(&k, t0), None, "TTL 0: nothing is reused");
    }

    /// The real kernel: a connected flow, a listener, nothing; IPv4, IPv6 and an IPv4 flow
    /// on a dual-stack IPv6 listener.
    #[test]
    fn kernel_lookups() {
        let mut d = DiagSocket::open(Duration::from_millis(500)).unwrap();
        for (bind, connect_ip) in [
            ("127.0.0.1:0", IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ("[::1]:0", IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ("[::]:0", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ] {
            let l = TcpListener::bind(bind).unwrap();
            let port = l.local_addr().unwrap().port();
            let c = TcpStream::connect((connect_ip, port)).unwrap();
            let (_s, _) = l.accept().unwrap();
            let me = c.local_addr().unwrap();
            let flow = FlowKey {
                src: me.ip(),
                dst: connect_ip,
                sport: me.port(),
                dport: port,
            };
            assert_eq!(d.query(&flow).unwrap(), SocketState::Flow, "{bind}");
            let other = FlowKey {
                sport: me.port().wrapping_add(1).max(1),
                ..flow
            };
            assert_eq!(d.query(&other).unwrap(), SocketState::Listener, "{bind}");
            drop(l);
            let gone = FlowKey {
                dport: port,
                ..other
            };
            assert_eq!(d.query(&gone).unwrap(), SocketState::Absent, "{bind}");
        }
        let mut k =
            KernelSockets::new(64, Duration::from_secs(5), Duration::from_secs(120)).unwrap();
        assert_eq!(k.probe().unwrap(), SocketState::Absent);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let f = FlowKey {
            src: IpAddr::V4(Ipv4Addr::LOCALHOST),
            dst: IpAddr::V4(Ipv4Addr::LOCALHOST),
            sport: 9,
            dport: l.local_addr().unwrap().port(),
        };
        assert_eq!(k.lookup(&f), SocketState::Listener);
        assert_eq!(k.lookup(&f), SocketState::Listener);
        assert_eq!((k.stats.queries, k.stats.cache_hits), (1, 1));
        k.syn_delivered(&f);
        assert_eq!(k.lookup(&f), SocketState::Listener);
        assert_eq!(k.stats.queries, 2, "a SYN clears the cached answer");
    }
}
