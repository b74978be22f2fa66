//! [`AfXdpPort`]: the interface, its XDP program and one AF_XDP socket per worker queue.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::datapath::Snapshot;
use crate::datapath::BURST_MAX;
use crate::drivers::{DriverError, LinkInfo, Port, PortCounters, PortStats, QueuePair};
use crate::sys::iface::{ifindex, IfCtl};
use crate::wire::MacAddr;

use super::frame::XskBuf;
use super::prog::{self, load_and_attach, AttachMode, Loaded, Steering};
use super::queue::{AfXdpRx, AfXdpTx, Shared};
use super::xsk::{set_busy_poll, Xsk};
use super::{AfXdpError, XdpMode, MAX_QUEUES};

/// The steering maps of a running port, for the control plane: call
/// [`SteeringHandle::update`] with every snapshot made live, so a new VIP is steered to
/// the sockets and a removed one goes back to the kernel.
#[derive(Debug, Clone)]
pub struct SteeringHandle {
    inner: Arc<Mutex<Steering>>,
}

impl SteeringHandle {
    /// Steer exactly the bind prefixes of `snapshot`'s tables.
    pub fn update(&self, snapshot: &Snapshot) -> Result<(), AfXdpError> {
        self.set(&vip_prefixes(snapshot))
    }

    /// Before `snapshot` goes live: stop steering the prefixes it no longer has (their
    /// packets go to the kernel, as they will once it is live), add nothing yet (the
    /// workers do not know the new ones until it is live).
    pub fn narrow_to(&self, snapshot: &Snapshot) -> Result<(), AfXdpError> {
        let want = vip_prefixes(snapshot);
        let keep: Vec<(IpAddr, u8)> = self
            .prefixes()
            .into_iter()
            .filter(|p| want.iter().any(|w| prog::mask(w.0, w.1) == *p))
            .collect();
        self.set(&keep)
    }

    /// Steer exactly `prefixes`.
    pub fn set(&self, prefixes: &[(IpAddr, u8)]) -> Result<(), AfXdpError> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set(prefixes)
    }

    /// The prefixes steered now.
    pub fn prefixes(&self) -> Vec<(IpAddr, u8)> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .prefixes()
            .to_vec()
    }
}

/// The bind prefixes (VIPs) of every table of `snapshot`.
pub fn vip_prefixes(snapshot: &Snapshot) -> Vec<(IpAddr, u8)> {
    snapshot
        .tables
        .iter()
        .flat_map(|t| t.table.spec.binds.iter().map(|b| (b.addr, b.prefix_len)))
        .collect()
}

/// A Linux interface driven through AF_XDP sockets.
pub struct AfXdpPort {
    name: String,
    iface: String,
    ifindex: u32,
    mac: MacAddr,
    mtu: usize,
    rx_queues: usize,
    want_queues: Option<u32>,
    mode: XdpMode,
    busy_poll: bool,
    counters: Arc<PortCounters>,
    loaded: Mutex<Loaded>,
    steering: SteeringHandle,
    sockets: Vec<Arc<Shared>>,
    zerocopy: Option<bool>,
}

/// RX queues of `iface` (`/sys/class/net/IFACE/queues/rx-*`); 1 when unknown.
fn rx_queue_count(iface: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(1)
        .max(1)
}

