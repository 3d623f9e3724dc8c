//! `-o repcached_link`: a memcachedrep node paired with a repcached 2.3.1 node over
//! repcached's own link. Against a real repcached (built by `.ci/run` from
//! `../shared/repcached-2.3.1/`, found at `MEMCACHEDREP_REPCACHED` or
//! `../repcached-build/bin/repcached`): the copy of 50,000 items before the node serves,
//! writes both ways, and both restarts. Against a partner played by the test itself: the
//! exact bytes the node sends, and garbage ending the link unapplied.
//!
//! Nodes run on 127.0.0.4 (the repcached side) and 127.0.0.2 (memcachedrep), as in the pair
//! tests; repcached uses one -X port number on both addresses.

mod common;
mod pair;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use memcachedrep::replication::repcached::wire::{self, Message, Parsed};
use pair::{free_ports, heavy, poll, unix_now, Conn, Node, A_ADDR, B_ADDR, LINK_DEADLINE, SAME_DEADLINE};

const ITEMS: usize = 50_000;
/// The relative exptime some items are stored with.
const RELATIVE: i64 = -3600;
/// Keys per `get` when reading many.
const BATCH: usize = 100;

/// repcached's binary, or None (the test fails in CI and is skipped elsewhere).
fn repcached() -> Option<PathBuf> {
    let path = std::env::var_os("MEMCACHEDREP_REPCACHED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../repcached-build/bin/repcached"));
    if path.is_file() {
        return Some(path);
    }
    let how = "build it outside the tree: WORK=$PWD/../repcached-build ../shared/repcached-2.3.1/build.sh \
               (needs build-essential autoconf automake libevent-dev), or set MEMCACHEDREP_REPCACHED";
    if std::env::var_os("CI").is_some() {
        panic!("repcached is missing at {}: .ci/run must build it; {how}", path.display());
    }
    common::skip(&format!("repcached not found at {}", path.display()), how);
    None
}

/// A port free on both addresses a moment ago: repcached's -X is one number for both nodes.
fn shared_port() -> u16 {
    loop {
        let port = free_ports(A_ADDR, 1)[0];
        if TcpListener::bind((B_ADDR, port)).is_ok() {
            return port;
        }
    }
}

/// The repcached node: `-x` the memcachedrep node, `-X` the shared port.
fn start_repcached(program: &std::path::Path, port: u16, rep_port: u16) -> Node {
    let args: Vec<String> = ["-U", "0", "-m", "256", "-X", &rep_port.to_string(), "-x", B_ADDR].iter().map(|a| a.to_string()).collect();
    Node::spawn_program(program, A_ADDR, port, rep_port, &args)
}

/// The memcachedrep node paired with the repcached one at `A_ADDR:rep_port`.
fn spawn_ours(port: u16, rep_port: u16) -> Node {
    let link = format!("repcached_link={A_ADDR}:{rep_port}");
    Node::spawn(B_ADDR, port, rep_port, None, &["-U", "0", "-m", "256", "-o", &link])
}

/// What the test wrote for one key: flags, absolute expiry (0: none; `RELATIVE`: set as
/// 3600 s from the moment it is stored), value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Want {
    flags: u32,
    expires: i64,
    value: Vec<u8>,
}

/// 50,000 items: flags up to 2^32-1, no expiry, relative and absolute expiry, values from
/// 1 byte to 4 KiB, some holding CR LF.
fn the_items(now: i64) -> BTreeMap<String, Want> {
    (0..ITEMS)
        .map(|i| {
            let key = format!("rk:{i}");
            let flags = match i % 5 {
                0 => 0,
                1 => u32::MAX,
                2 => 1 << 31,
                _ => i as u32,
            };
            let expires = match i % 3 {
                0 => 0,
                1 => RELATIVE,
                _ => now + 7200,
            };
            let mut value = pair::value_for(&key, "a", 1 + (i * 37) % 4096);
            if i % 7 == 0 {
                value.extend_from_slice(b"\r\nEND\r\n");
            }
            (key, Want { flags, expires, value })
        })
        .collect()
}

/// Stores the items, pipelined, and records when the relative ones expire (as of the
/// second their batch went out).
fn load(conn: &mut Conn, items: &mut BTreeMap<String, Want>) {
    let keys: Vec<String> = items.keys().cloned().collect();
    for batch in keys.chunks(500) {
        let sent = unix_now();
        let mut req = Vec::new();
        for key in batch {
            let want = &items[key];
            let exptime = if want.expires == RELATIVE { -RELATIVE } else { want.expires };
            pair::store_request(&mut req, "set", key, want.flags, exptime, &want.value, "");
        }
        conn.send(&req);
        for key in batch {
            assert_eq!(conn.line(), "STORED", "set {key}");
            let want = items.get_mut(key).expect("a key of the batch");
            if want.expires == RELATIVE {
                want.expires = sent - RELATIVE;
            }
        }
    }
}

