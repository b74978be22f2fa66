//! Fuzz the fleet's documents as a director or `rondo fleet` reads them from etcd: the
//! desired document (`rondo::config::desired::parse_desired`, native TOML or GLB JSON with
//! overrides; on success its tables must build) and the JSON of a director's status and of
//! the checker leader's health document. Each must return Ok or Err, never panic.
//! Seeds: `fuzz/seeds/desired/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rondo::config::desired::parse_desired;
use rondo::fleet::docs::{DirectorStatus, HealthDoc};
use rondo::table::{ForwardingTable, RowPolicy};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = parse_desired(data, "fuzz") {
        for spec in d.specs {
            let _ = ForwardingTable::build(spec, RowPolicy::Native { hops: 2 });
        }
    }
    let _ = serde_json::from_slice::<DirectorStatus>(data);
    let _ = serde_json::from_slice::<HealthDoc>(data);
});
