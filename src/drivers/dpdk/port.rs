//! A DPDK ethdev port: probe by PCI address or vdev devargs, configure N queue pairs with
//! RSS over IP + L4, start, promiscuous, MAC, link, stats and xstats.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::sync::Arc;

use super::eal::{self, EalPlan};
use super::mbuf::Mbuf;
use super::mempool::{Mempool, PoolSpec};
use super::queue::{DpdkRx, DpdkTx};
use super::{err_text, DpdkError};
use crate::config::DpdkSettings;
use crate::drivers::{Burst, DriverError, LinkInfo, Port, PortStats, QueuePair, RxQueue};
use crate::wire::MacAddr;

/// How a port is set up.
#[derive(Debug, Clone)]
pub struct DpdkPortOptions {
    pub settings: DpdkSettings,
    /// Mbufs in the pool of the port's socket (`runtime.pool_size`).
    pub pool_size: usize,
    /// Cores the workers will be pinned to (EAL's main lcore avoids them).
    pub worker_cores: Option<Vec<usize>>,
}

/// Owns the started device: stopped and closed when the port and all its queues are gone.
pub(crate) struct PortHandle {
    pub(crate) id: u16,
    devargs: String,
    started: std::sync::atomic::AtomicBool,
}

impl Drop for PortHandle {
    fn drop(&mut self) {
        if self.started.load(std::sync::atomic::Ordering::Acquire) {
            // SAFETY: the port id is valid (probed by us); no queue is in use any more
            // (queues hold this handle, so they are all dropped).
            let r = unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
            if r != 0 {
                tracing::warn!(port = %self.devargs, "rte_eth_dev_stop: {}", err_text(r));
            }
        }
        // SAFETY: as above; the port is stopped, nothing uses it after this.
        let r = unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
        if r != 0 {
            tracing::warn!(port = %self.devargs, "rte_eth_dev_close: {}", err_text(r));
        }
    }
}

/// What the device says it can do.
#[derive(Debug, Clone)]
struct DevInfo {
    driver: String,
    max_rx: u16,
    max_tx: u16,
    rss: u64,
}

/// A DPDK port implementing [`Port`].
pub struct DpdkPort {
    name: String,
    devargs: String,
    handle: Arc<PortHandle>,
    pool: Mempool,
    opts: DpdkPortOptions,
    info: DevInfo,
    socket: i32,
    mac: MacAddr,
    queues: Option<(u16, u16)>,
    exception_queue: Option<u16>,
}

/// `0000:3b:00.0` / `3b:00.0` (optionally followed by `,args`): the normalised PCI name.
fn pci_name(devargs: &str) -> Option<String> {
    let head = devargs.split(',').next()?;
    let (domain, rest) = match head.matches(':').count() {
        2 => head.split_once(':')?,
        1 => ("0000", head),
        _ => return None,
    };
    let (bus, devfn) = rest.split_once(':')?;
    let (dev, func) = devfn.split_once('.')?;
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    (hex(domain, 4)
        && hex(bus, 2)
        && hex(dev, 2)
        && func.len() == 1
        && ('0'..='7').contains(&func.chars().next()?))
    .then(|| format!("{}:{bus}:{dev}.{func}", domain.to_ascii_lowercase()))
    .map(|s| s.to_ascii_lowercase())
}

fn port_by_name(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    let mut id = u16::MAX;
    // SAFETY: `c` is a valid C string for the call; `id` is a live u16 to write into.
    let r = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (r == 0).then_some(id)
}

