//! The link to a repcached 2.2/2.3 partner (`-o repcached_link=HOST[:PORT]`), speaking
//! repcached's own text link (`wire`), so that a memcachedrep node can take the place of one
//! node of a running repcached pair. It reaches the cache through the replica facade only,
//! as the native link does, and holds no cache lock across I/O.
//!
//! Who speaks first, as in repcached: the node that dials receives the full copy (items as
//! `rep`, then `marugoto_end`) and sends none; the node that accepts sends it. After the
//! copy both send every change, and neither ever answers. So:
//! - at start this node dials the partner's port; when it connects it takes the copy, and
//!   `wait_joined` holds the client ports shut until `marugoto_end`; when the dial fails it
//!   serves at once (as repcached's first node does);
//! - while no link is up it listens on PORT (on the `-l` addresses) for the partner, which
//!   dials when it restarts, and gets this node's full copy; it also redials, backing off
//!   to 5 s, so that a link cut while both nodes run heals (repcached's would stay cut).
//!
//! Threads: one accept thread per listener, one dialer, and per link the thread that made it
//! receives (parses strictly: anything unexpected is logged and ends the link, unapplied)
//! while a sender thread sends the copy (accepted links) and then the queue. Locking: the
//! control mutex (link state) and the queue's, each held briefly, never both, never across I/O.
//!
//! Items from the partner are applied with a fresh local version, so the last one to arrive
//! wins, as in repcached; the partner's cas is not kept (ours is the version). They are
//! passed on (`relay`) to a native peer, when there is one, as its own clients' writes are.

mod session;
pub mod wire;
#[cfg(test)]
mod wire_tests;

use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::link::{addrs_on_port, bind_one, resolve_ips, spawn};
use super::queue::KeyQueue;
use crate::config::Settings;
use crate::daemon;
use crate::log;
use crate::storage::replica::MutationSink;
use crate::storage::Cache;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest value taken from the partner: repcached's largest -I. One larger than this
/// node's -I is read and dropped (logged), not a reason to end the link.
const MAX_VALUE: usize = 128 * 1024 * 1024;
/// How long a new connection from the partner waits for the old link to end.
const REPLACE_WAIT: Duration = Duration::from_secs(5);

/// The link's state, guarded by `Repcached::control`.
#[derive(Default)]
struct Control {
    /// The installed link's stream (a handle to close it) and its number.
    active: Option<(TcpStream, u64)>,
    links_made: u64,
    /// The partner's copy has arrived, or none is coming: clients may be served.
    joined: bool,
    stopping: bool,
}

/// This node's link to its repcached partner, shared by its threads.
pub struct Repcached {
    cache: Arc<Cache>,
    /// Local mutations waiting for the link.
    pub queue: Arc<KeyQueue>,
    /// Told of what the partner sends (the native peer's queue, when there is one).
    relay: Option<Arc<dyn MutationSink>>,
    partner: String,
    host: String,
    port: u16,
    max_value: usize,
    drain_timeout: Duration,
    /// Sender passes completed: a pass after the queue was seen empty has sent all of it.
    passes: AtomicU64,
    control: Mutex<Control>,
    changed: Condvar,
}

/// The addresses the partner's connections may come from: its own, or any loopback address
/// when it is on this host (an unbound dial from loopback comes from 127.0.0.1).
fn is_partner(partner: &[IpAddr], from: IpAddr) -> bool {
    let from = from.to_canonical();
    partner.iter().any(|p| p.to_canonical() == from || (p.is_loopback() && from.is_loopback()))
}

