//! The fleet's local files: any bytes as a director's fleet cache (`[fleet] cache`) and as
//! a fleet checker's config (`rondo healthcheck --fleet`): parsed or rejected with an
//! error, never a panic; a cache that parses holds a desired document that is parsed too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = rondo::runtime::fleet::cache::parse(data, "fuzz.cache", "/rondo/prod") {
        assert!(c.revision > 0);
        let _ = rondo::config::desired::parse_desired(&c.document, "cached document");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rondo::health::fleet_config::parse(text, "fuzz.toml");
    }
});
