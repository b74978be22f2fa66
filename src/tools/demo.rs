//! `rondo demo`: the whole data plane on in-memory ports with built-in traffic, a table
//! change half-way, live stats and a final check of every forwarded packet.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{config_from_str, Config};
use crate::datapath::PacketBuf;
use crate::drivers::{mem, BufPool};
use crate::hash::{siphash24, SipKey};
use crate::runtime::control::Control;
use crate::runtime::{ExceptionPath, IdlePolicy, Runtime, RuntimeOptions};
use crate::table::{BackendState, ForwardingTable};
use crate::wire::{GuePacket, HopFamily, Ipv4Packet, UdpPacket};

use super::report::format_counters;

/// The embedded configuration: two services, eight and four backends.
pub const DEMO_CONFIG: &str = r#"
[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"
hash_fields = ["src_addr"]

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{ ip = "1.1.1.1", proto = "tcp", port = 80 }, { ip = "1.1.1.1", proto = "tcp", port = 443 }]
backends = [
  { ip = "10.1.0.1" }, { ip = "10.1.0.2" }, { ip = "10.1.0.3" }, { ip = "10.1.0.4" },
  { ip = "10.1.0.5" }, { ip = "10.1.0.6" }, { ip = "10.1.0.7" }, { ip = "10.1.0.8" },
]

[[tables]]
name = "dns"
hash_key = "00112233445566778899aabbccddeeff"
seed = "12345678901234561234567890123456"
binds = [{ ip = "1.1.2.0/24", proto = "udp", port = 53 }]
backends = [{ ip = "10.2.0.1" }, { ip = "10.2.0.2" }, { ip = "10.2.0.3" }, { ip = "10.2.0.4" }]
"#;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// How long traffic flows.
    #[arg(long, default_value_t = 6)]
    seconds: u64,
    /// Worker threads (in-memory queues).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Distinct clients in the traffic.
    #[arg(long, default_value_t = 4096)]
    clients: u32,
}

fn config() -> Result<Config, String> {
    config_from_str(DEMO_CONFIG, "demo.toml").map_err(|e| e.to_string())
}

fn checksum(data: &[u8]) -> u16 {
    crate::wire::checksum::data(data)
}

/// TCP SYNs to the web VIP and DNS queries to the /24, from `clients` addresses.
fn traffic(clients: u32) -> Vec<Vec<u8>> {
    (0..clients)
        .map(|i| {
            let src =
                Ipv4Addr::from(0x6400_0000 + i.wrapping_mul(2_654_435_761) % 0x00ff_ffff).octets();
            let udp = i % 4 == 3;
            let (dst, l4): ([u8; 4], Vec<u8>) = if udp {
                let mut u = vec![0u8; 8 + 12];
                u[0..2].copy_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
                u[2..4].copy_from_slice(&53u16.to_be_bytes());
                u[4..6].copy_from_slice(&20u16.to_be_bytes());
                ([1, 1, 2, (i % 250) as u8 + 1], u)
            } else {
                let mut t = vec![0u8; 20];
                t[0..2].copy_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
                t[2..4].copy_from_slice(&(if i % 2 == 0 { 80u16 } else { 443 }).to_be_bytes());
                t[12] = 0x50;
                t[13] = 0x02;
                ([1, 1, 1, 1], t)
            };
            let mut f = vec![0u8; 14 + 20];
            f[0..6].copy_from_slice(&[2, 0x52, 0, 0, 0, 1]);
            f[6..12].copy_from_slice(&[2, 0xcc, 0, 0, 0, 1]);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut f[14..34];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            ip[6] = 0x40;
            ip[8] = 64;
            ip[9] = if udp { 17 } else { 6 };
            ip[12..16].copy_from_slice(&src);
            ip[16..20].copy_from_slice(&dst);
            let c = checksum(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&l4);
            f
        })
        .collect()
}

/// Expected (primary, secondary) of a flow in each table generation the demo used.
struct Verifier {
    tables: Vec<Vec<ForwardingTable>>,
    keys: Vec<SipKey>,
}

#[derive(Default)]
struct Tally {
    verified: AtomicU64,
    per_generation: [AtomicU64; 2],
    mismatched: AtomicU64,
    malformed: AtomicU64,
}

impl Verifier {
    fn table_of(dst: Ipv4Addr) -> usize {
        if dst == Ipv4Addr::new(1, 1, 1, 1) {
            0
        } else {
            1
        }
    }

