//! Pins memcached 1.6.18's meta commands (mn, mg, ms, md, ma) byte for byte: answer words,
//! return flags in request order, quiet mode, opaque, base64 keys and error answers. Each
//! expectation was read off Debian's memcached (run with
//! `MEMCACHEDREP_TEST_SERVER=/usr/bin/memcached` to re-check). Cas uniques are never pinned:
//! tests read them from a reply. This file only talks to a server over TCP.

mod common;
mod table;

use common::Server;
use table::{replace, try_check, with_key, Row};

/// Runs each row on its own connection with `{k}` replaced by its name and `KEY251` by a key
/// one byte too long; fails listing every row that did not answer as expected.
fn check_table(server: &Server, rows: &[Row]) {
    let long = "k".repeat(251);
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|(name, send, expect)| {
            let send = replace(&with_key(send, name), b"KEY251", long.as_bytes());
            try_check(server, name, &send, &with_key(expect, name)).err()
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn noop_and_get() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("mn", b"mn\r\n", b"MN\r\n"),
            ("mn_args", b"mn x y\r\n", b"MN\r\n"),
            ("mg_miss", b"mg {k} v\r\nmg {k}\r\n", b"EN\r\nEN\r\n"),
            ("mg_miss_quiet", b"mg {k} v q\r\nmn\r\n", b"MN\r\n"),
            ("mg_no_key", b"mg\r\n", b"ERROR\r\n"),
            ("mg_hit_hd", b"ms {k} 3\r\nabc\r\nmg {k}\r\n", b"HD\r\nHD\r\n"),
            ("mg_flags", b"ms {k} 3 F5\r\nabc\r\nmg {k} v f k s t O9\r\n", b"HD\r\nVA 3 f5 k{k} s3 t-1 O9\r\nabc\r\n"),
            ("mg_order", b"ms {k} 1 F7\r\nx\r\nmg {k} O1 s f k\r\n", b"HD\r\nHD O1 s1 f7 k{k}\r\n"),
            ("mg_quiet_hit", b"ms {k} 1\r\nx\r\nmg {k} k v q\r\nmn\r\n", b"HD\r\nVA 1 k{k}\r\nx\r\nMN\r\n"),
            ("mg_ttl", b"ms {k} 1 T100\r\nx\r\nmg {k} t\r\n", b"HD\r\nHD t100\r\n"),
            ("mg_touch", b"ms {k} 1\r\nx\r\nmg {k} T100\r\nmg {k} t v\r\n", b"HD\r\nHD\r\nVA 1 t100\r\nx\r\n"),
            ("mg_bad_flag", b"mg {k} x\r\nmg {k} zz\r\n", b"CLIENT_ERROR invalid flag\r\nCLIENT_ERROR invalid flag\r\n"),
            ("mg_bad_ttl", b"mg {k} Tx\r\n", b"CLIENT_ERROR bad token in command line format\r\n"),
            ("mg_hit_last", b"ms {k} 1\r\nx\r\nmg {k} h l v\r\nmg {k} h l v\r\nmg {k} l h\r\n", b"HD\r\nVA 1 h0 l0\r\nx\r\nVA 1 h1 l0\r\nx\r\nHD l0 h1\r\n"),
            ("mg_miss_echo", b"mg {k} h l k O3 v\r\n", b"EN k{k} O3\r\n"),
            ("mg_ttl_order", b"ms {k} 1 T50\r\nx\r\nmg {k} t T100\r\nmg {k} T200 t\r\nmg {k} t\r\n", b"HD\r\nHD t50\r\nHD t200\r\nHD t200\r\n"),
            ("mg_duplicate", b"mg {k} v v x\r\nmg {k} x v v\r\n", b"CLIENT_ERROR duplicate flag\r\nCLIENT_ERROR invalid flag\r\n"),
            ("mg_key_too_long", b"mg KEY251 v\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            ("mg_unbump", b"ms {k} 1\r\nx\r\nmg {k} u h l v\r\nmg {k} u h\r\nmg {k} h\r\nmg {k} h\r\n", b"HD\r\nVA 1 h0 l0\r\nx\r\nHD h0\r\nHD h0\r\nHD h1\r\n"),
            ("mg_unbump_touch", b"ms {k} 1 T100\r\nx\r\nmg {k} u T10 t\r\nmg {k} t\r\n", b"HD\r\nHD t10\r\nHD t10\r\n"),
        ],
    );
}

