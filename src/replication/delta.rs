//! Counters that both nodes increment at once: each key has an owner node, and while the link
//! is up an incr/decr of a key the peer owns is sent to the peer (DELTA_REQ), run there under
//! the key's lock with the peer's own incr/decr of it, and answered (DELTA_RESP) with the
//! outcome and the resulting item, which this node applies before it answers its client. So
//! no increment is lost while the pair is linked. The request follows this node's current
//! state of the key (an ITEM or DELETE frame, applied by the peer last-writer-wins), so a
//! client's `set` then `incr` here finds its own value even before the queue has sent it. Without a link, or without an answer within
//! `ANSWER_TIMEOUT`, the incr/decr runs locally as on a single node: increments made on both
//! sides of a split then merge last-writer-wins like any other write. A request that timed
//! out still runs on the peer when it arrives, and the later of the two results wins. The
//! sender writes the request before the local result's ITEM, so the peer runs it on the value
//! before the fallback and it counts once; only a catch-up scan (after a queue overflow) that
//! meets the key first can make it count twice.
//!
//! This module holds the owner rule, the waiting requests and the outbox of DELTA frames for
//! the sender; it does no I/O (the sender writes the outbox, the receiver completes requests
//! and runs the peer's) and calls no cache method.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::wire::{DeltaReq, DeltaResp, Frame};
use crate::storage::replica::Entry;
use crate::storage::DeltaOp;

/// How long a client's incr/decr waits for the owner before it runs locally.
pub const ANSWER_TIMEOUT: Duration = Duration::from_millis(500);

