//! Pins memcached 1.6.18's text protocol byte for byte: every command, every error answer,
//! noreply, cas, incr/decr arithmetic, expiry, pipelining and the stats families. Each
//! expectation was read off Debian's memcached (run these tests with
//! `MEMCACHEDREP_TEST_SERVER=/usr/bin/memcached` to re-check); the same tests are the acceptance
//! for memcachedrep. This file only talks to a server over TCP; it must not reach into the crate.

mod common;
mod table;

use common::{show, wait_until, Client, Server};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use table::{check_rows, try_check, try_reply_before_version, with_key, Row};

/// How long expiry tests poll before giving up: expiries are 1-2 s, memcached's clock ticks
/// once a second.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(5);

/// As `try_reply_before_version`, failing the test on a time-out or a closed connection.
fn reply_before_version(client: &mut Client) -> Vec<u8> {
    try_reply_before_version(client, common::IO_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// `try_check`, failing the test at once.
fn check(server: &Server, name: &str, send: &[u8], expect: &[u8]) {
    try_check(server, name, send, expect).unwrap_or_else(|e| panic!("{e}"));
}

/// Runs each row with `{k}` replaced by the row's name, so every row has its own key.
fn check_table(server: &Server, rows: &[Row]) {
    check_rows(server, rows.iter().map(|(name, send, expect)| (*name, with_key(send, name), with_key(expect, name))));
}

/// The cas unique of `key`, read from `gets`.
fn cas_of(client: &mut Client, key: &str) -> u64 {
    let header = client.cmd(&format!("gets {key}"));
    let fields: Vec<&str> = header.split(' ').collect();
    assert_eq!(fields.len(), 5, "gets {key} header: {header:?}");
    assert_eq!(fields[1], key);
    let len: usize = fields[3].parse().expect("length");
    client.read_exact(len + 2);
    assert_eq!(client.line(), "END\r\n");
    fields[4].parse().expect("cas number")
}

/// A numeric `stats` value.
fn stat_u64(client: &mut Client, name: &str) -> u64 {
    let value = client.stat("", name);
    value.parse().unwrap_or_else(|_| panic!("stat {name} is not a number: {value:?}"))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs() as i64
}

fn set_request(key: &str, value: &[u8]) -> Vec<u8> {
    let mut req = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n");
    req
}

// ---------------------------------------------------------------------------------------------
// Storage and retrieval commands.

#[test]
fn storage_commands_answer_like_memcached() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("set_then_get_returns_flags_and_value", b"set {k} 5 0 3\r\nabc\r\nget {k}\r\n", b"STORED\r\nVALUE {k} 5 3\r\nabc\r\nEND\r\n"),
            (
                "set_overwrites_value_and_flags",
                b"set {k} 1 0 1\r\na\r\nset {k} 2 0 2\r\nbb\r\nget {k}\r\n",
                b"STORED\r\nSTORED\r\nVALUE {k} 2 2\r\nbb\r\nEND\r\n",
            ),
            ("get_of_missing_key_is_only_end", b"get {k}\r\n", b"END\r\n"),
            (
                "get_many_keys_keeps_order_and_skips_misses",
                b"set {k}1 0 0 1\r\na\r\nset {k}3 0 0 1\r\nc\r\nget {k}3 {k}2 {k}1\r\n",
                b"STORED\r\nSTORED\r\nVALUE {k}3 0 1\r\nc\r\nVALUE {k}1 0 1\r\na\r\nEND\r\n",
            ),
            (
                "get_repeated_key_answers_each_time",
                b"set {k} 0 0 1\r\na\r\nget {k} {k}\r\n",
                b"STORED\r\nVALUE {k} 0 1\r\na\r\nVALUE {k} 0 1\r\na\r\nEND\r\n",
            ),
            (
                "extra_spaces_between_tokens_are_ignored",
                b"set  {k}  0  0  1 \r\na\r\nget  {k}   {k} \r\n",
                b"STORED\r\nVALUE {k} 0 1\r\na\r\nVALUE {k} 0 1\r\na\r\nEND\r\n",
            ),
            ("bare_lf_ends_a_command_line", b"set {k} 0 0 1\na\r\nget {k}\n", b"STORED\r\nVALUE {k} 0 1\r\na\r\nEND\r\n"),
            ("zero_length_value_round_trips", b"set {k} 3 0 0\r\n\r\nget {k}\r\n", b"STORED\r\nVALUE {k} 3 0\r\n\r\nEND\r\n"),
            (
                "value_containing_crlf_round_trips",
                b"set {k} 0 0 6\r\n\r\nx\r\n\r\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 0 6\r\n\r\nx\r\n\r\r\nEND\r\n",
            ),
            (
                "value_containing_nul_bytes_round_trips",
                b"set {k} 0 0 4\r\n\0a\0\0\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 0 4\r\n\0a\0\0\r\nEND\r\n",
            ),
            (
                "value_of_non_utf8_bytes_round_trips",
                b"set {k} 0 0 3\r\n\xff\x80\xfe\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 0 3\r\n\xff\x80\xfe\r\nEND\r\n",
            ),
            (
                "value_that_looks_like_a_command_is_data",
                b"set {k} 0 0 10\r\nget x\r\nEND\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 0 10\r\nget x\r\nEND\r\nEND\r\n",
            ),
            (
                "largest_32_bit_flags_round_trip",
                b"set {k} 4294967295 0 1\r\na\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 4294967295 1\r\na\r\nEND\r\n",
            ),
            // memcached 1.6.18 parses flags as a 64-bit number and keeps the low 32 bits.
            (
                "flags_above_32_bits_keep_the_low_32",
                b"set {k} 4294967297 0 1\r\na\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 1 1\r\na\r\nEND\r\n",
            ),
            (
                "length_with_leading_zero_or_plus_is_accepted",
                b"set {k} 0 0 01\r\na\r\nset {k} 0 0 +2\r\nbc\r\nget {k}\r\n",
                b"STORED\r\nSTORED\r\nVALUE {k} 0 2\r\nbc\r\nEND\r\n",
            ),
            (
                "fifth_token_that_is_not_noreply_is_ignored",
                b"set {k} 0 0 1 junk\r\na\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 0 1\r\na\r\nEND\r\n",
            ),
            ("add_stores_a_missing_key", b"add {k} 0 0 1\r\na\r\nget {k}\r\n", b"STORED\r\nVALUE {k} 0 1\r\na\r\nEND\r\n"),
            (
                "add_keeps_an_existing_key",
                b"set {k} 0 0 1\r\na\r\nadd {k} 0 0 1\r\nb\r\nget {k}\r\n",
                b"STORED\r\nNOT_STORED\r\nVALUE {k} 0 1\r\na\r\nEND\r\n",
            ),
            ("replace_of_missing_key_is_not_stored", b"replace {k} 0 0 1\r\na\r\nget {k}\r\n", b"NOT_STORED\r\nEND\r\n"),
            (
                "replace_of_existing_key_stores",
                b"set {k} 1 0 1\r\na\r\nreplace {k} 2 0 1\r\nb\r\nget {k}\r\n",
                b"STORED\r\nSTORED\r\nVALUE {k} 2 1\r\nb\r\nEND\r\n",
            ),
            (
                "append_adds_after_and_keeps_flags",
                b"set {k} 1 0 1\r\na\r\nappend {k} 7 0 2\r\nbc\r\nget {k}\r\n",
                b"STORED\r\nSTORED\r\nVALUE {k} 1 3\r\nabc\r\nEND\r\n",
            ),
            (
                "prepend_adds_before_and_keeps_flags",
                b"set {k} 1 0 1\r\na\r\nprepend {k} 9 0 2\r\nbc\r\nget {k}\r\n",
                b"STORED\r\nSTORED\r\nVALUE {k} 1 3\r\nbca\r\nEND\r\n",
            ),
            ("append_of_missing_key_is_not_stored", b"append {k} 0 0 1\r\na\r\nget {k}\r\n", b"NOT_STORED\r\nEND\r\n"),
            ("prepend_of_missing_key_is_not_stored", b"prepend {k} 0 0 1\r\na\r\nget {k}\r\n", b"NOT_STORED\r\nEND\r\n"),
            (
                "append_of_empty_value",
                b"set {k} 0 0 1\r\na\r\nappend {k} 0 0 0\r\n\r\nget {k}\r\n",
                b"STORED\r\nSTORED\r\nVALUE {k} 0 1\r\na\r\nEND\r\n",
            ),
            ("delete_of_existing_key", b"set {k} 0 0 1\r\na\r\ndelete {k}\r\nget {k}\r\n", b"STORED\r\nDELETED\r\nEND\r\n"),
            ("delete_of_missing_key", b"delete {k}\r\n", b"NOT_FOUND\r\n"),
            ("delete_with_time_zero_is_accepted", b"set {k} 0 0 1\r\na\r\ndelete {k} 0\r\nget {k}\r\n", b"STORED\r\nDELETED\r\nEND\r\n"),
            (
                "touch_of_existing_key",
                b"set {k} 0 0 1\r\na\r\ntouch {k} 100\r\nget {k}\r\n",
                b"STORED\r\nTOUCHED\r\nVALUE {k} 0 1\r\na\r\nEND\r\n",
            ),
            ("touch_of_missing_key", b"touch {k} 100\r\n", b"NOT_FOUND\r\n"),
            ("touch_ignores_a_third_token", b"set {k} 0 0 1\r\na\r\ntouch {k} 100 junk\r\n", b"STORED\r\nTOUCHED\r\n"),
            ("touch_with_negative_time_expires", b"set {k} 0 0 1\r\na\r\ntouch {k} -1\r\nget {k}\r\n", b"STORED\r\nTOUCHED\r\nEND\r\n"),
            ("gat_returns_value_without_cas", b"set {k} 5 0 1\r\na\r\ngat 100 {k}\r\n", b"STORED\r\nVALUE {k} 5 1\r\na\r\nEND\r\n"),
            ("gat_of_many_keys_skips_misses", b"set {k}1 0 0 1\r\na\r\ngat 100 {k}0 {k}1\r\n", b"STORED\r\nVALUE {k}1 0 1\r\na\r\nEND\r\n"),
            ("gat_of_missing_key_is_only_end", b"gat 100 {k}\r\n", b"END\r\n"),
            ("gat_without_keys_is_only_end", b"gat 100\r\n", b"END\r\n"),
            ("gats_without_keys_is_only_end", b"gats 100\r\n", b"END\r\n"),
            (
                "gat_with_negative_time_returns_then_expires",
                b"set {k} 0 0 1\r\na\r\ngat -1 {k}\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 0 1\r\na\r\nEND\r\nEND\r\n",
            ),
            ("get_noreply_is_a_key", b"get {k} noreply\r\n", b"END\r\n"),
        ],
    );
}

