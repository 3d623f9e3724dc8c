//! One client connection between the moments it has input: what is left of its input, its
//! unsent output, what is still to be discarded. Knows nothing of command syntax (the protocol
//! parses) or of items (the protocol's `execute` uses the cache), nor of which thread serves
//! it (`worker.rs` calls `on_readable` and `on_writable` and waits for what they return).
//!
//! The protocol is `-B`'s, or under `auto` the first byte's: 0x80 opens a binary connection.
//! At -vv each command and its answer are logged (`traffic.rs`).
//!
//! Serving: the socket is non-blocking. `on_readable` reads what the socket holds, executes
//! every complete command into one output buffer, writes it with as few `write`s as the
//! socket takes, and reads again only if the last read filled the buffer. It returns what to
//! wait for: more input, room to write, another turn (after `-R` commands, memcached's
//! `conn_yields`), or the end.
//!
//! Buffers belong to the handler (`Scratch`), not to the connection: an idle connection holds
//! none. A connection keeps input only when a command is part-way in (a copy of a short line,
//! or the whole buffer while a large value arrives), and output only while the client is not
//! taking it.
//!
//! Bounds against hostile clients: while output waits, the connection is not read, so a client
//! that never reads holds at most one batch's answer and no thread; the input buffer grows only
//! as far as a command the parser may still accept (a store's data up to `-I`, or a long get
//! line); the data of a refused store is discarded as it arrives, never buffered. A batch stops
//! executing once its answers pass `SPILL_AT`, and is written without waiting. A get whose own
//! answer passes `SPILL_AT` with keys left has it written as it is produced; when the client
//! does not take a part, the get stops after that key (`Resume`) and the connection waits to
//! write like any other, to run the get's other keys once the client has read. Only a
//! metadump, which cannot stop, waits for the client to take each part, at most `SPILL_STALL`
//! without progress before the connection is closed.

use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use super::epoll;
use super::listener::Stream;
use super::{traffic, Shared};
use crate::config::Protocol;
use crate::log;
use crate::protocol::binary::{self, Handled};
use crate::protocol::{execute, text, Next, Parsed, Request, SPILL_AT};
use crate::stats::{ConnRecord, ConnState, Counter, LocalCounts};
use crate::storage::clock;

/// A handler's read buffer starts this large and keeps what it grows to.
const INITIAL_BUFFER: usize = 16 * 1024;
/// Input a parked connection keeps as a copy of its own rather than holding a whole buffer.
const KEEP_COPY: usize = 2 * 1024;
/// Room for a store's command line in front of its data, above `-I`.
const STORE_LINE_ROOM: usize = 8 * 1024;
/// The longest command line the parser waits for (a get of many keys), with some room.
const LONGEST_LINE: usize = (1 << 20) + 8 * 1024;
/// How long one long answer may wait for the client to take any of it.
const SPILL_STALL: Duration = Duration::from_secs(5);

/// What a connection waits for after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Readable,
    Writable,
    /// Complete commands are left after `-R` of them: serve it again after the others.
    Turn,
    Close,
}

/// Read input: `data[start..end]` is unused, the rest is room to read into.
#[derive(Debug, Default)]
struct Buffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buffer {
    fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Room to read into, moving or growing the buffer (up to `max`) when it is full. None:
    /// the buffer is `max` long and full of one command that never ends.
    fn room(&mut self, max: usize) -> Option<&mut [u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.data.len() {
            if self.data.len() >= max {
                return None;
            }
            let grown = (self.data.len() * 2).clamp(INITIAL_BUFFER, max);
            self.data.resize(grown, 0);
        }
        Some(&mut self.data[self.end..])
    }
}

/// A handler's buffers and counts, lent to each connection it serves.
pub struct Scratch {
    input: Buffer,
    out: Vec<u8>,
    pub local: LocalCounts,
}

impl Scratch {
    pub fn new(local: LocalCounts) -> Scratch {
        Scratch { input: Buffer::default(), out: Vec::new(), local }
    }
}

/// What executing the buffered commands came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    NeedInput,
    /// The output passed `SPILL_AT`: write it before executing more.
    Spill,
    /// `-R` commands ran and input is left.
    Yield,
    Close,
}

/// A get that stopped part-way because its client was not taking the answer: how many of its
/// keys are answered, and what the -vv log keeps of their answer.
struct Resume {
    keys_done: usize,
    logged: traffic::Answer,
}

/// Where a text command's answer goes while it is produced: the socket.
struct Sink<'c> {
    stream: &'c mut Stream,
    /// How much of the connection's `out` has been written.
    sent: &'c mut usize,
    /// Bytes of parts written and emptied from `out`, or the error that ends the connection.
    written: io::Result<u64>,
    /// The -vv log's record of the answer, and how much of `out` it has seen.
    logged: Option<&'c mut traffic::Answer>,
    log_from: usize,
}

