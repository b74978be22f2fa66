//! GLB compatibility: the vectors produced by GLB's own `glb-director-cli`
//! (`tests/vectors/glb/`), the spec's rendezvous vectors, GLB's bug cases and the
//! native policy's fixed semantics, decoder rejections, and property tests.

mod common;

use proptest::prelude::*;
use rondo::hash::parse_hex_key;
use rondo::table::build::rendezvous_order;
use rondo::table::{
    glb_bin, glb_json, Backend, BackendState, Bind, ForwardingTable, HealthChecks, Proto,
    RowPolicy, TableError, TableSpec, TABLE_ROWS,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn backend(ip: &str, state: BackendState, healthy: bool) -> Backend {
    Backend {
        ip: ip.parse().unwrap(),
        state,
        healthy,
        weight: 1,
        healthchecks: HealthChecks::default(),
    }
}

fn bind(ip: &str) -> Bind {
    Bind {
        addr: ip.parse().unwrap(),
        prefix_len: 32,
        proto: Proto::Tcp,
        port_start: 80,
        port_end: 80,
    }
}

/// The spec's vector table: seed 49a3d861..., hosts 1.1.1.1 ..= 1.1.1.4 (indices 0..=3).
fn spec_table(backends: Vec<Backend>) -> TableSpec {
    TableSpec {
        name: "vec".to_string(),
        hash_key: parse_hex_key("12345678901234561234567890123456").unwrap(),
        seed: Some(parse_hex_key("49a3d861d661ae5ab06ed9326871a2f5").unwrap()),
        binds: vec![bind("1.1.1.1")],
        backends,
        quic_lb: None,
    }
}

fn four(states: [(BackendState, bool); 4]) -> TableSpec {
    spec_table(
        states
            .iter()
            .enumerate()
            .map(|(i, &(s, h))| backend(&format!("1.1.1.{}", i + 1), s, h))
            .collect(),
    )
}

use BackendState::{Active, Draining, Filling, Inactive};

// ---------------------------------------------------------------------------------------
// GLB's own output

#[test]
fn build_matches_glb_director_cli() {
    let dir = common::glb_vectors();
    let specs = glb_json::read(&dir.join("table.json")).unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].name, "table0");
    assert_eq!(specs[1].name, "table1");
    let tables: Vec<ForwardingTable> = specs
        .into_iter()
        .map(|s| ForwardingTable::build(s, RowPolicy::Glb).unwrap())
        .collect();
    let ours = glb_bin::encode(&tables).unwrap();
    let theirs = std::fs::read(dir.join("table.bin")).unwrap();
    assert_eq!(ours.len(), theirs.len());
    if let Some(i) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
        panic!(
            "first difference at byte {i} (table {}, offset {} in the table)",
            (i.saturating_sub(24)) / glb_bin::TABLE_LEN,
            (i.saturating_sub(24)) % glb_bin::TABLE_LEN
        );
    }
}

#[test]
fn decode_then_encode_is_identity_on_glb_file() {
    let dir = common::glb_vectors();
    let theirs = std::fs::read(dir.join("table.bin")).unwrap();
    let tables = glb_bin::read(&dir.join("table.bin")).unwrap();
    assert_eq!(tables.len(), 2);
    assert_eq!(tables[1].spec.binds.len(), 3);
    assert_eq!(
        tables[1].spec.binds[2].addr,
        "fdb4:98ce:52d4::42".parse::<IpAddr>().unwrap()
    );
    assert_eq!(tables[0].spec.seed, None);
    assert_eq!(glb_bin::encode(&tables).unwrap(), theirs);
}

// ---------------------------------------------------------------------------------------
// GLB rendezvous row-order vectors (row seeds and backend ranking)

