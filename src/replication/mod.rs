//! Two-node replication: the mutation queue, the wire format, the link to the peer (dial,
//! accept, handshake, reconnect), the sync that catches a peer up, applying what the peer
//! sends, and running incr/decr on the key's owner. It reaches the cache only through its
//! replica facade (`entry`, `apply`, `scan_since`, flush states) and `delta` (the peer's
//! incr/decr), and must never hold a cache lock across I/O. `repcached` is the other link a
//! node may have (`-o repcached_link`, alone or beside `-x`): to a repcached 2.x node, in its
//! format; with both, each link's queue hears of every local mutation (`Replication::start`).
//!
//! The interface: `Replication::bind` (before the daemon drops privileges, so that `-X` may
//! be any port), `start`, `wait_joined`, `shutdown`, and `status`, which implements
//! `stats::ReplicationReport`: the `ReplicationStatus` it returns and the `LinkState` in it
//! live in `stats`, below the protocol that prints them, so that nothing below this module
//! depends on it. `Replication` also implements `storage::replica::DeltaRouter`, through
//! which the protocol sends incr/decr of a key the peer owns to the peer (`delta`).
//!
//! Threads (all started by `start`, after the daemon's fork):
//! - one accept thread per replication listener (`-X` on each `-l` address): refuses any
//!   address but the peer's, and hands a peer's connection to a new handshake thread;
//! - one dialer thread: while no link is up, dials the peer (connect timeout, backoff from
//!   100 ms doubling to 5 s, forever) and runs the link it makes; before each dial it tries
//!   to bind the `-X` addresses that were in use at start (repcached's survivor takes the
//!   port over), and starts an accept thread on each it gets;
//! - per link, the thread that made it (dialer or handshake thread) becomes its receiver,
//!   applying what the peer sends, and starts a sender thread that syncs the peer and then
//!   drains the queue. The receiver never writes (a receiver blocked on a write could
//!   deadlock the pair): it asks the sender to send its ACKs, and its answers to the peer's
//!   incr/decr (`delta`: while the link is up, a key's owner runs every incr/decr of it).
//!
//! Locking: two mutexes, each held briefly and never across I/O or a cache call. The control mutex
//! (`link::Link::control`: the link's state, the one installed link, the join/stop flags and the
//! watermark floor) is waited on by the dialer, `install`, `wait_joined` and `shutdown`; the
//! queue's is taken by client threads (the sink) and the sender. No thread holds both at once.
//! The cache's locks are taken inside `entry`/`apply`/`scan_since` only, and the sink is
//! called after the cache released its stripe lock.
//!
//! Versions and watermarks: the receiver remembers the highest version it got from the peer
//! instance (sent in the next HELLO); the sender remembers, per peer instance, a floor below
//! which the peer has acknowledged everything (`session`). A link-up sync sends every entry
//! above the lower of the two (a new peer instance gets everything: a full sync).
//!
//! Start-up: `bind` binds `-X` before the daemon's fork and `-u` (a port below 1024 needs
//! root); `start` starts the threads; main calls `wait_joined` before it listens on the
//! client ports, so a joining node refuses clients until it has the copy. As repcached, a
//! node whose peer is not running serves at once: the dial is refused, or it reaches this
//! node itself (both on one host with the same `-X`); only a dial that times out (the peer
//! may be there) waits, up to `-o repl_join_wait`.
//!
//! State machine (`stats::LinkState`): `listening` (no link; the replication port is bound and the
//! dialer is waiting to retry or has found it dialed itself) or `down` (no link and no
//! listener), `connecting` (the dialer is dialing), `syncing` (linked; the two catch-up syncs
//! are running), `up` (both syncs done; streaming mutations), and back to `listening`/`down`
//! when the link ends.

mod delta;
mod link;
mod queue;
pub mod repcached;
mod session;
pub mod wire;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use repcached::Repcached;

use crate::config::Settings;
use crate::stats::{LinkState, ReplicationReport, ReplicationStatus};
use crate::storage::replica::{DeltaRouter, FlushState, MutationSink};
use crate::storage::{clock, Cache, DeltaOp, DeltaOutcome};

/// Stamps handed out this long before they reach the queue are still caught by a sync that
/// starts from a watermark (a write's stamp and its queueing are not atomic).
const MARGIN_SECS: u64 = 10;

/// The version below which no stamp taken at or after unix millisecond `millis` can lie, with
/// the margin.
pub fn floor_at_millis(millis: u64) -> u64 {
    let secs = (millis / 1000).saturating_sub(MARGIN_SECS);
    clock::stamp_at_secs(u32::try_from(secs).unwrap_or(u32::MAX))
}

/// A watermark version minus the margin.
fn minus_margin(version: u64) -> u64 {
    version.saturating_sub(clock::stamp_at_secs(MARGIN_SECS as u32))
}

