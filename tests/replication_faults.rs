//! Replication under faults: kill -9 and restart of either node, SIGSTOP/SIGCONT of either
//! node during heavy writes, a link cut through a proxy (with writes, deletes and a
//! `flush_all` on both sides of the split), a stranger and garbage on the replication port,
//! a full queue, an unreachable peer, and SIGTERM with a backlog (delivered to a resumed peer,
//! or given up at the drain time-out without spinning). Each ends with both nodes identical.
//!
//! Nodes run on 127.0.0.4 (A), 127.0.0.2 (B) and a proxy on 127.0.0.3, on free ports chosen
//! at start. Every wait polls with a deadline; every load is bounded.

mod common;
mod pair;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pair::{
    cpu_ticks, delete_many, dump, free_ports, heavy, keys, next_millisecond, poll, process_state, set_many, value_for, wait_link_down,
    wait_link_up, wait_marker, wait_same, Conn, Item, Node, Pair, Proxy, A_ADDR, B_ADDR, PROXY_ADDR,
};

/// Checks one key of a dump: `Some((flags, value))` present as such, `None` missing.
fn expect(got: &BTreeMap<String, Item>, key: &str, want: Option<(u32, &[u8])>) {
    let have = got.get(key).map(|i| (i.flags, i.value.as_slice()));
    assert!(
        have == want,
        "{key}: expected {:?}, got {:?}",
        want.map(|(f, v)| (f, common::show(v))),
        have.map(|(f, v)| (f, common::show(v)))
    );
}

/// Checks a run of keys against what the same `round` of `value_for` wrote with `flags`.
fn expect_round(got: &BTreeMap<String, Item>, keys: &[String], flags: u32, round: &str, len: usize) {
    for key in keys {
        expect(got, key, Some((flags, &value_for(key, round, len))));
    }
}

fn expect_missing(got: &BTreeMap<String, Item>, keys: &[String]) {
    for key in keys {
        expect(got, key, None);
    }
}

fn sum(pair: &Pair, field: &str) -> u64 {
    pair.a.repl_num(field) + pair.b.repl_num(field)
}

#[test]
fn proxy_forwards_cuts_and_heals() {
    let node = Node::start(A_ADDR, free_ports(A_ADDR, 1)[0], 0, None, &[]);
    let proxy = Proxy::start(PROXY_ADDR, 0, A_ADDR, node.port);
    let mut through = Conn::connect(PROXY_ADDR, proxy.port);
    through.set("through", 3, 0, b"the proxy");
    assert_eq!(node.conn().get_one("through").map(|i| i.value), Some(b"the proxy".to_vec()));

    proxy.cut();
    through.set_timeout(Duration::from_secs(10));
    assert!(through.is_closed(), "a cut must close the forwarded connection");
    let mut during = Conn::connect(PROXY_ADDR, proxy.port);
    during.set_timeout(Duration::from_secs(10));
    assert!(during.is_closed(), "a connection made during a cut must be closed at once");

    proxy.heal();
    let mut after = Conn::connect(PROXY_ADDR, proxy.port);
    assert_eq!(after.get_one("through").map(|i| (i.flags, i.value)), Some((3, b"the proxy".to_vec())));
    assert_eq!(proxy.forwarded(), 2);
    assert!(proxy.refused() >= 1);
}

#[test]
fn node_helpers_stop_continue_kill_and_restart_on_the_same_port() {
    let mut node = Node::start(A_ADDR, free_ports(A_ADDR, 1)[0], 0, None, &[]);
    node.conn().set("k", 1, 0, b"v");

    node.sigstop();
    let mut waiting = node.conn();
    waiting.send(b"version\r\n");
    node.sigcont();
    assert!(waiting.line().starts_with("VERSION "), "a continued node answers what it was sent");

    node.kill_9();
    assert!(!node.accepting(), "a killed node's port is closed");
    node.restart();
    assert_eq!(node.conn().get_one("k"), None, "a restarted node starts empty");
    assert!(node.sigterm_and_wait(Duration::from_secs(10)).success());
}

