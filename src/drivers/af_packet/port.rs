//! The port: checking the interface, and opening the RX and TX sockets with their rings
//! (fanout group, start-up filter, promiscuous mode).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::ring::{
    page_size, rx_frame_size_v2, rx_ring_req, tx_frame_size, tx_ring_req, Ring, RxReq,
};
use super::rx::{kernel_drops, AfPacketRx, V2Walk, V3Walk, Walk};
use super::tx::AfPacketTx;
use super::{uapi, AfPacketOptions, RxRing, ETH_HLEN, L2_OVERHEAD, MAX_QUEUES};
use crate::drivers::{
    BufPool, DriverError, LinkInfo, PoolBuf, Port, PortCounters as Counters, PortStats,
};
use crate::sys::iface::{check_ifname, ifindex, IfCtl};
use crate::sys::link::{LinkEvent, LinkWatch};
use crate::sys::socket::{bind_ll, getsockopt, new_socket, setsockopt};
use crate::wire::MacAddr;

/// A Linux network interface driven through `AF_PACKET` sockets with mmap'd rings.
pub struct AfPacketPort {
    name: String,
    iface: String,
    ifindex: u32,
    mac: MacAddr,
    /// The MTU at open, which sized the rings.
    open_mtu: usize,
    /// The MTU as last read ([`AfPacketPort::refresh_mtu`]); every TX queue loads it once
    /// per burst.
    mtu: Arc<AtomicUsize>,
    /// Interface ioctls (MTU re-reads) from the control side.
    ctl: IfCtl,
    /// The link as the kernel's notifications report it ([`AfPacketPort::watch_link`]);
    /// control side only (the main loop, the console and metrics threads).
    link: Mutex<LinkTrack>,
    opts: AfPacketOptions,
    tx_frame_size: usize,
    pool: BufPool,
    counters: Arc<Counters>,
    /// The RX sockets, to read the kernel's drop counters; weak so a dropped queue closes
    /// its socket.
    rx_socks: Vec<Weak<OwnedFd>>,
    fanout_group: Option<u16>,
    queues_taken: bool,
    exception_taken: bool,
}

impl std::fmt::Debug for AfPacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketPort")
            .field("iface", &self.iface)
            .field("ifindex", &self.ifindex)
            .field("mac", &self.mac)
            .field("mtu", &self.mtu())
            .field("opts", &self.opts)
            .field("fanout_group", &self.fanout_group)
            .finish()
    }
}

/// What the port knows of its interface's link.
#[derive(Debug)]
struct LinkTrack {
    /// The netlink subscription; `None` when it could not be opened (or failed): then the
    /// state is re-read by ioctl at every poll.
    watch: Option<LinkWatch>,
    /// Up and running (`IFF_UP` and `IFF_RUNNING`).
    up: bool,
    /// Transitions of `up` since open.
    changes: u64,
    /// The interface's name now, when it was renamed after open.
    renamed: Option<String>,
    /// Why the port can never forward again (interface deleted or replaced).
    gone: Option<String>,
}

const UP_RUNNING: i32 = libc::IFF_UP | libc::IFF_RUNNING;

fn port_err(port: &str, reason: impl Into<String>) -> DriverError {
    DriverError::Port {
        port: port.to_string(),
        reason: reason.into(),
    }
}

/// An OS error during start-up, with the common causes spelled out.
fn os_err(port: &str, op: &'static str, e: io::Error) -> DriverError {
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => "needs root or CAP_NET_RAW",
        Some(libc::ENODEV) | Some(libc::ENXIO) => "no such interface",
        Some(libc::ENETDOWN) => "interface is down",
        Some(libc::EAFNOSUPPORT) => {
            "AF_PACKET sockets are not available (kernel without CONFIG_PACKET?)"
        }
        _ => {
            return DriverError::Os {
                port: port.to_string(),
                op,
                source: e,
            }
        }
    };
    port_err(port, format!("{op}: {hint} ({e})"))
}

