//! Server-wide counters and the connection registry behind `stats` and `stats conns`, and
//! the replication snapshot behind `stats replication` (`ReplicationReport`, which the
//! replication implements, so that the protocol reads it without depending on it).
//!
//! Counters are declared once in `Counter::ALL`; that list declares, sums, resets and names
//! them, so the three cannot drift. A command counts into its thread's `LocalCounts`, a plain
//! array, which is folded once per batch of commands. As in memcached, a handler thread's
//! counts then go to a block of its own (`Stats::thread_counts`): a plain load and store on a
//! cache line no other thread writes, summed when `stats` asks. Other threads (accept, the
//! replication) fold into shared atomics. `stats reset` records the sums as a baseline rather
//! than zeroing blocks that their owners write without a read-modify-write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// A counter that `stats` prints, named as memcached names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    TotalConnections,
    RejectedConnections,
    ConnYields,
    CmdGet,
    CmdSet,
    CmdFlush,
    CmdTouch,
    CmdMeta,
    GetHits,
    GetMisses,
    GetExpired,
    GetFlushed,
    DeleteMisses,
    DeleteHits,
    IncrMisses,
    IncrHits,
    DecrMisses,
    DecrHits,
    CasMisses,
    CasHits,
    CasBadval,
    TouchHits,
    TouchMisses,
    BytesRead,
    BytesWritten,
    /// Stores the parser refused as too large before the cache saw them (the cache counts
    /// its own; `stats` prints the sum).
    StoreTooLarge,
}

impl Counter {
    pub const ALL: [Counter; 26] = [
        Counter::TotalConnections,
        Counter::RejectedConnections,
        Counter::ConnYields,
        Counter::CmdGet,
        Counter::CmdSet,
        Counter::CmdFlush,
        Counter::CmdTouch,
        Counter::CmdMeta,
        Counter::GetHits,
        Counter::GetMisses,
        Counter::GetExpired,
        Counter::GetFlushed,
        Counter::DeleteMisses,
        Counter::DeleteHits,
        Counter::IncrMisses,
        Counter::IncrHits,
        Counter::DecrMisses,
        Counter::DecrHits,
        Counter::CasMisses,
        Counter::CasHits,
        Counter::CasBadval,
        Counter::TouchHits,
        Counter::TouchMisses,
        Counter::BytesRead,
        Counter::BytesWritten,
        Counter::StoreTooLarge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::TotalConnections => "total_connections",
            Counter::RejectedConnections => "rejected_connections",
            Counter::ConnYields => "conn_yields",
            Counter::CmdGet => "cmd_get",
            Counter::CmdSet => "cmd_set",
            Counter::CmdFlush => "cmd_flush",
            Counter::CmdTouch => "cmd_touch",
            Counter::CmdMeta => "cmd_meta",
            Counter::GetHits => "get_hits",
            Counter::GetMisses => "get_misses",
            Counter::GetExpired => "get_expired",
            Counter::GetFlushed => "get_flushed",
            Counter::DeleteMisses => "delete_misses",
            Counter::DeleteHits => "delete_hits",
            Counter::IncrMisses => "incr_misses",
            Counter::IncrHits => "incr_hits",
            Counter::DecrMisses => "decr_misses",
            Counter::DecrHits => "decr_hits",
            Counter::CasMisses => "cas_misses",
            Counter::CasHits => "cas_hits",
            Counter::CasBadval => "cas_badval",
            Counter::TouchHits => "touch_hits",
            Counter::TouchMisses => "touch_misses",
            Counter::BytesRead => "bytes_read",
            Counter::BytesWritten => "bytes_written",
            Counter::StoreTooLarge => "store_too_large",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counts kept by one thread between folds.
#[derive(Debug, Default)]
pub struct LocalCounts {
    counts: [u64; Counter::ALL.len()],
    /// The thread's own block, if it has one; else folds go to the shared counters.
    home: Option<Arc<ThreadCounts>>,
}

impl LocalCounts {
    pub fn add(&mut self, counter: Counter, n: u64) {
        self.counts[counter.index()] += n;
    }

    /// Adds everything to `stats` and starts again from zero.
    pub fn fold_into(&mut self, stats: &Stats) {
        let targets = self.home.as_ref().map_or(&stats.counters, |home| &home.counts);
        for (count, target) in self.counts.iter_mut().zip(targets.iter()) {
            if *count == 0 {
                continue;
            }
            if self.home.is_some() {
                // Only this thread writes its block: no read-modify-write is needed.
                target.store(target.load(Ordering::Relaxed).wrapping_add(*count), Ordering::Relaxed);
            } else {
                target.fetch_add(*count, Ordering::Relaxed);
            }
            *count = 0;
        }
    }
}

/// One handler thread's counters, on cache lines of their own.
#[derive(Debug)]
#[repr(align(128))]
struct ThreadCounts {
    counts: [AtomicU64; Counter::ALL.len()],
}

/// The server-wide counters.
#[derive(Debug)]
pub struct Stats {
    /// Folds of threads without a block of their own.
    counters: [AtomicU64; Counter::ALL.len()],
    /// Every handler thread's block.
    threads: Mutex<Vec<Arc<ThreadCounts>>>,
    /// The sums at the last `stats reset`.
    baseline: [AtomicU64; Counter::ALL.len()],
    /// Open client connections: what `-c` caps.
    pub curr_connections: AtomicU64,
    /// Client connections ever open at once.
    pub connection_structures: AtomicU64,
    /// Open listeners and UDP threads, which memcached counts as connections too (in
    /// `curr_connections`, `total_connections` and `connection_structures`).
    pub server_connections: AtomicU64,
    /// Times the listener stopped accepting at `-c` (`listen_disabled_num`).
    pub listen_disabled_num: AtomicU64,
    /// Unix seconds at start-up.
    pub started: u32,
    /// `stats detail on|off` as last asked: DETAIL_DEFAULT until then (the `-D` setting rules).
    detail: AtomicU8,
    /// Per-prefix counts while `stats detail` is on.
    prefixes: Mutex<BTreeMap<Vec<u8>, PrefixCounts>>,
}

const DETAIL_DEFAULT: u8 = 0;
const DETAIL_ON: u8 = 1;
const DETAIL_OFF: u8 = 2;

/// What `stats detail dump` prints for one key prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixCounts {
    pub gets: u64,
    pub hits: u64,
    pub sets: u64,
    pub deletes: u64,
}

/// A command that `stats detail` counts per prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixOp {
    Get { hit: bool },
    Set,
    Delete,
}

