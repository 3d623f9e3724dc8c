//! The command line: `Settings` (memcached's defaults), `parse` and the checks memcached makes
//! only after reading every flag, the `Refusal` a bad command line gets, and `stats settings`.
//! It must not touch the OS: no sockets, files, users or threads.
//!
//! One flag table (`flags`) drives getopts, `-h` and the value checks, and one sub-option table
//! (`suboptions`) does the same for `-o`, so a flag is described in exactly one place; both read
//! numbers with `values`, and the flag table prints the sub-option rows of `-h`. Every value
//! is validated the way memcached 1.6.18 does (its words, its exit status), so bad settings never
//! reach start-up.
//!
//! Refusals follow one rule: where memcached refuses a value, its words (joined onto one line),
//! followed by the option at fault in parentheses when the words do not name it; where
//! memcached would quietly misread a value (a non-number read as 0, `-D ab` read as `a`), our
//! own `Invalid value for …` line. Either way with memcached's exit status for that flag.
//! Replication's flags and sub-options (`-x`, `-X`, `-q`, `-o repl_*`) are ours: their
//! refusals are our own lines, with status 64 (EX_USAGE) for the flags, and 1 for `-o`, as
//! every `-o` refusal.

mod flags;
mod suboptions;
#[cfg(test)]
mod tests;
mod values;

use std::ffi::OsString;
use std::path::PathBuf;

use flags::{getopt_refusal, listen_port, Apply, Flag, FLAGS};
use suboptions::Tunables;

/// What `version` and `stats` report: the memcached release whose protocol we speak, then ours,
/// in a form that clients parsing "major.minor.micro" read as 1.6.18.
pub const VERSION: &str = concat!("1.6.18-memcachedrep-", env!("CARGO_PKG_VERSION"));

/// Which protocols a connection may speak (`-B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Ascii,
    Binary,
    Auto,
}

/// A client port as -p and -U take it: 0 turns the transport off, and -1 asks the kernel for a
/// free port (memcached's way for test harnesses, which read it from `MEMCACHED_PORT_FILENAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Off,
    Any,
    Number(u16),
}

impl Port {
    /// The number to bind, 0 for any; `None` when off.
    pub fn to_bind(self) -> Option<u16> {
        match self {
            Port::Off => None,
            Port::Any => Some(0),
            Port::Number(port) => Some(port),
        }
    }

    /// The port as memcached reads it from the command line.
    pub fn from_arg(value: i64) -> Option<Port> {
        match value {
            0 => Some(Port::Off),
            -1 => Some(Port::Any),
            _ => u16::try_from(value).ok().map(Port::Number),
        }
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::Off => f.write_str("0"),
            Port::Any => f.write_str("-1"),
            Port::Number(port) => write!(f, "{port}"),
        }
    }
}