impl AfPacketPort {
    /// Open interface `iface`: checks the name, that it exists, is up and is Ethernet, and
    /// that this process may open packet sockets. The rings are made by
    /// [`Port::take_queues`] and [`Port::take_exception_tx`]. Frames are copied into
    /// buffers from `pool`.
    pub fn open(
        iface: &str,
        pool: BufPool,
        opts: AfPacketOptions,
    ) -> Result<AfPacketPort, DriverError> {
        let name = format!("af_packet:{iface}");
        check_ifname(iface).map_err(|r| port_err(&name, r))?;
        let ifindex =
            ifindex(iface).map_err(|e| port_err(&name, format!("no such interface ({e})")))?;
        let probe = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
            .map_err(|e| os_err(&name, "opening an AF_PACKET socket", e))?;
        // Interface ioctls go through the packet socket.
        let ctl = IfCtl::with_socket(probe);

        let flags = i32::from(
            ctl.flags(iface)
                .map_err(|e| os_err(&name, "reading the interface flags", e))?,
        );
        if flags & libc::IFF_UP == 0 {
            return Err(port_err(
                &name,
                format!("interface is down (bring it up first: ip link set {iface} up)"),
            ));
        }
        if flags & libc::IFF_RUNNING == 0 {
            tracing::warn!(port = %name, "interface has no carrier (link down); frames may not flow");
        }
        let (hwtype, mac) = ctl
            .hwaddr(iface)
            .map_err(|e| os_err(&name, "reading the MAC address", e))?;
        let mac = MacAddr(mac);
        if hwtype != libc::ARPHRD_ETHER {
            return Err(port_err(
                &name,
                format!("not an Ethernet interface (link type {hwtype}, ARPHRD_ETHER is 1)"),
            ));
        }
        let mtu = ctl
            .mtu(iface)
            .map_err(|e| os_err(&name, "reading the MTU", e))?;
        let mtu = usize::try_from(mtu).unwrap_or(1500);
        let watch = match LinkWatch::open() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(port = %name, "no link notifications (netlink: {e}); the link is re-read by ioctl once a second instead");
                None
            }
        };

        rx_ring_req(&opts, mtu, page_size()).map_err(|r| port_err(&name, r))?;
        if !opts.frame_size.is_multiple_of(16) {
            return Err(port_err(
                &name,
                format!("frame_size {} must be a multiple of 16", opts.frame_size),
            ));
        }
        if pool.data_room() < mtu + L2_OVERHEAD {
            tracing::warn!(
                port = %name,
                mtu,
                data_room = pool.data_room(),
                "buffer data room is smaller than the MTU plus headers; larger frames are dropped"
            );
        }
        Ok(AfPacketPort {
            tx_frame_size: tx_frame_size(opts.frame_size, mtu),
            name,
            iface: iface.to_string(),
            ifindex,
            mac,
            open_mtu: mtu,
            mtu: Arc::new(AtomicUsize::new(mtu)),
            ctl,
            link: Mutex::new(LinkTrack {
                watch,
                up: flags & UP_RUNNING == UP_RUNNING,
                changes: 0,
                renamed: None,
                gone: None,
            }),
            opts,
            pool,
            counters: Arc::default(),
            rx_socks: Vec::new(),
            fanout_group: None,
            queues_taken: false,
            exception_taken: false,
        })
    }

    /// The interface name.
    pub fn iface(&self) -> &str {
        &self.iface
    }
    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    /// The interface MTU as the port last read it: at open, then at every
    /// [`AfPacketPort::refresh_mtu`] (which [`Port::poll`] and [`Port::stats`] call).
    pub fn mtu(&self) -> usize {
        self.mtu.load(Ordering::Relaxed)
    }

    /// The longest frame a TX ring slot holds; sized at open for the MTU then, so frames
    /// longer than this stay refused (`tx_too_big`) whatever the MTU is raised to.
    pub fn tx_ring_max_frame(&self) -> usize {
        self.tx_frame_size - uapi::V2_DATA
    }

    /// The longest frame a `TPACKET_V2` RX slot holds (sized at open for the MTU then);
    /// `None` with a V3 ring, whose frames are only bounded by the block.
    pub fn rx_slot_max(&self) -> Option<usize> {
        (self.opts.rx_ring == RxRing::V2).then(|| {
            rx_frame_size_v2(self.opts.frame_size, self.open_mtu) - (uapi::V2_RX_NETOFF - ETH_HLEN)
        })
    }

    /// Read the interface MTU again and publish it to the TX queues, which refuse longer
    /// frames from their next burst on (`tx_too_big`). A change is logged once. One ioctl:
    /// control side only, never per packet. Returns the MTU now in force.
    pub fn refresh_mtu(&self) -> usize {
        let new = match self.ctl.mtu(&self.iface) {
            Ok(m) => match usize::try_from(m) {
                Ok(m) => m,
                Err(_) => return self.mtu(),
            },
            // Interface gone or renamed: keep the last value; the TX kicks count errors.
            Err(e) => {
                tracing::debug!(port = %self.name, "re-reading the MTU: {e}");
                return self.mtu();
            }
        };
        let old = self.mtu.swap(new, Ordering::Relaxed);
        if old != new {
            let ring_max = self.tx_ring_max_frame();
            let tx = if new + L2_OVERHEAD > ring_max {
                format!(
                    "the TX ring slots, sized for MTU {} at start, hold frames of at most \
                     {ring_max} bytes: longer ones stay refused (tx_too_big) until the port is \
                     reopened (restart)",
                    self.open_mtu
                )
            } else {
                "frames longer than the new MTU are refused (tx_too_big)".to_string()
            };
            let rx = match self.rx_slot_max() {
                Some(max) if new + L2_OVERHEAD > max => format!(
                    "; the V2 RX slots hold received frames of at most {max} bytes: longer \
                     ones are cut short and counted as rx_errors until a restart"
                ),
                _ => String::new(),
            };
            tracing::info!(port = %self.name, old, new, "interface MTU changed; {tx}{rx}");
        }
        new
    }
    /// Read the kernel's link notifications queued since the last call and follow the
    /// interface: a carrier or administrative down/up is logged once per transition (warn
    /// on down, info on up) and counted; forwarding simply resumes when the link is back,
    /// since the sockets stay bound to the interface. Deleted, or replaced by a new
    /// interface of the same name (another index: the sockets are bound to the old one and
    /// would never see a frame again), the port is [`Port::gone`]. Control side only.
    /// When events were lost (socket overrun) or there is no subscription, the state is
    /// re-read by ioctl instead.
    pub fn watch_link(&self) {
        let mut t = self.link.lock().unwrap_or_else(PoisonError::into_inner);
        if t.gone.is_some() {
            return;
        }
        let polled = t.watch.as_mut().map(LinkWatch::poll);
        let mut resync = polled.is_none();
        match polled {
            Some(Ok(batch)) => {
                resync |= batch.lost;
                if batch.malformed > 0 {
                    tracing::warn!(port = %self.name, malformed = batch.malformed, "link notifications rejected as malformed; re-reading the link");
                }
                for ev in &batch.events {
                    self.apply_link_event(&mut t, ev);
                }
            }
            Some(Err(e)) => {
                tracing::warn!(port = %self.name, "reading link notifications failed ({e}); the link is re-read by ioctl once a second from now on");
                t.watch = None;
                resync = true;
            }
            None => {}
        }
        if resync && t.gone.is_none() {
            self.resync_link(&mut t);
        }
    }

    fn apply_link_event(&self, t: &mut LinkTrack, ev: &LinkEvent) {
        if t.gone.is_some() {
            return;
        }
        let ours = t.renamed.as_deref().unwrap_or(&self.iface);
        if ev.ifindex == self.ifindex {
            if ev.deleted {
                t.gone = Some(format!(
                    "interface {} (index {}) was deleted or moved to another network namespace",
                    ours, self.ifindex
                ));
                return;
            }
            if let Some(n) = ev.name.as_deref().filter(|n| *n != ours) {
                tracing::warn!(port = %self.name, old = ours, new = n, "interface renamed; forwarding continues on it (the sockets are bound to its index {}), MTU re-reads by the old name fail until a restart", self.ifindex);
                t.renamed = Some(n.to_string());
            }
            self.set_link_up(t, ev.is_up());
        } else if !ev.deleted && t.renamed.is_none() && ev.name.as_deref() == Some(&self.iface) {
            t.gone = Some(format!(
                "interface {} was replaced: it has index {} now, the port is bound to index {}, which is gone (deleted and recreated)",
                self.iface, ev.ifindex, self.ifindex
            ));
        }
    }

    /// The link state by ioctl (no notification to go by).
    fn resync_link(&self, t: &mut LinkTrack) {
        if t.renamed.is_some() {
            return; // the name no longer leads to our interface
        }
        match ifindex(&self.iface) {
            Ok(i) if i == self.ifindex => {}
            Ok(i) => {
                t.gone = Some(format!(
                    "interface {} was replaced: it has index {i} now, the port is bound to index {}, which is gone (deleted and recreated)",
                    self.iface, self.ifindex
                ));
                return;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                t.gone = Some(format!(
                    "interface {} (index {}) was deleted or moved to another network namespace",
                    self.iface, self.ifindex
                ));
                return;
            }
            Err(e) => {
                tracing::debug!(port = %self.name, "re-reading the interface index: {e}");
                return;
            }
        }
        match self.ctl.flags(&self.iface) {
            Ok(f) => self.set_link_up(t, i32::from(f) & UP_RUNNING == UP_RUNNING),
            Err(e) => tracing::debug!(port = %self.name, "re-reading the interface flags: {e}"),
        }
    }

    fn set_link_up(&self, t: &mut LinkTrack, up: bool) {
        if up == t.up {
            return;
        }
        t.up = up;
        t.changes += 1;
        if up {
            tracing::info!(port = %self.name, iface = %self.iface, "link up: forwarding resumes");
        } else {
            tracing::warn!(port = %self.name, iface = %self.iface, "link down (no carrier, or set down): nothing is received or sent until it is up again");
        }
    }

    /// The options the port was opened with.
    pub fn options(&self) -> &AfPacketOptions {
        &self.opts
    }
    /// The `PACKET_FANOUT` group of the RX sockets, once queues are taken (only with more
    /// than one queue).
    pub fn fanout_group(&self) -> Option<u16> {
        self.fanout_group
    }

    fn err(&self, op: &'static str, e: io::Error) -> DriverError {
        os_err(&self.name, op, e)
    }

    /// One RX socket with its ring. `fanout`: `None` for a lone queue, else the group to
    /// join (`None` inside: ask the kernel for a new id); returns the group joined.
    fn open_rx(
        &self,
        fanout: Option<Option<u16>>,
    ) -> Result<(AfPacketRx, Option<u16>), DriverError> {
        let req = rx_ring_req(&self.opts, self.open_mtu, page_size())
            .map_err(|r| port_err(&self.name, r))?;
        let fd = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
            .map_err(|e| self.err("opening an AF_PACKET socket", e))?;
        if fanout.is_some() {
            // Drop everything until the socket is in the fanout group, so that no frame is
            // read by two queues while the group is being formed.
            let drop_all = [libc::sock_filter {
                code: (libc::BPF_RET | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: 0,
            }];
            let prog = libc::sock_fprog {
                len: 1,
                filter: drop_all.as_ptr().cast_mut(),
            };
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
                .map_err(|e| self.err("attaching the start-up filter", e))?;
        }
        let (version, what) = match req {
            RxReq::V2(_) => (uapi::TPACKET_V2, "selecting TPACKET_V2"),
            RxReq::V3(_) => (uapi::TPACKET_V3, "selecting TPACKET_V3"),
        };
        setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_VERSION, &version)
            .map_err(|e| self.err(what, e))?;
        // Linux >= 4.20; older kernels are covered by the sll_pkttype check.
        let _ = setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_IGNORE_OUTGOING, &1i32);
        let set = match &req {
            RxReq::V2(r) => setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_RX_RING, r),
            RxReq::V3(r) => setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_RX_RING, r),
        };
        if let Err(e) = set {
            if e.raw_os_error() == Some(libc::ENOMEM) {
                return Err(port_err(
                    &self.name,
                    format!(
                        "setting up the RX ring: not enough memory for {} blocks of {} bytes \
                         (lower block_count or block_size) ({e})",
                        req.block_count(),
                        req.block_size()
                    ),
                ));
            }
            return Err(self.err("setting up the RX ring (PACKET_RX_RING)", e));
        }
        let ring_len = req.block_size() * req.block_count();
        let ring = Ring::map(&fd, ring_len).map_err(|e| self.err("mapping the RX ring", e))?;
        bind_ll(&fd, self.ifindex, libc::ETH_P_ALL as u16)
            .map_err(|e| self.err("binding to the interface", e))?;
        let mut joined = None;
        if let Some(group) = fanout {
            let id = self.join_fanout(&fd, group)?;
            joined = Some(id);
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, &0i32)
                .map_err(|e| self.err("removing the start-up filter", e))?;
        }
        if self.opts.promiscuous {
            let mreq = uapi::PacketMreq {
                ifindex: self.ifindex as i32,
                kind: uapi::PACKET_MR_PROMISC,
                ..Default::default()
            };
            setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(|e| self.err("enabling promiscuous mode", e))?;
        }
        let fd = Arc::new(fd);
        let walk = match req {
            RxReq::V2(r) => Walk::V2(V2Walk {
                block_size: r.block_size as usize,
                frame_size: r.frame_size as usize,
                per_block: (r.block_size / r.frame_size) as usize,
                frames: r.frame_nr as usize,
                next: 0,
            }),
            RxReq::V3(r) => Walk::V3(V3Walk {
                block_size: r.block_size as usize,
                block_count: r.block_nr as usize,
                block: 0,
                in_block: false,
                pkts_left: 0,
                offset: 0,
            }),
        };
        let rx = AfPacketRx {
            ring,
            fd,
            walk,
            pool: self.pool.clone(),
            counters: self.counters.clone(),
        };
        Ok((rx, joined))
    }

    /// Join fanout group `group` (or a new one the kernel picks); returns the group id.
    fn join_fanout(&self, fd: &OwnedFd, group: Option<u16>) -> Result<u16, DriverError> {
        let join = |id: u16, flags: u32| -> io::Result<()> {
            let with = u32::from(id) | ((uapi::PACKET_FANOUT_HASH | flags) << 16);
            match setsockopt(fd, libc::SOL_PACKET, uapi::PACKET_FANOUT, &with) {
                // Kernels before 6.4 may not know IGNORE_OUTGOING for groups; the frame
                // type check covers them.
                Err(e)
                    if e.raw_os_error() == Some(libc::EINVAL)
                        && flags & uapi::PACKET_FANOUT_FLAG_IGNORE_OUTGOING != 0 =>
                {
                    let without = u32::from(id)
                        | ((uapi::PACKET_FANOUT_HASH
                            | (flags & !uapi::PACKET_FANOUT_FLAG_IGNORE_OUTGOING))
                            << 16);
                    setsockopt(fd, libc::SOL_PACKET, uapi::PACKET_FANOUT, &without)
                }
                r => r,
            }
        };
        let flags = uapi::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
        match group {
            Some(id) => {
                join(id, flags).map_err(|e| {
                    port_err(
                        &self.name,
                        format!(
                            "joining PACKET_FANOUT group {id}: {e} (is the id used by another \
                             program with other settings? pick another fanout_group)"
                        ),
                    )
                })?;
                Ok(id)
            }
            None => {
                match join(0, flags | uapi::PACKET_FANOUT_FLAG_UNIQUEID) {
                    Ok(()) => {
                        let v: u32 = getsockopt(fd, libc::SOL_PACKET, uapi::PACKET_FANOUT)
                            .map_err(|e| self.err("reading the fanout group id", e))?;
                        Ok(v as u16)
                    }
                    // Kernels before 4.3 cannot pick an id: derive one from pid and ifindex.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        let id = (std::process::id() ^ (self.ifindex << 10)) as u16;
                        self.join_fanout(fd, Some(id))
                    }
                    Err(e) => Err(self.err("joining a new PACKET_FANOUT group", e)),
                }
            }
        }
    }

    /// One TX socket with its ring.
    fn open_tx(&self) -> Result<AfPacketTx, DriverError> {
        let req = tx_ring_req(self.tx_frame_size, page_size());
        let fd = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
            .map_err(|e| self.err("opening an AF_PACKET socket", e))?;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            uapi::PACKET_VERSION,
            &uapi::TPACKET_V2,
        )
        .map_err(|e| self.err("selecting TPACKET_V2", e))?;
        // Malformed frames are skipped by the kernel instead of stalling the ring.
        setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_LOSS, &1i32)
            .map_err(|e| self.err("setting PACKET_LOSS", e))?;
        // Room for a whole ring in flight; best effort (SNDBUFFORCE needs CAP_NET_ADMIN).
        let sndbuf =
            (req.block_size as usize * req.block_nr as usize).min(i32::MAX as usize) as i32;
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf).is_err() {
            let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf);
        }
        setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_TX_RING, &req)
            .map_err(|e| self.err("setting up the TX ring (PACKET_TX_RING)", e))?;
        let ring_len = req.block_size as usize * req.block_nr as usize;
        let ring = Ring::map(&fd, ring_len).map_err(|e| self.err("mapping the TX ring", e))?;
        // Protocol 0: the socket only sends, it receives nothing.
        bind_ll(&fd, self.ifindex, 0).map_err(|e| self.err("binding to the interface", e))?;
        let frame_size = req.frame_size as usize;
        Ok(AfPacketTx {
            ring,
            fd,
            block_size: req.block_size as usize,
            frame_size,
            per_block: req.block_size as usize / frame_size,
            frames: req.frame_nr as usize,
            next: 0,
            ring_max: frame_size - uapi::V2_DATA,
            mtu: self.mtu.clone(),
            last_queued: None,
            head: 0,
            refused_logged: None,
            refused_unlogged: 0,
            counters: self.counters.clone(),
        })
    }
}