impl Stats {
    pub fn new(started: u32) -> Stats {
        Stats {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            threads: Mutex::new(Vec::new()),
            baseline: std::array::from_fn(|_| AtomicU64::new(0)),
            curr_connections: AtomicU64::new(0),
            connection_structures: AtomicU64::new(0),
            server_connections: AtomicU64::new(0),
            listen_disabled_num: AtomicU64::new(0),
            started,
            detail: AtomicU8::new(DETAIL_DEFAULT),
            prefixes: Mutex::new(BTreeMap::new()),
        }
    }

    /// `curr_connections` as memcached prints it: every open connection, listeners and UDP
    /// threads among them, less one (memcached subtracts its one listener, so that with one
    /// listener the figure is the clients and the UDP threads).
    pub fn curr_connections_shown(&self) -> u64 {
        let open = self.curr_connections.load(Ordering::Relaxed) + self.server_connections.load(Ordering::Relaxed);
        open.saturating_sub(1)
    }

    /// `connection_structures` as memcached prints it: listeners and UDP threads count too.
    pub fn connection_structures_shown(&self) -> u64 {
        self.connection_structures.load(Ordering::Relaxed) + self.server_connections.load(Ordering::Relaxed)
    }

    pub fn add(&self, counter: Counter, n: u64) {
        self.counters[counter.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// A thread's counts with a block of their own in these stats, for a long-lived thread.
    pub fn thread_counts(&self) -> LocalCounts {
        let home = Arc::new(ThreadCounts { counts: std::array::from_fn(|_| AtomicU64::new(0)) });
        self.threads.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::clone(&home));
        LocalCounts { counts: [0; Counter::ALL.len()], home: Some(home) }
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.total(counter.index()).wrapping_sub(self.baseline[counter.index()].load(Ordering::Relaxed))
    }

    /// Everything ever counted, since start-up.
    fn total(&self, i: usize) -> u64 {
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        threads.iter().fold(self.counters[i].load(Ordering::Relaxed), |sum, t| sum.wrapping_add(t.counts[i].load(Ordering::Relaxed)))
    }

    /// `stats reset`: every counter starts again from zero, and the per-prefix counts are
    /// cleared (the gauges stay).
    pub fn reset(&self) {
        for (i, base) in self.baseline.iter().enumerate() {
            base.store(self.total(i), Ordering::Relaxed);
        }
        self.lock_prefixes().clear();
    }

    /// Whether per-prefix counting is on; `default` is the start-up setting (`-D` given).
    pub fn detail_on(&self, default: bool) -> bool {
        match self.detail.load(Ordering::Relaxed) {
            DETAIL_ON => true,
            DETAIL_OFF => false,
            _ => default,
        }
    }

    /// `stats detail on|off`.
    pub fn set_detail(&self, on: bool) {
        self.detail.store(if on { DETAIL_ON } else { DETAIL_OFF }, Ordering::Relaxed);
    }

    /// Counts `op` under the key's prefix: the part before `delimiter`. Keys without the
    /// delimiter are not counted, as in memcached.
    pub fn record_prefix(&self, key: &[u8], delimiter: u8, op: PrefixOp) {
        let Some(end) = key.iter().position(|&b| b == delimiter) else {
            return;
        };
        let mut prefixes = self.lock_prefixes();
        let counts = match prefixes.get_mut(&key[..end]) {
            Some(counts) => counts,
            None => prefixes.entry(key[..end].to_vec()).or_default(),
        };
        match op {
            PrefixOp::Get { hit } => {
                counts.gets += 1;
                counts.hits += u64::from(hit);
            }
            PrefixOp::Set => counts.sets += 1,
            PrefixOp::Delete => counts.deletes += 1,
        }
    }

    /// A copy of the per-prefix counts, in prefix order.
    pub fn prefix_counts(&self) -> Vec<(Vec<u8>, PrefixCounts)> {
        self.lock_prefixes().iter().map(|(prefix, counts)| (prefix.clone(), *counts)).collect()
    }

    fn lock_prefixes(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, PrefixCounts>> {
        self.prefixes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a connection is doing, for `stats conns` (memcached's state names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    Listening = 0,
    /// A new connection that has sent nothing yet.
    NewCmd = 1,
    /// Waiting for (more of) a command line or a binary request.
    Reading = 2,
    Parsing = 3,
    Writing = 4,
    Swallowing = 5,
    /// Waiting for the rest of a text store's data.
    Nread = 6,
}

impl ConnState {
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Listening => "conn_listening",
            ConnState::NewCmd => "conn_new_cmd",
            ConnState::Reading => "conn_read",
            ConnState::Parsing => "conn_parse_cmd",
            ConnState::Writing => "conn_mwrite",
            ConnState::Swallowing => "conn_swallow",
            ConnState::Nread => "conn_nread",
        }
    }

    fn from_u8(v: u8) -> ConnState {
        match v {
            0 => ConnState::Listening,
            1 => ConnState::NewCmd,
            2 => ConnState::Reading,
            3 => ConnState::Parsing,
            4 => ConnState::Writing,
            5 => ConnState::Swallowing,
            _ => ConnState::Nread,
        }
    }
}

/// One listener or client connection, as `stats conns` shows it. The owning thread updates
/// the atomics without taking the registry's lock.
#[derive(Debug)]
pub struct ConnRecord {
    /// "tcp:127.0.0.1:40000", "unix:/path".
    pub addr: String,
    /// The listener it came through, or empty for a listener.
    pub listen_addr: String,
    /// A UDP thread's connection, which memcached marks with a "UDP UDP" line.
    pub udp: bool,
    state: AtomicU8,
    last_cmd: AtomicU32,
}

impl ConnRecord {
    pub fn set_state(&self, state: ConnState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Records the unix second of the latest command.
    pub fn touch(&self, now: u32) {
        self.last_cmd.store(now, Ordering::Relaxed);
    }

    pub fn last_cmd(&self) -> u32 {
        self.last_cmd.load(Ordering::Relaxed)
    }
}

/// Every open listener and connection by its file descriptor.
#[derive(Debug, Default)]
pub struct ConnRegistry {
    records: Mutex<BTreeMap<i32, Arc<ConnRecord>>>,
}

impl ConnRegistry {
    pub fn register(&self, fd: i32, addr: String, listen_addr: String, state: ConnState, now: u32) -> Arc<ConnRecord> {
        self.insert(fd, ConnRecord { addr, listen_addr, udp: false, state: AtomicU8::new(state as u8), last_cmd: AtomicU32::new(now) })
    }

    /// Registers one UDP thread's descriptor, as memcached registers each of its workers'
    /// connections on a UDP socket: always reading.
    pub fn register_udp(&self, fd: i32, addr: String, now: u32) -> Arc<ConnRecord> {
        self.insert(
            fd,
            ConnRecord {
                addr,
                listen_addr: String::new(),
                udp: true,
                state: AtomicU8::new(ConnState::Reading as u8),
                last_cmd: AtomicU32::new(now),
            },
        )
    }

    fn insert(&self, fd: i32, record: ConnRecord) -> Arc<ConnRecord> {
        let record = Arc::new(record);
        self.lock().insert(fd, Arc::clone(&record));
        record
    }

    pub fn unregister(&self, fd: i32) {
        self.lock().remove(&fd);
    }

    /// A copy of the registry, in descriptor order.
    pub fn snapshot(&self) -> Vec<(i32, Arc<ConnRecord>)> {
        self.lock().iter().map(|(fd, record)| (*fd, Arc::clone(record))).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, Arc<ConnRecord>>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The replication link's state, as `stats replication` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Listening,
    Connecting,
    Syncing,
    Up,
    Down,
}

impl LinkState {
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Listening => "listening",
            LinkState::Connecting => "connecting",
            LinkState::Syncing => "syncing",
            LinkState::Up => "up",
            LinkState::Down => "down",
        }
    }
}

/// A snapshot of the replication for `stats` and `stats replication`.
#[derive(Debug, Clone)]
pub struct ReplicationStatus {
    pub state: LinkState,
    pub peer: String,
    /// Mutations queued and not yet sent.
    pub queue_depth: u64,
    /// Free queue slots (repcached's `repcached_qi_free`).
    pub queue_free: u64,
    pub items_sent: u64,
    pub bytes_sent: u64,
    pub items_received: u64,
    pub bytes_received: u64,
    pub full_syncs: u64,
    pub partial_syncs: u64,
    pub reconnects: u64,
    /// Connections refused on the replication port (strangers, bad handshakes).
    pub refused: u64,
    /// Client incr/decr run by the peer, which owns the key.
    pub deltas_forwarded: u64,
    /// Client incr/decr meant for the peer that ran here after all (no answer in time).
    pub delta_fallbacks: u64,
    /// Times the queue was full and the peer was caught up from the table instead.
    pub queue_overflows: u64,
    /// Seconds between the oldest unsent mutation and now (0 when the queue is empty).
    pub lag_seconds: f64,
}

impl ReplicationStatus {
    /// repcached's `replication` word: `NONE` without a peer, `SLAVE` while this node is
    /// receiving the peer's copy, `MASTER` otherwise (repcached shows both nodes of a linked
    /// pair, and a node waiting alone, as `MASTER`).
    pub fn role(&self) -> &'static str {
        if self.peer.is_empty() {
            "NONE"
        } else if self.state == LinkState::Syncing {
            "SLAVE"
        } else {
            "MASTER"
        }
    }
}

/// What `stats` asks of the node's replication: declared here, below the protocol, so that
/// the protocol can print it without depending on the replication machinery above it.
pub trait ReplicationReport: Send + Sync {
    fn status(&self) -> ReplicationStatus;
}

#[cfg(test)]
mod tests {
    use super::{Counter, LocalCounts, PrefixCounts, PrefixOp, Stats};

