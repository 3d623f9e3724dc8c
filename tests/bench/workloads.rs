//! `cargo bench --bench workloads` (part of `make bench`): memcachedrep against Debian's
//! memcached under load from an independent generator, memtier_benchmark, in the same run.
//!
//! Both servers get `-U 0 -m 1024 -t 2 -c 4096` (`-u root` as root). Every run starts a fresh
//! server, sets all 100,000 keys (100-byte values) in one memtier pass, then runs memtier for
//! `BENCH_SECONDS` (default 5) over those keys with `-t 2 -c 25` (50 busy connections):
//!
//! - get/set 90/10 with 100-byte values;
//! - set only, 1 KiB values;
//! - multi-get of 10 keys (one op is one 10-key `get`);
//! - get/set 90/10 pipelined 16 deep;
//!
//! each with nothing else open, and with 950 more idle connections that this bench opens (one
//! `version` round trip each) and holds, so 1,000 are open of which 50 are busy. It reports
//! memtier's ops/s, p50 and p99, ops per server CPU-second (utime+stime from /proc/PID/stat
//! around the run) and the server's RSS after the run.
//!
//! Then 10,000 idle connections against servers started with `-c 10240`: RSS growth per idle
//! connection, the server's thread count (/proc/PID/status) with none and with 10,000 open,
//! and the ops/s of one busy memtier client (`-t 1 -c 1`, get/set 90/10) with none and with
//! 10,000 open.
//!
//! Each figure is the median of `BENCH_REPEATS` (default 3) rounds; each round runs ours and
//! theirs, alternating which goes first. `BENCH_OURS` and `BENCH_THEIRS` choose the programs
//! (see setup.rs; `BENCH_OURS=/usr/bin/memcached` checks the machinery: ratios near 1).
//! `BENCH_ONLY` runs only the rows whose name contains it (e.g. `BENCH_ONLY="90/10, 50"`; the
//! idle-connection rows are named "idle"), for comparing builds on one workload.
//!
//! memtier_benchmark is optional: without it the memtier rows are skipped with a note. To get
//! it, `apt-get install -y build-essential autoconf automake autoconf-archive libtool
//! pkg-config libevent-dev libssl-dev zlib1g-dev` and then `bash tests/bench/build-memtier.sh`
//! (`../shared/memtier_benchmark/build.sh` stops at configure with autoconf-archive 2022 and
//! later; the script says why). Std only: no harness, no crates.

#[path = "../common/mod.rs"]
mod common;
mod setup;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Server;
use setup::{env_number, fail, find_program, median, programs};

const FLAGS: [&str; 8] = ["-U", "0", "-m", "1024", "-t", "2", "-c", "4096"];
const IDLE_FLAGS: [&str; 8] = ["-U", "0", "-m", "1024", "-t", "2", "-c", "10240"];
const KEY_MAX: &str = "100000";
const BUSY: [&str; 4] = ["-t", "2", "-c", "25"];
/// Idle connections added to the 50 busy ones for the "1,000 open" variant.
const EXTRA_IDLE: usize = 950;
const MANY_IDLE: usize = 10_000;

/// memtier's options for each workload, after the common ones.
const WORKLOADS: [(&str, &[&str]); 4] = [
    ("get/set 90/10", &["--ratio=1:9", "-d", "100"]),
    ("set 1 KiB", &["--ratio=1:0", "-d", "1024"]),
    ("multi-get 10 keys", &["--ratio=0:10", "--multi-key-get=10", "-d", "100"]),
    ("get/set 90/10 pipeline 16", &["--ratio=1:9", "-d", "100", "--pipeline=16"]),
];

/// The soft limit on open files of this process, from /proc.
fn nofile_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or_default();
    line.split_whitespace().nth(3).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX)
}

