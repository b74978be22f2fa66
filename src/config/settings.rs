use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::table::RowPolicy;
use crate::wire::ethernet::MacAddr;

/// Which packet fields feed the flow hash (GLB's `hash_fields`), concatenated in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashFields {
    pub src_addr: bool,
    pub dst_addr: bool,
    pub src_port: bool,
    pub dst_port: bool,
}

impl Default for HashFields {
    /// GLB's default: the client address only.
    fn default() -> Self {
        HashFields {
            src_addr: true,
            dst_addr: false,
            src_port: false,
            dst_port: false,
        }
    }
}

impl HashFields {
    pub const NAMES: [&'static str; 4] = ["src_addr", "dst_addr", "src_port", "dst_port"];

    pub fn none() -> Self {
        HashFields {
            src_addr: false,
            dst_addr: false,
            src_port: false,
            dst_port: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        !(self.src_addr || self.dst_addr || self.src_port || self.dst_port)
    }

    /// Set a field by its GLB name; `Err` for an unknown name.
    pub fn set(&mut self, name: &str, on: bool) -> Result<(), String> {
        match name {
            "src_addr" => self.src_addr = on,
            "dst_addr" => self.dst_addr = on,
            "src_port" => self.src_port = on,
            "dst_port" => self.dst_port = on,
            other => {
                return Err(format!(
                    "unknown hash field {other:?}; expected one of {}",
                    Self::NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }

    pub fn names(&self) -> Vec<&'static str> {
        let on = [self.src_addr, self.dst_addr, self.src_port, self.dst_port];
        Self::NAMES
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// Director-wide settings (GLB's `director.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorSettings {
    /// Destination MAC of every encapsulated packet (the next-hop router).
    pub gateway_mac: MacAddr,
    /// Source MAC of encapsulated packets when the port does not supply its own (pcap, mem).
    pub src_mac: MacAddr,
    /// Outer source address for IPv4 backends.
    pub src_ipv4: Ipv4Addr,
    /// Outer source address for IPv6 backends (native tables only).
    pub src_ipv6: Option<Ipv6Addr>,
    pub forward_icmp_ping_responses: bool,
    pub hash_fields: HashFields,
    /// Second hash whose hops are appended (GLB's migration aid): 4 hops per packet.
    pub alt_hash_fields: Option<HashFields>,
    /// How rows are built for tables defined in this config.
    pub row_policy: RowPolicy,
}

/// Locally administered MAC used as the source when no port MAC is known.
pub const DEFAULT_SRC_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);

/// Runtime settings of a native config (`[runtime]` and `[[ports]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    /// Port specs (`af_packet:eth0`, ...); command-line `--port` overrides.
    pub ports: Vec<String>,
    /// Worker threads; defaults to the number of `cores`, else 1.
    pub workers: Option<usize>,
    /// Cores to pin workers to, one per worker.
    pub cores: Option<Vec<usize>>,
    /// Sleep this many microseconds when idle instead of busy polling.
    pub idle_sleep_us: Option<u64>,
    /// Exception path: `Some(tap name)` or `None` to drop.
    pub exception_tap: Option<String>,
    /// Packet buffers in the pool (mbufs per mempool with DPDK).
    pub pool_size: usize,
    /// The DPDK driver's settings (`[dpdk]`); parsed on every build so configs check
    /// the same everywhere, used only by builds with the `dpdk` feature.
    pub dpdk: DpdkSettings,
    /// `[console]`: the control socket of `rondo console`.
    pub console: ConsoleSettings,
    /// `[metrics]`: Prometheus endpoint and statsd push.
    pub metrics: MetricsSettings,
    /// `[bgp]`: announce the VIPs through a BGP daemon (BIRD 2); `None`: no BGP.
    pub bgp: Option<crate::fleet::bgp::BgpRunSettings>,
    /// `[fleet]`: tables from etcd (see `config::fleet`); `None`: tables from the config.
    pub fleet: Option<super::fleet::FleetSettings>,
}

/// `[dpdk]`: EAL arguments and queue/mempool sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkSettings {
    /// EAL arguments (without the program name); `None`: `--in-memory` (hugepages).
    /// Rondo adds `-l`, `--file-prefix`, `--no-pci` / `-a ADDR` when they are not given.
    pub eal_args: Option<Vec<String>>,
    /// RX/TX descriptors per queue (adjusted to what the device allows).
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Per-lcore mempool cache (0..=512).
    pub mbuf_cache: u32,
    /// Bytes of frame per mbuf after the headroom.
    pub mbuf_data_room: u16,
}

impl Default for DpdkSettings {
    fn default() -> Self {
        DpdkSettings {
            eal_args: None,
            rx_desc: 1024,
            tx_desc: 1024,
            mbuf_cache: 256,
            mbuf_data_room: 2048,
        }
    }
}

/// Where a server listens: the built-in default, nowhere, or a configured place. A default
/// that cannot be used is a warning; a configured one is an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Endpoint<T> {
    #[default]
    Default,
    Off,
    At(T),
}

impl<T: Clone> Endpoint<T> {
    /// The place to use (`default` for [`Endpoint::Default`]) and whether it was configured.
    pub fn resolve(&self, default: T) -> Option<(T, bool)> {
        match self {
            Endpoint::Default => Some((default, false)),
            Endpoint::Off => None,
            Endpoint::At(t) => Some((t.clone(), true)),
        }
    }
}

/// Where `rondo console` finds a running director unless told otherwise.
pub const DEFAULT_CONSOLE_SOCKET: &str = "/run/rondo/rondo.sock";
/// Where the Prometheus endpoint listens unless told otherwise (loopback only).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9525";

/// `[console]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    pub socket: Endpoint<PathBuf>,
    /// Sessions served at once; more are told so and closed.
    pub max_clients: usize,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            socket: Endpoint::Default,
            max_clients: 64,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Prometheus text endpoint (`GET /metrics`).
    pub listen: Endpoint<SocketAddr>,
    /// statsd push with GLB's metric names, if set.
    pub statsd: Option<SocketAddr>,
    /// Milliseconds between statsd pushes (GLB: 10 s).
    pub statsd_interval_ms: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            listen: Endpoint::Default,
            statsd: None,
            statsd_interval_ms: 10_000,
        }
    }
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            ports: Vec::new(),
            workers: None,
            cores: None,
            idle_sleep_us: None,
            exception_tap: None,
            pool_size: 16384,
            dpdk: DpdkSettings::default(),
            console: ConsoleSettings::default(),
            metrics: MetricsSettings::default(),
            bgp: None,
            fleet: None,
        }
    }
}
