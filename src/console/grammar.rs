//! The console's command language: parsing a line into a [`Command`], help per command, and
//! completion of a partial line (keywords from the grammar, table names and backend
//! addresses from the running director).

use std::net::IpAddr;

use crate::runtime::overrides::{Change, Health};
use crate::table::BackendState;

/// Which ports a port command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSel {
    All,
    One(u16),
}

/// A parsed console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `help [WORDS...]`
    Help(Vec<String>),
    ShowPortStats(PortSel),
    ShowPortInfo(PortSel),
    ClearPortStats(PortSel),
    ShowFwdStats,
    ShowTables,
    ShowTable {
        name: String,
        row: Option<u16>,
    },
    ShowBackends(Option<String>),
    ShowConfig,
    /// `show flow SRC[:PORT] DST[:PORT] tcp|udp [cid HEX]`: where that flow (a QUIC packet
    /// with that destination connection ID) goes now.
    ShowFlow(crate::datapath::explain::FlowQuery),
    /// `set backend ...` and `clear backend ...` (which is [`Change::Clear`]).
    SetBackend {
        table: String,
        ip: IpAddr,
        change: Change,
        force: bool,
        dry_run: bool,
    },
    /// `show bgp`
    ShowBgp,
    /// `show fleet`
    ShowFleet,
    /// `bgp withdraw [VIP]` (`true`) / `bgp announce [VIP]` (`false`); no VIP: all.
    Bgp {
        withdraw: bool,
        vip: Option<crate::fleet::bgp::Prefix>,
    },
    Reload,
    Start,
    Stop,
    Quit,
    /// `complete PARTIAL LINE`: completion candidates (used by the interactive client).
    Complete(String),
}

