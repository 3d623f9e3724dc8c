//! The storage engine's facade: the only part of `storage` that the rest of the server uses.
//!
//! CONTRACT (fixed by the skeleton; implementations fill the bodies, callers rely on it):
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
//! by whoever meets them (a lookup, a store, the walker).
//!
//! LOCKING PROTOCOL (the one place it is written down; every `# Safety` section below leans
//! on it). Three kinds of lock, always taken in this order: stripe -> class -> page pool.
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
//!   after) and holds its class lock (so the LRU and free list agree). A chunk between `alloc` and `link` is TAKEN: in no chain, no LRU
//!   and no free list, owned by the one store holding the stripe it will be linked in. A page
//!   moves to another class (`steal_page`) only when none of its chunks is TAKEN or linked.
//! - Blocking and trying. A thread blocks on at most one stripe and then on one class at a
//!   time. The eviction walker (`alloc`) and `steal_page` run with a stripe and a class
//!   already held, so every *other* stripe, and the victim class in `steal_page`, is only
//!   ever `try_lock`ed: blocking there could deadlock against a thread holding that stripe
//!   and waiting for our class. The caller's own stripe is recognised by the index it
//!   carries (`Stripe::index`) and used directly. Items whose lock cannot be had are skipped,
//!   and `alloc` retries for `ALLOC_PATIENCE` before it answers out of memory.
//! - Stores. A store holds its new item's class lock once: `alloc` takes the chunk and hands
//!   the lock to `link`, which puts the item in the table and its LRU and frees an old item of
//!   the same class. Key and value are written after, under the stripe lock alone: every other
//!   thread needs that stripe to read the item, even when it meets it in the LRU.
//! - Panics. Every storage lock is taken through `lock` and held as a `lock::Held`, whose drop
//!   aborts the process if a panic unwinds through it: a half-relinked list must never be
//!   used again, and no storage mutex is ever poisoned.
//!
//! Each item's `version` (a `clock::stamp`) is both its cas unique and its write order, so
//! `flush_all` is a threshold: items older than it are invalid.
//!
//! REPLICATION (`replica`): with `tombstone_ttl` > 0 a delete leaves a tombstone (an item
//! flagged `item::TOMBSTONE`) that clients never see. Each public mutating method is split
//! in two: the inner half (`do_*`, `store_silently`) runs under the stripe lock, and the
//! public half tells the `MutationSink` once that lock is released (the sink takes locks of
//! its own, which must never be held around a stripe's).

pub mod clock;
mod item;
mod lock;
pub mod replica;
#[cfg(test)]
mod replica_tests;
mod slab;
mod table;
#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use item::Item;
use lock::Held;
use replica::MutationSink;
use slab::{ClassState, HitCounters, Slabs};
use table::Stripe;

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

/// Cache-wide figures for `stats`.
#[derive(Debug, Clone, Default)]
pub struct CacheStats {
    pub curr_items: u64,
    pub total_items: u64,
    /// Bytes of key + value + header of live items (memcached's `bytes`).
    pub bytes: u64,
    pub evictions: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub evicted_active: u64,
    /// Bytes of slab pages taken so far (`total_malloced`).
    pub total_malloced: u64,
    pub limit_maxbytes: u64,
    pub hash_power_level: u32,
    pub hash_bytes: u64,
    pub hash_is_expanding: bool,
    /// Stores refused for lack of memory (`store_no_memory`).
    pub store_no_memory: u64,
    /// Stores refused as too large (`store_too_large`).
    pub store_too_large: u64,
    /// `slab_global_page_pool`: pages taken but not yet given to a class.
    pub slab_global_page_pool: u64,
    /// Deletes remembered for replication (not counted in `curr_items` or `bytes`).
    pub tombstones: u64,
    /// Peer entries that could not be stored (no memory, too large).
    pub apply_dropped: u64,
}

