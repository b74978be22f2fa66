//! A backend: GUE in, the real second-chance [`decide`], then either its own smoltcp stack
//! (an echo server listening on the VIP) or the real [`forward::build`] to the next hop.

use std::net::{IpAddr, Ipv4Addr};

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::socket::AnySocket;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;

use super::net::{backend_ip, interface, SimDevice, VIP, VIP_PORT};
use super::SimError;
use rondo::redirect::decide::{
    decide, AddrSet, AlwaysLocal, Decision, FlowKey, Outer, Policy, SocketLookup, SocketState,
};
use rondo::redirect::forward::{self, Received};
use rondo::wire::{ip_proto, Ipv4Packet, UdpPacket};

/// Spare listening sockets kept on the VIP (smoltcp turns a listener into the connection).
const LISTENERS: usize = 24;
/// Socket buffer size, each direction.
const SOCKET_BUF: usize = 4096;

/// What a backend did with the GUE packets it received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendStats {
    pub local: u64,
    pub forwarded: u64,
    pub dropped: u64,
    pub malformed: u64,
}

/// One backend host.
pub struct Backend {
    pub index: usize,
    pub alive: bool,
    /// Second chance on; off, every packet is delivered locally.
    pub second_chance: bool,
    pub dev: SimDevice,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    policy: Policy,
    pub stats: BackendStats,
    /// Client ends (address, port) of every connection opening (a SYN without ACK) this
    /// backend took into its own stack, in order: where each connection landed.
    pub accepted: Vec<(Ipv4Addr, u16)>,
}

/// The backend's socket set, as the decision sees the kernel.
struct SetLookup<'a>(&'a SocketSet<'static>);

impl SocketLookup for SetLookup<'_> {
    fn lookup(&mut self, flow: &FlowKey) -> SocketState {
        let mut listener = false;
        for (_, s) in self.0.iter() {
            let Some(t) = tcp::Socket::downcast(s) else {
                continue;
            };
            match t.state() {
                tcp::State::Closed => {}
                tcp::State::Listen => listener |= t.listen_endpoint().port == flow.dport,
                _ => {
                    let (Some(l), Some(r)) = (t.local_endpoint(), t.remote_endpoint()) else {
                        continue;
                    };
                    if same(l.addr, flow.dst)
                        && l.port == flow.dport
                        && same(r.addr, flow.src)
                        && r.port == flow.sport
                    {
                        return SocketState::Flow;
                    }
                }
            }
        }
        if listener {
            SocketState::Listener
        } else {
            SocketState::Absent
        }
    }

    fn syncookies_in_use(&mut self) -> bool {
        false
    }
}

fn same(a: IpAddress, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddress::Ipv4(a), IpAddr::V4(b)) => a == b,
        _ => false,
    }
}

impl Backend {
    pub fn new(
        index: usize,
        directors: AddrSet,
        backends: AddrSet,
        second_chance: bool,
        seed: u64,
        now: Instant,
    ) -> Result<Backend, SimError> {
        let mut dev = SimDevice::default();
        let iface = interface(&mut dev, VIP, seed, now)?;
        let mut b = Backend {
            index,
            alive: true,
            second_chance,
            dev,
            iface,
            sockets: SocketSet::new(Vec::new()),
            policy: Policy {
                directors,
                backends,
                own: vec![IpAddr::V4(backend_ip(index))],
                hop_limit: 3,
                subnet_broadcasts: rondo::redirect::decide::SubnetBroadcasts::default(),
                quic: None,
            },
            stats: BackendStats::default(),
            accepted: Vec::new(),
        };
        b.replenish();
        Ok(b)
    }

    /// Handle one GUE datagram (an outer IPv4 packet); returns a packet to forward, with its
    /// next hop.
    pub fn on_gue(&mut self, ip: &[u8]) -> Option<(Ipv4Addr, Vec<u8>)> {
        let Some((outer, sport, tos, payload)) = parse_outer(ip) else {
            self.stats.malformed += 1;
            return None;
        };
        let d = if self.second_chance {
            decide(payload, &outer, &self.policy, &mut SetLookup(&self.sockets))
        } else {
            decide(payload, &outer, &self.policy, &mut AlwaysLocal)
        };
        match d {
            Decision::Local { inner, .. } => match payload.get(inner) {
                Some(p) => {
                    self.stats.local += 1;
                    if let Some(end) = syn_from(p) {
                        self.accepted.push(end);
                    }
                    self.dev.rx.push_back(p.to_vec());
                    None
                }
                None => {
                    self.stats.malformed += 1;
                    None
                }
            },
            Decision::Forward { to, next_hop, .. } => {
                let IpAddr::V4(to4) = to else {
                    self.stats.dropped += 1;
                    return None;
                };
                let rx = Received { outer, sport, tos };
                let mut out = vec![0u8; ip.len() + 64];
                match forward::build(&mut out, payload, &rx, to, next_hop) {
                    Ok(n) => {
                        out.truncate(n);
                        self.stats.forwarded += 1;
                        Some((to4, out))
                    }
                    Err(e) => {
                        tracing::debug!(backend = self.index, error = %e, "forward failed");
                        self.stats.dropped += 1;
                        None
                    }
                }
            }
            Decision::Drop(r) => {
                tracing::debug!(backend = self.index, reason = r.name(), "GUE dropped");
                self.stats.dropped += 1;
                None
            }
        }
    }