/// One command's syntax and help.
pub struct CommandHelp {
    pub syntax: &'static str,
    pub summary: &'static str,
    pub detail: &'static str,
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        syntax: "show port stats all|PORT",
        summary: "port counters, and rx/tx pps and bps since this session's last show",
        detail: "Totals since start (or since `clear port stats`) of what the port received, \
                 sent, dropped and failed, what the workers forwarded, handed to the kernel \
                 and dropped, and the rates since the previous `show port stats` of this \
                 session (since start for the first).",
    },
    CommandHelp {
        syntax: "show port info all|PORT",
        summary: "driver, MAC, queues, workers, cores, exception path",
        detail: "How the port and its workers were set up, and whether forwarding is started.",
    },
    CommandHelp {
        syntax: "clear port stats all|PORT",
        summary: "restart the console's port counters and rates from zero",
        detail: "Console totals count from now on. Prometheus and statsd counters are not \
                 reset (they only grow).",
    },
    CommandHelp {
        syntax: "show fwd stats",
        summary: "per worker core: packets per verdict, per exception and drop reason",
        detail: "For every worker and for all of them: packets received, forwarded, handed to \
                 the kernel (per reason), dropped (per reason), refused by the TX queue.",
    },
    CommandHelp {
        syntax: "show tables",
        summary: "every table: policy, hops, binds, backends per state",
        detail: "One line per forwarding table of the snapshot in force.",
    },
    CommandHelp {
        syntax: "show table NAME [row ROW]",
        summary: "a table's binds and backends with their share of rows; one row's hops",
        detail: "ROW is 0..65535, decimal or 0x-prefixed hex.",
    },
    CommandHelp {
        syntax: "show flow SRC[:PORT] DST[:PORT] tcp|udp [cid HEX]",
        summary: "where a flow goes on the live tables: bind, hash, row, hops, backend",
        detail: "The bind it matches (or why none), the hash fields and their bytes, the \
                 hash and the row, every hop with its state and health, the alternate \
                 hash's hops, the backend the packet is sent to and where a new connection \
                 lands. The same answer as `rondo table lookup` on the config file, but on \
                 the snapshot in force (console changes and health included). IPv6 with a \
                 port: [ADDR]:PORT.",
    },
    CommandHelp {
        syntax: "show backends [TABLE]",
        summary: "state, health, weight, share of rows, packets sent, overrides",
        detail: "For each backend: its state, health and where it comes from (operator, \
                 check or config), weight, share of rows as primary and as later hops, \
                 packets sent to it as first hop since start, and the console overrides in \
                 force (kept across reloads of the config file).",
    },
    CommandHelp {
        syntax: "set backend TABLE IP state active|draining|filling|inactive [force] [dry-run]",
        summary: "change a backend's state (kept across reloads)",
        detail: "Rebuilds the table through the same validated path as a reload and shows \
                 what moved. A change that leaves more than one backend of the table not \
                 active is refused (second chance covers one changed hop); `force` does it \
                 anyway. `dry-run` shows what would move and applies nothing.",
    },
    CommandHelp {
        syntax: "set backend TABLE IP weight W [dry-run]",
        summary: "change a backend's weight, 1..1000 (kept across reloads)",
        detail: "A backend of weight 2 owns about twice the rows of one of weight 1 (native \
                 tables; GLB tables have no weights and refuse this).",
    },
    CommandHelp {
        syntax: "set backend TABLE IP health up|down|auto [dry-run]",
        summary: "pin a backend's health, or let the health checks decide (auto)",
        detail: "up/down overrides the checks and the config file until `health auto`.",
    },
    CommandHelp {
        syntax: "clear backend TABLE IP [force] [dry-run]",
        summary: "drop every console override of a backend (back to the config file)",
        detail: "The backend's state, weight and health follow the config file (and the \
                 health checks) again. Refused like a state change when the file's state \
                 leaves more than one backend of the table not active, unless `force`.",
    },
    CommandHelp {
        syntax: "show fleet",
        summary: "[fleet]: etcd connection, applied and seen revision, refusals, fingerprints",
        detail: "For a director that follows a fleet's desired document in etcd ([fleet]): \
                 the endpoints, prefix and name, whether etcd is reachable now, the applied \
                 and newest seen revision, where the live tables came from (etcd or the \
                 local cache), the last refused revision and why, the last error, and every \
                 live table's fingerprint (equal on two directors exactly when they forward \
                 every flow of it alike).",
    },
    CommandHelp {
        syntax: "show bgp",
        summary: "per VIP announced or withdrawn and why; BGP and BFD sessions",
        detail: "What this director asks BIRD to announce ([bgp]), each bind prefix with its \
                 verdict and reason (starting, link down, port gone, stopped, worker stalled, \
                 no usable backend, operator, draining), whether BIRD has the set in force, \
                 apply failures, and each configured session's state and the BFD sessions as \
                 BIRD last reported them (read every second, never waited for).",
    },
    CommandHelp {
        syntax: "bgp withdraw [VIP]",
        summary: "withdraw a VIP (or every VIP) for maintenance; forwarding goes on",
        detail: "An operator override, kept until `bgp announce`: the VIP (an address or \
                 PREFIX/LEN of a bind) is withdrawn whatever else the decision says.",
    },
    CommandHelp {
        syntax: "bgp announce [VIP]",
        summary: "clear `bgp withdraw` of a VIP (or of every VIP)",
        detail: "Only clears the override: the VIP is announced again if the decision allows \
                 it (ready, link up, a usable backend, ...). After `bgp withdraw` of every VIP, \
                 `bgp announce VIP` brings back that VIP alone; the others stay withdrawn.",
    },
    CommandHelp {
        syntax: "reload",
        summary: "reload the config file(s); console overrides stay",
        detail: "Like SIGHUP. A file that does not load or build is refused and the running \
                 tables stay.",
    },
    CommandHelp {
        syntax: "start",
        summary: "start forwarding (after stop)",
        detail: "Workers take packets from RX again.",
    },
    CommandHelp {
        syntax: "stop",
        summary: "stop forwarding: workers stop taking packets from RX",
        detail: "As testpmd's stop: workers flush and idle; what arrives meanwhile fills the \
                 port's ring and is dropped (and counted) by the driver. The exception path \
                 stops too. `start` resumes.",
    },
    CommandHelp {
        syntax: "show config",
        summary: "configuration source, director settings, endpoints, overrides",
        detail: "What is running and where it came from.",
    },
    CommandHelp {
        syntax: "help [COMMAND]",
        summary: "list commands, or explain one",
        detail: "`help set backend` explains the commands that start with those words.",
    },
    CommandHelp {
        syntax: "quit",
        summary: "end this console session",
        detail: "On `rondo run -i` (the console on standard input), quit also stops the director.",
    },
];

/// A line that is not a valid command: what is wrong and the syntax that was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub usage: Vec<&'static str>,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        for u in &self.usage {
            write!(f, "\nusage: {u}")?;
        }
        Ok(())
    }
}

/// Longest word quoted back in an error message.
const QUOTE_MAX: usize = 40;

/// A word for an error message: quoted, escaped, and cut if long.
pub fn quote(w: &str) -> String {
    if w.chars().count() > QUOTE_MAX {
        let cut: String = w.chars().take(QUOTE_MAX).collect();
        format!("{cut:?}...")
    } else {
        format!("{w:?}")
    }
}

fn usages(prefix: &str) -> Vec<&'static str> {
    COMMANDS
        .iter()
        .map(|c| c.syntax)
        .filter(|s| s.starts_with(prefix))
        .collect()
}

