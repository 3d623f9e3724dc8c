//! What every protocol (text, meta, binary) does around a cache operation: count its outcome
//! as memcached counts it, run an incr/decr where the key's owner is, and turn a flush_all
//! delay into the time it takes effect.

use super::Context;
use crate::stats::{Counter, LocalCounts};
use crate::storage::clock;
use crate::storage::{DeltaOp, DeltaOutcome, Lookup, StoreMode, StoreOutcome};

/// Counts what a lookup found as memcached does (every protocol's retrievals): expired and
/// flushed items, then the get or, for gat and touch, the touch counters. Returns whether it hit.
pub fn count_lookup(lookup: Lookup, touched: bool, local: &mut LocalCounts) -> bool {
    count_dead(lookup, local);
    let hit = lookup == Lookup::Hit;
    if touched {
        local.add(Counter::CmdTouch, 1);
        local.add(if hit { Counter::TouchHits } else { Counter::TouchMisses }, 1);
    } else {
        local.add(Counter::CmdGet, 1);
        local.add(if hit { Counter::GetHits } else { Counter::GetMisses }, 1);
    }
    hit
}

/// Counts a lookup that met an expired or flushed item.
pub fn count_dead(lookup: Lookup, local: &mut LocalCounts) {
    match lookup {
        Lookup::Expired => local.add(Counter::GetExpired, 1),
        Lookup::Flushed => local.add(Counter::GetFlushed, 1),
        Lookup::Hit | Lookup::Miss => {}
    }
}

/// Counts a store as memcached does: a set once its item is allocated (not when it is too
/// large or no memory is left), and a cas's hit, bad value or miss.
pub fn count_store(mode: StoreMode, outcome: StoreOutcome, local: &mut LocalCounts) {
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
}

/// Runs an incr/decr (checked against `cas` when given) where it belongs: on the key's owner
/// when the pair is linked, so that both nodes' increments count; here otherwise. Gives the
/// outcome and the item's new cas unique.
pub fn run_delta(ctx: &Context, key: &[u8], op: DeltaOp, amount: u64, cas: Option<u64>) -> (DeltaOutcome, u64) {
    ctx.deltas.and_then(|router| router.delta(key, op, amount, cas)).unwrap_or_else(|| ctx.cache.delta(key, op, amount, cas))
}

/// When a `flush_all [delay]` takes effect, as absolute unix seconds (0: now). A delay up to 30
/// days is relative; a larger one is a unix time, which may be past: then only what was stored
/// before it is invalid, as in memcached (where a time before its start flushes nothing).
pub fn flush_time(delay: i64, now: u32) -> u32 {
    match delay {
        d if d <= 0 => 0,
        d if d <= clock::MAX_RELATIVE_EXPTIME => now.saturating_add(d as u32),
        d => u32::try_from(d).unwrap_or(u32::MAX),
    }
}
