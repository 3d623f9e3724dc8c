//! memcached's meta commands (mg, ms, md, ma, mn, me): parses a meta command line (and the
//! data block of `ms`) into a `MetaRequest`, and carries it out against the cache's facade,
//! writing memcached 1.6.18's answer words (HD, VA, EN, NF, NS, EX, MN, ME) and return flags in
//! the order the request named them.
//!
//! Stale/win: md I marks an item stale, ms I with an older cas stores a stale value, mg N
//! vivifies a miss, mg R asks for a recache below a TTL; the first client to see such an item
//! gets W, later ones Z, and a stale one X. The marks live in the item (a new store clears
//! them).
//!
//! Base64 keys (b): the key is decoded for the cache, and an item stored, vivified or created
//! by a command with b remembers it, so that mg's k and me print its key in base64 whatever
//! way it was asked for. ms, md and ma echo the key as the request gave it, as memcached does.
//! Where we differ from memcached on purpose: memcached marks only ms's items (mg N and ma N
//! with b create an unmarked item, and append/prepend drop the mark), and it prints a key that
//! holds a space or a newline raw, splitting the answer; we mark every item a b command
//! writes, and print such a key in base64.
//!
//! The cas-checked forms (ms C, md C, ma C) are atomic: the cache compares under the item's
//! lock.

use std::borrow::Cow;

use super::ops;
use super::tokens::Tokens;
use super::{Context, Limits, Parsed, Request};
use crate::decimal;
use crate::stats::{Counter, LocalCounts};
use crate::storage::clock;
use crate::storage::{Cache, DeleteOutcome, DeltaOp, DeltaOutcome, ItemRef, Lookup, StoreMode, StoreOptions, StoreOutcome};

const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
const BAD_TOKEN: &str = "CLIENT_ERROR bad token in command line format";
const BAD_FLAG: &str = "CLIENT_ERROR invalid flag";
const BAD_KEY: &str = "CLIENT_ERROR error decoding key";
const BAD_ANY: &str = "CLIENT_ERROR invalid or duplicate flag";
/// The flags memcached knows, on every meta command.
const KNOWN_FLAGS: &[u8] = b"bcfhklqstuvCDFIJLMNOPRT";
/// The longest O token, letter included.
const MAX_OPAQUE: usize = 32;

/// Which meta command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaCmd {
    Get,
    Set,
    Delete,
    Arith,
    /// me: one line about an item (memcached's meta debug).
    Debug,
}

/// One meta command: its key (decoded when `base64`, else borrowed from the line), its flags,
/// and the data block of `ms`. Nothing is copied or collected for a command without a base64
/// key.
#[derive(Debug, PartialEq, Eq)]
pub struct MetaRequest<'a> {
    pub cmd: MetaCmd,
    pub key: Cow<'a, [u8]>,
    pub base64: bool,
    pub flags: Flags<'a>,
    pub data: &'a [u8],
}

/// A meta command's flag tokens as the line wrote them, and the set of their letters (each
/// letter appears once: the parser refuses a duplicate), so that asking for a flag the
/// command does not carry costs no scan of the line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flags<'a> {
    line: &'a [u8],
    letters: u64,
}

/// A known flag's bit in `Flags::letters`: every known flag is a letter from 'A' to 'z'.
fn bit(letter: u8) -> u64 {
    1 << (letter - b'A')
}

impl<'a> Flags<'a> {
    /// The flag tokens in request order (each at least its letter).
    fn iter(&self) -> Tokens<'a> {
        Tokens::new(self.line)
    }

    fn has(&self, letter: u8) -> bool {
        self.letters & bit(letter) != 0
    }

    /// The value after a flag's letter.
    fn get(&self, letter: u8) -> Option<&'a [u8]> {
        if !self.has(letter) {
            return None;
        }
        self.iter().find(|f| f[0] == letter).map(|f| &f[1..])
    }
}

