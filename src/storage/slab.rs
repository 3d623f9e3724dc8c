//! The slab allocator: page pool, slab classes, per-class free lists and LRUs. Owns all item
//! memory; it must not look into the hash table (eviction, which needs both, lives in
//! `storage`'s facade).
//!
//! A page is `page_size` bytes (1 MiB, or `item_size_max` when larger) given whole to one
//! class and cut into equal chunks from its start; chunks are handed out from the page's end
//! pointer, and freed chunks go to the class free list:
//!
//! ```text
//! page: | chunk 0 | chunk 1 | ... | chunk n-1 | slack (< one chunk) |
//!                            ^ end pointer: chunks from here were never used
//! ```

use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::item::{self, Item, Lru, FREE_MAGIC, HEADER, ITEM_MAGIC, TAKEN_MAGIC};
use super::lock;
use super::{CacheConfig, SlabClassStats};

const MIN_PAGE_SIZE: usize = 1 << 20;
/// Class ids must fit the header's u8.
const MAX_CLASSES: usize = 63;

/// Shards of each class's hit counters, picked by key hash, so threads hitting one class do
/// not all bounce one cache line.
const HIT_SHARDS: usize = 8;

/// Counters bumped outside the class lock (by the facade, under a stripe lock); one cache
/// line per shard.
#[derive(Default)]
#[repr(align(64))]
pub struct HitCounters {
    pub get_hits: AtomicU64,
    pub cmd_set: AtomicU64,
    pub delete_hits: AtomicU64,
    pub incr_hits: AtomicU64,
    pub decr_hits: AtomicU64,
    pub cas_hits: AtomicU64,
    pub cas_badval: AtomicU64,
    pub touch_hits: AtomicU64,
}

/// Everything about one class that its mutex guards.
pub struct ClassState {
    free: *mut Item,
    free_count: u64,
    end: *mut u8,
    end_left: u64,
    pub pages: u64,
    /// The pages this class holds, so one can be given to another class.
    page_list: Vec<*mut u8>,
    pub lru: Lru,
    /// Items linked (curr_items for this class), tombstones not included.
    pub number: u64,
    /// Bytes of linked items, tombstones not included.
    pub mem_requested: u64,
    /// Tombstones linked.
    pub tombstones: u64,
    pub total_items: u64,
    pub evicted: u64,
    pub evicted_nonzero: u64,
    pub evicted_time: u64,
    pub outofmemory: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub evicted_active: u64,
}

// SAFETY: the raw pointers point into slab pages owned by the `Slabs` that owns this state;
// they are only followed while holding the state's mutex (or a stripe lock, per the lock rules).
unsafe impl Send for ClassState {}

impl ClassState {
    /// Counts an item (or tombstone) being linked.
    ///
    /// # Safety
    /// `it` is an allocated item of this class, held by the caller.
    pub unsafe fn count_linked(&mut self, it: *const Item) {
        // SAFETY: forwarded caller guarantees.
        unsafe {
            if item::is_tombstone(it) {
                self.tombstones += 1;
            } else {
                self.number += 1;
                self.mem_requested += item::size_of(it) as u64;
            }
        }
    }

    /// Uncounts an item (or tombstone) being unlinked; the reverse of `count_linked`.
    ///
    /// # Safety
    /// As for `count_linked`, and the item was counted.
    pub unsafe fn count_unlinked(&mut self, it: *const Item) {
        // SAFETY: forwarded caller guarantees.
        unsafe {
            if item::is_tombstone(it) {
                self.tombstones -= 1;
            } else {
                self.number -= 1;
                self.mem_requested -= item::size_of(it) as u64;
            }
        }
    }
}

pub struct Class {
    pub size: usize,
    pub per_page: usize,
    pub state: Mutex<ClassState>,
    hits: [HitCounters; HIT_SHARDS],
}

impl Class {
    /// The hit counters for a key with this hash.
    pub fn hits(&self, hash: u32) -> &HitCounters {
        &self.hits[hash as usize % HIT_SHARDS]
    }

