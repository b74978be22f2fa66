//! Second chance end to end, in network namespaces (issue 7, item 2): established TCP
//! connections survive fleet changes. Needs root and /dev/net/tun (otherwise it is
//! counted as skipped, and fails with `CI=true`).
//!
//! ```text
//!  clients ns C             router ns R (ip_forward, ECMP L4 hash)          directors ns D0, D1
//!  c0 10.90.0.2  ---- rc 10.90.0.1                                          `rondo run` on
//!  10.91.0.1-16 on lo       10.200.0.0/24 nexthop 10.80.1.2, 10.80.2.2 ---  af_packet:dK
//!                           rdK 10.80.K+1.1 (static neighbour = dK's MAC)   (GUE src 10.80.K+1.2,
//!                           rbr 10.70.0.1 bridge                              to R's MAC)
//!                             |-- b0..b4  backends ns B0..B4: 10.70.0.11-15, VIP 10.200.0.1
//!                                 on lo, `rondo redirect` + a kernel TCP echo server on
//!                                 VIP:80, default route via R (replies go straight to C)
//! ```
//! Clients' SYNs and data go C -> R -> (ECMP) director -> R (GUE) -> backend; replies go
//! backend -> R -> C. Each scenario keeps [`LONG`] long-lived connections echoing a small
//! chunk every [`INTERVAL`], opens a new connection every [`NEW_EVERY`] (one echo each),
//! makes its change on every director (config file rewritten, then `reload` on each console),
//! runs [`SETTLE`] past the last change, and counts broken connections: reset, corrupt echo,
//! or no echo progress for [`STALL`]. The scenarios mirror `sim/src/scenario.rs`; then
//! add_backend, drain and alt_hash_migration run again with `rondo redirect
//! --no-second-chance`, where connections must break (the harness can fail).
//!
//! The echo server sends its backend number on accept, so the harness knows where each
//! connection lives (the killed backend's connections are counted apart). In the remove
//! scenario long connections last 1.5-3.5 s each and are replaced, so the drained backend
//! empties and leaves the table.
//!
//! ```sh
//! cargo test --test e2e -- --nocapture          # one result line per scenario, then the table
//! E2E_PAUSE=120 cargo test --test e2e -- --nocapture   # inspect the namespaces first
//! ```

mod common;
#[path = "e2e_fleet/mod.rs"]
mod fleet_mode;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::bird::BirdProc;
use common::fleet::{signal, tail, DirectorProc, EchoServer, RedirectCounters, RedirectProc};
use common::netns::spawn_in_netns;
use common::topology::{Plan, Topology};
use common::veth::{privileged, skip, Netns};
use rondo::fleet::bgp::{bird_conf, BgpSettings, Desired};
use rondo_sim::Scenario;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// A second VIP (table "api", the same backends): the scenario that makes it unusable on one
/// director alone checks that only it is withdrawn there.
const VIP2: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
/// The fleet's etcd prefix in fleet mode (directors fed from etcd).
const FLEET_PREFIX: &str = "/e2e";
/// Directors in the ECMP group at the start; one more host waits for director_joins.
const DIRECTORS: usize = 2;
const HOSTS: usize = DIRECTORS + 1;
/// BGP: the router's AS and the directors' (one AS for the anycast fleet).
const ROUTER_AS: u32 = 65000;
const DIRECTOR_AS: u32 = 65001;
/// BFD towards every director: 250 ms, 3 missed = down (100 ms flapped on a loaded 2-vCPU VM).
const BFD_MS: u32 = 250;
const BFD_MULT: u32 = 3;
/// BGP timers of every session (the only detection without BFD).
const HOLD_S: u32 = 9;
const KEEPALIVE_S: u32 = 3;
/// Waiting for the router's FIB to match (BGP sessions coming up after a restart included).
const FIB_TIMEOUT: Duration = Duration::from_secs(30);
/// Backends in the table at the start; one more host waits for add_backend.
const IN_TABLE: usize = 4;
const BACKENDS: usize = IN_TABLE + 1;
/// Client source addresses (the flow hash includes the source port too).
const CLIENT_ADDRS: u8 = 16;
/// Long-lived connections per scenario, opened over [`RAMP`].
const LONG: usize = 240;
const RAMP: Duration = Duration::from_millis(1500);
/// Each long connection sends a chunk, waits for its echo, then waits this long.
const INTERVAL: Duration = Duration::from_millis(250);
const CHUNK: usize = 64;
/// No echo progress for this long: stalled (broken).
const STALL: Duration = Duration::from_secs(4);
/// A new connection every so often; it must connect, echo and close within NEW_TIMEOUT.
const NEW_EVERY: Duration = Duration::from_millis(200);
const NEW_TIMEOUT: Duration = Duration::from_secs(3);
/// The first change, and how long to run after the last one.
const CHANGE_AT: Duration = Duration::from_millis(2500);
const SETTLE: Duration = Duration::from_secs(5);
/// From a backend's death to the tables marking it unhealthy (a health checker's delay).
const HEALTH_DELAY: Duration = Duration::from_millis(300);
/// A restarted director comes back this long after its death.
const DIRECTOR_DOWN: Duration = Duration::from_millis(1500);
/// Each director's `[bgp]` lifecycle on SIGTERM, kept short so the harness stays fast:
/// GRACEFUL_SHUTDOWN this long before the withdrawal, then forward while packets still
/// arrive, at most this long.
const GRACEFUL_MS: u64 = 300;
const DRAIN_MS: u64 = 1000;
/// Stack of each connection thread.
const STACK: usize = 128 << 10;

/// Namespaces `rdo*`, addresses 10.90-91 (clients), 10.80 (director hosts), 10.70
/// (backends).
const PLAN: Plan = Plan {
    prefix: "rdo",
    directors: HOSTS,
    backends: BACKENDS,
    client_net: 90,
    client_addrs: CLIENT_ADDRS,
    director_net: 80,
    backend_net: 70,
    vips: &[VIP, VIP2],
};

fn backend_ip(b: usize) -> Ipv4Addr {
    PLAN.backend_ip(b)
}
fn director_ip(d: usize) -> Ipv4Addr {
    PLAN.director_ip(d)
}
fn router_mac(d: usize) -> String {
    PLAN.router_mac(d)
}
fn client_addr(i: usize) -> Ipv4Addr {
    PLAN.client_addr(i)
}

/// The tables every director loads.
#[derive(Debug, Clone, PartialEq)]
struct Tables {
    /// (backend, state, healthy)
    entries: Vec<(usize, &'static str, bool)>,
    hash_fields: Vec<&'static str>,
    alt_hash_fields: Option<Vec<&'static str>>,
    /// On this director every backend of table "api" is unhealthy (elsewhere it follows
    /// `entries`).
    api_unusable_on: Option<usize>,
}

impl Tables {
    fn baseline() -> Tables {
        Tables {
            entries: (0..IN_TABLE).map(|b| (b, "active", true)).collect(),
            hash_fields: vec!["src_addr", "src_port"],
            alt_hash_fields: None,
            api_unusable_on: None,
        }
    }

    fn entry(&mut self, b: usize) -> &mut (usize, &'static str, bool) {
        self.entries
            .iter_mut()
            .find(|e| e.0 == b)
            .unwrap_or_else(|| panic!("backend {b} is not in the table"))
    }

