//! Connection-level behaviour of the whole server: many connections, idle cost, the `-c`
//! limit, pipelining, the unix socket, signals, hostile clients, idle time-outs, and the -vv
//! log of binary and text traffic (checked against memcached's own lines).
//!
//! Every load here stays on loopback, is bounded in bytes and time, and ends by itself. Tests
//! that pin a rule of ours that memcached does not share return early under
//! `common::against_reference()` and say why.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{show, wait_until, Client, Server};

/// The soft limit on open files of this test process, from /proc (no libc here).
fn fd_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

/// user + system CPU time of a process in clock ticks, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name may hold spaces; the fields that follow it are fixed.
    let after = &stat[stat.rfind(')').expect("stat has a comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Clock ticks per second, as `getconf` reports it (100 on Linux unless rebuilt).
fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Socket inodes of the TCP sockets in LISTEN state owned by `pid`.
fn tcp_listeners(pid: u32) -> Vec<String> {
    let mut owned = Vec::new();
    if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in entries.flatten() {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                let target = target.to_string_lossy().into_owned();
                if let Some(inode) = target.strip_prefix("socket:[").and_then(|t| t.strip_suffix(']')) {
                    owned.push(inode.to_string());
                }
            }
        }
    }
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Column 3 is the state (0A = LISTEN), column 9 the inode.
            if cols.len() > 9 && cols[3] == "0A" && owned.iter().any(|i| i == cols[9]) {
                listening.push(cols[1].to_string());
            }
        }
    }
    listening
}

/// A tiny seeded generator (xorshift64*), so the hostile bytes are the same on every run.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// How many client connections a test of many connections may open here.
fn connection_budget(wanted: u64) -> usize {
    // Keep a margin for the harness's own descriptors (stdio, cargo's pipes, the server's).
    let limit = fd_limit().saturating_sub(64);
    if limit < wanted {
        eprintln!("fd limit {} allows only {limit} connections of the {wanted} wanted", fd_limit());
    }
    limit.min(wanted) as usize
}

/// Waits until `stats` reports at least `n` open connections (the asker included).
fn wait_for_connections(server: &Server, n: u64) {
    let mut probe = server.connect();
    wait_until(&format!("{n} connections accepted"), Duration::from_secs(20), || {
        probe.stat("", "curr_connections").parse::<u64>().unwrap_or(0) >= n
    });
}

#[test]
fn a_thousand_connections_at_once_all_get_answers() {
    let n = connection_budget(1000);
    if fd_limit() >= 1100 {
        assert!(n >= 1000, "the fd limit allows 1000 connections");
    }
    let server = Server::start(&["-c", "1100"]);
    let mut clients: Vec<Client> = (0..n).map(|_| server.connect()).collect();
    wait_for_connections(&server, n as u64 + 1);
    // Every connection stores its own key, then every connection reads it back.
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(format!("set conn{i} 0 0 {}\r\nv{i}\r\n", format!("v{i}").len()).as_bytes());
    }
    for c in clients.iter_mut() {
        assert_eq!(c.line(), "STORED\r\n");
    }
    for (i, c) in clients.iter_mut().enumerate().rev() {
        assert_eq!(c.get(&format!("conn{i}")), Some(format!("v{i}").into_bytes()), "connection {i}");
    }
}

#[test]
fn idle_connections_cost_no_cpu() {
    let n = connection_budget(1000);
    let server = Server::start(&["-c", "1100"]);
    let clients: Vec<Client> = (0..n).map(|_| server.connect()).collect();
    wait_for_connections(&server, n as u64 + 1);
    let before = cpu_ticks(server.pid());
    let start = Instant::now();
    // The one wait of this test: it measures time passing, it does not wait for a state.
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(server.pid()) - before;
    let per_second = spent as f64 / start.elapsed().as_secs_f64() / ticks_per_second() as f64;
    eprintln!("{n} idle connections: server CPU {:.2}% of a core", per_second * 100.0);
    // A polling loop over 1000 sockets would burn a large part of a core; a few background
    // timers cost well under 5%.
    assert!(per_second < 0.05, "server used {:.1}% of a CPU with {n} idle connections", per_second * 100.0);
    drop(clients);
}