#[test]
fn key_of_250_bytes_works_in_every_command() {
    let server = Server::start(&[]);
    let key = "k".repeat(250);
    let mut client = server.connect();
    client.set(&key, 0, 0, b"a");
    assert_eq!(client.get(&key), Some(b"a".to_vec()));
    assert_ne!(cas_of(&mut client, &key), 0, "gets");
    let rows = [
        ("add", format!("add {key} 0 0 1\r\nb\r\n"), "NOT_STORED\r\n".to_string()),
        ("replace", format!("replace {key} 0 0 1\r\n1\r\n"), "STORED\r\n".to_string()),
        ("append", format!("append {key} 0 0 1\r\n2\r\n"), "STORED\r\n".to_string()),
        ("prepend", format!("prepend {key} 0 0 1\r\n3\r\n"), "STORED\r\n".to_string()),
        ("incr", format!("incr {key} 1\r\n"), "313\r\n".to_string()),
        ("decr", format!("decr {key} 3\r\n"), "310\r\n".to_string()),
        ("touch", format!("touch {key} 100\r\n"), "TOUCHED\r\n".to_string()),
        ("gat", format!("gat 100 {key}\r\n"), format!("VALUE {key} 0 3\r\n310\r\nEND\r\n")),
        ("delete", format!("delete {key}\r\n"), "DELETED\r\n".to_string()),
        ("cas_missing", format!("cas {key} 0 0 1 1\r\na\r\n"), "NOT_FOUND\r\n".to_string()),
    ];
    check_rows(&server, rows.map(|(name, send, expect)| (name, send.into_bytes(), expect.into_bytes())));
}

#[test]
fn key_of_251_bytes_is_refused_by_every_command() {
    let server = Server::start(&[]);
    let key = "k".repeat(251);
    let bad = "CLIENT_ERROR bad command line format\r\n";
    // Storage commands do not swallow the data block after a refused key, so it is parsed as
    // a command ("a" -> ERROR).
    let bad_then_data = format!("{bad}ERROR\r\n");
    let rows = [
        ("get", format!("get {key}\r\n"), bad.to_string()),
        ("get_after_good_key", format!("get ok {key}\r\n"), bad.to_string()),
        ("get_of_3000_byte_key", format!("get {}\r\n", "k".repeat(3000)), bad.to_string()),
        ("gets", format!("gets {key}\r\n"), bad.to_string()),
        ("gat", format!("gat 0 {key}\r\n"), bad.to_string()),
        ("gats", format!("gats 0 {key}\r\n"), bad.to_string()),
        ("set", format!("set {key} 0 0 1\r\na\r\n"), bad_then_data.clone()),
        ("add", format!("add {key} 0 0 1\r\na\r\n"), bad_then_data.clone()),
        ("replace", format!("replace {key} 0 0 1\r\na\r\n"), bad_then_data.clone()),
        ("append", format!("append {key} 0 0 1\r\na\r\n"), bad_then_data.clone()),
        ("prepend", format!("prepend {key} 0 0 1\r\na\r\n"), bad_then_data.clone()),
        ("cas", format!("cas {key} 0 0 1 1\r\na\r\n"), bad_then_data.clone()),
        ("delete", format!("delete {key}\r\n"), bad.to_string()),
        ("incr", format!("incr {key} 1\r\n"), bad.to_string()),
        ("decr", format!("decr {key} 1\r\n"), bad.to_string()),
        ("touch", format!("touch {key} 1\r\n"), bad.to_string()),
        ("delete_noreply_is_silent", format!("delete {key} noreply\r\n"), String::new()),
    ];
    check_rows(&server, rows.map(|(name, send, expect)| (name, send.into_bytes(), expect.into_bytes())));
}

#[test]
fn get_with_a_251_byte_key_returns_no_values_for_the_others() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.set("present", 0, 0, b"v");
    let reply = client.call(format!("get present {} present\r\n", "k".repeat(251)).as_bytes(), b"\r\n");
    assert_eq!(show(&reply), "CLIENT_ERROR bad command line format\r\n");
    assert_eq!(client.get("present"), Some(b"v".to_vec()), "the connection still works");
}

#[test]
fn long_line_without_newline_closes_the_connection() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.send(&[b'a'; 8192]);
    assert!(client.is_closed(), "8 KiB without a newline is not a command");
    assert!(server.connect().cmd("version").starts_with("VERSION "), "the server still answers");
}

// ---------------------------------------------------------------------------------------------
// noreply.

