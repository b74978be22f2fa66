use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

use crate::datapath::{
    process_burst, CoreCounters, HeapBuf, PacketBuf, Snapshot, Verdict, BURST_MAX,
};
use crate::drivers::pcap::open_reader;
use crate::runtime::control::ConfigSource;
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

fn writer(path: &Path, snaplen: u32) -> Result<PcapWriter<BufWriter<File>>, String> {
    let f = File::create(path).map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
    let header = PcapHeader {
        snaplen,
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    PcapWriter::with_header(BufWriter::new(f), header)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Forward every frame of a capture through [`process_burst`]; returns the counters.
pub fn forward_capture(
    snap: &Snapshot,
    input: &Path,
    mut out: Option<&mut PcapWriter<BufWriter<File>>>,
    mut exc: Option<&mut PcapWriter<BufWriter<File>>>,
) -> Result<CoreCounters, String> {
    let inp = input.display().to_string();
    let mut reader = open_reader(input, &inp).map_err(|e| e.to_string())?;
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
                bufs[n].set_frame(&p.data);
                stamps[n] = p.timestamp;
                n += 1;
            }
            Some(Err(e)) => {
                return Err(format!(
                    "{inp}: after {} packets: {e}",
                    ctr.rx_packets + n as u64
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
    let snaplen = 65535 + 256;
    let mut out = a.out.as_deref().map(|p| writer(p, snaplen)).transpose()?;
    let mut exc = a
        .exceptions
        .as_deref()
        .map(|p| writer(p, snaplen))
        .transpose()?;
    let ctr = forward_capture(&snap, &a.input, out.as_mut(), exc.as_mut())?;
    for w in [out, exc].into_iter().flatten() {
        use std::io::Write;
        w.into_writer()
            .flush()
            .map_err(|e| format!("writing capture: {e}"))?;
    }
    print!("{}", format_counters(&ctr));
    Ok(())
}
