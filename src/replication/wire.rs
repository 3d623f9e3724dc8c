//! The replication wire format: frames to bytes and bytes to frames, with strict bounds. It
//! never panics on garbage: a bad frame is an error, which closes the link (never the server).
//! Knows nothing of sockets beyond reading one frame from a `Read`, nor of the cache.
//!
//! Wire version 2. Every frame is
//!
//! ```text
//! +---------+---------------------------+-------------------+
//! | type u8 | payload length u32 (BE)   | payload           |
//! +---------+---------------------------+-------------------+
//! ```
//!
//! with a payload of at most `item_size_max + 1 KiB`. All integers are big-endian. Payloads:
//!
//! | type | name       | payload                                                               |
//! |------|------------|-----------------------------------------------------------------------|
//! | 1    | HELLO      | "MCREP", wire version u16 (2), instance id u64, max version held u64, |
//! |      |            | highest version received from the instance in the next field u64,     |
//! |      |            | the peer's instance id as last known u64 (0: none)                    |
//! | 2    | ITEM       | key length u8 (1..=250), key, flags u32, absolute exptime u32,        |
//! |      |            | version u64, marks u8 (1 stale, 2 win token sent, 4 base64 key),      |
//! |      |            | value length u32, value                                               |
//! | 3    | DELETE     | key length u8, key, version u64 (a tombstone)                         |
//! | 4    | FLUSH      | applied threshold u64, pending threshold u64, pending unix time u32   |
//! |      |            | (0: no pending flush)                                                 |
//! | 5    | SYNC_END   | empty: the sender's catch-up sync is complete                         |
//! | 6    | ACK        | u64: data frames (ITEM, DELETE, FLUSH, SYNC_END) received so far on   |
//! |      |            | this connection                                                       |
//! | 7    | PING       | empty: keeps an idle link's read timeout from expiring                |
//! | 8    | DELTA_REQ  | request id u64, op u8 (0 incr, 1 decr), amount u64, cas given u8      |
//! |      |            | (0/1), cas u64 (0 unless given), key length u8, key: run this         |
//! |      |            | incr/decr here, the key's owner, and answer it                        |
//! | 9    | DELTA_RESP | request id u64, outcome u8 (0 value, 1 not found, 2 non-numeric,      |
//! |      |            | 3 out of memory, 4 cas mismatch), value u64, the resulting item's     |
//! |      |            | version u64 (0: not held), flags u32, absolute exptime u32, marks u8, |
//! |      |            | value length u32, value; all of it after the outcome is zero/empty    |
//! |      |            | unless the outcome is a value                                         |
//!
//! An ITEM whose version equals the receiver's is the same write marked since (a win token
//! handed out keeps the version): the receiver merges the marks.
//!
//! DELTA_REQ and DELTA_RESP are not data frames (ACKs do not count them): a response is an
//! answer to one waiting client, while the key's new state also travels as an ITEM. A
//! DELTA_REQ follows the requester's current ITEM or DELETE of the key (when it holds one),
//! so the owner runs it on at least the state the requester's client has seen.
//!
//! The dialing end sends HELLO first; the accepting end answers with its own HELLO only after
//! a valid one (a stranger learns nothing). Every other frame may then flow either way. A
//! payload must be exactly as long as its fields; keys hold no spaces or control bytes.

use std::io::{self, Read};

use crate::storage::replica::{Entry, FlushState, MARKS};
use crate::storage::{DeltaOp, DeltaOutcome};

/// The handshake's magic.
pub const MAGIC: &[u8; 5] = b"MCREP";
/// The version of this format, sent in HELLO; a peer speaking another is refused.
pub const WIRE_VERSION: u16 = 2;
/// Type byte and length.
pub const HEADER_LEN: usize = 5;
/// The largest payload read while waiting for a HELLO (which has 39 bytes).
pub const HELLO_MAX: usize = 64;
/// Room for a frame's fields around the largest value.
pub const FRAME_OVERHEAD: usize = 1024;

const HELLO: u8 = 1;
const ITEM: u8 = 2;
const DELETE: u8 = 3;
const FLUSH: u8 = 4;
const SYNC_END: u8 = 5;
const ACK: u8 = 6;
const PING: u8 = 7;
const DELTA_REQ: u8 = 8;
const DELTA_RESP: u8 = 9;

