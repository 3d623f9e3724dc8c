//! The soak: a pair (A and B, linked through a TCP proxy on loopback) under mixed load
//! (set, delete, incr, get on both nodes) for SOAK_SECONDS (default 600), while the controller
//! injects one fault at a time at random moments: kill -9 of a node and its restart, SIGSTOP
//! of a node then SIGCONT, a cut of the link at the proxy then its heal, or a kill -9 of a node
//! during a cut (restarted while still cut). SOAK_SEED (default: the clock) fixes the
//! controller's and the load's choices (not their timing); the seed is printed first.
//!
//! After each fault, once the pair is whole again, each load thread reads all its keys back
//! from both nodes before it writes again: each must hold what its acknowledged writes allow
//! (below). At the end, once the load has stopped and the pair is whole and caught up, it
//! fails (exit 1, every violation printed) unless: both nodes hold the same item (value,
//! flags, cas) for every key of the load's key space and the same curr_items; every key
//! holds what its acknowledged writes allow; no node evicted (so "lost" means lost);
//! no sampled VmRSS went over `-m` plus `RSS_OVERHEAD_KIB`; and every request to a node that
//! was running and not stopped was answered within `STALL` (a request to a node killed or
//! stopped under it is given up; the client reconnects and moves on to the other node).
//!
//! "Acknowledged while both were up" (a protected write), precisely. The run alternates
//! healthy and faulty windows. A healthy window opens once the pair is whole after a fault:
//! both processes running and not stopped, the proxy forwarding, both nodes reporting link
//! state `up`, and a marker key written on each node seen on the other (so whatever the fault
//! left in flight, a late incr/decr request included, has landed). It closes before the next
//! fault: the controller closes it, then writes a marker on each node and waits until the
//! other has it, so every write acknowledged before the close is on both nodes before the
//! fault begins. A write is protected when the load read the window state before sending it,
//! the window was open, and it had not closed when the acknowledgement was read. The
//! acknowledgements are: `set` STORED (the value and flags), `delete` DELETED (the key is
//! absent), `incr` answering a number (that value; its flags are whatever the item had, so
//! they are not checked). NOT_FOUND and the non-numeric error change nothing: not writes.
//! A `get` is load only: a read may lag the other node's last write.
//!
//! Each key is written by one load thread only, one request at a time, so "later" is that
//! thread's order. A request goes to another node than the key's previous request only
//! `CROSS_NODE_GAP` after that one's answer: the version that orders writes is a millisecond
//! clock, and two writes in one millisecond on the two nodes are "at once" to the pair.
//!
//! The check: a key's item (on each node at a sweep; the same on both at the end) must be
//! the outcome of its last protected write (at first: absent), or the outcome of a request
//! sent after that write was acknowledged: one acknowledged in a faulty window, or one that
//! got no answer because its node was killed or stopped under it (whether it was applied is
//! unknown; an incr's result then is any number). Those may legitimately be lost or win: a
//! killed node loses the writes it had not sent yet, and a split merges last-writer-wins. A
//! write acknowledged while the pair was whole but not yet sent when a node was killed is
//! lost in repcached's model too: the barrier before each fault keeps such writes out of the
//! protected ones, so that losing one is never counted as a violation.

#[path = "../common/mod.rs"]
mod common;
#[path = "../pair/mod.rs"]
mod pair;

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pair::{dump, keys, value_for, wait_link_up, wait_marker, Item, Node, Pair, Proxy};

/// `-m` of both nodes: five times the load's largest working set, so nothing is evicted.
const MEMORY_MIB: u64 = 64;
/// Allowance over `-m` for code, stacks, the hash table, buffers, the replication queue and
/// tombstones.
const RSS_OVERHEAD_KIB: u64 = 40 * 1024;
/// `-q`: more keys than the load has, so the queue never overflows and a marker that reached
/// the peer proves that everything queued before it did.
const QUEUE: &str = "65536";
/// The longest a running node may take to answer one request.
const STALL: Duration = Duration::from_secs(10);
/// See the module comment: more than one millisecond, so the next version is larger.
const CROSS_NODE_GAP: Duration = Duration::from_millis(2);
const THREADS: usize = 3;
/// Each thread's keys: a few hot ones that take most requests, with values up to
/// `MAX_VALUE`, and many cold ones with short values, each written every several seconds,
/// so that a write made just before or during a fault is often still the key's latest when
/// the sweep after the fault reads it (a working set of about 20 MiB in all).
const HOT_KEYS: usize = 2000;
const COLD_KEYS: usize = 30000;
const MAX_VALUE: u64 = 1500;
const MAX_COLD_VALUE: u64 = 60;
/// One request in this many goes to a cold key.
const COLD_ONE_IN: u64 = 5;
/// How long the pair runs healthy between two faults, and how long a fault lasts (ms).
const HEALTHY_MS: (u64, u64) = (2000, 8000);
const FAULT_MS: (u64, u64) = (300, 5000);

