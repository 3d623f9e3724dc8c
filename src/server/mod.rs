//! The server loop: listeners, the handler threads, and the connections they serve. Owns the
//! threads and the connection count; command syntax and items belong to `protocol` and
//! `storage`.
//!
//! Threading model: one accept thread per listener hands each new connection to one of `-t`
//! handler threads (`worker.rs`), in turn, as memcached does. A handler owns its connections
//! and waits for any of them in its own epoll set; a ready connection is served synchronously
//! (read what came, execute every complete command, write the answers) and parked again when
//! it has no input left; a busy handler also serves the ready connections of a handler the
//! scheduler has put aside. An idle connection costs no thread and no buffer, only its socket and
//! a few hundred bytes of state, so thousands can stay open; a client stalled part-way through
//! a command or not reading its answers is parked like an idle one and holds no handler.
//!
//! Chosen by measurement (issue 9), ours against Debian's memcached in the same run on 2
//! cores, medians of 3 rounds (ours / memcached):
//! - one level-triggered set per handler, connections pinned to a handler as memcached pins
//!   them, and a busy handler serving the ready connections of one that has served nothing
//!   for 200 us (`worker.rs`; this one). memtier, get/set 90/10: 50 busy connections,
//!   throughput 1.07, p99 0.95, ops per server CPU-second 1.07; 1,000 open of which 50 busy,
//!   1.02, 0.97, 1.04 (a second run: 1.08, 0.97, 1.02 and 1.07, 0.99, 1.02). 2 and 8 clients
//!   unpipelined (`make bench`'s own generator): 1.07 and 1.07; 8 clients get 1.41 with -t 8
//!   against memcached's -t 4 (1.23 with both at -t 8): a client that waits for each answer
//!   is served best by a handler of its own;
//! - the same without that help: 1.02, p99 1.30-1.56, 1.06: a handler put aside by the
//!   scheduler keeps its connections waiting while another may idle;
//! - one shared set, edge-triggered, any handler serving any connection: 1.03-1.07, p99
//!   0.72-1.23, 1.03-1.11 at 50 connections, but 2 clients got 0.20 (p50 49 us against 8):
//!   the handler woken is seldom the one on the client's CPU, and waking an idle virtual CPU
//!   costs tens of microseconds. A client that waits for each answer pays that every time;
//! - one shared set with EPOLLONESHOT, re-armed after each turn: 1.00-1.02, p99 0.75-1.32,
//!   0.95-0.99 (the re-arming call costs CPU on every request), and the same wake-ups.
//!
//! The README's "Benchmarks" section has the whole table.
//!
//! `-c` caps open client connections. With `-o maxconns_fast` (the default) a client over the
//! cap is told "ERROR Too many open connections" and closed (`rejected_connections`); without
//! it the accept threads stop accepting until a connection closes (`listen_disabled_num`).
//! `-R` bounds the commands one connection runs per turn (`conn_yields`), and
//! `-o idle_timeout` closes connections idle longer than that.
//!
//! `-U` (UDP, `udp.rs`) has no client connections: `-t` threads per socket answer each
//! datagram. memcached gives each of those threads a connection of its own, and counts them,
//! and the listeners, in `curr_connections`, `total_connections` and
//! `connection_structures`: so do we (`Stats::server_connections`), while `-c` caps the
//! client connections alone.
//!
//! Log lines: traffic at -vv (`traffic.rs`), as memcached writes it; a listener, a
//! connection's opening and closing and its protocol under `-B auto` at -vvv, with the other
//! state changes (memcached prints these at -vv).

pub mod connection;
mod epoll;
pub mod listener;
pub mod ports_file;
pub mod traffic;
pub mod udp;
mod worker;