#[test]
fn set_modes_and_errors() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("ms_set", b"ms {k} 3\r\nabc\r\nmg {k} v\r\n", b"HD\r\nVA 3\r\nabc\r\n"),
            ("ms_return", b"ms {k} 1 k O5 T0 F3\r\nx\r\nmg {k} f v\r\n", b"HD k{k} O5\r\nVA 1 f3\r\nx\r\n"),
            (
                "ms_modes",
                b"ms {k} 1 ME\r\nx\r\nms {k} 1 ME\r\ny\r\nms {k} 1 MA\r\nz\r\nms {k} 1 MP\r\nw\r\nms {k} 1 MR\r\nr\r\nms {k} 1 MS\r\ns\r\nmg {k} v\r\n",
                b"HD\r\nNS\r\nHD\r\nHD\r\nHD\r\nHD\r\nVA 1\r\ns\r\n",
            ),
            ("ms_replace_miss", b"ms {k} 1 MR\r\nx\r\nms {k} 1 MA\r\nx\r\nms {k} 1 MP q\r\nx\r\nmn\r\n", b"NS\r\nNS\r\nNS\r\nMN\r\n"),
            ("ms_quiet", b"ms {k} 1 q\r\nx\r\nms {k} 1 q ME\r\nx\r\nmn\r\n", b"NS\r\nMN\r\n"),
            ("ms_cas_bad", b"ms {k} 1\r\nx\r\nms {k} 1 C99999999\r\ny\r\nmg {k} v\r\n", b"HD\r\nEX\r\nVA 1\r\nx\r\n"),
            ("ms_cas_miss", b"ms {k} 1 C99\r\ny\r\n", b"NF\r\n"),
            ("ms_failed_cas_zero", b"ms {k} 1 c MR k\r\nx\r\nms {k} 1 C1 c\r\nx\r\n", b"NS c0 k{k}\r\nNF c0\r\n"),
            ("ms_negative_ttl", b"ms {k} 1 T-1 q\r\nx\r\nmg {k} v\r\nms {k} 1 T2147483648\r\nx\r\nmg {k}\r\n", b"EN\r\nHD\r\nEN\r\n"),
            ("ms_duplicate", b"ms {k} 1 T1 T2\r\nx\r\nmn\r\n", b"CLIENT_ERROR duplicate flag\r\nMN\r\n"),
            ("ms_key_too_long", b"ms KEY251 1\r\nx\r\nmn\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\nMN\r\n"),
            ("ms_negative_flags", b"ms {k} 1 F-1\r\nx\r\nmg {k}\r\n", b"CLIENT_ERROR bad command line format\r\nEN\r\n"),
            ("ms_no_key", b"ms\r\n", b"ERROR\r\n"),
            ("ms_no_len", b"ms {k}\r\nms {k} abc\r\n", b"CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\n"),
            ("ms_bad_chunk", b"ms {k} 2\r\nabc\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
            ("ms_bad_mode", b"ms {k} 3 MX\r\nabc\r\nmn\r\n", b"CLIENT_ERROR invalid mode for ms M token\r\nMN\r\n"),
            ("ms_bad_flags", b"ms {k} 1 Fx\r\nx\r\nmn\r\n", b"CLIENT_ERROR bad command line format\r\nMN\r\n"),
            ("ms_bad_ttl", b"ms {k} 1 Tx\r\nx\r\nmn\r\n", b"CLIENT_ERROR bad token in command line format\r\nMN\r\n"),
            ("ms_bad_flag", b"ms {k} 1 E\r\nx\r\nmn\r\n", b"CLIENT_ERROR invalid flag\r\nMN\r\n"),
        ],
    );
}

