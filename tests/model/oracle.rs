//! The model: what memcached 1.6.18 answers to each op of the stream, from a map of the live
//! items, written from its documented and observed behaviour, not from our server's code.
//! Time plays no part: the stream's expiries are never, past, or far ahead (`ops::Ttl`), and
//! a delayed flush_all does nothing within a run. Cas values are a counter: answers are
//! compared by the order their cas values first appear in, not by their numbers.

use std::collections::HashMap;

use super::ops::{self, opcode, CasRef, Extras, MFlag, Op, Ttl};
use super::wire::Side;

/// A live item.
#[derive(Clone)]
struct Item {
    value: Vec<u8>,
    flags: u32,
    cas: u64,
    /// The seconds left that meta's t reports (-1: never).
    ttl: i64,
    /// Marked stale by md I or a stale ms.
    stale: bool,
    /// A client has been told it wins the right to recache it (W).
    win_sent: bool,
}

#[derive(Default)]
pub struct Model {
    items: HashMap<usize, Item>,
    last_cas: u64,
    /// The answer to the op last sent.
    pending: Vec<u8>,
}

/// What an incr or decr did.
enum Delta {
    Value(u64),
    NotFound,
    NonNumeric,
    Exists,
}

/// Whether key `k` and a value of `len` bytes with `flags` fit `-I`, counted as memcached
/// counts (nonzero flags take 4 bytes).
fn fits(k: usize, len: usize, flags: u32) -> bool {
    len + if flags == 0 { 0 } else { 4 } <= ops::max_value(ops::key(k).len())
}

/// A counter as memcached's strtoull reads it: white space, an optional sign, digits that do
/// not overflow, then the end, white space or a NUL (the end of a C string); a number of 2^63
/// or more with a minus sign before the first NUL is refused (memcached's strchr; without a
/// NUL it reads on past the value, which the differential test avoids).
pub fn counter(value: &[u8]) -> Option<u64> {
    let space = |b: &u8| b" \t\n\r\x0b\x0c".contains(b);
    let text = &value[value.iter().take_while(|b| space(b)).count()..];
    let (minus, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || digits.get(len).is_some_and(|b| !space(b) && *b != 0) {
        return None;
    }
    let n: u64 = std::str::from_utf8(&digits[..len]).ok()?.parse().ok()?;
    let n = if minus { n.wrapping_neg() } else { n };
    if n > i64::MAX as u64 && value.split(|&b| b == 0).next().unwrap_or_default().contains(&b'-') {
        return None;
    }
    Some(n)
}

/// A binary response packet.
fn packet(op: u8, status: u16, cas: u64, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x81, op];
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(&[extras.len() as u8, 0]);
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&cas.to_be_bytes());
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

const NOT_FOUND: u16 = 0x01;
const EXISTS: u16 = 0x02;
const TOO_LARGE: u16 = 0x03;
const NOT_STORED: u16 = 0x05;
const NON_NUMERIC: u16 = 0x06;

fn error(op: u8, status: u16) -> Vec<u8> {
    let message: &[u8] = match status {
        NOT_FOUND => b"Not found",
        EXISTS => b"Data exists for key.",
        TOO_LARGE => b"Too large.",
        NOT_STORED => b"Not stored.",
        _ => b"Non-numeric server-side value for incr or decr",
    };
    packet(op, status, 0, &[], &[], message)
}

const NON_NUMERIC_LINE: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
const TOO_LARGE_LINE: &str = "SERVER_ERROR object too large for cache\r\n";

impl Side for Model {
    fn send(&mut self, op: &Op, cas: &dyn Fn(CasRef, usize) -> u64) {
        self.pending = self.run(op, cas);
    }

