//! Real QUIC end to end through two directors and `rondo redirect` backends (issue 22): quinn
//! clients and servers, the servers issuing QUIC-LB connection IDs through the library's
//! generator ([`QuicLbCidGenerator`]). Needs root and /dev/net/tun (otherwise it is counted
//! as skipped, and fails with `CI=true`); no BIRD (the router's ECMP route is static).
//!
//! ```text
//!  clients ns C              router ns R (ip_forward, L4 multipath hash)     director ns D0, D1
//!  c0 10.150.0.2 ----------- rc 10.150.0.1                                   `rondo run` on
//!  10.151.0.1-16 on lo       10.154.0.1/32 nexthop 10.152.1.2, 10.152.2.2 -- af_packet:dK
//!  (quinn clients)           rdK 10.152.K+1.1 (static neighbour = dK's MAC)  (GUE src 10.152.K+1.2,
//!                            rbr 10.153.0.1 bridge                            to R's MAC)
//!                              |-- b0..b4  backends ns B0..B4: 10.153.0.11-15, VIP 10.154.0.1
//!                                  on lo, `rondo redirect` + a quinn server on VIP:443 UDP,
//!                                  default route via R (replies go straight to C)
//! ```
//! Namespaces are `rq*` and addresses 10.150-154.x ([`PLAN`]), so this test and
//! tests/e2e.rs (`rdo*`, 10.70-91, 10.200) can run on one machine at once. The topology is
//! [`common::topology`]'s, shared with tests/e2e.rs.
//!
//! Clients' packets go C -> R -> (ECMP) director -> R (GUE) -> backend -> `rondo redirect`
//! -> its TUN -> the quinn server; replies go backend -> R -> C. Each backend's server
//! writes its server ID (`0001` for b0 .. `0005` for b4) into every CID it issues; the
//! servers stay the same in every mode, only the directors and the redirects change:
//!
//! - `on`: the directors' table has `quic_lb` and a `server_id` per backend, so a packet
//!   goes to the backend its destination CID names (the row's other hop after it); the
//!   redirects run without `[redirect.quic_lb]` (the director alone keeps connections).
//!   Goal and assertion: 0 broken in every scenario.
//! - `off`: the same table without `quic_lb` (the rendezvous hash alone) and
//!   `rondo redirect --no-second-chance`: connections must break when the client rebinds,
//!   when a backend is added and when one is drained (the harness can fail); a director
//!   change breaks nothing here either (every director has the same rows).
//! - `redirect` (GLB's director, QUIC-aware backends): directors without `quic_lb`, backends
//!   with `[redirect.quic_lb]`, whose second chance sends a QUIC packet naming another
//!   server to the next GUE hop: a backend added or drained, or a director change, must
//!   break nothing; rebinding may break (the new 4-tuple's row holds the owner as one of
//!   its two hops about half the time); counted, not judged.
//!
//! Each scenario keeps [`LONG`] long-lived connections (one quinn endpoint, so one UDP
//! socket, each), each echoing a [`CHUNK`]-byte chunk on one bidirectional stream every
//! [`INTERVAL`]; opens a new connection every [`NEW_EVERY`] (handshake, greeting, one
//! echo, close, all within [`NEW_TIMEOUT`]); makes its change at [`CHANGE_AT`]; runs
//! [`SETTLE`] past the last change; and counts a long connection broken when it closes with
//! an error (idle timeout, reset, a stream error), an echo is corrupt, or it makes no echo
//! progress for [`STALL`]. quinn's idle timeout ([`IDLE_TIMEOUT`]) and keep-alives are set
//! so that a connection whose packets reach the wrong server (which drops a short header
//! packet whose CID is not its own: its generator's `validate` says so) dies within the
//! scenario. The server sends its backend number first on each stream, so the harness
//! knows where each connection lives. Scenarios:
//!
//! - `add_backend`: b4 joins the table `filling`, then `active` 2 s later.
//! - `drain`: b0 becomes `draining` (its connections must stay on it).
//! - `rebind_port`: every long connection moves to a fresh UDP socket on the same client
//!   address (a new source port: NAT rebinding), quinn's `Endpoint::rebind`.
//! - `rebind_addr`: the same onto another client address (a new source address and port:
//!   migration).
//! - `director_change`: director 0 is SIGKILLed and leaves the router's ECMP group 200 ms
//!   later (what BFD and BGP do in tests/e2e.rs); 1.5 s after the kill it is started again
//!   and rejoins the group (its flows move back).
//!
//! ```sh
//! cargo test --features quinn --test e2e_quic -- --nocapture   # a line per run, then the table
//! E2E_QUIC_ONLY=rebind_port,drain E2E_QUIC_MODES=on cargo test --features quinn --test e2e_quic -- --nocapture
//! E2E_PAUSE=120 cargo test --features quinn --test e2e_quic -- --nocapture   # inspect first
//! ```
#![cfg(feature = "quinn")]

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fleet::{tail, DirectorProc, RedirectCounters, RedirectProc};
use common::netns::{enter, in_netns};
use common::topology::{Plan, Topology};
use common::veth::{privileged, skip, Netns};
use quinn::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rondo::quic_lb::quinn::QuicLbCidGenerator;
use rondo::quic_lb::{QuicLbSpec, ServerId};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 154, 0, 1);
const PORT: u16 = 443;
const DIRECTORS: usize = 2;
/// Backends in the table at the start; one more waits for add_backend.
const IN_TABLE: usize = 4;
const BACKENDS: usize = IN_TABLE + 1;
const CLIENT_ADDRS: u8 = 16;
/// Namespaces `rq*`; clients 10.150-151, director hosts 10.152, backends 10.153, VIP 10.154.
const PLAN: Plan = Plan {
    prefix: "rq",
    directors: DIRECTORS,
    backends: BACKENDS,
    client_net: 150,
    client_addrs: CLIENT_ADDRS,
    director_net: 152,
    backend_net: 153,
    vips: &[VIP],
};
/// The QUIC-LB configuration of the servers, the directors (`on`) and the redirects
/// (`redirect`): 2-byte server IDs, 6-byte nonces, the four-pass AES-128 Feistel network
/// (9-byte CIDs).
const CONFIG_ID: u32 = 1;
const SERVER_ID_LEN: u32 = 2;
const NONCE_LEN: u32 = 6;
const KEY: &str = "950983482b0692f78f6057baee94118c";
/// The name in the servers' self-signed certificate.
const SERVER_NAME: &str = "rondo.test";

