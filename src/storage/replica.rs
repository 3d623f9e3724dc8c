//! What replication needs from the cache: each key's replicable state (`Entry`), applying a
//! peer's entry by last-writer-wins on versions, scanning for what changed since a version,
//! the flush state, and the sink told of every local mutation. It knows nothing of sockets or
//! of the wire format.
//!
//! CONTRACT (fixed by the skeleton; the storage helper fills the bodies, replication relies on
//! it): the types and signatures below.

use std::sync::Arc;

use super::Cache;

/// One key's replicable state: its item, or its deletion, with the version that orders it.
/// Versions are `clock::stamp`s: unique across the pair, and later writes have larger ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Item { key: Vec<u8>, flags: u32, exptime: u32, version: u64, value: Vec<u8> },
    /// A tombstone: the key was deleted at `version`.
    Deleted { key: Vec<u8>, version: u64 },
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

impl Cache {
    /// Installs the sink (once, before any client is served).
    pub fn set_sink(&self, sink: Arc<dyn MutationSink>) {
        let _ = sink;
        todo!()
    }

    /// The key's current replicable state: its live item, its tombstone, or None (never
    /// stored, expired, flushed, evicted, or a tombstone past its time).
    pub fn entry(&self, key: &[u8]) -> Option<Entry> {
        let _ = key;
        todo!()
    }

    /// Applies a peer's entry when it is newer than what the key holds (item or tombstone):
    /// the larger version wins; equal versions (only possible for the same write) change
    /// nothing. The applied item keeps the entry's version as its cas unique. Does not tell
    /// the sink. Returns whether the entry was applied. Memory is found as for a store
    /// (eviction); an entry that cannot be stored is counted and dropped.
    pub fn apply(&self, entry: &Entry) -> bool {
        let _ = entry;
        todo!()
    }

    /// Calls `f` with every live item and tombstone whose version is above `since`, one
    /// stripe at a time, holding no lock while `f` runs.
    pub fn scan_since(&self, since: u64, f: &mut dyn FnMut(Entry)) {
        let _ = (since, f);
        todo!()
    }

    pub fn flush_state(&self) -> FlushState {
        todo!()
    }

    /// Merges the peer's flush state into ours (the larger applied threshold; the later
    /// pending flush). Does not tell the sink.
    pub fn apply_flush(&self, state: FlushState) {
        let _ = state;
        todo!()
    }

    /// The largest version this cache has seen (stored, applied or scanned): a node reports it
    /// so the peer knows what it already has.
    pub fn max_version(&self) -> u64 {
        todo!()
    }
}