    fn answer(&mut self, _op: &Op) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

impl Model {
    fn run(&mut self, op: &Op, cas: &dyn Fn(CasRef, usize) -> u64) -> Vec<u8> {
        match op {
            Op::Store { cmd, key, flags, ttl, value, cas: c, noreply } => {
                let answer = self.text_store(cmd, *key, *flags, *ttl, &value.0, cas(*c, *key));
                if *noreply {
                    Vec::new()
                } else {
                    answer.into_bytes()
                }
            }
            Op::Get { cas: with_cas, ttl, keys } => self.get(*with_cas, *ttl, keys),
            Op::Delta { incr, key, amount, noreply } => {
                let answer = match self.delta(*key, *incr, *amount, 0) {
                    Delta::Value(n) => format!("{n}\r\n"),
                    Delta::NotFound => "NOT_FOUND\r\n".into(),
                    Delta::NonNumeric | Delta::Exists => NON_NUMERIC_LINE.into(),
                };
                if *noreply {
                    Vec::new()
                } else {
                    answer.into_bytes()
                }
            }
            Op::Touch { key, ttl, noreply } => {
                let answer = if self.touch(*key, *ttl) { "TOUCHED\r\n" } else { "NOT_FOUND\r\n" };
                if *noreply {
                    Vec::new()
                } else {
                    answer.into()
                }
            }
            Op::Delete { key, noreply } => {
                let answer = if self.items.remove(key).is_some() { "DELETED\r\n" } else { "NOT_FOUND\r\n" };
                if *noreply {
                    Vec::new()
                } else {
                    answer.into()
                }
            }
            Op::FlushAll { delay, noreply } => {
                self.flush(*delay);
                if *noreply {
                    Vec::new()
                } else {
                    b"OK\r\n".to_vec()
                }
            }
            Op::Meta { cmd: b'n', .. } => b"MN\r\n".to_vec(),
            Op::Meta { cmd, key, flags, value } => {
                // The C flag's value, resolved for this side.
                let compare = flags.iter().find_map(|f| match f {
                    MFlag::C(c) => Some(cas(*c, *key)),
                    _ => None,
                });
                match cmd {
                    b'g' => self.meta_get(*key, flags),
                    b's' => self.meta_set(*key, flags, compare, &value.0),
                    b'd' => self.meta_delete(*key, flags, compare),
                    _ => self.meta_arith(*key, flags, compare),
                }
            }
            Op::Binary { opcode, key, cas: c, extras, value } => self.binary(*opcode, *key, cas(*c, *key), *extras, &value.0),
        }
    }
}

impl Model {
    fn next_cas(&mut self) -> u64 {
        self.last_cas += 1;
        self.last_cas
    }

    /// Puts a new item under `k` (an already expired one only removes the old).
    fn put(&mut self, k: usize, value: Vec<u8>, flags: u32, ttl: Ttl) -> u64 {
        let cas = self.next_cas();
        if ttl.dead() {
            self.items.remove(&k);
        } else {
            self.items.insert(k, Item { value, flags, cas, ttl: ttl.seconds(), stale: false, win_sent: false });
        }
        cas
    }

    /// Sets an item's TTL, which may remove it.
    fn retime(&mut self, k: usize, ttl: Ttl) {
        if ttl.dead() {
            self.items.remove(&k);
        } else if let Some(item) = self.items.get_mut(&k) {
            item.ttl = ttl.seconds();
        }
    }

    fn touch(&mut self, k: usize, ttl: Ttl) -> bool {
        let hit = self.items.contains_key(&k);
        self.retime(k, ttl);
        hit
    }

    fn flush(&mut self, delay: Option<Ttl>) {
        // A delay far ahead or a time long past flushes nothing within a run.
        if matches!(delay, None | Some(Ttl::Never)) {
            self.items.clear();
        }
    }

    /// Appends `value` to the item (or puts it before), keeping its flags and TTL; false when
    /// the joined item would not fit.
    fn join(&mut self, k: usize, value: &[u8], append: bool) -> Option<u64> {
        let cas = self.last_cas + 1;
        let item = self.items.get_mut(&k)?;
        if !fits(k, item.value.len() + value.len(), item.flags) {
            return None;
        }
        if append {
            item.value.extend_from_slice(value);
        } else {
            item.value.splice(0..0, value.iter().copied());
        }
        item.cas = cas;
        item.stale = false;
        item.win_sent = false;
        self.last_cas = cas;
        Some(cas)
    }

    fn text_store(&mut self, cmd: &str, k: usize, flags: u32, ttl: Ttl, value: &[u8], cas: u64) -> String {
        if !fits(k, value.len(), flags) {
            // A set that cannot be stored drops the old item.
            if cmd == "set" {
                self.items.remove(&k);
            }
            return TOO_LARGE_LINE.into();
        }
        let live = self.items.get(&k).map(|item| item.cas);
        let stored = match (cmd, live) {
            ("add", Some(_)) | ("replace" | "append" | "prepend", None) => false,
            ("cas", None) => return "NOT_FOUND\r\n".into(),
            ("cas", Some(current)) if current != cas => return "EXISTS\r\n".into(),
            ("append" | "prepend", Some(_)) => self.join(k, value, cmd == "append").is_some(),
            _ => {
                self.put(k, value.to_vec(), flags, ttl);
                true
            }
        };
        if stored { "STORED\r\n" } else { "NOT_STORED\r\n" }.into()
    }