/// Long-lived connections per scenario, opened over [`RAMP`].
const LONG: usize = 160;
const RAMP: Duration = Duration::from_millis(2500);
/// Each long connection sends a chunk, waits for its echo, then waits this long.
const INTERVAL: Duration = Duration::from_millis(250);
const CHUNK: usize = 64;
/// No echo progress for this long: stalled (broken). A connection whose packets reach the
/// wrong server never recovers; one that lost packets recovers after quinn's probe timeout,
/// which backs off from an RTT estimate that a loaded 2-vCPU VM inflates (4 s saw one
/// such recovery counted as a stall at a load average of 24).
const STALL: Duration = Duration::from_secs(6);
/// quinn: the connection dies after this long without a packet from the peer; the client
/// sends keep-alives (PINGs) when it has nothing else to send.
const IDLE_TIMEOUT: Duration = Duration::from_secs(8);
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// A long connection's handshake and first echo.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A new connection every so often; it must connect, echo and close within NEW_TIMEOUT.
const NEW_EVERY: Duration = Duration::from_millis(200);
/// (A new connection whose handshake packets reach the wrong server fails whatever the
/// timeout; 3 s was short for a debug-build TLS handshake on a loaded VM.)
const NEW_TIMEOUT: Duration = Duration::from_secs(5);
/// The first change (after the ramp), and how long to run after the last one (past STALL,
/// so that a connection broken by the last change is seen broken).
const CHANGE_AT: Duration = Duration::from_millis(3500);
const SETTLE: Duration = Duration::from_secs(8);
/// director_change: from the SIGKILL to the router's ECMP group losing the director, and
/// to the director's restart.
const WITHDRAW_AFTER: Duration = Duration::from_millis(200);
const DIRECTOR_DOWN: Duration = Duration::from_millis(1500);
/// The TUN `rondo redirect` delivers to (inside each backend's namespace).
const TUN: &str = "rqgue0";

fn server_id(b: usize) -> String {
    format!("{:04x}", b + 1)
}

fn quic_lb_spec() -> QuicLbSpec {
    QuicLbSpec {
        config_id: CONFIG_ID,
        server_id_len: SERVER_ID_LEN,
        nonce_len: NONCE_LEN,
        key: Some(KEY.into()),
        encode_length: false,
    }
}

/// The same configuration as an inline TOML table (the directors' `quic_lb`, the
/// redirects' `configs`).
fn quic_lb_toml() -> String {
    format!(
        "{{ config_id = {CONFIG_ID}, server_id_len = {SERVER_ID_LEN}, nonce_len = {NONCE_LEN}, key = \"{KEY}\" }}"
    )
}

/// The modes the test runs, in order.
const MODES: [Mode; 3] = [Mode::On, Mode::Off, Mode::Redirect];

/// Who reads CIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The directors (`quic_lb` on the table); plain redirects.
    On,
    /// Nobody: the hash alone, and redirects without second chance.
    Off,
    /// The redirects (`[redirect.quic_lb]`), behind directors that hash.
    Redirect,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::On => "on",
            Mode::Off => "off",
            Mode::Redirect => "redirect",
        }
    }
    fn director_quic_lb(self) -> bool {
        self == Mode::On
    }
    fn redirect_quic_lb(self) -> bool {
        self == Mode::Redirect
    }
    fn second_chance(self) -> bool {
        self != Mode::Off
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    AddBackend,
    Drain,
    RebindPort,
    RebindAddr,
    DirectorChange,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::AddBackend,
        Scenario::Drain,
        Scenario::RebindPort,
        Scenario::RebindAddr,
        Scenario::DirectorChange,
    ];
    fn name(self) -> &'static str {
        match self {
            Scenario::AddBackend => "add_backend",
            Scenario::Drain => "drain",
            Scenario::RebindPort => "rebind_port",
            Scenario::RebindAddr => "rebind_addr",
            Scenario::DirectorChange => "director_change",
        }
    }
}

/// The table every director loads: (backend, state).
#[derive(Debug, Clone, PartialEq)]
struct Tables {
    entries: Vec<(usize, &'static str)>,
}

impl Tables {
    fn baseline() -> Tables {
        Tables {
            entries: (0..IN_TABLE).map(|b| (b, "active")).collect(),
        }
    }

    fn set(&mut self, b: usize, state: &'static str) {
        match self.entries.iter_mut().find(|e| e.0 == b) {
            Some(e) => e.1 = state,
            None => self.entries.push((b, state)),
        }
    }

    /// Director `d`'s native TOML: its port, console, and the one table (UDP VIP:443), with
    /// `quic_lb` and the server IDs when `quic_lb`.
    fn config(&self, d: usize, dir: &Path, quic_lb: bool) -> String {
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
hash_fields = ["src_addr", "src_port"]

[[tables]]
name = "quic"
hash_key = "12345678901234561234567890123456"
seed = "56789012345678905678901234567890"
binds = [{{ ip = "{VIP}", proto = "udp", port = {PORT} }}]
"#,
            dir.join(format!("d{d}.sock")).display(),
            PLAN.router_mac(d),
            PLAN.director_ip(d),
        );
        if quic_lb {
            t.push_str(&format!("quic_lb = [{}]\n", quic_lb_toml()));
        }
        for (b, state) in &self.entries {
            t.push_str(&format!(
                "[[tables.backends]]\nip = \"{}\"\nstate = \"{state}\"\nhealthy = true\n",
                PLAN.backend_ip(*b)
            ));
            if quic_lb {
                t.push_str(&format!("server_id = \"{}\"\n", server_id(*b)));
            }
        }
        t
    }
}

