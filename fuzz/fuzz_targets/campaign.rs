//! Any campaign text: parsed, checked, and its templates compiled against a fixed header.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        cosmocast::fuzzing::campaign(text);
    }
});
