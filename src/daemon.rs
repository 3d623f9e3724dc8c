//! Process-level OS calls that std lacks: fork/setsid, the pidfile, the user switch, rlimits,
//! mlockall, signal waiting, socket options and CPU times. Every `unsafe` block outside
//! `storage` is here.
//!
//! Each function is a thin safe wrapper that reports errors as `io::Error`; what to print and
//! which exit code to use is decided by `main`, not here.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An error as C's strerror words it, as memcached prints it: without the " (os error N)"
/// that Rust appends, and without std's prefix for a failed name lookup.
pub fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.strip_prefix("failed to lookup address information: ").unwrap_or(&text);
    match e.raw_os_error() {
        Some(code) => text.strip_suffix(&format!(" (os error {code})")).unwrap_or(text).to_string(),
        None => text.to_string(),
    }
}

/// CPU time used by the process so far: (user, system) seconds, for `stats` rusage_*.
pub fn cpu_times() -> (f64, f64) {
    let mut usage = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` through a pointer to memory we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return (0.0, 0.0);
    }
    // SAFETY: the memory was zeroed (a valid `rusage`) and getrusage succeeded.
    let usage = unsafe { usage.assume_init() };
    let seconds = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (seconds(usage.ru_utime), seconds(usage.ru_stime))
}

/// Whether the process runs with root's real or effective user id.
pub fn is_root() -> bool {
    // SAFETY: getuid and geteuid take no arguments and cannot fail.
    unsafe { libc::getuid() == 0 || libc::geteuid() == 0 }
}

/// Raises the open-files limit so that at least `needed` descriptors may be open (the hard
/// limit too when the soft one cannot reach it; that takes root).
pub fn raise_fd_limit(needed: u64) -> io::Result<()> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` we own.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    limit.rlim_cur = needed;
    limit.rlim_max = limit.rlim_max.max(needed);
    // SAFETY: setrlimit reads one `rlimit` we own.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }).map(drop)
}

