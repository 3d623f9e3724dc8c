//! The -vv log of client traffic, in memcached 1.6.18's words, over TCP, unix sockets and UDP.
//!
//! Text protocol: "<fd command line", then the answer as memcached logs it: its first line,
//! or for a get one ">fd sending key K" per value and ">fd END"; nothing for a `stats` listing
//! or a meta command's answer, which memcached writes without logging (but "MN" and errors).
//!
//! Binary protocol: each request's 24-byte header in hex ("<fd Read binary protocol data:",
//! then four bytes a line), the plain line memcached prints for some commands ("<fd GET k",
//! "<fd SET k Value len is 2", "Deleting k", ...), and for each response packet
//! ">fd Writing bin response:" and its header, after ">fd Writing an error: message" for a
//! failure. memcached writes a `stat` answer's packets without logging them, and logs no
//! command line for a request it refuses as malformed; that refusal, and a wrong magic byte,
//! get their -v line. The server layer sees only bytes in and bytes out, so the lines are
//! read from the request's header and the answer's packets.
//!
//! Keys are written as they came, bytes and all, as memcached writes them; each request's
//! lines go out in one write, so that connections served at once do not interleave them.

use std::io::Write;
use std::os::fd::RawFd;

use crate::log;
use crate::protocol::binary::REQUEST_MAGIC;
use crate::protocol::Next;

/// A binary header's size.
const HEADER: usize = 24;
const KEY_ENOENT: u16 = 0x01;
const EINVAL: u16 = 0x04;
const UNKNOWN_COMMAND: u16 = 0x81;
const STAT: u8 = 0x10;

/// -vvv under `-B auto`: the protocol the connection's first byte chose.
pub fn protocol_chosen(fd: RawFd, binary: bool) {
    let name = if binary { "binary" } else { "ascii" };
    log::line(log::STATE, format_args!("{fd}: Client using the {name} protocol"));
}

/// What the -vv log keeps of a text command's answer, which may be written out in parts:
/// its first line, and the key of each value a get sends (`execute::GetSink::value` names
/// them). Never the values, so that logging a long multi-get holds no more than its keys.
#[derive(Debug, Default)]
pub struct Answer {
    first: Option<Vec<u8>>,
    keys: Vec<Vec<u8>>,
}

impl Answer {
    /// One line written alone (a refusal's; empty: nothing written).
    pub fn line(line: &str) -> Answer {
        let mut answer = Answer::default();
        answer.add(line.as_bytes());
        answer
    }

    /// The next part of the answer, whole lines and whole value blocks.
    pub fn add(&mut self, part: &[u8]) {
        if self.first.is_none() && !part.is_empty() {
            self.first = Some(first_line(part).to_vec());
        }
    }

    /// A get has sent the value of `key`.
    pub fn found(&mut self, key: &[u8]) {
        self.keys.push(key.to_vec());
    }
}

/// -vv: one text command and its answer. `command` holds the command's bytes (its line
/// first).
pub fn text(fd: RawFd, command: &[u8], answer: &Answer) {
    if !log::enabled(log::TRAFFIC) {
        return;
    }
    let line = first_line(command);
    let mut text = Vec::new();
    push_line(&mut text, &[format!("<{fd} ").as_bytes(), line]);
    let verb = line.split(|&b| b == b' ').next().unwrap_or_default();
    let first = answer.first.as_deref();
    match (verb, first) {
        (b"get" | b"gets" | b"gat" | b"gats", Some(first)) if first.starts_with(b"VALUE ") || first == b"END" => {
            for key in &answer.keys {
                push_line(&mut text, &[format!(">{fd} sending key ").as_bytes(), key]);
            }
            push_line(&mut text, &[format!(">{fd} END").as_bytes()]);
        }
        (b"stats", Some(first)) if first.starts_with(b"STAT ") || first == b"END" => {}
        (b"mg" | b"ms" | b"md" | b"ma" | b"me", Some(first)) if !is_error(first) => {}
        (_, Some(first)) => push_line(&mut text, &[format!(">{fd} ").as_bytes(), first]),
        (_, None) => {}
    }
    emit(&text);
}

