//! Capture-file ports: frames are read from a pcap file (once, or looped from memory for
//! benchmarks) and sent frames are written to another (or discarded). Only queue 0 reads;
//! further queues stay idle.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;

use super::{BufPool, Burst, DriverError, PoolBuf, Port, PortStats, RxQueue, TxQueue};
use crate::datapath::PacketBuf;
use crate::wire::MacAddr;

/// Most frames a looped capture keeps in memory.
pub const MAX_LOOP_FRAMES: usize = 1 << 20;

use super::PortCounters as Counters;

/// The output file, shared so that it can be flushed while the pcap writer owns a handle.
#[derive(Clone)]
struct OutFile(Arc<Mutex<BufWriter<File>>>);

impl Write for OutFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

/// The pcap writer plus a handle on its file for flushing.
struct Writer {
    pcap: PcapWriter<OutFile>,
    file: OutFile,
}

enum Source {
    File(PcapReader<BufReader<File>>),
    Loop { frames: Vec<Box<[u8]>>, next: usize },
    Done,
}

/// A port over capture files.
pub struct PcapPort {
    name: String,
    pool: BufPool,
    source: Option<Source>,
    writer: Arc<Mutex<Option<Writer>>>,
    counters: Arc<Counters>,
    pps: Option<u64>,
}

/// Paces reading to a number of frames per second (a token bucket holding at most 10 ms
/// of frames, and at least a burst).
struct Pacer {
    pps: f64,
    tokens: f64,
    cap: f64,
    last: std::time::Instant,
}

impl Pacer {
    fn new(pps: u64) -> Pacer {
        let pps = pps as f64;
        Pacer {
            pps,
            tokens: 0.0,
            cap: (pps / 100.0).max(crate::datapath::BURST_MAX as f64),
            last: std::time::Instant::now(),
        }
    }
    /// How many frames may be read now (at most `want`); they are taken.
    fn take(&mut self, want: usize) -> usize {
        let now = std::time::Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.pps).min(self.cap);
        let n = (self.tokens.floor() as usize).min(want);
        self.tokens -= n as f64;
        n
    }
}

/// Size of a pcap file header.
pub const FILE_HEADER_LEN: u64 = 24;
/// Size of a pcap record header (before each frame's captured bytes).
pub const RECORD_HEADER_LEN: u64 = 16;

/// What the first four bytes of a capture say it is.
fn check_magic(path: &Path, magic: [u8; 4]) -> Result<(), String> {
    match magic {
        // Microsecond and nanosecond pcap, either byte order.
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xd4, 0xc3, 0xb2, 0xa1] => Ok(()),
        [0xa1, 0xb2, 0x3c, 0x4d] | [0x4d, 0x3c, 0xb2, 0xa1] => Ok(()),
        [0x0a, 0x0d, 0x0d, 0x0a] => Err(format!(
            "{}: is a pcapng capture (magic 0a 0d 0d 0a); only pcap is supported: convert it \
             with `editcap -F pcap IN OUT` or `tcpdump -r IN -w OUT`",
            path.display()
        )),
        m => Err(format!(
            "{}: not a pcap capture: wrong magic {:02x} {:02x} {:02x} {:02x} (a pcap file \
             starts with a1 b2 c3 d4 or d4 c3 b2 a1, a1 b2 3c 4d or 4d 3c b2 a1 for \
             nanoseconds; pcapng with 0a 0d 0d 0a)",
            path.display(),
            m[0],
            m[1],
            m[2],
            m[3]
        )),
    }
}