    /// Director `d`'s TOML: its port, console socket `dir/dD.sock`, `[bgp]` on its own
    /// BIRD (so `rondo run` announces the VIP itself, with its lifeline), and its tables:
    /// inline, or with `fleet` a `[fleet]` section (tables from etcd instead).
    fn config(&self, d: usize, dir: &Path, fleet: bool) -> String {
        let list = |v: &[&str]| {
            v.iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut t = format!(
            r#"[[ports]]
spec = "af_packet:d{d}"

[runtime]
workers = 1
idle = "sleep"
exception = "drop"

[console]
socket = "{}"

[metrics]
listen = "off"

[director]
outbound_gateway_mac = "{}"
outbound_src_ip = "{}"
hash_fields = [{}]
"#,
            dir.join(format!("d{d}.sock")).display(),
            router_mac(d),
            director_ip(d),
            list(&self.hash_fields)
        );
        if let Some(alt) = &self.alt_hash_fields {
            t.push_str(&format!("alt_hash_fields = [{}]\n", list(alt)));
        }
        if fleet {
            t.push_str(&format!(
                "\n[fleet]\nendpoints = [\"http://{}:2379\"]\nprefix = \"{FLEET_PREFIX}\"\nname = \"d{d}\"\ncache = \"{}\"\nlease_ttl_ms = 2000\n",
                router_side(d),
                dir.join(format!("d{d}.cache")).display()
            ));
        } else {
            t.push_str(&self.tables_toml(Some(d), false));
        }
        t.push_str(&format!(
            "\n{}graceful_ms = {GRACEFUL_MS}\ndrain_ms = {DRAIN_MS}\n",
            bgp_section(dir, d)
        ));
        t
    }

    /// The `[[tables]]` (web on [`VIP`], api on [`VIP2`], the same backends) as director `d`
    /// loads them (`None`: the fleet's desired document), with GUE health checks on every
    /// backend when `checks` (the fleet checker's targets).
    fn tables_toml(&self, d: Option<usize>, checks: bool) -> String {
        let mut t = String::new();
        for (name, vip, seed) in [
            ("web", VIP, "34567890123456783456789012345678"),
            ("api", VIP2, "45678901234567894567890123456789"),
        ] {
            t.push_str(&format!(
                r#"
[[tables]]
name = "{name}"
hash_key = "12345678901234561234567890123456"
seed = "{seed}"
binds = [{{ ip = "{vip}", proto = "tcp", port = 80 }}]
"#
            ));
            let down = name == "api" && d.is_some() && self.api_unusable_on == d;
            for (b, state, healthy) in &self.entries {
                t.push_str(&format!(
                    "[[tables.backends]]\nip = \"{}\"\nstate = \"{state}\"\nhealthy = {}\n",
                    backend_ip(*b),
                    *healthy && !down
                ));
                if checks {
                    t.push_str("healthchecks = { gue = 19523 }\n");
                }
            }
        }
        t
    }
}

/// How a connection ended (or `Open`: still echoing at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Outcome {
    Open = 0,
    Completed,
    Reset,
    Stalled,
    Corrupt,
    ConnectFailed,
}

impl Outcome {
    fn from_u8(v: u8) -> Outcome {
        [
            Outcome::Open,
            Outcome::Completed,
            Outcome::Reset,
            Outcome::Stalled,
            Outcome::Corrupt,
            Outcome::ConnectFailed,
        ][usize::from(v)]
    }
}

const UNKNOWN: u8 = 255;

struct Conn {
    long: bool,
    /// To [`VIP2`] (else [`VIP`]).
    vip2: bool,
    /// The backend number the server sent on accept.
    backend: AtomicU8,
    outcome: AtomicU8,
    last_progress: Mutex<Instant>,
    /// The longest time between two echoes (or the greeting and the first echo).
    max_gap: Mutex<Duration>,
    on_killed: AtomicBool,
}

impl Conn {
    fn new(long: bool, vip2: bool) -> Conn {
        Conn {
            long,
            vip2,
            backend: AtomicU8::new(UNKNOWN),
            outcome: AtomicU8::new(Outcome::Open as u8),
            last_progress: Mutex::new(Instant::now()),
            max_gap: Mutex::new(Duration::ZERO),
            on_killed: AtomicBool::new(false),
        }
    }
    fn outcome(&self) -> Outcome {
        Outcome::from_u8(self.outcome.load(Ordering::Relaxed))
    }
    fn end(&self, o: Outcome) {
        self.outcome.store(o as u8, Ordering::Relaxed);
    }
    fn progress(&self) {
        let mut last = self.last_progress.lock().unwrap();
        let gap = last.elapsed();
        let mut max = self.max_gap.lock().unwrap();
        *max = (*max).max(gap);
        *last = Instant::now();
    }
    fn idle_for(&self) -> Duration {
        self.last_progress.lock().unwrap().elapsed()
    }
}

/// The client side of one scenario.
#[derive(Default)]
struct Traffic {
    conns: Mutex<Vec<Arc<Conn>>>,
    /// Stop everything (end of the scenario).
    stop: AtomicBool,
    /// No echo progress for this long: stalled ([`STALL`] unless the scenario says).
    stall: Mutex<Option<Duration>>,
    /// Odd-numbered connections go to [`VIP2`] (only where the scenario is about it).
    split: AtomicBool,
}

impl Traffic {
    /// Connection `i`'s VIP.
    fn vip_of(&self, i: usize) -> Ipv4Addr {
        if self.split.load(Ordering::Relaxed) && i % 2 == 1 {
            VIP2
        } else {
            VIP
        }
    }

    fn add(&self, long: bool, vip: Ipv4Addr) -> Arc<Conn> {
        let c = Arc::new(Conn::new(long, vip == VIP2));
        self.conns.lock().unwrap().push(c.clone());
        c
    }

    fn stall(&self) -> Duration {
        self.stall.lock().unwrap().unwrap_or(STALL)
    }
}

fn connect(src: Ipv4Addr, vip: Ipv4Addr, timeout: Duration) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.bind(&SocketAddr::from((src, 0)).into())?;
    s.connect_timeout(&SocketAddr::from((vip, 80)).into(), timeout)?;
    let s: TcpStream = s.into();
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(s)
}

/// Fill `buf` from `s`; `give_up` is asked on every read timeout and returns how to end.
fn read_full(
    s: &mut TcpStream,
    buf: &mut [u8],
    give_up: impl Fn() -> Option<Outcome>,
) -> Result<(), Outcome> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(Outcome::Reset),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if let Some(o) = give_up() {
                    return Err(o);
                }
            }
            Err(_) => return Err(Outcome::Reset),
        }
    }
    Ok(())
}

fn chunk(seed: u64, seq: u64) -> [u8; CHUNK] {
    let mut b = [0u8; CHUNK];
    let mut x = seed ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for v in &mut b {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *v = x as u8;
    }
    b
}

