//! memcachedrep: start-up only (settings, daemon, listeners, signals, shutdown). No server
//! logic here: `server` runs the connections, `daemon` wraps the OS calls.
//!
//! Start-up order, and why:
//! 1. block SIGINT/SIGTERM/SIGHUP before any thread exists, so only `sigwait` sees them;
//! 2. settings, log level, the open-files and core limits, the root check;
//! 3. the cache (it must not start threads: the daemon's fork follows);
//! 4. the UDP sockets (`-U`), then the listeners, bound but not listening, so a busy port fails the starting command
//!    before anything else while clients are still refused; then the replication
//!    ports (`-X`, the repcached one; listening: only the partner is accepted, once the
//!    threads run);
//! 5. `-d` (the parent exits only once the child reports it is up), the pidfile, `-u` (after
//!    binding, so privileged ports work), `-k`;
//! 6. the signal thread (`sigwait`), which tells the main thread of a stop; replication
//!    (`-x`, `-o repcached_link`): its threads, then the wait for the partners' copies
//!    (`wait_joined`, on a thread of its own, so that a stop during the wait ends it at once
//!    and the node exits);
//! 7. listen on the client ports, the server threads, the UDP threads; then the main thread waits for the
//!    stop, stops accepting clients, delivers the replication queue (bounded) and exits.

use std::path::Path;
use std::process::exit;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

use daemon::{ChildOutcome, Forked, ShutdownSignals, StartupReport, UserSwitchError};
use memcachedrep::config::{self, Action, Settings};
use memcachedrep::{daemon, log, replication, server, storage};
use replication::Replication;
use storage::Cache;

/// sysexits(3) codes, as memcached uses them.
const EX_USAGE: i32 = 64;
const EX_NOUSER: i32 = 67;
const EX_OSERR: i32 = 71;
/// Descriptors needed beyond `-c` client connections: stdio, listeners, pidfile, spares.
const RESERVED_FDS: u64 = 32;

fn main() {
    let signals = daemon::block_shutdown_signals()
        .unwrap_or_else(|e| fail(None, EX_OSERR, &format!("failed to block signals: {}", daemon::strerror(&e))));
    let args = config::utf8_args(std::env::args_os().skip(1)).unwrap_or_else(|refusal| fail(None, refusal.status, &refusal.line));
    let settings = match config::parse(&args) {
        Ok(Action::Run(settings)) => *settings,
        Ok(Action::Print(text)) => {
            print!("{text}");
            exit(0);
        }
        Err(refusal) => fail(None, refusal.status, &refusal.line),
    };
    log::set_level(settings.verbose);
    if daemon::raise_fd_limit(settings.max_conns as u64 + RESERVED_FDS).is_err() {
        let line = "failed to set rlimit for open files. Try starting as root or requesting smaller maxconns value.";
        fail(None, EX_OSERR, line);
    }
    if settings.max_core && !matches!(daemon::raise_core_limit(), Ok(true)) {
        fail(None, EX_OSERR, "failed to ensure corefile creation");
    }
    if daemon::is_root() && settings.user.is_none() {
        fail(None, EX_USAGE, "can't run as root without the -u switch");
    }
    let cache = Cache::new(&memcachedrep::cache_config(&settings)).unwrap_or_else(|line| fail(None, EX_USAGE, &line));
    // UDP first, as memcached binds it.
    let udp = server::udp::bind_all(&settings).unwrap_or_else(|line| fail(None, EX_OSERR, &line));
    let listeners = server::listener::bind_all(&settings).unwrap_or_else(|line| fail(None, EX_OSERR, &line));
    let repl_ports = Replication::bind(&settings).unwrap_or_else(|line| fail(None, EX_OSERR, &line));
    // A relative pidfile path must survive the daemon's chdir to /, as must the ports file's.
    let pid_file = settings.pid_file.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    let ports_file = std::env::var_os(server::ports_file::VARIABLE)
        .filter(|_| settings.socket_path.is_none())
        .map(|p| std::path::absolute(&p).unwrap_or_else(|_| p.into()));
    let report = if settings.daemonize { daemonize(&settings) } else { None };
    if let Some(path) = &pid_file {
        daemon::write_pidfile(path).iter().for_each(|note| eprintln!("{note}"));
    }
    let report = switch_user(&settings, report);
    if settings.lock_memory {
        if let Err(e) = daemon::lock_all_memory() {
            eprintln!("warning: -k invalid, mlockall() failed: {}", daemon::strerror(&e));
        }
    }
    let (events, next_event) = mpsc::channel();
    if let Err(e) = watch_signals(signals, events.clone()) {
        fail(report, EX_OSERR, &format!("failed to start the signal thread: {}", daemon::strerror(&e)));
    }
    let cache = Arc::new(cache);
    let replication = match Replication::start(&settings, Arc::clone(&cache), repl_ports) {
        Ok(replication) => replication,
        Err(line) => fail(report, EX_OSERR, &line),
    };
    // A node that reaches its peer takes the peer's copy before it opens its client port.
    match join_or_stop(&replication, &events, &next_event) {
        Ok(false) => {}
        Ok(true) => {
            // Stopped before serving anyone: the starting process has nothing to report.
            if let Some(report) = report {
                report.ready();
            }
            exit_normally(pid_file.as_deref());
        }
        Err(e) => fail(report, EX_OSERR, &format!("failed to start the join thread: {}", daemon::strerror(&e))),
    }
    if let Err(line) = server::listener::listen_all(&listeners, &settings) {
        fail(report, EX_OSERR, &line);
    }
    // Written once the ports take clients, so a harness that reads it may connect at once.
    if let Some(path) = &ports_file {
        let tcp: Vec<_> = listeners.iter().filter_map(|l| l.tcp_addr()).collect();
        let udp: Vec<_> = udp.iter().filter_map(|u| u.local_addr().ok()).collect();
        if let Err(line) = server::ports_file::write(path, &tcp, &udp) {
            eprintln!("{line}");
        }
    }
    let shared = Arc::new(server::Shared::new(settings, cache, replication));
    let running = match server::start(Arc::clone(&shared), listeners) {
        Ok(running) => running,
        Err(e) => fail(report, EX_OSERR, &format!("failed to start the server threads: {}", daemon::strerror(&e))),
    };
    if let Err(e) = server::udp::start(&shared, udp) {
        fail(report, EX_OSERR, &format!("failed to start the UDP threads: {}", daemon::strerror(&e)));
    }
    if let Some(report) = report {
        report.ready();
    }
    // The join was heard already: what comes now is the stop.
    while let Ok(Event::Joined) = next_event.recv() {}
    running.shutdown();
    shared.replication.shutdown();
    exit_normally(pid_file.as_deref());
}

