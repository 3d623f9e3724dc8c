//! Unit tests of the command line: defaults, every flag's reading and refusal (memcached
//! 1.6.18's words and exit statuses), `-h`, and `stats settings`. They run nothing: the built
//! binary is tested in `tests/flags.rs`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use super::flags::{usage, FLAGS, WIDTH};
use super::suboptions::SUB_OPTIONS;
use super::{parse, utf8_args, Action, Port, Protocol, Settings, VERSION};

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn run(line: &str) -> Settings {
    match parse(&args(line)) {
        Ok(Action::Run(settings)) => *settings,
        other => panic!("{line}: {other:?}"),
    }
}

fn refused(line: &str) -> (String, i32) {
    match parse(&args(line)) {
        Err(refusal) => (refusal.line, refusal.status),
        Ok(action) => panic!("{line} was accepted: {action:?}"),
    }
}

fn printed(line: &str) -> String {
    match parse(&args(line)) {
        Ok(Action::Print(text)) => text,
        other => panic!("{line}: {other:?}"),
    }
}

fn stat(settings: &Settings, name: &str) -> String {
    let stats = settings.stats_settings();
    stats.into_iter().find(|(n, _)| *n == name).map(|(_, v)| v).unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn defaults_are_memcacheds() {
    let s = run("");
    assert_eq!(s.port, Port::Number(11211));
    assert_eq!(s.udp_port, Port::Off);
    assert_eq!(s.socket_path, None);
    assert_eq!(s.socket_mask, 0o700);
    assert!(s.listen.is_empty());
    assert!(!s.daemonize && !s.max_core && !s.no_evict && !s.lock_memory && !s.large_pages);
    assert_eq!(s.user, None);
    assert_eq!(s.memory_limit, 64 << 20);
    assert_eq!(s.max_conns, 1024);
    assert_eq!(s.verbose, 0);
    assert_eq!(s.pid_file, None);
    assert_eq!(s.growth_factor, 1.25);
    assert_eq!(s.chunk_size, 48);
    assert_eq!(s.prefix_delimiter, b':');
    assert!(!s.detail_enabled);
    assert_eq!(s.threads, 4);
    assert_eq!(s.reqs_per_event, 20);
    assert!(s.use_cas && s.flush_enabled && s.maxconns_fast);
    assert_eq!(s.backlog, 1024);
    assert_eq!(s.protocol, Protocol::Auto);
    assert_eq!(s.item_size_max, 1 << 20);
    assert_eq!(s.idle_timeout, 0);
    assert_eq!(s.hash_power, 0);
    assert!(s.extended.is_empty());
    assert_eq!(s.peer, None);
    assert_eq!((s.repl_port, s.repl_queue), (11212, 8192));
    assert_eq!((s.repl_join_wait, s.repl_drain_timeout, s.repl_tombstone_ttl), (5, 30, 3600));
}

#[test]
fn default_matches_an_empty_command_line() {
    let a = format!("{:?}", run(""));
    let b = format!("{:?}", Settings::default());
    assert_eq!(a, b);
}

#[test]
fn stats_settings_defaults_match_memcached_1_6_18() {
    // From `stats settings` of memcached 1.6.18 started with -p 11211 -U 0, up to
    // inline_ascii_response; ext_*, ssl_*, num_napi_ids and memory_file are omitted. Ours for
    // replication follow.
    let expected = "maxbytes 67108864|maxconns 1024|tcpport 11211|udpport 0|inter NULL|verbosity 0|\
        oldest 0|evictions on|domain_socket NULL|umask 700|shutdown_command no|growth_factor 1.25|\
        chunk_size 48|num_threads 4|num_threads_per_udp 4|stat_key_prefix :|detail_enabled no|\
        reqs_per_event 20|cas_enabled yes|tcp_backlog 1024|binding_protocol auto-negotiate|\
        auth_enabled_sasl no|auth_enabled_ascii no|item_size_max 1048576|maxconns_fast yes|\
        hashpower_init 0|slab_reassign yes|slab_automove 1|slab_automove_ratio 0.80|\
        slab_automove_window 30|slab_chunk_max 524288|lru_crawler yes|lru_crawler_sleep 100|\
        lru_crawler_tocrawl 0|tail_repair_time 0|flush_enabled yes|dump_enabled yes|\
        hash_algorithm murmur3|lru_maintainer_thread yes|lru_segmented yes|hot_lru_pct 20|\
        warm_lru_pct 40|hot_max_factor 0.20|warm_max_factor 2.00|temp_lru no|temporary_ttl 61|\
        idle_timeout 0|watcher_logbuf_size 262144|worker_logbuf_size 65536|read_buf_mem_limit 0|\
        track_sizes no|inline_ascii_response no|repcached_peer NULL|replication_port 11212|\
        replication_queue 8192|repl_join_wait 5|repl_drain_timeout 30|repl_tombstone_ttl 3600|repcached_link NULL";
    let got: Vec<String> = run("").stats_settings().iter().map(|(n, v)| format!("{n} {v}")).collect();
    assert_eq!(got.join("|"), expected);
}

#[test]
fn each_flag_sets_its_field() {
    let s = run("-p 23001 -U 0 -l 127.0.0.1 -d -r -u nobody -m 128 -M -c 50 -k -P /tmp/x.pid \
                 -f 1.5 -n 64 -L -D # -t 8 -R 5 -C -b 10 -B ascii -I 2m -F");
    assert_eq!(s.port, Port::Number(23001));
    assert_eq!(s.listen, vec!["127.0.0.1"]);
    assert!(s.daemonize && s.max_core && s.no_evict && s.lock_memory && s.large_pages);
    assert_eq!(s.user.as_deref(), Some("nobody"));
    assert_eq!(s.memory_limit, 128 << 20);
    assert_eq!(s.max_conns, 50);
    assert_eq!(s.pid_file.as_deref(), Some(std::path::Path::new("/tmp/x.pid")));
    assert_eq!(s.growth_factor, 1.5);
    assert_eq!(s.chunk_size, 64);
    assert_eq!(s.prefix_delimiter, b'#');
    assert!(s.detail_enabled);
    assert_eq!(s.threads, 8);
    assert_eq!(s.reqs_per_event, 5);
    assert!(!s.use_cas && !s.flush_enabled);
    assert_eq!(s.backlog, 10);
    assert_eq!(s.protocol, Protocol::Ascii);
    assert_eq!(s.item_size_max, 2 << 20);
    assert_eq!(stat(&s, "binding_protocol"), "ascii");
    assert_eq!(stat(&s, "evictions"), "off");
    assert_eq!(stat(&s, "stat_key_prefix"), "#");
}

#[test]
fn long_names_work_with_equals_and_apart() {
    let s = run("--port=23002 --memory-limit 32 --conn-limit=7 --threads=2 --listen=::1 \
                 --max-item-size=512k --protocol=auto --disable-cas --verbose");
    assert_eq!((s.port, s.memory_limit, s.max_conns, s.threads), (Port::Number(23002), 32 << 20, 7, 2));
    assert_eq!(s.listen, vec!["::1"]);
    assert_eq!(s.item_size_max, 512 << 10);
    assert!(!s.use_cas);
    assert_eq!(s.verbose, 1);
}

#[test]
fn unix_socket_disables_tcp_and_takes_an_octal_mask() {
    let s = run("-s /tmp/mc.sock -a 755 -p 23003");
    assert_eq!(s.port, Port::Off);
    assert_eq!(s.socket_mask, 0o755);
    assert_eq!(stat(&s, "umask"), "755");
    assert_eq!(stat(&s, "domain_socket"), "/tmp/mc.sock");
}

#[test]
fn item_size_suffixes_in_either_case() {
    assert_eq!(run("-I 1M").item_size_max, 1 << 20);
    assert_eq!(run("-I 1m").item_size_max, 1 << 20);
    assert_eq!(run("-I 1536k").item_size_max, 1536 << 10);
    assert_eq!(run("-I 1536K").item_size_max, 1536 << 10);
    assert_eq!(run("-I 2097152").item_size_max, 2 << 20);
    assert_eq!(run("-o slab_chunk_max=1024 -I 1k").item_size_max, 1024);
    assert_eq!(run("-m 2048 -I 1024m").item_size_max, 1 << 30);
}

#[test]
fn listen_lists_and_repeats_accumulate() {
    let s = run("-l 127.0.0.1,127.0.0.2:23004 -l [::1]:23005 -l localhost, -l [fe80::1]");
    assert_eq!(s.listen, vec!["127.0.0.1", "127.0.0.2:23004", "[::1]:23005", "localhost", "[fe80::1]"]);
    assert_eq!(stat(&s, "inter"), "127.0.0.1,127.0.0.2:23004,[::1]:23005,localhost,[fe80::1]");
}

#[test]
fn verbosity_counts_every_form() {
    assert_eq!(run("-v").verbose, 1);
    assert_eq!(run("-vv").verbose, 2);
    assert_eq!(run("-vvv").verbose, 3);
    assert_eq!(run("-v -v").verbose, 2);
    assert_eq!(run("-v --verbose -v").verbose, 3);
    assert_eq!(run("-vvvv -v").verbose, 3);
}

#[test]
fn sub_options_are_honoured_and_recorded() {
    let s = run("-o idle_timeout=5,hashpower=16,no_maxconns_fast -o hot_lru_pct=10,track_sizes");
    assert_eq!(s.idle_timeout, 5);
    assert_eq!(s.hash_power, 16);
    assert!(!s.maxconns_fast);
    assert_eq!(s.extended[0], ("idle_timeout".to_string(), "5".to_string()));
    assert_eq!(s.extended[3], ("hot_lru_pct".to_string(), "10".to_string()));
    assert_eq!(stat(&s, "idle_timeout"), "5");
    assert_eq!(stat(&s, "hashpower_init"), "16");
    assert_eq!(stat(&s, "maxconns_fast"), "no");
    assert_eq!(stat(&s, "hot_lru_pct"), "10");
    assert_eq!(stat(&s, "track_sizes"), "yes");
    assert!(run("-o no_maxconns_fast,maxconns_fast").maxconns_fast);
}

#[test]
fn sub_options_show_as_memcached_shows_them() {
    let s = run("-o slab_chunk_max=16384,read_buf_mem_limit=5,worker_logbuf_size=128,temporary_ttl=30");
    assert_eq!(stat(&s, "slab_chunk_max"), "16384");
    assert_eq!(stat(&s, "read_buf_mem_limit"), "5242880");
    assert_eq!(stat(&s, "worker_logbuf_size"), "131072");
    assert_eq!((stat(&s, "temp_lru").as_str(), stat(&s, "temporary_ttl").as_str()), ("yes", "30"));
    let s = run("-o slab_automove=2,hot_max_factor=0.5,hash_algorithm=xxh3,no_lru_crawler");
    assert_eq!(stat(&s, "slab_automove"), "2");
    assert_eq!(stat(&s, "hot_max_factor"), "0.50");
    assert_eq!(stat(&s, "hash_algorithm"), "xxh3");
    assert_eq!(stat(&s, "lru_crawler"), "no");
}

#[test]
fn no_modern_is_applied_in_order_like_memcached() {
    let s = run("-o slab_automove=2,no_modern,lru_crawler -I 2m");
    assert!(!s.maxconns_fast);
    for (name, value) in [
        ("slab_reassign", "no"),
        ("slab_automove", "0"),
        ("slab_chunk_max", "1048576"),
        ("lru_crawler", "yes"),
        ("hash_algorithm", "jenkins"),
        ("lru_maintainer_thread", "no"),
        ("lru_segmented", "no"),
    ] {
        assert_eq!(stat(&s, name), value, "{name}");
    }
    let s = run("-o no_modern,slab_chunk_max=16384");
    assert_eq!(stat(&s, "slab_chunk_max"), "16384");
    assert!(run("-o no_modern,maxconns_fast").maxconns_fast);
    assert_eq!(refused("-o no_modern -I 512k").0, "slab_chunk_max (bytes: 1048576) cannot be larger than -I (item_size_max 524288)");
}

#[test]
fn refusals_use_memcacheds_words_and_status() {
    let cases: &[(&str, &str, i32)] = &[
        ("-p 70000", "ERROR: Invalid port number 70000. (-p 70000)", 64),
        ("-c 0", "Maximum connections must be greater than 0 (-c 0)", 1),
        ("-t 0", "Number of threads must be greater than 0 (-t 0)", 1),
        ("-f 1", "Factor must be greater than 1 (-f 1)", 1),
        ("-f 0.5", "Factor must be greater than 1 (-f 0.5)", 1),
        ("-n 0", "Chunk size must be greater than 0 (-n 0)", 1),
        ("-R 0", "Number of requests per event must be greater than 0 (-R 0)", 1),
        ("-I 512", "Item max size cannot be less than 1024 bytes. (-I 512)", 64),
        ("-I 1k", "slab_chunk_max (bytes: 524288) cannot be larger than -I (item_size_max 1024)", 64),
        ("-I 600k", "-I (item_size_max: 614400) must be evenly divisible by slab_chunk_max (bytes: 524288)", 64),
        ("-I 100000000000", "Cannot set item size limit higher than 1/2 of memory max. (-I 100000000000, -m 64)", 64),
        ("-I 1025m -m 8192", "Cannot set item size limit higher than a gigabyte. (-I 1074790400)", 64),
        ("-m 1", "Cannot set item size limit higher than 1/2 of memory max. (-I 1048576, -m 1)", 64),
        ("-B foo", "Invalid value for binding protocol: foo -- should be one of auto, binary, or ascii (-B foo)", 64),
        ("-o nosuch", "Illegal suboption \"nosuch\"", 1),
        ("-o noexist=1", "Illegal suboption \"noexist=1\"", 1),
        ("-o idle_timeout=5,,hashpower=16", "Illegal suboption \"\"", 1),
        ("-o hashpower=11", "Initial hashtable multiplier of 11 is too low (-o hashpower=11)", 1),
        ("-o hashpower", "Missing numeric argument for hashpower", 1),
        ("-o idle_timeout", "Missing numeric argument for idle_timeout", 1),
        ("-o slab_automove=3", "slab_automove must be between 0 and 2", 1),
        ("-o hot_lru_pct=80", "hot_lru_pct must be > 1 and < 80", 1),
        ("-o hot_lru_pct=50,warm_lru_pct=50", "hot_lru_pct + warm_lru_pct cannot be more than 80% combined", 64),
        ("-o temporary_ttl=10,no_lru_maintainer", "temporary_ttl requires lru_maintainer to be enabled", 64),
        ("-o tail_repair_time=9", "Cannot set tail_repair_time to less than 10 seconds", 1),
        ("-o hash_algorithm=foo", "Unknown hash_algorithm option (jenkins, murmur3, xxh3)", 1),
        ("-o lru_crawler_sleep=1000001", "LRU crawler sleep must be between 0 and 1 second (-o lru_crawler_sleep=1000001)", 1),
        ("-o lru_crawler_tocrawl=x", "lru_crawler_tocrawl takes a numeric 32bit value", 1),
        ("-o read_buf_mem_limit=-1", "could not parse argument to read_buf_mem_limit", 1),
        ("-o hot_max_factor=0", "hot_max_factor must be > 0", 1),
        ("-o slab_chunk_max=3", "-I (item_size_max: 1048576) must be evenly divisible by slab_chunk_max (bytes: 3)", 64),
        ("-o slab_chunk_max=2097152 -I 2m", "slab_chunk_max (bytes: 2097152) must divide evenly into 1048576 (slab_page_size)", 64),
        ("-o worker_logbuf_size=1", "slab size 1 is out of valid range (-o worker_logbuf_size=1)", 64),
        ("-z", "memcachedrep: invalid option -- 'z'", 1),
        ("--nosuch", "memcachedrep: unrecognized option '--nosuch'", 1),
        ("-p", "memcachedrep: option requires an argument -- 'p'", 1),
        ("--port", "memcachedrep: option '--port' requires an argument", 1),
        ("-l 127.0.0.1:abc", "Invalid port number: \"abc\" (-l 127.0.0.1:abc)", 71),
        ("-l [::1", "Invalid IPV6 address: \"[::1\" (-l [::1)", 71),
    ];
    for (line, message, status) in cases {
        assert_eq!(refused(line), (message.to_string(), *status), "{line}");
    }
}

#[test]
fn hashpower_must_exceed_the_item_lock_table() {
    assert_eq!(run("-o hashpower=12 -t 3").hash_power, 12);
    assert_eq!(run("-t 10 -o hashpower=14").hash_power, 14);
    let (line, status) = refused("-o hashpower=12");
    let words = "Hash table power size (12) cannot be equal to or less than item lock table (12).";
    assert!(line.starts_with(words), "{line}");
    assert_eq!(status, 1);
    assert!(refused("-o hashpower=15 -t 21").0.contains("item lock table (15)"));
    assert!(refused("-o hashpower=33").0.starts_with("Initial hashtable multiplier of 33 is too high."));
}

#[test]
fn values_memcached_would_misread_are_refused_naming_the_flag() {
    let cases: &[(&str, &str, i32)] = &[
        ("-m abc", "Invalid value for -m (--memory-limit): \"abc\"", 64),
        ("-m -1", "Invalid value for -m (--memory-limit): \"-1\"", 64),
        ("-m 64k", "Invalid value for -m (--memory-limit): \"64k\"", 64),
        ("-I 2g", "Invalid value for -I (--max-item-size): \"2g\"", 64),
        ("-I 1.5m", "Invalid value for -I (--max-item-size): \"1.5m\"", 64),
        ("-D ab", "Invalid value for -D: \"ab\"", 1),
        ("-b x", "Invalid value for -b (--listen-backlog): \"x\"", 64),
        ("-a 999", "Invalid value for -a (--unix-mask): \"999\"", 64),
        ("-c abc", "Invalid value for -c (--conn-limit): \"abc\"", 1),
        ("-p abc", "Invalid value for -p (--port): \"abc\"", 64),
        ("-f nan", "Invalid value for -f (--slab-growth-factor): \"nan\"", 1),
        ("-o idle_timeout=x", "Invalid value for -o idle_timeout: \"x\"", 1),
        ("-o hashpower=16=3", "Invalid value for -o hashpower: \"16=3\"", 1),
    ];
    for (line, message, status) in cases {
        assert_eq!(refused(line), (message.to_string(), *status), "{line}");
    }
}

#[test]
fn binary_protocol_is_accepted() {
    let s = run("-B binary");
    assert_eq!(s.protocol, Protocol::Binary);
    assert_eq!(stat(&s, "binding_protocol"), "binary");
}

#[test]
fn unsupported_features_are_refused_plainly() {
    assert_eq!(refused("-o ext_path=/tmp/x:64m").0, "-o ext_path: extstore (external storage) is not supported");
    assert_eq!(refused("-o ssl_key=x").0, "-o ssl_key: TLS is not supported");
    assert_eq!(refused("-A"), ("memcachedrep: -A (--enable-shutdown) is not supported".into(), 1));
    assert_eq!(refused("--enable-sasl").0, "memcachedrep: -S (--enable-sasl) is not supported");
    assert_eq!(refused("-t 1000").0, "Number of threads must be at most 256 (-t 1000)");
    assert_eq!(refused("-p 1 extra").0, "memcachedrep: unexpected argument \"extra\"");
    assert_eq!(run("-U 0 -B auto").udp_port, Port::Off);
    assert_eq!(run("-U 11211").udp_port, Port::Number(11211));
    // -1 asks the kernel for a free port, as in memcached; `stats settings` shows -1.
    assert_eq!(run("-U -1").udp_port, Port::Any);
    assert_eq!(run("-p -1").port, Port::Any);
    assert_eq!(stat(&run("-p -1 -U -1"), "tcpport"), "-1");
    assert_eq!(refused("-U 70000").0, "Invalid value for -U (--udp-port): \"70000\"");
}

#[test]
fn print_flags_act_when_met() {
    assert_eq!(printed("-V"), format!("memcachedrep {VERSION}\n"));
    assert_eq!(printed("--version -p 70000"), format!("memcachedrep {VERSION}\n"));
    assert_eq!(printed("-h"), usage());
    assert!(printed("-i").contains("BSD 3-Clause"));
    assert!(parse(&args("-c 0 -V")).is_err());
    assert_eq!(printed("-V -c 0"), format!("memcachedrep {VERSION}\n"));
}

#[test]
fn usage_lists_every_flag_and_sub_option() {
    let text = usage();
    for flag in FLAGS {
        assert!(text.lines().any(|l| l.starts_with(&format!("-{}", flag.short))), "-{}", flag.short);
        if !flag.long.is_empty() {
            assert!(text.contains(&format!("--{}", flag.long)), "--{}", flag.long);
        }
    }
    for sub in SUB_OPTIONS {
        assert!(text.lines().any(|l| l.get(5..).is_some_and(|r| r.starts_with(sub.name))), "{}", sub.name);
    }
    assert!(text.lines().all(|l| l.len() <= WIDTH), "a line is too wide");
    assert!(text.contains("(default: 11211)"));
}

#[test]
fn every_sub_option_in_the_table_is_accepted() {
    for sub in SUB_OPTIONS {
        let value = match sub.value {
            "" => String::new(),
            "F" | "R" => "=0.5".into(),
            "NAME" => "=jenkins".into(),
            _ if sub.name == "hashpower" => "=20".into(),
            _ if sub.name == "slab_automove" => "=2".into(),
            _ if sub.name == "slab_chunk_max" => "=1024".into(),
            _ if sub.name == "worker_logbuf_size" => "=64".into(),
            _ => "=10".into(),
        };
        run(&format!("-o {}{value}", sub.name));
    }
}

fn refused_args(list: &[&str]) -> (String, i32) {
    let list: Vec<String> = list.iter().map(|a| a.to_string()).collect();
    match parse(&list) {
        Err(refusal) => (refusal.line, refusal.status),
        Ok(action) => panic!("{list:?} was accepted: {action:?}"),
    }
}

#[test]
fn replication_flags_set_their_fields() {
    let s = run("-x 10.0.0.2 -X 11300 -q 100 -o repl_join_wait=0,repl_drain_timeout=7,repl_tombstone_ttl=0");
    assert_eq!(s.peer.as_deref(), Some("10.0.0.2"));
    assert_eq!((s.repl_port, s.repl_queue), (11300, 100));
    assert_eq!((s.repl_join_wait, s.repl_drain_timeout, s.repl_tombstone_ttl), (0, 7, 0));
    let expected = [
        ("repcached_peer", "10.0.0.2:11300"),
        ("replication_port", "11300"),
        ("replication_queue", "100"),
        ("repl_join_wait", "0"),
        ("repl_drain_timeout", "7"),
        ("repl_tombstone_ttl", "0"),
    ];
    for (name, value) in expected {
        assert_eq!(stat(&s, name), value, "{name}");
    }
    let s = run("--peer=peer.example:12000 --replication-port 12001 --queue-size=1");
    assert_eq!(s.peer.as_deref(), Some("peer.example:12000"));
    assert_eq!(stat(&s, "repcached_peer"), "peer.example:12000");
    assert_eq!((s.repl_port, s.repl_queue), (12001, 1));
    assert_eq!(run("-q 16777216").repl_queue, 1 << 24);
    assert_eq!(run("-X 65535 -X 1").repl_port, 1);
}

#[test]
fn peer_takes_a_name_an_ipv4_or_a_bracketed_ipv6_with_an_optional_port() {
    for peer in [
        "localhost",
        "node-b.example.com",
        "node_b",
        "127.0.0.2",
        "127.0.0.2:11212",
        "db2:1",
        "[::1]",
        "[::1]:65535",
        "[fe80::1:2]:11300",
        "[::ffff:10.0.0.1]",
    ] {
        assert_eq!(run(&format!("-x {peer}")).peer.as_deref(), Some(peer));
    }
}

#[test]
fn peer_address_takes_brackets_off_and_defaults_the_port_to_x() {
    let address = |line: &str| run(line).peer_address().map(|(host, port)| (host.to_string(), port));
    assert_eq!(address(""), None);
    assert_eq!(address("-x db2"), Some(("db2".into(), 11212)));
    assert_eq!(address("-x db2 -X 11300"), Some(("db2".into(), 11300)));
    assert_eq!(address("-X 11300 -x 10.0.0.2:11400"), Some(("10.0.0.2".into(), 11400)));
    assert_eq!(address("-x [::1]"), Some(("::1".into(), 11212)));
    assert_eq!(address("-x [fe80::1:2]:11300 -X 1"), Some(("fe80::1:2".into(), 11300)));
    assert_eq!(stat(&run("-x [::1] -X 11300"), "repcached_peer"), "[::1]:11300");
    assert_eq!(stat(&run("-x 127.0.0.2"), "repcached_peer"), "127.0.0.2:11212");
}

#[test]
fn bad_peers_are_refused_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["-x", ""], "Invalid value for -x (--peer): \"\""),
        (&["--peer="], "Invalid value for -x (--peer): \"\""),
        (&["-x", ":11212"], "Invalid value for -x (--peer): \":11212\""),
        (&["-x", "::1"], "an IPv6 peer address goes in brackets: [address] or [address]:port (-x ::1)"),
        (&["-x", "fe80::2:1"], "an IPv6 peer address goes in brackets: [address] or [address]:port (-x fe80::2:1)"),
        (&["-x", "db2:0"], "Invalid peer port \"0\": it must be 1 to 65535 (-x db2:0)"),
        (&["-x", "db2:70000"], "Invalid peer port \"70000\": it must be 1 to 65535 (-x db2:70000)"),
        (&["-x", "db2:"], "Invalid peer port \"\": it must be 1 to 65535 (-x db2:)"),
        (&["-x", "db2:+5"], "Invalid peer port \"+5\": it must be 1 to 65535 (-x db2:+5)"),
        (&["-x", "[::1]:x"], "Invalid peer port \"x\": it must be 1 to 65535 (-x [::1]:x)"),
        (&["-x", "[::1"], "Invalid IPV6 address: \"[::1\" (-x [::1)"),
        (&["-x", "[db2]"], "Invalid IPV6 address: \"[db2]\" (-x [db2])"),
        (&["-x", "[::1]11212"], "Invalid IPV6 address: \"[::1]11212\" (-x [::1]11212)"),
        (&["-x", "db 2"], "Invalid peer host \"db 2\" (-x db 2)"),
        (&["-x", "db2/24"], "Invalid peer host \"db2/24\" (-x db2/24)"),
    ];
    for (list, message) in cases {
        assert_eq!(refused_args(list), (message.to_string(), 64), "{list:?}");
    }
}

