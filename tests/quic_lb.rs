//! QUIC-LB (`rondo::quic_lb`) against draft-ietf-quic-load-balancers-21 (27 August 2025):
//! the known answers of Appendix B and of the "Encryption Example" (section 5.4.2.4), pass
//! by pass; encode-then-decode over every allowed length; decode and the header parser
//! total on any bytes; the configurations the draft forbids.
//!
//! The published text is in `tests/vectors/quic_lb/` (provenance and the independent
//! computation in its README). It has three slips, each corrected here to the consistent
//! value and asserted to be the *only* differences:
//!
//! - B.1 row 2: the nonce `3487d970b` has 9 hex digits and the CID's first octet is
//!   printed `20a`; consistent: nonce `03487d970b`, CID `2a350d28b42003487d970b`
//!   (codepoint 1 = `0x20`, self-encoded length 10 = `0x0a`).
//! - B.2 last row: cr_bits 3 but the CID starts `12` (codepoint 0); consistent with the
//!   row: `72` (codepoint 3), the remaining 18 bytes as printed (the first octet is not
//!   encrypted). The printed CID is also checked under codepoint 0.
//! - the example's step 10 XORs with `0xb3e4357c` where the AES output begins
//!   `b334357c`; its result `0x67947d2c` is the XOR with `b334357c`.
//!
//! The independent computation (`tests/vectors/quic_lb/check_vectors.py`, Python with
//! `cryptography`'s AES-128-ECB, and `openssl enc -aes-128-ecb -nopad` for single blocks)
//! gives every consistent value below; it is not run here.

use proptest::prelude::*;
use rondo::quic_lb::feistel::{self, Pass};
use rondo::quic_lb::header::{self, Header, HeaderError};
use rondo::quic_lb::{
    codepoint, parse_hex, Algorithm, ConfigError, Decoded, QuicLbConfig, QuicLbConfigs, QuicLbSpec,
    ServerId, MAX_CID_LEN,
};

fn vectors(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/quic_lb")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn hex(s: &str) -> Vec<u8> {
    let mut out = [0u8; 64];
    let n = parse_hex(s, &mut out).unwrap_or_else(|e| panic!("{s}: {e}"));
    out[..n].to_vec()
}

/// The key of every B.2 vector.
const KEY: &str = "8f95f09245765f80256934e50c66207f";

/// One row of Appendix B: cr_bits, sid, nonce, cid (hex, as written).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    cr: u8,
    sid: String,
    nonce: String,
    cid: String,
}

fn row(cr: u8, sid: &str, nonce: &str, cid: &str) -> Row {
    Row {
        cr,
        sid: sid.into(),
        nonce: nonce.into(),
        cid: cid.into(),
    }
}

/// The consistent B.1 rows (the second corrected: see the file's doc).
fn unencrypted() -> Vec<Row> {
    vec![
        row(0, "c4605e", "4504cc4f", "07c4605e4504cc4f"),
        row(1, "350d28b420", "03487d970b", "2a350d28b42003487d970b"),
    ]
}

/// The consistent B.2 rows (the last corrected: see the file's doc).
fn encrypted() -> Vec<Row> {
    vec![
        row(0, "ed793a", "ee080dbf", "0720b1d07b359d3c"),
        row(
            1,
            "ed793a51d49b8f5fab65",
            "ee080dbf48",
            "2fcc381bc74cb4fbad2823a3d1f8fed2",
        ),
        row(
            2,
            "ed793a51d49b8f5f",
            "ee080dbf48c0d1e5",
            "504dd2d05a7b0de9b2b9907afb5ecf8cc3",
        ),
        row(
            3,
            "ed793a51d49b8f5fab",
            "ee080dbf48c0d1e55d",
            "725779c9cc86beb3a3a4a3ca96fce4bfe0cdbc",
        ),
    ]
}

