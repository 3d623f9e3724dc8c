//! repcached 2.x's replication link format: bytes to messages (strictly) and messages to
//! bytes, exactly as repcached 2.3.1 writes and reads them. Knows nothing of sockets or of
//! the cache; never panics on garbage: what it does not recognise is `Invalid`, with a reason
//! to log.
//!
//! The link carries memcached text lines, and nothing ever answers them:
//!
//! ```text
//! rep <key> <flags> <exptime> <bytes> <cas>\r\n<data>\r\n    an item, whole
//! delete <key>\r\n                                          the key is gone
//! flush_all \r\n                                            flush now (note the space)
//! flush_all <unix time>\r\n                                 flush at that time
//! marugoto_end\r\n                                          the full copy is complete
//! ```
//!
//! `exptime` is an absolute unix time or 0 (never relative). repcached prints flags as a
//! signed 32-bit number (`-1` for 4294967295) but reads them unsigned; we read both and
//! write unsigned, which repcached reads back correctly.

/// The longest command line accepted: a 250-byte key and five numbers fit well within it.
const MAX_LINE: usize = 512;

/// One message of the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Rep {
        key: Vec<u8>,
        flags: u32,
        exptime: u32,
        cas: u64,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// `None`: flush now; `Some(t)`: flush at unix time `t`.
    FlushAll {
        at: Option<u32>,
    },
    CopyEnd,
}

/// What `parse` made of the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A message, and the bytes it took.
    Complete(Message, usize),
    /// The buffer holds the start of a message: read more.
    Incomplete,
    /// Not repcached's format, or out of bounds: why, in words.
    Invalid(String),
}

/// Parses the message at the start of `buf`; a value longer than `max_value` is invalid.
pub fn parse(buf: &[u8], max_value: usize) -> Parsed {
    let head = &buf[..buf.len().min(MAX_LINE + 2)];
    let Some(end) = head.windows(2).position(|w| w == b"\r\n") else {
        return if head.len() > MAX_LINE || head.contains(&b'\n') {
            Parsed::Invalid(format!("no line end in {}", shown(head)))
        } else {
            Parsed::Incomplete
        };
    };
    let line = &buf[..end];
    let used = end + 2;
    match command(line, max_value) {
        Err(why) => Parsed::Invalid(format!("{why}: {}", shown(line))),
        Ok(Command::Done(message)) => Parsed::Complete(message, used),
        Ok(Command::Data { key, flags, exptime, cas, len }) => {
            let total = used + len + 2;
            if buf.len() < total {
                return Parsed::Incomplete;
            }
            if &buf[used + len..total] != b"\r\n" {
                return Parsed::Invalid(format!("data of {} not ended by CR LF", shown(&key)));
            }
            let value = buf[used..used + len].to_vec();
            Parsed::Complete(Message::Rep { key, flags, exptime, cas, value }, total)
        }
    }
}

/// A command line read: a whole message, or a `rep` whose data follows.
enum Command {
    Done(Message),
    Data { key: Vec<u8>, flags: u32, exptime: u32, cas: u64, len: usize },
}

fn command(line: &[u8], max_value: usize) -> Result<Command, &'static str> {
    if line == b"marugoto_end" {
        return Ok(Command::Done(Message::CopyEnd));
    }
    if line == b"flush_all " {
        return Ok(Command::Done(Message::FlushAll { at: None }));
    }
    let words: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    match words.as_slice() {
        [b"rep", key, flags, exptime, len, cas] => {
            let key = key_of(key)?;
            let flags = flags_of(flags).ok_or("bad flags")?;
            let exptime = number(exptime).and_then(|n| u32::try_from(n).ok()).ok_or("bad exptime")?;
            let len = number(len).and_then(|n| usize::try_from(n).ok()).filter(|&n| n <= max_value).ok_or("bad length")?;
            let cas = number(cas).ok_or("bad cas")?;
            Ok(Command::Data { key, flags, exptime, cas, len })
        }
        [b"delete", key] => Ok(Command::Done(Message::Delete { key: key_of(key)? })),
        [b"flush_all", at] => {
            let at = number(at).and_then(|n| u32::try_from(n).ok()).filter(|&t| t > 0).ok_or("bad flush time")?;
            Ok(Command::Done(Message::FlushAll { at: Some(at) }))
        }
        _ => Err("unknown command"),
    }
}

fn key_of(word: &[u8]) -> Result<Vec<u8>, &'static str> {
    let printable = word.iter().all(|&b| b > b' ' && b != 0x7f);
    if word.is_empty() || word.len() > crate::storage::KEY_MAX_LENGTH || !printable {
        return Err("bad key");
    }
    Ok(word.to_vec())
}

/// Decimal digits only (no sign, no spaces), within u64.
fn number(word: &[u8]) -> Option<u64> {
    if word.is_empty() || word.len() > 20 || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// Flags as repcached prints them (signed 32-bit) or as clients give them (unsigned).
fn flags_of(word: &[u8]) -> Option<u32> {
    match word.strip_prefix(b"-") {
        Some(digits) => {
            let magnitude = number(digits).filter(|&n| n > 0 && n <= 1 << 31)?;
            Some((magnitude as u32).wrapping_neg())
        }
        None => number(word).and_then(|n| u32::try_from(n).ok()),
    }
}

/// A line for a log: printable ASCII as is, other bytes escaped, cut after 80 bytes.
fn shown(bytes: &[u8]) -> String {
    let mut text: String = bytes.iter().take(80).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
    if bytes.len() > 80 {
        text.push_str("...");
    }
    format!("\"{text}\"")
}

/// Appends `rep`: flags unsigned, `exptime` absolute (0: never), `cas` as given.
pub fn put_rep(out: &mut Vec<u8>, key: &[u8], flags: u32, exptime: u32, cas: u64, value: &[u8]) {
    out.extend_from_slice(b"rep ");
    out.extend_from_slice(key);
    out.extend_from_slice(format!(" {flags} {exptime} {} {cas}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub fn put_delete(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(b"delete ");
    out.extend_from_slice(key);
    out.extend_from_slice(b"\r\n");
}

/// Appends `flush_all`: now (`None`), or at unix time `at`.
pub fn put_flush(out: &mut Vec<u8>, at: Option<u32>) {
    match at {
        None => out.extend_from_slice(b"flush_all \r\n"),
        Some(at) => out.extend_from_slice(format!("flush_all {at}\r\n").as_bytes()),
    }
}

pub fn put_copy_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"marugoto_end\r\n");
}