/// One slab class, for `stats slabs` and `stats items`.
#[derive(Debug, Clone, Default)]
pub struct SlabClassStats {
    /// Class number, from 1.
    pub id: u32,
    pub chunk_size: u64,
    pub chunks_per_page: u64,
    pub total_pages: u64,
    pub total_chunks: u64,
    pub used_chunks: u64,
    pub free_chunks: u64,
    pub free_chunks_end: u64,
    /// Items linked in this class's LRU.
    pub number: u64,
    /// Seconds since the LRU tail item was last accessed (`age`).
    pub age: u64,
    /// Sum of the exact sizes of live items (`mem_requested`).
    pub mem_requested: u64,
    pub evicted: u64,
    pub evicted_nonzero: u64,
    /// Seconds since the last evicted item had been accessed (`evicted_time`).
    pub evicted_time: u64,
    pub outofmemory: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub evicted_active: u64,
    pub get_hits: u64,
    pub cmd_set: u64,
    pub delete_hits: u64,
    pub incr_hits: u64,
    pub decr_hits: u64,
    pub cas_hits: u64,
    pub cas_badval: u64,
    pub touch_hits: u64,
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

/// `flush_all` thresholds: items with a version below `applied` are invalid; those below
/// `pending_stamp` become invalid once the clock reaches `pending_at` (0 = none pending).
/// Changed only under `writer`.
struct Flush {
    writer: Mutex<()>,
    applied: AtomicU64,
    pending_at: AtomicU32,
    pending_stamp: AtomicU64,
}

impl Flush {
    fn is_flushed(&self, version: u64, now: u32) -> bool {
        if version < self.applied.load(Ordering::Acquire) {
            return true;
        }
        let at = self.pending_at.load(Ordering::Acquire);
        at != 0 && now >= at && version < self.pending_stamp.load(Ordering::Acquire)
    }