const OUTCOME_VALUE: u8 = 0;
const OUTCOME_NOT_FOUND: u8 = 1;
const OUTCOME_NON_NUMERIC: u8 = 2;
const OUTCOME_NO_MEMORY: u8 = 3;
const OUTCOME_EXISTS: u8 = 4;

/// The handshake's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub instance: u64,
    pub max_version: u64,
    /// The highest version received from the instance `known_peer`.
    pub received: u64,
    pub known_peer: u64,
}

/// An incr/decr sent to the key's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaReq {
    pub id: u64,
    pub op: DeltaOp,
    pub amount: u64,
    /// Run only if the item has this cas unique.
    pub cas: Option<u64>,
    pub key: Vec<u8>,
}

/// The item an owner's incr/decr left (the key is the request's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaItem {
    pub version: u64,
    pub flags: u32,
    pub exptime: u32,
    /// `replica::MARK_*` bits.
    pub marks: u8,
    pub value: Vec<u8>,
}

/// The owner's answer to a `DeltaReq`. `item` is only ever set with a value outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaResp {
    pub id: u64,
    pub outcome: DeltaOutcome,
    pub item: Option<DeltaItem>,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    /// ITEM or DELETE.
    Entry(Entry),
    Flush(FlushState),
    SyncEnd,
    Ack(u64),
    Ping,
    DeltaReq(DeltaReq),
    DeltaResp(DeltaResp),
}

impl Frame {
    /// Whether the receiver counts it in its ACK.
    pub fn is_data(&self) -> bool {
        matches!(self, Frame::Entry(_) | Frame::Flush(_) | Frame::SyncEnd)
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    UnknownType(u8),
    TooLarge(usize),
    BadMagic,
    BadVersion(u16),
    /// A payload whose fields do not add up, or a bad key.
    Malformed(u8),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            WireError::UnknownType(t) => write!(f, "unknown frame type {t}"),
            WireError::TooLarge(n) => write!(f, "frame of {n} bytes is too large"),
            WireError::BadMagic => write!(f, "bad magic"),
            WireError::BadVersion(v) => write!(f, "wire version {v}, expected {WIRE_VERSION}"),
            WireError::Malformed(t) => write!(f, "malformed frame of type {t}"),
        }
    }
}

/// Appends the frame's bytes to `out`. Entries come from the cache, so their keys and values
/// fit the format (a key of at most 250 bytes, a value under 4 GiB).
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let kind = match frame {
        Frame::Hello(h) => {
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&WIRE_VERSION.to_be_bytes());
            for n in [h.instance, h.max_version, h.received, h.known_peer] {
                out.extend_from_slice(&n.to_be_bytes());
            }
            HELLO
        }
        Frame::Entry(Entry::Item { key, flags, exptime, version, marks, value }) => {
            push_key(out, key);
            out.extend_from_slice(&flags.to_be_bytes());
            out.extend_from_slice(&exptime.to_be_bytes());
            out.extend_from_slice(&version.to_be_bytes());
            out.push(*marks);
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
            ITEM
        }
        Frame::Entry(Entry::Deleted { key, version }) => {
            push_key(out, key);
            out.extend_from_slice(&version.to_be_bytes());
            DELETE
        }
        Frame::Flush(state) => {
            let (threshold, at) = state.pending.unwrap_or((0, 0));
            out.extend_from_slice(&state.applied.to_be_bytes());
            out.extend_from_slice(&threshold.to_be_bytes());
            out.extend_from_slice(&at.to_be_bytes());
            FLUSH
        }
        Frame::SyncEnd => SYNC_END,
        Frame::Ack(n) => {
            out.extend_from_slice(&n.to_be_bytes());
            ACK
        }
        Frame::Ping => PING,
        Frame::DeltaReq(req) => {
            out.extend_from_slice(&req.id.to_be_bytes());
            out.push(match req.op {
                DeltaOp::Incr => 0,
                DeltaOp::Decr => 1,
            });
            out.extend_from_slice(&req.amount.to_be_bytes());
            out.push(u8::from(req.cas.is_some()));
            out.extend_from_slice(&req.cas.unwrap_or(0).to_be_bytes());
            push_key(out, &req.key);
            DELTA_REQ
        }
        Frame::DeltaResp(resp) => {
            out.extend_from_slice(&resp.id.to_be_bytes());
            let (outcome, value) = match resp.outcome {
                DeltaOutcome::Value(v) => (OUTCOME_VALUE, v),
                DeltaOutcome::NotFound => (OUTCOME_NOT_FOUND, 0),
                DeltaOutcome::NonNumeric => (OUTCOME_NON_NUMERIC, 0),
                DeltaOutcome::NoMemory => (OUTCOME_NO_MEMORY, 0),
                DeltaOutcome::Exists => (OUTCOME_EXISTS, 0),
            };
            out.push(outcome);
            out.extend_from_slice(&value.to_be_bytes());
            let empty = DeltaItem { version: 0, flags: 0, exptime: 0, marks: 0, value: Vec::new() };
            let item = resp.item.as_ref().filter(|_| outcome == OUTCOME_VALUE).unwrap_or(&empty);
            out.extend_from_slice(&item.version.to_be_bytes());
            out.extend_from_slice(&item.flags.to_be_bytes());
            out.extend_from_slice(&item.exptime.to_be_bytes());
            out.push(item.marks);
            out.extend_from_slice(&(item.value.len() as u32).to_be_bytes());
            out.extend_from_slice(&item.value);
            DELTA_RESP
        }
    };
    let len = (out.len() - start - HEADER_LEN) as u32;
    out[start] = kind;
    out[start + 1..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

fn push_key(out: &mut Vec<u8>, key: &[u8]) {
    out.push(key.len() as u8);
    out.extend_from_slice(key);
}

/// Checks a header: the type and the payload length it announces.
fn header(bytes: [u8; HEADER_LEN], max_payload: usize) -> Result<(u8, usize), WireError> {
    let kind = bytes[0];
    if !(HELLO..=DELTA_RESP).contains(&kind) {
        return Err(WireError::UnknownType(kind));
    }
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    if len > max_payload {
        return Err(WireError::TooLarge(len));
    }
    Ok((kind, len))
}

/// Why reading a frame from a stream failed.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Wire(WireError),
}

