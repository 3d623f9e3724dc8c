//! One installed link, from its sync to its end: the receiver (this thread) applies the peer's
//! frames and counts them for ACKs, runs the peer's incr/decr requests and completes this
//! node's; the sender (a thread of its own) sends the link-up sync (`Cache::scan_since`, the
//! flush state, SYNC_END), then drains the queue, catches the peer up from the table after an
//! overflow, sends ACKs, PINGs and the DELTA frames of `delta`'s outbox. Entries applied from the peer never
//! reach the queue (`Cache::apply` does not tell the sink), so nothing is sent back.
//!
//! Watermarks (`Unacked`): the sender keeps, per batch of frames not yet acknowledged, a
//! version floor below which everything in the batch lies. When the link ends, the lowest
//! floor still unacknowledged (or "now" minus the margin) is what the next sync to the same
//! peer instance must start from, whatever the peer claims to have received.
//!
//! A session knows the link it runs for only as a `Host`: the parts they share and the two
//! things a session tells it (a sync finished; the drained state changed). The tests below
//! run sessions against a stand-in host.

use std::collections::VecDeque;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::delta::Deltas;
use super::queue::{now_millis, KeyQueue, Pending};
use super::wire::{self, DeltaItem, Frame, Hello, ReadError};
use super::{floor_at_millis, minus_margin};
use crate::daemon;
use crate::log;
use crate::storage::replica::Entry;
use crate::storage::{Cache, DeltaOutcome};

/// An idle sender sends a PING this often, so that the peer's read timeout only fires when
/// this node is gone or stopped.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A peer silent this long (no frame, not even a PING) is taken for gone.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A peer that takes no bytes this long is taken for gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Keys taken from the queue at once.
const BATCH: usize = 256;
const READ_BUFFER: usize = 256 * 1024;
const WRITE_BUFFER: usize = 64 * 1024;

/// Counters for `stats replication`.
#[derive(Default)]
pub struct Counters {
    pub items_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub items_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub full_syncs: AtomicU64,
    pub partial_syncs: AtomicU64,
    pub reconnects: AtomicU64,
    pub refused: AtomicU64,
}

/// What a link shares with the sessions it runs.
pub struct Parts {
    pub cache: Arc<Cache>,
    pub queue: Arc<KeyQueue>,
    pub counters: Counters,
    /// Incr/decr sent to the peer and the peer's sent here.
    pub deltas: Deltas,
    pub my_id: u64,
    /// The largest frame payload accepted.
    pub max_payload: usize,
    /// The highest version received from the peer, for the next handshake's watermark.
    pub received_max: AtomicU64,
}

/// The link a session runs for.
pub trait Host: Send + Sync + 'static {
    fn parts(&self) -> &Parts;
    /// A sync has finished, in either direction (`flags` says which).
    fn sync_progress(&self, flags: &SessionFlags);
    /// Wakes whoever waits on the link: the drained state changed.
    fn notify(&self);
}

/// What the two threads of a link tell each other, and the link.
#[derive(Default)]
pub struct SessionFlags {
    /// Data frames received from the peer: the next ACK's number.
    to_ack: AtomicU64,
    /// The peer's last ACK: how many of our data frames it has applied.
    peer_acked: AtomicU64,
    closed: AtomicBool,
    sent_end: AtomicBool,
    received_end: AtomicBool,
    /// The sync is sent, the queue is empty and the peer has acknowledged everything.
    drained: AtomicBool,
}

impl SessionFlags {
    pub fn sent_end(&self) -> bool {
        self.sent_end.load(Ordering::Acquire)
    }

    pub fn received_end(&self) -> bool {
        self.received_end.load(Ordering::Acquire)
    }

    pub fn drained(&self) -> bool {
        self.drained.load(Ordering::Acquire)
    }
}