/// `-r`: lifts the core file size limit (to unlimited, or else to the hard limit). Returns
/// whether core files may now be written at all.
pub fn raise_core_limit() -> io::Result<bool> {
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads one `rlimit` we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &unlimited) } != 0 {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one `rlimit` we own.
        check(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) })?;
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads one `rlimit` we own.
        check(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) })?;
    }
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` we own.
    check(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) })?;
    Ok(limit.rlim_cur > 0)
}

/// `-k`: locks all current and future pages of the process in memory.
pub fn lock_all_memory() -> io::Result<()> {
    // SAFETY: mlockall takes only flags.
    check(unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) }).map(drop)
}

/// Why `switch_user` failed.
#[derive(Debug)]
pub enum UserSwitchError {
    NoSuchUser,
    Groups(io::Error),
    Identity,
}

/// `-u`: takes the user's group, supplementary groups and user id, in that order (the user id
/// last, since it removes the right to change the others).
pub fn switch_user(name: &str) -> Result<(), UserSwitchError> {
    let c_name = CString::new(name).map_err(|_| UserSwitchError::NoSuchUser)?;
    let (uid, gid) = lookup_user(&c_name)?;
    // SAFETY: initgroups reads a NUL-terminated name we own.
    check(unsafe { libc::initgroups(c_name.as_ptr(), gid) }).map_err(UserSwitchError::Groups)?;
    // SAFETY: setgid takes only an id.
    check(unsafe { libc::setgid(gid) }).map_err(|_| UserSwitchError::Identity)?;
    // SAFETY: setuid takes only an id.
    check(unsafe { libc::setuid(uid) }).map_err(|_| UserSwitchError::Identity)?;
    Ok(())
}

fn lookup_user(name: &CString) -> Result<(libc::uid_t, libc::gid_t), UserSwitchError> {
    let mut buf_len = 16 * 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; buf_len];
        let mut entry = MaybeUninit::<libc::passwd>::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to memory we own for the duration of the call; the
        // strings getpwnam_r stores in `entry` point into `buf`, which we do not read.
        let rc = unsafe { libc::getpwnam_r(name.as_ptr(), entry.as_mut_ptr(), buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf_len < 1 << 20 {
            buf_len *= 4;
            continue;
        }
        if rc != 0 || found.is_null() {
            return Err(UserSwitchError::NoSuchUser);
        }
        // SAFETY: getpwnam_r succeeded and `found` points at `entry`, now initialised.
        let entry = unsafe { entry.assume_init() };
        return Ok((entry.pw_uid, entry.pw_gid));
    }
}

/// `-b`: sets the accept backlog of an already bound and listening socket (listening again
/// on a listening socket only changes its backlog).
pub fn set_listen_backlog(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes a descriptor and a number; a bad descriptor is an error, not UB.
    check(unsafe { libc::listen(fd, backlog) }).map(drop)
}

/// Binds and listens on an IPv6 address with IPV6_V6ONLY set, so that an IPv4 listener can
/// share the port (std offers no way to set the option before binding).
pub fn bind_tcp6_only(addr: SocketAddrV6) -> io::Result<TcpListener> {
    let listener = bind_tcp_unlistened(SocketAddr::V6(addr))?;
    set_listen_backlog(listener.as_raw_fd(), libc::SOMAXCONN)?;
    Ok(listener)
}

/// A new TCP socket of the address's family (close-on-exec).
fn tcp_socket(addr: &SocketAddr, extra_flags: libc::c_int) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket takes only numbers.
    let fd = check(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | extra_flags, 0) })?;
    // SAFETY: `fd` is a socket just created and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The C form of a socket address, and its length.
fn raw_address(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, for which all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let raw = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for every sockaddr type.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), raw) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let raw = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), raw) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn bind_socket(socket: &OwnedFd, addr: &SocketAddr) -> io::Result<()> {
    let (raw, len) = raw_address(addr);
    // SAFETY: `raw` holds a complete socket address of `len` bytes.
    check(unsafe { libc::bind(socket.as_raw_fd(), (&raw as *const libc::sockaddr_storage).cast(), len) }).map(drop)
}

/// Binds a TCP socket (SO_REUSEADDR; IPV6_V6ONLY for IPv6) without listening: a port
/// conflict shows now, while connections are refused until `set_listen_backlog` listens.
pub fn bind_tcp_unlistened(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = tcp_socket(&addr, 0)?;
    set_int_option(&socket, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if addr.is_ipv6() {
        set_int_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    bind_socket(&socket, &addr)?;
    Ok(TcpListener::from(socket))
}

/// Binds a unix stream socket at `path` without listening, as `bind_tcp_unlistened` does:
/// the file exists (and a second server fails on it) while connections are refused.
pub fn bind_unix_unlistened(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain data, for which all zeroes is a valid value.
    let mut raw: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    raw.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    // The path and its terminating NUL must fit.
    if bytes.len() >= raw.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "path must be shorter than SUN_LEN"));
    }
    for (dst, &src) in raw.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    // SAFETY: socket takes only numbers.
    let fd = check(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` is a socket just created and owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `raw` is a complete, NUL-terminated unix socket address of `len` bytes.
    check(unsafe { libc::bind(socket.as_raw_fd(), (&raw as *const libc::sockaddr_un).cast(), len) })?;
    Ok(UnixListener::from(socket))
}