/// The settings of one run, after defaults and validation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `-p`: TCP port (default 11211). Off with `-s`.
    pub port: Port,
    /// `-U`: UDP port (default off).
    pub udp_port: Port,
    /// `-s`: unix socket path; disables TCP.
    pub socket_path: Option<PathBuf>,
    /// `-a`: unix socket permission bits (default 0o700).
    pub socket_mask: u32,
    /// `-l`: addresses to listen on, comma lists and repeated flags flattened; empty = all
    /// interfaces. Each may carry its own `:port`.
    pub listen: Vec<String>,
    /// `-d`
    pub daemonize: bool,
    /// `-r`: raise the core file limit.
    pub max_core: bool,
    /// `-u`
    pub user: Option<String>,
    /// `-m`, in bytes (default 64 MiB).
    pub memory_limit: usize,
    /// `-M`: refuse stores instead of evicting.
    pub no_evict: bool,
    /// `-c` (default 1024).
    pub max_conns: usize,
    /// `-k`: mlockall.
    pub lock_memory: bool,
    /// Number of `-v` (0..=3).
    pub verbose: u8,
    /// `-P`
    pub pid_file: Option<PathBuf>,
    /// `-f` (default 1.25).
    pub growth_factor: f64,
    /// `-n` (default 48).
    pub chunk_size: usize,
    /// `-L`
    pub large_pages: bool,
    /// `-D` (default b':'), and whether it was given (it turns `stats detail` on).
    pub prefix_delimiter: u8,
    pub detail_enabled: bool,
    /// `-t` (default 4): handler threads kept ready.
    pub threads: usize,
    /// `-R` (default 20).
    pub reqs_per_event: u32,
    /// false with `-C`.
    pub use_cas: bool,
    /// `-b` (default 1024).
    pub backlog: i32,
    /// `-B` (default auto).
    pub protocol: Protocol,
    /// `-I`, in bytes (default 1 MiB; 1k..=1024m).
    pub item_size_max: usize,
    /// false with `-F`.
    pub flush_enabled: bool,
    /// `-o idle_timeout=N` seconds (0: none).
    pub idle_timeout: u32,
    /// `-o hashpower=N` (0: default).
    pub hash_power: u8,
    /// `-o maxconns_fast` (default on): over `-c`, answer `ERROR Too many open connections` and
    /// close; off: stop accepting until a connection closes.
    pub maxconns_fast: bool,
    /// `-o` sub-options accepted as they were given, for `stats settings` (name, value).
    pub extended: Vec<(String, String)>,
    /// `-x HOST[:PORT]`: the peer node, PORT defaulting to `repl_port` (None: no replication).
    /// As given, checked: HOST is a name, an IPv4 address or a bracketed `[ipv6]` (a bare IPv6
    /// address is refused), so the text after the last `:` outside brackets is a port, 1-65535.
    pub peer: Option<String>,
    /// `-X` (default 11212): the replication port, bound on the `-l` addresses.
    pub repl_port: u16,
    /// `-q` (default 8192): mutations queued for the peer; past it the node catches the peer
    /// up from the table instead.
    pub repl_queue: usize,
    /// `-o repl_join_wait=N` seconds (default 5): how long a starting node waits for a peer
    /// address that does not answer before it serves clients alone (a refused connection or
    /// a self-dial ends the wait at once; a copy under way is waited for).
    pub repl_join_wait: u32,
    /// `-o repl_drain_timeout=N` seconds (default 30): how long a stopping node keeps
    /// delivering its queue to the peer.
    pub repl_drain_timeout: u32,
    /// `-o repl_tombstone_ttl=N` seconds (default 3600): how long a delete is remembered, so
    /// that merging after a split does not bring the item back.
    pub repl_tombstone_ttl: u32,
    /// `-o repcached_link=HOST[:PORT]`: a repcached partner, spoken to in its own link format
    /// (None: none).
    pub repcached: Option<String>,
}

