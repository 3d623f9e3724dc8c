//! The text protocol: any bytes on a client connection, parsed and executed.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| memcachedrep_fuzz::run_text(input));
