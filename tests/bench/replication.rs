//! `cargo bench --bench replication` (`make bench-replication`): what replication costs.
//!
//! - set-only throughput of one memcachedrep node alone, of node A of a linked pair (the
//!   ratio is the price of a peer), and of Debian's memcached for reference: 2 client
//!   threads, 16 sets pipelined per round trip, 100-byte values over 100k keys; the median
//!   of 3 runs (`BENCH_REPEATS`) of 2 s (`BENCH_SECONDS`);
//! - replication lag under that load: from the moment the load on A stops until B holds
//!   every client's last write (median of the pair's runs), and how often A's queue
//!   overflowed in a run (each overflow is caught up by a scan);
//! - the time to copy 1 GiB of items (1M x 1 KiB; `BENCH_COPY_MIB` scales it) to a node that
//!   joins a loaded peer, both at `-m 1200`: from its start until it serves with every item.
//!
//! Std only (no bench harness, no crates); it reuses the test harness. `BENCH_THEIRS` names
//! the reference program (default `memcached` from PATH; skipped with a note if missing).
//! Nodes on 127.0.0.2 and 127.0.0.4, on free ports.

#[path = "../common/mod.rs"]
mod common;
#[path = "../pair/mod.rs"]
mod pair;

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pair::{free_ports, keys, store_request, value_for, wait_link_up, Conn, Node, Pair, A_ADDR, B_ADDR};

const KEYS: u64 = 100_000;
const VALUE_LEN: usize = 100;
const THREADS: usize = 2;
const DEPTH: usize = 16;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// xorshift64*: a seeded stream of key choices.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One load run: its throughput, and each client's last write (key, value).
struct LoadRun {
    ops_per_sec: f64,
    last_writes: Vec<(String, Vec<u8>)>,
}

