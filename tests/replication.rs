//! Replication as a client of the pair sees it: every kind of write on either node reaches
//! the other with the same flags, expiry and cas; cas uniques never repeat across the pair;
//! writes from the peer are not echoed; a joining node gets the whole cache before it serves;
//! concurrent writers on both nodes converge; evictions stay local; the stats fields; and two
//! nodes scripted repcached's way on one address still pair.
//!
//! Nodes run on 127.0.0.4 (A) and 127.0.0.2 (B), on free ports chosen at start. Every wait polls with a deadline; every load is bounded.

mod common;
mod pair;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use pair::{
    delete_many, dump, free_ports, heavy, keys, next_millisecond, poll, set_many, store_request, unix_now, value_for, wait_link_up,
    wait_marker, wait_same, Conn, Item, Node, Pair, A_ADDR, B_ADDR,
};

/// How long an item with a 1-2 s expiry may take to be gone on both nodes.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(15);

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

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

/// Polls until every key in `gone` misses on both nodes.
fn wait_gone(a: &Node, b: &Node, gone: &[&str]) {
    let gone = names(gone);
    let (mut ca, mut cb) = (a.conn(), b.conn());
    poll(&format!("{gone:?} to be gone on both nodes"), EXPIRY_DEADLINE, || {
        let (left_a, left_b) = (ca.gets(&gone), cb.gets(&gone));
        if left_a.is_empty() && left_b.is_empty() {
            Ok(())
        } else {
            Err(format!("A still has {:?}, B still has {:?}", left_a.keys(), left_b.keys()))
        }
    });
}

/// Polls until `node` holds `key` with `value`.
fn wait_value(node: &Node, key: &str, value: &[u8]) {
    let mut conn = node.conn();
    poll(&format!("{key} to reach {}", node.name()), pair::SAME_DEADLINE, || match conn.get_one(key) {
        Some(item) if item.value == value => Ok(()),
        other => Err(format!("{:?}", other.map(|i| common::show(&i.value)))),
    });
}

/// `gat`/`gats`: the one-line header and value of a hit, or None on a miss.
fn gat(conn: &mut Conn, verb: &str, exptime: i64, key: &str) -> Option<Vec<u8>> {
    conn.send(format!("{verb} {exptime} {key}\r\n").as_bytes());
    let header = conn.line();
    if header == "END" {
        return None;
    }
    let len: usize = header.split(' ').nth(3).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("bad {verb} line {header:?}"));
    let mut value = conn.read_exact(len + 2);
    value.truncate(len);
    assert_eq!(conn.line(), "END");
    Some(value)
}

/// Waits until the unix clock has passed two more second boundaries: a delayed flush
/// (memcached's rule: what was stored before its second is invalid) then no longer reaches
/// a write made after this.
fn wait_two_seconds() {
    let start = unix_now();
    poll(
        "two seconds to pass",
        Duration::from_secs(5),
        || {
            if unix_now() >= start + 2 {
                Ok(())
            } else {
                Err(format!("at {}", unix_now()))
            }
        },
    );
}

/// Sets `key` on `from`, waits until `to` has it, then lets the clock move on, so that a
/// later write on either node is newer.
fn set_seen(from: &Node, to: &Node, key: &str, value: &[u8]) {
    from.conn().set(key, 0, 0, value);
    wait_value(to, key, value);
    next_millisecond();
}

