//! Real memcached clients against the server: libmemcached's `memccapable` conformance run
//! and memcached's own `memcached-tool` report modes.
//!
//! A missing client program fails the test in CI and skips it elsewhere
//! (`common::require_program`).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{Client, Server};

const MEMCACHED_TOOL: &str = "/usr/share/memcached/scripts/memcached-tool";

/// Runs `memcached-tool ADDR MODE` with perl and returns its standard output.
fn memcached_tool(server: &Server, mode: &str) -> String {
    let out =
        Command::new("perl").arg(MEMCACHED_TOOL).arg(format!("127.0.0.1:{}", server.port)).arg(mode).output().expect("run memcached-tool");
    assert!(out.status.success(), "memcached-tool {mode}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("memcached-tool prints text")
}

/// The `name value` rows of memcached-tool's `stats` and `settings` modes.
fn tool_fields(report: &str) -> BTreeMap<String, String> {
    report
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            Some((cols.next()?.to_string(), cols.next().unwrap_or("").to_string()))
        })
        .collect()
}

fn tools_present() -> bool {
    common::require_program("perl", "perl") && common::require_program(MEMCACHED_TOOL, "memcached")
}

/// A server holding 10 small and 5 larger items, 3 of them read once, and one miss.
fn server_with_items() -> (Server, Client) {
    let server = Server::start(&[]);
    let mut c = server.connect();
    for i in 0..10 {
        c.set(&format!("small{i}"), 0, 0, &[b's'; 100]);
    }
    for i in 0..5 {
        c.set(&format!("large{i}"), 0, 0, &[b'l'; 5000]);
    }
    for key in ["small0", "small1", "large0"] {
        assert!(c.get(key).is_some());
    }
    assert!(c.get("absent").is_none());
    (server, c)
}

#[test]
fn memccapable_passes_every_ascii_and_binary_test() {
    if !common::require_program("memccapable", "libmemcached-tools") {
        return;
    }
    let server = Server::start(&[]);
    let out = Command::new("memccapable")
        .args(["-t", "10", "-h", "127.0.0.1", "-p", &server.port.to_string()])
        .output()
        .expect("run memccapable");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let results: Vec<&str> = report.lines().filter(|l| l.trim_end().ends_with(']')).collect();
    let failed: Vec<&&str> = results.iter().filter(|l| !l.trim_end().ends_with("[pass]")).collect();
    assert!(
        failed.is_empty(),
        "memccapable tests not passed:\n{}\n\nfull report:\n{report}",
        failed.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n")
    );
    // 1.0 has 27 ascii tests (version .. stat) and 27 binary ones (noop .. stat); fewer means
    // it stopped early.
    assert!(results.len() >= 54, "only {} memccapable results:\n{report}", results.len());
    assert!(!report.to_lowercase().contains("fail"), "{report}");
    assert!(report.contains("All tests passed"), "{report}");
    assert!(out.status.success(), "memccapable exit status {}:\n{report}", out.status);
    let mut c = server.connect();
    assert!(c.cmd("version").starts_with("VERSION "), "the server answers after memccapable");
}

#[test]
fn memcached_tool_stats_prints_the_server_counters() {
    if !tools_present() {
        return;
    }
    let (server, _c) = server_with_items();
    let report = memcached_tool(&server, "stats");
    let header = report.lines().next().unwrap_or("");
    assert!(header.starts_with(&format!("#127.0.0.1:{}", server.port)) && header.contains("Field"), "header {header:?}");
    let fields = tool_fields(&report);
    let expect = [
        ("pid", server.pid().to_string()),
        ("curr_items", "15".to_string()),
        ("total_items", "15".to_string()),
        ("cmd_get", "4".to_string()),
        ("get_hits", "3".to_string()),
        ("get_misses", "1".to_string()),
        ("cmd_set", "15".to_string()),
        ("limit_maxbytes", (64u64 << 20).to_string()),
    ];
    for (name, value) in expect {
        assert_eq!(fields.get(name), Some(&value), "{name} in\n{report}");
    }
    for name in ["uptime", "time", "version", "curr_connections", "total_connections", "bytes", "evictions", "threads"] {
        assert!(fields.contains_key(name), "{name} missing in\n{report}");
    }
}

#[test]
fn memcached_tool_settings_prints_the_live_settings() {
    if !tools_present() {
        return;
    }
    let server = Server::start(&["-c", "321", "-I", "2m"]);
    let fields = tool_fields(&memcached_tool(&server, "settings"));
    assert_eq!(fields.get("maxconns").map(String::as_str), Some("321"));
    assert_eq!(fields.get("item_size_max").map(String::as_str), Some("2097152"));
    assert_eq!(fields.get("tcpport").map(String::as_str), Some(server.port.to_string().as_str()));
}

