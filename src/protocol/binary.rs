//! memcached's binary protocol: a 24-byte header and a body in, the same framing out. `handle`
//! parses one request at the front of the read buffer and carries it out against the cache's
//! facade at once (the binary requests are simple enough that a separate request type would
//! only repeat the header), counting into the same `stats` counters the text protocol counts.
//! `stat` reuses the text protocol's families and re-frames each "STAT name value" line.

use super::{ops, stats_reply};
use super::{Context, Next};
use crate::config;
use crate::stats::{Counter, LocalCounts};
use crate::storage::clock;
use crate::storage::{DeleteOutcome, DeltaOp, DeltaOutcome, StoreMode, StoreOptions, StoreOutcome};

/// The first byte of every request; a connection that starts with it speaks binary.
pub const REQUEST_MAGIC: u8 = 0x80;
const RESPONSE_MAGIC: u8 = 0x81;
const HEADER: usize = 24;
/// An incr/decr expiry that means "fail rather than create".
const NO_CREATE: u32 = 0xffff_ffff;
/// SASL's requests: not served, but refused as memcached without SASL refuses them.
const SASL_LIST_MECHS: u8 = 0x20;
const SASL_AUTH: u8 = 0x21;
const SASL_STEP: u8 = 0x22;

// Response statuses, as memcached numbers them.
const SUCCESS: u16 = 0x00;
const KEY_ENOENT: u16 = 0x01;
const KEY_EEXISTS: u16 = 0x02;
const E2BIG: u16 = 0x03;
const EINVAL: u16 = 0x04;
const NOT_STORED: u16 = 0x05;
const DELTA_BADVAL: u16 = 0x06;
const AUTH_ERROR: u16 = 0x20;
const UNKNOWN_COMMAND: u16 = 0x81;
const ENOMEM: u16 = 0x82;

/// What `handle` made of the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// No complete request yet: read more.
    Incomplete,
    /// A request was answered: drop `consumed` bytes, then discard `swallow` more as they
    /// arrive; `next` tells whether the connection goes on.
    Done { consumed: usize, swallow: usize, next: Next },
}

/// One parsed request header and its body's parts.
struct Packet<'a> {
    opcode: u8,
    opaque: [u8; 4],
    cas: u64,
    extras: &'a [u8],
    key: &'a [u8],
    value: &'a [u8],
}

/// What a request's header calls for, decided as memcached decides it once it holds the
/// extras and the key and before it reads any value: a header announcing a huge body is judged
/// by its shape first, and only a value that would be stored can be too large.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// Execute once the first `len` bytes (header included) are in. For a request that takes
    /// no value that is the extras and the key: memcached reads a stat's or a touch's surplus
    /// body as the next request.
    Serve { len: usize },
    /// Answer `status`, drop `consumed` bytes, discard `swallow` more, and go on.
    Skip { status: u16, consumed: usize, swallow: usize },
    /// Answer `status` and close.
    Refuse(u16),
}

/// memcached 1.6.18's checks, in its order, on a header's lengths.
fn frame(opcode: u8, extras: usize, key: usize, body: usize, max_body: usize) -> Frame {
    if key + extras > body {
        return Frame::Refuse(UNKNOWN_COMMAND);
    }
    if key > crate::storage::KEY_MAX_LENGTH {
        return Frame::Refuse(EINVAL);
    }
    let value = body - extras - key;
    let keyed = key > 0;
    let (valid, takes_value) = match opcode {
        0x00 | 0x09 | 0x0c | 0x0d | 0x04 | 0x14 => (extras == 0 && keyed && value == 0, false),
        0x01..=0x03 | 0x11..=0x13 => (extras == 8 && keyed, true),
        0x0e | 0x0f | 0x19 | 0x1a => (extras == 0 && keyed, true),
        0x05 | 0x06 | 0x15 | 0x16 => (extras == 20 && keyed && value == 0, false),
        0x07 | 0x17 | 0x0a | 0x0b => (body == 0, false),
        0x08 | 0x18 => (!keyed && value == 0 && (extras == 0 || extras == 4), false),
        0x10 => (extras == 0, false),
        0x1c | 0x1d | 0x1e | 0x23 | 0x24 => (extras == 4 && keyed, false),
        // No SASL here: memcached without it checks the shape, then calls the command unknown.
        SASL_LIST_MECHS if body == 0 => return Frame::Skip { status: UNKNOWN_COMMAND, consumed: HEADER, swallow: 0 },
        SASL_AUTH | SASL_STEP if extras == 0 && keyed => {
            return Frame::Skip { status: UNKNOWN_COMMAND, consumed: HEADER + key, swallow: value };
        }
        SASL_LIST_MECHS | SASL_AUTH | SASL_STEP => (false, false),
        // memcached has read the extras and the key, and discards a whole body length more.
        _ => return Frame::Skip { status: UNKNOWN_COMMAND, consumed: HEADER + extras + key, swallow: body },
    };
    if !valid {
        Frame::Refuse(EINVAL)
    } else if takes_value && body > max_body {
        Frame::Skip { status: E2BIG, consumed: HEADER, swallow: body }
    } else if takes_value {
        Frame::Serve { len: HEADER + body }
    } else {
        Frame::Serve { len: HEADER + extras + key }
    }
}