impl DpdkPort {
    /// Start EAL if needed, create or find the device for `devargs`, and read what it can
    /// do. Queues are set up and the port started by [`Port::take_queues`].
    pub fn open(devargs: &str, opts: DpdkPortOptions) -> Result<DpdkPort, DpdkError> {
        let pci = pci_name(devargs);
        let plan = EalPlan {
            pci: pci.iter().map(|_| devargs.to_string()).collect(),
            worker_cores: opts.worker_cores.clone(),
        };
        eal::init(&opts.settings, &plan)?;
        let name = match &pci {
            Some(p) => p.clone(),
            None => devargs.split(',').next().unwrap_or(devargs).to_string(),
        };
        let id = match (port_by_name(&name), &pci) {
            (Some(id), _) => id,
            (None, Some(_)) => {
                return Err(DpdkError::NoSuchPort {
                    devargs: devargs.into(),
                    name,
                    hint: ": is the device bound to vfio-pci or uio (`dpdk-devbind.py --status`), and not excluded by eal_args (-b / --no-pci)?".into(),
                })
            }
            (None, None) => {
                let c = CString::new(devargs).map_err(|_| DpdkError::Probe {
                    devargs: devargs.into(),
                    code: libc::EINVAL,
                    msg: "devargs contain a NUL byte".into(),
                })?;
                // SAFETY: EAL is up; `c` is a valid C string for the call.
                let r = unsafe { dpdk_sys::rte_dev_probe(c.as_ptr()) };
                if r < 0 {
                    return Err(DpdkError::Probe {
                        devargs: devargs.into(),
                        code: r,
                        msg: format!(
                            "{} (is {name:?} a DPDK vdev driver, e.g. net_pcap0, net_ring0, net_af_packet0, net_tap0, and are its arguments right?)",
                            err_text(r)
                        ),
                    });
                }
                port_by_name(&name).ok_or_else(|| DpdkError::NoSuchPort {
                    devargs: devargs.into(),
                    name: name.clone(),
                    hint: ": the device was created but is not an ethdev port".into(),
                })?
            }
        };
        let handle = Arc::new(PortHandle {
            id,
            devargs: devargs.to_string(),
            started: false.into(),
        });
        let op = |op: &'static str, code: i32| DpdkError::Op {
            devargs: devargs.into(),
            op,
            code,
            msg: err_text(code),
        };
        // SAFETY: rte_eth_dev_info is plain data; all-zero is valid before the call fills it.
        let mut di: dpdk_sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: `id` is a valid port; `di` is a live struct to fill.
        let r = unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut di) };
        if r != 0 {
            return Err(op("rte_eth_dev_info_get", r));
        }
        let driver = if di.driver_name.is_null() {
            "?".to_string()
        } else {
            // SAFETY: non-null driver_name points to the driver's static C string.
            unsafe { CStr::from_ptr(di.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        let info = DevInfo {
            driver,
            max_rx: di.max_rx_queues,
            max_tx: di.max_tx_queues,
            rss: di.flow_type_rss_offloads,
        };
        // SAFETY: `id` is a valid port.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let pool = Mempool::for_socket(
            socket,
            PoolSpec {
                size: opts.pool_size,
                cache: opts.settings.mbuf_cache,
                data_room: opts.settings.mbuf_data_room,
            },
        )?;
        let mut ea = dpdk_sys::rte_ether_addr::default();
        // SAFETY: `id` is valid; `ea` is a live struct to fill.
        let r = unsafe { dpdk_sys::rte_eth_macaddr_get(id, &mut ea) };
        if r != 0 {
            return Err(op("rte_eth_macaddr_get", r));
        }
        tracing::info!(port = devargs, id, driver = %info.driver, socket, max_rx = info.max_rx, max_tx = info.max_tx, rss = format!("{:#x}", info.rss), "DPDK port probed");
        Ok(DpdkPort {
            name: format!("dpdk:{devargs}"),
            devargs: devargs.to_string(),
            handle,
            pool,
            opts,
            info,
            socket,
            mac: MacAddr(ea.addr_bytes),
            queues: None,
            exception_queue: None,
        })
    }

    /// DPDK's port id.
    pub fn port_id(&self) -> u16 {
        self.handle.id
    }

    /// The mempool this port receives into.
    pub fn pool(&self) -> Mempool {
        self.pool
    }

    fn op(&self, op: &'static str, code: i32) -> DpdkError {
        DpdkError::Op {
            devargs: self.devargs.clone(),
            op,
            code,
            msg: err_text(code),
        }
    }

    /// Configure `n` RX queues and `n` (+1 for the exception path, when the device has one
    /// more) TX queues, set them up and start the port.
    fn configure(&mut self, n: usize) -> Result<(), DpdkError> {
        let too_many = |max: u16, dir: &'static str| {
            DpdkError::TooManyQueues {
            want: n,
            devargs: self.devargs.clone(),
            driver: self.info.driver.clone(),
            max,
            dir,
            hint: "; lower runtime.workers (net_pcap has one queue per rx_pcap/tx_pcap, net_af_packet takes qpairs=N)",
        }
        };
        if n > usize::from(self.info.max_rx) {
            return Err(too_many(self.info.max_rx, "RX"));
        }
        if n > usize::from(self.info.max_tx) {
            return Err(too_many(self.info.max_tx, "TX"));
        }
        let nrx = n as u16;
        let mut ntx = if n < usize::from(self.info.max_tx) {
            nrx + 1
        } else {
            nrx
        };
        // SAFETY: rte_eth_conf is plain data; all-zero is DPDK's documented default.
        let mut conf: dpdk_sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        let rss =
            (dpdk_sys::RTE_ETH_RSS_IP | dpdk_sys::RTE_ETH_RSS_TCP | dpdk_sys::RTE_ETH_RSS_UDP)
                & self.info.rss;
        if n > 1 && rss != 0 {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss;
        } else if n > 1 {
            tracing::info!(port = %self.name, "the device has no RSS; its driver spreads packets over the {n} queues itself");
        }
        let id = self.handle.id;
        // SAFETY: `id` is a valid, stopped port; `conf` is a live, initialised struct.
        let mut r = unsafe { dpdk_sys::rte_eth_dev_configure(id, nrx, ntx, &conf) };
        if r != 0 && ntx > nrx {
            // Some drivers (net_tap) want as many TX as RX queues: no spare TX queue then.
            tracing::info!(port = %self.name, "the device refused {ntx} TX queues for {nrx} RX queues; configuring {nrx}");
            ntx = nrx;
            // SAFETY: as above.
            r = unsafe { dpdk_sys::rte_eth_dev_configure(id, nrx, ntx, &conf) };
        }
        if r != 0 {
            return Err(self.op("rte_eth_dev_configure", r));
        }
        let (mut rxd, mut txd) = (self.opts.settings.rx_desc, self.opts.settings.tx_desc);
        // SAFETY: `id` is a configured port; both pointers are live u16s.
        let r = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rxd, &mut txd) };
        if r != 0 {
            return Err(self.op("rte_eth_dev_adjust_nb_rx_tx_desc", r));
        }
        let socket = self.socket as u32; // SOCKET_ID_ANY (-1) is passed through as DPDK does
        for q in 0..nrx {
            // SAFETY: `id` is configured with nrx RX queues; a null rxconf means the
            // driver's defaults; the pool is a live pktmbuf pool.
            let r = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    rxd,
                    socket,
                    std::ptr::null(),
                    self.pool.as_ptr(),
                )
            };
            if r != 0 {
                return Err(self.op("rte_eth_rx_queue_setup", r));
            }
        }
        for q in 0..ntx {
            // SAFETY: `id` is configured with ntx TX queues; null txconf = defaults.
            let r =
                unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, q, txd, socket, std::ptr::null()) };
            if r != 0 {
                return Err(self.op("rte_eth_tx_queue_setup", r));
            }
        }
        // SAFETY: every queue is set up.
        let r = unsafe { dpdk_sys::rte_eth_dev_start(id) };
        if r != 0 {
            return Err(self.op("rte_eth_dev_start", r));
        }
        self.handle
            .started
            .store(true, std::sync::atomic::Ordering::Release);
        // SAFETY: `id` is a started port.
        let r = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
        if r != 0 {
            tracing::info!(port = %self.name, "promiscuous mode not available: {}", err_text(r));
        }
        if self.info.driver == "net_af_packet" {
            let stale = self.discard_queued(nrx);
            if stale > 0 {
                tracing::info!(port = %self.name, frames = stale, "discarded frames received before the port started (net_af_packet's socket takes every interface's frames until it is bound)");
            }
        }
        self.queues = Some((nrx, ntx));
        self.exception_queue = (ntx > nrx).then_some(nrx);
        tracing::info!(port = %self.name, rx_queues = nrx, tx_queues = ntx, rx_desc = rxd, tx_desc = txd, rss = format!("{:#x}", conf.rx_adv_conf.rss_conf.rss_hf), "DPDK port started");
        Ok(())
    }

    /// Empty the `nrx` started RX queues; returns how many frames they held. DPDK's
    /// net_af_packet opens its socket for every interface and binds it to its own only
    /// afterwards, and keeps receiving from probe on: what it holds at start was never
    /// meant for this port's workers (a NIC receives nothing before it starts). Bounded
    /// per queue, for a link that never goes quiet.
    fn discard_queued(&self, nrx: u16) -> u64 {
        const MAX_BURSTS: usize = 1024;
        let mut burst: Burst<Mbuf> = Burst::new();
        let mut stale = 0u64;
        for queue in 0..nrx {
            let mut rx = DpdkRx {
                port: self.handle.clone(),
                queue,
                registered: false,
            };
            for _ in 0..MAX_BURSTS {
                let n = rx.rx_burst(&mut burst);
                if n == 0 {
                    break;
                }
                stale += n as u64;
                drop(burst.drain());
            }
        }
        stale
    }

    /// Extended statistics (name, value), as the driver reports them.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        let id = self.handle.id;
        // SAFETY: a null array with size 0 asks for the count.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(id, std::ptr::null_mut(), 0) };
        if n <= 0 {
            return Vec::new();
        }
        let n = n as usize;
        let mut names = vec![dpdk_sys::rte_eth_xstat_name { name: [0; 64] }; n];
        let mut vals = vec![dpdk_sys::rte_eth_xstat::default(); n];
        // SAFETY: both arrays hold n elements, the size given.
        let (a, b) = unsafe {
            (
                dpdk_sys::rte_eth_xstats_get_names(id, names.as_mut_ptr(), n as u32),
                dpdk_sys::rte_eth_xstats_get(id, vals.as_mut_ptr(), n as u32),
            )
        };
        if a <= 0 || b <= 0 {
            return Vec::new();
        }
        vals.iter()
            .take(b as usize)
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                // SAFETY: DPDK NUL-terminates names within RTE_ETH_XSTATS_NAME_SIZE.
                let s = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((s.to_string_lossy().into_owned(), v.value))
            })
            .collect()
    }
}