/// `THREADS` clients setting random keys on `addr:port`, `DEPTH` per round trip, for
/// `seconds`. Values carry `tag`, the client and a counter, so each last write is unique.
fn set_load(addr: &str, port: u16, seconds: f64, tag: &str) -> LoadRun {
    let start = Arc::new(Barrier::new(THREADS + 1));
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            let mut conn = Conn::connect(addr, port);
            let (start, tag) = (Arc::clone(&start), tag.to_string());
            std::thread::spawn(move || {
                let mut prng = Prng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
                let mut done = 0u64;
                let mut last = (String::new(), Vec::new());
                start.wait();
                let end = Instant::now() + Duration::from_secs_f64(seconds);
                while Instant::now() < end {
                    let mut req = Vec::with_capacity(DEPTH * (VALUE_LEN + 40));
                    for _ in 0..DEPTH {
                        let key = format!("key:{}", prng.next() % KEYS);
                        let value = value_for(&key, &format!("{tag}-{t}-{done}"), VALUE_LEN);
                        store_request(&mut req, "set", &key, 0, 0, &value, "");
                        last = (key, value);
                        done += 1;
                    }
                    conn.send(&req);
                    for _ in 0..DEPTH {
                        let reply = conn.line();
                        assert_eq!(reply, "STORED", "set under load");
                    }
                }
                (done, last)
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut total = 0;
    let mut last_writes = Vec::new();
    for client in clients {
        let (done, last) = client.join().expect("load client");
        total += done;
        last_writes.push(last);
    }
    LoadRun { ops_per_sec: total as f64 / began.elapsed().as_secs_f64(), last_writes }
}

/// Polls `node` (every millisecond) until it holds every one of `writes`; the time it took.
fn time_until_visible(node: &Node, writes: &[(String, Vec<u8>)]) -> Duration {
    let began = Instant::now();
    let mut conn = node.conn();
    for (key, value) in writes {
        loop {
            if conn.get_one(key).is_some_and(|item| &item.value == value) {
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(120), "{key} never reached {}", node.name());
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    began.elapsed()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The reference program, if it is there.
fn theirs() -> Option<PathBuf> {
    let name = std::env::var("BENCH_THEIRS").unwrap_or_else(|_| "memcached".to_string());
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if found.is_none() {
        eprintln!("skipped the reference: {name} not found (apt-get install memcached)");
    }
    found
}

fn main() {
    let seconds = env_number("BENCH_SECONDS", 2) as f64;
    let repeats = env_number("BENCH_REPEATS", 3).max(1);
    let copy_mib = env_number("BENCH_COPY_MIB", 1024);
    let memory = ["-m".to_string(), "256".to_string()];

    let (mut alone, mut paired, mut reference, mut lags) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut overflows = 0;
    for run in 0..repeats {
        {
            let mut node = Node::spawn_program(&common::binary(), A_ADDR, free_ports(A_ADDR, 1)[0], 0, &memory);
            node.wait_ready();
            alone.push(set_load(A_ADDR, node.port, seconds, &format!("alone{run}")).ops_per_sec);
        }
        {
            let pair = Pair::start(&["-m", "256"], &["-m", "256"]);
            let load = set_load(A_ADDR, pair.a.port, seconds, &format!("pair{run}"));
            paired.push(load.ops_per_sec);
            lags.push(time_until_visible(&pair.b, &load.last_writes).as_secs_f64() * 1000.0);
            overflows = pair.a.repl_num("queue_overflows").max(overflows);
        }
        if let Some(program) = theirs() {
            let mut node = Node::spawn_program(&program, A_ADDR, free_ports(A_ADDR, 1)[0], 0, &memory);
            node.wait_ready();
            reference.push(set_load(A_ADDR, node.port, seconds, &format!("ref{run}")).ops_per_sec);
        }
    }

    let (copied_items, copy_secs) = copy_to_joining_node(copy_mib);

    let (alone, paired) = (median(alone), median(paired));
    println!();
    println!("replication benchmark: set-only, {THREADS} clients x {DEPTH} pipelined, {VALUE_LEN}-byte values, {KEYS} keys, median of {repeats} x {seconds} s");
    println!("{:<44}{:>14}", "memcachedrep alone (ops/s)", format!("{alone:.0}"));
    println!("{:<44}{:>14}", "memcachedrep A of a linked pair (ops/s)", format!("{paired:.0}"));
    println!("{:<44}{:>14}", "ratio pair / alone", format!("{:.2}", paired / alone));
    if reference.is_empty() {
        println!("{:<44}{:>14}", "Debian memcached (ops/s)", "skipped");
    } else {
        let reference = median(reference);
        println!("{:<44}{:>14}", "Debian memcached (ops/s)", format!("{reference:.0}"));
        println!("{:<44}{:>14}", "ratio alone / memcached", format!("{:.2}", alone / reference));
    }
    println!("{:<44}{:>14}", "lag after the load stops (ms, median)", format!("{:.1}", median(lags)));
    println!("{:<44}{:>14}", "A's queue overflows in one run (max)", overflows.to_string());
    let mib = copied_items as f64 / 1024.0;
    println!("{:<44}{:>14}", format!("join copy of {copied_items} x 1 KiB ({mib:.0} MiB) (s)"), format!("{copy_secs:.2}"));
    println!("{:<44}{:>14}", "join copy rate (MiB/s)", format!("{:.0}", mib / copy_secs));
}

/// Loads `mib` MiB of 1 KiB items into a node, starts its peer empty, and times the peer
/// from its start until it serves holding every item. Returns (items, seconds).
fn copy_to_joining_node(mib: u64) -> (u64, f64) {
    let items = (mib * 1024) as usize;
    let big = ["-m", "1200"];
    let (pa, pb) = (free_ports(A_ADDR, 2), free_ports(B_ADDR, 2));
    let a = Node::start(A_ADDR, pa[0], pa[1], Some(&format!("{B_ADDR}:{}", pb[1])), &[big[0], big[1], "-o", "repl_join_wait=1"]);
    let all = keys("copy", items);
    let loaders: Vec<_> = all
        .chunks(items.div_ceil(THREADS).max(1))
        .map(|part| {
            let (mut conn, part) = (a.conn(), part.to_vec());
            std::thread::spawn(move || {
                for batch in part.chunks(500) {
                    let mut req = Vec::with_capacity(batch.len() * 1100);
                    for key in batch {
                        store_request(&mut req, "set", key, 0, 0, &value_for(key, "c", 1024), "");
                    }
                    conn.send(&req);
                    for _ in batch {
                        assert_eq!(conn.line(), "STORED", "load for the copy");
                    }
                }
            })
        })
        .collect();
    for loader in loaders {
        loader.join().expect("loader");
    }
    let loaded = a.stat_num("curr_items");
    assert_eq!(loaded, items as u64, "A evicted while loading: raise -m");

    let began = Instant::now();
    let mut b = Node::spawn(B_ADDR, pb[0], pb[1], Some(&format!("{A_ADDR}:{}", pa[1])), &big);
    b.wait_ready();
    let mut conn = b.conn();
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        let have: u64 = conn.stat("", "curr_items").parse().unwrap_or(0);
        if have >= loaded {
            break;
        }
        assert!(Instant::now() < end, "B holds only {have} of {loaded} items");
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = began.elapsed().as_secs_f64();
    wait_link_up(&b);
    (loaded, secs)
}
