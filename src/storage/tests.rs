//! Unit tests of the cache facade: memcached's store semantics, expiry, flush, counters,
//! eviction and concurrency. Uses only the public facade plus a few private views.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::{
    clock, Cache, CacheConfig, DeleteOutcome, DeltaOp, DeltaOutcome, Lookup, StoreMode, StoreOptions, StoreOutcome, KEY_MAX_LENGTH,
};

fn config(memory_limit: usize) -> CacheConfig {
    CacheConfig::test(memory_limit)
}

/// A loop count for a test, cut a hundredfold under Miri (which runs some thousand times slower)
/// so that the storage tests run there in minutes while their threads still meet.
pub(super) fn scaled(n: usize) -> usize {
    if cfg!(miri) {
        (n / 100).max(1)
    } else {
        n
    }
}

fn cache() -> Cache {
    Cache::new(&config(64 << 20)).unwrap()
}

fn set(c: &Cache, key: &[u8], value: &[u8]) -> StoreOutcome {
    c.store(StoreMode::Set, key, 0, 0, value)
}

/// value, flags, cas, exptime
type Seen = (Vec<u8>, u32, u64, u32);

fn get(c: &Cache, key: &[u8]) -> (Lookup, Option<Seen>) {
    c.get(key, None, |it| (it.value.to_vec(), it.flags, it.cas, it.exptime))
}

fn value(c: &Cache, key: &[u8]) -> Option<Vec<u8>> {
    get(c, key).1.map(|v| v.0)
}

fn cas(c: &Cache, key: &[u8]) -> u64 {
    get(c, key).1.map(|v| v.2).unwrap_or(0)
}

#[test]
fn set_then_get_returns_value_flags_and_a_new_cas() {
    let c = cache();
    assert_eq!(c.store(StoreMode::Set, b"k", 42, 0, b"hello"), StoreOutcome::Stored);
    let (found, item) = get(&c, b"k");
    assert_eq!(found, Lookup::Hit);
    let (v, flags, first_cas, exptime) = item.unwrap();
    assert_eq!((v.as_slice(), flags, exptime), (&b"hello"[..], 42, 0));
    assert_ne!(first_cas, 0);
    set(&c, b"k", b"again");
    assert!(cas(&c, b"k") > first_cas);
    assert_eq!(get(&c, b"missing").0, Lookup::Miss);
    let s = c.stats();
    assert_eq!((s.curr_items, s.total_items), (1, 2));
    assert_eq!(s.bytes, (super::item::HEADER + 1 + 5) as u64);
}

#[test]
fn get_reports_the_fetch_and_access_before_it() {
    let c = cache();
    let stored_at = clock::now();
    set(&c, b"k", b"v");
    let (_, first) = c.get(b"k", None, |it| (it.fetched, it.last_access));
    let (_, second) = c.get(b"k", None, |it| (it.fetched, it.last_access));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(!first.0 && second.0, "fetched only after the first get");
    assert!(first.1 >= stored_at && second.1 >= first.1 && second.1 <= clock::now());
}

#[test]
fn an_unbumped_get_leaves_the_fetched_mark() {
    let c = cache();
    set(&c, b"k", b"v");
    assert_eq!(c.get_unbumped(b"k", None, |it| it.fetched), (Lookup::Hit, Some(false)));
    assert_eq!(c.get_unbumped(b"k", None, |it| it.fetched), (Lookup::Hit, Some(false)));
    get(&c, b"k");
    assert_eq!(c.get_unbumped(b"k", None, |it| it.fetched), (Lookup::Hit, Some(true)));
}

#[test]
fn store_with_cas_gives_the_stored_items_unique() {
    let c = cache();
    let (outcome, unique) = c.store_with(StoreMode::Set, b"k", 0, 0, b"v", StoreOptions::default());
    assert_eq!((outcome, unique), (StoreOutcome::Stored, cas(&c, b"k")));
    assert_ne!(unique, 0);
    assert_eq!(c.store_with(StoreMode::Add, b"k", 0, 0, b"w", StoreOptions::default()), (StoreOutcome::NotStored, 0));
}

#[test]
fn cas_checks_on_delete_delta_and_append_are_atomic_with_the_change() {
    let c = cache();
    set(&c, b"d", b"1");
    let unique = cas(&c, b"d");
    assert_eq!(c.delete(b"d", Some(unique + 1)), DeleteOutcome::Exists);
    assert_eq!(c.delete(b"d", Some(unique)), DeleteOutcome::Done);
    assert_eq!(c.delete(b"d", Some(unique)), DeleteOutcome::NotFound);

    set(&c, b"n", b"5");
    let unique = cas(&c, b"n");
    assert_eq!(c.delta(b"n", DeltaOp::Incr, 1, Some(unique + 1)), (DeltaOutcome::Exists, 0));
    let (outcome, after) = c.delta(b"n", DeltaOp::Incr, 1, Some(unique));
    assert_eq!((outcome, after), (DeltaOutcome::Value(6), cas(&c, b"n")));
    assert!(after > unique);
    assert_eq!(c.delta(b"nx", DeltaOp::Incr, 1, Some(after)), (DeltaOutcome::NotFound, 0));

    let append =
        |cas_given| c.store_with(StoreMode::Append, b"n", 0, 0, b"0", StoreOptions { cas: Some(cas_given), ..StoreOptions::default() });
    assert_eq!(append(after + 1), (StoreOutcome::Exists, 0));
    let (outcome, unique) = append(after);
    assert_eq!((outcome, value(&c, b"n")), (StoreOutcome::Stored, Some(b"60".to_vec())));
    assert_eq!(unique, cas(&c, b"n"));
    let missing = StoreOptions { cas: Some(unique), ..StoreOptions::default() };
    assert_eq!(c.store_with(StoreMode::Prepend, b"nx", 0, 0, b"0", missing), (StoreOutcome::NotStored, 0));
}

