//! `-U`: the text and binary protocols over UDP, framed as memcached 1.6 frames them.
//!
//! Every datagram, both ways, starts with an 8-byte header of four big-endian u16: the
//! request id, the sequence number, the number of datagrams, and a reserved 0. A request is
//! one datagram (a header announcing more than one is dropped, as memcached drops it); the
//! client's sequence number and reserved field are not looked at. Datagrams of 8 bytes or
//! less are dropped without a word.
//!
//! Each command of a request is answered on its own, and a get value by value, as memcached
//! 1.6 frames its response objects: each value alone, "END" with the last value when the
//! last key was found (else alone), and a bare header (count 0) first when the first key was
//! missed but the last found. An answer is cut into datagrams of `DATAGRAM` bytes, each with
//! the request id, its sequence number from 0 and the answer's count. `noreply` sends
//! nothing; `quit` sends a bare header and ends the request.
//!
//! A request whose payload starts with 0x80 is binary, whatever `-B` says (memcached 1.6.18
//! also answers either protocol over UDP under `-B`): each binary request of the datagram goes
//! through `binary::handle`, and each answer is framed on its own as above; a quiet request
//! that answers nothing (a getq miss, a setq, quitq) still sends a bare header, as memcached
//! does. A request cut off by the end of the datagram, bytes that are no binary request, an
//! answer that leaves a body to discard, and quit end the datagram's requests.
//!
//! Where this differs from memcached, on purpose: a command cut off by the end of its
//! datagram is dropped (memcached keeps it for the next datagram, from anyone); a multi-get
//! whose first and last keys both miss gets its "END" (memcached sends nothing); and for a
//! get over `SPILL_AT` (256 KiB) the bare header follows the values already sent.
//!
//! Sockets: as for TCP, one per `-l` address (an entry's own port overrides `-U`, as in
//! memcached) or 0.0.0.0 and [::]; bound before the daemon's fork and `-u`, served once the
//! node may serve clients. Each socket is read by `-t` threads, as each of memcached's worker
//! threads reads every UDP socket; like memcached's, each thread reads its own descriptor of
//! the socket and is a connection in `stats conns` ("UDP UDP", the address, conn_read) and
//! in the connection counters. At -vv requests and answers are logged as over TCP. Memory
//! per thread is the 64 KiB read buffer and one command's answer, of which a get holds at
//! most `SPILL_AT` and one value.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use super::{listener, traffic, Shared, HANDLER_STACK};
use crate::config::Settings;
use crate::daemon;
use crate::log;
use crate::net;
use crate::protocol::binary::{self, Handled};
use crate::protocol::{execute, text, Next, Parsed, Request};
use crate::stats::{ConnRecord, Counter, LocalCounts};
use crate::storage::clock;

/// The frame header's size.
const HEADER: usize = 8;
/// memcached's datagrams are at most 1400 bytes, header included.
const DATAGRAM: usize = 1400;
/// Answer bytes per datagram after the header.
const PAYLOAD: usize = DATAGRAM - HEADER;
/// The largest datagram read: any UDP payload fits.
const READ_BUFFER: usize = 64 * 1024;

/// A bound UDP socket and its `stats conns`-style name.
pub struct UdpListener {
    socket: UdpSocket,
    name: String,
}

impl UdpListener {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

/// Binds the UDP sockets `-U` asks for (none for `-U 0` or with `-s`, as memcached). The
/// error is the line memcached prints.
pub fn bind_all(settings: &Settings) -> Result<Vec<UdpListener>, String> {
    let (Some(port), None) = (settings.udp_port.to_bind(), &settings.socket_path) else {
        return Ok(Vec::new());
    };
    let fail = |e: io::Error| format!("failed to listen on UDP port {port}: {}", daemon::strerror(&e));
    if settings.listen.is_empty() {
        let any = [SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))];
        return bind_addresses(&any).map_err(fail);
    }
    // With -l, memcached names the interfaces, as for TCP.
    let fail = |e: io::Error| format!("failed to listen on one of interface(s) {}: {}", settings.listen.join(","), daemon::strerror(&e));
    let mut bound = Vec::new();
    for entry in &settings.listen {
        let mut more = net::resolve(entry, port).and_then(|addrs| bind_addresses(&addrs)).map_err(fail)?;
        bound.append(&mut more);
    }
    Ok(bound)
}

