//! The two-node harness for the replication tests: nodes on explicit loopback addresses and
//! ports (restartable on the same ones), signals (kill -9, SIGSTOP/SIGCONT, SIGTERM), a
//! text-protocol client for any address, dumps of known keys, polls that wait for a link to
//! come up or for two nodes to agree, and a TCP proxy that cuts and heals a link.
//!
//! It never sleeps to pass: every wait polls with a deadline and panics when it passes. It
//! does not know the wire format; it sees nodes only as a client does (and through `stats`).
//! Used with `mod common; mod pair;` from each replication test file.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{is_root, show};

/// Node A's address; B's; the proxy's. All of 127.0.0.0/8 is on loopback on Linux. No node
/// listens on 127.0.0.1: the tests' ports lie in the kernel's ephemeral range, and other
/// tests' short-lived client sockets on 127.0.0.1 (in TIME_WAIT for a minute) would make a
/// bind there fail at random.
pub const A_ADDR: &str = "127.0.0.4";
pub const B_ADDR: &str = "127.0.0.2";
pub const PROXY_ADDR: &str = "127.0.0.3";
/// Where this process's connections (and so the proxy's) come from, whatever their target.
const LOCAL_SOURCE: &str = "127.0.0.1";

/// How long a node may take to open its client port: a joining node opens it only once it
/// holds its peer's copy, which for 100k items on a busy 2-core machine takes a while.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);
/// How long a link may take to come up (the dialer backs off up to 5 s between tries).
pub const LINK_DEADLINE: Duration = Duration::from_secs(30);
/// How long two nodes may take to agree after the last write.
pub const SAME_DEADLINE: Duration = Duration::from_secs(60);
/// How long one reply may take before a test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause between two looks of a poll.
const POLL: Duration = Duration::from_millis(20);
/// Keys per `gets` in a dump: short keys, so the command line stays well under 2 KiB.
const DUMP_BATCH: usize = 100;
/// Requests per pipelined batch when loading.
const LOAD_BATCH: usize = 500;

static HEAVY: Mutex<()> = Mutex::new(());

/// Held by the tests that move tens of megabytes, so that on a 2-core machine two of them do
/// not run at once inside one test binary (which would stretch every deadline).
pub fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `n` distinct ports that were free on `addr` a moment ago (bound together on port 0, then
/// released). Tests take their ports from here rather than fixed numbers, so that two runs
/// of this suite (two worktrees, an integrator) can share the machine; a node keeps its ports
/// across restarts.
pub fn free_ports(addr: &str, n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind((addr, 0)).unwrap_or_else(|e| panic!("bind {addr}:0: {e}"))).collect();
    held.iter().map(|l| l.local_addr().expect("local address").port()).collect()
}

/// Polls `cond` every 20 ms until it holds; after `deadline`, panics with `what` and the
/// last thing `cond` reported.
pub fn poll(what: &str, deadline: Duration, mut cond: impl FnMut() -> Result<(), String>) {
    let end = Instant::now() + deadline;
    loop {
        let last = match cond() {
            Ok(()) => return,
            Err(last) => last,
        };
        assert!(Instant::now() < end, "timed out after {deadline:?} waiting for {what}; last: {last}");
        std::thread::sleep(POLL);
    }
}

/// Waits until the wall clock has moved on by a few milliseconds, so that a write made after
/// this call gets a larger version (a millisecond clock) than one made before, on either node.
pub fn next_millisecond() {
    let start = unix_millis();
    poll("the clock to move on", Duration::from_secs(5), || {
        if unix_millis() >= start + 3 {
            Ok(())
        } else {
            Err(format!("still at {}", unix_millis()))
        }
    });
}

fn unix_millis() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// The current unix time in seconds, for absolute exptimes.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// One node process with its addresses kept, so that it can be killed and started again on
/// the same ports. Killed on drop, even when the test panics (or the node is stopped).
pub struct Node {
    child: Option<Child>,
    program: std::path::PathBuf,
    pub addr: String,
    pub port: u16,
    pub repl_port: u16,
    args: Vec<String>,
}

