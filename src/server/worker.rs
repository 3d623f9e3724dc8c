//! The handler threads: `-t` of them, each owning the connections handed to it and an epoll
//! set they wait in, as memcached pins each connection to one worker thread. Knows nothing of
//! protocols: a connection (`connection.rs`) is served when it is ready and says what it waits
//! for next.
//!
//! A handler waits for any of its connections to become ready, serves each ready one in turn
//! (synchronously: read, execute, write), and waits again only when none is left with work.
//! New connections reach it through an inbox and a wake-up (`epoll::Waker`). With
//! `-o idle_timeout` it closes, once a second, the connections that have waited for a command
//! longer than that, as memcached's idle-timeout thread does.
//!
//! Stealing: on a loaded machine the scheduler puts a busy handler aside for milliseconds
//! now and then, and its ready connections wait. So a handler that found many of its own
//! connections ready (it is busy: the others likely are too) looks at each other handler's
//! progress, and when one has served nothing for `STALLED`, serves what is ready in its set,
//! without waiting there. Each connection sits behind its own mutex, only ever `try_lock`ed:
//! a connection another handler is serving is skipped, since that handler serves all it
//! holds. A handler never waits in another's set, so a lightly loaded server wakes only the
//! handler a connection belongs to, as before.

use std::io;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, TryLockError};
use std::time::{Duration, Instant};

use super::connection::{Conn, Scratch, Wait};
use super::epoll::{Epoll, Events, Interest, Ready, Waker};
use super::{Shared, HANDLER_STACK};
use crate::daemon;
use crate::log;
use crate::stats::ConnState;
use crate::storage::clock;

/// Ready connections taken from one wait at most.
const EVENTS_PER_WAIT: usize = 256;
/// The token of a handler's waker in its epoll set; connections' tokens are their indexes.
const WAKER: u64 = u64::MAX;
/// How often idle connections are looked for under `-o idle_timeout`.
const IDLE_SWEEP: Duration = Duration::from_secs(1);
/// Own connections found ready in one wait from which a handler counts as busy and looks
/// into the other handlers' sets too.
const BUSY: usize = 4;
/// How long a handler may serve nothing while another is busy before the other takes over
/// its ready connections: well above a turn over every connection, well below a scheduler's
/// time slice.
const STALLED: Duration = Duration::from_micros(200);

/// The handler threads, and where the next connection goes.
pub struct Workers {
    handlers: Arc<[Handler]>,
    next: AtomicUsize,
}

/// What the accept threads and the other handlers share with one handler thread.
struct Handler {
    inbox: Mutex<Vec<Conn>>,
    waker: Waker,
    epoll: Epoll,
    table: RwLock<Table>,
    /// Bumped by the handler's thread each time it serves, for the others to see it moves.
    progress: AtomicU64,
}

/// A handler's connections by token (their index); None marks a free token.
#[derive(Default)]
struct Table {
    conns: Vec<Option<Seat>>,
    free: Vec<usize>,
    /// Numbers the connections adopted, so that a close decided on one connection cannot
    /// close a later one given the same token.
    adopted: u64,
}

/// A connection's place in a table. The table is only read while a connection is served
/// (through a clone of `entry`), so that a connection slow to serve never keeps its handler
/// from adopting or closing others.
struct Seat {
    fd: RawFd,
    serial: u64,
    entry: Arc<Mutex<Watched>>,
}

/// One connection in a handler's set, and whether it waits to write.
struct Watched {
    conn: Conn,
    writable: bool,
}

/// Where a connection is: its handler (index in `Workers::handlers`) and token.
#[derive(Debug, Clone, Copy)]
struct Place {
    owner: usize,
    token: usize,
}

impl Workers {
    /// Starts `count` handler threads.
    pub fn start(shared: &Arc<Shared>, count: usize) -> io::Result<Workers> {
        let mut handlers = Vec::new();
        for _ in 0..count.max(1) {
            let handler = Handler {
                inbox: Mutex::new(Vec::new()),
                waker: Waker::new()?,
                epoll: Epoll::new()?,
                table: RwLock::default(),
                progress: AtomicU64::new(0),
            };
            handler.epoll.add(handler.waker.fd(), WAKER, Interest::Readable)?;
            handlers.push(handler);
        }
        let handlers: Arc<[Handler]> = handlers.into();
        for me in 0..handlers.len() {
            let (handlers, shared) = (Arc::clone(&handlers), Arc::clone(shared));
            std::thread::Builder::new()
                .name("handler".to_string())
                .stack_size(HANDLER_STACK)
                .spawn(move || Loop::new(me, handlers, shared).run())?;
        }
        Ok(Workers { handlers, next: AtomicUsize::new(0) })
    }

