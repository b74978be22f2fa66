//! A `rondo run` process for tests: a paced, looped capture of client traffic as its port,
//! its console socket and metrics endpoint in a temporary folder, and a console client
//! written here from the protocol description (not Rondo's own client).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{eth, syn_v4};

/// Every wait in these tests ends by this deadline.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Frames of `clients` TCP SYNs to 1.1.1.1:80 from distinct addresses, with an ARP frame
/// (not IP: exception) every 50th and a 10-byte runt (dropped: truncated_l2) every 97th.
pub fn traffic(clients: u32) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for i in 0..clients {
        if i % 50 == 49 {
            let mut arp = eth(0x0806);
            arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            arp.resize(60, 0);
            frames.push(arp);
        } else if i % 97 == 96 {
            frames.push(vec![0xab; 10]);
        } else {
            let src = (0x0a00_0000u32 + i * 7919).to_be_bytes();
            frames.push(syn_v4(src, [1, 1, 1, 1], 1024 + (i % 50000) as u16, 80));
        }
    }
    frames
}

pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = pcap_file::pcap::PcapWriter::new(f).unwrap();
    for fr in frames {
        w.write_packet(&pcap_file::pcap::PcapPacket::new(
            Duration::ZERO,
            fr.len() as u32,
            fr,
        ))
        .unwrap();
    }
}

/// Frames in a capture file (possibly still being written: a cut last record is ignored).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let big_endian = match bytes.get(..4) {
        Some([0xa1, 0xb2, 0xc3, 0xd4]) => true,
        Some([0xd4, 0xc3, 0xb2, 0xa1]) => false,
        other => panic!("{}: not a pcap file: {other:?}", path.display()),
    };
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let field: [u8; 4] = bytes[off + 8..off + 12].try_into().unwrap();
        let incl = if big_endian {
            u32::from_be_bytes(field)
        } else {
            u32::from_le_bytes(field)
        } as usize;
        if off + 16 + incl > bytes.len() {
            break;
        }
        out.push(bytes[off + 16..off + 16 + incl].to_vec());
        off += 16 + incl;
    }
    out
}

/// A director config around `port`, with `console` in its `[console]` section and `extra`
/// TOML appended.
pub fn config(port: &str, socket: &Path, console: &str, extra: &str) -> String {
    format!(
        r#"[[ports]]
spec = "{port}"

[runtime]
workers = 1
idle = "sleep"

[console]
socket = "{}"
{console}

[director]
outbound_gateway_mac = "02:00:00:00:00:fe"
outbound_src_ip = "192.0.2.10"

[[tables]]
name = "web"
hash_key = "12345678901234561234567890123456"
seed = "34567890123456783456789012345678"
binds = [{{ ip = "1.1.1.1", proto = "tcp", port = 80 }}]
backends = [{{ ip = "10.1.0.1" }}, {{ ip = "10.1.0.2" }}, {{ ip = "10.1.0.3" }}]
{extra}"#,
        socket.display()
    )
}

pub struct Director {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub frames: Vec<Vec<u8>>,
}

impl Drop for Director {
    fn drop(&mut self) {
        // Only the child this test started, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Director {
    /// Start `rondo run` on a capture of `clients` clients replayed at `pps` frames per
    /// second (`output`: also write what it sends to `out.pcap`), with `extra` config and
    /// `args` (`extra` may start with lines for the `[console]` section). Returns once the
    /// console answers.
    pub fn start(clients: u32, pps: u32, output: bool, extra: &str, args: &[&str]) -> Director {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.pcap");
        let frames = traffic(clients);
        write_pcap(&input, &frames);
        let socket = dir.path().join("rondo.sock");
        let port = if output {
            format!(
                "pcap:{},{},loop,pps={pps}",
                input.display(),
                dir.path().join("out.pcap").display()
            )
        } else {
            format!("pcap:{},loop,pps={pps}", input.display())
        };
        let cfg = dir.path().join("director.toml");
        let (console, rest) = match extra.split_once("\n[") {
            Some((head, tail)) if !head.starts_with('[') => (head, format!("[{tail}")),
            _ => ("", extra.to_string()),
        };
        std::fs::write(&cfg, config(&port, &socket, console, &rest)).unwrap();
        let log = dir.path().join("log");
        let child = Command::new(env!("CARGO_BIN_EXE_rondo"))
            .args(["run", "--stats-interval", "0", "--config"])
            .arg(&cfg)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut d = Director {
            child,
            dir,
            socket,
            config: cfg,
            log,
            frames,
        };
        let end = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("rondo run exited ({st}): {}", d.log_text());
            }
            if UnixStream::connect(&d.socket).is_ok() {
                break;
            }
            assert!(Instant::now() < end, "no console socket: {}", d.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn session(&self) -> Session {
        Session::open(&self.socket)
    }

    /// Run one command in a new session: (succeeded, reply text).
    pub fn cmd(&self, line: &str) -> (bool, String) {
        self.session().cmd(line)
    }

    /// Run a command that must succeed; its reply.
    pub fn ok(&self, line: &str) -> String {
        let (ok, text) = self.cmd(line);
        assert!(ok, "{line:?} failed: {text}");
        text
    }

    /// Run a command that must fail; its reply.
    pub fn fails(&self, line: &str) -> String {
        let (ok, text) = self.cmd(line);
        assert!(!ok, "{line:?} should fail: {text}");
        text
    }

    /// Packets forwarded so far (from `show fwd stats`, all workers, since start).
    pub fn forwarded(&self) -> u64 {
        let t = self.ok("show fwd stats");
        let all = t
            .split("Accumulated forward statistics")
            .nth(1)
            .unwrap_or_else(|| panic!("{t}"));
        number_after(all, "Forwarded:")
    }

    /// The metrics endpoint's address, once `show config` names it (the console comes up
    /// before the endpoint does).
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        let mut cfg = String::new();
        self.wait_for("the metrics endpoint in show config", || {
            cfg = self.ok("show config");
            cfg.contains("http://")
        });
        cfg.split("http://")
            .nth(1)
            .and_then(|r| r.split("/metrics").next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{cfg}"))
    }

    /// Wait until `f` holds (bounded by [`DEADLINE`]).
    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + DEADLINE;
        while !f() {
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The first number after `label` in `text`.
pub fn number_after(text: &str, label: &str) -> u64 {
    text.split(label)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| {
            n.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no number after {label:?} in:\n{text}"))
}

/// One console session.
pub struct Session {
    pub reader: BufReader<UnixStream>,
    pub writer: UnixStream,
}

impl Session {
    pub fn open(socket: &Path) -> Session {
        let s = UnixStream::connect(socket).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.set_write_timeout(Some(DEADLINE)).unwrap();
        let writer = s.try_clone().unwrap();
        Session {
            reader: BufReader::new(s),
            writer,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Read one reply: lines until `.ok` or `.error`, a leading `.` removed from the others.
    /// `None` when the connection closed first.
    pub fn reply(&mut self) -> Option<(bool, String)> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            let l = line.trim_end_matches('\n');
            match l {
                ".ok" => return Some((true, text)),
                ".error" => return Some((false, text)),
                _ => {
                    text.push_str(l.strip_prefix('.').unwrap_or(l));
                    text.push('\n');
                }
            }
        }
    }

    pub fn cmd(&mut self, line: &str) -> (bool, String) {
        self.send_raw(format!("{line}\n").as_bytes());
        self.reply()
            .unwrap_or_else(|| panic!("connection closed before the reply to {line:?}"))
    }
}
