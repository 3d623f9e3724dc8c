//! One installed link, from its sync to its end: the receiver (this thread) applies the peer's
//! frames and counts them for ACKs, runs the peer's incr/decr requests and completes this
//! node's; the sender (a thread of its own) sends the link-up sync (`Cache::scan_since`, the
//! flush state, SYNC_END), then drains the queue, catches the peer up from the table after an
//! overflow, sends ACKs, PINGs and the DELTA frames of `delta`'s outbox. Entries applied from the peer never
//! reach the queue (`Cache::apply` does not tell the sink), so nothing is sent back.
//!
//! Watermarks: the sender keeps, per batch of frames not yet acknowledged, a version floor
//! below which everything in the batch lies. When the link ends, the lowest floor still
//! unacknowledged (or "now" minus the margin) is what the next sync to the same peer instance
//! must start from, whatever the peer claims to have received.

use std::collections::VecDeque;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::link::{io_words, Link};
use super::queue::{now_millis, Pending};
use super::wire::{self, Frame, Hello, ReadError};
use super::{floor_at_millis, minus_margin};
use crate::daemon;
use crate::log;
use crate::storage::replica::Entry;

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

/// What the two threads of a link tell each other, and the slot.
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
pub fn run(link: &Arc<Link>, stream: TcpStream, peer: Hello, floor: Option<u64>, flags: &Arc<SessionFlags>) -> u64 {
    let timeouts = stream.set_read_timeout(Some(READ_TIMEOUT)).and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    // From here on, local mutations are queued; the sync's scan covers the earlier ones.
    link.queue.open();
    let sender = timeouts.and_then(|()| stream.try_clone()).and_then(|writer| {
        let (link, flags) = (Arc::clone(link), Arc::clone(flags));
        std::thread::Builder::new().name("repl-send".to_string()).spawn(move || send(&link, writer, peer, floor, &flags))
    });
    let sent_floor = match sender {
        Ok(thread) => {
            if let Err(why) = receive(link, &stream, flags) {
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

fn receive(link: &Link, stream: &TcpStream, flags: &SessionFlags) -> Result<(), String> {
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
                link.received(entry.version());
                link.cache.apply(&entry);
            }
            Frame::Flush(state) => link.cache.apply_flush(state),
            Frame::SyncEnd => {
                flags.received_end.store(true, Ordering::Release);
                log::line(log::STATE, format_args!("replication: the peer's sync is complete"));
                link.sync_progress(flags);
            }
            Frame::Ack(n) => {
                flags.peer_acked.store(n, Ordering::Release);
                link.queue.wake();
            }
            Frame::Ping => {}
            Frame::DeltaReq(req) => link.run_delta(req),
            Frame::DeltaResp(resp) => link.deltas.answer(resp),
            Frame::Hello(_) => return Err("a second HELLO".to_string()),
        }
        if data {
            flags.to_ack.fetch_add(1, Ordering::AcqRel);
            unacked = true;
        }
    }
}

/// The sender thread's body; returns its floor (see the module doc).
fn send(link: &Link, writer: TcpStream, peer: Hello, floor: Option<u64>, flags: &SessionFlags) -> u64 {
    let mut sender = Sender {
        link,
        flags,
        out: BufWriter::with_capacity(WRITE_BUFFER, writer),
        buf: Vec::new(),
        frames: 0,
        inflight: VecDeque::new(),
        pending_floor: None,
        acks_sent: 0,
        last_write: Instant::now(),
    };
    if let Err(e) = sender.run(peer, floor) {
        if !flags.closed.load(Ordering::Acquire) {
            log::line(log::WARN, format_args!("replication: sending to the peer failed: {}", io_words(&e)));
        }
    }
    let unacked = sender.inflight.iter().map(|(_, f)| *f).chain(sender.pending_floor).min();
    let now = floor_at_millis(now_millis());
    unacked.map_or(now, |f| f.min(now))
}

struct Sender<'a> {
    link: &'a Link,
    flags: &'a SessionFlags,
    out: BufWriter<TcpStream>,
    buf: Vec<u8>,
    /// Data frames sent on this link.
    frames: u64,
    /// (data frames sent at the end of a batch, the batch's floor), oldest first.
    inflight: VecDeque<(u64, u64)>,
    /// The floor of the batch being written.
    pending_floor: Option<u64>,
    acks_sent: u64,
    last_write: Instant,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "link closed")
}

impl Sender<'_> {
    fn run(&mut self, peer: Hello, floor: Option<u64>) -> io::Result<()> {
        let link = self.link;
        // A peer instance met before needs what the last link to it left unacknowledged, or
        // more if it says it holds less (its claim, less the margin); a new one needs all.
        let claim = (peer.known_peer == link.my_id && peer.received > 0).then(|| minus_margin(peer.received));
        let since = floor.map_or(0, |f| claim.map_or(f, |c| f.min(c)));
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
        link.sync_progress(self.flags);
        loop {
            if self.flags.closed.load(Ordering::Acquire) {
                return Err(closed());
            }
            let acked = self.flags.peer_acked.load(Ordering::Acquire);
            while self.inflight.front().is_some_and(|(n, _)| *n <= acked) {
                self.inflight.pop_front();
            }
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
            let drained = depth == 0 && !owed && self.inflight.is_empty();
            if drained != self.flags.drained() {
                self.flags.drained.store(drained, Ordering::Release);
                link.notify();
            }
            let batch = link.queue.take(BATCH, PING_EVERY);
            if !batch.items.is_empty() {
                self.pending_floor = batch.oldest_millis.map(floor_at_millis);
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
        self.pending_floor = Some(self.pending_floor.map_or(since, |f| f.min(since)));
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
            self.frames += 1;
        }
        self.last_write = Instant::now();
        Ok(())
    }

    /// Puts what was written on the wire and remembers the batch until the peer acknowledges it.
    fn commit(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if let Some(floor) = self.pending_floor.take() {
            self.inflight.push_back((self.frames, floor));
        }
        Ok(())
    }
}