#[test]
fn delete() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("md_hit", b"ms {k} 1\r\nx\r\nmd {k}\r\nmg {k} v\r\n", b"HD\r\nHD\r\nEN\r\n"),
            ("md_miss", b"md {k}\r\nmd {k} q\r\nmd {k} O5 k\r\n", b"NF\r\nNF\r\nNF O5 k{k}\r\n"),
            ("md_quiet", b"ms {k} 1\r\nx\r\nmd {k} q\r\nmn\r\nmg {k} v\r\n", b"HD\r\nMN\r\nEN\r\n"),
            ("md_return", b"ms {k} 1\r\nx\r\nmd {k} k O7\r\n", b"HD\r\nHD k{k} O7\r\n"),
            ("md_cas_bad", b"ms {k} 1\r\nx\r\nmd {k} C99999999\r\nmd {k} q\r\nmd {k} q\r\nmn\r\n", b"HD\r\nEX\r\nNF\r\nMN\r\n"),
            ("md_bad_flags", b"md {k} q q\r\nmd {k} C1 C2\r\nmd {k} Cx\r\nmd {k} Tx\r\nmn\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\nMN\r\n"),
            ("md_key_too_long", b"md KEY251\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            ("md_no_key", b"md\r\n", b"ERROR\r\n"),
        ],
    );
}

#[test]
fn arithmetic() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("ma_miss", b"ma {k}\r\nma {k} q\r\nmn\r\n", b"NF\r\nNF\r\nMN\r\n"),
            (
                "ma_ops",
                b"ma {k} N0 J5\r\nma {k} v\r\nma {k} MD D10 v t\r\nma {k} M- v\r\nma {k} M+ D3 v O1 k\r\nma {k} MI\r\nma {k} q\r\nmn\r\nmg {k} v\r\n",
                b"HD\r\nVA 1\r\n6\r\nVA 1 t-1\r\n0\r\nVA 1\r\n0\r\nVA 1 O1 k{k}\r\n3\r\nHD\r\nMN\r\nVA 1\r\n5\r\n",
            ),
            ("ma_autoviv_value", b"ma {k} N0 J13 v\r\nma {k} v\r\n", b"VA 2\r\n13\r\nVA 2\r\n14\r\n"),
            ("ma_non_numeric", b"ms {k} 2\r\nxy\r\nma {k}\r\nma {k} q\r\n", b"HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
            ("ma_autoviv_ttl", b"ma {k} N50 J3 t v\r\nma {k}x N0 T70 t\r\nma {k}y N10 J1 C5 v\r\n", b"VA 1 t50\r\n3\r\nHD t70\r\nVA 1\r\n1\r\n"),
            ("ma_cas_bad", b"ms {k} 1 F5\r\n1\r\nma {k} C99999999\r\nma {k} t f v\r\n", b"HD\r\nEX\r\nVA 1 t-1\r\n2\r\n"),
            ("ma_duplicate", b"ma {k} q q\r\nma {k} D1 D2\r\nma {k} D18446744073709551616\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\n"),
            ("ma_bad_mode", b"ma {k} Mx\r\n", b"CLIENT_ERROR invalid mode for ma M token\r\n"),
            ("ma_bad_delta", b"ma {k} Dx\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
        ],
    );
}

#[test]
fn stale_and_win() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("vivify", b"mg {k} N30 v t s\r\nmg {k} v t\r\nmg {k} t\r\n", b"VA 0 t30 s0 W\r\n\r\nVA 0 t30 Z\r\n\r\nHD t30 Z\r\n"),
            ("vivify_forever", b"mg {k} N0 s\r\n", b"HD s0 W\r\n"),
            ("recache", b"ms {k} 1 T100\r\nx\r\nmg {k} R200 v t\r\nmg {k} v t\r\nmg {k} R50 t\r\n", b"HD\r\nVA 1 t100 W\r\nx\r\nVA 1 t100 Z\r\nx\r\nHD t100 Z\r\n"),
            ("recache_not_yet", b"ms {k} 1 T100\r\nx\r\nmg {k} R50 v\r\nmg {k} R101 k\r\n", b"HD\r\nVA 1\r\nx\r\nHD k{k} W\r\n"),
            ("recache_no_ttl", b"ms {k} 1\r\nx\r\nmg {k} R30 v\r\n", b"HD\r\nVA 1\r\nx\r\n"),
            (
                "invalidate",
                b"ms {k} 1\r\nx\r\nmd {k} I T30\r\nmg {k} v t\r\nmg {k} v\r\nms {k} 1\r\nz\r\nmg {k} v\r\n",
                b"HD\r\nHD\r\nVA 1 t30 X W\r\nx\r\nVA 1 Z X\r\nx\r\nHD\r\nVA 1\r\nz\r\n",
            ),
            ("invalidate_quiet", b"md {k} I\r\nms {k} 1\r\nx\r\nmd {k} I q\r\nmn\r\nmg {k} s\r\nmg {k} s\r\n", b"NF\r\nHD\r\nMN\r\nHD s1 X W\r\nHD s1 Z X\r\n"),
        ],
    );
}