/// Binds each address; a conflict is forgiven as for TCP when another address is bound.
fn bind_addresses(addrs: &[SocketAddr]) -> io::Result<Vec<UdpListener>> {
    let mut bound = Vec::new();
    let mut forgiven = None;
    for &addr in addrs {
        match daemon::bind_udp(addr).and_then(|socket| Ok((socket.local_addr()?, socket))) {
            Ok((local, socket)) => bound.push(UdpListener { socket, name: udp_name(local) }),
            Err(e) if listener::forgivable(&e, addr) => forgiven = forgiven.or(Some(e)),
            Err(e) => return Err(e),
        }
    }
    match (bound.is_empty(), forgiven) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(io::Error::new(io::ErrorKind::NotFound, "no address to listen on")),
        (false, _) => Ok(bound),
    }
}

/// memcached's form of a UDP address: "udp:1.2.3.4:5" or "udp6:[::1]:5".
fn udp_name(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("udp:{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("udp6:[{}]:{}", a.ip(), a.port()),
    }
}

/// Starts `-t` threads on each socket. They are not joined: like open TCP connections they
/// end with the process.
pub fn start(shared: &Arc<Shared>, sockets: Vec<UdpListener>) -> io::Result<()> {
    for udp in sockets {
        // Each thread reads its own descriptor of the socket (the first the socket's, the
        // others duplicates), as memcached's workers do, and is a connection under it.
        let mut descriptors = Vec::new();
        for _ in 1..shared.settings.threads.max(1) {
            descriptors.push(udp.socket.try_clone()?);
        }
        descriptors.insert(0, udp.socket);
        for socket in descriptors {
            let fd = socket.as_raw_fd();
            let record = shared.conns.register_udp(fd, udp.name.clone(), clock::now());
            shared.count_server_connection();
            log::line(log::STATE, format_args!("<{fd} server listening (udp)"));
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name(format!("udp {}", udp.name))
                .stack_size(HANDLER_STACK)
                .spawn(move || serve(&socket, &record, &shared))?;
        }
    }
    Ok(())
}

/// Reads datagrams for ever, answering each request.
fn serve(socket: &UdpSocket, record: &ConnRecord, shared: &Shared) {
    let mut buf = vec![0; READ_BUFFER];
    let mut local = LocalCounts::default();
    loop {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            // A failed read (an ICMP error reported for an earlier send, a signal) concerns
            // no request: read the next one.
            Err(_) => continue,
        };
        if n <= HEADER {
            continue;
        }
        local.add(Counter::BytesRead, n as u64);
        record.touch(clock::now());
        let datagram = &buf[..n];
        let id = [datagram[0], datagram[1]];
        if datagram[4..6] == [0, 1] && datagram[HEADER] == binary::REQUEST_MAGIC {
            answer_binary(&datagram[HEADER..], id, socket, peer, shared, &mut local);
        } else if datagram[4..6] == [0, 1] {
            answer_request(&datagram[HEADER..], id, socket, peer, shared, &mut local);
        }
        local.fold_into(&shared.stats);
    }
}

/// Executes every command of one request, sending each command's answer.
fn answer_request(mut input: &[u8], id: [u8; 2], socket: &UdpSocket, peer: SocketAddr, shared: &Shared, local: &mut LocalCounts) {
    let ctx = shared.context();
    let fd = socket.as_raw_fd();
    let cache = &shared.cache;
    let item_fits = |key_len: usize, value_len: usize| cache.item_fits(key_len, value_len);
    let mut out = Vec::new();
    let reply = Reply { id, socket, peer, written: Cell::new(0) };
    while !input.is_empty() {
        let (used, go_on) = match text::parse(input, &shared.limits, &item_fits) {
            Parsed::Incomplete => break,
            Parsed::Command { request, consumed, swallow } => {
                let logging = log::enabled(log::TRAFFIC);
                let mut logged = traffic::Answer::default();
                let next = match request {
                    Request::Get { keys, cas, touch } => {
                        let ends = keys.first().zip(keys.last()).map(|(first, last)| (first.to_vec(), last.to_vec()));
                        let mut frames = GetFrames::new(&reply, logging.then_some(&mut logged));
                        execute::get_part(keys, cas, touch, &ctx, local, &mut out, &mut frames);
                        frames.finish(&mut out, ends);
                        Next::Continue
                    }
                    other => {
                        let mut pending = Vec::new();
                        let next = execute::execute(other, &ctx, local, &mut out, &mut |part| {
                            if logging {
                                logged.add(part);
                            }
                            pending.append(part);
                        });
                        if logging {
                            logged.add(&out);
                        }
                        pending.append(&mut out);
                        // `quit` sends a bare header, as memcached does.
                        if next == Next::Close {
                            reply.send_frames(&[]);
                        } else {
                            reply.send(&pending);
                        }
                        next
                    }
                };
                if logging {
                    traffic::text(fd, &input[..consumed.min(input.len())], &logged);
                }
                (consumed.saturating_add(swallow), next == Next::Continue && consumed > 0)
            }
            Parsed::Invalid { reply: line, consumed, swallow, close } => {
                traffic::text(fd, &input[..consumed.min(input.len())], &traffic::Answer::line(line));
                if !line.is_empty() {
                    reply.send(format!("{line}\r\n").as_bytes());
                }
                (consumed.saturating_add(swallow), !close && consumed > 0)
            }
        };
        input = &input[used.min(input.len())..];
        if !go_on {
            break;
        }
    }
    local.add(Counter::BytesWritten, reply.written.get());
}