    /// Gives a new connection to the next handler in turn.
    pub fn hand_over(&self, conn: Conn) {
        let handler = &self.handlers[self.next.fetch_add(1, Ordering::Relaxed) % self.handlers.len()];
        handler.inbox.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        handler.waker.wake();
    }
}

/// A handler thread's state.
struct Loop {
    me: usize,
    handlers: Arc<[Handler]>,
    shared: Arc<Shared>,
    events: Events,
    scratch: Scratch,
    /// Connections with complete commands left after their turn.
    turns: Vec<Place>,
    /// Connections to close once no table is borrowed, with their serials.
    closing: Vec<(Place, u64)>,
    /// This thread's count of what it served, published in its `Handler::progress`.
    served: u64,
    /// Each handler's progress when this one last saw it change, and when that was.
    seen: Vec<(u64, Instant)>,
    last_sweep: Instant,
}

impl Loop {
    fn new(me: usize, handlers: Arc<[Handler]>, shared: Arc<Shared>) -> Loop {
        let scratch = Scratch::new(shared.stats.thread_counts());
        let seen = vec![(0, Instant::now()); handlers.len()];
        Loop {
            me,
            handlers,
            shared,
            events: Events::new(EVENTS_PER_WAIT),
            scratch,
            turns: Vec::new(),
            closing: Vec::new(),
            served: 0,
            seen,
            last_sweep: Instant::now(),
        }
    }

    fn run(mut self) {
        let idle_timeout = self.shared.settings.idle_timeout;
        let mut ready: Vec<Ready> = Vec::with_capacity(EVENTS_PER_WAIT);
        loop {
            let timeout = if !self.turns.is_empty() {
                Some(Duration::ZERO)
            } else if idle_timeout > 0 {
                Some(IDLE_SWEEP)
            } else {
                None
            };
            ready.clear();
            if let Err(e) = self.handlers[self.me].epoll.wait(&mut self.events, timeout, &mut ready) {
                log::line(log::WARN, format_args!("epoll_wait(): {}", daemon::strerror(&e)));
                std::thread::sleep(IDLE_SWEEP);
                continue;
            }
            let busy = ready.len() >= BUSY;
            for token in ready.iter().map(|r| r.token) {
                if token == WAKER {
                    self.adopt();
                } else {
                    self.serve(Place { owner: self.me, token: token as usize });
                }
            }
            for place in std::mem::take(&mut self.turns) {
                self.serve(place);
            }
            if busy {
                self.steal(&mut ready);
            }
            self.close_pending();
            // What the writes counted since their commands were.
            self.scratch.local.fold_into(&self.shared.stats);
            if idle_timeout > 0 && self.last_sweep.elapsed() >= IDLE_SWEEP {
                self.last_sweep = Instant::now();
                self.close_idle(idle_timeout);
            }
        }
    }

    /// Serves the connections ready in the sets of the handlers that have stalled, without
    /// waiting for any.
    fn steal(&mut self, ready: &mut Vec<Ready>) {
        let now = Instant::now();
        for other in 0..self.handlers.len() {
            let progress = self.handlers[other].progress.load(Ordering::Relaxed);
            let seen = &mut self.seen[other];
            if other == self.me || progress != seen.0 {
                *seen = (progress, now);
                continue;
            }
            if now.duration_since(seen.1) < STALLED {
                continue;
            }
            ready.clear();
            if self.handlers[other].epoll.wait(&mut self.events, Some(Duration::ZERO), ready).is_err() {
                continue;
            }
            for token in ready.iter().map(|r| r.token).filter(|&t| t != WAKER) {
                self.serve(Place { owner: other, token: token as usize });
            }
        }
    }