/// The rows of the `~~~pseudocode` tables of `appendix-b.txt`, as published (a CID on
/// its own indented line belongs to the row above).
fn published() -> (Vec<Row>, Vec<Row>) {
    let text = vectors("appendix-b.txt");
    let mut tables: Vec<Vec<Row>> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        if line.starts_with("~~~pseudocode") {
            tables.push(Vec::new());
            open = true;
            continue;
        }
        if line.starts_with("~~~") {
            open = false;
            continue;
        }
        if !open || line.starts_with("cr_bits") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let t = tables.last_mut().unwrap();
        match words.as_slice() {
            [cid] if line.starts_with(' ') => t.last_mut().unwrap().cid = cid.to_string(),
            [cr, sid, nonce, cid] => t.push(row(cr.parse().unwrap(), sid, nonce, cid)),
            [cr, sid, nonce] => t.push(row(cr.parse().unwrap(), sid, nonce, "")),
            other => panic!("unexpected vector line {other:?}"),
        }
    }
    assert_eq!(tables.len(), 2, "two tables in Appendix B");
    let enc = tables.pop().unwrap();
    (tables.pop().unwrap(), enc)
}

/// "In all cases, the server is configured to encode the CID length."
fn config_for(r: &Row, key: Option<&[u8]>) -> QuicLbConfig {
    QuicLbConfig::new(r.cr, hex(&r.sid).len(), hex(&r.nonce).len(), key)
        .unwrap()
        .with_encode_length(true)
}

fn check_row(r: &Row, key: Option<&[u8]>) {
    let config = config_for(r, key);
    let sid = ServerId::new(&hex(&r.sid)).unwrap();
    let nonce = hex(&r.nonce);
    let mut out = [0u8; MAX_CID_LEN];
    let n = config.encode_with_nonce(&sid, &nonce, 0, &mut out).unwrap();
    assert_eq!(rondo::quic_lb::to_hex(&out[..n]), r.cid, "encode {r:?}");
    let cid = hex(&r.cid);
    assert_eq!(config.decode(&cid), Decoded::ServerId(sid), "decode {r:?}");
    let p = config.decrypt(&cid).unwrap();
    assert_eq!((p.server_id, p.nonce()), (sid, &nonce[..]), "decrypt {r:?}");
    // The director's way: by the first octet, among two configurations.
    let other = QuicLbConfig::new((r.cr + 1) % 7, 1, 4, None).unwrap();
    let set = QuicLbConfigs::new([other, config]).unwrap();
    assert_eq!(set.decode(&cid), Decoded::ServerId(sid));
}

#[test]
fn appendix_b_as_published_differs_only_where_documented() {
    let (plain, enc) = published();
    let (want_plain, want_enc) = (unencrypted(), encrypted());
    assert_eq!(plain.len(), want_plain.len());
    assert_eq!(enc.len(), want_enc.len());
    assert_eq!(plain[0], want_plain[0]);
    // B.1 row 2: a 9-digit nonce and a 3-digit first octet.
    assert_eq!(
        plain[1],
        row(1, "350d28b420", "3487d970b", "20a350d28b4203487d970b")
    );
    assert_eq!(format!("0{}", plain[1].nonce), want_plain[1].nonce);
    // The consistent CID is the printed one with its first octet `20a` written `2a` and
    // the nonce's leading zero put back after the server ID `350d28b420`.
    assert_eq!(
        plain[1]
            .cid
            .replacen("20a", "2a", 1)
            .replacen("b420", "b4200", 1),
        want_plain[1].cid
    );
    // B.2: rows 0..=2 as published; the last differs in its first octet only.
    assert_eq!(&enc[..3], &want_enc[..3]);
    let (last, want) = (&enc[3], &want_enc[3]);
    assert_eq!(
        (last.cr, &last.sid, &last.nonce),
        (want.cr, &want.sid, &want.nonce)
    );
    assert_eq!((&last.cid[..2], &want.cid[..2]), ("12", "72"));
    assert_eq!(last.cid[2..], want.cid[2..]);
}

#[test]
fn unencrypted_vectors() {
    for r in unencrypted() {
        check_row(&r, None);
    }
}

#[test]
fn encrypted_vectors() {
    let key = hex(KEY);
    let rows = encrypted();
    for r in &rows {
        check_row(r, Some(&key));
    }
    // Which algorithm each row exercises, as the draft's prose says.
    let algos: Vec<Algorithm> = rows
        .iter()
        .map(|r| config_for(r, Some(&key)).algorithm())
        .collect();
    use Algorithm::*;
    assert_eq!(algos, [FourPass, FourPass, SinglePass, FourPass]);
    // Row 1's server ID (10 bytes) is longer than its nonce (5): the fourth decryption
    // pass; checked by decode above.
}

