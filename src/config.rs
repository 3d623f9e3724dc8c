//! The one flag table: every command-line flag with its default and help line, parsed with
//! getopts into `Settings`, printed by `-h`, and echoed by `stats settings`. It validates every
//! value the way memcached 1.6.18 does (its words, its exit status), including the checks
//! memcached only makes after reading all flags, so bad settings never reach start-up. It must
//! not touch the OS: no sockets, files, users or threads.
//!
//! `Settings::default()` is memcached's defaults; a `Refusal` carries the exit status memcached
//! uses for the same refusal.
//!
//! Refusals follow one rule: where memcached refuses a value, its words (joined onto one line),
//! followed by the option at fault in parentheses when the words do not name it; where
//! memcached would quietly misread a value (a non-number read as 0, `-D ab` read as `a`), our
//! own `Invalid value for …` line. Either way with memcached's exit status for that flag.

use std::path::PathBuf;

/// What `version` and `stats` report: the memcached release whose protocol we speak, then ours,
/// in a form that clients parsing "major.minor.micro" read as 1.6.18.
pub const VERSION: &str = concat!("1.6.18-memcachedrep-", env!("CARGO_PKG_VERSION"));

/// Which protocols a connection may speak (`-B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Ascii,
    Auto,
}

/// The settings of one run, after defaults and validation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `-p`: TCP port (default 11211). 0 with `-s`.
    pub port: u16,
    /// `-U`: UDP port (default 0, off).
    pub udp_port: u16,
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
}

