//! The replication wire format: any bytes from the peer, decoded frame by frame and applied.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| memcachedrep_fuzz::run_replication(input));
