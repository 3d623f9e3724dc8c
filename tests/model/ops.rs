//! The command stream: `Op`, one command of the text, meta or binary protocol, and a seeded
//! generator of long streams of them over a few keys, so that commands collide. An op names
//! its cas and its expiry abstractly (`CasRef`, `Ttl`): each side renders it with the cas
//! values it has answered and with its own clock.

use std::fmt;

/// splitmix64: small, seedable, and the same on every platform, so a seed replays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// How many keys the stream uses: few, so that commands meet on them.
pub const KEYS: usize = 8;

/// Key `i`: short ones, and one of the longest length allowed, which moves the size limit.
pub fn key(i: usize) -> Vec<u8> {
    if i == KEYS - 1 {
        vec![b'L'; 250]
    } else {
        format!("k{i}").into_bytes()
    }
}

/// `-I` of both servers: small, so that values past the limit are cheap.
pub const ITEM_SIZE_MAX: usize = 64 * 1024;

/// The longest value a key of `key_len` bytes may have: memcached counts a 56-byte header,
/// the key's NUL and the value's "\r\n".
pub fn max_value(key_len: usize) -> usize {
    ITEM_SIZE_MAX - 56 - key_len - 1 - 2
}

/// An expiry that does not depend on when a command runs: never, far enough ahead that no
/// run reaches it (whole thousands of seconds, so a reported TTL rounds back to it), or
/// already past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    Never,
    /// Seconds from now, given relative.
    In(u32),
    /// Seconds from now, given as a unix time.
    At(u32),
    /// -1: expired at once.
    Gone,
    /// A unix time long past.
    Past,
}

/// A unix time in 2001.
pub const PAST: i64 = 1_000_000_000;

impl Ttl {
    /// The number the protocol carries, for a client whose clock reads `now`.
    pub fn render(self, now: i64) -> i64 {
        match self {
            Ttl::Never => 0,
            Ttl::In(s) => i64::from(s),
            Ttl::At(s) => now + i64::from(s),
            Ttl::Gone => -1,
            Ttl::Past => PAST,
        }
    }

    /// Whether an item given this expiry is dead at once.
    pub fn dead(self) -> bool {
        matches!(self, Ttl::Gone | Ttl::Past)
    }

    /// The seconds left that meta's t reports (-1: never).
    pub fn seconds(self) -> i64 {
        match self {
            Ttl::In(s) | Ttl::At(s) => i64::from(s),
            _ => -1,
        }
    }

    fn draw(rng: &mut Rng, binary: bool) -> Ttl {
        match rng.below(20) {
            0..=9 => Ttl::Never,
            10..=13 => Ttl::In(1000 * (1 + rng.below(999) as u32)),
            14..=15 => Ttl::At(1000 * (100 + rng.below(900) as u32)),
            // The binary protocol carries an unsigned expiry: no -1 there.
            16..=17 if !binary => Ttl::Gone,
            _ => Ttl::Past,
        }
    }
}

/// The cas a command sends: none, the last one this side answered for the op's key (which
/// may be stale), or one no item has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasRef {
    Zero,
    Last,
    Bogus,
}

/// A cas value neither server reaches, above every real one on both (ms I treats a lower
/// cas otherwise than a higher one).
pub const BOGUS_CAS: u64 = 1 << 62;

impl CasRef {
    fn draw(rng: &mut Rng, zero_percent: u64) -> CasRef {
        if rng.percent(zero_percent) {
            CasRef::Zero
        } else if rng.percent(85) {
            CasRef::Last
        } else {
            CasRef::Bogus
        }
    }
}

/// A value, shown short in messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let shown = String::from_utf8_lossy(&self.0[..self.0.len().min(40)]).into_owned();
        write!(f, "{} bytes {shown:?}", self.0.len())
    }
}

