//! The flag table: every command-line flag with its getopts spelling, `-h` row, the exit status
//! memcached uses when it refuses the flag's value, and what the flag does to the `Draft`; the
//! `-l` and `-x` address checks (numbers are read by `values`); `-h`, `-V` and `-i` texts;
//! getopt's own complaints. It reads values one flag at a time: checks across flags belong to
//! `finish` in the parent module.

use std::path::PathBuf;

use super::suboptions::SUB_OPTIONS;
use super::values::{check_peer, integer, size, unsigned};
use super::{refuse, Bad, Draft, Port, Protocol, Refusal, EX_OSERR, EX_USAGE, FAILURE, MIB, VERSION};

/// Handler threads beyond this are refused. memcached, with its default `-c 1024`, fails to
/// start somewhere between 200 and 300 worker threads (each needs file descriptors); every
/// handler serves many connections, so more than this would be memory spent for nothing.
const MAX_THREADS: i64 = 256;

/// The largest `-q`: 16 Mi queued keys, which at the longest keys is gigabytes already; a
/// larger backlog is better caught up from the table.
const MAX_QUEUE: i64 = 1 << 24;

/// What a flag does when given.
pub(super) enum Apply {
    /// `-h`, `-V`, `-i`: print this and exit, as soon as it is met (memcached ignores the
    /// flags after it).
    Print(fn() -> String),
    Switch(fn(&mut Draft)),
    Value(fn(&mut Draft, &str) -> Result<(), Bad>),
    /// `-vv`, `-vvv`: rows of `-h` only; getopts counts them as repeated `-v`.
    HelpOnly,
}

/// One row of the flag table.
pub(super) struct Flag {
    /// One letter for getopts; longer for the help-only rows.
    pub(super) short: &'static str,
    /// memcached's long name, without `--`; empty when it has none.
    pub(super) long: &'static str,
    /// The argument's placeholder in `-h`; empty for a switch.
    pub(super) arg: &'static str,
    /// As printed after "default: "; empty when there is none to print.
    default: &'static str,
    pub(super) help: &'static str,
    /// memcached's exit status when it refuses this flag's value.
    pub(super) status: i32,
    pub(super) apply: Apply,
}

pub(super) const FLAGS: &[Flag] = &[
    Flag {
        short: "p",
        long: "port",
        arg: "<num>",
        default: "11211",
        help: "TCP port to listen on; 0: none, -1: any free port",
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
        help: "UDP port to listen on; -1: any free port",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            d.s.udp_port = integer(v).and_then(Port::from_arg).ok_or(Bad::Malformed)?;
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
    Flag { short: "h", long: "help", arg: "", default: "", help: "print this help and exit", status: FAILURE, apply: Apply::Print(usage) },
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
        help: "number of handler threads (1-256); each serves many connections, as memcached's \
               worker threads do",
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
        help: "maximum number of requests per event; a connection that sends more at once \
               yields to the others between turns (conn_yields)",
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
        help: "protocol: ascii, binary, or auto (each connection's first byte chooses)",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            d.s.protocol = match v {
                "auto" => Protocol::Auto,
                "ascii" => Protocol::Ascii,
                "binary" => Protocol::Binary,
                _ => return Err(Bad::Words(format!("Invalid value for binding protocol: {v} -- should be one of auto, binary, or ascii"))),
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
        short: "x",
        long: "peer",
        arg: "<host[:port]>",
        default: "",
        help: "the peer node to replicate with: a host name, an IPv4 address or [ipv6], and \
               :port if its replication port is not -X's; without -x the node runs alone",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            check_peer(v)?;
            d.s.peer = Some(v.to_string());
            Ok(())
        }),
    },
    Flag {
        short: "X",
        long: "replication-port",
        arg: "<num>",
        default: "11212",
        help: "TCP port for replication, bound on the -l addresses (all interfaces without -l); \
               only the -x peer may connect. Not memcached's -X (disable dumping), which is not \
               supported",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            let port = integer(v).ok_or(Bad::Malformed)?;
            d.s.repl_port = u16::try_from(port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| Bad::Words("Replication port must be between 1 and 65535".into()))?;
            Ok(())
        }),
    },
    Flag {
        short: "q",
        long: "queue-size",
        arg: "<num>",
        default: "8192",
        help: "mutations queued for the peer (1-16777216); past it none is lost: the node catches \
               the peer up from its table instead, and counts it in stats replication",
        status: EX_USAGE,
        apply: Apply::Value(|d, v| {
            let n = integer(v).ok_or(Bad::Malformed)?;
            if !(1..=MAX_QUEUE).contains(&n) {
                return Err(Bad::Words(format!("Queue size must be between 1 and {MAX_QUEUE}")));
            }
            d.s.repl_queue = usize::try_from(n).map_err(|_| Bad::Malformed)?;
            Ok(())
        }),
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
    ("W", "disable-watch"),
    ("Y", "auth-file"),
    ("e", "memory-file"),
    ("Z", "enable-ssl"),
    ("N", "napi-ids"),
];

/// `-h`'s text, from the flag table.
pub(super) fn usage() -> String {
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
pub(super) const WIDTH: usize = 79;

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

/// One `-l` entry: `host`, `host:port`, `[ipv6]` or `[ipv6]:port`; a bare IPv6 address (two or
/// more colons) has no port. Names are resolved at start-up, not here.
fn check_listen(entry: &str) -> Result<(), String> {
    match listen_port_text(entry)? {
        None => Ok(()),
        Some(port) => match unsigned(port) {
            Some(p) if p <= 65535 => Ok(()),
            _ => Err(format!("Invalid port number: \"{port}\"")),
        },
    }
}

/// The port a checked `-l` entry names, if it names one.
pub(super) fn listen_port(entry: &str) -> Option<u16> {
    listen_port_text(entry).ok().flatten().and_then(|p| p.parse().ok())
}

/// The port text of an `-l` entry (None: no port), or why the entry is malformed.
fn listen_port_text(entry: &str) -> Result<Option<&str>, String> {
    let bad_v6 = || format!("Invalid IPV6 address: \"{entry}\"");
    if let Some(rest) = entry.strip_prefix('[') {
        let (_, after) = rest.split_once(']').ok_or_else(bad_v6)?;
        if after.is_empty() {
            return Ok(None);
        }
        after.strip_prefix(':').map(Some).ok_or_else(bad_v6)
    } else if entry.matches(':').count() == 1 {
        Ok(entry.split_once(':').map(|(_, port)| port))
    } else {
        Ok(None)
    }
}

/// getopt's complaints, worded as glibc's getopt words them for memcached.
pub(super) fn getopt_refusal(fail: getopts::Fail) -> Refusal {
    let dashes = |name: &str| if name.chars().count() == 1 { format!("-{name}") } else { format!("--{name}") };
    let line = match fail {
        getopts::Fail::UnrecognizedOption(name) => match UNSUPPORTED.iter().find(|(short, long)| *short == name || *long == name) {
            Some((short, long)) => format!("memcachedrep: -{short} (--{long}) is not supported"),
            None if name.chars().count() == 1 => format!("memcachedrep: invalid option -- '{name}'"),
            None => format!("memcachedrep: unrecognized option '--{name}'"),
        },
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