/// Reads one whole frame; returns it and its size on the wire.
pub fn read_frame(reader: &mut impl Read, max_payload: usize) -> Result<(Frame, usize), ReadError> {
    let mut head = [0; HEADER_LEN];
    reader.read_exact(&mut head).map_err(ReadError::Io)?;
    let (kind, len) = header(head, max_payload).map_err(ReadError::Wire)?;
    let mut payload = vec![0; len];
    reader.read_exact(&mut payload).map_err(ReadError::Io)?;
    let frame = parse(kind, &payload).map_err(ReadError::Wire)?;
    Ok((frame, HEADER_LEN + len))
}

/// A cursor over a payload that fails instead of reading past its end.
struct Fields<'a> {
    rest: &'a [u8],
    kind: u8,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError::Malformed(self.kind));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut bytes = [0; N];
        bytes.copy_from_slice(self.take(N)?);
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        self.array::<1>().map(|[b]| b)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_be_bytes)
    }

    /// A marks byte: only known bits.
    fn marks(&mut self) -> Result<u8, WireError> {
        let marks = self.u8()?;
        if marks & !MARKS != 0 {
            return Err(WireError::Malformed(self.kind));
        }
        Ok(marks)
    }

    fn key(&mut self) -> Result<Vec<u8>, WireError> {
        let len = usize::from(self.u8()?);
        let key = self.take(len)?;
        let bad_byte = key.iter().any(|&b| b <= b' ' || b == 0x7f);
        if len == 0 || len > crate::storage::KEY_MAX_LENGTH || bad_byte {
            return Err(WireError::Malformed(self.kind));
        }
        Ok(key.to_vec())
    }

    /// Every byte must have been used.
    fn end<T>(self, value: T) -> Result<T, WireError> {
        if self.rest.is_empty() {
            Ok(value)
        } else {
            Err(WireError::Malformed(self.kind))
        }
    }
}