impl Sink<'_> {
    fn log(&mut self, out: &[u8]) {
        if let Some(logged) = &mut self.logged {
            logged.add(&out[self.log_from.min(out.len())..]);
        }
        self.log_from = out.len();
    }

    /// A part of an answer that cannot stop (a metadump's): written whole, waiting for the
    /// client at most `SPILL_STALL` at a time.
    fn drain(&mut self, out: &mut Vec<u8>) {
        self.log(out);
        if self.written.is_ok() {
            if let Err(e) = write_waiting(self.stream, &out[*self.sent..]) {
                self.written = Err(e);
            }
        }
        self.emptied(out);
    }

    fn emptied(&mut self, out: &mut Vec<u8>) {
        if let Ok(total) = &mut self.written {
            *total += out.len() as u64;
        }
        out.clear();
        *self.sent = 0;
        self.log_from = 0;
    }
}

impl execute::GetSink for Sink<'_> {
    fn value(&mut self, key: &[u8], _len: usize) {
        if let Some(logged) = &mut self.logged {
            logged.found(key);
        }
    }

    /// A get's part: writes what the client takes now. True when all of `out` went (it is
    /// then emptied); false leaves the rest in `out` for the connection to write later.
    fn offer(&mut self, out: &mut Vec<u8>) -> bool {
        self.log(out);
        if self.written.is_err() {
            return false;
        }
        match write_now(self.stream, &out[*self.sent..]) {
            Ok(n) => *self.sent += n,
            Err(e) => {
                self.written = Err(e);
                return false;
            }
        }
        if *self.sent < out.len() {
            return false;
        }
        self.emptied(out);
        true
    }
}

/// An open client connection. Dropping it unregisters and uncounts it before its socket
/// closes, so that the descriptor cannot be reused by a new connection while still registered.
pub struct Conn {
    fd: RawFd,
    record: Arc<ConnRecord>,
    shared: Arc<Shared>,
    input: Buffer,
    /// Output not yet taken by the client; `sent` bytes of it are written.
    out: Vec<u8>,
    sent: usize,
    /// Bytes still to discard as they arrive (a refused store's data).
    swallow: usize,
    /// Close once `swallow` reaches 0.
    close_after_swallow: bool,
    /// Close once `out` is written.
    close_after_write: bool,
    /// A get at the front of the input that stopped part-way, its client not reading.
    resume: Option<Resume>,
    /// Whether the connection speaks binary: fixed by `-B`, or under `auto` by its first byte.
    binary: Option<bool>,
    /// Nothing read yet.
    fresh: bool,
    /// Declared last: closed after `drop` below has run.
    stream: Stream,
}

