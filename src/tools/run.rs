//! `rondo run`: the appliance.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::glb::GlbRuntime;
use crate::config::native::check_socket_path;
use crate::config::{
    load_config, parse_director_conf_file, Endpoint, RunSettings, DEFAULT_CONSOLE_SOCKET,
    DEFAULT_METRICS_LISTEN,
};
use crate::console::client::{repl, Local};
use crate::console::exec::Executor;
use crate::console::server::{ConsoleListener, ConsoleServer};
use crate::drivers::af_packet::{AfPacketOptions, AfPacketPort};
use crate::drivers::fault::{FaultPlan, FaultPort};
use crate::drivers::pcap::PcapPort;
use crate::drivers::{BufPool, Port, PortSpec};
use crate::metrics::http::{MetricsListener, MetricsServer};
use crate::metrics::statsd::StatsdPusher;
use crate::runtime::control::{ConfigSource, Control, SignalFlags};
use crate::runtime::notify::{sd_notify, PidFile, Watchdog};
use crate::runtime::plane::{ControlPlane, Reloader};
use crate::runtime::{avoid_worker_cores, ExceptionPath, IdlePolicy, Runtime, RuntimeOptions};

use super::config_args::{BgpArgs, ConfigArgs};
use super::report::format_counters;
use super::run_bgp::BgpDriver;
use crate::fleet::bgp::decide::Lifecycle;
use crate::fleet::bgp::{BgpRunSettings, Bird};

/// Bytes of frame per packet buffer (after the headroom): a 1500-byte MTU frame plus VLAN
/// tag and room to spare.
pub const DATA_ROOM: usize = 2048;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Port spec: af_packet:IFACE[,rx=v2|v3], af_xdp:IFACE[,queues=N][,mode=M], pcap:IN[,OUT][,loop],
    /// dpdk:DEVARGS (overrides the config);
    /// fault:PLAN/SPEC injects faults into SPEC's port (a testing aid, see drivers::fault).
    #[arg(long)]
    port: Option<String>,
    /// Worker threads (overrides the config).
    #[arg(long)]
    workers: Option<usize>,
    /// Cores to pin workers to, comma-separated (overrides the config).
    #[arg(long, value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// Exception path: "drop" or "tap:NAME" (overrides the config).
    #[arg(long)]
    exception: Option<String>,
    /// Write our pid here while running.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Seconds between stats lines in the log (0: none).
    #[arg(long, default_value_t = 10)]
    stats_interval: u64,
    /// DPDK EAL arguments, space-separated (overrides `[dpdk] eal_args`),
    /// e.g. "--no-huge -m 512 --no-shconf".
    #[arg(long, allow_hyphen_values = true)]
    eal_args: Option<String>,
    /// Stop after this many seconds (benchmarks, soak tests).
    #[arg(long)]
    duration: Option<f64>,
    /// Stop once packets were received and then none for this many seconds (replaying a
    /// capture through a device that never says it is finished, e.g. DPDK net_pcap).
    #[arg(long)]
    stop_when_idle: Option<f64>,
    /// Console socket (mode 0660 group rondo when that group exists, else 0600), or "off" (overrides [console] socket; default /run/rondo/rondo.sock).
    #[arg(long, value_name = "PATH|off")]
    console_socket: Option<String>,
    /// Console on standard input, like testpmd -i; `quit` there stops the director.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Prometheus endpoint, or "off" (overrides [metrics] listen; default 127.0.0.1:9525).
    #[arg(long, value_name = "IP:PORT|off")]
    metrics_listen: Option<String>,
    /// Push statsd with GLB's metric names to IP:PORT, or "off" (overrides [metrics] statsd).
    #[arg(long, value_name = "IP:PORT|off")]
    statsd: Option<String>,
    #[command(flatten)]
    bgp: BgpArgs,
}

/// What `rondo run` resolved from config files and flags.
struct Plan {
    source: ConfigSource,
    run: RunSettings,
    port: PortSpec,
}

fn glb_mapping(rt: &GlbRuntime, run: &mut RunSettings) {
    let workers: Vec<usize> = rt.lcores.iter().filter(|l| l.work).map(|l| l.id).collect();
    let rx: Vec<usize> = rt.lcores.iter().filter(|l| l.rx).map(|l| l.id).collect();
    let chosen = if workers.is_empty() {
        rx.clone()
    } else {
        workers.clone()
    };
    let have: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    if !chosen.is_empty() {
        run.workers = Some(chosen.len());
        if chosen.iter().all(|c| have.contains(c)) {
            run.cores = Some(chosen.clone());
        }
    }
    if rt.wants_exception_path() {
        let port = rt.flow_paths.first().map_or(0, |f| f.rx_port);
        run.exception_tap = Some(format!("vglb_kni{port}"));
    }
    tracing::info!(
        glb_rx_tx_dist_lcores = ?rx,
        glb_work_lcores = ?workers,
        flow_paths = rt.flow_paths.len(),
        rondo_workers = run.workers.unwrap_or(1),
        rondo_cores = ?run.cores,
        exception = ?run.exception_tap,
        "mapped GLB's distributor/worker lcores onto run-to-completion workers (each receives, forwards and sends on its own queue){}",
        if run.cores.is_none() && !chosen.is_empty() { "; GLB's lcore ids do not all exist here, workers are not pinned" } else { "" }
    );
}