/// What the main thread waits for.
enum Event {
    /// `wait_joined` returned: the node may serve clients.
    Joined,
    /// SIGINT or SIGTERM.
    Stop,
}

/// Starts the thread that takes the shutdown signals (blocked in every thread) and reports
/// the first stop. An error in `sigwait` leaves nothing to wait for: it stops as if signalled.
fn watch_signals(signals: ShutdownSignals, events: Sender<Event>) -> std::io::Result<()> {
    let watch = move || {
        let _ = signals.wait();
        let _ = events.send(Event::Stop);
    };
    std::thread::Builder::new().name("signals".into()).spawn(watch).map(drop)
}

/// Waits for the join (`wait_joined`, on a thread of its own) or a stop, whichever comes
/// first; returns whether it was the stop. On a stop the replication is shut down, which
/// also ends the join wait, so the node can exit without waiting out `-o repl_join_wait`.
fn join_or_stop(replication: &Replication, events: &Sender<Event>, next_event: &Receiver<Event>) -> std::io::Result<bool> {
    std::thread::scope(|scope| {
        let joined = events.clone();
        let wait = move || {
            replication.wait_joined();
            let _ = joined.send(Event::Joined);
        };
        std::thread::Builder::new().name("join-wait".into()).spawn_scoped(scope, wait)?;
        let stopped = !matches!(next_event.recv(), Ok(Event::Joined));
        if stopped {
            replication.shutdown();
        }
        Ok(stopped)
    })
}

/// The end of a clean stop: the pidfile goes, exit 0.
fn exit_normally(pid_file: Option<&Path>) -> ! {
    if let Some(message) = pid_file.and_then(daemon::remove_pidfile) {
        eprintln!("{message}");
    }
    log::line(log::WARN, format_args!("Exiting normally"));
    exit(0);
}

/// Prints a start-up error (through the waiting parent when daemonized) and exits.
fn fail(report: Option<StartupReport>, code: i32, line: &str) -> ! {
    match report {
        // The starting process prints it, on the terminal the daemon has left.
        Some(report) => report.failed(code, line),
        None => eprintln!("{line}"),
    }
    exit(code);
}

/// `-d`: returns in the daemon child; the starting process exits here with the child's
/// verdict. As memcached: `-r` keeps the working directory (for cores), `-v` keeps stderr.
fn daemonize(settings: &Settings) -> Option<StartupReport> {
    // SAFETY: called from `main` before the first thread is started (step 5 of the start-up
    // order: the cache, the sockets and the settings start none).
    match unsafe { daemon::daemonize(settings.max_core, settings.verbose > 0) } {
        Ok(Forked::Child(report)) => Some(report),
        Ok(Forked::Parent(ChildOutcome::Ready)) => exit(0),
        Ok(Forked::Parent(ChildOutcome::Failed { code, message })) => fail(None, code, &message),
        Ok(Forked::Parent(ChildOutcome::Vanished)) => exit(EX_OSERR),
        Err(_) => fail(None, EX_OSERR, "failed to daemon() in order to daemonize"),
    }
}

/// `-u`, which only means something to a process started as root.
fn switch_user(settings: &Settings, report: Option<StartupReport>) -> Option<StartupReport> {
    let Some(user) = settings.user.as_deref().filter(|_| daemon::is_root()) else {
        return report;
    };
    match daemon::switch_user(user) {
        Ok(()) => report,
        Err(UserSwitchError::NoSuchUser) => fail(report, EX_NOUSER, &format!("can't find the user {user} to switch to")),
        Err(UserSwitchError::Groups(e)) => {
            fail(report, EX_OSERR, &format!("failed to drop supplementary groups: {}", daemon::strerror(&e)))
        }
        Err(UserSwitchError::Identity) => fail(report, EX_OSERR, &format!("failed to assume identity of user {user}")),
    }
}