impl AfXdpPort {
    /// Attach the XDP program to `iface` (replacing a stale one of ours, refusing a
    /// foreign one). The sockets are made by [`Port::take_queues`], each with its own
    /// UMEM, whose frames are the packet buffers.
    pub fn open(
        iface: &str,
        queues: Option<u32>,
        mode: XdpMode,
        busy_poll: bool,
    ) -> Result<AfXdpPort, AfXdpError> {
        let os = |op: &'static str| {
            let iface = iface.to_string();
            move |source| AfXdpError::Os {
                iface: iface.clone(),
                op,
                source,
            }
        };
        let index = ifindex(iface).map_err(os("no such interface"))?;
        let ctl = IfCtl::open().map_err(os("control socket"))?;
        let (_, mac) = ctl
            .hwaddr(iface)
            .map_err(os("reading its MAC (SIOCGIFHWADDR)"))?;
        let mtu = ctl.mtu(iface).map_err(os("reading its MTU (SIOCGIFMTU)"))?;
        let mtu = usize::try_from(mtu).unwrap_or(1500);
        let rx_queues = rx_queue_count(iface);
        if let Some(q) = queues {
            if q as usize > rx_queues || q == 0 || q as usize > MAX_QUEUES {
                return Err(AfXdpError::Setting {
                    iface: iface.into(),
                    reason: format!(
                        "queues={q}: the interface has {rx_queues} RX queue(s) (ethtool -L to change); queues must be 1..={}",
                        rx_queues.min(MAX_QUEUES)
                    ),
                });
            }
        }
        let mut loaded = load_and_attach(iface, index)?;
        let steering = SteeringHandle {
            inner: Arc::new(Mutex::new(loaded.steering(iface)?)),
        };
        tracing::info!(iface, mode = ?loaded.mode, "XDP program attached");
        Ok(AfXdpPort {
            name: format!("af_xdp:{iface}"),
            iface: iface.into(),
            ifindex: index,
            mac: MacAddr(mac),
            mtu,
            rx_queues,
            want_queues: queues,
            mode,
            busy_poll,
            counters: Arc::new(PortCounters::default()),
            loaded: Mutex::new(loaded),
            steering,
            sockets: Vec::new(),
            zerocopy: None,
        })
    }

    /// The steering maps, for the control plane.
    pub fn steering(&self) -> SteeringHandle {
        self.steering.clone()
    }

    /// Whether the sockets run in zero-copy mode (`None` before they are made).
    pub fn zerocopy(&self) -> Option<bool> {
        self.zerocopy
    }

    fn open_queue(&mut self, q: u32) -> Result<QueuePair<Self>, AfXdpError> {
        let xsk = Xsk::open(self.ifindex, q, self.mode).map_err(|e| {
            let hint = match (e.source.raw_os_error(), e.op) {
                (
                    Some(libc::ENOBUFS | libc::ENOMEM | libc::EPERM),
                    "XDP_UMEM_REG (UMEM registration; locked-memory limit, ulimit -l?)",
                ) => " (raise the locked-memory limit: ulimit -l / LimitMEMLOCK=infinity)",
                (Some(libc::EOPNOTSUPP), _) if self.mode == XdpMode::Zerocopy => {
                    " (the driver has no zero-copy AF_XDP: use mode=copy or mode=auto)"
                }
                (Some(libc::EINVAL), "bind to the queue") => " (no such queue on the interface?)",
                (Some(libc::EPERM | libc::EACCES), _) => " (needs root or CAP_NET_RAW+CAP_BPF)",
                _ => "",
            };
            AfXdpError::Socket {
                iface: self.iface.clone(),
                queue: q,
                op: e.op,
                source: e.source,
                hint,
            }
        })?;
        let Xsk {
            fd,
            frames,
            fill,
            comp,
            rx,
            tx,
            bound,
        } = xsk;
        if self.busy_poll {
            use std::os::fd::AsRawFd;
            set_busy_poll(fd.as_raw_fd(), BURST_MAX as u32).map_err(|e| AfXdpError::Socket {
                iface: self.iface.clone(),
                queue: q,
                op: e.op,
                source: e.source,
                hint: " (leave busy_poll out of the port spec on this kernel)",
            })?;
        }
        self.zerocopy = Some(self.zerocopy.unwrap_or(true) && bound.zerocopy);
        let shared = Arc::new(Shared {
            fd,
            frames,
            counters: self.counters.clone(),
            busy_poll: self.busy_poll,
        });
        {
            use std::os::fd::AsRawFd;
            let mut l = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
            l.xsks
                .set(q, shared.fd.as_raw_fd(), 0)
                .map_err(|e| AfXdpError::Setting {
                    iface: self.iface.clone(),
                    reason: format!("queue {q}: adding the socket to the XSKMAP: {e}"),
                })?;
        }
        self.sockets.push(shared.clone());
        let rx = AfXdpRx {
            shared: shared.clone(),
            fill,
            rx,
        };
        let tx = AfXdpTx {
            shared,
            tx,
            comp,
            unkicked: false,
            max_frame: self.mtu + 18,
        };
        Ok((rx, tx))
    }
}