#[test]
fn noreply_suppresses_every_answer() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("set_noreply", b"set {k} 0 0 1 noreply\r\na\r\nget {k}\r\n", b"VALUE {k} 0 1\r\na\r\nEND\r\n"),
            ("add_noreply_stores", b"add {k} 0 0 1 noreply\r\na\r\nget {k}\r\n", b"VALUE {k} 0 1\r\na\r\nEND\r\n"),
            (
                "add_noreply_not_stored_is_silent",
                b"set {k} 0 0 1\r\na\r\nadd {k} 0 0 1 noreply\r\nb\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 0 1\r\na\r\nEND\r\n",
            ),
            (
                "replace_noreply_stores",
                b"set {k} 0 0 1\r\na\r\nreplace {k} 0 0 1 noreply\r\nb\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 0 1\r\nb\r\nEND\r\n",
            ),
            ("replace_noreply_not_stored_is_silent", b"replace {k} 0 0 1 noreply\r\nb\r\nget {k}\r\n", b"END\r\n"),
            (
                "append_noreply",
                b"set {k} 0 0 1\r\na\r\nappend {k} 0 0 1 noreply\r\nb\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 0 2\r\nab\r\nEND\r\n",
            ),
            ("append_noreply_not_stored_is_silent", b"append {k} 0 0 1 noreply\r\nb\r\nget {k}\r\n", b"END\r\n"),
            (
                "prepend_noreply",
                b"set {k} 0 0 1\r\na\r\nprepend {k} 0 0 1 noreply\r\nb\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 0 2\r\nba\r\nEND\r\n",
            ),
            ("cas_noreply_not_found_is_silent", b"cas {k} 0 0 1 1 noreply\r\na\r\nget {k}\r\n", b"END\r\n"),
            (
                "cas_noreply_exists_is_silent",
                b"set {k} 0 0 1\r\na\r\ncas {k} 0 0 1 0 noreply\r\nb\r\nget {k}\r\n",
                b"STORED\r\nVALUE {k} 0 1\r\na\r\nEND\r\n",
            ),
            ("delete_noreply", b"set {k} 0 0 1\r\na\r\ndelete {k} noreply\r\nget {k}\r\n", b"STORED\r\nEND\r\n"),
            ("delete_noreply_not_found_is_silent", b"delete {k} noreply\r\n", b""),
            ("delete_zero_noreply", b"set {k} 0 0 1\r\na\r\ndelete {k} 0 noreply\r\nget {k}\r\n", b"STORED\r\nEND\r\n"),
            ("incr_noreply", b"set {k} 0 0 1\r\n1\r\nincr {k} 5 noreply\r\nget {k}\r\n", b"STORED\r\nVALUE {k} 0 1\r\n6\r\nEND\r\n"),
            ("incr_noreply_not_found_is_silent", b"incr {k} 5 noreply\r\n", b""),
            ("decr_noreply", b"set {k} 0 0 1\r\n7\r\ndecr {k} 5 noreply\r\nget {k}\r\n", b"STORED\r\nVALUE {k} 0 1\r\n2\r\nEND\r\n"),
            ("touch_noreply", b"set {k} 0 0 1\r\na\r\ntouch {k} -1 noreply\r\nget {k}\r\n", b"STORED\r\nEND\r\n"),
            ("touch_noreply_not_found_is_silent", b"touch {k} 10 noreply\r\n", b""),
            ("verbosity_noreply", b"verbosity 1 noreply\r\n", b""),
            ("verbosity_noreply_without_level_is_silent", b"verbosity noreply\r\n", b""),
            ("bad_delta_noreply_is_silent", b"incr {k} x noreply\r\n", b""),
            ("non_numeric_value_noreply_is_silent", b"set {k} 0 0 1\r\na\r\nincr {k} 1 noreply\r\n", b"STORED\r\n"),
            ("bad_touch_time_noreply_is_silent", b"touch {k} x noreply\r\n", b""),
            ("delete_time_noreply_is_silent", b"delete {k} 1 noreply\r\n", b""),
            ("bad_flags_noreply_is_silent_but_data_is_a_command", b"set {k} x 0 1 noreply\r\na\r\n", b"ERROR\r\n"),
            // "noreply" in the cas-unique place is both an unparsable unique and noreply.
            ("cas_noreply_without_unique", b"cas {k} 0 0 1 noreply\r\na\r\n", b"ERROR\r\n"),
            ("bad_data_chunk_noreply_is_silent", b"set {k} 0 0 1 noreply\r\nab\r\nget {k}\r\n", b"ERROR\r\nEND\r\n"),
            ("noreply_then_sixth_token_is_too_many", b"set {k} 0 0 1 noreply junk\r\na\r\n", b"ERROR\r\nERROR\r\n"),
            ("touch_noreply_then_junk_is_too_many", b"touch {k} 1 noreply junk\r\n", b"ERROR\r\n"),
        ],
    );
}

#[test]
fn cas_noreply_with_current_unique_stores_silently() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.set("k", 0, 0, b"a");
    let cas = cas_of(&mut client, "k");
    client.send(format!("cas k 0 0 1 {cas} noreply\r\nb\r\n").as_bytes());
    assert_eq!(client.get("k"), Some(b"b".to_vec()));
}

#[test]
fn flush_all_noreply_is_silent_and_flushes() {
    let server = Server::start(&[]);
    check(&server, "flush_all_noreply", b"set k 0 0 1\r\na\r\nflush_all noreply\r\nget k\r\n", b"STORED\r\nEND\r\n");
    check(&server, "flush_all_0_noreply", b"set k 0 0 1\r\na\r\nflush_all 0 noreply\r\nget k\r\n", b"STORED\r\nEND\r\n");
    check(&server, "flush_all_bad_noreply", b"flush_all x noreply\r\n", b"");
}

// ---------------------------------------------------------------------------------------------
// Errors.

