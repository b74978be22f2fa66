//! A client host: long-lived connections that stream data and check the echo, and short
//! connections (send a request, read the echo, close), as smoltcp sockets.

use std::net::Ipv4Addr;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;

use super::net::{client_ip, interface, SimDevice, VIP, VIP_PORT};
use super::SimError;

/// Socket buffer size, each direction.
const SOCKET_BUF: usize = 4096;
/// First ephemeral port; ports are handed out in order, so runs are reproducible.
const FIRST_PORT: u16 = 20000;

/// Long-lived (streaming until the end, or until its lifetime) or short (one request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Long,
    Short,
}

/// How a connection ended (or not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Open,
    /// Short: the whole echo came back. Long: closed gracefully after its lifetime.
    Completed,
    /// Closed without our asking: a RST, or the connection attempt refused.
    Reset,
    /// Data outstanding and no progress for the stall limit.
    Stalled,
    /// The echo differed from what was sent.
    Corrupt,
}

/// One connection and what it has seen.
#[derive(Debug, Clone)]
pub struct Conn {
    pub handle: SocketHandle,
    pub kind: Kind,
    pub port: u16,
    pub opened_at: i64,
    /// Long connections close once this time has passed (and the echo caught up).
    pub close_after: Option<i64>,
    pub sent: u64,
    pub echoed: u64,
    pub last_progress: i64,
    next_send: i64,
    closing: bool,
    pub outcome: Outcome,
    /// Set when the backend holding this connection was killed: not counted as broken.
    pub on_killed_backend: bool,
    /// Socket still in the set.
    live: bool,
}

impl Conn {
    /// Stream byte `i` of the connection on `port` (what the echo must return).
    fn byte(port: u16, i: u64) -> u8 {
        (i % 251) as u8 ^ port as u8
    }
}

/// Sizes and rates of the traffic.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    /// Long connections send this many bytes...
    pub chunk: usize,
    /// ...every this many milliseconds.
    pub interval_ms: i64,
    /// Bytes a short connection sends (and expects back).
    pub request: usize,
    /// No progress for this long with data outstanding: stalled.
    pub stall_ms: i64,
}

pub struct Client {
    pub index: usize,
    pub dev: SimDevice,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub conns: Vec<Conn>,
    next_port: u16,
    traffic: Traffic,
}

impl Client {
    pub fn new(
        index: usize,
        traffic: Traffic,
        seed: u64,
        now: Instant,
    ) -> Result<Client, SimError> {
        let mut dev = SimDevice::default();
        let iface = interface(&mut dev, client_ip(index), seed, now)?;
        Ok(Client {
            index,
            dev,
            iface,
            sockets: SocketSet::new(Vec::new()),
            conns: Vec::new(),
            next_port: FIRST_PORT,
            traffic,
        })
    }

    pub fn ip(&self) -> Ipv4Addr {
        client_ip(self.index)
    }

    /// Open a connection to the VIP; `false` when out of ports or smoltcp refuses.
    pub fn open(&mut self, kind: Kind, now_ms: i64, close_after: Option<i64>) -> bool {
        let Some(port) = self.next_port.checked_add(1) else {
            return false;
        };
        self.next_port = port;
        let mut t = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
            tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
        );
        if let Err(e) = t.connect(self.iface.context(), (IpAddress::Ipv4(VIP), VIP_PORT), port) {
            tracing::warn!(client = self.index, port, error = %e, "connect refused");
            return false;
        }
        let handle = self.sockets.add(t);
        self.conns.push(Conn {
            handle,
            kind,
            port,
            opened_at: now_ms,
            close_after,
            sent: 0,
            echoed: 0,
            last_progress: now_ms,
            next_send: now_ms,
            closing: false,
            outcome: Outcome::Open,
            on_killed_backend: false,
            live: true,
        });
        true
    }

    /// Run the stack and the application; returns the IP packets the stack sent.
    pub fn step(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let now_ms = now.total_millis();
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        self.app(now_ms);
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        std::mem::take(&mut self.dev.tx)
    }

    fn app(&mut self, now: i64) {
        let tr = self.traffic;
        let mut buf = [0u8; SOCKET_BUF];
        for c in self.conns.iter_mut().filter(|c| c.live) {
            let t = self.sockets.get_mut::<tcp::Socket>(c.handle);
            let state = t.state();
            if c.outcome != Outcome::Open {
                if matches!(state, tcp::State::Closed | tcp::State::TimeWait) {
                    self.sockets.remove(c.handle);
                    c.live = false;
                }
                continue;
            }
            // Read the echo and check it.
            while t.can_recv() {
                let Ok(n) = t.recv_slice(&mut buf) else { break };
                if n == 0 {
                    break;
                }
                let ok = buf[..n]
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == Conn::byte(c.port, c.echoed + i as u64));
                c.echoed += n as u64;
                c.last_progress = now;
                if !ok || c.echoed > c.sent {
                    c.outcome = Outcome::Corrupt;
                }
            }
            if c.outcome != Outcome::Open {
                t.abort();
                continue;
            }
            match state {
                tcp::State::Closed | tcp::State::TimeWait if c.closing => {
                    c.outcome = Outcome::Completed;
                    continue;
                }
                tcp::State::Closed => {
                    c.outcome = Outcome::Reset;
                    continue;
                }
                _ => {}
            }
            let outstanding = c.echoed < c.sent || state == tcp::State::SynSent;
            if outstanding && now - c.last_progress > tr.stall_ms {
                c.outcome = Outcome::Stalled;
                tracing::debug!(client = self.index, port = c.port, ?state, "stalled");
                continue;
            }
            if c.closing || !t.may_send() {
                continue;
            }
            let want = match c.kind {
                Kind::Short if c.sent == 0 => tr.request,
                Kind::Short => 0,
                Kind::Long if now >= c.next_send => tr.chunk,
                Kind::Long => 0,
            };
            if want > 0 && t.send_capacity() - t.send_queue() >= want {
                for (i, b) in buf[..want].iter_mut().enumerate() {
                    *b = Conn::byte(c.port, c.sent + i as u64);
                }
                if let Ok(n) = t.send_slice(&buf[..want]) {
                    if c.echoed == c.sent {
                        c.last_progress = now; // the stall clock starts with the data
                    }
                    c.sent += n as u64;
                    c.next_send = now + tr.interval_ms;
                }
            }
            let done = match c.kind {
                Kind::Short => c.sent > 0 && c.echoed == c.sent,
                Kind::Long => c.close_after.is_some_and(|t| now >= t) && c.echoed == c.sent,
            };
            if done {
                t.close();
                c.closing = true;
            }
        }
    }

    /// Mark the connections whose server end is one of `flows` (client address, port).
    pub fn mark_killed(&mut self, flows: &[(Ipv4Addr, u16)]) {
        let ip = self.ip();
        for c in &mut self.conns {
            if c.outcome == Outcome::Open && flows.contains(&(ip, c.port)) {
                c.on_killed_backend = true;
            }
        }
    }
}