fn every_write_kind_replicates(from_a: bool) {
    let pair = Pair::start(&[], &[]);
    let (wn, on) = if from_a { (&pair.a, &pair.b) } else { (&pair.b, &pair.a) };
    let (mut w, mut o) = (wn.conn(), on.conn());

    // Stores, incr/decr, and their noreply forms.
    assert_eq!(w.store("set", "set", u32::MAX, 0, b"all flag bits", ""), "STORED");
    assert_eq!(w.store("add", "add", 1 << 31, 0, b"added", ""), "STORED");
    assert_eq!(w.store("add", "set", 0, 0, b"not added", ""), "NOT_STORED");
    w.set("replace", 1, 0, b"old");
    assert_eq!(w.store("replace", "replace", 7, 0, b"new", ""), "STORED");
    w.set("append", 5, 0, b"mid");
    assert_eq!(w.store("append", "append", 0, 0, b"-end", ""), "STORED");
    assert_eq!(w.store("prepend", "append", 0, 0, b"start-", ""), "STORED");
    w.set("cas", 3, 0, b"first");
    let first = w.get_one("cas").expect("cas").cas;
    assert_eq!(w.store("cas", "cas", 3, 0, b"second", &format!(" {first}")), "STORED");
    w.set("number", 9, 0, b"10");
    assert_eq!(w.cmd("incr number 5"), "15");
    assert_eq!(w.cmd("decr number 3"), "12");
    w.set("wrap", 0, 0, b"18446744073709551615");
    assert_eq!(w.cmd("incr wrap 2"), "1");
    w.store("set", "nr_set", 11, 0, b"quiet", " noreply");
    w.store("add", "nr_add", 12, 0, b"quiet", " noreply");
    w.store("replace", "nr_set", 13, 0, b"quieter", " noreply");
    w.store("append", "nr_set", 0, 0, b"!", " noreply");
    w.store("prepend", "nr_set", 0, 0, b"~", " noreply");
    let nr_cas = w.get_one("nr_add").expect("nr_add").cas;
    w.store("cas", "nr_add", 14, 0, b"swapped", &format!(" {nr_cas} noreply"));
    w.send(b"incr number 1 noreply\r\ndecr wrap 1 noreply\r\n");
    w.sync();
    let stored = names(&["set", "add", "replace", "append", "cas", "number", "wrap", "nr_set", "nr_add"]);
    let got = wait_same(wn, on, &stored);
    expect(&got, "set", Some((u32::MAX, b"all flag bits")));
    expect(&got, "add", Some((1 << 31, b"added")));
    expect(&got, "replace", Some((7, b"new")));
    expect(&got, "append", Some((5, b"start-mid-end")));
    expect(&got, "cas", Some((3, b"second")));
    expect(&got, "number", Some((9, b"13")));
    expect(&got, "nr_set", Some((13, b"~quieter!")));
    expect(&got, "nr_add", Some((14, b"swapped")));
    // memcached pads a shrunken incr/decr result with spaces; both nodes hold the same bytes.
    assert_eq!(got["wrap"].value.trim_ascii_end(), b"0");

    // One cas unique for both nodes: a stale one fails on both, a fresh one read on the other
    // node works here.
    let current = o.get_one("cas").expect("cas on the other node").cas;
    assert_eq!(o.store("cas", "cas", 3, 0, b"stale", &format!(" {first}")), "EXISTS");
    assert_eq!(w.store("cas", "cas", 3, 0, b"stale", &format!(" {first}")), "EXISTS");
    assert_eq!(w.store("cas", "cas", 3, 0, b"third", &format!(" {current}")), "STORED");
    wait_value(on, "cas", b"third");
    assert_eq!(o.store("cas", "cas", 3, 0, b"stale", &format!(" {current}")), "EXISTS");
    let got = wait_same(wn, on, &names(&["cas"]));
    expect(&got, "cas", Some((3, b"third")));

    // Deletes, touch and gat (shortening and lengthening), and expiry: absolute on both.
    let now = unix_now();
    let timed = ["delete", "nr_delete", "touch", "nr_touch", "gat", "gats", "exp2", "absolute", "extend", "extend_gat", "far"];
    for key in ["delete", "nr_delete", "touch", "nr_touch", "gat", "gats", "far_touch"] {
        w.set(key, 1, 0, key.as_bytes());
    }
    w.set("exp2", 1, 2, b"exp2");
    w.set("absolute", 1, now + 2, b"absolute");
    w.set("far", 1, now + 100_000, b"far");
    w.set("extend", 1, 2, b"extend");
    w.set("extend_gat", 1, 2, b"extend_gat");
    assert_eq!(w.cmd("touch extend 100"), "TOUCHED");
    assert_eq!(gat(&mut w, "gats", 100, "extend_gat").as_deref(), Some(&b"extend_gat"[..]));
    wait_value(on, "far_touch", b"far_touch");
    assert_eq!(w.cmd("delete delete"), "DELETED");
    w.send(b"delete nr_delete noreply\r\n");
    assert_eq!(w.cmd("touch touch 2"), "TOUCHED");
    w.send(b"touch nr_touch 2 noreply\r\n");
    assert_eq!(gat(&mut w, "gat", 2, "gat").as_deref(), Some(&b"gat"[..]));
    assert_eq!(gat(&mut w, "gats", 1, "gats").as_deref(), Some(&b"gats"[..]));
    w.sync();
    wait_gone(wn, on, &["delete", "nr_delete", "touch", "nr_touch", "gat", "gats", "exp2", "absolute"]);
    let got = wait_same(wn, on, &names(&timed));
    for key in ["extend", "extend_gat", "far"] {
        expect(&got, key, Some((1, key.as_bytes())));
    }

    // flush_all: immediate (a later write on the other node survives it), delayed,
    // `flush_all 0`, and the noreply forms.
    set_seen(on, wn, "older", b"flushed");
    w.set("mine", 0, 0, b"flushed");
    next_millisecond();
    assert_eq!(w.cmd("flush_all"), "OK");
    next_millisecond();
    o.set("newer", 2, 0, b"kept");
    wait_gone(wn, on, &["older", "mine", "far", "extend"]);
    let got = wait_same(wn, on, &names(&["newer"]));
    expect(&got, "newer", Some((2, b"kept")));

    set_seen(on, wn, "delayed", b"flushed later");
    assert_eq!(w.cmd("flush_all 2"), "OK");
    wait_gone(wn, on, &["delayed", "newer"]);
    wait_two_seconds();
    o.set("after_delayed", 2, 0, b"kept");
    wait_value(wn, "after_delayed", b"kept");

    set_seen(on, wn, "zero", b"flushed");
    assert_eq!(w.cmd("flush_all 0"), "OK");
    wait_gone(wn, on, &["zero", "after_delayed"]);
    next_millisecond();
    for (key, command) in [("nr1", "flush_all noreply"), ("nr2", "flush_all 0 noreply"), ("nr3", "flush_all 1 noreply")] {
        set_seen(on, wn, key, b"flushed");
        w.send(format!("{command}\r\n").as_bytes());
        w.sync();
        wait_gone(wn, on, &[key]);
        next_millisecond();
    }
    wait_two_seconds();
    o.set("last", 2, 0, b"kept");
    let got = wait_same(wn, on, &names(&["last"]));
    expect(&got, "last", Some((2, b"kept")));
}