fn parse(kind: u8, payload: &[u8]) -> Result<Frame, WireError> {
    let mut f = Fields { rest: payload, kind };
    let frame = match kind {
        HELLO => {
            if f.take(MAGIC.len())? != MAGIC {
                return Err(WireError::BadMagic);
            }
            let version = u16::from_be_bytes(f.array()?);
            if version != WIRE_VERSION {
                return Err(WireError::BadVersion(version));
            }
            Frame::Hello(Hello { instance: f.u64()?, max_version: f.u64()?, received: f.u64()?, known_peer: f.u64()? })
        }
        ITEM => {
            let key = f.key()?;
            let (flags, exptime, version, marks) = (f.u32()?, f.u32()?, f.u64()?, f.marks()?);
            let len = f.u32()? as usize;
            let value = f.take(len)?.to_vec();
            Frame::Entry(Entry::Item { key, flags, exptime, version, marks, value })
        }
        DELETE => Frame::Entry(Entry::Deleted { key: f.key()?, version: f.u64()? }),
        FLUSH => {
            let (applied, threshold, at) = (f.u64()?, f.u64()?, f.u32()?);
            Frame::Flush(FlushState { applied, pending: (at != 0).then_some((threshold, at)) })
        }
        SYNC_END => Frame::SyncEnd,
        ACK => Frame::Ack(f.u64()?),
        PING => Frame::Ping,
        DELTA_REQ => {
            let (id, op) = (f.u64()?, f.u8()?);
            let op = match op {
                0 => DeltaOp::Incr,
                1 => DeltaOp::Decr,
                _ => return Err(WireError::Malformed(kind)),
            };
            let (amount, has_cas, cas) = (f.u64()?, f.u8()?, f.u64()?);
            let cas = match (has_cas, cas) {
                (0, 0) => None,
                (1, cas) => Some(cas),
                _ => return Err(WireError::Malformed(kind)),
            };
            Frame::DeltaReq(DeltaReq { id, op, amount, cas, key: f.key()? })
        }
        DELTA_RESP => {
            let (id, outcome, value) = (f.u64()?, f.u8()?, f.u64()?);
            let (version, flags, exptime, marks) = (f.u64()?, f.u32()?, f.u32()?, f.marks()?);
            let len = f.u32()? as usize;
            let bytes = f.take(len)?.to_vec();
            let item = (version != 0).then_some(DeltaItem { version, flags, exptime, marks, value: bytes });
            // Fields that a frame's outcome leaves unused must be zero, so that every
            // response has exactly one encoding.
            let unused_item = item.is_none() && (flags != 0 || exptime != 0 || marks != 0 || len != 0);
            let outcome = match outcome {
                OUTCOME_VALUE => DeltaOutcome::Value(value),
                _ if value != 0 || item.is_some() => return Err(WireError::Malformed(kind)),
                OUTCOME_NOT_FOUND => DeltaOutcome::NotFound,
                OUTCOME_NON_NUMERIC => DeltaOutcome::NonNumeric,
                OUTCOME_NO_MEMORY => DeltaOutcome::NoMemory,
                OUTCOME_EXISTS => DeltaOutcome::Exists,
                _ => return Err(WireError::Malformed(kind)),
            };
            if unused_item {
                return Err(WireError::Malformed(kind));
            }
            Frame::DeltaResp(DeltaResp { id, outcome, item })
        }
        other => return Err(WireError::UnknownType(other)),
    };
    f.end(frame)
}

#[cfg(test)]
mod tests {
    use super::{encode, header, parse, read_frame, DeltaItem, DeltaReq, DeltaResp, Frame, Hello, ReadError, WireError, HEADER_LEN};
    use crate::storage::replica::{Entry, FlushState, MARKS, MARK_KEY_BINARY};
    use crate::storage::{DeltaOp, DeltaOutcome};

    const MAX: usize = 1024 * 1024 + 1024;

    /// Decodes the frame at the front of `buf`: `Ok(None)` when more bytes are needed, else
    /// the frame and the bytes it used.
    fn decode(buf: &[u8], max_payload: usize) -> Result<Option<(Frame, usize)>, WireError> {
        let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let (kind, len) = header(*head, max_payload)?;
        match buf.get(HEADER_LEN..HEADER_LEN + len) {
            Some(payload) => Ok(Some((parse(kind, payload)?, HEADER_LEN + len))),
            None => Ok(None),
        }
    }

