//! Replication at start-up: a node serves at once when no copy can come (its peer refuses
//! the connection, or it finds only itself on the replication port, as in repcached's own
//! harness), waits (bounded) for a peer address that swallows connections, and a joining node
//! takes its peer's copy first. A replication port below 1024 still works when `-u` drops
//! root (it is bound before the switch, like the client ports), a node waiting for its peer
//! refuses clients on its TCP port and on its unix socket, and a stop signal ends that wait
//! at once.
//!
//! Nodes run on 127.0.0.4 (A) and 127.0.0.2 (B), and on 127.0.0.1 where repcached's harness
//! puts them. Every wait polls with a deadline.

mod common;
mod pair;

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use pair::{free_ports, poll, wait_link_up, wait_marker, Node, A_ADDR, B_ADDR, LINK_DEADLINE};

/// A join wait no test outlasts: a node that answers has not waited it out.
const LONG_JOIN_WAIT: &str = "repl_join_wait=600";
/// How long a node that serves at once may take to answer on a busy machine; far below
/// `LONG_JOIN_WAIT`, so it tells "at once" from "after the wait" without measuring time.
const AT_ONCE: Duration = Duration::from_secs(10);
/// The bound on the first answer of the first node of a repcached-style pair (its
/// default join wait is 5 s, which this must stay far below).
const FIRST_OF_PAIR: Duration = Duration::from_millis(500);

/// A port below 1024 that was free on `addr` a moment ago.
fn free_privileged_port(addr: &str) -> u16 {
    (600..1024).rev().find(|&port| TcpListener::bind((addr, port)).is_ok()).unwrap_or_else(|| panic!("no free port below 1024 on {addr}"))
}

/// The real user id of a running process, from /proc.
fn process_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("no uid for {user}"))
}

#[test]
fn a_privileged_replication_port_pairs_under_u() {
    if !common::require_root("binding a port below 1024") {
        return;
    }
    let low = free_privileged_port(A_ADDR);
    let (pa, pb) = (free_ports(A_ADDR, 1), free_ports(B_ADDR, 2));
    // B's replication port is taken, so B only dials: the link can only be B reaching A's
    // privileged port, which A bound as root before becoming nobody.
    let _taken = TcpListener::bind((B_ADDR, pb[1])).expect("hold B's replication port");
    let mut a = Node::spawn(A_ADDR, pa[0], low, Some(&format!("{B_ADDR}:{}", pb[1])), &["-u", "nobody"]);
    let mut b = Node::spawn(B_ADDR, pb[0], pb[1], Some(&format!("{A_ADDR}:{low}")), &[]);
    a.wait_ready();
    b.wait_ready();
    let nobody = uid_of("nobody");
    poll("A to run as nobody", LINK_DEADLINE, || match process_uid(a.pid()) {
        Some(uid) if uid == nobody => Ok(()),
        other => Err(format!("uid {other:?}")),
    });
    wait_link_up(&a);
    wait_link_up(&b);
    b.conn().set("low:port", 5, 0, b"reached");
    let mut on_a = a.conn();
    poll("B's write to reach A", LINK_DEADLINE, || match on_a.get_one("low:port") {
        Some(item) if item.flags == 5 && item.value == b"reached" => Ok(()),
        other => Err(format!("{other:?}")),
    });
}

/// A listener whose accept queue is full, so that the kernel drops new SYNs to it: a peer
/// address that swallows connections. Keep both parts alive.
fn swallowing_peer(addr: &str) -> (TcpListener, Vec<TcpStream>) {
    let listener = TcpListener::bind((addr, 0)).expect("bind the swallowing peer");
    let target = listener.local_addr().expect("local address");
    let mut filling = Vec::new();
    while filling.len() < 2000 {
        match TcpStream::connect_timeout(&target, Duration::from_millis(300)) {
            Ok(stream) => filling.push(stream),
            Err(_) => return (listener, filling),
        }
    }
    panic!("the accept queue of {target} never filled");
}

#[test]
fn a_stop_signal_ends_the_join_wait() {
    let (peer, _filling) = swallowing_peer("127.0.0.7");
    let peer = peer.local_addr().expect("local address").to_string();
    let ports = free_ports(A_ADDR, 2);
    let mut node = Node::spawn(A_ADDR, ports[0], ports[1], Some(&peer), &["-o", "repl_join_wait=30"]);
    // The replication port listens once the signals are blocked; the client port only after
    // the join wait.
    poll("the replication port to listen", Duration::from_secs(10), || {
        node.assert_running();
        TcpStream::connect((A_ADDR, ports[1])).map(drop).map_err(|e| e.to_string())
    });
    assert!(!node.accepting(), "the node serves clients while it waits for its peer");
    let status = node.sigterm_and_wait(Duration::from_secs(5));
    assert!(status.success(), "a node stopped while it waits for its peer exited with {status}");
}

