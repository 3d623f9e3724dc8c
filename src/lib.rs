//! memcachedrep's layers, as a library for the binary (`main.rs`, start-up only) and for the
//! fuzz targets under `tests/fuzz/`, which drive the parsers in-process.
//!
//! - `config`: the command line and its flag table; `daemon`: the OS calls of start-up;
//! - `server`: listeners, handler threads, connections; `protocol`: text, meta and binary
//!   commands, parsed and executed against the cache;
//! - `storage`: the striped hash table, slab allocator and LRU; `replication`: the link to
//!   the partner node; `stats` and `log`: counters and the -v lines; `decimal`: numbers as
//!   memcached reads and writes them.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod config;
pub mod daemon;
pub mod decimal;
pub mod log;
pub mod net;
pub mod protocol;
pub mod replication;
pub mod server;
pub mod stats;
pub mod storage;

/// The cache's parameters from the command line (tombstones only for a node with a peer).
pub fn cache_config(settings: &config::Settings) -> storage::CacheConfig {
    storage::CacheConfig {
        memory_limit: settings.memory_limit,
        item_size_max: settings.item_size_max,
        chunk_size: settings.chunk_size,
        growth_factor: settings.growth_factor,
        evict: !settings.no_evict,
        use_cas: settings.use_cas,
        hash_power: settings.hash_power,
        large_pages: settings.large_pages,
        tombstone_ttl: if settings.peer.is_some() { settings.repl_tombstone_ttl } else { 0 },
    }
}
