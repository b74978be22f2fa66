//! Any text as a native TOML config: parsed or rejected with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = rondo::config::native::parse(text, "fuzz.toml") {
            if let rondo::config::native::NativeTables::Inline(specs) = cfg.tables {
                // Keep inputs fast: only build small tables.
                for s in specs.into_iter().filter(|s| s.backends.len() <= 8) {
                    let _ = rondo::table::ForwardingTable::build(s, cfg.settings.row_policy);
                }
            }
        }
        let _ = rondo::config::glb::parse_director_conf(text, "fuzz.json");
    }
});
