//! The handler threads: `-t` of them, waiting together on one edge-triggered epoll set that
//! holds every client connection. Knows nothing of protocols: a connection
//! (`connection.rs`) is served when it is ready and says what it waits for next.
//!
//! Any handler serves any ready connection, so a handler that the scheduler has put aside
//! (two cores, shared with the clients) holds up no connection another handler could serve.
//! Each connection is registered once, for input and output edges, and never re-armed: a
//! handler that takes an event claims the connection's cell (`Cell::claim`); an event that
//! comes while another handler serves the connection marks it, and that handler serves it
//! again before letting it go, so no edge is lost and no connection is served by two threads
//! at once.
//!
//! A connection that ran `-R` commands with more input left keeps its claim and gets another
//! turn after the other ready connections. With `-o idle_timeout` the first handler closes,
//! once a second, the connections that have waited for a command longer than that, as
//! memcached's idle-timeout thread does.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::connection::{Conn, Scratch, Wait};
use super::epoll::{Epoll, Ready};
use super::{Shared, HANDLER_STACK};
use crate::daemon;
use crate::log;
use crate::stats::ConnState;
use crate::storage::clock;

/// Ready connections one handler takes from one wait at most: few, so that the others stay
/// in the set for another handler (the server module doc has the measurements).
const EVENTS_PER_WAIT: usize = 16;
/// Cells beyond `-c`, for connections closed but not yet given back when new ones come.
const SPARE_CELLS: usize = 64;
/// How often idle connections are looked for under `-o idle_timeout`.
const IDLE_SWEEP: Duration = Duration::from_secs(1);

/// A cell's states: nobody serves it; a handler serves it; and an event came meanwhile.
const FREE: u8 = 0;
const SERVED: u8 = 1;
const AGAIN: u8 = 2;

/// One connection's place in the set: its token is the cell's index.
#[derive(Default)]
struct Cell {
    state: AtomicU8,
    /// Locked only by the handler that claimed the cell, and by the accept thread putting a
    /// new connection in a free cell: never contended for long.
    entry: Mutex<Option<Box<Entry>>>,
}

/// An open connection, and whether it waits to write (else to read).
struct Entry {
    conn: Conn,
    writable: bool,
}

impl Cell {
    /// Claims the cell for serving. False when a handler serves it already: that handler is
    /// told to serve it again.
    fn claim(&self) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state {
                FREE => SERVED,
                SERVED => AGAIN,
                _ => return false,
            };
            match self.state.compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return state == FREE,
                Err(seen) => state = seen,
            }
        }
    }

    /// Claims the cell only if nobody serves it, without asking anyone to serve it again.
    fn claim_if_free(&self) -> bool {
        self.state.compare_exchange(FREE, SERVED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Lets the cell go. False when an event came while it was served: the claim is kept and
    /// the caller serves it again.
    fn release(&self) -> bool {
        if self.state.compare_exchange(SERVED, FREE, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            return true;
        }
        self.state.store(SERVED, Ordering::Release);
        false
    }

    fn lock(&self) -> MutexGuard<'_, Option<Box<Entry>>> {
        self.entry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The set every handler waits on, and a cell for each connection it may hold.
struct Set {
    epoll: Epoll,
    cells: Vec<Cell>,
    /// Indexes of empty cells.
    free: Mutex<Vec<usize>>,
}

impl Set {
    fn give_back(&self, token: usize) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(token);
    }
}

/// The handler threads, as the accept threads see them.
pub struct Workers {
    set: Arc<Set>,
}

impl Workers {
    /// Starts `count` handler threads for at most `max_conns` connections.
    pub fn start(shared: &Arc<Shared>, count: usize, max_conns: usize) -> io::Result<Workers> {
        let cells = max_conns + SPARE_CELLS;
        let set = Arc::new(Set {
            epoll: Epoll::new(1)?,
            cells: (0..cells).map(|_| Cell::default()).collect(),
            free: Mutex::new((0..cells).rev().collect()),
        });
        for i in 0..count.max(1) {
            let handler = Handler::new(Arc::clone(&set), set.epoll.try_clone(EVENTS_PER_WAIT)?, Arc::clone(shared), i == 0);
            std::thread::Builder::new().name("handler".to_string()).stack_size(HANDLER_STACK).spawn(move || handler.run())?;
        }
        Ok(Workers { set })
    }

    /// Puts a new connection in the set; from then on any handler may serve it.
    pub fn hand_over(&self, conn: Conn) {
        let Some(token) = self.set.free.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
            // Only more closes in flight than SPARE_CELLS at once could leave none: the
            // connection is dropped, which closes it.
            log::line(log::WARN, format_args!("<{} no room for the connection, closing", conn.fd()));
            return;
        };
        let fd = conn.fd();
        let cell = &self.set.cells[token];
        *cell.lock() = Some(Box::new(Entry { conn, writable: false }));
        if let Err(e) = self.set.epoll.add(fd, token as u64) {
            log::line(log::WARN, format_args!("<{fd} epoll_ctl(): {}", daemon::strerror(&e)));
            cell.lock().take();
            self.set.give_back(token);
        }
    }
}