#[test]
fn bad_replication_ports_and_queue_sizes_are_refused() {
    let cases: &[(&str, &str)] = &[
        ("-X 0", "Replication port must be between 1 and 65535 (-X 0)"),
        ("-X 70000", "Replication port must be between 1 and 65535 (-X 70000)"),
        ("-X -1", "Replication port must be between 1 and 65535 (-X -1)"),
        ("-X abc", "Invalid value for -X (--replication-port): \"abc\""),
        ("-q 0", "Queue size must be between 1 and 16777216 (-q 0)"),
        ("-q -5", "Queue size must be between 1 and 16777216 (-q -5)"),
        ("-q 16777217", "Queue size must be between 1 and 16777216 (-q 16777217)"),
        ("--queue-size=many", "Invalid value for -q (--queue-size): \"many\""),
    ];
    for (line, message) in cases {
        assert_eq!(refused(line), (message.to_string(), 64), "{line}");
    }
}

#[test]
fn bad_replication_sub_options_are_refused() {
    let cases: &[(&str, &str)] = &[
        ("-o repl_join_wait", "Missing numeric argument for repl_join_wait"),
        ("-o repl_join_wait=x", "Invalid value for -o repl_join_wait: \"x\""),
        ("-o repl_drain_timeout", "Missing numeric argument for repl_drain_timeout"),
        ("-o repl_drain_timeout=-1", "Invalid value for -o repl_drain_timeout: \"-1\""),
        ("-o repl_tombstone_ttl", "Missing numeric argument for repl_tombstone_ttl"),
        ("-o repl_tombstone_ttl=4294967296", "Invalid value for -o repl_tombstone_ttl: \"4294967296\""),
        ("-o repcached_link", "Missing argument for repcached_link"),
        ("-o repcached_link=a:b:c", "Invalid value for -o repcached_link: \"a:b:c\""),
        ("-o repcached_link=10.0.0.2:70000", "Invalid value for -o repcached_link: \"10.0.0.2:70000\""),
    ];
    for (line, message) in cases {
        assert_eq!(refused(line), (message.to_string(), 1), "{line}");
    }
}