    fn get(&mut self, with_cas: bool, ttl: Option<Ttl>, keys: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for &k in keys {
            let Some(item) = self.items.get(&k) else {
                continue;
            };
            out.extend_from_slice(b"VALUE ");
            out.extend_from_slice(&ops::key(k));
            out.extend_from_slice(format!(" {} {}", item.flags, item.value.len()).as_bytes());
            if with_cas {
                out.extend_from_slice(format!(" {}", item.cas).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&item.value);
            out.extend_from_slice(b"\r\n");
            if let Some(ttl) = ttl {
                self.retime(k, ttl);
            }
        }
        out.extend_from_slice(b"END\r\n");
        out
    }

    /// incr/decr, checked against `cas` unless 0: an empty value is refused before the cas
    /// is compared. A number no longer than the old value is written in its place, padded
    /// with spaces; a longer one makes a new item.
    fn delta(&mut self, k: usize, incr: bool, amount: u64, cas: u64) -> Delta {
        let next = self.last_cas + 1;
        let Some(item) = self.items.get_mut(&k) else {
            return Delta::NotFound;
        };
        if item.value.is_empty() {
            return Delta::NonNumeric;
        }
        if cas != 0 && cas != item.cas {
            return Delta::Exists;
        }
        let Some(n) = counter(&item.value) else {
            return Delta::NonNumeric;
        };
        let n = if incr { n.wrapping_add(amount) } else { n.saturating_sub(amount) };
        let text = n.to_string().into_bytes();
        if text.len() <= item.value.len() {
            let len = item.value.len();
            item.value = text;
            item.value.resize(len, b' ');
        } else {
            item.value = text;
            item.stale = false;
            item.win_sent = false;
        }
        item.cas = next;
        self.last_cas = next;
        Delta::Value(n)
    }
}

/// Meta commands: flags are applied and answered in the order given.
impl Model {
    /// The TTL through the flags (up to the flag `stop`, when given: what t reports, or
    /// what R compares): T, and N on an item the command created, in their order, from `ttl`.
    fn ttl_through(flags: &[MFlag], mut ttl: i64, created: bool, stop: Option<u8>) -> i64 {
        for flag in flags {
            match *flag {
                MFlag::T(t) => ttl = t.seconds(),
                MFlag::N(n) if created => ttl = n.seconds(),
                flag if Some(ops::flag_letter(flag)) == stop => break,
                _ => {}
            }
        }
        ttl
    }

    fn has(flags: &[MFlag], letter: u8) -> bool {
        flags.iter().any(|f| ops::flag_letter(*f) == letter)
    }