#[test]
fn malformed_commands_answer_with_memcacheds_errors() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("empty_line", b"\r\n", b"ERROR\r\n"),
            ("empty_lf_line", b"\n", b"ERROR\r\n"),
            ("only_spaces", b"   \r\n", b"ERROR\r\n"),
            ("unknown_command", b"foo {k}\r\n", b"ERROR\r\n"),
            ("commands_are_case_sensitive", b"GET {k}\r\n", b"ERROR\r\n"),
            ("tab_is_not_a_separator", b"set {k}\t0 0 1\r\na\r\n", b"ERROR\r\nERROR\r\n"),
            ("get_without_key", b"get\r\n", b"ERROR\r\n"),
            ("get_with_only_spaces", b"get  \r\n", b"ERROR\r\n"),
            ("gets_without_key", b"gets\r\n", b"ERROR\r\n"),
            ("gat_without_arguments", b"gat\r\n", b"ERROR\r\n"),
            ("gats_without_arguments", b"gats\r\n", b"ERROR\r\n"),
            ("set_missing_length", b"set {k} 0 0\r\n", b"ERROR\r\n"),
            ("add_missing_length", b"add {k} 0 0\r\n", b"ERROR\r\n"),
            ("append_missing_arguments", b"append {k} 0\r\n", b"ERROR\r\n"),
            ("set_too_many_arguments", b"set {k} 0 0 1 2 3\r\na\r\n", b"ERROR\r\nERROR\r\n"),
            ("set_bad_flags", b"set {k} x 0 1\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
            ("set_negative_flags", b"set {k} -1 0 1\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
            (
                "set_flags_beyond_64_bits",
                b"set {k} 18446744073709551616 0 1\r\na\r\n",
                b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
            ),
            ("set_bad_exptime", b"set {k} 0 x 1\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
            ("set_bad_length", b"set {k} 0 0 x\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
            ("set_length_with_suffix", b"set {k} 0 0 1x\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
            ("set_negative_length", b"set {k} 0 0 -1\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
            ("set_length_beyond_i32", b"set {k} 0 0 2147483648\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            (
                "refused_set_stores_nothing",
                b"set {k} x 0 1\r\na\r\nget {k}\r\n",
                b"CLIENT_ERROR bad command line format\r\nERROR\r\nEND\r\n",
            ),
            ("cas_missing_unique", b"cas {k} 0 0 1\r\na\r\n", b"ERROR\r\nERROR\r\n"),
            ("cas_bad_unique", b"cas {k} 0 0 1 x\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
            ("cas_negative_unique", b"cas {k} 0 0 1 -1\r\na\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
            (
                "cas_unique_beyond_64_bits",
                b"cas {k} 0 0 1 18446744073709551616\r\na\r\n",
                b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
            ),
            ("cas_largest_unique_on_missing_key", b"cas {k} 0 0 1 18446744073709551615\r\na\r\n", b"NOT_FOUND\r\n"),
            ("cas_too_many_arguments", b"cas {k} 0 0 1 1 noreply x\r\na\r\n", b"ERROR\r\nERROR\r\n"),
            ("delete_without_key", b"delete\r\n", b"ERROR\r\n"),
            ("delete_with_a_time", b"delete {k} 1\r\n", b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
            ("delete_with_junk", b"delete {k} x\r\n", b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
            (
                "delete_with_two_extra_tokens",
                b"delete {k} 0 0\r\n",
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
            ),
            ("delete_too_many_arguments", b"delete {k} 0 noreply x\r\n", b"ERROR\r\n"),
            ("incr_without_arguments", b"incr\r\n", b"ERROR\r\n"),
            ("incr_without_delta", b"incr {k}\r\n", b"ERROR\r\n"),
            ("decr_without_delta", b"decr {k}\r\n", b"ERROR\r\n"),
            ("incr_too_many_arguments", b"incr {k} 1 2 3\r\n", b"ERROR\r\n"),
            ("touch_without_arguments", b"touch\r\n", b"ERROR\r\n"),
            ("touch_without_time", b"touch {k}\r\n", b"ERROR\r\n"),
            ("touch_bad_time", b"set {k} 0 0 1\r\na\r\ntouch {k} x\r\n", b"STORED\r\nCLIENT_ERROR invalid exptime argument\r\n"),
            ("touch_bad_time_on_missing_key", b"touch {k} 1x\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
            ("gat_bad_time", b"set {k} 0 0 1\r\na\r\ngat x {k}\r\n", b"STORED\r\nCLIENT_ERROR invalid exptime argument\r\n"),
            ("gat_key_without_time", b"set {k} 0 0 1\r\na\r\ngat {k}\r\n", b"STORED\r\nCLIENT_ERROR invalid exptime argument\r\n"),
            ("gats_bad_time", b"gats x {k}\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
            ("verbosity_without_level", b"verbosity\r\n", b"ERROR\r\n"),
            ("verbosity_bad_level", b"verbosity x\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            ("verbosity_negative_level", b"verbosity -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            ("verbosity_ignores_a_second_token", b"verbosity 1 2\r\n", b"OK\r\n"),
            ("verbosity_too_many_arguments", b"verbosity 1 2 3\r\n", b"ERROR\r\n"),
            ("stats_unknown_group", b"stats foo\r\n", b"ERROR\r\n"),
            ("stats_unknown_group_with_argument", b"stats foo bar\r\n", b"ERROR\r\n"),
        ],
    );
}

#[test]
fn bad_data_chunk_consumes_length_plus_two_bytes() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            // The server takes length + 2 bytes as the block; when they do not end in "\r\n"
            // it answers bad data chunk and parses whatever follows as commands.
            ("one_byte_too_long", b"set {k} 0 0 1\r\nab\r\nget {k}\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"),
            ("many_bytes_too_long", b"set {k} 0 0 1\r\nabcde\r\nget {k}\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"),
            ("next_command_glued_to_data", b"set {k} 0 0 1\r\naget {k}\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
            ("lf_only_terminator", b"set {k} 0 0 1\r\na\nget {k}\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
            (
                "old_value_survives",
                b"set {k} 3 0 1\r\na\r\nset {k} 0 0 1\r\nbc\r\nget {k}\r\n",
                b"STORED\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE {k} 3 1\r\na\r\nEND\r\n",
            ),
            (
                "append_bad_chunk_keeps_value",
                b"set {k} 0 0 1\r\na\r\nappend {k} 0 0 1\r\nbc\r\nget {k}\r\n",
                b"STORED\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE {k} 0 1\r\na\r\nEND\r\n",
            ),
        ],
    );
}

#[test]
fn too_large_value_is_refused_and_its_data_swallowed() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let too_large = vec![b'x'; 1024 * 1024 + 1];
    client.set("big", 0, 0, b"old");

    let mut req = set_request("big", &too_large);
    req.extend_from_slice(b"get big\r\n");
    let reply = client.call(&req, b"END\r\n");
    // A refused set also drops the old value, as memcached does.
    assert_eq!(show(&reply), "SERVER_ERROR object too large for cache\r\nEND\r\n");

    let mut req = format!("set big 0 0 {} noreply\r\n", too_large.len()).into_bytes();
    req.extend_from_slice(&too_large);
    req.extend_from_slice(b"\r\nversion\r\n");
    let reply = client.call(&req, b"\r\n");
    assert!(show(&reply).starts_with("VERSION "), "noreply too large is silent: {:?}", show(&reply));

    let mut req = format!("append big 0 0 {}\r\n", too_large.len()).into_bytes();
    req.extend_from_slice(&too_large);
    req.extend_from_slice(b"\r\n");
    assert_eq!(show(&client.call(&req, b"\r\n")), "SERVER_ERROR object too large for cache\r\n");

    let fits = vec![b'y'; 1024 * 1024 - 512];
    client.set("fits", 0, 0, &fits);
    assert_eq!(client.get("fits"), Some(fits));
    assert_eq!(stat_u64(&mut client, "store_too_large"), 3);
}

#[test]
fn too_large_value_with_bad_terminator_answers_both_errors() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let mut req = format!("set big 0 0 {}\r\n", 1024 * 1024 + 1).into_bytes();
    req.extend_from_slice(&vec![b'x'; 1024 * 1024 + 1]);
    // Exactly length + 2 bytes are swallowed; the stray "XY" line is then a command.
    req.extend_from_slice(b"XY\r\nversion\r\n");
    client.send(&req);
    let reply = reply_before_version(&mut client);
    assert_eq!(show(&reply), "SERVER_ERROR object too large for cache\r\nERROR\r\n");
}

#[test]
fn item_size_max_flag_moves_the_limit() {
    let server = Server::start(&["-I", "2m"]);
    let mut client = server.connect();
    let value = vec![b'z'; 1024 * 1024 + 1024];
    client.set("big", 0, 0, &value);
    assert_eq!(client.get("big"), Some(value));
    let mut req = set_request("huge", &vec![b'z'; 2 * 1024 * 1024 + 1]);
    req.extend_from_slice(b"get huge\r\n");
    assert_eq!(show(&client.call(&req, b"END\r\n")), "SERVER_ERROR object too large for cache\r\nEND\r\n");
    assert_eq!(client.stat("settings", "item_size_max"), "2097152");
}

// ---------------------------------------------------------------------------------------------
// cas.

#[test]
fn cas_stores_only_with_the_current_unique() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.set("k", 0, 0, b"a");
    let first = cas_of(&mut client, "k");
    assert_eq!(client.cmd(&format!("cas k 3 0 1 {first}\r\nb")), "STORED");
    let second = cas_of(&mut client, "k");
    assert_ne!(first, second, "a successful cas changes the unique");
    assert_eq!(client.cmd(&format!("cas k 0 0 1 {first}\r\nc")), "EXISTS", "stale unique");
    assert_eq!(client.get("k"), Some(b"b".to_vec()));
    assert_eq!(client.cmd(&format!("cas missing 0 0 1 {second}\r\nc")), "NOT_FOUND");
    assert_eq!(client.cmd("delete k"), "DELETED");
    assert_eq!(client.cmd(&format!("cas k 0 0 1 {second}\r\nc")), "NOT_FOUND", "deleted key");
    let reply = client.call(b"get k\r\n", b"END\r\n");
    assert_eq!(show(&reply), "END\r\n");
}

#[test]
fn gets_shows_the_cas_unique_per_key() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.set("a", 7, 0, b"xy");
    client.set("b", 0, 0, b"z");
    let a = cas_of(&mut client, "a");
    let b = cas_of(&mut client, "b");
    assert_ne!(a, b, "two items share a cas unique");
    let reply = client.call(b"gets a missing b\r\n", b"END\r\n");
    assert_eq!(show(&reply), format!("VALUE a 7 2 {a}\r\nxy\r\nVALUE b 0 1 {b}\r\nz\r\nEND\r\n"));
    let reply = client.call(b"gats 100 a\r\n", b"END\r\n");
    assert_eq!(show(&reply), format!("VALUE a 7 2 {a}\r\nxy\r\nEND\r\n"), "gats shows the same unique");
}

#[test]
fn every_store_changes_the_cas_unique_and_touch_does_not() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.set("k", 0, 0, b"1");
    let mut seen = vec![cas_of(&mut client, "k")];
    let steps: [(&str, &str); 7] = [
        ("set k 0 0 1\r\n2", "STORED"),
        ("replace k 0 0 1\r\n3", "STORED"),
        ("append k 0 0 1\r\n4", "STORED"),
        ("prepend k 0 0 1\r\n5", "STORED"),
        ("incr k 1", "535"),
        ("decr k 1", "534"),
        ("add k 0 0 1\r\n9", "NOT_STORED"),
    ];
    for (command, answer) in steps {
        assert_eq!(client.cmd(command), answer, "{command}");
        let cas = cas_of(&mut client, "k");
        if answer == "NOT_STORED" {
            assert_eq!(cas, *seen.last().unwrap(), "a refused add keeps the unique");
        } else {
            assert!(!seen.contains(&cas), "{command} kept an old cas unique {cas}");
        }
        seen.push(cas);
    }
    let before = cas_of(&mut client, "k");
    assert_eq!(client.cmd("touch k 100"), "TOUCHED");
    assert_eq!(cas_of(&mut client, "k"), before, "touch keeps the unique");
    let cas = cas_of(&mut client, "k");
    assert_eq!(client.cmd(&format!("cas k 0 0 1 {cas}\r\nx")), "STORED");
    assert_ne!(cas_of(&mut client, "k"), cas, "a successful cas changes the unique");
}

// ---------------------------------------------------------------------------------------------
// incr and decr.

#[test]
fn incr_and_decr_arithmetic() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("incr_adds", b"set {k} 0 0 1\r\n5\r\nincr {k} 10\r\nget {k}\r\n", b"STORED\r\n15\r\nVALUE {k} 0 2\r\n15\r\nEND\r\n"),
            ("decr_subtracts", b"set {k} 0 0 2\r\n15\r\ndecr {k} 4\r\n", b"STORED\r\n11\r\n"),
            // A shorter result keeps the item length, padded with spaces.
            (
                "decr_shrinking_pads_with_spaces",
                b"set {k} 0 0 2\r\n10\r\ndecr {k} 1\r\nget {k}\r\n",
                b"STORED\r\n9\r\nVALUE {k} 0 2\r\n9 \r\nEND\r\n",
            ),
            (
                "incr_growing_the_length",
                b"set {k} 0 0 2\r\n99\r\nincr {k} 1\r\nget {k}\r\n",
                b"STORED\r\n100\r\nVALUE {k} 0 3\r\n100\r\nEND\r\n",
            ),
            ("incr_keeps_flags", b"set {k} 42 0 1\r\n9\r\nincr {k} 1\r\nget {k}\r\n", b"STORED\r\n10\r\nVALUE {k} 42 2\r\n10\r\nEND\r\n"),
            (
                "incr_wraps_at_u64_max",
                b"set {k} 0 0 20\r\n18446744073709551615\r\nincr {k} 1\r\nget {k}\r\n",
                b"STORED\r\n0\r\nVALUE {k} 0 20\r\n0                   \r\nEND\r\n",
            ),
            ("incr_by_u64_max_wraps", b"set {k} 0 0 1\r\n2\r\nincr {k} 18446744073709551615\r\n", b"STORED\r\n1\r\n"),
            ("decr_floors_at_zero", b"set {k} 0 0 1\r\n5\r\ndecr {k} 10\r\n", b"STORED\r\n0\r\n"),
            ("decr_of_zero_stays_zero", b"set {k} 0 0 1\r\n0\r\ndecr {k} 1\r\n", b"STORED\r\n0\r\n"),
            ("incr_by_zero", b"set {k} 0 0 2\r\n07\r\nincr {k} 0\r\nget {k}\r\n", b"STORED\r\n7\r\nVALUE {k} 0 2\r\n7 \r\nEND\r\n"),
            ("incr_on_missing_key", b"incr {k} 1\r\n", b"NOT_FOUND\r\n"),
            ("decr_on_missing_key", b"decr {k} 1\r\n", b"NOT_FOUND\r\n"),
            (
                "incr_on_non_numeric_value",
                b"set {k} 0 0 3\r\nabc\r\nincr {k} 1\r\n",
                b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            ),
            (
                "decr_on_non_numeric_value",
                b"set {k} 0 0 3\r\nabc\r\ndecr {k} 1\r\n",
                b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            ),
            (
                "incr_on_empty_value",
                b"set {k} 0 0 0\r\n\r\nincr {k} 1\r\n",
                b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            ),
            (
                "incr_on_negative_value",
                b"set {k} 0 0 2\r\n-1\r\nincr {k} 1\r\n",
                b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            ),
            (
                "incr_on_digits_then_letters",
                b"set {k} 0 0 2\r\n1a\r\nincr {k} 1\r\n",
                b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            ),
            ("incr_on_value_with_leading_space", b"set {k} 0 0 3\r\n 12\r\nincr {k} 1\r\n", b"STORED\r\n13\r\n"),
            ("incr_on_value_with_trailing_space", b"set {k} 0 0 3\r\n12 \r\nincr {k} 1\r\n", b"STORED\r\n13\r\n"),
            ("incr_on_value_with_plus_sign", b"set {k} 0 0 2\r\n+1\r\nincr {k} 1\r\n", b"STORED\r\n2\r\n"),
            ("incr_on_21_digit_value_with_leading_zero", b"set {k} 0 0 21\r\n018446744073709551615\r\nincr {k} 1\r\n", b"STORED\r\n0\r\n"),
            (
                "incr_on_value_beyond_u64",
                b"set {k} 0 0 20\r\n18446744073709551616\r\nincr {k} 1\r\n",
                b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            ),
            (
                "incr_delta_beyond_u64",
                b"set {k} 0 0 1\r\n1\r\nincr {k} 18446744073709551616\r\n",
                b"STORED\r\nCLIENT_ERROR invalid numeric delta argument\r\n",
            ),
            ("incr_negative_delta", b"set {k} 0 0 1\r\n1\r\nincr {k} -1\r\n", b"STORED\r\nCLIENT_ERROR invalid numeric delta argument\r\n"),
            (
                "decr_non_numeric_delta",
                b"set {k} 0 0 1\r\n1\r\ndecr {k} x\r\n",
                b"STORED\r\nCLIENT_ERROR invalid numeric delta argument\r\n",
            ),
            ("bad_delta_on_missing_key", b"incr {k} 1x\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
            ("delta_with_plus_sign_or_leading_zero", b"set {k} 0 0 1\r\n1\r\nincr {k} +1\r\nincr {k} 01\r\n", b"STORED\r\n2\r\n3\r\n"),
            ("incr_ignores_a_third_token", b"set {k} 0 0 1\r\n1\r\nincr {k} 1 junk\r\n", b"STORED\r\n2\r\n"),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Expiry.

#[test]
fn relative_exptime_expires() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.set("short", 0, 1, b"v");
    assert_eq!(client.get("short"), Some(b"v".to_vec()), "present right after set");
    wait_until("a 1 s item to expire", EXPIRY_DEADLINE, || client.get("short").is_none());
}

#[test]
fn exptime_forms_that_are_already_expired_or_kept() {
    let server = Server::start(&[]);
    let now = unix_now();
    let mut client = server.connect();
    client.set("negative", 0, -1, b"v");
    assert_eq!(client.get("negative"), None, "negative exptime is already expired");
    client.set("past", 0, now - 10, b"v");
    assert_eq!(client.get("past"), None, "absolute time in the past");
    client.set("future", 0, now + 100, b"v");
    assert_eq!(client.get("future"), Some(b"v".to_vec()), "absolute time in the future");
    client.set("thirty_days", 0, 30 * 24 * 3600, b"v");
    assert_eq!(client.get("thirty_days"), Some(b"v".to_vec()), "30 days is still relative");
    client.set("beyond_thirty_days", 0, 30 * 24 * 3600 + 1, b"v");
    assert_eq!(client.get("beyond_thirty_days"), None, "more than 30 days is a (past) unix time");
}

#[test]
fn absolute_exptime_in_the_near_future_expires() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.set("soon", 0, unix_now() + 2, b"v");
    assert_eq!(client.get("soon"), Some(b"v".to_vec()));
    wait_until("an absolute exptime to pass", EXPIRY_DEADLINE, || client.get("soon").is_none());
}

#[test]
fn touch_and_gat_move_the_expiry() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.set("touched", 0, 1, b"t");
    client.set("gat", 0, 1, b"g");
    client.set("gats", 0, 1, b"s");
    client.set("witness", 0, 1, b"w");
    client.set("shortened", 0, 0, b"x");
    assert_eq!(client.cmd("touch touched 100"), "TOUCHED");
    let reply = client.call(b"gat 100 gat\r\n", b"END\r\n");
    assert_eq!(show(&reply), "VALUE gat 0 1\r\ng\r\nEND\r\n");
    let cas = cas_of(&mut client, "gats");
    let reply = client.call(b"gats 100 gats\r\n", b"END\r\n");
    assert_eq!(show(&reply), format!("VALUE gats 0 1 {cas}\r\ns\r\nEND\r\n"));
    assert_eq!(client.cmd("touch shortened 1"), "TOUCHED");
    wait_until("the untouched 1 s witness to expire", EXPIRY_DEADLINE, || client.get("witness").is_none());
    assert_eq!(client.get("touched"), Some(b"t".to_vec()), "touch extended the expiry");
    assert_eq!(client.get("gat"), Some(b"g".to_vec()), "gat extended the expiry");
    assert_eq!(client.get("gats"), Some(b"s".to_vec()), "gats extended the expiry");
    wait_until("touch to shorten an expiry", EXPIRY_DEADLINE, || client.get("shortened").is_none());
}

#[test]
fn flush_all_invalidates_what_is_stored_before_it() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.set("a", 0, 0, b"1");
    client.set("b", 0, 100, b"2");
    assert_eq!(client.cmd("flush_all"), "OK");
    assert_eq!(client.get("a"), None);
    assert_eq!(client.get("b"), None);
    client.set("after", 0, 0, b"3");
    assert_eq!(client.get("after"), Some(b"3".to_vec()), "stored after the flush, in the same second");
    assert_eq!(client.cmd("add a 0 0 1\r\n4"), "STORED", "a flushed key is free for add");
    assert_eq!(client.cmd("flush_all 0"), "OK");
    assert_eq!(client.get("after"), None, "flush_all 0 flushes now");
}

#[test]
fn flush_all_with_delay_flushes_later() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.set("a", 0, 0, b"1");
    assert_eq!(client.cmd("flush_all 2"), "OK");
    assert_eq!(client.get("a"), Some(b"1".to_vec()), "still there right after a delayed flush");
    wait_until("a delayed flush to take effect", EXPIRY_DEADLINE, || client.get("a").is_none());
}