/// Binds the repcached port on the `-l` addresses (all interfaces without `-l`), before the
/// daemon's fork and `-u`. A port in use is a start-up error: the partner must find us there.
pub fn bind(settings: &Settings) -> Result<Vec<TcpListener>, String> {
    let Some((_, port)) = settings.repcached_address() else {
        return Ok(Vec::new());
    };
    let mut bound = Vec::new();
    for addr in addrs_on_port(settings, port)? {
        match bind_one(addr) {
            Ok(listener) => bound.push(listener),
            Err(e) if addr.is_ipv6() && settings.listen.is_empty() => {
                log::line(log::STATE, format_args!("repcached: no IPv6 listener ({})", daemon::strerror(&e)));
            }
            Err(e) => return Err(format!("failed to listen on repcached port {addr} (-o repcached_link): {}", daemon::strerror(&e))),
        }
    }
    Ok(bound)
}

impl Repcached {
    /// Starts the accept threads on `listeners` and the dialer. The caller installs `queue`
    /// as (part of) the cache's sink.
    pub fn start(
        settings: &Settings,
        cache: Arc<Cache>,
        listeners: Vec<TcpListener>,
        relay: Option<Arc<dyn MutationSink>>,
    ) -> Result<Option<Arc<Repcached>>, String> {
        let Some((host, port)) = settings.repcached_address() else {
            return Ok(None);
        };
        let link = Arc::new(Repcached {
            cache,
            queue: Arc::new(KeyQueue::new(settings.repl_queue)),
            relay,
            partner: settings.repcached.clone().unwrap_or_default(),
            host: host.to_string(),
            port,
            max_value: MAX_VALUE.max(settings.item_size_max),
            drain_timeout: Duration::from_secs(u64::from(settings.repl_drain_timeout)),
            passes: AtomicU64::new(0),
            control: Mutex::new(Control::default()),
            changed: Condvar::new(),
        });
        for listener in listeners {
            let me = Arc::clone(&link);
            spawn("repcached-accept", move || me.accept_loop(&listener))?;
        }
        let me = Arc::clone(&link);
        spawn("repcached-dial", move || me.dial_loop())?;
        log::line(log::STATE, format_args!("repcached: partner {}", link.partner));
        Ok(Some(link))
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, control: MutexGuard<'a, Control>, timeout: Duration) -> MutexGuard<'a, Control> {
        self.changed.wait_timeout(control, timeout).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0)
    }

    /// Lets the clients in: the copy is here, or none is coming.
    fn set_joined(&self) {
        let mut control = self.lock();
        if !control.joined {
            control.joined = true;
            self.changed.notify_all();
        }
    }

    /// Blocks until the partner's copy has arrived or none is coming, or a stop.
    pub fn wait_joined(&self) {
        let mut control = self.lock();
        while !control.joined && !control.stopping {
            control = self.wait(control, BACKOFF_MAX);
        }
    }

