//! Table-driven protocol tests shared by the text and meta protocol files: each row is sent on
//! a fresh connection followed by `version`, and the whole reply before the version line must
//! be exactly the row's expectation. Needs the test crate's `mod common;`.
#![allow(dead_code)]

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use crate::common::{show, wrapper, Client, Server};

/// A table row: the behaviour it pins, the bytes sent in one write, and the whole reply.
/// `{k}` in either byte string stands for a key unique to the row (its name).
pub type Row<'a> = (&'a str, &'a [u8], &'a [u8]);

/// How long a table row may wait for its reply: rows are tiny, and a row that hangs should not
/// hold up the rest of the table for long.
pub const ROW_DEADLINE: Duration = Duration::from_secs(5);

/// `bytes` with every `from` replaced by `to`.
pub fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Replaces every `{k}` in `bytes` with `key`.
pub fn with_key(bytes: &[u8], key: &str) -> Vec<u8> {
    replace(bytes, b"{k}", key.as_bytes())
}

/// Reads everything the server sends up to and including a final `VERSION ...` line, and
/// returns what came before that line. Works on raw bytes, so values need not be UTF-8.
pub fn try_reply_before_version(client: &mut Client, deadline: Duration) -> Result<Vec<u8>, String> {
    let end = Instant::now() + deadline;
    let mut buf = Vec::new();
    loop {
        if buf.ends_with(b"\r\n") {
            let body = &buf[..buf.len() - 2];
            let start = body.windows(2).rposition(|w| w == b"\r\n").map_or(0, |p| p + 2);
            if body[start..].starts_with(b"VERSION ") {
                buf.truncate(start);
                return Ok(buf);
            }
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no VERSION line; got {:?}", show(&buf)));
        }
        client.stream.set_read_timeout(Some(left)).expect("set_read_timeout");
        let mut chunk = [0u8; 65536];
        match client.stream.read(&mut chunk) {
            Ok(0) => return Err(format!("connection closed; got {:?}", show(&buf))),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A signal to the test process interrupts the read; that says nothing of the server.
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}; got {:?}", show(&buf))),
        }
    }
}

/// Sends `send` then `version` on a fresh connection, and checks that the reply before the
/// version line is exactly `expect`: nothing missing, nothing extra, and the connection still
/// parses commands afterwards. Returns what went wrong, if anything.
pub fn try_check(server: &Server, name: &str, send: &[u8], expect: &[u8]) -> Result<(), String> {
    let mut client = server.connect();
    let mut request = send.to_vec();
    request.extend_from_slice(b"version\r\n");
    client.send(&request);
    let outcome = try_reply_before_version(&mut client, ROW_DEADLINE).and_then(|got| {
        if got == expect || (wrapper().is_some() && without_ttls(&got) == without_ttls(expect)) {
            Ok(())
        } else {
            Err(format!("got      {:?}\n  expected {:?}", show(&got), show(expect)))
        }
    });
    outcome.map_err(|e| format!("row {name}: sent {:?}\n  {e}", show(send)))
}

/// `answer` with the number of every " tN" taken out. Under the test wrapper (valgrind, some
/// 20 times slower) a second may pass between a store and the read of its TTL.
fn without_ttls(answer: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(answer.len());
    let mut i = 0;
    while i < answer.len() {
        out.push(answer[i]);
        if answer[i..].starts_with(b" t") {
            out.push(b't');
            i += 2;
            while answer.get(i).is_some_and(|b| b.is_ascii_digit() || *b == b'-') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Runs each row on its own connection, and fails listing every row that did not answer as
/// expected.
pub fn check_rows<'a>(server: &Server, rows: impl IntoIterator<Item = (&'a str, Vec<u8>, Vec<u8>)>) {
    let mut count = 0;
    let mut failures = Vec::new();
    for (name, send, expect) in rows {
        count += 1;
        failures.extend(try_check(server, name, &send, &expect).err());
    }
    assert!(failures.is_empty(), "{} of {count} rows failed:\n{}", failures.len(), failures.join("\n"));
}