fn plan(a: &RunArgs) -> Result<Plan, String> {
    let source = a.config.source()?;
    let mut run = match &source {
        ConfigSource::Native(c) => load_config(c, None).map_err(|e| e.to_string())?.run,
        ConfigSource::Glb { director, .. } => {
            let (_, rt) = parse_director_conf_file(director).map_err(|e| e.to_string())?;
            let mut run = RunSettings::default();
            glb_mapping(&rt, &mut run);
            // As GLB does: statsd to the local agent on director.conf's statsd_port.
            run.metrics.statsd = Some(SocketAddr::from(([127, 0, 0, 1], rt.statsd_port)));
            run
        }
    };
    if let Some(w) = a.workers {
        run.workers = Some(w);
        if a.cores.is_none() {
            run.cores = run.cores.filter(|c| c.len() == w);
        }
    }
    if let Some(c) = &a.cores {
        run.cores = Some(c.clone());
        if a.workers.is_none() {
            run.workers = Some(c.len());
        }
    }
    if let Some(e) = &a.exception {
        run.exception_tap = match e.as_str() {
            "drop" => None,
            t => Some(
                t.strip_prefix("tap:")
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| format!("--exception {e:?}: expected drop or tap:NAME"))?
                    .to_string(),
            ),
        };
    }
    if let Some(c) = &a.console_socket {
        run.console.socket = match c.as_str() {
            "off" => Endpoint::Off,
            p => {
                check_socket_path(p).map_err(|m| format!("--console-socket: {m}"))?;
                Endpoint::At(PathBuf::from(p))
            }
        };
    }
    let addr = |flag: &str, v: &str| -> Result<SocketAddr, String> {
        v.parse()
            .map_err(|_| format!("{flag} {v:?}: expected IP:PORT like 127.0.0.1:9525, or off"))
    };
    if let Some(m) = &a.metrics_listen {
        run.metrics.listen = match m.as_str() {
            "off" => Endpoint::Off,
            v => Endpoint::At(addr("--metrics-listen", v)?),
        };
    }
    if let Some(m) = &a.statsd {
        run.metrics.statsd = match m.as_str() {
            "off" => None,
            v => Some(addr("--statsd", v)?),
        };
    }
    if let Some(t) = a.bgp.table() {
        run.bgp =
            Some(BgpRunSettings::from_toml_table(&t).map_err(|e| format!("--bgp-* flags: {e}"))?);
    }
    let spec = a
        .port
        .clone()
        .or_else(|| run.ports.first().cloned())
        .ok_or("no port: give --port SPEC or [[ports]] in the config")?;
    let port: PortSpec = spec
        .parse()
        .map_err(|e: crate::drivers::DriverError| e.to_string())?;
    if let Some(e) = &a.eal_args {
        run.dpdk.eal_args = Some(e.split_whitespace().map(str::to_string).collect());
    }
    for (flag, v) in [
        ("--duration", a.duration),
        ("--stop-when-idle", a.stop_when_idle),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0 && v < 1e9) {
                return Err(format!("{flag} {v}: expected a positive number of seconds"));
            }
        }
    }
    Ok(Plan { source, run, port })
}

/// How a `rondo run` that started ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Asked to (signal, console `quit`, `--duration`, idle, input exhausted): exit 0.
    Stopped,
    /// The port's interface was deleted or replaced ([`Port::gone`]): exit
    /// [`super::EXIT_PORT_GONE`].
    ///
    /// Why exit rather than rebind to the new interface of that name: a fresh start re-runs
    /// every start-up check (MTU, MAC, TAP, offloads) on the new device instead of trusting
    /// the old one's; a restart of a stateless director takes about a second; and a dead
    /// process drops its BGP session, so routes to this director are withdrawn at once
    /// instead of black-holing traffic while it rebinds. systemd's `Restart=on-failure`
    /// restarts it on the new interface.
    PortGone,
}

