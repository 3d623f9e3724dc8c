//! The value readers that the flag and sub-option tables share: numbers as memcached reads
//! them (decimal only, no trailing text) and the peer address of `-x` and
//! `-o repcached_link`. They know no flag: each caller words its own refusal.

use super::Bad;

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

/// `-x`: `host`, `host:port`, `[ipv6]` or `[ipv6]:port`. A bare IPv6 address is refused, so a
/// port can always be told apart; names are resolved by replication, not here.
pub(super) fn check_peer(peer: &str) -> Result<(), Bad> {
    let (host, port) = match peer.strip_prefix('[') {
        Some(rest) => {
            let bad_v6 = || Bad::Words(format!("Invalid IPV6 address: \"{peer}\""));
            let (address, after) = rest.split_once(']').ok_or_else(bad_v6)?;
            address.parse::<std::net::Ipv6Addr>().map_err(|_| bad_v6())?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(bad_v6)?),
            };
            (None, port)
        }
        None => match peer.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(Bad::Words("an IPv6 peer address goes in brackets: [address] or [address]:port".into()))
            }
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(peer), None),
        },
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err(Bad::Malformed);
        }
        let name_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
        if !host.bytes().all(name_byte) {
            return Err(Bad::Words(format!("Invalid peer host \"{host}\"")));
        }
    }
    match port.map(|p| (p, unsigned(p))) {
        None | Some((_, Some(1..=65535))) => Ok(()),
        Some((port, _)) => Err(Bad::Words(format!("Invalid peer port \"{port}\": it must be 1 to 65535"))),
    }
}
