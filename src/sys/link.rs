//! Link-state notifications from the kernel: a non-blocking `NETLINK_ROUTE` socket
//! subscribed to `RTNLGRP_LINK`, and a total parser of the `RTM_NEWLINK` / `RTM_DELLINK`
//! messages it receives (every byte is either parsed or the datagram is rejected with a
//! reason; nothing is read past a length the kernel gave).
//!
//! Read from the control side only (the director's main loop), never from a worker.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};

use super::socket::{cvt, new_socket, setsockopt};

/// `RTMGRP_LINK`: the multicast group bit of `RTNLGRP_LINK` (group 1).
const RTMGRP_LINK: u32 = 1;
const IFINFOMSG_LEN: usize = 16;
const RTA_HDRLEN: usize = 4;
const IFLA_IFNAME: u16 = 3;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_CARRIER: u16 = 33;
/// Bytes of receive buffer: a link message is a few KiB at most (the kernel sizes them by
/// `if_nlmsg_size`); larger datagrams are reported as truncated.
const RECV_BUF: usize = 64 * 1024;

/// What the kernel said about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// `RTM_DELLINK`: the interface is gone (deleted, or moved to another namespace).
    pub deleted: bool,
    pub ifindex: u32,
    /// `IFF_*` flags (`ifi_flags`).
    pub flags: u32,
    /// `IFLA_IFNAME`, when present.
    pub name: Option<String>,
    /// `IFLA_OPERSTATE` (RFC 2863: 6 is up, 2 down, 7 dormant), when present.
    pub operstate: Option<u8>,
    /// `IFLA_CARRIER`, when present.
    pub carrier: Option<bool>,
}

impl LinkEvent {
    /// Administratively up and operationally running (`IFF_UP` and `IFF_RUNNING`, which
    /// the kernel sets from the carrier and the operational state).
    pub fn is_up(&self) -> bool {
        let up = libc::IFF_UP as u32 | libc::IFF_RUNNING as u32;
        !self.deleted && self.flags & up == up
    }
}

/// A datagram that is not a well-formed sequence of netlink messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkParseError {
    #[error("netlink message at byte {at}: {what}")]
    Malformed { at: usize, what: &'static str },
}

/// One item of a datagram: a link event, or a message of another kind (skipped whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkMsg {
    Link(LinkEvent),
    /// `NLMSG_OVERRUN`, or an error message: events may have been lost.
    Overrun,
    Other(u16),
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parse one datagram of netlink messages. Every message is accounted for: a link message
/// is parsed to its end, any other type is skipped by its length, and a length that does
/// not fit rejects the whole datagram (no event of it is used).
pub fn parse_datagram(b: &[u8]) -> Result<Vec<LinkMsg>, LinkParseError> {
    let mut out = Vec::new();
    for m in super::netlink::messages(b) {
        let m = m.map_err(|e| LinkParseError::Malformed {
            at: e.at,
            what: e.what,
        })?;
        out.push(match m.kind {
            libc::RTM_NEWLINK | libc::RTM_DELLINK => LinkMsg::Link(
                parse_link(m.body, m.kind == libc::RTM_DELLINK)
                    .map_err(|what| LinkParseError::Malformed { at: m.at, what })?,
            ),
            k if k == libc::NLMSG_OVERRUN as u16 || k == libc::NLMSG_ERROR as u16 => {
                LinkMsg::Overrun
            }
            k => LinkMsg::Other(k),
        });
    }
    Ok(out)
}