#[test]
fn the_last_published_encrypted_cid_decodes_under_codepoint_zero() {
    let key = hex(KEY);
    let (_, enc) = published();
    let last = &enc[3];
    let config = QuicLbConfig::new(0, 9, 9, Some(&key)).unwrap();
    let cid = hex(&last.cid);
    assert_eq!(codepoint(cid[0]), 0);
    assert_eq!(
        config.decode(&cid),
        Decoded::ServerId(ServerId::new(&hex(&last.sid)).unwrap())
    );
    assert_eq!(config.decrypt(&cid).unwrap().nonce(), &hex(&last.nonce)[..]);
    // And under the row's codepoint 3 it is another configuration's CID.
    let config3 = QuicLbConfig::new(3, 9, 9, Some(&key)).unwrap();
    assert_eq!(config3.decode(&cid), Decoded::UnknownConfig(0));
}

/// `name = value` lines of the example; for `a ^ b = c`, all three values.
fn example() -> Vec<(String, Vec<Vec<u8>>)> {
    let text = vectors("encryption-example.txt");
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(" = ") else {
            continue;
        };
        let values: Vec<Vec<u8>> = rest
            .split(['=', '^', '|'])
            .map(str::trim)
            .filter_map(|v| v.strip_prefix("0x"))
            .map(hex)
            .collect();
        out.push((name.trim().to_string(), values));
    }
    out
}

#[test]
fn the_encryption_example_step_by_step() {
    let ex = example();
    let value = |name: &str, nth: usize| -> Vec<u8> {
        ex.iter()
            .filter(|(n, _)| n == name)
            .nth(nth)
            .unwrap_or_else(|| panic!("{name} #{nth}"))
            .1
            .last()
            .unwrap()
            .clone()
    };
    let xor = |name: &str| -> Vec<Vec<u8>> {
        ex.iter()
            .find(|(n, v)| n == name && v.len() == 3)
            .unwrap_or_else(|| panic!("{name} a ^ b = c"))
            .1
            .clone()
    };
    let key = value("key", 0);
    let sid = value("server_id", 0);
    let nonce = value("nonce", 0);
    let mut plaintext = sid.clone();
    plaintext.extend_from_slice(&nonce);
    assert_eq!(plaintext, value("plaintext_CID", 0));
    assert_eq!(plaintext.len(), 7);

    // Step 2: the halves.
    let halves = feistel::Halves::split(&plaintext);
    assert_eq!(halves.half_len(), 4);
    assert_eq!(halves.left[..4], value("left_0", 0)[..]);
    assert_eq!(halves.right[..4], value("right_0", 0)[..]);

    // Steps 3-11: each pass, through the code path `encrypt` takes.
    use aes::cipher::KeyInit;
    let cipher = aes::Aes128::new(&<[u8; 16]>::try_from(&key[..]).unwrap().into());
    let mut passes: Vec<Pass> = Vec::new();
    let mut ct = [0u8; 7];
    feistel::encrypt_traced(&cipher, &plaintext, &mut ct, &mut |p| passes.push(*p));
    assert_eq!(passes.len(), 4);
    let names = ["right_1", "left_1", "right_2", "left_2"];
    let mut previous = [value("right_0", 0), value("left_0", 0)];
    for (i, p) in passes.iter().enumerate() {
        assert_eq!(p.number as usize, i + 1);
        assert_eq!(p.aes_input[..], value("aes_input", i)[..], "pass {}", i + 1);
        assert_eq!(
            p.aes_output[..],
            value("aes_output", i)[..],
            "pass {}",
            i + 1
        );
        // `half_before ^ truncate(aes_output, 4) = result`, then the nibble cleared.
        let [before, operand, unclear] = <[Vec<u8>; 3]>::try_from(xor(names[i])).unwrap();
        assert_eq!(
            before,
            previous[i % 2],
            "pass {} XORs the half it replaces",
            i + 1
        );
        if i == 3 {
            // The draft's typo: b3e4357c for the AES output's b334357c.
            assert_eq!(operand, hex("b3e4357c"));
            assert_eq!(p.aes_output[..4], hex("b334357c")[..]);
        } else {
            assert_eq!(operand[..], p.aes_output[..4], "pass {}", i + 1);
        }
        let computed: Vec<u8> = before
            .iter()
            .zip(&p.aes_output)
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(computed, unclear, "pass {} before clearing", i + 1);
        let cleared = value(names[i], 1);
        assert_eq!(p.result[..4], cleared[..], "pass {} after clearing", i + 1);
        previous[i % 2] = cleared;
    }

    // Step 12: the CID, and the codec end to end (first octet 0x07: codepoint 0, length
    // 8 self-encoded).
    let cid = value("cid", 0);
    assert_eq!(cid, hex("0767947d29be054a"));
    assert_eq!(ct[..], cid[1..]);
    let config = QuicLbConfig::new(0, 3, 4, Some(&key))
        .unwrap()
        .with_encode_length(true);
    let mut out = [0u8; MAX_CID_LEN];
    let n = config
        .encode_with_nonce(&ServerId::new(&sid).unwrap(), &nonce, 0, &mut out)
        .unwrap();
    assert_eq!(out[..n], cid[..]);
    assert_eq!(
        config.decode(&cid),
        Decoded::ServerId(ServerId::new(&sid).unwrap())
    );
}

