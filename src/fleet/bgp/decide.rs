//! The decision: for every bind prefix of the running tables, announce it or withdraw it,
//! and why. Pure: the caller gathers the [`Inputs`] (readiness, link, workers, tables,
//! operator overrides, lifecycle) and turns the [`Decision`]s into a [`Desired`] set.
//!
//! The first reason that applies wins, in this order: the director is draining (shutdown),
//! its port is gone, its link is down, it is still starting, forwarding is stopped, a
//! worker is stalled, the operator withdrew the VIP, no table serving the prefix has a
//! usable backend. A prefix bound by several tables (different protocols or ports) is
//! announced while any of them has a usable backend: withdrawing it would also take away
//! the traffic the others can serve.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use super::announce::{Desired, Prefix};
use super::settings::BgpSettings;
use crate::table::{Backend, BackendState, Bind};

/// Why a prefix is withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Not ready yet: ports up, first table live, the health checks' first round done.
    Starting,
    LinkDown,
    /// The port's interface was deleted or replaced.
    PortGone,
    /// Forwarding stopped on the console (`stop`).
    Stopped,
    /// A worker made no progress for `stall_ms`.
    ///
    /// The issue asks for "no progress for a configured time while its queue has packets".
    /// A worker's progress counter moves on every turn of its poll loop, idle turns
    /// included (an idle worker that sleeps or parks still wakes and counts), so an idle
    /// worker never looks stalled; a worker whose counter stands still is not looping at
    /// all (stuck in a driver call, a livelock, a lost thread) and cannot serve what
    /// arrives whatever its queue holds now, so no queue-occupancy signal is needed (none of
    /// the drivers offers a cheap one that works for every ring: af_packet's, DPDK's, pcap).
    /// Tested with the fault wrapper's `rx-stall` in tests/bgp_run.rs.
    WorkerStalled {
        worker: usize,
    },
    /// Every backend of every table binding this prefix is drained, inactive or unhealthy.
    NoUsableBackend {
        table: String,
    },
    /// `bgp withdraw` on the console.
    Operator,
    /// Shutting down: withdrawn after the graceful-shutdown announcement, still forwarding
    /// what arrives.
    Draining,
}

impl Reason {
    /// A short, stable label (metrics' `reason`, logs).
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Starting => "starting",
            Reason::LinkDown => "link_down",
            Reason::PortGone => "port_gone",
            Reason::Stopped => "stopped",
            Reason::WorkerStalled { .. } => "worker_stalled",
            Reason::NoUsableBackend { .. } => "no_usable_backend",
            Reason::Operator => "operator",
            Reason::Draining => "draining",
        }
    }

    /// Every label, for metrics that list each reason.
    pub const LABELS: [&'static str; 8] = [
        "starting",
        "link_down",
        "port_gone",
        "stopped",
        "worker_stalled",
        "no_usable_backend",
        "operator",
        "draining",
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Starting => write!(
                f,
                "starting (ports, first table or first health round not ready)"
            ),
            Reason::LinkDown => write!(f, "link down"),
            Reason::PortGone => write!(f, "port gone"),
            Reason::Stopped => write!(f, "forwarding stopped (console stop)"),
            Reason::WorkerStalled { worker } => write!(f, "worker {worker} stalled"),
            Reason::NoUsableBackend { table } => {
                write!(f, "no usable backend in table {table}")
            }
            Reason::Operator => write!(f, "withdrawn by the operator (bgp withdraw)"),
            Reason::Draining => write!(f, "shutting down: draining"),
        }
    }
}

/// Announce or withdraw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Announced; `graceful`: with GRACEFUL_SHUTDOWN (RFC 8326), shutdown is near.
    Announced {
        graceful: bool,
    },
    Withdrawn(Reason),
}

impl Verdict {
    pub fn is_announced(&self) -> bool {
        matches!(self, Verdict::Announced { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Announced { graceful: false } => write!(f, "announced"),
            Verdict::Announced { graceful: true } => {
                write!(f, "announced with GRACEFUL_SHUTDOWN (shutting down)")
            }
            Verdict::Withdrawn(r) => write!(f, "withdrawn: {r}"),
        }
    }
}

/// Where the director is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifecycle {
    #[default]
    Running,
    /// SIGTERM or `quit`: announcing GRACEFUL_SHUTDOWN before withdrawing.
    Graceful,
    /// Withdrawn; forwarding what still arrives.
    Draining,
}

