//! The storage engine's facade: the only part of `storage` that the rest of the server uses.
//!
//! LOCKING PROTOCOL. The one place it is written down: every `unsafe` block in storage names,
//! in its `// SAFETY:` comment or its function's `# Safety` section, the rule below it relies on.
//! Three kinds of lock, always taken in this order: stripe -> class -> page pool.
//! - Memory. Slab pages are mapped by the page pool and unmapped only when the `Cache` drops;
//!   a page moves between classes but is never given back. A chunk is its class's size,
//!   8-byte aligned, inside one page; an item's header, key and value fit its chunk
//!   (`item::init` is only given a chunk of a class that holds `item::total_size`).
//! - Reaching an item. An item is reached from its stripe's hash chain or from its class's
//!   LRU (and a free chunk from its class's free list). Its key, value, flags, expiry,
//!   version and iflags are read or written only under its stripe lock; its LRU links, its
//!   class counts and its chunk's `magic` only under its class lock. A thread holding only a
//!   class lock may look at an LRU item's `hash` (fixed while linked) and `atime` (atomic),
//!   nothing more, until it has the item's stripe too. A pointer to an item is good only while
//!   one of those locks is held: there are no reference counts, so nothing may keep one past
//!   its lock, and `get` hands callers a view that lives only inside the callback.
//! - Freeing an item. A chunk is freed or reused only by a thread that took its item out of
//!   the hash chain under the stripe lock (so no reader is inside it, and none can reach it
//!   after) and holds its class lock (so the LRU and free list agree). A chunk between `alloc`
//!   and `fill` is TAKEN: in no chain, no LRU and no free list, owned by the one store holding
//!   the stripe it will be linked in. A page moves to another class (`steal_page`) only when
//!   none of its chunks is TAKEN or linked.
//! - Blocking and trying. A thread blocks on at most one stripe and then on one class at a
//!   time. The eviction walker (`alloc`) and `steal_page` run with a stripe and a class
//!   already held, so every *other* stripe, and the victim class in `steal_page`, is only
//!   ever `try_lock`ed: blocking there could deadlock against a thread holding that stripe
//!   and waiting for our class. The caller's own stripe is recognised by the index it
//!   carries (`Stripe::index`) and used directly. Items whose lock cannot be had are skipped,
//!   and `alloc` retries for `ALLOC_PATIENCE` before it answers out of memory.
//! - Stores. A store holds its new item's class lock once: `alloc` takes the chunk and hands
//!   the lock on (in its `Chunk`) to `fill`, whose `link` puts the item in the table and its
//!   LRU and frees an old item of the same class. Key and value are written after, under the
//!   stripe lock alone: every other thread needs that stripe to read the item, even when it
//!   meets it in the LRU.
//! - Panics. Every storage lock is taken through `lock` and held as a `lock::Held`, whose drop
//!   aborts the process if a panic unwinds through it: a half-relinked list must never be
//!   used again, and no storage mutex is ever poisoned.
//!
//! WHAT CALLERS GET.
//! - Keys are 1..=`KEY_MAX_LENGTH` bytes: every public method refuses any other key (a miss,
//!   not stored, not found) rather than trusting its caller. Values are raw bytes with no
//!   trailing "\r\n".
//! - Expiry times handed in and out are absolute unix seconds, 0 meaning never
//!   (see `clock::absolute_expiry` for turning a protocol exptime into one).
//! - Every method is safe to call from many threads at once.
//! - Item memory (slab pages) never exceeds `CacheConfig::memory_limit`.
//!
//! DESIGN. Items live in slab chunks (`slab`, layout in `item`); a key's stripe of the hash
//! table (`table`) points to it, and its class keeps it in an LRU. A get hit only marks the
//! item FETCHED|ACTIVE; the eviction walker later gives an ACTIVE item a second trip to the
//! LRU head instead of relinking on every read. Expired and flushed items are unlinked lazily
//! by whoever meets them (a lookup, a store, the walker). Each item's `version` (a
//! `clock::stamp`) is both its cas unique and its write order, so `flush_all` is a threshold:
//! items older than it are invalid.
//!
//! MODULES. This file: the public types, lookups, delete, touch and the helpers every
//! operation shares. `store` (set/add/replace/append/prepend/cas), `counter` (incr/decr and
//! memcached's reading and writing of the number), `flush` (the `flush_all` thresholds),
//! `stats`; `evict` (`alloc`: free memory, the LRU walk, page stealing) and `lifecycle` (`fill`,
//! `link`, unlinking and freeing), the hard part, readable alone against the protocol above;
//! below them `item` (header layout), `slab` (pages, classes, free lists), `table` (the
//! striped hash chains), `lock` and `clock`.
//!
//! REPLICATION (`replica`): with `tombstone_ttl` > 0 a delete leaves a tombstone (an item
//! flagged `item::TOMBSTONE`) that clients never see. Each public mutating method is split
//! in two: the inner half (`do_*`, `store_silently`) runs under the stripe lock, and the
//! public half tells the `MutationSink` once that lock is released (the sink takes locks of
//! its own, which must never be held around a stripe's).

