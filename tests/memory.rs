//! Memory limits as a client sees them: `-m` eviction under load, `-M` refusing stores,
//! expired items reclaimed before live ones are evicted, and the `-I` item size limit.
//!
//! Each load is bounded (a few times the memory limit) and runs on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{show, wait_until, Client, Server};

/// Fixed allowance over `-m` for the process's own memory (code, thread stacks, hash table,
/// buffers). memcached 1.6.18 measures about 6 MiB over a 16 MiB limit.
const RSS_OVERHEAD_KIB: u64 = 30 * 1024;

/// A numeric `stats` value.
fn stat(client: &mut Client, group: &str, name: &str) -> u64 {
    let value = client.stat(group, name);
    value.parse().unwrap_or_else(|_| panic!("stat {name} is not a number: {value:?}"))
}

/// Sends a `set` and returns the one-line answer (which may be a refusal).
fn try_set(client: &mut Client, key: &str, exptime: i64, value: &[u8]) -> String {
    let mut req = format!("set {key} 0 {exptime} {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n");
    client.send(&req);
    client.line()
}

/// A value whose bytes say which key it belongs to, so a mix-up cannot pass.
fn value_for(key: &str, len: usize) -> Vec<u8> {
    key.bytes().chain(std::iter::once(b'=')).cycle().take(len).collect()
}

#[test]
fn over_the_memory_limit_old_items_are_evicted_and_memory_stays_bounded() {
    let limit_mib = 16u64;
    let server = Server::start(&["-m", &limit_mib.to_string()]);
    let per_thread = (4 * limit_mib as usize) << 20 >> 1;
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let mut c = server.connect();
            std::thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                let (mut written, mut i) = (0usize, 0usize);
                while written < per_thread {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let len = 1000 + (seed >> 33) as usize % 9001;
                    let key = format!("load{t}:{i}");
                    c.set(&key, 0, 0, &value_for(&key, len));
                    written += len;
                    i += 1;
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }

    // The last keys of each writer are not checked: the other writer may still have written
    // megabytes after them. A burst written after the load must all be there.
    let mut c = server.connect();
    let recent: Vec<(String, usize)> = (0..20).map(|i| (format!("recent:{i}"), 1000 + i * 450)).collect();
    for (key, len) in &recent {
        c.set(key, 0, 0, &value_for(key, *len));
    }
    let limit = limit_mib << 20;
    let evictions = stat(&mut c, "", "evictions");
    let bytes = stat(&mut c, "", "bytes");
    let malloced = stat(&mut c, "slabs", "total_malloced");
    let rss = server.rss_kib();
    eprintln!("-m {limit_mib}: evictions {evictions}, bytes {bytes}, total_malloced {malloced}, RSS {rss} KiB");
    assert!(evictions > 0, "writing 4x the limit evicts");
    assert!(bytes <= limit, "bytes {bytes} over the limit {limit}");
    assert!(malloced <= limit, "total_malloced {malloced} over the limit {limit}");
    assert!(rss <= (limit >> 10) + RSS_OVERHEAD_KIB, "RSS {rss} KiB over the limit plus {RSS_OVERHEAD_KIB} KiB");
    for (key, len) in &recent {
        assert_eq!(c.get(key), Some(value_for(key, *len)), "recently written {key}");
    }
}

#[test]
fn with_no_eviction_a_full_cache_refuses_stores_and_keeps_its_items() {
    let server = Server::start(&["-m", "16", "-M"]);
    let mut c = server.connect();
    let mut stored = 0;
    let refusal = loop {
        let key = format!("full:{stored}");
        let answer = try_set(&mut c, &key, 0, &value_for(&key, 4000));
        if answer != "STORED\r\n" {
            break answer;
        }
        stored += 1;
        // 16 MiB holds at most ~4200 values of 4000 bytes; far past that, -M is not honoured.
        assert!(stored < 10_000, "no refusal after {stored} stores into 16 MiB");
    };
    eprintln!("-M -m 16: {stored} items of 4000 bytes before the refusal");
    assert_eq!(refusal, "SERVER_ERROR out of memory storing object\r\n");
    assert!(c.cmd("version").starts_with("VERSION "), "the connection goes on after the refusal");
    for i in 0..stored {
        let key = format!("full:{i}");
        assert_eq!(c.get(&key), Some(value_for(&key, 4000)), "{key} intact");
    }
    assert_eq!(stat(&mut c, "", "evictions"), 0);
}

