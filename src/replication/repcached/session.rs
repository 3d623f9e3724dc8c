//! One link to the repcached partner, from install to end: the receiver (this thread)
//! parses what the partner sends and applies it; the sender (a thread of its own) sends the
//! full copy when this node accepted the link, then the queued local mutations, each key as
//! it is when sent (repcached's way). The receiver never writes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::wire::{self, Message, Parsed};
use super::Repcached;
use crate::daemon;
use crate::log;
use crate::replication::queue::Pending;
use crate::storage::clock;
use crate::storage::replica::{Entry, FlushState};

/// A partner that takes nothing for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes gathered before a write.
const WRITE_CHUNK: usize = 256 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Queued mutations taken at once, and how long the sender waits for some.
const BATCH: usize = 512;
const TAKE_WAIT: Duration = Duration::from_millis(200);

/// Runs the link until it ends; returns why it ended.
pub fn run(link: &Arc<Repcached>, stream: &TcpStream, dialed: bool) -> String {
    let _ = stream.set_nodelay(true);
    // Mutations from now on are queued; an accepted link's copy covers the earlier ones.
    link.queue.open();
    let closed = Arc::new(AtomicBool::new(false));
    let sender = stream.set_write_timeout(Some(WRITE_TIMEOUT)).and_then(|()| stream.try_clone()).and_then(|writer| {
        let (link, closed) = (Arc::clone(link), Arc::clone(&closed));
        std::thread::Builder::new().name("repcached-send".into()).spawn(move || {
            let mut sender = Sender { link: &link, stream: writer, out: Vec::new(), closed: &closed };
            // Once the receiver has closed the link, a failed write says nothing new.
            match sender.run(!dialed) {
                Err(why) if !closed.load(Ordering::Acquire) => {
                    log::line(log::WARN, format_args!("repcached: sending to {}: {why}", link.partner));
                }
                _ => {}
            }
            let _ = sender.stream.shutdown(Shutdown::Both);
        })
    });
    let why = match sender {
        Ok(thread) => {
            let why = receive(link, stream, dialed);
            closed.store(true, Ordering::Release);
            let _ = stream.shutdown(Shutdown::Both);
            link.queue.wake();
            let _ = thread.join();
            why
        }
        Err(e) => format!("cannot start the sender: {}", daemon::strerror(&e)),
    };
    link.queue.close();
    why
}

/// Reads and applies until the stream ends or brings something unexpected; returns why.
fn receive(link: &Repcached, mut stream: &TcpStream, dialed: bool) -> String {
    let mut copy = dialed.then_some(0u64);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let mut used = 0;
        loop {
            match wire::parse(&buf[used..], link.max_value) {
                Parsed::Complete(message, n) => {
                    used += n;
                    if let Err(why) = apply(link, message, &mut copy) {
                        return why;
                    }
                }
                Parsed::Incomplete => break,
                Parsed::Invalid(why) => return format!("unexpected from the partner, not applied: {why}"),
            }
        }
        buf.drain(..used);
        match stream.read(&mut chunk) {
            Ok(0) => return "closed by the partner".to_string(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return daemon::strerror(&e),
        }
    }
}

/// Applies one message from the partner with a fresh version (the last to arrive wins).
/// `copy` counts the messages of a copy under way (None: none is).
fn apply(link: &Repcached, message: Message, copy: &mut Option<u64>) -> Result<(), String> {
    if let Some(n) = copy.as_mut() {
        *n += 1;
    }
    match message {
        Message::Rep { key, flags, exptime, value, .. } => {
            if !link.cache.item_fits(key.len(), value.len()) {
                let key = String::from_utf8_lossy(&key);
                log::line(log::WARN, format_args!("repcached: {key} ({} bytes) is larger than -I here: not stored", value.len()));
            }
            // Applied even when too large: the older item it replaces must go.
            let entry = Entry::Item { key, flags, exptime, version: clock::stamp(), marks: 0, value };
            link.cache.apply(&entry);
            relay_key(link, entry.key());
        }
        Message::Delete { key } => {
            let entry = Entry::Deleted { key, version: clock::stamp() };
            link.cache.apply(&entry);
            relay_key(link, entry.key());
        }
        Message::FlushAll { at } => {
            link.cache.apply_flush(flush_state(at, clock::now()));
            if let Some(relay) = &link.relay {
                relay.flushed(link.cache.flush_state());
            }
        }
        Message::CopyEnd => match copy.take() {
            Some(n) => {
                log::line(log::STATE, format_args!("repcached: full copy taken ({} messages)", n - 1));
                link.set_joined();
            }
            None => return Err("unexpected from the partner, not applied: marugoto_end outside a copy".into()),
        },
    }
    Ok(())
}