#[test]
fn the_repcached_partner_is_read_with_repcached_s_default_port() {
    let s = run("-o repcached_link=10.0.0.2");
    assert_eq!(s.repcached_address(), Some(("10.0.0.2", 11212)));
    assert_eq!(stat(&s, "repcached_link"), "10.0.0.2");
    let s = run("-o repcached_link=[::1]:11300 -x 10.0.0.3");
    assert_eq!(s.repcached_address(), Some(("::1", 11300)));
    assert_eq!(s.peer_address(), Some(("10.0.0.3", 11212)));
    let cases = [
        ("-o repcached_link=10.0.0.2 -x 10.0.0.3", "The repcached port cannot be the replication port too (-o repcached_link 11212, -X)"),
        ("-o repcached_link=10.0.0.2:11211", "The repcached port cannot be a client port too (-o repcached_link 11211)"),
    ];
    for (line, message) in cases {
        assert_eq!(refused(line), (message.to_string(), 64), "{line}");
    }
}

#[test]
fn the_replication_port_cannot_be_a_client_port() {
    let clash = |line: &str, port: u16| {
        let message = format!("The replication port cannot be a client port too (-X {port})");
        assert_eq!(refused(line), (message, 64), "{line}");
    };
    clash("-x db2 -p 11212", 11212);
    clash("-x db2 -X 11211", 11211);
    clash("-x db2 -l 127.0.0.1:11212", 11212);
    clash("-x db2 -X 12000 -l 127.0.0.1,127.0.0.2:12000", 12000);
    clash("-x db2 -X 12000 -l [::1]:12000", 12000);
    // Another port on every -l address, no peer, or no TCP clients at all: nothing to clash.
    assert_eq!(run("-x db2 -X 11211 -l 127.0.0.1:12000").repl_port, 11211);
    assert_eq!(run("-p 11212").port, Port::Number(11212));
    assert_eq!(run("-x db2 -X 11211 -s /tmp/mc.sock").peer.as_deref(), Some("db2"));
}

