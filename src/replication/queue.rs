//! The bounded queue of local mutations waiting for the link: keys (the sender ships each
//! key's state at the time it sends) and flush states. It is the cache's `MutationSink`, so
//! it must stay quick: one short mutex hold per mutation, no I/O, no cache calls.
//!
//! It only takes mutations while a link is open (`open`); otherwise the next link-up sync
//! covers them. When full it drops the mutation but records an overflow and a version floor
//! below every dropped mutation's version, so that the sender catches the peer up with a scan
//! of the table from there once it has drained what is queued.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::floor_at_millis;
use crate::storage::replica::{FlushState, MutationSink};

/// One queued mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Key(Vec<u8>),
    Flush(FlushState),
}

/// What the sender takes in one go.
#[derive(Debug, Default)]
pub struct Batch {
    pub items: Vec<Pending>,
    /// When the oldest of `items` was queued (unix milliseconds).
    pub oldest_millis: Option<u64>,
    /// Set (only once the queue is empty) after an overflow: scan from this version.
    pub catch_up_from: Option<u64>,
}

#[derive(Default)]
struct Inner {
    items: VecDeque<(Pending, u64)>,
    accepting: bool,
    overflow_floor: Option<u64>,
    overflows: u64,
    /// Set by `wake`: the sender has something else to do (an ACK to send, a link to close).
    woken: bool,
}

pub struct KeyQueue {
    capacity: usize,
    inner: Mutex<Inner>,
    ready: Condvar,
}