    /// Each counter summed over the shards, in `HitCounters::all` order.
    fn hit_totals(&self) -> [u64; 8] {
        let mut sums = [0; 8];
        for shard in &self.hits {
            for (sum, counter) in sums.iter_mut().zip(shard.all()) {
                *sum += counter.load(Ordering::Relaxed);
            }
        }
        sums
    }
}

impl HitCounters {
    fn all(&self) -> [&AtomicU64; 8] {
        [
            &self.get_hits,
            &self.cmd_set,
            &self.delete_hits,
            &self.incr_hits,
            &self.decr_hits,
            &self.cas_hits,
            &self.cas_badval,
            &self.touch_hits,
        ]
    }
}

struct Pool {
    /// Pages handed to classes so far.
    assigned: usize,
    max_pages: usize,
    /// With large pages: the region taken at start; pages are carved from it in order.
    region: *mut u8,
    /// Without large pages: each page mapped on its own, unmapped on drop.
    mapped: Vec<*mut u8>,
}

// SAFETY: the pointers are mappings owned by this pool, used only under its mutex or on drop.
unsafe impl Send for Pool {}

pub struct Slabs {
    pub classes: Vec<Class>,
    /// Each class's chunk size again, packed apart from the class locks: `class_for` reads
    /// them on every store, and `Class::size` shares a cache line with its class's mutex.
    sizes: Box<[usize]>,
    pub page_size: usize,
    pool: Mutex<Pool>,
}

/// Why no chunk could be had without evicting.
pub struct Exhausted;

impl Slabs {
    pub fn new(config: &CacheConfig) -> Result<Slabs, String> {
        if !config.growth_factor.is_finite() || config.growth_factor <= 1.0 {
            return Err(format!("growth factor (-f) must be greater than 1, got {}", config.growth_factor));
        }
        if config.chunk_size == 0 {
            return Err("chunk size (-n) must be at least 1".to_string());
        }
        if config.item_size_max < 1024 {
            return Err(format!("item size max (-I) must be at least 1k, got {}", config.item_size_max));
        }
        let page_size = config.item_size_max.max(MIN_PAGE_SIZE);
        // A first chunk (-n) or a step (-f) too large for any class below the page leaves
        // the page-sized class alone, as memcached serves with only its largest class.
        let mut sizes = Vec::new();
        let mut size = round8(HEADER + config.chunk_size);
        while (size as f64) <= page_size as f64 / config.growth_factor && sizes.len() < MAX_CLASSES - 1 {
            sizes.push(size);
            let grown = round8((size as f64 * config.growth_factor).ceil() as usize);
            size = grown.max(size + 8);
        }
        sizes.push(page_size);
        // Rounding the limit down keeps pages within it; a limit below one page is refused.
        let max_pages = config.memory_limit / page_size;
        if max_pages == 0 {
            return Err(format!("memory limit (-m) must be at least one slab page ({} bytes), got {}", page_size, config.memory_limit));
        }
        let region = if config.large_pages { map_region(max_pages * page_size, true)? } else { ptr::null_mut() };
        let classes = sizes
            .iter()
            .map(|&size| Class {
                size,
                per_page: page_size / size,
                state: Mutex::new(ClassState {
                    free: ptr::null_mut(),
                    free_count: 0,
                    end: ptr::null_mut(),
                    end_left: 0,
                    pages: 0,
                    page_list: Vec::new(),
                    lru: Lru::new(),
                    number: 0,
                    mem_requested: 0,
                    tombstones: 0,
                    total_items: 0,
                    evicted: 0,
                    evicted_nonzero: 0,
                    evicted_time: 0,
                    outofmemory: 0,
                    reclaimed: 0,
                    expired_unfetched: 0,
                    evicted_unfetched: 0,
                    evicted_active: 0,
                }),
                hits: Default::default(),
            })
            .collect();
        Ok(Slabs {
            classes,
            sizes: sizes.into_boxed_slice(),
            page_size,
            pool: Mutex::new(Pool { assigned: 0, max_pages, region, mapped: Vec::new() }),
        })
    }