/// The operator's `bgp withdraw` overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `bgp withdraw` without a VIP: every prefix (but those in `except`).
    pub all: bool,
    /// `bgp withdraw VIP`.
    pub prefixes: BTreeSet<Prefix>,
    /// `bgp announce VIP` after `bgp withdraw` of every VIP: these are announced again
    /// (if the decision allows) while the others stay withdrawn. Empty unless `all`.
    pub except: BTreeSet<Prefix>,
}

impl Overrides {
    pub fn withdrawn(&self, p: &Prefix) -> bool {
        if self.all {
            !self.except.contains(p)
        } else {
            self.prefixes.contains(p)
        }
    }

    /// Any override in force.
    pub fn any(&self) -> bool {
        self.all || !self.prefixes.is_empty()
    }

    /// `bgp withdraw [VIP]`.
    pub fn withdraw(&mut self, p: Option<Prefix>) {
        match p {
            None => {
                self.all = true;
                self.except.clear();
            }
            Some(p) => {
                self.prefixes.insert(p);
                self.except.remove(&p);
            }
        }
    }

    /// `bgp announce [VIP]`: clear the override; returns whether one was cleared. Without a
    /// VIP every override goes. With one, after `bgp withdraw` of every VIP, that VIP alone
    /// comes back (the others stay withdrawn).
    pub fn announce(&mut self, p: Option<Prefix>) -> bool {
        match p {
            None => {
                let had = self.any();
                *self = Overrides::default();
                had
            }
            Some(p) => {
                let had = self.withdrawn(&p);
                self.prefixes.remove(&p);
                if self.all {
                    self.except.insert(p);
                }
                had
            }
        }
    }
}

/// One table as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInput {
    pub name: String,
    /// Its bind prefixes (host bits cleared, each once).
    pub prefixes: Vec<Prefix>,
    /// Some backend is usable (active or filling, and healthy).
    pub usable: bool,
}

impl TableInput {
    /// From a table's name, binds and backends.
    pub fn new(name: &str, binds: &[Bind], backends: &[Backend]) -> TableInput {
        let mut prefixes: Vec<Prefix> = binds.iter().map(bind_prefix).collect();
        prefixes.sort();
        prefixes.dedup();
        TableInput {
            name: name.to_string(),
            prefixes,
            usable: backends.iter().any(usable),
        }
    }
}

/// A backend that can take new flows: active or filling, and healthy.
pub fn usable(b: &Backend) -> bool {
    b.healthy && matches!(b.state, BackendState::Active | BackendState::Filling)
}

/// A bind's prefix with its host bits cleared (GLB keeps them as written).
pub fn bind_prefix(b: &Bind) -> Prefix {
    let len = b.prefix_len;
    match b.addr {
        IpAddr::V4(a) => {
            let len = len.min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Prefix::V4((u32::from(a) & mask).into(), len)
        }
        IpAddr::V6(a) => {
            let len = len.min(128);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            Prefix::V6((u128::from(a) & mask).into(), len)
        }
    }
}

/// Everything the decision depends on.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Start-up finished: ports up, first table live, first health round done.
    pub ready: bool,
    /// The port's link; `None` when the driver does not know (counts as up).
    pub link_up: Option<bool>,
    pub port_gone: bool,
    /// Forwarding stopped on the console.
    pub stopped: bool,
    /// The first worker without progress for `stall_ms`, if any.
    pub stalled_worker: Option<usize>,
    pub lifecycle: Lifecycle,
    pub tables: Vec<TableInput>,
    pub overrides: Overrides,
}

/// The verdict on one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub prefix: Prefix,
    /// The tables binding it, in config order.
    pub tables: Vec<String>,
    pub verdict: Verdict,
}

