//! Addresses shared by the client listeners (`server::listener`) and the replication link
//! (`replication::link`): how a `-l` entry is split and resolved, so that both read it alike.
//! Binds and accepts nothing itself (the socket calls that need `unsafe` are `daemon`'s), and
//! depends on nothing else in the crate.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Splits a `-l` entry ("host", "host:port", "[v6]:port" or a bare IPv6 address) and resolves
/// it; an entry without a port gets `default_port`.
pub fn resolve(entry: &str, default_port: u16) -> io::Result<Vec<SocketAddr>> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, after)) => (host, Some(after.strip_prefix(':').unwrap_or(after))),
            None => (entry, None),
        }
    } else {
        match entry.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            _ => (entry, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(text) => text.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("Invalid port number: \"{text}\"")))?,
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok((host, port).to_socket_addrs()?.collect())
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use std::net::SocketAddr;

    fn one(entry: &str) -> SocketAddr {
        let addrs = resolve(entry, 11211).unwrap();
        assert_eq!(addrs.len(), 1, "{entry}");
        addrs[0]
    }

    #[test]
    fn listen_entries_take_their_own_port_or_the_default() {
        assert_eq!(one("127.0.0.1"), "127.0.0.1:11211".parse().unwrap());
        assert_eq!(one("127.0.0.1:22"), "127.0.0.1:22".parse().unwrap());
        assert_eq!(one("::1"), "[::1]:11211".parse().unwrap());
        assert_eq!(one("[::1]"), "[::1]:11211".parse().unwrap());
        assert_eq!(one("[::1]:22"), "[::1]:22".parse().unwrap());
    }

    #[test]
    fn a_bad_port_is_named() {
        let e = resolve("127.0.0.1:abc", 11211).unwrap_err();
        assert_eq!(e.to_string(), "Invalid port number: \"abc\"");
    }
}
