//! The meta commands (mg, ms, md, ma, mn, me) through the text parser, from a meta corpus and
//! dictionary, and meta's base64 keys.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    memcachedrep_fuzz::run_text(input);
    memcachedrep_fuzz::check_base64(input);
});
