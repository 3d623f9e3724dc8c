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

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::connection::{Conn, Scratch, Wait};
use super::epoll::{Epoll, Interest, Ready, Waker};
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

/// The handler threads, and where the next connection goes.
pub struct Workers {
    handlers: Vec<Arc<Handler>>,
    next: AtomicUsize,
}

/// What the accept threads share with one handler thread.
struct Handler {
    inbox: Mutex<Vec<Conn>>,
    waker: Waker,
}

impl Workers {
    /// Starts `count` handler threads.
    pub fn start(shared: &Arc<Shared>, count: usize) -> io::Result<Workers> {
        let mut handlers = Vec::new();
        for _ in 0..count.max(1) {
            let handler = Arc::new(Handler { inbox: Mutex::new(Vec::new()), waker: Waker::new()? });
            let epoll = Epoll::new(EVENTS_PER_WAIT)?;
            epoll.add(handler.waker.fd(), WAKER, Interest::Readable)?;
            let (mine, shared) = (Arc::clone(&handler), Arc::clone(shared));
            std::thread::Builder::new()
                .name("handler".to_string())
                .stack_size(HANDLER_STACK)
                .spawn(move || Loop::new(mine, epoll, shared).run())?;
            handlers.push(handler);
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

/// One connection in a handler's set, and whether it waits to write.
struct Entry {
    conn: Conn,
    writable: bool,
}

/// A handler thread's state.
struct Loop {
    handler: Arc<Handler>,
    epoll: Epoll,
    shared: Arc<Shared>,
    /// Connections by token; None marks a free token.
    conns: Vec<Option<Entry>>,
    free: Vec<usize>,
    scratch: Scratch,
    /// Connections with complete commands left after their turn.
    turns: Vec<u64>,
    last_sweep: Instant,
}

impl Loop {
    fn new(handler: Arc<Handler>, epoll: Epoll, shared: Arc<Shared>) -> Loop {
        let scratch = Scratch::new(shared.stats.thread_counts());
        Loop { handler, epoll, shared, conns: Vec::new(), free: Vec::new(), scratch, turns: Vec::new(), last_sweep: Instant::now() }
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
            if let Err(e) = self.epoll.wait(timeout, &mut ready) {
                log::line(log::WARN, format_args!("epoll_wait(): {}", daemon::strerror(&e)));
                std::thread::sleep(IDLE_SWEEP);
                continue;
            }
            let turns = std::mem::take(&mut self.turns);
            for token in ready.iter().map(|r| r.token).chain(turns) {
                if token == WAKER {
                    self.adopt();
                } else {
                    self.serve(token as usize);
                }
            }
            // What the writes counted since their commands were.
            self.scratch.local.fold_into(&self.shared.stats);
            if idle_timeout > 0 && self.last_sweep.elapsed() >= IDLE_SWEEP {
                self.last_sweep = Instant::now();
                self.close_idle(idle_timeout);
            }
        }
    }

    /// Takes the connections waiting in the inbox into the epoll set.
    fn adopt(&mut self) {
        self.handler.waker.drain();
        let new = std::mem::take(&mut *self.handler.inbox.lock().unwrap_or_else(|e| e.into_inner()));
        for conn in new {
            let token = match self.free.pop() {
                Some(token) => token,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            // A connection that cannot be watched is dropped, which closes it.
            if self.epoll.add(conn.fd(), token as u64, Interest::Readable).is_ok() {
                self.conns[token] = Some(Entry { conn, writable: false });
            } else {
                self.free.push(token);
            }
        }
    }

    /// Serves one ready connection and waits for what it asks. A token whose connection has
    /// closed (a stale event in the same batch) is ignored; one that was reused meanwhile gets
    /// a turn it does not need, which costs one `read` that finds nothing.
    fn serve(&mut self, token: usize) {
        let Some(Some(entry)) = self.conns.get_mut(token) else {
            return;
        };
        let fd = entry.conn.fd();
        let (conn, scratch, writable) = (&mut entry.conn, &mut self.scratch, entry.writable);
        // A panic ends only the connection it happened on: the handler goes on serving the
        // others (the buffers it lent are dropped with the connection and grown again).
        let served = panic::catch_unwind(AssertUnwindSafe(|| if writable { conn.on_writable(scratch) } else { conn.on_readable(scratch) }));
        let wait = served.unwrap_or(Wait::Close);
        let watched = match wait {
            Wait::Close => {
                self.close(token);
                return;
            }
            Wait::Turn => {
                self.turns.push(token as u64);
                Interest::Readable
            }
            Wait::Readable => Interest::Readable,
            Wait::Writable => Interest::Writable,
        };
        let writable = watched == Interest::Writable;
        if writable != entry.writable {
            entry.writable = writable;
            if self.epoll.modify(fd, token as u64, watched).is_err() {
                self.close(token);
            }
        }
    }

    fn close(&mut self, token: usize) {
        if let Some(entry) = self.conns[token].take() {
            // Removed before the drop closes it: a descriptor shared with a forked child would
            // otherwise stay in the set.
            let _ = self.epoll.remove(entry.conn.fd());
            self.free.push(token);
        }
    }

    /// Closes the connections that have waited for a command longer than `idle_timeout`
    /// seconds. As in memcached, only one waiting for a command (not one part-way through a
    /// store, nor one whose answer waits) times out.
    fn close_idle(&mut self, idle_timeout: u32) {
        let now = clock::now();
        let stale: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(token, entry)| {
                let slot = entry.as_ref()?.conn.slot();
                let waiting = matches!(slot.state(), ConnState::NewCmd | ConnState::Reading);
                (waiting && now.saturating_sub(slot.last_cmd()) > idle_timeout).then_some(token)
            })
            .collect();
        for token in stale {
            self.close(token);
        }
    }
}