/// `ifinfomsg` and its attributes.
fn parse_link(body: &[u8], deleted: bool) -> Result<LinkEvent, &'static str> {
    if body.len() < IFINFOMSG_LEN {
        return Err("link message shorter than ifinfomsg");
    }
    let ifindex = i32::from_ne_bytes([body[4], body[5], body[6], body[7]]);
    let ifindex = u32::try_from(ifindex).map_err(|_| "negative interface index")?;
    let mut ev = LinkEvent {
        deleted,
        ifindex,
        flags: u32_at(body, 8),
        name: None,
        operstate: None,
        carrier: None,
    };
    let mut at = IFINFOMSG_LEN;
    while at < body.len() {
        if body.len() - at < RTA_HDRLEN {
            return Err("attribute header cut short");
        }
        let len = usize::from(u16_at(body, at));
        let kind = u16_at(body, at + 2) & 0x3fff; // without NLA_F_NESTED / NET_BYTEORDER
        if len < RTA_HDRLEN || len > body.len() - at {
            return Err("attribute length out of bounds");
        }
        let data = &body[at + RTA_HDRLEN..at + len];
        match kind {
            IFLA_IFNAME => {
                let end = data.iter().position(|&c| c == 0).unwrap_or(data.len());
                let name =
                    std::str::from_utf8(&data[..end]).map_err(|_| "interface name not UTF-8")?;
                ev.name = Some(name.to_string());
            }
            IFLA_OPERSTATE => ev.operstate = Some(*data.first().ok_or("empty IFLA_OPERSTATE")?),
            IFLA_CARRIER => ev.carrier = Some(*data.first().ok_or("empty IFLA_CARRIER")? != 0),
            _ => {}
        }
        at = (at + align4(len)).min(body.len());
    }
    Ok(ev)
}

/// What one [`LinkWatch::poll`] read.
#[derive(Debug, Default)]
pub struct LinkBatch {
    pub events: Vec<LinkEvent>,
    /// Events may have been lost (socket buffer overrun, a truncated or malformed
    /// datagram): the caller re-reads the state it cares about.
    pub lost: bool,
    /// Malformed datagrams seen (each also sets `lost`).
    pub malformed: u64,
}