/// One meta flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MFlag {
    /// A flag without a token: v f t c k s q u I.
    Bare(u8),
    Opaque(u32),
    T(Ttl),
    N(Ttl),
    C(CasRef),
    F(u32),
    /// ms and ma's mode letter.
    M(u8),
    D(u64),
    J(u64),
    /// mg's recache threshold, in seconds.
    R(u32),
}

/// One command.
#[derive(Debug, Clone)]
pub enum Op {
    /// set/add/replace/append/prepend/cas.
    Store {
        cmd: &'static str,
        key: usize,
        flags: u32,
        ttl: Ttl,
        value: Bytes,
        cas: CasRef,
        noreply: bool,
    },
    /// get/gets, or gat/gats with `ttl`.
    Get {
        cas: bool,
        ttl: Option<Ttl>,
        keys: Vec<usize>,
    },
    Delta {
        incr: bool,
        key: usize,
        amount: u64,
        noreply: bool,
    },
    Touch {
        key: usize,
        ttl: Ttl,
        noreply: bool,
    },
    Delete {
        key: usize,
        noreply: bool,
    },
    /// flush_all, with a delay (`Ttl::Never`: "0").
    FlushAll {
        delay: Option<Ttl>,
        noreply: bool,
    },
    /// mg ms md ma mn: `cmd` is the second letter.
    Meta {
        cmd: u8,
        key: usize,
        flags: Vec<MFlag>,
        value: Bytes,
    },
    Binary {
        opcode: u8,
        key: usize,
        cas: CasRef,
        extras: Extras,
        value: Bytes,
    },
}

/// A binary request's extras.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extras {
    None,
    Store {
        flags: u32,
        ttl: Ttl,
    },
    /// `ttl` None: all ones, "do not create".
    Delta {
        amount: u64,
        initial: u64,
        ttl: Option<Ttl>,
    },
    Touch(Ttl),
    Flush(Option<Ttl>),
}

pub mod opcode {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCR: u8 = 0x05;
    pub const DECR: u8 = 0x06;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCRQ: u8 = 0x15;
    pub const DECRQ: u8 = 0x16;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
}

impl Op {
    pub fn is_binary(&self) -> bool {
        matches!(self, Op::Binary { .. })
    }

    /// The key an answer's cas values belong to (a multi-key get names its keys itself).
    pub fn key(&self) -> Option<usize> {
        match self {
            Op::Store { key, .. } | Op::Delta { key, .. } | Op::Touch { key, .. } | Op::Delete { key, .. } | Op::Binary { key, .. } => {
                Some(*key)
            }
            Op::Meta { cmd, key, .. } if *cmd != b'n' => Some(*key),
            Op::Get { keys, .. } => keys.first().copied(),
            Op::Meta { .. } | Op::FlushAll { .. } => None,
        }
    }

    /// incr or decr, in any protocol.
    pub fn is_arithmetic(&self) -> bool {
        match self {
            Op::Delta { .. } | Op::Meta { cmd: b'a', .. } => true,
            Op::Binary { opcode, .. } => matches!(*opcode, opcode::INCR | opcode::INCRQ | opcode::DECR | opcode::DECRQ),
            _ => false,
        }
    }

    /// Whether the op reads or writes `k` (flush_all: every key).
    pub fn concerns(&self, k: usize) -> bool {
        match self {
            Op::Get { keys, .. } => keys.contains(&k),
            Op::Binary { opcode, .. } if matches!(*opcode, opcode::FLUSH | opcode::FLUSHQ) => true,
            op => op.key().is_none_or(|key| key == k),
        }
    }