fn err(message: impl Into<String>, usage_prefix: &str) -> ParseError {
    ParseError {
        message: message.into(),
        usage: usages(usage_prefix),
    }
}

fn port_sel(w: Option<&str>, usage: &str) -> Result<PortSel, ParseError> {
    match w {
        Some("all") => Ok(PortSel::All),
        Some(n) => n.parse::<u16>().map(PortSel::One).map_err(|_| {
            err(
                format!("expected `all` or a port number, got {}", quote(n)),
                usage,
            )
        }),
        None => Err(err("which port? `all` or a port number", usage)),
    }
}

/// Parse a row number: decimal or `0x` hex, 0..=65535.
pub fn parse_row(w: &str) -> Option<u16> {
    match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => w.parse().ok(),
    }
}

fn no_more(words: &[&str], usage: &str) -> Result<(), ParseError> {
    match words.first() {
        None => Ok(()),
        Some(w) => Err(err(format!("unexpected {}", quote(w)), usage)),
    }
}

/// Parse one console line. Empty lines are `Ok(None)`.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix("complete") {
        if rest.is_empty() || rest.starts_with(' ') {
            return Ok(Some(Command::Complete(
                rest.strip_prefix(' ').unwrap_or(rest).to_string(),
            )));
        }
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&first, rest)) = words.split_first() else {
        return Ok(None);
    };
    let cmd = match first {
        "help" | "?" => Command::Help(rest.iter().map(|s| s.to_string()).collect()),
        "show" => parse_show(rest)?,
        "clear" => parse_clear(rest)?,
        "set" => parse_set(rest)?,
        "bgp" => parse_bgp(rest)?,
        "reload" | "start" | "stop" | "quit" | "exit" => {
            no_more(rest, if first == "exit" { "quit" } else { first })?;
            match first {
                "reload" => Command::Reload,
                "start" => Command::Start,
                "stop" => Command::Stop,
                _ => Command::Quit,
            }
        }
        other => {
            return Err(ParseError {
                message: format!(
                    "unknown command {}; `help` lists the commands",
                    quote(other)
                ),
                usage: vec![],
            })
        }
    };
    Ok(Some(cmd))
}

fn parse_show(w: &[&str]) -> Result<Command, ParseError> {
    match w.first().copied() {
        Some("port") => {
            let (what, usage) = match w.get(1).copied() {
                Some("stats") => ("stats", "show port stats"),
                Some("info") => ("info", "show port info"),
                Some(x) => {
                    return Err(err(
                        format!("show port: expected `stats` or `info`, got {}", quote(x)),
                        "show port",
                    ))
                }
                None => return Err(err("show port: expected `stats` or `info`", "show port")),
            };
            let sel = port_sel(w.get(2).copied(), usage)?;
            no_more(&w[3..], usage)?;
            Ok(if what == "stats" {
                Command::ShowPortStats(sel)
            } else {
                Command::ShowPortInfo(sel)
            })
        }
        Some("fwd") => {
            match w.get(1).copied() {
                Some("stats") => {}
                Some(x) => {
                    return Err(err(
                        format!("show fwd: expected `stats`, got {}", quote(x)),
                        "show fwd",
                    ))
                }
                None => return Err(err("show fwd: expected `stats`", "show fwd")),
            }
            // testpmd accepts `show fwd stats all`.
            let rest = if w.get(2) == Some(&"all") {
                &w[3..]
            } else {
                &w[2..]
            };
            no_more(rest, "show fwd")?;
            Ok(Command::ShowFwdStats)
        }
        Some("tables") => {
            no_more(&w[1..], "show tables")?;
            Ok(Command::ShowTables)
        }
        Some("table") => {
            let usage = "show table ";
            let name = w
                .get(1)
                .ok_or_else(|| err("show table: which table? give its name", usage))?;
            let row = match w.get(2).copied() {
                None => None,
                Some("row") => {
                    let r = w
                        .get(3)
                        .ok_or_else(|| err("show table: `row` needs a row number", usage))?;
                    Some(parse_row(r).ok_or_else(|| {
                        err(
                            format!("row {}: expected 0..65535 (decimal or 0x hex)", quote(r)),
                            usage,
                        )
                    })?)
                }
                Some(x) => return Err(err(format!("unexpected {}", quote(x)), usage)),
            };
            no_more(&w[if row.is_some() { 4 } else { 2 }..], usage)?;
            Ok(Command::ShowTable {
                name: name.to_string(),
                row,
            })
        }
        Some("backends") => {
            let t = w.get(1).map(|s| s.to_string());
            no_more(&w[w.len().min(2)..], "show backends")?;
            Ok(Command::ShowBackends(t))
        }
        Some("config") => {
            no_more(&w[1..], "show config")?;
            Ok(Command::ShowConfig)
        }
        Some("flow") => {
            let usage = "show flow";
            match &w[1..] {
                [src, dst, proto] => crate::datapath::explain::FlowQuery::parse(src, dst, proto)
                    .map(Command::ShowFlow)
                    .map_err(|e| err(format!("show flow: {e}"), usage)),
                [src, dst, proto, cid_word, cid] if cid_word.eq_ignore_ascii_case("cid") => {
                    crate::datapath::explain::FlowQuery::parse(src, dst, proto)
                        .and_then(|q| q.with_cid(cid))
                        .map(Command::ShowFlow)
                        .map_err(|e| err(format!("show flow: {e}"), usage))
                }
                _ => Err(err(
                    "show flow: expected SRC[:PORT] DST[:PORT] tcp|udp [cid HEX]",
                    usage,
                )),
            }
        }
        Some("bgp") => {
            no_more(&w[1..], "show bgp")?;
            Ok(Command::ShowBgp)
        }
        Some("fleet") => {
            no_more(&w[1..], "show fleet")?;
            Ok(Command::ShowFleet)
        }
        Some(x) => Err(err(
            format!(
                "show: unknown {}; expected port, fwd, tables, table, backends, flow, config, bgp or fleet",
                quote(x)
            ),
            "show",
        )),
        None => Err(err("show what?", "show")),
    }
}

