//! The binary protocol: any bytes on a connection that chose it, parsed and executed.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| memcachedrep_fuzz::run_binary(input));