#[test]
fn flush_all_arguments() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("flush_all_bad_delay", b"flush_all x\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
            ("flush_all_too_many_arguments", b"flush_all 1 2 3\r\n", b"ERROR\r\n"),
            ("flush_all_negative_delay", b"flush_all -1\r\n", b"OK\r\n"),
            ("flush_all_ignores_a_second_token", b"flush_all 0 x\r\n", b"OK\r\n"),
            ("flush_all_plain", b"set {k} 0 0 1\r\na\r\nflush_all\r\nget {k}\r\n", b"STORED\r\nOK\r\nEND\r\n"),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Pipelining and split reads.

#[test]
fn pipelined_commands_answer_in_order() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let mut request = Vec::new();
    let mut expect = Vec::new();
    for i in 0..200 {
        request.extend_from_slice(format!("set p{i} {i} 0 {}\r\nv{i}\r\n", format!("v{i}").len()).as_bytes());
        expect.extend_from_slice(b"STORED\r\n");
        request.extend_from_slice(format!("get p{i} nope\r\n").as_bytes());
        expect.extend_from_slice(format!("VALUE p{i} {i} {}\r\nv{i}\r\nEND\r\n", format!("v{i}").len()).as_bytes());
        request.extend_from_slice(format!("incr p{i} 1\r\ndelete p{i}\r\nbogus\r\n").as_bytes());
        expect.extend_from_slice(b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\nDELETED\r\nERROR\r\n");
    }
    request.extend_from_slice(b"version\r\n");
    client.send(&request);
    assert_eq!(show(&reply_before_version(&mut client)), show(&expect));
}

#[test]
fn command_split_across_writes_is_reassembled() {
    let server = Server::start(&[]);
    let request = b"set split 1 0 6\r\nab\r\ncd\r\nget split\r\nversion\r\n";
    let expect = "STORED\r\nVALUE split 1 6\r\nab\r\ncd\r\nEND\r\n";
    // One byte per write.
    let mut client = server.connect();
    for byte in request.iter() {
        client.send(&[*byte]);
    }
    assert_eq!(show(&reply_before_version(&mut client)), expect, "byte by byte");
    // Two writes, split at every position: inside the command line, its "\r\n", the data
    // block, and the block's "\r\n".
    for cut in 1..request.len() {
        let mut client = server.connect();
        client.send(&request[..cut]);
        client.send(&request[cut..]);
        assert_eq!(show(&reply_before_version(&mut client)), expect, "split at byte {cut}");
    }
}

#[test]
fn large_multi_get_returns_every_value() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let keys: Vec<String> = (0..2000).map(|i| format!("multiget_key_{i:05}")).collect();
    let mut sets = Vec::new();
    for key in &keys {
        sets.extend_from_slice(&set_request(key, key.as_bytes()));
    }
    sets.extend_from_slice(b"version\r\n");
    client.send(&sets);
    assert_eq!(reply_before_version(&mut client), b"STORED\r\n".repeat(keys.len()));

    let mut expect = Vec::new();
    for key in &keys {
        expect.extend_from_slice(format!("VALUE {key} 0 {}\r\n{key}\r\n", key.len()).as_bytes());
    }
    expect.extend_from_slice(b"END\r\n");
    client.send(format!("get {}\r\nversion\r\n", keys.join(" ")).as_bytes());
    let reply = reply_before_version(&mut client);
    assert!(reply == expect, "multi-get of {} keys: {} bytes back, {} expected", keys.len(), reply.len(), expect.len());
}