/// `rondo run`.
pub fn run(a: &RunArgs) -> Result<Ended, String> {
    let p = plan(a)?;
    let pool =
        || BufPool::new(p.run.pool_size, DATA_ROOM).map_err(|e| format!("runtime.pool_size: {e}"));
    // `fault:PLAN/SPEC`: the port of SPEC with faults injected (a testing aid).
    let (spec, faults) = match &p.port {
        PortSpec::Fault { plan, inner } => {
            tracing::warn!(plan = %plan, "fault injection on: this port drops, delays or refuses packets on purpose (a testing aid)");
            (&**inner, Some(plan))
        }
        s => (s, None),
    };
    // Claimed before the port is opened: a second director on the same interface (or
    // writing the same capture) is refused before it has touched anything.
    let claim = claim_port(spec)?;
    let claim = claim.as_ref();
    match spec {
        PortSpec::AfPacket { iface, rx } => {
            let opts = AfPacketOptions {
                rx_ring: rx.unwrap_or_default(),
                ..AfPacketOptions::default()
            };
            let port = AfPacketPort::open(iface, pool()?, opts).map_err(|e| e.to_string())?;
            tracing::info!(port = %port.name(), rx = %port.options().rx_ring, "af_packet receive ring");
            serve_with(port, faults, &p, a, claim, None)
        }
        #[cfg(feature = "af_xdp")]
        PortSpec::AfXdp {
            iface,
            queues,
            mode,
            busy_poll,
        } => {
            use crate::drivers::af_xdp::AfXdpPort;
            let port =
                AfXdpPort::open(iface, *queues, *mode, *busy_poll).map_err(|e| e.to_string())?;
            // The steering maps follow every snapshot made live: a new VIP is steered to
            // the sockets, a removed one goes back to the kernel.
            let steering = port.steering();
            // Removed VIPs stop being steered before the snapshot without them goes live,
            // new ones start after the snapshot with them is live: no VIP packet reaches a
            // worker whose tables do not know it.
            let hook: crate::runtime::SwapHook = Box::new(move |phase, s| {
                let r = match phase {
                    crate::runtime::SwapPhase::Before => steering.narrow_to(s),
                    crate::runtime::SwapPhase::After => steering.update(s),
                };
                if let Err(e) = r {
                    tracing::error!("{e}");
                }
            });
            serve_with(port, faults, &p, a, claim, Some(hook))
        }
        #[cfg(not(feature = "af_xdp"))]
        PortSpec::AfXdp { iface, .. } => Err(format!(
            "port af_xdp:{iface}: this rondo was built without the AF_XDP driver; rebuild with `cargo build --release --features af_xdp` (needs clang and libbpf-dev), or use af_packet:{iface}"
        )),
        PortSpec::Pcap {
            input,
            output,
            looped,
            pps,
        } => {
            let port = PcapPort::open(input, output.as_deref(), *looped, pool()?)
                .map_err(|e| e.to_string())?
                .paced(*pps);
            serve_with(port, faults, &p, a, claim, None)
        }
        PortSpec::Fault { .. } => Err("fault: wrappers do not nest".to_string()),
        PortSpec::Mem { name } => Err(format!(
            "port mem:{name}: in-memory ports connect threads of one process; `rondo demo` runs the data plane on them"
        )),
        #[cfg(feature = "dpdk")]
        PortSpec::Dpdk { devargs } => {
            use crate::drivers::dpdk::{DpdkPort, DpdkPortOptions};
            let port = DpdkPort::open(
                devargs,
                DpdkPortOptions {
                    settings: p.run.dpdk.clone(),
                    pool_size: p.run.pool_size,
                    worker_cores: p.run.cores.clone(),
                },
            )
            .map_err(|e| e.to_string())?;
            serve_with(port, faults, &p, a, claim, None)
        }
        #[cfg(not(feature = "dpdk"))]
        PortSpec::Dpdk { devargs } => Err(format!(
            "port dpdk:{devargs}: this rondo was built without DPDK; rebuild with `cargo build --release --features dpdk`"
        )),
    }
}

/// Serve `port`, wrapped in a [`FaultPort`] when the spec asked for faults.
fn serve_with<P: Port + 'static>(
    port: P,
    faults: Option<&FaultPlan>,
    p: &Plan,
    a: &RunArgs,
    claim: Option<&crate::sys::claim::Claim>,
    on_swap: Option<crate::runtime::SwapHook>,
) -> Result<Ended, String> {
    match faults {
        Some(plan) => serve(FaultPort::new(port, plan.clone()), p, a, claim, on_swap),
        None => serve(port, p, a, claim, on_swap),
    }
}

