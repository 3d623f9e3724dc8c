//! Finding memory for a store: `alloc` takes a chunk from its class's free list or new pages,
//! else walks the class's LRU from the tail (reclaiming a dead item, giving an ACTIVE one a
//! second trip, evicting a cold one), else steals a page from the class with the most
//! (`steal_page`). The densest concurrent code in storage: it runs with a stripe and a class
//! lock already held and only ever tries the others (the module doc's LOCKING PROTOCOL,
//! "Blocking and trying").

use std::ptr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::item::{self, Item};
use super::lock::{self, Held};
use super::slab::{self, ClassState};
use super::table::Stripe;
use super::Cache;

/// LRU items the eviction walker looks at per allocation, at most.
const WALK_LIMIT: usize = 50;
/// Once a cold item is found, how many more the walker checks for an expired one to take
/// instead.
const DEAD_SEARCH_AFTER_COLD: usize = 5;
/// How long an allocation keeps trying while the memory it could take is behind another
/// thread's lock: far longer than any lock is held, short enough to bound a store.
const ALLOC_PATIENCE: Duration = Duration::from_millis(100);

/// Why an allocation attempt found no chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shortage {
    /// Memory could be had, but another thread holds its lock (or has a chunk of the page in
    /// flight): worth another try.
    Contended,
    /// Nothing this class may take.
    Exhausted,
}

/// What the eviction walker decided about one LRU item (under its stripe lock).
enum Verdict {
    /// Expired or flushed: unlinked from its stripe, chunk reusable.
    Dead,
    /// Read since the last pass: moved to the head, flag cleared.
    SecondChance,
    /// Live and cold: may be evicted.
    Cold,
}

/// A chunk `alloc` took for class `cls`: TAKEN (in no chain, LRU or free list), with that
/// class's lock still held, for `Cache::fill` or `Slabs::free_chunk`.
pub(super) struct Chunk<'a> {
    pub it: *mut Item,
    pub cls: usize,
    pub st: Held<'a, ClassState>,
}