/// The bench holds 10,000 sockets itself: raises its own open-file limit with util-linux's
/// prlimit (std has no setrlimit, and the bench keeps clear of unsafe code).
fn raise_nofile(want: u64) {
    if nofile_limit() >= want {
        return;
    }
    let nofile = format!("--nofile={want}:{want}");
    let _ = Command::new("prlimit").args(["--pid", &std::process::id().to_string(), &nofile]).status();
    if nofile_limit() < want {
        fail(&format!("cannot raise the open-file limit to {want}: raise ulimit -n (or run as root)"));
    }
}

/// Clock ticks per second, as `getconf` reports it (100 on Linux unless rebuilt).
fn ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok();
    out.and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
}

/// utime+stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3; utime is 14.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map(|t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum()).unwrap_or(0.0);
    ticks / ticks_per_second()
}

fn threads(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

/// Opens `n` connections, makes one `version` round trip on each so that the server has
/// accepted and registered it, and returns them to be held open. Batches keep the server's
/// accept queue short.
fn hold_idle(port: u16, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let batch: Vec<TcpStream> = (0..(n - conns.len()).min(500))
            .map(|_| {
                let s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| fail(&format!("idle connection {}: {e}", conns.len())));
                s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
                s
            })
            .collect();
        for mut s in &batch {
            s.write_all(b"version\r\n").expect("write version");
        }
        for mut s in &batch {
            let mut reply = Vec::new();
            let mut byte = [0u8];
            while !reply.ends_with(b"\r\n") {
                match s.read(&mut byte) {
                    Ok(1) => reply.push(byte[0]),
                    _ => fail("an idle connection closed before answering version"),
                }
            }
            assert!(reply.starts_with(b"VERSION "), "unexpected reply {:?}", String::from_utf8_lossy(&reply));
        }
        conns.extend(batch);
    }
    conns
}

