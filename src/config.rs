//! The one flag table: every command-line flag with its default and help line, parsed with
//! getopts into `Settings`, printed by `-h`, and echoed by `stats settings`.
//!
//! CONTRACT (fixed by the skeleton): the `Settings` fields below and `parse`/`usage`/
//! `stats_settings` signatures.

use std::path::PathBuf;

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

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    Run(Box<Settings>),
    /// `-h`, `-V`, `-i`: print this to stdout and exit 0.
    Print(String),
}

/// Parses the arguments (without the program name). An error is the one line memcached would
/// print to stderr before exiting non-zero.
pub fn parse(args: &[String]) -> Result<Action, String> {
    let _ = args;
    todo!()
}

/// `-h`'s text, from the flag table.
pub fn usage() -> String {
    todo!()
}

impl Settings {
    /// `stats settings` lines (name, value) in memcached's order and with its names.
    pub fn stats_settings(&self) -> Vec<(&'static str, String)> {
        todo!()
    }
}
