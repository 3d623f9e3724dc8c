//! The cache's figures for `stats`, `stats slabs` and `stats items`: summed from the class
//! states (each under its own lock, one at a time) and the cache-wide counters.

use std::sync::atomic::Ordering;

use super::{clock, lock, Cache};

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

impl Cache {
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
}