/// Backend `b`'s backend.toml for `mode`.
fn redirect_config(b: usize, mode: Mode) -> String {
    let mut t = format!(
        "[redirect]\nlisten = [\"0.0.0.0:19523\"]\naddresses = [\"{}\"]\n\
         directors = [\"{}\"]\nbackends = [\"{}\"]\ntun = \"{TUN}\"\nstats_interval_secs = 0\n",
        PLAN.backend_ip(b),
        PLAN.directors_cidr(),
        PLAN.backends_cidr(),
    );
    if mode.redirect_quic_lb() {
        t.push_str(&format!(
            "\n[redirect.quic_lb]\nserver_id = \"{}\"\nports = [{PORT}]\nconfigs = [{}]\n",
            server_id(b),
            quic_lb_toml()
        ));
    }
    t
}

/// How a connection ended (or `Open`: still echoing at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Outcome {
    Open = 0,
    Completed,
    /// Closed with an error (quinn's idle timeout, a reset, a stream error).
    Closed,
    Stalled,
    Corrupt,
    ConnectFailed,
}

impl Outcome {
    fn from_u8(v: u8) -> Outcome {
        [
            Outcome::Open,
            Outcome::Completed,
            Outcome::Closed,
            Outcome::Stalled,
            Outcome::Corrupt,
            Outcome::ConnectFailed,
        ][usize::from(v)]
    }
}

const UNKNOWN: u8 = 255;

struct Conn {
    long: bool,
    /// The backend number the server sent first.
    backend: AtomicU8,
    outcome: AtomicU8,
    /// Why it closed (quinn's error), for the report.
    error: Mutex<Option<String>>,
    last_progress: Mutex<Instant>,
    /// The longest time between two echoes (or the handshake and the first echo).
    max_gap: Mutex<Duration>,
    /// It moved to a new socket (the rebind scenarios) and echoed since.
    rebound: AtomicBool,
    /// Packets quinn declared lost on it (its path's `lost_packets` when it ended).
    lost: AtomicU64,
}

impl Conn {
    fn new(long: bool) -> Conn {
        Conn {
            long,
            backend: AtomicU8::new(UNKNOWN),
            outcome: AtomicU8::new(Outcome::Open as u8),
            error: Mutex::new(None),
            last_progress: Mutex::new(Instant::now()),
            max_gap: Mutex::new(Duration::ZERO),
            rebound: AtomicBool::new(false),
            lost: AtomicU64::new(0),
        }
    }
    fn outcome(&self) -> Outcome {
        Outcome::from_u8(self.outcome.load(Ordering::Relaxed))
    }
    fn end(&self, o: Outcome) {
        self.outcome.store(o as u8, Ordering::Relaxed);
    }
    fn fail(&self, o: Outcome, why: String) {
        *self.error.lock().unwrap() = Some(why);
        self.end(o);
    }
    fn progress(&self) {
        let mut last = self.last_progress.lock().unwrap();
        let gap = last.elapsed();
        let mut max = self.max_gap.lock().unwrap();
        *max = (*max).max(gap);
        *last = Instant::now();
    }
    /// The handshake is done: the stall clock starts now (a slow handshake on a loaded
    /// machine has CONNECT_TIMEOUT of its own).
    fn established(&self) {
        *self.last_progress.lock().unwrap() = Instant::now();
    }
    fn idle_for(&self) -> Duration {
        self.last_progress.lock().unwrap().elapsed()
    }
}

/// How the long connections move (the rebind scenarios set it at their change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Rebind {
    None = 0,
    /// A fresh socket on the same client address.
    Port,
    /// A fresh socket on another client address.
    Addr,
}

/// The client side of one scenario.
struct Traffic {
    conns: Mutex<Vec<Arc<Conn>>>,
    stop: AtomicBool,
    rebind: AtomicU8,
    client: quinn::ClientConfig,
}

impl Traffic {
    fn add(&self, long: bool) -> Arc<Conn> {
        let c = Arc::new(Conn::new(long));
        self.conns.lock().unwrap().push(c.clone());
        c
    }
    fn rebind(&self) -> Rebind {
        match self.rebind.load(Ordering::Relaxed) {
            1 => Rebind::Port,
            2 => Rebind::Addr,
            _ => Rebind::None,
        }
    }
}

fn chunk(seed: u64, seq: u64) -> [u8; CHUNK] {
    let mut b = [0u8; CHUNK];
    let mut x = seed ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for v in &mut b {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *v = x as u8;
    }
    b
}

/// quinn's transport settings, both sides: the idle timeout, keep-alives from the client,
/// no path MTU discovery (its probes would exceed the link MTU once encapsulated in GUE;
/// lost probes are noise here).
fn transport(client: bool) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().expect("idle timeout")));
    if client {
        t.keep_alive_interval(Some(KEEP_ALIVE));
    }
    t.mtu_discovery_config(None);
    Arc::new(t)
}

/// The servers' certificate and key (self-signed, for [`SERVER_NAME`]), and the clients'
/// configuration trusting it.
struct Tls {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Tls {
    fn new() -> Tls {
        let ck = rcgen::generate_simple_self_signed(vec![SERVER_NAME.into()])
            .expect("self-signed certificate");
        Tls {
            cert: ck.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()),
        }
    }

    fn server(&self) -> quinn::ServerConfig {
        let mut s = quinn::ServerConfig::with_single_cert(
            vec![self.cert.clone()],
            PrivateKeyDer::Pkcs8(self.key.clone_key()),
        )
        .expect("server TLS config");
        s.transport_config(transport(false));
        s.migration(true);
        s
    }