/// Every (server_id_len, nonce_len) the draft allows: 120 of them.
fn allowed_lengths() -> Vec<(usize, usize)> {
    (1..=15)
        .flat_map(|s| (4..=19 - s).map(move |n| (s, n)))
        .collect()
}

#[test]
fn exactly_the_lengths_the_draft_allows_build() {
    assert_eq!(allowed_lengths().len(), 120);
    for s in 0..=21 {
        for n in 0..=21 {
            let ok = allowed_lengths().contains(&(s, n));
            for key in [None, Some(&[1u8; 16][..])] {
                let r = QuicLbConfig::new(0, s, n, key);
                assert_eq!(r.is_ok(), ok, "server_id_len {s} nonce_len {n}: {r:?}");
            }
        }
    }
    for id in 0..=255u8 {
        let r = QuicLbConfig::new(id, 3, 4, None);
        assert_eq!(r.is_ok(), id <= 6, "config_id {id}");
    }
    assert!(matches!(
        QuicLbConfig::new(7, 3, 4, None),
        Err(ConfigError::ConfigId(7))
    ));
    for len in (0..=40).filter(|&l| l != 16) {
        assert_eq!(
            QuicLbConfig::new(0, 3, 4, Some(&vec![0; len])).unwrap_err(),
            ConfigError::KeyLen(len)
        );
    }
}

#[test]
fn toml_snippets_in_the_documented_shape() {
    #[derive(serde::Deserialize)]
    struct Bind {
        quic_lb: Vec<QuicLbSpec>,
    }
    let b: Bind = toml::from_str(
        r#"quic_lb = [
            { config_id = 0, server_id_len = 3, nonce_len = 13, key = "8f95f09245765f80256934e50c66207f" },
            { config_id = 1, server_id_len = 2, nonce_len = 6, encode_length = true },
        ]"#,
    )
    .unwrap();
    let set = QuicLbConfigs::from_specs(&b.quic_lb).unwrap();
    assert_eq!(set.get(0).unwrap().algorithm(), Algorithm::SinglePass);
    assert_eq!(set.get(1).unwrap().algorithm(), Algorithm::Plaintext);
    let b: Bind =
        toml::from_str("quic_lb = [{ config_id = 7, server_id_len = 3, nonce_len = 4 }]").unwrap();
    assert!(QuicLbConfigs::from_specs(&b.quic_lb)
        .unwrap_err()
        .to_string()
        .starts_with("config_id 7: the draft allows 0..=6"));
}

