//! Carries out a parsed request against the cache's facade and writes memcached's response
//! bytes; counts what `stats` reports into the handler's `LocalCounts`. It never parses and
//! never touches a socket; the `stats` families are written by `stats_reply`.

use super::stats_reply;
use super::{Next, Request};
use crate::config::{self, Settings};
use crate::log;
use crate::stats::{ConnRegistry, Counter, LocalCounts, PrefixOp, Stats};
use crate::storage::clock;
use crate::storage::{Cache, DeltaOp, DeltaOutcome, Lookup, StoreMode, StoreOutcome};

/// Everything a command may read or change besides its connection.
pub struct Context<'a> {
    pub cache: &'a Cache,
    pub stats: &'a Stats,
    pub settings: &'a Settings,
    pub conns: &'a ConnRegistry,
}

/// Executes `request`, appending the response (if any: `noreply` writes nothing on success)
/// to `out` and counting into `local`.
pub fn execute(request: Request, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) -> Next {
    match request {
        Request::Get { keys, cas, touch } => get(&keys, cas, touch, ctx, local, out),
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
                ctx.cache.delete(key);
            }
            answer("SERVER_ERROR object too large for cache", noreply, out);
        }
        Request::Delete { key, noreply } => {
            record_prefix(ctx, key, PrefixOp::Delete);
            let reply = if ctx.cache.delete(key) == Lookup::Hit {
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
            // A delay of 0 or less flushes now; a positive one follows the exptime rules.
            let at = if delay > 0 { clock::absolute_expiry(delay, clock::now()) } else { 0 };
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
    }
    Next::Continue
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

/// get, gets, gat, gats: a VALUE block per live key, then END. gat counts as touches only,
/// as memcached counts it.
fn get(keys: &[&[u8]], cas: bool, touch: Option<i64>, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    let touch = touch.map(|exptime| clock::absolute_expiry(exptime, clock::now()));
    let detail = ctx.stats.detail_on(ctx.settings.detail_enabled);
    for key in keys {
        let (lookup, _) = ctx.cache.get(key, touch, |item| {
            out.extend_from_slice(b"VALUE ");
            out.extend_from_slice(item.key);
            out.push(b' ');
            push_u64(out, u64::from(item.flags));
            out.push(b' ');
            push_u64(out, item.value.len() as u64);
            if cas {
                out.push(b' ');
                push_u64(out, item.cas);
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(item.value);
            out.extend_from_slice(b"\r\n");
        });
        let hit = lookup == Lookup::Hit;
        match lookup {
            Lookup::Expired => local.add(Counter::GetExpired, 1),
            Lookup::Flushed => local.add(Counter::GetFlushed, 1),
            Lookup::Hit | Lookup::Miss => {}
        }
        if touch.is_some() {
            local.add(Counter::CmdTouch, 1);
            local.add(if hit { Counter::TouchHits } else { Counter::TouchMisses }, 1);
        } else {
            local.add(Counter::CmdGet, 1);
            local.add(if hit { Counter::GetHits } else { Counter::GetMisses }, 1);
        }
        if detail {
            ctx.stats.record_prefix(key, ctx.settings.prefix_delimiter, PrefixOp::Get { hit });
        }
    }
    out.extend_from_slice(b"END\r\n");
}

fn store(mode: StoreMode, key: &[u8], flags: u32, exptime: u32, data: &[u8], ctx: &Context, local: &mut LocalCounts) -> &'static str {
    record_prefix(ctx, key, PrefixOp::Set);
    let outcome = ctx.cache.store(mode, key, flags, exptime, data);
    // memcached counts a set once its item is allocated: not when it is too large or no
    // memory is left.
    if !matches!(outcome, StoreOutcome::TooLarge | StoreOutcome::NoMemory) {
        local.add(Counter::CmdSet, 1);
    }
    if let StoreMode::Cas(_) = mode {
        match outcome {
            StoreOutcome::Stored => local.add(Counter::CasHits, 1),
            StoreOutcome::Exists => local.add(Counter::CasBadval, 1),
            StoreOutcome::NotFound => local.add(Counter::CasMisses, 1),
            StoreOutcome::NotStored | StoreOutcome::TooLarge | StoreOutcome::NoMemory => {}
        }
    }
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
    let reply = match ctx.cache.delta(key, op, amount) {
        DeltaOutcome::Value(value) => {
            local.add(hits, 1);
            if !noreply {
                push_u64(out, value);
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
    };
    answer(reply, noreply, out);
}

/// Appends `n` in decimal, without allocating.
pub(super) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::push_u64;

    #[test]
    fn push_u64_writes_decimal() {
        for n in [0, 1, 9, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