    /// The largest chunk: no item may be larger.
    pub fn largest(&self) -> usize {
        self.page_size
    }

    /// The smallest class whose chunk holds `total` bytes.
    pub fn class_for(&self, total: usize) -> Option<usize> {
        let idx = self.sizes.partition_point(|&size| size < total);
        (idx < self.sizes.len()).then_some(idx)
    }

    /// A chunk from the free list, the current page, or a new page; the caller holds `state`,
    /// the lock of class `cls`, and takes the page pool lock inside it (lock order). The chunk
    /// is marked taken.
    pub fn take_chunk(&self, cls: usize, state: &mut ClassState) -> Result<*mut Item, Exhausted> {
        let it = if !state.free.is_null() {
            let it = state.free;
            // SAFETY: free chunks are linked through their h_next under the class lock.
            state.free = unsafe { (*it).h_next };
            state.free_count -= 1;
            it
        } else {
            if state.end_left == 0 {
                let page = self.new_page().ok_or(Exhausted)?;
                // SAFETY: a page fresh from the pool, used by no one.
                unsafe { self.give_page(cls, state, page) };
            }
            let it = state.end as *mut Item;
            // SAFETY: `end_left > 0` chunks remain in the current page, so the next chunk lies
            // within it (and one past its last chunk is at most the page end).
            state.end = unsafe { state.end.add(self.classes[cls].size) };
            state.end_left -= 1;
            it
        };
        // SAFETY: the chunk lies in one of this class's pages; its magic is ours under the lock.
        unsafe { (*it).magic = TAKEN_MAGIC };
        Ok(it)
    }

    /// Makes `page` class `cls`'s current page; the caller holds `state`, that class's lock.
    ///
    /// # Safety
    /// `page` is `page_size` bytes of this pool's memory, 8-byte aligned, that nothing refers
    /// into and no class holds: chunks will be carved from it.
    pub unsafe fn give_page(&self, cls: usize, state: &mut ClassState, page: *mut u8) {
        state.pages += 1;
        state.page_list.push(page);
        state.end = page;
        state.end_left = self.classes[cls].per_page as u64;
    }

    /// The page of class `cls` holding its LRU tail (else its first page), and how many of its
    /// chunks were ever handed out.
    pub fn victim_page(&self, cls: usize, state: &ClassState) -> Option<(*mut u8, usize)> {
        let contains = |page: *mut u8, p: *const u8| (page as usize..page as usize + self.page_size).contains(&(p as usize));
        let tail = state.lru.tail as *const u8;
        let holding_tail = state.page_list.iter().copied().find(|&page| contains(page, tail));
        let page = holding_tail.or(state.page_list.first().copied())?;
        let carved = if state.end_left > 0 && contains(page, state.end) {
            (state.end as usize - page as usize) / self.classes[cls].size
        } else {
            self.classes[cls].per_page
        };
        Some((page, carved))
    }

    /// Takes `page` away from the class whose lock `state` is, dropping its chunks from the
    /// free list.
    ///
    /// # Safety
    /// `page` is one of this class's pages, and every chunk on it is free or was never handed
    /// out: nothing (hash chain, LRU, store in flight) refers into it.
    pub unsafe fn remove_page(&self, state: &mut ClassState, page: *mut u8) {
        assert!(state.page_list.contains(&page), "removing a page the class does not hold");
        let (lo, hi) = (page as usize, page as usize + self.page_size);
        let mut kept: *mut Item = ptr::null_mut();
        let mut it = state.free;
        state.free_count = 0;
        while !it.is_null() {
            // SAFETY: free chunks are linked through their h_next under the class lock.
            let next = unsafe { (*it).h_next };
            if !(lo..hi).contains(&(it as usize)) {
                // SAFETY: as above; relinking a free chunk onto the rebuilt list.
                unsafe { (*it).h_next = kept };
                kept = it;
                state.free_count += 1;
            }
            it = next;
        }
        state.free = kept;
        state.page_list.retain(|&p| p != page);
        state.pages -= 1;
        if (lo..hi).contains(&(state.end as usize)) {
            state.end = ptr::null_mut();
            state.end_left = 0;
        }
    }

