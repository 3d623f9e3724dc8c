//! The storage engine's facade: the only part of `storage` that the rest of the server uses.
//!
//! CONTRACT (fixed by the skeleton; implementations fill the bodies, callers rely on it):
//! - Keys are 1..=250 bytes (callers check). Values are raw bytes with no trailing "\r\n".
//! - Expiry times handed in and out are absolute unix seconds, 0 meaning never
//!   (see `clock::absolute_expiry` for turning a protocol exptime into one).
//! - Every method is safe to call from many threads at once.
//! - Item memory (slab pages) never exceeds `CacheConfig::memory_limit`.

pub mod clock;

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
    /// The stored value is not a decimal number (memcached's rules).
    NonNumeric,
    NoMemory,
}

/// A live item, seen under its lock for the duration of a `Cache::get` callback.
#[derive(Debug)]
pub struct ItemRef<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u32,
    /// 0 when cas is disabled.
    pub cas: u64,
    /// Absolute unix seconds, 0 = never.
    pub exptime: u32,
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

/// The cache: a striped hash table over slab-allocated items with a per-class LRU.
pub struct Cache {}

impl Cache {
    /// Builds an empty cache. Errors name the setting at fault (e.g. a growth factor that
    /// yields no classes).
    pub fn new(config: &CacheConfig) -> Result<Cache, String> {
        let _ = config;
        todo!()
    }

    /// Whether an item with this key and value length would fit in `item_size_max`. The text
    /// parser uses it to refuse a store before reading its data, as memcached does.
    pub fn item_fits(&self, key_len: usize, value_len: usize) -> bool {
        let _ = (key_len, value_len);
        todo!()
    }

    /// Looks `key` up. On a hit, first sets the expiry to `touch` when given (gat/gats), marks
    /// the item fetched and active, then calls `f` with the item under its lock and returns its
    /// result. `f` must be quick (copy the value out, nothing else).
    pub fn get<R>(&self, key: &[u8], touch: Option<u32>, f: impl FnOnce(&ItemRef) -> R) -> (Lookup, Option<R>) {
        let _ = (key, touch, f);
        todo!()
    }

    /// Stores an item. Append/prepend keep the old item's flags and expiry and ignore the ones
    /// given. A successful store gives the item a new cas unique.
    pub fn store(&self, mode: StoreMode, key: &[u8], flags: u32, exptime: u32, value: &[u8]) -> StoreOutcome {
        let _ = (mode, key, flags, exptime, value);
        todo!()
    }

    /// Removes the item; `Hit` if there was a live one.
    pub fn delete(&self, key: &[u8]) -> Lookup {
        let _ = key;
        todo!()
    }

    /// incr/decr as memcached: the value must be a decimal number of at most 20 digits; a
    /// result no longer than the old value is written in place, padded with trailing spaces to
    /// the old length; a longer one replaces the item. Either way the cas unique changes.
    pub fn delta(&self, key: &[u8], op: DeltaOp, amount: u64) -> DeltaOutcome {
        let _ = (key, op, amount);
        todo!()
    }

    /// Sets a live item's expiry.
    pub fn touch(&self, key: &[u8], exptime: u32) -> Lookup {
        let _ = (key, exptime);
        todo!()
    }

    /// `flush_all`: every item stored before `at` (absolute unix seconds; 0 = now) is invalid
    /// once that time is reached. Items stored later are untouched; a flush that has taken
    /// effect stays in effect when a later delayed flush is scheduled.
    pub fn flush(&self, at: u32) {
        let _ = at;
        todo!()
    }

    pub fn stats(&self) -> CacheStats {
        todo!()
    }

    /// Classes that have ever held a page or an item, in class order.
    pub fn slab_stats(&self) -> Vec<SlabClassStats> {
        todo!()
    }

    /// `stats reset`: zeroes the counters (evictions, reclaimed, total_items, per-class hits…),
    /// not the gauges (curr_items, bytes, pages).
    pub fn reset_stats(&self) {
        todo!()
    }
}