impl Default for Settings {
    /// memcached 1.6.18's defaults.
    fn default() -> Settings {
        Settings {
            port: 11211,
            udp_port: 0,
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

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// memcached's exit statuses: getopt and most range errors exit 1, the rest `sysexits.h`'s.
const FAILURE: i32 = 1;
const EX_USAGE: i32 = 64;
const EX_OSERR: i32 = 71;

/// Handler threads beyond this are refused. memcached, with its default `-c 1024`, fails to
/// start somewhere between 200 and 300 worker threads (each needs file descriptors); ours keeps
/// idle threads only, and more than this many ready would be memory spent for nothing.
const MAX_THREADS: i64 = 256;

/// memcached's slab page: `-I` and `slab_chunk_max` are checked against it.
const SLAB_PAGE_SIZE: u64 = MIB as u64;

/// Items at least this large (1 KiB) and at most 1024 MiB (`-I`).
const ITEM_SIZE_MIN: u64 = 1024;
const ITEM_SIZE_LIMIT: u64 = 1024 * MIB as u64;

/// Parses the arguments (without the program name). A refusal carries the one line memcached
/// would print to stderr and the status it would exit with.
pub fn parse(args: &[String]) -> Result<Action, Refusal> {
    check(args)
}

/// `-h`'s text, from the flag table.
pub fn usage() -> String {
    let mut text = format!("memcachedrep {VERSION}\n");
    for flag in FLAGS {
        let mut left = format!("-{}", flag.short);
        if !flag.long.is_empty() {
            left.push_str(", --");
            left.push_str(flag.long);
            if !flag.arg.is_empty() {
                left.push('=');
                left.push_str(flag.arg);
            }
        } else if !flag.arg.is_empty() {
            left.push(' ');
            left.push_str(flag.arg);
        }
        push_row(&mut text, &left, &with_default(flag.help, flag.default));
    }
    text.push_str("Sub-options of -o (those marked * are accepted, checked and shown by stats\n");
    text.push_str("settings, but change nothing here):\n");
    for sub in SUB_OPTIONS {
        let mut left = format!("   {} {}", if sub.honoured { '-' } else { '*' }, sub.name);
        if !sub.value.is_empty() {
            left.push('=');
            left.push_str(sub.value);
        }
        push_row(&mut text, &left, &with_default(sub.help, sub.default));
    }
    text
}

impl Settings {
    /// `stats settings` lines (name, value) in memcached's order and with its names.
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
        let protocol = match self.protocol {
            Protocol::Ascii => "ascii",
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
        ]
    }
}

/// A refused command line: the one stderr line and the exit status.
#[derive(Debug)]
pub struct Refusal {
    pub line: String,
    /// memcached's status for the same refusal: 1, 64 (EX_USAGE) or 71 (EX_OSERR).
    pub status: i32,
}

fn refuse(status: i32, line: String) -> Refusal {
    Refusal { line, status }
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

/// What a flag does when given.
enum Apply {
    /// `-h`, `-V`, `-i`: print this and exit, as soon as it is met (memcached ignores the
    /// flags after it).
    Print(fn() -> String),
    Switch(fn(&mut Draft)),
    Value(fn(&mut Draft, &str) -> Result<(), Bad>),
    /// `-vv`, `-vvv`: rows of `-h` only; getopts counts them as repeated `-v`.
    HelpOnly,
}

/// One row of the flag table.
struct Flag {
    /// One letter for getopts; longer for the help-only rows.
    short: &'static str,
    /// memcached's long name, without `--`; empty when it has none.
    long: &'static str,
    /// The argument's placeholder in `-h`; empty for a switch.
    arg: &'static str,
    /// As printed after "default: "; empty when there is none to print.
    default: &'static str,
    help: &'static str,
    /// memcached's exit status when it refuses this flag's value.
    status: i32,
    apply: Apply,
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

const FLAGS: &[Flag] = &[
    Flag {
        short: "p",
        long: "port",
        arg: "<num>",
        default: "11211",
        help: "TCP port to listen on",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            d.port = integer(v).ok_or(Bad::Malformed)?;
            Ok(())
        }),
    },
    Flag {
        short: "U",
        long: "udp-port",
        arg: "<num>",
        default: "0, off",
        help: "UDP port to listen on; UDP is not served yet, so only 0 is accepted",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            let port = integer(v).and_then(|p| u16::try_from(p).ok()).ok_or(Bad::Malformed)?;
            if port != 0 {
                return Err(Bad::Words("UDP is not served yet: only -U 0 is accepted".into()));
            }
            d.s.udp_port = port;
            Ok(())
        }),
    },
    Flag {
        short: "s",
        long: "unix-socket",
        arg: "<file>",
        default: "",
        help: "UNIX socket to listen on (disables network support)",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            if v.is_empty() {
                return Err(Bad::Malformed);
            }
            d.s.socket_path = Some(PathBuf::from(v));
            Ok(())
        }),
    },
    Flag {
        short: "a",
        long: "unix-mask",
        arg: "<mask>",
        default: "700",
        help: "access mask for the UNIX socket, in octal",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            let octal = !v.is_empty() && v.len() <= 4 && v.bytes().all(|b| (b'0'..=b'7').contains(&b));
            d.s.socket_mask = if octal { u32::from_str_radix(v, 8).ok() } else { None }.ok_or(Bad::Malformed)?;
            Ok(())
        }),
    },
    Flag {
        short: "l",
        long: "listen",
        arg: "<addr>",
        default: "all interfaces",
        help: "interface to listen on: host, host:port or [ipv6]:port; a comma separated list \
               and repeated -l add more",
        status: EX_OSERR,
        apply: Apply::Value(|d, v| {
            for entry in v.split(',').filter(|e| !e.is_empty()) {
                check_listen(entry).map_err(Bad::Words)?;
                d.s.listen.push(entry.to_string());
            }
            Ok(())
        }),
    },
    Flag {
        short: "d",
        long: "daemon",
        arg: "",
        default: "",
        help: "run as a daemon",
        status: FAILURE,
        apply: Apply::Switch(|d| d.s.daemonize = true),
    },
    Flag {
        short: "r",
        long: "enable-coredumps",
        arg: "",
        default: "",
        help: "maximize core file limit",
        status: FAILURE,
        apply: Apply::Switch(|d| d.s.max_core = true),
    },
    Flag {
        short: "u",
        long: "user",
        arg: "<user>",
        default: "",
        help: "assume identity of <user> (only when run as root)",
        status: FAILURE,
        apply: Apply::Value(|d, v| {
            d.s.user = Some(v.to_string());
            Ok(())
        }),
    },
    Flag {
        short: "m",
        long: "memory-limit",
        arg: "<num>",
        default: "64",
        help: "item memory in megabytes",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            let mb = unsigned(v).ok_or(Bad::Malformed)?;
            let bytes = usize::try_from(mb).ok().and_then(|m| m.checked_mul(MIB)).ok_or(Bad::Malformed)?;
            d.memory_mb = mb;
            d.s.memory_limit = bytes;
            Ok(())
        }),
    },
    Flag {
        short: "M",
        long: "disable-evictions",
        arg: "",
        default: "",
        help: "return error on memory exhausted instead of evicting",
        status: FAILURE,
        apply: Apply::Switch(|d| d.s.no_evict = true),
    },
    Flag {
        short: "c",
        long: "conn-limit",
        arg: "<num>",
        default: "1024",
        help: "max simultaneous connections",
        status: FAILURE,
        apply: Apply::Value(|d, v| {
            let n = integer(v).ok_or(Bad::Malformed)?;
            if n <= 0 {
                return Err(Bad::Words("Maximum connections must be greater than 0".into()));
            }
            d.s.max_conns = usize::try_from(n).map_err(|_| Bad::Malformed)?;
            Ok(())
        }),
    },
    Flag {
        short: "k",
        long: "lock-memory",
        arg: "",
        default: "",
        help: "lock down all paged memory",
        status: FAILURE,
        apply: Apply::Switch(|d| d.s.lock_memory = true),
    },
    Flag {
        short: "v",
        long: "verbose",
        arg: "",
        default: "",
        help: "verbose (print errors/warnings)",
        status: FAILURE,
        apply: Apply::Switch(|d| d.verbose += 1),
    },
    Flag {
        short: "vv",
        long: "",
        arg: "",
        default: "",
        help: "very verbose (also print client commands/responses)",
        status: FAILURE,
        apply: Apply::HelpOnly,
    },
    Flag {
        short: "vvv",
        long: "",
        arg: "",
        default: "",
        help: "extremely verbose (also print internal state transitions)",
        status: FAILURE,
        apply: Apply::HelpOnly,
    },
    Flag {
        short: "h",
        long: "help",
        arg: "",
        default: "",
        help: "print this help and exit",
        status: FAILURE,
        apply: Apply::Print(usage),
    },
    Flag {
        short: "i",
        long: "license",
        arg: "",
        default: "",
        help: "print the license and exit",
        status: FAILURE,
        apply: Apply::Print(license),
    },
    Flag {
        short: "V",
        long: "version",
        arg: "",
        default: "",
        help: "print version and exit",
        status: FAILURE,
        apply: Apply::Print(version),
    },
    Flag {
        short: "P",
        long: "pidfile",
        arg: "<file>",
        default: "",
        help: "save PID in <file>",
        status: FAILURE,
        apply: Apply::Value(|d, v| {
            d.s.pid_file = Some(PathBuf::from(v));
            Ok(())
        }),
    },
    Flag {
        short: "f",
        long: "slab-growth-factor",
        arg: "<num>",
        default: "1.25",
        help: "chunk size growth factor",
        status: FAILURE,
        apply: Apply::Value(|d, v| {
            let factor: f64 = v.parse().ok().filter(|f: &f64| f.is_finite()).ok_or(Bad::Malformed)?;
            if factor <= 1.0 {
                return Err(Bad::Words("Factor must be greater than 1".into()));
            }
            d.s.growth_factor = factor;
            Ok(())
        }),
    },
    Flag {
        short: "n",
        long: "slab-min-size",
        arg: "<bytes>",
        default: "48",
        help: "min space used for key+value+flags",
        status: FAILURE,
        apply: Apply::Value(|d, v| {
            let n = integer(v).ok_or(Bad::Malformed)?;
            if n <= 0 {
                return Err(Bad::Words("Chunk size must be greater than 0".into()));
            }
            d.s.chunk_size = usize::try_from(n).map_err(|_| Bad::Malformed)?;
            Ok(())
        }),
    },
    Flag {
        short: "L",
        long: "enable-largepages",
        arg: "",
        default: "",
        help: "try to use large memory pages (if available)",
        status: FAILURE,
        apply: Apply::Switch(|d| d.s.large_pages = true),
    },
    Flag {
        short: "D",
        long: "",
        arg: "<char>",
        default: ":",
        help: "use <char> as the delimiter between key prefixes and IDs, for per-prefix stats; \
               giving it turns on stats detail",
        status: FAILURE,
        apply: Apply::Value(|d, v| match v.as_bytes() {
            [] => Err(Bad::Words("No delimiter specified".into())),
            [c] => {
                d.s.prefix_delimiter = *c;
                d.s.detail_enabled = true;
                Ok(())
            }
            _ => Err(Bad::Malformed),
        }),
    },
    Flag {
        short: "t",
        long: "threads",
        arg: "<num>",
        default: "4",
        help: "handler threads kept ready (1-256); the pool grows beyond them on demand, one \
               thread per open connection, up to -c",
        status: FAILURE,
        apply: Apply::Value(|d, v| {
            let n = integer(v).ok_or(Bad::Malformed)?;
            if n <= 0 {
                return Err(Bad::Words("Number of threads must be greater than 0".into()));
            }
            if n > MAX_THREADS {
                return Err(Bad::Words(format!("Number of threads must be at most {MAX_THREADS}")));
            }
            d.s.threads = usize::try_from(n).map_err(|_| Bad::Malformed)?;
            Ok(())
        }),
    },
    Flag {
        short: "R",
        long: "max-reqs-per-event",
        arg: "<num>",
        default: "20",
        help: "maximum number of requests per event; accepted and shown by stats settings, but a \
               thread per connection has no event loop to yield, so conn_yields stays 0",
        status: FAILURE,
        apply: Apply::Value(|d, v| {
            let n = integer(v).ok_or(Bad::Malformed)?;
            if n <= 0 {
                return Err(Bad::Words("Number of requests per event must be greater than 0".into()));
            }
            d.s.reqs_per_event = u32::try_from(n).map_err(|_| Bad::Malformed)?;
            Ok(())
        }),
    },
    Flag {
        short: "C",
        long: "disable-cas",
        arg: "",
        default: "",
        help: "disable use of CAS",
        status: FAILURE,
        apply: Apply::Switch(|d| d.s.use_cas = false),
    },
    Flag {
        short: "b",
        long: "listen-backlog",
        arg: "<num>",
        default: "1024",
        help: "set the backlog queue limit",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            d.s.backlog = integer(v).and_then(|n| i32::try_from(n).ok()).filter(|n| *n >= 0).ok_or(Bad::Malformed)?;
            Ok(())
        }),
    },
    Flag {
        short: "B",
        long: "protocol",
        arg: "<name>",
        default: "auto",
        help: "protocol: ascii or auto, both serving the text protocol; binary is not served yet",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            d.s.protocol = match v {
                "auto" => Protocol::Auto,
                "ascii" => Protocol::Ascii,
                "binary" => {
                    return Err(Bad::Words("the binary protocol is not served yet: use ascii or auto".into()))
                }
                _ => {
                    return Err(Bad::Words(format!(
                        "Invalid value for binding protocol: {v} -- should be one of auto, binary, or ascii"
                    )))
                }
            };
            Ok(())
        }),
    },
    Flag {
        short: "I",
        long: "max-item-size",
        arg: "<num>",
        default: "1m",
        help: "max item size in bytes, or with a k or m suffix (min: 1k, max: 1024m; at least \
               slab_chunk_max and a multiple of it)",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            d.item_size = size(v).ok_or(Bad::Malformed)?;
            Ok(())
        }),
    },
    Flag {
        short: "F",
        long: "disable-flush-all",
        arg: "",
        default: "",
        help: "disable flush_all command",
        status: FAILURE,
        apply: Apply::Switch(|d| d.s.flush_enabled = false),
    },
    Flag {
        short: "o",
        long: "extended",
        arg: "<opts>",
        default: "",
        help: "comma separated list of extended options (sub-options, below); ext_* (extstore) \
               and ssl_* are not supported",
        status: FAILURE,
        apply: Apply::Value(|d, v| {
            // As memcached: an empty -o is nothing; an empty item in a list is illegal.
            if v.is_empty() {
                return Ok(());
            }
            for item in v.split(',') {
                let (name, value) = match item.split_once('=') {
                    Some((name, value)) => (name, Some(value)),
                    None => (item, None),
                };
                if name.starts_with("ext_") {
                    return Err(Bad::Line(format!("-o {name}: extstore (external storage) is not supported")));
                }
                if name.starts_with("ssl_") {
                    return Err(Bad::Line(format!("-o {name}: TLS is not supported")));
                }
                d.tunables.apply(name, value).map_err(|line| {
                    // memcached's words mostly name the sub-option; where not, add it.
                    if line.contains(name) {
                        Bad::Line(line)
                    } else {
                        Bad::Line(format!("{line} (-o {item})"))
                    }
                })?;
                d.s.extended.push((name.to_string(), value.unwrap_or("").to_string()));
            }
            Ok(())
        }),
    },
];