/// Binds a UDP socket (close-on-exec; IPV6_V6ONLY for IPv6, so that the IPv4 socket can
/// share the port): std cannot set the option before binding.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket takes only numbers.
    let fd = check(unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` is a socket just created and owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    if addr.is_ipv6() {
        set_int_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    bind_socket(&socket, &addr)?;
    Ok(UdpSocket::from(socket))
}

/// Connects to `addr` within `timeout`, from `source` (any port) when given: std cannot bind
/// a socket before connecting it.
pub fn connect_from(source: Option<IpAddr>, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = tcp_socket(&addr, libc::SOCK_NONBLOCK)?;
    if let Some(ip) = source {
        bind_socket(&socket, &SocketAddr::new(ip, 0))?;
    }
    let (raw, len) = raw_address(&addr);
    // SAFETY: `raw` holds a complete socket address of `len` bytes.
    let rc = unsafe { libc::connect(socket.as_raw_fd(), (&raw as *const libc::sockaddr_storage).cast(), len) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
        let mut poll = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one pollfd we own.
        let ready = check(unsafe { libc::poll(&mut poll, 1, millis) })?;
        if ready == 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connection timed out"));
        }
        let mut error: libc::c_int = 0;
        let mut error_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: SO_ERROR writes one c_int into memory we own; `error_len` is its size.
        check(unsafe {
            libc::getsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ERROR, (&mut error as *mut libc::c_int).cast(), &mut error_len)
        })?;
        if error != 0 {
            return Err(io::Error::from_raw_os_error(error));
        }
    }
    let stream = TcpStream::from(socket);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

fn set_int_option(socket: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the option value is one c_int we own, and `len` is its size.
    check(unsafe { libc::setsockopt(socket.as_raw_fd(), level, name, (&value as *const libc::c_int).cast(), len) }).map(drop)
}

/// Shuts a listening socket down: a thread blocked in `accept` on it returns with an error,
/// and new connection attempts are refused.
pub fn stop_listening(fd: RawFd) -> io::Result<()> {
    // SAFETY: shutdown takes a descriptor and a flag; a bad descriptor is an error, not UB.
    check(unsafe { libc::shutdown(fd, libc::SHUT_RDWR) }).map(drop)
}

/// Sets the file mode creation mask and returns the previous one.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask takes a number and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// The signals that end the server (SIGINT, SIGTERM), and SIGHUP, which it ignores as
/// memcached does. Blocked in every thread, they are only ever received by `wait`.
pub struct ShutdownSignals {
    set: libc::sigset_t,
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, and so in every thread it spawns
/// afterwards: call it first thing in `main`.
pub fn block_shutdown_signals() -> io::Result<ShutdownSignals> {
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: sigemptyset initialises the set we own; sigaddset adds valid signal numbers.
    let set = unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(set.as_mut_ptr(), signal);
        }
        set.assume_init()
    };
    // SAFETY: `set` is an initialised signal set; the old mask is not asked for.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(ShutdownSignals { set })
}

impl ShutdownSignals {
    /// Waits until a shutdown signal arrives; SIGHUP is taken and ignored.
    pub fn wait(&self) -> io::Result<i32> {
        loop {
            let mut signal: libc::c_int = 0;
            // SAFETY: `self.set` is an initialised signal set and `signal` is ours to write.
            let rc = unsafe { libc::sigwait(&self.set, &mut signal) };
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            if signal != libc::SIGHUP {
                return Ok(signal);
            }
        }
    }
}

/// How the starting process ended its wait for the daemon child.
#[derive(Debug)]
pub enum ChildOutcome {
    /// The child is up: exit 0.
    Ready,
    /// The child failed: print `message` and exit with `code`.
    Failed { code: i32, message: String },
    /// The child ended without a word.
    Vanished,
}

/// What `daemonize` returns in each process.
pub enum Forked {
    /// In the starting process, once the child has reported.
    Parent(ChildOutcome),
    /// In the daemon, which must report through this once set up.
    Child(StartupReport),
}

/// The daemon child's end of the pipe its parent waits on.
pub struct StartupReport {
    pipe: File,
}

impl StartupReport {
    /// Tells the waiting parent that start-up succeeded.
    pub fn ready(mut self) {
        let _ = self.pipe.write_all(b"ok");
    }

    /// Tells the waiting parent that start-up failed, with its exit code and message.
    pub fn failed(mut self, code: i32, message: &str) {
        let _ = self.pipe.write_all(format!("{code} {message}").as_bytes());
    }
}

/// `-d`: forks; the child starts a new session, changes to `/` unless `keep_cwd`, and puts
/// /dev/null on stdin, stdout and stderr unless `keep_stdio`. The parent waits until the child
/// reports through its `StartupReport` (or dies), so a failure after the fork still makes the
/// starting command fail.
///
/// # Safety
/// The process has a single thread: the child of a fork holds only the calling thread, so any
/// lock another thread held (the allocator's, stdio's, a cache lock) would stay locked there
/// for ever, and the child could deadlock or see half-made state.
pub unsafe fn daemonize(keep_cwd: bool, keep_stdio: bool) -> io::Result<Forked> {
    let mut ends = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    check(unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (mut reader, writer) = unsafe { (File::from_raw_fd(ends[0]), File::from_raw_fd(ends[1])) };
    // SAFETY: the process is single-threaded here (the caller's promise), so the child may go
    // on running any code.
    let pid = check(unsafe { libc::fork() })?;
    if pid > 0 {
        drop(writer);
        let mut said = String::new();
        let outcome = match reader.read_to_string(&mut said) {
            Ok(_) if said == "ok" => ChildOutcome::Ready,
            Ok(_) => match said.split_once(' ') {
                Some((code, message)) => match code.parse() {
                    Ok(code) => ChildOutcome::Failed { code, message: message.to_string() },
                    Err(_) => ChildOutcome::Vanished,
                },
                None => ChildOutcome::Vanished,
            },
            Err(_) => ChildOutcome::Vanished,
        };
        return Ok(Forked::Parent(outcome));
    }
    drop(reader);
    // SAFETY: setsid takes no arguments; the child of a fork is never a group leader.
    check(unsafe { libc::setsid() })?;
    if !keep_cwd {
        std::env::set_current_dir("/")?;
    }
    if !keep_stdio {
        let null = File::options().read(true).write(true).open("/dev/null")?;
        for target in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            // SAFETY: dup2 onto the standard descriptors, which stay open for the process.
            check(unsafe { libc::dup2(null.as_raw_fd(), target) })?;
        }
    }
    Ok(Forked::Child(StartupReport { pipe: writer }))
}

/// Whether a process with this id exists (signal 0 probes without sending anything).
fn process_exists(pid: libc::pid_t) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// `-P`: writes this process's id to `path` (through `path.tmp` and a rename, so a reader
/// never sees half a file). Returns memcached's warning and error lines; none is fatal.
pub fn write_pidfile(path: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(old) = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<libc::pid_t>().ok()) {
        if process_exists(old) {
            notes.push(format!("WARNING: The pid file contained the following (running) pid: {old}"));
        }
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = File::create(&tmp).and_then(|mut f| writeln!(f, "{}", std::process::id()));
    if let Err(e) = written {
        notes.push(format!("Could not open the pid file {} for writing: {}", tmp.display(), strerror(&e)));
        return notes;
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        notes.push(format!("Could not rename the pid file from {} to {}: {}", tmp.display(), path.display(), strerror(&e)));
    }
    notes
}

/// Removes the pidfile on a clean exit; returns memcached's error line on failure.
pub fn remove_pidfile(path: &Path) -> Option<String> {
    std::fs::remove_file(path).err().map(|e| format!("Could not remove the pid file {}: {}", path.display(), strerror(&e)))
}

#[cfg(test)]
mod tests {
    use super::{bind_tcp_unlistened, connect_from, set_listen_backlog};
    use std::io::ErrorKind;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    #[test]
    fn an_unlistened_socket_refuses_until_it_listens() {
        let listener = bind_tcp_unlistened(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = connect_from(None, addr, Duration::from_secs(1)).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
        set_listen_backlog(listener.as_raw_fd(), 8).unwrap();
        let stream = connect_from(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))), addr, Duration::from_secs(1)).unwrap();
        assert_eq!(stream.local_addr().unwrap().ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
        let (_, from) = listener.accept().unwrap();
        assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
    }

    #[test]
    fn a_connect_that_gets_no_answer_gives_up_at_the_timeout() {
        // A full accept queue drops SYNs, as a black-holed address does.
        let listener = bind_tcp_unlistened(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        set_listen_backlog(listener.as_raw_fd(), 0).unwrap();
        let addr = listener.local_addr().unwrap();
        let _first = connect_from(None, addr, Duration::from_secs(1)).unwrap();
        let started = Instant::now();
        let e = connect_from(None, addr, Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
