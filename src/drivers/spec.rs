//! Port specs: `mem:NAME`, `pcap:IN[,OUT][,loop][,pps=N]`, `af_packet:IFACE[,rx=v2|v3]`,
//! `af_xdp:IFACE[,queues=N][,mode=auto|zerocopy|copy][,busy_poll]`, `dpdk:DEVARGS`,
//! and, as a testing aid, `fault:PLAN/SPEC` (any of those with faults injected, see
//! [`super::fault`]).

use std::path::PathBuf;

use super::af_packet::RxRing;
use super::fault::FaultPlan;
use super::DriverError;

/// How AF_XDP sockets bind: zero-copy where the driver can, else copy (`auto`), or one
/// of the two insisted on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XdpMode {
    #[default]
    Auto,
    Zerocopy,
    Copy,
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XdpMode::Auto => "auto",
            XdpMode::Zerocopy => "zerocopy",
            XdpMode::Copy => "copy",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// In-process ring pair named NAME.
    Mem { name: String },
    /// Read frames from `input`, write sent frames to `output` (discard if none); `looped`
    /// replays the capture forever (benchmarks); `pps` paces reading to that many frames
    /// per second (tests that need steady traffic without a busy core).
    Pcap {
        input: PathBuf,
        output: Option<PathBuf>,
        looped: bool,
        pps: Option<u64>,
    },
    /// A Linux interface through AF_PACKET; `rx`: the receive ring kind (`rx=v2`, low
    /// latency, or `rx=v3`, blocks), `None` for the driver's default
    /// ([`RxRing::default`]).
    AfPacket { iface: String, rx: Option<RxRing> },
    /// A Linux interface through AF_XDP sockets (cargo feature `af_xdp`); parsed in every
    /// build so a build without the feature can say so.
    AfXdp {
        iface: String,
        queues: Option<u32>,
        mode: XdpMode,
        /// Preferred busy polling (`SO_PREFER_BUSY_POLL`): the worker drives the NIC's
        /// NAPI from its poll loop instead of waiting for interrupts.
        busy_poll: bool,
    },
    /// A DPDK port (PCI address or vdev devargs).
    Dpdk { devargs: String },
    /// Another port with faults injected (a testing aid): `fault:PLAN/SPEC`.
    Fault {
        plan: FaultPlan,
        inner: Box<PortSpec>,
    },
}

impl std::fmt::Display for PortSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortSpec::Mem { name } => write!(f, "mem:{name}"),
            PortSpec::Pcap {
                input,
                output,
                looped,
                pps,
            } => {
                write!(f, "pcap:{}", input.display())?;
                if let Some(o) = output {
                    write!(f, ",{}", o.display())?;
                }
                if *looped {
                    write!(f, ",loop")?;
                }
                if let Some(n) = pps {
                    write!(f, ",pps={n}")?;
                }
                Ok(())
            }
            PortSpec::AfPacket { iface, rx } => {
                write!(f, "af_packet:{iface}")?;
                if let Some(r) = rx {
                    write!(f, ",rx={r}")?;
                }
                Ok(())
            }
            PortSpec::AfXdp {
                iface,
                queues,
                mode,
                busy_poll,
            } => {
                write!(f, "af_xdp:{iface}")?;
                if let Some(q) = queues {
                    write!(f, ",queues={q}")?;
                }
                if *mode != XdpMode::Auto {
                    write!(f, ",mode={mode}")?;
                }
                if *busy_poll {
                    write!(f, ",busy_poll")?;
                }
                Ok(())
            }
            PortSpec::Dpdk { devargs } => write!(f, "dpdk:{devargs}"),
            PortSpec::Fault { plan, inner } => write!(f, "fault:{plan}/{inner}"),
        }
    }
}