/// FNV-1a (64-bit) of the key: the same on every node and in every process, unlike std's
/// per-process `RandomState`.
pub fn key_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The node bit (`clock::set_node_bit`) of the key's owner: the hash's lowest bit. (That bit
/// is the parity of the bytes' lowest bits, as the prime is odd, so keys that differ in a
/// last digit alternate owners; the top bit, by contrast, is lopsided on such keys.)
pub fn owner_bit(key: &[u8]) -> u64 {
    key_hash(key) & 1
}

#[derive(Default)]
struct Inner {
    /// The link is up: requests may be sent.
    open: bool,
    next_id: u64,
    /// DELTA_REQ and DELTA_RESP frames for the sender, oldest first.
    outbox: Vec<Frame>,
    /// Requests sent and not yet answered (None) or answered and not yet collected.
    waiting: HashMap<u64, Option<DeltaResp>>,
}

/// The DELTA traffic of one node's link.
#[derive(Default)]
pub struct Deltas {
    inner: Mutex<Inner>,
    answered: Condvar,
    /// Client incr/decr answered by the peer.
    pub forwarded: AtomicU64,
    /// Client incr/decr sent to the peer that ran locally after all (no answer in time, or
    /// the link went down).
    pub fallbacks: AtomicU64,
}

impl Deltas {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The link is up (both syncs done): requests may go to the peer.
    pub fn open(&self) {
        self.lock().open = true;
    }

    /// The link ended: nothing more is sent on it, and every waiting request falls back.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.open = false;
        inner.outbox.clear();
        inner.waiting.clear();
        drop(inner);
        self.answered.notify_all();
    }

    /// Queues a request for the peer, after the key's `state` here, unless the link is not
    /// up; `wake` must then make the sender look at the outbox. Waits for the answer at most
    /// `ANSWER_TIMEOUT`.
    pub fn request(
        &self,
        key: &[u8],
        state: Option<Entry>,
        op: DeltaOp,
        amount: u64,
        cas: Option<u64>,
        wake: impl FnOnce(),
    ) -> Option<DeltaResp> {
        let mut inner = self.lock();
        if !inner.open {
            return None;
        }
        inner.next_id += 1;
        let id = inner.next_id;
        inner.waiting.insert(id, None);
        inner.outbox.extend(state.map(Frame::Entry));
        inner.outbox.push(Frame::DeltaReq(DeltaReq { id, op, amount, cas, key: key.to_vec() }));
        drop(inner);
        wake();
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let mut inner = self.lock();
        loop {
            match inner.waiting.get(&id) {
                Some(Some(_)) => {
                    let resp = inner.waiting.remove(&id).flatten();
                    self.forwarded.fetch_add(1, Ordering::Relaxed);
                    return resp;
                }
                Some(None) => {}
                // The link closed.
                None => break,
            }
            let now = Instant::now();
            if now >= deadline {
                inner.waiting.remove(&id);
                break;
            }
            inner = self.answered.wait_timeout(inner, deadline - now).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// The peer answered a request (one that gave up waiting is forgotten).
    pub fn answer(&self, resp: DeltaResp) {
        let mut inner = self.lock();
        if let Some(slot) = inner.waiting.get_mut(&resp.id) {
            *slot = Some(resp);
            drop(inner);
            self.answered.notify_all();
        }
    }

    /// Queues the answer to a peer's request for the sender.
    pub fn reply(&self, resp: DeltaResp) {
        self.lock().outbox.push(Frame::DeltaResp(resp));
    }

    /// What the sender is to write now.
    pub fn take_outbox(&self) -> Vec<Frame> {
        std::mem::take(&mut self.lock().outbox)
    }
}

#[cfg(test)]
mod tests {
    use super::{key_hash, owner_bit, Deltas};
    use crate::replication::wire::{DeltaResp, Frame};
    use crate::storage::replica::Entry;
    use crate::storage::{DeltaOp, DeltaOutcome};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn the_owner_hash_is_fnv1a_and_stable_across_processes() {
        // FNV-1a's published test values: the same on every node, in every process.
        assert_eq!(key_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_hash(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!((owner_bit(b"a"), owner_bit(b"foobar"), owner_bit(b"up"), owner_bit(b"down")), (0, 0, 0, 1));
        // Numbered keys split evenly between the nodes.
        let owned = (0..1000).filter(|i| owner_bit(format!("key:{i}").as_bytes()) == 0).count();
        assert_eq!(owned, 500);
    }

    #[test]
    fn a_closed_link_sends_nothing() {
        let deltas = Deltas::default();
        assert_eq!(deltas.request(b"k", None, DeltaOp::Incr, 1, None, || panic!("no wake")), None);
        assert!(deltas.take_outbox().is_empty());
        assert_eq!(deltas.fallbacks.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_answer_completes_the_request_and_closing_fails_the_others() {
        let deltas = Arc::new(Deltas::default());
        deltas.open();
        let peer = Arc::clone(&deltas);
        let answering = std::thread::spawn(move || {
            // Plays the receiver: answers the first request it finds in the outbox.
            loop {
                let outbox = peer.take_outbox();
                if let [Frame::Entry(state), Frame::DeltaReq(req)] = &outbox[..] {
                    assert_eq!((state.version(), req.cas), (9, Some(9)));
                    peer.answer(DeltaResp { id: req.id, outcome: DeltaOutcome::Value(5), item: None });
                    return;
                }
                std::thread::yield_now();
            }
        });
        let state = Entry::Item { key: b"k".to_vec(), flags: 0, exptime: 0, version: 9, marks: 0, value: b"4".to_vec() };
        let resp = deltas.request(b"k", Some(state), DeltaOp::Incr, 1, Some(9), || ()).expect("answered");
        answering.join().unwrap();
        assert_eq!(resp.outcome, DeltaOutcome::Value(5));
        assert_eq!(deltas.forwarded.load(Ordering::Relaxed), 1);
        let closer = Arc::clone(&deltas);
        // Closing fails the waiting request: an answer that comes after the close is not
        // taken (were the request still waiting, it would return that answer).
        let result = deltas.request(b"k", None, DeltaOp::Decr, 1, None, move || {
            let id = match closer.lock().outbox.last() {
                Some(Frame::DeltaReq(req)) => req.id,
                other => panic!("no request queued: {other:?}"),
            };
            closer.close();
            closer.answer(DeltaResp { id, outcome: DeltaOutcome::Value(7), item: None });
        });
        assert_eq!(result, None);
        assert_eq!(deltas.fallbacks.load(Ordering::Relaxed), 1);
        assert!(deltas.take_outbox().is_empty());
    }
}
