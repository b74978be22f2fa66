//! The receive loop of `rondo redirect`: one thread, blocked in `poll` on the GUE sockets
//! (never spinning), a `recvmmsg` batch per wake-up, one decision per datagram, local
//! packets written to the TUN device and forwarded ones sent on raw sockets.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::config::RedirectConfig;
use super::decide::{
    decide, AlwaysLocal, Decision, GueDropReason, Outer, Policy, SubnetBroadcasts,
};
use super::diag::{DiagError, KernelSockets};
use super::forward::{self, Received};
use super::socket::{GueSocket, RawSender, RecvBatch};
use super::tun::{TunDevice, TunError};
use super::RedirectCounters;
use crate::runtime::control::SignalFlags;
use crate::sys::poll::PollSet;

/// Datagrams per `recvmmsg`.
pub const BATCH: usize = 32;
/// Receive buffer per datagram: the largest UDP payload.
const BUF_SIZE: usize = 65536;
/// Longest sleep in `poll`, so signals and the stats timer are seen promptly.
const POLL_MS: i32 = 200;
/// How often the host's IPv4 subnets are read again (their broadcasts are never a hop).
const SUBNETS_EVERY: Duration = Duration::from_secs(1);

/// The directed broadcasts of this host's IPv4 subnets now (none when the interfaces
/// cannot be read: logged, and hops are still checked for every other fault).
fn local_subnet_broadcasts() -> SubnetBroadcasts {
    match crate::sys::iface::ipv4_addresses() {
        Ok(subnets) => {
            let (set, left_out) = SubnetBroadcasts::from_subnets(&subnets);
            if left_out > 0 {
                tracing::warn!(
                    left_out,
                    kept = SubnetBroadcasts::MAX,
                    "more IPv4 subnets than the hop check keeps; the broadcasts of the rest are not refused as hops"
                );
            }
            set
        }
        Err(e) => {
            tracing::warn!("cannot read the interfaces' IPv4 addresses (getifaddrs): {e}; subnet broadcasts are not refused as hops");
            SubnetBroadcasts::default()
        }
    }
}