pub mod clock;
mod counter;
mod evict;
mod flush;
mod item;
mod lifecycle;
mod lock;
mod lookup;
pub mod replica;
#[cfg(test)]
mod replica_tests;
mod slab;
mod stats;
mod store;
mod table;
#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use flush::Flush;
use item::Item;
use lock::Held;
use replica::MutationSink;
use slab::{ClassState, HitCounters, Slabs};
use table::Stripe;

pub use stats::{CacheStats, SlabClassStats};

/// The longest key memcached accepts; the protocols refuse longer ones before they get here.
pub const KEY_MAX_LENGTH: usize = 250;

/// 1024 stripes: enough that handler threads rarely meet on one lock.
#[cfg(not(miri))]
const DEFAULT_STRIPES_LOG2: u32 = 10;
/// memcached's default `hashpower`.
#[cfg(not(miri))]
const DEFAULT_HASH_POWER: u32 = 16;
/// Under Miri, which runs every bucket's initialisation a thousand times slower: a few
/// stripes, so that threads still meet on them, and small tables that must grow.
#[cfg(miri)]
const DEFAULT_STRIPES_LOG2: u32 = 2;
#[cfg(miri)]
const DEFAULT_HASH_POWER: u32 = 4;
const MAX_HASH_POWER: u32 = 32;

/// Start-up parameters of the cache, taken from the command-line settings.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `-m`, in bytes: the most memory slab pages may take.
    pub memory_limit: usize,
    /// `-I`, in bytes: the largest item (header + key + value); also the slab page size when
    /// larger than 1 MiB.
    pub item_size_max: usize,
    /// `-n`: the smallest chunk's space for key + value, in bytes (the first class's chunk is
    /// the item header plus this).
    pub chunk_size: usize,
    /// `-f`: each slab class's chunk is this much larger than the previous one's.
    pub growth_factor: f64,
    /// false with `-M`: answer `NoMemory` instead of evicting.
    pub evict: bool,
    /// false with `-C`: cas uniques are all 0.
    pub use_cas: bool,
    /// `-o hashpower=N`: initial hash table size as a power of two (0: the default).
    pub hash_power: u8,
    /// `-L`: take all memory at start-up, in large pages where the system has them.
    pub large_pages: bool,
    /// Seconds a delete is remembered as a tombstone for replication (0: no tombstones, a
    /// single node).
    pub tombstone_ttl: u32,
}

#[cfg(test)]
impl CacheConfig {
    /// memcached's defaults with this memory limit, for the storage unit tests.
    pub fn test(memory_limit: usize) -> CacheConfig {
        CacheConfig {
            memory_limit,
            item_size_max: 1 << 20,
            chunk_size: 48,
            growth_factor: 1.25,
            evict: true,
            use_cas: true,
            hash_power: 0,
            large_pages: false,
            tombstone_ttl: 0,
        }
    }
}

/// How a store treats an existing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    /// Store only if the item exists and its cas unique is this one.
    Cas(u64),
}