/// Carries out every binary request of one datagram, sending each answer in its own frames.
fn answer_binary(mut input: &[u8], id: [u8; 2], socket: &UdpSocket, peer: SocketAddr, shared: &Shared, local: &mut LocalCounts) {
    let ctx = shared.context();
    let fd = socket.as_raw_fd();
    let mut out = Vec::new();
    let reply = Reply { id, socket, peer, written: Cell::new(0) };
    // memcached answers nothing to bytes after the last request that are no request.
    while input.first() == Some(&binary::REQUEST_MAGIC) {
        let Handled::Done { consumed, swallow, next } = binary::handle(input, shared.settings.item_size_max, &ctx, local, &mut out) else {
            break;
        };
        traffic::binary(fd, input, &out, next);
        // A silent answer is still a bare header, as memcached sends it.
        reply.send_frames(&out);
        out.clear();
        // A body left to discard lies beyond this datagram: nothing after it is a request.
        if next == Next::Close || swallow > 0 || consumed == 0 {
            break;
        }
        input = &input[consumed.min(input.len())..];
    }
    local.add(Counter::BytesWritten, reply.written.get());
}

/// Where a request's answers go.
struct Reply<'a> {
    id: [u8; 2],
    socket: &'a UdpSocket,
    peer: SocketAddr,
    /// Bytes sent, for `bytes_written` (a get's values go out while it runs).
    written: Cell<u64>,
}

impl Reply<'_> {
    /// Sends one answer, if not empty.
    fn send(&self, answer: &[u8]) {
        if !answer.is_empty() {
            self.send_frames(answer);
        }
    }

    /// Sends `answer` in datagrams of `DATAGRAM` bytes, each with the request id, its
    /// sequence number and the count (which, as in memcached, stops at u16::MAX).
    fn send_frames(&self, answer: &[u8]) {
        let total = u16::try_from(answer.len().div_ceil(PAYLOAD)).unwrap_or(u16::MAX);
        let mut datagram = Vec::with_capacity(DATAGRAM);
        let mut seq = 0u16;
        let mut chunks = answer.chunks(PAYLOAD);
        loop {
            let chunk = chunks.next();
            if chunk.is_none() && seq > 0 {
                break;
            }
            datagram.clear();
            datagram.extend_from_slice(&self.id);
            datagram.extend_from_slice(&seq.to_be_bytes());
            datagram.extend_from_slice(&total.to_be_bytes());
            datagram.extend_from_slice(&[0, 0]);
            datagram.extend_from_slice(chunk.unwrap_or_default());
            // A lost datagram is UDP's risk, which the client's reassembly detects.
            if self.socket.send_to(&datagram, self.peer).is_ok() {
                self.written.set(self.written.get() + datagram.len() as u64);
            }
            seq = seq.wrapping_add(1);
            if chunk.is_none() {
                break;
            }
        }
    }
}

/// A get's answer on its way out, framed as memcached frames it (see the module doc): a value
/// another follows goes out as the get spills; the last one waits for the end, which decides
/// whether "END" goes with it.
struct GetFrames<'a, 'r> {
    reply: &'a Reply<'r>,
    /// What is not sent yet: whole VALUE blocks, then (at the end) "END".
    pending: Vec<u8>,
    /// The length and key of each VALUE block not sent yet, in order (in `pending`, then in
    /// the get's output).
    blocks: VecDeque<(usize, Vec<u8>)>,
    /// The key of the get's first value, sent or not.
    first_found: Option<Vec<u8>>,
    logged: Option<&'a mut traffic::Answer>,
}

impl execute::GetSink for GetFrames<'_, '_> {
    fn value(&mut self, key: &[u8], len: usize) {
        self.first_found.get_or_insert_with(|| key.to_vec());
        self.blocks.push_back((len, key.to_vec()));
        if let Some(logged) = &mut self.logged {
            logged.found(key);
        }
    }