    /// Puts an unlinked chunk on its class's free list; the caller holds that class's lock.
    ///
    /// # Safety
    /// `it` is an allocated chunk of this class that nothing else references.
    pub unsafe fn free_chunk(state: &mut ClassState, it: *mut Item) {
        // SAFETY: the chunk is ours alone; its header space is reused as a free-list link.
        unsafe {
            (*it).magic = FREE_MAGIC;
            (*it).iflags = 0;
            (*it).h_next = state.free;
        }
        state.free = it;
        state.free_count += 1;
    }

    fn new_page(&self) -> Option<*mut u8> {
        let mut pool = lock::lock(&self.pool);
        if pool.assigned >= pool.max_pages {
            return None;
        }
        let page = if pool.region.is_null() {
            let page = map_region(self.page_size, false).ok()?;
            pool.mapped.push(page);
            page
        } else {
            // SAFETY: assigned < max_pages, so this page lies inside the region.
            unsafe { pool.region.add(pool.assigned * self.page_size) }
        };
        pool.assigned += 1;
        Some(page)
    }

    /// (pages given to classes, pages taken but not given).
    pub fn page_counts(&self) -> (u64, u64) {
        let pool = lock::lock(&self.pool);
        let spare = if pool.region.is_null() { 0 } else { pool.max_pages - pool.assigned };
        (pool.assigned as u64, spare as u64)
    }

    pub fn class_stats(&self, idx: usize, now: u32) -> Option<SlabClassStats> {
        let class = &self.classes[idx];
        let st = lock::lock(&class.state);
        if st.pages == 0 && st.number == 0 {
            return None;
        }
        let total_chunks = st.pages * class.per_page as u64;
        let age = if st.lru.tail.is_null() {
            0
        } else {
            // SAFETY: the tail is a linked item of this class, read under the class lock.
            u64::from(now.saturating_sub(unsafe { (*st.lru.tail).atime.load(Ordering::Relaxed) }))
        };
        let [get_hits, cmd_set, delete_hits, incr_hits, decr_hits, cas_hits, cas_badval, touch_hits] = class.hit_totals();
        Some(SlabClassStats {
            id: idx as u32 + 1,
            chunk_size: class.size as u64,
            chunks_per_page: class.per_page as u64,
            total_pages: st.pages,
            total_chunks,
            used_chunks: total_chunks - st.free_count - st.end_left,
            free_chunks: st.free_count,
            free_chunks_end: st.end_left,
            number: st.number,
            age,
            mem_requested: st.mem_requested,
            evicted: st.evicted,
            evicted_nonzero: st.evicted_nonzero,
            evicted_time: st.evicted_time,
            outofmemory: st.outofmemory,
            reclaimed: st.reclaimed,
            expired_unfetched: st.expired_unfetched,
            evicted_unfetched: st.evicted_unfetched,
            evicted_active: st.evicted_active,
            get_hits,
            cmd_set,
            delete_hits,
            incr_hits,
            decr_hits,
            cas_hits,
            cas_badval,
            touch_hits,
        })
    }

