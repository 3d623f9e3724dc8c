//! Hostile clients, each a test: one that pipelines gets and never reads, half a command and
//! silence, a burst of connects and disconnects, a flood past `-c`, random bytes on the client
//! port and from the peer's own address on the replication port, and lengths promising a
//! gigabyte. Each checks that the server goes on serving the others, and what it answered,
//! as memcached answers (Debian's memcached is asked too where the answers are comparable).
//! All but the `-c` counts hold against memcached too (`MEMCACHEDREP_TEST_SERVER`).
//!
//! The random inputs come from one seed, printed, and taken from `HOSTILE_SEED` when set, so
//! that a failure replays.

mod common;
mod pair;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::{against_reference, require_program, show, wait_until, Client, Server, IO_TIMEOUT};
use pair::{wait_link_up, wait_marker, Pair, B_ADDR};

/// A value long enough that a get of it is written out as a spilled part.
const BIG_VALUE: usize = 300 * 1024;
/// Gets the non-reading client sends: far more answer than socket buffers hold.
const UNREAD_GETS: usize = 200;
/// How far a server's RSS may grow while it faces a hostile client.
const RSS_GROWTH_KIB: u64 = 64 * 1024;
const GIB: usize = 1 << 30;
const TOO_MANY: &str = "ERROR Too many open connections\r\n";
const SET_OPAQUE: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];
const NOOP_OPAQUE: [u8; 4] = [0x0a, 0x0b, 0x0c, 0x0d];

/// The run's seed, printed so that a failure can be replayed.
fn seed() -> u64 {
    let seed = std::env::var("HOSTILE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_cafe_f00d);
    eprintln!("hostile_clients: HOSTILE_SEED={seed}");
    seed
}

/// xorshift64*: enough randomness for garbage, and the same bytes for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Between 1 and `max` random bytes.
    fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = 1 + self.below(max);
        self.bytes(n)
    }
}