    /// Makes a pending flush whose time has come part of `applied`; the caller holds `writer`.
    fn fold_due(&self, now: u32) {
        let at = self.pending_at.load(Ordering::Acquire);
        if at != 0 && now >= at {
            self.applied.fetch_max(self.pending_stamp.load(Ordering::Acquire), Ordering::AcqRel);
            self.pending_at.store(0, Ordering::Release);
        }
    }
}

/// What a key's place in the table holds, once a dead item there has been unlinked.
enum Slot {
    Empty,
    /// An expired or flushed item was there (now unlinked).
    Dead(Lookup),
    Tomb(*mut Item),
    Live(*mut Item),
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
        let stripes: Box<[StripeLock]> = (0..1usize << stripes_log2)
            .map(|i| StripeLock(Mutex::new(Stripe::new(per_stripe_log2, stripes_log2, i))))
            .collect();
        let total_buckets = stripes.len() << per_stripe_log2;
        Ok(Cache {
            hasher: RandomState::new(),
            stripes,
            stripe_mask: (1u32 << stripes_log2) - 1,
            slabs,
            flush: Flush {
                writer: Mutex::new(()),
                applied: AtomicU64::new(0),
                pending_at: AtomicU32::new(0),
                pending_stamp: AtomicU64::new(0),
            },
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
    fn walk(&self, visit: &mut dyn FnMut(Option<*mut Item>)) {
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
        let Some((it, mut st)) = self.alloc(cls, stripe, found, now) else {
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
            // SAFETY: `it` was taken above, under `st`, and never linked or shared.
            unsafe { Slabs::free_chunk(&mut st, it) };
            return (outcome, false, 0);
        }
        // SAFETY: `it` is a fresh chunk of class `cls`, large enough, reachable by no one else
        // until we release the stripe; `old` is linked in the stripe we hold, and a joining
        // store keeps it allocated (`link`'s keep_old) while it reads its value.
        unsafe {
            // What the new item takes from the old, read before `link` may free it.
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
            item::init(it, cls as u8, key.len(), vlen, hash, now);
            self.link(stripe, st, found, it, joining);
            item::key_mut(it).copy_from_slice(key);
            let dst = item::value_mut(it);
            match mode {
                StoreMode::Append => {
                    dst[..old_value.len()].copy_from_slice(old_value);
                    dst[old_value.len()..].copy_from_slice(value);
                }
                StoreMode::Prepend => {
                    dst[..value.len()].copy_from_slice(value);
                    dst[value.len()..].copy_from_slice(old_value);
                }
                _ => dst.copy_from_slice(value),
            }
            (*it).flags = flags;
            (*it).exptime = exptime;
            (*it).iflags |= iflags;
            if opts.key_binary {
                (*it).iflags |= item::KEY_BINARY;
            }
            (*it).version = Self::new_version(stripe);
            if joining {
                self.free_unlinked(old);
            }
        }
        // SAFETY: `it` is linked in the stripe we still hold.
        (StoreOutcome::Stored, true, unsafe { self.cas_of(it) })
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
        // SAFETY: `old` is linked in the stripe we hold (also for the uses below, up to `link`).
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
        let text = format_u64(result, &mut digits);
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
        let Some((it, st)) = self.alloc(cls, stripe, old, now) else {
            self.store_no_memory.fetch_add(1, Ordering::Relaxed);
            return (DeltaOutcome::NoMemory, 0);
        };
        // SAFETY: `it` is a fresh chunk of class `cls` that no one else can reach until we
        // release the stripe; `old` is linked in the stripe we hold until `link` frees it.
        unsafe {
            let (flags, exptime, key_binary) = ((*old).flags, (*old).exptime, (*old).iflags & item::KEY_BINARY);
            item::init(it, cls as u8, key.len(), text.len(), hash, now);
            self.link(stripe, st, old, it, false);
            item::key_mut(it).copy_from_slice(key);
            item::value_mut(it).copy_from_slice(text);
            (*it).flags = flags;
            (*it).exptime = exptime;
            (*it).iflags |= key_binary;
            (*it).version = Self::new_version(stripe);
        }
        // SAFETY: `it` is linked in the stripe we still hold.
        (DeltaOutcome::Value(result), unsafe { self.cas_of(it) })
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

    /// `flush_all`: every item stored before `at` (absolute unix seconds; 0 = now) is invalid
    /// once that time is reached. Items stored later are untouched; a flush that has taken
    /// effect stays in effect when a later delayed flush is scheduled.
    pub fn flush(&self, at: u32) {
        let writer = lock::lock(&self.flush.writer);
        let f = &self.flush;
        let now = clock::now();
        f.fold_due(now);
        f.pending_at.store(0, Ordering::Release);
        if at == 0 {
            f.applied.fetch_max(clock::stamp(), Ordering::AcqRel);
        } else if at <= now {
            // A time already past invalidates what was stored before it, and no more.
            f.applied.fetch_max(clock::stamp_at_secs(at), Ordering::AcqRel);
        } else {
            f.pending_stamp.store(clock::stamp_at_secs(at), Ordering::Release);
            f.pending_at.store(at, Ordering::Release);
        }
        drop(writer);
        if let Some(sink) = self.sink.get() {
            sink.flushed(self.flush_state());
        }
    }

    pub fn stats(&self) -> CacheStats {
        let mut s = CacheStats::default();
        for class in &self.slabs.classes {
            let st = lock::lock(&class.state);
            s.curr_items += st.number;
            s.tombstones += st.tombstones;
            s.total_items += st.total_items;
            s.bytes += st.mem_requested;
            s.evictions += st.evicted;
            s.reclaimed += st.reclaimed;
            s.expired_unfetched += st.expired_unfetched;
            s.evicted_unfetched += st.evicted_unfetched;
            s.evicted_active += st.evicted_active;
        }
        let (assigned, spare) = self.slabs.page_counts();
        s.total_malloced = assigned * self.slabs.page_size as u64;
        s.slab_global_page_pool = spare;
        s.limit_maxbytes = self.memory_limit as u64;
        let buckets = self.total_buckets.load(Ordering::Relaxed);
        s.hash_power_level = 63 - buckets.max(1).leading_zeros();
        s.hash_bytes = buckets * std::mem::size_of::<usize>() as u64;
        s.hash_is_expanding = false;
        s.store_no_memory = self.store_no_memory.load(Ordering::Relaxed);
        s.store_too_large = self.store_too_large.load(Ordering::Relaxed);
        s.apply_dropped = self.apply_dropped.load(Ordering::Relaxed);
        s
    }

    /// Classes that have ever held a page or an item, in class order.
    pub fn slab_stats(&self) -> Vec<SlabClassStats> {
        let now = clock::now();
        (0..self.slabs.classes.len()).filter_map(|idx| self.slabs.class_stats(idx, now)).collect()
    }

    /// `stats reset`: zeroes the counters (evictions, reclaimed, total_items, per-class hits…),
    /// not the gauges (curr_items, bytes, pages).
    pub fn reset_stats(&self) {
        self.slabs.reset_stats();
        self.store_no_memory.store(0, Ordering::Relaxed);
        self.store_too_large.store(0, Ordering::Relaxed);
        self.apply_dropped.store(0, Ordering::Relaxed);
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
        debug_assert!(
            class < self.slabs.classes.len() && size <= self.slabs.classes[class].size,
            "item overruns its chunk"
        );
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

    /// Unlinks a linked item from its stripe and LRU and frees its chunk.
    ///
    /// # Safety
    /// `it` is linked in `stripe` (which, being `&mut`, the caller holds).
    unsafe fn unlink_free(&self, stripe: &mut Stripe, it: *mut Item) {
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
    unsafe fn free_unlinked(&self, it: *mut Item) {
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
    unsafe fn link(
        &self,
        stripe: &mut Stripe,
        mut st: Held<'_, ClassState>,
        old: *mut Item,
        new: *mut Item,
        keep_old: bool,
    ) {
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

    /// A chunk of class `cls`: free or new memory first, else reclaim or evict from the LRU
    /// tail. The caller holds `held` (the stripe it is storing in); `protect` is never evicted. The
    /// class lock comes back still held, for `link` or for freeing the chunk at once.
    ///
    /// The walk only tries the locks of other stripes and classes (the caller holds a stripe,
    /// so blocking could deadlock). When it found memory only behind a lock another thread
    /// holds, it lets go of the class lock and tries again, for up to `ALLOC_PATIENCE`: a
    /// store answers out of memory only when there is nothing to take, as in memcached.
    fn alloc(
        &self,
        cls: usize,
        held: &mut Stripe,
        protect: *mut Item,
        now: u32,
    ) -> Option<(*mut Item, Held<'_, ClassState>)> {
        let mut since: Option<Instant> = None;
        loop {
            let (got, mut st) = self.try_alloc(cls, held, protect, now);
            match got {
                Ok(it) => return Some((it, st)),
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
            // SAFETY: LRU items stay allocated while we hold the class lock.
            cursor = unsafe { (*it).prev };
            if it == protect {
                continue;
            }
            if !candidate.is_null() {
                past_candidate += 1;
            }
            // SAFETY: `it` is in the LRU of the class we hold; the closure gets its stripe, in
            // which it is linked.
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
                    // SAFETY: unlinked from its stripe just now; still in this class's LRU.
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
                    // SAFETY: unlinked from its stripe just now; still in this class's LRU.
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
    fn steal_page(
        &self,
        cls: usize,
        st: &mut ClassState,
        held: &mut Stripe,
        protect: *mut Item,
        now: u32,
    ) -> Result<(), Shortage> {
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
        // SAFETY: i < carved <= chunks per page, so the chunk lies inside the page.
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
            // SAFETY: unlinked from its stripe just now; still in the victim's LRU.
            unsafe {
                Self::count_eviction(&mut vst, it, now);
                slab::release(&mut vst, it);
            }
        }
        // SAFETY: every chunk of the page is now free or was never handed out (no TAKEN
        // chunk, every linked one released above), so nothing refers into it.
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

/// Whether a key is one the cache stores: 1..=`KEY_MAX_LENGTH` bytes (the item header keeps
/// its length in a byte).
fn valid_key(key: &[u8]) -> bool {
    (1..=KEY_MAX_LENGTH).contains(&key.len())
}

/// memcached's reading of a counter (C's strtoull plus its checks): optional leading white
/// space, an optional sign, at least one digit, no overflow, then the end, white space or a
/// NUL. A number of 2^63 or more is refused when a minus sign comes before the first NUL
/// (memcached's strchr; without a NUL it reads past the value into stale memory, which we do
/// not follow). A value of only white space is refused (memcached reads past it too).
fn parse_counter(value: &[u8]) -> Option<u64> {
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let mut i = value.iter().take_while(|&&c| is_space(c)).count();
    let negative = match value.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut n: u64 = 0;
    while let Some(&c) = value.get(i).filter(|c| c.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        i += 1;
    }
    if i == start {
        return None;
    }
    if let Some(&c) = value.get(i) {
        if !is_space(c) && c != 0 {
            return None;
        }
    }
    let n = if negative { n.wrapping_neg() } else { n };
    let c_string = value.split(|&c| c == 0).next().unwrap_or_default();
    if n > i64::MAX as u64 && c_string.contains(&b'-') {
        return None;
    }
    Some(n)
}

/// Writes `n` in decimal into `buf` without allocating; returns the digits.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}