impl Port for AfPacketPort {
    type Buf = PoolBuf;
    type Rx = AfPacketRx;
    type Tx = AfPacketTx;

    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> Option<MacAddr> {
        Some(self.mac)
    }

    /// `n` RX/TX pairs; with `n > 1` the RX sockets share one fanout group (flow hash).
    fn take_queues(&mut self, n: usize) -> Result<Vec<(AfPacketRx, AfPacketTx)>, DriverError> {
        if self.queues_taken {
            return Err(port_err(&self.name, "queues already taken"));
        }
        if n == 0 || n > MAX_QUEUES {
            return Err(port_err(
                &self.name,
                format!("{n} queues asked, between 1 and {MAX_QUEUES} possible"),
            ));
        }
        let mut group = (n > 1).then_some(self.opts.fanout_group);
        let mut queues = Vec::with_capacity(n);
        for _ in 0..n {
            let (rx, joined) = self.open_rx(group)?;
            if let Some(id) = joined {
                group = Some(Some(id));
                self.fanout_group = Some(id);
            }
            let tx = self.open_tx()?;
            queues.push((rx, tx));
        }
        self.rx_socks = queues
            .iter()
            .map(|(rx, _)| Arc::downgrade(&rx.fd))
            .collect();
        self.queues_taken = true;
        Ok(queues)
    }