#[test]
fn a_unix_socket_refuses_clients_during_the_join_wait() {
    let (peer, _filling) = swallowing_peer("127.0.0.8");
    let peer = peer.local_addr().expect("local address").to_string();
    let ports = free_ports(A_ADDR, 2);
    let dir = std::env::temp_dir().join(format!("memcachedrep-join-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("socket directory");
    let path = dir.join("node.sock");
    let path_arg = path.to_str().expect("utf-8 path");
    let mut node = Node::spawn(A_ADDR, ports[0], ports[1], Some(&peer), &["-s", path_arg, "-o", "repl_join_wait=30"]);
    poll("the replication port to listen", Duration::from_secs(10), || {
        node.assert_running();
        TcpStream::connect((A_ADDR, ports[1])).map(drop).map_err(|e| e.to_string())
    });
    // The socket file is there (a second server could not take it), but nobody is let in.
    assert!(path.exists(), "the socket file is bound before the wait");
    let refused = std::os::unix::net::UnixStream::connect(&path).map(drop).map_err(|e| e.kind());
    assert_eq!(refused, Err(std::io::ErrorKind::ConnectionRefused));
    let status = node.sigterm_and_wait(Duration::from_secs(5));
    assert!(status.success(), "exited with {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_node_whose_peer_refuses_the_connection_serves_at_once() {
    // Nothing listens on the peer's port: the peer is not running, so it has no copy to give.
    let peer_ports = free_ports(B_ADDR, 2);
    let ports = free_ports(A_ADDR, 2);
    let mut a = Node::spawn(A_ADDR, ports[0], ports[1], Some(&format!("{B_ADDR}:{}", peer_ports[1])), &["-o", LONG_JOIN_WAIT]);
    a.wait_ready_within(AT_ONCE);
    a.conn().set("alone:write", 7, 0, b"before the peer");
    // The peer, started later, joins and gets what was written meanwhile.
    let mut b = Node::spawn(B_ADDR, peer_ports[0], peer_ports[1], Some(&format!("{A_ADDR}:{}", ports[1])), &[]);
    b.wait_ready();
    let copied = b.conn().get_one("alone:write");
    assert!(copied.as_ref().is_some_and(|i| i.flags == 7 && i.value == b"before the peer"), "B joined with {copied:?}");
    wait_link_up(&a);
    wait_link_up(&b);
    wait_marker(&b, &a);
}

#[test]
fn the_repcached_harness_pair_on_one_address_and_port_starts_at_once() {
    // repcached's harness: both nodes on 127.0.0.1, each -x 127.0.0.1 -X P -q 65536.
    let host = "127.0.0.1";
    let ports = free_ports(host, 3);
    let flags = ["-q", "65536"];
    let mut first = Node::spawn(host, ports[0], ports[2], Some(host), &flags);
    // Its dial reaches its own replication port: it is alone, and serves at once.
    // Under valgrind (make check-memory) everything is slower by the harness's factor.
    first.wait_ready_within(FIRST_OF_PAIR * common::slowdown());
    first.conn().set("first:before", 3, 0, b"copied at join");
    let mut second = Node::spawn(host, ports[1], ports[2], Some(host), &flags);
    second.wait_ready();
    // The second cannot bind P, dials the first there and takes its copy before it serves.
    let copied = second.conn().get_one("first:before");
    assert!(copied.as_ref().is_some_and(|i| i.flags == 3 && i.value == b"copied at join"), "the second joined with {copied:?}");
    wait_link_up(&first);
    wait_link_up(&second);
    wait_marker(&first, &second);
    wait_marker(&second, &first);
}

#[test]
fn a_peer_address_that_swallows_connections_keeps_the_wait_until_its_bound() {
    let (peer, _filling) = swallowing_peer("127.0.0.9");
    let peer = peer.local_addr().expect("local address").to_string();
    let ports = free_ports(A_ADDR, 2);
    let mut node = Node::spawn(A_ADDR, ports[0], ports[1], Some(&peer), &["-o", "repl_join_wait=10"]);
    poll("the replication port to listen", Duration::from_secs(10), || {
        node.assert_running();
        TcpStream::connect((A_ADDR, ports[1])).map(drop).map_err(|e| e.to_string())
    });
    // The dial times out rather than being refused: the peer may be there, so the node waits.
    assert!(!node.accepting(), "the node serves clients while a peer that may be there does not answer");
    // Once the bound passes it serves alone.
    node.wait_ready();
    assert_ne!(node.repl("state"), "up", "linked to a peer that never answered");
}

#[test]
fn a_repcached_harness_node_restarted_takes_the_copy_from_the_one_that_stayed() {
    let host = "127.0.0.1";
    let ports = free_ports(host, 3);
    let mut first = Node::start(host, ports[0], ports[2], Some(host), &[]);
    let second = Node::start(host, ports[1], ports[2], Some(host), &[]);
    wait_link_up(&first);
    wait_link_up(&second);
    first.kill_9();
    second.conn().set("while:first:down", 9, 0, b"kept by the second");
    // The second takes the freed replication port over, as repcached's survivor does ...
    poll("the second to listen on the replication port", LINK_DEADLINE, || match second.repl("state").as_str() {
        "listening" => Ok(()),
        other => Err(other.to_string()),
    });
    // ... so the first, back, finds it taken, dials the second there and takes its copy
    // before it serves.
    first.restart();
    let copied = first.conn().get_one("while:first:down");
    assert!(copied.as_ref().is_some_and(|i| i.flags == 9 && i.value == b"kept by the second"), "the first rejoined with {copied:?}");
    wait_link_up(&first);
    wait_marker(&first, &second);
}
