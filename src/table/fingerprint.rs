//! A table's fingerprint: one 64-bit digest of everything in a built table that decides
//! where a flow goes, so two directors that show the same fingerprint for a table forward
//! every flow of it alike (given the same `[director] hash_fields`, which are director
//! settings, not table data), and any difference in what they forward shows as another
//! fingerprint (up to SipHash collisions, 1 in 2^64).
//!
//! SipHash-2-4 under a fixed key over, in this order: a format version, the packet hash key
//! (`hash_key`: which row a flow lands on), the binds (which flows the table takes), the
//! hops per row, every row's backend indexes, and every backend's address, state and health
//! as compiled. Not included: the rendezvous `seed` and weights (they only shape the rows,
//! which are included), health-check settings (the checker's business), and the name.
//! Shown as 16 lowercase hex digits ([`hex`]).

use std::net::IpAddr;

use super::{BackendState, ForwardingTable};
use crate::hash::SipKey;

/// The fixed key ("rondo fingerprint", 16 bytes): the same on every director.
const KEY: SipKey = SipKey::from_bytes(b"rondo-fingerprnt");
/// Bumped when the layout hashed changes (older and newer directors then never agree).
const VERSION: u8 = 1;

fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

fn state_byte(s: BackendState) -> u8 {
    match s {
        BackendState::Filling => 1,
        BackendState::Active => 2,
        BackendState::Draining => 3,
        BackendState::Inactive => 4,
    }
}

/// The fingerprint of a built table (see the module docs).
pub fn fingerprint(t: &ForwardingTable) -> u64 {
    let spec = &t.spec;
    let mut b = Vec::with_capacity(64 + t.rows().len() * 4 + spec.backends.len() * 20);
    b.push(VERSION);
    b.extend_from_slice(&spec.hash_key);
    b.extend_from_slice(&(spec.binds.len() as u32).to_le_bytes());
    for bind in &spec.binds {
        push_ip(&mut b, bind.addr);
        b.push(bind.prefix_len);
        b.push(bind.proto.number());
        b.extend_from_slice(&bind.port_start.to_le_bytes());
        b.extend_from_slice(&bind.port_end.to_le_bytes());
    }
    b.extend_from_slice(&(t.hops() as u32).to_le_bytes());
    for r in t.rows() {
        b.extend_from_slice(&r.to_le_bytes());
    }
    b.extend_from_slice(&(spec.backends.len() as u32).to_le_bytes());
    for be in &spec.backends {
        push_ip(&mut b, be.ip);
        b.push(state_byte(be.state));
        b.push(u8::from(be.healthy));
    }
    // QUIC-LB routes packets too (appended only when present: other tables keep their
    // fingerprints).
    if let Some(q) = &spec.quic_lb {
        b.push(b'Q');
        for c in &q.configs {
            for v in [c.config_id, c.server_id_len, c.nonce_len] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.push(u8::from(c.encode_length));
            let key = c
                .key
                .as_deref()
                .unwrap_or("")
                .to_ascii_lowercase()
                .replace(':', "");
            b.extend_from_slice(&(key.len() as u32).to_le_bytes());
            b.extend_from_slice(key.as_bytes());
        }
        for (ip, id) in &q.server_ids {
            push_ip(&mut b, *ip);
            b.push(id.len() as u8);
            b.extend_from_slice(id.as_bytes());
        }
    }
    KEY.hash(&b)
}

/// A fingerprint as shown: 16 lowercase hex digits.
pub fn hex(f: u64) -> String {
    format!("{f:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::config_from_str;

    fn table(backends: &str) -> ForwardingTable {
        let toml = crate::config::testing::web_table(backends);
        config_from_str(&toml, "t.toml").unwrap().tables.remove(0)
    }

    #[test]
    fn equal_exactly_when_rows_and_backends_are_equal() {
        let a = table(r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }]"#);
        let b = table(r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.2" }]"#);
        assert_eq!(fingerprint(&a), fingerprint(&b), "built twice alike");
        assert_eq!(hex(fingerprint(&a)).len(), 16);
        let others = [
            r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.3" }]"#,
            r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.2", state = "draining" }]"#,
            r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.2", healthy = false }]"#,
            r#"[{ ip = "10.1.0.1" }, { ip = "10.1.0.2", weight = 3 }]"#,
            r#"[{ ip = "10.1.0.2" }, { ip = "10.1.0.1" }]"#,
        ];
        for o in others {
            assert_ne!(fingerprint(&a), fingerprint(&table(o)), "{o}");
        }
        // Health that changes no row is still seen: the compiled health differs.
        let mut c = a.clone();
        c.spec.backends[0].healthy = false;
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