/// Runs the link until it ends; returns the version the next sync to this peer instance must
/// start from. `floor` is the one left by the previous link to the same instance.
pub fn run<H: Host>(host: &Arc<H>, stream: TcpStream, peer: Hello, floor: Option<u64>, flags: &Arc<SessionFlags>) -> u64 {
    let link = host.parts();
    let timeouts = stream.set_read_timeout(Some(READ_TIMEOUT)).and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    // From here on, local mutations are queued; the sync's scan covers the earlier ones.
    link.queue.open();
    let sender = timeouts.and_then(|()| stream.try_clone()).and_then(|writer| {
        let (host, flags) = (Arc::clone(host), Arc::clone(flags));
        std::thread::Builder::new().name("repl-send".to_string()).spawn(move || send(&*host, writer, peer, floor, &flags))
    });
    let sent_floor = match sender {
        Ok(thread) => {
            if let Err(why) = receive(&**host, &stream, flags) {
                log::line(log::WARN, format_args!("replication: link lost: {why}"));
            }
            flags.closed.store(true, Ordering::Release);
            link.deltas.close();
            let _ = stream.shutdown(Shutdown::Both);
            link.queue.wake();
            // A sender that panicked leaves no floor: the next sync is a full one.
            thread.join().unwrap_or(0)
        }
        Err(e) => {
            log::line(log::WARN, format_args!("replication: cannot start the sender: {}", daemon::strerror(&e)));
            floor.unwrap_or(0)
        }
    };
    let _ = stream.shutdown(Shutdown::Both);
    link.queue.close().map_or(sent_floor, |f| f.min(sent_floor))
}

/// An I/O error in words; a read timeout is "timed out", not "Resource temporarily
/// unavailable".
pub fn io_words(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_string(),
        _ => daemon::strerror(e),
    }
}

fn receive(host: &impl Host, stream: &TcpStream, flags: &SessionFlags) -> Result<(), String> {
    let link = host.parts();
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    let mut unacked = false;
    loop {
        // About to wait for the peer: let the sender acknowledge what came so far.
        if unacked && reader.buffer().is_empty() {
            link.queue.wake();
            unacked = false;
        }
        let (frame, size) = match wire::read_frame(&mut reader, link.max_payload) {
            Ok(read) => read,
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Err("closed by the peer".to_string()),
            Err(ReadError::Io(e)) => return Err(io_words(&e)),
            Err(ReadError::Wire(e)) => {
                link.counters.refused.fetch_add(1, Ordering::Relaxed);
                return Err(e.to_string());
            }
        };
        link.counters.bytes_received.fetch_add(size as u64, Ordering::Relaxed);
        let data = frame.is_data();
        match frame {
            Frame::Entry(entry) => {
                link.counters.items_received.fetch_add(1, Ordering::Relaxed);
                link.received_max.fetch_max(entry.version(), Ordering::Relaxed);
                link.cache.apply(&entry);
            }
            Frame::Flush(state) => link.cache.apply_flush(state),
            Frame::SyncEnd => {
                flags.received_end.store(true, Ordering::Release);
                log::line(log::STATE, format_args!("replication: the peer's sync is complete"));
                host.sync_progress(flags);
            }
            Frame::Ack(n) => {
                flags.peer_acked.store(n, Ordering::Release);
                link.queue.wake();
            }
            Frame::Ping => {}
            Frame::DeltaReq(req) => run_delta(link, req),
            Frame::DeltaResp(resp) => link.deltas.answer(resp),
            Frame::Hello(_) => return Err("a second HELLO".to_string()),
        }
        if data {
            flags.to_ack.fetch_add(1, Ordering::AcqRel);
            unacked = true;
        }
    }
}

/// Runs the peer's incr/decr of a key this node owns and queues the answer.
fn run_delta(link: &Parts, req: wire::DeltaReq) {
    let (outcome, _) = link.cache.delta(&req.key, req.op, req.amount, req.cas);
    let item = match (outcome, link.cache.entry(&req.key)) {
        (DeltaOutcome::Value(_), Some(Entry::Item { flags, exptime, version, marks, value, .. })) => {
            Some(DeltaItem { version, flags, exptime, marks, value })
        }
        _ => None,
    };
    link.deltas.reply(wire::DeltaResp { id: req.id, outcome, item });
    link.queue.wake();
}