impl Default for Settings {
    /// memcached 1.6.18's defaults.
    fn default() -> Settings {
        Settings {
            port: Port::Number(11211),
            udp_port: Port::Off,
            socket_path: None,
            socket_mask: 0o700,
            listen: Vec::new(),
            daemonize: false,
            max_core: false,
            user: None,
            memory_limit: 64 * MIB,
            no_evict: false,
            max_conns: 1024,
            lock_memory: false,
            verbose: 0,
            pid_file: None,
            growth_factor: 1.25,
            chunk_size: 48,
            large_pages: false,
            prefix_delimiter: b':',
            detail_enabled: false,
            threads: 4,
            reqs_per_event: 20,
            use_cas: true,
            backlog: 1024,
            protocol: Protocol::Auto,
            item_size_max: MIB,
            flush_enabled: true,
            idle_timeout: 0,
            hash_power: 0,
            maxconns_fast: true,
            extended: Vec::new(),
            peer: None,
            repl_port: 11212,
            repl_queue: 8192,
            repl_join_wait: 5,
            repl_drain_timeout: 30,
            repl_tombstone_ttl: 3600,
            repcached: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    Run(Box<Settings>),
    /// `-h`, `-V`, `-i`: print this to stdout and exit 0.
    Print(String),
}

/// A refused command line: the one stderr line and the exit status.
#[derive(Debug)]
pub struct Refusal {
    pub line: String,
    /// memcached's status for the same refusal: 1, 64 (EX_USAGE) or 71 (EX_OSERR).
    pub status: i32,
}

/// A refusal whose line stays one line: a control character in an argument it echoes (a
/// newline given inside a value) is shown escaped.
fn refuse(status: i32, line: String) -> Refusal {
    let mut one_line = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() {
            one_line.extend(c.escape_default());
        } else {
            one_line.push(c);
        }
    }
    Refusal { line: one_line, status }
}

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// memcached's exit statuses: getopt and most range errors exit 1, the rest `sysexits.h`'s.
const FAILURE: i32 = 1;
const EX_USAGE: i32 = 64;
const EX_OSERR: i32 = 71;

/// memcached's slab page: `-I` and `slab_chunk_max` are checked against it.
const SLAB_PAGE_SIZE: u64 = MIB as u64;

/// Items at least this large (1 KiB) and at most 1024 MiB (`-I`).
const ITEM_SIZE_MIN: u64 = 1024;
const ITEM_SIZE_LIMIT: u64 = 1024 * MIB as u64;

/// The arguments as strings, for `parse`. One that is not UTF-8 is refused with status 64
/// (EX_USAGE), as the other usage errors are, where `std::env::args` would panic; the line
/// shows it with its bad bytes replaced.
pub fn utf8_args(args: impl IntoIterator<Item = OsString>) -> Result<Vec<String>, Refusal> {
    args.into_iter()
        .map(|arg| {
            arg.into_string()
                .map_err(|bad| refuse(EX_USAGE, format!("memcachedrep: argument is not valid UTF-8: \"{}\"", bad.to_string_lossy())))
        })
        .collect()
}

/// Parses the arguments (without the program name). A refusal carries the one line memcached
/// would print to stderr and the status it would exit with.
pub fn parse(args: &[String]) -> Result<Action, Refusal> {
    check(args)
}

impl Settings {
    /// The `-x` peer as (host, port), for resolving: an IPv6 address without its brackets,
    /// the port `-X` when `-x` names none.
    pub fn peer_address(&self) -> Option<(&str, u16)> {
        self.peer.as_deref().map(|peer| split_address(peer, self.repl_port))
    }

    /// The `-o repcached_link` partner as (host, port), the port repcached's default -X
    /// (11212) when it names none.
    pub fn repcached_address(&self) -> Option<(&str, u16)> {
        self.repcached.as_deref().map(|partner| split_address(partner, REPCACHED_PORT))
    }