    /// The request's bytes: `cas` gives a `CasRef`'s value for a key, `now` is the unix time.
    pub fn render(&self, cas: &dyn Fn(CasRef, usize) -> u64, now: i64) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Op::Store { cmd, key: k, flags, ttl, value, cas: c, noreply } => {
                out.extend_from_slice(format!("{cmd} ").as_bytes());
                out.extend_from_slice(&key(*k));
                out.extend_from_slice(format!(" {flags} {} {}", ttl.render(now), value.0.len()).as_bytes());
                if *cmd == "cas" {
                    out.extend_from_slice(format!(" {}", cas(*c, *k)).as_bytes());
                }
                if *noreply {
                    out.extend_from_slice(b" noreply");
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&value.0);
                out.extend_from_slice(b"\r\n");
            }
            Op::Get { cas: with_cas, ttl, keys } => {
                out.extend_from_slice(match (ttl, with_cas) {
                    (None, false) => b"get".as_slice(),
                    (None, true) => b"gets",
                    (Some(_), false) => b"gat",
                    (Some(_), true) => b"gats",
                });
                if let Some(ttl) = ttl {
                    out.extend_from_slice(format!(" {}", ttl.render(now)).as_bytes());
                }
                for k in keys {
                    out.push(b' ');
                    out.extend_from_slice(&key(*k));
                }
                out.extend_from_slice(b"\r\n");
            }
            Op::Delta { incr, key: k, amount, noreply } => {
                out.extend_from_slice(if *incr { b"incr " } else { b"decr " });
                out.extend_from_slice(&key(*k));
                out.extend_from_slice(format!(" {amount}").as_bytes());
                push_noreply(*noreply, &mut out);
            }
            Op::Touch { key: k, ttl, noreply } => {
                out.extend_from_slice(b"touch ");
                out.extend_from_slice(&key(*k));
                out.extend_from_slice(format!(" {}", ttl.render(now)).as_bytes());
                push_noreply(*noreply, &mut out);
            }
            Op::Delete { key: k, noreply } => {
                out.extend_from_slice(b"delete ");
                out.extend_from_slice(&key(*k));
                push_noreply(*noreply, &mut out);
            }
            Op::FlushAll { delay, noreply } => {
                out.extend_from_slice(b"flush_all");
                if let Some(delay) = delay {
                    out.extend_from_slice(format!(" {}", delay.render(now)).as_bytes());
                }
                push_noreply(*noreply, &mut out);
            }
            Op::Meta { cmd: b'n', .. } => out.extend_from_slice(b"mn\r\n"),
            Op::Meta { cmd, key: k, flags, value } => {
                out.extend_from_slice(&[b'm', *cmd, b' ']);
                out.extend_from_slice(&key(*k));
                if *cmd == b's' {
                    out.extend_from_slice(format!(" {}", value.0.len()).as_bytes());
                }
                for flag in flags {
                    out.push(b' ');
                    let token = match *flag {
                        MFlag::Bare(letter) => (letter as char).to_string(),
                        MFlag::Opaque(n) => format!("O{n:x}"),
                        MFlag::T(ttl) => format!("T{}", ttl.render(now)),
                        MFlag::N(ttl) => format!("N{}", ttl.render(now)),
                        MFlag::C(c) => format!("C{}", cas(c, *k)),
                        MFlag::F(n) => format!("F{n}"),
                        MFlag::M(mode) => format!("M{}", mode as char),
                        MFlag::D(n) => format!("D{n}"),
                        MFlag::J(n) => format!("J{n}"),
                        MFlag::R(n) => format!("R{n}"),
                    };
                    out.extend_from_slice(token.as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                if *cmd == b's' {
                    out.extend_from_slice(&value.0);
                    out.extend_from_slice(b"\r\n");
                }
            }
            Op::Binary { opcode, key: k, cas: c, extras, value } => {
                let mut extra = Vec::new();
                match *extras {
                    Extras::None => {}
                    Extras::Store { flags, ttl } => {
                        extra.extend_from_slice(&flags.to_be_bytes());
                        extra.extend_from_slice(&(ttl.render(now) as u32).to_be_bytes());
                    }
                    Extras::Delta { amount, initial, ttl } => {
                        extra.extend_from_slice(&amount.to_be_bytes());
                        extra.extend_from_slice(&initial.to_be_bytes());
                        extra.extend_from_slice(&ttl.map_or(u32::MAX, |t| t.render(now) as u32).to_be_bytes());
                    }
                    Extras::Touch(ttl) => extra.extend_from_slice(&(ttl.render(now) as u32).to_be_bytes()),
                    Extras::Flush(delay) => {
                        if let Some(delay) = delay {
                            extra.extend_from_slice(&(delay.render(now) as u32).to_be_bytes());
                        }
                    }
                }
                let key = if *opcode == opcode::FLUSH || *opcode == opcode::FLUSHQ { Vec::new() } else { key(*k) };
                out = binary_request(*opcode, cas(*c, *k), &extra, &key, &value.0, 0);
            }
        }
        out
    }
}