fn relay_key(link: &Repcached, key: &[u8]) {
    if let Some(relay) = &link.relay {
        relay.mutated(key);
    }
}

/// The flush state a partner's `flush_all` means here: a time still to come is a delayed
/// flush; none, or one already past (repcached sends its start time for `flush_all 0`, and
/// a delayed flush may arrive late), flushes now.
pub fn flush_state(at: Option<u32>, now: u32) -> FlushState {
    match at {
        Some(at) if at > now => FlushState { applied: 0, pending: Some((clock::stamp_at_secs(at), at)) },
        _ => FlushState { applied: clock::stamp(), pending: None },
    }
}

/// The sending half of a link.
struct Sender<'a> {
    link: &'a Repcached,
    stream: TcpStream,
    out: Vec<u8>,
    closed: &'a AtomicBool,
}

impl Sender<'_> {
    fn run(&mut self, give_copy: bool) -> Result<(), String> {
        if give_copy {
            self.copy()?;
        }
        while !self.closed.load(Ordering::Acquire) {
            let batch = self.link.queue.take(BATCH, TAKE_WAIT);
            for pending in batch.items {
                match pending {
                    Pending::Key(key) => self.put_key(&key),
                    Pending::Flush(state) => wire::put_flush(&mut self.out, state.pending.map(|(_, at)| at)),
                }
                self.write_if_full()?;
            }
            if let Some(since) = batch.catch_up_from {
                log::line(log::WARN, format_args!("repcached: queue overflowed: catching the partner up from the table"));
                self.scan(since, false)?;
            }
            self.write()?;
            self.link.passes.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// The full copy: every live item, then `marugoto_end`.
    fn copy(&mut self) -> Result<(), String> {
        log::line(log::STATE, format_args!("repcached: sending the full copy to {}", self.link.partner));
        self.scan(0, true)?;
        wire::put_copy_end(&mut self.out);
        self.write()?;
        log::line(log::STATE, format_args!("repcached: full copy sent"));
        Ok(())
    }

    /// Sends what changed above version `since` (deletes too, unless `items_only`).
    fn scan(&mut self, since: u64, items_only: bool) -> Result<(), String> {
        let mut failed = None;
        self.link.cache.scan_since(since, &mut |entry| {
            if failed.is_some() {
                return;
            }
            match &entry {
                Entry::Item { .. } => self.put_entry(&entry),
                Entry::Deleted { key, .. } if !items_only => wire::put_delete(&mut self.out, key),
                Entry::Deleted { .. } => {}
            }
            failed = self.write_if_full().err();
        });
        failed.map_or(Ok(()), Err)
    }

    /// The key as it is now: its item, or a delete when it has none.
    fn put_key(&mut self, key: &[u8]) {
        match self.link.cache.entry(key) {
            Some(entry @ Entry::Item { .. }) => self.put_entry(&entry),
            _ => wire::put_delete(&mut self.out, key),
        }
    }

    fn put_entry(&mut self, entry: &Entry) {
        if let Entry::Item { key, flags, exptime, version, value, .. } = entry {
            wire::put_rep(&mut self.out, key, *flags, *exptime, self.link.cache.cas_for_version(*version), value);
        }
    }

    fn write_if_full(&mut self) -> Result<(), String> {
        if self.out.len() >= WRITE_CHUNK {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> Result<(), String> {
        if self.closed.load(Ordering::Acquire) {
            return Err("link closed".into());
        }
        let written = self.stream.write_all(&self.out).map_err(|e| daemon::strerror(&e));
        self.out.clear();
        written
    }
}

#[cfg(test)]
mod tests {
    use super::flush_state;
    use crate::storage::clock;

    #[test]
    fn a_partner_s_flush_to_come_waits_and_one_past_or_untimed_flushes_now() {
        let later = flush_state(Some(1_000_100), 1_000_000);
        assert_eq!(later.pending, Some((clock::stamp_at_secs(1_000_100), 1_000_100)));
        assert_eq!(later.applied, 0);
        let before = clock::stamp();
        for at in [None, Some(1_000_000), Some(5)] {
            let now = flush_state(at, 1_000_000);
            assert_eq!(now.pending, None);
            assert!(now.applied > before, "{at:?} flushes everything stored so far");
        }
    }
}
