//! What XDP program an interface has (`RTM_GETLINK`, `IFLA_XDP`), and taking one off
//! (`RTM_SETLINK` with `IFLA_XDP_FD = -1`): the stale program a killed director left
//! behind through netlink (a program attached with a BPF link, as ours is, goes with the
//! process that held the link).

use std::io;
use std::time::Duration;

use crate::sys::netlink::{messages, NetlinkSocket};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const NLA_F_NESTED: u16 = 1 << 15;
/// `XDP_FLAGS_SKB_MODE`, `XDP_FLAGS_DRV_MODE`.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The XDP programs attached to an interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attached {
    /// Native (driver) mode program id.
    pub drv: Option<u32>,
    /// Generic (skb) mode program id.
    pub skb: Option<u32>,
    /// Offloaded (hardware) program id.
    pub hw: Option<u32>,
}

impl Attached {
    pub fn any(&self) -> impl Iterator<Item = (u32, u32)> {
        [
            self.drv.map(|id| (id, XDP_FLAGS_DRV_MODE)),
            self.skb.map(|id| (id, XDP_FLAGS_SKB_MODE)),
            self.hw.map(|id| (id, 1 << 3)),
        ]
        .into_iter()
        .flatten()
    }
}

fn header(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
}

fn ifinfomsg(buf: &mut Vec<u8>, ifindex: u32) {
    buf.extend_from_slice(&[0, 0, 0, 0]); // family AF_UNSPEC, pad, type
    buf.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // flags
    buf.extend_from_slice(&0u32.to_ne_bytes()); // change
}

fn attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    buf.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn finish(buf: &mut [u8]) {
    let len = (buf.len() as u32).to_ne_bytes();
    buf[..4].copy_from_slice(&len);
}

/// Walk netlink attributes `b`, calling `f(kind without flags, value)`.
fn attrs(mut b: &[u8], mut f: impl FnMut(u16, &[u8])) {
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & !NLA_F_NESTED & !(1 << 14);
        if len < 4 || len > b.len() {
            return;
        }
        f(kind, &b[4..len]);
        b = &b[((len + 3) & !3).min(b.len())..];
    }
}

fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

fn socket() -> io::Result<NetlinkSocket> {
    let s = NetlinkSocket::open(libc::NETLINK_ROUTE)?;
    s.set_recv_timeout(Duration::from_secs(2))?;
    Ok(s)
}

/// The XDP programs on interface `ifindex`.
pub fn attached(ifindex: u32) -> io::Result<Attached> {
    let s = socket()?;
    let mut m = Vec::with_capacity(64);
    header(&mut m, RTM_GETLINK, NLM_F_REQUEST, 1);
    ifinfomsg(&mut m, ifindex);
    finish(&mut m);
    s.send_to_kernel(&m)?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.recv(&mut buf)?;
    let mut out = Attached::default();
    let mut err = None;
    for msg in messages(&buf[..n]) {
        let msg = msg.map_err(|e| io::Error::other(e.to_string()))?;
        match msg.kind {
            NLMSG_ERROR => {
                let code = msg
                    .body
                    .get(..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().unwrap_or([0; 4])));
                if let Some(c) = code.filter(|c| *c != 0) {
                    err = Some(io::Error::from_raw_os_error(-c));
                }
            }
            RTM_NEWLINK if msg.body.len() >= 16 => {
                attrs(&msg.body[16..], |k, v| {
                    if k != IFLA_XDP {
                        return;
                    }
                    let mut mode = 0u8;
                    let mut id = None;
                    attrs(v, |k, v| match k {
                        IFLA_XDP_ATTACHED => mode = v.first().copied().unwrap_or(0),
                        IFLA_XDP_PROG_ID => id = u32_of(v),
                        IFLA_XDP_DRV_PROG_ID => out.drv = u32_of(v),
                        IFLA_XDP_SKB_PROG_ID => out.skb = u32_of(v),
                        _ => {}
                    });
                    // XDP_ATTACHED_DRV 1, SKB 2, HW 3 (MULTI 4 lists the per-mode ids).
                    match mode {
                        1 => out.drv = id,
                        2 => out.skb = id,
                        3 => out.hw = id,
                        _ => {}
                    }
                });
            }
            _ => {}
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Take the XDP program attached in `mode_flags` (`XDP_FLAGS_*_MODE`) off `ifindex`.
pub fn detach(ifindex: u32, mode_flags: u32) -> io::Result<()> {
    let s = socket()?;
    let mut m = Vec::with_capacity(64);
    header(&mut m, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 2);
    ifinfomsg(&mut m, ifindex);
    let mut nested = Vec::with_capacity(16);
    attr(&mut nested, IFLA_XDP_FD, &(-1i32).to_ne_bytes());
    attr(&mut nested, IFLA_XDP_FLAGS, &mode_flags.to_ne_bytes());
    attr(&mut m, IFLA_XDP | NLA_F_NESTED, &nested);
    finish(&mut m);
    s.send_to_kernel(&m)?;
    let mut buf = vec![0u8; 8192];
    let n = s.recv(&mut buf)?;
    for msg in messages(&buf[..n]) {
        let msg = msg.map_err(|e| io::Error::other(e.to_string()))?;
        if msg.kind == NLMSG_ERROR {
            let code = msg
                .body
                .get(..4)
                .map(|b| i32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
                .unwrap_or(0);
            if code != 0 {
                return Err(io::Error::from_raw_os_error(-code));
            }
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_xdp_attributes_are_read_and_bad_lengths_stop_the_walk() {
        let mut inner = Vec::new();
        attr(&mut inner, IFLA_XDP_ATTACHED, &[1]);
        attr(&mut inner, IFLA_XDP_PROG_ID, &77u32.to_ne_bytes());
        let mut outer = Vec::new();
        attr(&mut outer, 3, b"eth0\0");
        attr(&mut outer, IFLA_XDP | NLA_F_NESTED, &inner);
        let mut seen = Vec::new();
        attrs(&outer, |k, v| {
            if k == IFLA_XDP {
                attrs(v, |k, v| seen.push((k, v.to_vec())));
            }
        });
        assert_eq!(
            seen,
            [
                (IFLA_XDP_ATTACHED, vec![1]),
                (IFLA_XDP_PROG_ID, 77u32.to_ne_bytes().to_vec())
            ]
        );
        // A length past the end, or shorter than a header: nothing more is read.
        let mut n = 0;
        attrs(&[200, 0, 1, 0, 9, 9], |_, _| n += 1);
        attrs(&[2, 0, 1, 0], |_, _| n += 1);
        assert_eq!(n, 0);
        assert_eq!(u32_of(&[1, 0]), None);
    }
}
