//! The fuzz targets' shared driver: each function feeds one input to a parser the way the
//! server does and panics when an invariant breaks, which libFuzzer reports as a crash.
//!
//! The invariants, beyond "no panic":
//! - text and meta: a verdict uses no more bytes than it was given and always moves on (or
//!   closes); the parser decides from exactly the bytes it consumes (the same verdict on just
//!   those bytes, "wait for more" on one byte fewer); every answer is whole lines, each data
//!   block as long as its VALUE or VA line says, each VALUE line's key 1 to 250 bytes;
//! - binary: the same bounds, "wait for more" on one byte fewer than a request used, and
//!   every answer is whole response packets;
//! - replication: a frame's size on the wire is what it used, and it encodes back to bytes
//!   that decode to the same frame; an entry applied to a cache is what the key then holds;
//! - repcached link: a message uses no more bytes than it was given, is "wait for more" on one
//!   byte fewer, and writes back to bytes that parse to the same message;
//! - command line: a refusal is one line with memcached's statuses, a run has settings the
//!   checks allow and the cache accepts.
//!
//! Each input gets a fresh, small cache (4 KiB items, 8 MiB), so a crash replays from its
//! input alone.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use memcachedrep::config::{self, Action, Settings};
use memcachedrep::protocol::binary::{self, Handled};
use memcachedrep::protocol::execute::execute;
use memcachedrep::protocol::{meta, text, Context, Limits, Next, Parsed};
use memcachedrep::replication::repcached::wire as repcached_wire;
use memcachedrep::replication::wire::{self, Frame, HELLO_MAX};
use memcachedrep::stats::{ConnRegistry, LocalCounts, Stats};
use memcachedrep::storage::replica::Entry;
use memcachedrep::storage::Cache;
use memcachedrep::{cache_config, log};

/// The server's key limit.
const LIMITS: Limits = Limits { max_key: memcachedrep::storage::KEY_MAX_LENGTH };
/// Small items, so that short inputs reach the "too large" paths.
const ITEM_SIZE_MAX: usize = 4096;
/// A few slab pages, so that short inputs can also run out of memory.
const MEMORY_LIMIT: usize = 8 << 20;
/// The binary protocol's response header.
const BINARY_HEADER: usize = 24;
/// The largest binary body a connection buffers (its longest line, whatever `-I`).
const BINARY_MAX_BODY: usize = 1 << 20;

/// What a command may read or change: a fresh cache and its counters.
struct Server {
    settings: Settings,
    cache: Cache,
    stats: Stats,
    conns: ConnRegistry,
}

impl Server {
    fn new(tombstones: bool) -> Server {
        let settings = Settings {
            item_size_max: ITEM_SIZE_MAX,
            memory_limit: MEMORY_LIMIT,
            repl_tombstone_ttl: if tombstones { 60 } else { 0 },
            // 2 buckets a stripe: building and dropping the default table took most of a run.
            hash_power: 11,
            ..Settings::default()
        };
        let cache = Cache::new(&cache_config(&settings)).expect("the fuzz cache's settings are valid");
        Server { settings, cache, stats: Stats::new(0), conns: ConnRegistry::default() }
    }

    fn context(&self) -> Context<'_> {
        Context { cache: &self.cache, stats: &self.stats, settings: &self.settings, conns: &self.conns, replication: None, deltas: None }
    }
}