#[test]
fn racing_cas_appends_never_both_win_with_the_same_cas() {
    let c = Arc::new(cache());
    set(&c, b"log", b"");
    let winners: Vec<Vec<u64>> = (0..4)
        .map(|_| {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let mut won = Vec::new();
                for _ in 0..scaled(2000) {
                    let seen = cas(&c, b"log");
                    let opts = StoreOptions { cas: Some(seen), ..StoreOptions::default() };
                    if c.store_with(StoreMode::Append, b"log", 0, 0, b"x", opts).0 == StoreOutcome::Stored {
                        won.push(seen);
                    }
                }
                won
            })
        })
        .map(|t| t.join().unwrap())
        .collect();
    let mut all: Vec<u64> = winners.concat();
    let wins = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), wins, "one cas, one winner");
    assert_eq!(value(&c, b"log").map(|v| v.len()), Some(wins));
}

#[test]
fn an_invalidating_cas_older_than_the_items_stores_a_stale_copy() {
    let c = cache();
    let until = clock::now() + 500;
    c.store(StoreMode::Set, b"k", 1, until, b"v1");
    let current = cas(&c, b"k");
    let invalidating = StoreOptions { invalidate: true, ..StoreOptions::default() };
    // A newer (or unknown) cas is still refused; an older one stores, keeping the expiry.
    assert_eq!(c.store_with(StoreMode::Cas(current + 1), b"k", 2, 0, b"v2", invalidating).0, StoreOutcome::Exists);
    assert_eq!(c.store_with(StoreMode::Cas(1), b"nx", 2, 0, b"v2", invalidating).0, StoreOutcome::NotFound);
    let (outcome, unique) = c.store_with(StoreMode::Cas(current - 1), b"k", 2, 0, b"v2", invalidating);
    assert_eq!(outcome, StoreOutcome::Stored);
    let seen = c.get(b"k", None, |it| (it.value.to_vec(), it.flags, it.exptime, it.stale, it.win_sent, it.cas)).1;
    assert_eq!(seen, Some((b"v2".to_vec(), 2, until, true, false, unique)));
    // The recacher mark survives such a store; an exact cas stores a fresh, unmarked item.
    assert!(c.claim_win(b"k"));
    c.store_with(StoreMode::Cas(1), b"k", 2, 0, b"v3", invalidating);
    assert_eq!(c.get(b"k", None, |it| (it.stale, it.win_sent)).1, Some((true, true)));
    c.store_with(StoreMode::Cas(cas(&c, b"k")), b"k", 0, 0, b"v4", invalidating);
    assert_eq!(c.get(b"k", None, |it| (it.stale, it.win_sent, it.exptime)).1, Some((false, false, 0)));
}

#[test]
fn invalidate_gives_a_new_cas_and_checks_the_one_given() {
    let c = cache();
    set(&c, b"k", b"v");
    let before = cas(&c, b"k");
    assert_eq!(c.invalidate(b"k", None, Some(before + 1)), DeleteOutcome::Exists);
    assert_eq!(c.get(b"k", None, |it| it.stale).1, Some(false));
    assert_eq!(c.invalidate(b"k", None, Some(before)), DeleteOutcome::Done);
    assert!(cas(&c, b"k") > before);
}

#[test]
fn a_base64_key_is_remembered_through_append_and_incr_until_a_plain_store() {
    let c = cache();
    let binary = StoreOptions { key_binary: true, ..StoreOptions::default() };
    c.store_with(StoreMode::Set, b"k", 0, 0, b"1", binary);
    let shown = |c: &Cache| c.get(b"k", None, |it| it.key_binary).1;
    assert_eq!(shown(&c), Some(true));
    c.store(StoreMode::Append, b"k", 0, 0, b"0");
    assert_eq!(shown(&c), Some(true));
    c.delta(b"k", DeltaOp::Incr, 1_000_000, None);
    assert_eq!((shown(&c), value(&c, b"k")), (Some(true), Some(b"1000010".to_vec())));
    set(&c, b"k", b"v");
    assert_eq!(shown(&c), Some(false));
}

#[test]
fn an_item_reports_its_class_and_size() {
    let c = cache();
    set(&c, b"small", b"v");
    c.store(StoreMode::Set, b"big", 0, 0, &[b'x'; 5000]);
    let small = c.get(b"small", None, |it| (it.class_id, it.size)).1.unwrap();
    let big = c.get(b"big", None, |it| (it.class_id, it.size)).1.unwrap();
    assert_eq!(small, (1, super::item::total_size(5, 1) as u32));
    assert!(big.0 > small.0 && big.1 == super::item::total_size(3, 5000) as u32, "{big:?}");
    let listed: Vec<u32> = c.slab_stats().iter().map(|s| s.id).collect();
    assert!(listed.contains(&small.0) && listed.contains(&big.0), "{listed:?}");
}