    /// An answer line: `word`, then the return flags among `echo` that the command asked for,
    /// in its order (f and s from `item`, t is `ttl`, c is `cas`).
    fn line(word: &str, k: usize, flags: &[MFlag], echo: &[u8], cas: u64, item: Option<&Item>, ttl: i64) -> Vec<u8> {
        let mut out = word.to_string();
        for flag in flags {
            let letter = ops::flag_letter(*flag);
            if !echo.contains(&letter) {
                continue;
            }
            out.push(' ');
            out.push(letter as char);
            match *flag {
                MFlag::Opaque(n) => out.push_str(&format!("{n:x}")),
                MFlag::Bare(b'k') => out.push_str(&String::from_utf8(ops::key(k)).unwrap()),
                MFlag::Bare(b'c') => out.push_str(&cas.to_string()),
                MFlag::Bare(b'f') => out.push_str(&item.map_or(0, |i| i.flags).to_string()),
                MFlag::Bare(b's') => out.push_str(&item.map_or(0, |i| i.value.len()).to_string()),
                MFlag::Bare(b't') => out.push_str(&ttl.to_string()),
                _ => {}
            }
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    fn meta_get(&mut self, k: usize, flags: &[MFlag]) -> Vec<u8> {
        let created = !self.items.contains_key(&k);
        if created {
            if !flags.iter().any(|f| matches!(f, MFlag::N(_))) {
                if Self::has(flags, b'q') {
                    return Vec::new();
                }
                return Self::line("EN", k, flags, b"kO", 0, None, -1);
            }
            let cas = self.next_cas();
            let ttl = Self::ttl_through(flags, -1, true, None);
            self.items.insert(k, Item { value: Vec::new(), flags: 0, cas, ttl, stale: false, win_sent: false });
        }
        let item = self.items.get_mut(&k).unwrap();
        let before = if created { -1 } else { item.ttl };
        let reported = Self::ttl_through(flags, before, created, Some(b't'));
        // R: an item whose TTL is below the threshold, where R stands, is due for a recache.
        let at_recache = Self::ttl_through(flags, before, created, Some(b'R'));
        let recache = flags.iter().any(|f| matches!(*f, MFlag::R(below) if at_recache != -1 && at_recache < i64::from(below)));
        if !created {
            item.ttl = Self::ttl_through(flags, item.ttl, false, None);
        }
        // The right to recache: a new, stale or due item goes to the first to ask, once.
        let (won, lost) = if created || item.stale || recache {
            let won = !item.win_sent;
            item.win_sent = true;
            (won, !won)
        } else {
            (false, item.win_sent)
        };
        let item = self.items[&k].clone();
        let with_value = Self::has(flags, b'v');
        let word = if with_value { format!("VA {}", item.value.len()) } else { "HD".to_string() };
        let mut out = Self::line(&word, k, flags, b"cfkOst", item.cas, Some(&item), reported);
        out.truncate(out.len() - 2);
        out.extend_from_slice(match (won, lost, item.stale) {
            (true, _, true) => b" X W".as_slice(),
            (true, _, false) => b" W",
            (false, true, true) => b" Z X",
            (false, true, false) => b" Z",
            (false, false, true) => b" X",
            (false, false, false) => b"",
        });
        out.extend_from_slice(b"\r\n");
        if with_value {
            out.extend_from_slice(&item.value);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn meta_set(&mut self, k: usize, flags: &[MFlag], compare: Option<u64>, value: &[u8]) -> Vec<u8> {
        let mode = flags.iter().find_map(|f| if let MFlag::M(m) = f { Some(*m) } else { None });
        if mode.is_some_and(|m| !b"EAPRS".contains(&m)) {
            return b"CLIENT_ERROR invalid mode for ms M token\r\n".to_vec();
        }
        let client_flags = flags.iter().find_map(|f| if let MFlag::F(n) = f { Some(*n) } else { None }).unwrap_or(0);
        if !fits(k, value.len(), client_flags) {
            // Always answered, and the old item is gone.
            self.items.remove(&k);
            return TOO_LARGE_LINE.as_bytes().to_vec();
        }
        let ttl = flags.iter().find_map(|f| if let MFlag::T(t) = f { Some(*t) } else { None }).unwrap_or(Ttl::Never);
        let live = self.items.get(&k).cloned();
        let invalidate = Self::has(flags, b'I');
        // C makes a set or replace a cas; add ignores it; append and prepend check it, but
        // C0 is no cas.
        let (word, cas) = match (mode, compare, &live) {
            (Some(b'E'), _, Some(_)) => ("NS", 0),
            (Some(b'E'), _, None) => ("HD", self.put(k, value.to_vec(), client_flags, ttl)),
            (Some(b'A' | b'P'), _, None) => ("NS", 0),
            (Some(b'A' | b'P'), Some(c), Some(item)) if c != 0 && c != item.cas => ("EX", 0),
            (Some(m @ (b'A' | b'P')), _, Some(_)) => match self.join(k, value, m == b'A') {
                Some(cas) => ("HD", cas),
                None => ("NS", 0),
            },
            (Some(b'R'), None, None) => ("NS", 0),
            (_, None, _) => ("HD", self.put(k, value.to_vec(), client_flags, ttl)),
            (_, Some(_), None) => ("NF", 0),
            (_, Some(c), Some(item)) if c == item.cas => ("HD", self.put(k, value.to_vec(), client_flags, ttl)),
            (_, Some(c), Some(item)) if invalidate && c != 0 && c < item.cas => {
                // An older cas with I stores a stale value, keeping the TTL and the win.
                let cas = self.next_cas();
                let stale = Item { value: value.to_vec(), flags: client_flags, cas, ttl: item.ttl, stale: true, win_sent: item.win_sent };
                self.items.insert(k, stale);
                ("HD", cas)
            }
            (_, Some(_), Some(_)) => ("EX", 0),
        };
        if word == "HD" && Self::has(flags, b'q') {
            return Vec::new();
        }
        Self::line(word, k, flags, b"ckO", cas, None, -1)
    }

    fn meta_delete(&mut self, k: usize, flags: &[MFlag], compare: Option<u64>) -> Vec<u8> {
        let word = match self.items.get_mut(&k) {
            None => "NF",
            Some(item) if compare.is_some_and(|c| c != item.cas) => "EX",
            Some(item) if Self::has(flags, b'I') => {
                // Marked stale, with a new cas and TTL, its win open again.
                item.stale = true;
                item.win_sent = false;
                self.last_cas += 1;
                item.cas = self.last_cas;
                if let Some(ttl) = flags.iter().find_map(|f| if let MFlag::T(t) = f { Some(*t) } else { None }) {
                    self.retime(k, ttl);
                }
                "HD"
            }
            Some(_) => {
                self.items.remove(&k);
                "HD"
            }
        };
        if word == "HD" && Self::has(flags, b'q') {
            return Vec::new();
        }
        Self::line(word, k, flags, b"kO", 0, None, -1)
    }

    fn meta_arith(&mut self, k: usize, flags: &[MFlag], compare: Option<u64>) -> Vec<u8> {
        let mode = flags.iter().find_map(|f| if let MFlag::M(m) = f { Some(*m) } else { None });
        if mode.is_some_and(|m| !b"I+D-".contains(&m)) {
            return b"CLIENT_ERROR invalid mode for ma M token\r\n".to_vec();
        }
        let incr = !matches!(mode, Some(b'D' | b'-'));
        let amount = flags.iter().find_map(|f| if let MFlag::D(n) = f { Some(*n) } else { None }).unwrap_or(1);
        // Before the delta: the TTL t reports when it comes before T.
        let old_ttl = self.items.get(&k).map(|item| item.ttl);
        let (value, created) = match self.delta(k, incr, amount, compare.unwrap_or(0)) {
            Delta::Value(n) => (n, false),
            Delta::NotFound if flags.iter().any(|f| matches!(f, MFlag::N(_))) => {
                let initial = flags.iter().find_map(|f| if let MFlag::J(n) = f { Some(*n) } else { None }).unwrap_or(0);
                let ttl = Self::ttl_through(flags, -1, true, None);
                let cas = self.next_cas();
                self.items.insert(k, Item { value: initial.to_string().into_bytes(), flags: 0, cas, ttl, stale: false, win_sent: false });
                (initial, true)
            }
            Delta::NotFound => return Self::line("NF", k, flags, b"kO", 0, None, -1),
            Delta::Exists => return Self::line("EX", k, flags, b"kO", 0, None, -1),
            Delta::NonNumeric => return NON_NUMERIC_LINE.as_bytes().to_vec(),
        };
        let reported = Self::ttl_through(flags, old_ttl.unwrap_or(-1), created, Some(b't'));
        if !created {
            let item = self.items.get_mut(&k).unwrap();
            item.ttl = Self::ttl_through(flags, item.ttl, false, None);
        }
        // q hides a change's answer, not a creation's.
        if Self::has(flags, b'q') && !created {
            return Vec::new();
        }
        let cas = self.items[&k].cas;
        if Self::has(flags, b'v') {
            let mut out = Self::line(&format!("VA {}", value.to_string().len()), k, flags, b"tckO", cas, None, reported);
            out.extend_from_slice(format!("{value}\r\n").as_bytes());
            out
        } else {
            Self::line("HD", k, flags, b"tckO", cas, None, reported)
        }
    }
}

/// Binary commands.
impl Model {
    fn binary(&mut self, op: u8, k: usize, cas: u64, extras: Extras, value: &[u8]) -> Vec<u8> {
        use opcode::*;
        let quiet =
            matches!(op, GETQ | GETKQ | SETQ | ADDQ | REPLACEQ | DELETEQ | INCRQ | DECRQ | FLUSHQ | APPENDQ | PREPENDQ | GATQ | GATKQ);
        let key = ops::key(k);
        match op {
            GET | GETQ | GETK | GETKQ | TOUCH | GAT | GATQ | GATK | GATKQ => {
                let with_key = matches!(op, GETK | GETKQ | GATK | GATKQ);
                let Some(item) = self.items.get(&k).cloned() else {
                    return match (quiet, with_key) {
                        (true, _) => Vec::new(),
                        (false, true) => packet(op, NOT_FOUND, 0, &[], &key, &[]),
                        (false, false) => error(op, NOT_FOUND),
                    };
                };
                if let Extras::Touch(ttl) = extras {
                    self.retime(k, ttl);
                }
                let shown: &[u8] = if op == TOUCH { &[] } else { &item.value };
                packet(op, 0, item.cas, &item.flags.to_be_bytes(), if with_key { &key } else { &[] }, shown)
            }
            SET | SETQ | ADD | ADDQ | REPLACE | REPLACEQ | APPEND | APPENDQ | PREPEND | PREPENDQ => {
                let (flags, ttl) = match extras {
                    Extras::Store { flags, ttl } => (flags, ttl),
                    _ => (0, Ttl::Never),
                };
                let base = if quiet { op - 0x10 } else { op };
                let base = match base {
                    0x09 => APPEND,
                    0x0a => PREPEND,
                    b => b,
                };
                if !fits(k, value.len(), flags) {
                    if base == SET {
                        self.items.remove(&k);
                    }
                    return error(op, TOO_LARGE);
                }
                let live = self.items.get(&k).map(|item| item.cas);
                let outcome = match (base, live) {
                    (APPEND | PREPEND, None) => Err(NOT_STORED),
                    (APPEND | PREPEND, Some(current)) if cas != 0 && cas != current => Err(EXISTS),
                    (APPEND | PREPEND, Some(_)) => self.join(k, value, base == APPEND).ok_or(NOT_STORED),
                    // A cas makes set, add and replace a cas.
                    (_, None) if cas != 0 => Err(NOT_FOUND),
                    (_, Some(current)) if cas != 0 && cas != current => Err(EXISTS),
                    (ADD, Some(_)) if cas == 0 => Err(EXISTS),
                    (REPLACE, None) => Err(NOT_FOUND),
                    _ => Ok(self.put(k, value.to_vec(), flags, ttl)),
                };
                match outcome {
                    Ok(_) if quiet => Vec::new(),
                    Ok(cas) => packet(op, 0, cas, &[], &[], &[]),
                    Err(status) => error(op, status),
                }
            }
            DELETE | DELETEQ => {
                let outcome = match self.items.get(&k) {
                    None => Err(NOT_FOUND),
                    Some(item) if cas != 0 && cas != item.cas => Err(EXISTS),
                    Some(_) => {
                        self.items.remove(&k);
                        Ok(())
                    }
                };
                match outcome {
                    Ok(()) if quiet => Vec::new(),
                    Ok(()) => packet(op, 0, 0, &[], &[], &[]),
                    Err(status) => error(op, status),
                }
            }
            INCR | INCRQ | DECR | DECRQ => {
                let Extras::Delta { amount, initial, ttl } = extras else {
                    unreachable!("incr without its extras");
                };
                let outcome = match (self.delta(k, matches!(op, INCR | INCRQ), amount, cas), ttl) {
                    (Delta::Value(n), _) => Ok((n, self.items[&k].cas)),
                    (Delta::NotFound, Some(ttl)) => Ok((initial, self.put(k, initial.to_string().into_bytes(), 0, ttl))),
                    (Delta::NotFound, None) => Err(NOT_FOUND),
                    (Delta::Exists, _) => Err(EXISTS),
                    (Delta::NonNumeric, _) => Err(NON_NUMERIC),
                };
                match outcome {
                    Ok(_) if quiet => Vec::new(),
                    Ok((n, cas)) => packet(op, 0, cas, &[], &[], &n.to_be_bytes()),
                    Err(status) => error(op, status),
                }
            }
            FLUSH | FLUSHQ => {
                let Extras::Flush(delay) = extras else {
                    unreachable!("flush without its extras");
                };
                self.flush(delay);
                if quiet {
                    Vec::new()
                } else {
                    packet(op, 0, 0, &[], &[], &[])
                }
            }
            _ => unreachable!("opcode {op:#x} is not in the stream"),
        }
    }
}