/// The abstract socket name that claims `spec` in this network namespace, if it needs one:
/// an af_packet interface, a pcap output file. DPDK ports need none (the EAL refuses a
/// device another primary process uses, unless told to share nothing with --no-shconf or
/// --in-memory); in-memory ports live inside one process.
pub fn claim_name(spec: &PortSpec) -> Option<String> {
    let name = match spec {
        PortSpec::AfPacket { iface, .. } => format!("rondo/port/af_packet:{iface}"),
        PortSpec::AfXdp { iface, .. } => format!("rondo/port/af_xdp:{iface}"),
        PortSpec::Pcap {
            output: Some(out), ..
        } => {
            // The file may not exist yet: its directory, resolved, names it.
            let dir = match out.parent().filter(|d| !d.as_os_str().is_empty()) {
                Some(d) => d.canonicalize().unwrap_or_else(|_| d.to_path_buf()),
                None => std::env::current_dir().unwrap_or_default(),
            };
            let path = dir.join(out.file_name().unwrap_or_default());
            let name = format!("rondo/port/pcap-out:{}", path.display());
            if name.len() <= crate::sys::claim::MAX_NAME {
                name
            } else {
                // Too long for an abstract name: a hash of the path (FNV-1a) stands in.
                let h = path
                    .as_os_str()
                    .as_encoded_bytes()
                    .iter()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                    });
                format!("rondo/port/pcap-out:#{h:016x}")
            }
        }
        _ => return None,
    };
    Some(name)
}

/// Claim the port for this process, or say who has it.
fn claim_port(spec: &PortSpec) -> Result<Option<crate::sys::claim::Claim>, String> {
    use crate::sys::claim::{Claim, ClaimError};
    let Some(name) = claim_name(spec) else {
        return Ok(None);
    };
    match Claim::take(&name) {
        Ok(c) => {
            tracing::debug!(claim = %name, "port claimed");
            Ok(Some(c))
        }
        Err(ClaimError::Held { pid, .. }) => {
            let who = match pid {
                Some(pid) => format!("another rondo (pid {pid})"),
                None => "another rondo (pid unknown)".into(),
            };
            let what = match spec {
                PortSpec::AfPacket { iface, .. } | PortSpec::AfXdp { iface, .. } => format!(
                    "interface {iface} (port {spec}) is already driven by {who} in this network namespace"
                ),
                _ => format!("port {spec}: its output file is already written by {who}"),
            };
            Err(format!(
                "{what}; two directors on one port would both forward every packet: stop that one first (nothing was started)"
            ))
        }
        Err(e) => Err(format!("port {spec}: {e}")),
    }
}

/// The console, metrics and statsd servers of a running director.
struct Servers {
    console: Option<ConsoleServer>,
    metrics: Option<MetricsServer>,
    statsd: Option<StatsdPusher>,
}

/// The console and metrics listeners, bound before the data plane forwards and served
/// once everything else is set up.
struct Bound {
    console: Option<ConsoleListener>,
    metrics: Option<MetricsListener>,
}