#[test]
fn win_is_claimed_once_and_a_store_clears_stale_and_win() {
    let c = cache();
    assert!(!c.claim_win(b"k"), "no item, no win");
    set(&c, b"k", b"v");
    assert!(c.claim_win(b"k"));
    assert!(!c.claim_win(b"k"));
    let until = clock::now() + 100;
    assert_eq!(c.invalidate(b"k", Some(until), None), DeleteOutcome::Done);
    let marks = |c: &Cache| c.get(b"k", None, |it| (it.stale, it.win_sent, it.exptime)).1;
    assert_eq!(marks(&c), Some((true, false, until)));
    assert!(c.claim_win(b"k"), "invalidating hands out a new win");
    set(&c, b"k", b"w");
    assert_eq!(marks(&c).map(|m| (m.0, m.1)), Some((false, false)));
    assert_eq!(c.invalidate(b"nx", None, None), DeleteOutcome::NotFound);
}

#[test]
fn cas_is_zero_when_disabled() {
    let mut cfg = config(8 << 20);
    cfg.use_cas = false;
    let c = Cache::new(&cfg).unwrap();
    set(&c, b"k", b"v");
    assert_eq!(cas(&c, b"k"), 0);
    assert_eq!(c.store(StoreMode::Cas(0), b"k", 0, 0, b"w"), StoreOutcome::Stored);
}

#[test]
fn add_replace_append_prepend_follow_memcached() {
    let c = cache();
    assert_eq!(c.store(StoreMode::Replace, b"k", 0, 0, b"x"), StoreOutcome::NotStored);
    assert_eq!(c.store(StoreMode::Append, b"k", 0, 0, b"x"), StoreOutcome::NotStored);
    assert_eq!(c.store(StoreMode::Prepend, b"k", 0, 0, b"x"), StoreOutcome::NotStored);
    assert_eq!(c.store(StoreMode::Add, b"k", 7, 0, b"mid"), StoreOutcome::Stored);
    assert_eq!(c.store(StoreMode::Add, b"k", 0, 0, b"other"), StoreOutcome::NotStored);
    let before = cas(&c, b"k");
    assert_eq!(c.store(StoreMode::Append, b"k", 9, 99, b"-end"), StoreOutcome::Stored);
    assert_eq!(c.store(StoreMode::Prepend, b"k", 9, 99, b"start-"), StoreOutcome::Stored);
    let (_, item) = get(&c, b"k");
    let (v, flags, after, exptime) = item.unwrap();
    assert_eq!(v, b"start-mid-end");
    assert_eq!((flags, exptime), (7, 0), "append/prepend keep flags and exptime");
    assert!(after > before);
    assert_eq!(c.store(StoreMode::Replace, b"k", 1, 0, b"new"), StoreOutcome::Stored);
    assert_eq!(value(&c, b"k").unwrap(), b"new");
}

#[test]
fn cas_missing_mismatch_and_match() {
    let c = cache();
    assert_eq!(c.store(StoreMode::Cas(1), b"k", 0, 0, b"v"), StoreOutcome::NotFound);
    set(&c, b"k", b"v");
    let unique = cas(&c, b"k");
    assert_eq!(c.store(StoreMode::Cas(unique + 1), b"k", 0, 0, b"w"), StoreOutcome::Exists);
    assert_eq!(c.store(StoreMode::Cas(unique), b"k", 0, 0, b"w"), StoreOutcome::Stored);
    assert_eq!(c.store(StoreMode::Cas(unique), b"k", 0, 0, b"x"), StoreOutcome::Exists);
    assert_eq!(value(&c, b"k").unwrap(), b"w");
    let classes = c.slab_stats();
    assert_eq!(classes.iter().map(|s| (s.cas_hits, s.cas_badval)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)), (1, 2));
}

#[test]
fn delete_hits_once() {
    let c = cache();
    set(&c, b"k", b"v");
    assert_eq!(c.delete(b"k", None), DeleteOutcome::Done);
    assert_eq!(c.delete(b"k", None), DeleteOutcome::NotFound);
    assert_eq!(get(&c, b"k").0, Lookup::Miss);
    assert_eq!(c.stats().curr_items, 0);
}

#[test]
fn expired_items_miss_and_are_unlinked() {
    let c = cache();
    let now = clock::now();
    c.store(StoreMode::Set, b"old", 0, 1, b"v");
    c.store(StoreMode::Set, b"live", 0, now + 100, b"v");
    assert_eq!(get(&c, b"old").0, Lookup::Expired);
    assert_eq!(get(&c, b"old").0, Lookup::Miss, "unlinked on the first look");
    assert_eq!(c.store(StoreMode::Add, b"old", 0, 0, b"w"), StoreOutcome::Stored);
    c.store(StoreMode::Set, b"gone", 0, 1, b"v");
    assert_eq!(c.store(StoreMode::Replace, b"gone", 0, 0, b"w"), StoreOutcome::NotStored);
    c.store(StoreMode::Set, b"gone", 0, 1, b"5");
    assert_eq!(c.delta(b"gone", DeltaOp::Incr, 1, None).0, DeltaOutcome::NotFound);
    assert_eq!(get(&c, b"live").1.unwrap().3, now + 100);
    assert_eq!(c.stats().curr_items, 2);
}