/// What a store may do besides its mode (the meta protocol's extras).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreOptions {
    /// Append/Prepend: store only if the item's cas unique is this one (a set or replace
    /// with a cas is `StoreMode::Cas`).
    pub cas: Option<u64>,
    /// `StoreMode::Cas`: a unique older than the item's stores anyway, marked stale, keeping
    /// the item's expiry and its recacher mark (meta set's I flag).
    pub invalidate: bool,
    /// The key came in base64, so it goes out in base64 (meta's b flag).
    pub key_binary: bool,
}

/// What a store did: memcached's store outcomes, turned into wire words by the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    NotStored,
    /// cas: the item's unique differs.
    Exists,
    /// cas: no such item.
    NotFound,
    /// The item would exceed `item_size_max`. A `Set` also unlinks the old item, as memcached does.
    TooLarge,
    /// No memory, and eviction was impossible or disabled (`-M`). A `Set` also unlinks the old item.
    NoMemory,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
    /// The key was there but its expiry time had passed (counted as a miss and `get_expired`).
    Expired,
    /// The key was there but a `flush_all` invalidated it (a miss and `get_flushed`).
    Flushed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOp {
    Incr,
    Decr,
}

/// What incr/decr did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOutcome {
    /// The new value (incr wraps at 2^64, decr floors at 0).
    Value(u64),
    NotFound,
    /// The cas unique given did not match the item's.
    Exists,
    /// The stored value is not a decimal number (memcached's rules).
    NonNumeric,
    NoMemory,
}

/// What a delete or an invalidation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Done,
    NotFound,
    /// The cas unique given did not match the item's.
    Exists,
}

/// A live item, seen under its lock for the duration of a `Cache::get` callback.
#[derive(Debug)]
pub struct ItemRef<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u32,
    /// 0 when cas is disabled.
    pub cas: u64,
    /// Absolute unix seconds, 0 = never (meta get's t flag; replication ships it).
    pub exptime: u32,
    /// Whether a lookup had fetched the item before this one (meta get's h flag).
    pub fetched: bool,
    /// Unix seconds of the access before this one (meta get's l flag).
    pub last_access: u32,
    /// Marked stale by `invalidate`.
    pub stale: bool,
    /// A client has won the right to recache it (`claim_win`).
    pub win_sent: bool,
    /// The key was stored in base64 (`StoreOptions::key_binary`).
    pub key_binary: bool,
    /// The slab class, numbered as `stats slabs` numbers them (meta debug's cls).
    pub class_id: u32,
    /// Bytes the item takes: header, key and value (meta debug's size).
    pub size: u32,
}

/// One stripe's mutex on a cache line of its own (a pair, for CPUs that fetch lines in
/// pairs): threads locking neighbouring stripes would otherwise bounce one line.
#[repr(align(128))]
struct StripeLock(Mutex<Stripe>);

/// The cache: a striped hash table over slab-allocated items with a per-class LRU.
pub struct Cache {
    hasher: RandomState,
    stripes: Box<[StripeLock]>,
    stripe_mask: u32,
    slabs: Slabs,
    flush: Flush,
    item_size_max: usize,
    memory_limit: usize,
    evict: bool,
    use_cas: bool,
    /// Seconds a delete is remembered (0: deletes leave nothing).
    tombstone_ttl: u32,
    /// Replication's listener; none on a single node.
    sink: OnceLock<Arc<dyn MutationSink>>,
    total_buckets: AtomicU64,
    store_no_memory: AtomicU64,
    store_too_large: AtomicU64,
    apply_dropped: AtomicU64,
}

/// What a key's place in the table holds, once a dead item there has been unlinked.
enum Slot {
    Empty,
    /// An expired or flushed item was there (now unlinked).
    Dead(Lookup),
    Tomb(*mut Item),
    Live(*mut Item),
}

impl Cache {
    /// Builds an empty cache. Errors name the setting at fault (e.g. a growth factor that
    /// yields no classes).
    pub fn new(config: &CacheConfig) -> Result<Cache, String> {
        Cache::with_stripes(config, DEFAULT_STRIPES_LOG2)
    }

