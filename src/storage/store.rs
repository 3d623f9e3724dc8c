//! Stores: set, add, replace, append, prepend and cas, with the meta protocol's options, as
//! memcached answers them (which check wins when several would refuse the store).

use std::ptr;
use std::sync::atomic::Ordering;

use super::lifecycle::NewItem;
use super::slab::Slabs;
use super::{clock, item, valid_key, Cache, Slot, StoreMode, StoreOptions, StoreOutcome};

impl Cache {
    /// Stores an item. Append/prepend keep the old item's flags and expiry and ignore the ones
    /// given. A successful store gives the item a new cas unique.
    pub fn store(&self, mode: StoreMode, key: &[u8], flags: u32, exptime: u32, value: &[u8]) -> StoreOutcome {
        self.store_with(mode, key, flags, exptime, value, StoreOptions::default()).0
    }

    /// `store` with the meta protocol's options, also giving the stored item's cas unique (0
    /// unless stored): read under the same lock, so no later store can have replaced it.
    pub fn store_with(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: u32,
        value: &[u8],
        opts: StoreOptions,
    ) -> (StoreOutcome, u64) {
        if !valid_key(key) {
            return (StoreOutcome::NotStored, 0);
        }
        let (outcome, mutated, cas) = self.store_silently(mode, key, flags, exptime, value, opts);
        if mutated {
            self.notify(key);
        }
        (outcome, cas)
    }

    /// `store` without telling the sink (its stripe lock is released on return); also says
    /// whether the key changed (stored, or a failed `Set` dropped the old item), and the new
    /// item's cas unique (0 unless stored).
    fn store_silently(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: u32,
        value: &[u8],
        opts: StoreOptions,
    ) -> (StoreOutcome, bool, u64) {
        let hash = self.hash(key);
        let mut guard = self.lock_stripe(hash);
        let stripe = &mut *guard;
        let now = clock::now();
        // A tombstone is no item to the client, but a new item takes its place in the table.
        let (old, tomb) = match self.find(stripe, hash, key, now) {
            Slot::Live(it) => (it, ptr::null_mut()),
            Slot::Tomb(it) => (ptr::null_mut(), it),
            Slot::Empty | Slot::Dead(_) => (ptr::null_mut(), ptr::null_mut()),
        };
        let found = if old.is_null() { tomb } else { old };
        let joining = matches!(mode, StoreMode::Append | StoreMode::Prepend);
        if let Err(refused) = self.check_space(key.len(), Cache::sized_value(value.len(), flags)) {
            // memcached sizes and allocates the data given before it looks at the old item,
            // so these answers win over NotStored/Exists, and a Set loses the old item.
            if mode == StoreMode::Set && !old.is_null() {
                // SAFETY: `old` is linked in the stripe we hold.
                unsafe { self.remove_live(stripe, hash, key, old, now) };
                return (refused, true, 0);
            }
            return (refused, false, 0);
        }
        if joining && old.is_null() {
            return (StoreOutcome::NotStored, false, 0);
        }
        // memcached compares a joining store's cas before it sizes the joined item.
        // SAFETY: `old` is not null when joining here, and linked in the stripe we hold.
        if joining && opts.cas.is_some_and(|unique| unsafe { self.cas_of(old) } != unique) {
            return (StoreOutcome::Exists, false, 0);
        }
        // SAFETY: `old` (when joining, non-null) is linked in the stripe we hold.
        let old_value: &[u8] = if joining { unsafe { item::value(old) } } else { &[] };
        let vlen = value.len() + old_value.len();
        let size = item::total_size(key.len(), vlen);
        // SAFETY: as above. A joined item keeps the old item's flags.
        let kept_flags = if joining { unsafe { (*old).flags } } else { flags };
        let cls = match self.slabs.class_for(size) {
            Some(cls) if self.item_fits(key.len(), Cache::sized_value(vlen, kept_flags)) => cls,
            _ => return (StoreOutcome::NotStored, false, 0),
        };
        self.slabs.classes[cls].hits(hash).cmd_set.fetch_add(1, Ordering::Relaxed);
        let Some(mut chunk) = self.alloc(cls, stripe, found, now) else {
            if joining {
                return (StoreOutcome::NotStored, false, 0);
            }
            self.store_no_memory.fetch_add(1, Ordering::Relaxed);
            if mode == StoreMode::Set && !old.is_null() {
                // SAFETY: `old` is linked in the stripe we hold (`alloc` spares it).
                unsafe { self.remove_live(stripe, hash, key, old, now) };
                return (StoreOutcome::NoMemory, true, 0);
            }
            return (StoreOutcome::NoMemory, false, 0);
        };
        // SAFETY: `old`, when not null, is linked in the stripe we hold (`alloc` spares it).
        let old_cas = if old.is_null() { 0 } else { unsafe { self.cas_of(old) } };
        // An invalidating cas older than the item's stores a stale copy instead of failing.
        let stale = opts.invalidate && matches!(mode, StoreMode::Cas(unique) if !old.is_null() && unique < old_cas);
        let refused = match (mode, opts.cas) {
            (StoreMode::Add, _) if !old.is_null() => Some(StoreOutcome::NotStored),
            (StoreMode::Replace, _) if old.is_null() => Some(StoreOutcome::NotStored),
            (StoreMode::Cas(_), _) if old.is_null() => Some(StoreOutcome::NotFound),
            (StoreMode::Cas(unique), _) if old_cas != unique && !stale => {
                // SAFETY: as above, and `old` is not null here.
                unsafe { self.class_hits(old) }.cas_badval.fetch_add(1, Ordering::Relaxed);
                Some(StoreOutcome::Exists)
            }
            _ => None,
        };
        if let Some(outcome) = refused {
            // SAFETY: the chunk was taken above, under its class lock, and never linked or shared.
            unsafe { Slabs::free_chunk(&mut chunk.st, chunk.it) };
            return (outcome, false, 0);
        }
        // SAFETY: `old` is linked in the stripe we hold (not null when joining or stale), and a
        // joining store keeps it allocated (`fill`'s keep_old) while it reads its value; the
        // chunk comes from `alloc` for class `cls`, which fits `vlen` and the key.
        let it = unsafe {
            // What the new item takes from the old, read before `fill` may free it.
            let (flags, exptime, iflags) = if joining {
                ((*old).flags, (*old).exptime, (*old).iflags & item::KEY_BINARY)
            } else if stale {
                (flags, (*old).exptime, item::STALE | ((*old).iflags & item::WIN_SENT))
            } else {
                (flags, exptime, 0)
            };
            if let StoreMode::Cas(_) = mode {
                self.class_hits(old).cas_hits.fetch_add(1, Ordering::Relaxed);
            }
            let iflags = if opts.key_binary { iflags | item::KEY_BINARY } else { iflags };
            let version = Self::new_version(stripe);
            let new = NewItem { key, hash, vlen, flags, exptime, version, iflags, atime: now };
            let it = self.fill(stripe, chunk, found, joining, &new, |dst| match mode {
                StoreMode::Append => {
                    dst[..old_value.len()].copy_from_slice(old_value);
                    dst[old_value.len()..].copy_from_slice(value);
                }
                StoreMode::Prepend => {
                    dst[..value.len()].copy_from_slice(value);
                    dst[value.len()..].copy_from_slice(old_value);
                }
                _ => dst.copy_from_slice(value),
            });
            if joining {
                self.free_unlinked(old);
            }
            it
        };
        // SAFETY: `it` is linked in the stripe we still hold.
        (StoreOutcome::Stored, true, unsafe { self.cas_of(it) })
    }
}
