//! Writes made over the binary and meta protocols replicate like text ones, and so do the
//! meta protocol's marks: a stale item and a handed-out win token are seen on both nodes. A
//! cas-checked incr of a key the peer owns is checked on the owner.

mod common;
mod pair;

use std::io::{Read, Write};
use std::net::TcpStream;

use pair::{poll, Conn, Pair, SAME_DEADLINE};

/// One binary request with extras, key, value and cas.
fn packet(op: u8, extras: &[u8], key: &[u8], value: &[u8], cas: u64) -> Vec<u8> {
    let mut out = vec![0x80, op];
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(&[extras.len() as u8, 0, 0, 0]);
    out.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&cas.to_be_bytes());
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

/// Sends `request` and returns the response's status and cas.
fn call(stream: &mut TcpStream, request: &[u8]) -> (u16, u64) {
    stream.write_all(request).expect("send");
    let mut header = [0u8; 24];
    stream.read_exact(&mut header).expect("response header");
    let body_len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
    let mut body = vec![0u8; body_len];
    stream.read_exact(&mut body).expect("response body");
    let cas = u64::from_be_bytes(header[16..24].try_into().expect("8 bytes"));
    (u16::from_be_bytes([header[6], header[7]]), cas)
}

fn status(stream: &mut TcpStream, request: &[u8]) -> u16 {
    call(stream, request).0
}

/// A meta set: the command line, then the value.
fn ms(conn: &mut Conn, line: &str, value: &str) -> String {
    conn.send(format!("{line}\r\n{value}\r\n").as_bytes());
    conn.line()
}

/// The cas a meta get reports for `key` (None: a miss).
fn cas_of(conn: &mut Conn, key: &str) -> Option<u64> {
    let answer = conn.cmd(&format!("mg {key} c"));
    answer.strip_prefix("HD c").map(|rest| rest.split(' ').next().unwrap_or_default().parse().expect("cas"))
}

/// The cas meta debug reports for `key`, which must be there.
fn me_cas(conn: &mut Conn, key: &str) -> u64 {
    let answer = conn.cmd(&format!("me {key}"));
    let cas = answer.split(' ').find_map(|field| field.strip_prefix("cas="));
    cas.and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("me {key}: {answer}"))
}

/// Polls until `cond` holds of what `look` sees on the node, which must also hold.
fn poll_until<T: std::fmt::Debug>(what: &str, conn: &mut Conn, mut look: impl FnMut(&mut Conn) -> T, cond: impl Fn(&T) -> bool) -> T {
    let mut last = None;
    poll(what, SAME_DEADLINE, || {
        let seen = look(conn);
        let good = cond(&seen);
        let shown = format!("{seen:?}");
        last = Some(seen);
        if good {
            Ok(())
        } else {
            Err(shown)
        }
    });
    last.expect("polled once")
}