    fn with_stripes(config: &CacheConfig, stripes_log2: u32) -> Result<Cache, String> {
        let slabs = Slabs::new(config)?;
        let hash_power = if config.hash_power == 0 { DEFAULT_HASH_POWER } else { u32::from(config.hash_power) };
        if hash_power > MAX_HASH_POWER {
            return Err(format!("hashpower (-o hashpower) must be at most {}, got {}", MAX_HASH_POWER, hash_power));
        }
        let per_stripe_log2 = hash_power.saturating_sub(stripes_log2);
        let stripes: Box<[StripeLock]> =
            (0..1usize << stripes_log2).map(|i| StripeLock(Mutex::new(Stripe::new(per_stripe_log2, stripes_log2, i)))).collect();
        let total_buckets = stripes.len() << per_stripe_log2;
        Ok(Cache {
            hasher: RandomState::new(),
            stripes,
            stripe_mask: (1u32 << stripes_log2) - 1,
            slabs,
            flush: Flush::new(),
            item_size_max: config.item_size_max,
            memory_limit: config.memory_limit,
            evict: config.evict,
            use_cas: config.use_cas,
            tombstone_ttl: config.tombstone_ttl,
            sink: OnceLock::new(),
            total_buckets: AtomicU64::new(total_buckets as u64),
            store_no_memory: AtomicU64::new(0),
            store_too_large: AtomicU64::new(0),
            apply_dropped: AtomicU64::new(0),
        })
    }

    /// TooLarge when the item cannot fit in any chunk (counted as `store_too_large`).
    fn check_space(&self, key_len: usize, value_len: usize) -> Result<(), StoreOutcome> {
        if self.item_fits(key_len, value_len) {
            Ok(())
        } else {
            self.store_too_large.fetch_add(1, Ordering::Relaxed);
            Err(StoreOutcome::TooLarge)
        }
    }

    /// Whether an item with this key and value length would fit in `item_size_max`. The text
    /// parser uses it to refuse a store before reading its data, as memcached does.
    pub fn item_fits(&self, key_len: usize, value_len: usize) -> bool {
        // Counted as memcached counts (its 56-byte header with cas, the key's NUL and the
        // value's "\r\n") so the largest storable value is the same byte for byte.
        let accounted = item::HEADER + key_len + 1 + value_len + 2;
        accounted <= self.item_size_max && item::total_size(key_len, value_len) <= self.slabs.largest()
    }

    /// The value length to ask `item_fits` about: memcached keeps nonzero client flags in 4
    /// more bytes of its item header, so a value with flags may be 4 bytes shorter.
    pub fn sized_value(value_len: usize, flags: u32) -> usize {
        value_len + if flags == 0 { 0 } else { 4 }
    }

    /// Removes the live item, if it has the cas unique `cas` when one is given.
    pub fn delete(&self, key: &[u8], cas: Option<u64>) -> DeleteOutcome {
        if !valid_key(key) {
            return DeleteOutcome::NotFound;
        }
        let hash = self.hash(key);
        let mut stripe = self.lock_stripe(hash);
        let outcome = self.do_delete(&mut stripe, hash, key, cas);
        drop(stripe);
        if outcome == DeleteOutcome::Done {
            self.notify(key);
        }
        outcome
    }

    /// `delete` under the stripe lock the caller holds.
    fn do_delete(&self, stripe: &mut Stripe, hash: u32, key: &[u8], cas: Option<u64>) -> DeleteOutcome {
        let now = clock::now();
        let Slot::Live(it) = self.find(stripe, hash, key, now) else {
            return DeleteOutcome::NotFound;
        };
        // SAFETY: `it` is linked in the stripe we hold, until `remove_live` takes it out.
        unsafe {
            if cas.is_some_and(|unique| unique != self.cas_of(it)) {
                return DeleteOutcome::Exists;
            }
            self.class_hits(it).delete_hits.fetch_add(1, Ordering::Relaxed);
            self.remove_live(stripe, hash, key, it, now);
        }
        DeleteOutcome::Done
    }

