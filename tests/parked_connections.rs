//! The connection model: `-t` handler threads serve every connection, an idle or stalled one
//! holds no thread. Thousands of connections all answered, a stalled or non-reading client
//! does not hold up another one on the same handler (`-t 1`), the thread count does not grow
//! with connections, and `stats conns` names each connection's state as memcached does.
//!
//! No test here asserts on speed: the bounds on waiting are generous, and only a handler held
//! by one client (which waits for ever) could break them.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{wait_until, Client, Server};

/// How long another client's get may take while a client is stalled: far above any honest
/// answer on a loaded machine, far below "held until the stalled client moves".
const GENEROUS: Duration = Duration::from_secs(3);

/// The number of threads of a process, from /proc.
fn threads(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok()).expect("Threads line")
}

/// Each `stats conns` entry's state, by its descriptor.
fn conn_states(client: &mut Client) -> Vec<(String, String)> {
    client.stats("conns").into_iter().filter_map(|(name, value)| name.strip_suffix(":state").map(|fd| (fd.to_string(), value))).collect()
}

/// A get on `client` is answered within `GENEROUS`, with the value set earlier.
fn get_answers_promptly(client: &mut Client, key: &str, value: &[u8]) {
    let start = Instant::now();
    assert_eq!(client.get(key).as_deref(), Some(value), "get {key}");
    let took = start.elapsed();
    assert!(took < GENEROUS, "get {key} took {took:?} while another client stalled");
}

/// Opens `n` connections and waits until the server has counted them all (and the prober).
fn open_many(server: &Server, n: usize) -> Vec<Client> {
    let clients: Vec<Client> = (0..n).map(|_| server.connect()).collect();
    let mut probe = server.connect();
    wait_until(&format!("{n} connections accepted"), Duration::from_secs(30), || {
        probe.stat("", "curr_connections").parse::<usize>().unwrap_or(0) > n
    });
    clients
}

#[test]
fn two_thousand_connections_at_once_all_get_their_own_answers() {
    let server = Server::start(&["-c", "2100", "-t", "2"]);
    let mut clients = open_many(&server, 2000);
    // Every connection sends before any reads, so the handlers meet them all ready at once.
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(format!("set k{i} {i} 0 {}\r\nvalue-{i}\r\nget k{i}\r\n", format!("value-{i}").len()).as_bytes());
    }
    for (i, c) in clients.iter_mut().enumerate().rev() {
        assert_eq!(c.line(), "STORED\r\n", "connection {i}");
        let value = format!("value-{i}");
        assert_eq!(c.line(), format!("VALUE k{i} {i} {}\r\n", value.len()), "connection {i}");
        assert_eq!(c.line(), format!("{value}\r\n"));
        assert_eq!(c.line(), "END\r\n");
    }
}

#[test]
fn the_thread_count_does_not_grow_with_open_connections() {
    let server = Server::start(&["-c", "1100", "-t", "4"]);
    let mut first = server.connect();
    assert!(first.cmd("version").starts_with("VERSION "));
    let before = threads(server.pid());
    let mut clients = open_many(&server, 1000);
    for c in clients.iter_mut().step_by(50) {
        assert!(c.cmd("version").starts_with("VERSION "));
    }
    let with_many = threads(server.pid());
    assert_eq!(with_many, before, "threads with one client: {before}, with 1001: {with_many}");
    // 4 handlers, one accept thread, and the process's own (main, signals): nowhere near 1000.
    assert!(with_many <= 4 + 4, "{with_many} threads for -t 4");
}

#[test]
fn a_client_stalled_part_way_through_a_store_holds_up_no_one() {
    let server = Server::start(&["-t", "1"]);
    let mut other = server.connect();
    other.set("k", 0, 0, b"hello");
    let mut stalled = server.connect();
    stalled.send(b"set big 0 0 100000\r\n");
    stalled.send(&[b'x'; 1000]);
    let mut half_line = server.connect();
    half_line.send(b"get k");
    // One handler serves all three: the stalled two must not hold it.
    for _ in 0..3 {
        get_answers_promptly(&mut other, "k", b"hello");
    }
    // A connection is listed once its accept thread has taken it, which may come after the
    // client's connect returned: poll until both are listed in the states they wait in.
    let mut probe = server.connect();
    let mut state_of = |c: &Client| {
        let fd_addr = c.stream.local_addr().unwrap().to_string();
        let all = probe.stats("conns");
        let fd =
            all.iter().find(|(name, value)| name.ends_with(":addr") && value.ends_with(&fd_addr))?.0.trim_end_matches(":addr").to_string();
        all.into_iter().find(|(name, _)| *name == format!("{fd}:state")).map(|(_, state)| state)
    };
    wait_until("a store waiting for its data (conn_nread) and a line not yet ended (conn_read)", Duration::from_secs(10), || {
        state_of(&stalled).as_deref() == Some("conn_nread") && state_of(&half_line).as_deref() == Some("conn_read")
    });
    // The stalled clients carry on where they stopped.
    stalled.send(&[b'x'; 99_000]);
    stalled.send(b"\r\n");
    assert_eq!(stalled.line(), "STORED\r\n");
    half_line.send(b"\r\n");
    assert_eq!(half_line.line(), "VALUE k 0 5\r\n");
}

