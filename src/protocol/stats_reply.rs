//! The `stats` command families, written as memcached 1.6.18 writes them: the same names in
//! the same order. Fields tied to machinery we do not have and that no common tool reads
//! (libevent, response objects, read buffers, the LRU crawler and maintainer threads, slab
//! rebalancing, the log watchers, NAPI) are left out; fields that tools and exporters expect
//! print what is true of ours: no authentication is configured, so `auth_*` are 0; one LRU per
//! class is memcached's "cold" segment, so nothing is hot or warm, no crawler reclaims, every
//! reclaim is direct and every hit is a hit to cold.
//! Reads the counters, the cache's figures, the settings and the replication's snapshot
//! (`stats::ReplicationReport`); changes nothing but `stats reset` and `stats detail on|off`.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::Ordering;

use super::Context;
use crate::config;
use crate::stats::Counter;
use crate::storage::clock;

/// `repcached_version`: this release (repcached printed its own, e.g. 2.3.1).
const REPCACHED_VERSION: &str = concat!("memcachedrep-", env!("CARGO_PKG_VERSION"));

/// Answers `stats <args>`: `args` are the tokens after "stats".
pub fn write(args: &[&[u8]], ctx: &Context, out: &mut Vec<u8>) {
    match args.first().copied() {
        None => general(ctx, out),
        Some(b"settings") => {
            for (name, value) in ctx.settings.stats_settings() {
                stat(out, name, value);
            }
        }
        Some(b"items") => items(ctx, out),
        Some(b"slabs") => slabs(ctx, out),
        Some(b"sizes") => stat(out, "sizes_status", "disabled"),
        Some(b"conns") => conns(ctx, out),
        Some(b"replication") => replication(ctx, out),
        Some(b"reset") => {
            ctx.stats.reset();
            ctx.cache.reset_stats();
            out.extend_from_slice(b"RESET\r\n");
            return;
        }
        Some(b"detail") => {
            detail(args.get(1).copied(), ctx, out);
            return;
        }
        Some(_) => {
            out.extend_from_slice(b"ERROR\r\n");
            return;
        }
    }
    out.extend_from_slice(b"END\r\n");
}

/// One "STAT <name> <value>" line. Writing to a Vec cannot fail.
fn stat(out: &mut Vec<u8>, name: impl Display, value: impl Display) {
    let _ = write!(out, "STAT {name} {value}\r\n");
}

