//! Runs console commands against the control plane. Reads go through the published
//! counters and the live snapshot; changes go through [`ControlPlane`] (validated rebuild
//! and swap, logged). Never touches a worker.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::grammar::{self, quote, Command, CompletionContext, PortSel};
use super::Reply;
use crate::datapath::counters::ExceptionReason;
use crate::datapath::counters::QuicOutcome;
use crate::datapath::{CoreCounters, DropReason};
use crate::drivers::PortStats;
use crate::runtime::control::ChangeReport;

use crate::runtime::plane::ControlPlane;
use crate::runtime::{ExceptionPath, IdlePolicy};
use crate::table::diff::{pct, shares};
use crate::table::BackendState;

/// Ports a director has (one for now: it receives and sends).
pub const PORTS: u16 = 1;

/// Where a session's commands come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client of the console socket (numbered from 1).
    Socket(u64),
    /// `rondo run -i`: `quit` stops the director.
    Stdin,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Socket(n) => write!(f, "socket session {n}"),
            Origin::Stdin => write!(f, "stdin"),
        }
    }
}

/// Per-session state: the reference point of the rates of `show port stats`.
#[derive(Debug)]
pub struct Session {
    pub origin: Origin,
    last_port: Option<(Instant, PortStats)>,
}

impl Session {
    pub fn new(origin: Origin) -> Session {
        Session {
            origin,
            last_port: None,
        }
    }
}

/// What `clear port stats` subtracts.
#[derive(Debug, Clone, Default)]
struct Baseline {
    port: PortStats,
    fwd: CoreCounters,
}

/// Runs commands; shared by every session.
pub struct Executor {
    plane: Arc<ControlPlane>,
    baseline: Mutex<Baseline>,
    /// Commands run, for `show config`.
    commands: AtomicU64,
}

fn sub_port(a: &PortStats, b: &PortStats) -> PortStats {
    PortStats {
        rx_packets: a.rx_packets.saturating_sub(b.rx_packets),
        rx_bytes: a.rx_bytes.saturating_sub(b.rx_bytes),
        tx_packets: a.tx_packets.saturating_sub(b.tx_packets),
        tx_bytes: a.tx_bytes.saturating_sub(b.tx_bytes),
        rx_dropped: a.rx_dropped.saturating_sub(b.rx_dropped),
        tx_dropped: a.tx_dropped.saturating_sub(b.tx_dropped),
        rx_errors: a.rx_errors.saturating_sub(b.rx_errors),
        tx_errors: a.tx_errors.saturating_sub(b.tx_errors),
        tx_too_big: a.tx_too_big.saturating_sub(b.tx_too_big),
        tx_kernel_refused: a.tx_kernel_refused.saturating_sub(b.tx_kernel_refused),
    }
}

fn sub_fwd(a: &CoreCounters, b: &CoreCounters) -> CoreCounters {
    let (wa, wb) = (a.to_words(), b.to_words());
    let w: [u64; CoreCounters::WORDS] = std::array::from_fn(|i| wa[i].saturating_sub(wb[i]));
    CoreCounters::from_words(&w)
}

fn rate(n: u64, secs: f64) -> u64 {
    if secs > 0.0 {
        (n as f64 / secs).round() as u64
    } else {
        0
    }
}

fn check_port(sel: PortSel) -> Result<(), String> {
    match sel {
        PortSel::All => Ok(()),
        PortSel::One(p) if p < PORTS => Ok(()),
        PortSel::One(p) => Err(format!("no port {p}; this director has {PORTS} port (0)")),
    }
}

