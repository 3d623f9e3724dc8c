//! memcached's ports file: with `MEMCACHED_PORT_FILENAME` set, a server started on port -1
//! (any free port) tells a test harness which ports it got. One line per bound socket, TCP
//! first, as "TCP INET: 35317" or "UDP INET6: 40021"; written under the name plus ".lck" and
//! renamed, so a reader never sees half of it. None for a unix socket, as in memcached.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::daemon;

/// The environment variable memcached reads.
pub const VARIABLE: &str = "MEMCACHED_PORT_FILENAME";

/// Writes the file at `path` for these bound addresses. The error is the line memcached
/// prints, and like memcached the server goes on without the file.
pub fn write(path: &Path, tcp: &[SocketAddr], udp: &[SocketAddr]) -> Result<(), String> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".lck");
    let temporary = PathBuf::from(temporary);
    let failed = |e: io::Error| format!("Failed to open \"{}\": {}", temporary.display(), daemon::strerror(&e));
    let mut file = std::fs::File::create(&temporary).map_err(failed)?;
    file.write_all(contents(tcp, udp).as_bytes()).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(|e| format!("Failed to rename \"{}\": {}", temporary.display(), daemon::strerror(&e)))
}

fn contents(tcp: &[SocketAddr], udp: &[SocketAddr]) -> String {
    let lines = tcp.iter().map(|a| ("TCP", a)).chain(udp.iter().map(|a| ("UDP", a)));
    lines.map(|(transport, addr)| format!("{transport} {}: {}\n", if addr.is_ipv4() { "INET" } else { "INET6" }, addr.port())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_socket_tcp_first() {
        let addr = |a: &str| a.parse::<SocketAddr>().unwrap();
        let text = contents(&[addr("0.0.0.0:35317"), addr("[::]:35318")], &[addr("127.0.0.1:40021")]);
        assert_eq!(text, "TCP INET: 35317\nTCP INET6: 35318\nUDP INET: 40021\n");
    }
}