impl Bound {
    fn bind(run: &RunSettings) -> Result<Bound, String> {
        let mut b = Bound {
            console: None,
            metrics: None,
        };
        if let Some((path, explicit)) = run
            .console
            .socket
            .resolve(PathBuf::from(DEFAULT_CONSOLE_SOCKET))
        {
            match ConsoleListener::bind(&path) {
                Ok(c) => b.console = Some(c),
                Err(e) if !explicit => tracing::warn!(
                    "no console: {e} (set [console] socket or --console-socket; \"off\" silences this)"
                ),
                Err(e) => return Err(e.to_string()),
            }
        }
        let default: SocketAddr = DEFAULT_METRICS_LISTEN
            .parse()
            .map_err(|_| "built-in metrics address".to_string())?;
        if let Some((addr, explicit)) = run.metrics.listen.resolve(default) {
            match MetricsListener::bind(addr) {
                Ok(m) => b.metrics = Some(m),
                Err(e) if !explicit => {
                    tracing::warn!("no metrics endpoint: {e} (\"off\" silences this)")
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(b)
    }
}

impl Servers {
    /// Statsd push (its socket is made here); the console and metrics are served later
    /// ([`Servers::serve`]).
    fn start(plane: &Arc<ControlPlane>, run: &RunSettings) -> Result<Servers, String> {
        let mut sv = Servers {
            console: None,
            metrics: None,
            statsd: None,
        };
        if let Some(target) = run.metrics.statsd {
            let every = Duration::from_millis(run.metrics.statsd_interval_ms);
            let p = StatsdPusher::start(target, every, plane.clone()).map_err(|e| e.to_string())?;
            plane.set_endpoints(|e| e.statsd = Some(target));
            sv.statsd = Some(p);
        }
        Ok(sv)
    }

    /// Serve the bound console and metrics listeners.
    fn serve(
        &mut self,
        bound: Bound,
        plane: &Arc<ControlPlane>,
        exec: &Arc<Executor>,
        run: &RunSettings,
    ) -> Result<(), String> {
        if let Some(c) = bound.console {
            let path = c.path().to_path_buf();
            let c = c
                .serve(run.console.max_clients, exec.clone())
                .map_err(|e| e.to_string())?;
            plane.set_endpoints(|e| e.console = Some(path));
            self.console = Some(c);
        }
        if let Some(m) = bound.metrics {
            let m = m.serve(plane.clone()).map_err(|e| e.to_string())?;
            plane.set_endpoints(|e| e.metrics = Some(m.addr()));
            self.metrics = Some(m);
        }
        Ok(())
    }

    /// Stop them all (sessions are closed, the last statsd interval is pushed).
    fn stop(self) {
        if let Some(c) = self.console {
            c.shutdown();
        }
        if let Some(m) = self.metrics {
            m.shutdown();
        }
        if let Some(s) = self.statsd {
            s.shutdown();
        }
    }
}

fn serve<P: Port + 'static>(
    port: P,
    p: &Plan,
    a: &RunArgs,
    claim: Option<&crate::sys::claim::Claim>,
    on_swap: Option<crate::runtime::SwapHook>,
) -> Result<Ended, String> {
    let signals = SignalFlags::install().map_err(|e| format!("installing signal handlers: {e}"))?;
    // The console socket and the metrics port are had before the data plane starts.
    let bound = Bound::bind(&p.run)?;
    // `[bgp]`: the daemon must answer before anything is forwarded; what a previous run
    // left announced is withdrawn, and the lifeline is created.
    let bird = match &p.run.bgp {
        Some(b) => Some(Bird::new(b.bird.clone()).map_err(|e| {
            format!(
                "[bgp]: {e}; BIRD must be running and answering on {} before rondo starts (its bird.conf including {}); nothing was forwarded",
                b.bird.socket.display(),
                b.bird.include.display()
            )
        })?),
        None => None,
    };
    let mut control = Control::new(Some(p.source.clone()), port.mac());
    // `[fleet]`: the tables come from etcd (or the fleet cache); the thread starts below.
    let (snap, fleet) = crate::runtime::fleet::initial(&mut control)?;
    let opts = RuntimeOptions {
        workers: p.run.workers.unwrap_or(1),
        cores: p.run.cores.clone(),
        idle: match p.run.idle_sleep_us {
            Some(us) => IdlePolicy::Sleep {
                after: 256,
                micros: us,
            },
            None => IdlePolicy::BusyPoll,
        },
        exception: p
            .run
            .exception_tap
            .clone()
            .map_or(ExceptionPath::Drop, ExceptionPath::Tap),
        // Nothing is forwarded until every listener, socket and file below is had: a
        // start that fails on one of them has forwarded nothing.
        start_paused: true,
        ..RuntimeOptions::default()
    };
    let rt = Runtime::start(port, snap, opts).map_err(|e| e.to_string())?;
    if let Some(hook) = on_swap {
        rt.set_on_swap(hook);
    }
    if let Some(free) = avoid_worker_cores(rt.options()) {
        tracing::info!(cores = ?free, "control, console and metrics threads run off the worker cores");
    }
    let plane = Arc::new(ControlPlane::new(rt, control));
    let exec = Arc::new(Executor::new(plane.clone()));
    let mut servers = Servers::start(&plane, &p.run)?;
    let bgp = match (bird, &p.run.bgp) {
        (Some(bird), Some(s)) => Some(
            BgpDriver::start(bird, s.clone(), plane.clone())
                .map_err(|e| format!("cannot start the BGP thread: {e}"))?,
        ),
        _ => None,
    };
    let fleet = fleet.map(|f| f.start(plane.clone())).transpose()?;
    let _pid = a
        .pid_file
        .as_deref()
        .map(PidFile::create)
        .transpose()
        .map_err(|e| format!("--pid-file: {e}"))?;
    let rt = plane.runtime();
    // Reloads (signals, file changes) run on their own thread: this loop, which handles
    // SIGTERM, never waits for one.
    let reloader = Reloader::start(plane.clone(), Duration::from_secs(1))
        .map_err(|e| format!("cannot start the reload thread: {e}"))?;
    // Everything that can fail is had: forward, then serve the consoles and metrics
    // (connections made meanwhile waited in the backlog).
    if rt.release() {
        tracing::info!("forwarding");
    }
    servers.serve(bound, &plane, &exec, &p.run)?;
    // systemd's watchdog (WatchdogSec=): pinged from this loop while every worker moves.
    let mut watchdog = match Watchdog::from_env() {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("systemd watchdog not followed: {e}");
            None
        }
    };
    if let Some(w) = &watchdog {
        tracing::info!(every = ?w.interval(), "systemd watchdog: WATCHDOG=1 while every worker makes progress");
    }
    if a.interactive {
        let ex = exec.clone();
        let pl = plane.clone();
        std::thread::Builder::new()
            .name("rondo-stdin".into())
            .spawn(move || {
                let banner = "rondo console on standard input: `help` lists commands, `quit` stops the director";
                if let Err(e) = repl(Local::new(ex), banner) {
                    tracing::warn!("console on standard input: {e}");
                }
                // End of input or `quit`: testpmd -i stops too.
                pl.request_quit();
            })
            .map_err(|e| format!("cannot start the stdin console: {e}"))?;
    }
    drop(exec);
    // A fleet director takes health from the fleet's checker (etcd), not from checks of its own.
    let mut health = if plane.fleet.configured() {
        tracing::info!(
            "[fleet]: backend health comes from etcd's health document; no local health checks"
        );
        None
    } else {
        HealthWiring::start(&plane)
    };
    match sd_notify("READY=1") {
        Ok(true) => tracing::info!("notified systemd: READY=1"),
        Ok(false) => {}
        Err(e) => tracing::warn!("systemd notify failed: {e}"),
    }
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let mut last_rx = (0u64, Instant::now());
    let mut last_poll = Instant::now();
    let mut ended = Ended::Stopped;
    // Stopped by SIGTERM or `quit`: with [bgp], step out of ECMP gracefully first.
    let mut graceful = false;
    // The link as last logged, for drivers that do not log transitions themselves.
    let mut link_up = rt.port().link().map(|l| l.up);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        // Sampled every tick: the watchdog's input and the progress ages metrics show.
        let progress = rt.worker_progress();
        if let Some(w) = watchdog.as_mut() {
            w.tick(Instant::now(), &progress);
        }
        // Port upkeep off the data path (af_packet follows the link and re-reads the MTU).
        if last_poll.elapsed() >= Duration::from_secs(1) {
            rt.port().poll();
            if let Some(c) = claim {
                c.drain();
            }
            last_poll = Instant::now();
            if let Some(why) = rt.port().gone() {
                tracing::error!(
                    port = %rt.port_name(),
                    "{why}: the port can never forward again; stopping, exit status {} for the supervisor to restart rondo on the interface now of that name",
                    super::EXIT_PORT_GONE
                );
                ended = Ended::PortGone;
                break;
            }
            log_link_change(rt.port(), &mut link_up);
        }
        if signals.stop_requested() {
            tracing::info!("stop requested by signal");
            graceful = true;
            break;
        }
        if plane.quit_requested() {
            tracing::info!("stop requested on the console (quit)");
            graceful = true;
            break;
        }
        if signals.take_reload() {
            reloader.request();
        }
        if let Some(h) = health.as_mut() {
            h.pump(&plane);
        }
        // Ready to be announced: forwarding, the first table live and the health checks'
        // first round applied (the link is a reason of its own).
        if bgp.is_some()
            && !plane.bgp.ready()
            && health.as_ref().is_none_or(|h| h.first_round_done())
        {
            plane.bgp.set_ready();
            tracing::info!("BGP: ready (forwarding, tables live, first health round done)");
        }
        if a.stats_interval > 0 && last_stats.elapsed() >= Duration::from_secs(a.stats_interval) {
            last_stats = Instant::now();
            let t = rt.totals();
            tracing::info!(
                rx = t.rx_packets,
                forwarded = t.forwarded,
                exceptions = t.total_exceptions(),
                drops = t.total_drops(),
                tx_refused = t.tx_refused,
                "stats"
            );
        }
        if rt.finished() {
            tracing::info!("every RX queue is exhausted; stopping");
            break;
        }
        if a.duration
            .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
        {
            tracing::info!("--duration reached; stopping");
            break;
        }
        if let Some(idle) = a.stop_when_idle {
            let rx = rt.totals().rx_packets;
            if rx != last_rx.0 {
                last_rx = (rx, Instant::now());
            } else if rx > 0 && last_rx.1.elapsed().as_secs_f64() >= idle {
                tracing::info!("no packet for {idle} s (--stop-when-idle); stopping");
                break;
            }
        }
    }
    let drained = match (&bgp, &p.run.bgp) {
        (Some(_), Some(s)) if graceful => Some(graceful_stop(&plane, s)),
        _ => None,
    };
    if let Some(b) = bgp {
        b.stop(Duration::from_secs(2));
    }
    if let Some(f) = fleet {
        crate::runtime::fleet::stop(f, Duration::from_secs(2));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = sd_notify("STOPPING=1");
    reloader.stop(Duration::from_secs(2));
    servers.stop();
    let (ok, failed) = (
        plane.reloads_ok.load(std::sync::atomic::Ordering::Relaxed),
        plane
            .reloads_failed
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    let rt_driver = rt.port().driver();
    let plane_bgp_failures = plane
        .bgp
        .apply_failures
        .load(std::sync::atomic::Ordering::Relaxed);
    let counts = plane.shutdown_counts(Duration::from_secs(5));
    let totals = counts.totals();
    let port_stats = counts.port;
    print!("{}", format_counters(&totals));
    println!(
        "elapsed     {elapsed:.3} s, rx {:.3} Mpps, forwarded {:.3} Mpps",
        totals.rx_packets as f64 / elapsed / 1e6,
        totals.forwarded as f64 / elapsed / 1e6
    );
    println!("{}", format_port_stats(&port_stats));
    let faults: Vec<String> = counts
        .xstats
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("fault_").map(|k| format!("{k} {v}")))
        .collect();
    if !faults.is_empty() {
        println!("faults      {}", faults.join(" "));
    }
    if let Some(e) = counts.exception {
        println!(
            "exception   to kernel {} (refused {}), from kernel {} (dropped {})",
            e.to_kernel, e.to_kernel_failed, e.from_kernel, e.from_kernel_dropped
        );
        if totals.kernel_tx_dropped > 0 {
            println!(
                "            of those from the kernel, not sent by worker 0: {}",
                totals.kernel_tx_dropped
            );
        }
    }
    // DPDK's port counters are the NIC's, which count frames still in its rings.
    let accounts = counts.accounts();
    let checked = if rt_driver.contains("dpdk") {
        accounts.check_workers()
    } else {
        accounts.check()
    };
    match checked {
        Ok(()) => println!("accounts    every packet counted"),
        Err(e) => {
            tracing::warn!("{e}");
            println!("accounts    {e}");
        }
    }
    println!("reloads     ok {ok} failed {failed}");
    if p.run.bgp.is_some() {
        let failures = plane_bgp_failures;
        match drained {
            Some(d) => println!(
                "bgp         VIP packets after withdrawal {} (drained {} ms{}), apply failures {failures}",
                d.after,
                d.drained.as_millis(),
                if d.confirmed { "" } else { ", BIRD did not confirm the withdrawal" }
            ),
            None => println!(
                "bgp         not drained (stopped without SIGTERM or quit), apply failures {failures}"
            ),
        }
    }
    Ok(ended)
}

/// What the graceful stop saw.
struct Drained {
    /// VIP packets (forwarded to a backend) after the withdrawal was in force. Not every
    /// received frame: the BGP session's own packets, BFD and ARP keep arriving on the
    /// port after the withdrawal and say nothing about whether the router still sends
    /// VIP traffic here.
    after: u64,
    /// How long forwarding went on after it.
    drained: Duration,
    /// BIRD confirmed the withdrawal (else the lifeline takes the routes away at exit).
    confirmed: bool,
}

/// SIGTERM or `quit` with `[bgp]`: announce GRACEFUL_SHUTDOWN for `graceful_ms`, withdraw
/// every VIP, then keep forwarding while VIP packets still arrive: up to `drain_ms`, or
/// until none came for [`DRAIN_QUIET`] (BGP, BFD and ARP frames do not count: they keep
/// coming while the session is up). Waits for BIRD at most a few control timeouts per step.
fn graceful_stop(plane: &ControlPlane, s: &BgpRunSettings) -> Drained {
    let rt = plane.runtime();
    let bound = s.bird.timeout * 3 + Duration::from_secs(1);
    let confirm = || {
        let end = Instant::now() + bound;
        while !plane.bgp.lifecycle_applied() {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    };
    plane.bgp.set_lifecycle(Lifecycle::Graceful);
    if confirm() {
        tracing::info!(
            graceful_ms = s.graceful.as_millis() as u64,
            "BGP: GRACEFUL_SHUTDOWN announced; withdrawing after graceful_ms"
        );
    } else {
        tracing::warn!("BGP: BIRD did not confirm the GRACEFUL_SHUTDOWN announcement; withdrawing after graceful_ms anyway");
    }
    std::thread::sleep(s.graceful);
    plane.bgp.set_lifecycle(Lifecycle::Draining);
    let confirmed = confirm();
    if !confirmed {
        tracing::warn!("BGP: BIRD did not confirm the withdrawal; the lifeline withdraws the routes when rondo exits");
    }
    let t0 = Instant::now();
    let vip0 = rt.totals().forwarded;
    let mut last = (vip0, Instant::now());
    while t0.elapsed() < s.drain && last.1.elapsed() < DRAIN_QUIET {
        std::thread::sleep(Duration::from_millis(10));
        let vip = rt.totals().forwarded;
        if vip != last.0 {
            last = (vip, Instant::now());
        }
    }
    let d = Drained {
        after: last.0 - vip0,
        drained: t0.elapsed(),
        confirmed,
    };
    tracing::info!(
        packets_after_withdrawal = d.after,
        drained_ms = d.drained.as_millis() as u64,
        "BGP: withdrawn; {} VIP packets arrived after the withdrawal, forwarded for {} ms more; stopping",
        d.after,
        d.drained.as_millis()
    );
    d
}

/// The drain stops early once no packet came for this long.
pub const DRAIN_QUIET: Duration = Duration::from_millis(200);

/// Log a link transition of a driver that reports its link when asked but does not watch it
/// (`LinkInfo::changes` is `None`, e.g. DPDK): once per transition, warn on down.
fn log_link_change(port: &dyn crate::drivers::PortView, last: &mut Option<bool>) {
    let Some(l) = port.link() else { return };
    if l.changes.is_some() || *last == Some(l.up) {
        *last = Some(l.up);
        return;
    }
    if last.is_some() {
        if l.up {
            tracing::info!(port = %port.name(), "link up");
        } else {
            tracing::warn!(port = %port.name(), "link down: nothing is received or sent until it is up again");
        }
    }
    *last = Some(l.up);
}

/// The port's counters for the final summary, every one of them: `tx_too_big` and
/// `tx_kernel_refused` are the reasons of `tx_dropped` the driver knows.
fn format_port_stats(p: &crate::drivers::PortStats) -> String {
    format!(
        "port        rx {} tx {} rx_dropped {} tx_dropped {} (tx_too_big {} tx_kernel_refused {}) rx_errors {} tx_errors {} rx_bytes {} tx_bytes {}",
        p.rx_packets,
        p.tx_packets,
        p.rx_dropped,
        p.tx_dropped,
        p.tx_too_big,
        p.tx_kernel_refused,
        p.rx_errors,
        p.tx_errors,
        p.rx_bytes,
        p.tx_bytes
    )
}

/// The built-in health checker (GLB's `glb-healthcheck`): started when any backend of the running
/// tables has checks; its flips go through [`ControlPlane::set_health_observation`], the same
/// validated rebuild-and-swap as a reload; it follows the tables across reloads.
struct HealthWiring {
    checker: crate::health::Checker,
    events: std::sync::mpsc::Receiver<crate::health::HealthEvent>,
    generation: u64,
    /// A completed round was seen at a pump / and its results applied by the next one.
    round_seen: bool,
    round_applied: bool,
}

impl HealthWiring {
    fn specs(plane: &ControlPlane) -> (u64, Vec<crate::table::TableSpec>) {
        let snap = plane.runtime().snapshot();
        let specs = snap.tables.iter().map(|t| t.table.spec.clone()).collect();
        (snap.generation, specs)
    }

    fn start(plane: &ControlPlane) -> Option<HealthWiring> {
        let (generation, specs) = Self::specs(plane);
        let checked = |s: &crate::table::TableSpec| {
            s.backends.iter().any(|b| {
                let h = &b.healthchecks;
                h.http.is_some() || h.tcp.is_some() || h.gue.is_some()
            })
        };
        if !specs.iter().any(checked) {
            tracing::info!("no backend has health checks: the health checker is off");
            return None;
        }
        let options = crate::health::CheckerOptions {
            avoid_cores: plane.runtime().options().cores.clone().unwrap_or_default(),
            ..crate::health::CheckerOptions::default()
        };
        match crate::health::Checker::start(options, &specs) {
            Ok((checker, events)) => {
                tracing::info!("health checker started");
                Some(HealthWiring {
                    checker,
                    events,
                    generation,
                    round_seen: false,
                    round_applied: false,
                })
            }
            Err(e) => {
                tracing::error!("health checker not started: {e}");
                None
            }
        }
    }

    /// The first round of checks is done and its results are in the tables.
    fn first_round_done(&self) -> bool {
        self.round_applied
    }

    /// Apply the flips reported since the last call; follow reloaded tables.
    fn pump(&mut self, plane: &ControlPlane) {
        // A round's results are sent just after it is counted: seen at one pump, they are
        // all applied by the next.
        self.round_applied |= self.round_seen;
        self.round_seen |= self.checker.snapshot().rounds > 0;
        for ev in self.events.try_iter() {
            match plane.set_health_observation(&ev.table, ev.backend, ev.healthy) {
                Ok(Some(g)) => {
                    tracing::info!(table = %ev.table, backend = %ev.backend, healthy = ev.healthy, reason = %ev.reason, generation = g, "health changed; table rebuilt")
                }
                Ok(None) => {
                    tracing::info!(table = %ev.table, backend = %ev.backend, healthy = ev.healthy, reason = %ev.reason, "health changed; no table change (pinned by the operator, or already so)")
                }
                Err(e) => {
                    tracing::warn!(table = %ev.table, backend = %ev.backend, "health result not applied: {e}")
                }
            }
        }
        let (generation, specs) = Self::specs(plane);
        if generation != self.generation {
            self.generation = generation;
            self.checker.set_tables(&specs);
        }
    }
}
