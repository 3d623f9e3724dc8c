//! The link to the peer: the replication listeners (and taking over a `-X` address the peer
//! held) and the peer-address check, the dialer (bound source address, connect timeout,
//! backoff, forever), the handshake (magic, version, instance ids, node bit, self-dial),
//! keeping exactly one link, the join wait (ended at once by a refused dial or a self-dial)
//! and the drain on shutdown. What flows over an installed link is `session`'s business.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::delta::{self, Deltas};
use super::queue::KeyQueue;
use super::session::{self, io_words, Counters, Host, Parts, SessionFlags};
use super::wire::{self, DeltaItem, Frame, Hello, ReadError};
use crate::config::Settings;
use crate::daemon;
use crate::log;
use crate::net;
use crate::stats::{LinkState, ReplicationStatus};
use crate::storage::replica::Entry;
use crate::storage::{clock, Cache, DeltaOp, DeltaOutcome};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A peer address that swallows SYNs costs the dialer this long, and nothing else.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the peer has to say HELLO.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The installed link, as `Control` records it.
struct Active {
    peer_id: u64,
    dialed: bool,
    /// A handle to close it from outside its threads.
    stream: TcpStream,
    flags: Arc<SessionFlags>,
}

/// The link's state, guarded by `Link::control`.
struct Control {
    state: LinkState,
    active: Option<Active>,
    /// The peer's SYNC_END has arrived once.
    joined: bool,
    stopping: bool,
    /// The dialer reached this very node: it only listens from then on.
    dial_disabled: bool,
    /// A dial was refused: nothing listens at the peer's address, so no copy is coming.
    peer_absent: bool,
    /// For the peer instance named: every version of ours it may lack is above this.
    floor: Option<(u64, u64)>,
    links_made: u64,
}

/// One node's replication link machinery, shared by its threads.
pub struct Link {
    pub parts: Parts,
    /// The node bit agreed in the last handshake: this node owns the keys of that bit.
    node_bit: AtomicU64,
    peer_text: String,
    peer_host: String,
    peer_port: u16,
    /// The first `-l` address, which dials come from.
    source: Option<IpAddr>,
    /// Whether a replication listener is bound.
    listening: AtomicBool,
    join_wait: Duration,
    drain_timeout: Duration,
    started: Instant,
    /// The peer instance the received watermark (`Parts::received_max`) belongs to.
    received_from: AtomicU64,
    control: Mutex<Control>,
    changed: Condvar,
}

pub(super) fn resolve_ips(host: &str) -> Vec<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip];
    }
    (host, 0).to_socket_addrs().map(|addrs| addrs.map(|a| a.ip()).collect()).unwrap_or_default()
}

/// A random instance id (never 0, which means "none" on the wire).
fn random_id() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(clock::stamp());
    hasher.write_u32(std::process::id());
    hasher.finish().max(1)
}

/// The addresses a replication port goes on: each `-l` address with `port` (an entry's own
/// port is a client port), or every address of both families.
pub(super) fn addrs_on_port(settings: &Settings, port: u16) -> Result<Vec<SocketAddr>, String> {
    if settings.listen.is_empty() {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        ]);
    }
    let mut addrs = Vec::new();
    for entry in &settings.listen {
        let ips = listen_ips(entry);
        if ips.is_empty() {
            return Err(format!("failed to listen on replication port {port}: cannot resolve {entry} (-l)"));
        }
        addrs.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port)));
    }
    Ok(addrs)
}

/// The IP addresses of one `-l` entry (split by `net::resolve`, as the client listeners do).
fn listen_ips(entry: &str) -> Vec<IpAddr> {
    net::resolve(entry, 0).map(|addrs| addrs.into_iter().map(|a| a.ip()).collect()).unwrap_or_default()
}

pub(super) fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    match addr {
        SocketAddr::V4(_) => TcpListener::bind(addr),
        SocketAddr::V6(v6) => daemon::bind_tcp6_only(v6),
    }
}

