//! `rondo pktgen`: generate flows toward a director's VIPs, verify what it sends back.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::load_config;
use crate::drivers::af_packet::{AfPacketOptions, AfPacketPort};
use crate::drivers::{BufPool, Port, PortSpec};
use crate::pktgen::{
    self, flows, FlowSpec, MemPeerRx, Mix, Options, PcapOut, PktgenError, PortRx, PortTx, Range,
    Report, Size, Verifier,
};
use crate::wire::MacAddr;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Ports: af_packet:IFACE[,rx=v2|v3] sends and receives on an interface (the \
director's output comes back on it and is verified; rx= picks the receive ring as for rondo run); \
af_xdp:IFACE[,mode=M][,busy_poll] does the same through one AF_XDP socket (builds with the \
af_xdp feature; every IP frame of the interface goes to it, ARP stays the kernel's); pcap:OUT \
writes what would be sent to a capture (no \
verification). mem ports exist only in-process (the pktgen library with mem::pair, see \
tests/pktgen.rs); dpdk:DEVARGS (builds with the dpdk feature) sends and receives on one queue \
of a DPDK port. --replay sends a capture's frames instead of built flows.\n\
Exit status: 0 when every packet sent came back verified (or was written), 1 otherwise."
)]
pub struct PktgenArgs {
    /// The director's config: its tables and settings are what replies are verified against.
    #[arg(long)]
    config: PathBuf,
    /// With a GLB director.conf: its forwarding table.
    #[arg(long)]
    forwarding_table: Option<PathBuf>,
    /// af_packet:IFACE[,rx=v2|v3], af_xdp:IFACE, dpdk:DEVARGS or pcap:OUT.
    #[arg(long)]
    port: String,
    /// The director port's MAC: destination of generated frames and the source its
    /// encapsulated frames must carry (unchecked when not given; frames then go to broadcast).
    #[arg(long)]
    dst_mac: Option<String>,
    /// Packets per second, or `max`.
    #[arg(long, default_value = "1000")]
    rate: String,
    /// Seconds to send (fractions allowed); default 5 unless --count is given.
    #[arg(long)]
    duration: Option<f64>,
    /// Packets to send.
    #[arg(long)]
    count: Option<u64>,
    /// Distinct flows.
    #[arg(long, default_value_t = 256)]
    flows: u32,
    /// Frame size in bytes (60..=1514) or imix (7:4:1 of 64, 594, 1514).
    #[arg(long, default_value = "64")]
    size: String,
    /// Flow kinds by weight: syn, ack (established, with payload), fin, echo, frag (ICMP
    /// frag-needed / packet-too-big).
    #[arg(long, default_value = "syn=1")]
    mix: String,
    /// Client address ranges (CIDR), IPv4 and/or IPv6.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10.200.0.0/16,2001:db8:c::/64"
    )]
    clients: Vec<String>,
    /// Client source ports, FIRST-LAST.
    #[arg(long, default_value = "1024-65535")]
    client_ports: String,
    /// Wait this many milliseconds without progress for the last replies.
    #[arg(long, default_value_t = 1000)]
    drain_ms: u64,
    /// Send the frames of this capture (distinct frames, in a loop) instead of built flows;
    /// --flows, --size, --mix, --clients and --client-ports do not apply.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Also accept replies as this config's tables say (repeatable): for table changes
    /// under traffic (a reload to this file, a console `set`), where either answer is right.
    #[arg(long)]
    accept_also: Vec<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// DPDK EAL arguments, space-separated (default: a file prefix of its own).
    #[arg(long, allow_hyphen_values = true)]
    eal_args: Option<String>,
    /// No live dashboard on stderr.
    #[arg(long)]
    quiet: bool,
}

/// Send and verify on one queue pair of a driver port.
fn drive<P: Port>(
    mut port: P,
    a: &PktgenArgs,
    cfg: &crate::config::Config,
    mut spec: FlowSpec,
    opts: &Options,
    dst_mac: Option<[u8; 6]>,
    dash: impl FnMut(&str),
) -> Result<Report, PktgenError> {
    if let Some(m) = Port::mac(&port) {
        spec.src_mac = m.0;
    }
    let flows = make_flows(a, &spec, dst_mac)?;
    let mut verifier = Verifier::new(cfg, &flows, dst_mac)?;
    for path in &a.accept_also {
        let alt = load_config(path, a.forwarding_table.as_deref())
            .map_err(|e| PktgenError::Setup(format!("--accept-also: {e}")))?;
        verifier.accept_also(&alt, &flows)?;
    }
    let (rx, tx) = port
        .take_queues(1)?
        .pop()
        .ok_or_else(|| PktgenError::Setup("the port gave no queue".into()))?;
    tracing::info!(port = %a.port, flows = flows.len(), "pktgen: sending");
    let tx = PortTx { port: &port, tx };
    pktgen::run(
        &a.port,
        tx,
        Some((PortRx::<P> { rx }, verifier)),
        &flows,
        opts,
        dash,
    )
}

