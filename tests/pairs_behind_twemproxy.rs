//! Several pairs behind twemproxy (Debian's nutcracker), laid out as the shipped example
//! init/nutcracker-pairs.yml lays them out: one ketama pool per side, whose servers carry
//! the pairs' names. Keys written through one side's pool spread over both pairs, each pair
//! holds its keys on both nodes, either side's pool reads every key, and a node killed and
//! restarted loses nothing.
//!
//! nutcracker runs the shipped example with only its addresses and timeout changed, so what
//! passes here is what is shipped. Nodes and proxy run on loopback addresses of their own (127.0.0.20
//! to .24) on free ports. Every wait polls with a deadline. Without nutcracker the tests
//! fail under CI and are skipped elsewhere.

mod common;
mod pair;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::require_program;
use pair::{free_ports, poll, set_many, value_for, wait_link_up, wait_same, Conn, Node, Pair};

const NUTCRACKER: &str = "/usr/sbin/nutcracker";
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/init/nutcracker-pairs.yml");
/// Where nutcracker listens (both pools and its stats port).
const PROXY_ADDR: &str = "127.0.0.20";
/// Each pair's nodes: side a's, side b's.
const NODE_ADDRS: [[&str; 2]; 2] = [["127.0.0.21", "127.0.0.22"], ["127.0.0.23", "127.0.0.24"]];
/// The example's addresses for the same places: the pools' listen addresses, side a's
/// then side b's, and the nodes, as in `NODE_ADDRS`.
const EXAMPLE_LISTEN: [&str; 2] = ["127.0.0.1:22121", "127.0.0.1:22122"];
const EXAMPLE_NODES: [[&str; 2]; 2] = [["10.0.0.1:11211", "10.0.0.2:11211"], ["10.0.0.3:11211", "10.0.0.4:11211"]];
/// The example's timeout in both pools, and the test's (see `example_for`).
const EXAMPLE_TIMEOUT: &str = "timeout: 1000";
const TEST_TIMEOUT: &str = "timeout: 30000";
const KEYS: usize = 10_000;
/// Keys rewritten through side b while a node is down.
const REWRITTEN: usize = 1_000;
/// Keys per `gets` through the proxy.
const READ_BATCH: usize = 100;
/// How long nutcracker may take to open its pools' ports.
const PROXY_DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn shipped_example_config_passes_nutcracker_test_conf() {
    if !require_program(NUTCRACKER, "nutcracker") {
        return;
    }
    let out = Command::new(NUTCRACKER).args(["-t", "-c", EXAMPLE]).output().expect("run nutcracker -t");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nutcracker -t rejects {EXAMPLE}: {said}");
    assert!(said.contains("syntax is ok"), "nutcracker -t said: {said}");
}