#[test]
fn multi_get_of_long_keys_beyond_one_read_buffer() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let keys: Vec<String> = (0..300).map(|i| format!("{i:0>250}")).collect();
    client.set(&keys[299], 0, 0, b"last");
    client.set(&keys[0], 0, 0, b"first");
    let reply = client.call(format!("get {}\r\n", keys.join(" ")).as_bytes(), b"END\r\n");
    let expect = format!("VALUE {} 0 5\r\nfirst\r\nVALUE {} 0 4\r\nlast\r\nEND\r\n", keys[0], keys[299]);
    assert_eq!(show(&reply), expect);
}

// ---------------------------------------------------------------------------------------------
// stats.

/// The general stats that memcached-tool and the usual exporters read.
const GENERAL_STATS: &[&str] = &[
    "pid",
    "uptime",
    "time",
    "version",
    "pointer_size",
    "rusage_user",
    "rusage_system",
    "max_connections",
    "curr_connections",
    "total_connections",
    "rejected_connections",
    "connection_structures",
    "cmd_get",
    "cmd_set",
    "cmd_flush",
    "cmd_touch",
    "get_hits",
    "get_misses",
    "get_expired",
    "get_flushed",
    "delete_misses",
    "delete_hits",
    "incr_misses",
    "incr_hits",
    "decr_misses",
    "decr_hits",
    "cas_misses",
    "cas_hits",
    "cas_badval",
    "touch_hits",
    "touch_misses",
    "store_too_large",
    "store_no_memory",
    "auth_cmds",
    "auth_errors",
    "bytes_read",
    "bytes_written",
    "limit_maxbytes",
    "accepting_conns",
    "listen_disabled_num",
    "threads",
    "conn_yields",
    "hash_power_level",
    "hash_bytes",
    "hash_is_expanding",
    "bytes",
    "curr_items",
    "total_items",
    "expired_unfetched",
    "evicted_unfetched",
    "evictions",
    "reclaimed",
];

