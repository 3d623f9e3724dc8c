//! `-U`: the text and binary protocols over UDP with memcached's 8-byte frame header, answers cut into
//! datagrams of 1400 bytes (header included), datagrams it must drop, and each UDP thread as a
//! connection in `stats conns` and the connection counters. Also runs against memcached
//! (`MEMCACHEDREP_TEST_SERVER=/usr/bin/memcached`).

mod common;

use common::{free_port, wait_until, Server, IO_TIMEOUT};
use std::net::UdpSocket;

/// Answer bytes per datagram after the header: memcached's datagrams are 1400 bytes whole.
const PAYLOAD: usize = 1400 - 8;

/// A server with UDP on a free port, and a client socket talking to it.
fn start() -> (Server, UdpSocket) {
    let udp_port = free_port().to_string();
    let server = Server::start(&["-U", &udp_port]);
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    client.connect(("127.0.0.1", udp_port.parse::<u16>().unwrap())).expect("connect");
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    (server, client)
}

fn frame(id: u16, seq: u16, total: u16, payload: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::new();
    for field in [id, seq, total, 0] {
        datagram.extend_from_slice(&field.to_be_bytes());
    }
    datagram.extend_from_slice(payload);
    datagram
}

/// One datagram's header fields and payload.
fn receive(client: &UdpSocket) -> ([u16; 4], Vec<u8>) {
    let mut buf = vec![0; 65536];
    let n = client.recv(&mut buf).expect("an answer datagram");
    assert!(n >= 8, "short datagram of {n} bytes");
    let field = |i: usize| u16::from_be_bytes([buf[2 * i], buf[2 * i + 1]]);
    ([field(0), field(1), field(2), field(3)], buf[8..n].to_vec())
}

/// Sends one request and reassembles a whole answer by sequence number, checking that every
/// datagram carries the request id and the same count.
fn request(client: &UdpSocket, id: u16, payload: &[u8]) -> Vec<u8> {
    client.send(&frame(id, 0, 1, payload)).unwrap();
    let ([rid, seq, total, reserved], first) = receive(client);
    assert_eq!((rid, reserved), (id, 0));
    let mut parts: Vec<Option<Vec<u8>>> = vec![None; usize::from(total)];
    parts[usize::from(seq)] = Some(first);
    for _ in 1..total {
        let ([rid, seq, count, _], part) = receive(client);
        assert_eq!((rid, count), (id, total));
        assert!(parts[usize::from(seq)].replace(part).is_none(), "sequence number {seq} twice");
    }
    for (seq, part) in parts.iter().enumerate() {
        let len = part.as_ref().expect("every sequence number").len();
        if seq + 1 < parts.len() {
            assert_eq!(len, PAYLOAD, "datagram {seq} not full");
        }
    }
    parts.into_iter().flatten().flatten().collect()
}

#[test]
fn set_and_get_over_udp() {
    let (server, client) = start();
    assert_eq!(request(&client, 1, b"set k 5 0 3\r\nabc\r\n"), b"STORED\r\n");
    assert_eq!(request(&client, 2, b"get k\r\n"), b"VALUE k 5 3\r\nabc\r\nEND\r\n");
    // The value is the same one TCP sees.
    assert_eq!(server.connect().get("k"), Some(b"abc".to_vec()));
    // Each command of a request is answered in its own datagram.
    client.send(&frame(3, 0, 1, b"get k\r\nversion\r\n")).unwrap();
    let (first, body) = receive(&client);
    assert_eq!((first, body.as_slice()), ([3, 0, 1, 0], &b"VALUE k 5 3\r\nabc\r\nEND\r\n"[..]));
    let (second, body) = receive(&client);
    assert_eq!(second, [3, 0, 1, 0]);
    assert!(body.starts_with(b"VERSION "), "{body:?}");
}