#[test]
fn touch_and_gat_set_expiry_and_keep_the_cas() {
    let c = cache();
    set(&c, b"k", b"v");
    let unique = cas(&c, b"k");
    let later = clock::now() + 500;
    assert_eq!(c.touch(b"k", later), Lookup::Hit);
    assert_eq!(c.touch(b"nope", later), Lookup::Miss);
    let (found, item) = c.get(b"k", Some(later + 1), |it| (it.cas, it.exptime));
    assert_eq!(found, Lookup::Hit);
    assert_eq!(item.unwrap(), (unique, later + 1));
    assert_eq!(c.touch(b"k", 1), Lookup::Hit);
    assert_eq!(get(&c, b"k").0, Lookup::Expired);
}

#[test]
fn flush_now_invalidates_older_items_only() {
    let c = cache();
    set(&c, b"a", b"1");
    c.flush(0);
    set(&c, b"b", b"2");
    assert_eq!(get(&c, b"a").0, Lookup::Flushed);
    assert_eq!(get(&c, b"a").0, Lookup::Miss);
    assert_eq!(get(&c, b"b").0, Lookup::Hit);
    c.flush(clock::now().saturating_sub(5));
    assert_eq!(get(&c, b"b").0, Lookup::Hit, "a past time spares what was stored after it");
}

#[test]
fn delayed_flush_waits_for_its_time() {
    let c = cache();
    set(&c, b"a", b"1");
    let at = clock::now() + 100;
    c.flush(at);
    assert_eq!(get(&c, b"a").0, Lookup::Hit);
    let version = c.get(b"a", None, |it| it.cas).1.unwrap();
    assert!(c.flush.is_flushed(version, at));
    assert!(!c.flush.is_flushed(version, at - 1));
}

#[test]
fn later_delayed_flush_does_not_resurrect() {
    let c = cache();
    set(&c, b"now", b"1");
    c.flush(0);
    c.flush(clock::now() + 100);
    assert_eq!(get(&c, b"now").0, Lookup::Flushed);

    set(&c, b"soon", b"2");
    let at = clock::now() + 1;
    c.flush(at);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.get(b"soon", None, |_| ()).0 == Lookup::Hit {
        assert!(Instant::now() < deadline, "delayed flush never took effect");
        thread::yield_now();
    }
    set(&c, b"soon", b"3");
    c.flush(clock::now() + 100);
    assert_eq!(get(&c, b"soon").0, Lookup::Hit, "stored after the flush took effect");
    let before_at = clock::stamp_at_secs(at) - 1;
    assert!(c.flush.is_flushed(before_at, clock::now()), "the earlier flush stays applied");
}

#[test]
fn counters_parse_like_memcached() {
    use super::counter::parse_counter;
    let cases: &[(&[u8], Option<u64>)] = &[
        (b"5", Some(5)),
        (b" 5", Some(5)),
        (b"\t5", Some(5)),
        (b"+5", Some(5)),
        (b"5 ", Some(5)),
        (b"5 x", Some(5)),
        (b"5\n", Some(5)),
        (b"1\x00", Some(1)),
        (b"05", Some(5)),
        (b"-0", Some(0)),
        (b"-18446744073709551615", Some(1)),
        (b"00000000000000000000001", Some(1)),
        (b"18446744073709551615", Some(u64::MAX)),
        (b"-5", None),
        (b"", None),
        (b"  ", None),
        (b"+", None),
        (b"+-1", None),
        (b"5a", None),
        (b"abc", None),
        (b"0x10", None),
        (b"18446744073709551616", None),
        (b"99999999999999999999", None),
        (b"18446744073709551615 -", None),
    ];
    for &(text, want) in cases {
        assert_eq!(parse_counter(text), want, "{:?}", String::from_utf8_lossy(text));
    }
}

#[test]
fn incr_decr_wrap_floor_pad_and_grow() {
    let c = cache();
    assert_eq!(c.delta(b"n", DeltaOp::Incr, 1, None).0, DeltaOutcome::NotFound);
    set(&c, b"n", b"18446744073709551615");
    assert_eq!(c.delta(b"n", DeltaOp::Incr, 2, None).0, DeltaOutcome::Value(1));
    assert_eq!(value(&c, b"n").unwrap(), b"1                   ");
    c.store(StoreMode::Set, b"n", 5, 0, b"100");
    let before = cas(&c, b"n");
    assert_eq!(c.delta(b"n", DeltaOp::Decr, 95, None).0, DeltaOutcome::Value(5));
    assert_eq!(value(&c, b"n").unwrap(), b"5  ");
    assert!(cas(&c, b"n") > before, "in-place writes change the cas");
    let before = cas(&c, b"n");
    assert_eq!(c.delta(b"n", DeltaOp::Incr, 1000, None).0, DeltaOutcome::Value(1005));
    let (_, item) = get(&c, b"n");
    let (v, flags, after, _) = item.unwrap();
    assert_eq!((v.as_slice(), flags), (&b"1005"[..], 5), "a longer result keeps the flags");
    assert!(after > before);
    assert_eq!(c.delta(b"n", DeltaOp::Decr, 100_000, None).0, DeltaOutcome::Value(0));
    assert_eq!(value(&c, b"n").unwrap(), b"0   ");
    set(&c, b"n", b"abc");
    assert_eq!(c.delta(b"n", DeltaOp::Incr, 1, None).0, DeltaOutcome::NonNumeric);
    set(&c, b"n", b"");
    assert_eq!(c.delta(b"n", DeltaOp::Decr, 1, None).0, DeltaOutcome::NonNumeric);
    assert_eq!(c.stats().curr_items, 1);
}