fn make_flows(
    a: &PktgenArgs,
    spec: &FlowSpec,
    dst_mac: Option<[u8; 6]>,
) -> Result<Vec<pktgen::GeneratedFlow>, PktgenError> {
    match &a.replay {
        Some(path) => pktgen::replay::load(path, dst_mac),
        None => flows::build(spec),
    }
}

fn usage(s: String) -> PktgenError {
    PktgenError::Usage(s)
}

fn parse_ports(s: &str) -> Result<(u16, u16), PktgenError> {
    let bad = || {
        usage(format!(
            "--client-ports {s:?}: expected FIRST-LAST, e.g. 1024-65535"
        ))
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b) = (
        a.parse::<u16>().map_err(|_| bad())?,
        b.parse::<u16>().map_err(|_| bad())?,
    );
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// `rondo pktgen`.
pub fn run(a: &PktgenArgs) -> Result<(), String> {
    match go(a) {
        Ok(r) if r.ok => Ok(()),
        Ok(_) => Err("pktgen: not every packet was verified (see above)".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn go(a: &PktgenArgs) -> Result<Report, PktgenError> {
    let cfg = load_config(&a.config, a.forwarding_table.as_deref())
        .map_err(|e| PktgenError::Setup(e.to_string()))?;
    let rate = match a.rate.as_str() {
        "max" => None,
        r => Some(
            r.parse::<u64>()
                .ok()
                .filter(|r| (1..=1_000_000_000).contains(r))
                .ok_or_else(|| {
                    usage(format!("--rate {r:?}: packets per second (1..=1e9) or max"))
                })?,
        ),
    };
    let duration = match (a.duration, a.count) {
        (Some(d), _) if !(d > 0.0 && d <= 1e6) => {
            return Err(usage(format!("--duration {d}: seconds above 0")))
        }
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(5)),
    };
    if a.count == Some(0) {
        return Err(usage("--count must be at least 1".into()));
    }
    let dst_mac = match &a.dst_mac {
        Some(m) => Some(
            m.parse::<MacAddr>()
                .map_err(|_| usage(format!("--dst-mac {m:?}: not a MAC address")))?
                .0,
        ),
        None => None,
    };
    let clients = a
        .clients
        .iter()
        .map(|c| c.parse::<Range>())
        .collect::<Result<Vec<_>, _>>()?;
    let specs: Vec<_> = cfg.tables.iter().map(|t| t.spec.clone()).collect();
    let mut spec = FlowSpec {
        flows: a.flows,
        clients,
        client_ports: parse_ports(&a.client_ports)?,
        vips: flows::vips_from_tables(&specs),
        size: a.size.parse::<Size>()?,
        mix: a.mix.parse::<Mix>()?,
        dst_mac: dst_mac.unwrap_or([0xff; 6]),
        src_mac: [0x02, 0x70, 0x67, 0, 0, 1],
    };
    // Only VIPs the clients can reach (a config with IPv6 binds and only IPv4 clients).
    spec.vips.retain(|v| {
        spec.clients
            .iter()
            .any(|c| c.base.is_ipv4() == v.addr.is_ipv4())
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| PktgenError::Setup(format!("signal handler: {e}")))?;
    }
    let opts = Options {
        rate,
        duration,
        count: a.count,
        drain: Duration::from_millis(a.drain_ms),
        stop,
        dashboard: (!a.quiet).then_some(Duration::from_secs(1)),
    };
    let tty = std::io::stderr().is_terminal();
    let dash = |line: &str| {
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    };
    let (kind, rest) = a.port.split_once(':').ok_or_else(|| {
        usage(format!(
            "--port {:?}: expected af_packet:IFACE, af_xdp:IFACE or pcap:OUT",
            a.port
        ))
    })?;
    let report = match kind {
        "af_packet" => {
            let rx_ring = match a.port.parse::<PortSpec>() {
                Ok(PortSpec::AfPacket { rx, .. }) => rx.unwrap_or_default(),
                Ok(other) => return Err(usage(format!("--port {other}: not an af_packet port"))),
                Err(e) => return Err(usage(format!("--port: {e}"))),
            };
            let pool = BufPool::new(8192, 2048).map_err(PktgenError::Setup)?;
            let iface = rest.split(',').next().unwrap_or(rest);
            let afp = AfPacketOptions {
                rx_ring,
                ..AfPacketOptions::default()
            };
            let port = AfPacketPort::open(iface, pool, afp)?;
            drive(port, a, &cfg, spec, &opts, dst_mac, dash)?
        }
        #[cfg(feature = "af_xdp")]
        "af_xdp" => {
            use crate::drivers::af_xdp::AfXdpPort;
            let (iface, mode, busy_poll) = match a.port.parse::<crate::drivers::PortSpec>() {
                Ok(crate::drivers::PortSpec::AfXdp {
                    iface,
                    queues: None | Some(1),
                    mode,
                    busy_poll,
                }) => (iface, mode, busy_poll),
                Ok(_) => return Err(usage("pktgen sends on one queue: queues=1 or none".into())),
                Err(e) => return Err(usage(e.to_string())),
            };
            let port = AfXdpPort::open(&iface, Some(1), mode, busy_poll)
                .map_err(|e| PktgenError::Setup(e.to_string()))?;
            // The generator's interface: every IPv4 and IPv6 frame (the director's
            // encapsulated replies go to backend addresses, not VIPs) comes to the socket;
            // ARP and the rest stay the kernel's.
            port.steering()
                .set(&[
                    (std::net::Ipv4Addr::UNSPECIFIED.into(), 0),
                    (std::net::Ipv6Addr::UNSPECIFIED.into(), 0),
                ])
                .map_err(|e| PktgenError::Setup(e.to_string()))?;
            drive(port, a, &cfg, spec, &opts, dst_mac, dash)?
        }
        #[cfg(not(feature = "af_xdp"))]
        "af_xdp" => {
            return Err(usage(
                "this rondo was built without the AF_XDP driver; rebuild with `cargo build --release --features af_xdp`".into(),
            ))
        }
        #[cfg(feature = "dpdk")]
        "dpdk" if !rest.is_empty() => {
            use crate::drivers::dpdk::{DpdkPort, DpdkPortOptions};
            let mut settings = cfg.run.dpdk.clone();
            // Its own EAL file prefix unless told otherwise: the director may run on this host.
            settings.eal_args = Some(match &a.eal_args {
                Some(e) => e.split_whitespace().map(str::to_string).collect(),
                None => vec!["--file-prefix".into(), format!("rondo-pktgen-{}", std::process::id())],
            });
            let port = DpdkPort::open(
                rest,
                DpdkPortOptions {
                    settings,
                    pool_size: 8192,
                    worker_cores: None,
                },
            )
            .map_err(crate::drivers::DriverError::from)?;
            drive(port, a, &cfg, spec, &opts, dst_mac, dash)?
        }
        "pcap" if !rest.is_empty() => {
            let flows = make_flows(a, &spec, dst_mac)?;
            let tx = PcapOut::create(std::path::Path::new(rest))?;
            pktgen::run::<_, MemPeerRx>(&a.port, tx, None, &flows, &opts, dash)?
        }
        "mem" => {
            return Err(usage(
                "mem ports exist only inside one process: use the pktgen library with drivers::mem::pair (see tests/pktgen.rs)".into(),
            ))
        }
        #[cfg(not(feature = "dpdk"))]
        "dpdk" => {
            return Err(usage(
                "this rondo was built without DPDK; rebuild with `cargo build --release --features dpdk`".into(),
            ))
        }
        _ => {
            return Err(usage(format!(
                "--port {:?}: expected af_packet:IFACE or pcap:OUT",
                a.port
            )))
        }
    };
    if tty && !a.quiet {
        eprintln!();
    }
    print!("{}", report.summary());
    if let Some(path) = &a.report {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| PktgenError::Setup(format!("report: {e}")))?;
        std::fs::write(path, json + "\n").map_err(|source| PktgenError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(report)
}