#[test]
fn memcached_tool_display_shows_a_row_per_used_slab_class() {
    if !tools_present() {
        return;
    }
    let (server, _c) = server_with_items();
    let report = memcached_tool(&server, "display");
    let mut lines = report.lines();
    assert_eq!(lines.next(), Some("  #  Item_Size  Max_age   Pages   Count   Full?  Evicted Evict_Time OOM"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let mut counts = Vec::new();
    for row in &rows {
        assert_eq!(row.len(), 9, "display row {row:?}");
        assert!(row[1].ends_with('B') || row[1].ends_with('K'), "item size {:?}", row[1]);
        assert!(row[3].parse::<u64>().expect("pages") >= 1, "a listed class has pages");
        assert!(row[5] == "yes" || row[5] == "no", "full? {:?}", row[5]);
        assert_eq!(row[6], "0", "nothing evicted");
        counts.push(row[4].parse::<u64>().expect("count"));
    }
    assert_eq!(counts.iter().sum::<u64>(), 15, "items counted over the classes:\n{report}");
    // 100-byte and 5000-byte values cannot share a class.
    assert!(counts.iter().filter(|&&n| n > 0).count() >= 2, "{report}");
    assert!(counts.contains(&10) && counts.contains(&5), "one class per size:\n{report}");
}

#[test]
fn memcached_tool_keys_and_dump_list_every_item() {
    if !tools_present() {
        return;
    }
    let (server, mut c) = server_with_items();
    c.set("odd%key", 7, 1_000, b"v");
    let keys = memcached_tool(&server, "keys");
    let mut listed: Vec<&str> = keys.lines().filter_map(|l| l.strip_prefix("key=")?.split(' ').next()).collect();
    listed.sort_unstable();
    let mut want: Vec<String> =
        (0..5).map(|i| format!("large{i}")).chain(["odd%25key".to_string()]).chain((0..10).map(|i| format!("small{i}"))).collect();
    want.sort_unstable();
    assert_eq!(listed, want, "{keys}");
    // Each line carries memcached's fields; one read item says so, an unread one does not.
    let line = |key: &str| keys.lines().find(|l| l.starts_with(&format!("key={key} "))).unwrap_or_default().to_string();
    let fields = |key: &str| line(key).split(' ').skip(1).map(|f| f.split('=').next().unwrap_or_default().to_string()).collect::<Vec<_>>();
    assert_eq!(fields("small0"), ["exp", "la", "cas", "fetch", "cls", "size"]);
    assert!(line("small0").contains(" exp=-1 ") && line("small0").contains(" fetch=yes "), "{}", line("small0"));
    assert!(line("small2").contains(" fetch=no "), "{}", line("small2"));
    // dump turns them back into add commands, value and absolute expiry included.
    let dump = memcached_tool(&server, "dump");
    assert!(dump.contains("add small3 0 0 100\r\n") || dump.contains("add small3 0 0 100\n"), "{dump}");
    let odd = dump.lines().find(|l| l.starts_with("add odd%key 7 ")).unwrap_or_else(|| panic!("{dump}"));
    let exptime: i64 = odd.split(' ').nth(3).and_then(|e| e.parse().ok()).unwrap_or_default();
    assert!(exptime > 1_000_000_000, "an absolute expiry: {odd}");
    assert_eq!(dump.lines().filter(|l| l.starts_with("add ")).count(), 16);
}

#[test]
fn lru_crawler_metadump_takes_classes_and_refuses_the_rest() {
    let (_server, mut c) = server_with_items();
    let all = String::from_utf8_lossy(&c.call(b"lru_crawler metadump hash\r\n", b"END\r\n")).into_owned();
    assert_eq!(all.lines().count(), 16, "15 items and END: {all}");
    let class_of = |key: &str| {
        let line = all.lines().find(|l| l.starts_with(&format!("key={key} "))).unwrap_or_else(|| panic!("{key}: {all}"));
        line.rsplit(" cls=").next().and_then(|rest| rest.split(' ').next()).unwrap_or_default().to_string()
    };
    let (small, large) = (class_of("small0"), class_of("large0"));
    assert_ne!(small, large);
    let one = String::from_utf8_lossy(&c.call(format!("lru_crawler metadump {small}\r\n").as_bytes(), b"END\r\n")).into_owned();
    assert_eq!(one.lines().filter(|l| l.contains(&format!(" cls={small} "))).count(), 10, "{one}");
    assert_eq!(one.lines().count(), 11, "{one}");
    let both = String::from_utf8_lossy(&c.call(format!("lru_crawler metadump {small},{large}\r\n").as_bytes(), b"END\r\n")).into_owned();
    assert_eq!(both.lines().count(), 16, "{both}");
    for (line, answer) in [
        ("lru_crawler metadump 99", "BADCLASS invalid class id"),
        ("lru_crawler metadump 0", "BADCLASS invalid class id"),
        ("lru_crawler metadump", "ERROR"),
        ("lru_crawler metadump all extra", "ERROR"),
        ("lru_crawler bogus", "ERROR"),
        ("lru_crawler", "ERROR"),
    ] {
        assert_eq!(c.cmd(line), answer, "{line}");
    }
}