/// Decide every bind prefix, in prefix order.
pub fn decide(i: &Inputs) -> Vec<Decision> {
    // prefix -> (tables, some table usable, first unusable table)
    let mut by: BTreeMap<Prefix, (Vec<String>, bool)> = BTreeMap::new();
    for t in &i.tables {
        for p in &t.prefixes {
            let e = by.entry(*p).or_default();
            if !e.0.contains(&t.name) {
                e.0.push(t.name.clone());
            }
            e.1 |= t.usable;
        }
    }
    let global = if i.lifecycle == Lifecycle::Draining {
        Some(Reason::Draining)
    } else if i.port_gone {
        Some(Reason::PortGone)
    } else if i.link_up == Some(false) {
        Some(Reason::LinkDown)
    } else if !i.ready {
        Some(Reason::Starting)
    } else if i.stopped {
        Some(Reason::Stopped)
    } else {
        i.stalled_worker
            .map(|worker| Reason::WorkerStalled { worker })
    };
    by.into_iter()
        .map(|(prefix, (tables, usable))| {
            let verdict = if let Some(r) = &global {
                Verdict::Withdrawn(r.clone())
            } else if i.overrides.withdrawn(&prefix) {
                Verdict::Withdrawn(Reason::Operator)
            } else if !usable {
                Verdict::Withdrawn(Reason::NoUsableBackend {
                    table: tables.join(","),
                })
            } else {
                Verdict::Announced {
                    graceful: i.lifecycle == Lifecycle::Graceful,
                }
            };
            Decision {
                prefix,
                tables,
                verdict,
            }
        })
        .collect()
}

/// The set to announce: the announced decisions with the configured attributes.
pub fn desired(decisions: &[Decision], settings: &BgpSettings) -> Desired {
    decisions
        .iter()
        .filter_map(|d| match d.verdict {
            Verdict::Announced { graceful } => {
                let mut a = settings.announcement(d.prefix);
                a.graceful_shutdown = graceful;
                Some(a)
            }
            Verdict::Withdrawn(_) => None,
        })
        .collect()
}

