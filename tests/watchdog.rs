//! The systemd watchdog: `rondo run` under `WATCHDOG_USEC` says READY=1 and then pings
//! WATCHDOG=1 again and again while its workers run; a worker stuck in its port (here an RX
//! queue that blocks) stops the pings, and the metrics show how long it has made no
//! progress.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::director::{config, traffic, write_pcap};
use rondo::config::load_config;
use rondo::datapath::Snapshot;
use rondo::drivers::mem::{self, MemPort, MemRx};
use rondo::drivers::{BufPool, Burst, DriverError, PoolBuf, Port, PortStats, QueuePair, RxQueue};
use rondo::runtime::notify::Watchdog;
use rondo::runtime::{IdlePolicy, Runtime, RuntimeOptions};

/// Datagrams on `listener` until `until` or `max` of them.
fn datagrams(listener: &UnixDatagram, until: Instant, max: usize) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 128];
    while got.len() < max && Instant::now() < until {
        match listener.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    got
}

#[test]
fn rondo_run_says_ready_then_pings_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &traffic(50));
    let cfg = dir.path().join("director.toml");
    let port = format!("pcap:{},loop,pps=2000", input.display());
    std::fs::write(&cfg, config(&port, &dir.path().join("rondo.sock"), "", "")).unwrap();
    let notify = dir.path().join("notify");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = dir.path().join("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args([
            "run",
            "--stats-interval",
            "0",
            "--metrics-listen",
            "off",
            "--config",
        ])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &notify)
        // 600 ms: a ping every 300 ms.
        .env("WATCHDOG_USEC", "600000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let got = datagrams(&listener, Instant::now() + Duration::from_secs(30), 4);
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        got,
        ["READY=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1"],
        "{log}"
    );
}

/// A [`MemPort`] whose RX queues block inside `rx_burst` while `stall` is set: a worker
/// stuck in its driver.
struct StallPort {
    inner: MemPort,
    stall: Arc<AtomicBool>,
}

struct StallRx {
    inner: MemRx,
    stall: Arc<AtomicBool>,
}

impl RxQueue for StallRx {
    type Buf = PoolBuf;
    fn rx_burst(&mut self, out: &mut Burst<PoolBuf>) -> usize {
        while self.stall.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.inner.rx_burst(out)
    }
}

impl Port for StallPort {
    type Buf = PoolBuf;
    type Rx = StallRx;
    type Tx = <MemPort as Port>::Tx;
    fn name(&self) -> &str {
        "stall"
    }
    fn mac(&self) -> Option<rondo::wire::MacAddr> {
        None
    }
    fn take_queues(&mut self, n: usize) -> Result<Vec<QueuePair<Self>>, DriverError> {
        let q = self.inner.take_queues(n)?;
        Ok(q.into_iter()
            .map(|(rx, tx)| {
                (
                    StallRx {
                        inner: rx,
                        stall: self.stall.clone(),
                    },
                    tx,
                )
            })
            .collect())
    }
    fn take_exception_tx(&mut self) -> Result<Option<Self::Tx>, DriverError> {
        Ok(None)
    }
    fn alloc(&self, frame: &[u8]) -> Option<PoolBuf> {
        self.inner.alloc(frame)
    }
    fn stats(&self) -> PortStats {
        self.inner.stats()
    }
}

#[test]
fn a_stuck_worker_stops_the_watchdog_pings() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cfg = load_config(&root.join("configs/director.toml"), None).unwrap();
    let (inner, _peer) = mem::pair("stall", 2, 256, BufPool::new(1024, 2048).unwrap()).unwrap();
    let stall = Arc::new(AtomicBool::new(false));
    let port = StallPort {
        inner,
        stall: stall.clone(),
    };
    let opts = RuntimeOptions {
        workers: 2,
        idle: IdlePolicy::Sleep {
            after: 16,
            micros: 100,
        },
        ..Default::default()
    };
    let rt = Runtime::start(port, Snapshot::compile(cfg, None, 2).unwrap(), opts).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let listener = UnixDatagram::bind(&path).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    // Pings every 100 ms; the control loop's tick is 50 ms, as in `rondo run`.
    let mut wd = Watchdog::new(path.as_os_str(), Duration::from_millis(200));
    let mut run_for = |d: Duration| -> usize {
        let end = Instant::now() + d;
        let mut n = 0;
        while Instant::now() < end {
            wd.tick(Instant::now(), &rt.worker_progress());
            n += datagrams(&listener, Instant::now() + Duration::from_millis(50), 100).len();
        }
        n
    };
    let healthy = run_for(Duration::from_secs(2));
    assert!(healthy >= 3, "pings while both workers run: {healthy}");

    stall.store(true, Ordering::Relaxed);
    // Let the workers enter rx_burst and block, and pings already queued drain.
    run_for(Duration::from_millis(500));
    let stuck = run_for(Duration::from_secs(2));
    assert_eq!(stuck, 0, "no ping while the workers are stuck");
    let ages = rt.worker_progress_ages();
    assert!(
        ages.iter()
            .all(|a| a.is_some_and(|a| a >= Duration::from_secs(1))),
        "{ages:?}"
    );

    stall.store(false, Ordering::Relaxed);
    let resumed = run_for(Duration::from_secs(2));
    assert!(resumed >= 3, "pings again once they move: {resumed}");
    assert!(rt
        .worker_progress_ages()
        .iter()
        .all(|a| a.is_some_and(|a| a < Duration::from_secs(1))));
    drop(rt);
}