/// A short header packet carrying `cid`, then a little payload.
fn short_packet(cid: &[u8]) -> Vec<u8> {
    let mut p = vec![0x43];
    p.extend_from_slice(cid);
    p.extend_from_slice(&[0xa5; 24]);
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every allowed length, plaintext and encrypted, random or self-encoded low bits:
    /// the CID decodes to its server ID and nonce, alone, among two configurations and
    /// from a short header packet.
    #[test]
    fn encode_then_decode_is_the_identity(
        key in any::<[u8; 16]>(),
        sid in any::<[u8; 15]>(),
        nonce in any::<[u8; 18]>(),
        config_id in 0u8..=6,
        low_bits in any::<u8>(),
    ) {
        for (s, n) in allowed_lengths() {
            for (key, encode_length) in [(None, false), (Some(&key[..]), false), (None, true), (Some(&key[..]), true)] {
                let config = QuicLbConfig::new(config_id, s, n, key).unwrap().with_encode_length(encode_length);
                let id = ServerId::new(&sid[..s]).unwrap();
                let mut out = [0u8; MAX_CID_LEN];
                let len = config.encode_with_nonce(&id, &nonce[..n], low_bits, &mut out).unwrap();
                let cid = &out[..len];
                prop_assert_eq!(len, 1 + s + n);
                prop_assert_eq!(codepoint(cid[0]), config_id);
                if encode_length {
                    prop_assert_eq!(usize::from(cid[0] & 0x1f), s + n);
                } else {
                    prop_assert_eq!(cid[0] & 0x1f, low_bits & 0x1f);
                }
                let mut plain = sid[..s].to_vec();
                plain.extend_from_slice(&nonce[..n]);
                // Encrypted, nothing is left in the clear (a chance match of 5..=19 bytes
                // is at most 2^-40 likely); in plaintext, everything is.
                prop_assert_eq!(key.is_none(), cid[1..] == plain[..]);
                prop_assert_eq!(config.decode(cid), Decoded::ServerId(id));
                let p = config.decrypt(cid).unwrap();
                prop_assert_eq!(p.nonce(), &nonce[..n]);
                let other = QuicLbConfig::new((config_id + 3) % 7, 2, 5, Some(&[9; 16])).unwrap();
                let set = QuicLbConfigs::new([other, config.clone()]).unwrap();
                prop_assert_eq!(set.decode(cid), Decoded::ServerId(id));
                let packet = short_packet(cid);
                let h = header::parse(&packet, &set).unwrap();
                prop_assert_eq!(h, Header::Short { dcid: cid });
            }
        }
    }
}

fn some_configs() -> Vec<QuicLbConfigs> {
    let key = Some(&[0x42u8; 16][..]);
    let c = |id, s, n, key, enc| {
        QuicLbConfig::new(id, s, n, key)
            .unwrap()
            .with_encode_length(enc)
    };
    vec![
        QuicLbConfigs::empty(),
        QuicLbConfigs::new([c(0, 3, 4, None, false)]).unwrap(),
        QuicLbConfigs::new([c(0, 3, 4, key, false), c(1, 8, 8, key, true)]).unwrap(),
        QuicLbConfigs::new([c(2, 10, 9, key, true), c(6, 1, 4, key, false)]).unwrap(),
        QuicLbConfigs::new([c(3, 15, 4, key, false), c(4, 1, 18, None, true)]).unwrap(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Any bytes: decode and the header parser answer, never panic; what they answer is
    /// coherent.
    #[test]
    fn decode_and_the_header_parser_are_total(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        prefix in prop_oneof![Just(vec![]), Just(vec![0xc0, 0, 0, 0, 1]), Just(vec![0x80, 0, 0, 0, 0]), Just(vec![0x40])],
    ) {
        let mut payload = prefix;
        payload.extend_from_slice(&bytes);
        for set in some_configs() {
            for cut in [payload.len(), payload.len() / 2, 1.min(payload.len())] {
                let payload = &payload[..cut];
                match set.decode(payload) {
                    Decoded::ServerId(id) => {
                        let c = set.get(codepoint(payload[0])).unwrap();
                        prop_assert_eq!(id.len(), c.server_id_len());
                        prop_assert!(payload.len() >= c.cid_len());
                    }
                    Decoded::Unroutable => prop_assert_eq!(codepoint(payload[0]), 7),
                    Decoded::UnknownConfig(cp) => prop_assert!(set.get(cp).is_none() && cp < 7),
                    Decoded::TooShort => {}
                }
                for c in set.iter() {
                    let _ = c.decode(payload);
                    let _ = c.decrypt(payload);
                }
                match header::parse(payload, &set) {
                    Ok(h) => {
                        let dcid = h.dcid();
                        prop_assert!(dcid.len() <= payload.len());
                        if !matches!(h, Header::VersionNegotiation { .. }) {
                            prop_assert!(dcid.len() <= MAX_CID_LEN);
                        }
                        let _ = set.decode(dcid);
                    }
                    Err(HeaderError::Empty) => prop_assert!(payload.is_empty()),
                    Err(_) => {}
                }
            }
        }
    }
}