/// Kills one node with SIGKILL while the other keeps taking writes, deletes and overwrites,
/// then starts it again on the same ports: it must serve only once it holds the survivor's
/// copy, and the pair must end identical with the survivor's split writes and deletes.
fn kill_9_and_restart(victim_is_a: bool) {
    let mut pair = Pair::start(&[], &[]);
    let before = keys("k", 2000);
    set_many(&mut pair.a.conn(), &before[..1000], |_| 1, |k| value_for(k, "1", 100));
    set_many(&mut pair.b.conn(), &before[1000..], |_| 2, |k| value_for(k, "1", 100));
    wait_same(&pair.a, &pair.b, &before);

    let (victim, survivor) = if victim_is_a { (&mut pair.a, &mut pair.b) } else { (&mut pair.b, &mut pair.a) };
    victim.kill_9();
    wait_link_down(survivor);
    let during = keys("during", 500);
    let mut s = survivor.conn();
    set_many(&mut s, &during, |_| 3, |k| value_for(k, "2", 100));
    delete_many(&mut s, &before[..100]);
    delete_many(&mut s, &before[1000..1100]);
    set_many(&mut s, &before[200..300], |_| 4, |k| value_for(k, "2", 100));
    set_many(&mut s, &before[1200..1300], |_| 4, |k| value_for(k, "2", 100));

    victim.restart();
    let want = survivor.stat_num("curr_items");
    assert_eq!(victim.stat_num("curr_items"), want, "the restarted node served before it had its peer's copy");
    wait_link_up(victim);
    wait_link_up(survivor);
    assert!(survivor.repl_num("reconnects") >= 1, "the survivor lost its link and got it back: a reconnect");

    let all: Vec<String> = before.iter().chain(&during).cloned().collect();
    let got = wait_same(&pair.a, &pair.b, &all);
    expect_missing(&got, &before[..100]);
    expect_round(&got, &before[100..200], 1, "1", 100);
    expect_round(&got, &before[200..300], 4, "2", 100);
    expect_round(&got, &before[300..1000], 1, "1", 100);
    expect_missing(&got, &before[1000..1100]);
    expect_round(&got, &before[1100..1200], 2, "1", 100);
    expect_round(&got, &before[1200..1300], 4, "2", 100);
    expect_round(&got, &before[1300..], 2, "1", 100);
    expect_round(&got, &during, 3, "2", 100);
    // The link works both ways again.
    wait_marker(&pair.a, &pair.b);
    wait_marker(&pair.b, &pair.a);
}

#[test]
fn kill_9_and_restart_of_a_ends_identical() {
    kill_9_and_restart(true);
}

#[test]
fn kill_9_and_restart_of_b_ends_identical() {
    kill_9_and_restart(false);
}

/// Stops one node with SIGSTOP while tens of thousands of 1 KiB items are written to the
/// other (a backlog far past the socket buffers and the default queue), then deletes and
/// overwrites some of them, and continues the stopped node: the pair must end identical.
fn sigstop_during_heavy_writes(stop_b: bool) {
    const ITEMS: usize = 30_000;
    const LEN: usize = 1024;
    let _heavy = heavy();
    let pair = Pair::start(&["-m", "128"], &["-m", "128"]);
    let (writer, stopped) = if stop_b { (&pair.a, &pair.b) } else { (&pair.b, &pair.a) };
    let all = keys("heavy", ITEMS);

    let progress = Arc::new(AtomicUsize::new(0));
    let load = {
        let (mut conn, all, progress) = (writer.conn(), all.clone(), Arc::clone(&progress));
        std::thread::spawn(move || {
            for batch in all.chunks(500) {
                set_many(&mut conn, batch, |_| 7, |k| value_for(k, "1", LEN));
                progress.fetch_add(batch.len(), Ordering::SeqCst);
            }
        })
    };
    poll("the first 3000 writes", Duration::from_secs(60), || {
        let done = progress.load(Ordering::SeqCst);
        if done >= 3000 {
            Ok(())
        } else {
            Err(format!("{done} written"))
        }
    });
    stopped.sigstop();
    load.join().expect("the writer failed while its peer was stopped");
    // The writer must be holding a backlog (queued, overflowed, or the link given up on).
    let (depth, overflows, state) = (writer.repl_num("queue_depth"), writer.repl_num("queue_overflows"), writer.repl("state"));
    assert!(depth > 0 || overflows > 0 || state != "up", "no backlog while the peer was stopped");
    let mut w = writer.conn();
    delete_many(&mut w, &all[..1000]);
    set_many(&mut w, &all[1000..2000], |_| 8, |k| value_for(k, "2", LEN));
    stopped.sigcont();

    wait_link_up(writer);
    wait_link_up(stopped);
    let got = wait_same(&pair.a, &pair.b, &all);
    expect_missing(&got, &all[..1000]);
    expect_round(&got, &all[1000..2000], 8, "2", LEN);
    expect_round(&got, &all[2000..], 7, "1", LEN);
}