#[test]
fn stats_lists_the_fields_tools_read() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let stats = client.stats("");
    let names: Vec<&str> = stats.iter().map(|(k, _)| k.as_str()).collect();
    for field in GENERAL_STATS {
        assert!(names.contains(field), "stats lacks {field}: {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "a stat appears twice");
    let value = |name: &str| stats.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(value("pid"), server.pid().to_string());
    assert!(value("version").starts_with("1."), "version {:?}", value("version"));
    assert_eq!(value("pointer_size"), (8 * std::mem::size_of::<usize>()).to_string());
    assert_eq!(value("limit_maxbytes"), (64 * 1024 * 1024).to_string());
    let time: i64 = value("time").parse().unwrap();
    assert!((time - unix_now()).abs() <= 2, "time {time} is not now");
    for name in ["rusage_user", "rusage_system"] {
        let v = value(name);
        let (secs, micros) = v.split_once('.').unwrap_or_else(|| panic!("{name} {v:?} is not seconds.micros"));
        assert!(secs.parse::<u64>().is_ok() && micros.len() == 6 && micros.parse::<u64>().is_ok(), "{name} {v:?}");
    }
    // The reply is exactly STAT lines then END.
    let raw = client.call(b"stats\r\n", b"END\r\n");
    let text = show(&raw);
    let body = text.strip_suffix("END\r\n").unwrap();
    assert!(body.split_terminator("\r\n").all(|l| l.starts_with("STAT ") && l.split(' ').count() >= 3), "{text}");
}

#[test]
fn stats_counters_follow_the_commands() {
    let server = Server::start(&["-m", "32"]);
    let mut client = server.connect();
    let names = [
        "cmd_get",
        "cmd_set",
        "cmd_flush",
        "cmd_touch",
        "get_hits",
        "get_misses",
        "delete_hits",
        "delete_misses",
        "incr_hits",
        "incr_misses",
        "decr_hits",
        "decr_misses",
        "cas_hits",
        "cas_misses",
        "cas_badval",
        "touch_hits",
        "touch_misses",
        "curr_items",
    ];
    let total_items = stat_u64(&mut client, "total_items");
    let before: Vec<u64> = names.iter().map(|n| stat_u64(&mut client, n)).collect();

    client.set("a", 0, 0, b"1");
    client.set("flushed", 0, 0, b"x");
    assert_eq!(client.get("a"), Some(b"1".to_vec()));
    assert_eq!(client.get("missing"), None);
    let reply = client.call(b"get a missing a\r\n", b"END\r\n");
    assert_eq!(reply.len(), 2 * "VALUE a 0 1\r\n1\r\n".len() + 5);
    assert_eq!(client.cmd("incr a 1"), "2");
    assert_eq!(client.cmd("incr missing 1"), "NOT_FOUND");
    assert_eq!(client.cmd("decr a 1"), "1");
    assert_eq!(client.cmd("decr missing 1"), "NOT_FOUND");
    assert_eq!(client.cmd("decr missing 1"), "NOT_FOUND");
    let cas = cas_of(&mut client, "a");
    assert_eq!(client.cmd(&format!("cas a 0 0 1 {cas}\r\n5")), "STORED");
    assert_eq!(client.cmd(&format!("cas a 0 0 1 {cas}\r\n6")), "EXISTS");
    assert_eq!(client.cmd("cas missing 0 0 1 1\r\n6"), "NOT_FOUND");
    assert_eq!(client.cmd("touch a 100"), "TOUCHED");
    assert_eq!(client.cmd("touch missing 100"), "NOT_FOUND");
    let reply = client.call(b"gat 100 a missing\r\n", b"END\r\n");
    assert!(reply.starts_with(b"VALUE a "));
    assert_eq!(client.cmd("delete a"), "DELETED");
    assert_eq!(client.cmd("delete a"), "NOT_FOUND");
    assert_eq!(client.cmd("flush_all"), "OK");
    assert_eq!(client.get("flushed"), None);

    let after: Vec<u64> = names.iter().map(|n| stat_u64(&mut client, n)).collect();
    let moved: Vec<(&str, i64)> = names.iter().zip(before.iter().zip(&after)).map(|(n, (b, a))| (*n, *a as i64 - *b as i64)).collect();
    // Each key of a multi-get counts; gets counts as a get, gat as a touch; cas counts as a
    // set. (get_expired and get_flushed are left out: memcached's LRU crawler may reclaim the
    // item before the get sees it.)
    let expect: Vec<(&str, i64)> = vec![
        ("cmd_get", 7),
        ("cmd_set", 5),
        ("cmd_flush", 1),
        ("cmd_touch", 4),
        ("get_hits", 4),
        ("get_misses", 3),
        ("delete_hits", 1),
        ("delete_misses", 1),
        ("incr_hits", 1),
        ("incr_misses", 1),
        ("decr_hits", 1),
        ("decr_misses", 2),
        ("cas_hits", 1),
        ("cas_misses", 1),
        ("cas_badval", 1),
        ("touch_hits", 2),
        ("touch_misses", 2),
        ("curr_items", 0),
    ];
    assert_eq!(moved, expect);
    // Three stores link items; memcached may relink once more when incr cannot work in place.
    let linked = stat_u64(&mut client, "total_items") - total_items;
    assert!((3..=5).contains(&linked), "total_items moved by {linked}");
}

#[test]
fn stats_counts_connections_and_bytes() {
    let server = Server::start(&[]);
    let mut first = server.connect();
    // The harness's start-up probe connection may be counted (or uncounted) late: slack of one.
    let before = stat_u64(&mut first, "curr_connections");
    let total = stat_u64(&mut first, "total_connections");
    let mut others: Vec<Client> = (0..5).map(|_| server.connect()).collect();
    for other in &mut others {
        assert!(other.cmd("version").starts_with("VERSION "));
    }
    let with_others = stat_u64(&mut first, "curr_connections");
    assert!(with_others + 1 >= before + 5, "curr_connections {before} -> {with_others} after 5 connects");
    let total_now = stat_u64(&mut first, "total_connections");
    assert!((total + 5..=total + 6).contains(&total_now), "total_connections {total} -> {total_now} after 5 connects");
    drop(others);
    wait_until("closed connections to leave curr_connections", Duration::from_secs(5), || {
        stat_u64(&mut first, "curr_connections") + 5 <= with_others
    });

    let read = stat_u64(&mut first, "bytes_read");
    let written = stat_u64(&mut first, "bytes_written");
    first.set("k", 0, 0, b"12345");
    let read_now = stat_u64(&mut first, "bytes_read");
    // Bytes count when read, so this includes the stats command that reports them: two
    // "stats\r\n" of 7 bytes and the set's 20.
    assert_eq!(read_now - read, 7 + 20 + 7);
    assert!(stat_u64(&mut first, "bytes_written") > written + "STORED\r\n".len() as u64);
    assert_eq!(stat_u64(&mut first, "curr_items"), 1);
    assert!(stat_u64(&mut first, "bytes") > 5, "bytes counts the stored item");
}

#[test]
fn stats_reset_zeroes_counters_but_not_items() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.set("a", 0, 0, b"1");
    assert_eq!(client.get("a"), Some(b"1".to_vec()));
    assert_eq!(client.get("b"), None);
    assert_eq!(client.cmd("delete b"), "NOT_FOUND");
    assert_eq!(client.cmd("stats reset"), "RESET");
    for name in ["cmd_get", "cmd_set", "get_hits", "get_misses", "delete_misses", "total_items"] {
        assert_eq!(stat_u64(&mut client, name), 0, "{name} after stats reset");
    }
    assert_eq!(stat_u64(&mut client, "curr_items"), 1, "stats reset keeps the items");
    assert_eq!(client.get("a"), Some(b"1".to_vec()));
    assert_eq!(stat_u64(&mut client, "get_hits"), 1);
}

#[test]
fn stats_settings_echoes_the_flags() {
    let server = Server::start(&["-m", "32", "-c", "500", "-f", "1.5", "-n", "64", "-I", "2m"]);
    let mut client = server.connect();
    let settings = client.stats("settings");
    let value = |name: &str| {
        settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("stats settings lacks {name}"))
    };
    assert_eq!(value("maxbytes"), "33554432");
    assert_eq!(value("maxconns"), "500");
    assert_eq!(value("tcpport"), server.port.to_string());
    assert_eq!(value("item_size_max"), "2097152");
    assert_eq!(value("growth_factor"), "1.50");
    assert_eq!(value("chunk_size"), "64");
    assert_eq!(value("cas_enabled"), "yes");
    assert_eq!(value("evictions"), "on");
    for name in ["verbosity", "oldest", "num_threads", "udpport", "inter", "domain_socket", "binding_protocol", "tcp_backlog"] {
        value(name);
    }
    let settings = Server::start(&["-C", "-M"]).connect().stats("settings");
    let flag = |name: &str| settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(flag("cas_enabled"), "no");
    assert_eq!(flag("evictions"), "off");
    assert_eq!(flag("maxbytes"), "67108864");
    assert_eq!(flag("maxconns"), "1024");
    assert_eq!(flag("growth_factor"), "1.25");
    assert_eq!(flag("chunk_size"), "48");
    assert_eq!(flag("item_size_max"), "1048576");
}

/// The per-class fields of `stats items`.
const ITEM_FIELDS: &[&str] = &[
    "number",
    "number_hot",
    "number_warm",
    "number_cold",
    "age_hot",
    "age_warm",
    "age",
    "mem_requested",
    "evicted",
    "evicted_nonzero",
    "evicted_time",
    "outofmemory",
    "tailrepairs",
    "reclaimed",
    "expired_unfetched",
    "evicted_unfetched",
    "evicted_active",
    "crawler_reclaimed",
    "crawler_items_checked",
    "lrutail_reflocked",
    "moves_to_cold",
    "moves_to_warm",
    "moves_within_lru",
    "direct_reclaims",
    "hits_to_hot",
    "hits_to_warm",
    "hits_to_cold",
    "hits_to_temp",
];

/// The per-class fields of `stats slabs`.
const SLAB_FIELDS: &[&str] = &[
    "chunk_size",
    "chunks_per_page",
    "total_pages",
    "total_chunks",
    "used_chunks",
    "free_chunks",
    "free_chunks_end",
    "get_hits",
    "cmd_set",
    "delete_hits",
    "incr_hits",
    "decr_hits",
    "cas_hits",
    "cas_badval",
    "touch_hits",
];