/// memcached flags this server does not have, for a clearer refusal than "invalid option".
const UNSUPPORTED: &[(&str, &str)] = &[
    ("A", "enable-shutdown"),
    ("S", "enable-sasl"),
    ("X", "disable-dumping"),
    ("W", "disable-watch"),
    ("Y", "auth-file"),
    ("e", "memory-file"),
    ("Z", "enable-ssl"),
    ("N", "napi-ids"),
];

fn version() -> String {
    format!("memcachedrep {VERSION}\n")
}

fn license() -> String {
    format!(
        "memcachedrep {VERSION}\n\n\
         Copyright (c) 2026, the memcachedrep authors. All rights reserved.\n\n\
         memcachedrep is free software under the BSD 3-Clause License. You may use and\n\
         redistribute it, in source or binary form, changed or not, provided that:\n\
         1. source copies keep this copyright notice, these conditions and the disclaimer;\n\
         2. binary copies repeat them in their documentation or other shipped materials;\n\
         3. neither the authors' names nor those of contributors are used to endorse or\n   \
            promote products derived from it without specific prior written permission.\n\n\
         It comes AS IS, with no warranty of any kind, express or implied, including of\n\
         merchantability or fitness for a particular purpose. The authors and contributors\n\
         are not liable for any damage arising in any way from its use, even if advised of\n\
         the possibility of such damage.\n"
    )
}

/// The column where help text starts in `-h`, and the width it wraps to.
const HELP_COLUMN: usize = 32;
const WIDTH: usize = 79;

fn with_default(help: &str, default: &str) -> String {
    if default.is_empty() {
        help.to_string()
    } else {
        format!("{help} (default: {default})")
    }
}

/// Appends one `-h` row: `left` padded to the help column, then `help` word-wrapped.
fn push_row(text: &mut String, left: &str, help: &str) {
    let mut line = left.to_string();
    if line.len() + 1 > HELP_COLUMN {
        text.push_str(&line);
        text.push('\n');
        line.clear();
    }
    let mut empty = true;
    for word in help.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > WIDTH {
            text.push_str(line.trim_end());
            text.push('\n');
            line.clear();
            empty = true;
        }
        if empty {
            while line.len() < HELP_COLUMN {
                line.push(' ');
            }
        } else {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    text.push_str(line.trim_end());
    text.push('\n');
}

/// A decimal integer, with an optional sign and nothing else.
fn integer(text: &str) -> Option<i64> {
    text.parse().ok()
}

/// A decimal integer with no sign.
fn unsigned(text: &str) -> Option<u64> {
    if text.starts_with('+') {
        return None;
    }
    text.parse().ok()
}

/// `-I`'s size: bytes, or kilobytes/megabytes with a `k`/`K`/`m`/`M` suffix as memcached reads
/// it. Other suffixes (memcached reads `2g` as 2 bytes) are refused.
fn size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1024),
        b'm' | b'M' => (&text[..text.len() - 1], 1024 * 1024),
        _ => (text, 1),
    };
    unsigned(digits)?.checked_mul(unit)
}