impl<'a> MetaRequest<'a> {
    fn flag(&self, letter: u8) -> Option<&'a [u8]> {
        self.flags.get(letter)
    }

    fn has(&self, letter: u8) -> bool {
        self.flags.has(letter)
    }

    fn number(&self, letter: u8) -> Option<u64> {
        self.flag(letter).and_then(unsigned)
    }

    fn ttl(&self) -> Option<i64> {
        self.flag(b'T').and_then(ttl)
    }

    /// Whether flag `first` comes before flag `then` in the request.
    fn before(&self, first: u8, then: u8) -> bool {
        let at = |letter: u8| self.flags.iter().position(|f| f[0] == letter);
        matches!((at(first), at(then)), (Some(a), Some(b)) if a < b)
    }
}

/// Parses a meta command whose name `command` was the line's first token and `tokens` the
/// rest; `consumed` ends the line.
pub(super) fn parse<'a>(
    command: &[u8],
    mut tokens: Tokens<'a>,
    buf: &'a [u8],
    limits: &Limits,
    item_fits: &dyn Fn(usize, usize) -> bool,
    consumed: usize,
) -> Parsed<'a> {
    let (cmd, bad_flag): (MetaCmd, &'static str) = match command {
        b"mn" => return Parsed::Command { request: Request::MetaNoop, consumed, swallow: 0 },
        b"me" => return parse_debug(tokens, limits, consumed),
        // mg and ms word each bad flag; md and ma have one answer for all of them.
        b"mg" => (MetaCmd::Get, BAD_FLAG),
        b"ms" => (MetaCmd::Set, BAD_FLAG),
        b"md" => (MetaCmd::Delete, BAD_ANY),
        b"ma" => (MetaCmd::Arith, BAD_ANY),
        _ => return Parsed::invalid("ERROR", consumed),
    };
    let Some(raw_key) = tokens.next() else {
        return Parsed::invalid("ERROR", consumed);
    };
    // A key too long even before decoding is refused before the data length is read, so an
    // ms's data block is then parsed as a command, as in memcached.
    if raw_key.len() > limits.max_key {
        return Parsed::invalid(BAD_FORMAT, consumed);
    }
    let mut len = 0;
    if cmd == MetaCmd::Set {
        match tokens.next().and_then(unsigned).and_then(|n| usize::try_from(n).ok()) {
            Some(n) if n <= i32::MAX as usize - 2 => len = n,
            _ => return Parsed::invalid(BAD_FORMAT, consumed),
        }
    }
    // After a bad ms line, memcached still drops its data block.
    let swallow = if cmd == MetaCmd::Set { len + 2 } else { 0 };
    let refuse = |reply| Parsed::Invalid { reply, consumed, swallow, close: false };
    // mg and ms word a duplicate on its own; md and ma share one answer for all bad flags.
    let duplicate = if matches!(cmd, MetaCmd::Get | MetaCmd::Set) { "CLIENT_ERROR duplicate flag" } else { BAD_ANY };
    let mut flags = Flags { line: tokens.rest(), letters: 0 };
    for flag in flags.iter() {
        if !KNOWN_FLAGS.contains(&flag[0]) {
            return refuse(bad_flag);
        }
        if flags.has(flag[0]) {
            return refuse(duplicate);
        }
        flags.letters |= bit(flag[0]);
        if flag[0] == b'O' && flag.len() > MAX_OPAQUE {
            return refuse("CLIENT_ERROR opaque token too long");
        }
    }
    let mut request = MetaRequest { cmd, key: Cow::Borrowed(raw_key), base64: false, flags, data: &[] };
    if request.has(b'b') {
        match base64_decode(raw_key) {
            Some(key) => {
                request.key = Cow::Owned(key);
                request.base64 = true;
            }
            _ => return refuse(if cmd == MetaCmd::Get || cmd == MetaCmd::Set { BAD_KEY } else { BAD_ANY }),
        }
    }
    if request.key.len() > limits.max_key {
        return refuse(BAD_FORMAT);
    }
    if let Some(reply) = check_numbers(&request) {
        return refuse(reply);
    }
    if cmd != MetaCmd::Set {
        return Parsed::Command { request: Request::Meta(request), consumed, swallow: 0 };
    }
    if !item_fits(request.key.len(), Cache::sized_value(len, request.number(b'F').unwrap_or(0) as u32)) {
        return Parsed::Command {
            // q hides only success: the refusal is always answered.
            request: Request::StoreTooLarge { mode: StoreMode::Set, key: raw_key, noreply: false },
            consumed,
            swallow,
        };
    }
    let end = consumed + len + 2;
    let Some(block) = buf.get(consumed..end) else {
        return Parsed::Incomplete;
    };
    let (data, tail) = block.split_at(len);
    if tail != b"\r\n" {
        return Parsed::invalid("CLIENT_ERROR bad data chunk", end);
    }
    request.data = data;
    Parsed::Command { request: Request::Meta(request), consumed: end, swallow: 0 }
}