/// Why record `index` (0-based) at byte `offset` of a capture of `file_len` bytes could
/// not be read: a truncated record says where the file ends, anything else gives the
/// reader's error.
pub fn record_error(
    path: &Path,
    index: u64,
    offset: u64,
    file_len: u64,
    e: &pcap_file::PcapError,
) -> String {
    let left = file_len.saturating_sub(offset);
    let what = if left < RECORD_HEADER_LEN {
        format!("truncated: its record header is cut short ({left} of {RECORD_HEADER_LEN} bytes)")
    } else if matches!(e, pcap_file::PcapError::IncompleteBuffer)
        || matches!(e, pcap_file::PcapError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
    {
        format!(
            "truncated: the file ends {} bytes into its captured data",
            left - RECORD_HEADER_LEN
        )
    } else {
        format!("unreadable: {e}")
    };
    format!(
        "{}: packet {} (the record at byte offset {offset}) is {what}; the {index} packet(s) before it are complete",
        path.display(),
        index + 1
    )
}

/// Open a capture for reading: a regular pcap file with Ethernet frames, or an error that
/// says what is wrong with it (not a file, empty, too short, pcapng, wrong magic, link
/// type). A FIFO does not block the open.
pub fn open_reader(path: &Path, port: &str) -> Result<PcapReader<BufReader<File>>, DriverError> {
    use std::io::{Read, Seek};
    use std::os::unix::fs::OpenOptionsExt;
    let os = |op, source| DriverError::Os {
        port: port.into(),
        op,
        source,
    };
    let bad = |reason: String| DriverError::Port {
        port: port.into(),
        reason,
    };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| os("open capture", e))?;
    let meta = f.metadata().map_err(|e| os("open capture", e))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(bad(format!(
            "{}: is {what}; give a pcap capture file",
            path.display()
        )));
    }
    if meta.len() == 0 {
        return Err(bad(format!(
            "{}: is empty (0 bytes); expected a pcap capture",
            path.display()
        )));
    }
    let mut magic = [0u8; 4];
    let got = (&mut f)
        .take(4)
        .read(&mut magic)
        .map_err(|e| os("read capture", e))?;
    if got == 4 {
        check_magic(path, magic).map_err(bad)?;
    }
    if meta.len() < FILE_HEADER_LEN {
        return Err(bad(format!(
            "{}: is {} bytes, shorter than a pcap file header ({FILE_HEADER_LEN} bytes)",
            path.display(),
            meta.len()
        )));
    }
    f.rewind().map_err(|e| os("read capture", e))?;
    let r = PcapReader::new(BufReader::new(f))
        .map_err(|e| bad(format!("{}: bad pcap file header: {e}", path.display())))?;
    if r.header().datalink != DataLink::ETHERNET {
        return Err(bad(format!(
            "{}: link type {:?}, only Ethernet captures are supported",
            path.display(),
            r.header().datalink
        )));
    }
    Ok(r)
}

impl PcapPort {
    /// Open `input` (and create `output`); `looped` preloads the capture and replays it forever.
    pub fn open(
        input: &Path,
        output: Option<&Path>,
        looped: bool,
        pool: BufPool,
    ) -> Result<PcapPort, DriverError> {
        let name = format!("pcap:{}", input.display());
        let mut reader = open_reader(input, &name)?;
        let source = if looped {
            let mut frames = Vec::new();
            while let Some(p) = reader.next_packet() {
                let p = p.map_err(|e| DriverError::Port {
                    port: name.clone(),
                    reason: format!("reading capture: {e}"),
                })?;
                if frames.len() == MAX_LOOP_FRAMES {
                    break;
                }
                frames.push(p.data.to_vec().into_boxed_slice());
            }
            if frames.is_empty() {
                return Err(DriverError::Port {
                    port: name,
                    reason: "the capture is empty; nothing to loop".into(),
                });
            }
            Source::Loop { frames, next: 0 }
        } else {
            Source::File(reader)
        };
        let writer = match output {
            None => None,
            Some(o) => {
                let f = File::create(o).map_err(|source| DriverError::Os {
                    port: name.clone(),
                    op: "create output capture",
                    source,
                })?;
                let header = PcapHeader {
                    snaplen: 65535 + 256,
                    datalink: DataLink::ETHERNET,
                    ..PcapHeader::default()
                };
                let file = OutFile(Arc::new(Mutex::new(BufWriter::new(f))));
                let pcap = PcapWriter::with_header(file.clone(), header).map_err(|e| {
                    DriverError::Port {
                        port: name.clone(),
                        reason: format!("writing capture header: {e}"),
                    }
                })?;
                Some(Writer { pcap, file })
            }
        };
        Ok(PcapPort {
            name,
            pool,
            source: Some(source),
            writer: Arc::new(Mutex::new(writer)),
            counters: Arc::default(),
            pps: None,
        })
    }

    /// Read at most `pps` frames per second (`None`: as fast as the workers take them).
    pub fn paced(mut self, pps: Option<u64>) -> Self {
        self.pps = pps;
        self
    }

    /// Flush the output capture (also done when the last queue is dropped).
    pub fn flush(&self) -> std::io::Result<()> {
        flush_output(&self.writer)
    }
}

/// Flush the output file, if any. The file handle is cloned out so that the lock is not
/// held during the write-out.
fn flush_output(writer: &Mutex<Option<Writer>>) -> std::io::Result<()> {
    let file = writer
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|w| w.file.clone());
    match file {
        Some(mut f) => f.flush(),
        None => Ok(()),
    }
}

/// RX queue of a [`PcapPort`] (queue 0 reads the capture; others are idle).
pub struct PcapRx {
    source: Source,
    pool: BufPool,
    counters: Arc<Counters>,
    port: String,
    pacer: Option<Pacer>,
}

