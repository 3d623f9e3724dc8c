//! `cargo bench --bench compare` (`make bench`): memcachedrep against Debian's memcached,
//! started with the same flags in the same run, on the same workloads.
//!
//! - memory: `-m 64`, filled with 100-byte values (`key:NNNNNNN`) until the first eviction;
//!   reports `curr_items`, `bytes` and RSS (VmRSS of /proc/PID/status).
//! - throughput: 90% get / 10% set over 10k keys of 100-byte values, pipelined 1 and 16
//!   deep, over the text protocol with 2 and 8 client threads and over the binary and meta
//!   protocols with 2; reports ops/s and p50/p99 latency of one batch round trip.
//!
//! Each measurement is repeated (3 times by default) and the median is printed with the
//! ratio ours/theirs. Std only: no bench harness, no crates.
//!
//! Which binaries: ours is the release build cargo made for this bench
//! (`CARGO_BIN_EXE_memcachedrep`), theirs is `memcached` from PATH. `BENCH_OURS` and
//! `BENCH_THEIRS` override either (e.g. `BENCH_OURS=/usr/bin/memcached` compares memcached
//! with itself to check the machinery: every ratio should be near 1). `BENCH_SECONDS` sets
//! the length of one throughput run (default 2) and `BENCH_REPEATS` the repeats (default 3).
//! `BENCH_ONLY` runs only the rows whose name contains it (e.g. `BENCH_ONLY="text get/set 8"`;
//! the memory rows are named "memory"), for comparing builds on one workload.

mod setup;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use setup::{env_number, fail, median, programs};

