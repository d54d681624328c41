//! Any bytes as a contact file: every row read, as UTF-8 and as windows-1252.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cosmocast::fuzzing::contacts(data);
});