#[test]
fn a_client_that_never_reads_holds_up_no_one() {
    let server = Server::start(&["-t", "1"]);
    let mut other = server.connect();
    let value = vec![b'v'; 64 * 1024];
    other.set("big", 0, 0, &value);
    other.set("k", 0, 0, b"hello");
    let mut greedy = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    greedy.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    // Asks for far more than the sockets hold and reads none of it, until its own writes
    // stop going through: the server has stopped reading it.
    let block = b"get big\r\n".repeat(1000);
    let deadline = Instant::now() + Duration::from_secs(30);
    while greedy.write_all(&block).is_ok() {
        assert!(Instant::now() < deadline, "the server kept reading a client that never reads");
    }
    for _ in 0..3 {
        get_answers_promptly(&mut other, "k", b"hello");
    }
    let mut probe = server.connect();
    let greedy_addr = greedy.local_addr().unwrap().to_string();
    let stats = probe.stats("conns");
    let fd = stats
        .iter()
        .find(|(name, value)| name.ends_with(":addr") && value.ends_with(&greedy_addr))
        .map(|(name, _)| name.trim_end_matches(":addr").to_string())
        .expect("the non-reader is listed");
    let state = stats.iter().find(|(name, _)| *name == format!("{fd}:state")).map(|(_, v)| v.as_str());
    assert_eq!(state, Some("conn_mwrite"), "a connection whose answer waits for the client");
}

#[test]
fn connection_counters_follow_opens_and_closes() {
    let server = Server::start(&["-t", "2"]);
    let mut probe = server.connect();
    let total_before: u64 = probe.stat("", "total_connections").parse().unwrap();
    let clients = open_many(&server, 50);
    // open_many's own prober has closed, but its handler may not have counted that yet.
    wait_until("50 clients and the prober counted", Duration::from_secs(10), || probe.stat("", "curr_connections") == "51");
    let total: u64 = probe.stat("", "total_connections").parse().unwrap();
    assert_eq!(total, total_before + 51, "the 50 and open_many's own prober");
    let structures: u64 = probe.stat("", "connection_structures").parse().unwrap();
    assert!(structures >= 52, "connection_structures {structures}: at least every connection at once and the listener");
    let idle_states = conn_states(&mut probe);
    let fresh = idle_states.iter().filter(|(_, s)| s == "conn_new_cmd").count();
    assert!(fresh >= 50, "connections that sent nothing are conn_new_cmd: {idle_states:?}");
    drop(clients);
    wait_until("the closed connections to be uncounted", Duration::from_secs(10), || probe.stat("", "curr_connections") == "1");
}

#[test]
fn commands_past_reqs_per_event_are_served_in_later_turns() {
    let server = Server::start(&["-R", "5", "-t", "1"]);
    let mut c = server.connect();
    c.set("k", 0, 0, b"v");
    let mut pipeline = Vec::new();
    for _ in 0..100 {
        pipeline.extend_from_slice(b"get k\r\n");
    }
    c.stream.write_all(&pipeline).unwrap();
    let answer = c.read_until(&b"VALUE k 0 1\r\nv\r\nEND\r\n".repeat(100));
    assert_eq!(answer.len(), 100 * 21, "every get answered once");
    let yields: u64 = c.stat("", "conn_yields").parse().unwrap();
    assert!(yields > 0, "conn_yields {yields} after 100 pipelined commands at -R 5");
}

/// Many busy connections make every handler busy, and busy handlers also serve the ready
/// connections of the others (worker.rs). With `-R 2` a client's three pipelined commands
/// take two turns, which may be on two handlers, and clients come and go meanwhile: each must
/// still get its own answers, whole and in order.
#[test]
fn busy_handlers_serving_each_others_connections_keep_every_answer_in_place() {
    let server = Server::start(&["-t", "3", "-R", "2", "-c", "200"]);
    let port = server.port;
    std::thread::scope(|scope| {
        for w in 0..36 {
            scope.spawn(move || {
                let mut c = Client::connect(port);
                for round in 0..300 {
                    if round % 75 == 74 {
                        c = Client::connect(port);
                    }
                    let (key, value) = (format!("w{w}-{}", round % 7), format!("{w}:{round}:{}", "x".repeat(round % 50)));
                    c.send(format!("set {key} {w} 0 {}\r\n{value}\r\nget {key}\r\nget w{w}-none\r\n", value.len()).as_bytes());
                    assert_eq!(c.line(), "STORED\r\n", "client {w} round {round}");
                    assert_eq!(c.line(), format!("VALUE {key} {w} {}\r\n", value.len()), "client {w} round {round}");
                    assert_eq!(c.line(), format!("{value}\r\n"), "client {w} round {round}");
                    assert_eq!(c.line(), "END\r\n");
                    assert_eq!(c.line(), "END\r\n", "client {w} round {round}: the missing key");
                }
            });
        }
    });
    let mut probe = server.connect();
    assert_eq!(probe.stat("", "cmd_set"), (36 * 300).to_string());
}