impl Port for DpdkPort {
    type Buf = Mbuf;
    type Rx = DpdkRx;
    type Tx = DpdkTx;

    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> Option<MacAddr> {
        Some(self.mac)
    }

    fn take_queues(&mut self, n: usize) -> Result<Vec<QueuePair<Self>>, DriverError> {
        if self.queues.is_some() {
            return Err(DriverError::Port {
                port: self.name.clone(),
                reason: "queues were already taken".into(),
            });
        }
        if n == 0 {
            return Err(DriverError::Port {
                port: self.name.clone(),
                reason: "at least one queue is needed".into(),
            });
        }
        self.configure(n)?;
        Ok((0..n as u16)
            .map(|q| {
                (
                    DpdkRx {
                        port: self.handle.clone(),
                        queue: q,
                        registered: false,
                    },
                    DpdkTx {
                        port: self.handle.clone(),
                        queue: q,
                    },
                )
            })
            .collect())
    }

    fn take_exception_tx(&mut self) -> Result<Option<DpdkTx>, DriverError> {
        let (nrx, ntx) = self.queues.ok_or_else(|| DriverError::Port {
            port: self.name.clone(),
            reason: "take the worker queues first".into(),
        })?;
        if ntx == nrx {
            tracing::info!(port = %self.name, driver = %self.info.driver, tx_queues = ntx, "no spare TX queue for the exception path: kernel frames leave through worker 0's queue");
            return Ok(None);
        }
        let q = self
            .exception_queue
            .take()
            .ok_or_else(|| DriverError::Port {
                port: self.name.clone(),
                reason: "the exception TX queue was already taken".into(),
            })?;
        Ok(Some(DpdkTx {
            port: self.handle.clone(),
            queue: q,
        }))
    }