/// Binds the replication port on each listen address; "in use" only costs that address,
/// which is returned with the bound listeners, to be taken over once it is free.
pub fn bind_listeners(settings: &Settings) -> Result<(Vec<TcpListener>, Vec<SocketAddr>), String> {
    let mut bound = Vec::new();
    let mut taken = Vec::new();
    for addr in addrs_on_port(settings, settings.repl_port)? {
        match bind_one(addr) {
            Ok(listener) => bound.push(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                log::line(log::WARN, format_args!("replication port {addr} is in use: this node only dials its peer there"));
                taken.push(addr);
            }
            Err(e) if addr.is_ipv6() && settings.listen.is_empty() => {
                log::line(log::STATE, format_args!("replication: no IPv6 listener ({})", daemon::strerror(&e)));
            }
            Err(e) => return Err(format!("failed to listen on replication port {addr} (-X): {}", daemon::strerror(&e))),
        }
    }
    Ok((bound, taken))
}

/// Why a dial failed: the last address's error in words, and whether every address refused
/// the connection (nothing listens there).
struct DialError {
    words: String,
    refused: bool,
}

/// Why a handshake failed.
enum Refusal {
    /// The connection reached this very node.
    SelfDial,
    /// The peer did not answer in time, or the connection broke.
    Io(String),
    /// Not our protocol (counted in `refused`).
    Failed(String),
}

impl Link {
    /// Starts the link's threads on the listeners `bind_listeners` made (none: only dials),
    /// with the addresses it found `taken`.
    pub fn start(settings: &Settings, cache: Arc<Cache>, listeners: Vec<TcpListener>, taken: Vec<SocketAddr>) -> Result<Arc<Link>, String> {
        let peer_text = settings.peer.clone().unwrap_or_default();
        let (peer_host, peer_port) = settings.peer_address().map(|(host, port)| (host.to_string(), port)).unwrap_or_default();
        // An "any" address says nothing about the source: leave it to the kernel.
        let source = settings.listen.first().and_then(|entry| listen_ips(entry).first().copied()).filter(|ip| !ip.is_unspecified());
        let listening = !listeners.is_empty();
        let link = Arc::new(Link {
            parts: Parts {
                cache,
                queue: Arc::new(KeyQueue::new(settings.repl_queue)),
                counters: Counters::default(),
                deltas: Deltas::default(),
                my_id: random_id(),
                max_payload: settings.item_size_max + wire::FRAME_OVERHEAD,
                received_max: AtomicU64::new(0),
            },
            node_bit: AtomicU64::new(0),
            peer_text,
            peer_host,
            peer_port,
            source,
            listening: AtomicBool::new(listening),
            join_wait: Duration::from_secs(u64::from(settings.repl_join_wait)),
            drain_timeout: Duration::from_secs(u64::from(settings.repl_drain_timeout)),
            started: Instant::now(),
            received_from: AtomicU64::new(0),
            control: Mutex::new(Control {
                state: if listening { LinkState::Listening } else { LinkState::Connecting },
                active: None,
                joined: false,
                stopping: false,
                dial_disabled: false,
                peer_absent: false,
                floor: None,
                links_made: 0,
            }),
            changed: Condvar::new(),
        });
        for listener in listeners {
            let me = Arc::clone(&link);
            spawn("repl-accept", move || me.accept_loop(&listener))?;
        }
        let me = Arc::clone(&link);
        spawn("repl-dial", move || me.dial_loop(taken))?;
        log::line(log::STATE, format_args!("replication: instance {:016x}, peer {}", link.parts.my_id, link.peer_text));
        Ok(link)
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, control: &mut Control, state: LinkState) {
        if control.state != state {
            log::line(log::STATE, format_args!("replication: link {} -> {}", control.state.name(), state.name()));
            control.state = state;
            self.changed.notify_all();
        }
    }

