//! Scenarios and the runner: start long-lived streaming connections, keep opening new ones,
//! change the fleet at `change_at_ms`, run on, and count what broke.

use std::fmt;

use smoltcp::time::Instant;

use super::backend::{Backend, BackendStats};
use super::client::{Client, Kind, Outcome, Traffic};
use super::control::{Control, Entry};
use super::director::Director;
use super::net::{backend_index, client_index, ecmp, to_director_frame};
use super::SimError;
use rondo::redirect::decide::AddrSet;
use rondo::table::BackendState;
use rondo::wire::Ipv4Packet;

/// A change to the fleet, made while traffic flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A new backend joins as `filling`, then becomes `active`.
    AddBackend,
    /// Backend 0 goes to `draining`.
    Drain,
    /// Backend 1 dies; the health checker marks it down a little later.
    KillBackend,
    /// Director 0 dies, is withdrawn from ECMP, and comes back.
    DirectorRestart,
    /// Every director reloads the same tables, one after the other.
    Reload,
    /// Backend 0 is drained and, once its connections have finished, removed from the table.
    Remove,
    /// `hash_fields` changes, with the old fields as `alt_hash_fields`.
    AltHashMigration,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::AddBackend,
        Scenario::Drain,
        Scenario::KillBackend,
        Scenario::DirectorRestart,
        Scenario::Reload,
        Scenario::Remove,
        Scenario::AltHashMigration,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::AddBackend => "add_backend",
            Scenario::Drain => "drain",
            Scenario::KillBackend => "kill_backend",
            Scenario::DirectorRestart => "director_restart",
            Scenario::Reload => "reload",
            Scenario::Remove => "remove",
            Scenario::AltHashMigration => "alt_hash_migration",
        }
    }
}

/// Sizes and timings of a run (milliseconds of virtual time).
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub seed: u64,
    pub directors: usize,
    /// Backends in the table at the start (one more host exists for `AddBackend`).
    pub backends: usize,
    pub clients: usize,
    /// Long-lived connections kept open.
    pub long_conns: usize,
    /// One new short connection every this many milliseconds.
    pub new_conn_every_ms: i64,
    pub change_at_ms: i64,
    /// Run this long after the last change.
    pub settle_ms: i64,
    /// Gap between directors applying the same table change.
    pub stagger_ms: i64,
    /// From a backend's death to the tables marking it unhealthy.
    pub health_delay_ms: i64,
    /// From a director's death to its withdrawal from ECMP.
    pub withdraw_ms: i64,
    /// A new connection must have its echo back within this.
    pub new_conn_timeout_ms: i64,
    pub traffic: Traffic,
    /// Second chance on the backends; off, every packet is delivered locally.
    pub second_chance: bool,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            seed: 7,
            directors: 3,
            backends: 4,
            clients: 4,
            long_conns: 200,
            new_conn_every_ms: 10,
            change_at_ms: 1500,
            settle_ms: 3000,
            stagger_ms: 50,
            health_delay_ms: 300,
            withdraw_ms: 100,
            new_conn_timeout_ms: 2500,
            traffic: Traffic {
                chunk: 200,
                interval_ms: 50,
                request: 300,
                stall_ms: 2000,
            },
            second_chance: true,
        }
    }
}