    /// Sets a live item's expiry.
    pub fn touch(&self, key: &[u8], exptime: u32) -> Lookup {
        if !valid_key(key) {
            return Lookup::Miss;
        }
        let hash = self.hash(key);
        let mut stripe = self.lock_stripe(hash);
        let found = self.do_touch(&mut stripe, hash, key, exptime);
        drop(stripe);
        if found == Lookup::Hit {
            self.notify(key);
        }
        found
    }

    /// Meta get's win token: marks the live item as having a recacher and returns true, unless
    /// one was already marked (false, as for a missing item). A new store clears it. The mark
    /// keeps the version (memcached keeps the cas) and reaches the peer, which merges it.
    pub fn claim_win(&self, key: &[u8]) -> bool {
        if !valid_key(key) {
            return false;
        }
        let hash = self.hash(key);
        let mut stripe = self.lock_stripe(hash);
        let Slot::Live(it) = self.find(&mut stripe, hash, key, clock::now()) else {
            return false;
        };
        // SAFETY: `it` is linked in the stripe we hold; iflags change only under it.
        let won = unsafe {
            let won = (*it).iflags & item::WIN_SENT == 0;
            (*it).iflags |= item::WIN_SENT;
            won
        };
        drop(stripe);
        if won {
            self.notify(key);
        }
        won
    }

    /// Meta delete's I flag: marks the live item stale (and without a recacher) instead of
    /// removing it, with a new cas unique as memcached gives it, and the expiry when given;
    /// only if it has the cas unique `cas` when one is given.
    pub fn invalidate(&self, key: &[u8], exptime: Option<u32>, cas: Option<u64>) -> DeleteOutcome {
        if !valid_key(key) {
            return DeleteOutcome::NotFound;
        }
        let hash = self.hash(key);
        let mut stripe = self.lock_stripe(hash);
        let Slot::Live(it) = self.find(&mut stripe, hash, key, clock::now()) else {
            return DeleteOutcome::NotFound;
        };
        // SAFETY: `it` is linked in the stripe we hold.
        unsafe {
            if cas.is_some_and(|unique| unique != self.cas_of(it)) {
                return DeleteOutcome::Exists;
            }
            (*it).iflags = ((*it).iflags | item::STALE) & !item::WIN_SENT;
            if let Some(exptime) = exptime {
                (*it).exptime = exptime;
            }
            (*it).version = Self::new_version(&mut stripe);
        }
        drop(stripe);
        self.notify(key);
        DeleteOutcome::Done
    }

    /// `touch` under the stripe lock the caller holds.
    fn do_touch(&self, stripe: &mut Stripe, hash: u32, key: &[u8], exptime: u32) -> Lookup {
        let now = clock::now();
        let it = match self.find(stripe, hash, key, now) {
            Slot::Live(it) => it,
            Slot::Dead(why) => return why,
            Slot::Empty | Slot::Tomb(_) => return Lookup::Miss,
        };
        // SAFETY: `it` is linked in the stripe we hold.
        unsafe {
            (*it).exptime = exptime;
            self.restamp_touched(stripe, it);
            (*it).atime.store(now, Ordering::Relaxed);
            (*it).iflags |= item::FETCHED | item::ACTIVE;
            self.class_hits(it).touch_hits.fetch_add(1, Ordering::Relaxed);
        }
        Lookup::Hit
    }

    /// Tells the sink, if any, that `key` changed; the caller holds no stripe lock.
    fn notify(&self, key: &[u8]) {
        if let Some(sink) = self.sink.get() {
            sink.mutated(key);
        }
    }

    /// A version for a local write to `stripe`, which the caller holds. Recorded there, not
    /// in one cache-wide word, so a write does no shared atomic work but the stamp.
    fn new_version(stripe: &mut Stripe) -> u64 {
        let version = clock::stamp();
        stripe.max_version = stripe.max_version.max(version);
        version
    }