    /// Run the stack and the echo server; returns the IP packets the stack sent.
    pub fn step(&mut self, now: Instant) -> Vec<Vec<u8>> {
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        self.serve();
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        std::mem::take(&mut self.dev.tx)
    }

    /// Echo what each connection received; close when the client did; reap closed sockets.
    fn serve(&mut self) {
        let mut buf = [0u8; SOCKET_BUF];
        let mut closed: Vec<SocketHandle> = Vec::new();
        for (h, s) in self.sockets.iter_mut() {
            let Some(t) = tcp::Socket::downcast_mut(s) else {
                continue;
            };
            match t.state() {
                tcp::State::Listen => {}
                tcp::State::Closed => closed.push(h),
                _ => {
                    let room = t.send_capacity() - t.send_queue();
                    if t.can_recv() && room > 0 {
                        if let Ok(n) = t.recv_slice(&mut buf[..room.min(SOCKET_BUF)]) {
                            // fits: at most `room` bytes were taken
                            let _ = t.send_slice(&buf[..n]);
                        }
                    }
                    if t.state() == tcp::State::CloseWait && !t.can_recv() && t.send_queue() == 0 {
                        t.close();
                    }
                }
            }
        }
        for h in closed {
            self.sockets.remove(h);
        }
        self.replenish();
    }

    fn replenish(&mut self) {
        let listening = self
            .sockets
            .iter()
            .filter_map(|(_, s)| tcp::Socket::downcast(s))
            .filter(|t| t.state() == tcp::State::Listen)
            .count();
        for _ in listening..LISTENERS {
            let mut t = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
                tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
            );
            if t.listen(VIP_PORT).is_ok() {
                self.sockets.add(t);
            }
        }
    }

    /// The client ends (address, port) of every connection this backend holds.
    pub fn flows(&self) -> Vec<(Ipv4Addr, u16)> {
        self.sockets
            .iter()
            .filter_map(|(_, s)| tcp::Socket::downcast(s))
            .filter(|t| !matches!(t.state(), tcp::State::Listen | tcp::State::Closed))
            .filter_map(|t| match t.remote_endpoint()? {
                smoltcp::wire::IpEndpoint {
                    addr: IpAddress::Ipv4(a),
                    port,
                } => Some((a, port)),
                #[allow(unreachable_patterns)]
                _ => None,
            })
            .collect()
    }
}

/// The client end (source address, port) of an IPv4 TCP connection opening (SYN, no ACK).
fn syn_from(ip: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let p = Ipv4Packet::new_checked(ip).ok()?;
    if p.protocol() != ip_proto::TCP {
        return None;
    }
    let tcp = ip.get(p.header_len()..)?;
    let flags = *tcp.get(13)?;
    (flags & 0x12 == 0x02).then(|| (p.src_addr(), u16::from_be_bytes([tcp[0], tcp[1]])))
}

/// Outer IPv4/UDP of a GUE datagram: (outer facts, UDP source port, TOS, UDP payload).
fn parse_outer(ip: &[u8]) -> Option<(Outer, u16, u8, &[u8])> {
    let p = Ipv4Packet::new_checked(ip).ok()?;
    if p.protocol() != ip_proto::UDP {
        return None;
    }
    let outer = Outer {
        src: IpAddr::V4(p.src_addr()),
        dst: IpAddr::V4(p.dst_addr()),
        ttl: p.ttl(),
    };
    let tos = p.dscp_ecn();
    let hl = p.header_len();
    let total = usize::from(p.total_len()).min(ip.len());
    let udp = UdpPacket::new_checked(ip.get(hl..total)?).ok()?;
    let sport = udp.src_port();
    // new_checked: 8 <= len <= the bytes after the IP header.
    let payload = ip.get(hl + 8..hl + usize::from(udp.len()))?;
    Some((outer, sport, tos, payload))
}