    /// `stats settings` lines (name, value) in memcached's order and with its names, then
    /// replication's.
    pub fn stats_settings(&self) -> Vec<(&'static str, String)> {
        let mut t = Tunables::default();
        for (name, value) in &self.extended {
            let value = if value.is_empty() { None } else { Some(value.as_str()) };
            // Already checked by `parse`; a failure here could only leave a default in place.
            let _ = t.apply(name, value);
        }
        let yes_no = |on: bool| if on { "yes" } else { "no" }.to_string();
        let inter = if self.listen.is_empty() { "NULL".to_string() } else { self.listen.join(",") };
        let socket = self.socket_path.as_ref().map_or("NULL".to_string(), |p| p.display().to_string());
        let peer = match self.peer_address() {
            Some((host, port)) if host.contains(':') => format!("[{host}]:{port}"),
            Some((host, port)) => format!("{host}:{port}"),
            None => "NULL".to_string(),
        };
        let protocol = match self.protocol {
            Protocol::Ascii => "ascii",
            Protocol::Binary => "binary",
            Protocol::Auto => "auto-negotiate",
        };
        vec![
            ("maxbytes", self.memory_limit.to_string()),
            ("maxconns", self.max_conns.to_string()),
            ("tcpport", self.port.to_string()),
            ("udpport", self.udp_port.to_string()),
            ("inter", inter),
            ("verbosity", self.verbose.to_string()),
            ("oldest", "0".to_string()),
            ("evictions", if self.no_evict { "off" } else { "on" }.to_string()),
            ("domain_socket", socket),
            ("umask", format!("{:o}", self.socket_mask)),
            ("shutdown_command", "no".to_string()),
            ("growth_factor", format!("{:.2}", self.growth_factor)),
            ("chunk_size", self.chunk_size.to_string()),
            ("num_threads", self.threads.to_string()),
            ("num_threads_per_udp", self.threads.to_string()),
            ("stat_key_prefix", char::from(self.prefix_delimiter).to_string()),
            ("detail_enabled", yes_no(self.detail_enabled)),
            ("reqs_per_event", self.reqs_per_event.to_string()),
            ("cas_enabled", yes_no(self.use_cas)),
            ("tcp_backlog", self.backlog.to_string()),
            ("binding_protocol", protocol.to_string()),
            ("auth_enabled_sasl", "no".to_string()),
            ("auth_enabled_ascii", "no".to_string()),
            ("item_size_max", self.item_size_max.to_string()),
            ("maxconns_fast", yes_no(self.maxconns_fast)),
            ("hashpower_init", self.hash_power.to_string()),
            ("slab_reassign", yes_no(t.slab_reassign)),
            ("slab_automove", t.slab_automove.to_string()),
            ("slab_automove_ratio", format!("{:.2}", t.slab_automove_ratio)),
            ("slab_automove_window", t.slab_automove_window.to_string()),
            ("slab_chunk_max", t.slab_chunk_max().to_string()),
            ("lru_crawler", yes_no(t.lru_crawler)),
            ("lru_crawler_sleep", t.lru_crawler_sleep.to_string()),
            ("lru_crawler_tocrawl", t.lru_crawler_tocrawl.to_string()),
            ("tail_repair_time", t.tail_repair_time.to_string()),
            ("flush_enabled", yes_no(self.flush_enabled)),
            ("dump_enabled", "yes".to_string()),
            ("hash_algorithm", t.hash_algorithm.to_string()),
            ("lru_maintainer_thread", yes_no(t.lru_maintainer)),
            ("lru_segmented", yes_no(t.lru_segmented)),
            ("hot_lru_pct", t.hot_lru_pct.to_string()),
            ("warm_lru_pct", t.warm_lru_pct.to_string()),
            ("hot_max_factor", format!("{:.2}", t.hot_max_factor)),
            ("warm_max_factor", format!("{:.2}", t.warm_max_factor)),
            ("temp_lru", yes_no(t.temp_lru)),
            ("temporary_ttl", t.temporary_ttl.to_string()),
            ("idle_timeout", self.idle_timeout.to_string()),
            ("watcher_logbuf_size", t.watcher_logbuf_size.to_string()),
            ("worker_logbuf_size", t.worker_logbuf_size.to_string()),
            ("read_buf_mem_limit", t.read_buf_mem_limit.to_string()),
            ("track_sizes", yes_no(t.track_sizes)),
            ("inline_ascii_response", "no".to_string()),
            ("repcached_peer", peer),
            ("replication_port", self.repl_port.to_string()),
            ("replication_queue", self.repl_queue.to_string()),
            ("repl_join_wait", self.repl_join_wait.to_string()),
            ("repl_drain_timeout", self.repl_drain_timeout.to_string()),
            ("repl_tombstone_ttl", self.repl_tombstone_ttl.to_string()),
            ("repcached_link", self.repcached.clone().unwrap_or_else(|| "NULL".to_string())),
        ]
    }
}

/// repcached's default replication port (its -X).
pub const REPCACHED_PORT: u16 = 11212;

/// `HOST[:PORT]` (an IPv6 address in brackets) as (host without brackets, port), `default`
/// standing in for a missing port. `parse` has checked the text; a default port also stands
/// in for a bad one in a hand-made `Settings`.
fn split_address(text: &str, default: u16) -> (&str, u16) {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
            (host, after.strip_prefix(':'))
        }
        None => match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    (host, port.and_then(|p| p.parse().ok()).unwrap_or(default))
}

/// Why a flag's value was refused; the caller, which knows the flag, words the line.
enum Bad {
    /// Not a value of the right kind at all: our `Invalid value for …` line.
    Malformed,
    /// memcached's words, which do not name the flag: the option is appended.
    Words(String),
    /// A complete line that already names what is at fault.
    Line(String),
}

