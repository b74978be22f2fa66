//! Replaying a capture: its frames are sent as they are (destination MAC optionally
//! rewritten), and each is classified here, independently of the data path, so that the
//! verifier knows which backends its copy must reach (GLB's bind matching and
//! row pick), or that the director
//! must not forward it.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::flows::{GeneratedFlow, Kind, MAX_FRAME};
use super::verify::fnv;
use super::PktgenError;
use crate::drivers::pcap::open_reader;

/// Most distinct frames kept from a capture.
pub const MAX_REPLAY_FRAMES: usize = 1 << 20;

/// What the director hashes a frame by; `None` when it does not forward such frames.
struct Classified {
    kind: Kind,
    client: IpAddr,
    vip: IpAddr,
    client_port: u16,
    vip_port: u16,
    hint: u16,
    ip_len: usize,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn addr(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

/// IP length, what to hash by. Frames this does not understand are not expected back.
fn classify(f: &[u8]) -> Option<Classified> {
    let ip = f.get(14..)?;
    let (v4, hl, proto, ip_len, src, dst) = match be16(f, 12)? {
        0x0800 => {
            let hl = usize::from(ip.first()? & 0x0f) * 4;
            let frag = be16(ip, 6)?;
            if ip[0] >> 4 != 4 || hl < 20 || frag & 0x3fff != 0 {
                return None;
            }
            let len = usize::from(be16(ip, 2)?);
            (true, hl, *ip.get(9)?, len, ip.get(12..16)?, ip.get(16..20)?)
        }
        0x86dd => {
            let len = 40 + usize::from(be16(ip, 4)?);
            (false, 40, *ip.get(6)?, len, ip.get(8..24)?, ip.get(24..40)?)
        }
        _ => return None,
    };
    if ip_len > ip.len() || ip_len < hl {
        return None;
    }
    let l4 = ip.get(hl..ip_len)?;
    let (client, vip) = (addr(src)?, addr(dst)?);
    let ports = |kind| {
        Some(Classified {
            kind,
            client,
            vip,
            client_port: be16(l4, 0)?,
            vip_port: be16(l4, 2)?,
            hint: be16(l4, 0)?,
            ip_len,
        })
    };
    match (proto, *l4.first()?) {
        (6, _) if l4.len() >= 20 => ports(Kind::Ack),
        (17, _) if l4.len() >= 8 => ports(Kind::Udp),
        (1, 8) if v4 => Some(Classified {
            kind: Kind::Echo,
            client,
            vip,
            client_port: 0,
            vip_port: 0,
            hint: be16(ip, 4)?,
            ip_len,
        }),
        (58, 128) if !v4 => Some(Classified {
            kind: Kind::Echo,
            client,
            vip,
            client_port: 0,
            vip_port: 0,
            // GLB's quirk: the flow label's low 16 bits, byte-swapped.
            hint: be16(ip, 2)?.swap_bytes(),
            ip_len,
        }),
        (1, 3) | (58, 2) if (proto == 1) == v4 => {
            if proto == 1 && l4.get(1) != Some(&4) {
                return None;
            }
            // The quoted packet went VIP -> client: hash it reversed.
            let q = l4.get(8..)?;
            let (qhl, qproto, qsrc, qdst) = if v4 {
                let qhl = usize::from(q.first()? & 0x0f) * 4;
                (qhl, *q.get(9)?, q.get(12..16)?, q.get(16..20)?)
            } else {
                (40, *q.get(6)?, q.get(8..24)?, q.get(24..40)?)
            };
            let ql4 = q.get(qhl..)?;
            if qproto != 6 || addr(qsrc)? != vip {
                return None;
            }
            Some(Classified {
                kind: Kind::FragNeeded,
                client: addr(qdst)?,
                vip,
                client_port: be16(ql4, 2)?,
                vip_port: be16(ql4, 0)?,
                hint: be16(ql4, 2)?,
                ip_len,
            })
        }
        _ => None,
    }
}

/// The distinct frames of `path` as flows to replay, destination MAC set to `dst_mac` when
/// given. Frames pktgen cannot classify are still sent; the verifier expects none of them
/// back.
pub fn load(path: &Path, dst_mac: Option<[u8; 6]>) -> Result<Vec<GeneratedFlow>, PktgenError> {
    let mut r = open_reader(path, &format!("replay {}", path.display()))?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.map_err(|e| PktgenError::Setup(format!("{}: {e}", path.display())))?;
        let mut frame = p.data.to_vec();
        if frame.len() < 14 || frame.len() > MAX_FRAME {
            continue;
        }
        if let Some(m) = dst_mac {
            frame[0..6].copy_from_slice(&m);
        }
        let c = classify(&frame);
        if let Some(c) = &c {
            // Ethernet padding is not part of what the director encapsulates.
            frame.truncate(14 + c.ip_len);
        }
        if !seen.insert(fnv(&frame[14..])) {
            continue;
        }
        let id = out.len() as u32;
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        out.push(GeneratedFlow {
            id,
            kind: c.as_ref().map_or(Kind::Udp, |c| c.kind),
            client: c.as_ref().map_or(unspecified, |c| c.client),
            client_port: c.as_ref().map_or(0, |c| c.client_port),
            vip: c.as_ref().map_or(unspecified, |c| c.vip),
            vip_port: c.as_ref().map_or(0, |c| c.vip_port),
            ip_id: 0,
            frame: frame.into_boxed_slice(),
            trailer_at: 0,
            csum_at: 0,
            base_sum: 0,
            hint: c.as_ref().map_or(0, |c| c.hint),
            replay: true,
        });
        if out.len() == MAX_REPLAY_FRAMES {
            tracing::warn!(
                "{}: replaying the first {MAX_REPLAY_FRAMES} distinct frames",
                path.display()
            );
            break;
        }
    }
    if out.is_empty() {
        return Err(PktgenError::Usage(format!(
            "{}: no Ethernet frame to replay",
            path.display()
        )));
    }
    Ok(out)
}