#[test]
fn every_write_kind_on_a_reaches_b() {
    every_write_kind_replicates(true);
}

#[test]
fn every_write_kind_on_b_reaches_a() {
    every_write_kind_replicates(false);
}

#[test]
fn writes_applied_from_the_peer_are_not_sent_back() {
    let pair = Pair::start(&[], &[]);
    let sent_by_b = pair.b.repl_num("items_sent");
    let received_by_a = pair.a.repl_num("items_received");
    let only = keys("only", 300);
    let mut a = pair.a.conn();
    set_many(&mut a, &only, |_| 1, |k| value_for(k, "1", 100));
    delete_many(&mut a, &only[..50]);
    assert_eq!(a.store("append", &only[60], 0, 0, b"+", ""), "STORED");
    assert_eq!(a.cmd(&format!("touch {} 1000", only[70])), "TOUCHED");
    a.set("counter", 0, 0, b"1");
    assert_eq!(a.cmd("incr counter 41"), "42");
    let mut all = only.clone();
    all.push("counter".to_string());
    wait_same(&pair.a, &pair.b, &all);
    // Anything B would echo was queued before these markers, and would be sent by now.
    wait_marker(&pair.a, &pair.b);
    wait_marker(&pair.a, &pair.b);
    // The one exception: an incr of a key B owns runs on B, a write of B's own that B sends
    // to A once.
    let forwarded = pair.a.repl_num("deltas_forwarded");
    assert!(forwarded <= 1);
    poll("B to send only its own incr", pair::SAME_DEADLINE, || {
        let sent = pair.b.repl_num("items_sent") - sent_by_b;
        let received = pair.a.repl_num("items_received") - received_by_a;
        if (sent, received) == (forwarded, forwarded) {
            Ok(())
        } else {
            Err(format!("B sent {sent} and A received {received} items ({forwarded} incr ran on B)"))
        }
    });
    assert!(pair.a.repl_num("items_sent") > 0 && pair.a.repl_num("bytes_sent") > 0);
    assert!(pair.b.repl_num("items_received") > 0 && pair.b.repl_num("bytes_received") > 0);
}