/// One `-l` entry: `host`, `host:port`, `[ipv6]` or `[ipv6]:port`; a bare IPv6 address (two or
/// more colons) has no port. Names are resolved at start-up, not here.
fn check_listen(entry: &str) -> Result<(), String> {
    let bad_v6 = || format!("Invalid IPV6 address: \"{entry}\"");
    let port = if let Some(rest) = entry.strip_prefix('[') {
        let (_, after) = rest.split_once(']').ok_or_else(bad_v6)?;
        if after.is_empty() {
            return Ok(());
        }
        after.strip_prefix(':').ok_or_else(bad_v6)?
    } else if entry.matches(':').count() == 1 {
        entry.split_once(':').map_or("", |(_, port)| port)
    } else {
        return Ok(());
    };
    match unsigned(port) {
        Some(p) if p <= 65535 => Ok(()),
        _ => Err(format!("Invalid port number: \"{port}\"")),
    }
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

    let mut d = Draft {
        s: Settings::default(),
        port: 11211,
        memory_mb: 64,
        item_size: MIB as u64,
        verbose: 0,
        tunables: Tunables::default(),
    };
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
        return Err(refuse(
            EX_USAGE,
            format!("slab_chunk_max (bytes: {chunk}) cannot be larger than -I (item_size_max {item})"),
        ));
    }
    if !item.is_multiple_of(chunk) {
        return Err(refuse(
            EX_USAGE,
            format!("-I (item_size_max: {item}) must be evenly divisible by slab_chunk_max (bytes: {chunk})"),
        ));
    }
    if !SLAB_PAGE_SIZE.is_multiple_of(chunk) {
        return Err(refuse(
            EX_USAGE,
            format!("slab_chunk_max (bytes: {chunk}) must divide evenly into {SLAB_PAGE_SIZE} (slab_page_size)"),
        ));
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
    d.s.port = match u16::try_from(d.port) {
        Ok(port) => port,
        Err(_) => return Err(refuse(EX_USAGE, format!("ERROR: Invalid port number {}. (-p {})", d.port, d.port))),
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
    if d.s.socket_path.is_some() {
        d.s.port = 0;
    }
    Ok(d.s)
}

/// getopt's complaints, worded as glibc's getopt words them for memcached.
fn getopt_refusal(fail: getopts::Fail) -> Refusal {
    let dashes = |name: &str| if name.chars().count() == 1 { format!("-{name}") } else { format!("--{name}") };
    let line = match fail {
        getopts::Fail::UnrecognizedOption(name) => {
            match UNSUPPORTED.iter().find(|(short, long)| *short == name || *long == name) {
                Some((short, long)) => format!("memcachedrep: -{short} (--{long}) is not supported"),
                None if name.chars().count() == 1 => format!("memcachedrep: invalid option -- '{name}'"),
                None => format!("memcachedrep: unrecognized option '--{name}'"),
            }
        }
        getopts::Fail::ArgumentMissing(name) if name.chars().count() == 1 => {
            format!("memcachedrep: option requires an argument -- '{name}'")
        }
        getopts::Fail::ArgumentMissing(name) => format!("memcachedrep: option '--{name}' requires an argument"),
        getopts::Fail::UnexpectedArgument(name) => {
            format!("memcachedrep: option '{}' doesn't allow an argument", dashes(&name))
        }
        getopts::Fail::OptionMissing(name) | getopts::Fail::OptionDuplicated(name) => {
            format!("memcachedrep: bad use of option '{}'", dashes(&name))
        }
    };
    refuse(FAILURE, line)
}

/// The `-o` settings, with memcached's defaults. Only `maxconns_fast`, `hashpower` and
/// `idle_timeout` change what this server does; the rest are checked and shown.
#[derive(Debug, Clone)]
struct Tunables {
    maxconns_fast: bool,
    hashpower: u8,
    idle_timeout: u32,
    slab_reassign: bool,
    slab_automove: u8,
    slab_automove_ratio: f64,
    slab_automove_window: u32,
    /// Given explicitly; otherwise half a slab page, or a whole one after `no_modern`.
    slab_chunk_max_given: Option<u64>,
    no_modern: bool,
    lru_crawler: bool,
    lru_crawler_sleep: u32,
    lru_crawler_tocrawl: u32,
    tail_repair_time: u32,
    hash_algorithm: &'static str,
    lru_maintainer: bool,
    lru_segmented: bool,
    hot_lru_pct: u32,
    warm_lru_pct: u32,
    hot_max_factor: f64,
    warm_max_factor: f64,
    temp_lru: bool,
    temporary_ttl: u32,
    watcher_logbuf_size: u64,
    worker_logbuf_size: u64,
    /// The value given, in kilobytes, for memcached's second reading of it (see `finish`).
    worker_logbuf_given: Option<u64>,
    read_buf_mem_limit: u64,
    track_sizes: bool,
    hash_expand: bool,
}

impl Default for Tunables {
    fn default() -> Tunables {
        Tunables {
            maxconns_fast: true,
            hashpower: 0,
            idle_timeout: 0,
            slab_reassign: true,
            slab_automove: 1,
            slab_automove_ratio: 0.8,
            slab_automove_window: 30,
            slab_chunk_max_given: None,
            no_modern: false,
            lru_crawler: true,
            lru_crawler_sleep: 100,
            lru_crawler_tocrawl: 0,
            tail_repair_time: 0,
            hash_algorithm: "murmur3",
            lru_maintainer: true,
            lru_segmented: true,
            hot_lru_pct: 20,
            warm_lru_pct: 40,
            hot_max_factor: 0.2,
            warm_max_factor: 2.0,
            temp_lru: false,
            temporary_ttl: 61,
            watcher_logbuf_size: 256 * KIB as u64,
            worker_logbuf_size: 64 * KIB as u64,
            worker_logbuf_given: None,
            read_buf_mem_limit: 0,
            track_sizes: false,
            hash_expand: true,
        }
    }
}

impl Tunables {
    fn slab_chunk_max(&self) -> u64 {
        match self.slab_chunk_max_given {
            Some(bytes) => bytes,
            None if self.no_modern => SLAB_PAGE_SIZE,
            None => SLAB_PAGE_SIZE / 2,
        }
    }

    /// Applies one sub-option; an error is the whole stderr line.
    fn apply(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
        match SUB_OPTIONS.iter().find(|sub| sub.name == name) {
            Some(sub) => (sub.apply)(self, value),
            None => {
                let item = value.map_or(name.to_string(), |v| format!("{name}={v}"));
                Err(format!("Illegal suboption \"{item}\""))
            }
        }
    }
}

/// One `-o` sub-option: its `-h` row and how it is read.
struct SubOption {
    name: &'static str,
    /// The value's placeholder; empty when it takes none (a value given anyway is ignored, as
    /// memcached does).
    value: &'static str,
    default: &'static str,
    help: &'static str,
    /// Whether it changes what this server does (others are only checked and shown).
    honoured: bool,
    apply: fn(&mut Tunables, Option<&str>) -> Result<(), String>,
}

/// The value of a sub-option that needs one, or memcached's words for its absence.
fn needed<'a>(value: Option<&'a str>, missing: &str) -> Result<&'a str, String> {
    value.ok_or_else(|| missing.to_string())
}

/// Our line for a sub-option value memcached would quietly misread.
fn invalid_sub(name: &str, value: &str) -> String {
    format!("Invalid value for -o {name}: \"{value}\"")
}

/// An unsigned sub-option value that must fit `T`.
fn sub_number<T: TryFrom<u64>>(name: &str, value: &str) -> Result<T, String> {
    unsigned(value).and_then(|n| T::try_from(n).ok()).ok_or_else(|| invalid_sub(name, value))
}