/// One line per prefix whose verdict changed from `old` to `new` (a prefix that appears is
/// compared with "never announced").
pub fn changes<'a>(old: &[Decision], new: &'a [Decision]) -> Vec<&'a Decision> {
    new.iter()
        .filter(|d| {
            old.iter()
                .find(|o| o.prefix == d.prefix)
                .is_none_or(|o| o.verdict != d.verdict)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{HealthChecks, Proto};

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn t(name: &str, prefixes: &[&str], usable: bool) -> TableInput {
        TableInput {
            name: name.into(),
            prefixes: prefixes.iter().map(|s| p(s)).collect(),
            usable,
        }
    }

    fn ready() -> Inputs {
        Inputs {
            ready: true,
            link_up: Some(true),
            tables: vec![
                t("web", &["10.0.0.1", "10.0.0.2"], true),
                t("api", &["10.0.0.3", "fd00::1"], true),
            ],
            ..Inputs::default()
        }
    }

    fn verdicts(i: &Inputs) -> Vec<(String, Verdict)> {
        decide(i)
            .into_iter()
            .map(|d| (d.prefix.to_string(), d.verdict))
            .collect()
    }

    const A: Verdict = Verdict::Announced { graceful: false };

    #[test]
    fn a_ready_director_announces_every_bind_prefix() {
        let v = verdicts(&ready());
        assert_eq!(v.len(), 4);
        assert!(v.iter().all(|(_, v)| *v == A), "{v:?}");
        assert_eq!(v[3].0, "fd00::1/128");
        // Unknown link state counts as up.
        let mut i = ready();
        i.link_up = None;
        assert!(verdicts(&i).iter().all(|(_, v)| *v == A));
    }

    #[test]
    fn director_wide_reasons_withdraw_everything_in_their_order() {
        let stalled = Reason::WorkerStalled { worker: 1 };
        type Set = fn(&mut Inputs);
        let cases: [(Set, Reason); 6] = [
            (|i| i.ready = false, Reason::Starting),
            (|i| i.link_up = Some(false), Reason::LinkDown),
            (|i| i.port_gone = true, Reason::PortGone),
            (|i| i.stopped = true, Reason::Stopped),
            (|i| i.stalled_worker = Some(1), stalled.clone()),
            (|i| i.lifecycle = Lifecycle::Draining, Reason::Draining),
        ];
        for (set, want) in &cases {
            let mut i = ready();
            set(&mut i);
            for (vip, v) in verdicts(&i) {
                assert_eq!(v, Verdict::Withdrawn(want.clone()), "{vip}");
            }
        }
        // Precedence: with every condition at once, each one removed in turn reveals the next.
        let mut i = ready();
        i.lifecycle = Lifecycle::Draining;
        i.port_gone = true;
        i.link_up = Some(false);
        i.ready = false;
        i.stopped = true;
        i.stalled_worker = Some(1);
        i.overrides.all = true;
        i.tables[0].usable = false;
        let order: [(Set, Reason); 8] = [
            (|i| i.lifecycle = Lifecycle::Running, Reason::Draining),
            (|i| i.port_gone = false, Reason::PortGone),
            (|i| i.link_up = Some(true), Reason::LinkDown),
            (|i| i.ready = true, Reason::Starting),
            (|i| i.stopped = false, Reason::Stopped),
            (|i| i.stalled_worker = None, stalled),
            (|i| i.overrides.all = false, Reason::Operator),
            (
                |i| i.tables[0].usable = true,
                Reason::NoUsableBackend {
                    table: "web".into(),
                },
            ),
        ];
        for (clear, want) in order {
            let d = decide(&i);
            assert_eq!(d[0].verdict, Verdict::Withdrawn(want.clone()));
            clear(&mut i);
        }
        assert_eq!(decide(&i)[0].verdict, A);
    }

    #[test]
    fn one_vip_withdrawn_by_the_operator_while_the_others_stay() {
        let mut i = ready();
        i.overrides.prefixes.insert(p("10.0.0.2"));
        let v = verdicts(&i);
        assert_eq!(v[0].1, A);
        assert_eq!(v[1].1, Verdict::Withdrawn(Reason::Operator));
        assert_eq!(v[2].1, A);
        assert_eq!(v[3].1, A);
        // Operator withdrawal outranks "no usable backend".
        i.tables[0].usable = false;
        assert_eq!(verdicts(&i)[1].1, Verdict::Withdrawn(Reason::Operator));
    }

    #[test]
    fn announce_of_one_vip_after_withdrawing_every_vip_brings_back_that_vip_alone() {
        let mut i = ready();
        assert!(
            !i.overrides.announce(Some(p("10.0.0.1"))),
            "nothing to clear"
        );
        i.overrides.withdraw(None);
        assert!(verdicts(&i)
            .iter()
            .all(|(_, v)| *v == Verdict::Withdrawn(Reason::Operator)));
        assert!(i.overrides.announce(Some(p("10.0.0.2"))));
        let v = verdicts(&i);
        assert_eq!(v[1].1, A, "{v:?}");
        for k in [0, 2, 3] {
            assert_eq!(v[k].1, Verdict::Withdrawn(Reason::Operator), "{v:?}");
        }
        // Announcing it again clears nothing more.
        assert!(!i.overrides.announce(Some(p("10.0.0.2"))));
        // Withdrawing it again takes it back out; withdrawing all forgets the exceptions.
        i.overrides.withdraw(Some(p("10.0.0.2")));
        assert_eq!(verdicts(&i)[1].1, Verdict::Withdrawn(Reason::Operator));
        i.overrides.announce(Some(p("10.0.0.3")));
        i.overrides.withdraw(None);
        assert!(verdicts(&i)
            .iter()
            .all(|(_, v)| *v == Verdict::Withdrawn(Reason::Operator)));
        // `bgp announce` of every VIP clears everything.
        i.overrides.announce(Some(p("10.0.0.1")));
        assert!(i.overrides.announce(None));
        assert_eq!(i.overrides, Overrides::default());
        assert!(verdicts(&i).iter().all(|(_, v)| *v == A));
    }

    #[test]
    fn a_table_without_usable_backends_withdraws_only_its_vips() {
        let mut i = ready();
        i.tables[1].usable = false;
        let v = verdicts(&i);
        assert_eq!(v[0].1, A);
        assert_eq!(v[1].1, A);
        let none = Verdict::Withdrawn(Reason::NoUsableBackend {
            table: "api".into(),
        });
        assert_eq!(v[2].1, none);
        assert_eq!(v[3].1, none);
    }

    #[test]
    fn a_prefix_of_two_tables_stays_while_either_can_serve() {
        let mut i = ready();
        i.tables.push(t("web443", &["10.0.0.1"], false));
        let d = decide(&i);
        assert_eq!(d[0].tables, vec!["web".to_string(), "web443".to_string()]);
        assert_eq!(d[0].verdict, A);
        i.tables[0].usable = false;
        assert_eq!(
            decide(&i)[0].verdict,
            Verdict::Withdrawn(Reason::NoUsableBackend {
                table: "web,web443".into()
            })
        );
    }

    #[test]
    fn graceful_shutdown_keeps_announcing_with_the_community_then_draining_withdraws() {
        let mut i = ready();
        i.overrides.prefixes.insert(p("10.0.0.1"));
        i.lifecycle = Lifecycle::Graceful;
        let v = verdicts(&i);
        assert_eq!(v[0].1, Verdict::Withdrawn(Reason::Operator));
        assert_eq!(v[1].1, Verdict::Announced { graceful: true });
        let s = BgpSettings::new("/s".into(), "/i.conf".into()).unwrap();
        let d = desired(&decide(&i), &s);
        assert_eq!(d.len(), 3);
        assert!(d.iter().all(|a| a.graceful_shutdown));
        assert!(!d.contains(&p("10.0.0.1")));
        i.lifecycle = Lifecycle::Draining;
        assert!(desired(&decide(&i), &s).is_empty());
    }

    #[test]
    fn desired_carries_the_configured_attributes() {
        let s = BgpSettings::from_toml_str(
            "[bgp]\nsocket = \"/s\"\ninclude = \"/i.conf\"\ncommunities = [\"65000:1\"]\nmed = 7\n",
        )
        .unwrap();
        let d = desired(&decide(&ready()), &s);
        assert_eq!(d.len(), 4);
        let a = d.get(&p("10.0.0.3")).unwrap();
        assert_eq!(a.med, Some(7));
        assert_eq!(a.communities.len(), 1);
        assert!(!a.graceful_shutdown);
    }

    #[test]
    fn table_inputs_from_binds_and_backends() {
        let bind = |ip: &str, len: u8, port: u16| Bind {
            addr: ip.parse().unwrap(),
            prefix_len: len,
            proto: Proto::Tcp,
            port_start: port,
            port_end: port,
        };
        let be = |state, healthy| Backend {
            ip: "10.1.0.1".parse().unwrap(),
            state,
            healthy,
            weight: 1,
            healthchecks: HealthChecks::default(),
        };
        // Host bits are cleared, a prefix bound twice (two ports) is listed once.
        let binds = [
            bind("10.0.0.1", 32, 80),
            bind("10.0.0.1", 32, 443),
            bind("192.0.2.77", 24, 80),
            bind("fd00::5", 64, 80),
        ];
        let ti = TableInput::new("x", &binds, &[be(BackendState::Active, true)]);
        let got: Vec<String> = ti.prefixes.iter().map(|p| p.to_string()).collect();
        assert_eq!(got, ["10.0.0.1/32", "192.0.2.0/24", "fd00::/64"]);
        assert!(ti.usable);
        for (state, healthy, want) in [
            (BackendState::Active, true, true),
            (BackendState::Filling, true, true),
            (BackendState::Active, false, false),
            (BackendState::Draining, true, false),
            (BackendState::Inactive, true, false),
            (BackendState::Filling, false, false),
        ] {
            assert_eq!(usable(&be(state, healthy)), want, "{state:?} {healthy}");
        }
        assert!(!TableInput::new("x", &binds, &[]).usable);
        assert!(
            !TableInput::new(
                "x",
                &binds,
                &[
                    be(BackendState::Draining, true),
                    be(BackendState::Active, false)
                ]
            )
            .usable
        );
    }

    #[test]
    fn changes_name_only_the_prefixes_whose_verdict_moved() {
        let before = decide(&ready());
        assert_eq!(changes(&[], &before).len(), 4);
        assert!(changes(&before, &before).is_empty());
        let mut i = ready();
        i.tables[1].usable = false;
        let after = decide(&i);
        let c: Vec<String> = changes(&before, &after)
            .iter()
            .map(|d| d.prefix.to_string())
            .collect();
        assert_eq!(c, ["10.0.0.3/32", "fd00::1/128"]);
    }

    #[test]
    fn reasons_have_labels_listed_once() {
        let all = [
            Reason::Starting,
            Reason::LinkDown,
            Reason::PortGone,
            Reason::Stopped,
            Reason::WorkerStalled { worker: 0 },
            Reason::NoUsableBackend { table: "t".into() },
            Reason::Operator,
            Reason::Draining,
        ];
        let labels: Vec<&str> = all.iter().map(Reason::label).collect();
        assert_eq!(labels, Reason::LABELS);
        assert_eq!(
            Verdict::Withdrawn(Reason::WorkerStalled { worker: 2 }).to_string(),
            "withdrawn: worker 2 stalled"
        );
    }
}
