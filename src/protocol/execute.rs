//! Carries out a parsed request against the cache's facade and writes memcached's response
//! bytes; counts what `stats` reports into the handler's `LocalCounts`. It never parses and
//! never touches a socket; the `stats` families are written by `stats_reply`.

use super::meta;
use super::ops;
use super::stats_reply;
use super::{Context, Keys, Next, Request, SPILL_AT};
use crate::config;
use crate::decimal;
use crate::log;
use crate::stats::{Counter, LocalCounts, PrefixOp};
use crate::storage::clock;
use crate::storage::{DeleteOutcome, DeltaOp, DeltaOutcome, Lookup, StoreMode, StoreOutcome};

/// Executes `request`, appending the response (if any: `noreply` writes nothing on success)
/// to `out` and counting into `local`. A long answer calls `spill` to have `out` written out
/// and emptied whenever it passes `SPILL_AT`.
pub fn execute(request: Request, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>, spill: &mut dyn FnMut(&mut Vec<u8>)) -> Next {
    match request {
        Request::Get { keys, cas, touch } => {
            get_part(keys, cas, touch, ctx, local, out, &mut Spill(spill));
        }
        Request::Store { mode, key, flags, exptime, data, noreply } => {
            let exptime = clock::absolute_expiry(exptime, clock::now());
            let reply = store(mode, key, flags, exptime, data, ctx, local);
            answer(reply, noreply, out);
        }
        Request::StoreTooLarge { mode, key, noreply } => {
            record_prefix(ctx, key, PrefixOp::Set);
            local.add(Counter::StoreTooLarge, 1);
            // A failed set must not leave the old value readable, as in memcached.
            if mode == StoreMode::Set {
                ctx.cache.delete(key, None);
            }
            answer("SERVER_ERROR object too large for cache", noreply, out);
        }
        Request::Delete { key, noreply } => {
            record_prefix(ctx, key, PrefixOp::Delete);
            let reply = if ctx.cache.delete(key, None) == DeleteOutcome::Done {
                local.add(Counter::DeleteHits, 1);
                "DELETED"
            } else {
                local.add(Counter::DeleteMisses, 1);
                "NOT_FOUND"
            };
            answer(reply, noreply, out);
        }
        Request::Incr { key, amount, noreply } => delta(key, DeltaOp::Incr, amount, noreply, ctx, local, out),
        Request::Decr { key, amount, noreply } => delta(key, DeltaOp::Decr, amount, noreply, ctx, local, out),
        Request::Touch { key, exptime, noreply } => {
            local.add(Counter::CmdTouch, 1);
            let exptime = clock::absolute_expiry(exptime, clock::now());
            let reply = if ctx.cache.touch(key, exptime) == Lookup::Hit {
                local.add(Counter::TouchHits, 1);
                "TOUCHED"
            } else {
                local.add(Counter::TouchMisses, 1);
                "NOT_FOUND"
            };
            answer(reply, noreply, out);
        }
        Request::FlushAll { delay, noreply } => {
            local.add(Counter::CmdFlush, 1);
            if !ctx.settings.flush_enabled {
                answer(FLUSH_DISABLED, noreply, out);
                return Next::Continue;
            }
            let at = ops::flush_time(delay, clock::now());
            ctx.cache.flush(at);
            answer("OK", noreply, out);
        }
        Request::FlushAllBadDelay { noreply } => {
            local.add(Counter::CmdFlush, 1);
            let reply = if ctx.settings.flush_enabled { "CLIENT_ERROR invalid exptime argument" } else { FLUSH_DISABLED };
            answer(reply, noreply, out);
        }
        Request::Stats { args } => {
            local.fold_into(ctx.stats);
            stats_reply::write(&args, ctx, out);
        }
        Request::Version => {
            out.extend_from_slice(b"VERSION ");
            out.extend_from_slice(config::VERSION.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Request::Verbosity { level, noreply } => {
            log::set_level(level.min(u32::from(log::STATE)) as u8);
            answer("OK", noreply, out);
        }
        Request::Quit => return Next::Close,
        Request::Metadump { classes } => metadump(classes, ctx, out, spill),
        Request::Meta(request) => meta::execute(&request, ctx, local, out),
        Request::MetaNoop => out.extend_from_slice(b"MN\r\n"),
    }
    Next::Continue
}

/// `lru_crawler metadump`: memcached's line per item (key URI-encoded, absolute times, lines
/// ending in a bare newline), handed to `spill` as it grows, then END.
fn metadump(classes: u64, ctx: &Context, out: &mut Vec<u8>, spill: &mut dyn FnMut(&mut Vec<u8>)) {
    // Lines are written under a stripe's lock and handed on between stripes.
    ctx.cache.scan_items(&mut |seen| match seen {
        Some(item) if classes & (1u64 << item.class_id.min(63)) != 0 => {
            out.extend_from_slice(b"key=");
            uri_encode(item.key, out);
            out.extend_from_slice(b" exp=");
            if item.exptime == 0 {
                out.extend_from_slice(b"-1");
            } else {
                decimal::push(out, u64::from(item.exptime));
            }
            out.extend_from_slice(b" la=");
            decimal::push(out, u64::from(item.last_access));
            out.extend_from_slice(b" cas=");
            decimal::push(out, item.cas);
            out.extend_from_slice(if item.fetched { b" fetch=yes" } else { b" fetch=no" });
            out.extend_from_slice(b" cls=");
            decimal::push(out, u64::from(item.class_id));
            out.extend_from_slice(b" size=");
            decimal::push(out, u64::from(item.size));
            out.push(b'\n');
        }
        Some(_) => {}
        None if out.len() >= SPILL_AT => spill(out),
        None => {}
    });
    out.extend_from_slice(b"END\r\n");
}

/// memcached's URI encoding of a key in a metadump line: unreserved bytes stay, the rest are
/// %XX.
fn uri_encode(key: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

const FLUSH_DISABLED: &str = "CLIENT_ERROR flush_all not allowed";

/// Appends one answer line unless the command asked for no reply.
fn answer(reply: &str, noreply: bool, out: &mut Vec<u8>) {
    if !noreply {
        out.extend_from_slice(reply.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn record_prefix(ctx: &Context, key: &[u8], op: PrefixOp) {
    if ctx.stats.detail_on(ctx.settings.detail_enabled) {
        ctx.stats.record_prefix(key, ctx.settings.prefix_delimiter, op);
    }
}

/// Where a get's answer goes while it is written: told of each value, so that what frames or
/// logs the answer never has to find the values in its bytes again.
pub trait GetSink {
    /// The VALUE block of `key`, the last `len` bytes of the answer, has just been written.
    fn value(&mut self, key: &[u8], len: usize);
    /// `out` has passed `SPILL_AT` with keys still to come: write what the client takes now
    /// and empty `out` if all of it went. False: not all went, and the get stops there.
    fn offer(&mut self, out: &mut Vec<u8>) -> bool;
}

/// A get run by `execute`: each part handed to `spill` has gone, so it never stops part-way.
struct Spill<'a>(&'a mut dyn FnMut(&mut Vec<u8>));

impl GetSink for Spill<'_> {
    fn value(&mut self, _key: &[u8], _len: usize) {}

    fn offer(&mut self, out: &mut Vec<u8>) -> bool {
        (self.0)(out);
        true
    }
}

/// get, gets, gat, gats: a VALUE block per live key, then END. gat counts as touches only,
/// as memcached counts it.
///
/// Whenever the answer passes `SPILL_AT` with keys still to come, it goes to the sink's
/// `offer`. When not all of it went, the get stops there and returns how many keys it
/// answered, for its connection to run the rest (`Keys::after`) once the client has read;
/// None: all are answered and END written.
pub fn get_part(
    keys: Keys,
    cas: bool,
    touch: Option<i64>,
    ctx: &Context,
    local: &mut LocalCounts,
    out: &mut Vec<u8>,
    sink: &mut dyn GetSink,
) -> Option<usize> {
    let touch = touch.map(|exptime| clock::absolute_expiry(exptime, clock::now()));
    let detail = ctx.stats.detail_on(ctx.settings.detail_enabled);
    let mut keys = keys.iter().peekable();
    let mut answered = 0;
    while let Some(key) = keys.next() {
        let start = out.len();
        let (lookup, found) = ctx.cache.get(key, touch, |item| {
            out.extend_from_slice(b"VALUE ");
            out.extend_from_slice(item.key);
            out.push(b' ');
            decimal::push(out, u64::from(item.flags));
            out.push(b' ');
            decimal::push(out, item.value.len() as u64);
            if cas {
                out.push(b' ');
                decimal::push(out, item.cas);
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(item.value);
            out.extend_from_slice(b"\r\n");
        });
        if found.is_some() {
            sink.value(key, out.len() - start);
        }
        let hit = ops::count_lookup(lookup, touch.is_some(), local);
        if detail {
            ctx.stats.record_prefix(key, ctx.settings.prefix_delimiter, PrefixOp::Get { hit });
        }
        answered += 1;
        if out.len() >= SPILL_AT && keys.peek().is_some() && !sink.offer(out) {
            return Some(answered);
        }
    }
    out.extend_from_slice(b"END\r\n");
    None
}

fn store(mode: StoreMode, key: &[u8], flags: u32, exptime: u32, data: &[u8], ctx: &Context, local: &mut LocalCounts) -> &'static str {
    record_prefix(ctx, key, PrefixOp::Set);
    let outcome = ctx.cache.store(mode, key, flags, exptime, data);
    ops::count_store(mode, outcome, local);
    match outcome {
        StoreOutcome::Stored => "STORED",
        StoreOutcome::NotStored => "NOT_STORED",
        StoreOutcome::Exists => "EXISTS",
        StoreOutcome::NotFound => "NOT_FOUND",
        StoreOutcome::TooLarge => "SERVER_ERROR object too large for cache",
        StoreOutcome::NoMemory => "SERVER_ERROR out of memory storing object",
    }
}

fn delta(key: &[u8], op: DeltaOp, amount: u64, noreply: bool, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    let (hits, misses) = match op {
        DeltaOp::Incr => (Counter::IncrHits, Counter::IncrMisses),
        DeltaOp::Decr => (Counter::DecrHits, Counter::DecrMisses),
    };
    let (outcome, _) = ops::run_delta(ctx, key, op, amount, None);
    let reply = match outcome {
        DeltaOutcome::Value(value) => {
            local.add(hits, 1);
            if !noreply {
                decimal::push(out, value);
                out.extend_from_slice(b"\r\n");
            }
            return;
        }
        DeltaOutcome::NotFound => {
            local.add(misses, 1);
            "NOT_FOUND"
        }
        DeltaOutcome::NonNumeric => "CLIENT_ERROR cannot increment or decrement non-numeric value",
        DeltaOutcome::NoMemory => "SERVER_ERROR out of memory",
        DeltaOutcome::Exists => "EXISTS",
    };
    answer(reply, noreply, out);
}

#[cfg(test)]
mod tests {
    use super::{execute, Context};
    use crate::config::{self, Settings};
    use crate::protocol::text::parse;
    use crate::protocol::{Limits, Next, Parsed};
    use crate::stats::{ConnRegistry, LocalCounts, Stats};
    use crate::storage::Cache;

    /// Feeds `input` to a fresh server state the way a connection does (parse, execute,
    /// swallow) and returns every byte it answers.
    fn run(settings: &Settings, input: &[u8]) -> Vec<u8> {
        let config = crate::cache_config(settings);
        let cache = Cache::new(&config).expect("cache");
        let stats = Stats::new(0);
        let conns = ConnRegistry::default();
        let ctx = Context { cache: &cache, stats: &stats, settings, conns: &conns, replication: None, deltas: None };
        let mut local = LocalCounts::default();
        let mut out = Vec::new();
        let (mut pos, mut swallow) = (0, 0);
        loop {
            let skip = swallow.min(input.len() - pos);
            pos += skip;
            swallow -= skip;
            if swallow > 0 {
                return out;
            }
            match parse(&input[pos..], &Limits { max_key: crate::storage::KEY_MAX_LENGTH }, &|k, v| cache.item_fits(k, v)) {
                Parsed::Incomplete => return out,
                Parsed::Command { request, consumed, swallow: s } => {
                    pos += consumed;
                    swallow = s;
                    if execute(request, &ctx, &mut local, &mut out, &mut |_| {}) == Next::Close {
                        return out;
                    }
                }
                Parsed::Invalid { reply, consumed, swallow: s, close } => {
                    if !reply.is_empty() {
                        out.extend_from_slice(reply.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    if close {
                        return out;
                    }
                    pos += consumed;
                    swallow = s;
                }
            }
        }
    }

    /// (input, memcached 1.6.18's answer), each checked against `memcached -p 22122 -U 0`.
    const VERIFIED: &[(&str, &str)] = &[
        ("set a 0 0 3\r\nabc\r\nget a\r\n", "STORED\r\nVALUE a 0 3\r\nabc\r\nEND\r\n"),
        ("set a 0 0 3\r\nhello\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
        ("set a 0 0 3 noreply\r\nhello\r\n", "ERROR\r\n"),
        ("set a 0 0 3\r\nabcde", "CLIENT_ERROR bad data chunk\r\n"),
        ("set a 0 0 3\nabc\r\n", "STORED\r\n"),
        ("set a 0 0 3\r\nabc\n", ""),
        ("set a 0 0 3 4\r\nabc\r\n", "STORED\r\n"),
        ("set a 0 0 3 noreply extra\r\nabc\r\n", "ERROR\r\nERROR\r\n"),
        ("set a 0 0 3 noreply\r\nabc\r\nget a\r\n", "VALUE a 0 3\r\nabc\r\nEND\r\n"),
        ("set a -1 0 3\r\nabc\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        ("set a -1 0 3 noreply\r\nabc\r\n", "ERROR\r\n"),
        ("set a\t0 0 3\r\nabc\r\n", "ERROR\r\nERROR\r\n"),
        ("set f2 4294967297 0 3\r\nabc\r\nget f2\r\n", "STORED\r\nVALUE f2 1 3\r\nabc\r\nEND\r\n"),
        ("set f3 18446744073709551615 0 3\r\nabc\r\nget f3\r\n", "STORED\r\nVALUE f3 4294967295 3\r\nabc\r\nEND\r\n"),
        ("set f4 18446744073709551616 0 3\r\nabc\r\nget f4\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\nEND\r\n"),
        ("set a 0 -1 3\r\nabc\r\nget a\r\n", "STORED\r\nEND\r\n"),
        ("set f9 0 9223372036854775807 3\r\nabc\r\nget f9\r\n", "STORED\r\nEND\r\n"),
        ("set fa 0 -9223372036854775808 3\r\nabc\r\nget fa\r\n", "STORED\r\nVALUE fa 0 3\r\nabc\r\nEND\r\n"),
        ("set fb 0 2147483648 3\r\nabc\r\nget fb\r\n", "STORED\r\nEND\r\n"),
        ("set fc 0 -2147483649 3\r\nabc\r\nget fc\r\n", "STORED\r\nVALUE fc 0 3\r\nabc\r\nEND\r\n"),
        ("set f6 0 0 -0\r\n\r\nget f6\r\n", "STORED\r\nVALUE f6 0 0\r\n\r\nEND\r\n"),
        ("set fe 0 0 2147483646\r\nabc\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"),
        ("set big 0 0 4294967299\r\nabc\r\nget big\r\n", "STORED\r\nVALUE big 0 3\r\nabc\r\nEND\r\n"),
        ("set fh 0 0 3\r\r\nabc\r\nget fh\r\n", "STORED\r\nVALUE fh 0 3\r\nabc\r\nEND\r\n"),
        ("set sp1 0 0 1\r\r\n1\r\nget sp1\r\r\nget sp1\r\n", "STORED\r\nEND\r\nVALUE sp1 0 1\r\n1\r\nEND\r\n"),
        ("set ga 0 0 1\r\n1\r\nget ga ga\r\n", "STORED\r\nVALUE ga 0 1\r\n1\r\nVALUE ga 0 1\r\n1\r\nEND\r\n"),
        ("get a kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk b\r\n", "CLIENT_ERROR bad command line format\r\n"),
        ("\r\n\n \r\nget\r\nGET foo\r\nget\tfoo\r\n", "ERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\n"),
        ("get foo\n   get  foo  bar \r\n", "END\r\nEND\r\n"),
        ("delete nx\r\ndelete nx noreply\r\ndelete nx 0\r\n", "NOT_FOUND\r\nNOT_FOUND\r\n"),
        ("delete nx 1\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
        ("delete nx 1 noreply\r\ndelete nx 0 noreply x\r\n", "ERROR\r\n"),
        ("set d1 0 0 1\r\n1\r\ndelete d1 0\r\n", "STORED\r\nDELETED\r\n"),
        ("set d2 0 0 1\r\n1\r\ndelete d2 noreply\r\nget d2\r\n", "STORED\r\nEND\r\n"),
        ("incr nx 1\r\nincr nx\r\nincr nx -1\r\nincr nx 1 2\r\n", "NOT_FOUND\r\nERROR\r\nCLIENT_ERROR invalid numeric delta argument\r\nNOT_FOUND\r\n"),
        ("incr nx 1 noreply\r\nincr nx x noreply\r\ndecr nx 1\r\n", "NOT_FOUND\r\n"),
        ("set i1 0 0 2\r\n10\r\nincr i1 5\r\ndecr i1 100\r\nincr i1 18446744073709551615\r\n", "STORED\r\n15\r\n0\r\n18446744073709551615\r\n"),
        ("set i2 0 0 20\r\n18446744073709551615\r\nincr i2 1\r\n", "STORED\r\n0\r\n"),
        ("set i3 0 0 2\r\nab\r\nincr i3 1\r\n", "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
        ("set i4 0 0 3\r\nab \r\nincr i4 1\r\n", "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
        ("set i5 0 0 2\r\nab\r\nincr i5 1 noreply\r\n", "STORED\r\n"),
        ("set i6 0 0 3\r\n100\r\ndecr i6 1\r\nget i6\r\n", "STORED\r\n99\r\nVALUE i6 0 3\r\n99 \r\nEND\r\n"),
        ("set i7 0 0 2\r\n99\r\nincr i7 1\r\nget i7\r\n", "STORED\r\n100\r\nVALUE i7 0 3\r\n100\r\nEND\r\n"),
        ("touch nx 10\r\ntouch nx\r\ntouch nx abc\r\ntouch nx 10 noreply\r\n", "NOT_FOUND\r\nERROR\r\nCLIENT_ERROR invalid exptime argument\r\n"),
        ("set t1 0 0 1\r\n1\r\ntouch t1 10\r\n", "STORED\r\nTOUCHED\r\n"),
        ("set t2 0 0 1\r\n1\r\ntouch t2 -1\r\nget t2\r\n", "STORED\r\nTOUCHED\r\nEND\r\n"),
        ("gat\r\ngat 10\r\ngat 10 nx\r\ngat abc nx\r\n", "ERROR\r\nEND\r\nEND\r\nCLIENT_ERROR invalid exptime argument\r\n"),
        ("set g1 5 0 1\r\n1\r\ngat 0 g1 nx g1\r\n", "STORED\r\nVALUE g1 5 1\r\n1\r\nVALUE g1 5 1\r\n1\r\nEND\r\n"),
        ("set g2 5 0 1\r\n1\r\ngat -1 g2\r\nget g2\r\n", "STORED\r\nVALUE g2 5 1\r\n1\r\nEND\r\nEND\r\n"),
        ("flush_all\r\nflush_all 0\r\nflush_all noreply\r\nflush_all 0 noreply\r\nflush_all -1\r\n", "OK\r\nOK\r\nOK\r\n"),
        ("flush_all abc\r\nflush_all abc noreply\r\nflush_all 0 0\r\nflush_all 0 noreply x\r\n", "CLIENT_ERROR invalid exptime argument\r\nOK\r\nERROR\r\n"),
        ("set fl1 0 0 1\r\n1\r\nflush_all 1000000000\r\nget fl1\r\n", "STORED\r\nOK\r\nVALUE fl1 0 1\r\n1\r\nEND\r\n"),
        ("set fl2 0 0 1\r\n1\r\nflush_all 2592000\r\nget fl2\r\n", "STORED\r\nOK\r\nVALUE fl2 0 1\r\n1\r\nEND\r\n"),
        ("set fl4 0 0 1\r\n1\r\nflush_all -5\r\nget fl4\r\n", "STORED\r\nOK\r\nEND\r\n"),
        ("verbosity\r\nverbosity 1 noreply\r\nverbosity noreply\r\nverbosity abc\r\nverbosity 1 2 3\r\nverbosity 0\r\n", "ERROR\r\nCLIENT_ERROR bad command line format\r\nERROR\r\nOK\r\n"),
        ("quit\r\nversion\r\n", ""),
        ("shutdown\r\nmisbehave\r\n", "ERROR: shutdown not enabled\r\nERROR\r\n"),
        ("stats sizes\r\nstats foo\r\nstats foo noreply\r\nstats reset x\r\n", "STAT sizes_status disabled\r\nEND\r\nERROR\r\nERROR\r\nRESET\r\n"),
        ("stats detail\r\nstats detail x\r\nstats detail dump\r\n", "CLIENT_ERROR usage: stats detail on|off|dump\r\nCLIENT_ERROR usage: stats detail on|off|dump\r\nEND\r\n"),
        ("cas\r\ncas a 0 0 1\r\ncas a 0 0 1 x\r\na\r\n", "ERROR\r\nERROR\r\nCLIENT_ERROR bad command line format\r\nERROR\r\n"),
        ("cas a 0 0 1 1 noreply\r\na\r\ncas a 0 0 1 1 x\r\na\r\n", "NOT_FOUND\r\n"),
    ];

    #[test]
    fn answers_match_memcached() {
        let settings = Settings::default();
        for (input, expected) in VERIFIED {
            let out = run(&settings, input.as_bytes());
            assert_eq!(String::from_utf8_lossy(&out), *expected, "input {input:?}");
        }
        let out = run(&settings, b"version\r\n");
        assert_eq!(out, format!("VERSION {}\r\n", config::VERSION).as_bytes());
    }

    #[test]
    fn too_large_store_swallows_and_set_unlinks_old() {
        let settings = Settings::default();
        let big = "x".repeat(2_000_000);
        let cases = [
            (format!("set big 0 0 2000000\r\n{big}\r\nget big\r\n"), "SERVER_ERROR object too large for cache\r\nEND\r\n"),
            (format!("set big 0 0 2000000 noreply\r\n{big}\r\nget big\r\n"), "END\r\n"),
            (
                format!("set big 0 0 3\r\nabc\r\nset big 0 0 2000000\r\n{big}\r\nget big\r\n"),
                "STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n",
            ),
            (
                format!("add big2 0 0 3\r\nabc\r\nadd big2 0 0 2000000\r\n{big}\r\nget big2\r\n"),
                "STORED\r\nSERVER_ERROR object too large for cache\r\nVALUE big2 0 3\r\nabc\r\nEND\r\n",
            ),
            (format!("set big 0 0 2000000\r\n{big}XYget big\r\n"), "SERVER_ERROR object too large for cache\r\nEND\r\n"),
        ];
        for (input, expected) in cases {
            assert_eq!(String::from_utf8_lossy(&run(&settings, input.as_bytes())), expected);
        }
    }

    /// ma v gives the length of the new value's digits, from one to twenty.
    #[test]
    fn meta_arith_value_length_counts_digits() {
        let out = run(&Settings::default(), b"ma n N0 J18446744073709551614 v\r\nma n v\r\nma n v\r\nma n D9 v\r\nma n v\r\n");
        let expected = "VA 20\r\n18446744073709551614\r\nVA 20\r\n18446744073709551615\r\nVA 1\r\n0\r\nVA 1\r\n9\r\nVA 2\r\n10\r\n";
        assert_eq!(String::from_utf8_lossy(&out), expected);
    }

    /// memcached's metadump line: `key= exp= la= cas= fetch= cls= size=`, ending in "\n".
    #[test]
    fn metadump_writes_memcached_fields() {
        let settings = Settings::default();
        let out = run(&settings, b"set a:b 0 0 1\r\n1\r\nget a:b\r\nlru_crawler metadump all\r\n");
        let out = String::from_utf8_lossy(&out);
        let dump = out.strip_prefix("STORED\r\nVALUE a:b 0 1\r\n1\r\nEND\r\n").expect("stored and read");
        let line = dump.strip_suffix("\nEND\r\n").expect("one line, then END");
        let fields: Vec<&str> = line.split(' ').collect();
        let [key, exp, la, cas, fetch, cls, size] = fields[..] else { panic!("{line}") };
        assert_eq!([key, exp, fetch], ["key=a%3Ab", "exp=-1", "fetch=yes"]);
        for (field, name) in [(la, "la="), (cas, "cas="), (cls, "cls="), (size, "size=")] {
            let number = field.strip_prefix(name).unwrap_or_else(|| panic!("{line}"));
            assert!(number.parse::<u64>().is_ok_and(|n| n > 0), "{line}");
        }
    }

    #[test]
    fn flush_all_disabled_answers_not_allowed() {
        let settings = Settings { flush_enabled: false, ..Settings::default() };
        let out = run(&settings, b"flush_all\r\nflush_all noreply\r\nflush_all abc\r\nflush_all 0 0 0\r\n");
        assert_eq!(String::from_utf8_lossy(&out), "CLIENT_ERROR flush_all not allowed\r\nCLIENT_ERROR flush_all not allowed\r\nERROR\r\n");
    }

    /// The counters after a sequence memcached 1.6.18 ran with the same result.
    #[test]
    fn counters_match_memcached() {
        let settings = Settings::default();
        let mut input = b"set g 0 0 1\r\n1\r\ngat 0 g nx\r\ngats 0 g\r\ntouch g 0\r\ntouch nx 0\r\nget g nx\r\nset e 0 -1 1\r\n1\r\nget e\r\nset big 0 0 2000000 noreply\r\n".to_vec();
        input.resize(input.len() + 2_000_002, b'x');
        input.extend_from_slice(
            b"flush_all\r\nget g\r\ncas g 0 0 1 1\r\n1\r\ncas nx 0 0 1 1\r\n1\r\nincr nx 1\r\ndecr nx 1\r\ndelete nx\r\nstats\r\n",
        );
        let out = String::from_utf8_lossy(&run(&settings, &input)).into_owned();
        for line in [
            "STAT cmd_get 4\r\n",
            "STAT cmd_set 4\r\n",
            "STAT cmd_flush 1\r\n",
            "STAT cmd_touch 5\r\n",
            "STAT get_hits 1\r\n",
            "STAT get_misses 3\r\n",
            "STAT get_expired 1\r\n",
            "STAT get_flushed 1\r\n",
            "STAT delete_misses 1\r\n",
            "STAT incr_misses 1\r\n",
            "STAT decr_misses 1\r\n",
            "STAT cas_misses 2\r\n",
            "STAT cas_hits 0\r\n",
            "STAT touch_hits 3\r\n",
            "STAT touch_misses 2\r\n",
            "STAT store_too_large 1\r\n",
        ] {
            assert!(out.contains(line), "{line} missing in {out}");
        }
    }

    #[test]
    fn stats_detail_counts_prefixes() {
        let settings = Settings::default();
        let out = run(
            &settings,
            b"stats detail on\r\nset a:b 0 0 1\r\n1\r\nget a:b a:c x\r\ndelete a:b\r\nget b:1\r\nstats detail dump\r\nstats detail off\r\n",
        );
        // memcached lists b before a (its hash order); ours is sorted.
        let expected = "OK\r\nSTORED\r\nVALUE a:b 0 1\r\n1\r\nEND\r\nDELETED\r\nEND\r\nPREFIX a get 2 hit 1 set 1 del 1\r\nPREFIX b get 1 hit 0 set 0 del 0\r\nEND\r\nOK\r\n";
        assert_eq!(String::from_utf8_lossy(&out), expected);
    }
}
