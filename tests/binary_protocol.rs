//! The binary protocol as memcached 1.6.18 speaks it: every opcode, the quiet forms pipelined
//! and closed by a noop, each error status and its message, cas on every write, incr/decr's
//! initial value and no-create expiry, the stat groups, what bad input gets, and `-B`.
//!
//! Every expectation was checked against Debian's memcached:
//! `MEMCACHEDREP_TEST_SERVER=/usr/bin/memcached cargo test --release --test binary_protocol`.

mod common;

use common::{Client, Server};

const GET: u8 = 0x00;
const SET: u8 = 0x01;
const ADD: u8 = 0x02;
const REPLACE: u8 = 0x03;
const DELETE: u8 = 0x04;
const INCR: u8 = 0x05;
const DECR: u8 = 0x06;
const QUIT: u8 = 0x07;
const FLUSH: u8 = 0x08;
const GETQ: u8 = 0x09;
const NOOP: u8 = 0x0a;
const VERSION: u8 = 0x0b;
const GETK: u8 = 0x0c;
const GETKQ: u8 = 0x0d;
const APPEND: u8 = 0x0e;
const PREPEND: u8 = 0x0f;
const STAT: u8 = 0x10;
const SETQ: u8 = 0x11;
const ADDQ: u8 = 0x12;
const REPLACEQ: u8 = 0x13;
const DELETEQ: u8 = 0x14;
const INCRQ: u8 = 0x15;
const DECRQ: u8 = 0x16;
const QUITQ: u8 = 0x17;
const FLUSHQ: u8 = 0x18;
const APPENDQ: u8 = 0x19;
const PREPENDQ: u8 = 0x1a;
const VERBOSITY: u8 = 0x1b;
const TOUCH: u8 = 0x1c;
const GAT: u8 = 0x1d;
const GATQ: u8 = 0x1e;
const GATK: u8 = 0x23;
const GATKQ: u8 = 0x24;

const NOT_FOUND: u16 = 0x01;
const EXISTS: u16 = 0x02;
const TOO_LARGE: u16 = 0x03;
const INVALID: u16 = 0x04;
const NOT_STORED: u16 = 0x05;
const NON_NUMERIC: u16 = 0x06;
const UNKNOWN: u16 = 0x81;
const OUT_OF_MEMORY: u16 = 0x82;

/// One request packet.
struct Req<'a> {
    op: u8,
    key: &'a [u8],
    extras: Vec<u8>,
    value: &'a [u8],
    cas: u64,
}

fn req(op: u8, key: &str) -> Req<'_> {
    Req { op, key: key.as_bytes(), extras: Vec::new(), value: b"", cas: 0 }
}

impl<'a> Req<'a> {
    fn extras(mut self, extras: &[u8]) -> Self {
        self.extras = extras.to_vec();
        self
    }
    fn value(mut self, value: &'a [u8]) -> Self {
        self.value = value;
        self
    }
    fn cas(mut self, cas: u64) -> Self {
        self.cas = cas;
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let body = self.extras.len() + self.key.len() + self.value.len();
        frame(self.op, self.key.len() as u16, self.extras.len() as u8, body as u32, self.cas, &[&self.extras, self.key, self.value])
    }
}

