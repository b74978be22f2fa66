//! The simulated network: virtual devices, addresses and ECMP.
//!
//! Every host's smoltcp interface runs over a [`SimDevice`] (medium IP: no ARP, frames are
//! IP packets). The runner moves what a host transmitted to where its destination address
//! lives, one link per tick.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use super::SimError;

/// The service every backend serves and every client connects to.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);
/// The service's TCP port.
pub const VIP_PORT: u16 = 80;
/// MTU of every simulated link (inner packets; GUE adds its overhead on top).
pub const MTU: usize = 1400;

/// Address of client host `i`.
pub fn client_ip(i: usize) -> Ipv4Addr {
    host(1, i)
}
/// Address of backend `i` (the outer GUE address).
pub fn backend_ip(i: usize) -> Ipv4Addr {
    host(2, i)
}
/// Address of director `i` (its `outbound_src_ip`).
pub fn director_ip(i: usize) -> Ipv4Addr {
    host(3, i)
}

fn host(net: u8, i: usize) -> Ipv4Addr {
    let i = i as u32 + 1;
    Ipv4Addr::new(10, net, (i >> 8) as u8, i as u8)
}

/// Index of `a` among addresses made by `f` for `net`, if it is one of them.
fn index_in(a: Ipv4Addr, net: u8) -> Option<usize> {
    let o = a.octets();
    if o[0] != 10 || o[1] != net {
        return None;
    }
    (usize::from(o[2]) << 8 | usize::from(o[3])).checked_sub(1)
}

/// Which client host owns `a`.
pub fn client_index(a: Ipv4Addr) -> Option<usize> {
    index_in(a, 1)
}
/// Which backend owns `a`.
pub fn backend_index(a: Ipv4Addr) -> Option<usize> {
    index_in(a, 2)
}

/// A virtual NIC: packets queued for the stack, packets the stack sent.
#[derive(Debug, Default)]
pub struct SimDevice {
    pub rx: VecDeque<Vec<u8>>,
    pub tx: Vec<Vec<u8>>,
}

pub struct SimRx(Vec<u8>);
pub struct SimTx<'a>(&'a mut Vec<Vec<u8>>);

impl RxToken for SimRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for SimTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0; len];
        let r = f(&mut b);
        self.0.push(b);
        r
    }
}

impl Device for SimDevice {
    type RxToken<'a> = SimRx;
    type TxToken<'a> = SimTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(SimRx, SimTx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((SimRx(p), SimTx(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<SimTx<'_>> {
        Some(SimTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = MTU;
        c
    }
}

/// A smoltcp interface over `dev` owning `addr`, with every simulated host on link (/8).
pub fn interface(
    dev: &mut SimDevice,
    addr: Ipv4Addr,
    seed: u64,
    now: Instant,
) -> Result<Interface, SimError> {
    let mut cfg = Config::new(HardwareAddress::Ip);
    cfg.random_seed = seed;
    let mut iface = Interface::new(cfg, dev, now);
    let mut ok = false;
    iface.update_ip_addrs(|a| ok = a.push(IpCidr::new(IpAddress::Ipv4(addr), 8)).is_ok());
    if ok {
        Ok(iface)
    } else {
        Err(SimError::Address(addr))
    }
}

/// The 5-tuple of an IPv4 packet, as a router's ECMP hash sees it.
pub fn five_tuple(ip: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u8, u16, u16)> {
    let p = rondo::wire::Ipv4Packet::new_checked(ip).ok()?;
    let l4 = p.payload();
    let ports = |o: usize| l4.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    Some((
        p.src_addr(),
        p.dst_addr(),
        p.protocol(),
        ports(0).unwrap_or(0),
        ports(2).unwrap_or(0),
    ))
}

/// ECMP: which of `live` next hops carries `ip` (FNV-1a of the 5-tuple, stable per flow).
pub fn ecmp(ip: &[u8], live: &[usize]) -> Option<usize> {
    if live.is_empty() {
        return None;
    }
    let (s, d, p, sp, dp) = five_tuple(ip)?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = s
        .octets()
        .into_iter()
        .chain(d.octets())
        .chain([p])
        .chain(sp.to_be_bytes())
        .chain(dp.to_be_bytes());
    for b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    live.get((h % live.len() as u64) as usize).copied()
}

/// MAC of the simulated router in front of the directors.
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
/// MAC every director owns.
pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// `ip` in an Ethernet II frame from the router to a director.
pub fn to_director_frame(ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend_from_slice(&DIRECTOR_MAC);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for i in [0, 1, 254, 255, 300] {
            assert_eq!(client_index(client_ip(i)), Some(i));
            assert_eq!(backend_index(backend_ip(i)), Some(i));
            assert_eq!(backend_index(client_ip(i)), None);
        }
        assert_eq!(backend_index(Ipv4Addr::new(10, 2, 0, 0)), None);
    }

    #[test]
    fn ecmp_is_stable_and_spreads() {
        let mut counts = [0usize; 3];
        for port in 0..300u16 {
            let mut p = vec![0u8; 40];
            p[0] = 0x45;
            p[3] = 40;
            p[8] = 64;
            p[9] = 6;
            p[12..16].copy_from_slice(&[10, 1, 0, 1]);
            p[16..20].copy_from_slice(&VIP.octets());
            rondo::wire::Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
            p[20..22].copy_from_slice(&(10000 + port).to_be_bytes());
            let a = ecmp(&p, &[0, 1, 2]).unwrap();
            assert_eq!(ecmp(&p, &[0, 1, 2]), Some(a));
            counts[a] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
        assert_eq!(ecmp(&[0u8; 40], &[]), None);
    }
}
