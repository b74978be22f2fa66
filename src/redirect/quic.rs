//! QUIC-LB on the backend (issue 22, item 3): second chance for QUIC, as for TCP.
//!
//! TCP's second chance asks the kernel whether it holds a socket for the flow. A QUIC
//! server holds one unconnected UDP socket for all its connections, so the kernel cannot
//! say; the connection ID can. Servers issue QUIC-LB CIDs carrying their server ID
//! (draft-ietf-quic-load-balancers-21), so a backend reads the destination CID of an inner
//! UDP datagram to one of the QUIC ports and decides ([`QuicPolicy::classify`]):
//!
//! | the datagram | class | decision (rows 7a-7d of [`super::decide`]) |
//! |---|---|---|
//! | an Initial or 0-RTT long header (the client may have chosen the DCID: a new connection starts where the director sent it, as a SYN does) | [`QuicClass::Initial`] | local `quic_initial` |
//! | a DCID carrying our server ID | [`QuicClass::Own`] | local `quic_own` |
//! | a DCID carrying another server ID | [`QuicClass::OtherServer`] | second chance: the next GUE hop, as a TCP packet with no socket here (the last hop keeps it: `last_resort`) |
//! | anything else: not QUIC, Version Negotiation, a codepoint with no configuration here, codepoint 7, a CID shorter than the configuration's | [`QuicClass::Unroutable`] | local `udp`, as every UDP datagram without QUIC-LB |
//!
//! So a QUIC connection survives a table change (its row's new primary passes it on to
//! the secondary, the old primary) even behind directors that do not route by CID (GLB's).
//! The AES key schedules are done once, when the configuration is loaded; per packet: one
//! header parse and one decode, no allocation.

use crate::quic_lb::{header, Decoded, Header, LongType, QuicLbConfigs, ServerId};

/// The default QUIC port (HTTP/3).
pub const DEFAULT_PORT: u16 = 443;

/// What a backend knows of QUIC-LB: the configurations its servers issue CIDs with (one or
/// two while keys rotate), its own server ID and the UDP ports that carry QUIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicPolicy {
    pub configs: QuicLbConfigs,
    pub server_id: ServerId,
    /// Inner UDP destination ports read as QUIC; other UDP is always local.
    pub ports: Vec<u16>,
}

/// What a QUIC datagram's destination CID says to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuicClass {
    /// Initial or 0-RTT: possibly a client-chosen DCID; a new connection stays here.
    Initial,
    /// Our server ID.
    Own,
    /// Another server's ID: that server may hold the connection.
    OtherServer,
    /// No server ID to act on.
    Unroutable,
}

impl QuicPolicy {
    /// True when UDP to `port` is read as QUIC.
    #[inline]
    pub fn is_quic_port(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    /// Classify the UDP payload of a datagram to a QUIC port. Total over any bytes.
    #[inline]
    pub fn classify(&self, payload: &[u8]) -> QuicClass {
        let dcid = match header::parse(payload, &self.configs) {
            Ok(Header::Long {
                packet_type: Some(LongType::Initial | LongType::ZeroRtt),
                ..
            }) => return QuicClass::Initial,
            Ok(Header::VersionNegotiation { .. }) | Err(_) => return QuicClass::Unroutable,
            Ok(h) => h.dcid(),
        };
        match self.configs.decode(dcid) {
            Decoded::ServerId(id) if id == self.server_id => QuicClass::Own,
            Decoded::ServerId(_) => QuicClass::OtherServer,
            Decoded::Unroutable | Decoded::UnknownConfig(_) | Decoded::TooShort => {
                QuicClass::Unroutable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quic_lb::{QuicLbConfig, RandomNonce};

    fn policy(key: Option<&[u8]>) -> QuicPolicy {
        let c = QuicLbConfig::new(1, 2, 6, key).unwrap();
        QuicPolicy {
            configs: QuicLbConfigs::new([c]).unwrap(),
            server_id: ServerId::new(&[0, 1]).unwrap(),
            ports: vec![443],
        }
    }

    fn cid(p: &QuicPolicy, sid: &[u8]) -> Vec<u8> {
        let c = p.configs.get(1).unwrap();
        let mut out = [0u8; 20];
        let n = c
            .encode(
                &ServerId::new(sid).unwrap(),
                &mut RandomNonce::new(),
                &mut out,
            )
            .unwrap();
        out[..n].to_vec()
    }

    fn short(dcid: &[u8]) -> Vec<u8> {
        let mut p = vec![0x40];
        p.extend_from_slice(dcid);
        p.extend_from_slice(&[0xaa; 24]);
        p
    }

    fn long(first: u8, version: u32, dcid: &[u8]) -> Vec<u8> {
        let mut p = vec![first];
        p.extend_from_slice(&version.to_be_bytes());
        p.push(dcid.len() as u8);
        p.extend_from_slice(dcid);
        p.push(4);
        p.extend_from_slice(&[9; 4]);
        p.extend_from_slice(&[0; 20]);
        p
    }

    #[test]
    fn short_headers_are_classed_by_the_server_id_in_their_cid() {
        for key in [None, Some(&[7u8; 16][..])] {
            let p = policy(key);
            assert_eq!(p.classify(&short(&cid(&p, &[0, 1]))), QuicClass::Own);
            assert_eq!(
                p.classify(&short(&cid(&p, &[0, 2]))),
                QuicClass::OtherServer
            );
            // Codepoint 7 (unroutable), codepoint 3 (no configuration here).
            assert_eq!(p.classify(&short(&[0xe8; 9])), QuicClass::Unroutable);
            assert_eq!(p.classify(&short(&[0x60; 9])), QuicClass::Unroutable);
            // Truncated, empty.
            assert_eq!(p.classify(&[0x40, 0x20, 1]), QuicClass::Unroutable);
            assert_eq!(p.classify(&[]), QuicClass::Unroutable);
        }
    }

    #[test]
    fn initial_and_zero_rtt_stay_whatever_their_dcid_says() {
        let p = policy(None);
        let other = cid(&p, &[0, 2]);
        // QUIC v1: Initial 0b00, 0-RTT 0b01, Handshake 0b10 in bits 4-5.
        assert_eq!(p.classify(&long(0xc0, 1, &other)), QuicClass::Initial);
        assert_eq!(p.classify(&long(0xd0, 1, &other)), QuicClass::Initial);
        assert_eq!(p.classify(&long(0xe0, 1, &other)), QuicClass::OtherServer);
        assert_eq!(
            p.classify(&long(0xe0, 1, &cid(&p, &[0, 1]))),
            QuicClass::Own
        );
        // QUIC v2 permutes the types: 0b01 is Initial, 0b11 Handshake.
        assert_eq!(
            p.classify(&long(0xd0, 0x6b33_43cf, &other)),
            QuicClass::Initial
        );
        assert_eq!(
            p.classify(&long(0xf0, 0x6b33_43cf, &other)),
            QuicClass::OtherServer
        );
        // An unknown version: no packet type, the DCID decides.
        assert_eq!(
            p.classify(&long(0xc0, 0x1234_5678, &other)),
            QuicClass::OtherServer
        );
        // Version Negotiation, a DCID above 20 bytes.
        assert_eq!(p.classify(&long(0x80, 0, &other)), QuicClass::Unroutable);
        assert_eq!(
            p.classify(&long(0xe0, 1, &[0x20; 21])),
            QuicClass::Unroutable
        );
    }

    #[test]
    fn only_the_configured_ports_are_quic() {
        let p = policy(None);
        assert!(p.is_quic_port(443));
        assert!(!p.is_quic_port(53));
    }
}