/// What a run counted.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub scenario: &'static str,
    pub second_chance: bool,
    /// Long-lived connections opened, and how they ended (still streaming = `long_alive`).
    pub long_opened: usize,
    pub long_alive: usize,
    pub long_completed: usize,
    pub long_reset: usize,
    pub long_stalled: usize,
    pub long_corrupt: usize,
    /// Connections held by a killed backend (long ones, new ones), counted nowhere else; and
    /// how many of them the harness saw break (reset or stalled), as it must.
    pub long_on_killed: usize,
    pub new_on_killed: usize,
    pub killed_seen_broken: usize,
    /// Connections each backend holds at the end (by backend index).
    pub flows_at_end: Vec<usize>,
    /// Packets each backend delivered to its own stack (by backend index).
    pub local_per_backend: Vec<u64>,
    /// New connections opened early enough to be judged, and how they did.
    pub new_judged: usize,
    pub new_ok: usize,
    pub new_failed: usize,
    /// Bytes echoed back to the clients in total.
    pub bytes_echoed: u64,
    /// Backend GUE decisions, summed.
    pub backends: BackendStats,
    /// Packets the directors forwarded, and dropped.
    pub director_forwarded: u64,
    pub director_dropped: u64,
    /// Virtual time run, and the changes made (time, what).
    pub virtual_ms: i64,
    pub changes: Vec<(i64, String)>,
}

impl Report {
    /// Established connections broken (reset, stalled or corrupted), killed backend excepted.
    pub fn broken(&self) -> usize {
        self.long_reset + self.long_stalled + self.long_corrupt
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<18} second_chance={:<5} long: opened={} alive={} completed={} broken={} (reset={} stalled={} corrupt={}) | new: judged={} ok={} failed={} | on_killed_backend: long={} new={} seen_broken={} | flows_at_end={:?} local_per_backend={:?} | echoed={}B | backends: local={} forwarded={} dropped={} | directors: forwarded={} dropped={} | {} virtual ms",
            self.scenario,
            self.second_chance,
            self.long_opened,
            self.long_alive,
            self.long_completed,
            self.broken(),
            self.long_reset,
            self.long_stalled,
            self.long_corrupt,
            self.new_judged,
            self.new_ok,
            self.new_failed,
            self.long_on_killed,
            self.new_on_killed,
            self.killed_seen_broken,
            self.flows_at_end,
            self.local_per_backend,
            self.bytes_echoed,
            self.backends.local,
            self.backends.forwarded,
            self.backends.dropped,
            self.director_forwarded,
            self.director_dropped,
            self.virtual_ms,
        )?;
        for (t, c) in &self.changes {
            write!(f, "\n    t={t}ms {c}")?;
        }
        Ok(())
    }
}

/// A table edit, applied to the control config and then reloaded by every director.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Edit {
    Add(usize),
    State(usize, BackendState),
    Healthy(usize, bool),
    Remove(usize),
    /// One change: the first backend drains and the second joins as `filling`.
    Replace(usize, usize),
    Nothing,
    Migrate,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Edit(Edit),
    Reload(usize),
    KillBackend(usize),
    KillDirector(usize),
    Withdraw(usize),
    RestartDirector(usize),
    /// Checked every tick until the backend holds no connection, then removed.
    RemoveWhenDrained(usize),
}

enum Hop {
    Director(usize),
    Backend(usize),
    Client(usize),
}

/// splitmix64: the run's only source of randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo).max(1) as u64) as i64
    }
}

pub(crate) struct Sim {
    pub(crate) p: Params,
    pub(crate) now: i64,
    pub(crate) control: Control,
    pub(crate) directors: Vec<Director>,
    /// Directors ECMP sends to.
    ecmp: Vec<usize>,
    pub(crate) backends: Vec<Backend>,
    pub(crate) clients: Vec<Client>,
    wire: Vec<(Hop, Vec<u8>)>,
    pub(crate) events: Vec<(i64, Event)>,
    pub(crate) changes: Vec<(i64, String)>,
    pub(crate) last_change: i64,
    rng: Rng,
    /// Long connections get a lifetime (and are replaced) when set: (min, max) ms.
    lifetime: Option<(i64, i64)>,
}

