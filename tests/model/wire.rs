//! Talking to a server and comparing answers. Each op goes out followed by a no-op (`mn`, or
//! a binary noop on the binary connection) and its answer is everything before the no-op's,
//! framed by reading VALUE and VA blocks and binary packets by their lengths: a quiet command's
//! silence is an empty answer, and values may hold any bytes. Each side keeps a `CasBook` of
//! the cas values it answered, to render the next ops' `CasRef`s, and a `Normaliser` that
//! turns its cas values into the order they first appeared in, so two servers' answers
//! compare byte for byte.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ops::{self, opcode, CasRef, Op, BOGUS_CAS, KEYS};

/// A side of a comparison: a server, or the model.
/// An op is sent to every side before any answer is read, so two servers work at once.
pub trait Side {
    /// Sends `op`, its `CasRef`s resolved by `cas`.
    fn send(&mut self, op: &Op, cas: &dyn Fn(CasRef, usize) -> u64);
    /// The raw answer to the op just sent.
    fn answer(&mut self, op: &Op) -> Vec<u8>;
}

/// The opaque of the noop that ends a binary answer.
const MARK: u32 = 0x6d61_726b;

/// One connection, with what it has read but not yet handed out.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Conn {
    pub fn connect(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn { stream, buf: Vec::new(), pos: 0 }
    }

    fn fill(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("connection closed; unread {:?}", String::from_utf8_lossy(&self.buf)),
                Ok(n) => return self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read: {e}; unread {:?}", String::from_utf8_lossy(&self.buf)),
            }
        }
    }

    fn take(&mut self, n: usize) -> &[u8] {
        while self.buf.len() - self.pos < n {
            self.fill();
        }
        self.pos += n;
        &self.buf[self.pos - n..self.pos]
    }

    /// One line, "\r\n" included.
    fn line(&mut self) -> Vec<u8> {
        loop {
            if let Some(at) = self.buf[self.pos..].windows(2).position(|w| w == b"\r\n") {
                return self.take(at + 2).to_vec();
            }
            self.fill();
        }
    }

    /// Sends a text or meta request, then a no-op.
    fn send_text(&mut self, request: &[u8]) {
        let mut out = request.to_vec();
        out.extend_from_slice(b"mn\r\n");
        self.stream.write_all(&out).expect("write");
    }

    /// The answer to a text or meta request; `noops` is how many MN lines the request itself
    /// asks for.
    fn text_answer(&mut self, mut noops: usize) -> Vec<u8> {
        let mut answer = Vec::new();
        loop {
            let line = self.line();
            if line == b"MN\r\n" {
                if noops == 0 {
                    return answer;
                }
                noops -= 1;
            }
            answer.extend_from_slice(&line);
            if let Some(len) = block_length(&line) {
                answer.extend_from_slice(self.take(len + 2));
            }
        }
    }

    /// Sends a binary request, then a noop.
    fn send_binary(&mut self, request: &[u8]) {
        let mut out = request.to_vec();
        out.extend_from_slice(&ops::binary_request(opcode::NOOP, 0, &[], &[], &[], MARK));
        self.stream.write_all(&out).expect("write");
    }

    /// The answer packets to a binary request.
    fn binary_answer(&mut self) -> Vec<u8> {
        let mut answer = Vec::new();
        loop {
            let header = self.take(24).to_vec();
            let body_len = u32::from_be_bytes(header[8..12].try_into().unwrap()) as usize;
            let body = self.take(body_len).to_vec();
            if header[1] == opcode::NOOP && header[12..16] == MARK.to_be_bytes() {
                return answer;
            }
            answer.extend_from_slice(&header);
            answer.extend_from_slice(&body);
        }
    }
}

/// The length of the data block a text answer line announces: "VALUE key flags length
/// [cas]" and "VA length flags...".
fn block_length(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    let mut words = text.split(' ');
    match words.next()? {
        "VALUE" => words.nth(2)?.parse().ok(),
        "VA" => words.next()?.parse().ok(),
        _ => None,
    }
}

/// A running server, with a text and a binary connection to it.
pub struct Remote {
    text: Conn,
    binary: Conn,
}

impl Remote {
    pub fn connect(port: u16) -> Remote {
        Remote { text: Conn::connect(port), binary: Conn::connect(port) }
    }
}

impl Remote {
    /// The value of key `k`, read with a plain get.
    pub fn value(&mut self, k: usize) -> Option<Vec<u8>> {
        let mut request = b"get ".to_vec();
        request.extend_from_slice(&ops::key(k));
        request.extend_from_slice(b"\r\n");
        self.text.send_text(&request);
        let answer = self.text.text_answer(0);
        let header_end = answer.windows(2).position(|w| w == b"\r\n")? + 2;
        let len = block_length(&answer[..header_end])?;
        Some(answer[header_end..header_end + len].to_vec())
    }
}

impl Side for Remote {
    fn send(&mut self, op: &Op, cas: &dyn Fn(CasRef, usize) -> u64) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let request = op.render(cas, now);
        if op.is_binary() {
            self.binary.send_binary(&request);
        } else {
            self.text.send_text(&request);
        }
    }

    fn answer(&mut self, op: &Op) -> Vec<u8> {
        if op.is_binary() {
            self.binary.binary_answer()
        } else {
            self.text.text_answer(usize::from(matches!(op, Op::Meta { cmd: b'n', .. })))
        }
    }
}

