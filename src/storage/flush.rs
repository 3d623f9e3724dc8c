//! `flush_all` as thresholds on item versions: an item whose version is below the applied
//! threshold is invalid, and so is one below a delayed flush's once its time has come. Items
//! are not visited: whoever meets a flushed item unlinks it (`Cache::find`, the walker).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use super::replica::FlushState;
use super::{clock, lock, Cache};

/// `flush_all` thresholds: items with a version below `applied` are invalid; those below
/// `pending_stamp` become invalid once the clock reaches `pending_at` (0 = none pending).
/// Changed only under `writer`.
pub(super) struct Flush {
    writer: Mutex<()>,
    applied: AtomicU64,
    pending_at: AtomicU32,
    pending_stamp: AtomicU64,
}

impl Flush {
    /// No flush yet.
    pub fn new() -> Flush {
        Flush { writer: Mutex::new(()), applied: AtomicU64::new(0), pending_at: AtomicU32::new(0), pending_stamp: AtomicU64::new(0) }
    }

    /// Whether an item written at `version` is invalid at `now`.
    pub fn is_flushed(&self, version: u64, now: u32) -> bool {
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

    /// The thresholds as replication ships them.
    pub fn state(&self) -> FlushState {
        let _writer = lock::lock(&self.writer);
        self.fold_due(clock::now());
        let at = self.pending_at.load(Ordering::Acquire);
        FlushState {
            applied: self.applied.load(Ordering::Acquire),
            pending: (at != 0).then(|| (self.pending_stamp.load(Ordering::Acquire), at)),
        }
    }

    /// Takes in the peer's thresholds: the larger applied one, the later pending flush.
    pub fn merge(&self, state: FlushState) {
        // A peer's "flush now" threshold is one of its stamps: later local writes must be
        // above it, or they would be born flushed. One from a broken clock is ignored, or it
        // would flush every later write.
        let _writer = lock::lock(&self.writer);
        if clock::plausible(state.applied) {
            clock::observe(state.applied);
            self.applied.fetch_max(state.applied, Ordering::AcqRel);
        }
        if let Some((threshold, at)) = state.pending.filter(|&(threshold, _)| clock::plausible(threshold)) {
            let ours = self.pending_at.load(Ordering::Acquire);
            if ours == 0 || threshold > self.pending_stamp.load(Ordering::Acquire) {
                // Stamp before time, as `flush` does: a reader that sees the time sees the stamp.
                self.pending_at.store(0, Ordering::Release);
                self.pending_stamp.store(threshold, Ordering::Release);
                self.pending_at.store(at.max(1), Ordering::Release);
            }
        }
        self.fold_due(clock::now());
    }
}

impl Cache {
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
}