/// A counter's value, as incr/decr answer it or `get` returns it (memcached pads a shrunken
/// value with spaces).
fn number(bytes: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(bytes);
    text.trim_end().parse().unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

#[test]
fn concurrent_increments_on_both_nodes_all_count() {
    const ROUNDS: u64 = 500;
    const START: u64 = 1_000_000;
    let pair = Pair::start(&[], &[]);
    let mut a = pair.a.conn();
    a.set("up", 0, 0, b"0");
    a.set("down", 0, 0, START.to_string().as_bytes());
    let both = names(&["up", "down"]);
    wait_same(&pair.a, &pair.b, &both);
    let start = Arc::new(Barrier::new(2));
    let clients: Vec<_> = [pair.a.conn(), pair.b.conn()]
        .into_iter()
        .map(|mut conn| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let (mut last_up, mut last_down) = (0, u64::MAX);
                for _ in 0..ROUNDS {
                    // The key's owner runs them all in one order: each client sees its own
                    // counters move every time.
                    let up = number(conn.cmd("incr up 1").as_bytes());
                    let down = number(conn.cmd("decr down 1").as_bytes());
                    assert!(up > last_up && down < last_down, "up {last_up} -> {up}, down {last_down} -> {down}");
                    (last_up, last_down) = (up, down);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    let got = wait_same(&pair.a, &pair.b, &both);
    assert_eq!(number(&got["up"].value), 2 * ROUNDS, "increments were lost");
    assert_eq!(number(&got["down"].value), START - 2 * ROUNDS, "decrements were lost");
    let forwarded = pair.a.repl_num("deltas_forwarded") + pair.b.repl_num("deltas_forwarded");
    assert_eq!(forwarded, 2 * ROUNDS, "each key's non-owner forwards its 500");
    assert_eq!(pair.a.repl_num("delta_fallbacks") + pair.b.repl_num("delta_fallbacks"), 0);
}

#[test]
fn incr_of_a_key_the_peer_owns_answers_on_both_nodes() {
    // A small queue, which the bulk writes below overflow: the peer then hears of a key
    // only from a catch-up scan, well after the write.
    let pair = Pair::start(&["-q", "16"], &["-q", "16"]);
    let counters = keys("n", 8);
    let mut all = counters.clone();
    let mut a = pair.a.conn();
    for key in &counters {
        a.set(key, 3, 0, b"10");
    }
    a.set("text", 0, 0, b"abc");
    all.push("text".to_string());
    wait_same(&pair.a, &pair.b, &all);
    let mut b = pair.b.conn();
    // Each key is owned by one node, so each of these runs on the peer of one of them.
    for key in &counters {
        assert_eq!(a.cmd(&format!("incr {key} 1")), "11");
        assert_eq!(b.cmd(&format!("incr {key} 2")), "13");
        assert_eq!(a.cmd(&format!("decr {key} 4")), "9");
        // Read-your-writes on the node that answered, whichever node ran it.
        assert_eq!(a.get_one(key).map(|i| (i.flags, i.value)), Some((3, b"9 ".to_vec())));
    }
    for conn in [&mut a, &mut b] {
        assert_eq!(conn.cmd("incr missing 1"), "NOT_FOUND");
        assert_eq!(conn.cmd("decr text 1"), "CLIENT_ERROR cannot increment or decrement non-numeric value");
    }
    all.push("missing".to_string());
    let got = wait_same(&pair.a, &pair.b, &all);
    for key in &counters {
        assert_eq!((got[key].flags, got[key].value.as_slice()), (3, &b"9 "[..]), "{key}");
    }
    // 8 keys, each incremented twice on one node and once on the other, plus the two
    // failures on the node that does not own their key.
    let forwarded = pair.a.repl_num("deltas_forwarded") + pair.b.repl_num("deltas_forwarded");
    assert!((10..=18).contains(&forwarded), "deltas_forwarded {forwarded}");
    assert_eq!(pair.a.repl_num("delta_fallbacks") + pair.b.repl_num("delta_fallbacks"), 0);

    // A client's own write then an incr at once, on the node that does not own the key: the
    // owner gets the write with the request, even when the queue is far behind.
    let bulk = keys("bulk", 4000);
    for (conn, round) in [(&mut a, 100), (&mut b, 200)] {
        set_many(conn, &bulk, |_| 0, |k| value_for(k, "bulk", 4096));
        for key in &counters {
            conn.set(key, 5, 0, round.to_string().as_bytes());
            assert_eq!(conn.cmd(&format!("incr {key} 1")), (round + 1).to_string(), "{key}");
            assert_eq!(conn.cmd(&format!("delete {key}")), "DELETED");
            assert_eq!(conn.cmd(&format!("incr {key} 1")), "NOT_FOUND", "{key} after its delete");
            conn.set(key, 5, 0, round.to_string().as_bytes());
        }
    }
    let got = wait_same(&pair.a, &pair.b, &counters);
    assert!(counters.iter().all(|key| (got[key].flags, got[key].value.as_slice()) == (5, &b"200"[..])), "{got:?}");
}

#[test]
fn incr_that_a_stopped_peer_cannot_answer_runs_here_after_a_short_wait() {
    let pair = Pair::start(&[], &[]);
    // Numbered keys alternate owners: the peer owns half of them, whichever bit it has.
    let counters = keys("s", 8);
    let mut a = pair.a.conn();
    for key in &counters {
        a.set(key, 0, 0, b"10");
    }
    wait_same(&pair.a, &pair.b, &counters);
    pair.b.sigstop();
    for key in &counters {
        assert_eq!(a.cmd(&format!("incr {key} 1")), "11");
    }
    assert_eq!(pair.a.repl_num("delta_fallbacks"), 4);
    // B, resumed, runs A's late requests before A's own results reach it (the sender wrote
    // them first): each key ends at 11 either way.
    pair.b.sigcont();
    let got = wait_same(&pair.a, &pair.b, &counters);
    assert!(counters.iter().all(|key| number(&got[key].value) == 11), "{got:?}");
}

#[test]
fn cas_uniques_never_repeat_across_the_pair() {
    let pair = Pair::start(&[], &[]);
    let (on_a, on_b) = (keys("ua", 1000), keys("ub", 1000));
    let start = Arc::new(Barrier::new(2));
    let writers: Vec<_> = [(pair.a.conn(), on_a.clone()), (pair.b.conn(), on_b.clone())]
        .into_iter()
        .map(|(mut conn, keys)| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                for key in &keys {
                    conn.set(key, 0, 0, b"x");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    let all: Vec<String> = on_a.iter().chain(&on_b).cloned().collect();
    let got = wait_same(&pair.a, &pair.b, &all);
    assert_eq!(got.len(), all.len());
    let uniques: HashSet<u64> = got.values().map(|i| i.cas).collect();
    assert_eq!(uniques.len(), all.len(), "two writes on the two nodes got the same cas unique");
    assert!(!uniques.contains(&0));
}

#[test]
fn a_joining_node_gets_all_100k_items_before_it_serves() {
    const ITEMS: usize = 100_000;
    let _heavy = heavy();
    let (pa, pb) = (free_ports(A_ADDR, 2), free_ports(B_ADDR, 2));
    let a = Node::start(A_ADDR, pa[0], pa[1], Some(&format!("{B_ADDR}:{}", pb[1])), &["-o", "repl_join_wait=1"]);
    let preloaded = keys("pre", ITEMS);
    let far = unix_now() + 100_000;
    let flags = |i: usize| match i {
        0 => u32::MAX,
        1 => 1 << 31,
        _ => (i as u32).wrapping_mul(2_654_435_761),
    };
    let exptime = |i: usize| if i.is_multiple_of(10) { far } else { 0 };
    let mut conn = a.conn();
    for (n, batch) in preloaded.chunks(1000).enumerate() {
        let mut req = Vec::new();
        for (j, key) in batch.iter().enumerate() {
            let i = n * 1000 + j;
            store_request(&mut req, "set", key, flags(i), exptime(i), &value_for(key, "1", 20 + i % 200), "");
        }
        conn.send(&req);
        for key in batch {
            assert_eq!(conn.line(), "STORED", "set {key}");
        }
    }
    // Deleted before B exists: their tombstones must not come back as items.
    let gone = keys("gone", 10);
    set_many(&mut conn, &gone, |_| 0, |k| value_for(k, "1", 10));
    delete_many(&mut conn, &gone);
    assert_eq!(a.stat_num("curr_items"), ITEMS as u64);

    let mut b = Node::spawn(B_ADDR, pb[0], pb[1], Some(&format!("{A_ADDR}:{}", pa[1])), &[]);
    // The first connection B lets in must already see every item.
    let mut first = None;
    poll("B to open its client port", pair::READY_DEADLINE, || {
        b.assert_running();
        match Conn::try_connect(B_ADDR, pb[0]) {
            Ok(conn) => {
                first = Some(conn);
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    });
    let mut first = first.expect("connected");
    first.set_timeout(pair::READY_DEADLINE);
    assert_eq!(first.stat("", "curr_items"), ITEMS.to_string(), "B served a client before it had the whole copy");
    wait_link_up(&a);
    wait_link_up(&b);

    let all: Vec<String> = preloaded.iter().chain(&gone).cloned().collect();
    let got = wait_same(&a, &b, &all);
    assert_eq!(got.len(), ITEMS);
    for (i, key) in preloaded.iter().enumerate() {
        expect(&got, key, Some((flags(i), &value_for(key, "1", 20 + i % 200))));
    }
    assert!(a.repl_num("full_syncs") + b.repl_num("full_syncs") >= 1, "a join is a full sync");
    wait_marker(&b, &a);
}

#[test]
fn two_clients_writing_the_same_keys_on_both_nodes_converge() {
    const KEYS: usize = 5000;
    let _heavy = heavy();
    let pair = Pair::start(&[], &[]);
    let same = keys("same", KEYS);
    let start = Arc::new(Barrier::new(2));
    let writers: Vec<_> = [(pair.a.conn(), 1u32, "A"), (pair.b.conn(), 2u32, "B")]
        .into_iter()
        .map(|(mut conn, flags, side)| {
            let (start, same) = (Arc::clone(&start), same.clone());
            std::thread::spawn(move || {
                start.wait();
                for round in 0..3 {
                    for batch in same.chunks(100) {
                        let mut req = Vec::new();
                        let mut replies = 0;
                        for (i, key) in batch.iter().enumerate() {
                            store_request(&mut req, "set", key, flags, 0, &value_for(key, &format!("{side}{round}"), 50), "");
                            replies += 1;
                            // Each side also appends to some keys and deletes others.
                            if flags == 1 && i % 5 == 0 {
                                store_request(&mut req, "append", key, 0, 0, b"+A", "");
                                replies += 1;
                            }
                            if flags == 2 && i % 7 == 0 {
                                req.extend_from_slice(format!("delete {key}\r\n").as_bytes());
                                replies += 1;
                            }
                        }
                        conn.send(&req);
                        for _ in 0..replies {
                            let reply = conn.line();
                            assert!(["STORED", "NOT_STORED", "DELETED", "NOT_FOUND"].contains(&reply.as_str()), "{reply}");
                        }
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    let got = wait_same(&pair.a, &pair.b, &same);
    assert!(!got.is_empty(), "every key was deleted");
}

#[test]
fn hammering_a_few_hot_keys_from_both_nodes_converges() {
    // Few keys, many writes: writes to one key on the two nodes cross on the link often, so a
    // node that applied whatever arrives (instead of the newer version) would end different.
    let pair = Pair::start(&[], &[]);
    let hot = keys("hot", 20);
    let start = Arc::new(Barrier::new(2));
    let writers: Vec<_> = [(pair.a.conn(), 1u32), (pair.b.conn(), 2u32)]
        .into_iter()
        .map(|(mut conn, flags)| {
            let (start, hot) = (Arc::clone(&start), hot.clone());
            std::thread::spawn(move || {
                start.wait();
                for round in 0..200 {
                    let mut req = Vec::new();
                    for key in &hot {
                        store_request(&mut req, "set", key, flags, 0, &value_for(key, &format!("{flags}-{round}"), 30), "");
                    }
                    conn.send(&req);
                    for key in &hot {
                        assert_eq!(conn.line(), "STORED", "set {key}");
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    let got = wait_same(&pair.a, &pair.b, &hot);
    assert_eq!(got.len(), hot.len());
}

#[test]
fn evictions_stay_local() {
    const ITEMS: usize = 12_000;
    let _heavy = heavy();
    let pair = Pair::start(&["-m", "8"], &["-m", "64"]);
    let all = keys("ev", ITEMS);
    let mut a = pair.a.conn();
    let mut b = pair.b.conn();
    let mut stored = Vec::new();
    for batch in all.chunks(1000) {
        let mut req = Vec::new();
        for key in batch {
            store_request(&mut req, "set", key, 0, 0, &value_for(key, "1", 1024), "");
        }
        a.send(&req);
        for key in batch {
            // A full 8 MiB node may, rarely and under load, fail to evict in time; such a set
            // is simply not part of what B must hold.
            match a.line().as_str() {
                "STORED" => stored.push(key.clone()),
                "SERVER_ERROR out of memory storing object" => {}
                other => panic!("set {key}: {other}"),
            }
        }
        let want = stored.len() as u64;
        poll("B to have every item stored so far", pair::SAME_DEADLINE, || {
            let have: u64 = b.stat("", "curr_items").parse().unwrap_or(0);
            if have >= want {
                Ok(())
            } else {
                Err(format!("B has {have} of {want}"))
            }
        });
    }
    assert!(stored.len() > ITEMS * 9 / 10, "only {} of {ITEMS} sets were stored", stored.len());
    assert!(pair.a.stat_num("evictions") > 0, "an 8 MiB node must evict 12 MiB of items");
    wait_marker(&pair.a, &pair.b);
    assert_eq!(pair.b.stat_num("curr_items"), stored.len() as u64 + 1, "an eviction on A deleted items on B");
    assert_eq!(pair.b.stat_num("evictions"), 0);
    let early: Vec<String> = stored.iter().take(1000).cloned().collect();
    assert_eq!(dump(&pair.b, &early).len(), 1000, "items evicted on A must stay on B");
    assert!(dump(&pair.a, &early).len() < 1000, "A should have evicted its oldest items");
}

#[test]
fn stats_show_the_link_and_repcached_fields() {
    let pair = Pair::start(&["-q", "100"], &[]);
    for (node, queue) in [(&pair.a, 100u64), (&pair.b, 8192)] {
        let fields = node.repl_stats();
        for name in [
            "state",
            "peer",
            "queue_depth",
            "queue_free",
            "items_sent",
            "bytes_sent",
            "items_received",
            "bytes_received",
            "full_syncs",
            "partial_syncs",
            "reconnects",
            "refused",
            "deltas_forwarded",
            "delta_fallbacks",
            "queue_overflows",
            "lag_seconds",
        ] {
            assert!(fields.iter().any(|(k, _)| k == name), "stats replication on {} lacks {name}: {fields:?}", node.name());
        }
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
        assert_eq!(field("state"), "up");
        assert!(field("lag_seconds").parse::<f64>().is_ok(), "lag_seconds {:?}", field("lag_seconds"));
        poll("an idle queue", Duration::from_secs(10), || match node.repl_num("queue_depth") {
            0 => Ok(()),
            depth => Err(format!("depth {depth}")),
        });
        assert_eq!(node.repl_num("queue_free"), queue);
        assert_eq!(node.stat_num("repcached_qi_free"), queue);
        assert!(!node.conn().stat("", "repcached_version").is_empty());
    }
    assert!(pair.a.repl("peer").contains(B_ADDR), "A's peer: {}", pair.a.repl("peer"));
    assert!(pair.b.repl("peer").contains(A_ADDR), "B's peer: {}", pair.b.repl("peer"));
    // repcached shows both nodes of a linked pair as MASTER (SLAVE only while receiving a copy).
    for node in [&pair.a, &pair.b] {
        assert_eq!(node.conn().stat("", "replication"), "MASTER", "{}", node.name());
    }

    let alone = Node::start(A_ADDR, free_ports(A_ADDR, 1)[0], 0, None, &[]);
    assert_eq!(alone.conn().stat("", "replication"), "NONE");
}

#[test]
fn two_nodes_scripted_the_repcached_way_on_one_address_pair() {
    // `-l H -x H -X P` on both: only one can bind P, the other only dials.
    let host = "127.0.0.5";
    let ports = free_ports(host, 3);
    let mut a = Node::spawn(host, ports[0], ports[2], Some(host), &[]);
    let mut b = Node::spawn(host, ports[1], ports[2], Some(host), &[]);
    a.wait_ready();
    b.wait_ready();
    wait_link_up(&a);
    wait_link_up(&b);
    wait_marker(&a, &b);
    wait_marker(&b, &a);
}