/// One long-lived connection: echo a chunk every INTERVAL until the scenario stops (or
/// `life` ends it cleanly).
fn run_long(t: &Traffic, c: &Conn, src: Ipv4Addr, seed: u64, life: Option<Duration>) {
    let born = Instant::now();
    let vip = if c.vip2 { VIP2 } else { VIP };
    let mut s = match connect(src, vip, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(_) => return c.end(Outcome::ConnectFailed),
    };
    let give_up = || {
        if c.idle_for() > t.stall() {
            Some(Outcome::Stalled)
        } else if t.stop.load(Ordering::Relaxed) {
            Some(Outcome::Open)
        } else {
            None
        }
    };
    let mut id = [0u8];
    if let Err(o) = read_full(&mut s, &mut id, give_up) {
        return c.end(o);
    }
    c.backend.store(id[0], Ordering::Relaxed);
    c.progress();
    for seq in 0.. {
        if t.stop.load(Ordering::Relaxed) {
            return;
        }
        if life.is_some_and(|l| born.elapsed() >= l) {
            let _ = s.shutdown(std::net::Shutdown::Both);
            return c.end(Outcome::Completed);
        }
        let out = chunk(seed, seq);
        if s.write_all(&out).is_err() {
            return c.end(Outcome::Reset);
        }
        let mut back = [0u8; CHUNK];
        if let Err(o) = read_full(&mut s, &mut back, give_up) {
            return c.end(o);
        }
        if back != out {
            return c.end(Outcome::Corrupt);
        }
        c.progress();
        let until = Instant::now() + INTERVAL;
        while Instant::now() < until && !t.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A slot of long-lived connections: one connection, or with `lifetime` (ms range) one
/// after the other until the scenario stops.
fn long_slot(t: Arc<Traffic>, i: usize, lifetime: Option<(u64, u64)>) {
    let mut seed = 0x5eed_0000 + i as u64 * 7919;
    loop {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let life = lifetime.map(|(lo, hi)| Duration::from_millis(lo + (seed >> 33) % (hi - lo)));
        let c = t.add(true, t.vip_of(i));
        run_long(&t, &c, client_addr(i), seed, life);
        if life.is_none() || t.stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// One new connection: connect, greeting, one echo, close, all within NEW_TIMEOUT.
fn new_conn(t: Arc<Traffic>, i: usize) {
    let vip = t.vip_of(i);
    let c = t.add(false, vip);
    let deadline = Instant::now() + NEW_TIMEOUT;
    let mut s = match connect(client_addr(i * 7 + 3), vip, NEW_TIMEOUT) {
        Ok(s) => s,
        Err(_) => return c.end(Outcome::ConnectFailed),
    };
    let give_up = || (Instant::now() > deadline).then_some(Outcome::Stalled);
    let mut id = [0u8];
    if let Err(o) = read_full(&mut s, &mut id, give_up) {
        return c.end(o);
    }
    c.backend.store(id[0], Ordering::Relaxed);
    let out = chunk(i as u64, 1);
    if s.write_all(&out).is_err() {
        return c.end(Outcome::Reset);
    }
    let mut back = [0u8; CHUNK];
    if let Err(o) = read_full(&mut s, &mut back, give_up) {
        return c.end(o);
    }
    c.end(if back == out {
        Outcome::Completed
    } else {
        Outcome::Corrupt
    });
}

#[derive(Debug, Clone, Copy)]
enum Edit {
    Add(usize),
    State(usize, &'static str),
    Healthy(usize, bool),
    Remove(usize),
    Nothing,
    Migrate,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Tables(Edit),
    /// Every backend of table "api" unhealthy on this director only (`None`: restored).
    ApiUnusableOn(Option<usize>),
    /// Fleet mode: `rondo fleet set backend web B state=draining` then `rondo fleet wait`,
    /// in a thread; checked every loop until it is done.
    FleetDrain(usize),
    AwaitFleetCmd,
    /// Fleet mode: SIGKILL the checker leader; then checked until another one writes.
    KillCheckerLeader,
    AwaitNewLeader {
        since: Instant,
    },
    KillBackend(usize),
    /// SIGKILL its `rondo run` (its BIRD stays up): rondo's lifeline interface dies with
    /// it, and BIRD withdraws the routes tied to it.
    KillDirector(usize),
    /// Start its `rondo run`; it announces the VIP itself once ready.
    RestartDirector(usize),
    /// Checked until no open connection lives on the backend, then it leaves the table.
    RemoveWhenDrained(usize),
    /// A planned stop: SIGTERM only. Rondo announces GRACEFUL_SHUTDOWN, withdraws, drains
    /// and exits by itself; then it is started again ([`DIRECTOR_DOWN`] after its exit).
    StopDirector(usize),
    /// Checked every loop until the director stopped by SIGTERM has exited.
    AwaitExit {
        d: usize,
        since: Instant,
    },
    /// The director host hangs: its `rondo run` and its BIRD get SIGSTOP, so nothing it
    /// sends reaches the router any more (no FIN, no carrier change: only BFD or the hold
    /// timer can tell).
    FreezeHost(usize),
    /// Its link goes down (`ip link set dK down` in its namespace: the router sees the carrier go).
    LinkDown(usize),
    /// Checked every loop (10 ms) until the router's FIB holds exactly these directors as
    /// nexthops of the VIP; `since` is the change it waits for.
    AwaitFib {
        vip: Ipv4Addr,
        want: [bool; HOSTS],
        since: Instant,
        /// A director leaves the FIB (its time goes into the report).
        withdrawal: bool,
    },
}

/// A scenario: one of the simulation's, or one about directors and routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Sim(Scenario),
    /// SIGTERM (rondo's graceful stop: GRACEFUL_SHUTDOWN, withdrawal, drain, exit), then
    /// start again (it announces once ready).
    PlannedRestart,
    /// The director host hangs; BFD withdraws it.
    HostCrashBfd,
    /// The same without BFD on that session: the hold timer withdraws it.
    HostCrashHold,
    /// A director's link goes down.
    LinkLoss,
    /// A third director starts and is announced.
    DirectorJoins,
    /// Every backend of one VIP's table unusable on one director only: that VIP alone is
    /// withdrawn there (the other VIP stays announced by both), then it comes back.
    VipUnusableOnOne,
    /// Fleet mode (directors fed from etcd, the fleet checker): a backend drained with
    /// `rondo fleet set`, then the checker leader SIGKILLed; the standby takes over.
    FleetDrainCheckerKill,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Sim(s) => s.name(),
            Case::PlannedRestart => "planned_restart",
            Case::HostCrashBfd => "host_crash_bfd",
            Case::HostCrashHold => "host_crash_hold",
            Case::LinkLoss => "link_loss",
            Case::DirectorJoins => "director_joins",
            Case::VipUnusableOnOne => "vip_unusable_on_one",
            Case::FleetDrainCheckerKill => "fleet_drain_checker_kill",
        }
    }
}

#[derive(Debug, Default)]
struct Report {
    scenario: &'static str,
    second_chance: bool,
    long_opened: usize,
    long_alive: usize,
    long_completed: usize,
    long_reset: usize,
    long_stalled: usize,
    long_corrupt: usize,
    long_connect_failed: usize,
    long_on_killed: usize,
    new_on_killed: usize,
    killed_seen_broken: usize,
    /// Of those, ended by a reset (the other way is a stall).
    killed_reset: usize,
    new_judged: usize,
    new_ok: usize,
    /// Long connections still open per backend at the end, new ones served per backend.
    flows_at_end: Vec<usize>,
    new_per_backend: Vec<usize>,
    /// `rondo redirect` totals over the scenario, all backends.
    redirect: RedirectCounters,
    changes: Vec<(u128, String)>,
    /// From the change (SIGKILL, SIGTERM, hang, link down) to the router's FIB losing
    /// that director as a nexthop, polled every 10 ms.
    withdraw_ms: Option<u128>,
    /// A director stopped by SIGTERM exited with status 0.
    term_exit_ok: Option<bool>,
    /// vip_unusable_on_one: the directors the router's FIB held for [`VIP`] when [`VIP2`]
    /// had been withdrawn, and at the end; long connections to [`VIP2`] alive at the end.
    other_vip_fib: Vec<[bool; HOSTS]>,
    vip2_alive: usize,
    /// Fleet mode: `rondo fleet set` + `wait` succeeded (and took this long); the checker
    /// leader's SIGKILL to the first write by another leader; `rondo fleet status` OK at
    /// the end (every director applied the revision, fingerprints equal); every backend up
    /// in the final health document.
    fleet_set: Option<(bool, u128)>,
    failover_ms: Option<u128>,
    fleet_status_ok: Option<bool>,
    health_all_up: Option<bool>,
    /// The longest time any long connection (not on a killed backend) went without an echo
    /// (the normal gap is INTERVAL plus a round trip).
    max_gap_ms: u128,
    /// TCP segments the clients retransmitted during the scenario (RetransSegs of C).
    retrans: u64,
    /// Of those, the backends reported as duplicates (DSACK): the original arrived, e.g. a
    /// tail loss probe sent because an echo was late.
    spurious: u64,
    secs: f64,
}

impl Report {
    /// Retransmissions of segments that were lost (not proven duplicates by DSACK).
    fn lost(&self) -> u64 {
        self.retrans.saturating_sub(self.spurious)
    }

    fn broken(&self) -> usize {
        self.long_reset + self.long_stalled + self.long_corrupt + self.long_connect_failed
    }

    fn line(&self) -> String {
        let mut s = format!(
            "{:<18} second_chance={:<5} long: opened={} alive={} completed={} broken={} (reset={} stalled={} corrupt={} connect_failed={}) | new: judged={} ok={} | on_killed_backend: long={} new={} seen_broken={} (reset={}) | flows_at_end={:?} new_per_backend={:?} | redirect: rx={} local={} forwarded={} dropped={} | withdrawn_after_ms={} longest_gap_ms={} retrans={} (spurious={}) | vip2_alive={} | {:.1} s",
            self.scenario,
            self.second_chance,
            self.long_opened,
            self.long_alive,
            self.long_completed,
            self.broken(),
            self.long_reset,
            self.long_stalled,
            self.long_corrupt,
            self.long_connect_failed,
            self.new_judged,
            self.new_ok,
            self.long_on_killed,
            self.new_on_killed,
            self.killed_seen_broken,
            self.killed_reset,
            self.flows_at_end,
            self.new_per_backend,
            self.redirect.rx,
            self.redirect.local,
            self.redirect.forwarded,
            self.redirect.dropped,
            self.withdraw_ms.map_or("-".into(), |t| t.to_string()),
            self.max_gap_ms,
            self.retrans,
            self.spurious,
            self.vip2_alive,
            self.secs,
        );
        if let Some((ok, ms)) = self.fleet_set {
            s.push_str(&format!(
                " | fleet: set+wait ok={ok} {ms} ms, checker failover_ms={}, status_ok={:?}, all_up={:?}",
                self.failover_ms.map_or("-".into(), |t| t.to_string()),
                self.fleet_status_ok,
                self.health_all_up
            ));
        }
        for (t, c) in &self.changes {
            s.push_str(&format!("\n    t={t}ms {c}"));
        }
        s
    }

    fn row(&self) -> String {
        format!(
            "| {} | {} | {}/{}{} | {} ({}/{}) | {} | {}/{} | {} | {} | {} | {} ({}) |",
            self.scenario,
            if self.second_chance { "on" } else { "off" },
            self.long_opened,
            self.long_alive,
            if self.long_completed > 0 {
                format!(" (+{} completed)", self.long_completed)
            } else {
                String::new()
            },
            self.broken(),
            self.long_reset,
            self.long_stalled,
            self.long_on_killed + self.new_on_killed,
            self.new_ok,
            self.new_judged,
            self.redirect.forwarded,
            self.withdraw_ms.map_or("-".into(), |t| t.to_string()),
            self.max_gap_ms,
            self.retrans,
            self.spurious,
        )
    }
}

/// Retransmitted segments a planned restart may show beyond the undisturbed run (see its
/// check). 2 was exceeded once in CI (3 retransmits, 0 spurious, 0 broken, every other
/// undisturbed scenario at 0); a restart without drain loses 7 to 55.
const PLANNED_RESTART_SLACK: u64 = 4;

const HEADER: &str = "| scenario | second chance | long opened/alive | broken (reset/stalled) | on killed backend | new ok/judged | redirect forwards | to FIB withdrawn (ms) | longest echo gap (ms) | client TCP retransmits (spurious) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |";

/// The whole fleet. Fields drop in order: processes before namespaces.
struct Fleet {
    /// `rondo run` per director host, each announcing the VIP through its own BIRD.
    directors: Vec<DirectorProc>,
    /// The router's BIRD and each director host's.
    router_bird: BirdProc,
    birds: Vec<BirdProc>,
    redirects: Vec<Option<RedirectProc>>,
    /// Kept for their Drop (stop the echo servers, delete the namespaces).
    _servers: Vec<EchoServer>,
    tables: Tables,
    second_chance: bool,
    /// Directors meant to be in the router's ECMP group (running and announced).
    active: [bool; HOSTS],
    /// BFD on each director's session.
    bfd: [bool; HOSTS],
    /// Hosts hung by FreezeHost (SIGSTOP), to resume.
    frozen: [bool; HOSTS],
    /// Fleet mode: etcd and the fleet checkers (the directors then follow etcd).
    fleet_mode: Option<fleet_mode::FleetMode>,
    dir: tempfile::TempDir,
    c: Netns,
    r: Netns,
    d: Vec<Netns>,
    b: Vec<Netns>,
}

fn must(r: Result<(), String>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

fn bgp_protocol(
    name: &str,
    local: Ipv4Addr,
    las: u32,
    peer: Ipv4Addr,
    pas: u32,
    bfd: bool,
    channel: &str,
) -> String {
    format!(
        "protocol bgp {name} {{\n  local {local} as {las};\n  neighbor {peer} as {pas};\n  \
         bfd {};\n  hold time {HOLD_S};\n  keepalive time {KEEPALIVE_S};\n  \
         connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 2;\n  \
         ipv4 {{ {channel} }};\n}}\n",
        if bfd { "on" } else { "off" }
    )
}

fn bfd_protocol(ifaces: &str) -> String {
    format!(
        "protocol bfd {{ interface \"{ifaces}\" {{ min rx interval {BFD_MS} ms; \
         min tx interval {BFD_MS} ms; multiplier {BFD_MULT}; }}; }}\n"
    )
}

fn router_side(d: usize) -> Ipv4Addr {
    PLAN.router_side(d)
}

/// The router's bird.conf: a BGP session per director host (BFD on where `bfd` says),
/// everything learned imported, and ECMP (`merge paths on`) into the kernel FIB.
fn router_conf(bfd: &[bool; HOSTS]) -> String {
    let mut t = format!(
        "router id 10.80.0.1;\nlog stderr all;\nprotocol device {{ }}\n{}\
         protocol kernel {{ merge paths on; ipv4 {{ import none; export all; }}; }}\n",
        bfd_protocol("rd*")
    );
    for (d, on) in bfd.iter().enumerate() {
        t.push_str(&bgp_protocol(
            &format!("d{d}"),
            router_side(d),
            ROUTER_AS,
            director_ip(d),
            DIRECTOR_AS,
            *on,
            "import all; export none;",
        ));
    }
    t
}

/// Director `d`'s bird.conf, as its operator writes it: the rondo include and the export
/// filter it defines are the only lines about Rondo.
fn director_bird_conf(d: usize, bfd: bool, include: &Path) -> String {
    format!(
        "router id {};\nlog stderr all;\nprotocol device {{ }}\n{}include \"{}\";\n{}",
        director_ip(d),
        bfd_protocol(&format!("d{d}")),
        include.display(),
        bgp_protocol(
            "uplink",
            director_ip(d),
            DIRECTOR_AS,
            router_side(d),
            ROUTER_AS,
            bfd,
            "import none; export filter rondo_export;",
        )
    )
}

/// Director `d`'s `[bgp]` (without the lifecycle keys): its BIRD's control socket, the
/// include, the session to report. The lifeline keeps its default name: each director is
/// in a namespace of its own, so the names cannot clash.
fn bgp_section(dir: &Path, d: usize) -> String {
    format!(
        "[bgp]\nsocket = \"{}\"\ninclude = \"{}\"\nsessions = [\"uplink\"]\n",
        dir.join(format!("d{d}.bird.ctl")).display(),
        dir.join(format!("d{d}.rondo.conf")).display(),
    )
}

/// The same `[bgp]` as the library reads it (the paths and the include's names).
fn bgp_settings(dir: &Path, d: usize) -> BgpSettings {
    let doc = bgp_section(dir, d);
    BgpSettings::from_toml_str(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

/// What a director stopped by SIGTERM logged about its drain (the last such line).
fn drained_line(log: &str) -> String {
    log.lines()
        .rev()
        .find_map(|l| l.find("BGP: withdrawn;").map(|i| l[i..].to_string()))
        .unwrap_or_else(|| "no drain line".into())
}

/// Counter `name` of the `prefix` lines (`Tcp:`, `TcpExt:`) of namespace `ns`'s `file`
/// (/proc/net/snmp, /proc/net/netstat).
fn proc_counter(ns: &str, file: &str, prefix: &str, name: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "cat", file])
        .output()
        .unwrap_or_else(|e| panic!("read {file} in {ns}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let [names, values] = rows.as_slice() else {
        panic!("no {prefix} lines in {ns}'s {file}: {text}");
    };
    let i = names
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("no {name} in {ns}'s {file}"));
    values[i]
        .parse()
        .unwrap_or_else(|e| panic!("{name} in {file}: {e}"))
}

/// The clients' TCP retransmissions so far: (segments retransmitted (RetransSegs, tail
/// loss probes included), of them reported by the receiver as duplicates
/// (TCPDSACKRecvSegs): spurious, the original was not lost).
fn tcp_retrans(ns: &str) -> (u64, u64) {
    (
        proc_counter(ns, "/proc/net/snmp", "Tcp:", "RetransSegs"),
        proc_counter(ns, "/proc/net/netstat", "TcpExt:", "TCPDSACKRecvSegs"),
    )
}

impl Fleet {
    /// The fleet; `Err` only when no namespace can be made at all (then the test skips).
    /// Any later failure is a test failure.
    fn build() -> Result<Fleet, String> {
        let c = PLAN.netns('C')?;
        Fleet::build_in(c).map_err(|e| panic!("building the fleet: {e}"))
    }

    fn build_in(c: Netns) -> Result<Fleet, String> {
        let Topology { c, r, d, b } = Topology::build_in(&PLAN, c)?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = |f: String| dir.path().join(f);
        // BIRD: the router's, then one per director host with the rondo include seeded
        // with the empty set (it defines the export filter bird.conf names).
        let bfd = [true; HOSTS];
        std::fs::write(path("r.conf".into()), router_conf(&bfd)).map_err(|e| e.to_string())?;
        let router_bird = BirdProc::start(
            "router bird",
            &r.name,
            path("r.ctl".into()),
            path("r.conf".into()),
            path("r.bird.log".into()),
        );
        let mut birds = Vec::new();
        for (i, ns) in d.iter().enumerate() {
            let settings = bgp_settings(dir.path(), i);
            std::fs::write(
                &settings.include,
                bird_conf::render(&Desired::new(), &settings.names),
            )
            .map_err(|e| e.to_string())?;
            std::fs::write(
                path(format!("d{i}.bird.conf")),
                director_bird_conf(i, true, &settings.include),
            )
            .map_err(|e| e.to_string())?;
            birds.push(BirdProc::start(
                &format!("director {i} bird"),
                &ns.name,
                settings.socket.clone(),
                path(format!("d{i}.bird.conf")),
                path(format!("d{i}.bird.log")),
            ));
        }
        let tables = Tables::baseline();
        let mut directors = Vec::new();
        for (i, ns) in d.iter().enumerate() {
            let socket = path(format!("d{i}.sock"));
            let config = path(format!("d{i}.toml"));
            std::fs::write(&config, tables.config(i, dir.path(), false))
                .map_err(|e| e.to_string())?;
            directors.push(DirectorProc::new(
                &format!("director {i}"),
                &ns.name,
                config,
                socket,
                path(format!("d{i}.log")),
            ));
        }
        for i in 0..BACKENDS {
            std::fs::write(
                path(format!("b{i}.toml")),
                format!(
                    "[redirect]\nlisten = [\"0.0.0.0:19523\"]\naddresses = [\"{}\"]\n\
                     directors = [\"10.80.0.0/16\"]\nbackends = [\"10.70.0.0/24\"]\n\
                     tun = \"rdogue0\"\nstats_interval_secs = 0\n",
                    backend_ip(i)
                ),
            )
            .map_err(|e| e.to_string())?;
        }
        let servers = b
            .iter()
            .enumerate()
            .flat_map(|(i, ns)| {
                [VIP, VIP2]
                    .map(|vip| EchoServer::start(&ns.name, SocketAddr::from((vip, 80)), i as u8))
            })
            .collect();
        let mut f = Fleet {
            directors,
            router_bird,
            birds,
            redirects: (0..BACKENDS).map(|_| None).collect(),
            _servers: servers,
            tables,
            second_chance: true,
            active: [false; HOSTS],
            bfd,
            frozen: [false; HOSTS],
            fleet_mode: None,
            dir,
            c,
            r,
            d,
            b,
        };
        for i in 0..BACKENDS {
            f.start_redirect(i);
        }
        for i in 0..DIRECTORS {
            f.directors[i].start();
            f.active[i] = true;
        }
        f.wait_fib(f.active);
        f.wait_fib_of(VIP2, f.active);
        Ok(f)
    }

    fn start_redirect(&mut self, i: usize) {
        let args: &[&str] = if self.second_chance {
            &[]
        } else {
            &["--no-second-chance"]
        };
        self.redirects[i] = None;
        self.redirects[i] = Some(RedirectProc::start(
            &format!("backend {i}"),
            &self.b[i].name,
            &self.dir.path().join(format!("b{i}.toml")),
            args,
        ));
    }

    /// The directors the router's kernel FIB holds as nexthops of the VIP now.
    fn fib(&self) -> [bool; HOSTS] {
        self.fib_of(VIP)
    }

    /// The same for `vip`.
    fn fib_of(&self, vip: Ipv4Addr) -> [bool; HOSTS] {
        let text = self.fib_text_of(vip);
        std::array::from_fn(|d| {
            text.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w[0] == "via" && w[1] == director_ip(d).to_string())
        })
    }

    fn fib_text_of(&self, vip: Ipv4Addr) -> String {
        let out = std::process::Command::new("ip")
            .args([
                "-n",
                &self.r.name,
                "-4",
                "route",
                "show",
                &format!("{vip}/32"),
            ])
            .output()
            .expect("ip route show");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait (up to FIB_TIMEOUT) for the router's FIB to hold exactly `want`.
    fn wait_fib(&self, want: [bool; HOSTS]) {
        self.wait_fib_of(VIP, want)
    }

    fn wait_fib_of(&self, vip: Ipv4Addr, want: [bool; HOSTS]) {
        let ok = common::poll(FIB_TIMEOUT, Duration::from_millis(10), || {
            self.fib_of(vip) == want
        });
        assert!(
            ok,
            "the router's FIB for {vip} never held {want:?}: {}\n{}",
            self.fib_text_of(vip),
            self.diagnostics()
        );
    }

    /// Rewrite the router's and director `d`'s bird.conf with BFD on or off for their
    /// session, and load both.
    fn set_bfd(&mut self, d: usize, on: bool) {
        self.bfd[d] = on;
        std::fs::write(&self.router_bird.conf, router_conf(&self.bfd)).unwrap();
        let include = bgp_settings(self.dir.path(), d).include;
        std::fs::write(&self.birds[d].conf, director_bird_conf(d, on, &include)).unwrap();
        self.router_bird.configure();
        self.birds[d].configure();
    }

    /// Write every director's config and reload the running ones through their consoles.
    fn push_tables(&mut self) {
        if self.fleet_mode.is_some() {
            return self.push_desired(true);
        }
        for (i, d) in self.directors.iter_mut().enumerate() {
            let tmp = d.config.with_extension("tmp");
            std::fs::write(&tmp, self.tables.config(i, self.dir.path(), false)).unwrap();
            std::fs::rename(&tmp, &d.config).unwrap();
            if d.running() {
                d.ok("reload");
            }
        }
    }

    fn counters(&self) -> Vec<Option<RedirectCounters>> {
        self.redirects
            .iter()
            .map(|r| r.as_ref().map(RedirectProc::counters))
            .collect()
    }

    /// Back to the starting state between scenarios (no traffic then).
    fn restore(&mut self, second_chance: bool) {
        for d in 0..HOSTS {
            if self.frozen[d] {
                self.frozen[d] = false;
                signal(self.birds[d].pid(), "CONT");
                if let Some(pid) = self.directors[d].pid() {
                    signal(pid, "CONT");
                }
            }
            if !self.bfd[d] {
                self.set_bfd(d, true);
            }
            must(self.d[d].ip(&["link", "set", &format!("d{d}"), "up"]));
        }
        for i in 0..BACKENDS {
            if self.redirects[i].is_none() || self.second_chance != second_chance {
                must(self.b[i].ip(&["link", "set", &format!("b{i}"), "up"]));
                must(self.b[i].ip(&["route", "replace", "default", "via", "10.70.0.1"]));
            }
        }
        if self.second_chance != second_chance {
            self.second_chance = second_chance;
            for i in 0..BACKENDS {
                self.start_redirect(i);
            }
        }
        for i in 0..BACKENDS {
            if self.redirects[i].is_none() {
                self.start_redirect(i);
            }
        }
        for i in 0..HOSTS {
            // A director that should not be in the group is killed (its lifeline takes its
            // routes away); a missing one is started and announces itself once ready.
            let want = i < DIRECTORS;
            if !want {
                self.directors[i].kill();
            } else if !self.directors[i].running() {
                self.directors[i].start();
            }
            self.active[i] = want;
        }
        self.wait_fib(self.active);
        if self.tables != Tables::baseline() {
            self.tables = Tables::baseline();
            self.push_tables();
        }
        self.wait_fib_of(VIP2, self.active);
        // Let the last connections' FINs go through.
        std::thread::sleep(Duration::from_millis(300));
    }

    /// An AwaitFib for the FIB to match `self.active`, from now.
    fn await_fib(&self, withdrawal: bool) -> Event {
        Event::AwaitFib {
            vip: VIP,
            want: self.active,
            since: Instant::now(),
            withdrawal,
        }
    }

    /// Logs for a failure message.
    fn diagnostics(&self) -> String {
        let mut s = String::new();
        for d in &self.directors {
            s.push_str(&format!(
                "--- {} log (tail):\n{}\n",
                d.name,
                tail(&format!("{}{}", d.earlier, d.log_text()), 30)
            ));
        }
        for r in self.redirects.iter().flatten() {
            s.push_str(&format!(
                "--- {} log (tail):\n{}\n",
                r.name,
                tail(&r.log(), 30)
            ));
        }
        for b in std::iter::once(&self.router_bird).chain(&self.birds) {
            s.push_str(&format!(
                "--- {} log (tail):\n{}\n",
                b.name,
                tail(&b.log_text(), 20)
            ));
        }
        for vip in [VIP, VIP2] {
            s.push_str(&format!(
                "--- the router's FIB for {vip}:\n{}",
                self.fib_text_of(vip)
            ));
        }
        s.push_str(&self.fleet_diagnostics());
        s
    }

    fn run(&mut self, case: Case) -> Report {
        let t0 = Instant::now();
        let mut settle = SETTLE;
        let traffic = Arc::new(Traffic::default());
        let mut events: Vec<(Duration, Event)> = match case {
            Case::PlannedRestart => vec![(CHANGE_AT, Event::StopDirector(0))],
            Case::HostCrashBfd => vec![(CHANGE_AT, Event::FreezeHost(0))],
            Case::HostCrashHold => {
                // Only the hold timer can tell: TCP's retransmission backoff reaches 12.6 s
                // and 25.4 s after the hang, so wait for it and do not call it a stall.
                self.set_bfd(0, false);
                std::thread::sleep(Duration::from_millis(500));
                self.wait_fib(self.active);
                *traffic.stall.lock().unwrap() = Some(Duration::from_secs(40));
                settle = Duration::from_secs(20);
                vec![(CHANGE_AT, Event::FreezeHost(0))]
            }
            Case::LinkLoss => vec![(CHANGE_AT, Event::LinkDown(0))],
            Case::DirectorJoins => vec![(CHANGE_AT, Event::RestartDirector(DIRECTORS))],
            Case::FleetDrainCheckerKill => vec![
                (CHANGE_AT, Event::FleetDrain(0)),
                (CHANGE_AT + Duration::from_secs(3), Event::KillCheckerLeader),
            ],
            Case::VipUnusableOnOne => {
                traffic.split.store(true, Ordering::Relaxed);
                vec![
                    (CHANGE_AT, Event::ApiUnusableOn(Some(0))),
                    (
                        CHANGE_AT + Duration::from_secs(3),
                        Event::ApiUnusableOn(None),
                    ),
                ]
            }
            Case::Sim(s) => match s {
                Scenario::AddBackend => {
                    // New connections arrive for SETTLE - NEW_TIMEOUT after the activation
                    // and each lands on the new backend with p = 1/5: 10 of them miss it
                    // 11% of the time (CI saw it). 5 s more make it 35: 0.04%.
                    settle = SETTLE + Duration::from_secs(5);
                    vec![
                        (CHANGE_AT, Event::Tables(Edit::Add(IN_TABLE))),
                        (
                            CHANGE_AT + Duration::from_secs(2),
                            Event::Tables(Edit::State(IN_TABLE, "active")),
                        ),
                    ]
                }
                Scenario::Drain => vec![(CHANGE_AT, Event::Tables(Edit::State(0, "draining")))],
                Scenario::KillBackend => vec![
                    (CHANGE_AT, Event::KillBackend(1)),
                    (
                        CHANGE_AT + HEALTH_DELAY,
                        Event::Tables(Edit::Healthy(1, false)),
                    ),
                ],
                Scenario::DirectorRestart => vec![
                    (CHANGE_AT, Event::KillDirector(0)),
                    (CHANGE_AT + DIRECTOR_DOWN, Event::RestartDirector(0)),
                ],
                Scenario::Reload => vec![(CHANGE_AT, Event::Tables(Edit::Nothing))],
                Scenario::Remove => vec![
                    (CHANGE_AT, Event::Tables(Edit::State(0, "draining"))),
                    (
                        CHANGE_AT + Duration::from_millis(200),
                        Event::RemoveWhenDrained(0),
                    ),
                ],
                Scenario::AltHashMigration => vec![(CHANGE_AT, Event::Tables(Edit::Migrate))],
            },
        };
        let lifetime = (case == Case::Sim(Scenario::Remove)).then_some((1500, 3500));
        let (retrans_before, spurious_before) = tcp_retrans(&self.c.name);
        let mut withdraw_ms = None;
        let mut term_exit_ok = None;
        let mut other_vip_fib = Vec::new();
        let mut fleet_job: Option<(Instant, JoinHandle<(bool, String)>)> = None;
        let mut fleet_set = None;
        let mut old_leader: Option<String> = None;
        let mut failover_ms = None;
        let before = self.counters();
        let mut redirect = RedirectCounters::default();
        let mut killed_delta = |now: &RedirectCounters, was: &RedirectCounters| {
            redirect.rx += now.rx - was.rx;
            redirect.local += now.local - was.local;
            redirect.forwarded += now.forwarded - was.forwarded;
            redirect.dropped += now.dropped - was.dropped;
        };
        let mut before = before;
        let mut changes: Vec<(u128, String)> = Vec::new();
        let mut last_change = CHANGE_AT;
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let mut long_started = 0;
        let mut new_started = 0;
        let hard_end = CHANGE_AT + settle + Duration::from_secs(25);
        let epoch = Instant::now();
        let mut next_new = epoch + NEW_EVERY;
        loop {
            let now = epoch.elapsed();
            let due = (LONG as u128 * now.as_millis() / RAMP.as_millis()).min(LONG as u128);
            while (long_started as u128) < due {
                let (t, i) = (traffic.clone(), long_started);
                threads.push(spawn_in_netns(&self.c.name, STACK, move || {
                    long_slot(t, i, lifetime)
                }));
                long_started += 1;
            }
            let (ready, later): (Vec<_>, Vec<_>) = events.drain(..).partition(|(at, _)| *at <= now);
            events = later;
            for (_, e) in ready {
                let note = match e {
                    Event::Tables(edit) => {
                        let t = &mut self.tables;
                        match edit {
                            Edit::Add(b) => t.entries.push((b, "filling", true)),
                            Edit::State(b, st) => t.entry(b).1 = st,
                            Edit::Healthy(b, h) => t.entry(b).2 = h,
                            Edit::Remove(b) => t.entries.retain(|e| e.0 != b),
                            Edit::Nothing => {}
                            Edit::Migrate => {
                                t.alt_hash_fields = Some(t.hash_fields.clone());
                                t.hash_fields = vec!["src_addr", "src_port", "dst_port"];
                            }
                        }
                        self.push_tables();
                        Some(format!("tables: {edit:?}, reloaded on every director"))
                    }
                    Event::FleetDrain(b) => {
                        let ns = self.r.name.clone();
                        let ip = backend_ip(b).to_string();
                        fleet_job = Some((
                            Instant::now(),
                            std::thread::spawn(move || {
                                let set = fleet_mode::fleet_cmd(
                                    &ns,
                                    &["set", "backend", "web", &ip, "state=draining"],
                                );
                                if !set.0 {
                                    return set;
                                }
                                let wait =
                                    fleet_mode::fleet_cmd(&ns, &["wait", "--timeout", "30s"]);
                                (wait.0, format!("{}{}", set.1, wait.1))
                            }),
                        ));
                        events.push((now, Event::AwaitFleetCmd));
                        Some(format!(
                            "rondo fleet set backend web {} state=draining",
                            backend_ip(b)
                        ))
                    }
                    Event::AwaitFleetCmd => match fleet_job.take() {
                        Some((t, h)) if h.is_finished() => {
                            let (ok, out) = h.join().expect("rondo fleet thread");
                            let ms = t.elapsed().as_millis();
                            fleet_set = Some((ok, ms));
                            Some(format!(
                                "rondo fleet set + wait {} after {ms} ms: {}",
                                if ok { "done" } else { "FAILED" },
                                out.trim().lines().last().unwrap_or("")
                            ))
                        }
                        other => {
                            fleet_job = other;
                            events.push((now + Duration::from_millis(50), e));
                            None
                        }
                    },
                    Event::KillCheckerLeader => {
                        old_leader = self.kill_checker_leader();
                        events.push((
                            now,
                            Event::AwaitNewLeader {
                                since: Instant::now(),
                            },
                        ));
                        Some(format!(
                            "checker leader {} SIGKILLed",
                            old_leader.as_deref().unwrap_or("(none found)")
                        ))
                    }
                    Event::AwaitNewLeader { since } => match self.health() {
                        Some((leader, term, _)) if Some(&leader) != old_leader.as_ref() => {
                            let ms = since.elapsed().as_millis();
                            failover_ms = Some(ms);
                            Some(format!(
                                "checker {leader} leads (term {term}), first write {ms} ms after the SIGKILL"
                            ))
                        }
                        _ => {
                            events.push((now + Duration::from_millis(50), e));
                            None
                        }
                    },
                    Event::ApiUnusableOn(d) => {
                        self.tables.api_unusable_on = d;
                        self.push_tables();
                        let mut want = self.active;
                        if let Some(d) = d {
                            want[d] = false;
                        }
                        events.push((
                            now,
                            Event::AwaitFib {
                                vip: VIP2,
                                want,
                                since: Instant::now(),
                                withdrawal: d.is_some(),
                            },
                        ));
                        Some(match d {
                            Some(d) => {
                                format!("every backend of table api unhealthy on director {d} only")
                            }
                            None => "table api healthy again on every director".into(),
                        })
                    }
                    Event::KillBackend(b) => {
                        let mut n = 0;
                        for c in traffic.conns.lock().unwrap().iter() {
                            if c.backend.load(Ordering::Relaxed) == b as u8
                                && c.outcome() == Outcome::Open
                            {
                                c.on_killed.store(true, Ordering::Relaxed);
                                n += 1;
                            }
                        }
                        if let (Some(r), Some(was)) = (&self.redirects[b], &before[b]) {
                            killed_delta(&r.counters(), was);
                        }
                        before[b] = None;
                        self.redirects[b] = None;
                        must(self.b[b].ip(&["link", "set", &format!("b{b}"), "down"]));
                        Some(format!("backend {b} killed holding {n} connections"))
                    }
                    Event::KillDirector(d) => {
                        // Only the signal: rondo's lifeline dies with it and its BIRD (still
                        // up, sessions established) withdraws the routes tied to it.
                        self.directors[d].kill();
                        self.active[d] = false;
                        events.push((now, self.await_fib(true)));
                        Some(format!("director {d} SIGKILLed (its BIRD stays up)"))
                    }
                    Event::RestartDirector(d) => {
                        self.directors[d].start();
                        self.active[d] = true;
                        events.push((now, self.await_fib(false)));
                        Some(format!(
                            "director {d} started (it announces itself once ready)"
                        ))
                    }
                    Event::StopDirector(d) => {
                        // Only the signal: rondo announces GRACEFUL_SHUTDOWN, withdraws,
                        // drains and exits by itself.
                        self.directors[d].send_term();
                        self.active[d] = false;
                        events.push((now, self.await_fib(true)));
                        events.push((
                            now,
                            Event::AwaitExit {
                                d,
                                since: Instant::now(),
                            },
                        ));
                        Some(format!("director {d} sent SIGTERM"))
                    }
                    Event::AwaitExit { d, since } => match self.directors[d].exited() {
                        None => {
                            events.push((now, e));
                            None
                        }
                        Some(st) => {
                            term_exit_ok = Some(st.success());
                            events
                                .push((epoch.elapsed() + DIRECTOR_DOWN, Event::RestartDirector(d)));
                            Some(format!(
                                "director {d} exited ({st}) {} ms after SIGTERM; it logged: {}",
                                since.elapsed().as_millis(),
                                drained_line(&self.directors[d].log_text())
                            ))
                        }
                    },
                    Event::FreezeHost(d) => {
                        signal(self.birds[d].pid(), "STOP");
                        if let Some(pid) = self.directors[d].pid() {
                            signal(pid, "STOP");
                        }
                        self.frozen[d] = true;
                        self.active[d] = false;
                        events.push((now, self.await_fib(true)));
                        Some(format!(
                            "director host {d} hung (rondo and bird SIGSTOPped)"
                        ))
                    }
                    Event::LinkDown(d) => {
                        must(self.d[d].ip(&["link", "set", &format!("d{d}"), "down"]));
                        self.active[d] = false;
                        events.push((now, self.await_fib(true)));
                        Some(format!("director {d}'s link down"))
                    }
                    Event::AwaitFib {
                        vip,
                        want,
                        since,
                        withdrawal,
                    } => {
                        if self.fib_of(vip) != want {
                            events.push((now, e));
                            None
                        } else {
                            let ms = since.elapsed().as_millis();
                            if withdrawal && withdraw_ms.is_none() {
                                withdraw_ms = Some(ms);
                            }
                            let mut note =
                                format!("the router's FIB holds {want:?} for {vip} after {ms} ms");
                            if vip == VIP2 {
                                let other = self.fib();
                                other_vip_fib.push(other);
                                note.push_str(&format!(" ({VIP}: {other:?})"));
                            }
                            Some(note)
                        }
                    }
                    Event::RemoveWhenDrained(b) => {
                        let busy = traffic.conns.lock().unwrap().iter().any(|c| {
                            c.backend.load(Ordering::Relaxed) == b as u8
                                && c.outcome() == Outcome::Open
                        });
                        if busy {
                            events.push((now + Duration::from_millis(50), e));
                            None
                        } else {
                            events.push((now, Event::Tables(Edit::Remove(b))));
                            Some(format!("backend {b} holds no connection"))
                        }
                    }
                };
                if let Some(n) = note {
                    let at = epoch.elapsed();
                    last_change = last_change.max(at);
                    changes.push((at.as_millis(), n));
                }
            }
            let now = epoch.elapsed();
            let end = last_change + settle;
            if events.is_empty() && now >= end {
                break;
            }
            if now >= hard_end {
                changes.push((now.as_millis(), "run ended with changes pending".into()));
                break;
            }
            if Instant::now() >= next_new && (!events.is_empty() || now + NEW_TIMEOUT <= end) {
                let (t, i) = (traffic.clone(), new_started);
                threads.push(spawn_in_netns(&self.c.name, STACK, move || new_conn(t, i)));
                new_started += 1;
                next_new += NEW_EVERY;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        traffic.stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("a client thread panicked");
        }
        for (b, now) in self.counters().iter().enumerate() {
            if let (Some(now), Some(was)) = (now, &before[b]) {
                killed_delta(now, was);
            }
        }
        if case == Case::VipUnusableOnOne {
            other_vip_fib.push(self.fib());
        }
        let (mut fleet_status_ok, mut health_all_up) = (None, None);
        if case == Case::FleetDrainCheckerKill {
            // Every director on the same revision and fingerprints (the new leader's
            // health document applied too), and no backend down in it.
            let ok = common::poll(Duration::from_secs(15), Duration::from_millis(300), || {
                fleet_mode::fleet_cmd(&self.r.name, &["status"]).0
            });
            let (_, out) = fleet_mode::fleet_cmd(&self.r.name, &["status"]);
            changes.push((
                epoch.elapsed().as_millis(),
                format!(
                    "rondo fleet status: {}",
                    out.trim().lines().last().unwrap_or("")
                ),
            ));
            fleet_status_ok = Some(ok);
            health_all_up = Some(self.health().is_some_and(|h| h.2));
        }
        let mut r = Report {
            scenario: case.name(),
            withdraw_ms,
            term_exit_ok,
            other_vip_fib,
            fleet_set,
            failover_ms,
            fleet_status_ok,
            health_all_up,
            retrans: 0,
            spurious: 0,
            second_chance: self.second_chance,
            flows_at_end: vec![0; BACKENDS],
            new_per_backend: vec![0; BACKENDS],
            redirect,
            changes,
            ..Report::default()
        };
        for c in traffic.conns.lock().unwrap().iter() {
            let o = c.outcome();
            let b = usize::from(c.backend.load(Ordering::Relaxed));
            if c.long {
                r.long_opened += 1;
            }
            if c.on_killed.load(Ordering::Relaxed) {
                if c.long {
                    r.long_on_killed += 1;
                } else {
                    r.new_on_killed += 1;
                }
                if matches!(o, Outcome::Reset | Outcome::Stalled) {
                    r.killed_seen_broken += 1;
                }
                if o == Outcome::Reset {
                    r.killed_reset += 1;
                }
                continue;
            }
            if c.long {
                r.max_gap_ms = r.max_gap_ms.max(c.max_gap.lock().unwrap().as_millis());
                match o {
                    Outcome::Open => {
                        r.long_alive += 1;
                        r.vip2_alive += usize::from(c.vip2);
                        if let Some(n) = r.flows_at_end.get_mut(b) {
                            *n += 1;
                        }
                    }
                    Outcome::Completed => r.long_completed += 1,
                    Outcome::Reset => r.long_reset += 1,
                    Outcome::Stalled => r.long_stalled += 1,
                    Outcome::Corrupt => r.long_corrupt += 1,
                    Outcome::ConnectFailed => r.long_connect_failed += 1,
                }
            } else {
                r.new_judged += 1;
                if o == Outcome::Completed {
                    r.new_ok += 1;
                    if let Some(n) = r.new_per_backend.get_mut(b) {
                        *n += 1;
                    }
                }
            }
        }
        let (retrans, spurious) = tcp_retrans(&self.c.name);
        r.retrans = retrans - retrans_before;
        r.spurious = spurious - spurious_before;
        r.secs = t0.elapsed().as_secs_f64();
        r
    }
}

/// What must hold for a scenario; the failures, if any.
fn judge(r: &Report) -> Vec<String> {
    let mut f = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            f.push(format!(
                "{} (second chance {}): {what}",
                r.scenario, r.second_chance
            ));
        }
    };
    check(r.long_opened >= LONG, "too few long connections");
    check(
        !r.changes.iter().any(|(_, c)| c.contains("pending")),
        "the scenario did not finish",
    );
    if !r.second_chance {
        check(r.broken() > 0, "nothing broke without second chance");
        check(r.redirect.forwarded == 0, "forwarded without second chance");
        return f;
    }
    check(r.broken() == 0, "established connections broke");
    check(r.new_judged >= 20, "too few new connections");
    // Without BFD, SYNs ECMP sends to the hung director are lost until the hold timer
    // withdraws it (6-9 s, past NEW_TIMEOUT): that is what BFD buys; counted, not judged.
    if r.scenario != "host_crash_hold" {
        check(r.new_ok == r.new_judged, "new connections failed");
    }
    if r.scenario == "planned_restart" {
        check(
            r.term_exit_ok == Some(true),
            "the director did not exit 0 after SIGTERM",
        );
    }
    match r.scenario {
        "add_backend" => {
            check(r.redirect.forwarded > 0, "second chance never used");
            check(
                r.new_per_backend[IN_TABLE] > 0,
                "the new backend served nothing",
            );
        }
        "drain" => {
            check(r.redirect.forwarded > 0, "second chance never used");
            check(
                r.flows_at_end[0] > 0,
                "the draining backend lost its connections",
            );
        }
        "remove" => {
            check(
                r.changes.iter().any(|(_, c)| c.contains("Remove(0)")),
                "backend 0 never left the table",
            );
            check(
                r.flows_at_end[0] == 0,
                "connections left on the removed backend",
            );
            check(r.long_completed > 0, "no long connection completed");
        }
        "kill_backend" => {
            check(r.long_on_killed > 0, "the killed backend held nothing");
            check(
                r.killed_seen_broken == r.long_on_killed + r.new_on_killed,
                "the harness did not see the killed backend's connections break",
            );
            check(
                r.flows_at_end[1] == 0,
                "connections alive on the killed backend",
            );
        }
        "alt_hash_migration" => check(r.redirect.forwarded > 0, "second chance never used"),
        "fleet_drain_checker_kill" => {
            check(
                r.fleet_set.is_some_and(|s| s.0),
                "rondo fleet set / wait failed",
            );
            check(r.failover_ms.is_some(), "no checker took over");
            check(
                r.fleet_status_ok == Some(true),
                "rondo fleet status not OK at the end (a director behind or fingerprints differ)",
            );
            check(
                r.health_all_up == Some(true),
                "a backend is down in the health document after the failover",
            );
            check(r.redirect.forwarded > 0, "second chance never used");
            check(
                r.flows_at_end[0] > 0,
                "the draining backend lost its connections",
            );
        }
        "vip_unusable_on_one" => {
            check(
                r.withdraw_ms.is_some(),
                "the router's FIB kept director 0 for the unusable VIP",
            );
            let both = std::array::from_fn(|d| d < DIRECTORS);
            check(
                r.other_vip_fib.len() == 3 && r.other_vip_fib.iter().all(|f| *f == both),
                "the other VIP did not stay announced by every director",
            );
            check(r.vip2_alive > 0, "no long connection to the second VIP");
        }
        "director_restart" | "planned_restart" | "link_loss" | "host_crash_bfd"
        | "host_crash_hold" => {
            check(
                r.withdraw_ms.is_some(),
                "the router's FIB kept the director",
            );
        }
        _ => {}
    }
    // BFD (250 ms x 3) must withdraw a hung host well before the hold timer could (it
    // expires 6-9 s after the last keepalive); without BFD only the hold timer does.
    let hold_min = u128::from((HOLD_S - KEEPALIVE_S) * 1000);
    if r.scenario == "host_crash_bfd" {
        check(
            r.withdraw_ms.is_some_and(|t| t < hold_min),
            "BFD did not withdraw the hung director before the hold timer",
        );
    }
    if r.scenario == "host_crash_hold" {
        check(
            r.withdraw_ms.is_some_and(|t| t >= hold_min - 1000),
            "withdrawn before the hold timer could expire (BFD still on?)",
        );
    }
    check(
        r.long_alive + r.long_completed + r.long_on_killed == r.long_opened,
        "long connections unaccounted for",
    );
    f
}

#[test]
fn established_connections_survive_fleet_changes() {
    if let Err(why) = privileged() {
        return skip(&why);
    }
    if !Path::new("/dev/net/tun").exists() {
        return skip("no /dev/net/tun");
    }
    if let Some(why) = common::bird::cannot_run() {
        return skip(&why);
    }
    let t0 = Instant::now();
    let mut fleet = match Fleet::build() {
        Ok(f) => f,
        Err(e) => return skip(&format!("cannot create a network namespace: {e}")),
    };
    if let Ok(secs) = std::env::var("E2E_PAUSE") {
        println!(
            "paused {secs} s: namespaces {}, {}",
            fleet.c.name, fleet.r.name
        );
        std::thread::sleep(Duration::from_secs(secs.parse().unwrap_or(60)));
    }
    let plan = [
        (Scenario::Reload, true),
        (Scenario::AddBackend, true),
        (Scenario::Drain, true),
        (Scenario::Remove, true),
        (Scenario::KillBackend, true),
        (Scenario::DirectorRestart, true),
        (Scenario::AltHashMigration, true),
        (Scenario::AddBackend, false),
        (Scenario::Drain, false),
        (Scenario::AltHashMigration, false),
    ]
    .map(|(s, sc)| (Case::Sim(s), sc))
    .into_iter()
    .chain([
        (Case::PlannedRestart, true),
        (Case::LinkLoss, true),
        (Case::HostCrashBfd, true),
        (Case::HostCrashHold, true),
        (Case::DirectorJoins, true),
        (Case::VipUnusableOnOne, true),
    ])
    // Fleet mode last (the directors then follow etcd); it needs rondo built with etcd.
    .chain(cfg!(feature = "etcd").then_some((Case::FleetDrainCheckerKill, true)));
    // E2E_ONLY=name,name runs only those scenarios (a developer's shortcut; CI runs all).
    let only: Option<Vec<String>> = std::env::var("E2E_ONLY")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    let mut undisturbed_retrans = None;
    for (s, second_chance) in plan {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == s.name()))
        {
            continue;
        }
        if s == Case::FleetDrainCheckerKill && fleet.fleet_mode.is_none() {
            let t = Instant::now();
            fleet.restore(second_chance);
            if let Err(e) = fleet.enter_fleet_mode() {
                panic!("fleet mode: {e}");
            }
            println!(
                "fleet mode: etcd, desired document pushed, directors restarted on [fleet], checkers elected, in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        fleet.restore(second_chance);
        let r = fleet.run(s);
        println!("{}", r.line());
        failures.extend(judge(&r));
        if s == Case::Sim(Scenario::Reload) {
            undisturbed_retrans = Some(r.lost());
        }
        if s == Case::PlannedRestart {
            // Packets lost in a planned restart: the clients retransmit no more than in the
            // undisturbed run (reload, same traffic), not counting the retransmissions the
            // backends reported as duplicates (DSACK: the original was not lost).
            // A slack of PLANNED_RESTART_SLACK segments: on a shared 2-vCPU VM a lone
            // retransmit shows up in undisturbed scenarios too (link_loss, director_joins
            // saw 1), while a restart that drops packets loses them on many of the 240
            // connections at once (a SIGKILL without drain: 7 to 55).
            let base = undisturbed_retrans.unwrap_or(0) + PLANNED_RESTART_SLACK;
            if r.lost() > base {
                failures.push(format!(
                    "planned_restart: clients retransmitted {} segments ({} spurious), more than the undisturbed run's non-spurious ones plus {PLANNED_RESTART_SLACK}",
                    r.retrans, r.spurious
                ));
            }
        }
        reports.push(r);
    }
    println!("{HEADER}");
    for r in &reports {
        println!("{}", r.row());
    }
    // The BGP lifecycle (perf/run prints these lines under its own heading).
    println!(
        "bgp: timers: BFD {BFD_MS} ms x {BFD_MULT}, hold {HOLD_S} s, keepalive {KEEPALIVE_S} s; \
         rondo [bgp] graceful_ms {GRACEFUL_MS}, drain_ms {DRAIN_MS}"
    );
    for r in reports.iter().filter(|r| r.withdraw_ms.is_some()) {
        println!(
            "bgp: {}: change to FIB withdrawn {} ms, longest echo gap {} ms, client retransmits {} ({} spurious)",
            r.scenario,
            r.withdraw_ms.unwrap_or_default(),
            r.max_gap_ms,
            r.retrans,
            r.spurious
        );
        for (t, c) in &r.changes {
            println!("bgp:     t={t}ms {c}");
        }
    }
    println!(
        "e2e: {} scenarios in {:.0} s",
        reports.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{}\n\n{}\n{}",
        failures.join("\n"),
        reports
            .iter()
            .map(Report::line)
            .collect::<Vec<_>>()
            .join("\n"),
        fleet.diagnostics()
    );
}