/// What memtier reports for one run.
struct Load {
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Runs memtier for `seconds` against the server. p50 and p99 come from its "Totals" row (the
/// columns found by their names in the header row); ops/s is its JSON total count over
/// `seconds`, because its own ops/s divides by a run time averaged over clients with whole
/// seconds truncated at each step, which can be off by a second (1 s runs showed 200 times
/// the real rate).
fn memtier(memtier: &Path, port: u16, seconds: Option<u64>, args: &[&str]) -> Load {
    let json = std::env::temp_dir().join(format!("memtier-{}.json", std::process::id()));
    let mut cmd = Command::new(memtier);
    cmd.args(["-s", "127.0.0.1", "-p", &port.to_string(), "-P", "memcache_text", "--hide-histogram"])
        .args(["--print-percentiles", "50,99", "--key-minimum=1", &format!("--key-maximum={KEY_MAX}")])
        .arg(format!("--json-out-file={}", json.display()))
        .args(args);
    if let Some(s) = seconds {
        cmd.arg(format!("--test-time={s}"));
    }
    let out = cmd.output().unwrap_or_else(|e| fail(&format!("run {}: {e}", memtier.display())));
    let text = String::from_utf8_lossy(&out.stdout);
    let count = std::fs::read_to_string(&json).ok().and_then(|j| total_count(&j));
    let _ = std::fs::remove_file(&json);
    let header = text.lines().find(|l| l.starts_with("Type "));
    let totals = text.lines().find(|l| l.starts_with("Totals "));
    let (Some(header), Some(totals), Some(count), true) = (header, totals, count, out.status.success()) else {
        fail(&format!("memtier {args:?} failed ({}):\n{text}{}", out.status, String::from_utf8_lossy(&out.stderr)));
    };
    let names: Vec<&str> = header.split("  ").map(str::trim).filter(|n| !n.is_empty()).collect();
    let values: Vec<&str> = totals.split_whitespace().collect();
    let column = |name: &str| -> f64 {
        let value = names.iter().position(|n| *n == name).and_then(|i| values.get(i)).and_then(|v| v.parse().ok());
        value.unwrap_or_else(|| fail(&format!("no {name} in memtier's totals:\n{text}")))
    };
    // memtier prints latencies in milliseconds.
    Load {
        ops_per_sec: seconds.map_or(0.0, |s| count / s as f64),
        p50_us: column("p50 Latency") * 1000.0,
        p99_us: column("p99 Latency") * 1000.0,
    }
}

/// The "Count" of "Totals" in the "ALL STATS" object of memtier's JSON output.
fn total_count(json: &str) -> Option<f64> {
    let all = &json[json.find("\"ALL STATS\"")?..];
    let totals = &all[all.find("\"Totals\"")?..];
    let count = totals[totals.find("\"Count\":")? + "\"Count\":".len()..].trim_start();
    count[..count.find(|c: char| !c.is_ascii_digit())?].parse().ok()
}

/// Sets every key once (100-byte values), so that gets hit from the first second.
fn warm(memtier_path: &Path, port: u16) {
    let each_key_once = ["--ratio=1:0", "--key-pattern=P:P", "-n", "allkeys"];
    memtier(memtier_path, port, None, &[&each_key_once[..], &["-t", "1", "-c", "4", "--pipeline=16", "-d", "100"]].concat());
}

/// One workload run's figures.
struct Run {
    load: Load,
    ops_per_cpu_sec: f64,
    rss_kib: f64,
}

fn workload_run(program: &Path, memtier_path: &Path, args: &[&str], idle: usize, seconds: u64) -> Run {
    let server = Server::start_program(&program.to_string_lossy(), &FLAGS);
    warm(memtier_path, server.port);
    let _idle = hold_idle(server.port, idle);
    let cpu_before = cpu_seconds(server.pid());
    let mut all = vec!["--distinct-client-seed"];
    all.extend_from_slice(&BUSY);
    all.extend_from_slice(args);
    let load = memtier(memtier_path, server.port, Some(seconds), &all);
    let cpu = cpu_seconds(server.pid()) - cpu_before;
    Run { ops_per_cpu_sec: load.ops_per_sec * seconds as f64 / cpu.max(0.01), rss_kib: server.rss_kib() as f64, load }
}

/// One round of the idle-connections measurement on one server.
struct IdleRun {
    rss_per_conn_kib: f64,
    threads_none: f64,
    threads_open: f64,
    busy_none: Option<f64>,
    busy_open: Option<f64>,
}

fn idle_run(program: &Path, memtier_path: Option<&Path>, seconds: u64) -> IdleRun {
    let server = Server::start_program(&program.to_string_lossy(), &IDLE_FLAGS);
    let one_client = ["--ratio=1:9", "-d", "100", "-t", "1", "-c", "1"];
    let busy = |m: &Path| memtier(m, server.port, Some(seconds), &one_client).ops_per_sec;
    let busy_none = memtier_path.map(|m| {
        warm(m, server.port);
        busy(m)
    });
    let (rss_before, threads_none) = (server.rss_kib() as f64, threads(server.pid()));
    let _idle = hold_idle(server.port, MANY_IDLE);
    let (rss_after, threads_open) = (server.rss_kib() as f64, threads(server.pid()));
    IdleRun {
        rss_per_conn_kib: (rss_after - rss_before) / MANY_IDLE as f64,
        threads_none,
        threads_open,
        busy_none,
        busy_open: memtier_path.map(busy),
    }
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2}", ours / theirs)
    } else {
        "-".to_string()
    }
}