    fn take_exception_tx(&mut self) -> Result<Option<AfPacketTx>, DriverError> {
        if self.exception_taken {
            return Err(port_err(&self.name, "exception TX queue already taken"));
        }
        let tx = self.open_tx()?;
        self.exception_taken = true;
        Ok(Some(tx))
    }

    /// Follows the link ([`AfPacketPort::watch_link`]) and re-reads the MTU
    /// ([`AfPacketPort::refresh_mtu`]).
    fn poll(&self) {
        self.watch_link();
        if self.gone().is_none() {
            self.refresh_mtu();
        }
    }

    fn gone(&self) -> Option<String> {
        self.link
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .gone
            .clone()
    }

    /// Up and running as last seen ([`AfPacketPort::watch_link`]); speed and duplex are not
    /// read (a veth has none).
    fn link(&self) -> Option<LinkInfo> {
        let t = self.link.lock().unwrap_or_else(PoisonError::into_inner);
        Some(LinkInfo {
            up: t.up && t.gone.is_none(),
            speed_mbps: 0,
            full_duplex: false,
            changes: Some(t.changes),
        })
    }

    fn alloc(&self, frame: &[u8]) -> Option<PoolBuf> {
        self.pool.get_with(frame)
    }

    /// Counters of every queue; RX drops include the kernel's ring-full drops. Re-reads the
    /// MTU too (control side).
    fn stats(&self) -> PortStats {
        self.refresh_mtu();
        let c = &self.counters;
        for fd in self.rx_socks.iter().filter_map(Weak::upgrade) {
            Counters::add(&c.rx_dropped, kernel_drops(&fd));
        }
        c.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_named() {
        let pool = BufPool::new(4, 2048).unwrap();
        let e =
            AfPacketPort::open("rdo-none0", pool.clone(), AfPacketOptions::default()).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("rdo-none0") && s.contains("no such interface"),
            "{s}"
        );
        let e = AfPacketPort::open("averyveryverylongname", pool, AfPacketOptions::default())
            .unwrap_err();
        assert!(e.to_string().contains("at most 15"), "{e}");
    }

    #[test]
    fn os_errors_say_what_to_do() {
        let e = os_err(
            "af_packet:x",
            "opening",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(e.to_string().contains("needs root or CAP_NET_RAW"), "{e}");
        let e = os_err(
            "af_packet:x",
            "binding",
            io::Error::from_raw_os_error(libc::ENETDOWN),
        );
        assert!(e.to_string().contains("interface is down"), "{e}");
        let e = os_err(
            "af_packet:x",
            "mapping",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert!(matches!(e, DriverError::Os { op: "mapping", .. }), "{e}");
    }
}
