//! Any bytes as a unit file: parsing must return a unit or located errors, never
//! panic, hang or allocate without bound (supd may be PID 1).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sup::unit::parse_unit("fuzz", Path::new("/units/fuzz.toml"), text);
});
