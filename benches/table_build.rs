//! Forwarding-table build time (rendezvous over 65536 rows).
//!
//! GLB's `glb-director-cli build-config` takes about 1 s for 4 tables x 64 backends; the
//! target is 10x faster. Run: `cargo bench --bench table_build`.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use rondo::table::{
    Backend, BackendState, Bind, ForwardingTable, HealthChecks, Proto, RowPolicy, TableSpec,
};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// `tables` specs of `backends` IPv4 backends each (every 10th draining, every 7th down).
fn specs(backends: usize, tables: usize, weighted: bool) -> Vec<TableSpec> {
    (0..tables)
        .map(|t| TableSpec {
            name: format!("bench{t}"),
            quic_lb: None,
            hash_key: [t as u8; 16],
            seed: Some(core::array::from_fn(|i| (i * 31 + t) as u8)),
            binds: vec![Bind {
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, t as u8)),
                prefix_len: 32,
                proto: Proto::Tcp,
                port_start: 443,
                port_end: 443,
            }],
            backends: (0..backends)
                .map(|i| Backend {
                    ip: IpAddr::V4(Ipv4Addr::from(
                        0x0a00_0000u32 + (t as u32) * 4096 + i as u32,
                    )),
                    state: if i % 10 == 9 {
                        BackendState::Draining
                    } else {
                        BackendState::Active
                    },
                    healthy: i % 7 != 6,
                    weight: if weighted { 1 + (i % 3) as u32 } else { 1 },
                    healthchecks: HealthChecks::default(),
                })
                .collect(),
        })
        .collect()
}

fn build_all(specs: Vec<TableSpec>, policy: RowPolicy) -> Vec<ForwardingTable> {
    specs
        .into_iter()
        .map(|s| ForwardingTable::build(s, policy).expect("bench table builds"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("table_build");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));

    let cases: [(&str, usize, usize, RowPolicy, bool); 9] = [
        ("glb", 1, 1, RowPolicy::Glb, false),
        ("glb", 1, 4, RowPolicy::Glb, false),
        ("glb", 64, 1, RowPolicy::Glb, false),
        ("glb", 64, 4, RowPolicy::Glb, false),
        ("glb", 256, 1, RowPolicy::Glb, false),
        ("glb", 256, 4, RowPolicy::Glb, false),
        ("native2", 64, 1, RowPolicy::Native { hops: 2 }, false),
        ("native2", 64, 4, RowPolicy::Native { hops: 2 }, false),
        (
            "native2_weighted",
            64,
            1,
            RowPolicy::Native { hops: 2 },
            true,
        ),
    ];
    for (name, backends, tables, policy, weighted) in cases {
        let input = specs(backends, tables, weighted);
        g.bench_with_input(
            BenchmarkId::new(name, format!("{backends}b_x{tables}t")),
            &input,
            |b, input| {
                b.iter_batched(
                    || input.clone(),
                    |s| black_box(build_all(s, policy)),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
