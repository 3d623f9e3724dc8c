//! Lookups: get and its variants (gat, meta get's unbumped read), and the walks over every
//! item (`lru_crawler metadump`, replication's scan). Each holds one stripe lock at a time.

use std::sync::atomic::Ordering;

use super::item::{self, Item};
use super::table::Stripe;
use super::{clock, lock, valid_key, Cache, ItemRef, Lookup, Slot};

impl Cache {
    /// Looks `key` up. On a hit, first sets the expiry to `touch` when given (gat/gats), marks
    /// the item fetched and active, then calls `f` with the item under its lock and returns its
    /// result. `f` must be quick (copy the value out, nothing else).
    pub fn get<R>(&self, key: &[u8], touch: Option<u32>, f: impl FnOnce(&ItemRef) -> R) -> (Lookup, Option<R>) {
        self.lookup(key, touch, true, f)
    }

    /// `get` that leaves the item's fetched mark, last access and LRU standing alone (meta
    /// get's u flag, meta debug); a touch still applies.
    pub fn get_unbumped<R>(&self, key: &[u8], touch: Option<u32>, f: impl FnOnce(&ItemRef) -> R) -> (Lookup, Option<R>) {
        self.lookup(key, touch, false, f)
    }

    /// `get` or `get_unbumped`: `do_get` under the key's stripe lock, then the sink told of
    /// a touch.
    fn lookup<R>(&self, key: &[u8], touch: Option<u32>, bump: bool, f: impl FnOnce(&ItemRef) -> R) -> (Lookup, Option<R>) {
        if !valid_key(key) {
            return (Lookup::Miss, None);
        }
        let hash = self.hash(key);
        let mut stripe = self.lock_stripe(hash);
        let found = self.do_get(&mut stripe, hash, key, touch, bump, f);
        drop(stripe);
        if touch.is_some() && found.0 == Lookup::Hit {
            self.notify(key);
        }
        found
    }

    /// `get` under the stripe lock the caller holds; `bump` marks the item fetched, active and
    /// accessed now.
    fn do_get<R>(
        &self,
        stripe: &mut Stripe,
        hash: u32,
        key: &[u8],
        touch: Option<u32>,
        bump: bool,
        f: impl FnOnce(&ItemRef) -> R,
    ) -> (Lookup, Option<R>) {
        let now = clock::now();
        let it = match self.find(stripe, hash, key, now) {
            Slot::Live(it) => it,
            Slot::Dead(why) => return (why, None),
            Slot::Empty | Slot::Tomb(_) => return (Lookup::Miss, None),
        };
        // SAFETY: `it` is linked in the stripe we hold, so it stays allocated and unchanged by
        // others until the guard drops, after `f` returns.
        unsafe {
            if let Some(exptime) = touch {
                (*it).exptime = exptime;
                self.restamp_touched(stripe, it);
                self.class_hits(it).touch_hits.fetch_add(1, Ordering::Relaxed);
            }
            let fetched = (*it).iflags & item::FETCHED != 0;
            let last_access = (*it).atime.load(Ordering::Relaxed);
            if bump {
                (*it).atime.store(now, Ordering::Relaxed);
                (*it).iflags |= item::FETCHED | item::ACTIVE;
            }
            self.class_hits(it).get_hits.fetch_add(1, Ordering::Relaxed);
            let view = self.view(it, fetched, last_access);
            (Lookup::Hit, Some(f(&view)))
        }
    }

    /// A live item as callers see it, with its fetched mark and last access as they were
    /// before this lookup.
    ///
    /// # Safety
    /// `it` is a live item linked in a stripe the caller holds for as long as the view lives.
    unsafe fn view<'a>(&self, it: *const Item, fetched: bool, last_access: u32) -> ItemRef<'a> {
        // SAFETY: forwarded caller guarantee.
        unsafe {
            ItemRef {
                key: item::key(it),
                value: item::value(it),
                flags: (*it).flags,
                cas: self.cas_of(it),
                exptime: (*it).exptime,
                fetched,
                last_access,
                stale: (*it).iflags & item::STALE != 0,
                win_sent: (*it).iflags & item::WIN_SENT != 0,
                key_binary: (*it).iflags & item::KEY_BINARY != 0,
                class_id: u32::from((*it).class) + 1,
                size: item::size_of(it) as u32,
            }
        }
    }

    /// Calls `f` with every live item, one stripe at a time under its lock (so it must be
    /// quick, and must not call the cache), and with None after each stripe, with no lock
    /// held. Items are neither bumped nor marked fetched (`lru_crawler metadump`).
    pub fn scan_items(&self, f: &mut dyn FnMut(Option<&ItemRef>)) {
        self.walk(&mut |seen| match seen {
            // SAFETY: `walk` hands out items linked in the stripe it holds during the call.
            Some(it) => unsafe {
                if !item::is_tombstone(it) {
                    let fetched = (*it).iflags & item::FETCHED != 0;
                    f(Some(&self.view(it, fetched, (*it).atime.load(Ordering::Relaxed))));
                }
            },
            None => f(None),
        });
    }

    /// Calls `visit` with every item and tombstone that is not expired or flushed, one stripe
    /// at a time under its lock (dead ones are left for lazy unlinking), and with None after
    /// each stripe, with no lock held. A pointer is valid only during its call.
    pub(super) fn walk(&self, visit: &mut dyn FnMut(Option<*mut Item>)) {
        for stripe_lock in self.stripes.iter() {
            {
                let stripe = lock::lock(&stripe_lock.0);
                let now = clock::now();
                stripe.for_each(|it| {
                    // SAFETY: `for_each` hands out items linked in the stripe we hold.
                    if unsafe { self.dead(it, now) }.is_none() {
                        visit(Some(it));
                    }
                });
            }
            visit(None);
        }
    }
}