impl Sim {
    pub(crate) fn new(p: Params, lifetime: Option<(i64, i64)>) -> Result<Sim, SimError> {
        if p.directors == 0 || p.backends < 2 || p.clients == 0 || p.traffic.request == 0 {
            return Err(SimError::Params(format!(
                "need directors >= 1, backends >= 2, clients >= 1, request > 0: {p:?}"
            )));
        }
        let mut rng = Rng(p.seed);
        let t0 = Instant::from_millis(0);
        let mut control = Control::new(p.backends);
        let directors = (0..p.directors)
            .map(|d| control.compile(d).map(Director::new))
            .collect::<Result<Vec<_>, _>>()?;
        let nets = |second: u8| AddrSet::new(vec![([10, second, 0, 0].into(), 16)]);
        let backends = (0..=p.backends)
            .map(|b| Backend::new(b, nets(3), nets(2), p.second_chance, rng.next(), t0))
            .collect::<Result<Vec<_>, _>>()?;
        let clients = (0..p.clients)
            .map(|c| Client::new(c, p.traffic, rng.next(), t0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sim {
            ecmp: (0..p.directors).collect(),
            p,
            now: 0,
            control,
            directors,
            backends,
            clients,
            wire: Vec::new(),
            events: Vec::new(),
            changes: Vec::new(),
            last_change: 0,
            rng,
            lifetime,
        })
    }

    pub(crate) fn at(&mut self, t: i64, e: Event) {
        self.events.push((t, e));
    }

    fn note(&mut self, what: String) {
        tracing::info!(t_ms = self.now, "{what}");
        self.changes.push((self.now, what));
        self.last_change = self.now;
    }

    fn apply(&mut self, e: Event) -> Result<(), SimError> {
        match e {
            Event::Edit(edit) => {
                let c = &mut self.control;
                match edit {
                    Edit::Add(b) => c.entries.push(Entry {
                        backend: b,
                        state: BackendState::Filling,
                        healthy: true,
                    }),
                    Edit::State(b, s) => {
                        if let Some(e) = c.entry_mut(b) {
                            e.state = s;
                        }
                    }
                    Edit::Healthy(b, h) => {
                        if let Some(e) = c.entry_mut(b) {
                            e.healthy = h;
                        }
                    }
                    Edit::Remove(b) => c.entries.retain(|e| e.backend != b),
                    Edit::Replace(old, new) => {
                        if let Some(e) = c.entry_mut(old) {
                            e.state = BackendState::Draining;
                        }
                        c.entries.push(Entry {
                            backend: new,
                            state: BackendState::Filling,
                            healthy: true,
                        });
                    }
                    Edit::Nothing => {}
                    Edit::Migrate => {
                        c.alt_hash_fields = Some(c.hash_fields.clone());
                        c.hash_fields = vec!["src_addr", "src_port", "dst_port"];
                    }
                }
                self.note(format!("tables: {edit:?}"));
                for d in 0..self.directors.len() {
                    self.at(self.now + d as i64 * self.p.stagger_ms, Event::Reload(d));
                }
            }
            Event::Reload(d) => {
                if self.directors[d].alive() {
                    self.directors[d].snap = Some(self.control.compile(d)?);
                }
            }
            Event::KillBackend(b) => {
                self.backends[b].alive = false;
                let flows = self.backends[b].flows();
                for c in &mut self.clients {
                    c.mark_killed(&flows);
                }
                self.note(format!(
                    "backend {b} killed holding {} connections",
                    flows.len()
                ));
            }
            Event::KillDirector(d) => {
                self.directors[d].snap = None;
                self.directors[d].inbox.clear();
                self.note(format!("director {d} killed"));
            }
            Event::Withdraw(d) => {
                self.ecmp.retain(|&x| x != d);
                self.note(format!("director {d} withdrawn from ECMP"));
            }
            Event::RestartDirector(d) => {
                self.directors[d].snap = Some(self.control.compile(d)?);
                if !self.ecmp.contains(&d) {
                    self.ecmp.push(d);
                    self.ecmp.sort_unstable();
                }
                self.note(format!("director {d} restarted and announced"));
            }
            Event::RemoveWhenDrained(b) => {
                if self.backends[b].flows().is_empty() {
                    self.apply(Event::Edit(Edit::Remove(b)))?;
                } else {
                    self.at(self.now + 1, e);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn tick(&mut self) -> Result<(), SimError> {
        self.now += 1;
        let now = Instant::from_millis(self.now);
        let due: Vec<Event> = {
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.events)
                .into_iter()
                .partition(|(t, _)| *t <= self.now);
            self.events = later;
            due.into_iter().map(|(_, e)| e).collect()
        };
        for e in due {
            self.apply(e)?;
        }
        for (hop, p) in std::mem::take(&mut self.wire) {
            match hop {
                Hop::Director(d) => {
                    if self.directors[d].alive() {
                        self.directors[d].inbox.push(p);
                    }
                }
                Hop::Backend(b) => {
                    let be = &mut self.backends[b];
                    if be.alive {
                        if let Some((to, fwd)) = be.on_gue(&p) {
                            if let Some(nb) = backend_index(to).filter(|&i| i < self.backends.len())
                            {
                                self.wire.push((Hop::Backend(nb), fwd));
                            }
                        }
                    }
                }
                Hop::Client(c) => self.clients[c].dev.rx.push_back(p),
            }
        }
        for d in &mut self.directors {
            for f in d.process() {
                let Some(ip) = f.get(14..) else { continue };
                let Ok(pkt) = Ipv4Packet::new_checked(ip) else {
                    continue;
                };
                if let Some(b) = backend_index(pkt.dst_addr()).filter(|&b| b < self.backends.len())
                {
                    self.wire.push((Hop::Backend(b), ip.to_vec()));
                }
            }
        }
        for c in &mut self.clients {
            for p in c.step(now) {
                if let Some(d) = ecmp(&p, &self.ecmp) {
                    self.wire.push((Hop::Director(d), to_director_frame(&p)));
                }
            }
        }
        for b in self.backends.iter_mut().filter(|b| b.alive) {
            for p in b.step(now) {
                let dst = Ipv4Packet::new_checked(&p[..]).ok().map(|i| i.dst_addr());
                if let Some(c) = dst
                    .and_then(client_index)
                    .filter(|&c| c < self.clients.len())
                {
                    self.wire.push((Hop::Client(c), p));
                }
            }
        }
        Ok(())
    }

    fn open_long(&mut self, i: usize) {
        let close_after = self
            .lifetime
            .map(|(lo, hi)| self.now + self.rng.range(lo, hi));
        let n = self.clients.len();
        self.clients[i % n].open(Kind::Long, self.now, close_after);
    }

    fn long_open(&self) -> usize {
        self.clients
            .iter()
            .flat_map(|c| &c.conns)
            .filter(|c| c.kind == Kind::Long && c.outcome == Outcome::Open)
            .count()
    }

    pub(crate) fn report(&self, name: &'static str) -> Report {
        let mut r = Report {
            scenario: name,
            second_chance: self.p.second_chance,
            virtual_ms: self.now,
            changes: self.changes.clone(),
            ..Report::default()
        };
        let judge_until = self.now - self.p.new_conn_timeout_ms;
        for c in self.clients.iter().flat_map(|c| &c.conns) {
            r.bytes_echoed += c.echoed;
            if c.kind == Kind::Long {
                r.long_opened += 1;
            }
            if c.on_killed_backend {
                match c.kind {
                    Kind::Long => r.long_on_killed += 1,
                    Kind::Short => r.new_on_killed += 1,
                }
                if matches!(c.outcome, Outcome::Reset | Outcome::Stalled) {
                    r.killed_seen_broken += 1;
                }
                continue;
            }
            match c.kind {
                Kind::Long => match c.outcome {
                    Outcome::Open => r.long_alive += 1,
                    Outcome::Completed => r.long_completed += 1,
                    Outcome::Reset => r.long_reset += 1,
                    Outcome::Stalled => r.long_stalled += 1,
                    Outcome::Corrupt => r.long_corrupt += 1,
                },
                Kind::Short if c.opened_at <= judge_until => {
                    r.new_judged += 1;
                    let ok = c.sent > 0
                        && c.echoed == c.sent
                        && c.outcome != Outcome::Corrupt
                        && c.last_progress - c.opened_at <= self.p.new_conn_timeout_ms;
                    if ok {
                        r.new_ok += 1;
                    } else {
                        r.new_failed += 1;
                    }
                }
                Kind::Short => {}
            }
        }
        for b in &self.backends {
            r.flows_at_end
                .push(if b.alive { b.flows().len() } else { 0 });
            r.local_per_backend.push(b.stats.local);
            r.backends.local += b.stats.local;
            r.backends.forwarded += b.stats.forwarded;
            r.backends.dropped += b.stats.dropped + b.stats.malformed;
        }
        for d in &self.directors {
            r.director_forwarded += d.counters.forwarded;
            r.director_dropped += d.counters.drops.iter().sum::<u64>();
        }
        r
    }
}

/// Run `scenario` with `p`: the counts of what broke.
pub fn run(scenario: Scenario, p: Params) -> Result<Report, SimError> {
    let lifetime = (scenario == Scenario::Remove).then_some((1000, 2500));
    let mut sim = Sim::new(p, lifetime)?;
    let t = p.change_at_ms;
    let last = p.backends;
    match scenario {
        Scenario::AddBackend => {
            sim.at(t, Event::Edit(Edit::Add(last)));
            sim.at(
                t + 1000,
                Event::Edit(Edit::State(last, BackendState::Active)),
            );
        }
        Scenario::Drain => sim.at(t, Event::Edit(Edit::State(0, BackendState::Draining))),
        Scenario::KillBackend => {
            sim.at(t, Event::KillBackend(1));
            sim.at(t + p.health_delay_ms, Event::Edit(Edit::Healthy(1, false)));
        }
        Scenario::DirectorRestart => {
            sim.at(t, Event::KillDirector(0));
            sim.at(t + p.withdraw_ms, Event::Withdraw(0));
            sim.at(t + 1000, Event::RestartDirector(0));
        }
        Scenario::Reload => sim.at(t, Event::Edit(Edit::Nothing)),
        Scenario::Remove => {
            sim.at(t, Event::Edit(Edit::State(0, BackendState::Draining)));
            sim.at(t + 200, Event::RemoveWhenDrained(0));
        }
        Scenario::AltHashMigration => sim.at(t, Event::Edit(Edit::Migrate)),
    }
    // Long connections ramp up over the first 500 ms.
    let ramp = 500;
    let mut opened = 0usize;
    let hard_end = t + 20_000;
    loop {
        let pending = !sim.events.is_empty();
        let end = sim.last_change.max(t) + p.settle_ms;
        if sim.now >= hard_end || (!pending && sim.now >= end) {
            break;
        }
        let due = (p.long_conns as i64 * sim.now / ramp).min(p.long_conns as i64) as usize;
        while opened < due {
            sim.open_long(opened);
            opened += 1;
        }
        if sim.lifetime.is_some() && sim.now > ramp {
            for _ in sim.long_open()..p.long_conns {
                sim.open_long(opened);
                opened += 1;
            }
        }
        if sim.now > 0
            && p.new_conn_every_ms > 0
            && sim.now % p.new_conn_every_ms == 0
            && sim.now <= end - p.new_conn_timeout_ms
        {
            let n = sim.clients.len();
            let c = (sim.now / p.new_conn_every_ms) as usize % n;
            sim.clients[c].open(Kind::Short, sim.now, None);
        }
        sim.tick()?;
    }
    if !sim.events.is_empty() {
        sim.changes
            .push((sim.now, "run ended with changes still pending".to_string()));
    }
    Ok(sim.report(scenario.name()))
}
