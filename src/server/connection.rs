//! One client connection: read, parse, execute, batch the responses, write. Owns the
//! connection's buffers and its blocking socket; knows nothing of command syntax (the
//! protocol parses) or of items (the protocol's `execute` uses the cache). The socket is a
//! `listener::Stream`, as the listener accepted it.
//!
//! The protocol is `-B`'s, or under `auto` the first byte's: 0x80 opens a binary connection.
//! At -vv each command and its answer are logged (`traffic.rs`).
//!
//! Pipelining: one read may bring many commands, and one command may take many reads. Every
//! complete command in the buffer is executed into one output buffer, which is written with
//! one `write_all` when the input runs out, or earlier once it holds `SPILL_AT` bytes.
//!
//! Bounds against hostile clients: the socket is not read while the output is being written,
//! so a client that never reads stalls only its own connection; the input buffer grows only
//! as far as a command the parser may still accept (a store's data up to `-I`, or a long get
//! line); the data of a refused store is discarded as it arrives, never buffered.

use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::RawFd;
use std::time::Duration;

use super::listener::Stream;
use super::{traffic, Shared};
use crate::log;
use crate::config::Protocol;
use crate::protocol::binary::{self, Handled};
use crate::protocol::{execute, text, Next, Parsed, SPILL_AT};
use crate::stats::{ConnSlot, ConnState, Counter, LocalCounts};
use crate::storage::clock;

/// The read buffer's starting size; it is given back after a command needed more.
const INITIAL_BUFFER: usize = 16 * 1024;
/// Room for a store's command line in front of its data, above `-I`.
const STORE_LINE_ROOM: usize = 8 * 1024;
/// The longest command line the parser waits for (a get of many keys), with some room.
const LONGEST_LINE: usize = (1 << 20) + 8 * 1024;

/// Whether the connection goes on after a batch of commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    ReadMore,
    Close,
}

/// Serves the connection until the client closes it, asks to (`quit`), sends what must close
/// it, stays idle past `-o idle_timeout`, or the socket fails.
pub fn serve(stream: &mut Stream, slot: &ConnSlot, shared: &Shared) {
    let idle = shared.settings.idle_timeout;
    let timeout = (idle > 0).then(|| Duration::from_secs(u64::from(idle)));
    if stream.set_timeouts(timeout).is_err() {
        return;
    }
    let mut session = Session::new(stream.fd(), slot, shared);
    loop {
        let step = session.execute_buffered(stream);
        let flushed = session.flush(stream);
        if !matches!((step, flushed), (Ok(Step::ReadMore), Ok(()))) {
            break;
        }
        session.local.fold_into(&shared.stats);
        slot.set_state(session.waiting_state());
        match session.fill(stream) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    session.local.fold_into(&shared.stats);
}

/// The state of one connection between reads.
struct Session<'a> {
    fd: RawFd,
    slot: &'a ConnSlot,
    shared: &'a Shared,
    /// Bytes `start..end` are read and not yet used; the rest is room to read into.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes still to discard as they arrive (a refused store's data).
    swallow: usize,
    /// Close once `swallow` reaches 0.
    close_after_swallow: bool,
    out: Vec<u8>,
    local: LocalCounts,
    max_buffer: usize,
    /// Whether the connection speaks binary: fixed by `-B`, or under `auto` by its first byte.
    binary: Option<bool>,
    /// Nothing read yet.
    fresh: bool,
}