    fn offer(&mut self, out: &mut Vec<u8>) -> bool {
        if let Some(logged) = &mut self.logged {
            logged.add(out);
        }
        self.pending.append(out);
        while self.blocks.len() > 1 {
            let Some((len, _)) = self.blocks.pop_front() else {
                break;
            };
            self.reply.send(&self.pending[..len]);
            self.pending.drain(..len);
        }
        true
    }
}

impl<'a, 'r> GetFrames<'a, 'r> {
    fn new(reply: &'a Reply<'r>, logged: Option<&'a mut traffic::Answer>) -> Self {
        GetFrames { reply, pending: Vec::new(), blocks: VecDeque::new(), first_found: None, logged }
    }

    /// Sends the rest of the answer: `out`, the get's last output, holds "END". `ends` are
    /// the get's first and last keys.
    fn finish(mut self, out: &mut Vec<u8>, ends: Option<(Vec<u8>, Vec<u8>)>) {
        if let Some(logged) = &mut self.logged {
            logged.add(out);
        }
        self.pending.append(out);
        let Some((first_key, last_key)) = ends else {
            return self.reply.send(&self.pending);
        };
        // memcached sends a bare header first when the first key was missed but the last
        // found.
        let last = self.blocks.back().map(|(_, key)| key.as_slice());
        if self.first_found.as_ref() != Some(&first_key) && last == Some(last_key.as_slice()) {
            self.reply.send_frames(&[]);
        }
        let mut rest = self.pending.as_slice();
        while let Some((len, key)) = self.blocks.pop_front() {
            if self.blocks.is_empty() && key == last_key {
                break;
            }
            self.reply.send(&rest[..len]);
            rest = &rest[len..];
        }
        self.reply.send(rest);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::net::UdpSocket;
    use std::time::Duration;

    use super::{GetFrames, Reply, HEADER};
    use crate::protocol::execute::GetSink;

    /// The server's socket and a client's.
    fn sockets() -> (UdpSocket, UdpSocket) {
        let (server, client) = (UdpSocket::bind("127.0.0.1:0").unwrap(), UdpSocket::bind("127.0.0.1:0").unwrap());
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (server, client)
    }

    /// What the client receives: each datagram's count and payload.
    fn received(client: &UdpSocket, n: usize) -> Vec<(u16, Vec<u8>)> {
        let mut buf = [0u8; 2048];
        (0..n)
            .map(|_| {
                let len = client.recv(&mut buf).unwrap();
                (u16::from_be_bytes([buf[4], buf[5]]), buf[HEADER..len].to_vec())
            })
            .collect()
    }

    #[test]
    fn a_spilled_get_sends_each_value_another_follows_and_ends_with_the_last() {
        let (server, client) = sockets();
        let reply = Reply { id: [0, 9], socket: &server, peer: client.local_addr().unwrap(), written: Cell::new(0) };
        let mut frames = GetFrames::new(&reply, None);
        let mut out = Vec::new();
        for key in ["a", "b"] {
            out.extend_from_slice(format!("VALUE {key} 0 1\r\nv\r\n").as_bytes());
            frames.value(key.as_bytes(), 16);
        }
        assert!(frames.offer(&mut out));
        assert!(out.is_empty(), "an offer takes all");
        assert_eq!(received(&client, 1), [(1, b"VALUE a 0 1\r\nv\r\n".to_vec())], "b waits: it may be the last");
        out.extend_from_slice(b"VALUE c 0 1\r\nv\r\nEND\r\n");
        frames.value(b"c", 16);
        frames.finish(&mut out, Some((b"a".to_vec(), b"c".to_vec())));
        assert_eq!(received(&client, 2), [(1, b"VALUE b 0 1\r\nv\r\n".to_vec()), (1, b"VALUE c 0 1\r\nv\r\nEND\r\n".to_vec())]);
    }

    #[test]
    fn a_get_whose_first_key_missed_and_last_was_found_starts_with_a_bare_header() {
        let (server, client) = sockets();
        let reply = Reply { id: [0, 9], socket: &server, peer: client.local_addr().unwrap(), written: Cell::new(0) };
        let mut frames = GetFrames::new(&reply, None);
        let mut out = b"VALUE b 0 1\r\nv\r\nEND\r\n".to_vec();
        frames.value(b"b", 16);
        frames.finish(&mut out, Some((b"a".to_vec(), b"b".to_vec())));
        assert_eq!(received(&client, 2), [(0, Vec::new()), (1, b"VALUE b 0 1\r\nv\r\nEND\r\n".to_vec())]);
        assert_eq!(reply.written.get(), 8 + 8 + 21, "bytes_written counts headers too");
    }
}