/// Why `rondo redirect` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    #[error(transparent)]
    Tun(#[from] TunError),
    #[error("kernel socket lookups (inet_diag): {0}")]
    Diag(#[from] DiagError),
    #[error("binding UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("opening a raw IPv{family} socket for forwarding: {source} (needs CAP_NET_RAW)")]
    Raw {
        family: u8,
        #[source]
        source: io::Error,
    },
    #[error("no address to listen on")]
    NoListen,
    #[error("receiving: {0}")]
    Io(#[from] io::Error),
}

/// A running backend redirector.
pub struct Redirect {
    cfg: RedirectConfig,
    policy: Policy,
    sockets: Vec<GueSocket>,
    raw4: Option<RawSender>,
    raw6: Option<RawSender>,
    tun: TunDevice,
    kernel: KernelSockets,
    batch: RecvBatch,
    out: Vec<u8>,
    counters: RedirectCounters,
    last_drop_log: Option<Instant>,
}

fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The TUN must accept packets whose source routes elsewhere (clients, directors): reverse
/// path filtering off on it, IPv6 on. The effective `rp_filter` is the larger of `all` and
/// the interface's, so `all` is checked too.
fn prepare_tun_sysctls(name: &str) {
    let rp = format!("/proc/sys/net/ipv4/conf/{name}/rp_filter");
    if let Err(e) = std::fs::write(&rp, "0") {
        tracing::warn!(
            tun = name,
            "could not turn reverse path filtering off ({rp}): {e}"
        );
    }
    if sysctl("/proc/sys/net/ipv4/conf/all/rp_filter").as_deref() == Some("1") {
        tracing::warn!(
            tun = name,
            "net.ipv4.conf.all.rp_filter is 1 (strict): the kernel will drop decapsulated \
             packets whose source does not route back through {name}; set it to 0 or 2"
        );
    }
    let v6 = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    if sysctl(&v6).as_deref() == Some("1") {
        if let Err(e) = std::fs::write(&v6, "0") {
            tracing::warn!(
                tun = name,
                "IPv6 is disabled on the TUN and could not be enabled: {e}"
            );
        }
    }
}

impl Redirect {
    /// Open everything: the TUN device, the GUE sockets, the raw senders, the sock_diag
    /// socket (probed once, so a kernel without INET_DIAG fails here).
    pub fn start(cfg: RedirectConfig) -> Result<Redirect, RedirectError> {
        let tun = TunDevice::open(&cfg.tun)?;
        prepare_tun_sysctls(tun.name());
        let mut kernel = KernelSockets::new(
            cfg.diag_cache_entries,
            cfg.diag_cache_ttl,
            cfg.syncookie_window,
        )?;
        kernel.probe()?;
        let mut sockets = Vec::new();
        for &addr in &cfg.listen {
            match GueSocket::bind(addr) {
                Ok(s) => sockets.push(s),
                Err(e)
                    if cfg.listen_is_default
                        && addr.is_ipv6()
                        && matches!(
                            e.raw_os_error(),
                            Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                        ) =>
                {
                    tracing::warn!("no IPv6 here ({e}); receiving GUE over IPv4 only");
                }
                Err(e) => return Err(RedirectError::Bind { addr, source: e }),
            }
        }
        if sockets.is_empty() {
            return Err(RedirectError::NoListen);
        }
        let open = |v6: bool| {
            RawSender::open(v6).map_err(|e| RedirectError::Raw {
                family: if v6 { 6 } else { 4 },
                source: e,
            })
        };
        let raw4 = if sockets.iter().any(|s| s.local_addr().is_ipv4()) {
            Some(open(false)?)
        } else {
            None
        };
        let raw6 = if sockets.iter().any(|s| s.local_addr().is_ipv6()) {
            Some(open(true)?)
        } else {
            None
        };
        let policy = Policy {
            directors: cfg.directors.clone(),
            backends: cfg.backends.clone(),
            own: cfg.addresses.clone(),
            hop_limit: cfg.hop_limit,
            subnet_broadcasts: local_subnet_broadcasts(),
            // Second chance off: QUIC is local too (nothing is forwarded).
            quic: cfg.quic_lb.clone().filter(|_| cfg.second_chance),
        };
        Ok(Redirect {
            policy,
            sockets,
            raw4,
            raw6,
            tun,
            kernel,
            batch: RecvBatch::new(BATCH, BUF_SIZE),
            out: vec![0; BUF_SIZE + 64],
            counters: RedirectCounters::default(),
            last_drop_log: None,
            cfg,
        })
    }

    /// The TUN interface name.
    pub fn tun_name(&self) -> &str {
        self.tun.name()
    }

    /// The addresses GUE is received on.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|s| s.local_addr()).collect()
    }

    /// Counters so far.
    pub fn counters(&self) -> &RedirectCounters {
        &self.counters
    }

    /// Counters plus the kernel lookup statistics, as printed on SIGUSR1 and on exit.
    pub fn report(&self) -> String {
        let s = self.kernel.stats;
        format!(
            "{}diag        queries {} cache_hits {} errors {} (cache {} slots)\n",
            self.counters.format(),
            s.queries,
            s.cache_hits,
            s.errors,
            self.kernel.cache_capacity()
        )
    }

    /// Serve until `signals` asks to stop. SIGUSR1/SIGHUP print the counters to stdout.
    pub fn run(&mut self, signals: &SignalFlags) -> Result<(), RedirectError> {
        let fds: Vec<_> = self.sockets.iter().map(|s| s.fd()).collect();
        let mut poll = PollSet::new(&fds);
        let mut ready = vec![false; fds.len()];
        let mut last_stats = Instant::now();
        let mut last_subnets = Instant::now();
        tracing::debug!(
            broadcasts = ?self.policy.subnet_broadcasts.iter().collect::<Vec<_>>(),
            "subnet broadcasts refused as hops"
        );
        loop {
            if signals.stop_requested() {
                return Ok(());
            }
            // Off the packet path: addresses come and go (DHCP, an operator's `ip addr`).
            if last_subnets.elapsed() >= SUBNETS_EVERY {
                last_subnets = Instant::now();
                let now = local_subnet_broadcasts();
                if now != self.policy.subnet_broadcasts {
                    tracing::info!(
                        broadcasts = ?now.iter().collect::<Vec<_>>(),
                        "IPv4 subnets changed; their broadcasts are refused as hops"
                    );
                    self.policy.subnet_broadcasts = now;
                }
            }
            if signals.take_reload() {
                print!("{}", self.report());
            }
            if !self.cfg.stats_interval.is_zero() && last_stats.elapsed() >= self.cfg.stats_interval
            {
                last_stats = Instant::now();
                let c = &self.counters;
                tracing::info!(
                    rx = c.rx_packets,
                    local = c.total_local(),
                    forwarded = c.forwarded,
                    dropped = c.total_drops(),
                    tun_errors = c.tun_errors,
                    send_errors = c.send_errors,
                    diag_queries = self.kernel.stats.queries,
                    diag_errors = self.kernel.stats.errors,
                    "stats"
                );
            }
            if poll.wait(POLL_MS, &mut ready)? == 0 {
                continue;
            }
            for i in 0..self.sockets.len() {
                if ready.get(i).copied().unwrap_or(false) {
                    // Bounded: at most a few batches per socket before signals are looked at.
                    for _ in 0..8 {
                        if self.poll_socket(i)? == 0 {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Receive and handle one batch from socket `i`; returns how many datagrams it had.
    pub fn poll_socket(&mut self, i: usize) -> Result<usize, RedirectError> {
        let Some(sock) = self.sockets.get(i) else {
            return Ok(0);
        };
        let local = sock.local_addr();
        let n = sock.recv(&mut self.batch)?;
        for j in 0..n {
            let Some((d, payload)) = self.batch.get(j) else {
                break;
            };
            let c = &mut self.counters;
            c.rx_packets += 1;
            c.rx_bytes += payload.len() as u64;
            if d.truncated {
                c.count(&Decision::Drop(GueDropReason::Oversize));
                continue;
            }
            let Some(src) = d.src else {
                c.count(&Decision::Drop(GueDropReason::SourceNotAllowed));
                continue;
            };
            let outer = Outer {
                src: src.ip().to_canonical(),
                dst: d.dst.unwrap_or(local.ip()).to_canonical(),
                ttl: d.ttl.unwrap_or(64),
            };
            let decision = if self.cfg.second_chance {
                decide(payload, &outer, &self.policy, &mut self.kernel)
            } else {
                decide(payload, &outer, &self.policy, &mut AlwaysLocal)
            };
            c.count(&decision);
            match decision {
                Decision::Local { inner, .. } => {
                    let pkt = payload.get(inner).unwrap_or(&[]);
                    if let Err(e) = self.tun.write(pkt) {
                        c.tun_errors += 1;
                        tracing::debug!("TUN write of {} bytes failed: {e}", pkt.len());
                    }
                }
                Decision::Forward { to, next_hop, .. } => {
                    let rx = Received {
                        outer,
                        sport: src.port(),
                        tos: d.tos.unwrap_or(0),
                    };
                    let raw = match to {
                        IpAddr::V4(_) => self.raw4.as_ref(),
                        IpAddr::V6(_) => self.raw6.as_ref(),
                    };
                    let sent = match (
                        forward::build(&mut self.out, payload, &rx, to, next_hop),
                        raw,
                    ) {
                        (Ok(len), Some(raw)) => {
                            raw.send(&self.out[..len], to).map_err(|e| e.to_string())
                        }
                        (Ok(_), None) => Err("no raw socket of that family".to_string()),
                        (Err(e), _) => Err(e.to_string()),
                    };
                    if let Err(e) = sent {
                        c.send_errors += 1;
                        tracing::debug!(to = %to, "forwarding failed: {e}");
                    }
                }
                Decision::Drop(r) => {
                    let now = Instant::now();
                    if self
                        .last_drop_log
                        .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(5))
                    {
                        self.last_drop_log = Some(now);
                        tracing::debug!(from = %src, reason = r.name(), "dropped GUE packet");
                    }
                }
            }
        }
        Ok(n)
    }
}