/// Settings under construction, with what the checks after the last flag need.
struct Draft {
    s: Settings,
    /// `-p` as given: memcached checks its range only after reading every flag.
    port: i64,
    /// `-m` as given (megabytes), for messages.
    memory_mb: u64,
    /// `-I` as given, in bytes.
    item_size: u64,
    verbose: u32,
    tunables: Tunables,
}

/// The whole command line: getopts, then each flag in command-line order, then the checks
/// memcached makes only after its option loop (in its order).
fn check(args: &[String]) -> Result<Action, Refusal> {
    let mut options = getopts::Options::new();
    for flag in FLAGS {
        match flag.apply {
            Apply::HelpOnly => {}
            Apply::Value(_) => {
                options.optmulti(flag.short, flag.long, flag.help, flag.arg);
            }
            Apply::Switch(_) | Apply::Print(_) => {
                options.optflagmulti(flag.short, flag.long, flag.help);
            }
        }
    }
    let matches = options.parse(args).map_err(getopt_refusal)?;
    if let Some(extra) = matches.free.first() {
        return Err(refuse(FAILURE, format!("memcachedrep: unexpected argument \"{extra}\"")));
    }

    // (position on the command line, flag, value); a cluster like `-vd` shares a position.
    let mut given: Vec<(usize, &Flag, Option<String>)> = Vec::new();
    for flag in FLAGS {
        match flag.apply {
            Apply::HelpOnly => {}
            Apply::Value(_) => {
                given.extend(matches.opt_strs_pos(flag.short).into_iter().map(|(pos, v)| (pos, flag, Some(v))));
            }
            Apply::Switch(_) | Apply::Print(_) => {
                given.extend(matches.opt_positions(flag.short).into_iter().map(|pos| (pos, flag, None)));
            }
        }
    }
    given.sort_by_key(|(pos, _, _)| *pos);

    let mut d =
        Draft { s: Settings::default(), port: 11211, memory_mb: 64, item_size: MIB as u64, verbose: 0, tunables: Tunables::default() };
    for (_, flag, value) in given {
        match (&flag.apply, value) {
            (Apply::Print(text), _) => return Ok(Action::Print(text())),
            (Apply::Switch(set), _) => set(&mut d),
            (Apply::Value(set), Some(value)) => set(&mut d, &value).map_err(|bad| {
                let line = match bad {
                    Bad::Malformed => {
                        let long = if flag.long.is_empty() { String::new() } else { format!(" (--{})", flag.long) };
                        format!("Invalid value for -{}{long}: \"{value}\"", flag.short)
                    }
                    Bad::Words(words) => format!("{words} (-{} {value})", flag.short),
                    Bad::Line(line) => line,
                };
                refuse(flag.status, line)
            })?,
            (Apply::Value(_), None) | (Apply::HelpOnly, _) => {}
        }
    }
    finish(d).map(|s| Action::Run(Box::new(s)))
}