/// The finer points of memcached's flag checks and quiet mode.
#[test]
fn flag_checks_and_quiet() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("opaque_limit", b"mg {k} O1234567890123456789012345678901 v\r\nmg {k} O12345678901234567890123456789012 v\r\n", b"EN O1234567890123456789012345678901\r\nCLIENT_ERROR opaque token too long\r\n"),
            ("ms_mode_case", b"ms {k} 1 Ms\r\nx\r\nms {k} 1 Me\r\nx\r\nms {k} 1 MEE\r\nx\r\nms {k} 1 M\r\nx\r\nmn\r\n", b"CLIENT_ERROR invalid mode for ms M token\r\nCLIENT_ERROR invalid mode for ms M token\r\nCLIENT_ERROR incorrect length for M token\r\nCLIENT_ERROR incorrect length for M token\r\nMN\r\n"),
            ("ma_mode_case", b"ma {k} Mi\r\nma {k} Md\r\nma {k} MII\r\nma {k} M\r\nma {k} M+\r\n", b"CLIENT_ERROR invalid mode for ma M token\r\nCLIENT_ERROR invalid mode for ma M token\r\nCLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\nNF\r\n"),
            ("md_unknown", b"md {k} x\r\nmd {k} a\r\nmd {k} 1\r\nmd {k} v\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\nNF\r\n"),
            ("ma_unknown", b"ma {k} x1\r\nma {k} z\r\nma {k} v\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\nNF\r\n"),
            ("md_ma_bad_base64", b"md zz b\r\nma zz b\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\n"),
            ("ma_quiet", b"ms {k} 1\r\n5\r\nma {k} q v\r\nma {k} q\r\nmn\r\nmg {k} v\r\n", b"HD\r\nMN\r\nVA 1\r\n7\r\n"),
            ("ma_quiet_creates", b"ma {k} N0 J5 q v\r\nmn\r\nma {k} q v t\r\nmn\r\nmg {k} v\r\n", b"VA 1\r\n5\r\nMN\r\nMN\r\nVA 1\r\n6\r\n"),
            ("ms_quiet_bad_chunk", b"ms {k} 2 q\r\nabc\r\nmn\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\nMN\r\n"),
            ("ms_empty", b"ms {k} 0\r\n\r\nmg {k} v s\r\n", b"HD\r\nVA 0 s0\r\n\r\n"),
            ("vivify_quiet", b"mg {k} N5 q v\r\nmg {k} q v\r\nmn\r\n", b"VA 0 W\r\n\r\nVA 0 Z\r\n\r\nMN\r\n"),
        ],
    );
}