#[test]
fn too_large_set_unlinks_the_old_item() {
    let c = cache();
    set(&c, b"k", b"v");
    assert!(c.item_fits(1, 1000));
    assert!(!c.item_fits(1, 1 << 20));
    let big = vec![b'x'; 1 << 20];
    assert_eq!(c.store(StoreMode::Add, b"k", 0, 0, &big), StoreOutcome::TooLarge, "size is checked first");
    assert_eq!(get(&c, b"k").0, Lookup::Hit, "only a set drops the old item");
    assert_eq!(c.store(StoreMode::Set, b"k", 0, 0, &big), StoreOutcome::TooLarge);
    assert_eq!(get(&c, b"k").0, Lookup::Miss);
    assert_eq!(c.stats().store_too_large, 2);
    // The largest value memcached 1.6 takes with a 1-byte key and -I 1m.
    let max = (1 << 20) - 56 - 1 - 1 - 2;
    assert!(c.item_fits(1, max) && !c.item_fits(1, max + 1));
    assert_eq!(c.store(StoreMode::Set, b"k", 0, 0, &big[..max]), StoreOutcome::Stored);
    set(&c, b"a", &big[..600_000]);
    assert_eq!(c.store(StoreMode::Append, b"a", 0, 0, &big[..600_000]), StoreOutcome::NotStored);
    assert_eq!(value(&c, b"a").unwrap().len(), 600_000);
}

#[test]
#[cfg_attr(miri, ignore = "fills whole slab pages one store at a time: hours under Miri")]
fn eviction_keeps_memory_in_bounds_and_spares_read_items() {
    let limit = 2 << 20;
    let c = Cache::new(&config(limit)).unwrap();
    let value = [b'v'; 100];
    let hot: Vec<Vec<u8>> = (0..50).map(|i| format!("hot:{i}").into_bytes()).collect();
    for k in &hot {
        set(&c, k, &value);
    }
    let stores = 4 * limit / 100;
    for i in 0..stores {
        assert_eq!(set(&c, format!("key:{i:07}").as_bytes(), &value), StoreOutcome::Stored);
        if i % 1000 == 0 {
            for k in &hot {
                assert_eq!(c.get(k, None, |_| ()).0, Lookup::Hit, "hot key evicted at {i}");
            }
        }
    }
    let s = c.stats();
    assert!(s.total_malloced <= limit as u64);
    assert!(s.evictions > 0);
    assert!(s.evicted_unfetched > 0);
    assert_eq!(s.curr_items + s.evictions, hot.len() as u64 + stores as u64);
    assert!(value_is_latest(&c, stores));
}

fn value_is_latest(c: &Cache, stores: usize) -> bool {
    c.get(format!("key:{:07}", stores - 1).as_bytes(), None, |_| ()).0 == Lookup::Hit
}

/// How many items of one class fit in a cache of one page.
fn one_page_capacity(c: &Cache, value: &[u8]) -> usize {
    let mut n = 0;
    while c.stats().evictions == 0 && c.stats().store_no_memory == 0 {
        c.store(StoreMode::Set, format!("fill:{n:07}").as_bytes(), 0, 0, value);
        n += 1;
    }
    n - 1
}

#[test]
#[cfg_attr(miri, ignore = "fills whole slab pages one store at a time: hours under Miri")]
fn expired_items_are_reclaimed_before_live_ones_are_evicted() {
    let c = Cache::new(&config(1 << 20)).unwrap();
    let value = [b'v'; 100];
    let capacity = one_page_capacity(&c, &value);
    c.flush(0);
    let now = clock::now();
    for i in 0..capacity {
        let exptime = if i < 3 { now + 1000 } else { 1 };
        c.store(StoreMode::Set, format!("item:{i:07}").as_bytes(), 0, exptime, &value);
    }
    c.reset_stats();
    for i in 0..100 {
        c.store(StoreMode::Set, format!("new:{i}").as_bytes(), 0, 0, &value);
    }
    let s = c.stats();
    assert_eq!((s.evictions, s.reclaimed, s.expired_unfetched), (0, 100, 100));
    for i in 0..3 {
        assert_eq!(get(&c, format!("item:{i:07}").as_bytes()).0, Lookup::Hit);
    }
}