#[test]
fn keys_spread_over_two_pairs_and_survive_a_node_killed_and_restarted() {
    if !require_program(NUTCRACKER, "nutcracker") {
        return;
    }
    let mut pairs = start_pairs();
    // Taken together, so that the stats port is none of the pools'.
    let ports = free_ports(PROXY_ADDR, 3);
    let pool_ports = [ports[0], ports[1]];
    let proxy = Nutcracker::start(&example_for(pool_ports, &pairs), pool_ports, ports[2]);
    let keys = pair::keys("shard", KEYS);
    let mut expected: BTreeMap<String, Vec<u8>> = keys.iter().map(|k| (k.clone(), value_for(k, "first", 40))).collect();
    set_many(&mut proxy.side(0), &keys, |_| 0, |k| expected[k].clone());

    // Each key on exactly one pair, on both of its nodes; both pairs with a fair share.
    let held: Vec<BTreeMap<String, pair::Item>> = pairs.iter().map(|p| wait_same(&p.a, &p.b, &keys)).collect();
    for key in &keys {
        let holders: Vec<usize> = (0..2).filter(|&i| held[i].contains_key(key)).collect();
        assert_eq!(holders.len(), 1, "{key} is on pairs {holders:?}");
        assert_eq!(held[holders[0]][key].value, expected[key], "{key} on pair {}", holders[0]);
    }
    for (i, share) in held.iter().enumerate() {
        assert!(share.len() >= KEYS / 4, "pair {i} holds only {} of {KEYS} keys", share.len());
    }
    for side in 0..2 {
        assert_reads(&mut proxy.side(side), side, &expected);
    }

    // Side a's node of pair 0 dies: through side a its keys fail rather than move to pair 1,
    // pair 1's keys are still served there, and side b serves them all.
    pairs[0].a.kill_9();
    let on_pair = |i: usize| held[i].keys().next().expect("a key on the pair").clone();
    let (lost_key, kept_key) = (on_pair(0), on_pair(1));
    let mut side_a = proxy.side(0);
    // More tries than any server_failure_limit: were the node ejected, its keys would miss.
    for _ in 0..5 {
        let answer = side_a.cmd(&format!("get {lost_key}"));
        assert!(answer.starts_with("SERVER_ERROR"), "get {lost_key} through side a with its node dead: {answer:?}");
    }
    assert_eq!(side_a.get_one(&kept_key).map(|i| i.value), Some(expected[&kept_key].clone()));
    assert_reads(&mut proxy.side(1), 1, &expected);

    // Writes go on through side b meanwhile; the restarted node takes its pair's full copy.
    let rewritten = &keys[..REWRITTEN];
    for key in rewritten {
        expected.insert(key.clone(), value_for(key, "second", 60));
    }
    set_many(&mut proxy.side(1), rewritten, |_| 0, |k| expected[k].clone());
    pairs[0].a.restart();
    wait_link_up(&pairs[0].a);
    assert!(pairs[0].a.repl_num("full_syncs") >= 1, "the restarted node did not take a full copy");
    let rejoined = wait_same(&pairs[0].a, &pairs[0].b, &keys);
    assert_eq!(rejoined.len(), held[0].len(), "the restarted node's pair holds another set of keys");
    // Until nutcracker reconnects the key may still fail through side a, but never miss: the
    // node opened its port only once it held its pair's copy.
    let mut side_a = proxy.side(0);
    poll("side a to serve the restarted node's keys", PROXY_DEADLINE, || match side_a.cmd(&format!("get {lost_key}")) {
        answer if answer.starts_with("VALUE ") => {
            side_a.read_exact(expected[&lost_key].len() + 2);
            assert_eq!(side_a.line(), "END");
            Ok(())
        }
        answer if answer.starts_with("SERVER_ERROR") => Err(answer),
        answer => panic!("get {lost_key} through side a after the restart: {answer:?}"),
    });
    for side in 0..2 {
        assert_reads(&mut proxy.side(side), side, &expected);
    }
}

/// Two pairs on `NODE_ADDRS`, each node the other's peer, serving and linked.
fn start_pairs() -> Vec<Pair> {
    let spawned: Vec<[Node; 2]> = NODE_ADDRS
        .iter()
        .map(|[a_addr, b_addr]| {
            let (pa, pb) = (free_ports(a_addr, 2), free_ports(b_addr, 2));
            let a = Node::spawn(a_addr, pa[0], pa[1], Some(&format!("{b_addr}:{}", pb[1])), &[]);
            let b = Node::spawn(b_addr, pb[0], pb[1], Some(&format!("{a_addr}:{}", pa[1])), &[]);
            [a, b]
        })
        .collect();
    spawned
        .into_iter()
        .map(|[mut a, mut b]| {
            a.wait_ready();
            b.wait_ready();
            wait_link_up(&a);
            wait_link_up(&b);
            Pair { a, b }
        })
        .collect()
}