    fn samples() -> Vec<Frame> {
        vec![
            Frame::Hello(Hello { instance: 7, max_version: u64::MAX, received: 1 << 40, known_peer: 0 }),
            Frame::Entry(Entry::Item {
                key: b"k".to_vec(),
                flags: u32::MAX,
                exptime: 1_800_000_000,
                version: 99,
                marks: 0,
                value: b"a\r\nb".to_vec(),
            }),
            Frame::Entry(Entry::Item { key: vec![b'x'; 250], flags: 0, exptime: 0, version: 1, marks: MARKS, value: Vec::new() }),
            Frame::Entry(Entry::Deleted { key: b"gone".to_vec(), version: 5 }),
            Frame::Flush(FlushState { applied: 10, pending: None }),
            Frame::Flush(FlushState { applied: 0, pending: Some((20, 1_800_000_000)) }),
            Frame::SyncEnd,
            Frame::Ack(12345),
            Frame::Ping,
            Frame::DeltaReq(DeltaReq { id: 1, op: DeltaOp::Incr, amount: u64::MAX, cas: None, key: b"hits".to_vec() }),
            Frame::DeltaReq(DeltaReq { id: u64::MAX, op: DeltaOp::Decr, amount: 0, cas: Some(0), key: vec![b'k'; 250] }),
            Frame::DeltaResp(DeltaResp {
                id: 1,
                outcome: DeltaOutcome::Value(42),
                item: Some(DeltaItem {
                    version: 7 << 16,
                    flags: u32::MAX,
                    exptime: 1_800_000_000,
                    marks: MARK_KEY_BINARY,
                    value: b"42".to_vec(),
                }),
            }),
            Frame::DeltaResp(DeltaResp { id: 2, outcome: DeltaOutcome::Value(0), item: None }),
            Frame::DeltaResp(DeltaResp { id: 3, outcome: DeltaOutcome::NotFound, item: None }),
            Frame::DeltaResp(DeltaResp { id: 4, outcome: DeltaOutcome::NonNumeric, item: None }),
            Frame::DeltaResp(DeltaResp { id: 5, outcome: DeltaOutcome::NoMemory, item: None }),
            Frame::DeltaResp(DeltaResp { id: 6, outcome: DeltaOutcome::Exists, item: None }),
        ]
    }

    #[test]
    fn every_frame_round_trips() {
        for frame in samples() {
            let mut bytes = Vec::new();
            encode(&frame, &mut bytes);
            assert_eq!(decode(&bytes, MAX), Ok(Some((frame.clone(), bytes.len()))));
            let (read, size) = read_frame(&mut &bytes[..], MAX).unwrap();
            assert_eq!((read, size), (frame, bytes.len()));
        }
    }

