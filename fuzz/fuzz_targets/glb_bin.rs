//! Fuzz the GLB binary table decoder: it must never panic, and whatever it accepts must
//! encode back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rondo::table::glb_bin;

fuzz_target!(|data: &[u8]| {
    if let Ok(tables) = glb_bin::decode(data, "fuzz.bin") {
        let again = glb_bin::encode(&tables).expect("decoded tables re-encode");
        assert_eq!(again, data, "decode then encode must be the identity");
    }
});