/// Whether something listens on `addr:port` (from /proc/net/tcp: asking by connecting
/// would make repcached take the test for its partner).
fn listening(addr: &str, port: u16) -> bool {
    let ip: std::net::Ipv4Addr = addr.parse().expect("an IPv4 address");
    let local = format!("{:08X}:{port:04X}", u32::from_le_bytes(ip.octets()));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3 && fields[1] == local && fields[3] == "0A"
    })
}

/// (flags, value) for each key held, by `get`; flags read signed too, as repcached prints them.
fn fetch(node: &Node, keys: &[&String]) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut conn = node.conn();
    let mut held = BTreeMap::new();
    for batch in keys.chunks(BATCH) {
        let names: Vec<&str> = batch.iter().map(|k| k.as_str()).collect();
        conn.send(format!("get {}\r\n", names.join(" ")).as_bytes());
        loop {
            let header = conn.line();
            if header == "END" {
                break;
            }
            let fields: Vec<&str> = header.split(' ').collect();
            assert!(fields.len() == 4 && fields[0] == "VALUE", "{}: unexpected line {header:?}", node.name());
            let flags: i64 = fields[2].parse().unwrap_or_else(|_| panic!("bad flags in {header:?}"));
            let len: usize = fields[3].parse().unwrap_or_else(|_| panic!("bad length in {header:?}"));
            let mut value = conn.read_exact(len + 2);
            value.truncate(len);
            held.insert(fields[1].to_string(), (flags as u32, value));
        }
    }
    held
}

/// Each key's remaining TTL on a memcachedrep node (meta `mg k t`; -1: none), pipelined.
fn ttls(node: &Node, keys: &[&String]) -> BTreeMap<String, i64> {
    let mut conn = node.conn();
    let mut out = BTreeMap::new();
    for batch in keys.chunks(500) {
        let req: String = batch.iter().map(|k| format!("mg {k} k t\r\n")).collect();
        conn.send(req.as_bytes());
        for key in batch {
            let line = conn.line();
            let ttl = line.split(' ').find_map(|f| f.strip_prefix('t')).and_then(|t| t.parse().ok());
            let ttl = ttl.unwrap_or_else(|| panic!("mg {key}: {line:?}"));
            out.insert(key.to_string(), ttl);
        }
    }
    out
}