const SUB_OPTIONS: &[SubOption] = &[
    SubOption {
        name: "maxconns_fast",
        value: "",
        default: "on",
        help: "over -c, answer \"ERROR Too many open connections\" and close new connections at once",
        honoured: true,
        apply: |t, _| {
            t.maxconns_fast = true;
            Ok(())
        },
    },
    SubOption {
        name: "no_maxconns_fast",
        value: "",
        default: "",
        help: "over -c, stop accepting until a connection closes",
        honoured: true,
        apply: |t, _| {
            t.maxconns_fast = false;
            Ok(())
        },
    },
    SubOption {
        name: "hashpower",
        value: "N",
        default: "0, sized at start and grown at run time",
        help: "initial hash table size as a power of two, 12-32; it must exceed the item lock \
               table's, which grows with -t",
        honoured: true,
        apply: |t, v| {
            let v = needed(v, "Missing numeric argument for hashpower")?;
            let n = integer(v).ok_or_else(|| invalid_sub("hashpower", v))?;
            if n < 12 {
                return Err(format!("Initial hashtable multiplier of {n} is too low"));
            }
            if n > 32 {
                return Err(format!(
                    "Initial hashtable multiplier of {n} is too high. \
                     Choose a value based on \"STAT hash_power_level\" from a running instance"
                ));
            }
            t.hashpower = n as u8;
            Ok(())
        },
    },
    SubOption {
        name: "idle_timeout",
        value: "N",
        default: "0, no timeout",
        help: "close connections idle for N seconds",
        honoured: true,
        apply: |t, v| {
            let v = needed(v, "Missing numeric argument for idle_timeout")?;
            t.idle_timeout = sub_number("idle_timeout", v)?;
            Ok(())
        },
    },
    SubOption {
        name: "modern",
        value: "",
        default: "",
        help: "options which will be default in future: currently nothing",
        honoured: true,
        apply: |_, _| Ok(()),
    },
    SubOption {
        name: "no_modern",
        value: "",
        default: "",
        help: "defaults of memcached 1.4: no_maxconns_fast, no_slab_reassign, slab_automove=0, \
               no_lru_crawler, no_lru_maintainer, hash_algorithm=jenkins, 1m slab_chunk_max",
        honoured: true,
        apply: |t, _| {
            t.no_modern = true;
            t.maxconns_fast = false;
            t.slab_reassign = false;
            t.slab_automove = 0;
            t.lru_crawler = false;
            t.hash_algorithm = "jenkins";
            t.lru_maintainer = false;
            t.lru_segmented = false;
            Ok(())
        },
    },
    SubOption {
        name: "slab_reassign",
        value: "",
        default: "on",
        help: "allow slab pages to move between classes",
        honoured: false,
        apply: |t, _| {
            t.slab_reassign = true;
            Ok(())
        },
    },
    SubOption {
        name: "no_slab_reassign",
        value: "",
        default: "",
        help: "keep slab pages in their class",
        honoured: false,
        apply: |t, _| {
            t.slab_reassign = false;
            Ok(())
        },
    },
    SubOption {
        name: "slab_automove",
        value: "N",
        default: "1",
        help: "how eagerly slab pages move, 0-2",
        honoured: false,
        apply: |t, v| {
            let Some(v) = v else {
                t.slab_automove = 1;
                return Ok(());
            };
            let n = integer(v).ok_or_else(|| invalid_sub("slab_automove", v))?;
            if !(0..=2).contains(&n) {
                return Err("slab_automove must be between 0 and 2".into());
            }
            t.slab_automove = n as u8;
            Ok(())
        },
    },
    SubOption {
        name: "no_slab_automove",
        value: "",
        default: "",
        help: "slab_automove=0",
        honoured: false,
        apply: |t, _| {
            t.slab_automove = 0;
            Ok(())
        },
    },
    SubOption {
        name: "slab_automove_ratio",
        value: "R",
        default: "0.80",
        help: "slab automover's ratio, over 0 and under 1",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing slab_automove_ratio argument")?;
            match v.parse::<f64>() {
                Ok(r) if r > 0.0 && r < 1.0 => {
                    t.slab_automove_ratio = r;
                    Ok(())
                }
                _ => Err("slab_automove_ratio must be > 0 and < 1".into()),
            }
        },
    },
    SubOption {
        name: "slab_automove_window",
        value: "N",
        default: "30",
        help: "slab automover's window, over 2",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing slab_automove_window argument")?;
            match unsigned(v).and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 2 => {
                    t.slab_automove_window = n;
                    Ok(())
                }
                _ => Err("slab_automove_window must be > 2".into()),
            }
        },
    },
    SubOption {
        name: "slab_chunk_max",
        value: "N",
        default: "524288",
        help: "largest slab chunk in bytes; must divide 1048576 (the slab page) and -I",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing slab_chunk_max argument")?;
            match unsigned(v) {
                Some(n) if n > 0 => {
                    t.slab_chunk_max_given = Some(n);
                    Ok(())
                }
                _ => Err("could not parse argument to slab_chunk_max".into()),
            }
        },
    },
    SubOption {
        name: "lru_crawler",
        value: "",
        default: "on",
        help: "run the LRU crawler",
        honoured: false,
        apply: |t, _| {
            t.lru_crawler = true;
            Ok(())
        },
    },
    SubOption {
        name: "no_lru_crawler",
        value: "",
        default: "",
        help: "do not run the LRU crawler",
        honoured: false,
        apply: |t, _| {
            t.lru_crawler = false;
            Ok(())
        },
    },
    SubOption {
        name: "lru_crawler_sleep",
        value: "N",
        default: "100",
        help: "microseconds to sleep between items, 0-1000000",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing lru_crawler_sleep value")?;
            let n = integer(v).ok_or_else(|| invalid_sub("lru_crawler_sleep", v))?;
            if !(0..=1_000_000).contains(&n) {
                return Err("LRU crawler sleep must be between 0 and 1 second".into());
            }
            t.lru_crawler_sleep = n as u32;
            Ok(())
        },
    },
    SubOption {
        name: "lru_crawler_tocrawl",
        value: "N",
        default: "0, unlimited",
        help: "max items to crawl per slab per run",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing lru_crawler_tocrawl value")?;
            t.lru_crawler_tocrawl = unsigned(v)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("lru_crawler_tocrawl takes a numeric 32bit value")?;
            Ok(())
        },
    },
    SubOption {
        name: "lru_maintainer",
        value: "",
        default: "on",
        help: "run the segmented LRU and its background maintainer",
        honoured: false,
        apply: |t, _| {
            t.lru_maintainer = true;
            t.lru_segmented = true;
            Ok(())
        },
    },
    SubOption {
        name: "no_lru_maintainer",
        value: "",
        default: "",
        help: "a plain LRU, no maintainer",
        honoured: false,
        apply: |t, _| {
            t.lru_maintainer = false;
            t.lru_segmented = false;
            Ok(())
        },
    },
    SubOption {
        name: "hot_lru_pct",
        value: "N",
        default: "20",
        help: "percent of slab memory for the hot LRU, 1-79; hot plus warm at most 80",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing hot_lru_pct argument")?;
            t.hot_lru_pct = lru_pct(v).ok_or("hot_lru_pct must be > 1 and < 80")?;
            Ok(())
        },
    },
    SubOption {
        name: "warm_lru_pct",
        value: "N",
        default: "40",
        help: "percent of slab memory for the warm LRU, 1-79",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing warm_lru_pct argument")?;
            t.warm_lru_pct = lru_pct(v).ok_or("warm_lru_pct must be > 1 and < 80")?;
            Ok(())
        },
    },
    SubOption {
        name: "hot_max_factor",
        value: "F",
        default: "0.20",
        help: "items idle longer than the cold LRU's age times F leave the hot LRU",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing hot_max_factor argument")?;
            t.hot_max_factor = positive_factor(v).ok_or("hot_max_factor must be > 0")?;
            Ok(())
        },
    },
    SubOption {
        name: "warm_max_factor",
        value: "F",
        default: "2.00",
        help: "items idle longer than the cold LRU's age times F leave the warm LRU",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing warm_max_factor argument")?;
            t.warm_max_factor = positive_factor(v).ok_or("warm_max_factor must be > 0")?;
            Ok(())
        },
    },
    SubOption {
        name: "temporary_ttl",
        value: "N",
        default: "61",
        help: "items with a TTL under N seconds get their own LRU (needs lru_maintainer)",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing temporary_ttl argument")?;
            t.temporary_ttl = sub_number("temporary_ttl", v)?;
            t.temp_lru = true;
            Ok(())
        },
    },
    SubOption {
        name: "tail_repair_time",
        value: "N",
        default: "0, off",
        help: "seconds before a stuck LRU tail item is forcefully freed, at least 10",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing numeric argument for tail_repair_time")?;
            let n = integer(v).ok_or_else(|| invalid_sub("tail_repair_time", v))?;
            if n < 10 {
                return Err("Cannot set tail_repair_time to less than 10 seconds".into());
            }
            t.tail_repair_time = u32::try_from(n).map_err(|_| invalid_sub("tail_repair_time", v))?;
            Ok(())
        },
    },
    SubOption {
        name: "hash_algorithm",
        value: "NAME",
        default: "murmur3",
        help: "the hash table's hash: jenkins, murmur3 or xxh3",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing hash_algorithm argument")?;
            t.hash_algorithm = match v {
                "jenkins" => "jenkins",
                "murmur3" => "murmur3",
                "xxh3" => "xxh3",
                _ => return Err("Unknown hash_algorithm option (jenkins, murmur3, xxh3)".into()),
            };
            Ok(())
        },
    },
    SubOption {
        name: "track_sizes",
        value: "",
        default: "off",
        help: "keep the item size histogram for stats sizes",
        honoured: false,
        apply: |t, _| {
            t.track_sizes = true;
            Ok(())
        },
    },
    SubOption {
        name: "no_hashexpand",
        value: "",
        default: "",
        help: "never grow the hash table",
        honoured: false,
        apply: |t, _| {
            t.hash_expand = false;
            Ok(())
        },
    },
    SubOption {
        name: "read_buf_mem_limit",
        value: "N",
        default: "0, unlimited",
        help: "megabytes for connection read and response buffers",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing read_buf_mem_limit argument")?;
            t.read_buf_mem_limit = unsigned(v)
                .and_then(|n| n.checked_mul(MIB as u64))
                .ok_or("could not parse argument to read_buf_mem_limit")?;
            Ok(())
        },
    },
    SubOption {
        name: "worker_logbuf_size",
        value: "N",
        default: "64",
        help: "kilobytes of log buffer per worker thread; as memcached, 48 to slab_chunk_max \
               (it also reads the value as a slab class size)",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing worker_logbuf_size argument")?;
            let n = unsigned(v).filter(|n| *n <= u64::MAX / 1024);
            let n = n.ok_or("could not parse argument to worker_logbuf_size")?;
            t.worker_logbuf_size = n * 1024;
            t.worker_logbuf_given = Some(n);
            Ok(())
        },
    },
    SubOption {
        name: "watcher_logbuf_size",
        value: "N",
        default: "256",
        help: "kilobytes of write buffer per log watcher",
        honoured: false,
        apply: |t, v| {
            let v = needed(v, "Missing watcher_logbuf_size argument")?;
            t.watcher_logbuf_size = unsigned(v)
                .and_then(|n| n.checked_mul(1024))
                .ok_or("could not parse argument to watcher_logbuf_size")?;
            Ok(())
        },
    },
];