/// Feeds `input` to the text parser (text and meta commands) and carries out each command,
/// as a connection that has read all of it does.
pub fn run_text(input: &[u8]) {
    let server = Server::new(false);
    let ctx = server.context();
    let item_fits = |key_len: usize, value_len: usize| server.cache.item_fits(key_len, value_len);
    let mut local = LocalCounts::default();
    let mut out = Vec::new();
    let mut pos = 0;
    // A command's `swallow` is skipped with it: the input holds all there is.
    while pos < input.len() {
        let buf = &input[pos..];
        let parsed = text::parse(buf, &LIMITS, &item_fits);
        check_decided_by_consumed(buf, &parsed, &item_fits);
        match parsed {
            Parsed::Incomplete => break,
            Parsed::Command { request, consumed, swallow: more } => {
                assert!(consumed <= buf.len(), "consumed {consumed} of {} bytes", buf.len());
                assert!(consumed > 0 || more > 0, "a command that uses no bytes");
                let mark = out.len();
                // A long answer stays in `out` whole, so that it is checked whole.
                let next = execute(request, &ctx, &mut local, &mut out, &mut |_| {});
                check_text_answer(&out[mark..]);
                out.clear();
                pos = input.len().min(pos + consumed + more);
                if next == Next::Close {
                    break;
                }
            }
            Parsed::Invalid { reply, consumed, swallow: more, close } => {
                assert!(consumed <= buf.len(), "consumed {consumed} of {} bytes", buf.len());
                assert!(!reply.contains(['\r', '\n']), "a reply of more than one line: {reply:?}");
                assert!(close || consumed > 0 || more > 0, "an invalid command that uses no bytes and stays open");
                if close {
                    break;
                }
                pos = input.len().min(pos + consumed + more);
            }
        }
    }
    // `verbosity` sets the process's level: the next input starts quiet again.
    log::set_level(0);
}

/// A parser that consumed N bytes must decide the same from those N bytes alone, and wait for
/// more with one byte fewer (or close: an unterminated line past memcached's limit).
fn check_decided_by_consumed(buf: &[u8], parsed: &Parsed, item_fits: &dyn Fn(usize, usize) -> bool) {
    let consumed = match parsed {
        Parsed::Command { consumed, .. } | Parsed::Invalid { consumed, close: false, .. } => *consumed,
        Parsed::Incomplete | Parsed::Invalid { close: true, .. } => return,
    };
    if consumed == 0 || consumed > buf.len() {
        return;
    }
    let exact = text::parse(&buf[..consumed], &LIMITS, item_fits);
    assert_eq!(&exact, parsed, "the verdict changed when cut to the {consumed} bytes it consumed");
    match text::parse(&buf[..consumed - 1], &LIMITS, item_fits) {
        Parsed::Incomplete | Parsed::Invalid { close: true, .. } => {}
        early => panic!("decided on {} of the {consumed} bytes it needed: {early:?}", consumed - 1),
    }
}

/// An answer is whole lines ending in "\r\n" (a metadump's "key=" lines end in "\n"), each
/// VALUE or VA line followed by as many data bytes as it says and "\r\n".
fn check_text_answer(answer: &[u8]) {
    let mut rest = answer;
    while !rest.is_empty() {
        let nl = rest.iter().position(|&b| b == b'\n').unwrap_or_else(|| panic!("an unterminated answer line: {rest:?}"));
        let line = &rest[..nl];
        rest = &rest[nl + 1..];
        if line.starts_with(b"key=") {
            continue;
        }
        let line = line.strip_suffix(b"\r").unwrap_or_else(|| panic!("a line without \"\\r\\n\": {line:?}"));
        if let Some(key) = line.strip_prefix(b"VALUE ").and_then(|rest| rest.split(|&b| b == b' ').next()) {
            assert!((1..=LIMITS.max_key).contains(&key.len()), "a VALUE line with a key of {} bytes", key.len());
        }
        if let Some(len) = data_length(line) {
            assert!(rest.len() >= len + 2, "a data block shorter than its line says: {line:?}");
            assert_eq!(&rest[len..len + 2], b"\r\n", "a data block longer than its line says: {line:?}");
            rest = &rest[len + 2..];
        }
    }
}

/// The data length a VALUE or VA line announces.
fn data_length(line: &[u8]) -> Option<usize> {
    let mut tokens = line.split(|&b| b == b' ');
    let field = match tokens.next()? {
        b"VALUE" => tokens.nth(2),
        b"VA" => tokens.next(),
        _ => return None,
    };
    let field = field.unwrap_or_else(|| panic!("a data line without its length: {line:?}"));
    let len = std::str::from_utf8(field).ok().and_then(|n| n.parse().ok());
    Some(len.unwrap_or_else(|| panic!("a data length that is not a number: {line:?}")))
}

