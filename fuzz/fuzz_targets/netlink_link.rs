//! Fuzz the link-state netlink parser (`rondo::sys::link::parse_datagram`, what af_packet
//! reads from `RTNLGRP_LINK`): any bytes are parsed or rejected, never a panic; every event
//! of a parsed datagram is looked at.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rondo::sys::link::{parse_datagram, LinkMsg};

fuzz_target!(|data: &[u8]| {
    if let Ok(msgs) = parse_datagram(data) {
        for m in msgs {
            if let LinkMsg::Link(ev) = m {
                let _ = ev.is_up();
                let _ = ev.name.as_deref().map(str::len);
            }
        }
    }
});