#[test]
fn a_peer_with_a_unix_socket_is_allowed() {
    let s = run("-s /tmp/mc.sock -x 10.0.0.2 -l 10.0.0.1");
    assert_eq!((s.port, s.peer.as_deref(), s.repl_port), (Port::Off, Some("10.0.0.2"), 11212));
    assert_eq!(s.listen, vec!["10.0.0.1"]);
}

#[test]
fn memcacheds_disable_dumping_is_not_a_flag_here() {
    assert_eq!(refused("--disable-dumping"), ("memcachedrep: unrecognized option '--disable-dumping'".into(), 1));
    assert_eq!(run("-X 11300").repl_port, 11300);
}

#[test]
fn an_argument_that_is_not_utf8_is_refused_with_status_64() {
    let given = vec![OsString::from("-u"), OsString::from_vec(b"n\xffbody".to_vec())];
    let refusal = utf8_args(given).expect_err("a non-UTF-8 argument was accepted");
    assert_eq!(refusal.line, "memcachedrep: argument is not valid UTF-8: \"n\u{fffd}body\"");
    assert_eq!(refusal.status, 64);
    let given = vec![OsString::from("-m"), OsString::from("128")];
    assert_eq!(utf8_args(given).expect("UTF-8 arguments"), ["-m", "128"]);
}

/// Found by `make fuzz` (cmdline): a newline inside an argument split the refusal in two.
#[test]
fn a_refusal_echoing_a_newline_stays_one_line() {
    assert_eq!(refused_args(&["-m", "1\n2"]), ("Invalid value for -m (--memory-limit): \"1\\n2\"".into(), 64));
    let given = vec![OsString::from_vec(b"-\x1a\xaa\n".to_vec())];
    let refusal = utf8_args(given).expect_err("a non-UTF-8 argument was accepted");
    assert_eq!(refusal.line, "memcachedrep: argument is not valid UTF-8: \"-\\u{1a}\u{fffd}\\n\"");
}