const NODE_NAMES: [&str; 2] = ["A", "B"];

/// xorshift64*: reproducible from the seed, and no crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        // splitmix64 of (seed, stream): distinct non-zero states per thread.
        let mut z = seed.wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, (lo, hi): (u64, u64)) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

/// What the controller, the load threads and the RSS sampler share.
struct Shared {
    /// Odd while a healthy window is open; bumped when one opens and when it closes.
    phase: AtomicU64,
    /// Per node (0 A, 1 B): killed, restarting or stopped, so the load leaves it alone.
    down: [AtomicBool; 2],
    /// Per node: faults begun on it, so a request that failed under one is excused.
    faults_begun: [AtomicU64; 2],
    /// Per node: restarts completed, so a client drops a connection to a process now gone.
    incarnation: [AtomicU64; 2],
    /// Per node: its process id for the sampler, 0 while it is not running.
    pids: [AtomicU32; 2],
    max_rss_kib: [AtomicU64; 2],
    addrs: [SocketAddr; 2],
    stop: AtomicBool,
    violations: Mutex<Vec<String>>,
}

impl Shared {
    fn violation(&self, text: String) {
        eprintln!("VIOLATION: {text}");
        self.violations.lock().unwrap_or_else(|p| p.into_inner()).push(text);
    }
}

/// What a write may have left in its key.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Absent,
    /// `flags` None: not known to the client (an incr keeps the item's flags).
    Item {
        flags: Option<u32>,
        value: Vec<u8>,
    },
    /// An incr that got no answer: some number.
    SomeNumber,
}

impl Outcome {
    fn allows(&self, item: Option<&Item>) -> bool {
        match (self, item) {
            (Outcome::Absent, None) => true,
            (Outcome::Item { flags, value }, Some(item)) => item.value == *value && flags.is_none_or(|f| f == item.flags),
            (Outcome::SomeNumber, Some(item)) => !item.value.is_empty() && item.value.iter().all(u8::is_ascii_digit),
            _ => false,
        }
    }
}

/// One key's log: its last protected write and every write request sent after it.
struct KeyLog {
    protected: Outcome,
    since: Vec<Outcome>,
}

impl KeyLog {
    fn allows(&self, item: Option<&Item>) -> bool {
        self.protected.allows(item) || self.since.iter().any(|o| o.allows(item))
    }

    /// Why `item` is not allowed, for the report.
    fn explain(&self, item: Option<&Item>) -> String {
        let later: Vec<String> = self.since.iter().map(brief_outcome).collect();
        format!(
            "holds {}; its last protected write left {}, and the requests after it {later:?}",
            brief(item),
            brief_outcome(&self.protected)
        )
    }
}

#[derive(Default)]
struct Counts {
    sets: u64,
    deletes: u64,
    incrs: u64,
    gets: u64,
    protected_acks: u64,
    faulty_acks: u64,
    no_change: u64,
    unanswered: u64,
    /// Keys read back from a node by the sweeps after the faults.
    swept: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.sets += o.sets;
        self.deletes += o.deletes;
        self.incrs += o.incrs;
        self.gets += o.gets;
        self.protected_acks += o.protected_acks;
        self.faulty_acks += o.faulty_acks;
        self.no_change += o.no_change;
        self.unanswered += o.unanswered;
        self.swept += o.swept;
    }
}

/// A text-protocol connection that never panics: every failure is an answer for the caller
/// to judge (the node may have been killed or stopped under it).
struct Client {
    addr: SocketAddr,
    /// The stream, what it has read, and the node's incarnation before it connected.
    conn: Option<(TcpStream, Vec<u8>, u64)>,
}