#[test]
fn a_multi_get_is_framed_value_by_value() {
    let (_server, client) = start();
    assert_eq!(request(&client, 1, b"set k 0 0 1\r\nv\r\n"), b"STORED\r\n");
    // Each value on its own; "END" with the last one when the last key was found.
    client.send(&frame(2, 0, 1, b"get k nope k\r\n")).unwrap();
    assert_eq!(receive(&client), ([2, 0, 1, 0], b"VALUE k 0 1\r\nv\r\n".to_vec()));
    assert_eq!(receive(&client), ([2, 0, 1, 0], b"VALUE k 0 1\r\nv\r\nEND\r\n".to_vec()));
    client.send(&frame(3, 0, 1, b"get k nope\r\n")).unwrap();
    assert_eq!(receive(&client), ([3, 0, 1, 0], b"VALUE k 0 1\r\nv\r\n".to_vec()));
    assert_eq!(receive(&client), ([3, 0, 1, 0], b"END\r\n".to_vec()));
    // A first key missed and a last one found: memcached sends a bare header first.
    client.send(&frame(4, 0, 1, b"get nope k\r\n")).unwrap();
    assert_eq!(receive(&client), ([4, 0, 0, 0], Vec::new()));
    assert_eq!(receive(&client), ([4, 0, 1, 0], b"VALUE k 0 1\r\nv\r\nEND\r\n".to_vec()));
    // quit answers a bare header and ends the request.
    client.send(&frame(5, 0, 1, b"quit\r\nget k\r\n")).unwrap();
    assert_eq!(receive(&client), ([5, 0, 0, 0], Vec::new()));
    assert_eq!(request(&client, 6, b"get nope\r\n"), b"END\r\n");
}

#[test]
fn a_large_value_comes_back_in_numbered_datagrams() {
    let (server, client) = start();
    let value: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    server.connect().set("big", 0, 0, &value);
    let answer = request(&client, 0xBEEF, b"get big\r\n");
    let mut expected = b"VALUE big 0 10000\r\n".to_vec();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\nEND\r\n");
    assert_eq!(answer.len(), expected.len());
    assert!(answer == expected, "reassembled answer differs");
    assert_eq!(expected.len().div_ceil(PAYLOAD), 8);
}

#[test]
fn bad_datagrams_do_no_harm() {
    let (server, client) = start();
    let mut tcp = server.connect();
    let read_before: u64 = tcp.stat("", "bytes_read").parse().unwrap();
    // Too short for a header, a bare header, a request announced in two datagrams: dropped.
    client.send(b"abc").unwrap();
    client.send(&frame(9, 0, 0, b"")).unwrap();
    client.send(&frame(9, 0, 2, b"set x 0 0 1\r\nx\r\n")).unwrap();
    // A command cut off by the end of its datagram: dropped too.
    client.send(&frame(9, 0, 1, b"get x")).unwrap();
    // Garbage gets memcached's answer.
    assert_eq!(request(&client, 10, b"\x01\x02garbage\r\n"), b"ERROR\r\n");
    assert_eq!(request(&client, 11, b"get x\r\n"), b"END\r\n");
    // The datagrams read are counted, whole; those of 8 bytes or less are not.
    let read = frame(9, 0, 2, b"set x 0 0 1\r\nx\r\n").len() + 8 + 5 + 8 + 11 + 8 + 7;
    // Every `stats` over TCP reads its own 7 bytes as well.
    let mut polls = 0;
    wait_until("bytes_read to count the datagrams", IO_TIMEOUT, || {
        polls += 1;
        let now: u64 = tcp.stat("", "bytes_read").parse().unwrap();
        now >= read_before + read as u64 + 7 * polls
    });
    assert_eq!(tcp.cmd("version").split(' ').next(), Some("VERSION"));
}

/// A binary request: opcode, key, extras and value, with opaque 7 and no CAS.
fn binary(opcode: u8, key: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + extras.len() + value.len();
    let mut packet = vec![0x80, opcode];
    packet.extend_from_slice(&(key.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[extras.len() as u8, 0, 0, 0]);
    packet.extend_from_slice(&(body as u32).to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0, 7]);
    packet.extend_from_slice(&[0; 8]);
    for part in [extras, key, value] {
        packet.extend_from_slice(part);
    }
    packet
}

/// A binary answer's opcode, status and body, the CAS left out (it is the server's own).
fn binary_answer(answer: &[u8]) -> (u8, u16, Vec<u8>) {
    assert!(answer.len() >= 24 && answer[0] == 0x81, "{answer:?}");
    assert_eq!(answer[12..16], [0, 0, 0, 7], "opaque");
    let body = u32::from_be_bytes([answer[8], answer[9], answer[10], answer[11]]) as usize;
    assert_eq!(answer.len(), 24 + body, "one whole answer");
    (answer[1], u16::from_be_bytes([answer[6], answer[7]]), answer[24..].to_vec())
}