    fn alloc(&self, frame: &[u8]) -> Option<Mbuf> {
        Mbuf::alloc_with(&self.pool, frame)
    }

    fn stats(&self) -> PortStats {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: the port id is valid; `s` is a live struct to fill.
        let r = unsafe { dpdk_sys::rte_eth_stats_get(self.handle.id, &mut s) };
        if r != 0 {
            return PortStats::default();
        }
        PortStats {
            rx_packets: s.ipackets,
            rx_bytes: s.ibytes,
            tx_packets: s.opackets,
            tx_bytes: s.obytes,
            rx_dropped: s.imissed + s.rx_nombuf,
            tx_dropped: 0,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            tx_too_big: 0,
            tx_kernel_refused: 0,
        }
    }

    fn xstats(&self) -> Vec<(String, u64)> {
        DpdkPort::xstats(self)
    }

    fn link(&self) -> Option<LinkInfo> {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: the port id is valid; `l` is a live struct to fill; nowait never blocks.
        let r = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.handle.id, &mut l) };
        (r == 0).then(|| LinkInfo {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
            changes: None,
        })
    }

    fn driver(&self) -> String {
        format!("dpdk/{}", self.info.driver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_are_recognised() {
        assert_eq!(pci_name("0000:3b:00.0").as_deref(), Some("0000:3b:00.0"));
        assert_eq!(pci_name("3b:00.1").as_deref(), Some("0000:3b:00.1"));
        assert_eq!(
            pci_name("0000:3B:00.0,rx_low_latency=1").as_deref(),
            Some("0000:3b:00.0")
        );
        for v in [
            "net_pcap0,rx_pcap=a.pcap",
            "net_ring0",
            "3b:00.8",
            "zz:00.0",
            "0000:3b:00",
            "",
        ] {
            assert_eq!(pci_name(v), None, "{v}");
        }
    }
}