impl Client {
    /// Sends `request` and reads one answer: up to the first line end, or for a `get` up to
    /// its END. Gives up after `STALL`.
    fn call(&mut self, request: &[u8], is_get: bool, incarnation: &AtomicU64) -> Result<Vec<u8>, String> {
        if self.conn.as_ref().is_some_and(|c| c.2 != incarnation.load(SeqCst)) {
            self.conn = None;
        }
        let result = self.try_call(request, is_get, incarnation);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn try_call(&mut self, request: &[u8], is_get: bool, incarnation: &AtomicU64) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + STALL;
        if self.conn.is_none() {
            let born = incarnation.load(SeqCst);
            let stream = TcpStream::connect_timeout(&self.addr, STALL).map_err(|e| format!("connect: {e}"))?;
            let _ = stream.set_nodelay(true);
            self.conn = Some((stream, Vec::new(), born));
        }
        let (stream, buf, _) = self.conn.as_mut().expect("connected above");
        stream.write_all(request).map_err(|e| format!("write: {e}"))?;
        let mut chunk = [0u8; 16384];
        loop {
            let complete = if is_get { buf.ends_with(b"END\r\n") } else { buf.windows(2).any(|w| w == b"\r\n") };
            if complete {
                return Ok(std::mem::take(buf));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no answer within {STALL:?}"));
            }
            stream.set_read_timeout(Some(left)).map_err(|e| format!("set timeout: {e}"))?;
            match stream.read(&mut chunk) {
                Ok(0) => return Err("connection closed".to_string()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!("no answer within {STALL:?}"))
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

fn thread_keys(thread: usize) -> Vec<String> {
    keys(&format!("soak{thread}"), HOT_KEYS + COLD_KEYS)
}

/// One load thread: random requests on its own keys, to either node, until told to stop.
fn load(thread: usize, seed: u64, shared: Arc<Shared>) -> (Counts, Vec<KeyLog>) {
    let keys = thread_keys(thread);
    let mut rng = Rng::new(seed, thread as u64 + 1);
    let mut logs: Vec<KeyLog> = keys.iter().map(|_| KeyLog { protected: Outcome::Absent, since: Vec::new() }).collect();
    let mut last: Vec<Option<(usize, Instant)>> = vec![None; keys.len()];
    let mut clients = [0, 1].map(|n| Client { addr: shared.addrs[n], conn: None });
    let mut counts = Counts::default();
    let mut op_id: u64 = 0;
    // The first window follows no fault.
    let mut swept_phase = 1;
    while !shared.stop.load(SeqCst) {
        let phase = shared.phase.load(SeqCst);
        if phase % 2 == 1 && phase != swept_phase {
            swept_phase = phase;
            sweep(&shared, &mut clients, &keys, &logs, phase, &mut counts);
        }
        let cold = rng.below(COLD_ONE_IN) == 0;
        let i = if cold { HOT_KEYS + rng.below(COLD_KEYS as u64) as usize } else { rng.below(HOT_KEYS as u64) as usize };
        let key = &keys[i];
        let mut n = rng.below(2) as usize;
        if shared.down[n].load(SeqCst) {
            n = 1 - n;
            if shared.down[n].load(SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        }
        if let Some((previous, at)) = last[i] {
            if previous != n {
                std::thread::sleep(CROSS_NODE_GAP.saturating_sub(at.elapsed()));
            }
        }
        op_id += 1;
        let roll = rng.below(100);
        let (request, written, is_get) = if roll < 50 {
            counts.sets += 1;
            let flags = rng.next() as u32;
            let value = if rng.below(3) == 0 {
                rng.below(1_000_000).to_string().into_bytes()
            } else {
                let max = if cold { MAX_COLD_VALUE } else { MAX_VALUE };
                value_for(key, &format!("{op_id}"), 1 + rng.below(max) as usize)
            };
            let mut request = format!("set {key} {flags} 0 {}\r\n", value.len()).into_bytes();
            request.extend_from_slice(&value);
            request.extend_from_slice(b"\r\n");
            (request, Some(Outcome::Item { flags: Some(flags), value }), false)
        } else if roll < 62 {
            counts.deletes += 1;
            (format!("delete {key}\r\n").into_bytes(), Some(Outcome::Absent), false)
        } else if roll < 74 {
            counts.incrs += 1;
            (format!("incr {key} {}\r\n", 1 + rng.below(100)).into_bytes(), Some(Outcome::SomeNumber), false)
        } else {
            counts.gets += 1;
            (format!("get {key}\r\n").into_bytes(), None, true)
        };
        let phase = shared.phase.load(SeqCst);
        let faults_before = shared.faults_begun[n].load(SeqCst);
        let answer = clients[n].call(&request, is_get, &shared.incarnation[n]);
        let protected = phase % 2 == 1 && shared.phase.load(SeqCst) == phase;
        last[i] = Some((n, Instant::now()));
        let Some(written) = written else {
            if let Err(e) = answer {
                judge_failure(&shared, &mut counts, n, faults_before, key, "get", &e);
            }
            continue;
        };
        let verb = String::from_utf8_lossy(&request[..request.iter().position(|&b| b == b' ').unwrap_or(0)]).into_owned();
        let outcome = match answer {
            Err(e) => {
                judge_failure(&shared, &mut counts, n, faults_before, key, &verb, &e);
                logs[i].since.push(written);
                continue;
            }
            Ok(reply) => {
                let line = String::from_utf8_lossy(&reply).trim_end().to_string();
                match (&written, line.as_str()) {
                    (Outcome::Item { .. }, "STORED") | (Outcome::Absent, "DELETED") => written,
                    (Outcome::SomeNumber, number) if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
                        Outcome::Item { flags: None, value: number.as_bytes().to_vec() }
                    }
                    (Outcome::Absent | Outcome::SomeNumber, "NOT_FOUND")
                    | (Outcome::SomeNumber, "CLIENT_ERROR cannot increment or decrement non-numeric value") => {
                        counts.no_change += 1;
                        continue;
                    }
                    _ => {
                        shared.violation(format!("{verb} {key} on {} answered {line:?}", NODE_NAMES[n]));
                        logs[i].since.push(written);
                        continue;
                    }
                }
            }
        };
        if protected {
            counts.protected_acks += 1;
            logs[i].protected = outcome;
            logs[i].since.clear();
        } else {
            counts.faulty_acks += 1;
            logs[i].since.push(outcome);
        }
    }
    (counts, logs)
}

/// Reads every key of this thread back from both nodes, before the thread writes again in the
/// window that just opened: each must hold what the key's log allows. Without it, only the
/// last write of each key would ever be checked (the end's check), and the load rewrites
/// every key long after the last fault. Gives up when the window closes under it (a node
/// restarted in a cut serves an empty cache for a while, legitimately).
fn sweep(shared: &Shared, clients: &mut [Client; 2], keys: &[String], logs: &[KeyLog], phase: u64, counts: &mut Counts) {
    let mut bad = 0;
    for n in 0..2 {
        for (batch, batch_logs) in keys.chunks(100).zip(logs.chunks(100)) {
            let request = format!("gets {}\r\n", batch.join(" "));
            let faults_before = shared.faults_begun[n].load(SeqCst);
            let reply = match clients[n].call(request.as_bytes(), true, &shared.incarnation[n]) {
                Ok(reply) => reply,
                Err(e) => return judge_failure(shared, counts, n, faults_before, &batch[0], "gets", &e),
            };
            if shared.phase.load(SeqCst) != phase {
                return;
            }
            let items = match parse_values(&reply) {
                Ok(items) => items,
                Err(e) => {
                    shared.violation(format!("gets on {} answered badly: {e}", NODE_NAMES[n]));
                    return;
                }
            };
            for (key, log) in batch.iter().zip(batch_logs) {
                counts.swept += 1;
                let have = items.get(key);
                if !log.allows(have) {
                    bad += 1;
                    if bad <= 5 {
                        shared.violation(format!("after fault {}: {key} on {} {}", phase / 2, NODE_NAMES[n], log.explain(have)));
                    }
                }
            }
        }
    }
    if bad > 5 {
        shared.violation(format!("after fault {}: {bad} keys in all hold what no write allows", phase / 2));
    }
}

/// The items of a `gets` answer, by key.
fn parse_values(reply: &[u8]) -> Result<HashMap<String, Item>, String> {
    let mut items = HashMap::new();
    let mut rest = reply;
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n").ok_or("no line end")?;
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 2..];
        if line == "END" {
            return Ok(items);
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or(format!("bad line {line:?}"));
        if fields.len() != 5 || fields[0] != "VALUE" {
            return Err(format!("bad line {line:?}"));
        }
        let (flags, len, cas) = (number(2)?, number(3)? as usize, number(4)?);
        if rest.len() < len + 2 || &rest[len..len + 2] != b"\r\n" {
            return Err(format!("value of {} not ended by CRLF", fields[1]));
        }
        let flags = u32::try_from(flags).map_err(|_| format!("flags over 32 bits: {line:?}"))?;
        items.insert(fields[1].to_string(), Item { flags, cas, value: rest[..len].to_vec() });
        rest = &rest[len + 2..];
    }
}

/// A request without an answer is excused only when a fault began on its node meanwhile, or
/// the node is down now; otherwise the node stalled a client.
fn judge_failure(shared: &Shared, counts: &mut Counts, n: usize, faults_before: u64, key: &str, verb: &str, e: &str) {
    counts.unanswered += 1;
    if shared.faults_begun[n].load(SeqCst) == faults_before && !shared.down[n].load(SeqCst) {
        shared.violation(format!("{verb} {key} on {} (running, not stopped): {e}", NODE_NAMES[n]));
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Samples both nodes' VmRSS every 200 ms; reports a node over the bound once.
fn sample_rss(shared: Arc<Shared>) {
    let bound = MEMORY_MIB * 1024 + RSS_OVERHEAD_KIB;
    let mut reported = [false; 2];
    while !shared.stop.load(SeqCst) {
        for n in 0..2 {
            let pid = shared.pids[n].load(SeqCst);
            let Some(rss) = (pid != 0).then(|| rss_kib(pid)).flatten() else { continue };
            shared.max_rss_kib[n].fetch_max(rss, SeqCst);
            if rss > bound && !reported[n] {
                reported[n] = true;
                shared.violation(format!("{} VmRSS {rss} KiB over -m {MEMORY_MIB} MiB + {RSS_OVERHEAD_KIB} KiB", NODE_NAMES[n]));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn node(pair: &mut Pair, n: usize) -> &mut Node {
    if n == 0 {
        &mut pair.a
    } else {
        &mut pair.b
    }
}

/// Both links up and a marker each way: whatever was acknowledged before is on both nodes.
fn barrier(pair: &Pair) {
    wait_link_up(&pair.a);
    wait_link_up(&pair.b);
    wait_marker(&pair.a, &pair.b);
    wait_marker(&pair.b, &pair.a);
}

#[derive(Default)]
struct Faults {
    kills: u32,
    stops: u32,
    cuts: u32,
    kills_in_cuts: u32,
}

fn kill_and_restart(pair: &mut Pair, shared: &Shared, n: usize, hold: Duration, evicted: &mut u64) {
    // The count dies with the process: kept so that the end can check it.
    *evicted += node(pair, n).stat_num("evictions");
    shared.down[n].store(true, SeqCst);
    shared.faults_begun[n].fetch_add(1, SeqCst);
    shared.pids[n].store(0, SeqCst);
    node(pair, n).kill_9();
    std::thread::sleep(hold);
    node(pair, n).restart();
    shared.incarnation[n].fetch_add(1, SeqCst);
    shared.pids[n].store(node(pair, n).pid(), SeqCst);
    shared.down[n].store(false, SeqCst);
}

/// Injects one fault, holds it, undoes it. Returns a line for the progress output.
fn inject(pair: &mut Pair, proxy: &Proxy, shared: &Shared, rng: &mut Rng, faults: &mut Faults, evicted: &mut u64) -> String {
    let n = rng.below(2) as usize;
    let hold = rng.millis(FAULT_MS);
    let name = NODE_NAMES[n];
    match rng.below(4) {
        0 => {
            faults.kills += 1;
            kill_and_restart(pair, shared, n, hold, evicted);
            format!("kill -9 {name}, restart after {hold:?}")
        }
        1 => {
            faults.stops += 1;
            shared.down[n].store(true, SeqCst);
            shared.faults_begun[n].fetch_add(1, SeqCst);
            node(pair, n).sigstop();
            std::thread::sleep(hold);
            node(pair, n).sigcont();
            shared.down[n].store(false, SeqCst);
            format!("SIGSTOP {name}, SIGCONT after {hold:?}")
        }
        // The killed node took writes during the split that it never sent, and restarts
        // without its peer: it serves alone (after -o repl_join_wait) and merges at the heal.
        3 => {
            faults.kills_in_cuts += 1;
            proxy.cut();
            std::thread::sleep(hold);
            kill_and_restart(pair, shared, n, hold, evicted);
            std::thread::sleep(hold);
            proxy.heal();
            format!("cut the link, kill -9 {name} {hold:?} later, restart it still cut, heal after {hold:?} more")
        }
        _ => {
            faults.cuts += 1;
            proxy.cut();
            std::thread::sleep(hold);
            proxy.heal();
            format!("cut the link, heal after {hold:?}")
        }
    }
}

struct Setup {
    seconds: u64,
    seed: u64,
}

fn setup() -> Setup {
    let env_u64 =
        |name: &str| std::env::var(name).ok().map(|v| v.parse::<u64>().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")));
    let clock = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    Setup { seconds: env_u64("SOAK_SECONDS").unwrap_or(600), seed: env_u64("SOAK_SEED").unwrap_or(clock) }
}

fn brief(item: Option<&Item>) -> String {
    match item {
        None => "absent".to_string(),
        Some(i) => format!("flags {} cas {} {:?}", i.flags, i.cas, String::from_utf8_lossy(&i.value[..i.value.len().min(40)])),
    }
}

fn brief_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Absent => "absent".to_string(),
        Outcome::SomeNumber => "some number".to_string(),
        Outcome::Item { flags, value } => {
            format!("flags {flags:?} {:?}", String::from_utf8_lossy(&value[..value.len().min(40)]))
        }
    }
}

/// Polls until both nodes hold the same items for `all` and the same curr_items; returns A's
/// dump, or a violation when `pair::SAME_DEADLINE` passes.
fn converged(pair: &Pair, all: &[String]) -> Result<BTreeMap<String, Item>, String> {
    let end = Instant::now() + pair::SAME_DEADLINE;
    loop {
        let (da, db) = (dump(&pair.a, all), dump(&pair.b, all));
        let (ia, ib) = (pair.a.stat_num("curr_items"), pair.b.stat_num("curr_items"));
        if da == db && ia == ib {
            return Ok(da);
        }
        if Instant::now() >= end {
            let differing: Vec<&String> = all.iter().filter(|k| da.get(*k) != db.get(*k)).collect();
            let mut text = format!(
                "the nodes still differ after {:?}: curr_items A {ia} B {ib}; {} of {} keys differ",
                pair::SAME_DEADLINE,
                differing.len(),
                all.len()
            );
            for key in differing.iter().take(5) {
                text.push_str(&format!("; {key}: A {} B {}", brief(da.get(*key)), brief(db.get(*key))));
            }
            return Err(text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let Setup { seconds, seed } = setup();
    println!("soak: SOAK_SECONDS={seconds} SOAK_SEED={seed}");
    let violations = run(seconds, seed);
    if !violations.is_empty() {
        eprintln!("soak FAILED (SOAK_SEED={seed}), {} violation(s):", violations.len());
        for v in &violations {
            eprintln!("  {v}");
        }
        std::process::exit(1);
    }
    println!("soak passed (SOAK_SEED={seed})");
}

/// The whole soak; returns the violations (the nodes and the proxy are gone when it returns).
fn run(seconds: u64, seed: u64) -> Vec<String> {
    let memory = MEMORY_MIB.to_string();
    let args = ["-m", memory.as_str(), "-q", QUEUE];
    let (mut pair, proxy) = Pair::start_through_proxy(&args, &args);
    let addr = |n: &Node| -> SocketAddr { format!("{}:{}", n.addr, n.port).parse().expect("node address") };
    let shared = Arc::new(Shared {
        phase: AtomicU64::new(1),
        down: [AtomicBool::new(false), AtomicBool::new(false)],
        faults_begun: [AtomicU64::new(0), AtomicU64::new(0)],
        incarnation: [AtomicU64::new(0), AtomicU64::new(0)],
        pids: [AtomicU32::new(pair.a.pid()), AtomicU32::new(pair.b.pid())],
        max_rss_kib: [AtomicU64::new(0), AtomicU64::new(0)],
        addrs: [addr(&pair.a), addr(&pair.b)],
        stop: AtomicBool::new(false),
        violations: Mutex::new(Vec::new()),
    });
    let loaders: Vec<JoinHandle<(Counts, Vec<KeyLog>)>> = (0..THREADS)
        .map(|t| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || load(t, seed, shared))
        })
        .collect();
    let sampler = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || sample_rss(shared))
    };

    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut rng = Rng::new(seed, 0);
    let mut faults = Faults::default();
    let mut evicted = 0;
    loop {
        std::thread::sleep(rng.millis(HEALTHY_MS).min(end.saturating_duration_since(Instant::now())));
        if Instant::now() >= end {
            break;
        }
        shared.phase.fetch_add(1, SeqCst);
        barrier(&pair);
        let injected = Instant::now();
        let what = inject(&mut pair, &proxy, &shared, &mut rng, &mut faults, &mut evicted);
        let undone = Instant::now();
        barrier(&pair);
        shared.phase.fetch_add(1, SeqCst);
        println!(
            "[{:7.1}s] {what}; whole and caught up {:.1}s after",
            injected.duration_since(start).as_secs_f64(),
            undone.elapsed().as_secs_f64()
        );
    }

    shared.stop.store(true, SeqCst);
    let mut counts = Counts::default();
    let mut logs: HashMap<String, KeyLog> = HashMap::new();
    for (t, handle) in loaders.into_iter().enumerate() {
        let (c, l) = handle.join().expect("load thread");
        counts.add(&c);
        logs.extend(thread_keys(t).into_iter().zip(l));
    }
    sampler.join().expect("RSS sampler");

    barrier(&pair);
    let all: Vec<String> = (0..THREADS).flat_map(thread_keys).collect();
    let mut violations = std::mem::take(&mut *shared.violations.lock().unwrap_or_else(|p| p.into_inner()));
    let mut lost = 0;
    match converged(&pair, &all) {
        Err(text) => violations.push(text),
        Ok(items) => {
            for key in &all {
                let log = &logs[key];
                let have = items.get(key);
                if log.allows(have) {
                    continue;
                }
                lost += 1;
                if lost <= 10 {
                    violations.push(format!("at the end: {key} on both nodes {}", log.explain(have)));
                }
            }
            if lost > 10 {
                violations.push(format!("... {lost} keys in all hold what no acknowledged write allows"));
            }
        }
    }
    evicted += pair.a.stat_num("evictions") + pair.b.stat_num("evictions");
    if evicted > 0 {
        violations.push(format!("{evicted} evictions: raise -m, or \"lost\" means nothing"));
    }
    let overflows = pair.a.repl_num("queue_overflows") + pair.b.repl_num("queue_overflows");
    if overflows > 0 {
        violations.push(format!("{overflows} queue overflows since the last restarts: raise -q, the barriers were not exact"));
    }

    let rss = [0, 1].map(|n| shared.max_rss_kib[n].load(SeqCst));
    println!(
        "soak summary: {:.0}s; ops {} (set {}, delete {}, incr {}, get {}); acks {} in healthy windows, {} in faulty ones; \
         {} changed nothing (NOT_FOUND, non-numeric); {} unanswered under a fault; faults {} (kill -9 {}, SIGSTOP {}, cut {}, kill -9 in a cut {}); \
         max RSS A {} KiB, B {} KiB (bound {} KiB); keys checked {} at the end, {} by the sweeps after faults; evictions {evicted}; queue overflows {overflows}",
        start.elapsed().as_secs_f64(),
        counts.sets + counts.deletes + counts.incrs + counts.gets,
        counts.sets,
        counts.deletes,
        counts.incrs,
        counts.gets,
        counts.protected_acks,
        counts.faulty_acks,
        counts.no_change,
        counts.unanswered,
        faults.kills + faults.stops + faults.cuts + faults.kills_in_cuts,
        faults.kills,
        faults.stops,
        faults.cuts,
        faults.kills_in_cuts,
        rss[0],
        rss[1],
        MEMORY_MIB * 1024 + RSS_OVERHEAD_KIB,
        all.len(),
        counts.swept
    );
    violations
}