impl<'a> Session<'a> {
    fn new(fd: RawFd, slot: &'a ConnSlot, shared: &'a Shared) -> Session<'a> {
        let max_buffer = (shared.settings.item_size_max + STORE_LINE_ROOM).max(LONGEST_LINE);
        Session {
            fd,
            slot,
            shared,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            swallow: 0,
            close_after_swallow: false,
            out: Vec::new(),
            local: LocalCounts::default(),
            max_buffer,
            binary: match shared.settings.protocol {
                Protocol::Ascii => Some(false),
                Protocol::Binary => Some(true),
                Protocol::Auto => None,
            },
            fresh: true,
        }
    }

    /// Executes every complete command in the buffer, writing early when the output grows
    /// past `SPILL_AT`.
    fn execute_buffered(&mut self, stream: &mut Stream) -> io::Result<Step> {
        let shared = self.shared;
        let ctx = shared.context();
        let cache = &shared.cache;
        let item_fits = |key_len: usize, value_len: usize| cache.item_fits(key_len, value_len);
        let mut commands = 0u32;
        if self.fresh {
            return Ok(Step::ReadMore);
        }
        self.slot.set_state(ConnState::Parsing);
        let step = loop {
            if self.swallow > 0 {
                let n = self.swallow.min(self.end - self.start);
                self.start += n;
                self.swallow -= n;
                if self.swallow > 0 {
                    break Step::ReadMore;
                }
                if self.close_after_swallow {
                    break Step::Close;
                }
            }
            if self.start == self.end {
                break Step::ReadMore;
            }
            let input = &self.buf[self.start..self.end];
            let binary = match self.binary {
                Some(binary) => binary,
                None => {
                    let binary = input[0] == binary::REQUEST_MAGIC;
                    traffic::protocol_chosen(self.fd, binary);
                    *self.binary.insert(binary)
                }
            };
            if binary {
                let max_body = self.max_buffer - STORE_LINE_ROOM;
                let mark = self.out.len();
                match binary::handle(input, max_body, &ctx, &mut self.local, &mut self.out) {
                    Handled::Incomplete => break Step::ReadMore,
                    Handled::Done { consumed, swallow, next } => {
                        traffic::binary(self.fd, input, &self.out[mark..], next);
                        commands += 1;
                        self.start += consumed.min(input.len());
                        self.swallow = swallow;
                        if next == Next::Close && swallow == 0 {
                            break Step::Close;
                        }
                        self.close_after_swallow = next == Next::Close;
                    }
                }
                if self.out.len() >= SPILL_AT {
                    self.flush(stream)?;
                    self.slot.set_state(ConnState::Parsing);
                }
                continue;
            }
            match text::parse(input, &shared.limits, &item_fits) {
                Parsed::Incomplete => break Step::ReadMore,
                Parsed::Command { request, consumed, swallow } => {
                    let consumed = consumed.min(input.len());
                    commands += 1;
                    // At -vv what the log needs of the answer is kept, spilled parts too.
                    let logging = log::enabled(log::TRAFFIC);
                    let mut logged = traffic::Answer::default();
                    let mut log_from = self.out.len();
                    let mut spilled: io::Result<u64> = Ok(0);
                    let mut spill = |out: &mut Vec<u8>| {
                        if logging {
                            logged.add(&out[log_from.min(out.len())..]);
                            log_from = 0;
                        }
                        if let Ok(total) = &mut spilled {
                            match stream.write_all(out) {
                                Ok(()) => *total += out.len() as u64,
                                Err(e) => spilled = Err(e),
                            }
                        }
                        out.clear();
                    };
                    let next = execute::execute(request, &ctx, &mut self.local, &mut self.out, &mut spill);
                    self.local.add(Counter::BytesWritten, spilled?);
                    if logging {
                        logged.add(&self.out[log_from.min(self.out.len())..]);
                        traffic::text(self.fd, &input[..consumed], &logged);
                    }
                    self.start += consumed;
                    self.swallow = swallow;
                    if next == Next::Close || no_progress(consumed, swallow) {
                        break Step::Close;
                    }
                }
                Parsed::Invalid { reply, consumed, swallow, close } => {
                    let consumed = consumed.min(input.len());
                    traffic::text(self.fd, &input[..consumed], &traffic::Answer::line(reply));
                    if !reply.is_empty() {
                        self.out.extend_from_slice(reply.as_bytes());
                        self.out.extend_from_slice(b"\r\n");
                    }
                    self.start += consumed;
                    self.swallow = swallow;
                    if (close && swallow == 0) || no_progress(consumed, swallow) {
                        break Step::Close;
                    }
                    self.close_after_swallow = close;
                }
            }
            if self.out.len() >= SPILL_AT {
                self.flush(stream)?;
                self.slot.set_state(ConnState::Parsing);
            }
        };
        if commands > 0 {
            self.slot.touch(clock::now());
        }
        Ok(step)
    }

    /// What `stats conns` shows while the connection waits for input, as memcached names it.
    fn waiting_state(&self) -> ConnState {
        if self.fresh {
            ConnState::NewCmd
        } else if self.swallow > 0 {
            ConnState::Swallowing
        } else if self.binary == Some(false) && self.buf[self.start..self.end].contains(&b'\n') {
            // A whole text line that is not yet a command: a store waiting for its data.
            ConnState::Nread
        } else {
            ConnState::Reading
        }
    }

    /// Writes the pending output in one go.
    fn flush(&mut self, stream: &mut Stream) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.slot.set_state(ConnState::Writing);
        stream.write_all(&self.out)?;
        self.local.add(Counter::BytesWritten, self.out.len() as u64);
        self.out.clear();
        // A large multi-get needs a large buffer once; do not keep it for the idle time after.
        self.out.shrink_to(SPILL_AT);
        Ok(())
    }

    /// Reads what the client sent next, making room first. Ok(0) means the client closed; an
    /// error (an idle time-out among them) also ends the connection.
    fn fill(&mut self, stream: &mut Stream) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > INITIAL_BUFFER {
                self.buf = vec![0; INITIAL_BUFFER];
            }
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                if self.buf.len() >= self.max_buffer {
                    // The parser bounds every command below `max_buffer`: this one never ends.
                    log::line(log::WARN, format_args!("<{} command too long, closing", self.fd));
                    return Err(ErrorKind::InvalidData.into());
                }
                let grown = (self.buf.len() * 2).min(self.max_buffer);
                self.buf.resize(grown, 0);
            }
        }
        let n = loop {
            match stream.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.end += n;
        self.fresh &= n == 0;
        self.local.add(Counter::BytesRead, n as u64);
        Ok(n)
    }
}

/// A verdict that uses no bytes would be given again for ever: close rather than spin.
fn no_progress(consumed: usize, swallow: usize) -> bool {
    consumed == 0 && swallow == 0
}