fn parse_bgp(w: &[&str]) -> Result<Command, ParseError> {
    let (withdraw, usage) = match w.first().copied() {
        Some("withdraw") => (true, "bgp withdraw"),
        Some("announce") => (false, "bgp announce"),
        Some(x) => {
            return Err(err(
                format!("bgp: expected `withdraw` or `announce`, got {}", quote(x)),
                "bgp",
            ))
        }
        None => return Err(err("bgp: expected `withdraw` or `announce`", "bgp")),
    };
    let vip = match w.get(1) {
        None => None,
        Some(v) => Some(
            v.parse::<crate::fleet::bgp::Prefix>()
                .map_err(|e| err(format!("VIP {}: {e}", quote(v)), usage))?,
        ),
    };
    no_more(&w[w.len().min(2)..], usage)?;
    Ok(Command::Bgp { withdraw, vip })
}

fn parse_clear(w: &[&str]) -> Result<Command, ParseError> {
    match w.first().copied() {
        Some("port") => {
            let usage = "clear port";
            match w.get(1).copied() {
                Some("stats") => {}
                Some(x) => {
                    return Err(err(
                        format!("clear port: expected `stats`, got {}", quote(x)),
                        usage,
                    ))
                }
                None => return Err(err("clear port: expected `stats`", usage)),
            }
            let sel = port_sel(w.get(2).copied(), usage)?;
            no_more(&w[3..], usage)?;
            Ok(Command::ClearPortStats(sel))
        }
        Some("backend") => {
            let usage = "clear backend";
            let (table, ip) = table_ip(&w[1..], usage)?;
            let (force, dry_run) = flags(&w[3.min(w.len())..], true, usage)?;
            Ok(Command::SetBackend {
                table,
                ip,
                change: Change::Clear,
                force,
                dry_run,
            })
        }
        Some(x) => Err(err(
            format!("clear: unknown {}; expected port or backend", quote(x)),
            "clear",
        )),
        None => Err(err("clear what?", "clear")),
    }
}

fn table_ip(w: &[&str], usage: &str) -> Result<(String, IpAddr), ParseError> {
    let table = w
        .first()
        .ok_or_else(|| err("which table? give its name", usage))?;
    let ip = w
        .get(1)
        .ok_or_else(|| err("which backend? give its IP address", usage))?;
    let ip: IpAddr = ip.parse().map_err(|_| {
        err(
            format!("expected a backend IP address, got {}", quote(ip)),
            usage,
        )
    })?;
    Ok((table.to_string(), ip))
}

/// Trailing `force` / `dry-run` words, in any order.
fn flags(w: &[&str], allow_force: bool, usage: &str) -> Result<(bool, bool), ParseError> {
    let (mut force, mut dry) = (false, false);
    for &x in w {
        match x {
            "force" if allow_force && !force => force = true,
            "dry-run" if !dry => dry = true,
            "force" if !allow_force => {
                return Err(err(
                    "`force` only applies to state changes and `clear backend` (the only ones that can be refused)",
                    usage,
                ))
            }
            other => return Err(err(format!("unexpected {}", quote(other)), usage)),
        }
    }
    Ok((force, dry))
}