/// A header with any lengths, then `parts`.
fn frame(op: u8, key_len: u16, extras_len: u8, body_len: u32, cas: u64, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0x80, op];
    out.extend_from_slice(&key_len.to_be_bytes());
    out.extend_from_slice(&[extras_len, 0, 0, 0]);
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&0xdead_beef_u32.to_be_bytes());
    out.extend_from_slice(&cas.to_be_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// set/add/replace extras: flags and expiry.
fn store_extras(flags: u32, exptime: u32) -> Vec<u8> {
    [flags.to_be_bytes(), exptime.to_be_bytes()].concat()
}

/// incr/decr extras: amount, initial value, expiry.
fn delta_extras(amount: u64, initial: u64, exptime: u32) -> Vec<u8> {
    [&amount.to_be_bytes()[..], &initial.to_be_bytes(), &exptime.to_be_bytes()].concat()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Resp {
    op: u8,
    status: u16,
    extras: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
    cas: u64,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

fn read_resp(c: &mut Client) -> Resp {
    let h = c.read_exact(24);
    assert_eq!(h[0], 0x81, "response magic in {h:?}");
    assert_eq!(&h[12..16], &0xdead_beef_u32.to_be_bytes(), "opaque echoed");
    let key_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let extras_len = usize::from(h[4]);
    let body_len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
    let body = c.read_exact(body_len);
    let mut cas = [0u8; 8];
    cas.copy_from_slice(&h[16..24]);
    Resp {
        op: h[1],
        status: u16::from_be_bytes([h[6], h[7]]),
        extras: body[..extras_len].to_vec(),
        key: body[extras_len..extras_len + key_len].to_vec(),
        value: body[extras_len + key_len..].to_vec(),
        cas: u64::from_be_bytes(cas),
    }
}

fn call(c: &mut Client, r: Req) -> Resp {
    c.send(&r.bytes());
    read_resp(c)
}

/// Sends all `reqs` and a noop in one write; returns every response up to the noop's.
fn pipeline(c: &mut Client, reqs: &[Req]) -> Vec<Resp> {
    let mut bytes: Vec<u8> = reqs.iter().flat_map(Req::bytes).collect();
    bytes.extend(req(NOOP, "").bytes());
    c.send(&bytes);
    let mut out = Vec::new();
    loop {
        let r = read_resp(c);
        if r.op == NOOP {
            return out;
        }
        out.push(r);
    }
}

/// (opcode, status, message) of each response, the shape most assertions look at.
fn summary(resps: &[Resp]) -> Vec<(u8, u16, String)> {
    resps.iter().map(|r| (r.op, r.status, r.text())).collect()
}

fn set(c: &mut Client, key: &str, flags: u32, value: &[u8]) -> u64 {
    let r = call(c, req(SET, key).extras(&store_extras(flags, 0)).value(value));
    assert_eq!(r.status, 0, "set {key}");
    assert_ne!(r.cas, 0, "a set returns the new cas");
    r.cas
}

fn start() -> (Server, Client) {
    let server = Server::start(&[]);
    let c = server.connect();
    (server, c)
}

#[test]
fn get_family_returns_flags_key_and_cas() {
    let (_s, mut c) = start();
    let cas = set(&mut c, "k", 7, b"value");
    let r = call(&mut c, req(GET, "k"));
    assert_eq!((r.status, r.extras.clone(), r.key.clone(), r.text(), r.cas), (0, 7u32.to_be_bytes().to_vec(), vec![], "value".into(), cas));
    let r = call(&mut c, req(GETK, "k"));
    assert_eq!((r.status, r.key.as_slice(), r.text()), (0, &b"k"[..], "value".into()));
    let miss = call(&mut c, req(GET, "nx"));
    assert_eq!((miss.status, miss.key.as_slice(), miss.text()), (NOT_FOUND, &b""[..], "Not found".into()));
    // A k-form miss names the key instead of giving a message.
    let miss = call(&mut c, req(GETK, "nx"));
    assert_eq!((miss.status, miss.key.as_slice(), miss.text()), (NOT_FOUND, &b"nx"[..], String::new()));
}

#[test]
fn store_family_answers_each_outcome() {
    let (_s, mut c) = start();
    let ex = store_extras(0, 0);
    let got = pipeline(
        &mut c,
        &[
            req(ADD, "a").extras(&ex).value(b"1"),
            req(ADD, "a").extras(&ex).value(b"2"),
            req(REPLACE, "nx").extras(&ex).value(b"1"),
            req(REPLACE, "a").extras(&ex).value(b"3"),
            req(APPEND, "a").value(b"4"),
            req(PREPEND, "a").value(b"2"),
            req(APPEND, "nx").value(b"1"),
            req(PREPEND, "nx").value(b"1"),
            req(GET, "a"),
        ],
    );
    let expected = vec![
        (ADD, 0, String::new()),
        (ADD, EXISTS, "Data exists for key.".to_string()),
        (REPLACE, NOT_FOUND, "Not found".to_string()),
        (REPLACE, 0, String::new()),
        (APPEND, 0, String::new()),
        (PREPEND, 0, String::new()),
        (APPEND, NOT_STORED, "Not stored.".to_string()),
        (PREPEND, NOT_STORED, "Not stored.".to_string()),
        (GET, 0, "234".to_string()),
    ];
    assert_eq!(summary(&got), expected);
}

#[test]
fn quiet_forms_answer_only_failures() {
    let (_s, mut c) = start();
    let ex = store_extras(3, 0);
    let got = pipeline(
        &mut c,
        &[
            req(SETQ, "q").extras(&ex).value(b"1"),
            req(ADDQ, "q").extras(&ex).value(b"1"),
            req(ADDQ, "q2").extras(&ex).value(b"5"),
            req(REPLACEQ, "q2").extras(&ex).value(b"6"),
            req(REPLACEQ, "nx").extras(&ex).value(b"1"),
            req(APPENDQ, "q").value(b"0"),
            req(PREPENDQ, "q").value(b"2"),
            req(APPENDQ, "nx").value(b"0"),
            req(GETQ, "q"),
            req(GETQ, "nx"),
            req(GETKQ, "q2"),
            req(GETKQ, "nx"),
            req(INCRQ, "q").extras(&delta_extras(1, 0, 0)),
            req(DECRQ, "q2").extras(&delta_extras(2, 0, 0)),
            req(INCRQ, "nx").extras(&delta_extras(1, 0, 0xffff_ffff)),
            req(DELETEQ, "q2"),
            req(DELETEQ, "q2"),
            req(GETK, "q"),
        ],
    );
    let expected = vec![
        (ADDQ, EXISTS, "Data exists for key.".to_string()),
        (REPLACEQ, NOT_FOUND, "Not found".to_string()),
        (APPENDQ, NOT_STORED, "Not stored.".to_string()),
        (GETQ, 0, "210".to_string()),
        (GETKQ, 0, "6".to_string()),
        (INCRQ, NOT_FOUND, "Not found".to_string()),
        (DELETEQ, NOT_FOUND, "Not found".to_string()),
        (GETK, 0, "211".to_string()),
    ];
    assert_eq!(summary(&got), expected);
    assert_eq!(got[4].key, b"q2", "getkq carries its key");
    assert_eq!(got[3].extras, 3u32.to_be_bytes(), "getq carries the flags");
    // flushq is silent too, and the noop after it still answers.
    assert!(pipeline(&mut c, &[req(FLUSHQ, "")]).is_empty());
    assert_eq!(call(&mut c, req(GET, "q")).status, NOT_FOUND);
}

#[test]
fn cas_guards_set_replace_delete_and_incr() {
    let (_s, mut c) = start();
    let ex = store_extras(0, 0);
    let cas = set(&mut c, "c", 0, b"1");
    let stale = call(&mut c, req(SET, "c").extras(&ex).value(b"2").cas(cas + 1000));
    assert_eq!((stale.status, stale.text()), (EXISTS, "Data exists for key.".into()));
    let fresh = call(&mut c, req(SET, "c").extras(&ex).value(b"2").cas(cas));
    assert_eq!(fresh.status, 0);
    assert_ne!(fresh.cas, cas, "a store changes the cas");
    let r = call(&mut c, req(REPLACE, "c").extras(&ex).value(b"3").cas(cas));
    assert_eq!(r.status, EXISTS);
    let r = call(&mut c, req(SET, "nx").extras(&ex).value(b"1").cas(5));
    assert_eq!((r.status, r.text()), (NOT_FOUND, "Not found".into()));
    let r = call(&mut c, req(INCR, "c").extras(&delta_extras(1, 0, 0)).cas(cas));
    assert_eq!(r.status, EXISTS);
    let r = call(&mut c, req(INCR, "c").extras(&delta_extras(1, 0, 0)).cas(fresh.cas));
    assert_eq!((r.status, r.value.clone()), (0, 3u64.to_be_bytes().to_vec()));
    let r = call(&mut c, req(DELETE, "c").cas(fresh.cas));
    assert_eq!(r.status, EXISTS, "the incr changed the cas");
    let now = current_cas(&mut c, "c");
    assert_eq!(call(&mut c, req(DELETE, "c").cas(now)).status, 0);
    let r = call(&mut c, req(DELETE, "c"));
    assert_eq!((r.status, r.text()), (NOT_FOUND, "Not found".into()));
}

#[test]
fn cas_guards_append_prepend_and_answers_the_new_cas() {
    let (_s, mut c) = start();
    let cas = set(&mut c, "j", 0, b"mid");
    let r = call(&mut c, req(APPEND, "j").value(b">").cas(cas + 1000));
    assert_eq!((r.status, r.text()), (EXISTS, "Data exists for key.".into()));
    let r = call(&mut c, req(PREPEND, "j").value(b"<").cas(cas));
    assert_eq!(r.status, 0);
    assert_eq!(r.cas, current_cas(&mut c, "j"), "the answer carries the new cas");
    let r = call(&mut c, req(APPEND, "j").value(b">").cas(cas));
    assert_eq!(r.status, EXISTS, "the prepend changed the cas");
    let r = call(&mut c, req(APPEND, "nx").value(b">").cas(cas));
    assert_eq!((r.status, r.text()), (NOT_STORED, "Not stored.".into()));
    let r = call(&mut c, req(GET, "j"));
    assert_eq!(r.value, b"<mid");
    // An incr answers the cas it gave the item, which the next get sees.
    set(&mut c, "n", 0, b"7");
    let r = call(&mut c, req(INCR, "n").extras(&delta_extras(1, 0, 0)));
    assert_eq!((r.status, r.cas), (0, current_cas(&mut c, "n")));
    let r = call(&mut c, req(DELETE, "nx").cas(r.cas));
    assert_eq!((r.status, r.text()), (NOT_FOUND, "Not found".into()));
}

fn current_cas(c: &mut Client, key: &str) -> u64 {
    let r = call(c, req(GET, key));
    assert_eq!(r.status, 0, "{key} is there");
    r.cas
}

#[test]
fn incr_decr_create_with_initial_value_unless_told_not_to() {
    let (_s, mut c) = start();
    let got = pipeline(
        &mut c,
        &[
            req(INCR, "n").extras(&delta_extras(1, 10, 0)),
            req(INCR, "n").extras(&delta_extras(5, 10, 0)),
            req(DECR, "n").extras(&delta_extras(100, 10, 0)),
            req(DECR, "m").extras(&delta_extras(1, 7, 0)),
            req(INCR, "none").extras(&delta_extras(1, 10, 0xffff_ffff)),
            req(DECR, "none").extras(&delta_extras(1, 10, 0xffff_ffff)),
            req(GET, "n"),
            req(GET, "none"),
        ],
    );
    let values: Vec<(u8, u16, Vec<u8>)> = got.iter().map(|r| (r.op, r.status, r.value.clone())).collect();
    assert_eq!(
        values,
        vec![
            (INCR, 0, 10u64.to_be_bytes().to_vec()),
            (INCR, 0, 15u64.to_be_bytes().to_vec()),
            (DECR, 0, 0u64.to_be_bytes().to_vec()),
            (DECR, 0, 7u64.to_be_bytes().to_vec()),
            (INCR, NOT_FOUND, b"Not found".to_vec()),
            (DECR, NOT_FOUND, b"Not found".to_vec()),
            (GET, 0, b"0 ".to_vec()),
            (GET, NOT_FOUND, b"Not found".to_vec()),
        ]
    );
    set(&mut c, "s", 0, b"abc");
    let r = call(&mut c, req(INCR, "s").extras(&delta_extras(1, 0, 0)));
    assert_eq!((r.status, r.text()), (NON_NUMERIC, "Non-numeric server-side value for incr or decr".into()));
}

/// (opcode, status, extras, key, value as text).
type Shape = (u8, u16, Vec<u8>, Vec<u8>, String);

#[test]
fn touch_and_gat_family() {
    let (_s, mut c) = start();
    set(&mut c, "t", 9, b"tv");
    let ex = 0u32.to_be_bytes();
    let got = pipeline(
        &mut c,
        &[
            req(TOUCH, "t").extras(&ex),
            req(TOUCH, "nx").extras(&ex),
            req(GAT, "t").extras(&ex),
            req(GATK, "t").extras(&ex),
            req(GATQ, "t").extras(&ex),
            req(GATQ, "nx").extras(&ex),
            req(GATKQ, "t").extras(&ex),
            req(GATKQ, "nx").extras(&ex),
            req(GAT, "nx").extras(&ex),
        ],
    );
    let shape: Vec<Shape> = got.iter().map(|r| (r.op, r.status, r.extras.clone(), r.key.clone(), r.text())).collect();
    let flags = 9u32.to_be_bytes().to_vec();
    assert_eq!(
        shape,
        vec![
            (TOUCH, 0, flags.clone(), vec![], String::new()),
            (TOUCH, NOT_FOUND, vec![], vec![], "Not found".into()),
            (GAT, 0, flags.clone(), vec![], "tv".into()),
            (GATK, 0, flags.clone(), b"t".to_vec(), "tv".into()),
            (GATQ, 0, flags.clone(), vec![], "tv".into()),
            (GATKQ, 0, flags, b"t".to_vec(), "tv".into()),
            (GAT, NOT_FOUND, vec![], vec![], "Not found".into()),
        ]
    );
}

#[test]
fn flush_version_noop_and_quit() {
    let (server, mut c) = start();
    set(&mut c, "f", 0, b"1");
    let r = call(&mut c, req(FLUSH, "").extras(&100u32.to_be_bytes()));
    assert_eq!(r.status, 0);
    assert_eq!(call(&mut c, req(GET, "f")).status, 0, "a delayed flush waits");
    assert_eq!(call(&mut c, req(FLUSH, "")).status, 0);
    assert_eq!(call(&mut c, req(GET, "f")).status, NOT_FOUND);
    let v = call(&mut c, req(VERSION, ""));
    assert!(v.status == 0 && v.text().starts_with("1.6.18"), "{v:?}");
    assert_eq!((call(&mut c, req(NOOP, "")).op, call(&mut c, req(NOOP, "")).status), (NOOP, 0));
    // memcached 1.6.18 no longer serves verbosity in binary.
    let r = call(&mut c, req(VERBOSITY, ""));
    assert_eq!((r.status, r.text()), (UNKNOWN, "Unknown command".into()));
    let r = call(&mut c, req(QUIT, ""));
    assert_eq!((r.op, r.status), (QUIT, 0));
    assert!(c.is_closed());
    let mut q = server.connect();
    q.send(&[req(QUITQ, "").bytes(), req(NOOP, "").bytes()].concat());
    assert!(q.is_closed(), "quitq closes without an answer");
}

/// The key/value packets of `stat [group]` up to the empty one that ends them.
fn stat_group(c: &mut Client, group: &str) -> Vec<(String, String)> {
    c.send(&req(STAT, group).bytes());
    let mut out = Vec::new();
    loop {
        let r = read_resp(c);
        assert_eq!((r.op, r.status), (STAT, 0), "{r:?}");
        if r.key.is_empty() {
            return out;
        }
        out.push((String::from_utf8_lossy(&r.key).into_owned(), r.text()));
    }
}

#[test]
fn stat_groups_are_key_value_packets() {
    let (_s, mut c) = start();
    set(&mut c, "s", 0, b"1");
    let _ = call(&mut c, req(GET, "s"));
    let _ = call(&mut c, req(GET, "nx"));
    let general = stat_group(&mut c, "");
    let find = |list: &[(String, String)], name: &str| list.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert!(find(&general, "pid").is_some(), "{general:?}");
    assert_eq!(find(&general, "get_hits").as_deref(), Some("1"));
    assert_eq!(find(&general, "get_misses").as_deref(), Some("1"));
    assert_eq!(find(&general, "cmd_set").as_deref(), Some("1"));
    let settings = stat_group(&mut c, "settings");
    assert!(find(&settings, "maxbytes").is_some(), "{settings:?}");
    let items = stat_group(&mut c, "items");
    assert_eq!(find(&items, "items:1:number").as_deref(), Some("1"), "{items:?}");
    let slabs = stat_group(&mut c, "slabs");
    assert!(find(&slabs, "active_slabs").is_some(), "{slabs:?}");
    assert!(stat_group(&mut c, "reset").is_empty());
    let r = call(&mut c, req(STAT, "bogus"));
    assert_eq!((r.status, r.text()), (NOT_FOUND, "Not found".into()));
}

#[test]
fn binary_commands_count_in_text_stats() {
    let (server, mut c) = start();
    set(&mut c, "s", 0, b"1");
    let _ = pipeline(
        &mut c,
        &[
            req(GET, "s"),
            req(GETQ, "nx"),
            req(DELETE, "nx"),
            req(INCR, "nx").extras(&delta_extras(1, 0, 0xffff_ffff)),
            req(INCR, "made").extras(&delta_extras(1, 0, 0)),
            req(DECR, "made2").extras(&delta_extras(1, 0, 0)),
            req(TOUCH, "s").extras(&0u32.to_be_bytes()),
            req(GAT, "nx").extras(&0u32.to_be_bytes()),
        ],
    );
    // The connection counts a batch once it is answered: the next answer means that happened.
    assert_eq!(call(&mut c, req(NOOP, "")).status, 0);
    let mut text = server.connect();
    for (name, value) in [
        ("cmd_get", "2"),
        ("get_hits", "1"),
        ("get_misses", "1"),
        ("cmd_set", "1"),
        ("delete_misses", "1"),
        ("incr_misses", "1"),
        ("decr_misses", "0"),
        ("cmd_touch", "2"),
        ("touch_hits", "1"),
        ("touch_misses", "1"),
    ] {
        assert_eq!(text.stat("", name), value, "{name}");
    }
}

#[test]
fn errors_keep_or_close_the_connection_as_memcached_does() {
    let (server, mut c) = start();
    // An unknown opcode is answered and the connection goes on.
    let r = call(&mut c, req(0x55, ""));
    assert_eq!((r.op, r.status, r.text()), (0x55, UNKNOWN, "Unknown command".into()));
    // A value over -I: "Too large.", the connection goes on, and the key stays unset.
    let big = vec![b'x'; 1024 * 1024 + 10];
    let r = call(&mut c, req(SET, "big").extras(&store_extras(0, 0)).value(&big));
    assert_eq!((r.status, r.text()), (TOO_LARGE, "Too large.".into()));
    let huge = vec![b'x'; 3 * 1024 * 1024];
    let r = call(&mut c, req(SET, "big").extras(&store_extras(0, 0)).value(&huge));
    assert_eq!(r.status, TOO_LARGE);
    assert_eq!(summary(&pipeline(&mut c, &[req(GET, "big")])), vec![(GET, NOT_FOUND, "Not found".into())]);

    let closes = [
        ("a key over 250 bytes", req(GET, &"k".repeat(251)).bytes(), (INVALID, "Invalid arguments")),
        ("get with extras", req(GET, "k").extras(b"1234").bytes(), (INVALID, "Invalid arguments")),
        ("set without extras", req(SET, "k").value(b"v").bytes(), (INVALID, "Invalid arguments")),
        ("no key", req(GET, "").bytes(), (INVALID, "Invalid arguments")),
        ("key longer than the body", frame(GET, 3, 0, 1, 0, &[b"a"]), (UNKNOWN, "Unknown command")),
        ("SASL list mechanisms with a key", req(0x20, "k").bytes(), (INVALID, "Invalid arguments")),
        // (The first byte decides the protocol, so the bad magic comes second.)
        (
            "wrong magic",
            [req(NOOP, "").bytes(), {
                let mut b = req(NOOP, "").bytes();
                b[0] = 0x81;
                b
            }]
            .concat(),
            (0, ""),
        ),
    ];
    for (what, bytes, answer) in closes {
        let mut b = server.connect();
        b.send(&[bytes, req(NOOP, "").bytes()].concat());
        let r = read_resp(&mut b);
        assert_eq!((r.status, r.text().as_str()), answer, "{what}");
        assert!(b.is_closed(), "{what} closes the connection");
    }
    // A truncated header waits, and closing it harms nobody.
    let mut tc = server.connect();
    tc.send(&req(NOOP, "").bytes()[..10]);
    tc.shutdown_write();
    assert!(tc.is_closed());
    assert_eq!(call(&mut c, req(GET, "big")).status, NOT_FOUND, "the first connection still works");
}

#[test]
fn protocol_flag_chooses_what_a_connection_speaks() {
    let auto = Server::start(&[]);
    let mut text = auto.connect();
    assert!(text.cmd("version").starts_with("VERSION "), "auto: a text first byte speaks text");
    let mut bin = auto.connect();
    assert_eq!(call(&mut bin, req(NOOP, "")).status, 0, "auto: 0x80 speaks binary");

    let ascii = Server::start(&["-B", "ascii"]);
    let mut c = ascii.connect();
    assert_eq!(common::show(&c.call(&req(NOOP, "").bytes(), b"\r\n")), "ERROR\r\n");

    let binary = Server::start(&["-B", "binary"]);
    let mut c = binary.connect();
    assert_eq!(call(&mut c, req(NOOP, "")).status, 0);
    let mut t = binary.connect();
    t.send(b"get a\r\n");
    t.send(&req(NOOP, "").bytes());
    assert!(t.is_closed(), "-B binary closes a text connection");
}

#[test]
fn a_store_without_memory_is_out_of_memory() {
    let server = Server::start(&["-M", "-m", "2"]);
    let mut c = server.connect();
    let value = vec![b'x'; 100_000];
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    let sets: Vec<Req> = keys.iter().map(|k| req(SETQ, k).extras(&store_extras(0, 0)).value(&value)).collect();
    let failed = pipeline(&mut c, &sets);
    assert!(!failed.is_empty(), "2 MB cannot hold 6 MB");
    for r in &failed {
        assert_eq!((r.op, r.status, r.text().as_str()), (SETQ, OUT_OF_MEMORY, "Out of memory allocating item"));
    }
}

#[test]
fn groups_and_commands_memcached_refuses_in_binary() {
    let (_s, mut c) = start();
    let r = call(&mut c, req(STAT, "conns"));
    assert_eq!((r.status, r.text()), (NOT_FOUND, "Not found".into()));
    let r = call(&mut c, req(0x20, ""));
    assert_eq!((r.status, r.text()), (UNKNOWN, "Unknown command".into()));
    let disabled = Server::start(&["-F"]);
    let mut d = disabled.connect();
    let r = call(&mut d, req(FLUSH, ""));
    assert_eq!((r.status, r.text()), (0x20, "Auth failure.".into()));
    assert_eq!(call(&mut d, req(NOOP, "")).status, 0, "the connection goes on");
}

/// A cas makes add a cas too, as in memcached: a missing key is "Not found", a wrong cas
/// "Data exists", the right one stores. Found by the model test (tests/model.rs).
#[test]
fn add_with_a_cas_is_a_cas() {
    let (_s, mut c) = start();
    let ex = store_extras(0, 0);
    let r = call(&mut c, req(ADD, "nx").extras(&ex).value(b"1").cas(5));
    assert_eq!((r.status, r.text()), (NOT_FOUND, "Not found".into()));
    let cas = set(&mut c, "a", 0, b"1");
    let r = call(&mut c, req(ADD, "a").extras(&ex).value(b"2").cas(cas + 1000));
    assert_eq!((r.status, r.text()), (EXISTS, "Data exists for key.".into()));
    let r = call(&mut c, req(ADD, "a").extras(&ex).value(b"3").cas(cas));
    assert_eq!(r.status, 0);
    assert_eq!(call(&mut c, req(GET, "a")).value, b"3");
}

/// A set too large to store drops the old item whatever its cas, setq too; an add or a
/// replace leaves it. Found by the model test.
#[test]
fn too_large_set_with_a_cas_drops_the_old_item() {
    let (_s, mut c) = start();
    let big = vec![b'x'; (1 << 20) - 40];
    for (op, cas_given) in [(SET, true), (SETQ, true), (SET, false)] {
        let cas = set(&mut c, "t", 0, b"old");
        let r = call(&mut c, req(op, "t").extras(&store_extras(0, 0)).value(&big).cas(if cas_given { cas } else { 0 }));
        assert_eq!((r.status, r.text()), (TOO_LARGE, "Too large.".into()), "op {op:#x}");
        assert_eq!(call(&mut c, req(GET, "t")).status, NOT_FOUND, "op {op:#x} dropped the old item");
    }
    let cas = set(&mut c, "t", 0, b"old");
    for op in [ADD, REPLACE] {
        let r = call(&mut c, req(op, "t").extras(&store_extras(0, 0)).value(&big).cas(cas));
        assert_eq!(r.status, TOO_LARGE);
        assert_eq!(call(&mut c, req(GET, "t")).value, b"old", "op {op:#x} kept the old item");
    }
}

/// An append or prepend too large is "Too large." before the old item is looked at, so a
/// missing key answers it too. Found by the model test.
#[test]
fn too_large_append_is_too_large_even_without_an_item() {
    let (_s, mut c) = start();
    let big = vec![b'x'; (1 << 20) - 40];
    for op in [APPEND, PREPEND, APPENDQ, PREPENDQ] {
        let r = pipeline(&mut c, &[req(op, "nx").value(&big)]);
        assert_eq!(summary(&r), [(op, TOO_LARGE, "Too large.".into())], "op {op:#x}");
    }
}

/// memcached refuses to count an empty value before it compares the cas. Found by the model
/// test.
#[test]
fn incr_of_an_empty_value_is_non_numeric_whatever_the_cas() {
    let (_s, mut c) = start();
    let cas = set(&mut c, "e", 0, b"");
    for given in [cas, cas + 1000] {
        let r = call(&mut c, req(INCR, "e").extras(&delta_extras(1, 0, 0)).cas(given));
        assert_eq!(r.status, NON_NUMERIC, "cas {given} (item's {cas})");
    }
}

/// An append or prepend with a wrong cas is "Data exists" even when the joined value would be
/// too large: memcached compares the cas before it sizes the joined item. Found by the model
/// test.
#[test]
fn append_compares_the_cas_before_the_joined_size() {
    let (_s, mut c) = start();
    let cas = set(&mut c, "j", 0, b"123");
    let big = vec![b'x'; (1 << 20) - 62];
    for op in [APPEND, PREPEND] {
        let r = call(&mut c, req(op, "j").value(&big).cas(cas + 1000));
        assert_eq!((r.status, r.text()), (EXISTS, "Data exists for key.".into()), "op {op:#x}");
        let r = call(&mut c, req(op, "j").value(&big).cas(cas));
        assert_eq!((r.status, r.text()), (NOT_STORED, "Not stored.".into()), "op {op:#x}");
    }
}