    fn client(&self) -> quinn::ClientConfig {
        let mut roots = quinn::rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).expect("trust the certificate");
        let mut c =
            quinn::ClientConfig::with_root_certificates(Arc::new(roots)).expect("client TLS");
        c.transport_config(transport(true));
        c
    }
}

/// Backend `b`'s QUIC server, its socket on VIP:443 made in namespace `ns`, its CIDs from
/// [`QuicLbCidGenerator`] for [`server_id`]`(b)`: on each bidirectional stream it sends
/// its backend number, then echoes everything.
fn start_server(rt: &Runtime, ns: &str, b: usize, tls: &Tls) -> quinn::Endpoint {
    let socket = in_netns(ns, || UdpSocket::bind((VIP, PORT)))
        .unwrap_or_else(|e| panic!("QUIC server socket on {VIP}:{PORT} in {ns}: {e}"));
    let config = quic_lb_spec().build().expect("QUIC-LB configuration");
    let sid = ServerId::from_hex(&server_id(b)).expect("server ID");
    let mut endpoint_config = quinn::EndpointConfig::default();
    endpoint_config.cid_generator(QuicLbCidGenerator::factory(config, sid).expect("generator"));
    let _guard = rt.enter();
    let ep = quinn::Endpoint::new(
        endpoint_config,
        Some(tls.server()),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .expect("QUIC server endpoint");
    let accept = ep.clone();
    rt.spawn(async move {
        while let Some(incoming) = accept.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        if send.write_all(&[b as u8]).await.is_err() {
                            return;
                        }
                        let mut buf = vec![0u8; 4096];
                        while let Ok(Some(n)) = recv.read(&mut buf).await {
                            if send.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
        }
    });
    ep
}

/// A client endpoint on a fresh UDP socket on `src` (port chosen by the kernel). Called on
/// the clients' runtime, whose threads are in the clients' namespace: the socket is too.
fn client_socket(src: Ipv4Addr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind((src, 0))
}

/// Why a read gave up.
enum ReadEnd {
    Outcome(Outcome),
    Error(String),
}

/// Fill `buf` from `recv`; `give_up` is asked every 100 ms without data.
async fn read_full(
    recv: &mut quinn::RecvStream,
    buf: &mut [u8],
    give_up: impl Fn() -> Option<Outcome>,
) -> Result<(), ReadEnd> {
    let mut got = 0;
    while got < buf.len() {
        // RecvStream::read is cancel-safe.
        match tokio::time::timeout(Duration::from_millis(100), recv.read(&mut buf[got..])).await {
            Ok(Ok(Some(n))) => got += n,
            Ok(Ok(None)) => return Err(ReadEnd::Error("stream finished by the server".into())),
            Ok(Err(e)) => return Err(ReadEnd::Error(e.to_string())),
            Err(_) => {
                if let Some(o) = give_up() {
                    return Err(ReadEnd::Outcome(o));
                }
            }
        }
    }
    Ok(())
}

/// One long-lived connection from client address `i`: echo a chunk every INTERVAL until
/// the scenario stops, moving to a new socket when the scenario says.
async fn run_long(t: Arc<Traffic>, c: Arc<Conn>, i: usize) {
    let seed = 0x5eed_0000 + i as u64 * 7919;
    let ep = match client_socket(PLAN.client_addr(i)).and_then(|s| {
        quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            s,
            Arc::new(quinn::TokioRuntime),
        )
    }) {
        Ok(ep) => ep,
        Err(e) => return c.fail(Outcome::ConnectFailed, format!("client socket: {e}")),
    };
    let conn = match ep.connect_with(t.client.clone(), SocketAddr::from((VIP, PORT)), SERVER_NAME) {
        Ok(connecting) => match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return c.fail(Outcome::ConnectFailed, e.to_string()),
            Err(_) => return c.fail(Outcome::ConnectFailed, "handshake timed out".into()),
        },
        Err(e) => return c.fail(Outcome::ConnectFailed, e.to_string()),
    };
    c.established();
    let give_up = || {
        if c.idle_for() > STALL {
            Some(Outcome::Stalled)
        } else if t.stop.load(Ordering::Relaxed) {
            Some(Outcome::Open)
        } else {
            None
        }
    };
    let end = |o: ReadEnd| match o {
        ReadEnd::Outcome(o) => c.end(o),
        ReadEnd::Error(e) => c.fail(Outcome::Closed, e),
    };
    let (mut send, mut recv) = match conn.open_bi().await {
        Ok(s) => s,
        Err(e) => return c.fail(Outcome::ConnectFailed, e.to_string()),
    };
    let mut rebound = false;
    for seq in 0u64.. {
        let out = chunk(seed, seq);
        match tokio::time::timeout(STALL, send.write_all(&out)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                c.fail(Outcome::Closed, e.to_string());
                break;
            }
            Err(_) => {
                c.fail(Outcome::Stalled, "write blocked".into());
                break;
            }
        }
        if seq == 0 {
            let mut id = [0u8];
            if let Err(o) = read_full(&mut recv, &mut id, give_up).await {
                end(o);
                break;
            }
            c.backend.store(id[0], Ordering::Relaxed);
        }
        let mut back = [0u8; CHUNK];
        if let Err(o) = read_full(&mut recv, &mut back, give_up).await {
            end(o);
            break;
        }
        if back != out {
            c.fail(Outcome::Corrupt, format!("echo {seq} differs"));
            break;
        }
        c.progress();
        if rebound {
            c.rebound.store(true, Ordering::Relaxed);
        }
        let until = Instant::now() + INTERVAL;
        while Instant::now() < until && !t.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if t.stop.load(Ordering::Relaxed) {
            break;
        }
        let to = match t.rebind() {
            _ if rebound => None,
            Rebind::None => None,
            Rebind::Port => Some(PLAN.client_addr(i)),
            Rebind::Addr => Some(PLAN.client_addr(i + 5)),
        };
        if let Some(src) = to {
            rebound = true;
            if let Err(e) = client_socket(src).and_then(|s| ep.rebind(s)) {
                c.fail(Outcome::Closed, format!("rebind to {src}: {e}"));
                break;
            }
        }
    }
    c.lost
        .store(conn.stats().path.lost_packets, Ordering::Relaxed);
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_millis(300), ep.wait_idle()).await;
}

