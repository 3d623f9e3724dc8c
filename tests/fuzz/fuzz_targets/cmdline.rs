//! The command line: NUL-separated arguments, any bytes, through the flag parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| memcachedrep_fuzz::run_cmdline(input));