#[test]
fn binary_requests_over_udp() {
    let (server, client) = start();
    // set k, flags 5: each binary answer is framed on its own.
    let set = binary(0x01, b"k", &[0, 0, 0, 5, 0, 0, 0, 0], b"abc");
    assert_eq!(binary_answer(&request(&client, 1, &set)), (0x01, 0, Vec::new()));
    assert_eq!(binary_answer(&request(&client, 2, &binary(0x00, b"k", &[], &[]))), (0x00, 0, b"\0\0\0\x05abc".to_vec()));
    assert_eq!(server.connect().get("k"), Some(b"abc".to_vec()));
    // Several requests in one datagram: one answer each; a getq miss sends a bare header.
    let mut payload = binary(0x09, b"nope", &[], &[]);
    payload.extend_from_slice(&binary(0x00, b"nope", &[], &[]));
    payload.extend_from_slice(&binary(0x0a, b"", &[], &[]));
    client.send(&frame(3, 0, 1, &payload)).unwrap();
    assert_eq!(receive(&client), ([3, 0, 0, 0], Vec::new()));
    let ([id, seq, total, _], missed) = receive(&client);
    assert_eq!((id, seq, total), (3, 0, 1));
    assert_eq!(binary_answer(&missed), (0x00, 1, b"Not found".to_vec()));
    let ([id, _, total, _], noop) = receive(&client);
    assert_eq!((id, total), (3, 1));
    assert_eq!(binary_answer(&noop), (0x0a, 0, Vec::new()));
    // A value larger than a datagram comes back in numbered datagrams.
    let value = vec![b'x'; 3000];
    let set = binary(0x01, b"big", &[0; 8], &value);
    assert_eq!(binary_answer(&request(&client, 4, &set)).1, 0);
    let mut expected = vec![0; 4];
    expected.extend_from_slice(&value);
    assert_eq!(binary_answer(&request(&client, 5, &binary(0x00, b"big", &[], &[]))), (0x00, 0, expected));
    // Text still works on the same socket.
    assert_eq!(request(&client, 6, b"get k\r\n"), b"VALUE k 5 3\r\nabc\r\nEND\r\n");
}

#[test]
fn each_udp_thread_is_a_connection_in_stats_conns_and_the_counters() {
    let udp_port = free_port().to_string();
    let server = Server::start(&["-U", &udp_port, "-t", "2"]);
    let mut first = server.connect();
    // Two UDP threads and this client (memcached counts every connection less its listener);
    // the harness's readiness probe was a connection too: wait until its close is counted.
    wait_until("the probe's close", IO_TIMEOUT, || first.stat("", "curr_connections") == "3");
    let _second = server.connect();
    wait_until("the second client", IO_TIMEOUT, || first.stat("", "curr_connections") == "4");
    // The listener, two UDP threads, the probe and two clients.
    assert_eq!(first.stat("", "total_connections"), "6");
    let structures: u64 = first.stat("", "connection_structures").parse().unwrap();
    assert!((5..=6).contains(&structures), "connection_structures {structures}");
    // Each UDP thread: "UDP UDP" (sic), its address, conn_read, its idle seconds.
    let conns = first.stats("conns");
    let udp_fds: Vec<&str> = conns
        .iter()
        .filter(|(name, value)| name.ends_with(":UDP") && value == "UDP")
        .map(|(name, _)| name.trim_end_matches(":UDP"))
        .collect();
    assert_eq!(udp_fds.len(), 2, "{conns:?}");
    for fd in udp_fds {
        let fields: Vec<(&str, &str)> =
            conns.iter().filter_map(|(name, value)| Some((name.strip_prefix(fd)?.strip_prefix(':')?, value.as_str()))).collect();
        assert_eq!(fields.len(), 4, "{fields:?}");
        assert_eq!(fields[..3], [("UDP", "UDP"), ("addr", &format!("udp:127.0.0.1:{udp_port}")[..]), ("state", "conn_read")]);
        assert_eq!(fields[3].0, "secs_since_last_cmd");
    }
    // A client that has sent nothing yet is conn_new_cmd.
    let states: Vec<&str> = conns.iter().filter(|(name, _)| name.ends_with(":state")).map(|(_, value)| value.as_str()).collect();
    assert!(states.contains(&"conn_new_cmd"), "{states:?}");
}
