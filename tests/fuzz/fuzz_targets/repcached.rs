//! repcached's replication link: any bytes from a repcached partner, parsed message by message.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| memcachedrep_fuzz::run_repcached(input));
