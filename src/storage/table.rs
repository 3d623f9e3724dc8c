//! The striped hash table: item pointers in chained buckets, split into stripes that each have
//! their own mutex and grow on their own. Owns only bucket arrays (and each stripe's largest
//! version, which its mutex guards for free); it must not allocate or free items, nor touch LRUs.
//!
//! A key's 64-bit hash keeps its high 32 bits in the item header (`item.hash`); of those, the
//! low `log2(stripes)` bits pick the stripe and the bits above pick the bucket within it, so
//! growing a stripe never rehashes a key.

use std::ptr;

use super::item::{self, Item};

/// A stripe stops doubling at this many buckets (2^22 * 1024 stripes is far past any memory).
const MAX_BUCKETS_LOG2: u32 = 22;

pub struct Stripe {
    buckets: Vec<*mut Item>,
    count: usize,
    shift: u32,
    /// This stripe's place in the cache's array: how a caller handing over a stripe it holds
    /// is matched with an item's hash, without trusting an index passed along with it.
    index: usize,
    /// The largest version written under this stripe's lock (see `Cache::max_version`).
    pub max_version: u64,
}

// SAFETY: the pointers are items in slab pages owned by the cache that owns this stripe; they
// are only followed while this stripe's mutex is held.
unsafe impl Send for Stripe {}

impl Stripe {
    /// `shift`: how many low hash bits pick the stripe; `index`: the stripe those bits pick.
    pub fn new(buckets_log2: u32, shift: u32, index: usize) -> Stripe {
        let buckets = vec![ptr::null_mut(); 1 << buckets_log2.min(MAX_BUCKETS_LOG2)];
        Stripe { buckets, count: 0, shift, index, max_version: 0 }
    }

    pub fn index(&self) -> usize {
        self.index
    }

    fn bucket(&self, hash: u32) -> usize {
        ((hash >> self.shift) as usize) & (self.buckets.len() - 1)
    }

    /// The item with this key, if linked here.
    pub fn find(&self, hash: u32, key: &[u8]) -> *mut Item {
        let mut it = self.buckets[self.bucket(hash)];
        while !it.is_null() {
            // SAFETY: chained items are allocated while linked, and we hold the stripe lock
            // (`&self` comes from its guard).
            unsafe {
                if (*it).hash == hash && item::key(it) == key {
                    return it;
                }
                it = (*it).h_next;
            }
        }
        ptr::null_mut()
    }

    /// Links `it` (not linked anywhere yet) at its bucket's head. Growing is left to
    /// `grow_if_crowded`, so that a caller holding a class lock does not rehash under it.
    ///
    /// # Safety
    /// `it` is an allocated item, its header filled, whose key is not in this stripe.
    pub unsafe fn insert(&mut self, it: *mut Item) {
        // SAFETY: the caller hands over an allocated item; its header is ours to write.
        unsafe {
            let idx = self.bucket((*it).hash);
            (*it).h_next = self.buckets[idx];
            self.buckets[idx] = it;
        }
        self.count += 1;
    }

    /// Doubles the buckets when items outnumber them by half again, up to the cap. Returns how
    /// many buckets the stripe gained.
    pub fn grow_if_crowded(&mut self) -> usize {
        if self.count * 2 > self.buckets.len() * 3 && self.buckets.len() < 1 << MAX_BUCKETS_LOG2 {
            let before = self.buckets.len();
            self.grow();
            return self.buckets.len() - before;
        }
        0
    }

    /// Unlinks `it`, which is linked in this stripe (checked: a miss panics).
    ///
    /// # Safety
    /// `it` is an item linked in this stripe.
    pub unsafe fn remove(&mut self, it: *mut Item) {
        // SAFETY: every item on the chain is allocated while linked here.
        unsafe {
            let idx = self.bucket((*it).hash);
            let mut link: *mut *mut Item = &mut self.buckets[idx];
            while !(*link).is_null() {
                if *link == it {
                    *link = (*it).h_next;
                    (*it).h_next = ptr::null_mut();
                    self.count -= 1;
                    return;
                }
                link = &mut (**link).h_next;
            }
        }
        // Freeing an item still linked elsewhere would corrupt that chain: stop (under the
        // stripe lock, the panic aborts).
        panic!("removing an item not in its stripe");
    }

    /// Puts `new` in place of `old` (same key) in the chain.
    ///
    /// # Safety
    /// `old` is linked in this stripe; `new` is allocated, its header filled, for the same key.
    pub unsafe fn replace(&mut self, old: *mut Item, new: *mut Item) {
        // SAFETY: every item on the chain is allocated while linked here.
        unsafe {
            let idx = self.bucket((*old).hash);
            let mut link: *mut *mut Item = &mut self.buckets[idx];
            while !(*link).is_null() {
                if *link == old {
                    (*new).h_next = (*old).h_next;
                    *link = new;
                    (*old).h_next = ptr::null_mut();
                    return;
                }
                link = &mut (**link).h_next;
            }
        }
        panic!("replacing an item not in its stripe");
    }

    /// Calls `f` with every item linked here.
    pub fn for_each(&self, mut f: impl FnMut(*mut Item)) {
        for &head in &self.buckets {
            let mut it = head;
            while !it.is_null() {
                f(it);
                // SAFETY: chained items are allocated while linked, and we hold the stripe lock
                // (`&self` comes from its guard); `f` only reads.
                it = unsafe { (*it).h_next };
            }
        }
    }

    fn grow(&mut self) {
        let mut bigger = vec![ptr::null_mut(); self.buckets.len() * 2];
        let mask = bigger.len() - 1;
        for head in self.buckets.iter().copied() {
            let mut it = head;
            while !it.is_null() {
                // SAFETY: chained items are allocated; we hold the stripe exclusively.
                unsafe {
                    let next = (*it).h_next;
                    let idx = (((*it).hash >> self.shift) as usize) & mask;
                    (*it).h_next = bigger[idx];
                    bigger[idx] = it;
                    it = next;
                }
            }
        }
        self.buckets = bigger;
    }
}

#[cfg(test)]
mod tests {
    use super::Stripe;
    use crate::storage::item::{self, Item};

    /// An item header in a buffer of our own, for the chain operations.
    fn chunk(buf: &mut [u64; 16], hash: u32) -> *mut Item {
        let it = buf.as_mut_ptr().cast::<Item>();
        // SAFETY: 128 aligned bytes hold the header and a one-byte key; only this test uses them.
        unsafe {
            item::init(it, 0, 1, 0, hash, 0);
            (*it).magic = item::ITEM_MAGIC;
            item::key_mut(it).copy_from_slice(b"k");
        }
        it
    }

    #[test]
    fn a_linked_item_is_found_and_removed() {
        let mut stripe = Stripe::new(2, 0, 0);
        let mut buf = [0u64; 16];
        let it = chunk(&mut buf, 7);
        // SAFETY: `it` is a filled header not linked anywhere, then linked here.
        unsafe {
            stripe.insert(it);
            assert_eq!(stripe.find(7, b"k"), it);
            stripe.remove(it);
        }
        assert!(stripe.find(7, b"k").is_null());
    }

    /// Freeing an item the stripe does not hold would leave it in another chain: refused.
    #[test]
    #[should_panic(expected = "not in its stripe")]
    fn removing_an_item_the_stripe_does_not_hold_panics() {
        let mut stripe = Stripe::new(2, 0, 0);
        let mut buf = [0u64; 16];
        let it = chunk(&mut buf, 7);
        // SAFETY: breaks `remove`'s contract on purpose; the stripe reads only empty buckets.
        unsafe { stripe.remove(it) };
    }
}