#[test]
fn sigstop_of_b_during_heavy_writes_on_a_ends_identical() {
    sigstop_during_heavy_writes(true);
}

#[test]
fn sigstop_of_a_during_heavy_writes_on_b_ends_identical() {
    sigstop_during_heavy_writes(false);
}

#[test]
fn a_link_cut_keeps_writes_from_both_sides_and_does_not_undo_deletes() {
    let (pair, proxy) = Pair::start_through_proxy(&[], &[]);
    let base = keys("base", 400);
    let (mut a, mut b) = (pair.a.conn(), pair.b.conn());
    set_many(&mut a, &base[..200], |_| 1, |k| value_for(k, "1", 100));
    set_many(&mut b, &base[200..], |_| 2, |k| value_for(k, "1", 100));
    wait_same(&pair.a, &pair.b, &base);
    let full_before = sum(&pair, "full_syncs");
    let partial_before = sum(&pair, "partial_syncs");

    proxy.cut();
    wait_link_down(&pair.a);
    wait_link_down(&pair.b);
    let (on_a, on_b) = (keys("onA", 300), keys("onB", 300));
    // First half of the split.
    delete_many(&mut a, &base[..50]);
    set_many(&mut a, &base[100..150], |_| 11, |k| value_for(k, "a-split", 100));
    set_many(&mut a, &on_a, |_| 11, |k| value_for(k, "a-split", 100));
    delete_many(&mut a, &base[300..310]);
    set_many(&mut a, &base[320..330], |_| 11, |k| value_for(k, "a-first", 100));
    set_many(&mut a, &base[340..350], |_| 11, |k| value_for(k, "a-first", 100));
    delete_many(&mut b, &base[200..250]);
    set_many(&mut b, &base[150..200], |_| 22, |k| value_for(k, "b-split", 100));
    set_many(&mut b, &on_b, |_| 22, |k| value_for(k, "b-split", 100));
    set_many(&mut b, &base[310..320], |_| 22, |k| value_for(k, "b-first", 100));
    // Second half: later writes to the same keys on the other side win.
    next_millisecond();
    set_many(&mut b, &base[300..310], |_| 22, |k| value_for(k, "b-after-delete", 100));
    set_many(&mut b, &base[320..330], |_| 22, |k| value_for(k, "b-second", 100));
    delete_many(&mut a, &base[310..320]);
    delete_many(&mut b, &base[340..350]);

    proxy.heal();
    wait_link_up(&pair.a);
    wait_link_up(&pair.b);
    let all: Vec<String> = base.iter().chain(&on_a).chain(&on_b).cloned().collect();
    let got = wait_same(&pair.a, &pair.b, &all);
    expect_missing(&got, &base[..50]);
    expect_round(&got, &base[50..100], 1, "1", 100);
    expect_round(&got, &base[100..150], 11, "a-split", 100);
    expect_round(&got, &base[150..200], 22, "b-split", 100);
    expect_missing(&got, &base[200..250]);
    expect_round(&got, &base[250..300], 2, "1", 100);
    expect_round(&got, &base[300..310], 22, "b-after-delete", 100);
    expect_missing(&got, &base[310..320]);
    expect_round(&got, &base[320..330], 22, "b-second", 100);
    expect_round(&got, &base[330..340], 2, "1", 100);
    expect_missing(&got, &base[340..350]);
    expect_round(&got, &base[350..], 2, "1", 100);
    expect_round(&got, &on_a, 11, "a-split", 100);
    expect_round(&got, &on_b, 22, "b-split", 100);
    assert_eq!(sum(&pair, "full_syncs"), full_before, "a short split must not cost a full copy");
    assert!(sum(&pair, "partial_syncs") > partial_before, "healing a split is a partial sync");
}