/// -vv (and -v for a refusal): one binary request that `binary::handle` dealt with.
/// `request` is the input it read the request from (the header first), `answer` the packets
/// it wrote, `next` whether the connection goes on.
pub fn binary(fd: RawFd, request: &[u8], answer: &[u8], next: Next) {
    if !log::enabled(log::WARN) || request.len() < HEADER {
        return;
    }
    let traffic = log::enabled(log::TRAFFIC);
    let mut text = Vec::new();
    if traffic {
        dump(&mut text, format!("<{fd}"), "   ", "Read binary protocol data:", &request[..HEADER]);
    }
    if request[0] != REQUEST_MAGIC {
        push_line(&mut text, &[format!("Invalid magic:  {:x}", request[0]).as_bytes()]);
        emit(&text);
        return;
    }
    let opcode = request[1];
    let key_len = usize::from(be16(&request[2..4]));
    let extras_len = usize::from(request[4]);
    let body_len = be32(&request[8..12]) as usize;
    let first_status = (answer.len() >= HEADER).then(|| be16(&answer[6..8]));
    let invalid = first_status == Some(EINVAL) && next == Next::Close;
    let refused = invalid || first_status == Some(UNKNOWN_COMMAND) || key_len + extras_len > body_len;
    if traffic && !refused {
        let body = &request[HEADER..];
        let extras = &body[..extras_len.min(body.len())];
        let key = &body[extras.len()..(extras_len + key_len).min(body.len())];
        command_line(&mut text, fd, opcode, key, extras, body_len - key_len - extras_len);
    }
    if traffic {
        responses(&mut text, fd, opcode, answer);
    }
    if invalid {
        push_line(&mut text, &[format!("Protocol error (opcode {opcode:02x}), close connection {fd}").as_bytes()]);
    }
    emit(&text);
}

/// The plain line memcached prints for a binary command, if it prints one.
fn command_line(text: &mut Vec<u8>, fd: RawFd, opcode: u8, key: &[u8], extras: &[u8], value_len: usize) {
    match opcode {
        0x00 | 0x09 | 0x0c | 0x0d => push_line(text, &[format!("<{fd} GET ").as_bytes(), key]),
        0x1c..=0x1e | 0x23 | 0x24 => push_line(text, &[format!("<{fd} TOUCH ").as_bytes(), key]),
        0x01..=0x03 | 0x11..=0x13 => {
            let verb = match opcode & 0x0f {
                0x01 => "SET",
                0x02 => "ADD",
                _ => "REPLACE",
            };
            push_line(text, &[format!("<{fd} {verb} ").as_bytes(), key, format!(" Value len is {value_len}").as_bytes()]);
        }
        0x0e | 0x0f | 0x19 | 0x1a => push_line(text, &[format!("Value len is {value_len}").as_bytes()]),
        // memcached says "incr" for decr too, with the amount and the expiry signed.
        0x05 | 0x06 | 0x15 | 0x16 => {
            let field =
                |at: usize, len: usize| extras.get(at..at + len).map_or(0, |b| b.iter().fold(0u64, |n, &x| (n << 8) | u64::from(x)));
            let (amount, initial, expiry) = (field(0, 8) as i64, field(8, 8), field(16, 4) as u32 as i32);
            push_line(text, &[b"incr ", key, format!(" {amount}, {initial}, {expiry}").as_bytes()]);
        }
        0x04 | 0x14 => push_line(text, &[b"Deleting ", key]),
        STAT => push_line(text, &[format!("<{fd} STATS ").as_bytes(), key]),
        _ => {}
    }
}