fn parse_set(w: &[&str]) -> Result<Command, ParseError> {
    match w.first().copied() {
        Some("backend") => {}
        Some(x) => {
            return Err(err(
                format!("set: unknown {}; expected backend", quote(x)),
                "set",
            ))
        }
        None => return Err(err("set what?", "set")),
    }
    let usage = "set backend";
    let (table, ip) = table_ip(&w[1..], usage)?;
    let what = w
        .get(3)
        .copied()
        .ok_or_else(|| err("set backend: expected state, weight or health", usage))?;
    let value = w.get(4).copied();
    let (change, usage) = match what {
        "state" => {
            let u = "set backend TABLE IP state";
            let v = value
                .ok_or_else(|| err("state: expected active, draining, filling or inactive", u))?;
            let s: BackendState = v.parse().map_err(|_| {
                err(
                    format!(
                        "state: expected active, draining, filling or inactive, got {}",
                        quote(v)
                    ),
                    u,
                )
            })?;
            (Change::State(s), u)
        }
        "weight" => {
            let u = "set backend TABLE IP weight";
            let v = value.ok_or_else(|| err("weight: expected a number 1..1000", u))?;
            let n: u32 = v.parse().map_err(|_| {
                err(
                    format!("weight: expected a number 1..1000, got {}", quote(v)),
                    u,
                )
            })?;
            (Change::Weight(n), u)
        }
        "health" => {
            let u = "set backend TABLE IP health";
            let h = match value {
                Some("up") => Health::Up,
                Some("down") => Health::Down,
                Some("auto") => Health::Auto,
                Some(v) => {
                    return Err(err(
                        format!("health: expected up, down or auto, got {}", quote(v)),
                        u,
                    ))
                }
                None => return Err(err("health: expected up, down or auto", u)),
            };
            (Change::Health(h), u)
        }
        other => {
            return Err(err(
                format!(
                    "set backend: expected state, weight or health, got {}",
                    quote(other)
                ),
                usage,
            ))
        }
    };
    let (force, dry_run) = flags(
        &w[5.min(w.len())..],
        matches!(change, Change::State(_)),
        usage,
    )?;
    Ok(Command::SetBackend {
        table,
        ip,
        change,
        force,
        dry_run,
    })
}

/// `help` text: every command, or those whose syntax starts with `words`.
pub fn help(words: &[String]) -> Result<String, String> {
    use std::fmt::Write as _;
    let mut o = String::new();
    if words.is_empty() {
        let width = COMMANDS.iter().map(|c| c.syntax.len()).max().unwrap_or(0);
        for c in COMMANDS {
            if c.syntax.len() > 48 {
                let _ = writeln!(o, "{}\n{:48}  {}", c.syntax, "", c.summary);
            } else {
                let _ = writeln!(o, "{:w$}  {}", c.syntax, c.summary, w = width.min(48));
            }
        }
        let _ = write!(o, "`help COMMAND` explains one; tab completes.");
        return Ok(o);
    }
    let prefix = words.join(" ");
    let found: Vec<&CommandHelp> = COMMANDS
        .iter()
        .filter(|c| {
            let syn: Vec<&str> = c.syntax.split_whitespace().collect();
            words.len() <= syn.len()
                && words.iter().zip(&syn).all(|(w, s)| {
                    s.split('|')
                        .any(|alt| alt == w || alt.starts_with(w.as_str()))
                })
        })
        .collect();
    if found.is_empty() {
        return Err(format!(
            "no command starts with {}; `help` lists the commands",
            quote(&prefix)
        ));
    }
    for (i, c) in found.iter().enumerate() {
        if i > 0 {
            o.push('\n');
        }
        let _ = write!(o, "{}\n  {}\n  {}", c.syntax, c.summary, c.detail);
    }
    Ok(o)
}

/// What completion may offer besides keywords.
#[derive(Debug, Clone, Default)]
pub struct CompletionContext {
    /// Table names with their backend addresses.
    pub tables: Vec<(String, Vec<IpAddr>)>,
    pub ports: u16,
}