fn end_nl(mut s: String) -> String {
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

impl Executor {
    pub fn new(plane: Arc<ControlPlane>) -> Executor {
        Executor {
            plane,
            baseline: Mutex::new(Baseline::default()),
            commands: AtomicU64::new(0),
        }
    }

    pub fn plane(&self) -> &Arc<ControlPlane> {
        &self.plane
    }

    fn baseline(&self) -> Baseline {
        self.baseline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Run one line.
    pub fn execute(&self, s: &mut Session, line: &str) -> Reply {
        let cmd = match grammar::parse(line) {
            Ok(Some(c)) => c,
            Ok(None) => return Reply::ok(""),
            Err(e) => return Reply::err(end_nl(format!("error: {e}"))),
        };
        self.commands.fetch_add(1, Ordering::Relaxed);
        let r = self.run(s, cmd);
        match r {
            Ok(mut reply) => {
                reply.text = end_nl(reply.text);
                reply
            }
            Err(e) => Reply::err(end_nl(format!("error: {e}"))),
        }
    }

    fn run(&self, s: &mut Session, cmd: Command) -> Result<Reply, String> {
        let rt = self.plane.runtime();
        Ok(match cmd {
            Command::Help(words) => Reply::ok(grammar::help(&words)?),
            Command::ShowPortStats(sel) => {
                check_port(sel)?;
                Reply::ok(self.port_stats(s))
            }
            Command::ShowPortInfo(sel) => {
                check_port(sel)?;
                Reply::ok(self.port_info())
            }
            Command::ClearPortStats(sel) => {
                check_port(sel)?;
                let now = rt.port_stats();
                *self.baseline.lock().unwrap_or_else(|p| p.into_inner()) = Baseline {
                    port: now,
                    fwd: rt.totals(),
                };
                s.last_port = Some((Instant::now(), now));
                tracing::info!(origin = %s.origin, "console: port stats cleared");
                Reply::ok("port 0: statistics cleared")
            }
            Command::ShowFwdStats => Reply::ok(self.fwd_stats()),
            Command::ShowTables => Reply::ok(self.tables()),
            Command::ShowTable { name, row } => Reply::ok(self.table(&name, row)?),
            Command::ShowBackends(t) => Reply::ok(self.backends(t.as_deref())?),
            Command::ShowConfig => Reply::ok(self.config()),
            Command::ShowFlow(q) => Reply::ok(
                crate::datapath::explain::explain(&rt.snapshot(), &q)
                    .to_string()
                    .trim_end()
                    .to_string(),
            ),
            Command::SetBackend {
                table,
                ip,
                change,
                force,
                dry_run,
            } => {
                tracing::info!(origin = %s.origin, table = %table, backend = %ip, change = %change, force, dry_run, "console: backend change requested");
                let r = self
                    .plane
                    .change_backend(&table, ip, change, force, dry_run)?;
                Reply::ok(change_text(&r))
            }
            Command::Reload => {
                tracing::info!(origin = %s.origin, "console: reload requested");
                match self.plane.reload_reporting(&format!("console ({})", s.origin)) {
                    Ok((g, removed)) if removed.is_empty() => {
                        Reply::ok(format!("reloaded: generation {g} live"))
                    }
                    Ok((g, removed)) => Reply::ok(format!(
                        "reloaded: generation {g} live\nwarning: this reload removed {}: no longer served",
                        removed.join(", ")
                    )),
                    Err(e) => return Err(format!("reload refused, the running tables stay: {e}")),
                }
            }
            Command::Start => {
                if rt.is_paused() {
                    rt.resume();
                    tracing::info!(origin = %s.origin, "console: forwarding started");
                    Reply::ok("forwarding started")
                } else {
                    Reply::ok("forwarding is already started")
                }
            }
            Command::Stop => {
                if rt.is_paused() {
                    Reply::ok("forwarding is already stopped")
                } else {
                    let all = rt.pause(Duration::from_secs(2));
                    tracing::info!(origin = %s.origin, "console: forwarding stopped");
                    if all {
                        Reply::ok("forwarding stopped")
                    } else {
                        Reply::ok("forwarding stopped (a worker has not confirmed yet)")
                    }
                }
            }
            Command::Quit => {
                if s.origin == Origin::Stdin {
                    self.plane.request_quit();
                }
                Reply {
                    ok: true,
                    text: "bye".into(),
                    close: true,
                }
            }
            Command::Complete(partial) => {
                Reply::ok(grammar::complete(&partial, &self.completion_context()).join("\n"))
            }
            Command::ShowBgp => Reply::ok(self.show_bgp()?),
            Command::ShowFleet => Reply::ok(crate::runtime::fleet::show(&self.plane)?),
            Command::Bgp { withdraw, vip } => Reply::ok(self.bgp_override(s, withdraw, vip)?),
        })
    }

    fn bgp_configured(&self) -> Result<(), String> {
        if self.plane.bgp.configured() {
            Ok(())
        } else {
            Err("BGP is not configured: add [bgp] to the config (or --bgp-socket and --bgp-include)".into())
        }
    }

    fn show_bgp(&self) -> Result<String, String> {
        self.bgp_configured()?;
        let b = &self.plane.bgp;
        let v = b.view();
        let mut o = String::new();
        let _ = writeln!(
            o,
            "BGP through BIRD at {} (include {})",
            v.socket, v.include
        );
        let _ = writeln!(
            o,
            "  ready: {}  lifecycle: {:?}  in force in BIRD: {}  applies: {}  apply failures: {}",
            if b.ready() { "yes" } else { "no" },
            b.lifecycle(),
            if v.in_sync { "yes" } else { "no" },
            b.applies.load(Ordering::Relaxed),
            b.apply_failures.load(Ordering::Relaxed)
        );
        if let Some(e) = &v.apply_error {
            let _ = writeln!(o, "  last apply failed (retrying): {e}");
        }
        let ov = b.overrides();
        if ov.any() {
            let join = |s: &std::collections::BTreeSet<crate::fleet::bgp::Prefix>| {
                s.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                o,
                "  operator withdrawals: {}",
                if !ov.all {
                    join(&ov.prefixes)
                } else if ov.except.is_empty() {
                    "all VIPs".to_string()
                } else {
                    format!("all VIPs except {}", join(&ov.except))
                }
            );
        }
        let _ = writeln!(o, "  VIPs:");
        if v.decisions.is_empty() {
            let _ = writeln!(o, "    (none decided yet)");
        }
        for d in &v.decisions {
            let _ = writeln!(
                o,
                "    {:<22} {:<10} {}  (tables {})",
                d.prefix.to_string(),
                if d.verdict.is_announced() {
                    "announced"
                } else {
                    "withdrawn"
                },
                match &d.verdict {
                    crate::fleet::bgp::decide::Verdict::Announced { graceful: true } =>
                        "with GRACEFUL_SHUTDOWN".to_string(),
                    crate::fleet::bgp::decide::Verdict::Announced { graceful: false } =>
                        String::new(),
                    crate::fleet::bgp::decide::Verdict::Withdrawn(r) => format!("because: {r}"),
                },
                d.tables.join(",")
            );
        }
        let age = v.status_at.map_or("never read".to_string(), |t| {
            format!("read {:.1} s ago", t.elapsed().as_secs_f64())
        });
        let _ = writeln!(o, "  sessions ({age}):");
        if let Some(e) = &v.status_error {
            if v.daemon_unreachable {
                let _ = writeln!(
                    o,
                    "    BIRD daemon unreachable: {e} (forwarding continues; the announcements are applied again when it answers)"
                );
            } else {
                let _ = writeln!(o, "    BIRD status failed: {e}");
            }
        }
        if v.sessions.is_empty() {
            let _ = writeln!(o, "    (none configured: [bgp] sessions)");
        }
        for sv in &v.sessions {
            match &sv.status {
                Ok(p) => {
                    let bfd: Vec<String> = p
                        .neighbor
                        .map(|n| {
                            v.bfd
                                .iter()
                                .filter(|f| f.peer == n)
                                .map(|f| format!("{:?}", f.state))
                                .collect()
                        })
                        .unwrap_or_default();
                    let _ = writeln!(
                        o,
                        "    {:<16} {} {}  neighbor {}  bfd {}{}",
                        sv.name,
                        p.state,
                        p.bgp_state
                            .as_ref()
                            .map_or(p.info.clone(), |s| format!("{s:?}")),
                        p.neighbor.map_or("-".to_string(), |n| n.to_string()),
                        if bfd.is_empty() {
                            "-".to_string()
                        } else {
                            bfd.join(",")
                        },
                        p.last_error
                            .as_ref()
                            .map_or(String::new(), |e| format!("  last error: {e}"))
                    );
                }
                Err(e) => {
                    let _ = writeln!(o, "    {:<16} unknown: {e}", sv.name);
                }
            }
        }
        if !v.bfd.is_empty() {
            let _ = writeln!(o, "  BFD sessions:");
            for f in &v.bfd {
                let _ = writeln!(
                    o,
                    "    {} {} on {}: {:?}",
                    f.protocol, f.peer, f.interface, f.state
                );
            }
        }
        Ok(o)
    }

    fn bgp_override(
        &self,
        s: &Session,
        withdraw: bool,
        vip: Option<crate::fleet::bgp::Prefix>,
    ) -> Result<String, String> {
        self.bgp_configured()?;
        if let Some(p) = vip {
            let snap = self.plane.runtime().snapshot();
            let known = snap.tables.iter().any(|t| {
                crate::fleet::bgp::decide::TableInput::new(
                    &t.table.spec.name,
                    &t.table.spec.binds,
                    &[],
                )
                .prefixes
                .contains(&p)
            });
            if !known {
                return Err(format!(
                    "{p} is not a bind prefix of the running tables (`show bgp` lists them)"
                ));
            }
        }
        let what = vip.map_or("every VIP".to_string(), |p| p.to_string());
        if withdraw {
            self.plane.bgp.withdraw(vip);
            tracing::info!(origin = %s.origin, vip = %what, "console: bgp withdraw");
            Ok(format!(
                "{what}: withdrawn by the operator until `bgp announce`; forwarding goes on"
            ))
        } else {
            let had = self.plane.bgp.clear_withdraw(vip);
            tracing::info!(origin = %s.origin, vip = %what, "console: bgp announce");
            Ok(if had {
                format!("{what}: operator withdrawal cleared; announced again if the decision allows (see `show bgp`)")
            } else {
                format!("{what}: no operator withdrawal to clear (see `show bgp` for why a VIP is withdrawn)")
            })
        }
    }

    /// Table names and backend addresses of the live snapshot, for completion.
    pub fn completion_context(&self) -> CompletionContext {
        let snap = self.plane.runtime().snapshot();
        CompletionContext {
            tables: snap
                .tables
                .iter()
                .map(|t| {
                    (
                        t.table.spec.name.clone(),
                        t.table.spec.backends.iter().map(|b| b.ip).collect(),
                    )
                })
                .collect(),
            ports: PORTS,
        }
    }

    fn port_stats(&self, s: &mut Session) -> String {
        let rt = self.plane.runtime();
        let now = Instant::now();
        let raw = rt.port_stats();
        let base = self.baseline();
        let p = sub_port(&raw, &base.port);
        let f = sub_fwd(&rt.totals(), &base.fwd);
        let (since, prev, label) = match s.last_port {
            Some((t, prev)) => (t, prev, "since last show"),
            None => (
                now.checked_sub(self.plane.uptime()).unwrap_or(now),
                PortStats::default(),
                "since start",
            ),
        };
        let secs = now.duration_since(since).as_secs_f64();
        let d = sub_port(&raw, &prev);
        s.last_port = Some((now, raw));
        let mut o = String::new();
        let _ = writeln!(
            o,
            "  ######################## NIC statistics for port 0 ########################"
        );
        let _ = writeln!(o, "  port 0 {}", rt.port_name());
        let _ = writeln!(
            o,
            "  RX-packets: {:<14} RX-dropped: {:<14} RX-bytes: {}",
            p.rx_packets, p.rx_dropped, p.rx_bytes
        );
        let _ = writeln!(o, "  RX-errors:  {}", p.rx_errors);
        let _ = writeln!(
            o,
            "  TX-packets: {:<14} TX-dropped: {:<14} TX-bytes: {}",
            p.tx_packets, p.tx_dropped, p.tx_bytes
        );
        let _ = writeln!(
            o,
            "  TX-errors:  {:<14} TX-too-big: {:<14} TX-kernel-refused: {}",
            p.tx_errors, p.tx_too_big, p.tx_kernel_refused
        );
        let _ = writeln!(
            o,
            "  Forwarded:  {:<14} Exceptions: {:<14} Dropped:  {}   TX-refused: {}",
            f.forwarded,
            f.total_exceptions(),
            f.total_drops(),
            f.tx_refused
        );
        let _ = writeln!(o, "  Throughput ({label}, {secs:.2} s)");
        let _ = writeln!(
            o,
            "  Rx-pps: {:>14}          Rx-bps: {:>16}",
            rate(d.rx_packets, secs),
            rate(d.rx_bytes.saturating_mul(8), secs)
        );
        let _ = writeln!(
            o,
            "  Tx-pps: {:>14}          Tx-bps: {:>16}",
            rate(d.tx_packets, secs),
            rate(d.tx_bytes.saturating_mul(8), secs)
        );
        let _ = write!(
            o,
            "  ############################################################################"
        );
        o
    }

    fn port_info(&self) -> String {
        let rt = self.plane.runtime();
        let opts = rt.options();
        let mut o = String::new();
        let _ = writeln!(
            o,
            "  ********************* Infos for port 0 *********************"
        );
        let _ = writeln!(o, "  Port:             {}", rt.port_name());
        let _ = writeln!(o, "  Driver:           {}", rt.port().driver());
        if let Some(l) = rt.port().link() {
            let mut line = (if l.up { "up" } else { "down" }).to_string();
            if l.speed_mbps > 0 {
                let duplex = if l.full_duplex {
                    "full-duplex"
                } else {
                    "half-duplex"
                };
                let _ = write!(line, " {} Mbps {duplex}", l.speed_mbps);
            }
            if let Some(c) = l.changes {
                let _ = write!(line, " ({c} changes since start)");
            }
            let _ = writeln!(o, "  Link:             {line}");
        }
        let _ = writeln!(
            o,
            "  MAC address:      {}",
            rt.port_mac().map_or(
                "(none: encapsulated frames use the configured src_mac)".to_string(),
                |m| m.to_string()
            )
        );
        let _ = writeln!(
            o,
            "  Queues:           {} RX / {} TX (one pair per worker)",
            opts.workers, opts.workers
        );
        let _ = writeln!(
            o,
            "  Workers:          {} {}",
            opts.workers,
            match &opts.cores {
                Some(c) => format!("pinned to cores {c:?}"),
                None => "not pinned".to_string(),
            }
        );
        let _ = writeln!(
            o,
            "  Idle:             {}",
            match opts.idle {
                IdlePolicy::BusyPoll => "busy poll".to_string(),
                IdlePolicy::Sleep { after, micros } =>
                    format!("sleep {micros} us after {after} empty polls"),
            }
        );
        let _ = writeln!(
            o,
            "  Exception path:   {}",
            match &opts.exception {
                ExceptionPath::Drop => "drop".to_string(),
                ExceptionPath::Tap(n) => format!("tap:{n}"),
            }
        );
        let _ = writeln!(
            o,
            "  Forwarding:       {}",
            if rt.is_paused() { "stopped" } else { "started" }
        );
        let _ = write!(
            o,
            "  *************************************************************"
        );
        o
    }

    fn fwd_stats(&self) -> String {
        let rt = self.plane.runtime();
        let base = self.baseline();
        let opts = rt.options();
        let per = rt.worker_counters();
        let mut o = String::new();
        let block = |o: &mut String, c: &CoreCounters, all: bool| {
            let _ = writeln!(
                o,
                "  RX-packets: {:<12} Forwarded: {:<12} Exceptions: {:<10} Dropped: {:<10}",
                c.rx_packets,
                c.forwarded,
                c.total_exceptions(),
                c.total_drops()
            );
            let _ = writeln!(
                o,
                "  RX-bytes:   {:<12} Fwd-bytes: {:<12} TX-refused: {:<10} Exc-dropped: {}",
                c.rx_bytes, c.forwarded_bytes, c.tx_refused, c.exception_dropped
            );
            for r in ExceptionReason::ALL {
                if all || c.exception_count(r) > 0 {
                    let _ = writeln!(
                        o,
                        "    exception {:<22}{:>12}",
                        r.name(),
                        c.exception_count(r)
                    );
                }
            }
            for r in DropReason::ALL {
                if all || c.drop_count(r) > 0 {
                    let _ = writeln!(o, "    drop {:<27}{:>12}", r.name(), c.drop_count(r));
                }
            }
            for q in QuicOutcome::ALL {
                if c.quic_count(q) > 0 {
                    let _ = writeln!(o, "    quic {:<27}{:>12}", q.name(), c.quic_count(q));
                }
            }
        };
        // Per-worker lines are totals since start; the sum is since `clear port stats`.
        for (i, c) in per.iter().enumerate() {
            let core = opts
                .cores
                .as_ref()
                .and_then(|cs| cs.get(i))
                .map_or("unpinned".to_string(), |c| format!("core {c}"));
            let _ = writeln!(
                o,
                "  ------- Forward statistics for worker {i} ({core}) -------"
            );
            block(&mut o, c, false);
        }
        let mut total = CoreCounters::default();
        for c in &per {
            total.accumulate(c);
        }
        let total = sub_fwd(&total, &base.fwd);
        let _ = writeln!(
            o,
            "  +++++++++++++++ Accumulated forward statistics for all workers +++++++++++++++"
        );
        block(&mut o, &total, true);
        let _ = write!(
            o,
            "  Forwarding {}",
            if rt.is_paused() { "stopped" } else { "started" }
        );
        o
    }

    fn tables(&self) -> String {
        let snap = self.plane.runtime().snapshot();
        let mut o = String::new();
        let _ = writeln!(
            o,
            "generation {}: {} table(s)",
            snap.generation,
            snap.tables.len()
        );
        let _ = writeln!(
            o,
            "  {:>3}  {:<16} {:<7} {:>4} {:>5} {:>8} {:>6} {:>8} {:>7} {:>8} {:>5}",
            "idx",
            "name",
            "policy",
            "hops",
            "binds",
            "backends",
            "active",
            "draining",
            "filling",
            "inactive",
            "down"
        );
        for (i, t) in snap.tables.iter().enumerate() {
            let spec = &t.table.spec;
            let count = |s: BackendState| spec.backends.iter().filter(|b| b.state == s).count();
            let _ = writeln!(
                o,
                "  {i:>3}  {:<16} {:<7} {:>4} {:>5} {:>8} {:>6} {:>8} {:>7} {:>8} {:>5}",
                spec.name,
                match t.table.policy {
                    crate::table::RowPolicy::Glb => "glb",
                    crate::table::RowPolicy::Native { .. } => "native",
                },
                t.table.hops(),
                spec.binds.len(),
                spec.backends.len(),
                count(BackendState::Active),
                count(BackendState::Draining),
                count(BackendState::Filling),
                count(BackendState::Inactive),
                spec.backends.iter().filter(|b| !b.healthy).count()
            );
        }
        o
    }

    fn no_table(&self, name: &str) -> String {
        let snap = self.plane.runtime().snapshot();
        let names: Vec<&str> = snap
            .tables
            .iter()
            .map(|t| t.table.spec.name.as_str())
            .collect();
        format!("no table {}; tables are: {}", quote(name), names.join(", "))
    }

    fn table(&self, name: &str, row: Option<u16>) -> Result<String, String> {
        let snap = self.plane.runtime().snapshot();
        let (i, t) = snap
            .tables
            .iter()
            .enumerate()
            .find(|(_, t)| t.table.spec.name == name)
            .ok_or_else(|| self.no_table(name))?;
        Ok(crate::tools::table::render(i, &t.table, row))
    }

    fn backends(&self, only: Option<&str>) -> Result<String, String> {
        let snap = self.plane.runtime().snapshot();
        if let Some(n) = only {
            if !snap.tables.iter().any(|t| t.table.spec.name == n) {
                return Err(self.no_table(n));
            }
        }
        let sent = self.plane.sent_totals();
        let control = self.plane.control();
        let ov = control.overrides().clone();
        drop(control);
        let mut o = String::new();
        for t in snap
            .tables
            .iter()
            .filter(|t| only.is_none_or(|n| t.table.spec.name == n))
        {
            let spec = &t.table.spec;
            let _ = writeln!(
                o,
                "table {:?} (generation {}, {} backends)",
                spec.name,
                snap.generation,
                spec.backends.len()
            );
            let _ = writeln!(
                o,
                "  {:<40} {:<9} {:<16} {:>6} {:>8} {:>9} {:>14}  override",
                "backend", "state", "health", "weight", "primary", "secondary", "packets"
            );
            for (b, sh) in spec.backends.iter().zip(shares(&t.table)) {
                let src = ov.health_source(&spec.name, b.ip);
                let health = format!(
                    "{} ({})",
                    if b.healthy { "up" } else { "down" },
                    src.as_str()
                );
                let over = ov
                    .get(&spec.name, b.ip)
                    .map(|x| format!("{} (kept across reloads)", x.describe()))
                    .unwrap_or_else(|| "-".to_string());
                let packets = sent.get(&(spec.name.clone(), b.ip)).copied().unwrap_or(0);
                let _ = writeln!(
                    o,
                    "  {:<40} {:<9} {:<16} {:>6} {:>7.2}% {:>8.2}% {:>14}  {}",
                    b.ip.to_string(),
                    b.state.as_str(),
                    health,
                    b.weight,
                    pct(sh.primary),
                    pct(sh.secondary),
                    packets,
                    over
                );
            }
        }
        Ok(o)
    }

    fn config(&self) -> String {
        let rt = self.plane.runtime();
        let control = self.plane.control();
        let mut o = String::new();
        let src = control
            .source()
            .map_or("(embedded)".to_string(), |s| s.describe());
        let _ = writeln!(o, "source:      {src}");
        let snap = rt.snapshot();
        let _ = writeln!(
            o,
            "generation:  {} ({} swaps; reloads ok {}, failed {}; last build {:.1} ms)",
            snap.generation,
            rt.swaps(),
            self.plane.reloads_ok.load(Ordering::Relaxed),
            self.plane.reloads_failed.load(Ordering::Relaxed),
            self.plane.builds.last_us.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(o, "uptime:      {:.0} s", self.plane.uptime().as_secs_f64());
        let _ = writeln!(o, "port:        {}", rt.port_name());
        let opts = rt.options();
        let _ = writeln!(
            o,
            "workers:     {} ({}), forwarding {}",
            opts.workers,
            opts.cores
                .as_ref()
                .map_or("not pinned".to_string(), |c| format!("cores {c:?}")),
            if rt.is_paused() { "stopped" } else { "started" }
        );
        let ep = self.plane.endpoints();
        let _ = writeln!(
            o,
            "console:     {} ({} commands run)",
            ep.console
                .map_or("off".to_string(), |p| p.display().to_string()),
            self.commands.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "metrics:     {}",
            ep.metrics
                .map_or("off".to_string(), |a| format!("http://{a}/metrics"))
        );
        let _ = writeln!(
            o,
            "statsd:      {}",
            ep.statsd.map_or("off".to_string(), |a| a.to_string())
        );
        let st = &snap.settings;
        let _ = writeln!(
            o,
            "director:    gateway {} src {} src6 {} src_mac {}",
            st.gateway_mac,
            st.src_ipv4,
            st.src_ipv6.map_or("-".to_string(), |a| a.to_string()),
            snap.src_mac
        );
        let _ = writeln!(
            o,
            "             hash_fields [{}] alt_hash_fields [{}] row_policy {:?} icmp_ping_forwarding {}",
            st.hash_fields.names().join(", "),
            st.alt_hash_fields
                .map(|h| h.names().join(", "))
                .unwrap_or_default(),
            st.row_policy,
            st.forward_icmp_ping_responses
        );
        for t in &snap.tables {
            let _ = writeln!(
                o,
                "table:       {} ({} binds, {} backends)",
                t.table.spec.name,
                t.table.spec.binds.len(),
                t.table.spec.backends.len()
            );
        }
        if control.overrides().is_empty() {
            let _ = write!(o, "overrides:   none");
        } else {
            let _ = writeln!(o, "overrides (console changes, kept across reloads):");
            for (t, ip, x) in control.overrides().iter() {
                let _ = writeln!(o, "  {t} {ip}: {}", x.describe());
            }
        }
        o
    }
}

/// The console's answer to a backend change.
fn change_text(r: &ChangeReport) -> String {
    let mut o = String::new();
    match r.generation {
        Some(g) => {
            let _ = writeln!(
                o,
                "backend {} of table {:?}: {}; generation {g} live",
                r.ip, r.table, r.change
            );
        }
        None => {
            let _ = writeln!(
                o,
                "dry run, nothing applied: backend {} of table {:?}: {}",
                r.ip, r.table, r.change
            );
        }
    }
    let _ = writeln!(o, "{}", r.diff.summary(&r.table));
    o.push_str(&r.diff.share_lines(true));
    if let Some(why) = &r.refusal {
        let _ = write!(o, "would be refused without `force`: {why}");
    }
    o
}