#[test]
fn binary_writes_replicate() {
    let _heavy = pair::heavy();
    let pair = Pair::start(&[], &[]);
    let mut a = TcpStream::connect((pair.a.addr.as_str(), pair.a.port)).expect("connect A");
    let flags_exptime = [5u32.to_be_bytes(), 0u32.to_be_bytes()].concat();
    assert_eq!(status(&mut a, &packet(0x01, &flags_exptime, b"bin", b"value", 0)), 0);
    assert_eq!(status(&mut a, &packet(0x01, &flags_exptime, b"gone", b"x", 0)), 0);
    let (_, kept_cas) = call(&mut a, &packet(0x01, &flags_exptime, b"kept", b"k", 0));
    let incr = [&1u64.to_be_bytes()[..], &40u64.to_be_bytes(), &0u32.to_be_bytes()].concat();
    assert_eq!(status(&mut a, &packet(0x05, &incr, b"counter", b"", 0)), 0);
    assert_eq!(status(&mut a, &packet(0x05, &incr, b"counter", b"", 0)), 0);
    assert_eq!(status(&mut a, &packet(0x04, &[], b"gone", b"", 0)), 0);
    // A delete or an append with a stale cas changes nothing, here or there.
    assert_eq!(status(&mut a, &packet(0x04, &[], b"kept", b"", kept_cas + 1)), 2);
    assert_eq!(status(&mut a, &packet(0x0e, &[], b"kept", b"more", kept_cas + 1)), 2);
    assert_eq!(status(&mut a, &packet(0x0e, &[], b"kept", b"+", kept_cas)), 0);

    let mut b = pair.b.conn();
    poll("the binary writes to reach B", SAME_DEADLINE, || {
        let got = (
            b.get_one("bin").map(|i| (i.flags, i.value)),
            b.get_one("counter").map(|i| i.value),
            b.get_one("gone").is_none(),
            b.get_one("kept").map(|i| i.value),
        );
        if got == (Some((5, b"value".to_vec())), Some(b"41".to_vec()), true, Some(b"k+".to_vec())) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
}

#[test]
fn meta_writes_replicate_with_their_cas_and_base64_keys() {
    let _heavy = pair::heavy();
    let pair = Pair::start(&[], &[]);
    let mut a = pair.a.conn();
    assert_eq!(ms(&mut a, "ms m1 5 F7 T0", "hello"), "HD");
    assert_eq!(ms(&mut a, "ms m1 3 MA", "abc"), "HD");
    assert_eq!(ms(&mut a, "ms m2 1", "x"), "HD");
    assert_eq!(a.cmd("md m2"), "HD");
    assert_eq!(a.cmd("ma m3 N0 J10"), "HD");
    assert_eq!(a.cmd("ma m3 v"), "VA 2");
    assert_eq!(a.line(), "11");
    assert_eq!(ms(&mut a, "ms m4 2 T1000 F3", "hi"), "HD");
    assert_eq!(ms(&mut a, "ms Zm9v 3 b", "b64"), "HD");
    // A vivified miss: an empty item whose win token this client holds.
    assert_eq!(a.cmd("mg m5 N30 s"), "HD s0 W");

    let mut b = pair.b.conn();
    poll("the meta writes to reach B", SAME_DEADLINE, || {
        let got = (
            b.get_one("m1").map(|i| (i.flags, i.value)),
            b.get_one("m2").is_none(),
            b.get_one("m3").map(|i| i.value),
            b.get_one("m4").map(|i| (i.flags, i.value)),
            b.get_one("foo").map(|i| i.value),
            b.cmd("mg m5 s"),
        );
        let want = (
            Some((7, b"helloabc".to_vec())),
            true,
            Some(b"11".to_vec()),
            Some((3, b"hi".to_vec())),
            Some(b"b64".to_vec()),
            "HD s0 Z".to_string(),
        );
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    for key in ["m1", "m3", "m4", "foo", "m5"] {
        assert_eq!(cas_of(&mut a, key), cas_of(&mut b, key), "{key}'s cas on both nodes");
    }
    // The expiry and the base64 form of the key came along.
    let ttl = b.cmd("mg m4 t");
    let left: i64 = ttl.strip_prefix("HD t").and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("{ttl}"));
    assert!((990..=1000).contains(&left), "{ttl}");
    assert_eq!(b.cmd("mg foo k v"), "VA 3 kZm9v b");
    assert_eq!(b.line(), "b64");
}

#[test]
fn stale_and_win_marks_reach_the_peer() {
    let _heavy = pair::heavy();
    let pair = Pair::start(&[], &[]);
    let (mut a, mut b) = (pair.a.conn(), pair.b.conn());
    assert_eq!(ms(&mut a, "ms s1 1", "x"), "HD");
    assert_eq!(a.cmd("md s1 I"), "HD");
    // me reads without claiming the win token a mg would take.
    let invalid_cas = me_cas(&mut a, "s1");
    // md I gave a new cas; B holds that version once it answers with it.
    poll_until("the invalidation to reach B", &mut b, |b| b.cmd("me s1"), |me| me.contains(&format!("cas={invalid_cas} ")));
    // B hands out the win token; A learns it was handed out and hands out none itself.
    let received = pair.a.repl_num("items_received");
    assert_eq!(b.cmd("mg s1 c"), format!("HD c{invalid_cas} X W"));
    poll("B's win mark to reach A", SAME_DEADLINE, || {
        let now = pair.a.repl_num("items_received");
        if now > received {
            Ok(())
        } else {
            Err(format!("items_received {now}"))
        }
    });
    assert_eq!(a.cmd("mg s1 c"), format!("HD c{invalid_cas} Z X"));

    // A stale store (ms I with an older cas) is stale on the peer too.
    assert_eq!(ms(&mut a, "ms s2 1", "y"), "HD");
    let first = cas_of(&mut a, "s2").expect("s2");
    assert_eq!(ms(&mut a, "ms s2 1 I", "z"), "HD");
    assert_eq!(ms(&mut a, &format!("ms s2 1 I C{first}"), "w"), "HD");
    let stale_cas = me_cas(&mut a, "s2");
    let seen = poll_until("the stale store to reach B", &mut b, |b| b.cmd("me s2"), |me| me.contains(&format!("cas={stale_cas} ")));
    assert!(seen.starts_with("ME s2 "), "{seen}");
    assert_eq!(b.cmd("mg s2 v"), "VA 1 X W");
    assert_eq!(b.line(), "w");
}

#[test]
fn a_cas_checked_incr_is_checked_by_the_keys_owner() {
    let _heavy = pair::heavy();
    let pair = Pair::start(&[], &[]);
    let (mut a, mut b) = (pair.a.conn(), pair.b.conn());
    // "up" and "down" have different owners, whichever node bit each node drew.
    let keys = ["up", "down"];
    for key in keys {
        assert_eq!(ms(&mut a, &format!("ms {key} 1"), "5"), "HD");
    }
    for key in keys {
        let want = cas_of(&mut a, key);
        poll_until("the counters to reach B", &mut b, |b| cas_of(b, key), |seen| *seen == want);
    }
    let forwarded = pair.a.repl_num("deltas_forwarded");
    for key in keys {
        let unique = cas_of(&mut a, key).expect("counter");
        assert_eq!(a.cmd(&format!("ma {key} C{}", unique + 1)), "EX", "{key}");
        assert_eq!(a.cmd(&format!("ma {key} C{unique} v c")).split(' ').take(2).collect::<Vec<_>>(), ["VA", "1"], "{key}");
        assert_eq!(a.line(), "6");
        // The binary incr's cas is checked the same way, and answers the new cas.
        let mut bin = TcpStream::connect((pair.a.addr.as_str(), pair.a.port)).expect("connect A");
        let incr = [&1u64.to_be_bytes()[..], &0u64.to_be_bytes(), &u32::MAX.to_be_bytes()].concat();
        let now = cas_of(&mut a, key).expect("counter");
        assert_eq!(call(&mut bin, &packet(0x05, &incr, key.as_bytes(), b"", now + 1)).0, 2, "{key}");
        let (status, after) = call(&mut bin, &packet(0x05, &incr, key.as_bytes(), b"", now));
        assert_eq!((status, Some(after)), (0, cas_of(&mut a, key)), "{key}");
    }
    assert!(pair.a.repl_num("deltas_forwarded") >= forwarded + 2, "one of the keys is B's");
    for key in keys {
        let want = a.get_one(key).map(|i| i.value);
        assert_eq!(want, Some(b"7".to_vec()));
        poll_until("the counters to agree", &mut b, |b| b.get_one(key).map(|i| i.value), |seen| *seen == want);
    }
}