    pub fn reset_stats(&self) {
        for class in &self.classes {
            let mut st = lock::lock(&class.state);
            st.total_items = 0;
            st.evicted = 0;
            st.evicted_nonzero = 0;
            st.evicted_time = 0;
            st.outofmemory = 0;
            st.reclaimed = 0;
            st.expired_unfetched = 0;
            st.evicted_unfetched = 0;
            st.evicted_active = 0;
            drop(st);
            for counter in class.hits.iter().flat_map(HitCounters::all) {
                counter.store(0, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Slabs {
    fn drop(&mut self) {
        let pool = self.pool.get_mut().unwrap_or_else(|e| e.into_inner());
        // SAFETY (both): each was taken by `map_region` with this length, and no item outlives
        // the cache that owns these slabs.
        if !pool.region.is_null() {
            unsafe { unmap_region(pool.region, pool.max_pages * self.page_size) };
        }
        for &page in &pool.mapped {
            unsafe { unmap_region(page, self.page_size) };
        }
    }
}

fn round8(n: usize) -> usize {
    (n + 7) & !7
}

/// Maps `len` bytes of zeroed anonymous memory; the kernel backs it only once touched, so RSS
/// follows use. With `huge`, asks for transparent huge pages.
#[cfg(not(miri))]
fn map_region(len: usize, huge: bool) -> Result<*mut u8, String> {
    // SAFETY: an anonymous private mapping with no address hint touches no existing memory.
    let p = unsafe { libc::mmap(ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(format!("memory limit (-m): cannot map {} bytes: {}", len, std::io::Error::last_os_error()));
    }
    if huge {
        // SAFETY: advice on the mapping just made; failure only means no huge pages.
        unsafe { libc::madvise(p, len, libc::MADV_HUGEPAGE) };
    }
    Ok(p.cast())
}

/// # Safety
/// `p` and `len` are a region `map_region` returned, which nothing refers into any more.
#[cfg(not(miri))]
unsafe fn unmap_region(p: *mut u8, len: usize) {
    // SAFETY: forwarded caller guarantee.
    unsafe { libc::munmap(p.cast(), len) };
}

/// Miri cannot run mmap: pages come from the global allocator, zeroed like a fresh mapping.
#[cfg(miri)]
fn map_region(len: usize, _huge: bool) -> Result<*mut u8, String> {
    let layout = region_layout(len)?;
    // SAFETY: the layout's size is a page or more, never zero.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        return Err(format!("memory limit (-m): cannot allocate {len} bytes"));
    }
    Ok(p)
}

/// # Safety
/// As for the mmap version.
#[cfg(miri)]
unsafe fn unmap_region(p: *mut u8, len: usize) {
    let layout = region_layout(len).expect("the layout map_region used");
    // SAFETY: `p` came from `alloc_zeroed` with this layout (forwarded caller guarantee).
    unsafe { std::alloc::dealloc(p, layout) };
}

/// Page-aligned, as mmap's memory is.
#[cfg(miri)]
fn region_layout(len: usize) -> Result<std::alloc::Layout, String> {
    std::alloc::Layout::from_size_align(len, 4096).map_err(|e| format!("memory limit (-m): {e}"))
}

/// Takes an item off its LRU (if linked there) and puts its chunk on the free list.
///
/// # Safety
/// `it` is allocated, unlinked from its hash chain, and the caller holds its class lock.
pub unsafe fn release(state: &mut ClassState, it: *mut Item) {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        if (*it).magic == ITEM_MAGIC {
            state.lru.remove(it);
            state.count_unlinked(it);
        }
        Slabs::free_chunk(state, it);
    }
}

#[cfg(test)]
mod tests {
    use super::Slabs;
    use crate::storage::CacheConfig;

    fn config() -> CacheConfig {
        CacheConfig::test(64 << 20)
    }

    #[test]
    fn classes_grow_by_the_factor_and_end_with_a_page() {
        let slabs = Slabs::new(&config()).unwrap();
        let sizes: Vec<usize> = slabs.classes.iter().map(|c| c.size).collect();
        assert_eq!(sizes[0], 104);
        assert_eq!(sizes[1], 136);
        assert_eq!(*sizes.last().unwrap(), 1 << 20);
        assert!(sizes.windows(2).all(|w| w[1] > w[0] && w[1] % 8 == 0));
        assert_eq!(slabs.class_for(104), Some(0));
        assert_eq!(slabs.class_for(105), Some(1));
        assert_eq!(slabs.class_for((1 << 20) + 1), None);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_flag() {
        let mut c = config();
        c.growth_factor = 1.0;
        assert!(Slabs::new(&c).err().unwrap().contains("-f"));
        let mut c = config();
        c.memory_limit = 1000;
        assert!(Slabs::new(&c).err().unwrap().contains("-m"));
        let mut c = config();
        c.chunk_size = 0;
        assert!(Slabs::new(&c).err().unwrap().contains("-n"));
    }
}