fn push_noreply(noreply: bool, out: &mut Vec<u8>) {
    if noreply {
        out.extend_from_slice(b" noreply");
    }
    out.extend_from_slice(b"\r\n");
}

/// A binary request packet.
pub fn binary_request(opcode: u8, cas: u64, extras: &[u8], key: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
    let mut out = vec![0x80, opcode];
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.push(extras.len() as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    out.extend_from_slice(&opaque.to_be_bytes());
    out.extend_from_slice(&cas.to_be_bytes());
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

/// A value for key `k`: often a number (incr's matter, with the edge cases of memcached's
/// parse), often short bytes of any kind, sometimes long, now and then at or past the limit.
fn value(rng: &mut Rng, k: usize) -> Bytes {
    let limit = max_value(key(k).len());
    let bytes = match rng.below(100) {
        0..=34 => number(rng).into_bytes(),
        35..=69 => (0..rng.below(40)).map(|_| rng.next() as u8).collect(),
        70..=89 => vec![b'a' + rng.below(26) as u8; 40 + rng.below(4000) as usize],
        90..=96 => vec![b'b'; 30_000 + rng.below(limit as u64 - 30_000) as usize],
        _ => vec![b'c'; limit - 2 + rng.below(5) as usize],
    };
    Bytes(bytes)
}

/// A decimal number as incr may meet it: small, near 2^64, too long, padded, zero-led.
fn number(rng: &mut Rng) -> String {
    let n = match rng.below(10) {
        0 => u64::MAX - rng.below(3),
        1 => rng.next(),
        _ => rng.below(1000),
    };
    match rng.below(12) {
        0 => format!("{n} "),
        1 => format!("{n}  "),
        2 => format!(" {n}"),
        3 => format!("0{n}"),
        4 => format!("{n}0"),
        5 => format!("{n}x"),
        6 => String::new(),
        7 => "-1".to_string(),
        _ => n.to_string(),
    }
}

fn amount(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0 => u64::MAX - rng.below(2),
        1 => rng.next(),
        _ => rng.below(20),
    }
}

fn keys(rng: &mut Rng) -> Vec<usize> {
    (0..1 + rng.below(3)).map(|_| rng.below(KEYS as u64) as usize).collect()
}

/// The op without what memcached 1.6.18 answers from stale memory or loses, for the
/// differential test: a value of white space only gets an 'x' (its incr skips the white space
/// and the "\r\n" after it, and reads on in stale memory), and ma loses its T (memcached sets
/// that TTL on the item an incr that lengthens the number has just replaced).
pub fn for_memcached(mut op: Op) -> Op {
    if let Op::Meta { cmd: b'a', flags, .. } = &mut op {
        flags.retain(|flag| !matches!(flag, MFlag::T(_)));
    }
    if let Op::Store { value, .. } | Op::Meta { value, .. } | Op::Binary { value, .. } = &mut op {
        if value.0.iter().all(|b| b" \t\n\r\x0b\x0c".contains(b)) {
            if let Some(last) = value.0.last_mut() {
                *last = b'x';
            }
        }
    }
    op
}

/// Draws `count` ops from `seed`.
pub fn stream(seed: u64, count: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    let mut ops = Vec::with_capacity(count + 1);
    while ops.len() < count {
        let op = draw(&mut rng);
        // memcached keeps one flush time, so a delayed flush_all brings back what an earlier
        // one flushed and no command has met since: a get of every key meets them first.
        let delayed = match &op {
            Op::FlushAll { delay, .. } => delay.is_some_and(|d| d != Ttl::Never),
            Op::Binary { extras: Extras::Flush(delay), .. } => delay.is_some_and(|d| d != Ttl::Never),
            _ => false,
        };
        if delayed {
            ops.push(Op::Get { cas: false, ttl: None, keys: (0..KEYS).collect() });
        }
        ops.push(op);
    }
    ops.truncate(count);
    ops
}

fn draw(rng: &mut Rng) -> Op {
    let k = rng.below(KEYS as u64) as usize;
    match rng.below(1000) {
        0..=199 => {
            let cmd = rng.pick(&["set", "set", "set", "add", "replace", "append", "prepend", "cas", "cas"]);
            let flags = if rng.percent(50) { 0 } else { rng.next() as u32 };
            let value = value(rng, k);
            Op::Store { cmd, key: k, flags, ttl: Ttl::draw(rng, false), value, cas: CasRef::draw(rng, 0), noreply: rng.percent(15) }
        }
        200..=319 => {
            let ttl = rng.percent(30).then(|| Ttl::draw(rng, false));
            Op::Get { cas: rng.percent(50), ttl, keys: keys(rng) }
        }
        320..=399 => Op::Delta { incr: rng.percent(60), key: k, amount: amount(rng), noreply: rng.percent(15) },
        400..=429 => Op::Touch { key: k, ttl: Ttl::draw(rng, false), noreply: rng.percent(15) },
        430..=479 => Op::Delete { key: k, noreply: rng.percent(15) },
        480..=484 => {
            let delay = rng.percent(60).then(|| rng.pick(&[Ttl::Never, Ttl::In(1_000_000), Ttl::Past]));
            Op::FlushAll { delay, noreply: rng.percent(15) }
        }
        485..=799 => meta(rng, k),
        _ => binary(rng, k),
    }
}

/// Each flag of `pool` with some chance, in a shuffled order.
fn some_of(rng: &mut Rng, pool: Vec<MFlag>) -> Vec<MFlag> {
    let mut flags: Vec<MFlag> = pool.into_iter().filter(|_| rng.percent(30)).collect();
    for i in (1..flags.len()).rev() {
        flags.swap(i, rng.below(i as u64 + 1) as usize);
    }
    flags
}

fn meta(rng: &mut Rng, k: usize) -> Op {
    let opaque = MFlag::Opaque(rng.below(1 << 20) as u32);
    let mut ttl = Ttl::draw(rng, false);
    let cas = MFlag::C(if rng.percent(85) { CasRef::Last } else { CasRef::Bogus });
    let bare = |letters: &[u8]| letters.iter().map(|&l| MFlag::Bare(l)).collect::<Vec<_>>();
    let (cmd, mut pool) = match rng.below(100) {
        0..=39 => (b'g', bare(b"vftcksqu")),
        40..=69 => (b's', bare(b"qkcI")),
        70..=79 => (b'd', bare(b"qkI")),
        80..=97 => (b'a', bare(b"qktcv")),
        _ => return Op::Meta { cmd: b'n', key: 0, flags: Vec::new(), value: Bytes(Vec::new()) },
    };
    pool.push(opaque);
    // memcached's t after a T in the past prints the seconds left as an unsigned underflow,
    // and an item it creates with N in the past it answers as if alive.
    let mut live_ttl = || match Ttl::draw(rng, false) {
        ttl if ttl.dead() => Ttl::Never,
        ttl => ttl,
    };
    if matches!(cmd, b'g' | b'a') && ttl.dead() {
        ttl = live_ttl();
    }
    let vivify = MFlag::N(live_ttl());
    match cmd {
        b'g' => {
            pool.push(MFlag::T(ttl));
            pool.push(vivify);
            // Below every TTL of the stream, or above them all: whether an item is due for a
            // recache does not depend on the seconds passing.
            pool.push(MFlag::R(rng.pick(&[500, 2_000_000])));
            if rng.percent(60) {
                pool.push(MFlag::Bare(b'v'));
            }
        }
        b's' => {
            pool.extend([MFlag::T(ttl), cas, MFlag::F(rng.next() as u32), MFlag::M(rng.pick(b"EAPRSeaprs"))]);
        }
        b'd' => pool.extend([MFlag::T(ttl), cas]),
        _ => pool.extend([MFlag::T(ttl), vivify, cas, MFlag::J(rng.below(100)), MFlag::D(amount(rng)), MFlag::M(rng.pick(b"ID+-id"))]),
    }
    let mut flags = some_of(rng, pool);
    // A letter may appear once.
    let mut seen = Vec::new();
    flags.retain(|f| {
        let letter = flag_letter(*f);
        let fresh = !seen.contains(&letter);
        seen.push(letter);
        fresh
    });
    let value = if cmd == b's' { value(rng, k) } else { Bytes(Vec::new()) };
    Op::Meta { cmd, key: k, flags, value }
}

pub fn flag_letter(flag: MFlag) -> u8 {
    match flag {
        MFlag::Bare(l) => l,
        MFlag::Opaque(_) => b'O',
        MFlag::T(_) => b'T',
        MFlag::N(_) => b'N',
        MFlag::C(_) => b'C',
        MFlag::F(_) => b'F',
        MFlag::M(_) => b'M',
        MFlag::D(_) => b'D',
        MFlag::J(_) => b'J',
        MFlag::R(_) => b'R',
    }
}

fn binary(rng: &mut Rng, k: usize) -> Op {
    use opcode::*;
    let op = rng.pick(&[
        GET, GETQ, GETK, GETKQ, SET, SET, SETQ, ADD, ADDQ, REPLACE, REPLACEQ, DELETE, DELETEQ, INCR, INCRQ, DECR, DECRQ, APPEND, APPENDQ,
        PREPEND, PREPENDQ, TOUCH, GAT, GATQ, GATK, GATKQ, FLUSH, FLUSHQ,
    ]);
    let ttl = Ttl::draw(rng, true);
    let (extras, value, cas) = match op {
        SET | SETQ | ADD | ADDQ | REPLACE | REPLACEQ => {
            let flags = if rng.percent(50) { 0 } else { rng.next() as u32 };
            (Extras::Store { flags, ttl }, value(rng, k), CasRef::draw(rng, 70))
        }
        APPEND | APPENDQ | PREPEND | PREPENDQ => (Extras::None, value(rng, k), CasRef::draw(rng, 70)),
        DELETE | DELETEQ => (Extras::None, Bytes(Vec::new()), CasRef::draw(rng, 70)),
        INCR | INCRQ | DECR | DECRQ => {
            let initial = if rng.percent(80) { rng.below(100) } else { rng.next() };
            let extras = Extras::Delta { amount: amount(rng), initial, ttl: rng.percent(60).then_some(ttl) };
            (extras, Bytes(Vec::new()), CasRef::draw(rng, 70))
        }
        TOUCH | GAT | GATQ | GATK | GATKQ => (Extras::Touch(ttl), Bytes(Vec::new()), CasRef::Zero),
        FLUSH | FLUSHQ => {
            // Rare: a flush empties what the stream built up.
            if rng.percent(80) {
                return binary(rng, k);
            }
            let delay = rng.percent(50).then(|| rng.pick(&[Ttl::Never, Ttl::In(1_000_000), Ttl::Past]));
            (Extras::Flush(delay), Bytes(Vec::new()), CasRef::Zero)
        }
        _ => (Extras::None, Bytes(Vec::new()), CasRef::Zero),
    };
    Op::Binary { opcode: op, key: k, cas, extras, value }
}