    /// Delivers what is queued within `-o repl_drain_timeout`, then ends the link.
    pub fn shutdown(&self) {
        let deadline = Instant::now() + self.drain_timeout;
        let mut seen_empty: Option<u64> = None;
        while self.lock().active.is_some() && Instant::now() < deadline {
            // Read before the queue's depth: a pass completed after the queue was seen empty
            // has written all it took before.
            let passes = self.passes.load(Ordering::Acquire);
            match seen_empty {
                Some(at) if passes > at + 1 => break,
                None if self.queue.depth() == (0, false) => seen_empty = Some(passes),
                _ => {}
            }
            let control = self.lock();
            drop(self.wait(control, BACKOFF_MIN));
        }
        let mut control = self.lock();
        control.stopping = true;
        if let Some((stream, _)) = &control.active {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.changed.notify_all();
    }

    fn accept_loop(self: Arc<Repcached>, listener: &TcpListener) {
        loop {
            let accepted = listener.accept();
            if self.lock().stopping {
                return;
            }
            match accepted {
                Ok((stream, from)) if is_partner(&resolve_ips(&self.host), from.ip()) => {
                    let me = Arc::clone(&self);
                    if let Err(e) = spawn("repcached-link", move || me.run(stream, false)) {
                        log::line(log::WARN, format_args!("repcached: {e}"));
                    }
                }
                Ok((_, from)) => log::line(log::WARN, format_args!("repcached: refused a connection from {from}: not the partner")),
                Err(e) => {
                    log::line(log::WARN, format_args!("repcached: accept(): {}", daemon::strerror(&e)));
                    let control = self.lock();
                    drop(self.wait(control, BACKOFF_MIN));
                }
            }
        }
    }

    fn dial_loop(self: Arc<Repcached>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            {
                let mut control = self.lock();
                while !control.stopping && control.active.is_some() {
                    control = self.wait(control, BACKOFF_MAX);
                }
                if control.stopping {
                    return;
                }
            }
            match self.dial() {
                Ok(stream) => {
                    self.run(stream, true);
                    backoff = BACKOFF_MIN;
                }
                Err(why) => {
                    log::line(log::STATE, format_args!("repcached: cannot reach {}: {why}", self.partner));
                    // No partner to copy from: serve what we have, as repcached's first node.
                    self.set_joined();
                }
            }
            let control = self.lock();
            if !control.stopping {
                drop(self.wait(control, backoff));
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn dial(&self) -> Result<TcpStream, String> {
        let addrs: Vec<SocketAddr> = resolve_ips(&self.host).into_iter().map(|ip| SocketAddr::new(ip, self.port)).collect();
        let mut why = format!("cannot resolve {}", self.host);
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => return Ok(stream),
                Err(e) => why = daemon::strerror(&e),
            }
        }
        Err(why)
    }

    /// Installs `stream` as the link (a partner's new connection replaces a link still up:
    /// the partner restarted) and runs it until it ends.
    fn run(self: &Arc<Repcached>, stream: TcpStream, dialed: bool) {
        let Some(number) = self.install(&stream, dialed) else {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        };
        let role = if dialed { "dialed" } else { "accepted" };
        log::line(log::STATE, format_args!("repcached: link {number} to {} up ({role})", self.partner));
        let why = session::run(self, &stream, dialed);
        log::line(log::WARN, format_args!("repcached: link {number} to {} ended: {why}", self.partner));
        let _ = stream.shutdown(Shutdown::Both);
        let mut control = self.lock();
        if control.active.as_ref().is_some_and(|(_, n)| *n == number) {
            control.active = None;
        }
        // A copy cut short is not coming: serve what arrived.
        control.joined = true;
        self.changed.notify_all();
    }

    /// Makes `stream` the one link; None when stopping, or when a dialed link finds one up
    /// or an accepted one cannot replace the old one in time.
    fn install(&self, stream: &TcpStream, dialed: bool) -> Option<u64> {
        let handle = stream.try_clone().ok()?;
        let deadline = Instant::now() + REPLACE_WAIT;
        let mut control = self.lock();
        if let Some((old, _)) = &control.active {
            if dialed {
                return None;
            }
            let _ = old.shutdown(Shutdown::Both);
            while control.active.is_some() && !control.stopping && Instant::now() < deadline {
                control = self.wait(control, BACKOFF_MIN);
            }
        }
        if control.stopping || control.active.is_some() {
            return None;
        }
        control.links_made += 1;
        let number = control.links_made;
        control.active = Some((handle, number));
        if !dialed {
            // This node gives the copy: none is coming to it.
            control.joined = true;
        }
        self.changed.notify_all();
        Some(number)
    }
}

#[cfg(test)]
mod tests {
    use super::is_partner;
    use std::net::IpAddr;

    #[test]
    fn only_the_partner_or_loopback_for_a_partner_on_this_host_may_connect() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(is_partner(&[ip("10.0.0.2")], ip("10.0.0.2")));
        assert!(is_partner(&[ip("10.0.0.2")], ip("::ffff:10.0.0.2")));
        assert!(!is_partner(&[ip("10.0.0.2")], ip("10.0.0.3")));
        assert!(!is_partner(&[ip("10.0.0.2")], ip("127.0.0.1")));
        assert!(is_partner(&[ip("127.0.0.4")], ip("127.0.0.1")));
        assert!(!is_partner(&[], ip("127.0.0.1")));
    }
}
