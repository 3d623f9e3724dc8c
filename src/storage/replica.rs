//! What replication needs from the cache: each key's replicable state (`Entry`), applying a
//! peer's entry by last-writer-wins on versions, scanning for what changed since a version,
//! the flush state, and the sink told of every local mutation. It knows nothing of sockets or
//! of the wire format.
//!
//! These types and `Cache` methods are the interface `replication` is written against (with
//! the facade's and `clock`'s).
//!
//! Tombstones (only when `CacheConfig::tombstone_ttl` > 0) are items flagged
//! `item::TOMBSTONE`: the key, the delete's version, no value, expiring after the ttl. They
//! live in slab chunks and LRUs like tiny items (evictable, never counted as items), and every
//! client command treats them as missing. Locking is the facade's: a key's stripe lock covers
//! its item or tombstone.

use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::item::{self, Item};
use super::lifecycle::NewItem;
use super::table::Stripe;
use super::{clock, lock, valid_key, Cache, DeltaOp, DeltaOutcome, Slot};

/// One key's replicable state: its item, or its deletion, with the version that orders it.
/// Versions are `clock::stamp`s: unique across the pair, and later writes have larger ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `marks`: the meta protocol's `MARK_*` bits.
    Item { key: Vec<u8>, flags: u32, exptime: u32, version: u64, marks: u8, value: Vec<u8> },
    /// A tombstone: the key was deleted at `version`.
    Deleted { key: Vec<u8>, version: u64 },
}

/// Invalidated (meta delete's I): served, marked stale, until replaced.
pub const MARK_STALE: u8 = 1;
/// A client has been told it won the right to recache the item.
pub const MARK_WIN_SENT: u8 = 2;
/// The key was sent in base64 and is shown in base64.
pub const MARK_KEY_BINARY: u8 = 4;
/// Every mark.
pub const MARKS: u8 = MARK_STALE | MARK_WIN_SENT | MARK_KEY_BINARY;

/// An item's flags as marks, and back.
const MARK_BITS: [(u8, u8); 3] = [(MARK_STALE, item::STALE), (MARK_WIN_SENT, item::WIN_SENT), (MARK_KEY_BINARY, item::KEY_BINARY)];

fn marks_of(iflags: u8) -> u8 {
    MARK_BITS.iter().filter(|&&(_, bit)| iflags & bit != 0).fold(0, |marks, &(mark, _)| marks | mark)
}

fn iflags_of(marks: u8) -> u8 {
    MARK_BITS.iter().filter(|&&(mark, _)| marks & mark != 0).fold(0, |iflags, &(_, bit)| iflags | bit)
}

impl Entry {
    pub fn key(&self) -> &[u8] {
        match self {
            Entry::Item { key, .. } | Entry::Deleted { key, .. } => key,
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Entry::Item { version, .. } | Entry::Deleted { version, .. } => *version,
        }
    }
}

/// The flush state: every item with a version below `applied` is invalid; `pending`, if any,
/// is a delayed flush (threshold, unix second it takes effect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlushState {
    pub applied: u64,
    pub pending: Option<(u64, u32)>,
}

/// Told of local mutations (client writes), never of entries applied from the peer. Called
/// after the stripe lock is released; must be quick and must not call back into the cache.
pub trait MutationSink: Send + Sync {
    /// `key` was stored, changed (incr/decr/append/touch/gat…) or deleted.
    fn mutated(&self, key: &[u8]);
    /// A `flush_all` changed the flush state.
    fn flushed(&self, state: FlushState);
}

/// Where a client's incr/decr runs: declared here, below the protocol that calls it and the
/// replication that implements it. The replication sends the delta of a key the peer owns to
/// the peer, so that increments made on both nodes at once are all counted.
pub trait DeltaRouter: Send + Sync {
    /// The outcome of the delta (checked against `cas` when given) run by the key's owner,
    /// with the resulting cas unique (its item already applied here), or None: run it locally
    /// (this node owns the key, or no peer answered in time).
    fn delta(&self, key: &[u8], op: DeltaOp, amount: u64, cas: Option<u64>) -> Option<(DeltaOutcome, u64)>;
}

impl Cache {
    /// Installs the sink (once, before any client is served; a second sink is ignored).
    pub fn set_sink(&self, sink: Arc<dyn MutationSink>) {
        let _ = self.sink.set(sink);
    }

    /// The key's current replicable state: its live item, its tombstone, or None (never
    /// stored, expired, flushed, evicted, or a tombstone past its time).
    pub fn entry(&self, key: &[u8]) -> Option<Entry> {
        if !valid_key(key) {
            return None;
        }
        let hash = self.hash(key);
        let mut stripe = self.lock_stripe(hash);
        match self.find(&mut stripe, hash, key, clock::now()) {
            // SAFETY: linked in the stripe we hold.
            Slot::Live(it) | Slot::Tomb(it) => Some(unsafe { entry_of(it) }),
            Slot::Empty | Slot::Dead(_) => None,
        }
    }