/// Where the sync to `peer` starts: a peer instance met before needs what the last link to it
/// left unacknowledged (`floor`), or more if it says it holds less (its claim, less the
/// margin); a new one needs everything (0).
fn sync_since(my_id: u64, peer: &Hello, floor: Option<u64>) -> u64 {
    let claim = (peer.known_peer == my_id && peer.received > 0).then(|| minus_margin(peer.received));
    floor.map_or(0, |f| claim.map_or(f, |c| f.min(c)))
}

/// The data frames sent and not yet acknowledged, as batches with their version floors.
#[derive(Default)]
struct Unacked {
    /// Data frames sent on this link.
    frames: u64,
    /// (data frames sent at the end of a batch, the batch's floor), oldest first.
    batches: VecDeque<(u64, u64)>,
    /// The floor of the batch being written.
    pending: Option<u64>,
}

impl Unacked {
    /// The batch being written holds versions above `floor`.
    fn holds_above(&mut self, floor: u64) {
        self.pending = Some(self.pending.map_or(floor, |f| f.min(floor)));
    }

    /// The batch being written is on the wire: it counts until the peer acknowledges it.
    fn committed(&mut self) {
        if let Some(floor) = self.pending.take() {
            self.batches.push_back((self.frames, floor));
        }
    }

    /// The peer has applied `acked` of our data frames.
    fn acked(&mut self, acked: u64) {
        while self.batches.front().is_some_and(|(n, _)| *n <= acked) {
            self.batches.pop_front();
        }
    }

    fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Where the next sync to this peer instance must start were the link to end now, with
    /// `now` the floor of a stamp taken now.
    fn floor(&self, now: u64) -> u64 {
        self.batches.iter().map(|(_, f)| *f).chain(self.pending).min().map_or(now, |f| f.min(now))
    }
}

/// The sender thread's body; returns its floor (see the module doc).
fn send(host: &impl Host, writer: TcpStream, peer: Hello, floor: Option<u64>, flags: &SessionFlags) -> u64 {
    let mut sender = Sender {
        host,
        link: host.parts(),
        flags,
        out: BufWriter::with_capacity(WRITE_BUFFER, writer),
        buf: Vec::new(),
        unacked: Unacked::default(),
        acks_sent: 0,
        last_write: Instant::now(),
    };
    if let Err(e) = sender.run(peer, floor) {
        if !flags.closed.load(Ordering::Acquire) {
            log::line(log::WARN, format_args!("replication: sending to the peer failed: {}", io_words(&e)));
        }
    }
    sender.unacked.floor(floor_at_millis(now_millis()))
}

struct Sender<'a, H> {
    host: &'a H,
    link: &'a Parts,
    flags: &'a SessionFlags,
    out: BufWriter<TcpStream>,
    buf: Vec<u8>,
    unacked: Unacked,
    acks_sent: u64,
    last_write: Instant,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "link closed")
}

