//! Wall-clock time for expiry, and memcached's rules for turning a protocol exptime into an
//! absolute one.

/// The current unix time in seconds.
pub fn now() -> u32 {
    todo!()
}

/// memcached's exptime rules: 0 = never (returns 0); up to 30 days (2592000) = seconds from
/// `now`; larger = absolute unix time; negative, or absolute and not after `now` = already
/// expired, returned as 1 (a time long past).
pub fn absolute_expiry(exptime: i64, now: u32) -> u32 {
    let _ = (exptime, now);
    todo!()
}