#[test]
fn a_flush_all_during_a_link_cut_is_not_undone() {
    let (pair, proxy) = Pair::start_through_proxy(&[], &[]);
    let base = keys("base", 100);
    let (mut a, mut b) = (pair.a.conn(), pair.b.conn());
    set_many(&mut a, &base, |_| 1, |k| value_for(k, "1", 100));
    wait_same(&pair.a, &pair.b, &base);

    proxy.cut();
    wait_link_down(&pair.a);
    wait_link_down(&pair.b);
    let (older, after_a, after_b) = (keys("older", 10), keys("afterA", 10), keys("afterB", 10));
    set_many(&mut b, &older, |_| 2, |k| value_for(k, "1", 100));
    next_millisecond();
    assert_eq!(a.cmd("flush_all"), "OK");
    next_millisecond();
    set_many(&mut a, &after_a, |_| 3, |k| value_for(k, "1", 100));
    set_many(&mut b, &after_b, |_| 4, |k| value_for(k, "1", 100));

    proxy.heal();
    wait_link_up(&pair.a);
    wait_link_up(&pair.b);
    let all: Vec<String> = base.iter().chain(&older).chain(&after_a).chain(&after_b).cloned().collect();
    let got = wait_same(&pair.a, &pair.b, &all);
    expect_missing(&got, &base);
    expect_missing(&got, &older);
    expect_round(&got, &after_a, 3, "1", 100);
    expect_round(&got, &after_b, 4, "1", 100);
}

/// Reads whatever a connection yields until it is closed; panics if it stays open.
fn read_until_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("{what}: not closed ({e}); read {} bytes", got.len()),
        }
    }
}

/// A frame as the design's wire format lays it out: type, u32 big-endian length, payload.
fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Frames that look like a peer's: a HELLO claiming the newest of everything, then an ITEM
/// for `evil`, a DELETE of `victim`, and a FLUSH, under every small type number.
fn peer_looking_garbage() -> Vec<u8> {
    let mut hello = b"MCREP".to_vec();
    hello.extend_from_slice(&1u16.to_be_bytes());
    hello.extend_from_slice(&0x0123_4567_89ab_cdefu64.to_be_bytes());
    hello.extend_from_slice(&[0xff; 24]);
    let mut item = vec![4];
    item.extend_from_slice(b"evil");
    item.extend_from_slice(&7u32.to_be_bytes());
    item.extend_from_slice(&0u32.to_be_bytes());
    item.extend_from_slice(&u64::MAX.to_be_bytes());
    item.extend_from_slice(&5u32.to_be_bytes());
    item.extend_from_slice(b"pwned");
    let mut delete = vec![6];
    delete.extend_from_slice(b"victim");
    delete.extend_from_slice(&u64::MAX.to_be_bytes());
    let flush = [u64::MAX.to_be_bytes(), u64::MAX.to_be_bytes()].concat();
    let mut out = frame(1, &hello);
    for kind in 0..8u8 {
        out.extend(frame(kind, &item));
        out.extend(frame(kind, &delete));
        out.extend(frame(kind, &flush));
    }
    out.extend_from_slice(b"get victim\r\nset victim 0 0 5\r\npwned\r\nflush_all\r\n");
    out
}