/// One new connection from client address `i * 7 + 3`: handshake, greeting, one echo,
/// close, all within NEW_TIMEOUT.
async fn new_conn(t: Arc<Traffic>, c: Arc<Conn>, i: usize) {
    let deadline = Instant::now() + NEW_TIMEOUT;
    let ep = match client_socket(PLAN.client_addr(i * 7 + 3)).and_then(|s| {
        quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            s,
            Arc::new(quinn::TokioRuntime),
        )
    }) {
        Ok(ep) => ep,
        Err(e) => return c.fail(Outcome::ConnectFailed, format!("client socket: {e}")),
    };
    let connecting =
        match ep.connect_with(t.client.clone(), SocketAddr::from((VIP, PORT)), SERVER_NAME) {
            Ok(x) => x,
            Err(e) => return c.fail(Outcome::ConnectFailed, e.to_string()),
        };
    let work = async {
        let conn = connecting
            .await
            .map_err(|e| (Outcome::ConnectFailed, e.to_string()))?;
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| (Outcome::ConnectFailed, e.to_string()))?;
        let out = chunk(i as u64, 1);
        send.write_all(&out)
            .await
            .map_err(|e| (Outcome::Closed, e.to_string()))?;
        let mut back = [0u8; 1 + CHUNK];
        recv.read_exact(&mut back)
            .await
            .map_err(|e| (Outcome::Closed, e.to_string()))?;
        c.backend.store(back[0], Ordering::Relaxed);
        if back[1..] != out {
            return Err((Outcome::Corrupt, "echo differs".into()));
        }
        conn.close(0u32.into(), b"done");
        Ok::<_, (Outcome, String)>(())
    };
    match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(Ok(())) => c.end(Outcome::Completed),
        Ok(Err((o, e))) => c.fail(o, e),
        Err(_) => c.fail(Outcome::Stalled, "not done within NEW_TIMEOUT".into()),
    }
    let _ = tokio::time::timeout(Duration::from_millis(300), ep.wait_idle()).await;
}

/// The directors' QUIC counters since `clear port stats`: (routed by CID, hashed: every
/// other QUIC outcome), from `show fwd stats`' accumulated block.
fn quic_counters(stats: &str) -> (u64, u64) {
    let acc = stats.find("Accumulated").map_or("", |i| &stats[i..]);
    let (mut routed, mut hashed) = (0, 0);
    for l in acc.lines() {
        let t: Vec<&str> = l.split_whitespace().collect();
        if let ["quic", what, n] = t.as_slice() {
            let n: u64 = n.parse().unwrap_or(0);
            if *what == "routed" {
                routed += n;
            } else {
                hashed += n;
            }
        }
    }
    (routed, hashed)
}

#[derive(Debug, Default)]
struct Report {
    scenario: &'static str,
    mode: &'static str,
    long_opened: usize,
    long_alive: usize,
    long_closed: usize,
    long_stalled: usize,
    long_corrupt: usize,
    long_connect_failed: usize,
    /// Long connections that moved to a new socket and echoed since (rebind scenarios).
    rebound: usize,
    new_judged: usize,
    new_ok: usize,
    /// Per backend: long connections that lived there (greeting), still open there at the
    /// end, broken there; new connections served there.
    lived_on: Vec<usize>,
    alive_on: Vec<usize>,
    broken_on: Vec<usize>,
    new_per_backend: Vec<usize>,
    /// The first few errors of broken connections (distinct, with counts).
    errors: Vec<(String, usize)>,
    /// Both directors: QUIC packets routed by CID / hashed (since the run started).
    routed: u64,
    hashed: u64,
    redirect: RedirectCounters,
    /// quinn's lost packets over every long connection, the longest echo gap of any.
    lost: u64,
    max_gap_ms: u128,
    changes: Vec<(u128, String)>,
    secs: f64,
    /// The machine's 1-minute load average at the end (a shared 2-vCPU VM: context for a
    /// failure).
    load: String,
}

impl Report {
    fn broken(&self) -> usize {
        self.long_closed + self.long_stalled + self.long_corrupt + self.long_connect_failed
    }

    fn line(&self) -> String {
        let mut s = format!(
            "{:<16} quic_lb={:<8} long: opened={} alive={} broken={} (closed={} stalled={} corrupt={} connect_failed={}) rebound={} | new: judged={} ok={} | lived_on={:?} alive_on={:?} broken_on={:?} new_per_backend={:?} | directors: routed={} hashed={} | redirect: rx={} local={} forwarded={} (quic={}) dropped={} | lost_packets={} longest_gap_ms={} | {:.1} s, load {}",
            self.scenario,
            self.mode,
            self.long_opened,
            self.long_alive,
            self.broken(),
            self.long_closed,
            self.long_stalled,
            self.long_corrupt,
            self.long_connect_failed,
            self.rebound,
            self.new_judged,
            self.new_ok,
            self.lived_on,
            self.alive_on,
            self.broken_on,
            self.new_per_backend,
            self.routed,
            self.hashed,
            self.redirect.rx,
            self.redirect.local,
            self.redirect.forwarded,
            self.redirect.forwarded_quic,
            self.redirect.dropped,
            self.lost,
            self.max_gap_ms,
            self.secs,
            self.load,
        );
        for (e, n) in &self.errors {
            s.push_str(&format!("\n    {n} x {e}"));
        }
        for (t, c) in &self.changes {
            s.push_str(&format!("\n    t={t}ms {c}"));
        }
        s
    }