#[test]
fn spec_row_order_vectors() {
    let spec = four([(Active, true); 4]);
    for (row, hosts) in [
        (0x0000u16, [4, 3, 2, 1]),
        (0xffff, [1, 2, 4, 3]),
        (0xbb44, [4, 1, 2, 3]),
    ] {
        let want: Vec<usize> = hosts.iter().map(|h| h - 1).collect();
        assert_eq!(
            rendezvous_order(&spec, row).unwrap(),
            want,
            "row {row:#06x}"
        );
    }
    let t = ForwardingTable::build(spec, RowPolicy::Glb).unwrap();
    assert_eq!(t.row(0x0000), &[3, 2]);
    assert_eq!(t.row(0xffff), &[0, 1]);
    assert_eq!(t.row(0xbb44), &[3, 0]);
}

// ---------------------------------------------------------------------------------------
// GLB's bugs, reproduced by the GLB policy and fixed by the native one. Row 0's order is
// [.4, .3, .2, .1] = indices [3, 2, 1, 0].

#[test]
fn glb_both_unhealthy_keeps_a_bad_primary() {
    // .4 and .3 (the first two of row 0) are down.
    let spec = four([
        (Active, true),
        (Active, true),
        (Active, false),
        (Active, false),
    ]);
    let glb = ForwardingTable::build(spec.clone(), RowPolicy::Glb).unwrap();
    // GLB: P=.4 is bad, S=.3 is "active" (its health is never checked) -> swapped, and
    // the row still starts with a down backend (GLB issue #77).
    assert_eq!(glb.row(0), &[2, 3]);
    let native = ForwardingTable::build(spec, RowPolicy::Native { hops: 2 }).unwrap();
    assert_eq!(native.row(0), &[1, 0], "native: first two healthy backends");
}

#[test]
fn glb_draining_primary_with_unhealthy_secondary() {
    let spec = four([
        (Active, true),
        (Active, true),
        (Active, false),
        (Draining, true),
    ]);
    let glb = ForwardingTable::build(spec.clone(), RowPolicy::Glb).unwrap();
    assert_eq!(glb.row(0), &[2, 3], "GLB swaps to the unhealthy secondary");
    let native = ForwardingTable::build(spec, RowPolicy::Native { hops: 2 }).unwrap();
    // Native: first usable (.2) primary; the draining .4 keeps its flows as secondary.
    assert_eq!(native.row(0), &[1, 3]);
}

#[test]
fn glb_filling_secondary_does_not_swap() {
    // GLB compares the secondary's state with "active" only.
    let spec = four([
        (Active, true),
        (Active, true),
        (Filling, true),
        (Draining, true),
    ]);
    let glb = ForwardingTable::build(spec.clone(), RowPolicy::Glb).unwrap();
    assert_eq!(glb.row(0), &[3, 2]);
    let native = ForwardingTable::build(spec, RowPolicy::Native { hops: 2 }).unwrap();
    assert_eq!(native.row(0), &[2, 3]);
}

#[test]
fn one_available_backend_repeats_it() {
    let spec = four([
        (Inactive, true),
        (Inactive, true),
        (Draining, false),
        (Inactive, true),
    ]);
    let glb = ForwardingTable::build(spec.clone(), RowPolicy::Glb).unwrap();
    assert!(glb.rows().iter().all(|&b| b == 2));
    let native = ForwardingTable::build(spec, RowPolicy::Native { hops: 3 }).unwrap();
    assert!(native.rows().iter().all(|&b| b == 2));
}

