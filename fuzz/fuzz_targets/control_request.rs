//! Any bytes as a control request line: decoding must answer a request or an error
//! code, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sup::control::server::decode_request(data);
});