fn words_of(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Completion candidates for the last (partial) word of `line`: whole words that start
/// with it. A line ending in a space completes a new word.
pub fn complete(line: &str, ctx: &CompletionContext) -> Vec<String> {
    let mut words: Vec<&str> = line.split_whitespace().collect();
    let partial = if line.is_empty() || line.ends_with(char::is_whitespace) {
        ""
    } else {
        words.pop().unwrap_or("")
    };
    let tables = || {
        ctx.tables
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>()
    };
    let ips = |t: &str| {
        ctx.tables
            .iter()
            .find(|(n, _)| n == t)
            .map(|(_, ips)| ips.iter().map(|i| i.to_string()).collect())
            .unwrap_or_default()
    };
    let ports = || {
        let mut v = vec!["all".to_string()];
        v.extend((0..ctx.ports).map(|p| p.to_string()));
        v
    };
    let options: Vec<String> = match words.as_slice() {
        [] => words_of(&[
            "bgp", "clear", "help", "quit", "reload", "set", "show", "start", "stop",
        ]),
        ["help", ..] => words_of(&[
            "bgp", "clear", "quit", "reload", "set", "show", "start", "stop",
        ])
        .into_iter()
        .filter(|_| words.len() == 1)
        .collect(),
        ["show"] => words_of(&[
            "backends", "bgp", "config", "fleet", "flow", "fwd", "port", "table", "tables",
        ]),
        ["show", "flow", _, _] => words_of(&["tcp", "udp"]),
        ["bgp"] => words_of(&["announce", "withdraw"]),
        ["show", "port"] => words_of(&["info", "stats"]),
        ["clear", "port"] => words_of(&["stats"]),
        ["show", "port", _] | ["clear", "port", "stats"] => ports(),
        ["show", "fwd"] => words_of(&["stats"]),
        ["show", "table"] | ["show", "backends"] => tables(),
        ["show", "table", _] => words_of(&["row"]),
        ["clear"] => words_of(&["backend", "port"]),
        ["set"] => words_of(&["backend"]),
        ["set", "backend"] | ["clear", "backend"] => tables(),
        ["set", "backend", t] | ["clear", "backend", t] => ips(t),
        ["clear", "backend", _, _, rest @ ..] => {
            let mut v = Vec::new();
            if !rest.contains(&"dry-run") {
                v.push("dry-run".to_string());
            }
            if !rest.contains(&"force") {
                v.push("force".to_string());
            }
            v
        }
        ["set", "backend", _, _] => words_of(&["health", "state", "weight"]),
        ["set", "backend", _, _, "state"] => {
            words_of(&["active", "draining", "filling", "inactive"])
        }
        ["set", "backend", _, _, "health"] => words_of(&["auto", "down", "up"]),
        ["set", "backend", _, _, "state", _, rest @ ..] => {
            let mut v = Vec::new();
            if !rest.contains(&"dry-run") {
                v.push("dry-run".to_string());
            }
            if !rest.contains(&"force") {
                v.push("force".to_string());
            }
            v
        }
        ["set", "backend", _, _, _, _] => words_of(&["dry-run"]),
        _ => Vec::new(),
    };
    options
        .into_iter()
        .filter(|o| o.starts_with(partial))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse(line)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .unwrap_or_else(|| panic!("{line:?}: empty"))
    }

    fn bad(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(
            ok("show port stats all"),
            Command::ShowPortStats(PortSel::All)
        );
        assert_eq!(
            ok("  show  port stats 0 "),
            Command::ShowPortStats(PortSel::One(0))
        );
        assert_eq!(
            ok("show port info all"),
            Command::ShowPortInfo(PortSel::All)
        );
        assert_eq!(
            ok("clear port stats 0"),
            Command::ClearPortStats(PortSel::One(0))
        );
        assert_eq!(ok("show fwd stats"), Command::ShowFwdStats);
        assert_eq!(ok("show fwd stats all"), Command::ShowFwdStats);
        assert_eq!(ok("show tables"), Command::ShowTables);
        assert_eq!(
            ok("show table web row 0x10"),
            Command::ShowTable {
                name: "web".into(),
                row: Some(16)
            }
        );
        assert_eq!(
            ok("show table web"),
            Command::ShowTable {
                name: "web".into(),
                row: None
            }
        );
        assert_eq!(ok("show backends"), Command::ShowBackends(None));
        assert_eq!(
            ok("show backends web"),
            Command::ShowBackends(Some("web".into()))
        );
        assert_eq!(ok("show config"), Command::ShowConfig);
        assert_eq!(
            ok("show flow 10.0.0.1:5000 1.1.1.1:80 tcp"),
            Command::ShowFlow(
                crate::datapath::explain::FlowQuery::parse("10.0.0.1:5000", "1.1.1.1:80", "tcp")
                    .unwrap()
            )
        );
        for bad_flow in [
            "show flow",
            "show flow 10.0.0.1 1.1.1.1",
            "show flow 10.0.0.1 1.1.1.1 icmp",
            "show flow 10.0.0.1 1.1.1.1 tcp cid 0a0b",
            "show flow 10.0.0.1 1.1.1.1 udp cid zz",
            "show flow 10.0.0.1 1.1.1.1 udp nonce 0a",
            "show flow x 1.1.1.1 tcp",
            "show flow 10.0.0.1 1.1.1.1 tcp extra",
        ] {
            assert!(parse(bad_flow).is_err(), "{bad_flow}");
        }
        let ip: IpAddr = "10.1.0.1".parse().unwrap();
        assert_eq!(
            ok("set backend web 10.1.0.1 state draining force dry-run"),
            Command::SetBackend {
                table: "web".into(),
                ip,
                change: Change::State(BackendState::Draining),
                force: true,
                dry_run: true
            }
        );
        assert_eq!(
            ok("set backend web 10.1.0.1 weight 2"),
            Command::SetBackend {
                table: "web".into(),
                ip,
                change: Change::Weight(2),
                force: false,
                dry_run: false
            }
        );
        for (w, h) in [
            ("up", Health::Up),
            ("down", Health::Down),
            ("auto", Health::Auto),
        ] {
            assert_eq!(
                ok(&format!("set backend web 10.1.0.1 health {w}")),
                Command::SetBackend {
                    table: "web".into(),
                    ip,
                    change: Change::Health(h),
                    force: false,
                    dry_run: false
                }
            );
        }
        assert_eq!(
            ok("clear backend web fdb4::1 dry-run"),
            Command::SetBackend {
                table: "web".into(),
                ip: "fdb4::1".parse().unwrap(),
                change: Change::Clear,
                force: false,
                dry_run: true
            }
        );
        for (l, c) in [
            ("reload", Command::Reload),
            ("start", Command::Start),
            ("stop", Command::Stop),
            ("quit", Command::Quit),
            ("exit", Command::Quit),
        ] {
            assert_eq!(ok(l), c);
        }
        assert_eq!(ok("show bgp"), Command::ShowBgp);
        assert_eq!(ok("show fleet"), Command::ShowFleet);
        assert_eq!(
            ok("bgp withdraw"),
            Command::Bgp {
                withdraw: true,
                vip: None
            }
        );
        assert_eq!(
            ok("bgp announce 10.0.0.1"),
            Command::Bgp {
                withdraw: false,
                vip: Some("10.0.0.1/32".parse().unwrap())
            }
        );
        assert_eq!(
            ok("bgp withdraw 192.0.2.0/24"),
            Command::Bgp {
                withdraw: true,
                vip: Some("192.0.2.0/24".parse().unwrap())
            }
        );
        for (bad, want) in [
            ("bgp", "expected `withdraw` or `announce`"),
            ("bgp drop", "got \"drop\""),
            ("bgp withdraw 10.0.0.1/24", "bits set past the /24"),
            ("bgp withdraw x", "VIP \"x\""),
            ("bgp announce 10.0.0.1 extra", "unexpected \"extra\""),
            ("show bgp now", "unexpected \"now\""),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
        assert_eq!(ok("help set"), Command::Help(vec!["set".into()]));
        assert_eq!(ok("complete show p"), Command::Complete("show p".into()));
        assert_eq!(ok("complete "), Command::Complete("".into()));
        assert_eq!(parse("   ").unwrap(), None);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let cases: &[(&str, &[&str])] = &[
            ("frobnicate", &["unknown command \"frobnicate\"", "help"]),
            ("show", &["show what?", "usage: show port stats"]),
            ("show port", &["expected `stats` or `info`"]),
            (
                "show port stats",
                &["which port?", "usage: show port stats all|PORT"],
            ),
            (
                "show port stats x",
                &["expected `all` or a port number, got \"x\""],
            ),
            ("show port stats 99999", &["port number"]),
            ("show port stats all extra", &["unexpected \"extra\""]),
            ("show tables now", &["unexpected \"now\""]),
            ("show table", &["which table?"]),
            ("show table web row", &["needs a row number"]),
            ("show table web row 65536", &["expected 0..65535"]),
            ("show table web col 3", &["unexpected \"col\""]),
            ("set", &["set what?"]),
            ("set backend", &["which table?"]),
            ("set backend web", &["which backend?"]),
            (
                "set backend web 10.1.0",
                &["expected a backend IP address, got \"10.1.0\""],
            ),
            (
                "set backend web 10.1.0.1",
                &["expected state, weight or health"],
            ),
            ("set backend web 10.1.0.1 colour blue", &["got \"colour\""]),
            ("set backend web 10.1.0.1 state paused", &["got \"paused\""]),
            ("set backend web 10.1.0.1 weight", &["expected a number"]),
            ("set backend web 10.1.0.1 weight -1", &["got \"-1\""]),
            (
                "set backend web 10.1.0.1 weight 2 force",
                &["`force` only applies"],
            ),
            (
                "set backend web 10.1.0.1 health maybe",
                &["expected up, down or auto"],
            ),
            (
                "set backend web 10.1.0.1 state draining now",
                &["unexpected \"now\""],
            ),
            (
                "set backend web 10.1.0.1 state draining force force",
                &["unexpected \"force\""],
            ),
            ("clear", &["clear what?"]),
            ("clear backend web", &["which backend?"]),
            ("reload now", &["unexpected \"now\"", "usage: reload"]),
        ];
        for (line, wants) in cases {
            let e = bad(line);
            for w in *wants {
                assert!(e.contains(w), "{line:?}: expected {w:?} in {e:?}");
            }
        }
        // Long words are cut in messages.
        let long = "x".repeat(10_000);
        let e = bad(&long);
        assert!(e.len() < 200, "{}", e.len());
        // Control characters are escaped, never echoed raw.
        let e = bad("\u{1b}[2J");
        assert!(!e.contains('\u{1b}'), "{e:?}");
    }

    #[test]
    fn help_covers_every_command() {
        let all = help(&[]).unwrap();
        for c in COMMANDS {
            assert!(all.contains(c.syntax), "{}", c.syntax);
            let first: Vec<String> = c
                .syntax
                .split_whitespace()
                .take(2)
                .map(|s| s.split('|').next().unwrap_or(s).to_string())
                .collect();
            let h = help(&first).unwrap();
            assert!(h.contains(c.detail), "help {first:?}");
        }
        let h = help(&["set".into(), "backend".into()]).unwrap();
        assert!(
            h.contains("weight W") && h.contains("health up|down|auto"),
            "{h}"
        );
        assert!(!h.contains("show tables"), "{h}");
        assert!(help(&["bogus".into()]).unwrap_err().contains("no command"));
    }

    #[test]
    fn completion_follows_the_grammar_and_the_running_tables() {
        let ctx = CompletionContext {
            tables: vec![(
                "web".into(),
                vec!["10.1.0.1".parse().unwrap(), "10.1.0.2".parse().unwrap()],
            )],
            ports: 1,
        };
        let c = |l: &str| complete(l, &ctx);
        assert_eq!(c("sh"), ["show"]);
        assert_eq!(c("s"), ["set", "show", "start", "stop"]);
        assert_eq!(
            c("show "),
            ["backends", "bgp", "config", "fleet", "flow", "fwd", "port", "table", "tables"]
        );
        assert_eq!(c("show flow 10.0.0.1 1.1.1.1:80 "), ["tcp", "udp"]);
        assert_eq!(c("show ta"), ["table", "tables"]);
        assert_eq!(c("show port "), ["info", "stats"]);
        assert_eq!(c("show port stats "), ["all", "0"]);
        assert_eq!(c("clear port stats a"), ["all"]);
        assert_eq!(c("set backend w"), ["web"]);
        assert_eq!(c("set backend web 10.1.0."), ["10.1.0.1", "10.1.0.2"]);
        assert_eq!(
            c("set backend web 10.1.0.1 "),
            ["health", "state", "weight"]
        );
        assert_eq!(c("set backend web 10.1.0.1 state d"), ["draining"]);
        assert_eq!(
            c("set backend web 10.1.0.1 state draining "),
            ["dry-run", "force"]
        );
        assert_eq!(
            c("set backend web 10.1.0.1 state draining force "),
            ["dry-run"]
        );
        assert_eq!(
            c("set backend web 10.1.0.1 health "),
            ["auto", "down", "up"]
        );
        assert_eq!(c("set backend nope "), Vec::<String>::new());
        assert_eq!(c("help sh"), ["show"]);
        assert_eq!(c("bogus "), Vec::<String>::new());
        // Every keyword a completion offers parses in its place.
        for l in [
            "show port stats all",
            "show fwd stats",
            "set backend web 10.1.0.1 state draining dry-run force",
        ] {
            ok(l);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_says_why_and_completes_without_panicking(line in ".{0,200}") {
            let ctx = CompletionContext {
                tables: vec![("web".into(), vec!["10.1.0.1".parse().unwrap()])],
                ports: 1,
            };
            match parse(&line) {
                Ok(_) => {}
                Err(e) => {
                    let msg = e.to_string();
                    proptest::prop_assert!(msg.len() < 2000);
                    proptest::prop_assert!(!msg.contains(char::from(0x1b)), "escape in {:?}", msg);
                }
            }
            for c in complete(&line, &ctx) {
                proptest::prop_assert!(!c.is_empty());
            }
        }

        #[test]
        fn keyword_soup_never_panics(words in proptest::collection::vec(
            proptest::sample::select(vec![
                "show", "set", "clear", "backend", "port", "stats", "info", "all", "0", "web",
                "10.1.0.1", "state", "weight", "health", "draining", "2", "up", "force",
                "dry-run", "row", "0xffff", "table", "tables", "help", "fwd", "complete",
            ]),
            0..9,
        )) {
            let line = words.join(" ");
            let _ = parse(&line);
            let _ = help(&words.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
    }
}