#[test]
fn a_stranger_on_the_replication_port_changes_nothing_and_learns_nothing() {
    let pair = Pair::start(&[], &[]);
    let known = keys("known", 50);
    let mut probe = known.clone();
    probe.extend(["evil".to_string(), "victim".to_string()]);
    set_many(&mut pair.a.conn(), &known, |_| 1, |k| value_for(k, "1", 100));
    pair.a.conn().set("victim", 9, 0, b"still here");
    let before = wait_same(&pair.a, &pair.b, &probe);
    let refused = pair.a.repl_num("refused");

    // A's peer is 127.0.0.2; this test's connections come from 127.0.0.1.
    let port = pair.a.repl_port;
    let mut silent = TcpStream::connect((A_ADDR, port)).expect("connect to the replication port");
    assert!(read_until_closed(&mut silent, "a silent stranger").is_empty(), "a stranger was sent something");
    let mut talker = TcpStream::connect((A_ADDR, port)).expect("connect to the replication port");
    // The node may close before all of it is written.
    let _ = talker.write_all(&peer_looking_garbage());
    assert!(read_until_closed(&mut talker, "a talking stranger").is_empty(), "a stranger was sent something");
    poll("both strangers to be counted", Duration::from_secs(10), || {
        let now = pair.a.repl_num("refused");
        if now >= refused + 2 {
            Ok(())
        } else {
            Err(format!("refused {refused} -> {now}"))
        }
    });

    wait_marker(&pair.a, &pair.b);
    wait_marker(&pair.b, &pair.a);
    assert_eq!(dump(&pair.a, &probe), before, "a stranger changed A");
    assert_eq!(dump(&pair.b, &probe), before, "a stranger changed B");
    assert_eq!(pair.a.repl("state"), "up");
}

#[test]
fn garbage_from_the_peer_address_closes_that_link_not_the_server() {
    // Through the proxy, B's configured peer is 127.0.0.1, where this test's connections
    // come from.
    let (pair, _proxy) = Pair::start_through_proxy(&[], &[]);
    let known = keys("known", 50);
    let mut probe = known.clone();
    probe.extend(["evil".to_string(), "victim".to_string()]);
    set_many(&mut pair.b.conn(), &known, |_| 1, |k| value_for(k, "1", 100));
    pair.b.conn().set("victim", 9, 0, b"still here");
    let before = wait_same(&pair.a, &pair.b, &probe);
    let refused = pair.b.repl_num("refused");

    // What is sent must be refused for what it is (no well-formed HELLO), not for where it
    // comes from.
    let port = pair.b.repl_port;
    let garbage: [&[u8]; 3] = [
        b"get victim\r\n",
        &frame(1, b"NOTMCREP and then some more bytes than a hello has, padded out....."),
        &[1, 0xff, 0xff, 0xff, 0xff],
    ];
    for bytes in garbage {
        let mut conn = TcpStream::connect((B_ADDR, port)).expect("connect to the replication port");
        let _ = conn.write_all(bytes);
        read_until_closed(&mut conn, "garbage from the peer's address");
    }
    poll("the garbage links to be counted", Duration::from_secs(10), || {
        let now = pair.b.repl_num("refused");
        if now >= refused + 3 {
            Ok(())
        } else {
            Err(format!("refused {refused} -> {now}"))
        }
    });

    wait_link_up(&pair.a);
    wait_link_up(&pair.b);
    wait_marker(&pair.a, &pair.b);
    wait_marker(&pair.b, &pair.a);
    assert_eq!(dump(&pair.a, &probe), before, "garbage changed A");
    assert_eq!(dump(&pair.b, &probe), before, "garbage changed B");
}

#[test]
fn shutdown_delivers_the_backlog_to_a_resumed_peer() {
    const MIB: usize = 1 << 20;
    let _heavy = heavy();
    let mut pair = Pair::start(&["-I", "2m", "-m", "128", "-o", "repl_drain_timeout=30"], &["-I", "2m", "-m", "128"]);
    let big = keys("big", 10);
    pair.b.sigstop();
    let mut a = pair.a.conn();
    for key in &big {
        a.set(key, 5, 0, &value_for(key, "1", MIB));
    }
    drop(a);
    // Otherwise the socket buffers took it all and the drain below would prove nothing.
    assert!(pair.a.repl_num("queue_depth") > 0, "no backlog left in A's queue with B stopped");
    let asked = Instant::now();
    pair.a.signal("TERM");
    poll("A to stop accepting clients after SIGTERM", Duration::from_secs(10), || {
        if pair.a.accepting() {
            Err("still accepting".to_string())
        } else {
            Ok(())
        }
    });
    pair.b.sigcont();
    let status = pair.a.wait_exit(Duration::from_secs(40));
    assert!(status.success(), "A exited with {status}");
    assert!(asked.elapsed() < Duration::from_secs(30), "A took longer than its drain time-out: {:?}", asked.elapsed());
    let mut b = pair.b.conn();
    for key in &big {
        let item = b.get_one(key).unwrap_or_else(|| panic!("B lacks {key} after A's drain"));
        assert_eq!((item.flags, item.value == value_for(key, "1", MIB)), (5, true), "{key} on B");
    }
}