/// CPU seconds as memcached prints them: seconds, a dot, six digits of microseconds.
fn seconds(secs: f64) -> String {
    let micros = (secs.max(0.0) * 1e6).round() as u64;
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

fn general(ctx: &Context, out: &mut Vec<u8>) {
    let now = clock::now();
    let stats = ctx.stats;
    let cache = ctx.cache.stats();
    let (user, system) = crate::daemon::cpu_times();
    stat(out, "pid", std::process::id());
    stat(out, "uptime", now.saturating_sub(stats.started));
    stat(out, "time", now);
    stat(out, "version", config::VERSION);
    stat(out, "pointer_size", usize::BITS);
    stat(out, "rusage_user", seconds(user));
    stat(out, "rusage_system", seconds(system));
    stat(out, "max_connections", ctx.settings.max_conns);
    stat(out, "curr_connections", stats.curr_connections_shown());
    counters(ctx, out, &[Counter::TotalConnections, Counter::RejectedConnections]);
    stat(out, "connection_structures", stats.connection_structures_shown());
    // memcached 1.6.18 counts only me in cmd_meta.
    counters(ctx, out, &[Counter::CmdGet, Counter::CmdSet, Counter::CmdFlush, Counter::CmdTouch, Counter::CmdMeta]);
    counters(
        ctx,
        out,
        &[
            Counter::GetHits,
            Counter::GetMisses,
            Counter::GetExpired,
            Counter::GetFlushed,
            Counter::DeleteMisses,
            Counter::DeleteHits,
            Counter::IncrMisses,
            Counter::IncrHits,
            Counter::DecrMisses,
            Counter::DecrHits,
            Counter::CasMisses,
            Counter::CasHits,
            Counter::CasBadval,
            Counter::TouchHits,
            Counter::TouchMisses,
        ],
    );
    stat(out, "store_too_large", cache.store_too_large + stats.get(Counter::StoreTooLarge));
    stat(out, "store_no_memory", cache.store_no_memory);
    stat(out, "auth_cmds", 0);
    stat(out, "auth_errors", 0);
    counters(ctx, out, &[Counter::BytesRead, Counter::BytesWritten]);
    stat(out, "limit_maxbytes", cache.limit_maxbytes);
    let listen_disabled = stats.listen_disabled_num.load(Ordering::Relaxed);
    let curr = stats.curr_connections.load(Ordering::Relaxed);
    // Without maxconns_fast the listener pauses while the server is full.
    let accepting = ctx.settings.maxconns_fast || curr < ctx.settings.max_conns as u64;
    stat(out, "accepting_conns", u8::from(accepting));
    stat(out, "listen_disabled_num", listen_disabled);
    stat(out, "threads", ctx.settings.threads);
    counters(ctx, out, &[Counter::ConnYields]);
    replication_words(ctx, out);
    stat(out, "hash_power_level", cache.hash_power_level);
    stat(out, "hash_bytes", cache.hash_bytes);
    stat(out, "hash_is_expanding", u8::from(cache.hash_is_expanding));
    stat(out, "bytes", cache.bytes);
    stat(out, "curr_items", cache.curr_items);
    stat(out, "total_items", cache.total_items);
    stat(out, "slab_global_page_pool", cache.slab_global_page_pool);
    stat(out, "expired_unfetched", cache.expired_unfetched);
    stat(out, "evicted_unfetched", cache.evicted_unfetched);
    stat(out, "evicted_active", cache.evicted_active);
    stat(out, "evictions", cache.evictions);
    stat(out, "reclaimed", cache.reclaimed);
}

/// repcached's three fields, where its `stats` printed them (after the connection and thread
/// figures, before the item figures); printed with or without a peer, as repcached does.
fn replication_words(ctx: &Context, out: &mut Vec<u8>) {
    let (role, free) = match ctx.replication.map(|replication| replication.status()) {
        Some(status) => (status.role(), status.queue_free),
        None => ("NONE", ctx.settings.repl_queue as u64),
    };
    stat(out, "replication", role);
    stat(out, "repcached_version", REPCACHED_VERSION);
    stat(out, "repcached_qi_free", free);
}

/// `stats replication`: the link's state and figures.
fn replication(ctx: &Context, out: &mut Vec<u8>) {
    let Some(status) = ctx.replication.map(|replication| replication.status()) else {
        stat(out, "state", "down");
        return;
    };
    stat(out, "state", status.state.name());
    stat(out, "peer", if status.peer.is_empty() { "none" } else { &status.peer });
    stat(out, "queue_depth", status.queue_depth);
    stat(out, "queue_free", status.queue_free);
    stat(out, "items_sent", status.items_sent);
    stat(out, "bytes_sent", status.bytes_sent);
    stat(out, "items_received", status.items_received);
    stat(out, "bytes_received", status.bytes_received);
    stat(out, "full_syncs", status.full_syncs);
    stat(out, "partial_syncs", status.partial_syncs);
    stat(out, "reconnects", status.reconnects);
    stat(out, "refused", status.refused);
    stat(out, "deltas_forwarded", status.deltas_forwarded);
    stat(out, "delta_fallbacks", status.delta_fallbacks);
    stat(out, "queue_overflows", status.queue_overflows);
    stat(out, "lag_seconds", format!("{:.3}", status.lag_seconds));
}

fn counters(ctx: &Context, out: &mut Vec<u8>, list: &[Counter]) {
    for &counter in list {
        stat(out, counter.name(), ctx.stats.get(counter));
    }
}

/// `stats items`: classes holding items. Ours is one LRU per class, so every item is "cold"
/// in memcached's segmented terms and nothing is hot or warm.
fn items(ctx: &Context, out: &mut Vec<u8>) {
    for class in ctx.cache.slab_stats().iter().filter(|c| c.number > 0) {
        let id = class.id;
        let fields: [(&str, u64); 28] = [
            ("number", class.number),
            ("number_hot", 0),
            ("number_warm", 0),
            ("number_cold", class.number),
            ("age_hot", 0),
            ("age_warm", 0),
            ("age", class.age),
            ("mem_requested", class.mem_requested),
            ("evicted", class.evicted),
            ("evicted_nonzero", class.evicted_nonzero),
            ("evicted_time", class.evicted_time),
            ("outofmemory", class.outofmemory),
            ("tailrepairs", 0),
            ("reclaimed", class.reclaimed),
            ("expired_unfetched", class.expired_unfetched),
            ("evicted_unfetched", class.evicted_unfetched),
            ("evicted_active", class.evicted_active),
            ("crawler_reclaimed", 0),
            ("crawler_items_checked", 0),
            ("lrutail_reflocked", 0),
            ("moves_to_cold", 0),
            ("moves_to_warm", 0),
            ("moves_within_lru", 0),
            ("direct_reclaims", class.evicted + class.reclaimed),
            ("hits_to_hot", 0),
            ("hits_to_warm", 0),
            ("hits_to_cold", class.get_hits),
            ("hits_to_temp", 0),
        ];
        for (name, value) in fields {
            stat(out, format_args!("items:{id}:{name}"), value);
        }
    }
}

fn slabs(ctx: &Context, out: &mut Vec<u8>) {
    let classes = ctx.cache.slab_stats();
    for class in &classes {
        let id = class.id;
        let fields: [(&str, u64); 15] = [
            ("chunk_size", class.chunk_size),
            ("chunks_per_page", class.chunks_per_page),
            ("total_pages", class.total_pages),
            ("total_chunks", class.total_chunks),
            ("used_chunks", class.used_chunks),
            ("free_chunks", class.free_chunks),
            ("free_chunks_end", class.free_chunks_end),
            ("get_hits", class.get_hits),
            ("cmd_set", class.cmd_set),
            ("delete_hits", class.delete_hits),
            ("incr_hits", class.incr_hits),
            ("decr_hits", class.decr_hits),
            ("cas_hits", class.cas_hits),
            ("cas_badval", class.cas_badval),
            ("touch_hits", class.touch_hits),
        ];
        for (name, value) in fields {
            stat(out, format_args!("{id}:{name}"), value);
        }
    }
    stat(out, "active_slabs", classes.len());
    stat(out, "total_malloced", ctx.cache.stats().total_malloced);
}

fn conns(ctx: &Context, out: &mut Vec<u8>) {
    let now = clock::now();
    for (fd, record) in ctx.conns.snapshot() {
        if record.udp {
            // memcached's own odd line for a UDP connection.
            stat(out, format_args!("{fd}:UDP"), "UDP");
        }
        stat(out, format_args!("{fd}:addr"), &record.addr);
        if !record.listen_addr.is_empty() {
            stat(out, format_args!("{fd}:listen_addr"), &record.listen_addr);
        }
        stat(out, format_args!("{fd}:state"), record.state().name());
        stat(out, format_args!("{fd}:secs_since_last_cmd"), now.saturating_sub(record.last_cmd()));
    }
}

/// `stats detail on|off|dump`: per-prefix counts of get, hit, set and delete.
fn detail(arg: Option<&[u8]>, ctx: &Context, out: &mut Vec<u8>) {
    match arg {
        Some(b"on") => {
            ctx.stats.set_detail(true);
            out.extend_from_slice(b"OK\r\n");
        }
        Some(b"off") => {
            ctx.stats.set_detail(false);
            out.extend_from_slice(b"OK\r\n");
        }
        Some(b"dump") => {
            for (prefix, c) in ctx.stats.prefix_counts() {
                out.extend_from_slice(b"PREFIX ");
                out.extend_from_slice(&prefix);
                let _ = write!(out, " get {} hit {} set {} del {}\r\n", c.gets, c.hits, c.sets, c.deletes);
            }
            out.extend_from_slice(b"END\r\n");
        }
        _ => out.extend_from_slice(b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn cpu_seconds_print_like_memcached() {
        assert_eq!(seconds(0.0), "0.000000");
        assert_eq!(seconds(0.123968), "0.123968");
        assert_eq!(seconds(12.5), "12.500000");
    }
}