/// Parses `me <key> [b]`. memcached reads no flags here: only a token right after the key that
/// is exactly "b" (the key is base64), and nothing else on the line; every bad line, a key that
/// does not decode included, answers "bad command line format".
fn parse_debug<'a>(mut tokens: impl Iterator<Item = &'a [u8]>, limits: &Limits, consumed: usize) -> Parsed<'a> {
    let Some(raw_key) = tokens.next().filter(|key| key.len() <= limits.max_key) else {
        return Parsed::invalid(BAD_FORMAT, consumed);
    };
    let base64 = tokens.next() == Some(&b"b"[..]);
    let key = if base64 {
        match base64_decode(raw_key) {
            Some(key) => Cow::Owned(key),
            _ => return Parsed::invalid(BAD_FORMAT, consumed),
        }
    } else {
        Cow::Borrowed(raw_key)
    };
    let request = MetaRequest { cmd: MetaCmd::Debug, key, base64, flags: Flags::default(), data: &[] };
    Parsed::Command { request: Request::Meta(request), consumed, swallow: 0 }
}

/// The answer to a flag whose number or mode is bad, as memcached words it per command.
fn check_numbers(request: &MetaRequest) -> Option<&'static str> {
    let (numeric, bad): (&[u8], &'static str) = match request.cmd {
        MetaCmd::Get => (b"", BAD_TOKEN),
        MetaCmd::Set => (b"C", BAD_TOKEN),
        MetaCmd::Delete => (b"C", BAD_ANY),
        MetaCmd::Arith => (b"NJDC", BAD_ANY),
        MetaCmd::Debug => return None,
    };
    for flag in request.flags.iter() {
        if numeric.contains(&flag[0]) && unsigned(&flag[1..]).is_none() {
            return Some(bad);
        }
        if flag[0] == b'T' && ttl(&flag[1..]).is_none() {
            return Some(bad);
        }
        if request.cmd == MetaCmd::Set && flag[0] == b'F' && unsigned(&flag[1..]).is_none() {
            return Some(BAD_FORMAT);
        }
    }
    match (request.cmd, request.flag(b'M')) {
        (MetaCmd::Set, Some(m)) if m.len() != 1 => Some("CLIENT_ERROR incorrect length for M token"),
        (MetaCmd::Set, Some(m)) if !matches!(m, b"E" | b"A" | b"P" | b"R" | b"S") => Some("CLIENT_ERROR invalid mode for ms M token"),
        (MetaCmd::Arith, Some(m)) if m.len() != 1 => Some(BAD_ANY),
        (MetaCmd::Arith, Some(m)) if !matches!(m, b"I" | b"+" | b"D" | b"-") => Some("CLIENT_ERROR invalid mode for ma M token"),
        _ => None,
    }
}

/// A TTL: a signed decimal that keeps its low 32 bits as a signed number, as text exptimes do.
fn ttl(token: &[u8]) -> Option<i64> {
    let digits = token.strip_prefix(b"-").unwrap_or(token);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: i64 = std::str::from_utf8(token).ok()?.parse().ok()?;
    Some(i64::from(n as i32))
}

/// The absolute expiry of a TTL flag's value (0: never).
fn expiry(ttl_value: i64) -> u32 {
    clock::absolute_expiry(ttl_value, clock::now())
}

/// A decimal number of the whole token.
fn unsigned(token: &[u8]) -> Option<u64> {
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(token).ok()?.parse().ok()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A base64 character's six bits; '=' counts as a character worth 0, as memcached reads it.
fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        b'=' => Some(0),
        _ => None,
    }
}