impl Port for AfXdpPort {
    type Buf = XskBuf;
    type Rx = AfXdpRx;
    type Tx = AfXdpTx;

    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> Option<MacAddr> {
        Some(self.mac)
    }

    /// `n` sockets, on RX queues 0..n of the interface (one per worker).
    fn take_queues(&mut self, n: usize) -> Result<Vec<QueuePair<Self>>, DriverError> {
        let name = self.name.clone();
        let err = |reason: String| DriverError::Port {
            port: name.clone(),
            reason,
        };
        if !self.sockets.is_empty() {
            return Err(err("queues already taken".into()));
        }
        if let Some(q) = self.want_queues {
            if q as usize != n {
                return Err(err(format!(
                    "queues={q} but {n} worker(s): one worker per queue (set [runtime] workers/cores to {q})"
                )));
            }
        }
        if n == 0 || n > self.rx_queues.min(MAX_QUEUES) {
            return Err(err(format!(
                "{n} worker(s) but the interface has {} RX queue(s): at most one worker per queue (ethtool -L to add queues)",
                self.rx_queues
            )));
        }
        let mut out = Vec::with_capacity(n);
        for q in 0..n as u32 {
            out.push(self.open_queue(q)?);
        }
        let zc = if self.zerocopy == Some(true) {
            "zero-copy"
        } else {
            "copy"
        };
        tracing::info!(port = %self.name, queues = n, mode = zc, "AF_XDP sockets bound");
        Ok(out)
    }

    /// None: frames of the kernel go out through the kernel itself (the XDP program passes
    /// everything but VIP traffic), so the runtime uses worker 0's queue if it needs one.
    fn take_exception_tx(&mut self) -> Result<Option<AfXdpTx>, DriverError> {
        Ok(None)
    }

    /// A frame of the first socket's UMEM (so sending it on queue 0 copies nothing
    /// more); `None` before the sockets are made or when no frame is free.
    fn alloc(&self, frame: &[u8]) -> Option<XskBuf> {
        self.sockets.first()?.frames.alloc_with(frame)
    }

    fn stats(&self) -> PortStats {
        let mut s = self.counters.read();
        for sock in &self.sockets {
            use std::os::fd::AsRawFd;
            if let Ok(x) = super::xsk::statistics(sock.fd.as_raw_fd()) {
                // Not rx_fill_ring_empty_descs: a drop for want of a fill entry is already
                // in rx_dropped, and that counter also counts empty polls that lost nothing.
                s.rx_dropped += x.rx_dropped + x.rx_ring_full;
                s.rx_errors += x.rx_invalid_descs;
                s.tx_errors += x.tx_invalid_descs;
            }
        }
        s
    }

    fn link(&self) -> Option<LinkInfo> {
        let flags = IfCtl::open().and_then(|c| c.flags(&self.iface)).ok()?;
        Some(LinkInfo {
            up: flags & (libc::IFF_RUNNING as i16) != 0,
            speed_mbps: 0,
            full_duplex: false,
            changes: None,
        })
    }

    /// `af_xdp/native/zero-copy`, `af_xdp/generic/copy`, ...: the XDP attach mode and the
    /// sockets' mode.
    fn driver(&self) -> String {
        let mode = match self
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .mode
        {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        };
        let sock = match self.zerocopy {
            Some(true) => "zero-copy",
            Some(false) => "copy",
            None => "unbound",
        };
        format!("af_xdp/{mode}/{sock}")
    }

    fn gone(&self) -> Option<String> {
        match ifindex(&self.iface) {
            Ok(i) if i == self.ifindex => None,
            Ok(_) => Some(format!("interface {} was replaced", self.iface)),
            Err(_) => Some(format!("interface {} was deleted", self.iface)),
        }
    }
}
