//! The `rondo` command line: one module per subcommand.

mod check;
mod config_args;
mod console;
mod demo;
mod fleet;
mod gen_docs;
mod healthcheck;
mod healthcheck_fleet;
mod pcap;
mod pktgen;
mod quic_lb;
mod redirect;
mod report;
mod run;
mod run_bgp;
pub(crate) mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for a failed command (bad config, bad table, I/O error); usage errors exit 2.
pub const EXIT_FAILURE: u8 = 1;

/// Exit status of `rondo run` when its port's interface was deleted or replaced by another
/// of the same name (69, `EX_UNAVAILABLE` of sysexits.h): forwarding stopped cleanly, the
/// final summary was printed, and a supervisor should start it again (systemd
/// `Restart=on-failure` does). See [`run::Ended::PortGone`] for why it exits rather than
/// rebinds.
pub const EXIT_PORT_GONE: u8 = 69;

#[derive(Parser)]
#[command(
    name = "rondo",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RONDO_BUILD_DPDK"), ")"),
    about = "Userspace L4 load-balancer director, GLB Director compatible"
)]
struct Cli {
    /// Log lines as text (the default) or as one JSON object per line, for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

/// How log lines are written (to stderr; the level is `RONDO_LOG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// `2026-12-07T08:00:00.000000Z  INFO target: message key=value`.
    Text,
    /// `{"timestamp":"...","level":"INFO","fields":{"message":"...",...},"target":"..."}`.
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Forwarding tables: build GLB binaries, show and diff tables.
    #[command(subcommand)]
    Table(TableCmd),
    /// Validate a config or table file (TOML, GLB director.conf / forwarding_table.json / .bin).
    CheckConfig {
        file: PathBuf,
        /// With a GLB director.conf: the forwarding table to check it with.
        #[arg(long)]
        forwarding_table: Option<PathBuf>,
    },
    /// Forward a capture offline through the same pipeline the ports run.
    Pcap(pcap::PcapArgs),
    /// The appliance: data plane, control thread, reloads.
    Run(run::RunArgs),
    /// The main job on an embedded default: in-memory ports, built-in traffic, a table change, a verified summary.
    Demo(demo::DemoArgs),
    /// GLB-compatible health checker: checks backends, writes the checked forwarding table, runs the reload command.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Backend side: receive GUE, take a flow locally (via a TUN) or give it its second chance on the next hop.
    Redirect(redirect::RedirectArgs),
    /// Attach to a running `rondo run` (testpmd-like console), or run one command with -c.
    Console(console::ConsoleArgs),
    /// Traffic generator: flows to the VIPs at a paced rate, every reply verified against the tables.
    Pktgen(pktgen::PktgenArgs),
    /// QUIC-LB connection IDs (draft-ietf-quic-load-balancers-21): keygen, encode, decode.
    ///
    /// `--config` is a file or the snippet itself: `quic_lb = { config_id = 0,
    /// server_id_len = 3, nonce_len = 13, key = "32 hex digits" }` (as `keygen` prints
    /// it), an array of two of them while keys rotate, or the inline table alone.
    QuicLb(quic_lb::QuicLbArgs),
    /// A fleet's desired state in etcd: status, push, set/clear, diff, history, rollback, wait (needs `--features etcd`).
    Fleet(fleet::FleetArgs),
    /// Write the man pages and shell completions (made from this command line) into a folder.
    #[command(hide = true)]
    GenDocs(gen_docs::GenDocsArgs),
}

#[derive(Subcommand)]
enum TableCmd {
    /// Build a GLB v2 binary from forwarding_table.json, byte-identical to glb-director-cli.
    Build { input: PathBuf, output: PathBuf },
    /// Show a table file or config: binds, backends, row shares, rows.
    Show {
        file: PathBuf,
        /// Only this table (index or name).
        #[arg(long)]
        table: Option<String>,
        /// Print this row's hops (0..=65535).
        #[arg(long)]
        row: Option<u16>,
    },
    /// What changing A into B moves: rows whose primary/secondary change, shares before/after.
    Diff { a: PathBuf, b: PathBuf },
    /// Where a flow goes: the bind it matches (or why none), the hash fields and input, the
    /// row, every hop with its state and health, the alternate hash's hops, and the backend
    /// that gets the packet.
    Lookup {
        /// A config (TOML, or GLB director.conf with --forwarding-table) or a table file
        /// alone (forwarding_table.json / .bin: GLB's default hash_fields).
        file: PathBuf,
        /// The client: ADDR[:PORT] ([V6]:PORT for IPv6 with a port).
        src: String,
        /// The VIP: ADDR[:PORT].
        dst: String,
        /// tcp or udp.
        proto: String,
        /// With a GLB director.conf: its forwarding table.
        #[arg(long)]
        forwarding_table: Option<PathBuf>,
        /// A QUIC packet with this destination connection ID (hex; udp): how QUIC-LB
        /// routes it.
        #[arg(long)]
        cid: Option<String>,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `rondo fleet` is an operator's command: its output is the answer, logs only warn.
    let default_log = if matches!(cli.cmd, Cmd::Fleet(_)) {
        "warn"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RONDO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
    if matches!(
        cli.cmd,
        Cmd::Table(_) | Cmd::CheckConfig { .. } | Cmd::QuicLb(_)
    ) {
        crate::sys::process::default_sigpipe();
    }
    let result = match cli.cmd {
        Cmd::Table(TableCmd::Build { input, output }) => table::build(&input, &output),
        Cmd::Table(TableCmd::Show { file, table, row }) => {
            table::show(&file, table.as_deref(), row)
        }
        Cmd::Table(TableCmd::Diff { a, b }) => table::diff(&a, &b),
        Cmd::Table(TableCmd::Lookup {
            file,
            src,
            dst,
            proto,
            forwarding_table,
            cid,
        }) => table::lookup(
            &file,
            forwarding_table.as_deref(),
            &src,
            &dst,
            &proto,
            cid.as_deref(),
        ),
        Cmd::CheckConfig {
            file,
            forwarding_table,
        } => check::run(&file, forwarding_table.as_deref()),
        Cmd::Pcap(args) => pcap::run(&args),
        Cmd::Run(args) => match run::run(&args) {
            Ok(run::Ended::Stopped) => Ok(()),
            Ok(run::Ended::PortGone) => return ExitCode::from(EXIT_PORT_GONE),
            Err(e) => Err(e),
        },
        Cmd::Demo(args) => demo::run(&args),
        Cmd::Healthcheck(args) => healthcheck::run(&args),
        Cmd::Redirect(args) => redirect::run(&args),
        Cmd::Pktgen(args) => pktgen::run(&args),
        Cmd::QuicLb(args) => quic_lb::run(&args),
        Cmd::Fleet(args) => return fleet::main(&args),
        Cmd::GenDocs(args) => gen_docs::run(&args),
        Cmd::Console(args) => match console::run(&args) {
            Ok(true) => Ok(()),
            // The failed command's message is already printed.
            Ok(false) => return ExitCode::from(EXIT_FAILURE),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("rondo: error: {msg}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