    /// Applies a peer's entry when it is newer than what the key holds (item or tombstone):
    /// the larger version wins. Equal versions are the same write, perhaps marked since on
    /// one side (a win token handed out keeps the version): the marks are merged. The applied
    /// item keeps the entry's version as its cas unique. Does not tell the sink. Returns
    /// whether the entry was applied. Memory is found as for a store
    /// (eviction); an entry that cannot be stored is counted and dropped.
    pub fn apply(&self, entry: &Entry) -> bool {
        let key = entry.key();
        let version = entry.version();
        if !valid_key(key) || !clock::plausible(version) {
            self.apply_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // The receive rule: later local writes order after this one, applied or not.
        clock::observe(version);
        let hash = self.hash(key);
        let mut guard = self.lock_stripe(hash);
        let stripe = &mut *guard;
        let now = clock::now();
        let found = match self.find(stripe, hash, key, now) {
            Slot::Live(it) | Slot::Tomb(it) => it,
            Slot::Empty | Slot::Dead(_) => ptr::null_mut(),
        };
        // SAFETY: `found` is linked in the stripe we hold; iflags change only under it.
        if !found.is_null() && unsafe { (*found).version } >= version {
            if let Entry::Item { marks, .. } = entry {
                // SAFETY: as above.
                unsafe {
                    if (*found).version == version && !item::is_tombstone(found) {
                        (*found).iflags |= iflags_of(*marks);
                    }
                }
            }
            return false;
        }
        // SAFETY: `found` is null or linked in the stripe we hold.
        let applied = unsafe { self.apply_newer(stripe, hash, entry, found, now) };
        if applied {
            stripe.max_version = stripe.max_version.max(version);
        }
        applied
    }

    /// `apply` once the entry is known to be newer than `found`.
    ///
    /// # Safety
    /// `found` is null, or linked in `stripe` (which, being `&mut`, the caller holds).
    unsafe fn apply_newer(&self, stripe: &mut Stripe, hash: u32, entry: &Entry, found: *mut Item, now: u32) -> bool {
        let (key, version) = (entry.key(), entry.version());
        // Nothing frees `found` before its last use below (a failed `store_applied` leaves it
        // linked).
        match entry {
            Entry::Deleted { .. } => {
                if self.tombstone_ttl == 0 {
                    if !found.is_null() {
                        // SAFETY: `found` is linked in `stripe`, which the caller holds.
                        unsafe { self.unlink_free(stripe, found) };
                    }
                    return true;
                }
                // SAFETY: `found` is null or linked in `stripe` under this key.
                let buried = unsafe { self.bury(stripe, hash, key, found, version, now) };
                if !buried {
                    self.apply_dropped.fetch_add(1, Ordering::Relaxed);
                }
                buried
            }
            Entry::Item { exptime, .. } => {
                if self.flush.is_flushed(version, now) {
                    return false;
                }
                if *exptime != 0 && *exptime <= now {
                    // Already expired: it only hides what it overwrote.
                    if !found.is_null() {
                        // SAFETY: `found` is linked in `stripe`, which the caller holds.
                        unsafe { self.unlink_free(stripe, found) };
                    }
                    return true;
                }
                // SAFETY: `found` is null or linked in `stripe` under this key.
                let stored = unsafe { self.store_applied(stripe, hash, found, entry) };
                if !stored {
                    self.apply_dropped.fetch_add(1, Ordering::Relaxed);
                    // The peer has a newer write than ours: better no item than a stale one.
                    if !found.is_null() {
                        // SAFETY: still linked in `stripe`: a failed `store_applied` leaves it.
                        unsafe { self.unlink_free(stripe, found) };
                    }
                }
                stored
            }
        }
    }

    /// Calls `f` with every live item and tombstone whose version is above `since`, one
    /// stripe at a time, holding no lock while `f` runs.
    pub fn scan_since(&self, since: u64, f: &mut dyn FnMut(Entry)) {
        let mut batch = Vec::new();
        self.walk(&mut |seen| match seen {
            // SAFETY: `walk` hands out items linked in the stripe it holds during the call.
            Some(it) => unsafe {
                if (*it).version > since {
                    batch.push(entry_of(it));
                }
            },
            None => batch.drain(..).for_each(&mut *f),
        });
    }

    /// The flush state, a delayed flush whose time has come counted as applied.
    pub fn flush_state(&self) -> FlushState {
        self.flush.state()
    }

    /// Merges the peer's flush state into ours (the larger applied threshold; the later
    /// pending flush). Does not tell the sink.
    pub fn apply_flush(&self, state: FlushState) {
        self.flush.merge(state);
    }

    /// The cas unique clients see for an item at `version` (0 with cas disabled, `-C`).
    pub fn cas_for_version(&self, version: u64) -> u64 {
        if self.use_cas {
            version
        } else {
            0
        }
    }

    /// The largest version this cache has stored or applied: a node reports it so the peer
    /// knows what it already has. Takes each stripe's lock in turn (a handshake's cost, not a
    /// write's).
    pub fn max_version(&self) -> u64 {
        self.stripes.iter().map(|stripe| lock::lock(&stripe.0).max_version).max().unwrap_or(0)
    }

    /// Takes a live item out for a client (delete, a failed set): a tombstone at a new version
    /// takes its place when tombstones are on.
    ///
    /// # Safety
    /// `it` is a live item with this key and hash, linked in `stripe`.
    pub(super) unsafe fn remove_live(&self, stripe: &mut Stripe, hash: u32, key: &[u8], it: *mut Item, now: u32) {
        // SAFETY: forwarded caller guarantee.
        unsafe {
            if self.tombstone_ttl == 0 {
                self.unlink_free(stripe, it);
            } else {
                let version = Self::new_version(stripe);
                self.bury(stripe, hash, key, it, version, now);
            }
        }
    }

    /// Leaves a tombstone for `key` at `version` in place of `found` (null, or linked in
    /// `stripe`, which the caller holds). A tombstone is updated in place; otherwise a chunk
    /// of the smallest fitting class is taken, and when none can be had the old item's chunk
    /// becomes the tombstone. False only when there was nothing to reuse and no memory.
    ///
    /// # Safety
    /// `found` is null, or linked in `stripe` under this key.
    unsafe fn bury(&self, stripe: &mut Stripe, hash: u32, key: &[u8], found: *mut Item, version: u64, now: u32) -> bool {
        let exptime = now.saturating_add(self.tombstone_ttl);
        // SAFETY: `found`, when non-null, is linked in the stripe we hold.
        let (found_tomb, found_class) =
            if found.is_null() { (false, None) } else { unsafe { (item::is_tombstone(found), Some((*found).class)) } };
        if found_tomb {
            // SAFETY: as above; version and exptime are read only under the stripe lock.
            unsafe {
                (*found).version = version;
                (*found).exptime = exptime;
            }
            return true;
        }
        let fresh = match self.slabs.class_for(item::total_size(key.len(), 0)) {
            Some(cls) if found_class != Some(cls as u8) => self.alloc(cls, stripe, found, now),
            _ => None,
        };
        match fresh {
            Some(chunk) => {
                let new = NewItem { key, hash, vlen: 0, flags: 0, exptime, version, iflags: item::TOMBSTONE, atime: now };
                // SAFETY: the chunk comes from `alloc` for a class that fits the key; `found` is
                // null or linked in the stripe we hold under this key.
                unsafe { self.fill(stripe, chunk, found, false, &new, |_| {}) };
                true
            }
            None if !found.is_null() => {
                // SAFETY: `found` is a live item linked in the stripe we hold.
                unsafe { self.entomb(found, version, exptime, now) };
                true
            }
            None => false,
        }
    }

    /// Turns a live item into a tombstone in its own chunk, and moves it to its LRU head.
    ///
    /// # Safety
    /// `it` is a live item linked in a stripe the caller holds.
    unsafe fn entomb(&self, it: *mut Item, version: u64, exptime: u32, now: u32) {
        // SAFETY: forwarded caller guarantee; the class lock guards the counts and the LRU,
        // and the walker reads the header only with the stripe, which we hold.
        unsafe {
            let mut st = self.lock_class(usize::from((*it).class));
            st.count_unlinked(it);
            (*it).vlen = 0;
            (*it).iflags = item::TOMBSTONE;
            (*it).version = version;
            (*it).exptime = exptime;
            (*it).atime.store(now, Ordering::Relaxed);
            st.count_linked(it);
            st.lru.remove(it);
            st.lru.push_head(it);
        }
    }

    /// Stores a peer's item in place of `found` with exactly its flags, expiry and version.
    /// False when it does not fit or no memory can be had (`found` is then left linked).
    ///
    /// # Safety
    /// `found` is null, or linked in `stripe` under the entry's key.
    unsafe fn store_applied(&self, stripe: &mut Stripe, hash: u32, found: *mut Item, entry: &Entry) -> bool {
        let Entry::Item { key, flags, exptime, version, marks, value } = entry else {
            return false;
        };
        let size = item::total_size(key.len(), value.len());
        let cls = match self.slabs.class_for(size) {
            Some(cls) if self.item_fits(key.len(), value.len()) => cls,
            _ => return false,
        };
        let now = clock::now();
        let Some(chunk) = self.alloc(cls, stripe, found, now) else {
            return false;
        };
        let new = NewItem {
            key,
            hash,
            vlen: value.len(),
            flags: *flags,
            exptime: *exptime,
            version: *version,
            iflags: iflags_of(*marks),
            atime: now,
        };
        // SAFETY: the chunk comes from `alloc` for class `cls`, which fits the key and value;
        // `found` is null or linked in the stripe we hold under this key.
        unsafe { self.fill(stripe, chunk, found, false, &new, |dst| dst.copy_from_slice(value)) };
        true
    }
}

/// A copy of a linked item's or tombstone's replicable state.
///
/// # Safety
/// `it` is linked in a stripe the caller holds.
unsafe fn entry_of(it: *const Item) -> Entry {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        let key = item::key(it).to_vec();
        let version = (*it).version;
        if item::is_tombstone(it) {
            Entry::Deleted { key, version }
        } else {
            Entry::Item {
                key,
                flags: (*it).flags,
                exptime: (*it).exptime,
                version,
                marks: marks_of((*it).iflags),
                value: item::value(it).to_vec(),
            }
        }
    }
}
