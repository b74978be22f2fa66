//! Fuzz the GLB forwarding-table JSON parser (never panics), and build the rows of small
//! parsed tables with both policies (never panics; errors are fine).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rondo::table::{glb_json, ForwardingTable, RowPolicy};

/// Keep each input fast: a build hashes 65536 rows x available backends.
const MAX_BUILD_BACKENDS: usize = 8;
const MAX_BUILD_TABLES: usize = 2;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(specs) = glb_json::parse(text, "fuzz.json") else {
        return;
    };
    // The emitter's output must parse back to the same specs.
    let again = glb_json::parse_value(&glb_json::to_json(&specs), "fuzz.json")
        .expect("emitted JSON parses");
    assert_eq!(again, specs);
    if specs.len() > MAX_BUILD_TABLES || specs.iter().any(|s| s.backends.len() > MAX_BUILD_BACKENDS)
    {
        return;
    }
    for spec in specs {
        let _ = ForwardingTable::build(spec.clone(), RowPolicy::Glb);
        let _ = ForwardingTable::build(spec, RowPolicy::Native { hops: 3 });
    }
});
