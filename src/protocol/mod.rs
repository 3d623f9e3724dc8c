//! Protocols: bytes in -> `Request`, and a `Request` carried out against the cache -> bytes
//! out. Parsing knows nothing of storage or sockets; `execute` is the one adapter that maps a
//! request onto the cache's facade. The protocol sits above storage, stats and config and
//! below the server and the replication: it reaches the replication that `stats` reports on
//! only through `stats::ReplicationReport`, and sends incr/decr to it only through
//! `storage::replica::DeltaRouter`.
//!
//! The way in: `text::parse` (text and meta lines; meta commands go on to `meta::parse`)
//! and `execute::execute`, which hands meta requests to `meta::execute`; the binary protocol
//! (`binary::handle`) parses and executes in one step. Below them all: `tokens` (splitting a
//! line), `ops` (counting outcomes, routing incr/decr, flush times) and `crate::decimal`.

pub mod binary;
pub mod execute;
pub mod meta;
mod ops;
mod stats_reply;
pub mod text;
mod tokens;

use crate::config::Settings;
use crate::stats::{ConnRegistry, ReplicationReport, Stats};
use crate::storage::replica::DeltaRouter;
use crate::storage::{Cache, StoreMode};
use tokens::Tokens;

/// Everything a command may read or change besides its connection.
pub struct Context<'a> {
    pub cache: &'a Cache,
    pub stats: &'a Stats,
    pub settings: &'a Settings,
    pub conns: &'a ConnRegistry,
    /// The node's replication, for `stats` (None: a context without one, as in unit tests).
    pub replication: Option<&'a dyn ReplicationReport>,
    /// Where incr/decr run (None: always here).
    pub deltas: Option<&'a dyn DeltaRouter>,
}

/// Limits the parser enforces before any data is read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest key (250).
    pub max_key: usize,
}

/// One client command, borrowing keys and data from the connection's read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// get, gets, gat, gats: `touch` is the exptime given to gat/gats.
    Get {
        keys: Keys<'a>,
        cas: bool,
        touch: Option<i64>,
    },
    /// set/add/replace/append/prepend/cas with its data block (without the "\r\n").
    Store {
        mode: StoreMode,
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        data: &'a [u8],
        noreply: bool,
    },
    /// A store whose data would not fit `item_size_max`: the data is swallowed, the answer is
    /// `SERVER_ERROR object too large for cache`, and a `set` unlinks the old item.
    StoreTooLarge {
        mode: StoreMode,
        key: &'a [u8],
        noreply: bool,
    },
    Delete {
        key: &'a [u8],
        noreply: bool,
    },
    Incr {
        key: &'a [u8],
        amount: u64,
        noreply: bool,
    },
    Decr {
        key: &'a [u8],
        amount: u64,
        noreply: bool,
    },
    Touch {
        key: &'a [u8],
        exptime: i64,
        noreply: bool,
    },
    FlushAll {
        delay: i64,
        noreply: bool,
    },
    /// flush_all with a delay that is not a number: "CLIENT_ERROR invalid exptime argument",
    /// or the -F refusal when flush_all is disabled (memcached checks that first).
    FlushAllBadDelay {
        noreply: bool,
    },
    /// `stats` with its arguments (empty for plain `stats`).
    Stats {
        args: Vec<&'a [u8]>,
    },
    Version,
    Verbosity {
        level: u32,
        noreply: bool,
    },
    Quit,
    /// `lru_crawler metadump`: a line of metadata for each live item of the slab classes in
    /// `classes` (bit N: class N; all bits: `all` or `hash`).
    Metadump {
        classes: u64,
    },
    /// mg, ms, md, ma.
    Meta(meta::MetaRequest<'a>),
    /// mn: answers "MN".
    MetaNoop,
}

/// The keys of a get: the rest of its command line, split into keys as they are used, so
/// that a get allocates nothing for them (the parser has checked every key's length).
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    list: &'a [u8],
}

impl<'a> Keys<'a> {
    /// The keys in order.
    fn iter(&self) -> Tokens<'a> {
        Tokens::new(self.list)
    }

    /// The keys after the first `n`: what is left of a get that stopped part-way.
    pub fn after(&self, n: usize) -> Keys<'a> {
        let mut tokens = self.iter();
        tokens.by_ref().take(n).for_each(drop);
        Keys { list: tokens.rest() }
    }

    pub fn first(&self) -> Option<&'a [u8]> {
        self.iter().next()
    }

    pub fn last(&self) -> Option<&'a [u8]> {
        let end = self.list.iter().rposition(|&b| b != b' ')? + 1;
        let start = self.list[..end].iter().rposition(|&b| b == b' ').map_or(0, |space| space + 1);
        Some(&self.list[start..end])
    }
}

/// Two key lists are equal when they hold the same keys, however they are spaced.
impl PartialEq for Keys<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Keys<'_> {}

/// The parser's verdict on the front of the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// No complete command yet: read more. (A line too long to ever be a command comes back as
    /// `Invalid` with `close` set, so the buffer stays bounded.)
    Incomplete,
    /// A command, and how many bytes of the buffer it used.
    Command { request: Request<'a>, consumed: usize, swallow: usize },
    /// A bad command: answer `reply` (a whole line without "\r\n", e.g.
    /// "CLIENT_ERROR bad command line format"; empty: no answer), drop `consumed` bytes, then discard `swallow`
    /// more bytes as they arrive; close the connection afterwards when `close` is set.
    Invalid { reply: &'static str, consumed: usize, swallow: usize, close: bool },
}

impl Parsed<'_> {
    /// A bad command answered with one line (empty: none), dropping `consumed` bytes.
    fn invalid(reply: &'static str, consumed: usize) -> Self {
        Parsed::Invalid { reply, consumed, swallow: 0, close: false }
    }
}

/// A multi-key get hands its answer so far to the connection (`spill`, or
/// `execute::GetSink::offer`) whenever it holds this much and keys are left, so that one command
/// cannot hold many values in memory at once.
pub const SPILL_AT: usize = 256 * 1024;

/// What the connection does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Close,
}
