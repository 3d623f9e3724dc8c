//! incr/decr: memcached's reading of a stored counter (on `crate::decimal`), and the delta
//! operation that rewrites the value in place or, when the number grew longer, as a new item.

use std::sync::atomic::Ordering;

use super::lifecycle::NewItem;
use super::table::Stripe;
use super::{clock, item, valid_key, Cache, DeltaOp, DeltaOutcome, Slot};
use crate::decimal;

impl Cache {
    /// incr/decr as memcached, if the item has the cas unique `cas` when one is given: the
    /// value must be a decimal number of at most 20 digits; a result no longer than the old
    /// value is written in place, padded with trailing spaces to the old length; a longer one
    /// replaces the item. Either way the cas unique changes; the new one comes back with a
    /// value (0 otherwise).
    pub fn delta(&self, key: &[u8], op: DeltaOp, amount: u64, cas: Option<u64>) -> (DeltaOutcome, u64) {
        if !valid_key(key) {
            return (DeltaOutcome::NotFound, 0);
        }
        let hash = self.hash(key);
        let mut stripe = self.lock_stripe(hash);
        let done = self.do_delta(&mut stripe, hash, key, op, amount, cas);
        drop(stripe);
        if let DeltaOutcome::Value(_) = done.0 {
            self.notify(key);
        }
        done
    }

    /// `delta` under the stripe lock the caller holds.
    fn do_delta(&self, stripe: &mut Stripe, hash: u32, key: &[u8], op: DeltaOp, amount: u64, cas: Option<u64>) -> (DeltaOutcome, u64) {
        let now = clock::now();
        let Slot::Live(old) = self.find(stripe, hash, key, now) else {
            return (DeltaOutcome::NotFound, 0);
        };
        // SAFETY: `old` is linked in the stripe we hold (also for the uses below, up to `fill`).
        // memcached refuses an empty value before it compares the cas.
        if unsafe { item::value(old) }.is_empty() {
            return (DeltaOutcome::NonNumeric, 0);
        }
        // SAFETY: as above.
        if cas.is_some_and(|unique| unique != unsafe { self.cas_of(old) }) {
            return (DeltaOutcome::Exists, 0);
        }
        // SAFETY: as above.
        let Some(current) = parse_counter(unsafe { item::value(old) }) else {
            return (DeltaOutcome::NonNumeric, 0);
        };
        let result = match op {
            DeltaOp::Incr => current.wrapping_add(amount),
            DeltaOp::Decr => current.saturating_sub(amount),
        };
        // SAFETY: as above.
        let hits = unsafe { self.class_hits(old) };
        match op {
            DeltaOp::Incr => hits.incr_hits.fetch_add(1, Ordering::Relaxed),
            DeltaOp::Decr => hits.decr_hits.fetch_add(1, Ordering::Relaxed),
        };
        let mut digits = [0u8; 20];
        let text = decimal::format(result, &mut digits);
        // SAFETY: `old` is linked in the stripe we hold; readers also take that lock.
        unsafe {
            let dst = item::value_mut(old);
            if text.len() <= dst.len() {
                dst[..text.len()].copy_from_slice(text);
                dst[text.len()..].fill(b' ');
                (*old).version = Self::new_version(stripe);
                return (DeltaOutcome::Value(result), self.cas_of(old));
            }
        }
        let Some(cls) = self.slabs.class_for(item::total_size(key.len(), text.len())) else {
            return (DeltaOutcome::NoMemory, 0);
        };
        let Some(chunk) = self.alloc(cls, stripe, old, now) else {
            self.store_no_memory.fetch_add(1, Ordering::Relaxed);
            return (DeltaOutcome::NoMemory, 0);
        };
        // SAFETY: the chunk comes from `alloc` for class `cls`, which fits the key and `text`;
        // `old` is linked in the stripe we hold until `fill` frees it.
        let it = unsafe {
            let new = NewItem {
                key,
                hash,
                vlen: text.len(),
                flags: (*old).flags,
                exptime: (*old).exptime,
                version: Self::new_version(stripe),
                iflags: (*old).iflags & item::KEY_BINARY,
                atime: now,
            };
            self.fill(stripe, chunk, old, false, &new, |dst| dst.copy_from_slice(text))
        };
        // SAFETY: `it` is linked in the stripe we still hold.
        (DeltaOutcome::Value(result), unsafe { self.cas_of(it) })
    }
}

/// memcached's reading of a counter (C's strtoull plus its checks): optional leading white
/// space, an optional sign, at least one digit, no overflow, then the end, white space or a
/// NUL. A number of 2^63 or more is refused when a minus sign comes before the first NUL
/// (memcached's strchr; without a NUL it reads past the value into stale memory, which we do
/// not follow). A value of only white space is refused (memcached reads past it too).
pub(super) fn parse_counter(value: &[u8]) -> Option<u64> {
    let (negative, n) = decimal::c_number(value)?;
    let n = if negative { n.wrapping_neg() } else { n };
    let c_string = value.split(|&c| c == 0).next().unwrap_or_default();
    if n > i64::MAX as u64 && c_string.contains(&b'-') {
        return None;
    }
    Some(n)
}