impl<H: Host> Sender<'_, H> {
    fn run(&mut self, peer: Hello, floor: Option<u64>) -> io::Result<()> {
        let link = self.link;
        let since = sync_since(link.my_id, &peer, floor);
        let kind = if since == 0 { &link.counters.full_syncs } else { &link.counters.partial_syncs };
        kind.fetch_add(1, Ordering::Relaxed);
        log::line(
            log::STATE,
            format_args!("replication: {} sync to the peer (versions above {since})", if since == 0 { "full" } else { "partial" }),
        );
        self.scan(since)?;
        self.send(&Frame::SyncEnd)?;
        self.commit()?;
        self.flags.sent_end.store(true, Ordering::Release);
        log::line(log::STATE, format_args!("replication: sync to the peer sent"));
        self.host.sync_progress(self.flags);
        loop {
            if self.flags.closed.load(Ordering::Acquire) {
                return Err(closed());
            }
            self.unacked.acked(self.flags.peer_acked.load(Ordering::Acquire));
            let deltas = link.deltas.take_outbox();
            for frame in &deltas {
                self.send(frame)?;
            }
            let to_ack = self.flags.to_ack.load(Ordering::Acquire);
            let ack = to_ack != self.acks_sent;
            if ack {
                self.send(&Frame::Ack(to_ack))?;
                self.acks_sent = to_ack;
            }
            // A client waits for each DELTA frame: they go out at once, as ACKs do.
            if ack || !deltas.is_empty() {
                self.out.flush()?;
            }
            let (depth, owed) = link.queue.depth();
            let drained = depth == 0 && !owed && self.unacked.is_empty();
            if drained != self.flags.drained() {
                self.flags.drained.store(drained, Ordering::Release);
                self.host.notify();
            }
            let batch = link.queue.take(BATCH, PING_EVERY);
            if !batch.items.is_empty() {
                if let Some(millis) = batch.oldest_millis {
                    self.unacked.holds_above(floor_at_millis(millis));
                }
                for pending in batch.items {
                    match pending {
                        Pending::Key(key) => {
                            // Gone (expired, evicted, never stored): nothing to send, as
                            // expiry and eviction stay local.
                            if let Some(entry) = link.cache.entry(&key) {
                                self.send(&Frame::Entry(entry))?;
                            }
                        }
                        Pending::Flush(state) => self.send(&Frame::Flush(state))?,
                    }
                }
                self.commit()?;
            }
            if let Some(from) = batch.catch_up_from {
                link.counters.partial_syncs.fetch_add(1, Ordering::Relaxed);
                log::line(log::STATE, format_args!("replication: the queue overflowed: catching the peer up (versions above {from})"));
                self.scan(from)?;
                self.commit()?;
            }
            if self.last_write.elapsed() >= PING_EVERY {
                self.send(&Frame::Ping)?;
                self.out.flush()?;
            }
        }
    }

    /// Sends every entry above `since`, then the flush state.
    fn scan(&mut self, since: u64) -> io::Result<()> {
        self.unacked.holds_above(since);
        let link = self.link;
        let mut failed = None;
        link.cache.scan_since(since, &mut |entry: Entry| {
            if failed.is_none() {
                if self.flags.closed.load(Ordering::Acquire) {
                    failed = Some(closed());
                } else if let Err(e) = self.send(&Frame::Entry(entry)) {
                    failed = Some(e);
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        self.send(&Frame::Flush(link.cache.flush_state()))
    }

    fn send(&mut self, frame: &Frame) -> io::Result<()> {
        self.buf.clear();
        wire::encode(frame, &mut self.buf);
        self.out.write_all(&self.buf)?;
        let counters = &self.link.counters;
        counters.bytes_sent.fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        if matches!(frame, Frame::Entry(_)) {
            counters.items_sent.fetch_add(1, Ordering::Relaxed);
        }
        if frame.is_data() {
            self.unacked.frames += 1;
        }
        self.last_write = Instant::now();
        Ok(())
    }

    /// Puts what was written on the wire and remembers the batch until the peer acknowledges it.
    fn commit(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.unacked.committed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::{minus_margin, run, sync_since, Counters, Host, Parts, SessionFlags, Unacked};
    use crate::replication::delta::Deltas;
    use crate::replication::queue::KeyQueue;
    use crate::replication::wire::{self, DeltaReq, Frame, Hello};
    use crate::storage::replica::{Entry, MutationSink};
    use crate::storage::{Cache, CacheConfig, DeltaOp, DeltaOutcome, StoreMode, StoreOutcome};

    const DEADLINE: Duration = Duration::from_secs(10);

    /// Stands in for the link: records what the session tells it.
    struct Stub {
        parts: Parts,
        /// (sent_end, received_end) at each sync_progress.
        progress: Mutex<Vec<(bool, bool)>>,
        notified: AtomicU64,
    }

    impl Host for Stub {
        fn parts(&self) -> &Parts {
            &self.parts
        }

        fn sync_progress(&self, flags: &SessionFlags) {
            self.progress.lock().unwrap().push((flags.sent_end(), flags.received_end()));
        }

        fn notify(&self) {
            self.notified.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn stub(my_id: u64) -> Arc<Stub> {
        let cache = Arc::new(Cache::new(&CacheConfig::test(16 << 20)).unwrap());
        let queue = Arc::new(KeyQueue::new(1024));
        cache.set_sink(Arc::clone(&queue) as Arc<dyn MutationSink>);
        let parts = Parts {
            cache,
            queue,
            counters: Counters::default(),
            deltas: Deltas::default(),
            my_id,
            max_payload: 1 << 20,
            received_max: AtomicU64::new(0),
        };
        Arc::new(Stub { parts, progress: Mutex::default(), notified: AtomicU64::new(0) })
    }

    fn hello(instance: u64, received: u64, known_peer: u64) -> Hello {
        Hello { instance, max_version: 0, received, known_peer }
    }

    /// A connected pair of loopback sockets: (the session's end, the peer's end).
    fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(DEADLINE)).unwrap();
        (ours, peer)
    }

    fn send(peer: &mut TcpStream, frame: Frame) {
        let mut bytes = Vec::new();
        wire::encode(&frame, &mut bytes);
        std::io::Write::write_all(peer, &bytes).unwrap();
    }

    fn read(reader: &mut BufReader<TcpStream>) -> Frame {
        wire::read_frame(reader, 1 << 20).unwrap().0
    }

    /// Reads frames, skipping PINGs, until one `wanted` says yes to.
    fn read_until(reader: &mut BufReader<TcpStream>, wanted: impl Fn(&Frame) -> bool) -> (Vec<Frame>, Frame) {
        let mut before = Vec::new();
        loop {
            match read(reader) {
                Frame::Ping => {}
                frame if wanted(&frame) => return (before, frame),
                frame => before.push(frame),
            }
        }
    }

    fn poll(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done() {
            assert!(Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn item(key: &[u8], version: u64, value: &[u8]) -> Entry {
        Entry::Item { key: key.to_vec(), flags: 3, exptime: 0, version, marks: 0, value: value.to_vec() }
    }

    #[test]
    fn a_new_peer_gets_everything_and_one_met_before_what_it_may_lack() {
        let floor = 5_000_000;
        // A new instance (or none met before): a full sync.
        assert_eq!(sync_since(1, &hello(2, 0, 0), None), 0);
        assert_eq!(sync_since(1, &hello(2, 9_000_000, 1), None), 0);
        // Met before: what the last link left unacknowledged ...
        assert_eq!(sync_since(1, &hello(2, 0, 1), Some(floor)), floor);
        assert_eq!(sync_since(1, &hello(2, 9_000_000, 7), Some(floor)), floor, "a claim about another instance counts for nothing");
        // ... or less, when the peer says it holds less (less the margin).
        let low = minus_margin(4_000_000_000_000);
        assert_eq!(sync_since(1, &hello(2, 4_000_000_000_000, 1), Some(u64::MAX)), low);
        assert_eq!(sync_since(1, &hello(2, u64::MAX, 1), Some(floor)), floor, "a claim above the floor lowers nothing");
    }

    #[test]
    fn a_batch_stays_unacknowledged_until_the_peer_has_applied_all_of_it() {
        let mut unacked = Unacked::default();
        assert_eq!(unacked.floor(900), 900, "nothing sent: the floor is now");
        unacked.holds_above(500);
        unacked.holds_above(300);
        unacked.frames += 3;
        assert_eq!(unacked.floor(900), 300, "a batch not yet committed counts");
        unacked.committed();
        unacked.holds_above(700);
        unacked.frames += 2;
        unacked.committed();
        assert_eq!(unacked.batches, [(3, 300), (5, 700)]);
        unacked.acked(2);
        assert_eq!(unacked.floor(900), 300, "part of the first batch is not enough");
        unacked.acked(3);
        assert_eq!(unacked.floor(900), 700);
        assert!(!unacked.is_empty());
        unacked.acked(5);
        assert!(unacked.is_empty());
        assert_eq!(unacked.floor(900), 900);
        unacked.committed();
        assert!(unacked.is_empty(), "a commit with nothing written adds no batch");
    }

    #[test]
    fn a_session_syncs_applies_acknowledges_and_ends_drained() {
        let host = stub(1);
        let cache = &host.parts.cache;
        for key in [&b"a"[..], b"b"] {
            assert_eq!(cache.store(StoreMode::Set, key, 3, 0, b"old"), StoreOutcome::Stored);
        }
        let (ours, mut peer) = socket_pair();
        let flags = Arc::new(SessionFlags::default());
        let session = {
            let (host, flags) = (Arc::clone(&host), Arc::clone(&flags));
            std::thread::spawn(move || run(&host, ours, hello(2, 0, 0), None, &flags))
        };
        let mut reader = BufReader::new(peer.try_clone().unwrap());

        // The sync: every item, the flush state, SYNC_END (4 data frames).
        let (sync, _) = read_until(&mut reader, |f| *f == Frame::SyncEnd);
        let mut keys: Vec<Vec<u8>> = sync
            .iter()
            .filter_map(|f| match f {
                Frame::Entry(Entry::Item { key, value, .. }) if value == b"old" => Some(key.clone()),
                _ => None,
            })
            .collect();
        keys.sort();
        assert_eq!(keys, [b"a".to_vec(), b"b".to_vec()]);
        assert!(matches!(sync.last(), Some(Frame::Flush(_))), "{sync:?}");
        assert_eq!(sync.len(), 3, "{sync:?}");
        assert_eq!(host.parts.counters.full_syncs.load(Ordering::Relaxed), 1);

        // The peer's sync: an item, applied here, and SYNC_END; both acknowledged (2 frames).
        let theirs = cache.max_version() + 1;
        send(&mut peer, Frame::Entry(item(b"c", theirs, b"theirs")));
        send(&mut peer, Frame::SyncEnd);
        let (_, ack) = read_until(&mut reader, |f| matches!(f, Frame::Ack(_)));
        assert_eq!(ack, Frame::Ack(2));
        assert!(matches!(cache.entry(b"c"), Some(Entry::Item { value, .. }) if value == b"theirs"));
        assert_eq!(host.parts.received_max.load(Ordering::Relaxed), theirs);
        poll("both syncs reported", || host.progress.lock().unwrap().contains(&(true, true)));

        // Not drained until the peer acknowledges the sync's 4 frames. Two round trips: the
        // sender's turn that answers the second item began after it had seen the ACK of 3.
        assert!(!flags.drained());
        send(&mut peer, Frame::Ack(3));
        send(&mut peer, Frame::Entry(item(b"x", theirs + 1, b"x")));
        read_until(&mut reader, |f| *f == Frame::Ack(3));
        send(&mut peer, Frame::Entry(item(b"y", theirs + 2, b"y")));
        read_until(&mut reader, |f| *f == Frame::Ack(4));
        assert!(!flags.drained(), "3 of 4 frames acknowledged");
        send(&mut peer, Frame::Ack(4));
        poll("drained", || flags.drained());
        assert!(host.notified.load(Ordering::Relaxed) >= 1);

        // A local write goes out as it happens.
        let before = super::floor_at_millis(super::now_millis());
        assert_eq!(cache.store(StoreMode::Set, b"d", 3, 0, b"new"), StoreOutcome::Stored);
        let (_, frame) = read_until(&mut reader, |f| matches!(f, Frame::Entry(_)));
        assert!(matches!(frame, Frame::Entry(Entry::Item { key, value, .. }) if key == b"d" && value == b"new"));

        // The peer's incr of a key this node owns runs here and is answered.
        assert_eq!(cache.store(StoreMode::Set, b"n", 0, 0, b"10"), StoreOutcome::Stored);
        send(&mut peer, Frame::DeltaReq(DeltaReq { id: 7, op: DeltaOp::Incr, amount: 5, cas: None, key: b"n".to_vec() }));
        let (_, resp) = read_until(&mut reader, |f| matches!(f, Frame::DeltaResp(_)));
        let Frame::DeltaResp(resp) = resp else { unreachable!() };
        assert_eq!((resp.id, resp.outcome), (7, DeltaOutcome::Value(15)));
        assert_eq!(resp.item.map(|i| i.value), Some(b"15".to_vec()));

        // The peer goes: the session ends, and the next sync must start no later than the
        // writes never acknowledged ("d", "n").
        drop(reader);
        drop(peer);
        let floor = session.join().unwrap();
        assert!((before..=super::floor_at_millis(super::now_millis())).contains(&floor), "{floor}");
    }
}