const KEYS: u64 = 10_000;
const VALUE_LEN: usize = 100;
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A server process on a free loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(program: &Path, args: &[&str]) -> Result<Server, String> {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| format!("free port: {e}"))?.port();
        let mut cmd = Command::new(program);
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string()]).args(args);
        if is_root() {
            cmd.args(["-u", "root"]);
        }
        let child = cmd.stdin(Stdio::null()).spawn().map_err(|e| format!("start {}: {e}", program.display()))?;
        let mut server = Server { child, port };
        let deadline = Instant::now() + START_DEADLINE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("{} exited at start: {status}", program.display()));
            }
            if Instant::now() > deadline {
                return Err(format!("{} never answered on port {port}", program.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    fn connect(&self) -> Conn {
        Conn::new(self.port)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// A client connection with a buffered reader; panics on a protocol surprise, since a
/// benchmark that miscounts is worse than one that stops.
struct Conn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    line: String,
}

impl Conn {
    fn new(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let reader = BufReader::with_capacity(256 * 1024, stream.try_clone().expect("clone"));
        Conn { writer: stream, reader, line: String::new() }
    }

    fn read_line(&mut self) -> &str {
        self.line.clear();
        let n = self.reader.read_line(&mut self.line).expect("read reply");
        assert!(n > 0, "server closed the connection");
        &self.line
    }

    /// Reads one reply to a `get` (hit or miss) or a `set`.
    fn read_reply(&mut self) {
        let line = self.read_line();
        if line == "STORED\r\n" || line == "END\r\n" {
            return;
        }
        let len: usize = line
            .strip_prefix("VALUE ")
            .and_then(|l| l.trim_end().rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected reply {line:?}"));
        let mut value = vec![0u8; len + 2];
        self.reader.read_exact(&mut value).expect("read value");
        let end = self.read_line();
        assert_eq!(end, "END\r\n");
    }

    fn stats(&mut self) -> Vec<(String, String)> {
        self.writer.write_all(b"stats\r\n").expect("write stats");
        let mut out = Vec::new();
        loop {
            let line = self.read_line().trim_end().to_string();
            if line == "END" {
                return out;
            }
            if let Some((k, v)) = line.strip_prefix("STAT ").and_then(|l| l.split_once(' ')) {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }

    fn stat(&mut self, name: &str) -> u64 {
        self.stats().into_iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
    }
}

/// xorshift64*: a seeded stream of key choices, the same for both servers.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Which protocol a throughput run speaks; the same get/set mix in each.
#[derive(Clone, Copy)]
enum Proto {
    Text,
    Binary,
    Meta,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Text => "text",
            Proto::Binary => "binary",
            Proto::Meta => "meta",
        }
    }

    fn get(self, out: &mut Vec<u8>, key: &str) {
        match self {
            Proto::Text => out.extend_from_slice(format!("get {key}\r\n").as_bytes()),
            Proto::Binary => binary_request(out, 0x00, &[], key.as_bytes(), &[]),
            Proto::Meta => out.extend_from_slice(format!("mg {key} v f\r\n").as_bytes()),
        }
    }

    fn set(self, out: &mut Vec<u8>, key: &str, value: &[u8]) {
        match self {
            Proto::Text => set_request(out, key, value),
            Proto::Binary => binary_request(out, 0x01, &[0; 8], key.as_bytes(), value),
            Proto::Meta => {
                out.extend_from_slice(format!("ms {key} {}\r\n", value.len()).as_bytes());
                out.extend_from_slice(value);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Reads one answer to a get or a set.
    fn read(self, conn: &mut Conn) {
        match self {
            Proto::Text => conn.read_reply(),
            Proto::Binary => {
                let mut header = [0u8; 24];
                conn.reader.read_exact(&mut header).expect("binary header");
                assert_eq!(header[0], 0x81, "binary response magic");
                let body = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
                let mut rest = vec![0u8; body];
                conn.reader.read_exact(&mut rest).expect("binary body");
            }
            Proto::Meta => {
                let line = conn.read_line();
                if line == "HD\r\n" || line == "EN\r\n" {
                    return;
                }
                let len: usize = line
                    .strip_prefix("VA ")
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected meta reply {line:?}"));
                let mut value = vec![0u8; len + 2];
                conn.reader.read_exact(&mut value).expect("read value");
            }
        }
    }
}

/// A binary request: header, extras, key, value.
fn binary_request(out: &mut Vec<u8>, opcode: u8, extras: &[u8], key: &[u8], value: &[u8]) {
    out.extend_from_slice(&[0x80, opcode]);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(&[extras.len() as u8, 0, 0, 0]);
    out.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

fn set_request(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(format!("set {key} 0 0 {}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Memory workload figures.
struct MemoryRun {
    items: u64,
    bytes: u64,
    rss_kib: u64,
}

fn memory_run(program: &Path) -> MemoryRun {
    let server = Server::start(program, &["-m", "64"]).unwrap_or_else(|e| fail(&e));
    let mut conn = server.connect();
    let value = [b'm'; VALUE_LEN];
    let batch = 1000;
    let mut next = 0u64;
    // Bounded: 64 MiB hold well under 2 million 100-byte values.
    while next < 2_000_000 {
        let mut req = Vec::with_capacity(batch * 140);
        for i in next..next + batch as u64 {
            set_request(&mut req, &format!("key:{i:07}"), &value);
        }
        conn.writer.write_all(&req).expect("write sets");
        for _ in 0..batch {
            conn.read_reply();
        }
        next += batch as u64;
        if conn.stat("evictions") > 0 {
            break;
        }
    }
    let stats = conn.stats();
    let get = |name: &str| stats.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    MemoryRun { items: get("curr_items"), bytes: get("bytes"), rss_kib: server.rss_kib() }
}

/// Throughput workload figures.
struct Throughput {
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

fn preload(server: &Server) {
    let mut conn = server.connect();
    let mut req = Vec::new();
    for k in 0..KEYS {
        set_request(&mut req, &format!("key:{k:07}"), &[b'v'; VALUE_LEN]);
    }
    conn.writer.write_all(&req).expect("preload");
    for _ in 0..KEYS {
        conn.read_reply();
    }
}

fn throughput_run(server: &Server, proto: Proto, threads: usize, depth: usize, seconds: f64) -> Throughput {
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let mut conn = server.connect();
            std::thread::spawn(move || {
                let mut rng = Prng(0x1234_5678_9abc_def1 ^ ((t as u64 + 1) << 32));
                let value = [b'w'; VALUE_LEN];
                let mut latencies = Vec::new();
                let mut ops = 0u64;
                let mut req = Vec::with_capacity(depth * 160);
                let start = Instant::now();
                let end = start + Duration::from_secs_f64(seconds);
                while Instant::now() < end {
                    req.clear();
                    for _ in 0..depth {
                        let r = rng.next();
                        let key = format!("key:{:07}", (r >> 8) % KEYS);
                        if r.is_multiple_of(10) {
                            proto.set(&mut req, &key, &value);
                        } else {
                            proto.get(&mut req, &key);
                        }
                    }
                    let sent = Instant::now();
                    conn.writer.write_all(&req).expect("write batch");
                    for _ in 0..depth {
                        proto.read(&mut conn);
                    }
                    latencies.push(sent.elapsed().as_nanos() as u64);
                    ops += depth as u64;
                }
                (ops, start.elapsed(), latencies)
            })
        })
        .collect();
    let mut ops = 0;
    let mut longest = Duration::ZERO;
    let mut latencies = Vec::new();
    for w in workers {
        let (n, took, lat) = w.join().expect("client thread");
        ops += n;
        longest = longest.max(took);
        latencies.extend(lat);
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0) as f64 / 1000.0;
    Throughput { ops_per_sec: ops as f64 / longest.as_secs_f64(), p50_us: pct(0.50), p99_us: pct(0.99) }
}

fn row(label: &str, ours: f64, theirs: f64) {
    let ratio = if theirs > 0.0 { format!("{:.2}", ours / theirs) } else { "-".to_string() };
    println!("{label:<42} {ours:>14.1} {theirs:>14.1} {ratio:>12}");
}

fn main() {
    let (ours, theirs) = programs();
    let repeats = env_number("BENCH_REPEATS", 3.0).max(1.0) as usize;
    let seconds = env_number("BENCH_SECONDS", 2.0).max(0.1);
    println!("ours:   {}", ours.display());
    println!("theirs: {}", theirs.display());
    println!("median of {repeats} runs; throughput runs of {seconds} s; both servers get the same flags");
    println!();
    println!("{:<42} {:>14} {:>14} {:>12}", "workload", "ours", "memcached", "ours/theirs");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();

    // Memory: runs alternate between the two servers so that drift hits both alike.
    if "memory -m 64".contains(only.as_str()) {
        let mut mem: [Vec<MemoryRun>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..repeats {
            mem[0].push(memory_run(&ours));
            mem[1].push(memory_run(&theirs));
        }
        let pick = |runs: &Vec<MemoryRun>, f: fn(&MemoryRun) -> u64| median(runs.iter().map(|r| f(r) as f64).collect());
        row("memory -m 64: curr_items", pick(&mem[0], |r| r.items), pick(&mem[1], |r| r.items));
        row("memory -m 64: bytes", pick(&mem[0], |r| r.bytes), pick(&mem[1], |r| r.bytes));
        row("memory -m 64: RSS KiB", pick(&mem[0], |r| r.rss_kib), pick(&mem[1], |r| r.rss_kib));
    }

    let started = [&ours, &theirs].map(|p| {
        let s = Server::start(p, &["-m", "64"]).unwrap_or_else(|e| fail(&e));
        preload(&s);
        s
    });
    let servers = [&started[0], &started[1]];
    // The text protocol with 2 and 8 client threads; the binary and meta ones with 2.
    let shapes = [(Proto::Text, 2), (Proto::Text, 8), (Proto::Binary, 2), (Proto::Meta, 2)];
    for (proto, threads) in shapes {
        for depth in [1, 16] {
            let name = format!("{} get/set {threads} thr depth {depth:>2}:", proto.name());
            if !name.contains(only.as_str()) {
                continue;
            }
            let mut runs: [Vec<Throughput>; 2] = [Vec::new(), Vec::new()];
            for r in 0..repeats {
                // Alternate which server goes first, so that order does not favour one.
                for i in [r % 2, 1 - r % 2] {
                    runs[i].push(throughput_run(servers[i], proto, threads, depth, seconds));
                }
            }
            let pick = |i: usize, f: fn(&Throughput) -> f64| median(runs[i].iter().map(f).collect());
            row(&format!("{name} ops/s"), pick(0, |t| t.ops_per_sec), pick(1, |t| t.ops_per_sec));
            row(&format!("{name} p50 us"), pick(0, |t| t.p50_us), pick(1, |t| t.p50_us));
            row(&format!("{name} p99 us"), pick(0, |t| t.p99_us), pick(1, |t| t.p99_us));
        }
    }
}