/// A subscription to the kernel's link notifications of this network namespace.
#[derive(Debug)]
pub struct LinkWatch {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl LinkWatch {
    /// Subscribe (no privilege needed). Non-blocking: [`LinkWatch::poll`] never waits.
    pub fn open() -> io::Result<LinkWatch> {
        let fd = new_socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
        // A larger buffer makes overruns under link storms rarer (best effort).
        let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &(1i32 << 20));
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value (then set below).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = RTMGRP_LINK;
        // SAFETY: `sa` is an initialised sockaddr_nl living across the call and its exact
        // size is passed; bind(2) only reads it.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        Ok(LinkWatch {
            fd,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Read every notification queued so far (none: an empty batch). Errors other than
    /// "nothing more" and overruns are returned.
    pub fn poll(&mut self) -> io::Result<LinkBatch> {
        let mut batch = LinkBatch::default();
        loop {
            // SAFETY: `self.buf` is a writable buffer of `self.buf.len()` bytes borrowed
            // for the whole call; recv(2) writes at most that many bytes. With MSG_TRUNC it
            // returns the datagram's real length, which may exceed the buffer (checked).
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(batch),
                    Some(libc::EINTR) => continue,
                    // The socket buffer overflowed: notifications were lost.
                    Some(libc::ENOBUFS) => {
                        batch.lost = true;
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            let n = r as usize;
            if n > self.buf.len() {
                batch.lost = true;
                continue;
            }
            match parse_datagram(&self.buf[..n]) {
                Ok(msgs) => {
                    for m in msgs {
                        match m {
                            LinkMsg::Link(ev) => batch.events.push(ev),
                            LinkMsg::Overrun => batch.lost = true,
                            LinkMsg::Other(_) => {}
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!("link notification rejected: {e}");
                    batch.malformed += 1;
                    batch.lost = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::netlink::NLMSG_HDRLEN;

    /// The fuzz seeds (hand-built from rtnetlink(7), see their README) parse as they say.
    #[test]
    fn the_fuzz_seeds_parse_as_their_readme_says() {
        let seed = |name: &str| -> Vec<LinkMsg> {
            let path = format!(
                "{}/fuzz/seeds/netlink_link/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            parse_datagram(&std::fs::read(&path).expect(&path)).expect(name)
        };
        let one = |msgs: Vec<LinkMsg>| match &msgs[..] {
            [LinkMsg::Link(ev)] => ev.clone(),
            other => panic!("expected one link event, got {other:?}"),
        };
        let up = one(seed("newlink_up.bin"));
        assert_eq!(
            (up.ifindex, up.name.as_deref(), up.deleted),
            (7, Some("veth0"), false)
        );
        assert_eq!(
            (up.operstate, up.carrier, up.is_up()),
            (Some(6), Some(true), true)
        );
        let down = one(seed("newlink_down.bin"));
        assert_eq!(
            (down.operstate, down.carrier, down.is_up()),
            (Some(2), Some(false), false)
        );
        let del = one(seed("dellink.bin"));
        assert!(del.deleted && !del.is_up());
        let both = seed("two_in_one.bin");
        assert_eq!(both.len(), 2);
        assert!(matches!(&both[1], LinkMsg::Link(ev) if ev.is_up()));
    }

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((RTA_HDRLEN + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(align4(a.len()), 0);
        a
    }

    fn msg(kind: u16, ifindex: i32, flags: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![0u8; IFINFOMSG_LEN];
        body[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        body[8..12].copy_from_slice(&flags.to_ne_bytes());
        for a in attrs {
            body.extend_from_slice(a);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&body);
        m
    }

    const UP_RUNNING: u32 = (libc::IFF_UP | libc::IFF_RUNNING) as u32;

    #[test]
    fn link_messages_are_parsed_whole() {
        let mut d = msg(
            libc::RTM_NEWLINK,
            7,
            UP_RUNNING,
            &[
                attr(IFLA_IFNAME, b"eth7\0"),
                attr(IFLA_OPERSTATE, &[6]),
                attr(IFLA_CARRIER, &[1]),
                attr(999, &[1, 2, 3, 4, 5]),
            ],
        );
        d.extend(msg(
            libc::RTM_DELLINK,
            7,
            0,
            &[attr(IFLA_IFNAME, b"eth7\0")],
        ));
        d.extend(msg(libc::RTM_NEWADDR, 7, 0, &[]));
        let m = parse_datagram(&d).unwrap();
        assert_eq!(m.len(), 3);
        let LinkMsg::Link(up) = &m[0] else {
            panic!("{m:?}")
        };
        assert_eq!(up.ifindex, 7);
        assert_eq!(up.name.as_deref(), Some("eth7"));
        assert_eq!((up.operstate, up.carrier), (Some(6), Some(true)));
        assert!(up.is_up());
        let LinkMsg::Link(del) = &m[1] else {
            panic!("{m:?}")
        };
        assert!(del.deleted && !del.is_up());
        assert_eq!(m[2], LinkMsg::Other(libc::RTM_NEWADDR));
        // Up but no carrier is down.
        let d = msg(libc::RTM_NEWLINK, 3, libc::IFF_UP as u32, &[]);
        let m = parse_datagram(&d).unwrap();
        assert!(matches!(&m[0], LinkMsg::Link(e) if !e.is_up()));
    }

    #[test]
    fn malformed_datagrams_are_rejected_not_read_past() {
        let good = msg(libc::RTM_NEWLINK, 2, 0, &[attr(IFLA_IFNAME, b"x\0")]);
        // Every truncation of a valid message is either rejected or parsed without panic.
        for cut in 0..good.len() {
            let _ = parse_datagram(&good[..cut]);
        }
        assert!(parse_datagram(&good[..10]).is_err());
        let mut long = good.clone();
        long[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse_datagram(&long).is_err());
        let mut short = good.clone();
        short[0..4].copy_from_slice(&4u32.to_ne_bytes());
        assert!(parse_datagram(&short).is_err());
        // An attribute longer than the message.
        let mut bad_attr = good.clone();
        bad_attr[NLMSG_HDRLEN + IFINFOMSG_LEN..][..2].copy_from_slice(&200u16.to_ne_bytes());
        assert!(parse_datagram(&bad_attr).is_err());
        // ifinfomsg cut short.
        let tiny = msg(libc::RTM_NEWLINK, 2, 0, &[]);
        let mut t = tiny[..NLMSG_HDRLEN + 8].to_vec();
        t[0..4].copy_from_slice(&((NLMSG_HDRLEN + 8) as u32).to_ne_bytes());
        assert!(parse_datagram(&t).is_err());
        // Negative index.
        let neg = msg(libc::RTM_NEWLINK, -1, 0, &[]);
        assert!(parse_datagram(&neg).is_err());
        // Arbitrary bytes never panic.
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let len = (x % 80) as usize;
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse_datagram(&v);
        }
    }

    /// The subscription opens without privilege and an empty queue reads as an empty batch.
    #[test]
    fn watch_opens_and_polls_without_waiting() {
        let mut w = LinkWatch::open().unwrap();
        let b = w.poll().unwrap();
        assert!(!b.lost, "{b:?}");
    }
}