#[test]
#[cfg_attr(miri, ignore = "fills whole slab pages one store at a time: hours under Miri")]
fn no_evict_answers_no_memory_and_set_drops_the_old_item() {
    let mut cfg = config(1 << 20);
    cfg.evict = false;
    let c = Cache::new(&cfg).unwrap();
    let value = [b'v'; 100];
    set(&c, b"keep", &value);
    let capacity = one_page_capacity(&c, &value);
    assert!(capacity > 1000);
    let s = c.stats();
    assert_eq!((s.evictions, s.store_no_memory), (0, 1));
    assert_eq!(c.store(StoreMode::Add, b"keep", 0, 0, &value), StoreOutcome::NoMemory, "memory is sought first");
    assert_eq!(c.store(StoreMode::Append, b"keep", 0, 0, b"x"), StoreOutcome::NotStored);
    assert_eq!(get(&c, b"keep").0, Lookup::Hit);
    assert_eq!(set(&c, b"keep", &value), StoreOutcome::NoMemory);
    assert_eq!(get(&c, b"keep").0, Lookup::Miss);
    assert_eq!(set(&c, b"keep", &value), StoreOutcome::Stored, "the freed chunk is reused");
    assert_eq!(c.slab_stats()[0].outofmemory, 4);
}

#[test]
#[cfg_attr(miri, ignore = "fills whole slab pages one store at a time: hours under Miri")]
fn a_class_that_comes_late_takes_a_page_from_a_full_one() {
    let limit = 2 << 20;
    let c = Cache::new(&config(limit)).unwrap();
    let small = [b's'; 100];
    for i in 0..30_000 {
        set(&c, format!("small:{i:06}").as_bytes(), &small);
    }
    assert!(c.stats().evictions > 0, "both pages are full of small items");
    let big = vec![b'b'; 500_000];
    assert_eq!(set(&c, b"big", &big), StoreOutcome::Stored);
    assert_eq!(value(&c, b"big").unwrap().len(), big.len());
    let s = c.stats();
    assert!(s.total_malloced <= limit as u64);
    let classes = c.slab_stats();
    let pages: u64 = classes.iter().map(|cl| cl.total_pages).sum();
    assert_eq!(pages, 2);
    let items: u64 = classes.iter().map(|cl| cl.number).sum();
    assert_eq!(items, s.curr_items);
    let mut found = 0;
    for i in 0..30_000 {
        if c.get(format!("small:{i:06}").as_bytes(), None, |_| ()).0 == Lookup::Hit {
            found += 1;
        }
    }
    assert_eq!(found + 1, s.curr_items);
    assert!(found > 5000, "one page of small items is left, found {found}");
}

#[test]
fn large_pages_take_the_limit_at_start() {
    let mut cfg = config(4 << 20);
    cfg.large_pages = true;
    let c = Cache::new(&cfg).unwrap();
    assert_eq!(c.stats().slab_global_page_pool, 4);
    set(&c, b"k", b"v");
    assert_eq!(value(&c, b"k").unwrap(), b"v");
    let s = c.stats();
    assert_eq!((s.slab_global_page_pool, s.total_malloced), (3, 1 << 20));
    let classes = c.slab_stats();
    assert_eq!(classes.len(), 1);
    assert_eq!((classes[0].id, classes[0].total_pages, classes[0].used_chunks), (1, 1, 1));
}