/// `stats` as numbers.
fn stat_num(client: &mut Client, name: &str) -> u64 {
    client.stat("", name).parse().unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// A client of `server` once it is the only connection open (the start-up probe's close may
/// not have been seen yet).
fn watcher(server: &Server) -> Client {
    let mut watcher = server.connect();
    wait_until("the watcher to be the only connection", IO_TIMEOUT, || stat_num(&mut watcher, "curr_connections") == 1);
    watcher
}

/// Reads until the server closes the connection, keeping what came; false if it is still
/// open after the deadline.
fn read_to_close(stream: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut chunk = [0u8; 65536];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// What a server answers to a few text lines: the connection's whole output until it closes
/// or `suffix` ends it.
fn answer(port: u16, request: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut client = Client::connect(port);
    client.send(request);
    client.read_until(suffix)
}

#[test]
fn a_client_that_pipelines_gets_and_never_reads_holds_no_handler_and_little_memory() {
    // One handler thread: the client that does not read shares it with every other.
    let server = Server::start(&["-t", "1", "-m", "64"]);
    let value: Vec<u8> = (0..BIG_VALUE).map(|i| b'a' + (i % 26) as u8).collect();
    let mut other = server.connect();
    other.set("big", 0, 0, &value);
    other.set("small", 0, 0, b"v");
    let rss_before = server.rss_kib();

    // Gets of one value, and of several, which stop part-way when the client does not read.
    let request = |i: usize| if i.is_multiple_of(2) { "get big\r\n" } else { "get big small big big\r\n" };
    let mut idle = server.connect();
    idle.send((0..UNREAD_GETS).map(request).collect::<String>().as_bytes());
    // The server answers until the socket buffers are full, then parks the connection.
    wait_until("the unread answers to fill the socket", IO_TIMEOUT, || {
        other.stats("conns").iter().any(|(name, state)| name.ends_with(":state") && state == "conn_mwrite")
    });
    for _ in 0..20 {
        assert_eq!(other.get("small"), Some(b"v".to_vec()), "another client is served meanwhile");
    }
    let rss = server.rss_kib();
    assert!(rss < rss_before + RSS_GROWTH_KIB, "RSS grew from {rss_before} to {rss} KiB for a client that does not read");

    // Nothing was lost or cut short: when the client reads at last, every answer is whole.
    let mut big = format!("VALUE big 0 {BIG_VALUE}\r\n").into_bytes();
    big.extend_from_slice(&value);
    big.extend_from_slice(b"\r\n");
    let small = b"VALUE small 0 1\r\nv\r\n";
    for i in 0..UNREAD_GETS {
        let expected = match i % 2 {
            0 => [&big[..], b"END\r\n"].concat(),
            _ => [&big[..], small, &big, &big, b"END\r\n"].concat(),
        };
        assert!(idle.read_exact(expected.len()) == expected, "answer {i} of {UNREAD_GETS} differs");
    }
    assert_eq!(idle.cmd("version").split(' ').next(), Some("VERSION"));
}

/// Connections that stop part-way: through a line, through a store's data, through a binary
/// header.
fn half_commands(port: u16) -> (Vec<Client>, Client) {
    let mut halves = Vec::new();
    for half in [&b"get fo"[..], b"", &[0x80, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03]] {
        let mut client = Client::connect(port);
        client.send(half);
        halves.push(client);
    }
    let mut store = Client::connect(port);
    store.send(b"set half 0 0 10\r\nabc");
    (halves, store)
}

#[test]
fn half_a_command_and_silence_is_closed_after_idle_timeout_as_memcached_does() {
    let run = |server: &Server| {
        let (mut halves, mut store) = half_commands(server.port);
        for (i, half) in halves.iter_mut().enumerate() {
            half.stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            assert!(half.is_closed(), "connection {i} waiting for a command outlived idle_timeout");
        }
        // memcached leaves a connection part-way through a store's data alone.
        store.send(b"defghij\r\n");
        assert_eq!(store.line(), "STORED\r\n", "the store part-way through its data was closed");
    };
    run(&Server::start(&["-o", "idle_timeout=1"]));
    if require_program("/usr/bin/memcached", "memcached") {
        run(&Server::start_program("/usr/bin/memcached", &["-U", "0", "-o", "idle_timeout=1"]));
    }
}

#[test]
fn half_a_command_and_silence_costs_the_others_nothing() {
    let server = Server::start(&["-t", "1"]);
    let mut other = watcher(&server);
    let mut quiet = Vec::new();
    for _ in 0..50 {
        quiet.push(half_commands(server.port));
    }
    other.set("k", 1, 0, b"served");
    assert_eq!(other.get("k"), Some(b"served".to_vec()));
    // The accept thread may still be taking the last of them.
    wait_until("every connection to be counted", IO_TIMEOUT, || stat_num(&mut other, "curr_connections") == 50 * 4 + 1);
    // Each finishes its command at last and is answered.
    for (mut halves, mut store) in quiet {
        halves[0].send(b"o\r\n");
        assert_eq!(halves[0].line(), "END\r\n");
        store.send(b"defghij\r\n");
        assert_eq!(store.line(), "STORED\r\n");
    }
}

#[test]
fn thousands_of_connects_and_disconnects_leave_nothing_behind() {
    const PER_THREAD: usize = 1500;
    let server = Server::start(&[]);
    let mut watcher = server.connect();
    let before = stat_num(&mut watcher, "total_connections") + stat_num(&mut watcher, "rejected_connections");
    let port = server.port;
    let threads: Vec<_> = (0..2)
        .map(|t| {
            thread::spawn(move || {
                let mut answered = 0u64;
                for i in 0..PER_THREAD {
                    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                    // Gone at once; gone with a command unanswered; gone part-way through one;
                    // gone once answered.
                    match (i + t) % 4 {
                        0 => {}
                        1 => drop(stream.write_all(b"version\r\n")),
                        2 => drop(stream.write_all(b"set k 0 0 5\r\nab")),
                        _ => {
                            stream.write_all(b"version\r\n").expect("write");
                            stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                            let mut reply = [0u8; 8];
                            stream.read_exact(&mut reply).expect("a version answer");
                            assert_eq!(&reply, b"VERSION ");
                            answered += 1;
                        }
                    }
                }
                answered
            })
        })
        .collect();
    let answered: u64 = threads.into_iter().map(|t| t.join().expect("connecting thread")).sum();
    wait_until("curr_connections to come back to the watcher alone", IO_TIMEOUT, || stat_num(&mut watcher, "curr_connections") == 1);
    // A connection dropped from a full listen backlog never reaches the server, but every
    // answered one did.
    let after = stat_num(&mut watcher, "total_connections") + stat_num(&mut watcher, "rejected_connections");
    assert!(after >= before + answered, "{} connections seen, {answered} answered", after - before);
    watcher.set("after", 0, 0, b"still serving");
    assert_eq!(server.connect().get("after"), Some(b"still serving".to_vec()));
}

#[test]
fn a_flood_past_c_is_told_too_many_and_closed() {
    // Ours only: memcached's -c counts descriptors it reserves (and cannot start with -c 10);
    // its words for the refusal are checked below.
    if against_reference() {
        return;
    }
    let server = Server::start(&["-c", "10"]);
    let mut watcher = watcher(&server);
    let mut served: Vec<Client> = (0..9).map(|_| server.connect()).collect();
    for client in &mut served {
        assert!(client.cmd("version").starts_with("VERSION "));
    }
    for i in 0..5 {
        let mut over = server.connect();
        assert_eq!(show(&over.read_until(b"\r\n")), TOO_MANY, "connection {i} over -c");
        assert!(over.is_closed(), "connection {i} over -c stays open");
    }
    assert_eq!(stat_num(&mut watcher, "rejected_connections"), 5);
    assert_eq!(stat_num(&mut watcher, "curr_connections"), 10);
    assert_eq!(stat_num(&mut watcher, "listen_disabled_num"), 0);
    served.clear();
    wait_until("the closed connections to be uncounted", IO_TIMEOUT, || stat_num(&mut watcher, "curr_connections") == 1);
    assert!(server.connect().cmd("version").starts_with("VERSION "));
    // memcached's words for the refusal are the same (it refuses sooner).
    if require_program("/usr/bin/memcached", "memcached") {
        let reference = Server::start_program("/usr/bin/memcached", &["-U", "0", "-c", "30"]);
        let mut held: Vec<TcpStream> = Vec::new();
        let refusal = loop {
            assert!(held.len() < 30, "memcached never refused a connection past -c 30");
            let mut client = reference.connect();
            let reply = client.call(b"version\r\n", b"\r\n");
            if !reply.starts_with(b"VERSION ") {
                break reply;
            }
            held.push(client.stream);
        };
        assert_eq!(show(&refusal), TOO_MANY);
    }
}

#[test]
fn without_maxconns_fast_a_flood_past_c_waits_for_room() {
    // Ours only: memcached's -c counts descriptors it reserves.
    if against_reference() {
        return;
    }
    let server = Server::start(&["-c", "5", "-o", "no_maxconns_fast"]);
    let mut watcher = watcher(&server);
    // memcached counts the clients alone, not the one the listener waits to accept.
    assert_eq!(stat_num(&mut watcher, "curr_connections"), 1);
    let mut served: Vec<Client> = (0..4).map(|_| server.connect()).collect();
    for client in &mut served {
        assert!(client.cmd("version").starts_with("VERSION "));
    }
    let mut waiting: Vec<Client> = (0..3).map(|_| server.connect()).collect();
    for client in &mut waiting {
        client.send(b"version\r\n");
    }
    wait_until("the listener to stop accepting", IO_TIMEOUT, || stat_num(&mut watcher, "accepting_conns") == 0);
    assert_eq!(stat_num(&mut watcher, "curr_connections"), 5);
    assert!(stat_num(&mut watcher, "listen_disabled_num") >= 1);
    assert_eq!(stat_num(&mut watcher, "rejected_connections"), 0);
    served.truncate(1);
    for client in &mut waiting {
        assert!(client.line().starts_with("VERSION "), "a waiting client is served once there is room");
    }
    assert_eq!(stat_num(&mut watcher, "curr_connections"), 5);
}

#[test]
fn random_bytes_on_the_client_port_are_survived() {
    const WORDS: [&str; 24] = [
        "get",
        "gets",
        "gat",
        "set",
        "add",
        "cas",
        "append",
        "incr",
        "decr",
        "touch",
        "delete",
        "mg",
        "ms",
        "md",
        "ma",
        "mn",
        "stats",
        "flush_all",
        "noreply",
        "0",
        "1",
        "-1",
        "18446744073709551615",
        "4294967296",
    ];
    let mut rng = Rng(seed());
    let server = Server::start(&["-t", "2"]);
    let mut watcher = server.connect();
    for round in 0..150 {
        let garbage = match round % 3 {
            0 => rng.some_bytes(16 * 1024),
            // Text-like: known words and random tokens, lines ending every which way.
            1 => {
                let mut text = Vec::new();
                for _ in 0..1 + rng.below(200) {
                    match rng.below(4) {
                        0 => text.extend(rng.some_bytes(300)),
                        _ => text.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes()),
                    }
                    text.extend_from_slice([&b" "[..], b"\r\n", b"\n", b"  "][rng.below(4)]);
                }
                text
            }
            // Binary-like: the request magic, then a random header and body.
            _ => {
                let mut packet = vec![0x80];
                packet.extend(rng.bytes(23));
                packet.extend(rng.some_bytes(4096));
                packet
            }
        };
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        // The server may close before it has all of it.
        let _ = stream.write_all(&garbage);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut got = Vec::new();
        read_to_close(&mut stream, &mut got);
    }
    wait_until("the garbage connections to close", IO_TIMEOUT, || stat_num(&mut watcher, "curr_connections") == 1);
    watcher.set("after", 0, 0, b"garbage");
    assert_eq!(server.connect().get("after"), Some(b"garbage".to_vec()));
}

#[test]
fn random_bytes_from_the_peer_address_on_the_replication_port_are_survived() {
    // Through the proxy, B's configured peer is 127.0.0.1, where this test's connections
    // come from.
    let (pair, _proxy) = Pair::start_through_proxy(&[], &[]);
    let mut rng = Rng(seed());
    for round in 0..60 {
        let mut garbage = match round % 2 {
            0 => Vec::new(),
            // A frame that starts as a hello might.
            _ => b"MCREP".to_vec(),
        };
        garbage.extend(rng.some_bytes(8 * 1024));
        let mut stream = TcpStream::connect((B_ADDR, pair.b.repl_port)).expect("connect to the replication port");
        let _ = stream.write_all(&garbage);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut got = Vec::new();
        assert!(read_to_close(&mut stream, &mut got), "garbage round {round} was left open");
    }
    let mut b = pair.b.conn();
    b.set("after", 4, 0, b"garbage");
    assert_eq!(b.get_one("after").map(|i| i.value), Some(b"garbage".to_vec()));
    wait_link_up(&pair.a);
    wait_link_up(&pair.b);
    wait_marker(&pair.a, &pair.b);
    wait_marker(&pair.b, &pair.a);
}

/// A binary request header.
fn binary_header(opcode: u8, key_len: u16, extras_len: u8, body_len: u32, opaque: [u8; 4]) -> Vec<u8> {
    let mut header = vec![0x80, opcode];
    header.extend_from_slice(&key_len.to_be_bytes());
    header.extend_from_slice(&[extras_len, 0, 0, 0]);
    header.extend_from_slice(&body_len.to_be_bytes());
    header.extend_from_slice(&opaque);
    header.extend_from_slice(&[0; 8]);
    header
}

/// Sends `head`, then `len` bytes, then `tail`, and returns what came back until `suffix`.
fn send_gigabyte(port: u16, head: &[u8], len: usize, tail: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut client = Client::connect(port);
    client.send(head);
    let chunk = vec![b'x'; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        client.send(&chunk[..n]);
        left -= n;
    }
    client.send(tail);
    client.read_until(suffix)
}

/// What a server answers to requests whose lengths promise a gigabyte.
fn gigabyte_answers(port: u16) -> Vec<Vec<u8>> {
    let mut answers = Vec::new();
    answers.push(send_gigabyte(port, format!("set huge 0 0 {GIB}\r\n").as_bytes(), GIB, b"\r\nget huge\r\n", b"END\r\n"));
    // A binary set: "Too large.", and the value is discarded as it arrives.
    let mut set = binary_header(0x01, 4, 8, (GIB + 12) as u32, SET_OPAQUE);
    set.extend_from_slice(&[0; 8]);
    set.extend_from_slice(b"huge");
    // The noop's answer, which follows the set's, ends with its opaque and a zero cas.
    let noop = binary_header(0x0a, 0, 0, 0, NOOP_OPAQUE);
    let noop_end = [&NOOP_OPAQUE[..], &[0; 8]].concat();
    answers.push(send_gigabyte(port, &set, GIB, &noop, &noop_end));
    // A get whose header promises a gigabyte is refused for its shape at once, and closed.
    let mut get = binary_header(0x00, 4, 0, GIB as u32, SET_OPAQUE);
    get.extend_from_slice(b"huge");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(&get).expect("write");
    let mut got = Vec::new();
    assert!(read_to_close(&mut stream, &mut got), "a get promising a gigabyte was left open");
    answers.push(got);
    answers
}

#[test]
fn lengths_promising_a_gigabyte_are_refused_without_buffering() {
    let server = Server::start(&[]);
    let rss_before = server.rss_kib();
    let ours = gigabyte_answers(server.port);
    let rss = server.rss_kib();
    assert!(rss < rss_before + RSS_GROWTH_KIB, "RSS grew from {rss_before} to {rss} KiB");
    assert_eq!(show(&ours[0]), "SERVER_ERROR object too large for cache\r\nEND\r\n");
    let mut too_large = vec![0x81, 0x01, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 10, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0];
    too_large.extend_from_slice(b"Too large.");
    too_large.extend_from_slice(&[0x81, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(ours[1], too_large, "binary set");
    let mut invalid = vec![0x81, 0x00, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 17, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0];
    invalid.extend_from_slice(b"Invalid arguments");
    assert_eq!(ours[2], invalid);
    assert_eq!(answer(server.port, b"version\r\n", b"\r\n").split(|&b| b == b' ').next(), Some(&b"VERSION"[..]));
    if require_program("/usr/bin/memcached", "memcached") {
        let reference = Server::start_program("/usr/bin/memcached", &["-U", "0"]);
        assert_eq!(gigabyte_answers(reference.port), ours, "memcached answered otherwise");
    }
}

/// The (opcode, status) of each response packet in `bytes`.
fn statuses(bytes: &[u8]) -> Vec<(u8, u16)> {
    let mut packets = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 24 {
        let body = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
        packets.push((rest[1], u16::from_be_bytes([rest[6], rest[7]])));
        rest = &rest[(24 + body).min(rest.len())..];
    }
    packets
}

/// What a server answers to one connection's `bytes`: until it closes, or until the noop
/// that ends `bytes` is answered.
fn binary_answer(port: u16, bytes: &[u8], closes: bool) -> Vec<u8> {
    let mut client = Client::connect(port);
    client.send(bytes);
    if closes {
        let mut got = Vec::new();
        assert!(read_to_close(&mut client.stream, &mut got), "left open after {:?}", show(bytes));
        got
    } else {
        client.read_until(&[&NOOP_OPAQUE[..], &[0; 8]].concat())
    }
}

#[test]
fn binary_headers_are_judged_by_their_shape_before_their_size() {
    const GET: u8 = 0x00;
    const INCR: u8 = 0x05;
    const NOOP: u8 = 0x0a;
    const STAT: u8 = 0x10;
    const TOUCH: u8 = 0x1c;
    const SASL_AUTH: u8 = 0x21;
    const UNKNOWN: u8 = 0x50;
    const INVALID: u16 = 0x04;
    const NOT_FOUND: u16 = 0x01;
    const UNKNOWN_COMMAND: u16 = 0x81;
    let noop = binary_header(NOOP, 0, 0, 0, NOOP_OPAQUE);
    let gib = GIB as u32;
    let with = |header: Vec<u8>, rest: &[&[u8]]| [&header[..], &rest.concat()].concat();
    // What is sent, whether the server closes after it, and the answers' (opcode, status).
    type Case = (&'static str, Vec<u8>, bool, Vec<(u8, u16)>);
    let cases: Vec<Case> = vec![
        ("a get promising a gigabyte", with(binary_header(GET, 3, 0, gib, SET_OPAQUE), &[b"foo"]), true, vec![(GET, INVALID)]),
        ("a noop promising a gigabyte", binary_header(NOOP, 0, 0, gib, SET_OPAQUE), true, vec![(NOOP, INVALID)]),
        (
            "an incr promising a gigabyte",
            with(binary_header(INCR, 3, 20, gib, SET_OPAQUE), &[&[0; 20], b"foo"]),
            true,
            vec![(INCR, INVALID)],
        ),
        (
            "a key longer than 250 bytes",
            with(binary_header(UNKNOWN, 300, 0, 300, SET_OPAQUE), &[&[b'k'; 300]]),
            true,
            vec![(UNKNOWN, INVALID)],
        ),
        ("a key longer than the body", with(binary_header(GET, 3, 0, 1, SET_OPAQUE), &[b"a", &noop]), true, vec![(GET, UNKNOWN_COMMAND)]),
        (
            "SASL auth without a key",
            with(binary_header(SASL_AUTH, 0, 0, 5, SET_OPAQUE), &[b"zzzzz", &noop]),
            true,
            vec![(SASL_AUTH, INVALID)],
        ),
        // A stat's or a touch's body past its key is read as the next request.
        (
            "a stat with a body past its key",
            with(binary_header(STAT, 3, 0, 5, SET_OPAQUE), &[b"foo", &noop]),
            false,
            vec![(STAT, NOT_FOUND), (NOOP, 0)],
        ),
        (
            "a touch with a body past its key",
            with(binary_header(TOUCH, 3, 4, 9, SET_OPAQUE), &[&[0; 4], b"foo", &noop]),
            false,
            vec![(TOUCH, NOT_FOUND), (NOOP, 0)],
        ),
        // An unknown request's extras and key are read, then as many bytes as its body.
        (
            "an unknown request",
            with(binary_header(UNKNOWN, 3, 4, 10, SET_OPAQUE), &[&[b'y'; 17], &noop]),
            false,
            vec![(UNKNOWN, UNKNOWN_COMMAND), (NOOP, 0)],
        ),
        (
            "SASL auth, not served",
            with(binary_header(SASL_AUTH, 3, 0, 5, SET_OPAQUE), &[b"PLAIN", &noop]),
            false,
            vec![(SASL_AUTH, UNKNOWN_COMMAND), (NOOP, 0)],
        ),
    ];
    let server = Server::start(&[]);
    let reference = require_program("/usr/bin/memcached", "memcached").then(|| Server::start_program("/usr/bin/memcached", &["-U", "0"]));
    for (what, bytes, closes, expected) in cases {
        let ours = binary_answer(server.port, &bytes, closes);
        assert_eq!(statuses(&ours), expected, "{what}");
        if let Some(reference) = &reference {
            assert_eq!(binary_answer(reference.port, &bytes, closes), ours, "{what}: memcached answered otherwise");
        }
    }
}
