//! Binds the TCP and unix-socket listeners the settings ask for and accepts on them, handing
//! each client out as a `Stream` (either family). Knows nothing of what is spoken on a
//! connection; a `-l` entry is split and resolved by `net`, as the replication link does.
//!
//! Which sockets, as memcached 1.6 does:
//! - `-s path`: only a unix socket (a stale socket file is removed first; the file gets the
//!   `-a` mode). `-p 0` also turns TCP off.
//! - no `-l`: every interface, as two sockets: 0.0.0.0 and [::] with IPV6_V6ONLY (so each
//!   family shows its own addresses). Either may fail as "address in use" (or, for IPv6,
//!   unavailable) as long as the other is bound.
//! - `-l a,b:port,[v6]:port`: each entry with its own port or `-p`'s; a name may resolve to
//!   several addresses, of which at least one must bind.
//!
//! Every listener gets the `-b` backlog, only from `listen_all` on, so that a node can hold
//! its port or socket file (a conflict fails the start) while refusing clients. Errors are
//! memcached's start-up lines.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::daemon;
use crate::net;

/// memcached's `stats conns` address of a unix-socket client (it records no peer address).
const UNIX_PEER: &str = "?:<AF 0>";

/// A bound, listening socket.
pub struct Listener {
    kind: Kind,
    /// `stats conns` address: "tcp:0.0.0.0:11211", "tcp6:[::]:11211", "unix:/path".
    name: String,
}

enum Kind {
    Tcp(TcpListener),
    /// `path` is absolute, so that it can be removed after a daemon's chdir.
    Unix {
        listener: UnixListener,
        path: PathBuf,
    },
}

/// A client socket of either family.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A newly accepted client.
pub struct Accepted {
    pub stream: Stream,
    /// The client's address, as `stats conns` shows it.
    pub addr: String,
    /// The local address it reached, as `stats conns` shows it.
    pub listen_addr: String,
}

impl Listener {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound address of a TCP listener; `None` for a unix socket.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match &self.kind {
            Kind::Tcp(l) => l.local_addr().ok(),
            Kind::Unix { .. } => None,
        }
    }

    pub fn fd(&self) -> RawFd {
        match &self.kind {
            Kind::Tcp(l) => l.as_raw_fd(),
            Kind::Unix { listener, .. } => listener.as_raw_fd(),
        }
    }

    /// Blocks until a client connects. The client's socket is non-blocking: a handler thread
    /// serves it only when it is ready.
    pub fn accept(&self) -> io::Result<Accepted> {
        match &self.kind {
            Kind::Tcp(listener) => {
                let (stream, peer) = listener.accept()?;
                // Replies are written whole; Nagle would only delay them.
                stream.set_nodelay(true)?;
                stream.set_nonblocking(true)?;
                let local = stream.local_addr()?;
                Ok(Accepted { stream: Stream::Tcp(stream), addr: tcp_name(peer), listen_addr: tcp_name(local) })
            }
            Kind::Unix { listener, .. } => {
                let (stream, _) = listener.accept()?;
                stream.set_nonblocking(true)?;
                Ok(Accepted { stream: Stream::Unix(stream), addr: UNIX_PEER.to_string(), listen_addr: self.name.clone() })
            }
        }
    }

    /// Stops accepting: a thread blocked in `accept` returns with an error.
    pub fn stop(&self) -> io::Result<()> {
        daemon::stop_listening(self.fd())
    }

    /// Removes the unix socket's file (nothing for TCP).
    pub fn remove_socket_file(&self) {
        if let Kind::Unix { path, .. } = &self.kind {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts listening on every listener bound by `bind_all` with the `-b` backlog: until then
/// a client's connection is refused (a replicated node opens its port only once it has its
/// peer's copy). The error is the line memcached prints for a port taken meanwhile.
pub fn listen_all(listeners: &[Listener], settings: &Settings) -> Result<(), String> {
    for listener in listeners {
        daemon::set_listen_backlog(listener.fd(), settings.backlog)
            .map_err(|e| format!("failed to listen on {}: {}", listener.name, daemon::strerror(&e)))?;
    }
    Ok(())
}

/// Binds every listener the settings ask for, without listening yet (see `listen_all`). The
/// error is the line memcached prints.
pub fn bind_all(settings: &Settings) -> Result<Vec<Listener>, String> {
    if let Some(path) = &settings.socket_path {
        return bind_unix(path, settings.socket_mask).map(|l| vec![l]);
    }
    let Some(port) = settings.port.to_bind() else {
        return Ok(Vec::new());
    };
    if settings.listen.is_empty() {
        let any = [SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))];
        return bind_addresses(&any).map_err(|e| format!("failed to listen on TCP port {}: {}", settings.port, daemon::strerror(&e)));
    }
    let mut listeners = Vec::new();
    for entry in &settings.listen {
        let bound = net::resolve(entry, port).and_then(|addrs| bind_addresses(&addrs));
        match bound {
            Ok(mut more) => listeners.append(&mut more),
            Err(e) => {
                return Err(format!("failed to listen on one of interface(s) {}: {}", settings.listen.join(","), daemon::strerror(&e)))
            }
        }
    }
    Ok(listeners)
}