use std::io::{self, ErrorKind, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{Protocol, Settings};
use crate::daemon;
use crate::log;
use crate::protocol::Context;
use crate::protocol::Limits;
use crate::replication::Replication;
use crate::stats::{ConnRegistry, ConnState, Counter, Stats};
use crate::storage::{clock, Cache};
use connection::Conn;
use listener::{Accepted, Listener};
use worker::Workers;

/// Stack of a handler or UDP thread. The deepest path is parse + execute of one command;
/// every buffer is on the heap.
pub const HANDLER_STACK: usize = 256 * 1024;
/// After an accept error such as "too many open files", how long to wait for a connection
/// to close before trying again, so that the accept thread does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// What every connection shares: the settings, the cache, the counters and the registry.
pub struct Shared {
    pub settings: Settings,
    pub cache: Arc<Cache>,
    pub replication: Replication,
    pub stats: Stats,
    pub conns: ConnRegistry,
    limits: Limits,
    /// `-c`'s places taken: the open client connections, and without maxconns_fast the one
    /// an accept thread holds for the connection it waits to accept (not yet counted open).
    places: AtomicU64,
    /// Signalled when a connection closes, for accept threads waiting for room under `-c`.
    room: Mutex<()>,
    closed: Condvar,
    stopping: AtomicBool,
}

impl Shared {
    pub fn new(settings: Settings, cache: Arc<Cache>, replication: Replication) -> Shared {
        Shared {
            settings,
            cache,
            replication,
            stats: Stats::new(clock::now()),
            conns: ConnRegistry::default(),
            limits: Limits { max_key: crate::storage::KEY_MAX_LENGTH },
            places: AtomicU64::new(0),
            room: Mutex::new(()),
            closed: Condvar::new(),
            stopping: AtomicBool::new(false),
        }
    }

    fn context(&self) -> Context<'_> {
        Context {
            cache: &self.cache,
            stats: &self.stats,
            settings: &self.settings,
            conns: &self.conns,
            replication: Some(&self.replication),
            deltas: Some(&self.replication),
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Takes one of `-c`'s places unless all are taken.
    fn take_place(&self) -> bool {
        let max = self.settings.max_conns as u64;
        self.places.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).is_ok()
    }

    /// Gives a place back and wakes the accept threads waiting for one.
    fn release_place(&self) {
        self.places.fetch_sub(1, Ordering::AcqRel);
        self.wake_accepters();
    }

    /// Counts an accepted connection, in the place taken for it, as open.
    fn count_open(&self) {
        let before = self.stats.curr_connections.fetch_add(1, Ordering::AcqRel);
        self.stats.connection_structures.fetch_max(before + 1, Ordering::Relaxed);
    }

    /// Without maxconns_fast: waits until a place is free and takes it. False when the server
    /// is stopping.
    fn wait_for_place(&self) -> bool {
        let mut guard = self.room.lock().unwrap_or_else(|e| e.into_inner());
        let mut counted = false;
        loop {
            if self.stopping() {
                return false;
            }
            if self.take_place() {
                return true;
            }
            if !counted {
                self.stats.listen_disabled_num.fetch_add(1, Ordering::Relaxed);
                counted = true;
            }
            guard = self.closed.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits at most `timeout` for a connection to close (or the server to stop).
    fn wait_for_a_close(&self, timeout: Duration) {
        let guard = self.room.lock().unwrap_or_else(|e| e.into_inner());
        if !self.stopping() {
            drop(self.closed.wait_timeout(guard, timeout));
        }
    }

    /// Uncounts a closed connection and frees its place.
    fn close_one(&self) {
        self.stats.curr_connections.fetch_sub(1, Ordering::AcqRel);
        self.release_place();
    }

    /// Counts a listener or a UDP thread, which memcached counts as connections.
    fn count_server_connection(&self) {
        self.stats.server_connections.fetch_add(1, Ordering::Relaxed);
        self.stats.add(Counter::TotalConnections, 1);
    }

    fn wake_accepters(&self) {
        // Taking the lock orders this wake-up after a waiter's check, so none is lost.
        drop(self.room.lock().unwrap_or_else(|e| e.into_inner()));
        self.closed.notify_all();
    }
}

/// The running server: its listeners and their accept threads.
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<Arc<Listener>>,
    accepters: Vec<JoinHandle<()>>,
}

/// Starts the `-t` handler threads, and one accept thread per listener that hands them
/// connections.
pub fn start(shared: Arc<Shared>, listeners: Vec<Listener>) -> io::Result<Server> {
    let workers = Arc::new(Workers::start(&shared, shared.settings.threads)?);
    let listeners: Vec<Arc<Listener>> = listeners.into_iter().map(Arc::new).collect();
    let mut accepters = Vec::new();
    for listener in &listeners {
        let (listener, shared, workers) = (Arc::clone(listener), Arc::clone(&shared), Arc::clone(&workers));
        let thread = std::thread::Builder::new().name("accept".to_string()).spawn(move || accept_loop(&listener, &shared, &workers))?;
        accepters.push(thread);
    }
    Ok(Server { shared, listeners, accepters })
}

impl Server {
    /// Stops accepting, waits for the accept threads, and removes the unix socket file.
    /// Open connections are left to the process's exit.
    pub fn shutdown(self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.wake_accepters();
        let mut stopped = true;
        for listener in &self.listeners {
            if let Err(e) = listener.stop() {
                log::line(log::WARN, format_args!("failed to stop listening on {}: {}", listener.name(), daemon::strerror(&e)));
                stopped = false;
            }
        }
        // A thread whose listener could not be stopped may never return from accept.
        if stopped {
            for thread in self.accepters {
                let _ = thread.join();
            }
        }
        for listener in &self.listeners {
            listener.remove_socket_file();
        }
    }
}

/// memcached's words for what a listener speaks, in its verbose log lines: the listener's,
/// and a new connection's (which ends in a full stop but under auto).
fn protocol_name(protocol: Protocol) -> (&'static str, &'static str) {
    match protocol {
        Protocol::Ascii => ("ascii", "ascii client connection."),
        Protocol::Binary => ("binary", "binary client connection."),
        Protocol::Auto => ("auto-negotiate", "auto-negotiating client connection"),
    }
}

fn accept_loop(listener: &Listener, shared: &Arc<Shared>, workers: &Workers) {
    let fd = listener.fd();
    shared.conns.register(fd, listener.name().to_string(), String::new(), ConnState::Listening, clock::now());
    shared.count_server_connection();
    log::line(log::STATE, format_args!("<{fd} server listening ({})", protocol_name(shared.settings.protocol).0));
    let fast = shared.settings.maxconns_fast;
    loop {
        if !fast && !shared.wait_for_place() {
            break;
        }
        let accepted = listener.accept();
        if shared.stopping() {
            break;
        }
        match accepted {
            Ok(client) if fast && !shared.take_place() => reject(client, shared),
            Ok(client) => open(client, shared, workers),
            Err(e) => {
                if !fast {
                    shared.release_place();
                }
                accept_failed(&e, shared);
            }
        }
    }
    shared.conns.unregister(fd);
    shared.stats.server_connections.fetch_sub(1, Ordering::Relaxed);
}

fn accept_failed(e: &io::Error, shared: &Shared) {
    match e.kind() {
        // The client gave up between connect and accept, or a signal interrupted: no matter.
        ErrorKind::ConnectionAborted | ErrorKind::Interrupted | ErrorKind::WouldBlock => {}
        _ => {
            if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                log::line(log::WARN, format_args!("Too many open connections"));
            } else {
                log::line(log::WARN, format_args!("accept(): {}", daemon::strerror(e)));
            }
            shared.wait_for_a_close(ACCEPT_RETRY);
        }
    }
}

/// Over `-c` with maxconns_fast: tell the client and close.
fn reject(mut client: Accepted, shared: &Shared) {
    shared.stats.add(Counter::RejectedConnections, 1);
    // A fresh socket's send buffer is empty, so this small write does not block.
    let _ = client.stream.write_all(b"ERROR Too many open connections\r\n");
}

/// Registers the connection and hands it to a handler thread.
fn open(client: Accepted, shared: &Arc<Shared>, workers: &Workers) {
    let fd = client.stream.fd();
    shared.count_open();
    shared.stats.add(Counter::TotalConnections, 1);
    let record = shared.conns.register(fd, client.addr, client.listen_addr, ConnState::NewCmd, clock::now());
    log::line(log::STATE, format_args!("<{fd} new {}", protocol_name(shared.settings.protocol).1));
    workers.hand_over(Conn::new(client.stream, record, Arc::clone(shared)));
}