impl Node {
    /// Starts a node on `addr:port` with replication port `repl_port` and peer `peer`
    /// (`HOST[:PORT]`, passed as `-x`; without a peer neither `-x` nor `-X` is passed), plus
    /// `extra` arguments. Returns at once: see `wait_ready`.
    pub fn spawn(addr: &str, port: u16, repl_port: u16, peer: Option<&str>, extra: &[&str]) -> Node {
        let mut args: Vec<String> = Vec::new();
        if let Some(peer) = peer {
            args.extend(["-X".into(), repl_port.to_string(), "-x".into(), peer.to_string()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        // Always memcachedrep: a pair needs its replication, whatever server the other tests use.
        let ours = std::path::PathBuf::from(env!("CARGO_BIN_EXE_memcachedrep"));
        Node::spawn_program(&ours, addr, port, repl_port, &args)
    }

    /// Starts any memcached-compatible program (e.g. Debian's memcached, for a benchmark's
    /// reference) on `addr:port` with `extra` arguments. Returns at once.
    pub fn spawn_program(program: &std::path::Path, addr: &str, port: u16, repl_port: u16, extra: &[String]) -> Node {
        let mut args: Vec<String> = vec!["-l".into(), addr.into(), "-p".into(), port.to_string()];
        args.extend(extra.iter().cloned());
        if is_root() && !extra.iter().any(|a| a == "-u") {
            args.extend(["-u".into(), "root".into()]);
        }
        let program = program.to_path_buf();
        let mut node = Node { child: None, program, addr: addr.to_string(), port, repl_port, args };
        node.launch();
        node
    }

    /// `spawn`, then `wait_ready`.
    pub fn start(addr: &str, port: u16, repl_port: u16, peer: Option<&str>, extra: &[&str]) -> Node {
        let mut node = Node::spawn(addr, port, repl_port, peer, extra);
        node.wait_ready();
        node
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name());
        let child = crate::common::server_command(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.program.display()));
        self.child = Some(child);
    }

    /// "127.0.0.4:41234", for messages.
    pub fn name(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_else(|| panic!("{} is not running", self.name()))
    }

    /// Panics if the process has exited.
    pub fn assert_running(&mut self) {
        let name = self.name();
        let child = self.child.as_mut().unwrap_or_else(|| panic!("{name} is not running"));
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("{name} exited: {status}");
        }
    }

    /// Waits until the node answers a command on its client port: a connect alone is not
    /// enough, since a node may hold its port open but not serve until it has joined.
    pub fn wait_ready(&mut self) {
        self.wait_ready_within(READY_DEADLINE);
    }

    /// `wait_ready`, failing the test if the first answer takes longer than `deadline`.
    pub fn wait_ready_within(&mut self, deadline: Duration) {
        let end = Instant::now() + deadline;
        loop {
            self.assert_running();
            if let Ok(mut conn) = Conn::try_connect(&self.addr, self.port) {
                conn.set_timeout(end.saturating_duration_since(Instant::now()).max(POLL));
                if conn.try_cmd("version").is_some_and(|l| l.starts_with("VERSION ")) {
                    return;
                }
            }
            assert!(Instant::now() < end, "{} did not answer on its client port within {deadline:?}", self.name());
            std::thread::sleep(POLL);
        }
    }

    /// Whether the client port accepts a connection right now.
    pub fn accepting(&self) -> bool {
        TcpStream::connect((self.addr.as_str(), self.port)).is_ok()
    }

    /// Starts the node again, with the same arguments and ports, and waits until it serves.
    pub fn restart(&mut self) {
        self.launch();
        self.wait_ready();
    }

    /// SIGKILL, and reaps the process.
    pub fn kill_9(&mut self) {
        let mut child = self.child.take().unwrap_or_else(|| panic!("{} is not running", self.name()));
        child.kill().expect("kill -9");
        child.wait().expect("wait after kill -9");
    }

    /// SIGSTOP, and waits until the process is stopped.
    pub fn sigstop(&self) {
        self.signal("STOP");
        self.wait_process_state("stopped", |s| s == 'T');
    }

    /// SIGCONT, and waits until the process runs again.
    pub fn sigcont(&self) {
        self.signal("CONT");
        self.wait_process_state("running again", |s| s != 'T');
    }

