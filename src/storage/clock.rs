//! Wall-clock time for expiry, memcached's rules for turning a protocol exptime into an
//! absolute one, and the version stamp that serves as both cas unique and write order.
//! Owns no item memory and takes no locks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest relative exptime; larger values are absolute unix times (memcached's rule).
pub const MAX_RELATIVE_EXPTIME: i64 = 60 * 60 * 24 * 30;

/// Bits of a stamp below the millisecond part: a counter for stamps taken in one millisecond.
const LOGICAL_BITS: u32 = 16;

/// The process's version clock.
static CLOCK: Hlc = Hlc::new();

/// The current unix time in seconds.
pub fn now() -> u32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

fn unix_millis() -> u64 {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    u64::try_from(millis).unwrap_or(u64::MAX >> LOGICAL_BITS)
}

/// The stamp below which every item written before unix second `secs` lies.
pub fn stamp_at_secs(secs: u32) -> u64 {
    (u64::from(secs) * 1000) << LOGICAL_BITS
}

/// Makes every later stamp carry this node's bit (0 or 1) in its lowest bit, so that the two
/// nodes of a pair never hand out the same stamp (cas unique). The pair agrees on the bits in
/// its handshake.
pub fn set_node_bit(bit: u64) {
    CLOCK.set_node_bit(bit);
}

/// A process-wide strictly increasing version: wall-clock milliseconds in the high 48 bits, a
/// logical counter in the low 16, so stamps stay ordered even when the clock steps back.
pub fn stamp() -> u64 {
    CLOCK.stamp(unix_millis() << LOGICAL_BITS)
}

/// A hybrid clock's receive rule: every later stamp is larger than `version` (a peer's), so a
/// local write after a replicated one orders after it. The caller checks `plausible` first.
pub fn observe(version: u64) {
    CLOCK.observe(version);
}

/// How far ahead of our wall clock a peer's stamp may be: further is a broken clock or a
/// corrupt frame, and following it would push every later version (and cas) out of reach.
const MAX_DRIFT_MILLIS: u64 = 24 * 60 * 60 * 1000;

/// Whether a peer's stamp is no further ahead of our clock than a sane clock could be.
pub fn plausible(version: u64) -> bool {
    version <= unix_millis().saturating_add(MAX_DRIFT_MILLIS) << LOGICAL_BITS
}

/// A hybrid logical clock: the last stamp handed out (or observed), and the node bit. On a
/// cache line pair of its own: every write takes a stamp, so no hot read should share it.
#[repr(align(128))]
struct Hlc {
    /// No stamp handed out is above it: a stamp claims the values up to the one it sets.
    last: AtomicU64,
    /// 0 or 1 once the pair has agreed; NO_BIT before.
    bit: AtomicU64,
}

const NO_BIT: u64 = u64::MAX;

impl Hlc {
    const fn new() -> Hlc {
        Hlc { last: AtomicU64::new(0), bit: AtomicU64::new(NO_BIT) }
    }

    fn set_node_bit(&self, bit: u64) {
        self.bit.store(bit & 1, Ordering::Relaxed);
    }

    /// The next stamp: above the last one and at least `wall`, with the node bit when set.
    /// One `fetch_add`, which never retries, while the counter is ahead of the wall clock
    /// (many writes a millisecond); a `fetch_max` more when the wall clock has moved past it.
    fn stamp(&self, wall: u64) -> u64 {
        let bit = self.bit.load(Ordering::Relaxed);
        let next = self.claim(bit);
        if next >= wall {
            return next;
        }
        // Values up to `last` may be claimed already, so only a move from below `wall` owns it.
        let wall = with_bit(wall, bit);
        if self.last.fetch_max(wall, Ordering::Relaxed) < wall {
            return wall;
        }
        self.claim(bit)
    }

    /// Claims the values just above `last`: one, or two (with the node bit) so that one of
    /// them carries the bit (the counter then steps by two).
    fn claim(&self, bit: u64) -> u64 {
        let step = if bit == NO_BIT { 1 } else { 2 };
        with_bit(self.last.fetch_add(step, Ordering::Relaxed) + 1, bit)
    }

    fn observe(&self, version: u64) {
        self.last.fetch_max(version, Ordering::Relaxed);
    }
}

/// `stamp` rounded up to carry the node bit in its lowest bit (unchanged with no bit).
fn with_bit(stamp: u64, bit: u64) -> u64 {
    if bit == NO_BIT {
        stamp
    } else {
        stamp + ((stamp ^ bit) & 1)
    }
}