    fn row(&self) -> String {
        format!(
            "| {} | {} | {}/{} | {} ({}/{}/{}/{}) | {} | {}/{} | {:?} | {:?} | {}/{} | {} ({}) | {} | {} |",
            self.scenario,
            self.mode,
            self.long_opened,
            self.long_alive,
            self.broken(),
            self.long_closed,
            self.long_stalled,
            self.long_corrupt,
            self.long_connect_failed,
            self.rebound,
            self.new_ok,
            self.new_judged,
            self.lived_on,
            self.alive_on,
            self.routed,
            self.hashed,
            self.redirect.forwarded,
            self.redirect.forwarded_quic,
            self.lost,
            self.max_gap_ms,
        )
    }
}

const HEADER: &str = "| scenario | QUIC-LB | long opened/alive | broken (closed/stalled/corrupt/connect) | rebound | new ok/judged | lived on b0..b4 | alive at end on b0..b4 | directors: routed by CID/hashed | redirect forwards (QUIC by CID) | lost packets | longest echo gap (ms) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |";

/// The whole fleet. Fields drop in order: processes and runtimes before namespaces.
struct Fleet {
    directors: Vec<DirectorProc>,
    redirects: Vec<Option<RedirectProc>>,
    /// The QUIC servers, one per backend.
    _endpoints: Vec<quinn::Endpoint>,
    /// The clients' runtime (its threads entered the clients' namespace) and the servers'
    /// (their sockets were made in the backends' namespaces).
    clients: Runtime,
    _servers: Runtime,
    client_config: quinn::ClientConfig,
    tables: Tables,
    mode: Mode,
    /// Directors in the router's ECMP group.
    ecmp: [bool; DIRECTORS],
    dir: tempfile::TempDir,
    topo: Topology,
}