#[test]
fn too_large_is_always_answered() {
    let server = Server::start(&[]);
    let big = vec![b'x'; 1_100_000];
    for (flags, before) in [("", ""), (" q", "ms {k} 1\r\nx\r\n"), (" MA", "ms {k} 1\r\nx\r\n")] {
        let key = format!("big{}", flags.trim());
        let mut send = before.replace("{k}", &key).into_bytes();
        send.extend_from_slice(format!("ms {key} {}{flags}\r\n", big.len()).as_bytes());
        send.extend_from_slice(&big);
        send.extend_from_slice(format!("\r\nmg {key} v\r\n").as_bytes());
        let expect = format!("{}SERVER_ERROR object too large for cache\r\nEN\r\n", if before.is_empty() { "" } else { "HD\r\n" });
        try_check(&server, &key, &send, expect.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn base64_keys() {
    let server = Server::start(&[]);
    check_table(
        &server,
        &[
            ("b64_set", b"ms YjY0 3 b k O1\r\nabc\r\nmg b64 v\r\nmg YjY0 b v k\r\n", b"HD kYjY0 b O1\r\nVA 3\r\nabc\r\nVA 3 kYjY0 b\r\nabc\r\n"),
            ("b64_bad", b"mg YQ= b v\r\nms YQ= 1 b\r\nx\r\nmn\r\n", b"CLIENT_ERROR error decoding key\r\nCLIENT_ERROR error decoding key\r\nMN\r\n"),
            ("b64_delete", b"ms b64d 1\r\nx\r\nmd YjY0ZA== b\r\nmg b64d\r\n", b"HD\r\nHD\r\nEN\r\n"),
        ],
    );
}

/// Reads the number after ` c` in a reply line.
fn cas_in(line: &str) -> u64 {
    let field = line.trim_end().split(' ').find(|f| f.starts_with('c')).unwrap_or_else(|| panic!("no c flag in {line:?}"));
    field[1..].parse().expect("cas number")
}

#[test]
fn cas_compare() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.send(b"ms casok 1 c\r\nx\r\n");
    let cas = cas_in(&client.line());
    client.send(b"mg casok c\r\n");
    assert_eq!(cas_in(&client.line()), cas);
    client.send(b"mg casok c v\r\n");
    let line = client.line();
    assert_eq!(cas_in(&line), cas, "{line}");
    assert_eq!(client.line(), "x\r\n");
    client.send(format!("ms casok 1 C{cas}\r\ny\r\nmg casok c v\r\n").as_bytes());
    assert_eq!(client.line(), "HD\r\n");
    let line = client.line();
    let new_cas = cas_in(&line);
    assert_ne!(new_cas, cas);
    assert_eq!(client.line(), "y\r\n");
    for (mode, right) in [("ME", "NS"), ("MA", "HD"), ("MP", "HD"), ("MR", "HD"), ("MS", "HD")] {
        client.send(b"ms casmode 1 c\r\nx\r\n");
        let unique = cas_in(&client.line());
        let wrong = if mode == "ME" { "NS" } else { "EX" };
        client.send(format!("ms casmode 1 {mode} C{}\r\ny\r\nms casmode 1 {mode} C{unique}\r\ny\r\n", unique + 1000).as_bytes());
        assert_eq!((client.line(), client.line()), (format!("{wrong}\r\n"), format!("{right}\r\n")), "mode {mode}");
    }
    client.send(b"ms casgone 1 C5 ME\r\nx\r\nms casgone2 1 C5 MA\r\nx\r\nms casgone3 1 C5 MR\r\nx\r\n");
    assert_eq!((client.line(), client.line(), client.line()), ("HD\r\n".into(), "NS\r\n".into(), "NF\r\n".into()));
    client.send(format!("md casok C{cas}\r\nmd casok C{new_cas}\r\nmg casok\r\n").as_bytes());
    assert_eq!(client.line(), "EX\r\n");
    assert_eq!(client.line(), "HD\r\n");
    assert_eq!(client.line(), "EN\r\n");
    client.send(b"ma casn N0 J1 c v\r\n");
    let line = client.line();
    assert!(line.starts_with("VA 1 c"), "{line}");
    assert_eq!(client.line(), "1\r\n");
}

/// What meta commands add to the `stats` counters, as memcached 1.6.18 counts them: an mg
/// with T hitting as a touch (not a get), a vivified miss as a get hit, an md refused by C
/// as a delete miss; md I, an ma refused by C and an ma that creates its counter as nothing;
/// none of them as `cmd_meta`.
#[test]
fn meta_commands_count_as_memcached() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    client.send(
        b"ms s1 1\r\n1\r\nmg s1 v\r\nmg nx v\r\nmg s1 T10\r\nmg nx T10\r\nmd s1\r\nmd nx\r\nms s2 1\r\n1\r\nma s2\r\nma s2 MD\r\nma nx\r\nma nx MD\r\n\
ms s2 1 C1\r\n1\r\nmd s2 C1\r\nmg s3 N10\r\nmd s2 I\r\nma s4 N0\r\nma s2 C1\r\nmn\r\n",
    );
    client.read_until(b"MN\r\n");
    let stats = client.stats("");
    let stat = |name: &str| stats.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_else(|| panic!("no stat {name}"));
    for (name, expected) in [
        ("cmd_get", "4"),
        ("cmd_set", "3"),
        ("cmd_touch", "1"),
        ("cmd_meta", "0"),
        ("get_hits", "2"),
        ("get_misses", "2"),
        ("touch_hits", "1"),
        ("touch_misses", "0"),
        ("delete_hits", "1"),
        ("delete_misses", "2"),
        ("incr_hits", "1"),
        ("incr_misses", "1"),
        ("decr_hits", "1"),
        ("decr_misses", "1"),
        ("cas_badval", "1"),
        ("cas_hits", "0"),
        ("cas_misses", "0"),
    ] {
        assert_eq!(stat(name), expected, "{name}");
    }
}
