//! The number readers that the flag and sub-option tables share, as memcached reads numbers
//! (decimal only, no trailing text). They know no flag: each caller words its own refusal.

/// A decimal integer, with an optional sign and nothing else.
pub(super) fn integer(text: &str) -> Option<i64> {
    text.parse().ok()
}

/// A decimal integer with no sign.
pub(super) fn unsigned(text: &str) -> Option<u64> {
    if text.starts_with('+') {
        return None;
    }
    text.parse().ok()
}

/// `-I`'s size: bytes, or kilobytes/megabytes with a `k`/`K`/`m`/`M` suffix as memcached reads
/// it. Other suffixes (memcached reads `2g` as 2 bytes) are refused.
pub(super) fn size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1024),
        b'm' | b'M' => (&text[..text.len() - 1], 1024 * 1024),
        _ => (text, 1),
    };
    unsigned(digits)?.checked_mul(unit)
}