/// Parses and carries out the request at the front of `input`. `max_body` bounds the body
/// that is buffered; a larger value is answered "Too large." and discarded as it arrives.
pub fn handle(input: &[u8], max_body: usize, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) -> Handled {
    if input.len() < HEADER {
        return Handled::Incomplete;
    }
    if input[0] != REQUEST_MAGIC {
        // memcached gives up on a stream it cannot frame.
        return Handled::Done { consumed: input.len(), swallow: 0, next: Next::Close };
    }
    let opcode = input[1];
    let key_len = usize::from(u16::from_be_bytes([input[2], input[3]]));
    let extras_len = usize::from(input[4]);
    let body_len = u32::from_be_bytes([input[8], input[9], input[10], input[11]]) as usize;
    let opaque = [input[12], input[13], input[14], input[15]];
    let mut cas_bytes = [0u8; 8];
    cas_bytes.copy_from_slice(&input[16..24]);
    let cas = u64::from_be_bytes(cas_bytes);
    if input.len() < HEADER + extras_len + key_len {
        return Handled::Incomplete;
    }
    let len = match frame(opcode, extras_len, key_len, body_len, max_body) {
        Frame::Refuse(status) => {
            error(out, opcode, opaque, status);
            return Handled::Done { consumed: input.len(), swallow: 0, next: Next::Close };
        }
        Frame::Skip { status, consumed, swallow } => {
            error(out, opcode, opaque, status);
            return Handled::Done { consumed, swallow, next: Next::Continue };
        }
        Frame::Serve { len } => len,
    };
    if input.len() < len {
        return Handled::Incomplete;
    }
    let body = &input[HEADER..len];
    let packet = Packet {
        opcode,
        opaque,
        cas,
        extras: &body[..extras_len],
        key: &body[extras_len..extras_len + key_len],
        value: &body[extras_len + key_len..],
    };
    let next = execute(&packet, ctx, local, out);
    Handled::Done { consumed: len, swallow: 0, next }
}

/// Carries out a request `frame` found well-shaped.
fn execute(p: &Packet, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) -> Next {
    let op = p.opcode;
    match op {
        0x00 | 0x09 | 0x0c | 0x0d => get(p, None, ctx, local, out),
        0x1d | 0x1e | 0x23 | 0x24 | 0x1c => get(p, Some(be32(p.extras)), ctx, local, out),
        0x01..=0x03 | 0x11..=0x13 | 0x0e | 0x0f | 0x19 | 0x1a => store(p, ctx, local, out),
        0x04 | 0x14 => delete(p, ctx, local, out),
        0x05 | 0x06 | 0x15 | 0x16 => delta(p, ctx, local, out),
        0x07 | 0x17 => {
            if op == 0x07 {
                respond(out, op, p.opaque, SUCCESS, 0, &[], &[], &[]);
            }
            return Next::Close;
        }
        0x08 | 0x18 => {
            local.add(Counter::CmdFlush, 1);
            if !ctx.settings.flush_enabled {
                error(out, op, p.opaque, AUTH_ERROR);
                return Next::Continue;
            }
            let delay = if p.extras.is_empty() { 0 } else { i64::from(be32(p.extras)) };
            ctx.cache.flush(ops::flush_time(delay, clock::now()));
            if op == 0x08 {
                respond(out, op, p.opaque, SUCCESS, 0, &[], &[], &[]);
            }
        }
        0x0a => respond(out, op, p.opaque, SUCCESS, 0, &[], &[], &[]),
        0x0b => respond(out, op, p.opaque, SUCCESS, 0, &[], &[], config::VERSION.as_bytes()),
        _ => stat(p, ctx, local, out),
    }
    Next::Continue
}

/// Whether the opcode is a quiet form, which answers only failures.
fn quiet(op: u8) -> bool {
    matches!(op, 0x09 | 0x0d | 0x11..=0x1a | 0x1e | 0x24)
}

