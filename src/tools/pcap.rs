use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;

use crate::datapath::{
    process_burst, CoreCounters, HeapBuf, PacketBuf, Snapshot, Verdict, BURST_MAX,
};
use crate::drivers::pcap::{open_reader, record_error, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use crate::drivers::DriverError;
use crate::runtime::control::ConfigSource;
use crate::sys::file::AtomicFile;
use crate::wire::ethernet::MacAddr;

use super::config_args::ConfigArgs;
use super::report::format_counters;

#[derive(clap::Args)]
pub struct PcapArgs {
    // As `rondo run` takes it (`--config FILE.toml`, or `--glb-config director.conf
    // --forwarding-table TABLE`); `--config director.conf --forwarding-table TABLE`, the form
    // `rondo pcap` took first, still works.
    #[command(flatten)]
    config: ConfigArgs,
    /// Capture to forward (pcap, Ethernet link type).
    #[arg(long = "in")]
    input: PathBuf,
    /// Where forwarded (encapsulated) frames go.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where frames for the kernel (exception path) go, unchanged.
    #[arg(long)]
    exceptions: Option<PathBuf>,
    /// Source MAC of encapsulated frames (the port's MAC on a live director).
    #[arg(long)]
    src_mac: Option<MacAddr>,
}

/// An output capture written under a temporary name; renamed over `path` only when the
/// whole run succeeded.
struct Output {
    file: AtomicFile,
    pcap: PcapWriter<BufWriter<File>>,
    path: PathBuf,
}

impl Output {
    fn commit(self) -> Result<(), String> {
        let f = self
            .pcap
            .into_writer()
            .into_inner()
            .map_err(|e| format!("{}: writing capture: {}", self.path.display(), e.error()))?;
        self.file.commit(f).map_err(|e| e.to_string())
    }
}

fn writer(path: &Path, snaplen: u32) -> Result<Output, String> {
    let (file, f) = AtomicFile::create(path).map_err(|e| e.to_string())?;
    let header = PcapHeader {
        snaplen,
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let pcap = PcapWriter::with_header(BufWriter::new(f), header)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Output {
        file,
        pcap,
        path: path.to_path_buf(),
    })
}

/// Forward every frame of a capture (opened with [`open_reader`]) through
/// [`process_burst`]; returns the counters.
fn forward_from(
    snap: &Snapshot,
    input: &Path,
    mut reader: PcapReader<BufReader<File>>,
    mut out: Option<&mut PcapWriter<BufWriter<File>>>,
    mut exc: Option<&mut PcapWriter<BufWriter<File>>>,
) -> Result<CoreCounters, String> {
    let file_len = std::fs::metadata(input).map_or(u64::MAX, |m| m.len());
    // Byte offset of the next record, for errors.
    let mut offset = FILE_HEADER_LEN;
    let mut ctr = CoreCounters::default();
    let mut bufs: Vec<HeapBuf> = (0..BURST_MAX)
        .map(|_| HeapBuf::new(HeapBuf::HEADROOM, 65536))
        .collect();
    let mut stamps = [std::time::Duration::ZERO; BURST_MAX];
    let mut verdicts = [Verdict::Forward; BURST_MAX];
    let mut n = 0;
    let mut done = false;
    while !done {
        match reader.next_packet() {
            Some(Ok(p)) => {
                offset += RECORD_HEADER_LEN + p.data.len() as u64;
                bufs[n].set_frame(&p.data);
                stamps[n] = p.timestamp;
                n += 1;
            }
            Some(Err(e)) => {
                return Err(record_error(
                    input,
                    ctr.rx_packets + n as u64,
                    offset,
                    file_len,
                    &e,
                ))
            }
            None => done = true,
        }
        if n == BURST_MAX || (done && n > 0) {
            process_burst(snap, &mut bufs[..n], &mut verdicts[..n], &mut ctr);
            for i in 0..n {
                let w = match verdicts[i] {
                    Verdict::Forward => out.as_deref_mut(),
                    Verdict::Exception(_) => exc.as_deref_mut(),
                    Verdict::Drop(_) => None,
                };
                if let Some(w) = w {
                    let data = bufs[i].data();
                    w.write_packet(&PcapPacket::new(stamps[i], data.len() as u32, data))
                        .map_err(|e| format!("writing capture: {e}"))?;
                }
            }
            n = 0;
        }
    }
    Ok(ctr)
}

/// `rondo pcap (--config C.toml | --glb-config D --forwarding-table T) --in IN.pcap
/// [--out OUT.pcap] [--exceptions EXC.pcap]`.
pub fn run(a: &PcapArgs) -> Result<(), String> {
    let source = match &a.config {
        // `--config director.conf --forwarding-table T`: what `rondo pcap` took before it
        // shared `rondo run`'s arguments (a TOML config here is refused by the loader).
        ConfigArgs {
            config: Some(director),
            forwarding_table: Some(table),
            ..
        } => ConfigSource::Glb {
            director: director.clone(),
            table: table.clone(),
        },
        args => args.source()?,
    };
    let cfg = source.load()?;
    let snap =
        Snapshot::compile(cfg, a.src_mac, 1).map_err(|e| format!("{}: {e}", source.describe()))?;
    // The input is checked before any output is created; outputs are temporary files
    // until the whole capture went through, so a failed run leaves existing files as they
    // were and no stubs.
    let reader = open_reader(&a.input, &a.input.display().to_string()).map_err(|e| match e {
        // The reason names the file already.
        DriverError::Port { reason, .. } => reason,
        e => e.to_string(),
    })?;
    let snaplen = 65535 + 256;
    let mut out = a.out.as_deref().map(|p| writer(p, snaplen)).transpose()?;
    let mut exc = a
        .exceptions
        .as_deref()
        .map(|p| writer(p, snaplen))
        .transpose()?;
    let ctr = forward_from(
        &snap,
        &a.input,
        reader,
        out.as_mut().map(|o| &mut o.pcap),
        exc.as_mut().map(|o| &mut o.pcap),
    )?;
    for w in [out, exc].into_iter().flatten() {
        w.commit()?;
    }
    print!("{}", format_counters(&ctr));
    Ok(())
}
