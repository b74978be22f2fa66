//! `rondo quic-lb keygen | encode | decode`, run as an operator runs them.

use std::process::{Command, Output};

use rondo::quic_lb::{parse_hex, Decoded, QuicLbSpec, ServerId};

fn rondo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rondo"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = rondo(args);
    assert!(
        o.status.success(),
        "rondo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Exit 1 and the error on stderr.
fn fails(args: &[&str]) -> String {
    let o = rondo(args);
    assert_eq!(o.status.code(), Some(1), "rondo {args:?} should fail");
    assert!(o.stdout.is_empty());
    String::from_utf8(o.stderr).unwrap()
}

/// The `quic_lb = { ... }` line of a keygen snippet, as the library reads it.
fn spec_of(snippet: &str) -> QuicLbSpec {
    #[derive(serde::Deserialize)]
    struct Doc {
        quic_lb: QuicLbSpec,
    }
    toml::from_str::<Doc>(snippet).unwrap().quic_lb
}

/// The draft's "Encryption Example" configuration (section 5.4.2.4).
const EXAMPLE: &str = r#"{ config_id = 0, server_id_len = 3, nonce_len = 4, key = "fdf726a9893ec05c0632d3956680baf0", encode_length = true }"#;

#[test]
fn keygen_prints_a_configuration_with_a_fresh_key() {
    let a = ok(&["quic-lb", "keygen"]);
    let b = ok(&["quic-lb", "keygen"]);
    let (sa, sb) = (spec_of(&a), spec_of(&b));
    assert_eq!((sa.config_id, sa.server_id_len, sa.nonce_len), (0, 3, 13));
    assert_eq!(sa.key.as_ref().unwrap().len(), 32, "{a}");
    assert_ne!(sa.key, sb.key, "two keygens, one key");
    assert!(a.contains("single-pass"), "{a}");
    sa.build().unwrap();

    let p = ok(&[
        "quic-lb",
        "keygen",
        "--plaintext",
        "--config-id",
        "6",
        "--server-id-len",
        "2",
        "--nonce-len",
        "6",
        "--encode-length",
    ]);
    let s = spec_of(&p);
    assert_eq!(s.key, None);
    assert!(s.encode_length);
    assert_eq!(s.build().unwrap().cid_len(), 9);

    for (args, want) in [
        (
            &["--nonce-len", "3"][..],
            "nonce_len 3: the draft requires 4..=18",
        ),
        (
            &["--server-id-len", "0"][..],
            "server_id_len 0: the draft requires 1..=15",
        ),
        (
            &["--server-id-len", "15", "--nonce-len", "5"][..],
            "= 20: the draft requires at most 19",
        ),
        (
            &["--config-id", "7"][..],
            "config_id 7: the draft allows 0..=6",
        ),
    ] {
        let mut a = vec!["quic-lb", "keygen"];
        a.extend_from_slice(args);
        let e = fails(&a);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

#[test]
fn encode_prints_cids_that_decode_to_the_server_id() {
    let out = ok(&[
        "quic-lb",
        "encode",
        "--config",
        EXAMPLE,
        "--server-id",
        "31441a",
        "--count",
        "5",
    ]);
    let cids: Vec<&str> = out.lines().collect();
    assert_eq!(cids.len(), 5);
    let config = spec_of(&format!("quic_lb = {EXAMPLE}")).build().unwrap();
    let id = ServerId::from_hex("31441a").unwrap();
    for (i, cid) in cids.iter().enumerate() {
        assert!(cids[..i].iter().all(|c| c != cid), "a CID repeated: {out}");
        let mut buf = [0u8; 20];
        let n = parse_hex(cid, &mut buf).unwrap();
        assert_eq!((n, buf[0]), (8, 0x07), "{cid}");
        assert_eq!(config.decode(&buf[..n]), Decoded::ServerId(id));
        let said = ok(&["quic-lb", "decode", "--config", EXAMPLE, cid]);
        assert!(said.contains("server ID 31441a"), "{said}");
    }
    // A server ID of the wrong length, bad hex.
    let e = fails(&[
        "quic-lb",
        "encode",
        "--config",
        EXAMPLE,
        "--server-id",
        "3144",
    ]);
    assert!(e.contains("server_id_len 3"), "{e}");
    let e = fails(&[
        "quic-lb",
        "encode",
        "--config",
        EXAMPLE,
        "--server-id",
        "31441z",
    ]);
    assert!(e.contains("'z' at position 6 is not a hex digit"), "{e}");
}

#[test]
fn decode_names_the_configuration_and_server_or_why_not() {
    // The draft's example CID, step 12.
    let said = ok(&["quic-lb", "decode", "--config", EXAMPLE, "0767947d29be054a"]);
    assert_eq!(
        said.trim(),
        "configuration 0 (four-pass AES-128-ECB Feistel): server ID 31441a, nonce 9c69c275"
    );
    // Two configurations in a file while keys rotate: B.2's single-pass row at codepoint 2.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("quic_lb.toml");
    std::fs::write(
        &file,
        format!(
            "quic_lb = [\n  {EXAMPLE},\n  {{ config_id = 2, server_id_len = 8, nonce_len = 8, key = \"8f95f09245765f80256934e50c66207f\" }},\n]\n"
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let said = ok(&[
        "quic-lb",
        "decode",
        "--config",
        f,
        "504dd2d05a7b0de9b2b9907afb5ecf8cc3",
    ]);
    assert!(
        said.contains("configuration 2 (single-pass AES-128-ECB): server ID ed793a51d49b8f5f, nonce ee080dbf48c0d1e5"),
        "{said}"
    );
    let said = ok(&["quic-lb", "decode", "--config", f, "0767947d29be054a"]);
    assert!(said.contains("server ID 31441a"), "{said}");
    // Unroutable answers are answers (exit 0).
    for (cid, want) in [
        ("e767947d29be054a", "unroutable: codepoint 7"),
        (
            "6767947d29be054a",
            "unroutable: codepoint 3 has no configuration here (configured: 0, 2)",
        ),
        (
            "0767947d29",
            "unroutable: 5 bytes, shorter than configuration 0's 8-byte CIDs",
        ),
    ] {
        let said = ok(&["quic-lb", "decode", "--config", f, cid]);
        assert!(said.contains(want), "{cid}: {said}");
    }
    // With two configurations, encode needs to be told which.
    let e = fails(&["quic-lb", "encode", "--config", f, "--server-id", "31441a"]);
    assert!(e.contains("--config-id"), "{e}");
    let out = ok(&[
        "quic-lb",
        "encode",
        "--config",
        f,
        "--server-id",
        "ed793a51d49b8f5f",
        "--config-id",
        "2",
    ]);
    assert!(
        out.lines()
            .all(|l| l.len() == 34 && (l.starts_with('4') || l.starts_with('5'))),
        "codepoint 2 (010x_xxxx), 17 bytes: {out}"
    );

    // Errors: exit 1, the reason.
    for (cid, want) in [
        ("0767947d29be054", "15 hex digits"),
        ("07g7", "'g' at position 3 is not a hex digit"),
        (&"ab".repeat(21), "21 bytes: expected at most 20"),
        ("", "empty"),
    ] {
        let e = fails(&["quic-lb", "decode", "--config", EXAMPLE, cid]);
        assert!(e.contains(want), "{cid}: {e}");
    }
    for (config, want) in [
        ("{ config_id = 7, server_id_len = 3, nonce_len = 4 }", "config_id 7"),
        ("{ config_id = 0, server_id_len = 3, nonce_len = 4, key = \"0011\" }", "key: 2 bytes"),
        ("{ config_id = 0, server_id_len = 3 }", "nonce_len"),
        (
            "quic_lb = [{ config_id = 0, server_id_len = 3, nonce_len = 4 }, { config_id = 0, server_id_len = 3, nonce_len = 5 }]",
            "config_id 0: configured twice",
        ),
    ] {
        let e = fails(&["quic-lb", "decode", "--config", config, "07"]);
        assert!(e.contains(want), "{config}: {e}");
    }
}
