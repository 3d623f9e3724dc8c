//! An item's way into the table and out of it: `fill` makes a chunk that `alloc` took into a
//! linked item (the one place a new item is written), `link` puts it in its stripe and LRU,
//! and `unlink_free` / `free_unlinked` give a chunk back. Each step holds the locks the
//! module doc's LOCKING PROTOCOL names ("Freeing an item", "Stores").

use std::sync::atomic::Ordering;

use super::evict::Chunk;
use super::item::{self, Item};
use super::lock::Held;
use super::slab::{self, ClassState};
use super::table::Stripe;
use super::Cache;

/// What a new item holds besides its key and value bytes: written by `Cache::fill`.
pub(super) struct NewItem<'a> {
    pub key: &'a [u8],
    /// The key's hash (`Cache::hash`).
    pub hash: u32,
    /// The value's length; `fill`'s `write_value` gets exactly this many bytes.
    pub vlen: usize,
    pub flags: u32,
    pub exptime: u32,
    /// Its cas unique and write order: a new `Cache::new_version` for a local write, the
    /// peer's for an applied one.
    pub version: u64,
    /// `item::TOMBSTONE`, `STALE`, `WIN_SENT`, `KEY_BINARY`.
    pub iflags: u8,
    /// Its last access: now.
    pub atime: u32,
}

impl Cache {
    /// Makes the chunk `alloc` took into the item `new`, in the table in place of `old` (or
    /// alone when null) and at its LRU head, freeing `old` unless `keep_old` (see `link`).
    /// The header and iflags are set before `link` (its counts depend on `TOMBSTONE`); the key,
    /// the value (`write_value` gets its `vlen` bytes) and the rest of the header after, under
    /// the stripe lock alone, so that no class lock is held while the value is copied. Returns
    /// the item, linked in `stripe`.
    ///
    /// # Safety
    /// The caller holds `stripe`'s lock, which `new.key` hashes to; `chunk` came from `alloc`
    /// for a class whose chunks hold `item::total_size(new.key.len(), new.vlen)` bytes; `old`
    /// is null or linked in `stripe` with the same key.
    pub(super) unsafe fn fill(
        &self,
        stripe: &mut Stripe,
        chunk: Chunk<'_>,
        old: *mut Item,
        keep_old: bool,
        new: &NewItem,
        write_value: impl FnOnce(&mut [u8]),
    ) -> *mut Item {
        let Chunk { it, cls, st } = chunk;
        // SAFETY: `it` is TAKEN, large enough, and reachable by no one else until we release the
        // stripe (LOCKING PROTOCOL: Stores); `link`'s other conditions are the caller's, and
        // its header is filled by `item::init` just before.
        unsafe {
            item::init(it, cls as u8, new.key.len(), new.vlen, new.hash, new.atime);
            (*it).iflags = new.iflags;
            self.link(stripe, st, old, it, keep_old);
            item::key_mut(it).copy_from_slice(new.key);
            write_value(item::value_mut(it));
            (*it).flags = new.flags;
            (*it).exptime = new.exptime;
            (*it).version = new.version;
        }
        it
    }

    /// Unlinks a linked item from its stripe and LRU and frees its chunk.
    ///
    /// # Safety
    /// `it` is linked in `stripe` (which, being `&mut`, the caller holds).
    pub(super) unsafe fn unlink_free(&self, stripe: &mut Stripe, it: *mut Item) {
        // SAFETY: forwarded caller guarantee.
        unsafe {
            stripe.remove(it);
            self.free_unlinked(it);
        }
    }

    /// Takes an item already out of its stripe off its LRU and frees its chunk.
    ///
    /// # Safety
    /// `it` is allocated and out of the table, and the caller holds the stripe it was in.
    pub(super) unsafe fn free_unlinked(&self, it: *mut Item) {
        // SAFETY: forwarded caller guarantees; the class lock is taken after the stripe.
        unsafe {
            let mut st = self.lock_class(usize::from((*it).class));
            slab::release(&mut st, it);
        }
    }

    /// Puts `new` in the table in place of `old` (or alone when null) and at its LRU head,
    /// and frees `old` unless `keep_old`: in the same hold of the class lock `st` that `alloc`
    /// took `new` under, when `old` shares the class (an overwrite, most often). The caller
    /// writes the key, value and the rest of the header afterwards, before it releases the
    /// stripe: until then no other thread can read the item, as that takes the stripe. A kept
    /// `old` is out of the table but allocated, for the caller to read and `free_unlinked`.
    ///
    /// # Safety
    /// The caller holds `stripe`'s lock; `old` is null or linked there with the same key;
    /// `new` was taken by `alloc` under `st` and its header filled by `item::init` (and marked
    /// `TOMBSTONE` if it is one, which its counts depend on).
    unsafe fn link(&self, stripe: &mut Stripe, mut st: Held<'_, ClassState>, old: *mut Item, new: *mut Item, keep_old: bool) {
        // SAFETY: forwarded caller guarantees; `old`'s class lock, when not `st`, is taken
        // only once `st` is released (one class at a time).
        unsafe {
            self.debug_check(new);
            if old.is_null() {
                stripe.insert(new);
            } else {
                stripe.replace(old, new);
            }
            (*new).magic = item::ITEM_MAGIC;
            st.lru.push_head(new);
            st.count_linked(new);
            if !item::is_tombstone(new) {
                st.total_items += 1;
            }
            let free_old = !old.is_null() && !keep_old;
            let same_class = free_old && (*old).class == (*new).class;
            if same_class {
                slab::release(&mut st, old);
            }
            drop(st);
            if free_old && !same_class {
                self.free_unlinked(old);
            }
        }
        let grown = stripe.grow_if_crowded();
        if grown > 0 {
            self.total_buckets.fetch_add(grown as u64, Ordering::Relaxed);
        }
    }
}