/// Binds each address; "in use" (or an IPv6 family that is unavailable) is forgiven when
/// another address of the group is bound, any other error is not.
fn bind_addresses(addrs: &[SocketAddr]) -> io::Result<Vec<Listener>> {
    let mut bound = Vec::new();
    let mut forgiven = None;
    for &addr in addrs {
        match bind_tcp(addr) {
            Ok(listener) => bound.push(listener),
            Err(e) if forgivable(&e, addr) => forgiven = forgiven.or(Some(e)),
            Err(e) => return Err(e),
        }
    }
    match (bound.is_empty(), forgiven) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(io::Error::new(io::ErrorKind::NotFound, "no address to listen on")),
        (false, _) => Ok(bound),
    }
}

pub(super) fn forgivable(e: &io::Error, addr: SocketAddr) -> bool {
    let v6_missing =
        addr.is_ipv6() && matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPROTONOSUPPORT));
    e.kind() == io::ErrorKind::AddrInUse || v6_missing
}

/// Binds without listening: `listen_all` opens the port once the node may serve clients.
fn bind_tcp(addr: SocketAddr) -> io::Result<Listener> {
    let listener = daemon::bind_tcp_unlistened(addr)?;
    let name = tcp_name(listener.local_addr()?);
    Ok(Listener { kind: Kind::Tcp(listener), name })
}

fn bind_unix(path: &Path, mode: u32) -> Result<Listener, String> {
    let fail = |e: io::Error| format!("failed to listen on UNIX socket: {}: {}", path.display(), daemon::strerror(&e));
    // A socket file left by an earlier run would make bind fail; other files are not ours.
    if std::fs::symlink_metadata(path).map(|m| m.file_type().is_socket()).unwrap_or(false) {
        std::fs::remove_file(path).map_err(fail)?;
    }
    let absolute = std::path::absolute(path).map_err(fail)?;
    // The mask gives the file its mode from the start: a chmod after bind would leave a
    // moment in which anyone could connect.
    let previous = daemon::set_umask(!mode & 0o777);
    let bound = daemon::bind_unix_unlistened(&absolute);
    daemon::set_umask(previous);
    let listener = bound.map_err(fail)?;
    let name = format!("unix:{}", path.display());
    Ok(Listener { kind: Kind::Unix { listener, path: absolute }, name })
}

/// memcached's form of a TCP address: "tcp:1.2.3.4:5" or "tcp6:[::1]:5".
fn tcp_name(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("tcp:{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("tcp6:[{}]:{}", a.ip(), a.port()),
    }
}