    /// touch/gat: memcached keeps the cas unique, and so does a single node. A replicating
    /// node gives the item a new version, or the peer (which orders by version) would ignore
    /// the new expiry.
    ///
    /// # Safety
    /// `it` is linked in `stripe`, which the caller holds.
    unsafe fn restamp_touched(&self, stripe: &mut Stripe, it: *mut Item) {
        if self.sink.get().is_some() {
            // SAFETY: forwarded caller guarantee.
            unsafe { (*it).version = Self::new_version(stripe) };
        }
    }

    /// The key's item or tombstone, unlinking it first if expired or flushed (a dead tombstone
    /// reads as empty: clients never learn of tombstones).
    fn find(&self, stripe: &mut Stripe, hash: u32, key: &[u8], now: u32) -> Slot {
        let it = stripe.find(hash, key);
        if it.is_null() {
            return Slot::Empty;
        }
        // SAFETY: `stripe.find` returns items linked in it, and the caller holds it (`&mut`).
        let (tomb, dead) = unsafe {
            self.debug_check(it);
            (item::is_tombstone(it), self.dead(it, now))
        };
        match dead {
            Some(_) if tomb => {
                // SAFETY: as above.
                unsafe { self.unlink_free(stripe, it) };
                Slot::Empty
            }
            Some(why) => {
                // SAFETY: as above.
                unsafe { self.unlink_free(stripe, it) };
                Slot::Dead(why)
            }
            None if tomb => Slot::Tomb(it),
            None => Slot::Live(it),
        }
    }

    /// The high 32 bits of the key's hash: what items keep and stripes index by.
    fn hash(&self, key: &[u8]) -> u32 {
        (self.hasher.hash_one(key) >> 32) as u32
    }

    fn stripe_index(&self, hash: u32) -> usize {
        (hash & self.stripe_mask) as usize
    }

    fn lock_stripe(&self, hash: u32) -> Held<'_, Stripe> {
        lock::lock(&self.stripes[self.stripe_index(hash)].0)
    }

    fn lock_class(&self, cls: usize) -> Held<'_, ClassState> {
        lock::lock(&self.slabs.classes[cls].state)
    }

    /// The hit counters of the item's class.
    ///
    /// # Safety
    /// `it` is linked in a stripe the caller holds.
    unsafe fn class_hits(&self, it: *const Item) -> &HitCounters {
        // SAFETY: forwarded caller guarantee.
        let (class, hash) = unsafe { ((*it).class, (*it).hash) };
        self.slabs.classes[usize::from(class)].hits(hash)
    }

    /// The item's cas unique as clients see it.
    ///
    /// # Safety
    /// `it` is linked in a stripe the caller holds.
    unsafe fn cas_of(&self, it: *const Item) -> u64 {
        // SAFETY: forwarded caller guarantee.
        self.cas_for_version(unsafe { (*it).version })
    }

    /// Debug builds: the header's magic is right and the item fits its class's chunk.
    ///
    /// # Safety
    /// `it` is an allocated item the caller holds (its stripe lock, or as its sole owner).
    unsafe fn debug_check(&self, it: *const Item) {
        // SAFETY: forwarded caller guarantee.
        let (class, size) = unsafe {
            item::check(it);
            (usize::from((*it).class), item::size_of(it))
        };
        debug_assert!(class < self.slabs.classes.len() && size <= self.slabs.classes[class].size, "item overruns its chunk");
    }

    /// Why a linked item is no longer valid, if it is not. Flushed wins, as in memcached.
    ///
    /// # Safety
    /// `it` is linked in a stripe the caller holds.
    unsafe fn dead(&self, it: *const Item, now: u32) -> Option<Lookup> {
        // SAFETY: forwarded caller guarantee.
        let (version, exptime) = unsafe { ((*it).version, (*it).exptime) };
        if self.flush.is_flushed(version, now) {
            Some(Lookup::Flushed)
        } else if exptime != 0 && exptime <= now {
            Some(Lookup::Expired)
        } else {
            None
        }
    }
}

/// Whether a key is one the cache stores: 1..=`KEY_MAX_LENGTH` bytes (the item header keeps
/// its length in a byte).
fn valid_key(key: &[u8]) -> bool {
    (1..=KEY_MAX_LENGTH).contains(&key.len())
}