    fn wait_process_state(&self, what: &str, good: impl Fn(char) -> bool) {
        let pid = self.pid();
        poll(&format!("{} to be {what}", self.name()), Duration::from_secs(10), || match process_state(pid) {
            Some(state) if good(state) => Ok(()),
            other => Err(format!("process state {other:?}")),
        });
    }

    /// Sends a signal by name (`TERM`, `STOP`, …) without waiting.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args(["-s", name, &self.pid().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -s {name} {} failed", self.pid());
    }

    /// SIGTERM, then waits up to `deadline` for the process to exit; returns its status.
    pub fn sigterm_and_wait(&mut self, deadline: Duration) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(deadline)
    }

    /// Waits up to `deadline` for the process to exit (and reaps it); returns its status.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let name = self.name();
        let end = Instant::now() + deadline;
        let child = self.child.as_mut().unwrap_or_else(|| panic!("{name} is not running"));
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < end, "{name} did not exit within {deadline:?}");
            std::thread::sleep(POLL);
        }
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(status)
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(&self.addr, self.port)
    }

    /// `stats replication` as (name, value) pairs.
    pub fn repl_stats(&self) -> Vec<(String, String)> {
        self.conn().stats("replication")
    }

    /// One `stats replication` field.
    pub fn repl(&self, name: &str) -> String {
        self.conn().stat("replication", name)
    }

    /// One numeric `stats replication` field.
    pub fn repl_num(&self, name: &str) -> u64 {
        let value = self.repl(name);
        value.parse().unwrap_or_else(|_| panic!("stats replication {name} is not a number: {value:?}"))
    }

    /// One numeric general `stats` field.
    pub fn stat_num(&self, name: &str) -> u64 {
        let value = self.conn().stat("", name);
        value.parse().unwrap_or_else(|_| panic!("stat {name} is not a number: {value:?}"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // SIGKILL ends a stopped process too.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `stats replication` until the node's link state is `up`.
pub fn wait_link_up(node: &Node) {
    wait_state(node, "up", |s| s == "up");
}

/// Polls `stats replication` until the node's link state is anything but `up`.
pub fn wait_link_down(node: &Node) {
    wait_state(node, "not up", |s| s != "up");
}

fn wait_state(node: &Node, what: &str, good: impl Fn(&str) -> bool) {
    poll(&format!("{}'s link state to be {what}", node.name()), LINK_DEADLINE, || {
        let state = node.repl("state");
        if good(&state) {
            Ok(())
        } else {
            Err(format!("state {state}"))
        }
    });
}

/// Two nodes, each the other's peer.
pub struct Pair {
    pub a: Node,
    pub b: Node,
}

impl Pair {
    /// A on 127.0.0.4 and B on 127.0.0.2 (each with a free client and replication port),
    /// each the other's peer, started together; returns once both serve and both see the
    /// link up.
    pub fn start(extra_a: &[&str], extra_b: &[&str]) -> Pair {
        let (pa, pb) = (free_ports(A_ADDR, 2), free_ports(B_ADDR, 2));
        let mut a = Node::spawn(A_ADDR, pa[0], pa[1], Some(&format!("{B_ADDR}:{}", pb[1])), extra_a);
        let mut b = Node::spawn(B_ADDR, pb[0], pb[1], Some(&format!("{A_ADDR}:{}", pa[1])), extra_b);
        a.wait_ready();
        b.wait_ready();
        wait_link_up(&a);
        wait_link_up(&b);
        Pair { a, b }
    }

    /// The same pair, linked only through a proxy on 127.0.0.3: A dials the proxy (its
    /// configured peer is 127.0.0.3, so it refuses B's own dials from 127.0.0.2), and the
    /// proxy dials B from 127.0.0.1, B's configured peer (B's own dials to 127.0.0.1 find
    /// nothing, or a stranger).
    pub fn start_through_proxy(extra_a: &[&str], extra_b: &[&str]) -> (Pair, Proxy) {
        let (pa, pb) = (free_ports(A_ADDR, 2), free_ports(B_ADDR, 2));
        let proxy = Proxy::start(PROXY_ADDR, 0, B_ADDR, pb[1]);
        let mut a = Node::spawn(A_ADDR, pa[0], pa[1], Some(&format!("{PROXY_ADDR}:{}", proxy.port)), extra_a);
        let mut b = Node::spawn(B_ADDR, pb[0], pb[1], Some(&format!("{LOCAL_SOURCE}:{}", pa[1])), extra_b);
        a.wait_ready();
        b.wait_ready();
        wait_link_up(&a);
        wait_link_up(&b);
        (Pair { a, b }, proxy)
    }
}

/// An item as `gets` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub flags: u32,
    pub cas: u64,
    pub value: Vec<u8>,
}

/// A raw text-protocol client for any address.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: &str, port: u16) -> Conn {
        Conn::try_connect(addr, port).unwrap_or_else(|e| panic!("connect {addr}:{port}: {e}"))
    }

    pub fn try_connect(addr: &str, port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect((addr, port))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::new() })
    }

    pub fn set_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).expect("set read timeout");
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to node");
    }

    /// Reads more bytes into the buffer: Ok(false) on EOF.
    fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the other end has closed this connection: reads (and keeps) whatever comes
    /// until EOF or a reset; false if the read time-out passes first.
    pub fn is_closed(&mut self) -> bool {
        loop {
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return true,
                Err(e) => return e.kind() == ErrorKind::ConnectionReset,
            }
        }
    }

    /// One line without its "\r\n", or None on EOF, error or time-out.
    fn try_line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return Some(String::from_utf8_lossy(&line[..pos]).into_owned());
            }
            if !matches!(self.fill(), Ok(true)) {
                return None;
            }
        }
    }

    /// One line without its "\r\n".
    pub fn line(&mut self) -> String {
        self.try_line().unwrap_or_else(|| panic!("no reply line; got {:?}", show(&self.buf)))
    }

    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            match self.fill() {
                Ok(true) => {}
                other => panic!("reading {n} bytes: {other:?}; got {:?}", show(&self.buf)),
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Sends a one-line command and returns the one-line answer.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.line()
    }

    fn try_cmd(&mut self, line: &str) -> Option<String> {
        self.stream.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        self.try_line()
    }

    /// A storage command (`set`, `add`, `replace`, `append`, `prepend`, or `cas` with its
    /// unique in `tail`, e.g. " 1234", and/or " noreply"); returns the answer line (read only
    /// when `tail` has no noreply).
    pub fn store(&mut self, verb: &str, key: &str, flags: u32, exptime: i64, value: &[u8], tail: &str) -> String {
        let mut req = Vec::new();
        store_request(&mut req, verb, key, flags, exptime, value, tail);
        self.send(&req);
        if tail.contains("noreply") {
            String::new()
        } else {
            self.line()
        }
    }

    /// `set`, checking the answer.
    pub fn set(&mut self, key: &str, flags: u32, exptime: i64, value: &[u8]) {
        assert_eq!(self.store("set", key, flags, exptime, value, ""), "STORED", "set {key}");
    }

    /// Makes sure every command sent before (noreply ones too) has been processed.
    pub fn sync(&mut self) {
        let answer = self.cmd("version");
        assert!(answer.starts_with("VERSION "), "expected VERSION, got {answer:?}");
    }

    /// One `gets` for these keys (keep them few and short): the hits.
    pub fn gets(&mut self, keys: &[String]) -> BTreeMap<String, Item> {
        let mut req = b"gets".to_vec();
        for key in keys {
            req.push(b' ');
            req.extend_from_slice(key.as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        self.send(&req);
        let mut items = BTreeMap::new();
        loop {
            let header = self.line();
            if header == "END" {
                return items;
            }
            let fields: Vec<&str> = header.split(' ').collect();
            assert!(fields.len() == 5 && fields[0] == "VALUE", "unexpected gets line {header:?}");
            let parse = |i: usize| -> u64 { fields[i].parse().unwrap_or_else(|_| panic!("bad gets line {header:?}")) };
            let (flags, len, cas) = (parse(2), parse(3) as usize, parse(4));
            let mut value = self.read_exact(len + 2);
            assert_eq!(&value[len..], b"\r\n", "value of {} not ended by CRLF", fields[1]);
            value.truncate(len);
            let flags = u32::try_from(flags).unwrap_or_else(|_| panic!("flags over 32 bits: {header:?}"));
            items.insert(fields[1].to_string(), Item { flags, cas, value });
        }
    }

    /// `gets` of one key.
    pub fn get_one(&mut self, key: &str) -> Option<Item> {
        self.gets(&[key.to_string()]).remove(key)
    }

    /// `stats [group]` as (name, value) pairs.
    pub fn stats(&mut self, group: &str) -> Vec<(String, String)> {
        let command = if group.is_empty() { "stats".to_string() } else { format!("stats {group}") };
        self.send(format!("{command}\r\n").as_bytes());
        let mut out = Vec::new();
        loop {
            let line = self.line();
            if line == "END" {
                return out;
            }
            let rest = line.strip_prefix("STAT ").unwrap_or_else(|| panic!("'{command}' answered {line:?}"));
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push((name.to_string(), value.to_string()));
        }
    }

    /// One `stats [group]` field.
    pub fn stat(&mut self, group: &str, name: &str) -> String {
        self.stats(group)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no field {name} in 'stats {group}'"))
    }
}

/// Appends one storage command to a pipelined request.
pub fn store_request(out: &mut Vec<u8>, verb: &str, key: &str, flags: u32, exptime: i64, value: &[u8], tail: &str) {
    out.extend_from_slice(format!("{verb} {key} {flags} {exptime} {}{tail}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Sets every key (pipelined, in batches) to `value(key)` with `flags(key)`, checking every
/// answer.
pub fn set_many(conn: &mut Conn, keys: &[String], flags: impl Fn(&str) -> u32, value: impl Fn(&str) -> Vec<u8>) {
    for batch in keys.chunks(LOAD_BATCH) {
        let mut req = Vec::new();
        for key in batch {
            store_request(&mut req, "set", key, flags(key), 0, &value(key), "");
        }
        conn.send(&req);
        for key in batch {
            assert_eq!(conn.line(), "STORED", "set {key}");
        }
    }
}

/// Deletes every key (pipelined), expecting `DELETED` for each.
pub fn delete_many(conn: &mut Conn, keys: &[String]) {
    for batch in keys.chunks(LOAD_BATCH) {
        let req: String = batch.iter().map(|k| format!("delete {k}\r\n")).collect();
        conn.send(req.as_bytes());
        for key in batch {
            assert_eq!(conn.line(), "DELETED", "delete {key}");
        }
    }
}

/// `prefix:0` .. `prefix:(n-1)`.
pub fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}

/// A value of `len` bytes that says which key (and which `round` of writes) it belongs to,
/// so a mix-up cannot pass.
pub fn value_for(key: &str, round: &str, len: usize) -> Vec<u8> {
    let stamp = format!("{key}/{round}|");
    stamp.bytes().cycle().take(len.max(stamp.len())).collect()
}

/// What the node holds for these keys (misses are absent).
pub fn dump(node: &Node, keys: &[String]) -> BTreeMap<String, Item> {
    dump_with(&mut node.conn(), keys)
}

fn dump_with(conn: &mut Conn, keys: &[String]) -> BTreeMap<String, Item> {
    let mut all = BTreeMap::new();
    for batch in keys.chunks(DUMP_BATCH) {
        all.extend(conn.gets(batch));
    }
    all
}

/// Polls until both nodes answer `gets` identically (value, flags and cas; a miss on both
/// counts as the same) for every key; returns that common content. Panics with the first
/// differences when `SAME_DEADLINE` passes.
pub fn wait_same(a: &Node, b: &Node, keys: &[String]) -> BTreeMap<String, Item> {
    let end = Instant::now() + SAME_DEADLINE;
    let (mut ca, mut cb) = (a.conn(), b.conn());
    loop {
        let (da, db) = (dump_with(&mut ca, keys), dump_with(&mut cb, keys));
        if da == db {
            return da;
        }
        if Instant::now() >= end {
            panic!("{} and {} still differ after {SAME_DEADLINE:?}: {}", a.name(), b.name(), differences(keys, &da, &db));
        }
        std::thread::sleep(POLL);
    }
}

/// A short account of how two dumps differ: the count and the first few keys.
fn differences(keys: &[String], da: &BTreeMap<String, Item>, db: &BTreeMap<String, Item>) -> String {
    let differing: Vec<&String> = keys.iter().filter(|k| da.get(*k) != db.get(*k)).collect();
    let mut text = format!("{} of {} keys differ", differing.len(), keys.len());
    for key in differing.iter().take(5) {
        text.push_str(&format!("; {key}: A={} B={}", brief(da.get(*key)), brief(db.get(*key))));
    }
    text
}

fn brief(item: Option<&Item>) -> String {
    match item {
        None => "miss".to_string(),
        Some(i) => {
            let shown: Vec<u8> = i.value.iter().copied().take(40).collect();
            format!("(flags {} cas {} {} bytes {:?})", i.flags, i.cas, i.value.len(), show(&shown))
        }
    }
}

/// Writes a fresh marker key on `from` and polls until `to` has it: everything `from` queued
/// before it has then been sent (unless its queue overflowed, when a catch-up follows).
pub fn wait_marker(from: &Node, to: &Node) {
    let key = format!("marker:{}", unix_millis());
    let value = format!("from {}", from.name()).into_bytes();
    from.conn().set(&key, 0, 0, &value);
    let mut conn = to.conn();
    poll(&format!("{key} written on {} to reach {}", from.name(), to.name()), SAME_DEADLINE, || match conn.get_one(&key) {
        Some(item) if item.value == value => Ok(()),
        other => Err(format!("{:?}", other.map(|i| show(&i.value)))),
    });
}

/// The state letter of a process from /proc/PID/stat (`T` when stopped), or None once gone.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// user + system CPU time of a process in clock ticks (from /proc/PID/stat), or None once
/// it is gone.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are fixed.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A TCP proxy (std threads) from `listen` to `target`. `cut` closes every forwarded
/// connection and closes new ones as soon as they are accepted; `heal` forwards again.
/// Stops its threads on drop.
pub struct Proxy {
    pub addr: String,
    pub port: u16,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

struct ProxyShared {
    target: SocketAddr,
    cut: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every forwarded connection, so `cut` can close them.
    open: Mutex<Vec<TcpStream>>,
    forwarded: AtomicU64,
    refused: AtomicU64,
}

impl Proxy {
    /// Listens on `addr:port` (port 0: a free one, see `self.port`).
    pub fn start(addr: &str, port: u16, target_addr: &str, target_port: u16) -> Proxy {
        let listener = TcpListener::bind((addr, port)).unwrap_or_else(|e| panic!("proxy bind {addr}:{port}: {e}"));
        let port = listener.local_addr().expect("proxy address").port();
        let target: SocketAddr = format!("{target_addr}:{target_port}").parse().expect("proxy target address");
        let shared = Arc::new(ProxyShared {
            target,
            cut: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            forwarded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || accept_loop(&listener, &for_thread));
        Proxy { addr: addr.to_string(), port, shared, acceptor: Some(acceptor) }
    }

    /// Closes every forwarded connection; new ones are closed on arrival until `heal`.
    pub fn cut(&self) {
        let mut open = self.shared.open.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.cut.store(true, Ordering::SeqCst);
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Connections forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Connections closed on arrival (cut, or the target did not answer).
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
        // Wakes the acceptor from its blocking accept.
        let _ = TcpStream::connect((self.addr.as_str(), self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<ProxyShared>) {
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = incoming else { continue };
        if shared.cut.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&shared.target, Duration::from_secs(5)) else {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let clones = (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone());
        let (Ok(client_in), Ok(server_out), Ok(client_keep), Ok(server_keep)) = clones else {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            continue;
        };
        {
            let mut open = shared.open.lock().unwrap_or_else(|p| p.into_inner());
            // A cut between the check above and here must close this one too.
            if shared.cut.load(Ordering::SeqCst) {
                shared.refused.fetch_add(1, Ordering::SeqCst);
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                continue;
            }
            open.push(client_keep);
            open.push(server_keep);
        }
        shared.forwarded.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || pump(client_in, server_out));
        std::thread::spawn(move || pump(server, client));
    }
}

/// Copies `from` to `to` until either end closes; then closes both, so a half-dead pair does
/// not linger.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&chunk[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