/// Decodes a base64 key as memcached 1.6.18 does (checked against it): bytes outside the
/// alphabet are skipped; the characters left, '=' included, must be a non-empty multiple of
/// four; decoding ends with the first group that holds '=' (one or two of them: one or two
/// bytes fewer; more is an error), and whatever follows that group is ignored. So "Zm9v!"
/// reads as "foo" and "Zm8=Zg==" as "fo". None when malformed.
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let count = text.iter().filter(|&&c| base64_value(c).is_some()).count();
    if count == 0 || !count.is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(count / 4 * 3);
    let mut group = [0u8; 4];
    let mut filled = 0;
    let mut pad = 0;
    for &c in text {
        let Some(bits) = base64_value(c) else {
            continue;
        };
        if c == b'=' {
            pad += 1;
        }
        group[filled] = bits;
        filled += 1;
        if filled < 4 {
            continue;
        }
        filled = 0;
        let bytes = [group[0] << 2 | group[1] >> 4, group[1] << 4 | group[2] >> 2, group[2] << 6 | group[3]];
        match pad {
            0 => out.extend_from_slice(&bytes),
            1 | 2 => {
                out.extend_from_slice(&bytes[..3 - pad]);
                break;
            }
            _ => return None,
        }
    }
    Some(out)
}

