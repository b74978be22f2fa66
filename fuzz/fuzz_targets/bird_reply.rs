//! Fuzz the BIRD control-socket reply parser (`rondo::fleet::bgp::bird_ctl`): framing of
//! any byte stream into replies, then the `show protocols all` and `show bfd sessions`
//! parsers and the error mapping on every reply. Each must return Ok or Err, never panic.
//! Seeds: replies recorded from BIRD 2.0.12 (`fuzz/seeds/bird/`, from `tests/vectors/bird/`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rondo::fleet::bgp::bird_ctl::{
    parse_bfd_sessions, parse_last_reboot, parse_protocol, parse_reply, reply_error,
};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((reply, used))) = parse_reply(rest) {
        assert!(used > 0 && used <= rest.len());
        let _ = reply.code();
        let _ = reply.text();
        let _ = parse_protocol(&reply).map(|p| p.is_established());
        let _ = parse_bfd_sessions(&reply);
        let _ = parse_last_reboot(&reply);
        if reply.is_error() {
            let _ = reply_error("fuzz", &reply).to_string();
        }
        rest = &rest[used..];
    }
});