impl Conn {
    pub fn new(stream: Stream, record: Arc<ConnRecord>, shared: Arc<Shared>) -> Conn {
        let binary = match shared.settings.protocol {
            Protocol::Ascii => Some(false),
            Protocol::Binary => Some(true),
            Protocol::Auto => None,
        };
        Conn {
            fd: stream.fd(),
            record,
            shared,
            input: Buffer::default(),
            out: Vec::new(),
            sent: 0,
            swallow: 0,
            close_after_swallow: false,
            close_after_write: false,
            resume: None,
            binary,
            fresh: true,
            stream,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    pub fn record(&self) -> &ConnRecord {
        &self.record
    }

    /// Whether output is waiting for the client to take it.
    pub fn writing(&self) -> bool {
        self.sent < self.out.len()
    }

    /// The socket has input (or an error or end to report).
    pub fn on_readable(&mut self, scratch: &mut Scratch) -> Wait {
        if self.writing() {
            return self.on_writable(scratch);
        }
        self.borrow(scratch);
        let wait = self.run(scratch);
        self.give_back(scratch);
        self.record.set_state(match wait {
            Wait::Writable => ConnState::Writing,
            _ => self.waiting_state(),
        });
        wait
    }

    /// The socket has room for the output waiting.
    pub fn on_writable(&mut self, scratch: &mut Scratch) -> Wait {
        match self.write_out(&mut scratch.local) {
            Ok(true) if self.close_after_write => Wait::Close,
            Ok(true) => {
                // The output buffer goes back to the handler; the rest of the input is served.
                self.out = Vec::new();
                self.on_readable(scratch)
            }
            Ok(false) => Wait::Writable,
            Err(_) => Wait::Close,
        }
    }

    /// Works on the handler's buffers: its input buffer, holding a copy of what this
    /// connection kept, and its output buffer.
    fn borrow(&mut self, scratch: &mut Scratch) {
        let kept = self.input.pending().len();
        if self.input.data.len() < scratch.input.data.len() && kept <= scratch.input.data.len() {
            scratch.input.data[..kept].copy_from_slice(self.input.pending());
            scratch.input.start = 0;
            scratch.input.end = kept;
            self.input = std::mem::take(&mut scratch.input);
        }
        std::mem::swap(&mut self.out, &mut scratch.out);
    }

    /// Gives the handler its buffers back, keeping a part-way command: as a copy when short,
    /// else in the buffer itself (the handler grows a new one when it needs it).
    fn give_back(&mut self, scratch: &mut Scratch) {
        let kept = self.input.pending().len();
        if kept <= KEEP_COPY {
            let copy = Buffer { data: self.input.pending().to_vec(), start: 0, end: kept };
            let buffer = std::mem::replace(&mut self.input, copy);
            if buffer.data.len() > scratch.input.data.len() {
                scratch.input = buffer;
            }
        }
        if !self.writing() {
            std::mem::swap(&mut self.out, &mut scratch.out);
        }
    }

    /// Executes, writes and reads until the connection must wait.
    fn run(&mut self, scratch: &mut Scratch) -> Wait {
        let mut budget = self.shared.settings.reqs_per_event.max(1);
        let mut may_read = true;
        loop {
            let ran = self.execute_buffered(&mut scratch.local, &mut budget);
            // As in memcached, a command is counted before its answer goes out: a client that
            // has the answer finds it in `stats`.
            scratch.local.fold_into(&self.shared.stats);
            match self.write_out(&mut scratch.local) {
                Ok(true) => {}
                Ok(false) => {
                    self.close_after_write = ran == Ran::Close;
                    return Wait::Writable;
                }
                Err(_) => return Wait::Close,
            }
            match ran {
                Ran::Close => return Wait::Close,
                Ran::Yield => {
                    scratch.local.add(Counter::ConnYields, 1);
                    return Wait::Turn;
                }
                Ran::Spill => continue,
                Ran::NeedInput => {}
            }
            if !may_read {
                return Wait::Readable;
            }
            match self.read(&mut scratch.local) {
                Ok(Some(filled)) => may_read = filled,
                Ok(None) => return Wait::Readable,
                Err(_) => return Wait::Close,
            }
        }
    }

    /// Executes every complete command in the buffer, stopping early when the output passes
    /// `SPILL_AT` or `budget` commands have run.
    fn execute_buffered(&mut self, local: &mut LocalCounts, budget: &mut u32) -> Ran {
        if self.fresh {
            return Ran::NeedInput;
        }
        let shared: &Shared = &self.shared;
        let ctx = shared.context();
        let cache = &shared.cache;
        let item_fits = |key_len: usize, value_len: usize| cache.item_fits(key_len, value_len);
        let mut commands = 0u32;
        self.record.set_state(ConnState::Parsing);
        let ran = loop {
            if self.swallow > 0 {
                let n = self.swallow.min(self.input.end - self.input.start);
                self.input.start += n;
                self.swallow -= n;
                if self.swallow > 0 {
                    break Ran::NeedInput;
                }
                if self.close_after_swallow {
                    break Ran::Close;
                }
            }
            if self.input.start == self.input.end {
                break Ran::NeedInput;
            }
            if commands == *budget {
                break Ran::Yield;
            }
            let input = &self.input.data[self.input.start..self.input.end];
            let binary = match self.binary {
                Some(binary) => binary,
                None => {
                    let binary = input[0] == binary::REQUEST_MAGIC;
                    traffic::protocol_chosen(self.fd, binary);
                    *self.binary.insert(binary)
                }
            };
            if binary {
                let max_body = self.max_buffer() - STORE_LINE_ROOM;
                let mark = self.out.len();
                match binary::handle(input, max_body, &ctx, local, &mut self.out) {
                    Handled::Incomplete => break Ran::NeedInput,
                    Handled::Done { consumed, swallow, next } => {
                        traffic::binary(self.fd, input, &self.out[mark..], next);
                        commands += 1;
                        self.input.start += consumed.min(input.len());
                        self.swallow = swallow;
                        if next == Next::Close && swallow == 0 {
                            break Ran::Close;
                        }
                        self.close_after_swallow = next == Next::Close;
                    }
                }
            } else {
                match text::parse(input, &shared.limits, &item_fits) {
                    Parsed::Incomplete => break Ran::NeedInput,
                    Parsed::Command { request, consumed, swallow } => {
                        let consumed = consumed.min(input.len());
                        // A get that stopped part-way goes on after the keys it answered.
                        let (skip, mut logged) = self.resume.take().map_or((0, traffic::Answer::default()), |r| (r.keys_done, r.logged));
                        // At -vv what the log needs of the answer is kept, written parts too.
                        let logging = log::enabled(log::TRAFFIC);
                        let mut sink = Sink {
                            stream: &mut self.stream,
                            sent: &mut self.sent,
                            written: Ok(0),
                            logged: logging.then_some(&mut logged),
                            log_from: self.out.len(),
                        };
                        let (next, stopped) = match request {
                            Request::Get { keys, cas, touch } => {
                                let stopped = execute::get_part(keys.after(skip), cas, touch, &ctx, local, &mut self.out, &mut sink);
                                (Next::Continue, stopped)
                            }
                            other => {
                                debug_assert_eq!(skip, 0, "a get resumed as another command");
                                (execute::execute(other, &ctx, local, &mut self.out, &mut |out| sink.drain(out)), None)
                            }
                        };
                        sink.log(&self.out);
                        match sink.written {
                            Ok(n) => local.add(Counter::BytesWritten, n),
                            Err(_) => break Ran::Close,
                        }
                        if let Some(keys_done) = stopped {
                            self.resume = Some(Resume { keys_done: skip + keys_done, logged });
                            break Ran::Spill;
                        }
                        commands += 1;
                        if logging {
                            traffic::text(self.fd, &input[..consumed], &logged);
                        }
                        self.input.start += consumed;
                        self.swallow = swallow;
                        if next == Next::Close || no_progress(consumed, swallow) {
                            break Ran::Close;
                        }
                    }
                    Parsed::Invalid { reply, consumed, swallow, close } => {
                        let consumed = consumed.min(input.len());
                        traffic::text(self.fd, &input[..consumed], &traffic::Answer::line(reply));
                        if !reply.is_empty() {
                            self.out.extend_from_slice(reply.as_bytes());
                            self.out.extend_from_slice(b"\r\n");
                        }
                        self.input.start += consumed;
                        self.swallow = swallow;
                        if (close && swallow == 0) || no_progress(consumed, swallow) {
                            break Ran::Close;
                        }
                        self.close_after_swallow = close;
                    }
                }
            }
            if self.out.len() >= SPILL_AT {
                break Ran::Spill;
            }
        };
        *budget -= commands.min(*budget);
        if commands > 0 {
            self.record.touch(clock::now());
        }
        ran
    }

    /// The largest input buffer a command may need.
    fn max_buffer(&self) -> usize {
        (self.shared.settings.item_size_max + STORE_LINE_ROOM).max(LONGEST_LINE)
    }

    /// What `stats conns` shows while the connection waits for input, as memcached names it.
    fn waiting_state(&self) -> ConnState {
        if self.fresh {
            ConnState::NewCmd
        } else if self.swallow > 0 {
            ConnState::Swallowing
        } else if self.binary == Some(false) && self.input.pending().contains(&b'\n') {
            // A whole text line that is not yet a command: a store waiting for its data.
            ConnState::Nread
        } else {
            ConnState::Reading
        }
    }

    /// Writes what the socket takes of the pending output. Ok(true): all of it went.
    fn write_out(&mut self, local: &mut LocalCounts) -> io::Result<bool> {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        local.add(Counter::BytesWritten, self.out.len() as u64);
        self.out.clear();
        self.sent = 0;
        Ok(true)
    }

    /// Reads what the client sent next. Ok(Some(filled)): bytes came, and `filled` says they
    /// filled the room (there may be more); Ok(None): nothing more for now. An error ends the
    /// connection: the client closed it, a command never ends, or the socket failed.
    fn read(&mut self, local: &mut LocalCounts) -> io::Result<Option<bool>> {
        let max = self.max_buffer();
        let Some(room) = self.input.room(max) else {
            // The parser bounds every command below the largest buffer: this one never ends.
            log::line(log::WARN, format_args!("<{} command too long, closing", self.fd));
            return Err(ErrorKind::InvalidData.into());
        };
        let wanted = room.len();
        let n = loop {
            match self.stream.read(room) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.input.end += n;
        self.fresh = false;
        local.add(Counter::BytesRead, n as u64);
        Ok(Some(n == wanted))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.conns.unregister(self.fd);
        self.shared.close_one();
        log::line(log::STATE, format_args!("<{} connection closed.", self.fd));
    }
}

/// Writes what the non-blocking `stream` takes of `bytes` now; returns how much that was.
fn write_now(stream: &mut Stream, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Writes all of `bytes` to the non-blocking `stream`, waiting for the client to take them,
/// at most `SPILL_STALL` at a time without progress.
fn write_waiting(stream: &mut Stream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if !epoll::wait_writable(stream.fd(), SPILL_STALL)? {
                    return Err(ErrorKind::TimedOut.into());
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A verdict that uses no bytes would be given again for ever: close rather than spin.
fn no_progress(consumed: usize, swallow: usize) -> bool {
    consumed == 0 && swallow == 0
}