/// memcached's exptime rules: 0 = never (returns 0); up to 30 days (2592000) = seconds from
/// `now`; larger = absolute unix time; negative, or absolute and not after `now` = already
/// expired, returned as 1 (a time long past).
pub fn absolute_expiry(exptime: i64, now: u32) -> u32 {
    if exptime == 0 {
        0
    } else if exptime < 0 {
        1
    } else if exptime <= MAX_RELATIVE_EXPTIME {
        u32::try_from(i64::from(now) + exptime).unwrap_or(u32::MAX)
    } else if exptime <= i64::from(now) {
        1
    } else {
        u32::try_from(exptime).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::{absolute_expiry, plausible, stamp, stamp_at_secs, Hlc};

    #[test]
    fn expiry_rules_match_memcached() {
        let now = 1_700_000_000;
        assert_eq!(absolute_expiry(0, now), 0);
        assert_eq!(absolute_expiry(-1, now), 1);
        assert_eq!(absolute_expiry(10, now), now + 10);
        assert_eq!(absolute_expiry(2_592_000, now), now + 2_592_000);
        assert_eq!(absolute_expiry(2_592_001, now), 1);
        assert_eq!(absolute_expiry(i64::from(now), now), 1);
        assert_eq!(absolute_expiry(i64::from(now) + 5, now), now + 5);
        assert_eq!(absolute_expiry(i64::MAX, now), u32::MAX);
    }

    #[test]
    fn stamps_strictly_increase_and_follow_the_clock() {
        let a = stamp();
        let b = stamp();
        assert!(b > a);
        assert!(a >= stamp_at_secs(super::now()) - (1000 << 16));
    }

    #[test]
    fn node_bits_make_two_clocks_disjoint_and_increasing() {
        let (a, b) = (Hlc::new(), Hlc::new());
        let early = a.stamp(1000 << 16);
        a.set_node_bit(0);
        b.set_node_bit(1);
        let wall = 1000 << 16;
        let (mut last_a, mut last_b) = (early, 0);
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000u64 {
            // Both clocks see the other's stamps now and then (replication), and the wall
            // clock moves rarely, so the logical counter does the work.
            let x = a.stamp(wall + i / 100);
            let y = b.stamp(wall + i / 100);
            assert!(x > last_a && y > last_b, "stamps keep increasing");
            assert_eq!((x & 1, y & 1), (0, 1));
            assert!(seen.insert(x) && seen.insert(y), "no stamp is handed out twice");
            if i % 7 == 0 {
                a.observe(y);
                assert!(a.stamp(wall) > y, "a stamp after observing is larger");
            }
            if i % 5 == 0 {
                b.observe(x);
            }
            last_a = a.last.load(std::sync::atomic::Ordering::Relaxed);
            last_b = b.last.load(std::sync::atomic::Ordering::Relaxed);
        }
        assert!(stamp_at_secs(2) > a.stamp(1000 << 16), "flush thresholds still compare with stamps");
        assert!(plausible(stamp() + (1000 << 16)));
        assert!(!plausible(u64::MAX));
    }

    #[test]
    fn racing_threads_get_unique_increasing_stamps_at_least_the_wall() {
        let clock = Hlc::new();
        clock.set_node_bit(1);
        let base = 5000 << 16;
        let runs: Vec<Vec<u64>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let clock = &clock;
                    s.spawn(move || {
                        let mut taken = Vec::new();
                        for i in 0..crate::storage::tests::scaled(20_000) as u64 {
                            // The wall clock moves now and then, each thread seeing it late or
                            // early; one thread also observes a peer's stamps.
                            let wall = base + (((i + t * 7) / 1000) << 16);
                            let stamp = clock.stamp(wall);
                            assert!(stamp >= wall, "a stamp is at least the wall clock");
                            if t == 0 && i % 500 == 0 {
                                let peer = stamp + 5;
                                clock.observe(peer);
                                assert!(clock.stamp(wall) > peer, "a stamp after observing is larger");
                            }
                            taken.push(stamp);
                        }
                        taken
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let mut all = std::collections::HashSet::new();
        for run in &runs {
            assert!(run.windows(2).all(|w| w[1] > w[0]), "each thread's stamps increase");
            assert!(run.iter().all(|s| s & 1 == 1), "every stamp carries the node bit");
            assert!(run.iter().all(|&s| all.insert(s)), "no stamp is handed out twice");
        }
    }
}