/// An LRU percentage as memcached allows it: 1..=79.
fn lru_pct(value: &str) -> Option<u32> {
    unsigned(value).and_then(|n| u32::try_from(n).ok()).filter(|n| (1..80).contains(n))
}

fn positive_factor(value: &str) -> Option<f64> {
    value.parse::<f64>().ok().filter(|f| f.is_finite() && *f > 0.0)
}

#[cfg(test)]
mod tests {
    use super::{parse, usage, Action, Protocol, Settings, VERSION};

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    fn run(line: &str) -> Settings {
        match parse(&args(line)) {
            Ok(Action::Run(settings)) => *settings,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn refused(line: &str) -> (String, i32) {
        match parse(&args(line)) {
            Err(refusal) => (refusal.line, refusal.status),
            Ok(action) => panic!("{line} was accepted: {action:?}"),
        }
    }

    fn printed(line: &str) -> String {
        match parse(&args(line)) {
            Ok(Action::Print(text)) => text,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn stat(settings: &Settings, name: &str) -> String {
        let stats = settings.stats_settings();
        stats.into_iter().find(|(n, _)| *n == name).map(|(_, v)| v).unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn defaults_are_memcacheds() {
        let s = run("");
        assert_eq!(s.port, 11211);
        assert_eq!(s.udp_port, 0);
        assert_eq!(s.socket_path, None);
        assert_eq!(s.socket_mask, 0o700);
        assert!(s.listen.is_empty());
        assert!(!s.daemonize && !s.max_core && !s.no_evict && !s.lock_memory && !s.large_pages);
        assert_eq!(s.user, None);
        assert_eq!(s.memory_limit, 64 << 20);
        assert_eq!(s.max_conns, 1024);
        assert_eq!(s.verbose, 0);
        assert_eq!(s.pid_file, None);
        assert_eq!(s.growth_factor, 1.25);
        assert_eq!(s.chunk_size, 48);
        assert_eq!(s.prefix_delimiter, b':');
        assert!(!s.detail_enabled);
        assert_eq!(s.threads, 4);
        assert_eq!(s.reqs_per_event, 20);
        assert!(s.use_cas && s.flush_enabled && s.maxconns_fast);
        assert_eq!(s.backlog, 1024);
        assert_eq!(s.protocol, Protocol::Auto);
        assert_eq!(s.item_size_max, 1 << 20);
        assert_eq!(s.idle_timeout, 0);
        assert_eq!(s.hash_power, 0);
        assert!(s.extended.is_empty());
    }

    #[test]
    fn default_matches_an_empty_command_line() {
        let a = format!("{:?}", run(""));
        let b = format!("{:?}", Settings::default());
        assert_eq!(a, b);
    }

    #[test]
    fn stats_settings_defaults_match_memcached_1_6_18() {
        // From `stats settings` of memcached 1.6.18 started with -p 11211 -U 0, up to
        // inline_ascii_response; ext_*, ssl_*, num_napi_ids and memory_file are omitted.
        let expected = "maxbytes 67108864|maxconns 1024|tcpport 11211|udpport 0|inter NULL|verbosity 0|\
            oldest 0|evictions on|domain_socket NULL|umask 700|shutdown_command no|growth_factor 1.25|\
            chunk_size 48|num_threads 4|num_threads_per_udp 4|stat_key_prefix :|detail_enabled no|\
            reqs_per_event 20|cas_enabled yes|tcp_backlog 1024|binding_protocol auto-negotiate|\
            auth_enabled_sasl no|auth_enabled_ascii no|item_size_max 1048576|maxconns_fast yes|\
            hashpower_init 0|slab_reassign yes|slab_automove 1|slab_automove_ratio 0.80|\
            slab_automove_window 30|slab_chunk_max 524288|lru_crawler yes|lru_crawler_sleep 100|\
            lru_crawler_tocrawl 0|tail_repair_time 0|flush_enabled yes|dump_enabled yes|\
            hash_algorithm murmur3|lru_maintainer_thread yes|lru_segmented yes|hot_lru_pct 20|\
            warm_lru_pct 40|hot_max_factor 0.20|warm_max_factor 2.00|temp_lru no|temporary_ttl 61|\
            idle_timeout 0|watcher_logbuf_size 262144|worker_logbuf_size 65536|read_buf_mem_limit 0|\
            track_sizes no|inline_ascii_response no";
        let got: Vec<String> = run("").stats_settings().iter().map(|(n, v)| format!("{n} {v}")).collect();
        assert_eq!(got.join("|"), expected);
    }

    #[test]
    fn each_flag_sets_its_field() {
        let s = run("-p 23001 -U 0 -l 127.0.0.1 -d -r -u nobody -m 128 -M -c 50 -k -P /tmp/x.pid \
                     -f 1.5 -n 64 -L -D # -t 8 -R 5 -C -b 10 -B ascii -I 2m -F");
        assert_eq!(s.port, 23001);
        assert_eq!(s.listen, vec!["127.0.0.1"]);
        assert!(s.daemonize && s.max_core && s.no_evict && s.lock_memory && s.large_pages);
        assert_eq!(s.user.as_deref(), Some("nobody"));
        assert_eq!(s.memory_limit, 128 << 20);
        assert_eq!(s.max_conns, 50);
        assert_eq!(s.pid_file.as_deref(), Some(std::path::Path::new("/tmp/x.pid")));
        assert_eq!(s.growth_factor, 1.5);
        assert_eq!(s.chunk_size, 64);
        assert_eq!(s.prefix_delimiter, b'#');
        assert!(s.detail_enabled);
        assert_eq!(s.threads, 8);
        assert_eq!(s.reqs_per_event, 5);
        assert!(!s.use_cas && !s.flush_enabled);
        assert_eq!(s.backlog, 10);
        assert_eq!(s.protocol, Protocol::Ascii);
        assert_eq!(s.item_size_max, 2 << 20);
        assert_eq!(stat(&s, "binding_protocol"), "ascii");
        assert_eq!(stat(&s, "evictions"), "off");
        assert_eq!(stat(&s, "stat_key_prefix"), "#");
    }

    #[test]
    fn long_names_work_with_equals_and_apart() {
        let s = run("--port=23002 --memory-limit 32 --conn-limit=7 --threads=2 --listen=::1 \
                     --max-item-size=512k --protocol=auto --disable-cas --verbose");
        assert_eq!((s.port, s.memory_limit, s.max_conns, s.threads), (23002, 32 << 20, 7, 2));
        assert_eq!(s.listen, vec!["::1"]);
        assert_eq!(s.item_size_max, 512 << 10);
        assert!(!s.use_cas);
        assert_eq!(s.verbose, 1);
    }

    #[test]
    fn unix_socket_disables_tcp_and_takes_an_octal_mask() {
        let s = run("-s /tmp/mc.sock -a 755 -p 23003");
        assert_eq!(s.port, 0);
        assert_eq!(s.socket_mask, 0o755);
        assert_eq!(stat(&s, "umask"), "755");
        assert_eq!(stat(&s, "domain_socket"), "/tmp/mc.sock");
    }

    #[test]
    fn item_size_suffixes_in_either_case() {
        assert_eq!(run("-I 1M").item_size_max, 1 << 20);
        assert_eq!(run("-I 1m").item_size_max, 1 << 20);
        assert_eq!(run("-I 1536k").item_size_max, 1536 << 10);
        assert_eq!(run("-I 1536K").item_size_max, 1536 << 10);
        assert_eq!(run("-I 2097152").item_size_max, 2 << 20);
        assert_eq!(run("-o slab_chunk_max=1024 -I 1k").item_size_max, 1024);
        assert_eq!(run("-m 2048 -I 1024m").item_size_max, 1 << 30);
    }

    #[test]
    fn listen_lists_and_repeats_accumulate() {
        let s = run("-l 127.0.0.1,127.0.0.2:23004 -l [::1]:23005 -l localhost, -l [fe80::1]");
        assert_eq!(s.listen, vec!["127.0.0.1", "127.0.0.2:23004", "[::1]:23005", "localhost", "[fe80::1]"]);
        assert_eq!(stat(&s, "inter"), "127.0.0.1,127.0.0.2:23004,[::1]:23005,localhost,[fe80::1]");
    }

    #[test]
    fn verbosity_counts_every_form() {
        assert_eq!(run("-v").verbose, 1);
        assert_eq!(run("-vv").verbose, 2);
        assert_eq!(run("-vvv").verbose, 3);
        assert_eq!(run("-v -v").verbose, 2);
        assert_eq!(run("-v --verbose -v").verbose, 3);
        assert_eq!(run("-vvvv -v").verbose, 3);
    }

    #[test]
    fn sub_options_are_honoured_and_recorded() {
        let s = run("-o idle_timeout=5,hashpower=16,no_maxconns_fast -o hot_lru_pct=10,track_sizes");
        assert_eq!(s.idle_timeout, 5);
        assert_eq!(s.hash_power, 16);
        assert!(!s.maxconns_fast);
        assert_eq!(s.extended[0], ("idle_timeout".to_string(), "5".to_string()));
        assert_eq!(s.extended[3], ("hot_lru_pct".to_string(), "10".to_string()));
        assert_eq!(stat(&s, "idle_timeout"), "5");
        assert_eq!(stat(&s, "hashpower_init"), "16");
        assert_eq!(stat(&s, "maxconns_fast"), "no");
        assert_eq!(stat(&s, "hot_lru_pct"), "10");
        assert_eq!(stat(&s, "track_sizes"), "yes");
        assert!(run("-o no_maxconns_fast,maxconns_fast").maxconns_fast);
    }

    #[test]
    fn sub_options_show_as_memcached_shows_them() {
        let s = run("-o slab_chunk_max=16384,read_buf_mem_limit=5,worker_logbuf_size=128,temporary_ttl=30");
        assert_eq!(stat(&s, "slab_chunk_max"), "16384");
        assert_eq!(stat(&s, "read_buf_mem_limit"), "5242880");
        assert_eq!(stat(&s, "worker_logbuf_size"), "131072");
        assert_eq!((stat(&s, "temp_lru").as_str(), stat(&s, "temporary_ttl").as_str()), ("yes", "30"));
        let s = run("-o slab_automove=2,hot_max_factor=0.5,hash_algorithm=xxh3,no_lru_crawler");
        assert_eq!(stat(&s, "slab_automove"), "2");
        assert_eq!(stat(&s, "hot_max_factor"), "0.50");
        assert_eq!(stat(&s, "hash_algorithm"), "xxh3");
        assert_eq!(stat(&s, "lru_crawler"), "no");
    }

    #[test]
    fn no_modern_is_applied_in_order_like_memcached() {
        let s = run("-o slab_automove=2,no_modern,lru_crawler -I 2m");
        assert!(!s.maxconns_fast);
        for (name, value) in [
            ("slab_reassign", "no"),
            ("slab_automove", "0"),
            ("slab_chunk_max", "1048576"),
            ("lru_crawler", "yes"),
            ("hash_algorithm", "jenkins"),
            ("lru_maintainer_thread", "no"),
            ("lru_segmented", "no"),
        ] {
            assert_eq!(stat(&s, name), value, "{name}");
        }
        let s = run("-o no_modern,slab_chunk_max=16384");
        assert_eq!(stat(&s, "slab_chunk_max"), "16384");
        assert!(run("-o no_modern,maxconns_fast").maxconns_fast);
        assert_eq!(
            refused("-o no_modern -I 512k").0,
            "slab_chunk_max (bytes: 1048576) cannot be larger than -I (item_size_max 524288)"
        );
    }

    #[test]
    fn refusals_use_memcacheds_words_and_status() {
        let cases: &[(&str, &str, i32)] = &[
            ("-p 70000", "ERROR: Invalid port number 70000. (-p 70000)", 64),
            ("-c 0", "Maximum connections must be greater than 0 (-c 0)", 1),
            ("-t 0", "Number of threads must be greater than 0 (-t 0)", 1),
            ("-f 1", "Factor must be greater than 1 (-f 1)", 1),
            ("-f 0.5", "Factor must be greater than 1 (-f 0.5)", 1),
            ("-n 0", "Chunk size must be greater than 0 (-n 0)", 1),
            ("-R 0", "Number of requests per event must be greater than 0 (-R 0)", 1),
            ("-I 512", "Item max size cannot be less than 1024 bytes. (-I 512)", 64),
            ("-I 1k", "slab_chunk_max (bytes: 524288) cannot be larger than -I (item_size_max 1024)", 64),
            ("-I 600k", "-I (item_size_max: 614400) must be evenly divisible by slab_chunk_max (bytes: 524288)", 64),
            ("-I 100000000000", "Cannot set item size limit higher than 1/2 of memory max. (-I 100000000000, -m 64)", 64),
            ("-I 1025m -m 8192", "Cannot set item size limit higher than a gigabyte. (-I 1074790400)", 64),
            ("-m 1", "Cannot set item size limit higher than 1/2 of memory max. (-I 1048576, -m 1)", 64),
            ("-B foo", "Invalid value for binding protocol: foo -- should be one of auto, binary, or ascii (-B foo)", 64),
            ("-o nosuch", "Illegal suboption \"nosuch\"", 1),
            ("-o noexist=1", "Illegal suboption \"noexist=1\"", 1),
            ("-o idle_timeout=5,,hashpower=16", "Illegal suboption \"\"", 1),
            ("-o hashpower=11", "Initial hashtable multiplier of 11 is too low (-o hashpower=11)", 1),
            ("-o hashpower", "Missing numeric argument for hashpower", 1),
            ("-o idle_timeout", "Missing numeric argument for idle_timeout", 1),
            ("-o slab_automove=3", "slab_automove must be between 0 and 2", 1),
            ("-o hot_lru_pct=80", "hot_lru_pct must be > 1 and < 80", 1),
            ("-o hot_lru_pct=50,warm_lru_pct=50", "hot_lru_pct + warm_lru_pct cannot be more than 80% combined", 64),
            ("-o temporary_ttl=10,no_lru_maintainer", "temporary_ttl requires lru_maintainer to be enabled", 64),
            ("-o tail_repair_time=9", "Cannot set tail_repair_time to less than 10 seconds", 1),
            ("-o hash_algorithm=foo", "Unknown hash_algorithm option (jenkins, murmur3, xxh3)", 1),
            ("-o lru_crawler_sleep=1000001", "LRU crawler sleep must be between 0 and 1 second (-o lru_crawler_sleep=1000001)", 1),
            ("-o lru_crawler_tocrawl=x", "lru_crawler_tocrawl takes a numeric 32bit value", 1),
            ("-o read_buf_mem_limit=-1", "could not parse argument to read_buf_mem_limit", 1),
            ("-o hot_max_factor=0", "hot_max_factor must be > 0", 1),
            ("-o slab_chunk_max=3", "-I (item_size_max: 1048576) must be evenly divisible by slab_chunk_max (bytes: 3)", 64),
            ("-o slab_chunk_max=2097152 -I 2m", "slab_chunk_max (bytes: 2097152) must divide evenly into 1048576 (slab_page_size)", 64),
            ("-o worker_logbuf_size=1", "slab size 1 is out of valid range (-o worker_logbuf_size=1)", 64),
            ("-z", "memcachedrep: invalid option -- 'z'", 1),
            ("--nosuch", "memcachedrep: unrecognized option '--nosuch'", 1),
            ("-p", "memcachedrep: option requires an argument -- 'p'", 1),
            ("--port", "memcachedrep: option '--port' requires an argument", 1),
            ("-l 127.0.0.1:abc", "Invalid port number: \"abc\" (-l 127.0.0.1:abc)", 71),
            ("-l [::1", "Invalid IPV6 address: \"[::1\" (-l [::1)", 71),
        ];
        for (line, message, status) in cases {
            assert_eq!(refused(line), (message.to_string(), *status), "{line}");
        }
    }

    #[test]
    fn hashpower_must_exceed_the_item_lock_table() {
        assert_eq!(run("-o hashpower=12 -t 3").hash_power, 12);
        assert_eq!(run("-t 10 -o hashpower=14").hash_power, 14);
        let (line, status) = refused("-o hashpower=12");
        let words = "Hash table power size (12) cannot be equal to or less than item lock table (12).";
        assert!(line.starts_with(words), "{line}");
        assert_eq!(status, 1);
        assert!(refused("-o hashpower=15 -t 21").0.contains("item lock table (15)"));
        assert!(refused("-o hashpower=33").0.starts_with("Initial hashtable multiplier of 33 is too high."));
    }

    #[test]
    fn values_memcached_would_misread_are_refused_naming_the_flag() {
        let cases: &[(&str, &str, i32)] = &[
            ("-m abc", "Invalid value for -m (--memory-limit): \"abc\"", 64),
            ("-m -1", "Invalid value for -m (--memory-limit): \"-1\"", 64),
            ("-m 64k", "Invalid value for -m (--memory-limit): \"64k\"", 64),
            ("-I 2g", "Invalid value for -I (--max-item-size): \"2g\"", 64),
            ("-I 1.5m", "Invalid value for -I (--max-item-size): \"1.5m\"", 64),
            ("-D ab", "Invalid value for -D: \"ab\"", 1),
            ("-b x", "Invalid value for -b (--listen-backlog): \"x\"", 64),
            ("-a 999", "Invalid value for -a (--unix-mask): \"999\"", 64),
            ("-c abc", "Invalid value for -c (--conn-limit): \"abc\"", 1),
            ("-p abc", "Invalid value for -p (--port): \"abc\"", 64),
            ("-f nan", "Invalid value for -f (--slab-growth-factor): \"nan\"", 1),
            ("-o idle_timeout=x", "Invalid value for -o idle_timeout: \"x\"", 1),
            ("-o hashpower=16=3", "Invalid value for -o hashpower: \"16=3\"", 1),
        ];
        for (line, message, status) in cases {
            assert_eq!(refused(line), (message.to_string(), *status), "{line}");
        }
    }

    #[test]
    fn unsupported_features_are_refused_plainly() {
        assert_eq!(refused("-U 11211"), ("UDP is not served yet: only -U 0 is accepted (-U 11211)".into(), 64));
        assert_eq!(refused("-B binary").0, "the binary protocol is not served yet: use ascii or auto (-B binary)");
        assert_eq!(refused("-o ext_path=/tmp/x:64m").0, "-o ext_path: extstore (external storage) is not supported");
        assert_eq!(refused("-o ssl_key=x").0, "-o ssl_key: TLS is not supported");
        assert_eq!(refused("-A"), ("memcachedrep: -A (--enable-shutdown) is not supported".into(), 1));
        assert_eq!(refused("--enable-sasl").0, "memcachedrep: -S (--enable-sasl) is not supported");
        assert_eq!(refused("-t 1000").0, "Number of threads must be at most 256 (-t 1000)");
        assert_eq!(refused("-p 1 extra").0, "memcachedrep: unexpected argument \"extra\"");
        assert_eq!(run("-U 0 -B auto").udp_port, 0);
    }

    #[test]
    fn print_flags_act_when_met() {
        assert_eq!(printed("-V"), format!("memcachedrep {VERSION}\n"));
        assert_eq!(printed("--version -p 70000"), format!("memcachedrep {VERSION}\n"));
        assert_eq!(printed("-h"), usage());
        assert!(printed("-i").contains("BSD 3-Clause"));
        assert!(parse(&args("-c 0 -V")).is_err());
        assert_eq!(printed("-V -c 0"), format!("memcachedrep {VERSION}\n"));
    }

    #[test]
    fn usage_lists_every_flag_and_sub_option() {
        let text = usage();
        for flag in super::FLAGS {
            assert!(text.lines().any(|l| l.starts_with(&format!("-{}", flag.short))), "-{}", flag.short);
            if !flag.long.is_empty() {
                assert!(text.contains(&format!("--{}", flag.long)), "--{}", flag.long);
            }
        }
        for sub in super::SUB_OPTIONS {
            assert!(text.lines().any(|l| l.get(5..).is_some_and(|r| r.starts_with(sub.name))), "{}", sub.name);
        }
        assert!(text.lines().all(|l| l.len() <= super::WIDTH), "a line is too wide");
        assert!(text.contains("(default: 11211)"));
    }

    #[test]
    fn every_sub_option_in_the_table_is_accepted() {
        for sub in super::SUB_OPTIONS {
            let value = match sub.value {
                "" => String::new(),
                "F" | "R" => "=0.5".into(),
                "NAME" => "=jenkins".into(),
                _ if sub.name == "hashpower" => "=20".into(),
                _ if sub.name == "slab_automove" => "=2".into(),
                _ if sub.name == "slab_chunk_max" => "=1024".into(),
                _ if sub.name == "worker_logbuf_size" => "=64".into(),
                _ => "=10".into(),
            };
            run(&format!("-o {}{value}", sub.name));
        }
    }
}