/// Checks meta's base64 on `input`: what decodes re-encodes to text that decodes the same,
/// and any bytes but none (an empty key is no key) encode to text that decodes back to them.
pub fn check_base64(input: &[u8]) {
    if let Some(decoded) = meta::base64_decode(input) {
        let mut text = Vec::new();
        meta::base64_encode(&decoded, &mut text);
        assert_eq!(meta::base64_decode(&text).as_deref(), Some(&decoded[..]), "re-encoded as {text:?}");
    }
    if input.is_empty() {
        return;
    }
    let mut text = Vec::new();
    meta::base64_encode(input, &mut text);
    assert_eq!(meta::base64_decode(&text).as_deref(), Some(input), "encoded as {text:?}");
}

/// Feeds `input` to the binary protocol, request after request, as a binary connection does.
pub fn run_binary(input: &[u8]) {
    let server = Server::new(false);
    let ctx = server.context();
    let mut local = LocalCounts::default();
    let mut out = Vec::new();
    let mut pos = 0;
    // A command's `swallow` is skipped with it: the input holds all there is.
    while pos < input.len() {
        let buf = &input[pos..];
        match binary::handle(buf, BINARY_MAX_BODY, &ctx, &mut local, &mut out) {
            Handled::Incomplete => {
                assert!(out.is_empty(), "answered a request it has not read whole");
                break;
            }
            Handled::Done { consumed, swallow: more, next } => {
                assert!(consumed <= buf.len(), "consumed {consumed} of {} bytes", buf.len());
                assert!(consumed > 0 || more > 0 || next == Next::Close, "a request that uses no bytes and stays open");
                if next == Next::Continue && consumed > 0 {
                    check_binary_waits(&buf[..consumed - 1]);
                }
                check_binary_answer(&out);
                out.clear();
                pos = input.len().min(pos + consumed + more);
                if next == Next::Close {
                    break;
                }
            }
        }
    }
    log::set_level(0);
}

thread_local! {
    /// Where a prefix of a request goes: were it wrongly carried out, that must not change
    /// the state the rest of the input meets.
    static SCRATCH: Server = Server::new(false);
}

/// A request that consumed N bytes and goes on must wait for more with one byte fewer:
/// nothing is carried out and nothing answered.
fn check_binary_waits(prefix: &[u8]) {
    SCRATCH.with(|scratch| {
        let mut out = Vec::new();
        let handled = binary::handle(prefix, BINARY_MAX_BODY, &scratch.context(), &mut LocalCounts::default(), &mut out);
        assert_eq!(handled, Handled::Incomplete, "decided on {} bytes, one fewer than it needed", prefix.len());
        assert!(out.is_empty(), "answered {out:?} before the request was whole");
    });
}

/// An answer is whole response packets whose extras and key fit their bodies.
fn check_binary_answer(answer: &[u8]) {
    let mut rest = answer;
    while !rest.is_empty() {
        assert!(rest.len() >= BINARY_HEADER, "a partial response header: {rest:?}");
        assert_eq!(rest[0], 0x81, "a response without the response magic");
        let key_len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let extras_len = usize::from(rest[4]);
        let body_len = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
        assert!(key_len + extras_len <= body_len, "extras {extras_len} and key {key_len} outgrow a body of {body_len}");
        assert!(rest.len() >= BINARY_HEADER + body_len, "a body shorter than its header says");
        rest = &rest[BINARY_HEADER + body_len..];
    }
}

/// Reads replication frames from `input` as a link does (the first under the handshake's
/// bound), checks each encodes back to the same frame, and applies the data frames to a cache.
pub fn run_replication(input: &[u8]) {
    let server = Server::new(true);
    let mut reader = input;
    let mut max_payload = HELLO_MAX;
    loop {
        let before = reader.len();
        let Ok((frame, size)) = wire::read_frame(&mut reader, max_payload) else {
            break;
        };
        assert_eq!(size, before - reader.len(), "a frame's size is not the bytes it used");
        let mut encoded = Vec::new();
        wire::encode(&frame, &mut encoded);
        assert_eq!(encoded.len(), size, "{frame:?} encodes to another length");
        let (again, _) = wire::read_frame(&mut &encoded[..], usize::MAX).expect("an encoded frame decodes");
        assert_eq!(again, frame, "a frame changed when encoded and decoded");
        match &frame {
            Frame::Entry(entry) => apply(&server.cache, entry),
            Frame::Flush(state) => server.cache.apply_flush(*state),
            _ => {}
        }
        max_payload = ITEM_SIZE_MAX + wire::FRAME_OVERHEAD;
    }
}