impl RxQueue for PcapRx {
    type Buf = PoolBuf;
    /// A non-looped capture read to its end.
    fn is_exhausted(&self) -> bool {
        matches!(self.source, Source::Done)
    }
    fn rx_burst(&mut self, out: &mut Burst<PoolBuf>) -> usize {
        let mut n = 0;
        let allowed = match &mut self.pacer {
            Some(p) => p.take(out.room()),
            None => out.room(),
        };
        while out.room() > 0 && n < allowed {
            let buf = match &mut self.source {
                Source::Done => break,
                Source::Loop { frames, next } => {
                    let f = &frames[*next];
                    *next = (*next + 1) % frames.len();
                    self.pool.get_with(f)
                }
                Source::File(r) => match r.next_packet() {
                    Some(Ok(p)) => self.pool.get_with(&p.data),
                    Some(Err(e)) => {
                        tracing::warn!(port = %self.port, "capture read error, stopping this port: {e}");
                        self.source = Source::Done;
                        break;
                    }
                    None => {
                        self.source = Source::Done;
                        break;
                    }
                },
            };
            match buf {
                Some(b) => {
                    self.counters
                        .rx_bytes
                        .fetch_add(b.data().len() as u64, Ordering::Relaxed);
                    let _ = out.push(b);
                    n += 1;
                }
                None => {
                    // Pool empty or frame larger than a buffer: counted, never blocks.
                    self.counters.rx_dropped.fetch_add(1, Ordering::Relaxed);
                    if matches!(self.source, Source::Loop { .. }) {
                        break;
                    }
                }
            }
        }
        self.counters
            .rx_packets
            .fetch_add(n as u64, Ordering::Relaxed);
        n
    }
}

/// TX queue of a [`PcapPort`]: appends to the output capture (one lock per burst).
pub struct PcapTx {
    writer: Arc<Mutex<Option<Writer>>>,
    counters: Arc<Counters>,
    start: std::time::Instant,
}

impl TxQueue for PcapTx {
    type Buf = PoolBuf;
    fn tx_burst(&mut self, pkts: &mut Burst<PoolBuf>) -> usize {
        let n = pkts.len();
        let mut bytes = 0;
        let ts = self.start.elapsed();
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for b in pkts.drain() {
            let d = b.data();
            bytes += d.len() as u64;
            if let Some(w) = guard.as_mut() {
                if w.pcap
                    .write_packet(&PcapPacket::new(ts, d.len() as u32, d))
                    .is_err()
                {
                    self.counters.tx_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.counters
            .tx_packets
            .fetch_add(n as u64, Ordering::Relaxed);
        self.counters.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
        n
    }
    fn flush(&mut self) {
        let _ = flush_output(&self.writer);
    }
}

impl Drop for PcapTx {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Port for PcapPort {
    type Buf = PoolBuf;
    type Rx = PcapRx;
    type Tx = PcapTx;
    fn name(&self) -> &str {
        &self.name
    }
    fn mac(&self) -> Option<MacAddr> {
        None
    }
    fn take_queues(&mut self, n: usize) -> Result<Vec<(PcapRx, PcapTx)>, DriverError> {
        let Some(first) = self.source.take() else {
            return Err(DriverError::Port {
                port: self.name.clone(),
                reason: "queues already taken".into(),
            });
        };
        let mut sources = vec![first];
        sources.extend((1..n).map(|_| Source::Done));
        Ok(sources
            .into_iter()
            .map(|source| {
                (
                    PcapRx {
                        source,
                        pool: self.pool.clone(),
                        counters: self.counters.clone(),
                        port: self.name.clone(),
                        pacer: self.pps.map(Pacer::new),
                    },
                    self.tx(),
                )
            })
            .collect())
    }
    fn take_exception_tx(&mut self) -> Result<Option<PcapTx>, DriverError> {
        Ok(Some(self.tx()))
    }
    fn alloc(&self, frame: &[u8]) -> Option<PoolBuf> {
        self.pool.get_with(frame)
    }
    fn stats(&self) -> PortStats {
        self.counters.read()
    }
}

impl PcapPort {
    fn tx(&self) -> PcapTx {
        PcapTx {
            writer: self.writer.clone(),
            counters: self.counters.clone(),
            start: std::time::Instant::now(),
        }
    }
}

#[cfg(test)]
mod pacer_tests {
    use super::Pacer;

    #[test]
    fn pacer_gives_frames_at_its_rate_and_holds_at_most_its_cap() {
        let mut p = Pacer::new(1000);
        assert_eq!(p.take(64), 0, "nothing before any time passed");
        std::thread::sleep(std::time::Duration::from_millis(60));
        // 60 ms at 1000/s is 60 frames, but the bucket holds one burst (32) at this rate.
        assert_eq!(p.take(1000), 32);
        assert_eq!(p.take(1000), 0);
        std::thread::sleep(std::time::Duration::from_millis(10));
        let n = p.take(4);
        assert!(n <= 4, "never more than asked: {n}");
    }
}