pub fn base64_encode(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(3) {
        let mut bits = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            bits |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(bits >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// What an item showed a meta command, for its return flags.
#[derive(Default)]
struct Seen {
    flags: u32,
    cas: u64,
    len: usize,
    exptime: u32,
    fetched: bool,
    last_access: u32,
    stale: bool,
    win_sent: bool,
    /// The key goes out in base64 (k flag).
    key_binary: bool,
}

impl Seen {
    /// No item: the key goes out as the request gave it.
    fn asked(request: &MetaRequest) -> Seen {
        Seen { key_binary: request.base64, ..Seen::default() }
    }
}

/// Whether a key is printed in base64: it is marked so, or it holds a byte that would split
/// or garble the answer line (only a base64 or binary-protocol key can).
fn needs_base64(key: &[u8], marked: bool) -> bool {
    marked || key.iter().any(|&b| b == b' ' || b == b'\n')
}

/// Appends the key, in base64 when `needs_base64` says so.
fn push_key(key: &[u8], encode: bool, out: &mut Vec<u8>) {
    if encode {
        base64_encode(key, out);
    } else {
        out.extend_from_slice(key);
    }
}

/// Appends the return flags `request` asked for, in its order; `echo` lists the letters
/// this answer reports.
fn return_flags(request: &MetaRequest, echo: &[u8], seen: &Seen, out: &mut Vec<u8>) {
    for flag in request.flags.iter() {
        if !echo.contains(&flag[0]) {
            continue;
        }
        out.push(b' ');
        out.push(flag[0]);
        match flag[0] {
            b'O' => out.extend_from_slice(&flag[1..]),
            b'k' => {
                // memcached says a base64 key is one by a b flag right after it.
                let encode = needs_base64(&request.key, seen.key_binary);
                push_key(&request.key, encode, out);
                if encode {
                    out.extend_from_slice(b" b");
                }
            }
            b'c' => decimal::push(out, seen.cas),
            b'f' => decimal::push(out, u64::from(seen.flags)),
            b's' => decimal::push(out, seen.len as u64),
            b'h' => out.push(if seen.fetched { b'1' } else { b'0' }),
            b'l' => decimal::push(out, u64::from(clock::now().saturating_sub(seen.last_access))),
            b't' => match seen.exptime {
                0 => out.extend_from_slice(b"-1"),
                at => decimal::push(out, u64::from(at.saturating_sub(clock::now()))),
            },
            _ => {}
        }
    }
}

fn line(word: &str, request: &MetaRequest, echo: &[u8], seen: &Seen, out: &mut Vec<u8>) {
    out.extend_from_slice(word.as_bytes());
    return_flags(request, echo, seen, out);
    out.extend_from_slice(b"\r\n");
}

/// Carries out a meta command and appends its answer.
pub fn execute(request: &MetaRequest, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    let quiet = request.has(b'q');
    match request.cmd {
        MetaCmd::Get => meta_get(request, quiet, ctx, local, out),
        MetaCmd::Set => meta_set(request, quiet, ctx, local, out),
        MetaCmd::Delete => meta_delete(request, quiet, ctx, local, out),
        MetaCmd::Arith => meta_arith(request, quiet, ctx, local, out),
        MetaCmd::Debug => meta_debug(request, ctx, local, out),
    }
}

/// Reads the item, handing it to `f` under its lock; `bump` false leaves it unmarked (mg u).
fn read<R>(ctx: &Context, key: &[u8], touch: Option<u32>, bump: bool, f: impl FnOnce(&ItemRef) -> R) -> (Lookup, Option<R>) {
    if bump {
        ctx.cache.get(key, touch, f)
    } else {
        ctx.cache.get_unbumped(key, touch, f)
    }
}

fn seen(item: &ItemRef) -> Seen {
    Seen {
        flags: item.flags,
        cas: item.cas,
        len: item.value.len(),
        exptime: item.exptime,
        fetched: item.fetched,
        last_access: item.last_access,
        stale: item.stale,
        win_sent: item.win_sent,
        key_binary: item.key_binary,
    }
}

/// The return flags a hit of mg reports.
const GET_ECHO: &[u8] = b"cfhklOst";

/// What an mg hit wrote under the item's lock: its whole answer, or, when this client may win
/// the right to recache the item, only the value (if asked for) from `at`: the win is claimed
/// under the lock again, so the header that reports it is written afterwards.
enum Hit {
    Answered,
    Contested { seen: Seen, at: usize },
}

fn meta_get(request: &MetaRequest, quiet: bool, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    let touch = request.ttl().map(expiry);
    let bump = !request.has(b'u');
    let (lookup, found) = match touch {
        // memcached applies the flags in order: a t or an R before the T sees the TTL before
        // it.
        Some(exptime) if request.before(b't', b'T') || request.before(b'R', b'T') => {
            let found = read(ctx, &request.key, None, bump, |item| answer_hit(request, item, false, out));
            if found.0 == Lookup::Hit {
                ctx.cache.touch(&request.key, exptime);
            }
            found
        }
        _ => read(ctx, &request.key, touch, bump, |item| answer_hit(request, item, false, out)),
    };
    ops::count_dead(lookup, local);
    // memcached counts a hit with T as a touch only, and a miss with T as a get miss.
    let touched = touch.is_some() && found.is_some();
    if touched {
        local.add(Counter::CmdTouch, 1);
        local.add(Counter::TouchHits, 1);
    }
    // N: a miss creates an empty item, and this client wins the right to fill it.
    let vivify = request.flag(b'N').and_then(ttl);
    let found = match (found, vivify) {
        (None, Some(_)) => {
            let opts = StoreOptions { key_binary: request.base64, ..StoreOptions::default() };
            let exptime = expiry_through(request, 0, true, None);
            let added = ctx.cache.store_with(StoreMode::Add, &request.key, 0, exptime, b"", opts).0 == StoreOutcome::Stored;
            ctx.cache.get(&request.key, None, |item| answer_hit(request, item, added, out)).1
        }
        (found, _) => found,
    };
    // A vivified miss counts as a hit, as in memcached.
    if !touched {
        local.add(Counter::CmdGet, 1);
        local.add(if found.is_some() { Counter::GetHits } else { Counter::GetMisses }, 1);
    }
    match found {
        None if !quiet => line("EN", request, b"kO", &Seen::asked(request), out),
        None | Some(Hit::Answered) => {}
        Some(Hit::Contested { seen, at }) => {
            let won = ctx.cache.claim_win(&request.key);
            let value_len = out.len() - at;
            hit_header(request, &seen, won, !won, out);
            // The header goes before the value written under the item's lock.
            out[at..].rotate_left(value_len);
            if request.has(b'v') {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// The expiry memcached gives an item through the flags (up to the flag `stop`, when given:
/// what t reports, or what R compares): it applies T, and N when the command created the
/// item, in the order they come, starting from `exptime`.
fn expiry_through(request: &MetaRequest, mut exptime: u32, created: bool, stop: Option<u8>) -> u32 {
    for flag in request.flags.iter() {
        match flag[0] {
            b'T' => exptime = ttl(&flag[1..]).map_or(exptime, expiry),
            b'N' if created => exptime = ttl(&flag[1..]).map_or(exptime, expiry),
            letter if Some(letter) == stop => break,
            _ => {}
        }
    }
    exptime
}

/// Answers an mg hit straight from the item, or writes its value and says the answer waits
/// for a win claim; `vivified`: this command created the item.
fn answer_hit(request: &MetaRequest, item: &ItemRef, vivified: bool, out: &mut Vec<u8>) -> Hit {
    let mut seen = seen(item);
    // The item's expiry before this command's flags (a new item has none).
    let before = if vivified { 0 } else { seen.exptime };
    // R: an item whose TTL fell below the given one is due for a recache.
    let at_recache = expiry_through(request, before, vivified, Some(b'R'));
    let recache =
        request.flag(b'R').and_then(ttl).is_some_and(|below| at_recache != 0 && i64::from(at_recache.saturating_sub(clock::now())) < below);
    seen.exptime = expiry_through(request, before, vivified, Some(b't'));
    let with_value = request.has(b'v');
    if vivified || seen.stale || recache {
        let at = out.len();
        if with_value {
            out.extend_from_slice(item.value);
        }
        return Hit::Contested { seen, at };
    }
    hit_header(request, &seen, false, seen.win_sent, out);
    if with_value {
        out.extend_from_slice(item.value);
        out.extend_from_slice(b"\r\n");
    }
    Hit::Answered
}

/// mg's "VA <length>" or "HD" line: the return flags, then the win flags.
fn hit_header(request: &MetaRequest, seen: &Seen, won: bool, lost: bool, out: &mut Vec<u8>) {
    if request.has(b'v') {
        out.extend_from_slice(b"VA ");
        decimal::push(out, seen.len as u64);
    } else {
        out.extend_from_slice(b"HD");
    }
    return_flags(request, GET_ECHO, seen, out);
    win_flags(won, lost, seen.stale, out);
    out.extend_from_slice(b"\r\n");
}

/// W (this client recaches), Z (another one does) and X (stale), in memcached's order.
fn win_flags(won: bool, lost: bool, stale: bool, out: &mut Vec<u8>) {
    if won {
        if stale {
            out.extend_from_slice(b" X");
        }
        out.extend_from_slice(b" W");
        return;
    }
    if lost {
        out.extend_from_slice(b" Z");
    }
    if stale {
        out.extend_from_slice(b" X");
    }
}

fn meta_set(request: &MetaRequest, quiet: bool, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    let compare = request.number(b'C');
    // C makes a set or replace a cas; add ignores it; append and prepend check it first.
    let mode = match (request.flag(b'M'), compare) {
        (Some(b"E"), _) => StoreMode::Add,
        (Some(b"A"), _) => StoreMode::Append,
        (Some(b"P"), _) => StoreMode::Prepend,
        (Some(b"R"), None) => StoreMode::Replace,
        (_, Some(cas)) => StoreMode::Cas(cas),
        (_, None) => StoreMode::Set,
    };
    // Append and prepend check the cas under the store's own lock.
    let joining = matches!(mode, StoreMode::Append | StoreMode::Prepend);
    // C0 is no cas to memcached: append and prepend go on, a cas store fails, I or not.
    let opts = StoreOptions {
        cas: compare.filter(|&cas| joining && cas != 0),
        // I: a cas older than the item's stores a stale value (the cache acts on it for a cas
        // only, so I without C, or with add, append or prepend, changes nothing).
        invalidate: request.has(b'I') && compare != Some(0),
        key_binary: request.base64,
    };
    let flags = request.number(b'F').unwrap_or(0) as u32;
    let exptime = expiry(request.ttl().unwrap_or(0));
    let (outcome, cas) = ctx.cache.store_with(mode, &request.key, flags, exptime, request.data, opts);
    ops::count_store(mode, outcome, local);
    let word = match outcome {
        StoreOutcome::Stored if quiet => return,
        StoreOutcome::Stored => "HD",
        StoreOutcome::NotStored => "NS",
        StoreOutcome::Exists => "EX",
        StoreOutcome::NotFound => "NF",
        StoreOutcome::TooLarge => "SERVER_ERROR object too large for cache",
        StoreOutcome::NoMemory => "SERVER_ERROR out of memory storing object",
    };
    line(word, request, b"ckO", &Seen { cas, ..Seen::asked(request) }, out);
}

fn meta_delete(request: &MetaRequest, quiet: bool, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    let cas = request.number(b'C');
    // I: mark stale (and set the TTL given) instead of removing.
    let invalidate = request.has(b'I');
    let outcome =
        if invalidate { ctx.cache.invalidate(&request.key, request.ttl().map(expiry), cas) } else { ctx.cache.delete(&request.key, cas) };
    // memcached counts an invalidation as no delete hit, and a miss or a refused cas (with I
    // or without) as a delete miss.
    match outcome {
        DeleteOutcome::Done if !invalidate => local.add(Counter::DeleteHits, 1),
        DeleteOutcome::Done => {}
        DeleteOutcome::NotFound | DeleteOutcome::Exists => local.add(Counter::DeleteMisses, 1),
    }
    let word = match outcome {
        DeleteOutcome::Done if quiet => return,
        DeleteOutcome::Done => "HD",
        DeleteOutcome::NotFound => "NF",
        DeleteOutcome::Exists => "EX",
    };
    line(word, request, b"kO", &Seen::asked(request), out);
}

fn meta_arith(request: &MetaRequest, quiet: bool, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    let op = match request.flag(b'M') {
        Some(b"D" | b"-") => DeltaOp::Decr,
        _ => DeltaOp::Incr,
    };
    let (hits, misses) = match op {
        DeltaOp::Incr => (Counter::IncrHits, Counter::IncrMisses),
        DeltaOp::Decr => (Counter::DecrHits, Counter::DecrMisses),
    };
    let amount = request.number(b'D').unwrap_or(1);
    let key = &request.key[..];
    // Like text incr/decr: the key's owner runs it when the pair is linked.
    let (mut outcome, mut cas) = ops::run_delta(ctx, key, op, amount, request.number(b'C'));
    // N: a miss creates the counter at J, which memcached counts as neither hit nor miss.
    let mut counted = true;
    if outcome == DeltaOutcome::NotFound && request.has(b'N') {
        counted = false;
        let initial = request.number(b'J').unwrap_or(0);
        let mut value = Vec::new();
        decimal::push(&mut value, initial);
        let exptime = expiry_through(request, 0, true, None);
        let opts = StoreOptions { key_binary: request.base64, ..StoreOptions::default() };
        let (stored, created) = ctx.cache.store_with(StoreMode::Add, key, 0, exptime, &value, opts);
        if stored == StoreOutcome::Stored {
            outcome = DeltaOutcome::Value(initial);
            cas = created;
        }
    }
    let word = match outcome {
        DeltaOutcome::Value(value) => {
            if counted {
                local.add(hits, 1);
            }
            // The cas is the one the write gave; only t and T need the item again, read
            // without marking it fetched, as memcached's ma leaves it. T sets the TTL of a
            // counter that was there; t reports it as it stands at t.
            let exptime = if counted && (request.has(b't') || request.has(b'T')) {
                let old = ctx.cache.get_unbumped(key, None, |item| item.exptime).1.unwrap_or(0);
                if let Some(ttl) = request.ttl() {
                    ctx.cache.touch(key, expiry(ttl));
                }
                expiry_through(request, old, false, Some(b't'))
            } else {
                expiry_through(request, 0, true, Some(b't'))
            };
            // q hides a change's answer, not a creation's.
            if quiet && counted {
                return;
            }
            let seen = Seen { cas, exptime, ..Seen::asked(request) };
            if request.has(b'v') {
                let digits = value.checked_ilog10().unwrap_or(0) + 1;
                out.extend_from_slice(b"VA ");
                decimal::push(out, u64::from(digits));
                return_flags(request, b"tckO", &seen, out);
                out.extend_from_slice(b"\r\n");
                decimal::push(out, value);
                out.extend_from_slice(b"\r\n");
            } else {
                line("HD", request, b"tckO", &seen, out);
            }
            return;
        }
        DeltaOutcome::NotFound => {
            if counted {
                local.add(misses, 1);
            }
            "NF"
        }
        DeltaOutcome::NonNumeric => "CLIENT_ERROR cannot increment or decrement non-numeric value",
        DeltaOutcome::NoMemory => "SERVER_ERROR out of memory",
        DeltaOutcome::Exists => "EX",
    };
    if word.starts_with("CLIENT") || word.starts_with("SERVER") {
        out.extend_from_slice(word.as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        line(word, request, b"kO", &Seen::asked(request), out);
    }
}

/// me: one line about a live item, which it leaves unmarked (not fetched, no new access
/// time), or EN. Counted like a lookup for expired and flushed items, as in memcached.
fn meta_debug(request: &MetaRequest, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    local.add(Counter::CmdMeta, 1);
    let now = clock::now();
    let (lookup, found) = ctx.cache.get_unbumped(&request.key, None, |item| debug_line(item, now, out));
    ops::count_dead(lookup, local);
    if found.is_none() {
        out.extend_from_slice(b"EN\r\n");
    }
}

/// The `ME` line of a live item. Two fields are ours rather than memcached's: exp is the seconds
/// left (memcached 1.6.18 prints that number negated, a bug), and size is the bytes the item
/// takes in our slab layout, which differs from memcached's item header. The key is in base64
/// when the item remembers a base64 key, without memcached's b flag (its me has none).
fn debug_line(item: &ItemRef, now: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"ME ");
    push_key(item.key, needs_base64(item.key, item.key_binary), out);
    out.extend_from_slice(b" exp=");
    match item.exptime {
        0 => out.extend_from_slice(b"-1"),
        at => decimal::push(out, u64::from(at.saturating_sub(now))),
    }
    out.extend_from_slice(b" la=");
    decimal::push(out, u64::from(now.saturating_sub(item.last_access)));
    out.extend_from_slice(b" cas=");
    decimal::push(out, item.cas);
    out.extend_from_slice(if item.fetched { b" fetch=yes" } else { b" fetch=no" });
    out.extend_from_slice(b" cls=");
    decimal::push(out, u64::from(item.class_id));
    out.extend_from_slice(b" size=");
    decimal::push(out, u64::from(item.size));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::{base64_decode, base64_encode};

    #[test]
    fn base64_round_trips() {
        for (plain, coded) in [(&b"a"[..], &b"YQ=="[..]), (b"ab", b"YWI="), (b"abc", b"YWJj"), (b"\x00\xff\x10k", b"AP8Qaw==")] {
            assert_eq!(base64_decode(coded).as_deref(), Some(plain));
            let mut out = Vec::new();
            base64_encode(plain, &mut out);
            assert_eq!(out, coded);
        }
    }

    /// What memcached 1.6.18 made of each key (read back through mg's k flag).
    #[test]
    fn base64_decodes_as_memcached() {
        for (coded, plain) in [
            (&b"Zm8=Zg=="[..], &b"fo"[..]),
            (b"Zm8=!!!!", b"fo"),
            (b"Zg==Zg==", b"f"),
            (b"Zm8=====", b"fo"),
            (b"Zm9v!", b"foo"),
            (b"Zh==", b"f"),
            (b"Zm9=", b"fo"),
        ] {
            assert_eq!(base64_decode(coded).as_deref(), Some(plain), "{coded:?}");
        }
        for bad in [&b""[..], b"!!!!", b"YQ=", b"Y===", b"A===", b"Y!==", b"Zm8=Z", b"Zm8==", b"Zg==x", b"Zm9vZ", b"Z"] {
            assert_eq!(base64_decode(bad), None, "{bad:?}");
        }
    }
}
