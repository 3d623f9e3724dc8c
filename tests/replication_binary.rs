//! Writes made over the binary protocol replicate like text ones: a set, an incr that
//! creates its key from the initial value, and a delete on one node reach the other.

mod common;
mod pair;

use std::io::{Read, Write};
use std::net::TcpStream;

use pair::{poll, Pair, SAME_DEADLINE};

/// One binary request with extras, key and value.
fn packet(op: u8, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80, op];
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(&[extras.len() as u8, 0, 0, 0]);
    out.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

/// Sends `request` and returns the response's status.
fn status(stream: &mut TcpStream, request: &[u8]) -> u16 {
    stream.write_all(request).expect("send");
    let mut header = [0u8; 24];
    stream.read_exact(&mut header).expect("response header");
    let body_len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
    let mut body = vec![0u8; body_len];
    stream.read_exact(&mut body).expect("response body");
    u16::from_be_bytes([header[6], header[7]])
}

#[test]
fn binary_writes_replicate() {
    let _heavy = pair::heavy();
    let pair = Pair::start(&[], &[]);
    let mut a = TcpStream::connect((pair.a.addr.as_str(), pair.a.port)).expect("connect A");
    let flags_exptime = [5u32.to_be_bytes(), 0u32.to_be_bytes()].concat();
    assert_eq!(status(&mut a, &packet(0x01, &flags_exptime, b"bin", b"value")), 0);
    assert_eq!(status(&mut a, &packet(0x01, &flags_exptime, b"gone", b"x")), 0);
    let incr = [&1u64.to_be_bytes()[..], &40u64.to_be_bytes(), &0u32.to_be_bytes()].concat();
    assert_eq!(status(&mut a, &packet(0x05, &incr, b"counter", b"")), 0);
    assert_eq!(status(&mut a, &packet(0x05, &incr, b"counter", b"")), 0);
    assert_eq!(status(&mut a, &packet(0x04, &[], b"gone", b"")), 0);

    let mut b = pair.b.conn();
    poll("the binary writes to reach B", SAME_DEADLINE, || {
        let got = (b.get_one("bin").map(|i| (i.flags, i.value)), b.get_one("counter").map(|i| i.value), b.get_one("gone").is_none());
        if got == (Some((5, b"value".to_vec())), Some(b"41".to_vec()), true) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
}