fn must(r: Result<(), String>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

impl Fleet {
    /// The fleet; `Err` only when no namespace can be made at all (then the test skips).
    /// Any later failure is a test failure.
    fn build() -> Result<Fleet, String> {
        let c = PLAN.netns('C')?;
        Ok(Fleet::build_in(c).unwrap_or_else(|e| panic!("building the fleet: {e}")))
    }

    fn build_in(c: Netns) -> Result<Fleet, String> {
        let topo = Topology::build_in(&PLAN, c)?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = |f: String| dir.path().join(f);
        let mode = Mode::On;
        let tables = Tables::baseline();
        let mut directors = Vec::new();
        for (i, ns) in topo.d.iter().enumerate() {
            let config = path(format!("d{i}.toml"));
            std::fs::write(
                &config,
                tables.config(i, dir.path(), mode.director_quic_lb()),
            )
            .map_err(|e| e.to_string())?;
            directors.push(DirectorProc::new(
                &format!("director {i}"),
                &ns.name,
                config,
                path(format!("d{i}.sock")),
                path(format!("d{i}.log")),
            ));
        }
        let tls = Tls::new();
        let servers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quic-servers")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let cns = topo.c.name.clone();
        let clients = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quic-clients")
            .on_thread_start(move || enter(&cns))
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let endpoints = topo
            .b
            .iter()
            .enumerate()
            .map(|(b, ns)| start_server(&servers, &ns.name, b, &tls))
            .collect();
        let mut f = Fleet {
            directors,
            redirects: (0..BACKENDS).map(|_| None).collect(),
            _endpoints: endpoints,
            clients,
            _servers: servers,
            client_config: tls.client(),
            tables,
            mode,
            ecmp: [false; DIRECTORS],
            dir,
            topo,
        };
        for b in 0..BACKENDS {
            f.start_redirect(b);
        }
        for d in &mut f.directors {
            d.start();
        }
        f.set_ecmp([true; DIRECTORS]);
        Ok(f)
    }

    fn start_redirect(&mut self, b: usize) {
        self.redirects[b] = None;
        let config = self.dir.path().join(format!("b{b}.toml"));
        std::fs::write(&config, redirect_config(b, self.mode)).unwrap();
        let args: &[&str] = if self.mode.second_chance() {
            &[]
        } else {
            &["--no-second-chance"]
        };
        self.redirects[b] = Some(RedirectProc::start(
            &format!("backend {b}"),
            &self.topo.b[b].name,
            &config,
            args,
        ));
    }

    /// The router's route to the VIP: ECMP over the directors in `members`.
    fn set_ecmp(&mut self, members: [bool; DIRECTORS]) {
        let vip = format!("{VIP}/32");
        let hops: Vec<(String, String)> = (0..DIRECTORS)
            .filter(|d| members[*d])
            .map(|d| (PLAN.director_ip(d).to_string(), format!("rd{d}")))
            .collect();
        let mut args = vec!["route", "replace", vip.as_str()];
        for (ip, dev) in &hops {
            args.extend(["nexthop", "via", ip.as_str(), "dev", dev.as_str()]);
        }
        must(self.topo.r.ip(&args));
        self.ecmp = members;
    }

    /// Write every director's config and reload the running ones through their consoles.
    fn push_tables(&mut self) {
        for (i, d) in self.directors.iter_mut().enumerate() {
            let tmp = d.config.with_extension("tmp");
            std::fs::write(
                &tmp,
                self.tables
                    .config(i, self.dir.path(), self.mode.director_quic_lb()),
            )
            .unwrap();
            std::fs::rename(&tmp, &d.config).unwrap();
            if d.running() {
                d.ok("reload");
            }
        }
    }

    /// Back to the starting state, in `mode` (no traffic then).
    fn restore(&mut self, mode: Mode) {
        for d in &mut self.directors {
            if !d.running() {
                d.start();
            }
        }
        if self.ecmp != [true; DIRECTORS] {
            self.set_ecmp([true; DIRECTORS]);
        }
        let changed = self.mode != mode;
        self.mode = mode;
        if changed || self.tables != Tables::baseline() {
            self.tables = Tables::baseline();
            self.push_tables();
        }
        for b in 0..BACKENDS {
            if changed || self.redirects[b].is_none() {
                self.start_redirect(b);
            }
        }
        for d in &self.directors {
            d.ok("clear port stats all");
        }
        // Let the last connections' closes go through.
        std::thread::sleep(Duration::from_millis(300));
    }

    fn counters(&self) -> Vec<RedirectCounters> {
        self.redirects
            .iter()
            .map(|r| r.as_ref().map(RedirectProc::counters).unwrap_or_default())
            .collect()
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
        s
    }

    fn run(&mut self, scenario: Scenario) -> Report {
        let t0 = Instant::now();
        let traffic = Arc::new(Traffic {
            conns: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            rebind: AtomicU8::new(Rebind::None as u8),
            client: self.client_config.clone(),
        });
        #[derive(Debug)]
        enum Event {
            Table(usize, &'static str),
            Rebind(Rebind),
            KillDirector(usize),
            Withdraw(usize),
            RestartDirector(usize),
        }
        let mut settle = SETTLE;
        let mut events: Vec<(Duration, Event)> = match scenario {
            Scenario::AddBackend => {
                // New connections must reach the new backend (p = 1/5 each): 3 s more
                // make some 40 of them after the activation.
                settle += Duration::from_secs(3);
                vec![
                    (CHANGE_AT, Event::Table(IN_TABLE, "filling")),
                    (
                        CHANGE_AT + Duration::from_secs(2),
                        Event::Table(IN_TABLE, "active"),
                    ),
                ]
            }
            Scenario::Drain => vec![(CHANGE_AT, Event::Table(0, "draining"))],
            Scenario::RebindPort => vec![(CHANGE_AT, Event::Rebind(Rebind::Port))],
            Scenario::RebindAddr => vec![(CHANGE_AT, Event::Rebind(Rebind::Addr))],
            Scenario::DirectorChange => vec![
                (CHANGE_AT, Event::KillDirector(0)),
                (CHANGE_AT + WITHDRAW_AFTER, Event::Withdraw(0)),
                (CHANGE_AT + DIRECTOR_DOWN, Event::RestartDirector(0)),
            ],
        };
        let before = self.counters();
        let mut changes: Vec<(u128, String)> = Vec::new();
        let mut last_change = CHANGE_AT;
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        let (mut long_started, mut new_started) = (0, 0);
        let epoch = Instant::now();
        let mut next_new = epoch + NEW_EVERY;
        loop {
            let now = epoch.elapsed();
            let due = (LONG as u128 * now.as_millis() / RAMP.as_millis()).min(LONG as u128);
            while (long_started as u128) < due {
                let (t, i) = (traffic.clone(), long_started);
                let c = t.add(true);
                tasks.push(self.clients.spawn(run_long(t, c, i)));
                long_started += 1;
            }
            let (ready, later): (Vec<_>, Vec<_>) = events.drain(..).partition(|(at, _)| *at <= now);
            events = later;
            for (_, e) in ready {
                let note = match e {
                    Event::Table(b, state) => {
                        self.tables.set(b, state);
                        self.push_tables();
                        format!("backend {b} {state}, reloaded on every director")
                    }
                    Event::Rebind(r) => {
                        traffic.rebind.store(r as u8, Ordering::Relaxed);
                        format!("every long connection rebinds ({r:?}) after its next echo")
                    }
                    Event::KillDirector(d) => {
                        self.directors[d].kill();
                        format!("director {d} SIGKILLed")
                    }
                    Event::Withdraw(d) => {
                        let mut m = self.ecmp;
                        m[d] = false;
                        self.set_ecmp(m);
                        format!("director {d} left the router's ECMP group")
                    }
                    Event::RestartDirector(d) => {
                        self.directors[d].start();
                        self.set_ecmp([true; DIRECTORS]);
                        format!("director {d} restarted and back in the ECMP group")
                    }
                };
                let at = epoch.elapsed();
                last_change = last_change.max(at);
                changes.push((at.as_millis(), note));
            }
            let now = epoch.elapsed();
            let end = last_change + settle;
            if events.is_empty() && now >= end {
                break;
            }
            if Instant::now() >= next_new && (!events.is_empty() || now + NEW_TIMEOUT <= end) {
                let (t, i) = (traffic.clone(), new_started);
                let c = t.add(false);
                tasks.push(self.clients.spawn(new_conn(t, c, i)));
                new_started += 1;
                next_new += NEW_EVERY;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        traffic.stop.store(true, Ordering::Relaxed);
        self.clients.block_on(async {
            for t in tasks {
                t.await.expect("a client task panicked");
            }
        });
        let mut redirect = RedirectCounters::default();
        for (now, was) in self.counters().iter().zip(&before) {
            redirect.rx += now.rx.saturating_sub(was.rx);
            redirect.local += now.local.saturating_sub(was.local);
            redirect.forwarded += now.forwarded.saturating_sub(was.forwarded);
            redirect.forwarded_quic += now.forwarded_quic.saturating_sub(was.forwarded_quic);
            redirect.dropped += now.dropped.saturating_sub(was.dropped);
        }
        let (mut routed, mut hashed) = (0, 0);
        for d in &self.directors {
            let (r, h) = quic_counters(&d.ok("show fwd stats"));
            routed += r;
            hashed += h;
        }
        let mut r = Report {
            scenario: scenario.name(),
            mode: self.mode.name(),
            lived_on: vec![0; BACKENDS],
            alive_on: vec![0; BACKENDS],
            broken_on: vec![0; BACKENDS],
            new_per_backend: vec![0; BACKENDS],
            routed,
            hashed,
            redirect,
            changes,
            ..Report::default()
        };
        let mut errors: Vec<(String, usize)> = Vec::new();
        for c in traffic.conns.lock().unwrap().iter() {
            let o = c.outcome();
            let b = usize::from(c.backend.load(Ordering::Relaxed));
            let count = |v: &mut Vec<usize>| {
                if let Some(n) = v.get_mut(b) {
                    *n += 1;
                }
            };
            if !c.long {
                r.new_judged += 1;
                if o == Outcome::Completed {
                    r.new_ok += 1;
                    count(&mut r.new_per_backend);
                }
            } else {
                r.long_opened += 1;
                count(&mut r.lived_on);
                r.lost += c.lost.load(Ordering::Relaxed);
                r.rebound += usize::from(c.rebound.load(Ordering::Relaxed));
                r.max_gap_ms = r.max_gap_ms.max(c.max_gap.lock().unwrap().as_millis());
                match o {
                    Outcome::Open => {
                        r.long_alive += 1;
                        count(&mut r.alive_on);
                    }
                    Outcome::Completed => {}
                    Outcome::Closed => r.long_closed += 1,
                    Outcome::Stalled => r.long_stalled += 1,
                    Outcome::Corrupt => r.long_corrupt += 1,
                    Outcome::ConnectFailed => r.long_connect_failed += 1,
                }
                if !matches!(o, Outcome::Open | Outcome::Completed) {
                    count(&mut r.broken_on);
                }
            }
            if !matches!(o, Outcome::Open | Outcome::Completed) {
                let e = format!(
                    "{} {o:?}: {}",
                    if c.long { "long" } else { "new" },
                    c.error
                        .lock()
                        .unwrap()
                        .as_deref()
                        .unwrap_or("no echo progress")
                );
                match errors.iter_mut().find(|(x, _)| *x == e) {
                    Some((_, n)) => *n += 1,
                    None => errors.push((e, 1)),
                }
            }
        }
        errors.truncate(6);
        r.errors = errors;
        r.secs = t0.elapsed().as_secs_f64();
        r.load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_default();
        r
    }
}

/// What must hold for a run; the failures, if any.
fn judge(r: &Report) -> Vec<String> {
    let mut f = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            f.push(format!("{} (QUIC-LB {}): {what}", r.scenario, r.mode));
        }
    };
    check(r.long_opened >= LONG, "too few long connections");
    check(
        r.lived_on.iter().sum::<usize>() + r.broken() >= r.long_opened,
        "long connections neither broken nor saying where they live",
    );
    let rebinds = matches!(r.scenario, "rebind_port" | "rebind_addr");
    match r.mode {
        "off" => {
            // The hash alone: what moves a connection's row breaks it (the harness can fail).
            // A draining backend loses every connection it had.
            if rebinds || matches!(r.scenario, "add_backend" | "drain") {
                check(r.broken() > 0, "nothing broke with the hash alone");
            }
            check(r.redirect.forwarded == 0, "forwarded without second chance");
            check(r.routed == 0, "routed by CID without quic_lb");
        }
        "on" => {
            check(r.broken() == 0, "QUIC connections broke");
            check(r.new_judged >= 20, "too few new connections");
            check(r.new_ok == r.new_judged, "new connections failed");
            check(r.routed > 0, "no packet routed by CID");
            if rebinds {
                check(
                    r.rebound == r.long_alive,
                    "not every connection moved to its new socket",
                );
            }
        }
        "redirect" => {
            check(
                r.routed == 0,
                "routed by CID without quic_lb on the directors",
            );
            if !rebinds {
                check(r.broken() == 0, "QUIC connections broke");
                check(r.new_ok == r.new_judged, "new connections failed");
            }
            if matches!(r.scenario, "add_backend" | "drain") {
                check(
                    r.redirect.forwarded_quic > 0,
                    "QUIC's second chance never used",
                );
            }
        }
        _ => {}
    }
    if r.mode != "off" {
        match r.scenario {
            "add_backend" => check(
                r.new_per_backend[IN_TABLE] > 0,
                "the new backend served nothing",
            ),
            "drain" => check(
                r.alive_on[0] > 0,
                "the draining backend lost its connections",
            ),
            _ => {}
        }
    }
    f
}

#[test]
fn quic_connections_survive_fleet_changes() {
    if let Err(why) = privileged() {
        return skip(&why);
    }
    if !Path::new("/dev/net/tun").exists() {
        return skip("no /dev/net/tun");
    }
    let t0 = Instant::now();
    let mut fleet = match Fleet::build() {
        Ok(f) => f,
        Err(e) => return skip(&format!("cannot create a network namespace: {e}")),
    };
    println!(
        "e2e_quic: fleet up in {:.1} s (namespaces {}, {}, ...)",
        t0.elapsed().as_secs_f64(),
        fleet.topo.c.name,
        fleet.topo.r.name
    );
    if let Ok(secs) = std::env::var("E2E_PAUSE") {
        println!("paused {secs} s");
        std::thread::sleep(Duration::from_secs(secs.parse().unwrap_or(60)));
    }
    // E2E_QUIC_ONLY=name,name and E2E_QUIC_MODES=on,off run only those (a developer's
    // shortcut; CI runs everything).
    let list = |var: &str| -> Option<Vec<String>> {
        std::env::var(var)
            .ok()
            .map(|v| v.split(',').map(str::to_string).collect())
    };
    let (only, modes) = (list("E2E_QUIC_ONLY"), list("E2E_QUIC_MODES"));
    let wanted =
        |l: &Option<Vec<String>>, n: &str| l.as_ref().is_none_or(|l| l.iter().any(|x| x == n));
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for mode in MODES {
        if !wanted(&modes, mode.name()) {
            continue;
        }
        for s in Scenario::ALL {
            if !wanted(&only, s.name()) {
                continue;
            }
            fleet.restore(mode);
            let r = fleet.run(s);
            println!("{}", r.line());
            failures.extend(judge(&r));
            reports.push(r);
        }
    }
    println!("{HEADER}");
    for r in &reports {
        println!("{}", r.row());
    }
    println!(
        "e2e_quic: {} runs in {:.0} s",
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