/// One handler thread's state.
struct Handler {
    set: Arc<Set>,
    /// Its own handle on the shared set.
    epoll: Epoll,
    shared: Arc<Shared>,
    scratch: Scratch,
    /// Claimed connections with complete commands left after their turn.
    turns: Vec<usize>,
    /// Whether this handler closes idle connections (one does).
    sweeper: bool,
    last_sweep: Instant,
}

impl Handler {
    fn new(set: Arc<Set>, epoll: Epoll, shared: Arc<Shared>, sweeper: bool) -> Handler {
        let scratch = Scratch::new(shared.stats.thread_counts());
        Handler { set, epoll, shared, scratch, turns: Vec::new(), sweeper, last_sweep: Instant::now() }
    }

    fn run(mut self) {
        let idle_timeout = if self.sweeper { self.shared.settings.idle_timeout } else { 0 };
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
            for ready in &ready {
                let token = ready.token as usize;
                if self.set.cells.get(token).is_some_and(Cell::claim) {
                    self.serve(token);
                }
            }
            for token in turns {
                self.serve(token);
            }
            // What the writes counted since their commands were.
            self.scratch.local.fold_into(&self.shared.stats);
            if idle_timeout > 0 && self.last_sweep.elapsed() >= IDLE_SWEEP {
                self.last_sweep = Instant::now();
                self.close_idle(idle_timeout);
            }
        }
    }

    /// Serves a claimed connection until it waits and no event came meanwhile, then lets it
    /// go (or keeps the claim for another turn).
    fn serve(&mut self, token: usize) {
        let set = Arc::clone(&self.set);
        let cell = &set.cells[token];
        let mut guard = cell.lock();
        loop {
            if let Some(entry) = guard.as_mut() {
                let (conn, scratch, writable) = (&mut entry.conn, &mut self.scratch, entry.writable);
                // A panic ends only the connection it happened on (the buffers it borrowed
                // go with it, and the handler grows new ones).
                let served = panic::catch_unwind(AssertUnwindSafe(|| if writable { conn.on_writable(scratch) } else { conn.on_readable(scratch) }));
                match served.unwrap_or(Wait::Close) {
                    Wait::Close => {
                        // Out of the set before the drop closes the socket: a descriptor a
                        // forked child still shares would otherwise stay in it.
                        let _ = set.epoll.remove(entry.conn.fd());
                        guard.take();
                        set.give_back(token);
                    }
                    Wait::Turn => {
                        self.turns.push(token);
                        return;
                    }
                    Wait::Readable => entry.writable = false,
                    Wait::Writable => entry.writable = true,
                }
            }
            if cell.release() {
                return;
            }
        }
    }

    /// Closes the connections that have waited for a command longer than `idle_timeout`
    /// seconds. As in memcached, only one waiting for a command (not one part-way through a
    /// store, nor one whose answer waits) times out; one being served is not looked at.
    fn close_idle(&mut self, idle_timeout: u32) {
        let now = clock::now();
        let set = Arc::clone(&self.set);
        for (token, cell) in set.cells.iter().enumerate() {
            if !cell.claim_if_free() {
                continue;
            }
            let mut guard = cell.lock();
            let stale = guard.as_ref().is_some_and(|entry| {
                let slot = entry.conn.slot();
                let waiting = matches!(slot.state(), ConnState::NewCmd | ConnState::Reading);
                waiting && now.saturating_sub(slot.last_cmd()) > idle_timeout
            });
            if let Some(entry) = guard.take_if(|_| stale) {
                let _ = set.epoll.remove(entry.conn.fd());
                set.give_back(token);
            }
            drop(guard);
            if !cell.release() {
                // An event came while it was looked at: its handler left it to us.
                self.serve(token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn an_event_during_serving_is_served_by_the_holder() {
        let cell = Cell::default();
        assert!(cell.claim(), "a free cell is claimed");
        assert!(!cell.claim(), "a served cell is not claimed twice");
        assert!(!cell.claim(), "a second event while served changes nothing more");
        assert!(!cell.release(), "the holder must serve again for the event that came");
        assert!(cell.release(), "then it lets go");
        assert!(cell.claim_if_free());
        assert!(!cell.claim_if_free(), "only a free cell");
        assert!(cell.release(), "a look without events lets go at once");
    }

    #[test]
    fn no_two_threads_serve_a_cell_and_no_event_is_lost() {
        // Four threads deliver events to one cell; whoever claims it serves until release
        // succeeds. Every event must be followed by at least one serving that starts after it.
        let cell = Arc::new(Cell::default());
        let serving = Arc::new(AtomicUsize::new(0));
        let (events, served) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (cell, serving, events, served) = (Arc::clone(&cell), Arc::clone(&serving), Arc::clone(&events), Arc::clone(&served));
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        events.fetch_add(1, Ordering::SeqCst);
                        if !cell.claim() {
                            continue;
                        }
                        loop {
                            assert_eq!(serving.fetch_add(1, Ordering::SeqCst), 0, "two threads serve at once");
                            served.fetch_max(events.load(Ordering::SeqCst), Ordering::SeqCst);
                            serving.fetch_sub(1, Ordering::SeqCst);
                            if cell.release() {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(served.load(Ordering::SeqCst), events.load(Ordering::SeqCst), "the last event was served");
    }
}