/// Parses repcached link messages from `input` as a link does, checking each against its
/// own bytes and its written form.
pub fn run_repcached(input: &[u8]) {
    let mut rest = input;
    while let repcached_wire::Parsed::Complete(message, used) = repcached_wire::parse(rest, ITEM_SIZE_MAX) {
        assert!(used > 0 && used <= rest.len(), "{message:?} used {used} of {} bytes", rest.len());
        assert_eq!(repcached_wire::parse(&rest[..used - 1], ITEM_SIZE_MAX), repcached_wire::Parsed::Incomplete, "{message:?} one byte short");
        let mut written = Vec::new();
        match &message {
            repcached_wire::Message::Rep { key, flags, exptime, cas, value } => {
                repcached_wire::put_rep(&mut written, key, *flags, *exptime, *cas, value)
            }
            repcached_wire::Message::Delete { key } => repcached_wire::put_delete(&mut written, key),
            repcached_wire::Message::FlushAll { at } => repcached_wire::put_flush(&mut written, *at),
            repcached_wire::Message::CopyEnd => repcached_wire::put_copy_end(&mut written),
        }
        let again = repcached_wire::parse(&written, ITEM_SIZE_MAX);
        assert_eq!(again, repcached_wire::Parsed::Complete(message, written.len()), "written back differently");
        rest = &rest[used..];
    }
}

/// Applies a peer's entry. What the key then holds is under that key; when the entry was
/// applied it is that entry (the same version, value and flags), unless it is already gone
/// (expired, flushed, a tombstone past its time).
fn apply(cache: &Cache, entry: &Entry) {
    let applied = cache.apply(entry);
    let Some(held) = cache.entry(entry.key()) else {
        return;
    };
    assert_eq!(held.key(), entry.key(), "the entry held under a key names another");
    if !applied {
        return;
    }
    assert_eq!(held.version(), entry.version(), "applied {entry:?}, holds {held:?}");
    if let (Entry::Item { value, flags, .. }, Entry::Item { value: held_value, flags: held_flags, .. }) = (entry, &held) {
        assert_eq!((value, flags), (held_value, held_flags), "applied {entry:?}, holds {held:?}");
    }
}

/// Splits `input` at NUL bytes into arguments, as a shell would hand them over, and parses
/// them as the server's command line.
pub fn run_cmdline(input: &[u8]) {
    let args = input.split(|&b| b == 0).map(|arg| OsStr::from_bytes(arg).to_os_string());
    let outcome = config::utf8_args(args).and_then(|args| config::parse(&args));
    match outcome {
        Err(refusal) => {
            assert!(!refusal.line.is_empty() && !refusal.line.contains('\n'), "a refusal that is not one line: {:?}", refusal.line);
            assert!([1, 64, 71].contains(&refusal.status), "status {} for {:?}", refusal.status, refusal.line);
        }
        Ok(Action::Print(text)) => assert!(!text.is_empty(), "nothing to print"),
        Ok(Action::Run(settings)) => {
            assert!(settings.item_size_max >= 1024 && settings.item_size_max <= settings.memory_limit / 2, "-I {} with -m {}", settings.item_size_max, settings.memory_limit);
            assert!(settings.threads > 0 && settings.max_conns > 0, "-t {} -c {}", settings.threads, settings.max_conns);
            assert!(!settings.stats_settings().is_empty(), "no stats settings");
            assert_eq!(settings.peer_address().is_some(), settings.peer.is_some(), "-x {:?}", settings.peer);
            // Settings the checks allow must make a cache (start-up's next step); a large
            // table or -L would take real memory, so those are left to the checks alone.
            if settings.hash_power <= 16 && !settings.large_pages {
                if let Err(line) = Cache::new(&cache_config(&settings)) {
                    panic!("accepted settings the cache refuses: {line}");
                }
            }
        }
    }
}