#[test]
fn stats_items_and_slabs_describe_each_class() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    assert_eq!(show(&client.call(b"stats items\r\n", b"END\r\n")), "END\r\n", "no items yet");
    let empty = client.stats("slabs");
    assert_eq!(empty, vec![("active_slabs".to_string(), "0".to_string()), ("total_malloced".to_string(), "0".to_string())]);

    client.set("small", 0, 0, b"v");
    client.set("large", 0, 0, &[b'x'; 5000]);
    assert_eq!(client.get("small"), Some(b"v".to_vec()));

    let items = client.stats("items");
    let mut classes: Vec<String> = items.iter().map(|(k, _)| k.split(':').nth(1).unwrap().to_string()).collect();
    classes.dedup();
    assert_eq!(classes.len(), 2, "two size classes in use: {items:?}");
    for class in &classes {
        let fields: Vec<&str> = items.iter().filter_map(|(k, _)| k.strip_prefix(&format!("items:{class}:"))).collect();
        assert_eq!(fields, ITEM_FIELDS, "stats items fields of class {class}");
        let number = items.iter().find(|(k, _)| *k == format!("items:{class}:number")).unwrap();
        assert_eq!(number.1, "1");
    }

    let slabs = client.stats("slabs");
    for class in &classes {
        let fields: Vec<&str> = slabs.iter().filter_map(|(k, _)| k.strip_prefix(&format!("{class}:"))).collect();
        assert_eq!(fields, SLAB_FIELDS, "stats slabs fields of class {class}");
        let used = slabs.iter().find(|(k, _)| *k == format!("{class}:used_chunks")).unwrap();
        assert_eq!(used.1, "1");
    }
    let tail: Vec<&str> = slabs.iter().rev().take(2).map(|(k, _)| k.as_str()).collect();
    assert_eq!(tail, ["total_malloced", "active_slabs"]);
    let active = slabs.iter().find(|(k, _)| k == "active_slabs").unwrap();
    assert_eq!(active.1, "2");
    let small_hits = slabs.iter().find(|(k, _)| *k == format!("{}:get_hits", classes[0])).unwrap();
    assert_eq!(small_hits.1, "1", "the get counts in the small item's class");
    let malloced: u64 = slabs.iter().find(|(k, _)| k == "total_malloced").unwrap().1.parse().unwrap();
    assert!(malloced > 0);
}

#[test]
fn stats_sizes_is_disabled() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    assert_eq!(show(&client.call(b"stats sizes\r\n", b"END\r\n")), "STAT sizes_status disabled\r\nEND\r\n");
}

#[test]
fn stats_conns_lists_this_connection() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let local = client.stream.local_addr().unwrap().port();
    let conns = client.stats("conns");
    let mine = conns
        .iter()
        .find(|(k, v)| k.ends_with(":addr") && *v == format!("tcp:127.0.0.1:{local}"))
        .unwrap_or_else(|| panic!("this connection (port {local}) is not listed: {conns:?}"));
    let id = mine.0.strip_suffix(":addr").unwrap();
    let fields: Vec<&str> = conns.iter().filter_map(|(k, _)| k.strip_prefix(&format!("{id}:"))).collect();
    assert_eq!(fields, ["addr", "listen_addr", "state", "secs_since_last_cmd"]);
    let listen = conns.iter().find(|(k, _)| *k == format!("{id}:listen_addr")).unwrap();
    assert_eq!(listen.1, format!("tcp:127.0.0.1:{}", server.port));
}

// ---------------------------------------------------------------------------------------------
// version, verbosity, quit.

#[test]
fn version_verbosity_and_quit() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let version = client.cmd("version");
    assert!(version.starts_with("VERSION 1."), "{version:?}");
    assert_eq!(version.split(' ').count(), 2, "one version token: {version:?}");
    assert_eq!(client.cmd("version junk"), version, "version ignores arguments");
    assert_eq!(client.cmd("verbosity 1"), "OK");
    assert_eq!(client.cmd("verbosity 0"), "OK");
    client.send(b"quit\r\nversion\r\n");
    assert!(client.is_closed(), "quit closes the connection");
    let mut other = server.connect();
    other.send(b"quit junk\r\n");
    assert!(other.is_closed(), "quit with an argument still closes");
    assert_eq!(server.connect().cmd("version"), version, "the server still answers");
}

#[test]
fn quit_in_a_pipeline_answers_what_came_before() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.send(b"set q 0 0 1\r\na\r\nget q\r\nquit\r\nget q\r\n");
    let reply = client.read_until(b"END\r\n");
    assert_eq!(show(&reply), "STORED\r\nVALUE q 0 1\r\na\r\nEND\r\n");
    assert!(client.is_closed());
}

/// memcached keeps nonzero client flags in 4 more bytes of its item header, so with flags the
/// largest value is 4 bytes shorter (-I 64k, a one-byte key: 65476 bytes, or 65472); flags
/// that wrap to 0 take no room, and a join is sized with the old item's flags. Found by the
/// model test (tests/model.rs).
#[test]
fn flags_shorten_the_largest_value() {
    let server = Server::start(&["-I", "64k", "-o", "slab_chunk_max=65536"]);
    let mut client = server.connect();
    let store = |cmd: &str, flags: u64, len: usize| format!("{cmd} {flags} 0 {len}\r\n{}\r\n", "x".repeat(len));
    let too_large = "SERVER_ERROR object too large for cache\r\n";
    let cases = [
        (store("set a", 0, 65476), "STORED\r\n"),
        (store("set a", 1, 65476), too_large),
        (store("set a", 1, 65473), too_large),
        (store("set a", 4294967296, 65476), "STORED\r\n"),
        (store("set a", 1, 65472), "STORED\r\n"),
        (store("prepend a", 0, 1), "NOT_STORED\r\n"),
        (store("set b", 0, 65472), "STORED\r\n"),
        (store("append b", 7, 4), "STORED\r\n"),
        (store("append b", 7, 1), "NOT_STORED\r\n"),
    ];
    for (send, expected) in cases {
        client.send(send.as_bytes());
        assert_eq!(client.line(), expected, "{}", &send[..send.find('\r').unwrap()]);
    }
}

/// For a number of 2^63 or more memcached refuses a minus sign anywhere before the first NUL
/// (its strchr), and nothing after it. Found by the model test (MODEL_SEED=117 #28043).
#[test]
fn incr_looks_for_a_minus_sign_up_to_the_first_nul() {
    let server = Server::start(&[]);
    let non_numeric = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
    let cases: [(&[u8], &str); 4] = [
        (b"18446744073709551613\x00x-y", "2\r\n"),
        (b"18446744073709551613 x-y", non_numeric),
        (b"5 -", "10\r\n"),
        (b"18446744073709551613 \x00-", "2\r\n"),
    ];
    let mut client = server.connect();
    for (value, expected) in cases {
        let mut request = format!("set m 0 0 {}\r\n", value.len()).into_bytes();
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\nincr m 5\r\n");
        client.send(&request);
        assert_eq!(client.line(), "STORED\r\n");
        assert_eq!(client.line(), expected, "{:?}", String::from_utf8_lossy(value));
    }
}

/// What a server sends on a fresh connection before it closes it, for `line`; `None` when it
/// keeps the connection open past the I/O deadline.
fn answer_and_close(server: &Server, line: &[u8]) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    stream.write_all(line).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some(answer),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(answer),
        Err(_) => None,
    }
}

/// memcached hangs up without a word on an HTTP request line (a browser tricked into a
/// cross-protocol attack), on the first line or a later one; a line that only resembles one
/// gets its usual answer.
#[test]
fn an_http_request_line_is_hung_up_on() {
    let servers = [
        Some(Server::start(&[])),
        (!common::against_reference() && common::require_program("/usr/bin/memcached", "memcached"))
            .then(|| Server::start_program("/usr/bin/memcached", &["-U", "0"])),
    ];
    for server in servers.iter().flatten() {
        for line in
            [&b"GET / HTTP/1.0\r\n"[..], b"PUT /x HTTP/1.1\r\n", b"DELETE HTTP/1.1\r\n", b"POST /index.php HTTP/1.1\r\nHost: x\r\n\r\n"]
        {
            assert_eq!(answer_and_close(server, line), Some(Vec::new()), "{}", show(line));
        }
        assert_eq!(answer_and_close(server, b"get a\r\nGET / HTTP/1.0\r\n"), Some(b"END\r\n".to_vec()));
        for (line, answer) in
            [(&b"GET / HTTP\r\n"[..], &b"ERROR\r\n"[..]), (b"x HTTP/1.1\r\n", b"ERROR\r\n"), (b"get HTTP/1.1\r\n", b"END\r\n")]
        {
            let mut client = server.connect();
            assert_eq!(client.call(line, b"\r\n"), answer, "{}", show(line));
            assert!(client.cmd("version").starts_with("VERSION "), "{} closed the connection", show(line));
        }
    }
}