/// The last cas value a side answered for each key.
#[derive(Default)]
pub struct CasBook {
    last: [Option<u64>; KEYS],
}

impl CasBook {
    pub fn resolve(&self, cas: CasRef, key: usize) -> u64 {
        match cas {
            CasRef::Zero => 0,
            CasRef::Bogus => BOGUS_CAS,
            CasRef::Last => self.last[key].unwrap_or(BOGUS_CAS),
        }
    }

    /// Notes the cas values in `op`'s answer.
    pub fn learn(&mut self, op: &Op, answer: &[u8]) {
        let mut found = Vec::new();
        if op.is_binary() {
            packets(answer, &mut |packet| {
                let cas = u64::from_be_bytes(packet[16..24].try_into().unwrap());
                if cas != 0 {
                    found.push((op.key(), cas));
                }
            });
        } else {
            text_lines(answer, &mut |line| {
                let words: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
                if words[0] == b"VALUE" && words.len() == 5 {
                    let key = (0..KEYS).find(|&k| ops::key(k) == words[1]);
                    found.push((key, number(words[4]).expect("cas")));
                } else if words[0].len() == 2 {
                    for word in &words[1..] {
                        // A failed ms answers c0, which is no cas.
                        if let Some(cas) = word.strip_prefix(b"c").and_then(number).filter(|&cas| cas != 0) {
                            found.push((op.key(), cas));
                        }
                    }
                }
            });
        }
        for (key, cas) in found {
            if let Some(key) = key {
                self.last[key] = Some(cas);
            }
        }
    }
}

fn number(digits: &[u8]) -> Option<u64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Calls `f` with each binary packet of an answer.
fn packets(answer: &[u8], f: &mut dyn FnMut(&[u8])) {
    let mut at = 0;
    while at < answer.len() {
        let body_len = u32::from_be_bytes(answer[at + 8..at + 12].try_into().unwrap()) as usize;
        f(&answer[at..at + 24 + body_len]);
        at += 24 + body_len;
    }
}

/// Calls `f` with each line of a text answer (without "\r\n"), skipping data blocks.
fn text_lines(answer: &[u8], f: &mut dyn FnMut(&[u8])) {
    let mut at = 0;
    while let Some(end) = answer[at..].windows(2).position(|w| w == b"\r\n") {
        let line = &answer[at..at + end + 2];
        f(&line[..line.len() - 2]);
        at += line.len();
        if let Some(len) = block_length(line) {
            at += len + 2;
        }
    }
}

/// Maps a side's cas values to the order they first appeared in (0 stays 0), and rounds meta
/// TTLs to whole thousands of seconds (the stream's TTLs are such, so a second passing between
/// a store and a read does not show).
#[derive(Default)]
pub struct Normaliser {
    order: HashMap<u64, u64>,
}

impl Normaliser {
    fn cas(&mut self, cas: u64) -> u64 {
        if cas == 0 {
            return 0;
        }
        let next = self.order.len() as u64 + 1;
        *self.order.entry(cas).or_insert(next)
    }

    pub fn normalise(&mut self, binary: bool, answer: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(answer.len());
        if binary {
            packets(answer, &mut |packet| {
                let cas = self.cas(u64::from_be_bytes(packet[16..24].try_into().unwrap()));
                out.extend_from_slice(&packet[..16]);
                out.extend_from_slice(&cas.to_be_bytes());
                out.extend_from_slice(&packet[24..]);
            });
            return out;
        }
        let mut at = 0;
        while let Some(end) = answer[at..].windows(2).position(|w| w == b"\r\n") {
            let line = &answer[at..at + end + 2];
            at += line.len();
            let words: Vec<&[u8]> = line[..line.len() - 2].split(|&b| b == b' ').collect();
            let mut rewritten: Vec<Vec<u8>> = words.iter().map(|w| w.to_vec()).collect();
            if words[0] == b"VALUE" && words.len() == 5 {
                rewritten[4] = self.cas(number(words[4]).expect("cas")).to_string().into_bytes();
            } else if words[0].len() == 2 && words[0].iter().all(u8::is_ascii_uppercase) {
                for (word, new) in words.iter().zip(rewritten.iter_mut()).skip(1) {
                    if let Some(cas) = word.strip_prefix(b"c").and_then(number) {
                        *new = format!("c{}", self.cas(cas)).into_bytes();
                    } else if let Some(ttl) = word.strip_prefix(b"t").and_then(number) {
                        *new = format!("t{}", (ttl + 500) / 1000 * 1000).into_bytes();
                    }
                }
            }
            out.extend_from_slice(&rewritten.join(&b' '));
            out.extend_from_slice(b"\r\n");
            if let Some(len) = block_length(line) {
                out.extend_from_slice(&answer[at..at + len + 2]);
                at += len + 2;
            }
        }
        out.extend_from_slice(&answer[at..]);
        out
    }
}