/// Unix time in milliseconds.
pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl KeyQueue {
    pub fn new(capacity: usize) -> KeyQueue {
        KeyQueue { capacity, inner: Mutex::new(Inner::default()), ready: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A link is up: take mutations from now on (before the link-up sync's scan starts, so
    /// that nothing falls between the scan and the queue).
    pub fn open(&self) {
        let mut inner = self.lock();
        inner.accepting = true;
        inner.woken = false;
    }

    /// The link is down: stop taking mutations and drop what is queued. Returns the lowest
    /// version the next sync must cover for what was dropped (None: nothing was).
    pub fn close(&self) -> Option<u64> {
        let mut inner = self.lock();
        inner.accepting = false;
        let oldest = inner.items.iter().map(|(_, at)| *at).min().map(floor_at_millis);
        inner.items.clear();
        let floor = [oldest, inner.overflow_floor.take()].into_iter().flatten().min();
        drop(inner);
        self.ready.notify_all();
        floor
    }

    /// Waits up to `timeout` for mutations (at most `max`), an overflow to catch up, or a
    /// `wake`; returns what there is (possibly nothing).
    pub fn take(&self, max: usize, timeout: Duration) -> Batch {
        let mut inner = self.lock();
        if inner.items.is_empty() && inner.overflow_floor.is_none() && !inner.woken {
            inner = self.ready.wait_timeout(inner, timeout).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
        inner.woken = false;
        let n = inner.items.len().min(max);
        let oldest_millis = inner.items.front().map(|(_, at)| *at);
        let items: Vec<Pending> = inner.items.drain(..n).map(|(p, _)| p).collect();
        let catch_up_from = if inner.items.is_empty() { inner.overflow_floor.take() } else { None };
        Batch { items, oldest_millis, catch_up_from }
    }

    /// Makes a waiting `take` return.
    pub fn wake(&self) {
        self.lock().woken = true;
        self.ready.notify_all();
    }

    /// Mutations queued, and whether a catch-up is owed.
    pub fn depth(&self) -> (u64, bool) {
        let inner = self.lock();
        (inner.items.len() as u64, inner.overflow_floor.is_some())
    }

    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.lock().items.len()) as u64
    }

    pub fn overflows(&self) -> u64 {
        self.lock().overflows
    }

    /// Seconds since the oldest queued mutation (0 when empty).
    pub fn lag_seconds(&self) -> f64 {
        let oldest = self.lock().items.front().map(|(_, at)| *at);
        oldest.map_or(0.0, |at| now_millis().saturating_sub(at) as f64 / 1000.0)
    }

    fn push(&self, pending: Pending) {
        let mut inner = self.lock();
        if !inner.accepting {
            return;
        }
        if inner.items.len() >= self.capacity {
            inner.overflows += 1;
            // Every dropped mutation was stamped after this floor (it has a margin for
            // stamps taken just before).
            let floor = floor_at_millis(now_millis());
            inner.overflow_floor = Some(inner.overflow_floor.map_or(floor, |f| f.min(floor)));
        } else {
            inner.items.push_back((pending, now_millis()));
        }
        let first = inner.items.len() == 1 || inner.overflow_floor.is_some();
        drop(inner);
        // The sender only waits when the queue is empty.
        if first {
            self.ready.notify_one();
        }
    }
}

impl MutationSink for KeyQueue {
    fn mutated(&self, key: &[u8]) {
        self.push(Pending::Key(key.to_vec()));
    }

    fn flushed(&self, state: FlushState) {
        self.push(Pending::Flush(state));
    }
}

#[cfg(test)]
mod tests {
    use super::{Batch, KeyQueue, Pending};
    use crate::replication::floor_at_millis;
    use crate::storage::replica::{FlushState, MutationSink};
    use std::time::Duration;

    const NOW: Duration = Duration::ZERO;

    #[test]
    fn a_closed_queue_takes_nothing() {
        let q = KeyQueue::new(4);
        q.mutated(b"a");
        assert_eq!(q.depth(), (0, false));
        assert_eq!(q.free(), 4);
    }

    #[test]
    fn keys_and_flushes_come_out_in_order_in_batches() {
        let q = KeyQueue::new(10);
        q.open();
        q.mutated(b"a");
        q.flushed(FlushState { applied: 3, pending: None });
        q.mutated(b"b");
        assert_eq!(q.depth(), (3, false));
        assert_eq!(q.free(), 7);
        let first = q.take(2, NOW);
        assert_eq!(first.items, vec![Pending::Key(b"a".to_vec()), Pending::Flush(FlushState { applied: 3, pending: None })]);
        assert!(first.oldest_millis.is_some());
        assert_eq!(first.catch_up_from, None);
        assert_eq!(q.take(2, NOW).items, vec![Pending::Key(b"b".to_vec())]);
        assert!(q.take(2, NOW).items.is_empty());
    }

    #[test]
    fn a_full_queue_counts_the_overflow_and_owes_a_catch_up_after_draining() {
        let q = KeyQueue::new(2);
        q.open();
        let before = floor_at_millis(super::now_millis());
        for key in [b"a", b"b", b"c", b"d"] {
            q.mutated(key);
        }
        assert_eq!(q.overflows(), 2);
        assert_eq!(q.depth(), (2, true));
        assert_eq!(q.free(), 0);
        let batch = q.take(1, NOW);
        assert_eq!((batch.items.len(), batch.catch_up_from), (1, None));
        let batch = q.take(1, NOW);
        assert_eq!(batch.items.len(), 1);
        let floor = batch.catch_up_from.expect("catch-up owed once drained");
        assert!(floor >= before);
        assert_eq!(q.depth(), (0, false));
    }

    #[test]
    fn closing_drops_the_queue_and_returns_its_floor() {
        let q = KeyQueue::new(8);
        q.open();
        assert_eq!(q.close(), None);
        q.open();
        q.mutated(b"a");
        let floor = q.close().expect("a key was dropped");
        assert!(floor <= floor_at_millis(super::now_millis()));
        assert_eq!(q.depth(), (0, false));
        q.mutated(b"b");
        assert_eq!(q.depth(), (0, false));
    }

    /// Starts a `take` that would wait an hour on its own, and returns what it returns,
    /// failing the test if that has not come within a minute.
    fn take_within_a_minute(q: &std::sync::Arc<KeyQueue>, start: impl FnOnce()) -> Batch {
        let (tx, rx) = std::sync::mpsc::channel();
        let taker = std::sync::Arc::clone(q);
        let thread = std::thread::spawn(move || tx.send(taker.take(8, Duration::from_secs(3600))).unwrap());
        start();
        let batch = rx.recv_timeout(Duration::from_secs(60)).expect("take still waiting after its wake");
        thread.join().unwrap();
        batch
    }

    #[test]
    fn wake_ends_a_wait() {
        let q = std::sync::Arc::new(KeyQueue::new(8));
        // A wake before the take: the take does not wait at all.
        q.wake();
        assert!(take_within_a_minute(&q, || {}).items.is_empty());
        // A wake while it waits (or just before it starts waiting) ends it.
        let waker = std::sync::Arc::clone(&q);
        assert!(take_within_a_minute(&q, move || waker.wake()).items.is_empty());
        assert!(!q.lock().woken, "a take leaves no wake behind for the next one");
    }
}