/// The checks memcached makes after its option loop, in its order, and the final settings.
fn finish(mut d: Draft) -> Result<Settings, Refusal> {
    let t = &d.tunables;
    let item = d.item_size;
    let both = format!(" (-I {item}, -m {})", d.memory_mb);
    if item < ITEM_SIZE_MIN {
        return Err(refuse(EX_USAGE, format!("Item max size cannot be less than 1024 bytes. (-I {item})")));
    }
    if item > (d.s.memory_limit / 2) as u64 {
        return Err(refuse(EX_USAGE, format!("Cannot set item size limit higher than 1/2 of memory max.{both}")));
    }
    if item > ITEM_SIZE_LIMIT {
        return Err(refuse(EX_USAGE, format!("Cannot set item size limit higher than a gigabyte. (-I {item})")));
    }
    let chunk = t.slab_chunk_max();
    if chunk > item {
        return Err(refuse(EX_USAGE, format!("slab_chunk_max (bytes: {chunk}) cannot be larger than -I (item_size_max {item})")));
    }
    if !item.is_multiple_of(chunk) {
        return Err(refuse(EX_USAGE, format!("-I (item_size_max: {item}) must be evenly divisible by slab_chunk_max (bytes: {chunk})")));
    }
    if !SLAB_PAGE_SIZE.is_multiple_of(chunk) {
        return Err(refuse(EX_USAGE, format!("slab_chunk_max (bytes: {chunk}) must divide evenly into {SLAB_PAGE_SIZE} (slab_page_size)")));
    }
    if t.hot_lru_pct + t.warm_lru_pct > 80 {
        return Err(refuse(EX_USAGE, "hot_lru_pct + warm_lru_pct cannot be more than 80% combined".into()));
    }
    if t.temp_lru && !t.lru_maintainer {
        return Err(refuse(EX_USAGE, "temporary_ttl requires lru_maintainer to be enabled".into()));
    }
    // memcached 1.6.18 reads a worker_logbuf_size value a second time as a slab class size
    // list (a missing `break`), and refuses sizes outside 48..=slab_chunk_max; we keep that.
    if let Some(n) = t.worker_logbuf_given {
        if !(48..=chunk).contains(&n) {
            return Err(refuse(EX_USAGE, format!("slab size {n} is out of valid range (-o worker_logbuf_size={n})")));
        }
    }
    d.s.port = match Port::from_arg(d.port) {
        Some(port) => port,
        None => return Err(refuse(EX_USAGE, format!("ERROR: Invalid port number {}. (-p {})", d.port, d.port))),
    };
    let lock_power = item_lock_power(d.s.threads);
    if t.hashpower != 0 && t.hashpower <= lock_power {
        return Err(refuse(
            FAILURE,
            format!(
                "Hash table power size ({}) cannot be equal to or less than item lock table ({lock_power}). \
                 Item lock table grows with `-t N` (worker threadcount). Hash table grows with `-o hashpower=N`",
                t.hashpower
            ),
        ));
    }
    d.s.item_size_max = usize::try_from(item).unwrap_or(usize::MAX);
    d.s.verbose = d.verbose.min(3) as u8;
    d.s.idle_timeout = t.idle_timeout;
    d.s.hash_power = t.hashpower;
    d.s.maxconns_fast = t.maxconns_fast;
    d.s.repl_join_wait = t.repl_join_wait;
    d.s.repl_drain_timeout = t.repl_drain_timeout;
    d.s.repl_tombstone_ttl = t.repl_tombstone_ttl;
    d.s.repcached = t.repcached_link.clone();
    if d.s.socket_path.is_some() {
        d.s.port = Port::Off;
    } else {
        if d.s.peer.is_some() {
            let port = d.s.repl_port;
            check_ports_apart(&d.s, port, &format!("The replication port cannot be a client port too (-X {port})"))?;
        }
        if let Some((_, port)) = d.s.repcached_address() {
            check_ports_apart(&d.s, port, &format!("The repcached port cannot be a client port too (-o repcached_link {port})"))?;
        }
    }
    if let (Some(_), Some((_, port))) = (&d.s.peer, d.s.repcached_address()) {
        if port == d.s.repl_port {
            return Err(refuse(EX_USAGE, format!("The repcached port cannot be the replication port too (-o repcached_link {port}, -X)")));
        }
    }
    Ok(d.s)
}

/// With a partner and TCP clients, a replication port (`port`) must not be a client port on
/// the same addresses: the second bind would fail. `line` says which.
fn check_ports_apart(s: &Settings, port: u16, line: &str) -> Result<(), Refusal> {
    let client = match s.port {
        Port::Number(port) => Some(port),
        Port::Off | Port::Any => None,
    };
    let mut client_ports = s.listen.iter().filter_map(|entry| listen_port(entry).or(client));
    let clash = if s.listen.is_empty() { client == Some(port) } else { client_ports.any(|p| p == port) };
    if clash {
        return Err(refuse(EX_USAGE, line.to_string()));
    }
    Ok(())
}

/// The item lock table's size (a power of two) memcached picks for `threads` workers; an
/// explicit `hashpower` must exceed it.
fn item_lock_power(threads: usize) -> u8 {
    match threads {
        0..=2 => 10,
        3 => 11,
        4 => 12,
        5..=10 => 13,
        11..=20 => 14,
        _ => 15,
    }
}