    /// Which generations' rows match this encapsulated packet (bit per generation).
    fn check(&self, frame: &[u8]) -> Result<u8, ()> {
        let outer = Ipv4Packet::new_checked(frame.get(14..).ok_or(())?).map_err(|_| ())?;
        let udp = UdpPacket::new_checked(outer.payload()).map_err(|_| ())?;
        let gue = GuePacket::new_checked(udp.payload(), HopFamily::V4).map_err(|_| ())?;
        let inner = Ipv4Packet::new_checked(gue.payload()).map_err(|_| ())?;
        let t = Self::table_of(inner.dst_addr());
        let h = siphash24(&self.keys[t], &inner.src_addr().octets());
        let got = [
            IpAddr::V4(outer.dst_addr()),
            IpAddr::V4(gue.hop_v4(0).ok_or(())?),
        ];
        let mut matched = 0u8;
        for (g, gen) in self.tables.iter().enumerate() {
            let table = &gen[t];
            let row = table.row(h as u16);
            let want = [
                table.spec.backends[row[0] as usize].ip,
                table.spec.backends[row[1] as usize].ip,
            ];
            if want == got {
                matched |= 1 << g;
            }
        }
        Ok(matched)
    }
}

/// `rondo demo`.
pub fn run(a: &DemoArgs) -> Result<(), String> {
    let workers = a.workers.clamp(1, 16);
    let before = config()?;
    // Half-way: drain one web backend. Its flows move to their secondaries.
    let mut after = before.clone();
    let drained = after.tables[0].spec.backends[2].ip;
    let mut spec = after.tables[0].spec.clone();
    spec.backends[2].state = BackendState::Draining;
    after.tables[0] =
        ForwardingTable::build(spec, after.settings.row_policy).map_err(|e| e.to_string())?;

    let pool = BufPool::new(32768, 256).map_err(|e| e.to_string())?;
    let (port, peer) = mem::pair("demo", workers, 4096, pool.clone()).map_err(|e| e.to_string())?;
    let mut control = Control::new(None, crate::drivers::Port::mac(&port));
    let snap = control.compile(before.clone())?;
    let rt = Runtime::start(
        port,
        snap,
        RuntimeOptions {
            workers,
            idle: IdlePolicy::Sleep {
                after: 64,
                micros: 20,
            },
            exception: ExceptionPath::Drop,
            ..RuntimeOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;

    let frames = traffic(a.clients.max(1));
    let verifier = Arc::new(Verifier {
        keys: before
            .tables
            .iter()
            .map(|t| SipKey::from_bytes(&t.spec.hash_key))
            .collect(),
        tables: vec![before.tables.clone(), after.tables.clone()],
    });
    let sent = Arc::new(AtomicU64::new(0));
    let gen_stop = Arc::new(AtomicBool::new(false));
    let sink_stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());

    let generator = {
        let (peer, sent, stop, tally) =
            (peer.clone(), sent.clone(), gen_stop.clone(), tally.clone());
        // Closed loop: keep at most this many packets in flight, so the verifying sink (the
        // slowest stage) sets the pace and nothing is refused for lack of ring space.
        let window = 2048 * workers as u64;
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let done = tally.verified.load(Ordering::Relaxed)
                    + tally.mismatched.load(Ordering::Relaxed)
                    + tally.malformed.load(Ordering::Relaxed);
                if sent.load(Ordering::Relaxed) - done >= window {
                    std::hint::spin_loop();
                    continue;
                }
                let f = &frames[i % frames.len()];
                let Some(mut b) = peer.alloc() else {
                    std::thread::yield_now();
                    continue;
                };
                b.set_frame(f);
                let mut b = b;
                // Never drop: wait for room so that every generated packet is accounted for.
                loop {
                    match peer.send_buf(i % peer.queues(), b) {
                        Ok(()) => break,
                        Err(back) => {
                            b = back;
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            std::thread::yield_now();
                        }
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    let sink = {
        let (peer, stop, tally, verifier) = (
            peer.clone(),
            sink_stop.clone(),
            tally.clone(),
            verifier.clone(),
        );
        std::thread::spawn(move || loop {
            match peer.recv() {
                Some(b) => match verifier.check(b.data()) {
                    Ok(0) => {
                        tally.mismatched.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(m) => {
                        tally.verified.fetch_add(1, Ordering::Relaxed);
                        // Attribute to the newest generation it matches (most flows match both).
                        let g = if m & 2 != 0 && m & 1 == 0 { 1 } else { 0 };
                        tally.per_generation[g].fetch_add(1, Ordering::Relaxed);
                    }
                    Err(()) => {
                        tally.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                },
                None => {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
        })
    };

    println!("rondo demo: {workers} worker(s) on in-memory ports, {} clients -> web 1.1.1.1:80,443 (8 backends) and dns 1.1.2.0/24:53 (4 backends), {} s", a.clients, a.seconds);
    let start = Instant::now();
    let total = Duration::from_secs(a.seconds.max(2));
    let mut swapped = false;
    let mut last = (Instant::now(), 0u64);
    while start.elapsed() < total {
        std::thread::sleep(Duration::from_millis(250));
        if !swapped && start.elapsed() >= total / 2 {
            swapped = true;
            let g = control.apply(&rt, after.clone(), "demo: drain web backend")?;
            println!("[{:5.1}s] table change: web backend {drained} -> draining (generation {g}); its rows move to their secondaries", start.elapsed().as_secs_f64());
        }
        if last.0.elapsed() >= Duration::from_secs(1) {
            let t = rt.totals();
            let dt = last.0.elapsed().as_secs_f64();
            println!(
                "[{:5.1}s] {:6.2} Mpps forwarded  total {:>10}  drops {}  exceptions {}  tx refused {}  reloads {}",
                start.elapsed().as_secs_f64(),
                (t.forwarded - last.1) as f64 / dt / 1e6,
                t.forwarded,
                t.total_drops(),
                t.total_exceptions(),
                t.tx_refused,
                control.reloads_ok.load(Ordering::Relaxed)
            );
            last = (Instant::now(), t.forwarded);
        }
    }
    gen_stop.store(true, Ordering::Relaxed);
    let _ = generator.join();
    let generated = sent.load(Ordering::Relaxed);
    // Let the pipeline drain: everything generated must come out the other side.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let t = rt.totals();
        let seen = tally.verified.load(Ordering::Relaxed)
            + tally.mismatched.load(Ordering::Relaxed)
            + tally.malformed.load(Ordering::Relaxed);
        if t.rx_packets == generated
            && seen + t.total_drops() + t.total_exceptions() + t.tx_refused + t.exception_dropped
                >= generated
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    sink_stop.store(true, Ordering::Relaxed);
    let _ = sink.join();
    let elapsed = start.elapsed().as_secs_f64();
    let totals = rt.shutdown();

    let verified = tally.verified.load(Ordering::Relaxed);
    let mismatched = tally.mismatched.load(Ordering::Relaxed);
    let malformed = tally.malformed.load(Ordering::Relaxed);
    let lost = generated.saturating_sub(verified + mismatched + malformed);
    println!();
    print!("{}", format_counters(&totals));
    println!(
        "generated   {generated:>12} packets in {elapsed:.1} s ({:.2} Mpps average)",
        generated as f64 / elapsed / 1e6
    );
    println!(
        "verified    {verified:>12} packets: outer destination and hop list are the table row's backends ({} match the first table, {} only the changed one)",
        tally.per_generation[0].load(Ordering::Relaxed),
        tally.per_generation[1].load(Ordering::Relaxed)
    );
    println!("mismatched  {mismatched:>12}");
    println!("malformed   {malformed:>12}");
    println!("lost        {lost:>12}");
    let mut shares: HashMap<IpAddr, u64> = HashMap::new();
    for (g, gen) in verifier.tables.iter().enumerate() {
        let t = &gen[0];
        let n = t
            .rows()
            .chunks_exact(t.hops())
            .filter(|r| t.spec.backends[r[0] as usize].ip == drained)
            .count();
        shares.insert(drained, n as u64);
        println!(
            "web rows with {drained} as primary, generation {}: {n}",
            g + 1
        );
    }
    let ok = mismatched == 0
        && malformed == 0
        && lost == 0
        && totals.total_drops() == 0
        && totals.tx_refused == 0
        && generated > 0;
    if ok {
        println!("OK: every packet was forwarded to the backends its table row names, none lost across the table change");
        Ok(())
    } else {
        Err("demo check failed: see the counts above".into())
    }
}