    /// The state with no link.
    fn idle_state(&self) -> LinkState {
        if self.listening.load(Ordering::Relaxed) {
            LinkState::Listening
        } else {
            LinkState::Down
        }
    }

    /// Wakes whoever waits on the link (join, drain, dialer).
    pub fn notify(&self) {
        drop(self.lock());
        self.changed.notify_all();
    }

    /// Whether `ip` is one of the peer's addresses.
    fn is_peer(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        resolve_ips(&self.peer_host).into_iter().any(|p| p.to_canonical() == ip)
    }

    fn accept_loop(self: Arc<Link>, listener: &TcpListener) {
        loop {
            let accepted = listener.accept();
            if self.lock().stopping {
                return;
            }
            match accepted {
                Ok((stream, from)) if self.is_peer(from.ip()) => {
                    let me = Arc::clone(&self);
                    let started = spawn("repl-link", move || {
                        me.handshake_and_run(stream, false);
                    });
                    if let Err(e) = started {
                        log::line(log::WARN, format_args!("replication: {e}"));
                    }
                }
                Ok((stream, from)) => {
                    self.parts.counters.refused.fetch_add(1, Ordering::Relaxed);
                    log::line(log::WARN, format_args!("replication: refused a connection from {from}: not the peer"));
                    drop(stream);
                }
                Err(e) => {
                    log::line(log::WARN, format_args!("replication: accept(): {}", daemon::strerror(&e)));
                    // Out of descriptors, say: let one close before trying again.
                    let control = self.lock();
                    drop(self.changed.wait_timeout(control, BACKOFF_MIN));
                }
            }
        }
    }