    /// Takes the connections waiting in the inbox into the epoll set.
    fn adopt(&mut self) {
        let handler = &self.handlers[self.me];
        handler.waker.drain();
        let new = std::mem::take(&mut *handler.inbox.lock().unwrap_or_else(|e| e.into_inner()));
        if new.is_empty() {
            return;
        }
        let mut table = handler.table.write().unwrap_or_else(|e| e.into_inner());
        for conn in new {
            let token = match table.free.pop() {
                Some(token) => token,
                None => {
                    table.conns.push(None);
                    table.conns.len() - 1
                }
            };
            // A connection that cannot be watched is dropped, which closes it.
            let fd = conn.fd();
            if handler.epoll.add(fd, token as u64, Interest::Readable).is_ok() {
                table.adopted += 1;
                let serial = table.adopted;
                table.conns[token] = Some(Seat { fd, serial, entry: Arc::new(Mutex::new(Watched { conn, writable: false })) });
            } else {
                table.free.push(token);
            }
        }
    }

    /// Serves one ready connection and waits for what it asks. A token whose connection has
    /// closed (a stale event in the same batch) is ignored, and so is a connection another
    /// handler is serving; one whose token was reused meanwhile, or that another handler has
    /// just served, gets a turn it does not need, which costs one `read` that finds nothing.
    fn serve(&mut self, place: Place) {
        self.served += 1;
        self.handlers[self.me].progress.store(self.served, Ordering::Relaxed);
        let handler = &self.handlers[place.owner];
        let (cell, fd, serial) = match handler.table.read().unwrap_or_else(|e| e.into_inner()).conns.get(place.token) {
            Some(Some(seat)) => (Arc::clone(&seat.entry), seat.fd, seat.serial),
            _ => return,
        };
        let mut entry = match cell.try_lock() {
            Ok(entry) => entry,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let writable = entry.writable;
        let (conn, scratch) = (&mut entry.conn, &mut self.scratch);
        // A panic ends only the connection it happened on: the handler goes on serving the
        // others (the buffers it lent are dropped with the connection and grown again).
        let served = panic::catch_unwind(AssertUnwindSafe(|| if writable { conn.on_writable(scratch) } else { conn.on_readable(scratch) }));
        let watched = match served.unwrap_or(Wait::Close) {
            Wait::Close => {
                self.closing.push((place, serial));
                return;
            }
            Wait::Turn => {
                self.turns.push(place);
                Interest::Readable
            }
            Wait::Readable => Interest::Readable,
            Wait::Writable => Interest::Writable,
        };
        let writable = watched == Interest::Writable;
        if writable != entry.writable {
            entry.writable = writable;
            if handler.epoll.modify(fd, place.token as u64, watched).is_err() {
                self.closing.push((place, serial));
            }
        }
    }

    /// Closes the connections marked for closing, each only if its token still holds it.
    fn close_pending(&mut self) {
        for (place, serial) in self.closing.drain(..) {
            let handler = &self.handlers[place.owner];
            let mut table = handler.table.write().unwrap_or_else(|e| e.into_inner());
            if let Some(seat) = table.conns[place.token].take_if(|seat| seat.serial == serial) {
                // Removed before the drop closes it: a descriptor shared with a forked child
                // would otherwise stay in the set. The connection closes when the last handler
                // serving it lets go.
                let _ = handler.epoll.remove(seat.fd);
                table.free.push(place.token);
            }
        }
    }

    /// Closes the connections that have waited for a command longer than `idle_timeout`
    /// seconds. As in memcached, only one waiting for a command (not one part-way through a
    /// store, nor one whose answer waits) times out.
    fn close_idle(&mut self, idle_timeout: u32) {
        let now = clock::now();
        let table = self.handlers[self.me].table.read().unwrap_or_else(|e| e.into_inner());
        for (token, seat) in table.conns.iter().enumerate() {
            let Some(seat) = seat else {
                continue;
            };
            // One being served is not idle.
            let Ok(entry) = seat.entry.try_lock() else {
                continue;
            };
            let record = entry.conn.record();
            let waiting = matches!(record.state(), ConnState::NewCmd | ConnState::Reading);
            if waiting && now.saturating_sub(record.last_cmd()) > idle_timeout {
                self.closing.push((Place { owner: self.me, token }, seat.serial));
            }
        }
        drop(table);
        self.close_pending();
    }
}