/// The running replication of one node: the native link (`-x`) and the repcached one
/// (`-o repcached_link`), either, both or neither.
pub struct Replication {
    link: Option<Arc<link::Link>>,
    repcached: Option<Arc<Repcached>>,
    /// `-q`, for `repcached_qi_free` when there is no link.
    queue_size: u64,
}

/// The replication listeners, bound and not yet served (none without `-x`, or when every
/// address's port is in use: the node then only dials), and the addresses found in use.
pub struct Ports {
    listeners: Vec<TcpListener>,
    taken: Vec<SocketAddr>,
    repcached: Vec<TcpListener>,
}

/// The cache's sink when both links run: each queue hears of every local mutation.
struct BothQueues(Vec<Arc<dyn MutationSink>>);

impl MutationSink for BothQueues {
    fn mutated(&self, key: &[u8]) {
        self.0.iter().for_each(|sink| sink.mutated(key));
    }

    fn flushed(&self, state: FlushState) {
        self.0.iter().for_each(|sink| sink.flushed(state));
    }
}

impl Replication {
    /// Binds the replication port(s) on the listen addresses. Call it before the daemon's
    /// fork and `-u`, as for the client listeners. The error is one start-up line.
    pub fn bind(settings: &Settings) -> Result<Ports, String> {
        let repcached = repcached::bind(settings)?;
        if settings.peer.is_none() {
            return Ok(Ports { listeners: Vec::new(), taken: Vec::new(), repcached });
        }
        link::bind_listeners(settings).map(|(listeners, taken)| Ports { listeners, taken, repcached })
    }

    /// Starts the link thread(s) on the bound `ports` and installs the cache's mutation sink
    /// (the queue of each link). Errors are one start-up line.
    pub fn start(settings: &Settings, cache: Arc<Cache>, ports: Ports) -> Result<Replication, String> {
        let queue_size = settings.repl_queue as u64;
        let link = match settings.peer {
            Some(_) => Some(link::Link::start(settings, Arc::clone(&cache), ports.listeners, ports.taken)?),
            None => None,
        };
        let native: Option<Arc<dyn MutationSink>> = link.as_ref().map(|l| Arc::clone(&l.parts.queue) as Arc<dyn MutationSink>);
        let repcached = Repcached::start(settings, Arc::clone(&cache), ports.repcached, native.clone())?;
        let theirs: Option<Arc<dyn MutationSink>> = repcached.as_ref().map(|r| Arc::clone(&r.queue) as Arc<dyn MutationSink>);
        match (native, theirs) {
            (Some(native), Some(theirs)) => cache.set_sink(Arc::new(BothQueues(vec![native, theirs]))),
            (Some(sink), None) | (None, Some(sink)) => cache.set_sink(sink),
            (None, None) => {}
        }
        Ok(Replication { link, repcached, queue_size })
    }

    /// Blocks until this freshly started node has its partners' copies, or no copy can come
    /// (the peer refused the connection, or the node reached itself), or a peer that does not
    /// answer was not reached within `-o repl_join_wait`; the caller then serves clients.
    pub fn wait_joined(&self) {
        if let Some(link) = &self.link {
            link.wait_joined();
        }
        if let Some(repcached) = &self.repcached {
            repcached.wait_joined();
        }
    }

    /// Delivers what is queued to connected partners within `-o repl_drain_timeout`, then
    /// stops the links.
    pub fn shutdown(&self) {
        std::thread::scope(|scope| {
            if let Some(repcached) = &self.repcached {
                scope.spawn(|| repcached.shutdown());
            }
            if let Some(link) = &self.link {
                link.shutdown();
            }
        });
    }
}

impl ReplicationReport for Replication {
    fn status(&self) -> ReplicationStatus {
        match &self.link {
            Some(link) => link.status(),
            None => ReplicationStatus {
                state: LinkState::Down,
                peer: String::new(),
                queue_depth: 0,
                queue_free: self.queue_size,
                items_sent: 0,
                bytes_sent: 0,
                items_received: 0,
                bytes_received: 0,
                full_syncs: 0,
                partial_syncs: 0,
                reconnects: 0,
                refused: 0,
                deltas_forwarded: 0,
                delta_fallbacks: 0,
                queue_overflows: 0,
                lag_seconds: 0.0,
            },
        }
    }
}

impl DeltaRouter for Replication {
    fn delta(&self, key: &[u8], op: DeltaOp, amount: u64, cas: Option<u64>) -> Option<(DeltaOutcome, u64)> {
        self.link.as_ref().and_then(|link| link.forward_delta(key, op, amount, cas))
    }
}

#[cfg(test)]
mod tests {
    use super::{floor_at_millis, minus_margin};
    use crate::storage::clock;

    #[test]
    fn floors_lie_the_margin_below() {
        let now = u64::from(clock::now()) * 1000;
        assert_eq!(floor_at_millis(now), clock::stamp_at_secs(clock::now() - 10));
        assert_eq!(floor_at_millis(5000), 0);
        assert_eq!(minus_margin(clock::stamp_at_secs(100)), clock::stamp_at_secs(90));
        assert_eq!(minus_margin(3), 0);
    }
}