fn main() {
    let (ours, theirs) = programs();
    let programs = [&ours, &theirs];
    let repeats = env_number("BENCH_REPEATS", 3.0).max(1.0) as usize;
    let seconds = env_number("BENCH_SECONDS", 5.0).max(1.0) as u64;
    let memtier_path: Option<PathBuf> = find_program("memtier_benchmark");
    raise_nofile(MANY_IDLE as u64 + 1024);
    // Round r runs ours first when r is even, theirs first when it is odd.
    let order = |r: usize| [r % 2, 1 - r % 2];
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();

    println!("ours:   {}", ours.display());
    println!("theirs: {}", theirs.display());
    println!("median of {repeats} alternating rounds; memtier runs of {seconds} s; both servers get the same flags");
    println!();

    if let Some(memtier_path) = &memtier_path {
        println!("memtier_benchmark {}, -t 2 -c 25 (50 busy connections), keys 1..{KEY_MAX}", memtier_path.display());
        println!("{:<44} {:>11} {:>12} {:>9} {:>9} {:>11} {:>9}", "workload", "", "ops/s", "p50 us", "p99 us", "ops/CPU-s", "RSS MiB");
        for (name, args) in WORKLOADS {
            for (idle, open) in [(0, "50 open"), (EXTRA_IDLE, "1,000 open")] {
                let label = format!("{name}, {open}");
                if !label.contains(&only) {
                    continue;
                }
                let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
                for r in 0..repeats {
                    for i in order(r) {
                        runs[i].push(workload_run(programs[i], memtier_path, args, idle, seconds));
                    }
                }
                let columns: [fn(&Run) -> f64; 5] =
                    [|r| r.load.ops_per_sec, |r| r.load.p50_us, |r| r.load.p99_us, |r| r.ops_per_cpu_sec, |r| r.rss_kib / 1024.0];
                let medians = |i: usize| columns.map(|f| median(runs[i].iter().map(f).collect()));
                let (o, t) = (medians(0), medians(1));
                println!("{label:<44} {:>11} {:>12.0} {:>9.0} {:>9.0} {:>11.0} {:>9.1}", "ours", o[0], o[1], o[2], o[3], o[4]);
                println!("{:<44} {:>11} {:>12.0} {:>9.0} {:>9.0} {:>11.0} {:>9.1}", "", "memcached", t[0], t[1], t[2], t[3], t[4]);
                let r: Vec<String> = (0..5).map(|c| ratio(o[c], t[c])).collect();
                println!("{:<44} {:>11} {:>12} {:>9} {:>9} {:>11} {:>9}", "", "ours/theirs", r[0], r[1], r[2], r[3], r[4]);
            }
        }
        println!();
    } else {
        println!("memtier_benchmark not found: its workloads are skipped. To get it: apt-get install -y build-essential");
        println!("autoconf automake autoconf-archive libtool pkg-config libevent-dev libssl-dev zlib1g-dev, then");
        println!("bash tests/bench/build-memtier.sh (Debian's memcaslap is not used: it reports no p50/p99).");
        println!();
    }

    if !"idle".contains(&only) {
        return;
    }
    let mut idle: [Vec<IdleRun>; 2] = [Vec::new(), Vec::new()];
    for r in 0..repeats {
        for i in order(r) {
            idle[i].push(idle_run(programs[i], memtier_path.as_deref(), seconds));
        }
    }
    println!("{MANY_IDLE} idle connections, servers at -c 10240");
    println!("{:<44} {:>12} {:>12} {:>12}", "", "ours", "memcached", "ours/theirs");
    let row = |label: &str, decimals: usize, f: fn(&IdleRun) -> Option<f64>| {
        let pick = |i: usize| median(idle[i].iter().filter_map(f).collect());
        if idle[0].iter().all(|r| f(r).is_some()) {
            let (o, t) = (pick(0), pick(1));
            println!("{label:<44} {o:>12.decimals$} {t:>12.decimals$} {:>12}", ratio(o, t));
        }
    };
    row("RSS growth per idle connection, KiB", 2, |r| Some(r.rss_per_conn_kib));
    row("threads, none open", 0, |r| Some(r.threads_none));
    row("threads, 10,000 open", 0, |r| Some(r.threads_open));
    row("one busy client ops/s, none open", 0, |r| r.busy_none);
    row("one busy client ops/s, 10,000 open", 0, |r| r.busy_open);
}