#[test]
fn shutdown_with_a_stalled_peer_ends_at_the_drain_timeout_without_spinning() {
    const MIB: usize = 1 << 20;
    let _heavy = heavy();
    let mut pair = Pair::start(&["-I", "2m", "-m", "128", "-o", "repl_drain_timeout=3"], &["-I", "2m", "-m", "128"]);
    let big = keys("big", 30);
    pair.b.sigstop();
    let mut a = pair.a.conn();
    for key in &big {
        a.set(key, 0, 0, &value_for(key, "1", MIB));
    }
    drop(a);
    let pid = pair.a.pid();
    let ticks_before = cpu_ticks(pid).expect("A's cpu time");
    let asked = Instant::now();
    pair.a.signal("TERM");
    let mut ticks_last = ticks_before;
    let status = loop {
        if let Some(status) = pair.a.exited() {
            break status;
        }
        if let Some(ticks) = cpu_ticks(pid).filter(|_| process_state(pid) != Some('Z')) {
            ticks_last = ticks;
        }
        assert!(asked.elapsed() < Duration::from_secs(15), "A did not give up its drain after 3 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = asked.elapsed();
    assert!(status.success(), "A exited with {status}");
    // Clock ticks are 1/100 s on Linux: spinning would burn about one per 10 ms.
    let burnt = (ticks_last - ticks_before) as f64 / 100.0;
    assert!(burnt < elapsed.as_secs_f64() / 2.0, "A burnt {burnt:.2} s of CPU in {elapsed:?} of draining");
    pair.b.sigcont();
}

#[test]
fn a_full_queue_falls_back_to_a_catch_up() {
    let _heavy = heavy();
    let pair = Pair::start(&["-q", "16"], &["-q", "16"]);
    let burst = keys("burst", 10_000);
    set_many(&mut pair.a.conn(), &burst, |_| 3, |k| value_for(k, "1", 100));
    let got = wait_same(&pair.a, &pair.b, &burst);
    expect_round(&got, &burst, 3, "1", 100);
    assert!(pair.a.repl_num("queue_overflows") > 0, "10k writes through a 16-slot queue must overflow it");
    assert_eq!(pair.a.repl("state"), "up", "an overflow must not drop the link");
    wait_marker(&pair.b, &pair.a);
}

/// A listener whose accept queue is full: the kernel then drops new SYNs, so a connect to
/// it hangs as it would to an address that swallows them. Keep both parts alive.
fn swallowing_listener(addr: &str) -> (TcpListener, Vec<TcpStream>) {
    let listener = TcpListener::bind((addr, 0)).expect("bind the swallowing listener");
    let target = listener.local_addr().expect("local addr");
    let mut queued = Vec::new();
    for _ in 0..2000 {
        match TcpStream::connect_timeout(&target, Duration::from_millis(300)) {
            Ok(stream) => queued.push(stream),
            Err(_) => return (listener, queued),
        }
    }
    panic!("the accept queue of {target} never filled");
}

#[test]
fn a_node_whose_peer_swallows_syns_serves_alone_at_once() {
    let (listener, _queued) = swallowing_listener("127.0.0.6");
    let peer = listener.local_addr().expect("local address").to_string();
    let started = Instant::now();
    let ports = free_ports(A_ADDR, 2);
    let mut node = Node::spawn(A_ADDR, ports[0], ports[1], Some(&peer), &["-o", "repl_join_wait=1"]);
    node.wait_ready();
    assert!(started.elapsed() < Duration::from_secs(10), "serving alone took {:?}", started.elapsed());
    let mut conn = node.conn();
    for i in 0..20 {
        let asked = Instant::now();
        conn.set(&format!("alone:{i}"), 0, 0, b"served");
        assert!(asked.elapsed() < Duration::from_secs(1), "a client waited {:?} on a dead peer", asked.elapsed());
    }
    let state = node.repl("state");
    assert!(["connecting", "down", "listening"].contains(&state.as_str()), "state {state} with a peer that never answers");
}
