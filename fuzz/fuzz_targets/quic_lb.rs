//! The QUIC-LB codec (`rondo::quic_lb`) on any bytes: the header parser and the decoder
//! never panic and agree with each other, under configurations the first two bytes choose
//! (every server ID / nonce length pair, plaintext or keyed, self-encoded length or not);
//! and encoding the server ID and nonce the input carries decodes back to them, alone and
//! from a short header packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rondo::quic_lb::header::{self, Header};
use rondo::quic_lb::{
    codepoint, Decoded, QuicLbConfig, QuicLbConfigs, ServerId, MAX_CID_LEN,
};

/// A configuration from two bytes: lengths from `a`, key, length encoding and codepoint
/// from `b`.
fn config(a: u8, b: u8) -> QuicLbConfig {
    let sid_len = 1 + usize::from(a & 0x0f) % 15;
    let nonce_len = 4 + usize::from(a >> 4) % (16 - sid_len);
    let key = [b ^ 0x5c; 16];
    let key = (b & 1 == 1).then_some(&key[..]);
    let config_id = ((b >> 2) & 0b111).min(6);
    QuicLbConfig::new(config_id, sid_len, nonce_len, key)
        .expect("lengths within the draft's ranges")
        .with_encode_length(b & 2 == 2)
}

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let chosen = config(*a, *b);
    // A second configuration at another codepoint, four-pass, for rotation.
    let other_id = (chosen.config_id() + 1) % 7;
    let other = QuicLbConfig::new(other_id, 5, 9, Some(&[0xa7; 16])).unwrap();
    let configs = QuicLbConfigs::new([chosen.clone(), other]).unwrap();

    // The decoder: total, and coherent with the first octet.
    let d = configs.decode(rest);
    match d {
        Decoded::ServerId(id) => {
            let c = configs.get(codepoint(rest[0])).expect("decoded by a configuration");
            assert_eq!(id.len(), c.server_id_len());
            assert!(rest.len() >= c.cid_len());
            assert_eq!(c.decrypt(rest).map(|p| p.server_id), Ok(id));
        }
        Decoded::Unroutable => assert_eq!(codepoint(rest[0]), 7),
        Decoded::UnknownConfig(cp) => assert!(cp < 7 && configs.get(cp).is_none()),
        Decoded::TooShort => {}
    }
    for c in configs.iter() {
        let _ = c.decode(rest);
    }

    // The header parser: total; a DCID within the payload, at most 20 bytes unless
    // Version Negotiation; the decoder takes it.
    if let Ok(h) = header::parse(rest, &configs) {
        let dcid = h.dcid();
        assert!(dcid.len() < rest.len());
        if !matches!(h, Header::VersionNegotiation { .. }) {
            assert!(dcid.len() <= MAX_CID_LEN);
        }
        let _ = configs.decode(dcid);
    }

    // Encode what the input carries, decode it back.
    let (s, n) = (chosen.server_id_len(), chosen.nonce_len());
    if rest.len() >= s + n + 1 {
        let id = ServerId::new(&rest[..s]).unwrap();
        let nonce = &rest[s..s + n];
        let mut out = [0u8; MAX_CID_LEN];
        let len = chosen
            .encode_with_nonce(&id, nonce, rest[s + n], &mut out)
            .unwrap();
        let cid = &out[..len];
        assert_eq!(configs.decode(cid), Decoded::ServerId(id));
        assert_eq!(chosen.decrypt(cid).unwrap().nonce(), nonce);
        let mut packet = vec![0x41];
        packet.extend_from_slice(cid);
        packet.extend_from_slice(&rest[..rest.len().min(32)]);
        assert_eq!(
            header::parse(&packet, &configs),
            Ok(Header::Short { dcid: cid })
        );
    }
});