#[test]
fn over_the_connection_limit_the_next_client_is_told_and_closed() {
    // Ours only: memcached counts its own descriptors (listeners, pipes) against -c, so with
    // -c 10 it accepts fewer than 10 clients; our rule is exactly N client connections.
    // (1.6.18 with 4 threads keeps 25 for itself: with -c 35 it passes this test as written.)
    if common::against_reference() {
        return;
    }
    let server = Server::start(&["-c", "10"]);
    // The harness's readiness probe was a connection too: wait until its close is counted.
    let mut first = server.connect();
    wait_until("only this connection open", Duration::from_secs(10), || first.stat("", "curr_connections") == "1");
    let mut clients = vec![first];
    clients.extend((1..10).map(|_| server.connect()));
    for c in clients.iter_mut() {
        assert!(c.cmd("version").starts_with("VERSION "));
    }
    let mut extra = server.connect();
    assert_eq!(show(&extra.read_until(b"\r\n")), "ERROR Too many open connections\r\n");
    assert!(extra.is_closed(), "the rejected connection is closed");
    assert_eq!(clients[0].stat("", "rejected_connections"), "1");
    drop(clients.pop());
    // The server notices the close asynchronously: retry until a newcomer is served.
    wait_until("a free slot after a close", Duration::from_secs(10), || {
        let mut c = server.connect();
        c.send(b"version\r\n");
        c.line().starts_with("VERSION ")
    });
}

#[test]
fn ten_thousand_pipelined_commands_in_one_write_all_answered() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..5000 {
        let value = format!("value-{i}");
        request.extend_from_slice(format!("set pipe{i} {i} 0 {}\r\n{value}\r\n", value.len()).as_bytes());
        expected.extend_from_slice(b"STORED\r\n");
        request.extend_from_slice(format!("get pipe{i}\r\n").as_bytes());
        expected.extend_from_slice(format!("VALUE pipe{i} {i} {}\r\n{value}\r\nEND\r\n", value.len()).as_bytes());
    }
    // Written from a second thread so that the test itself cannot deadlock on full buffers.
    let mut writer = client.stream.try_clone().unwrap();
    writer.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&request));
    let reply = client.read_exact(expected.len());
    sender.join().unwrap().expect("write the pipeline");
    assert!(reply == expected, "pipelined replies differ");
    assert!(client.cmd("version").starts_with("VERSION "));
}

#[test]
fn a_client_that_writes_a_whole_pipeline_before_reading_gets_every_reply() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    let value = vec![b'v'; 1024];
    client.set("big", 0, 0, &value);
    // 5000 gets of a 1 KiB value: 35 KB of requests that ask for 5 MB of replies.
    let gets = 5000;
    let request = b"get big\r\n".repeat(gets);
    client.stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    client.send(&request);
    let mut one = b"VALUE big 0 1024\r\n".to_vec();
    one.extend_from_slice(&value);
    one.extend_from_slice(b"\r\nEND\r\n");
    let reply = client.read_exact(one.len() * gets);
    assert!(reply == one.repeat(gets), "replies differ");
}