/// The shipped example with its addresses replaced by the test's: the pools on
/// `PROXY_ADDR`'s `pool_ports` (side a's, side b's), the servers by `pairs`' nodes. Its
/// timeout (a bound on a hung node's reply) is raised to the harness's own: a loaded test
/// machine stalls a process for seconds now and then (Debian's memcached too, on a shared
/// 2-core box), which would fail requests, and the test is not about time.
/// Each replaced setting must occur as often as expected outside comments, so an edit of
/// the example that this test does not follow fails here.
fn example_for(pool_ports: [u16; 2], pairs: &[Pair]) -> String {
    let mut replacements: Vec<(&str, String, usize)> = vec![(EXAMPLE_TIMEOUT, TEST_TIMEOUT.to_string(), 2)];
    for (from, port) in EXAMPLE_LISTEN.iter().zip(pool_ports) {
        replacements.push((from, format!("{PROXY_ADDR}:{port}"), 1));
    }
    for (names, p) in EXAMPLE_NODES.iter().zip(pairs) {
        replacements.push((names[0], p.a.name(), 1));
        replacements.push((names[1], p.b.name(), 1));
    }
    let example = std::fs::read_to_string(EXAMPLE).unwrap_or_else(|e| panic!("read {EXAMPLE}: {e}"));
    let mut counts = vec![0; replacements.len()];
    let mut config = String::new();
    for line in example.lines() {
        let mut line = line.to_string();
        if !line.trim_start().starts_with('#') {
            for ((from, to, _), count) in replacements.iter().zip(counts.iter_mut()) {
                *count += line.matches(from).count();
                line = line.replace(from, to);
            }
        }
        config.push_str(&line);
        config.push('\n');
    }
    for ((from, _, expected), count) in replacements.iter().zip(&counts) {
        assert_eq!(count, expected, "{from:?} occurs {count} times in the settings of {EXAMPLE}");
    }
    config
}

/// Reads every key of `expected` through a pool (`gets`, batched) and checks each value.
fn assert_reads(conn: &mut Conn, side: usize, expected: &BTreeMap<String, Vec<u8>>) {
    let keys: Vec<String> = expected.keys().cloned().collect();
    let mut got = BTreeMap::new();
    for batch in keys.chunks(READ_BATCH) {
        got.extend(conn.gets(batch).into_iter().map(|(k, item)| (k, item.value)));
    }
    let wrong: Vec<&String> = keys.iter().filter(|k| got.get(*k) != expected.get(*k)).collect();
    assert!(
        wrong.is_empty(),
        "through side {side}'s pool {} of {} keys are missing or wrong, first {:?}",
        wrong.len(),
        keys.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// nutcracker running a config from a scratch directory (its log goes there too); killed,
/// and the directory removed, on drop. Its log is printed when a test fails.
struct Nutcracker {
    child: Child,
    dir: PathBuf,
    /// The pools' ports: side a's, side b's.
    ports: [u16; 2],
}

impl Nutcracker {
    /// Starts nutcracker on `config`, whose pools listen on `PROXY_ADDR`'s `ports`, with its
    /// stats on `stats_port` (else it takes 22222 on every interface), and waits until both
    /// pools accept connections.
    fn start(config: &str, ports: [u16; 2], stats_port: u16) -> Nutcracker {
        let dir = std::env::temp_dir().join(format!("memcachedrep-twemproxy-{}-{}", std::process::id(), ports[0]));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let conf = dir.join("nutcracker.yml");
        std::fs::write(&conf, config).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
        let child = Command::new(NUTCRACKER)
            .arg("-c")
            .arg(&conf)
            .arg("-o")
            .arg(dir.join("nutcracker.log"))
            .args(["-a", PROXY_ADDR, "-s", &stats_port.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {NUTCRACKER}: {e}"));
        let mut proxy = Nutcracker { child, dir, ports };
        poll("nutcracker's pools to accept connections", PROXY_DEADLINE, || {
            if let Some(status) = proxy.child.try_wait().expect("try_wait") {
                panic!("nutcracker exited: {status}");
            }
            match ports.iter().find(|&&port| Conn::try_connect(PROXY_ADDR, port).is_err()) {
                None => Ok(()),
                Some(port) => Err(format!("port {port} refuses")),
            }
        });
        proxy
    }

    /// A connection to side a's pool (0) or side b's (1).
    fn side(&self, side: usize) -> Conn {
        Conn::connect(PROXY_ADDR, self.ports[side])
    }
}

impl Drop for Nutcracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("nutcracker.log")).unwrap_or_default();
            eprintln!("nutcracker's log:\n{log}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