/// Each response packet of `answer`: its error message if it is a failure, then its header.
fn responses(text: &mut Vec<u8>, fd: RawFd, request_opcode: u8, mut answer: &[u8]) {
    while answer.len() >= HEADER {
        let opcode = answer[1];
        let key_len = usize::from(be16(&answer[2..4]));
        let extras_len = usize::from(answer[4]);
        let status = be16(&answer[6..8]);
        let end = (HEADER + be32(&answer[8..12]) as usize).min(answer.len());
        let (header, body) = (&answer[..HEADER], &answer[HEADER..end]);
        answer = &answer[end..];
        if request_opcode == STAT && status == 0 {
            continue;
        }
        // A miss of a k-form is an answer naming the key, not an error.
        let keyed_miss = status == KEY_ENOENT && matches!(opcode, 0x0c | 0x0d | 0x23 | 0x24);
        if status != 0 && !keyed_miss {
            let message = body.get(extras_len + key_len..).unwrap_or_default();
            push_line(text, &[format!(">{fd} Writing an error: ").as_bytes(), message]);
        }
        // memcached logs a found value's header before it fills in the cas.
        let mut header: [u8; HEADER] = header.try_into().unwrap_or([0; HEADER]);
        if status == 0 && matches!(opcode, 0x00 | 0x09 | 0x0c | 0x0d | 0x1c..=0x1e | 0x23 | 0x24) {
            header[16..].fill(0);
        }
        dump(text, format!(">{fd}"), "  ", "Writing bin response:", &header);
    }
}

/// A title line and the header's bytes, four a line, as " 0x%02x".
fn dump(text: &mut Vec<u8>, prefix: String, indent: &str, title: &str, header: &[u8]) {
    push_line(text, &[prefix.as_bytes(), b" ", title.as_bytes()]);
    for row in header.chunks(4) {
        let bytes: String = row.iter().map(|b| format!(" 0x{b:02x}")).collect();
        push_line(text, &[prefix.as_bytes(), indent.as_bytes(), bytes.as_bytes()]);
    }
}

fn push_line(text: &mut Vec<u8>, parts: &[&[u8]]) {
    for part in parts {
        text.extend_from_slice(part);
    }
    text.push(b'\n');
}

/// Writes the lines in one go; a failed write to stderr has nowhere to be reported.
fn emit(text: &[u8]) {
    if !text.is_empty() {
        let _ = std::io::stderr().lock().write_all(text);
    }
}

/// The first line of `bytes`, without its line end, and up to a NUL byte: memcached
/// prints the line as a C string.
fn first_line(bytes: &[u8]) -> &[u8] {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.split(|&b| b == 0).next().unwrap_or_default()
}

fn is_error(answer: &[u8]) -> bool {
    answer.starts_with(b"ERROR") || answer.starts_with(b"CLIENT_ERROR") || answer.starts_with(b"SERVER_ERROR")
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::{command_line, dump, Answer};

    #[test]
    fn a_header_is_dumped_four_bytes_a_line() {
        let mut text = Vec::new();
        let header: Vec<u8> = (0..24).collect();
        dump(&mut text, "<7".to_string(), "   ", "Read binary protocol data:", &header);
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[0], "<7 Read binary protocol data:");
        assert_eq!(lines[1], "<7    0x00 0x01 0x02 0x03");
        assert_eq!(lines[6], "<7    0x14 0x15 0x16 0x17");
    }

    #[test]
    fn decr_is_logged_as_incr_with_signed_amount_and_expiry() {
        let mut text = Vec::new();
        let mut extras = vec![0xff; 8];
        extras.extend_from_slice(&5u64.to_be_bytes());
        extras.extend_from_slice(&[0xff; 4]);
        command_line(&mut text, 9, 0x06, b"n", &extras, 0);
        assert_eq!(text, b"incr n -1, 5, -1\n");
    }

    #[test]
    fn an_answer_in_parts_keeps_its_first_line_and_keys_only() {
        let mut answer = Answer::default();
        answer.add(b"");
        answer.add(b"VALUE a 0 5\r\nhello\r\n");
        answer.found(b"a");
        answer.add(b"VALUE b 0 3\r\nbye\r\nEND\r\n");
        answer.found(b"b");
        assert_eq!(answer.first.as_deref(), Some(&b"VALUE a 0 5"[..]));
        assert_eq!(answer.keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(Answer::line("").first, None, "nothing written, nothing logged");
        assert_eq!(Answer::line("ERROR").first.as_deref(), Some(&b"ERROR"[..]));
    }
}