/// get/getq/getk/getkq, and with `touch` touch/gat/gatq/gatk/gatkq.
fn get(p: &Packet, touch: Option<u32>, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    let op = p.opcode;
    let with_key = matches!(op, 0x0c | 0x0d | 0x23 | 0x24);
    let with_value = op != 0x1c;
    let touch = touch.map(|exptime| clock::absolute_expiry(i64::from(exptime), clock::now()));
    let (lookup, _) = ctx.cache.get(p.key, touch, |item| {
        let key: &[u8] = if with_key { item.key } else { &[] };
        let value: &[u8] = if with_value { item.value } else { &[] };
        respond(out, op, p.opaque, SUCCESS, item.cas, &item.flags.to_be_bytes(), key, value);
    });
    let hit = ops::count_lookup(lookup, touch.is_some(), local);
    if !hit && !quiet(op) {
        // A miss of a k-form names the key instead of the message.
        if with_key {
            respond(out, op, p.opaque, KEY_ENOENT, 0, &[], p.key, &[]);
        } else {
            error(out, op, p.opaque, KEY_ENOENT);
        }
    }
}

fn store(p: &Packet, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    let op = p.opcode;
    let base = if quiet(op) { op - 0x10 } else { op };
    let base = if base == 0x09 || base == 0x0a { base + 0x05 } else { base };
    // A cas makes set, add and replace alike a cas, as in memcached.
    let mode = match (base, p.cas) {
        (0x01..=0x03, cas) if cas != 0 => StoreMode::Cas(cas),
        (0x02, _) => StoreMode::Add,
        (0x01, _) => StoreMode::Set,
        (0x03, _) => StoreMode::Replace,
        (0x0e, _) => StoreMode::Append,
        _ => StoreMode::Prepend,
    };
    let (flags, exptime) = if p.extras.len() == 8 { (be32(&p.extras[..4]), be32(&p.extras[4..])) } else { (0, 0) };
    // A cas on append/prepend is checked under the same lock as the store.
    let opts = StoreOptions { cas: (p.cas != 0).then_some(p.cas), ..StoreOptions::default() };
    let exptime = clock::absolute_expiry(i64::from(exptime), clock::now());
    let (outcome, cas) = ctx.cache.store_with(mode, p.key, flags, exptime, p.value, opts);
    ops::count_store(mode, outcome, local);
    // A set that cannot be stored drops the old item, as memcached's does whatever its cas
    // (the cache does it for a set without one).
    if base == 0x01 && p.cas != 0 && matches!(outcome, StoreOutcome::TooLarge | StoreOutcome::NoMemory) {
        ctx.cache.delete(p.key, None);
    }
    let status = match outcome {
        StoreOutcome::Stored => {
            if !quiet(op) {
                respond(out, op, p.opaque, SUCCESS, cas, &[], &[], &[]);
            }
            return;
        }
        StoreOutcome::NotStored => match mode {
            StoreMode::Add => KEY_EEXISTS,
            StoreMode::Replace => KEY_ENOENT,
            _ => NOT_STORED,
        },
        StoreOutcome::Exists => KEY_EEXISTS,
        StoreOutcome::NotFound => KEY_ENOENT,
        StoreOutcome::TooLarge => E2BIG,
        StoreOutcome::NoMemory => {
            // A store says what it could not allocate; other commands say only the status.
            respond(out, op, p.opaque, ENOMEM, 0, &[], &[], b"Out of memory allocating item");
            return;
        }
    };
    error(out, op, p.opaque, status);
}

fn delete(p: &Packet, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    match ctx.cache.delete(p.key, (p.cas != 0).then_some(p.cas)) {
        DeleteOutcome::Done => {
            local.add(Counter::DeleteHits, 1);
            if !quiet(p.opcode) {
                respond(out, p.opcode, p.opaque, SUCCESS, 0, &[], &[], &[]);
            }
        }
        DeleteOutcome::Exists => error(out, p.opcode, p.opaque, KEY_EEXISTS),
        DeleteOutcome::NotFound => {
            local.add(Counter::DeleteMisses, 1);
            error(out, p.opcode, p.opaque, KEY_ENOENT);
        }
    }
}