    #[test]
    fn counters_are_listed_once_in_declaration_order() {
        for (i, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(counter.index(), i, "{counter:?}");
            let same_name = Counter::ALL.iter().filter(|c| c.name() == counter.name()).count();
            assert_eq!(same_name, 1, "{}", counter.name());
        }
    }

    #[test]
    fn fold_adds_and_clears_local_counts() {
        let stats = Stats::new(0);
        let mut local = LocalCounts::default();
        local.add(Counter::CmdGet, 3);
        local.fold_into(&stats);
        local.fold_into(&stats);
        assert_eq!(stats.get(Counter::CmdGet), 3);
        stats.reset();
        assert_eq!(stats.get(Counter::CmdGet), 0);
    }

    #[test]
    fn thread_blocks_are_summed_and_reset_with_the_shared_counters() {
        let stats = Stats::new(0);
        let mut a = stats.thread_counts();
        let mut b = stats.thread_counts();
        let mut shared = LocalCounts::default();
        a.add(Counter::CmdSet, 2);
        b.add(Counter::CmdSet, 5);
        shared.add(Counter::CmdSet, 1);
        for local in [&mut a, &mut b, &mut shared] {
            local.fold_into(&stats);
        }
        assert_eq!(stats.get(Counter::CmdSet), 8);
        stats.reset();
        assert_eq!(stats.get(Counter::CmdSet), 0);
        a.add(Counter::CmdSet, 4);
        a.fold_into(&stats);
        assert_eq!(stats.get(Counter::CmdSet), 4, "counts after a reset start from zero");
    }

    #[test]
    fn detail_follows_the_setting_until_switched() {
        let stats = Stats::new(0);
        assert!(stats.detail_on(true));
        assert!(!stats.detail_on(false));
        stats.set_detail(false);
        assert!(!stats.detail_on(true));
        stats.set_detail(true);
        assert!(stats.detail_on(false));
    }

    #[test]
    fn prefixes_count_keys_with_the_delimiter_only() {
        let stats = Stats::new(0);
        stats.record_prefix(b"a:b", b':', PrefixOp::Get { hit: true });
        stats.record_prefix(b"a:c", b':', PrefixOp::Get { hit: false });
        stats.record_prefix(b"a:b", b':', PrefixOp::Set);
        stats.record_prefix(b"a:b", b':', PrefixOp::Delete);
        stats.record_prefix(b"plain", b':', PrefixOp::Set);
        assert_eq!(stats.prefix_counts(), vec![(b"a".to_vec(), PrefixCounts { gets: 2, hits: 1, sets: 1, deletes: 1 })]);
        stats.reset();
        assert!(stats.prefix_counts().is_empty());
    }
}
