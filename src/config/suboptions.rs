//! `-o`: the sub-option table (name, `-h` row, how its value is read) and the `Tunables` it
//! fills, with memcached's defaults and its words for refused values, and replication's
//! `repl_*` sub-options. Only a few sub-options change what this server does; the rest are
//! checked and shown by `stats settings`. Each is read on its own: checks of one against
//! another, or against a flag, belong to `finish` in the parent module.

use super::values::{check_peer, integer, unsigned};
use super::{KIB, MIB, SLAB_PAGE_SIZE};

/// The `-o` settings, with memcached's defaults (and ours for replication's). Only
/// `maxconns_fast`, `hashpower`, `idle_timeout` and the `repl_*` ones change what this server
/// does; the rest are checked and shown.
#[derive(Debug, Clone)]
pub(super) struct Tunables {
    pub(super) maxconns_fast: bool,
    pub(super) hashpower: u8,
    pub(super) idle_timeout: u32,
    pub(super) slab_reassign: bool,
    pub(super) slab_automove: u8,
    pub(super) slab_automove_ratio: f64,
    pub(super) slab_automove_window: u32,
    /// Given explicitly; otherwise half a slab page, or a whole one after `no_modern`.
    slab_chunk_max_given: Option<u64>,
    no_modern: bool,
    pub(super) lru_crawler: bool,
    pub(super) lru_crawler_sleep: u32,
    pub(super) lru_crawler_tocrawl: u32,
    pub(super) tail_repair_time: u32,
    pub(super) hash_algorithm: &'static str,
    pub(super) lru_maintainer: bool,
    pub(super) lru_segmented: bool,
    pub(super) hot_lru_pct: u32,
    pub(super) warm_lru_pct: u32,
    pub(super) hot_max_factor: f64,
    pub(super) warm_max_factor: f64,
    pub(super) temp_lru: bool,
    pub(super) temporary_ttl: u32,
    pub(super) watcher_logbuf_size: u64,
    pub(super) worker_logbuf_size: u64,
    /// The value given, in kilobytes, for memcached's second reading of it (see `finish`).
    pub(super) worker_logbuf_given: Option<u64>,
    pub(super) read_buf_mem_limit: u64,
    pub(super) track_sizes: bool,
    hash_expand: bool,
    pub(super) repl_join_wait: u32,
    pub(super) repl_drain_timeout: u32,
    pub(super) repl_tombstone_ttl: u32,
    pub(super) repcached_link: Option<String>,
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
            repl_join_wait: 5,
            repl_drain_timeout: 30,
            repl_tombstone_ttl: 3600,
            repcached_link: None,
        }
    }
}

impl Tunables {
    pub(super) fn slab_chunk_max(&self) -> u64 {
        match self.slab_chunk_max_given {
            Some(bytes) => bytes,
            None if self.no_modern => SLAB_PAGE_SIZE,
            None => SLAB_PAGE_SIZE / 2,
        }
    }

    /// Applies one sub-option; an error is the whole stderr line.
    pub(super) fn apply(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
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
pub(super) struct SubOption {
    pub(super) name: &'static str,
    /// The value's placeholder; empty when it takes none (a value given anyway is ignored, as
    /// memcached does).
    pub(super) value: &'static str,
    pub(super) default: &'static str,
    pub(super) help: &'static str,
    /// Whether it changes what this server does (others are only checked and shown).
    pub(super) honoured: bool,
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

pub(super) const SUB_OPTIONS: &[SubOption] = &[
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
        name: "repl_join_wait",
        value: "N",
        default: "5",
        help: "seconds a starting node waits for a -x peer that does not answer; a peer that \
               refuses the connection (not running) or a node alone on its -X port serves at \
               once, a peer's copy under way is always waited for",
        honoured: true,
        apply: |t, v| {
            let v = needed(v, "Missing numeric argument for repl_join_wait")?;
            t.repl_join_wait = sub_number("repl_join_wait", v)?;
            Ok(())
        },
    },
    SubOption {
        name: "repl_drain_timeout",
        value: "N",
        default: "30",
        help: "seconds a stopping node (SIGTERM, SIGINT) keeps delivering its queue to the peer \
               before it exits; 0: exit at once",
        honoured: true,
        apply: |t, v| {
            let v = needed(v, "Missing numeric argument for repl_drain_timeout")?;
            t.repl_drain_timeout = sub_number("repl_drain_timeout", v)?;
            Ok(())
        },
    },
    SubOption {
        name: "repl_tombstone_ttl",
        value: "N",
        default: "3600",
        help: "seconds a delete is remembered, so that merging after a split does not bring the \
               item back; 0: deletes are not remembered, and those made during a split may \
               come back",
        honoured: true,
        apply: |t, v| {
            let v = needed(v, "Missing numeric argument for repl_tombstone_ttl")?;
            t.repl_tombstone_ttl = sub_number("repl_tombstone_ttl", v)?;
            Ok(())
        },
    },
    SubOption {
        name: "repcached_link",
        value: "HOST[:N]",
        default: "",
        help: "pair with the repcached 2.2/2.3 node at HOST over repcached's own link (N: its -X \
               port, 11212 if not given; this node listens on N too): take its copy before \
               serving, then send and apply every change",
        honoured: true,
        apply: |t, v| {
            let v = needed(v, "Missing argument for repcached_link")?;
            check_peer(v).map_err(|_| invalid_sub("repcached_link", v))?;
            t.repcached_link = Some(v.to_string());
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
            t.lru_crawler_tocrawl =
                unsigned(v).and_then(|n| u32::try_from(n).ok()).ok_or("lru_crawler_tocrawl takes a numeric 32bit value")?;
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
            t.read_buf_mem_limit =
                unsigned(v).and_then(|n| n.checked_mul(MIB as u64)).ok_or("could not parse argument to read_buf_mem_limit")?;
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
            t.watcher_logbuf_size =
                unsigned(v).and_then(|n| n.checked_mul(1024)).ok_or("could not parse argument to watcher_logbuf_size")?;
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