    /// Dials until stopped; with no link up, first tries to take over the `taken` addresses.
    fn dial_loop(self: Arc<Link>, mut taken: Vec<SocketAddr>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            {
                let mut control = self.lock();
                while !control.stopping && (control.active.is_some() || control.dial_disabled) {
                    control = self.changed.wait(control).unwrap_or_else(|e| e.into_inner());
                }
                if control.stopping {
                    return;
                }
                self.set_state(&mut control, LinkState::Connecting);
            }
            taken.retain(|&addr| !self.take_over(addr));
            match self.dial() {
                Ok(stream) => {
                    if self.handshake_and_run(stream, true) {
                        backoff = BACKOFF_MIN;
                    }
                }
                Err(e) => {
                    log::line(log::STATE, format_args!("replication: cannot reach {}: {}", self.peer_text, e.words));
                    if e.refused {
                        self.lock().peer_absent = true;
                        self.changed.notify_all();
                    }
                }
            }
            let mut control = self.lock();
            if control.active.is_none() {
                let idle = self.idle_state();
                self.set_state(&mut control, idle);
            }
            if !control.stopping && !control.dial_disabled {
                drop(self.changed.wait_timeout(control, backoff));
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Binds a replication address that was in use at start, now that no link is up: the
    /// node that held it (the peer, on one host) may be gone, and this node then listens in
    /// its place, as repcached's survivor does, so the peer finds it there when it comes back.
    /// Returns whether `addr` is settled (bound, or failing for good).
    fn take_over(self: &Arc<Link>, addr: SocketAddr) -> bool {
        match bind_one(addr) {
            Ok(listener) => {
                log::line(log::STATE, format_args!("replication: replication port {addr} is free again: listening"));
                self.listening.store(true, Ordering::Relaxed);
                let me = Arc::clone(self);
                if let Err(e) = spawn("repl-accept", move || me.accept_loop(&listener)) {
                    log::line(log::WARN, format_args!("replication: {e}"));
                }
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => false,
            Err(e) => {
                log::line(log::WARN, format_args!("replication: cannot listen on {addr}: {}", daemon::strerror(&e)));
                true
            }
        }
    }

    /// Connects to the peer (each of its addresses in turn), from the first `-l` address.
    fn dial(&self) -> Result<TcpStream, DialError> {
        let addrs: Vec<SocketAddr> = resolve_ips(&self.peer_host)
            .into_iter()
            .filter(|ip| self.source.is_none_or(|s| s.is_ipv4() == ip.is_ipv4()))
            .map(|ip| SocketAddr::new(ip, self.peer_port))
            .collect();
        let mut last = DialError { words: format!("cannot resolve {}", self.peer_host), refused: false };
        let mut refused = !addrs.is_empty();
        for addr in addrs {
            match daemon::connect_from(self.source, addr, CONNECT_TIMEOUT) {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    refused &= e.kind() == std::io::ErrorKind::ConnectionRefused;
                    last.words = daemon::strerror(&e);
                }
            }
        }
        last.refused = refused;
        Err(last)
    }

    /// Handshakes, then runs the link until it ends if it is the one to keep. Returns whether
    /// a link ran.
    fn handshake_and_run(self: &Arc<Link>, stream: TcpStream, dialed: bool) -> bool {
        let hello = match self.handshake(&stream, dialed) {
            Ok(hello) => hello,
            Err(Refusal::SelfDial) => {
                log::line(log::STATE, format_args!("replication: {} is this node: only listening", self.peer_text));
                let mut control = self.lock();
                control.dial_disabled = true;
                // The peer's link may be up by now (a node dialing itself, repcached style).
                if control.active.is_none() {
                    let idle = self.idle_state();
                    self.set_state(&mut control, idle);
                }
                // A node waiting to join learns it is alone on the port.
                self.changed.notify_all();
                return false;
            }
            Err(Refusal::Io(why)) => {
                log::line(log::WARN, format_args!("replication: handshake with {} failed: {why}", self.peer_text));
                return false;
            }
            Err(Refusal::Failed(why)) => {
                self.parts.counters.refused.fetch_add(1, Ordering::Relaxed);
                log::line(log::WARN, format_args!("replication: handshake with {} failed: {why}", self.peer_text));
                return false;
            }
        };
        let Some(flags) = self.install(&stream, hello.instance, dialed) else {
            log::line(log::STATE, format_args!("replication: closed a duplicate link"));
            return false;
        };
        // The smaller instance id takes bit 0, so the pair's stamps never collide.
        let bit = u64::from(self.parts.my_id > hello.instance);
        clock::set_node_bit(bit);
        self.node_bit.store(bit, Ordering::Relaxed);
        if self.received_from.load(Ordering::Relaxed) != hello.instance {
            self.parts.received_max.store(0, Ordering::Relaxed);
            self.received_from.store(hello.instance, Ordering::Relaxed);
        }
        let floor = self.lock().floor.filter(|(peer, _)| *peer == hello.instance).map(|(_, f)| f);
        let floor = session::run(self, stream, hello, floor, &flags);
        let mut control = self.lock();
        control.active = None;
        control.floor = Some((hello.instance, floor));
        let idle = self.idle_state();
        self.set_state(&mut control, idle);
        log::line(log::STATE, format_args!("replication: link to {} ended", self.peer_text));
        true
    }

    /// The dialer says HELLO first; the accepting side answers only a valid HELLO, so a
    /// stranger that passes the address check still learns nothing.
    fn handshake(&self, stream: &TcpStream, dialed: bool) -> Result<Hello, Refusal> {
        let failed = |e: std::io::Error| Refusal::Io(io_words(&e));
        stream.set_nodelay(true).map_err(failed)?;
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(failed)?;
        stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(failed)?;
        let mine = Hello {
            instance: self.parts.my_id,
            max_version: self.parts.cache.max_version(),
            received: self.parts.received_max.load(Ordering::Relaxed),
            known_peer: self.received_from.load(Ordering::Relaxed),
        };
        let mut bytes = Vec::new();
        wire::encode(&Frame::Hello(mine), &mut bytes);
        let mut writer = stream;
        if dialed {
            writer.write_all(&bytes).map_err(failed)?;
        }
        let mut reader = stream;
        let theirs = match wire::read_frame(&mut reader, wire::HELLO_MAX) {
            Ok((Frame::Hello(hello), _)) if hello.instance == self.parts.my_id => {
                // Our own HELLO: answer it, so that the dialing side sees itself too.
                if !dialed {
                    let _ = writer.write_all(&bytes);
                }
                return Err(Refusal::SelfDial);
            }
            Ok((Frame::Hello(hello), _)) => hello,
            Ok((other, _)) => return Err(Refusal::Failed(format!("expected HELLO, got {other:?}"))),
            Err(ReadError::Io(e)) => return Err(failed(e)),
            Err(ReadError::Wire(e)) => return Err(Refusal::Failed(e.to_string())),
        };
        if !dialed {
            writer.write_all(&bytes).map_err(failed)?;
        }
        Ok(theirs)
    }

    /// Makes this connection the link unless one is kept already. When both nodes dial at
    /// once, the link dialed by the smaller instance id is kept (both ends decide alike); a
    /// link from another instance of the peer (it restarted) replaces the old one.
    fn install(&self, stream: &TcpStream, peer_id: u64, dialed: bool) -> Option<Arc<SessionFlags>> {
        let preferred = |dialed: bool| (self.parts.my_id < peer_id) == dialed;
        let handle = stream.try_clone().ok()?;
        let mut control = self.lock();
        loop {
            if control.stopping {
                return None;
            }
            match &control.active {
                None => break,
                Some(old) if old.peer_id != peer_id || (preferred(dialed) && !preferred(old.dialed)) => {
                    let _ = old.stream.shutdown(Shutdown::Both);
                    control = self.changed.wait(control).unwrap_or_else(|e| e.into_inner());
                }
                Some(_) => return None,
            }
        }
        let flags = Arc::new(SessionFlags::default());
        control.active = Some(Active { peer_id, dialed, stream: handle, flags: Arc::clone(&flags) });
        control.links_made += 1;
        if control.links_made > 1 {
            self.parts.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        self.set_state(&mut control, LinkState::Syncing);
        log::line(
            log::STATE,
            format_args!(
                "replication: linked to {} (instance {peer_id:016x}, {})",
                self.peer_text,
                if dialed { "dialed" } else { "accepted" }
            ),
        );
        Some(flags)
    }

    /// Called by the session when a sync finished in either direction.
    pub fn sync_progress(&self, flags: &SessionFlags) {
        let mut control = self.lock();
        if flags.received_end() {
            control.joined = true;
        }
        let ours = control.active.as_ref().is_some_and(|a| std::ptr::eq(Arc::as_ptr(&a.flags), flags));
        if ours && flags.received_end() && flags.sent_end() {
            self.set_state(&mut control, LinkState::Up);
            self.parts.deltas.open();
        }
        self.changed.notify_all();
    }

    /// Returns once the peer's copy is in, or no copy can come: the peer refused the
    /// connection (it is not running), the dialer reached this very node (it is alone on the
    /// replication port), or `join_wait` passed without a link (the peer does not answer). A
    /// link that is syncing is waited for, as repcached waits for its copy.
    pub fn wait_joined(&self) {
        let deadline = self.started + self.join_wait;
        let mut control = self.lock();
        loop {
            if control.joined || control.stopping {
                return;
            }
            if control.active.is_none() && (control.peer_absent || control.dial_disabled) {
                let why = if control.peer_absent { "refused the connection" } else { "is this node" };
                log::line(log::WARN, format_args!("replication: peer {} {why}: serving alone", self.peer_text));
                return;
            }
            let now = Instant::now();
            if now >= deadline && control.active.is_none() {
                log::line(log::WARN, format_args!("replication: peer {} not reached: serving alone", self.peer_text));
                return;
            }
            let wait = deadline.saturating_duration_since(now).max(BACKOFF_MIN);
            control = self.changed.wait_timeout(control, wait).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
    }

    pub fn shutdown(&self) {
        let deadline = Instant::now() + self.drain_timeout;
        let mut control = self.lock();
        while let Some(active) = &control.active {
            if active.flags.drained() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                log::line(log::WARN, format_args!("replication: queue not delivered within {:?}", self.drain_timeout));
                break;
            }
            control = self.changed.wait_timeout(control, deadline - now).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
        control.stopping = true;
        if let Some(active) = &control.active {
            let _ = active.stream.shutdown(Shutdown::Both);
        }
        self.changed.notify_all();
    }

    pub fn status(&self) -> ReplicationStatus {
        let state = self.lock().state;
        let (queue_depth, _) = self.parts.queue.depth();
        let c = &self.parts.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ReplicationStatus {
            state,
            peer: self.peer_text.clone(),
            queue_depth,
            queue_free: self.parts.queue.free(),
            items_sent: get(&c.items_sent),
            bytes_sent: get(&c.bytes_sent),
            items_received: get(&c.items_received),
            bytes_received: get(&c.bytes_received),
            full_syncs: get(&c.full_syncs),
            partial_syncs: get(&c.partial_syncs),
            reconnects: get(&c.reconnects),
            refused: get(&c.refused),
            deltas_forwarded: get(&self.parts.deltas.forwarded),
            delta_fallbacks: get(&self.parts.deltas.fallbacks),
            queue_overflows: self.parts.queue.overflows(),
            lag_seconds: self.parts.queue.lag_seconds(),
        }
    }

    /// Runs a client's incr/decr of a key the peer owns on the peer, and applies the item it
    /// left; None: run it here (this node owns the key, the link is not up, or no answer).
    pub fn forward_delta(&self, key: &[u8], op: DeltaOp, amount: u64, cas: Option<u64>) -> Option<(DeltaOutcome, u64)> {
        if delta::owner_bit(key) == self.node_bit.load(Ordering::Relaxed) {
            return None;
        }
        // The peer may not have this node's latest write of the key yet: it goes first.
        let state = self.parts.cache.entry(key);
        let resp = self.parts.deltas.request(key, state, op, amount, cas, || self.parts.queue.wake())?;
        let mut unique = 0;
        if let Some(DeltaItem { version, flags, exptime, marks, value }) = resp.item {
            // Read-your-writes: the client's next get here sees at least this.
            self.parts.cache.apply(&Entry::Item { key: key.to_vec(), flags, exptime, version, marks, value });
            unique = self.parts.cache.cas_for_version(version);
        }
        Some((resp.outcome, unique))
    }
}

impl Host for Link {
    fn parts(&self) -> &Parts {
        &self.parts
    }

    fn sync_progress(&self, flags: &SessionFlags) {
        Link::sync_progress(self, flags);
    }

    fn notify(&self) {
        Link::notify(self);
    }
}

/// Starts a named thread; the error is a log line.
pub(super) fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map(drop)
        .map_err(|e| format!("failed to start the replication thread {name}: {}", daemon::strerror(&e)))
}

#[cfg(test)]
mod tests {
    use super::addrs_on_port;
    use crate::config::Settings;
    use std::net::SocketAddr;

    #[test]
    fn the_replication_port_goes_on_each_listen_address() {
        let settings = Settings {
            listen: vec!["127.0.0.1:22122".into(), "[::1]".into(), "::1".into(), "10.1.2.3".into()],
            repl_port: 7,
            ..Settings::default()
        };
        let want: Vec<SocketAddr> = ["127.0.0.1:7", "[::1]:7", "[::1]:7", "10.1.2.3:7"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(addrs_on_port(&settings, settings.repl_port).unwrap(), want);
        let any = Settings { repl_port: 9, ..Settings::default() };
        let want: Vec<SocketAddr> = ["0.0.0.0:9", "[::]:9"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(addrs_on_port(&any, any.repl_port).unwrap(), want);
    }
}