/// incr/decr with memcached's extras: amount, initial value, expiry (all ones: no create).
fn delta(p: &Packet, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    let op = p.opcode;
    let (kind, hits, misses) = match op {
        0x05 | 0x15 => (DeltaOp::Incr, Counter::IncrHits, Counter::IncrMisses),
        _ => (DeltaOp::Decr, Counter::DecrHits, Counter::DecrMisses),
    };
    let amount = be64(&p.extras[..8]);
    let initial = be64(&p.extras[8..16]);
    let expiry = be32(&p.extras[16..20]);
    let cas = (p.cas != 0).then_some(p.cas);
    let run = || ops::run_delta(ctx, p.key, kind, amount, cas);
    let (mut outcome, mut unique) = run();
    // Creating from the initial value counts as neither hit nor miss, as in memcached.
    if outcome == DeltaOutcome::NotFound && expiry != NO_CREATE {
        let exptime = clock::absolute_expiry(i64::from(expiry), clock::now());
        let text = initial.to_string();
        (outcome, unique) = match ctx.cache.store_with(StoreMode::Add, p.key, 0, exptime, text.as_bytes(), StoreOptions::default()) {
            (StoreOutcome::Stored, unique) => (DeltaOutcome::Value(initial), unique),
            // Someone created it meanwhile: apply the delta to theirs.
            (StoreOutcome::NotStored, _) => run(),
            _ => (DeltaOutcome::NoMemory, 0),
        };
        if let DeltaOutcome::Value(value) = outcome {
            if !quiet(op) {
                respond(out, op, p.opaque, SUCCESS, unique, &[], &[], &value.to_be_bytes());
            }
            return;
        }
    }
    match outcome {
        DeltaOutcome::Value(value) => {
            local.add(hits, 1);
            if !quiet(op) {
                respond(out, op, p.opaque, SUCCESS, unique, &[], &[], &value.to_be_bytes());
            }
        }
        DeltaOutcome::Exists => error(out, op, p.opaque, KEY_EEXISTS),
        DeltaOutcome::NotFound => {
            local.add(misses, 1);
            error(out, op, p.opaque, KEY_ENOENT);
        }
        DeltaOutcome::NonNumeric => error(out, op, p.opaque, DELTA_BADVAL),
        DeltaOutcome::NoMemory => error(out, op, p.opaque, ENOMEM),
    }
}

/// stat [group]: one packet per "STAT name value" line the text protocol writes, then an
/// empty one; a group the text protocol refuses is "Not found".
fn stat(p: &Packet, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) {
    local.fold_into(ctx.stats);
    let args: Vec<&[u8]> = p.key.split(|&b| b == b' ').filter(|w| !w.is_empty()).collect();
    // memcached's binary stat has no conns group.
    if args == [&b"conns"[..]] {
        error(out, p.opcode, p.opaque, KEY_ENOENT);
        return;
    }
    let mut text = Vec::new();
    stats_reply::write(&args, ctx, &mut text);
    if args == [&b"detail"[..], &b"dump"[..]] {
        // memcached sends the whole text dump as one value.
        respond(out, p.opcode, p.opaque, SUCCESS, 0, &[], b"detailed", &text);
        respond(out, p.opcode, p.opaque, SUCCESS, 0, &[], &[], &[]);
        return;
    }
    let mut lines = text.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).filter(|l| !l.is_empty());
    let mut any = false;
    for line in lines.by_ref() {
        if let Some(rest) = line.strip_prefix(b"STAT ") {
            let split = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            let value = rest.get(split + 1..).unwrap_or_default();
            respond(out, p.opcode, p.opaque, SUCCESS, 0, &[], &rest[..split], value);
            any = true;
        } else if line == b"END" || line == b"RESET" || line == b"OK" {
            any = true;
        } else {
            break;
        }
    }
    if any {
        respond(out, p.opcode, p.opaque, SUCCESS, 0, &[], &[], &[]);
    } else {
        error(out, p.opcode, p.opaque, KEY_ENOENT);
    }
}

/// memcached's message for each error status.
fn message(status: u16) -> &'static [u8] {
    match status {
        KEY_ENOENT => b"Not found",
        KEY_EEXISTS => b"Data exists for key.",
        E2BIG => b"Too large.",
        EINVAL => b"Invalid arguments",
        NOT_STORED => b"Not stored.",
        DELTA_BADVAL => b"Non-numeric server-side value for incr or decr",
        ENOMEM => b"Out of memory",
        AUTH_ERROR => b"Auth failure.",
        _ => b"Unknown command",
    }
}

fn error(out: &mut Vec<u8>, opcode: u8, opaque: [u8; 4], status: u16) {
    respond(out, opcode, opaque, status, 0, &[], &[], message(status));
}

/// Appends one response packet.
#[allow(clippy::too_many_arguments)]
fn respond(out: &mut Vec<u8>, opcode: u8, opaque: [u8; 4], status: u16, cas: u64, extras: &[u8], key: &[u8], value: &[u8]) {
    out.push(RESPONSE_MAGIC);
    out.push(opcode);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.push(extras.len() as u8);
    out.push(0);
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    out.extend_from_slice(&opaque);
    out.extend_from_slice(&cas.to_be_bytes());
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

fn be32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(b)
}

fn be64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(b)
}