/// Fails unless `node` holds exactly `want` (flags and values) for its keys.
fn assert_holds(node: &Node, want: &BTreeMap<String, Want>) {
    let keys: Vec<&String> = want.keys().collect();
    let held = fetch(node, &keys);
    let wrong: Vec<&String> =
        keys.iter().copied().filter(|k| held.get(*k).map(|(f, v)| (*f, v)) != Some((want[*k].flags, &want[*k].value))).collect();
    assert!(
        wrong.is_empty(),
        "{}: {} of {} keys missing or different, first {:?}",
        node.name(),
        wrong.len(),
        keys.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// Fails unless every key's expiry on our node is the one written (to the second, with a
/// second of slack for the time between the read and the clock).
fn assert_expiry(node: &Node, want: &BTreeMap<String, Want>) {
    let keys: Vec<&String> = want.keys().collect();
    let now = unix_now();
    let got = ttls(node, &keys);
    for key in keys {
        let expected = if want[key].expires == 0 { -1 } else { want[key].expires - now };
        let ttl = got[key];
        assert!((ttl - expected).abs() <= 2, "{}: {key} expires in {ttl} s, not {expected} s", node.name());
    }
}

/// Polls until `node` answers `key` with `value`.
fn wait_value(node: &Node, key: &str, value: Option<&[u8]>) {
    let mut conn = node.conn();
    poll(&format!("{key} = {value:?} on {}", node.name()), SAME_DEADLINE, || {
        let got = conn.get_one_value(key);
        if got.as_deref() == value {
            Ok(())
        } else {
            Err(format!("{:?}", got.map(|v| common::show(&v))))
        }
    });
}

trait GetValue {
    fn get_one_value(&mut self, key: &str) -> Option<Vec<u8>>;
}

impl GetValue for Conn {
    fn get_one_value(&mut self, key: &str) -> Option<Vec<u8>> {
        self.send(format!("get {key}\r\n").as_bytes());
        let header = self.line();
        if header == "END" {
            return None;
        }
        let len: usize = header.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{header:?}"));
        let mut value = self.read_exact(len + 2);
        value.truncate(len);
        assert_eq!(self.line(), "END");
        Some(value)
    }
}

#[test]
fn a_node_replaces_one_of_a_repcached_pair_and_keeps_every_item_across_both_restarts() {
    let Some(program) = repcached() else {
        return;
    };
    let _heavy = heavy();
    let rep_port = shared_port();
    let (pa, pb) = (free_ports(A_ADDR, 1)[0], free_ports(B_ADDR, 1)[0]);
    let mut a = start_repcached(&program, pa, rep_port);
    a.wait_ready();
    let mut want = the_items(unix_now());
    load(&mut a.conn(), &mut want);

    // B joins: its first answer already comes with all 50,000 items.
    let mut b = spawn_ours(pb, rep_port);
    b.wait_ready();
    assert_eq!(b.stat_num("curr_items"), ITEMS as u64, "B served before it held A's copy");
    assert_holds(&b, &want);
    assert_expiry(&b, &want);

    // Writes on either node reach the other: stores, an append, an incr, a delete, flags
    // at 2^32-1, absolute expiry.
    let later = unix_now() + 5000;
    b.conn().set("from_b", u32::MAX, later, b"b\r\nside");
    want.insert("from_b".into(), Want { flags: u32::MAX, expires: later, value: b"b\r\nside".to_vec() });
    a.conn().set("from_a", 77, 0, b"a side");
    want.insert("from_a".into(), Want { flags: 77, expires: 0, value: b"a side".to_vec() });
    assert_eq!(a.conn().store("append", "rk:3", 0, 0, b"+a", ""), "STORED");
    want.get_mut("rk:3").unwrap().value.extend_from_slice(b"+a");
    b.conn().set("counter", 5, 0, b"41");
    wait_value(&a, "counter", Some(b"41"));
    assert_eq!(a.conn().cmd("incr counter 1"), "42");
    want.insert("counter".into(), Want { flags: 5, expires: 0, value: b"42".to_vec() });
    assert_eq!(b.conn().cmd("delete rk:4"), "DELETED");
    want.remove("rk:4");
    wait_value(&a, "from_b", Some(b"b\r\nside"));
    wait_value(&b, "from_a", Some(b"a side"));
    wait_value(&b, "counter", Some(b"42"));
    wait_value(&a, "rk:4", None);
    wait_value(&b, "rk:3", Some(&want["rk:3"].value));
    assert_holds(&a, &want);
    assert_holds(&b, &want);
    assert_expiry(&b, &want);

    // B restarted takes the copy again before it serves. (repcached listens again once it
    // has seen the link end; a node that finds nothing there serves at once, empty.)
    b.kill_9();
    poll("repcached to listen again", LINK_DEADLINE, || if listening(A_ADDR, rep_port) { Ok(()) } else { Err("not yet".into()) });
    b.restart();
    assert_eq!(b.stat_num("curr_items"), want.len() as u64, "restarted B served before it held A's copy");
    assert_holds(&b, &want);
    assert_expiry(&b, &want);
    b.conn().set("after_b_restart", 1, 0, b"x");
    want.insert("after_b_restart".into(), Want { flags: 1, expires: 0, value: b"x".to_vec() });
    wait_value(&a, "after_b_restart", Some(b"x"));

    // A restarted (it then dials B, as repcached's second node) gets B's items back,
    // including what B took while A was down.
    a.kill_9();
    b.conn().set("while_a_down", 2, 0, b"kept");
    want.insert("while_a_down".into(), Want { flags: 2, expires: 0, value: b"kept".to_vec() });
    a.restart();
    assert_eq!(a.stat_num("curr_items"), want.len() as u64, "restarted A served before it held B's copy");
    assert_holds(&a, &want);
    a.conn().set("after_a_restart", 3, 0, b"y");
    wait_value(&b, "after_a_restart", Some(b"y"));
}

#[test]
fn the_readme_migration_ends_with_a_native_pair_holding_every_item() {
    let Some(program) = repcached() else {
        return;
    };
    let _heavy = heavy();
    let rep_port = shared_port();
    let native_port = shared_port();
    let (pa, pb) = (free_ports(A_ADDR, 1)[0], free_ports(B_ADDR, 1)[0]);
    let mut a = start_repcached(&program, pa, rep_port);
    a.wait_ready();
    let mut want: BTreeMap<String, Want> = the_items(unix_now()).into_iter().take(5000).collect();
    load(&mut a.conn(), &mut want);

    // 1. B in repcached mode, its native link ready for A's replacement.
    let link = format!("repcached_link={A_ADDR}:{rep_port}");
    let native_peer = format!("{A_ADDR}:{native_port}");
    let b = Node::start(B_ADDR, pb, native_port, Some(&native_peer), &["-U", "0", "-o", &link]);
    assert_holds(&b, &want);
    // 2. Clients on both.
    a.conn().set("step2_a", 1, 0, b"a");
    b.conn().set("step2_b", 2, 0, b"b");
    want.insert("step2_a".into(), Want { flags: 1, expires: 0, value: b"a".to_vec() });
    want.insert("step2_b".into(), Want { flags: 2, expires: 0, value: b"b".to_vec() });
    wait_value(&b, "step2_a", Some(b"a"));
    wait_value(&a, "step2_b", Some(b"b"));
    // 3. A replaced by a memcachedrep that pairs with B natively.
    drop(a);
    b.conn().set("step3_b", 3, 0, b"c");
    want.insert("step3_b".into(), Want { flags: 3, expires: 0, value: b"c".to_vec() });
    let a2 = Node::start(A_ADDR, pa, native_port, Some(&format!("{B_ADDR}:{native_port}")), &["-U", "0"]);
    assert_holds(&a2, &want);
    assert_expiry(&a2, &want);
    // 4. B out of repcached mode: restarted, it takes A's copy over the native link.
    drop(b);
    a2.conn().set("step4_a", 4, 0, b"d");
    want.insert("step4_a".into(), Want { flags: 4, expires: 0, value: b"d".to_vec() });
    let b2 = Node::start(B_ADDR, pb, native_port, Some(&native_peer), &["-U", "0"]);
    assert_holds(&b2, &want);
    assert_expiry(&b2, &want);
    b2.conn().set("native", 5, 0, b"e");
    wait_value(&a2, "native", Some(b"e"));
}

/// The test's own repcached node: listens on the shared port, as repcached's first node.
struct FakePartner {
    listener: TcpListener,
}

impl FakePartner {
    fn accept(&self) -> TcpStream {
        self.listener.set_nonblocking(true).expect("nonblocking");
        let end = Instant::now() + LINK_DEADLINE;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking");
                    stream.set_read_timeout(Some(pair::IO_TIMEOUT)).expect("timeout");
                    return stream;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < end, "the node never dialed its partner");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

/// Reads messages from the node until `done` says so; returns them.
fn read_messages(stream: &mut TcpStream, mut done: impl FnMut(&[Message]) -> bool) -> Vec<Message> {
    let mut buf = Vec::new();
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        while let Parsed::Complete(message, used) = wire::parse(&buf, 1 << 20) {
            got.push(message);
            buf.drain(..used);
        }
        if let Parsed::Invalid(why) = wire::parse(&buf, 1 << 20) {
            panic!("the node sent what repcached would not read: {why}");
        }
        if done(&got) {
            return got;
        }
        let n = stream.read(&mut chunk).unwrap_or_else(|e| panic!("reading the link: {e}; got {got:?}"));
        assert!(n > 0, "the node closed the link; got {got:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the node closes the link within the deadline (EOF or reset).
fn closes(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn the_node_waits_for_the_end_marker_sends_repcached_lines_and_refuses_garbage_unapplied() {
    let rep_port = shared_port();
    let partner = FakePartner { listener: TcpListener::bind((A_ADDR, rep_port)).expect("bind the partner's port") };
    let mut b = spawn_ours(free_ports(B_ADDR, 1)[0], rep_port);
    let mut link = partner.accept();
    // Until the copy ends, the client port takes no one.
    link.write_all(b"rep copied -1 0 3 7\r\nabc\r\nrep big 4294967295 0 6 8\r\na\r\nb\r\n\r\n").unwrap();
    let watch = Instant::now() + Duration::from_millis(300);
    while Instant::now() < watch {
        assert!(!b.accepting(), "the node opened its client port before marugoto_end");
    }
    link.write_all(b"marugoto_end\r\n").unwrap();
    b.wait_ready();
    let mut conn = b.conn();
    assert_eq!(conn.get_one("copied").map(|i| (i.flags, i.value)), Some((u32::MAX, b"abc".to_vec())));
    assert_eq!(conn.get_one("big").map(|i| (i.flags, i.value)), Some((u32::MAX, b"a\r\nb\r\n".to_vec())));

    // The node's own writes, as repcached writes them: whole items with absolute expiry.
    let expires = unix_now() + 100;
    conn.set("s", 4294967295, 100, b"hi");
    match &read_messages(&mut link, |m| !m.is_empty())[..] {
        [Message::Rep { key, flags: u32::MAX, exptime, value, .. }] if key == b"s" && value == b"hi" => {
            assert!((i64::from(*exptime) - expires).abs() <= 1, "expiry {exptime} for {expires}");
        }
        other => panic!("for a set the node sent {other:?}"),
    }
    assert_eq!(conn.store("append", "s", 0, 0, b"!", ""), "STORED");
    let cas = conn.get_one("s").expect("s").cas;
    match &read_messages(&mut link, |m| !m.is_empty())[..] {
        [Message::Rep { key, flags: u32::MAX, value, cas: sent, .. }] if key == b"s" && value == b"hi!" => assert_eq!(*sent, cas),
        other => panic!("for an append the node sent {other:?}"),
    }
    assert_eq!(conn.cmd("delete copied"), "DELETED");
    assert_eq!(read_messages(&mut link, |m| !m.is_empty()), vec![Message::Delete { key: b"copied".to_vec() }]);
    assert_eq!(conn.cmd("flush_all 1000"), "OK");
    match &read_messages(&mut link, |m| !m.is_empty())[..] {
        [Message::FlushAll { at: Some(at) }] => assert!((i64::from(*at) - unix_now() - 1000).abs() <= 2, "flush at {at}"),
        other => panic!("for flush_all 1000 the node sent {other:?}"),
    }

    // An item larger than -I here (1 MiB) is dropped, and replaces what the key held; the
    // link goes on.
    let mut huge = b"rep s 0 0 1100000 12\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'h', 1_100_000));
    huge.extend_from_slice(b"\r\n");
    link.write_all(&huge).unwrap();
    // Anything repcached does not send ends the link, and nothing after it is applied.
    link.write_all(b"rep fine 0 0 1 9\r\nf\r\nset k 0 0 1\r\nz\r\nrep after 0 0 1 10\r\nz\r\n").unwrap();
    assert!(closes(&mut link), "the node kept a link that sent garbage");
    wait_value(&b, "fine", Some(b"f"));
    assert_eq!(conn.get_one_value("s"), None, "a stale item outlived the partner's larger one");
    assert_eq!(conn.get_one_value("after"), None);
    assert_eq!(conn.get_one_value("k"), None);
    b.assert_running();

    // It dials again, and takes a fresh copy.
    let mut again = partner.accept();
    again.write_all(b"rep after_again 0 0 1 11\r\nz\r\nmarugoto_end\r\n").unwrap();
    wait_value(&b, "after_again", Some(b"z"));
}

#[test]
fn a_partner_that_dials_in_gets_the_full_copy_and_then_every_write() {
    // Nothing listens at the partner's address: the node serves at once and listens itself.
    let rep_port = shared_port();
    let b = Node::start(B_ADDR, free_ports(B_ADDR, 1)[0], rep_port, None, &["-o", &format!("repcached_link={A_ADDR}:{rep_port}")]);
    let mut conn = b.conn();
    for i in 0..200 {
        conn.set(&format!("held:{i}"), i, 0, format!("v{i}").as_bytes());
    }
    // repcached dials from an unbound socket: on one host that is 127.0.0.1.
    let mut link = TcpStream::connect((B_ADDR, rep_port)).expect("dial the node's repcached port");
    link.set_read_timeout(Some(pair::IO_TIMEOUT)).unwrap();
    let copy = read_messages(&mut link, |m| m.last() == Some(&Message::CopyEnd));
    let mut keys: Vec<(String, u32)> = copy
        .iter()
        .filter_map(|m| match m {
            Message::Rep { key, flags, value, .. } => {
                assert_eq!(value, format!("v{flags}").as_bytes());
                Some((String::from_utf8_lossy(key).into_owned(), *flags))
            }
            Message::CopyEnd => None,
            other => panic!("in the copy: {other:?}"),
        })
        .collect();
    keys.sort();
    let mut want: Vec<(String, u32)> = (0..200).map(|i| (format!("held:{i}"), i)).collect();
    want.sort();
    assert_eq!(keys, want);
    conn.set("after_copy", 0, 0, b"n");
    let next = read_messages(&mut link, |m| !m.is_empty());
    assert!(matches!(&next[..], [Message::Rep { key, .. }] if key == b"after_copy"), "{next:?}");
    // The partner's own writes come the other way.
    link.write_all(b"rep from_partner 9 0 2 1\r\nok\r\ndelete held:0\r\n").unwrap();
    wait_value(&b, "from_partner", Some(b"ok"));
    wait_value(&b, "held:0", None);
}