    #[test]
    fn a_partial_frame_needs_more_bytes() {
        for frame in samples() {
            let mut bytes = Vec::new();
            encode(&frame, &mut bytes);
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut], MAX), Ok(None), "{frame:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn hello_pins_its_layout() {
        let mut bytes = Vec::new();
        encode(&Frame::Hello(Hello { instance: 1, max_version: 2, received: 3, known_peer: 4 }), &mut bytes);
        assert_eq!(&bytes[..12], b"\x01\x00\x00\x00\x27MCREP\x00\x02");
        assert_eq!(bytes.len(), HEADER_LEN + 39);
    }

    #[test]
    fn bad_magic_version_type_size_and_lengths_are_refused() {
        let mut hello = Vec::new();
        encode(&Frame::Hello(Hello { instance: 1, max_version: 0, received: 0, known_peer: 0 }), &mut hello);
        let mut magic = hello.clone();
        magic[HEADER_LEN] = b'X';
        assert_eq!(decode(&magic, MAX), Err(WireError::BadMagic));
        let mut version = hello.clone();
        version[HEADER_LEN + 6] = 1;
        assert_eq!(decode(&version, MAX), Err(WireError::BadVersion(1)));
        assert_eq!(decode(b"\x0a\x00\x00\x00\x00", MAX), Err(WireError::UnknownType(10)));
        assert_eq!(decode(b"\x02\xff\xff\xff\xff", MAX), Err(WireError::TooLarge(u32::MAX as usize)));
        // A PING with a payload, a key of length 0, a value longer than the frame.
        assert_eq!(decode(b"\x07\x00\x00\x00\x01z", MAX), Err(WireError::Malformed(7)));
        assert_eq!(decode(b"\x03\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01", MAX), Err(WireError::Malformed(3)));
        let mut item = Vec::new();
        encode(&samples()[1], &mut item);
        // The value length's high byte (the value is 4 bytes, after its 4-byte length).
        let at = item.len() - 4 - 4;
        item[at] = 0xff;
        assert!(matches!(decode(&item, MAX), Err(WireError::Malformed(2))));
        // A mark no version knows.
        let mut marked = Vec::new();
        encode(&samples()[1], &mut marked);
        marked[HEADER_LEN + 2 + 16] = 8;
        assert_eq!(decode(&marked, MAX), Err(WireError::Malformed(2)));
        let mut spaced = Vec::new();
        encode(&Frame::Entry(Entry::Deleted { key: b"a b".to_vec(), version: 1 }), &mut spaced);
        assert_eq!(decode(&spaced, MAX), Err(WireError::Malformed(3)));
    }

    #[test]
    fn delta_frames_pin_their_layout_and_refuse_bad_fields() {
        let mut req = Vec::new();
        encode(&Frame::DeltaReq(DeltaReq { id: 2, op: DeltaOp::Decr, amount: 3, cas: Some(9), key: b"k".to_vec() }), &mut req);
        assert_eq!(req, b"\x08\x00\x00\x00\x1c\0\0\0\0\0\0\0\x02\x01\0\0\0\0\0\0\0\x03\x01\0\0\0\0\0\0\0\x09\x01k");
        // An unknown op; an unknown cas marker; a cas without its marker.
        for (at, byte) in [(8, 2), (17, 2)] {
            let mut bad = req.clone();
            bad[HEADER_LEN + at] = byte;
            assert_eq!(decode(&bad, MAX), Err(WireError::Malformed(8)), "byte {at}");
        }
        let mut unmarked = req.clone();
        unmarked[HEADER_LEN + 17] = 0;
        assert_eq!(decode(&unmarked, MAX), Err(WireError::Malformed(8)));
        let mut resp = Vec::new();
        encode(&Frame::DeltaResp(DeltaResp { id: 1, outcome: DeltaOutcome::NotFound, item: None }), &mut resp);
        assert_eq!(resp.len(), HEADER_LEN + 38);
        assert_eq!(&resp[..HEADER_LEN + 9], b"\x09\x00\x00\x00\x26\0\0\0\0\0\0\0\x01\x01");
        // An unknown outcome; a miss that carries a value, or an item; an item's fields
        // (flags, marks) without its version.
        for (at, byte) in [(8, 5), (16, 1), (24, 1), (28, 1), (36, 1)] {
            let mut bad = resp.clone();
            bad[HEADER_LEN + at] = byte;
            assert_eq!(decode(&bad, MAX), Err(WireError::Malformed(9)), "byte {at}");
        }
        let mut no_item = resp.clone();
        no_item[HEADER_LEN + 8] = 0;
        no_item[HEADER_LEN + 28] = 1;
        assert_eq!(decode(&no_item, MAX), Err(WireError::Malformed(9)));
    }

    #[test]
    fn a_stream_that_ends_early_is_an_io_error() {
        let mut bytes = Vec::new();
        encode(&samples()[1], &mut bytes);
        bytes.pop();
        assert!(matches!(read_frame(&mut &bytes[..], MAX), Err(ReadError::Io(_))));
    }

    /// xorshift64*: random bytes without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn random_bytes_never_panic_and_never_overrun() {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        let mut valid = Vec::new();
        for frame in samples() {
            encode(&frame, &mut valid);
        }
        for round in 0..20_000 {
            let len = (next(&mut state) % 96) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
            if round % 2 == 0 && !valid.is_empty() {
                // Mutate real frames too, so the deeper field checks are reached.
                bytes = valid.clone();
                for _ in 0..1 + next(&mut state) % 4 {
                    let at = (next(&mut state) as usize) % bytes.len();
                    bytes[at] = next(&mut state) as u8;
                }
                bytes.truncate((next(&mut state) as usize) % (bytes.len() + 1));
            }
            // Small limits too, so the size check is exercised.
            for max in [MAX, 16] {
                let mut rest = &bytes[..];
                while let Ok(Some((_, used))) = decode(rest, max) {
                    assert!(used >= HEADER_LEN && used <= rest.len());
                    rest = &rest[used..];
                }
                let mut reader = &bytes[..];
                while read_frame(&mut reader, max).is_ok() {}
            }
        }
    }
}