#[test]
fn unix_socket_answers_with_its_mode_and_no_tcp_listener() {
    let dir = std::env::temp_dir().join(format!("memcachedrep-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let server = Server::start_unix(&path, &["-a", "0770"]);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).expect("connect unix socket");
    stream.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    stream.write_all(b"set u 5 0 2\r\nhi\r\nget u\r\n").unwrap();
    let expected = b"STORED\r\nVALUE u 5 2\r\nhi\r\nEND\r\n";
    let mut reply = vec![0u8; expected.len()];
    stream.read_exact(&mut reply).expect("reply on the unix socket");
    assert_eq!(show(&reply), show(expected));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o770, "socket file mode {mode:o}");
    assert_eq!(tcp_listeners(server.pid()), Vec::<String>::new(), "no TCP listener with -s");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_exits_zero_promptly() {
    let mut server = Server::start(&[]);
    let mut busy = server.connect();
    busy.set("k", 0, 0, b"v");
    let _idle = server.connect();
    // Cross-checks the helper that the unix-socket test relies on to see no TCP listener.
    assert_eq!(tcp_listeners(server.pid()).len(), 1, "one TCP listener on 127.0.0.1");
    let start = Instant::now();
    let status = server.signal_and_wait("TERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(start.elapsed() < Duration::from_secs(3), "exit took {:?}", start.elapsed());
}

#[test]
fn sigint_exits_zero_promptly() {
    let mut server = Server::start(&[]);
    let _idle = server.connect();
    let start = Instant::now();
    let status = server.signal_and_wait("INT");
    assert!(status.success(), "exit status after SIGINT: {status}");
    assert!(start.elapsed() < Duration::from_secs(3), "exit took {:?}", start.elapsed());
}

#[test]
fn random_bytes_on_one_connection_harm_neither_others_nor_stored_items() {
    let server = Server::start(&[]);
    let mut keeper = server.connect();
    let items: Vec<(String, Vec<u8>)> =
        (0..1000).map(|i| (format!("keep:{i}"), format!("value {i} ").repeat(1 + i % 7).into_bytes())).collect();
    for (key, value) in &items {
        keeper.set(key, 7, 0, value);
    }

    // A neighbour keeps working while the garbage flows; it counts its round trips.
    let done = Arc::new(AtomicBool::new(false));
    let neighbour = {
        let done = Arc::clone(&done);
        let mut c = server.connect();
        std::thread::spawn(move || {
            let mut rounds = 0u64;
            while !done.load(Ordering::Relaxed) || rounds == 0 {
                let value = format!("n{rounds}");
                c.set("neighbour", 0, 0, value.as_bytes());
                assert_eq!(c.get("neighbour"), Some(value.into_bytes()));
                rounds += 1;
            }
            rounds
        })
    };

    let total = 4 << 20;
    let mut rng = Prng(0x6d65_6d63_6163_6865);
    let mut sent = 0usize;
    let mut connections = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    // The server may close the connection on garbage; the rest goes on a new one.
    while sent < total && Instant::now() < deadline {
        connections += 1;
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        // Drain whatever the server answers so that it never blocks on us.
        let mut drain = stream.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            let mut sink = [0u8; 65536];
            while matches!(drain.read(&mut sink), Ok(n) if n > 0) {}
        });
        let mut first = true;
        while sent < total {
            let mut chunk = vec![0u8; 16 * 1024];
            rng.fill(&mut chunk);
            // 0x80 would switch this connection to the binary protocol, whose random opcodes
            // include flush; the ascii garbage is what this test is about.
            if first && chunk[0] == 0x80 {
                chunk[0] = b'x';
            }
            first = false;
            if stream.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
        reader.join().unwrap();
    }
    eprintln!("{sent} random bytes over {connections} connections");
    assert!(sent >= total, "sent only {sent} bytes in {connections} connections before the deadline");
    done.store(true, Ordering::Relaxed);
    let rounds = neighbour.join().expect("the neighbour kept getting right answers");
    assert!(rounds > 0);

    let mut after = server.connect();
    assert!(after.cmd("version").starts_with("VERSION "));
    for (key, value) in &items {
        assert_eq!(after.get(key).as_ref(), Some(value), "{key} after the garbage");
    }
}

#[test]
fn a_two_gigabyte_value_is_refused_without_buffering_it() {
    let server = Server::start(&[]);
    let baseline = server.rss_kib();
    let mut huge = server.connect();
    huge.stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    huge.send(b"set k 0 0 2000000000\r\n");
    // 256 MiB of the announced value: a server that kept it would grow by that much.
    // memcached swallows it all (and answers only after the last byte); a server that
    // answers at once and closes the connection refuses it too, so a closed write ends this.
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..256 {
        if huge.stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut other = server.connect();
    assert!(other.cmd("version").starts_with("VERSION "));
    let grown = server.rss_kib().saturating_sub(baseline);
    eprintln!("RSS grew by {grown} KiB while swallowing 256 MiB of a refused value");
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB while swallowing a refused value");
    drop(huge);
    assert_eq!(other.get("k"), None, "the refused value was not stored");
}

#[test]
fn a_client_that_never_reads_does_not_grow_the_server_without_bound() {
    let server = Server::start(&[]);
    let mut setup = server.connect();
    let value = vec![b'b'; 100 * 1024];
    setup.set("bigkey", 0, 0, &value);
    let baseline = server.rss_kib();

    let mut greedy = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    greedy.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let writer = std::thread::spawn(move || {
        // 50 MB of requests asking for ~400 GB of replies; the write times out once the
        // server stops reading, which is what it should do.
        let block = b"get bigkey\r\n".repeat(4096);
        let mut sent = 0usize;
        while sent < 50 << 20 {
            if greedy.write_all(&block).is_err() {
                break;
            }
            sent += block.len();
        }
        (sent, greedy)
    });
    let mut peak = baseline;
    while !writer.is_finished() {
        peak = peak.max(server.rss_kib());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (sent, greedy) = writer.join().unwrap();
    peak = peak.max(server.rss_kib());
    let grown = peak.saturating_sub(baseline);
    eprintln!("RSS peak grew by {grown} KiB; the non-reader got {sent} bytes in");
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB for a client that never reads ({sent} bytes sent)");
    drop(greedy);
    assert_eq!(setup.get("bigkey"), Some(value), "the server still answers others");
}

#[test]
fn idle_timeout_closes_an_idle_connection() {
    let server = Server::start(&["-o", "idle_timeout=1"]);
    let mut idle = server.connect();
    assert!(idle.cmd("version").starts_with("VERSION "));
    idle.stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let start = Instant::now();
    assert!(idle.is_closed(), "idle connection still open after {:?}", start.elapsed());
    assert!(start.elapsed() >= Duration::from_millis(900), "closed after only {:?}", start.elapsed());
}

#[test]
fn one_get_of_many_large_values_is_streamed_not_held_in_memory() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let value = vec![b'v'; 512 * 1024];
    c.set("half", 0, 0, &value);
    let baseline = server.rss_kib();
    // One command whose answer is 200 MiB: held whole, it would show in the RSS.
    let keys = 400;
    c.send(format!("get{}\r\n", " half".repeat(keys)).as_bytes());
    let header = format!("VALUE half 0 {}\r\n", value.len());
    let expected = keys * (header.len() + value.len() + 2) + b"END\r\n".len();
    // A measuring window while the client reads nothing: the server can only fill the socket.
    let mut peak = baseline;
    let window = Instant::now() + Duration::from_millis(300);
    while Instant::now() < window {
        peak = peak.max(server.rss_kib());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut received = 0usize;
    let mut tail = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    while received < expected {
        let n = c.stream.read(&mut chunk).expect("read");
        assert!(n > 0, "closed after {received} of {expected} bytes");
        received += n;
        // The last bytes seen, across reads (the final read may hold only a few).
        tail.extend_from_slice(&chunk[..n]);
        tail.drain(..tail.len().saturating_sub(16));
        peak = peak.max(server.rss_kib());
    }
    assert_eq!(received, expected, "the whole answer, and nothing more");
    assert!(tail.ends_with(b"\r\nEND\r\n"), "ends with END: {:?}", show(&tail));
    let grown = peak.saturating_sub(baseline);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB while answering one 200 MiB get");
}

/// The real and effective uid of a process, from /proc.
fn uids(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status.lines().find_map(|l| l.strip_prefix("Uid:")).map(|v| v.split_whitespace().take(2).collect::<Vec<_>>().join(" ")).expect("Uid")
}

#[test]
fn user_switch_comes_after_binding_a_privileged_port() {
    // Ours only: memcached drops privileges before it binds.
    if common::against_reference() {
        return;
    }
    if !common::require_root("binding a port below 1024") {
        return;
    }
    let port = (900..1024).find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()).expect("a free port below 1024");
    /// Kills the server even when an assertion fails first.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Killed(
        std::process::Command::new(common::binary())
            .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-u", "nobody"])
            .spawn()
            .expect("start"),
    );
    wait_until("the privileged port to answer", Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    let nobody = std::process::Command::new("id").args(["-u", "nobody"]).output().expect("id");
    let uid = String::from_utf8_lossy(&nobody.stdout).trim().to_string();
    assert_eq!(uids(child.0.id()), format!("{uid} {uid}"), "real and effective uid are nobody's");
}

/// A binary request with opaque 0 and no cas.
fn binary_request(opcode: u8, key: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
    let body_len = (extras.len() + key.len() + value.len()) as u32;
    let mut packet = vec![0x80, opcode];
    packet.extend_from_slice(&(key.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[extras.len() as u8, 0, 0, 0]);
    packet.extend_from_slice(&body_len.to_be_bytes());
    packet.extend_from_slice(&[0; 12]);
    for part in [extras, key, value] {
        packet.extend_from_slice(part);
    }
    packet
}

/// The log lines of a 24-byte header: a title and four bytes a line, "*" for a line of any
/// bytes.
fn header_lines(prefix: &str, indent: &str, title: &str, rows: [&str; 6]) -> Vec<String> {
    let mut lines = vec![format!("{prefix} {title}")];
    lines.extend(rows.iter().map(|row| if *row == "*" { "*".to_string() } else { format!("{prefix}{indent} {row}") }));
    lines
}

/// Whether `expected` occurs in `lines` as a run of consecutive lines ("*" matches any).
fn contains_run(lines: &[&str], expected: &[String]) -> bool {
    lines.windows(expected.len()).any(|window| window.iter().zip(expected).all(|(line, want)| want == "*" || line == want))
}

#[test]
fn verbose_logs_binary_requests_and_responses_as_memcached() {
    let port = common::free_port();
    let log_path = std::env::temp_dir().join(format!("memcachedrep-vv-{}-{port}.log", std::process::id()));
    let log_file = std::fs::File::create(&log_path).expect("create the log file");
    /// Kills the server and removes its log even when an assertion fails first.
    struct Logged(std::process::Child, std::path::PathBuf);
    impl Drop for Logged {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_file(&self.1);
        }
    }
    let mut cmd = std::process::Command::new(common::binary());
    // -vvv: -vv's traffic lines and the connection lines around them.
    cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0", "-vvv"]);
    if common::is_root() {
        cmd.args(["-u", "root"]);
    }
    let _server = Logged(cmd.stderr(log_file).spawn().expect("start"), log_path.clone());
    wait_until("the server to answer", Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    // Lines of different connections may interleave: wait until the probes' are all there.
    wait_until("the probe connections' close in the log", Duration::from_secs(10), || {
        let log = String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default()).into_owned();
        let opened = log.matches(" new auto-negotiating client connection\n").count();
        opened > 0 && log.matches(" connection closed.\n").count() == opened
    });

    let mut binary = Client::connect(port);
    binary.send(&binary_request(0x01, b"foo", &[0; 8], b"hi"));
    assert_eq!(binary.read_exact(24)[..8], [0x81, 0x01, 0, 0, 0, 0, 0, 0]);
    binary.send(&binary_request(0x00, b"foo", &[], &[]));
    assert_eq!(binary.read_exact(30)[24..], [0, 0, 0, 0, b'h', b'i']);
    // A quiet miss answers nothing; the noop after it answers.
    binary.send(&binary_request(0x09, b"nope", &[], &[]));
    binary.send(&binary_request(0x0a, b"", &[], &[]));
    assert_eq!(binary.read_exact(24)[..2], [0x81, 0x0a]);
    let mut text = Client::connect(port);
    assert_eq!(text.get("foo"), Some(b"hi".to_vec()));

    let mut log = String::new();
    let mut fds = None;
    wait_until("both clients' lines in the log", Duration::from_secs(10), || {
        log = String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default()).into_owned();
        let fd_of = |protocol: &str| {
            log.lines().find_map(|l| l.strip_suffix(&format!(": Client using the {protocol} protocol"))?.parse::<u32>().ok())
        };
        fds = fd_of("binary").zip(fd_of("ascii"));
        fds.is_some_and(|(_, ascii)| log.contains(&format!(">{ascii} END")))
    });
    let (fd, ascii) = fds.unwrap();
    let (read, write) = (format!("<{fd}"), format!(">{fd}"));
    let request = |rows| header_lines(&read, "   ", "Read binary protocol data:", rows);
    let response = |rows| header_lines(&write, "  ", "Writing bin response:", rows);
    let zero = "0x00 0x00 0x00 0x00";
    let mut expected = vec![format!("<{fd} new auto-negotiating client connection"), format!("{fd}: Client using the binary protocol")];
    expected.extend(request(["0x80 0x01 0x00 0x03", "0x08 0x00 0x00 0x00", "0x00 0x00 0x00 0x0d", zero, zero, zero]));
    expected.push(format!("<{fd} SET foo Value len is 2"));
    // The cas of a store is the server's own.
    expected.extend(response(["0x81 0x01 0x00 0x00", zero, zero, zero, "*", "*"]));
    expected.extend(request(["0x80 0x00 0x00 0x03", zero, "0x00 0x00 0x00 0x03", zero, zero, zero]));
    expected.push(format!("<{fd} GET foo"));
    // memcached logs a found value's header before it fills in the cas.
    expected.extend(response(["0x81 0x00 0x00 0x00", "0x04 0x00 0x00 0x00", "0x00 0x00 0x00 0x06", zero, zero, zero]));
    expected.extend(request(["0x80 0x09 0x00 0x04", zero, "0x00 0x00 0x00 0x04", zero, zero, zero]));
    expected.push(format!("<{fd} GET nope"));
    expected.extend(request(["0x80 0x0a 0x00 0x00", zero, zero, zero, zero, zero]));
    expected.extend(response(["0x81 0x0a 0x00 0x00", zero, zero, zero, zero, zero]));
    let lines: Vec<&str> = log.lines().collect();
    assert!(contains_run(&lines, &expected), "expected\n{}\nin the log\n{log}", expected.join("\n"));
    let text_lines: Vec<String> = [
        format!("{ascii}: Client using the ascii protocol"),
        format!("<{ascii} get foo"),
        format!(">{ascii} sending key foo"),
        format!(">{ascii} END"),
    ]
    .to_vec();
    assert!(contains_run(&lines, &text_lines), "expected\n{}\nin the log\n{log}", text_lines.join("\n"));
}