#[test]
fn threads_mixing_ops_on_shared_keys_keep_counts_consistent() {
    let c = Arc::new(Cache::new(&config(2 << 20)).unwrap());
    let keys = 6000;
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let mut x = t + 1;
                for _ in 0..scaled(60_000) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("k{}", x % keys);
                    let len = (x >> 20) as usize % 2000;
                    let value = vec![b'0' + (x % 10) as u8; len];
                    match x % 8 {
                        0 | 1 => {
                            c.store(StoreMode::Set, key.as_bytes(), 0, 0, &value);
                        }
                        2 => {
                            c.store(StoreMode::Append, key.as_bytes(), 0, 0, b"12");
                        }
                        3 => {
                            c.delete(key.as_bytes(), None);
                        }
                        4 => {
                            c.delta(key.as_bytes(), DeltaOp::Incr, 3, None);
                        }
                        5 => {
                            c.touch(key.as_bytes(), 0);
                        }
                        _ => {
                            c.get(key.as_bytes(), None, |it| it.value.len());
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut found = 0;
    let mut bytes = 0;
    for i in 0..keys {
        let key = format!("k{i}");
        if let (Lookup::Hit, Some(len)) = c.get(key.as_bytes(), None, |it| it.value.len()) {
            found += 1;
            bytes += (super::item::HEADER + key.len() + len) as u64;
        }
    }
    let s = c.stats();
    assert_eq!(s.curr_items, found);
    assert_eq!(s.bytes, bytes);
    assert!(s.total_malloced <= 2 << 20);
    assert!(s.evictions > 0, "the test ran under memory pressure");
    let per_class: u64 = c.slab_stats().iter().map(|cl| cl.number).sum();
    assert_eq!(per_class, found);
}

/// A store links its item before writing key and value, and frees an old item of another
/// class after: under eviction by other threads, a reader must still only ever see a whole
/// value of its own key.
#[test]
fn racing_stores_under_eviction_show_only_whole_values_of_their_key() {
    let c = Arc::new(Cache::new(&config(2 << 20)).unwrap());
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let mut x = t + 1;
                for _ in 0..scaled(200_000) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("key{}", x % 4000);
                    let len = (x >> 24) as usize % 1500;
                    let fill = key.as_bytes().iter().fold(0u8, |a, &b| a.wrapping_add(b));
                    match x % 4 {
                        0 => {
                            c.store(StoreMode::Set, key.as_bytes(), len as u32, 0, &vec![fill; len]);
                        }
                        1 => {
                            c.delete(key.as_bytes(), None);
                        }
                        _ => {
                            let (_, seen) = c.get(key.as_bytes(), None, |it| {
                                (it.key == key.as_bytes(), it.flags as usize == it.value.len(), it.value.iter().all(|&b| b == fill))
                            });
                            assert!(seen.is_none_or(|s| s == (true, true, true)), "{key}: a torn or foreign item");
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert!(c.stats().evictions > 0, "the test ran under memory pressure");
}

#[test]
#[cfg_attr(miri, ignore = "fills whole slab pages one store at a time: hours under Miri")]
fn one_stripe_grows_past_a_million_items() {
    let c = Cache::with_stripes(&config(160 << 20), 0).unwrap();
    let before = c.stats().hash_power_level;
    let n = 1_100_000;
    for i in 0..n {
        assert_eq!(set(&c, format!("k{i}").as_bytes(), b"v"), StoreOutcome::Stored);
    }
    for i in (0..n).step_by(7) {
        assert_eq!(c.get(format!("k{i}").as_bytes(), None, |_| ()).0, Lookup::Hit);
    }
    let s = c.stats();
    assert_eq!(s.curr_items, n as u64);
    assert!(s.hash_power_level > before);
    assert!(1u64 << s.hash_power_level >= n as u64 / 2);
}

#[test]
#[cfg_attr(miri, ignore = "fills whole slab pages one store at a time: hours under Miri")]
fn items_in_64_mib_match_memcached() {
    // memcached 1.6.18 -m 64 holds 349504 such items when it starts evicting
    // (64 pages of 5461 192-byte chunks); ours are 176-byte chunks.
    let memcached = 349_504;
    let c = Cache::new(&config(64 << 20)).unwrap();
    let value = [b'x'; 100];
    let mut i = 0;
    while c.stats().evictions == 0 {
        for _ in 0..1000 {
            set(&c, format!("key:{i:07}").as_bytes(), &value);
            i += 1;
        }
    }
    let ours = c.stats().curr_items;
    println!("100-byte values in 64 MiB: ours {ours}, memcached 1.6.18 {memcached}");
    assert!(ours >= memcached);
}

/// The stall issue 10 found: when memory runs out, a class with no items of its own takes a
/// page from another class; a store that met that class's lock (or the stripes of its LRU
/// tail) held by another thread answered out of memory instead of waiting its turn, where
/// memcached evicts. Threads filling a small cache past its limit with sizes spanning several
/// classes must see every store succeed.
#[test]
#[cfg_attr(miri, ignore = "fills whole slab pages one store at a time: hours under Miri")]
fn stores_racing_for_memory_evict_rather_than_fail() {
    for round in 0..10 {
        let c = Arc::new(Cache::new(&config(8 << 20)).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let c = Arc::clone(&c);
                thread::spawn(move || {
                    for i in 0..120_000usize {
                        let len = 90 + (i * 7 + t * 13) % 40;
                        let outcome = set(&c, format!("t{t}:{i}").as_bytes(), &vec![b'v'; len]);
                        assert_eq!(outcome, StoreOutcome::Stored, "round {round}, thread {t}, store {i} of {len} bytes");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = c.stats();
        assert!(s.evictions > 0 && s.store_no_memory == 0, "round {round}: {} evictions", s.evictions);
    }
}

/// Keys the cache must refuse whoever calls it: empty, and one byte over the limit.
fn bad_keys() -> [Vec<u8>; 2] {
    [Vec::new(), vec![b'k'; KEY_MAX_LENGTH + 1]]
}

#[test]
fn the_longest_key_is_stored() {
    let c = cache();
    let key = vec![b'k'; KEY_MAX_LENGTH];
    assert_eq!(set(&c, &key, b"v"), StoreOutcome::Stored);
    assert_eq!(value(&c, &key), Some(b"v".to_vec()));
}

#[test]
fn stores_refuse_a_bad_key() {
    let c = cache();
    for key in bad_keys() {
        for mode in [StoreMode::Set, StoreMode::Add, StoreMode::Replace, StoreMode::Append, StoreMode::Prepend, StoreMode::Cas(1)] {
            assert_eq!(c.store(mode, &key, 0, 0, b"v"), StoreOutcome::NotStored, "{mode:?}, key of {}", key.len());
        }
        assert_eq!(c.store_with(StoreMode::Set, &key, 0, 0, b"v", StoreOptions::default()), (StoreOutcome::NotStored, 0));
    }
    assert_eq!(c.stats().curr_items, 0);
}

#[test]
fn reads_refuse_a_bad_key() {
    let c = cache();
    for key in bad_keys() {
        assert_eq!(c.get(&key, None, |_| ()), (Lookup::Miss, None));
        assert_eq!(c.get(&key, Some(0), |_| ()), (Lookup::Miss, None));
        assert_eq!(c.get_unbumped(&key, None, |_| ()), (Lookup::Miss, None));
        assert_eq!(c.touch(&key, 0), Lookup::Miss);
        assert!(!c.claim_win(&key));
    }
}

#[test]
fn deletes_and_deltas_refuse_a_bad_key() {
    let c = cache();
    for key in bad_keys() {
        assert_eq!(c.delete(&key, None), DeleteOutcome::NotFound);
        assert_eq!(c.invalidate(&key, None, None), DeleteOutcome::NotFound);
        assert_eq!(c.delta(&key, DeltaOp::Incr, 1, None), (DeltaOutcome::NotFound, 0));
        assert_eq!(c.delta(&key, DeltaOp::Decr, 1, None), (DeltaOutcome::NotFound, 0));
    }
}

/// What a stress value says about itself: the key it belongs to and the write that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    key: u32,
    version: u32,
}

/// Key id and version, then bytes that follow from both, then a checksum of all before it: a
/// torn value, a value of another key or one overwritten in part fails `check_value`.
fn stress_value(s: Stamp) -> Vec<u8> {
    let seed = s.key.wrapping_mul(2_654_435_761) ^ s.version.wrapping_mul(40_503);
    let len = 8 + (seed % 400) as usize;
    let mut v = Vec::with_capacity(len + 4);
    v.extend_from_slice(&s.key.to_le_bytes());
    v.extend_from_slice(&s.version.to_le_bytes());
    v.extend((8..len).map(|i| (seed as usize).wrapping_add(i * 7) as u8));
    let sum = checksum(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The stamp a whole, unaltered stress value carries, or why it is not one.
fn check_value(v: &[u8], flags: u32) -> Result<Stamp, String> {
    let word = |at: usize| u32::from_le_bytes(v[at..at + 4].try_into().unwrap());
    if v.len() < 12 {
        return Err(format!("{} bytes", v.len()));
    }
    let stamp = Stamp { key: word(0), version: word(4) };
    if stress_value(stamp) != v {
        let sum_ok = checksum(&v[..v.len() - 4]) == word(v.len() - 4);
        return Err(format!("{stamp:?}: {} bytes, checksum {}", v.len(), if sum_ok { "right" } else { "wrong" }));
    }
    if flags != stamp.version {
        return Err(format!("{stamp:?} under flags {flags}"));
    }
    Ok(stamp)
}

/// Writers store values that name their key and version into a cache of two pages, so that
/// classes keep taking pages from one another; readers check every byte of every value they
/// read, and that a key never goes back to an older version. Each key has one writer, so its
/// versions only grow.
#[test]
fn values_read_under_eviction_are_whole_and_their_keys_own() {
    const WRITERS: u32 = 2;
    // Fewer keys with fewer operations (Miri), so that readers still find values to check.
    let keys = scaled(3000).max(30) as u32;
    let c = Arc::new(Cache::new(&config(2 << 20)).unwrap());
    let ops = scaled(60_000);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let mut versions = vec![0u32; keys as usize];
                let (mut stored, mut no_memory) = (0u64, 0u64);
                let mut x = u64::from(w) + 1;
                for _ in 0..ops {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = (x % u64::from(keys / WRITERS)) as u32 * WRITERS + w;
                    let name = format!("key:{key}");
                    if x % 16 == 0 {
                        c.delete(name.as_bytes(), None);
                        continue;
                    }
                    versions[key as usize] += 1;
                    let stamp = Stamp { key, version: versions[key as usize] };
                    match c.store(StoreMode::Set, name.as_bytes(), stamp.version, 0, &stress_value(stamp)) {
                        StoreOutcome::Stored => stored += 1,
                        // Two pages: the only one a class may take can hold the item replaced.
                        StoreOutcome::NoMemory => no_memory += 1,
                        other => panic!("{name}: {other:?}"),
                    }
                }
                (stored, no_memory)
            })
        })
        .collect();
    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let mut seen = vec![0u32; keys as usize];
                let mut hits = 0u64;
                let mut x = r + 101;
                for _ in 0..ops {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = (x % u64::from(keys)) as u32;
                    let name = format!("key:{key}");
                    let (_, read) = c.get(name.as_bytes(), None, |it| check_value(it.value, it.flags));
                    let Some(read) = read else { continue };
                    let stamp = read.unwrap_or_else(|why| panic!("{name}: not a whole value of a key: {why}"));
                    assert_eq!(stamp.key, key, "{name} holds another key's value");
                    assert!(stamp.version >= seen[key as usize], "{name} went back to version {}", stamp.version);
                    seen[key as usize] = stamp.version;
                    hits += 1;
                }
                hits
            })
        })
        .collect();
    let (mut stored, mut no_memory) = (0, 0);
    for w in writers {
        let (s, n) = w.join().unwrap();
        stored += s;
        no_memory += n;
    }
    let hits: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let s = c.stats();
    println!("stored {stored}, no memory {no_memory}, read and checked {hits}, evictions {}", s.evictions);
    assert!(s.evictions > 0, "the test ran under memory pressure");
    assert!(hits > 0 && stored > no_memory * 4, "stored {stored}, no memory {no_memory}, hits {hits}");
    assert!(s.total_malloced <= 2 << 20);
}