#[test]
fn zero_available_backends_is_an_error_naming_the_table() {
    let spec = four([(Inactive, true); 4]);
    for policy in [RowPolicy::Glb, RowPolicy::Native { hops: 2 }] {
        let e = ForwardingTable::build(spec.clone(), policy).unwrap_err();
        assert!(matches!(e, TableError::NoBackends { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("table \"vec\": no backend is available"),
            "{e}"
        );
    }
    let mut empty = spec;
    empty.backends.clear();
    assert!(matches!(
        ForwardingTable::build(empty, RowPolicy::Glb),
        Err(TableError::NoBackends { .. })
    ));
}

fn many_backends(n: usize) -> Vec<Backend> {
    (0..n)
        .map(|i| {
            let ip = Ipv4Addr::from(0x0a00_0000u32 + i as u32);
            backend(&ip.to_string(), Active, true)
        })
        .collect()
}

#[test]
fn glb_refuses_257_backends() {
    let spec = spec_table(many_backends(257));
    let e = ForwardingTable::build(spec, RowPolicy::Glb).unwrap_err();
    assert!(
        matches!(
            e,
            TableError::TooMany {
                what: "backends",
                count: 257,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "table \"vec\": 257 backends, but the GLB binary format holds at most 256; use a native (TOML) table for more"
    );
    // 256 is fine (inactive backends count towards the limit but are not hashed, which
    // keeps this test fast).
    let mut spec = spec_table(many_backends(256));
    for b in &mut spec.backends[2..] {
        b.state = Inactive;
    }
    let t = ForwardingTable::build(spec, RowPolicy::Glb).unwrap();
    assert!(glb_bin::encode(&[t]).is_ok());
}

#[test]
fn glb_refuses_257_binds() {
    let mut spec = four([(Active, true); 4]);
    spec.binds = (0..257)
        .map(|i| bind(&Ipv4Addr::from(0xc000_0200u32 + i).to_string()))
        .collect();
    let e = ForwardingTable::build(spec.clone(), RowPolicy::Glb).unwrap_err();
    assert!(
        matches!(
            e,
            TableError::TooMany {
                what: "binds",
                count: 257,
                ..
            }
        ),
        "{e:?}"
    );
    // A native table has no such limit, but cannot be written as a GLB file.
    let native = ForwardingTable::build(spec, RowPolicy::Native { hops: 2 }).unwrap();
    let e = glb_bin::encode(&[native]).unwrap_err();
    assert!(
        matches!(e, TableError::TooMany { what: "binds", .. }),
        "{e:?}"
    );
}

#[test]
fn native_has_no_256_limit() {
    let mut spec = spec_table(many_backends(300));
    for b in &mut spec.backends[..250] {
        b.state = Inactive;
    }
    let t = ForwardingTable::build(spec, RowPolicy::Native { hops: 2 }).unwrap();
    let max = t.rows().iter().copied().max().unwrap();
    assert!(max >= 256, "backends past 256 get rows");
}

// ---------------------------------------------------------------------------------------
// Native semantics

#[test]
fn native_equals_glb_when_all_is_well() {
    let spec = four([(Active, true); 4]);
    let glb = ForwardingTable::build(spec.clone(), RowPolicy::Glb).unwrap();
    let native = ForwardingTable::build(spec, RowPolicy::Native { hops: 2 }).unwrap();
    assert_eq!(glb.rows(), native.rows());
}

#[test]
fn native_draining_primary_becomes_secondary() {
    // Row 0: .4 (draining, healthy) first in rendezvous order.
    let spec = four([
        (Active, true),
        (Active, true),
        (Active, true),
        (Draining, true),
    ]);
    let t = ForwardingTable::build(spec, RowPolicy::Native { hops: 2 }).unwrap();
    assert_eq!(t.row(0), &[2, 3]);
    // Over the whole table the draining backend is never primary but keeps its rows as
    // secondary.
    let mut as_secondary = 0;
    for row in t.rows().chunks_exact(2) {
        assert_ne!(row[0], 3);
        as_secondary += usize::from(row[1] == 3);
    }
    assert!(as_secondary > TABLE_ROWS / 8, "{as_secondary}");
}

#[test]
fn native_only_draining_or_down() {
    // No usable backend: a healthy draining one is primary; all down: order[0].
    let spec = four([
        (Draining, true),
        (Active, false),
        (Active, false),
        (Active, false),
    ]);
    let t = ForwardingTable::build(spec, RowPolicy::Native { hops: 2 }).unwrap();
    assert!(t.rows().chunks_exact(2).all(|r| r[0] == 0 && r[1] != 0));
    let spec = four([(Active, false); 4]);
    let t = ForwardingTable::build(spec.clone(), RowPolicy::Native { hops: 2 }).unwrap();
    assert_eq!(t.row(0), &[3, 2]);
    assert_eq!(t.row(0xbb44), &[3, 0]);
}

#[test]
fn native_ipv6_backends_hash_16_bytes() {
    let backends: Vec<Backend> = (1..=5)
        .map(|i| backend(&format!("fd00:1::{i}"), Active, true))
        .collect();
    let spec = spec_table(backends);
    let t = ForwardingTable::build(spec.clone(), RowPolicy::Native { hops: 3 }).unwrap();
    for row in [0u16, 1, 0x1234, 0xbb44, 0xffff] {
        let order = rendezvous_order(&spec, row).unwrap();
        let want: Vec<u32> = order[..3].iter().map(|&i| i as u32).collect();
        assert_eq!(t.row(row), &want[..], "row {row}");
    }
    // GLB's tool accepts IPv6 backends too (family 2, 16 bytes hashed).
    let glb = ForwardingTable::build(spec, RowPolicy::Glb).unwrap();
    assert_eq!(glb.row(0x1234), &t.row(0x1234)[..2]);
}

#[test]
fn native_three_hops() {
    let spec = four([
        (Active, true),
        (Active, false),
        (Active, true),
        (Active, true),
    ]);
    let t = ForwardingTable::build(spec.clone(), RowPolicy::Native { hops: 3 }).unwrap();
    assert_eq!(t.hops(), 3);
    // Row 0 order [3, 2, 1, 0]; index 1 is down, so it only comes after the healthy ones.
    assert_eq!(t.row(0), &[3, 2, 0]);
    for row in t.rows().chunks_exact(3) {
        assert_ne!(
            row[0], 1,
            "a down backend is never primary while others are up"
        );
        assert!(row[0] != row[1] && row[1] != row[2] && row[0] != row[2]);
    }
    // Fewer backends than hops: the primary repeats.
    let two = spec_table(vec![
        backend("1.1.1.1", Active, true),
        backend("1.1.1.2", Active, true),
    ]);
    let t = ForwardingTable::build(two, RowPolicy::Native { hops: 4 }).unwrap();
    for row in t.rows().chunks_exact(4) {
        assert_ne!(row[0], row[1]);
        assert_eq!(row[2], row[0]);
        assert_eq!(row[3], row[0]);
    }
}

#[test]
fn native_weights_share_rows() {
    let mut spec = spec_table(vec![
        backend("10.0.0.1", Active, true),
        backend("10.0.0.2", Active, true),
        backend("10.0.0.3", Active, true),
    ]);
    spec.backends[1].weight = 2;
    let t = ForwardingTable::build(spec.clone(), RowPolicy::Native { hops: 2 }).unwrap();
    let mut primaries = [0usize; 3];
    for row in t.rows().chunks_exact(2) {
        primaries[row[0] as usize] += 1;
        assert_ne!(row[0], row[1]);
    }
    for (i, want) in [0.25, 0.50, 0.25].iter().enumerate() {
        let share = primaries[i] as f64 / TABLE_ROWS as f64;
        assert!(
            (share - want).abs() < 0.02,
            "backend {i}: {share} vs {want}"
        );
    }
    // GLB tables have no weights.
    let e = ForwardingTable::build(spec, RowPolicy::Glb).unwrap_err();
    assert!(e.to_string().contains("no weights"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Decoder rejections (on GLB's file)

fn glb_file() -> Vec<u8> {
    std::fs::read(common::glb_vectors().join("table.bin")).unwrap()
}

fn decode_err(bytes: &[u8]) -> String {
    glb_bin::decode(bytes, "table.bin").unwrap_err().to_string()
}

#[test]
fn decode_rejects_truncated() {
    let f = glb_file();
    assert_eq!(
        decode_err(&f[..f.len() - 1]),
        "table.bin: file is 1075271 bytes, but its header says 2 table(s), which take 24 + 2 x 537624 = 1075272 bytes (truncated or corrupt)"
    );
    assert_eq!(
        decode_err(&f[..5]),
        "table.bin: file is 5 bytes, shorter than the 24-byte GLB header (truncated?)"
    );
    assert!(decode_err(&[]).contains("file is 0 bytes"));
}

#[test]
fn decode_rejects_wrong_magic() {
    let mut f = glb_file();
    f[..4].copy_from_slice(b"\x7fELF");
    assert_eq!(
        decode_err(&f),
        "table.bin: byte offset 0 (magic): expected \"GLBD\" (47 4c 42 44), got 7f 45 4c 46; not a GLB forwarding table"
    );
}

#[test]
fn decode_rejects_wrong_version() {
    let mut f = glb_file();
    f[4] = 1;
    assert_eq!(
        decode_err(&f),
        "table.bin: byte offset 4 (version): expected format version 2, got 1"
    );
}

#[test]
fn decode_rejects_index_out_of_range() {
    let mut f = glb_file();
    // Table 1 (4 backends), row 7, secondary index := 4.
    let off = 24 + glb_bin::TABLE_LEN + 13336 + 7 * 8 + 4;
    f[off..off + 4].copy_from_slice(&4u32.to_le_bytes());
    assert_eq!(
        decode_err(&f),
        format!(
            "table.bin: table 1, byte offset {off} (rows[7].secondary_idx): backend index 4 is out of range: the table has 4 backend(s)"
        )
    );
}

#[test]
fn decode_rejects_bad_family() {
    let mut f = glb_file();
    // Table 0, backend 1's family.
    let off = 24 + 4 + 24;
    f[off] = 10;
    assert_eq!(
        decode_err(&f),
        format!(
            "table.bin: table 0, byte offset {off} (backends[1].family): expected address family 1 (IPv4) or 2 (IPv6), got 10"
        )
    );
    // And a bind's.
    let mut f = glb_file();
    let off = 24 + glb_bin::TABLE_LEN + 6152 + 2 * 28;
    f[off] = 0;
    assert!(decode_err(&f).contains(&format!(
        "table 1, byte offset {off} (binds[2].family): expected address family"
    )));
}

// ---------------------------------------------------------------------------------------
// Property tests

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn arb_backend() -> impl Strategy<Value = Backend> {
    (
        arb_ip(),
        prop_oneof![Just(Filling), Just(Active), Just(Draining), Just(Inactive)],
        any::<bool>(),
    )
        .prop_map(|(ip, state, healthy)| Backend {
            ip,
            state,
            healthy,
            weight: 1,
            healthchecks: HealthChecks::default(),
        })
}

fn arb_bind() -> impl Strategy<Value = Bind> {
    (
        arb_ip(),
        any::<u8>(),
        any::<bool>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(addr, bits, tcp, a, b)| Bind {
            addr,
            prefix_len: bits % if addr.is_ipv4() { 33 } else { 129 },
            proto: if tcp { Proto::Tcp } else { Proto::Udp },
            port_start: a.min(b),
            port_end: a.max(b),
        })
}

/// A table with random contents and random (valid) rows; rows need not come from a build.
fn arb_table() -> impl Strategy<Value = ForwardingTable> {
    (
        proptest::collection::vec(arb_backend(), 1..=256),
        proptest::collection::vec(arb_bind(), 0..=256),
        any::<[u8; 16]>(),
        any::<u64>(),
    )
        .prop_map(|(backends, binds, hash_key, mut x)| {
            let n = backends.len() as u64;
            let rows: Vec<u32> = (0..TABLE_ROWS * 2)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % n) as u32
                })
                .collect();
            let spec = TableSpec {
                name: "p".into(),
                hash_key,
                seed: None,
                binds,
                backends,
                quic_lb: None,
            };
            ForwardingTable::from_parts(spec, RowPolicy::Glb, 2, rows.into_boxed_slice()).unwrap()
        })
}

fn small_valid_file() -> &'static [u8] {
    static FILE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FILE.get_or_init(make_small_valid_file)
}

fn make_small_valid_file() -> Vec<u8> {
    let mut spec = four([
        (Active, true),
        (Draining, false),
        (Filling, true),
        (Inactive, true),
    ]);
    spec.binds.push(Bind {
        addr: "fd00::".parse().unwrap(),
        prefix_len: 8,
        proto: Proto::Udp,
        port_start: 1,
        port_end: 1000,
    });
    let t = ForwardingTable::build(spec, RowPolicy::Glb).unwrap();
    glb_bin::encode(&[t]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_encode_is_identity(tables in proptest::collection::vec(arb_table(), 0..3)) {
        let bytes = glb_bin::encode(&tables).unwrap();
        prop_assert_eq!(bytes.len(), glb_bin::HEADER_LEN + tables.len() * glb_bin::TABLE_LEN);
        let decoded = glb_bin::decode(&bytes, "p.bin").unwrap();
        prop_assert_eq!(decoded.len(), tables.len());
        for (d, t) in decoded.iter().zip(&tables) {
            prop_assert_eq!(d.rows(), t.rows());
            prop_assert_eq!(&d.spec.binds, &t.spec.binds);
            prop_assert_eq!(d.spec.hash_key, t.spec.hash_key);
        }
        prop_assert!(glb_bin::encode(&decoded).unwrap() == bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_small_inputs(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = glb_bin::decode(&bytes, "fuzz.bin");
        // Also behind a valid header.
        let mut with_header = b"GLBD\x02\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01\x00\x00\x01\x00\x00\x00\x01\x00\x00".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = glb_bin::decode(&with_header, "fuzz.bin");
    }

    #[test]
    fn json_parse_never_panics(text in "\\PC{0,200}") {
        let _ = glb_json::parse(&text, "fuzz.json");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_mutated_files(
        edits in proptest::collection::vec((0usize..14_000, any::<u8>()), 1..8),
        row_edit in (0usize..TABLE_ROWS * 8, any::<u8>()),
        cut in proptest::option::of(0usize..600_000),
    ) {
        let mut f = small_valid_file().to_vec();
        for (pos, b) in edits {
            // Mostly the header and the backend/bind area, where the structure is.
            let len = f.len();
            f[pos % len] = b;
        }
        let (rpos, rb) = row_edit;
        let rpos = 24 + 13336 + rpos;
        if rpos < f.len() {
            f[rpos] = rb;
        }
        if let Some(c) = cut {
            f.truncate(c);
        }
        match glb_bin::decode(&f, "m.bin") {
            // Accepted files re-encode to themselves.
            Ok(t) => prop_assert!(glb_bin::encode(&t).unwrap() == f),
            Err(e) => prop_assert!(e.to_string().starts_with("m.bin: ")),
        }
    }
}

fn arb_spec() -> impl Strategy<Value = TableSpec> {
    (
        "[a-z0-9_-]{1,12}",
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        proptest::collection::vec(arb_bind(), 0..5),
        proptest::collection::vec(
            (
                arb_backend(),
                1u32..5,
                proptest::option::of(any::<u16>()),
                proptest::option::of("/[a-z]{0,8}"),
            ),
            0..5,
        ),
    )
        .prop_map(|(name, hash_key, seed, binds, backends)| TableSpec {
            name,
            hash_key,
            seed: Some(seed),
            binds,
            quic_lb: None,
            backends: backends
                .into_iter()
                .map(|(mut b, weight, port, uri)| {
                    b.weight = weight;
                    b.healthchecks = HealthChecks {
                        http: port,
                        http_uri: uri,
                        tcp: port.map(|p| p ^ 1),
                        gue: None,
                    };
                    b
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn json_emit_parse_roundtrip(specs in proptest::collection::vec(arb_spec(), 0..3)) {
        let text = serde_json::to_string_pretty(&glb_json::to_json(&specs)).unwrap();
        let back = glb_json::parse(&text, "rt.json").unwrap();
        prop_assert_eq!(back, specs);
    }
}