impl std::str::FromStr for PortSpec {
    type Err = DriverError;
    fn from_str(s: &str) -> Result<Self, DriverError> {
        let err = |reason: &str| DriverError::Spec {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| err("expected DRIVER:ARGS, e.g. mem:a, pcap:in.pcap,out.pcap, af_packet:eth0, dpdk:0000:3b:00.0"))?;
        match kind {
            "mem" if !rest.is_empty() => Ok(PortSpec::Mem {
                name: rest.to_string(),
            }),
            "mem" => Err(err("mem needs a name: mem:NAME")),
            "pcap" => {
                let mut parts = rest.split(',');
                let input = parts
                    .next()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| err("pcap needs an input file: pcap:IN[,OUT][,loop][,pps=N]"))?;
                let mut output = None;
                let mut looped = false;
                let mut pps = None;
                for p in parts {
                    match p {
                        "loop" => looped = true,
                        "" => return Err(err("empty field")),
                        p if p.starts_with("pps=") => match p["pps=".len()..].parse::<u64>() {
                            Ok(n @ 1..=100_000_000) if pps.is_none() => pps = Some(n),
                            _ => {
                                return Err(err("pps=N: N frames per second, 1..=100000000, once"))
                            }
                        },
                        p if output.is_none() => output = Some(PathBuf::from(p)),
                        _ => return Err(err("pcap takes IN[,OUT][,loop][,pps=N]")),
                    }
                }
                Ok(PortSpec::Pcap {
                    input: PathBuf::from(input),
                    output,
                    looped,
                    pps,
                })
            }
            "af_packet" => {
                let usage = "af_packet:IFACE[,rx=v2|v3]";
                let mut parts = rest.split(',');
                let iface = parts.next().unwrap_or("");
                if iface.is_empty() || iface.len() > 15 || iface.contains(['/', ' ']) {
                    return Err(err(&format!(
                        "af_packet needs an interface name (at most 15 characters): {usage}, e.g. af_packet:eth0"
                    )));
                }
                let mut rx = None;
                for p in parts {
                    match p.split_once('=') {
                        Some(("rx", r)) if rx.is_none() => {
                            rx = Some(r.parse::<RxRing>().map_err(|e| {
                                err(&format!(
                                    "{e} (v2: a frame is read as soon as it arrives, the \
                                     default; v3: blocks, handed over full or after 1 ms)"
                                ))
                            })?)
                        }
                        _ => return Err(err(&format!("unknown or repeated setting {p:?}: {usage}"))),
                    }
                }
                Ok(PortSpec::AfPacket {
                    iface: iface.to_string(),
                    rx,
                })
            }
            "dpdk" if !rest.is_empty() => Ok(PortSpec::Dpdk {
                devargs: rest.to_string(),
            }),
            "dpdk" => Err(err("dpdk needs a PCI address or vdev devargs")),
            "fault" => {
                let (plan, inner) = rest.split_once('/').ok_or_else(|| {
                    err("fault needs a plan and a port: fault:PLAN/SPEC, e.g. fault:tx-refuse@ms=1000..2000/af_packet:eth0")
                })?;
                let plan: FaultPlan = plan.parse().map_err(|e: String| err(&e))?;
                let inner: PortSpec = inner
                    .parse()
                    .map_err(|e: DriverError| err(&format!("the wrapped port: {e}")))?;
                if matches!(inner, PortSpec::Fault { .. }) {
                    return Err(err(
                        "one fault: wrapper is enough: put every fault in its plan",
                    ));
                }
                Ok(PortSpec::Fault {
                    plan,
                    inner: Box::new(inner),
                })
            }
            "af_xdp" => {
                let usage = "af_xdp:IFACE[,queues=N][,mode=auto|zerocopy|copy][,busy_poll]";
                let mut parts = rest.split(',');
                let iface = parts.next().unwrap_or("");
                if iface.is_empty() || iface.len() > 15 || iface.contains(['/', ' ']) {
                    return Err(err(&format!(
                        "af_xdp needs an interface name (at most 15 characters): {usage}"
                    )));
                }
                let (mut queues, mut mode, mut busy_poll) = (None, None, false);
                for p in parts {
                    if p == "busy_poll" && !busy_poll {
                        busy_poll = true;
                        continue;
                    }
                    match p.split_once('=') {
                        Some(("queues", n)) if queues.is_none() => match n.parse::<u32>() {
                            Ok(n @ 1..=256) => queues = Some(n),
                            _ => return Err(err("queues=N: N RX queues, 1..=256")),
                        },
                        Some(("mode", m)) if mode.is_none() => {
                            mode = Some(match m {
                                "auto" => XdpMode::Auto,
                                "zerocopy" => XdpMode::Zerocopy,
                                "copy" => XdpMode::Copy,
                                _ => return Err(err("mode= takes auto, zerocopy or copy")),
                            })
                        }
                        _ => return Err(err(&format!("unknown or repeated setting {p:?}: {usage}"))),
                    }
                }
                Ok(PortSpec::AfXdp {
                    iface: iface.to_string(),
                    queues,
                    mode: mode.unwrap_or_default(),
                    busy_poll,
                })
            }
            _ => Err(err(
                "unknown driver; expected mem, pcap, af_packet, af_xdp or dpdk (or fault:PLAN/SPEC)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for s in [
            "mem:a",
            "pcap:in.pcap",
            "pcap:in.pcap,out.pcap",
            "pcap:in.pcap,loop",
            "pcap:a,b,loop",
            "pcap:a,b,loop,pps=1000",
            "pcap:a,pps=5",
            "af_packet:eth0",
            "af_packet:eth0,rx=v2",
            "af_packet:eth0,rx=v3",
            "fault:seed=2,rx-drop@rate=5/af_packet:eth0,rx=v3",
            "af_xdp:eth0",
            "af_xdp:eth0,queues=2",
            "af_xdp:eth0,queues=4,mode=copy",
            "af_xdp:eth0,mode=zerocopy",
            "af_xdp:eth0,queues=2,mode=copy,busy_poll",
            "dpdk:0000:3b:00.0",
            "dpdk:net_pcap0,rx_pcap=a.pcap",
            "fault:seed=1,tx-refuse@ms=1000..3000/af_packet:eth0",
            "fault:seed=3,no-exception-tx,rx-drop@rate=5/pcap:/tmp/a b/in.pcap,/tmp/out.pcap",
        ] {
            let p: PortSpec = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        for bad in [
            "",
            "mem",
            "mem:",
            "pcap:",
            "pcap:a,b,c",
            "pcap:a,pps=0",
            "pcap:a,pps=x",
            "pcap:a,pps=1,pps=2",
            "af_packet:",
            "af_packet:averyveryverylongname",
            "af_packet:,rx=v2",
            "af_packet:eth0,",
            "af_packet:eth0,rx=v4",
            "af_packet:eth0,rx=",
            "af_packet:eth0,rx=v2,rx=v3",
            "af_packet:eth0,bogus",
            "bogus:x",
            "af_xdp:",
            "af_xdp:eth0,queues=0",
            "af_xdp:eth0,queues=x",
            "af_xdp:eth0,mode=fast",
            "af_xdp:eth0,mode=copy,mode=copy",
            "af_xdp:eth0,bogus",
            "af_xdp:eth0,busy_poll,busy_poll",
            "af_xdp:eth0,busy_poll=1",
            "fault:tx-refuse",
            "fault:bogus/mem:a",
            "fault:tx-fail/mem:",
            "fault:tx-fail/fault:rx-drop/mem:a",
        ] {
            let e = bad.parse::<PortSpec>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        let p: PortSpec = "af_packet:eth0,rx=v3".parse().unwrap();
        assert_eq!(
            p,
            PortSpec::AfPacket {
                iface: "eth0".into(),
                rx: Some(RxRing::V3)
            }
        );
        let e = "af_packet:eth0,rx=v4".parse::<PortSpec>().unwrap_err();
        assert!(e.to_string().contains("expected v2 or v3"), "{e}");
    }
}