#[test]
fn expired_items_are_reclaimed_before_live_ones_are_evicted() {
    let server = Server::start(&["-m", "16"]);
    let mut c = server.connect();
    let live = 20;
    for i in 0..live {
        let key = format!("live:{i}");
        c.set(&key, 0, 0, &value_for(&key, 4000));
    }
    // 12 MB of 2-second items: most of the 16 MiB, without evicting anything yet.
    let short = 3000;
    for i in 0..short {
        let key = format!("short:{i}");
        c.set(&key, 0, 2, &value_for(&key, 4000));
    }
    assert_eq!(stat(&mut c, "", "evictions"), 0, "the short-lived items fit");
    let last = format!("short:{}", short - 1);
    wait_until("the short-lived items to expire", Duration::from_secs(10), || c.get(&last).is_none());
    // memcached's clock ticks once a second and its eviction path treats an item as expired
    // only a tick after `get` does; wait for that tick too (a clock condition, polled).
    let expired_at = Instant::now();
    wait_until("one more clock tick", Duration::from_secs(5), || expired_at.elapsed() >= Duration::from_millis(1100));

    // Another 12 MB: it fits only in the space of the expired items.
    for i in 0..short {
        let key = format!("new:{i}");
        c.set(&key, 0, 0, &value_for(&key, 4000));
    }
    let reclaimed = stat(&mut c, "", "reclaimed");
    let evictions = stat(&mut c, "", "evictions");
    eprintln!("after expiry: reclaimed {reclaimed}, evictions {evictions}");
    assert!(reclaimed > 0, "expired items were reused");
    // Evicting live items instead would take ~2300 of them. memcached does evict the 20
    // oldest live items (they sit at its LRU tail, past its short search for expired ones),
    // so their survival is not asserted: only that at most those went.
    assert!(evictions <= live, "{evictions} live items evicted while expired ones were there");
    for i in 0..short {
        let key = format!("new:{i}");
        assert_eq!(c.get(&key), Some(value_for(&key, 4000)), "{key}");
    }
}

#[test]
fn with_a_2k_item_limit_a_3000_byte_set_is_refused_and_swallowed() {
    // Both refuse an -I below the slab chunk size, so it comes down with it.
    let server = Server::start(&["-I", "2k", "-o", "slab_chunk_max=2048"]);
    let mut c = server.connect();
    let mut req = b"set big 0 0 3000\r\n".to_vec();
    req.extend_from_slice(&[b'z'; 3000]);
    req.extend_from_slice(b"\r\nget big\r\nversion\r\n");
    c.send(&req);
    assert_eq!(c.line(), "SERVER_ERROR object too large for cache\r\n");
    assert_eq!(c.line(), "END\r\n", "the refused value is not stored, its bytes are swallowed");
    assert!(c.line().starts_with("VERSION "));
    c.set("small", 0, 0, &[b's'; 1000]);
    assert_eq!(c.get("small"), Some(vec![b's'; 1000]));
}

#[test]
fn with_a_2m_item_limit_a_one_and_a_half_megabyte_value_round_trips() {
    let server = Server::start(&["-I", "2m"]);
    let mut c = server.connect();
    let value = value_for("huge", 1_500_000);
    c.set("huge", 3, 0, &value);
    c.send(b"get huge\r\n");
    assert_eq!(c.line(), "VALUE huge 3 1500000\r\n");
    let body = c.read_exact(1_500_002);
    assert!(body[..1_500_000] == value[..], "value differs");
    assert_eq!(show(&body[1_500_000..]), "\r\n");
    assert_eq!(c.line(), "END\r\n");
}

/// Issue 10's stall: four clients filling the cache past -m with values of two size classes.
/// A store that met another handler's lock on the memory it could evict answered
/// `SERVER_ERROR out of memory`, which memtier_benchmark does not expect, so its connection
/// stopped. memcached evicts; every set here must be STORED.
#[test]
fn clients_racing_past_the_memory_limit_all_get_stored() {
    let server = Server::start(&["-m", "8", "-t", "2"]);
    const PER_CLIENT: usize = 60_000;
    const BATCH: usize = 100;
    let writers: Vec<_> = (0..4usize)
        .map(|t| {
            let mut c = server.connect();
            std::thread::spawn(move || {
                for start in (0..PER_CLIENT).step_by(BATCH) {
                    let mut req = Vec::new();
                    for i in start..start + BATCH {
                        let key = format!("race{t}:{i}");
                        let len = 90 + (i * 7 + t * 13) % 40;
                        req.extend_from_slice(format!("set {key} 0 0 {len}\r\n").as_bytes());
                        req.extend_from_slice(&value_for(&key, len));
                        req.extend_from_slice(b"\r\n");
                    }
                    c.send(&req);
                    for i in start..start + BATCH {
                        assert_eq!(c.line(), "STORED\r\n", "client {t}, set {i}");
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let mut c = server.connect();
    assert!(stat(&mut c, "", "evictions") > 0, "the load went past -m");
    assert_eq!(stat(&mut c, "", "store_no_memory"), 0);
}