impl Cache {
    /// A chunk of class `cls`: free or new memory first, else reclaim or evict from the LRU
    /// tail. The caller holds `held` (the stripe it is storing in); `protect` is never evicted. The
    /// class lock comes back still held in the `Chunk`, for `fill` or for freeing the chunk at once.
    ///
    /// The walk only tries the locks of other stripes and classes (the caller holds a stripe,
    /// so blocking could deadlock). When it found memory only behind a lock another thread
    /// holds, it lets go of the class lock and tries again, for up to `ALLOC_PATIENCE`: a
    /// store answers out of memory only when there is nothing to take, as in memcached.
    pub(super) fn alloc(&self, cls: usize, held: &mut Stripe, protect: *mut Item, now: u32) -> Option<Chunk<'_>> {
        let mut since: Option<Instant> = None;
        loop {
            let (got, mut st) = self.try_alloc(cls, held, protect, now);
            match got {
                Ok(it) => return Some(Chunk { it, cls, st }),
                Err(Shortage::Contended) if since.get_or_insert_with(Instant::now).elapsed() < ALLOC_PATIENCE => {
                    drop(st);
                    std::thread::yield_now();
                }
                Err(_) => {
                    st.outofmemory += 1;
                    return None;
                }
            }
        }
    }

    /// One attempt of `alloc`, giving back the class lock whatever its outcome.
    fn try_alloc(
        &self,
        cls: usize,
        held: &mut Stripe,
        protect: *mut Item,
        now: u32,
    ) -> (Result<*mut Item, Shortage>, Held<'_, ClassState>) {
        let mut st = self.lock_class(cls);
        if let Ok(it) = self.slabs.take_chunk(cls, &mut st) {
            return (Ok(it), st);
        }
        let mut contended = false;
        let mut cursor = st.lru.tail;
        let mut candidate: *mut Item = ptr::null_mut();
        let mut past_candidate = 0;
        for _ in 0..WALK_LIMIT {
            if cursor.is_null() || past_candidate > DEAD_SEARCH_AFTER_COLD {
                break;
            }
            let it = cursor;
            // SAFETY: LRU items stay allocated while we hold the class lock, which guards their
            // links (LOCKING PROTOCOL: Reaching an item, Freeing an item).
            cursor = unsafe { (*it).prev };
            if it == protect {
                continue;
            }
            if !candidate.is_null() {
                past_candidate += 1;
            }
            // SAFETY: `it` is in the LRU of the class we hold; the closure gets its stripe, in
            // which it is linked, so it may read and change the header (Reaching an item).
            let verdict = unsafe {
                self.with_stripe(it, held, |stripe| match self.dead(it, now) {
                    Some(_) => {
                        stripe.remove(it);
                        Verdict::Dead
                    }
                    // iflags change only under the stripe lock; the LRU under the class lock.
                    None if self.evict && (*it).iflags & item::ACTIVE != 0 => {
                        (*it).iflags &= !item::ACTIVE;
                        st.lru.remove(it);
                        st.lru.push_head(it);
                        Verdict::SecondChance
                    }
                    None => Verdict::Cold,
                })
            };
            match verdict {
                None => contended = true,
                Some(Verdict::Dead) => {
                    // SAFETY: unlinked from its stripe just now, under the class lock we hold: ours
                    // to reuse (Freeing an item); still in this class's LRU.
                    unsafe {
                        if !item::is_tombstone(it) {
                            st.reclaimed += 1;
                            if (*it).iflags & item::FETCHED == 0 {
                                st.expired_unfetched += 1;
                            }
                        }
                        Self::drop_from_lru(&mut st, it);
                    }
                    return (Ok(it), st);
                }
                Some(Verdict::Cold) if candidate.is_null() => candidate = it,
                _ => {}
            }
        }
        if self.evict {
            if candidate.is_null() && st.lru.tail != protect {
                candidate = st.lru.tail;
            }
            if !candidate.is_null() {
                // SAFETY: the candidate is in the LRU of the class we hold, and linked in the
                // stripe the closure is handed.
                if unsafe { self.with_stripe(candidate, held, |stripe| stripe.remove(candidate)) }.is_some() {
                    // SAFETY: unlinked from its stripe just now, under the class lock we hold: ours
                    // to reuse (Freeing an item); still in this class's LRU.
                    unsafe {
                        Self::count_eviction(&mut st, candidate, now);
                        Self::drop_from_lru(&mut st, candidate);
                    }
                    return (Ok(candidate), st);
                }
                contended = true;
            }
            match self.steal_page(cls, &mut st, held, protect, now) {
                Ok(()) => {
                    if let Ok(it) = self.slabs.take_chunk(cls, &mut st) {
                        return (Ok(it), st);
                    }
                }
                Err(Shortage::Contended) => contended = true,
                Err(Shortage::Exhausted) => {}
            }
        }
        (Err(if contended { Shortage::Contended } else { Shortage::Exhausted }), st)
    }

    /// Moves one page to class `cls` (whose lock `st` is) from the class with the most pages,
    /// evicting the items on it. Used when `cls` has nothing of its own to evict, so a class
    /// that came late still gets memory once every page is taken. Never blocks: the other
    /// class and the items' stripes are only tried, and any failure leaves the page where it is
    /// (`Contended` when another thread's lock or store in flight was in the way).
    fn steal_page(&self, cls: usize, st: &mut ClassState, held: &mut Stripe, protect: *mut Item, now: u32) -> Result<(), Shortage> {
        let classes = &self.slabs.classes;
        let mut contended = false;
        let victim = (0..classes.len())
            .filter(|&v| v != cls)
            .filter_map(|v| match lock::try_lock(&classes[v].state) {
                Some(vst) => Some((vst.pages, v)),
                None => {
                    contended = true;
                    None
                }
            })
            .max();
        let Some((_, v)) = victim.filter(|&(pages, _)| pages > 0) else {
            return Err(if contended { Shortage::Contended } else { Shortage::Exhausted });
        };
        let Some(mut vst) = lock::try_lock(&classes[v].state) else {
            return Err(Shortage::Contended);
        };
        let Some((page, carved)) = self.slabs.victim_page(v, &vst) else {
            return Err(Shortage::Exhausted);
        };
        let size = classes[v].size;
        // SAFETY: i < carved <= chunks per page, so the chunk lies inside the page (Memory).
        let chunk = |i: usize| unsafe { page.add(i * size) } as *mut Item;
        // SAFETY: chunk magics are written only under the victim's class lock, which we hold.
        let magic = |it: *mut Item| unsafe { (*it).magic };
        // A chunk handed out but not linked belongs to a store in flight: leave this page.
        if (0..carved).map(chunk).any(|it| it == protect) {
            return Err(Shortage::Exhausted);
        }
        if (0..carved).map(chunk).any(|it| magic(it) == item::TAKEN_MAGIC) {
            return Err(Shortage::Contended);
        }
        for it in (0..carved).map(chunk).filter(|&it| magic(it) == item::ITEM_MAGIC) {
            // SAFETY: a chunk marked ITEM_MAGIC is in the victim's LRU, whose lock we hold, and
            // linked in the stripe its hash names, which the closure is handed.
            if unsafe { self.with_stripe(it, held, |stripe| stripe.remove(it)) }.is_none() {
                return Err(Shortage::Contended);
            }
            // SAFETY: unlinked from its stripe just now, under the victim's class lock: ours to
            // free (Freeing an item); still in the victim's LRU.
            unsafe {
                Self::count_eviction(&mut vst, it, now);
                slab::release(&mut vst, it);
            }
        }
        // SAFETY: every chunk of the page is now free or was never handed out (no TAKEN
        // chunk, every linked one released above), so nothing refers into it and the page may
        // move (Freeing an item).
        unsafe {
            self.slabs.remove_page(&mut vst, page);
            drop(vst);
            self.slabs.give_page(cls, st, page);
        }
        Ok(())
    }

    /// Counts the eviction of a live item (a tombstone's is not counted: it held no data).
    ///
    /// # Safety
    /// `it` is an item of `st`'s class that the caller holds exclusively (unlinked from its
    /// stripe, class lock held).
    unsafe fn count_eviction(st: &mut ClassState, it: *const Item, now: u32) {
        // SAFETY: forwarded caller guarantees.
        let it = unsafe { &*it };
        if it.iflags & item::TOMBSTONE != 0 {
            return;
        }
        st.evicted += 1;
        if it.exptime != 0 {
            st.evicted_nonzero += 1;
        }
        if it.iflags & item::FETCHED == 0 {
            st.evicted_unfetched += 1;
        }
        if it.iflags & item::ACTIVE != 0 {
            st.evicted_active += 1;
        }
        st.evicted_time = u64::from(now.saturating_sub(it.atime.load(Ordering::Relaxed)));
    }

    /// Takes an item, already out of its stripe, off its class LRU and counts; its chunk is
    /// the caller's to reuse.
    ///
    /// # Safety
    /// `it` is in `st`'s LRU and no longer reachable from any stripe.
    unsafe fn drop_from_lru(st: &mut ClassState, it: *mut Item) {
        // SAFETY: forwarded caller guarantees.
        unsafe {
            st.lru.remove(it);
            st.count_unlinked(it);
            (*it).iflags = 0;
            (*it).magic = item::TAKEN_MAGIC;
        }
    }

    /// Runs `f` on the stripe of the LRU item `it` if that stripe can be had without blocking:
    /// it is `held` (the caller's, known by the index it carries, not by the caller's word),
    /// or a `try_lock` succeeds.
    ///
    /// # Safety
    /// `it` is in the LRU of a class whose lock the caller holds.
    unsafe fn with_stripe<T>(&self, it: *const Item, held: &mut Stripe, f: impl FnOnce(&mut Stripe) -> T) -> Option<T> {
        // SAFETY: LRU items stay allocated while the caller holds their class lock, and the
        // hash never changes while an item is linked.
        let idx = self.stripe_index(unsafe { (*it).hash });
        if idx == held.index() {
            return Some(f(held));
        }
        lock::try_lock(&self.stripes[idx].0).map(|mut guard| f(&mut guard))
    }
}
