//! memcached's text protocol: parses the first command line (and its data block) at the front
//! of a read buffer into a `Request`, or says why it is invalid and what to answer. Knows nothing
//! of storage or sockets; allocates only the arguments of `stats` and the key of a meta command
//! given in base64; never panics on any bytes.
//!
//! The rules below are memcached 1.6.18's, checked by running it:
//! - A line ends at "\n"; one "\r" just before it is dropped. Tokens are separated by spaces
//!   only (a tab belongs to its token); leading, repeated and trailing spaces are ignored.
//! - A buffer holding 2048 bytes or more with no "\n" closes the connection without an answer,
//!   unless it starts (after at most 100 spaces) with "get " or "gets ". Such a multi-key get may
//!   run to `MAX_GET_LINE` bytes, a bound of ours (memcached has none) that keeps the buffer
//!   small; a longer line closes the connection too.
//! - Numbers are read as C's strtoul/strtol read them in memcached: leading white space, a
//!   sign, at least one digit, then the end of the token or white space (anything after it is
//!   ignored); out of 64-bit range is an error; unsigned numbers refuse a minus sign unless the
//!   wrapped value is below 2^63. Flags keep the low 32 bits; exptimes and lengths keep the
//!   low 32 bits as a signed number, so 2147483648 means -2147483648.
//! - `noreply`, as the last token of a command that takes it, silences that command's every
//!   answer, errors included; a wrong token count still answers "ERROR".
//! - A bad command line of a store does not skip its data: the data line is parsed as the next
//!   command. A data block not followed by "\r\n" answers "CLIENT_ERROR bad data chunk" after
//!   dropping exactly length + 2 bytes. A store too large for the cache swallows length + 2
//!   bytes, whatever they are.
//! - Meta commands (mg, ms, md, ma, mn, me) are parsed by `meta`; memcached's admin commands
//!   (lru_crawler, slabs, watch, lru, cache_memlimit, extstore, misbehave, debugtime) answer
//!   "ERROR", as a memcached without them would; `shutdown` answers as memcached does without
//!   `-A`.
//! - An unknown command of two bytes or more whose last token, of at most 23, starts with
//!   "HTTP/" closes the connection without an answer: a browser tricked into a cross-protocol
//!   attack sent it, on any line of the connection.

use super::meta;
use super::tokens::Tokens;
use super::{Keys, Limits, Parsed, Request};
use crate::decimal::{strtol32, strtoull};
use crate::storage::{Cache, StoreMode};

/// Bytes without a "\n" after which a non-get line closes the connection (memcached's).
pub const MAX_UNTERMINATED: usize = 2048;
/// The longest get line we buffer (ours; memcached's is unbounded).
pub const MAX_GET_LINE: usize = 1 << 20;
/// Leading spaces memcached allows before a long get.
const MAX_LEADING_SPACES: usize = 100;
/// Arguments kept for commands with a fixed count; more than this is always too many.
const MAX_ARGS: usize = 8;

const ERROR: &str = "ERROR";
const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
const BAD_CHUNK: &str = "CLIENT_ERROR bad data chunk";
const BAD_DELTA: &str = "CLIENT_ERROR invalid numeric delta argument";
const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";
const BAD_DELETE: &str = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
const NO_SHUTDOWN: &str = "ERROR: shutdown not enabled";

/// Parses the first command in `buf`. `item_fits(key_len, value_len)` says whether a store's
/// data would fit the cache; when it would not, the command is `StoreTooLarge` with
/// `swallow` = the data's length + 2.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits, item_fits: &dyn Fn(usize, usize) -> bool) -> Parsed<'a> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_GET_LINE || (buf.len() > MAX_UNTERMINATED && !is_long_get(buf)) {
            return close();
        }
        return Parsed::Incomplete;
    };
    if nl > MAX_GET_LINE {
        return close();
    }
    let consumed = nl + 1;
    let line = match &buf[..nl] {
        [rest @ .., b'\r'] => rest,
        line => line,
    };
    let mut tokens = Tokens::new(line);
    let Some(command) = tokens.next() else {
        return Parsed::invalid(ERROR, consumed);
    };
    let (mode, cas) = match command {
        b"get" => return get(tokens, false, limits, consumed),
        b"gets" => return get(tokens, true, limits, consumed),
        b"gat" => return gat(tokens, false, limits, consumed),
        b"gats" => return gat(tokens, true, limits, consumed),
        b"set" => (StoreMode::Set, false),
        b"add" => (StoreMode::Add, false),
        b"replace" => (StoreMode::Replace, false),
        b"append" => (StoreMode::Append, false),
        b"prepend" => (StoreMode::Prepend, false),
        b"cas" => (StoreMode::Cas(0), true),
        b"stats" => return command_of(Request::Stats { args: tokens.collect() }, consumed),
        b"version" => return command_of(Request::Version, consumed),
        b"quit" => return command_of(Request::Quit, consumed),
        b"shutdown" => return Parsed::invalid(NO_SHUTDOWN, consumed),
        b"lru_crawler" => return lru_crawler(tokens, consumed),
        b"mg" | b"ms" | b"md" | b"ma" | b"mn" | b"me" => return meta::parse(command, tokens, buf, limits, item_fits, consumed),
        _ => {
            let args = Args::new(tokens);
            return match command {
                b"delete" => delete(&args, limits, consumed),
                b"incr" => delta(&args, true, limits, consumed),
                b"decr" => delta(&args, false, limits, consumed),
                b"touch" => touch(&args, limits, consumed),
                b"flush_all" => flush_all(&args, consumed),
                b"verbosity" => verbosity(&args, consumed),
                _ if is_http_request(command, line) => close(),
                _ => Parsed::invalid(ERROR, consumed),
            };
        }
    };
    store(buf, Args::new(tokens), mode, cas, limits, item_fits, consumed)
}

/// `lru_crawler`: only `metadump` with `all`, `hash` or a comma-separated list of class ids
/// (1..=63, memcached's limit); other crawler commands are not served (no crawler runs here).
fn lru_crawler(mut tokens: Tokens<'_>, consumed: usize) -> Parsed<'_> {
    let (Some(b"metadump"), Some(which), None) = (tokens.next(), tokens.next(), tokens.next()) else {
        return Parsed::invalid(ERROR, consumed);
    };
    let classes = match which {
        b"all" | b"hash" => u64::MAX,
        list => {
            let mut classes = 0u64;
            for id in list.split(|&b| b == b',') {
                match std::str::from_utf8(id).ok().and_then(|id| id.parse::<u32>().ok()) {
                    Some(id @ 1..=63) => classes |= 1 << id,
                    _ => return Parsed::invalid("BADCLASS invalid class id", consumed),
                }
            }
            classes
        }
    };
    command_of(Request::Metadump { classes }, consumed)
}

/// Whether an unterminated line may be a long multi-key get (memcached's test).
fn is_long_get(buf: &[u8]) -> bool {
    let spaces = buf.iter().take_while(|&&b| b == b' ').count();
    let rest = &buf[spaces..];
    spaces <= MAX_LEADING_SPACES && (rest.starts_with(b"get ") || rest.starts_with(b"gets "))
}

fn close<'a>() -> Parsed<'a> {
    Parsed::Invalid { reply: "", consumed: 0, swallow: 0, close: true }
}

/// An error answer that `noreply` silences.
fn refuse<'a>(reply: &'static str, noreply: bool, consumed: usize) -> Parsed<'a> {
    Parsed::invalid(if noreply { "" } else { reply }, consumed)
}

fn command_of(request: Request<'_>, consumed: usize) -> Parsed<'_> {
    Parsed::Command { request, consumed, swallow: 0 }
}

/// Commands memcached knows and we do not serve: their lines answer "ERROR", as memcached
/// answers a bad form of them, whatever their last token.
const UNSERVED: [&[u8]; 8] = [b"slabs", b"watch", b"lru", b"cache_memlimit", b"extstore", b"debugtime", b"refresh_certs", b"bget"];
/// memcached looks at the last of at most this many tokens for "HTTP/".
const HTTP_MAX_TOKENS: usize = 23;

/// Whether a line with an unknown `command` is an HTTP request line, which memcached hangs up on.
fn is_http_request(command: &[u8], line: &[u8]) -> bool {
    if command.len() < 2 || UNSERVED.contains(&command) {
        return false;
    }
    let mut last: &[u8] = &[];
    for (i, token) in Tokens::new(line).enumerate() {
        if i == HTTP_MAX_TOKENS {
            return false;
        }
        last = token;
    }
    last.starts_with(b"HTTP/")
}

/// The arguments of a command that takes a few: the first `MAX_ARGS` and how many there were.
struct Args<'a> {
    args: [&'a [u8]; MAX_ARGS],
    len: usize,
}

impl<'a> Args<'a> {
    fn new(tokens: Tokens<'a>) -> Args<'a> {
        let mut args = Args { args: [&[]; MAX_ARGS], len: 0 };
        for token in tokens {
            if let Some(slot) = args.args.get_mut(args.len) {
                *slot = token;
            }
            args.len += 1;
        }
        args
    }

    fn get(&self, i: usize) -> &'a [u8] {
        self.args.get(i).copied().unwrap_or(&[])
    }

    /// memcached's rule: the last token, when it is exactly "noreply".
    fn noreply(&self) -> bool {
        self.len > 0 && self.get(self.len - 1) == b"noreply"
    }
}

fn get<'a>(tokens: Tokens<'a>, cas: bool, limits: &Limits, consumed: usize) -> Parsed<'a> {
    let keys = Keys { list: tokens.rest() };
    if keys.first().is_none() {
        return Parsed::invalid(ERROR, consumed);
    }
    get_keys(keys, cas, None, limits, consumed)
}

fn gat<'a>(mut tokens: Tokens<'a>, cas: bool, limits: &Limits, consumed: usize) -> Parsed<'a> {
    let Some(exptime) = tokens.next() else {
        return Parsed::invalid(ERROR, consumed);
    };
    let Some(exptime) = strtol32(exptime) else {
        return Parsed::invalid(BAD_EXPTIME, consumed);
    };
    get_keys(Keys { list: tokens.rest() }, cas, Some(i64::from(exptime)), limits, consumed)
}

/// A key too long anywhere in a get fails the whole command, with no partial answer.
fn get_keys<'a>(keys: Keys<'a>, cas: bool, touch: Option<i64>, limits: &Limits, consumed: usize) -> Parsed<'a> {
    if keys.iter().any(|k| k.len() > limits.max_key) {
        return Parsed::invalid(BAD_FORMAT, consumed);
    }
    command_of(Request::Get { keys, cas, touch }, consumed)
}

fn store<'a>(
    buf: &'a [u8],
    args: Args<'a>,
    mode: StoreMode,
    cas: bool,
    limits: &Limits,
    item_fits: &dyn Fn(usize, usize) -> bool,
    consumed: usize,
) -> Parsed<'a> {
    let fields = if cas { 5 } else { 4 };
    if args.len != fields && args.len != fields + 1 {
        return Parsed::invalid(ERROR, consumed);
    }
    let noreply = args.noreply();
    let key = args.get(0);
    if key.len() > limits.max_key {
        return refuse(BAD_FORMAT, noreply, consumed);
    }
    let (Some(flags), Some(exptime), Some(len)) = (strtoull(args.get(1)), strtol32(args.get(2)), strtol32(args.get(3))) else {
        return refuse(BAD_FORMAT, noreply, consumed);
    };
    let mode = match (cas, strtoull(args.get(4))) {
        (false, _) => mode,
        (true, Some(unique)) => StoreMode::Cas(unique),
        (true, None) => return refuse(BAD_FORMAT, noreply, consumed),
    };
    let Ok(len) = usize::try_from(len) else {
        return refuse(BAD_FORMAT, noreply, consumed);
    };
    if len > i32::MAX as usize - 2 {
        return refuse(BAD_FORMAT, noreply, consumed);
    }
    if !item_fits(key.len(), Cache::sized_value(len, flags as u32)) {
        return Parsed::Command { request: Request::StoreTooLarge { mode, key, noreply }, consumed, swallow: len + 2 };
    }
    let end = consumed + len + 2;
    let Some(block) = buf.get(consumed..end) else {
        return Parsed::Incomplete;
    };
    let (data, tail) = block.split_at(len);
    if tail != b"\r\n" {
        return refuse(BAD_CHUNK, noreply, end);
    }
    let request = Request::Store { mode, key, flags: flags as u32, exptime: i64::from(exptime), data, noreply };
    command_of(request, end)
}

fn delete<'a>(args: &Args<'a>, limits: &Limits, consumed: usize) -> Parsed<'a> {
    if args.len == 0 || args.len > 3 {
        return Parsed::invalid(ERROR, consumed);
    }
    let noreply = args.len > 1 && args.noreply();
    if args.len > 1 {
        let hold_is_zero = args.get(1) == b"0";
        let valid = if args.len == 2 { hold_is_zero || noreply } else { hold_is_zero && noreply };
        if !valid {
            return refuse(BAD_DELETE, noreply, consumed);
        }
    }
    let key = args.get(0);
    if key.len() > limits.max_key {
        return refuse(BAD_FORMAT, noreply, consumed);
    }
    command_of(Request::Delete { key, noreply }, consumed)
}

/// The key and `noreply` of a command taking a key, one argument and an optional `noreply`
/// (incr, decr, touch), or the answer that refuses its line.
fn key_and_argument<'a>(args: &Args<'a>, limits: &Limits, consumed: usize) -> Result<(&'a [u8], bool), Parsed<'a>> {
    if args.len != 2 && args.len != 3 {
        return Err(Parsed::invalid(ERROR, consumed));
    }
    let noreply = args.noreply();
    let key = args.get(0);
    if key.len() > limits.max_key {
        return Err(refuse(BAD_FORMAT, noreply, consumed));
    }
    Ok((key, noreply))
}

fn delta<'a>(args: &Args<'a>, incr: bool, limits: &Limits, consumed: usize) -> Parsed<'a> {
    let (key, noreply) = match key_and_argument(args, limits, consumed) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let Some(amount) = strtoull(args.get(1)) else {
        return refuse(BAD_DELTA, noreply, consumed);
    };
    let request = if incr { Request::Incr { key, amount, noreply } } else { Request::Decr { key, amount, noreply } };
    command_of(request, consumed)
}

fn touch<'a>(args: &Args<'a>, limits: &Limits, consumed: usize) -> Parsed<'a> {
    let (key, noreply) = match key_and_argument(args, limits, consumed) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let Some(exptime) = strtol32(args.get(1)) else {
        return refuse(BAD_EXPTIME, noreply, consumed);
    };
    command_of(Request::Touch { key, exptime: i64::from(exptime), noreply }, consumed)
}

/// A bad delay is left to `execute`: memcached refuses a disabled flush_all before reading it.
fn flush_all<'a>(args: &Args<'a>, consumed: usize) -> Parsed<'a> {
    if args.len > 2 {
        return Parsed::invalid(ERROR, consumed);
    }
    let noreply = args.noreply();
    if args.len == usize::from(noreply) {
        return command_of(Request::FlushAll { delay: 0, noreply }, consumed);
    }
    let request = match strtol32(args.get(0)) {
        Some(delay) => Request::FlushAll { delay: i64::from(delay), noreply },
        None => Request::FlushAllBadDelay { noreply },
    };
    command_of(request, consumed)
}

fn verbosity<'a>(args: &Args<'a>, consumed: usize) -> Parsed<'a> {
    if args.len != 1 && args.len != 2 {
        return Parsed::invalid(ERROR, consumed);
    }
    let noreply = args.noreply();
    match strtoull(args.get(0)) {
        Some(level) => command_of(Request::Verbosity { level: level as u32, noreply }, consumed),
        None => refuse(BAD_FORMAT, noreply, consumed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_key: crate::storage::KEY_MAX_LENGTH };

    fn p(buf: &[u8]) -> Parsed<'_> {
        parse(buf, &LIMITS, &|_, len| len <= 1_000_000)
    }

    fn cmd(request: Request<'_>, consumed: usize) -> Parsed<'_> {
        Parsed::Command { request, consumed, swallow: 0 }
    }

    fn inv(reply: &'static str, consumed: usize) -> Parsed<'static> {
        Parsed::Invalid { reply, consumed, swallow: 0, close: false }
    }

    fn set(key: &[u8], flags: u32, exptime: i64, data: &[u8], noreply: bool) -> Request<'static> {
        let key: &'static [u8] = Box::leak(key.to_vec().into_boxed_slice());
        let data: &'static [u8] = Box::leak(data.to_vec().into_boxed_slice());
        Request::Store { mode: StoreMode::Set, key, flags, exptime, data, noreply }
    }

    fn get(list: &'static [u8]) -> Request<'static> {
        Request::Get { keys: Keys { list }, cas: false, touch: None }
    }

    #[test]
    fn empty_and_unknown_lines_answer_error() {
        assert_eq!(p(b"\r\n"), inv(ERROR, 2));
        assert_eq!(p(b"\n"), inv(ERROR, 1));
        assert_eq!(p(b" \r\n"), inv(ERROR, 3));
        assert_eq!(p(b"GET foo\r\n"), inv(ERROR, 9));
        assert_eq!(p(b"get\tfoo\r\n"), inv(ERROR, 9));
        assert_eq!(p(b"version\r\r\n"), inv(ERROR, 10));
        for line in [
            "misbehave",
            "lru_crawler crawl all",
            "slabs automove 1",
            "watch",
            "lru mode flat",
            "cache_memlimit 100",
            "extstore",
            "debugtime",
        ] {
            let buf = format!("{line}\r\n");
            assert_eq!(p(buf.as_bytes()), inv(ERROR, buf.len()), "{line}");
        }
    }

    #[test]
    fn an_http_request_line_closes_without_an_answer() {
        let closes = |line: &str| matches!(p(line.as_bytes()), Parsed::Invalid { reply: "", close: true, .. });
        let many = |n: usize| format!("foo{} HTTP/1.1\r\n", " y".repeat(n - 2));
        // Each as memcached 1.6.18 answered it.
        for line in [
            "GET / HTTP/1.0\r\n",
            "PUT /x HTTP/1.1\r\n",
            "DELETE HTTP/1.1\r\n",
            "HTTP/1.1\r\n",
            "xx HTTP/\r\n",
            "\tGET / HTTP/1.0\r\n",
            "GET  /  HTTP/1.0 \n",
            "misbehave HTTP/1.1\r\n",
            &many(23),
        ] {
            assert!(closes(line), "{line:?}");
        }
        for line in [
            "x HTTP/1.1\r\n",
            "GET / http/1.0\r\n",
            "GET /HTTP/1.0\r\n",
            "GET / HTTP\r\n",
            "foo HTTP/1.1 y\r\n",
            "slabs HTTP/1.1\r\n",
            &many(24),
        ] {
            assert_eq!(p(line.as_bytes()), inv(ERROR, line.len()), "{line:?}");
        }
        assert_eq!(p(b"get HTTP/1.1\r\n"), cmd(get(b"HTTP/1.1"), 14));
    }

    #[test]
    fn shutdown_is_not_enabled() {
        assert_eq!(p(b"shutdown\r\n"), inv("ERROR: shutdown not enabled", 10));
        assert_eq!(p(b"shutdown graceful\r\n"), inv("ERROR: shutdown not enabled", 19));
    }

    #[test]
    fn incomplete_until_newline() {
        assert_eq!(p(b""), Parsed::Incomplete);
        assert_eq!(p(b"get foo"), Parsed::Incomplete);
        assert_eq!(p(b"get foo\r"), Parsed::Incomplete);
        assert_eq!(p(b"set a 0 0 3\r\nab"), Parsed::Incomplete);
        assert_eq!(p(b"set a 0 0 3\r\nabc\n"), Parsed::Incomplete);
    }

    #[test]
    fn get_tokenizes_on_spaces_only() {
        assert_eq!(p(b"get foo\n"), cmd(get(b"foo"), 8));
        assert_eq!(p(b"get  foo  bar \r\n"), cmd(get(b"foo bar"), 16));
        assert_eq!(p(b"   get foo\r\n"), cmd(get(b"foo"), 12));
        assert_eq!(p(b"get foo\r\r\n"), cmd(get(b"foo\r"), 10));
        assert_eq!(p(b"get a\tb\r\n"), cmd(get(b"a\tb"), 9));
        assert_eq!(p(b"get foo\r\nget bar\r\n"), cmd(get(b"foo"), 9));
        assert_eq!(p(b"gets a b\r\n"), cmd(Request::Get { keys: Keys { list: b"a b" }, cas: true, touch: None }, 10));
    }

    #[test]
    fn get_keys_are_split_when_used() {
        let Parsed::Command { request: Request::Get { keys, .. }, .. } = p(b"get  a\tb  c d  \r\n") else {
            panic!("not a get");
        };
        assert_eq!(keys.iter().collect::<Vec<_>>(), [&b"a\tb"[..], b"c", b"d"]);
        assert_eq!((keys.first(), keys.last()), (Some(&b"a\tb"[..]), Some(&b"d"[..])));
        let one = Keys { list: b"k" };
        assert_eq!((one.first(), one.last()), (Some(&b"k"[..]), Some(&b"k"[..])));
        let none = Keys { list: b"  " };
        assert_eq!((none.first(), none.last()), (None, None));
    }

    #[test]
    fn get_without_keys_is_error() {
        assert_eq!(p(b"get\r\n"), inv(ERROR, 5));
        assert_eq!(p(b"get \r\n"), inv(ERROR, 6));
        assert_eq!(p(b"gets\r\n"), inv(ERROR, 6));
    }

    #[test]
    fn get_key_too_long_fails_the_whole_get() {
        let k250 = "k".repeat(250);
        let k251 = "k".repeat(251);
        let ok = format!("get {k250}\r\n");
        assert_eq!(p(ok.as_bytes()), cmd(Request::Get { keys: Keys { list: k250.as_bytes() }, cas: false, touch: None }, ok.len()));
        for line in [format!("get {k251}\r\n"), format!("get a {k251} b\r\n"), format!("gets {k251}\r\n"), format!("gat 0 {k251}\r\n")] {
            assert_eq!(p(line.as_bytes()), inv(BAD_FORMAT, line.len()), "{line}");
        }
    }

    #[test]
    fn gat_takes_exptime_then_keys() {
        assert_eq!(p(b"gat 10 a b\r\n"), cmd(Request::Get { keys: Keys { list: b"a b" }, cas: false, touch: Some(10) }, 12));
        assert_eq!(p(b"gats -1 a\r\n"), cmd(Request::Get { keys: Keys { list: b"a" }, cas: true, touch: Some(-1) }, 11));
        assert_eq!(p(b"gat 10\r\n"), cmd(Request::Get { keys: Keys { list: b"" }, cas: false, touch: Some(10) }, 8));
        assert_eq!(p(b"gat 10 a noreply\r\n"), cmd(Request::Get { keys: Keys { list: b"a noreply" }, cas: false, touch: Some(10) }, 18));
        assert_eq!(p(b"gat\r\n"), inv(ERROR, 5));
        assert_eq!(p(b"gat abc a\r\n"), inv(BAD_EXPTIME, 11));
        assert_eq!(p(b"gat 1x a\r\n"), inv(BAD_EXPTIME, 10));
    }

    #[test]
    fn set_parses_line_and_data() {
        assert_eq!(p(b"set a 0 0 3\r\nabc\r\nget a\r\n"), cmd(set(b"a", 0, 0, b"abc", false), 18));
        assert_eq!(p(b"set a 0 0 3\nabc\r\n"), cmd(set(b"a", 0, 0, b"abc", false), 17));
        assert_eq!(p(b"set a 0 0 3 noreply\r\nabc\r\n"), cmd(set(b"a", 0, 0, b"abc", true), 26));
        assert_eq!(p(b"set a 0 0 3 4\r\nabc\r\n"), cmd(set(b"a", 0, 0, b"abc", false), 20));
        assert_eq!(p(b"set a  0  0  3\r\nabc\r\n"), cmd(set(b"a", 0, 0, b"abc", false), 21));
        assert_eq!(p(b"set a 0 0 3 \r\nabc\r\n"), cmd(set(b"a", 0, 0, b"abc", false), 19));
        assert_eq!(p(b"set a 0 0 0\r\n\r\n"), cmd(set(b"a", 0, 0, b"", false), 15));
        assert_eq!(p(b"set a 0 0 -0\r\n\r\n"), cmd(set(b"a", 0, 0, b"", false), 16));
        let modes =
            [("add", StoreMode::Add), ("replace", StoreMode::Replace), ("append", StoreMode::Append), ("prepend", StoreMode::Prepend)];
        for (name, mode) in modes {
            let buf = format!("{name} k 5 7 1\r\nx\r\n");
            let request = Request::Store { mode, key: b"k", flags: 5, exptime: 7, data: b"x", noreply: false };
            assert_eq!(p(buf.as_bytes()), cmd(request, buf.len()));
        }
    }

    #[test]
    fn set_numbers_follow_memcached() {
        assert_eq!(p(b"set a 4294967295 0 1\r\nx\r\n"), cmd(set(b"a", u32::MAX, 0, b"x", false), 25));
        assert_eq!(p(b"set a 4294967297 0 1\r\nx\r\n"), cmd(set(b"a", 1, 0, b"x", false), 25));
        assert_eq!(p(b"set a 18446744073709551615 0 1\r\nx\r\n"), cmd(set(b"a", u32::MAX, 0, b"x", false), 35));
        assert_eq!(p(b"set a -0 0 1\r\nx\r\n"), cmd(set(b"a", 0, 0, b"x", false), 17));
        assert_eq!(p(b"set a +1 +5 +1\r\nx\r\n"), cmd(set(b"a", 1, 5, b"x", false), 19));
        assert_eq!(p(b"set a 0 -1 1\r\nx\r\n"), cmd(set(b"a", 0, -1, b"x", false), 17));
        assert_eq!(p(b"set a 0 2147483648 1\r\nx\r\n"), cmd(set(b"a", 0, -2147483648, b"x", false), 25));
        assert_eq!(p(b"set a 0 9223372036854775807 1\r\nx\r\n"), cmd(set(b"a", 0, -1, b"x", false), 34));
        assert_eq!(p(b"set a 0 -9223372036854775808 1\r\nx\r\n"), cmd(set(b"a", 0, 0, b"x", false), 35));
        assert_eq!(p(b"set a 0 -2147483649 1\r\nx\r\n"), cmd(set(b"a", 0, 2147483647, b"x", false), 26));
        assert_eq!(p(b"set a 0 0 4294967297\r\nx\r\n"), cmd(set(b"a", 0, 0, b"x", false), 25));
        assert_eq!(p(b"set a 0 0 1\r\r\nx\r\n"), cmd(set(b"a", 0, 0, b"x", false), 17));
        assert_eq!(p(b"set a 0 0 1\rx\r\nx\r\n"), cmd(set(b"a", 0, 0, b"x", false), 18));
    }

    #[test]
    fn set_bad_command_line() {
        for line in [
            "set a -1 0 3",
            "set a 18446744073709551616 0 3",
            "set a 0 abc 3",
            "set a 0 99999999999999999999 3",
            "set a 0 0 -1",
            "set a 0 0 abc",
            "set a 0 0 3x",
            "set a 0x 0 3",
            "set a 0 0x 3",
            "set a 0 0 99999999999999999999",
            "set a 0 0 2147483646",
            "set a 0 0 2147483647",
        ] {
            let buf = format!("{line}\r\nabc\r\n");
            assert_eq!(p(buf.as_bytes()), inv(BAD_FORMAT, line.len() + 2), "{line}");
            let buf = format!("{line} noreply\r\nabc\r\n");
            assert_eq!(p(buf.as_bytes()), inv("", line.len() + 10), "{line} noreply");
        }
        let k251 = "k".repeat(251);
        let buf = format!("set {k251} 0 0 3\r\nabc\r\n");
        assert_eq!(p(buf.as_bytes()), inv(BAD_FORMAT, buf.len() - 5));
        let buf = format!("add {k251} 0 0 3 noreply\r\nabc\r\n");
        assert_eq!(p(buf.as_bytes()), inv("", buf.len() - 5));
    }

    #[test]
    fn set_wrong_token_count_is_error() {
        assert_eq!(p(b"set\r\n"), inv(ERROR, 5));
        assert_eq!(p(b"set a\r\n"), inv(ERROR, 7));
        assert_eq!(p(b"set a 0\r\n"), inv(ERROR, 9));
        assert_eq!(p(b"set a 0 0\r\n"), inv(ERROR, 11));
        assert_eq!(p(b"set a 0 0 3 noreply extra\r\nabc\r\n"), inv(ERROR, 27));
        assert_eq!(p(b"set a\t0 0 3\r\nabc\r\n"), inv(ERROR, 13));
        assert_eq!(p(b"set a 0 0 noreply\r\n"), inv("", 19));
    }

    #[test]
    fn bad_data_chunk_drops_length_plus_two() {
        assert_eq!(p(b"set a 0 0 3\r\nhello\r\n"), inv(BAD_CHUNK, 18));
        assert_eq!(p(b"set a 0 0 3 noreply\r\nhello\r\n"), inv("", 26));
        assert_eq!(p(b"set a 0 0 3\r\nabcde"), inv(BAD_CHUNK, 18));
        assert_eq!(p(b"set a 0 0 3\r\nabc\nXget a\r\n"), inv(BAD_CHUNK, 18));
    }

    #[test]
    fn store_too_large_swallows_the_data() {
        let too_large = |buf| parse(buf, &LIMITS, &|_, len| len <= 100);
        assert_eq!(
            too_large(b"set big 0 0 2000000\r\n"),
            Parsed::Command {
                request: Request::StoreTooLarge { mode: StoreMode::Set, key: b"big", noreply: false },
                consumed: 21,
                swallow: 2_000_002
            }
        );
        assert_eq!(
            too_large(b"add big 0 0 101 noreply\r\nxx"),
            Parsed::Command {
                request: Request::StoreTooLarge { mode: StoreMode::Add, key: b"big", noreply: true },
                consumed: 25,
                swallow: 103
            }
        );
        assert_eq!(
            too_large(b"set big 0 0 2147483645\r\n"),
            Parsed::Command {
                request: Request::StoreTooLarge { mode: StoreMode::Set, key: b"big", noreply: false },
                consumed: 24,
                swallow: 2147483647
            }
        );
    }

    #[test]
    fn cas_takes_a_unique() {
        let request = Request::Store { mode: StoreMode::Cas(17), key: b"a", flags: 0, exptime: 0, data: b"x", noreply: false };
        assert_eq!(p(b"cas a 0 0 1 17\r\nx\r\n"), cmd(request, 19));
        let request = Request::Store { mode: StoreMode::Cas(1), key: b"a", flags: 0, exptime: 0, data: b"x", noreply: false };
        assert_eq!(p(b"cas a 0 0 1 1 x\r\nx\r\n"), cmd(request, 20));
        let request = Request::Store { mode: StoreMode::Cas(1), key: b"a", flags: 0, exptime: 0, data: b"x", noreply: true };
        assert_eq!(p(b"cas a 0 0 1 1 noreply\r\nx\r\n"), cmd(request, 26));
        assert_eq!(p(b"cas\r\n"), inv(ERROR, 5));
        assert_eq!(p(b"cas a 0 0 1\r\n"), inv(ERROR, 13));
        assert_eq!(p(b"cas a 0 0 1 1 noreply x\r\nx\r\n"), inv(ERROR, 25));
        assert_eq!(p(b"cas a 0 0 1 x\r\nx\r\n"), inv(BAD_FORMAT, 15));
        assert_eq!(p(b"cas a 0 0 1 -1\r\nx\r\n"), inv(BAD_FORMAT, 16));
        assert_eq!(p(b"cas a 0 0 1 18446744073709551616\r\nx\r\n"), inv(BAD_FORMAT, 34));
    }

    #[test]
    fn delete_accepts_zero_and_noreply_only() {
        assert_eq!(p(b"delete k\r\n"), cmd(Request::Delete { key: b"k", noreply: false }, 10));
        assert_eq!(p(b"delete k 0\r\n"), cmd(Request::Delete { key: b"k", noreply: false }, 12));
        assert_eq!(p(b"delete k noreply\r\n"), cmd(Request::Delete { key: b"k", noreply: true }, 18));
        assert_eq!(p(b"delete k 0 noreply\r\n"), cmd(Request::Delete { key: b"k", noreply: true }, 20));
        assert_eq!(p(b"delete noreply\r\n"), cmd(Request::Delete { key: b"noreply", noreply: false }, 16));
        for line in ["delete k 1", "delete k noreply 0", "delete k x", "delete k 00", "delete k 0 0"] {
            let buf = format!("{line}\r\n");
            assert_eq!(p(buf.as_bytes()), inv(BAD_DELETE, buf.len()), "{line}");
        }
        assert_eq!(p(b"delete k 1 noreply\r\n"), inv("", 20));
        assert_eq!(p(b"delete k 0 noreply x\r\n"), inv(ERROR, 22));
        assert_eq!(p(b"delete\r\n"), inv(ERROR, 8));
        let k251 = "k".repeat(251);
        let buf = format!("delete {k251}\r\n");
        assert_eq!(p(buf.as_bytes()), inv(BAD_FORMAT, buf.len()));
        let buf = format!("delete {k251} noreply\r\n");
        assert_eq!(p(buf.as_bytes()), inv("", buf.len()));
    }

    #[test]
    fn incr_decr_need_a_u64_delta() {
        assert_eq!(p(b"incr k 1\r\n"), cmd(Request::Incr { key: b"k", amount: 1, noreply: false }, 10));
        assert_eq!(p(b"decr k 1\r\n"), cmd(Request::Decr { key: b"k", amount: 1, noreply: false }, 10));
        assert_eq!(p(b"incr k 18446744073709551615\r\n"), cmd(Request::Incr { key: b"k", amount: u64::MAX, noreply: false }, 29));
        assert_eq!(p(b"incr k +1\r\n"), cmd(Request::Incr { key: b"k", amount: 1, noreply: false }, 11));
        assert_eq!(p(b"incr k  1\r\n"), cmd(Request::Incr { key: b"k", amount: 1, noreply: false }, 11));
        assert_eq!(p(b"incr k 1 2\r\n"), cmd(Request::Incr { key: b"k", amount: 1, noreply: false }, 12));
        assert_eq!(p(b"incr k 1 noreply\r\n"), cmd(Request::Incr { key: b"k", amount: 1, noreply: true }, 18));
        assert_eq!(p(b"incr k -18446744073709551615\r\n"), cmd(Request::Incr { key: b"k", amount: 1, noreply: false }, 30));
        for line in ["incr k -1", "incr k abc", "incr k 18446744073709551616", "incr k 1x", "decr k -1"] {
            let buf = format!("{line}\r\n");
            assert_eq!(p(buf.as_bytes()), inv(BAD_DELTA, buf.len()), "{line}");
        }
        assert_eq!(p(b"incr k x noreply\r\n"), inv("", 18));
        assert_eq!(p(b"incr k\r\n"), inv(ERROR, 8));
        assert_eq!(p(b"incr k 1 2 3\r\n"), inv(ERROR, 14));
        let k251 = "k".repeat(251);
        let buf = format!("incr {k251} 1\r\n");
        assert_eq!(p(buf.as_bytes()), inv(BAD_FORMAT, buf.len()));
    }

    #[test]
    fn touch_needs_an_exptime() {
        assert_eq!(p(b"touch k 10\r\n"), cmd(Request::Touch { key: b"k", exptime: 10, noreply: false }, 12));
        assert_eq!(p(b"touch k -1\r\n"), cmd(Request::Touch { key: b"k", exptime: -1, noreply: false }, 12));
        assert_eq!(p(b"touch k 10 x\r\n"), cmd(Request::Touch { key: b"k", exptime: 10, noreply: false }, 14));
        assert_eq!(p(b"touch k 10 noreply\r\n"), cmd(Request::Touch { key: b"k", exptime: 10, noreply: true }, 20));
        assert_eq!(p(b"touch k abc\r\n"), inv(BAD_EXPTIME, 13));
        assert_eq!(p(b"touch k 99999999999999999999\r\n"), inv(BAD_EXPTIME, 30));
        assert_eq!(p(b"touch k abc noreply\r\n"), inv("", 21));
        assert_eq!(p(b"touch k\r\n"), inv(ERROR, 9));
        assert_eq!(p(b"touch k 10 x y\r\n"), inv(ERROR, 16));
        let k251 = "k".repeat(251);
        let buf = format!("touch {k251} 1\r\n");
        assert_eq!(p(buf.as_bytes()), inv(BAD_FORMAT, buf.len()));
    }

    #[test]
    fn flush_all_delay_and_noreply() {
        assert_eq!(p(b"flush_all\r\n"), cmd(Request::FlushAll { delay: 0, noreply: false }, 11));
        assert_eq!(p(b"flush_all  \r\n"), cmd(Request::FlushAll { delay: 0, noreply: false }, 13));
        assert_eq!(p(b"flush_all 0\r\n"), cmd(Request::FlushAll { delay: 0, noreply: false }, 13));
        assert_eq!(p(b"flush_all -1\r\n"), cmd(Request::FlushAll { delay: -1, noreply: false }, 14));
        assert_eq!(p(b"flush_all 10 0\r\n"), cmd(Request::FlushAll { delay: 10, noreply: false }, 16));
        assert_eq!(p(b"flush_all noreply\r\n"), cmd(Request::FlushAll { delay: 0, noreply: true }, 19));
        assert_eq!(p(b"flush_all 5 noreply\r\n"), cmd(Request::FlushAll { delay: 5, noreply: true }, 21));
        assert_eq!(p(b"flush_all abc\r\n"), cmd(Request::FlushAllBadDelay { noreply: false }, 15));
        assert_eq!(p(b"flush_all 1x\r\n"), cmd(Request::FlushAllBadDelay { noreply: false }, 14));
        assert_eq!(p(b"flush_all 99999999999999999999\r\n"), cmd(Request::FlushAllBadDelay { noreply: false }, 32));
        assert_eq!(p(b"flush_all abc noreply\r\n"), cmd(Request::FlushAllBadDelay { noreply: true }, 23));
        assert_eq!(p(b"flush_all 0 noreply x\r\n"), inv(ERROR, 23));
    }

    #[test]
    fn verbosity_needs_a_level() {
        assert_eq!(p(b"verbosity 1\r\n"), cmd(Request::Verbosity { level: 1, noreply: false }, 13));
        assert_eq!(p(b"verbosity 1 2\r\n"), cmd(Request::Verbosity { level: 1, noreply: false }, 15));
        assert_eq!(p(b"verbosity 1 noreply\r\n"), cmd(Request::Verbosity { level: 1, noreply: true }, 21));
        assert_eq!(p(b"verbosity 99999999999\r\n"), cmd(Request::Verbosity { level: 99999999999u64 as u32, noreply: false }, 23));
        assert_eq!(p(b"verbosity noreply\r\n"), inv("", 19));
        assert_eq!(p(b"verbosity abc\r\n"), inv(BAD_FORMAT, 15));
        assert_eq!(p(b"verbosity -1\r\n"), inv(BAD_FORMAT, 14));
        assert_eq!(p(b"verbosity\r\n"), inv(ERROR, 11));
        assert_eq!(p(b"verbosity 1 2 3\r\n"), inv(ERROR, 17));
    }

    #[test]
    fn version_quit_stats_take_any_arguments() {
        assert_eq!(p(b"version\r\n"), cmd(Request::Version, 9));
        assert_eq!(p(b"version noreply\r\n"), cmd(Request::Version, 17));
        assert_eq!(p(b" version\r\n"), cmd(Request::Version, 10));
        assert_eq!(p(b"quit\r\n"), cmd(Request::Quit, 6));
        assert_eq!(p(b"quit x\r\nversion\r\n"), cmd(Request::Quit, 8));
        assert_eq!(p(b"stats\r\n"), cmd(Request::Stats { args: vec![] }, 7));
        assert_eq!(p(b"stats  \r\n"), cmd(Request::Stats { args: vec![] }, 9));
        assert_eq!(p(b"stats detail on\r\n"), cmd(Request::Stats { args: vec![b"detail", b"on"] }, 17));
    }

    #[test]
    fn long_lines_close_unless_get() {
        let line = vec![b'x'; MAX_UNTERMINATED];
        assert_eq!(p(&line), Parsed::Incomplete);
        let line = vec![b'x'; MAX_UNTERMINATED + 1];
        assert_eq!(p(&line), close());
        let mut set = b"set ".to_vec();
        set.resize(5000, b'k');
        assert_eq!(p(&set), close());
        let mut get = b"get ".to_vec();
        get.resize(100_000, b'k');
        assert_eq!(p(&get), Parsed::Incomplete);
        let mut gets = b"gets ".to_vec();
        gets.resize(100_000, b' ');
        assert_eq!(p(&gets), Parsed::Incomplete);
        let mut spaced = vec![b' '; 100];
        spaced.extend_from_slice(b"get ");
        spaced.resize(5000, b'k');
        assert_eq!(p(&spaced), Parsed::Incomplete);
        let mut spaced = vec![b' '; 101];
        spaced.extend_from_slice(b"get ");
        spaced.resize(5000, b'k');
        assert_eq!(p(&spaced), close());
        let mut gat = b"gat 0 ".to_vec();
        gat.resize(5000, b'k');
        assert_eq!(p(&gat), close());
        get.resize(MAX_GET_LINE + 1, b'k');
        assert_eq!(p(&get), close());
        get.push(b'\n');
        assert_eq!(p(&get), close());
    }

    #[test]
    fn long_line_with_newline_is_parsed() {
        let mut line = vec![b'x'; 5000];
        line.extend_from_slice(b"\r\n");
        assert_eq!(p(&line), inv(ERROR, 5002));
        let mut get = b"get ".to_vec();
        for _ in 0..10_000 {
            get.extend_from_slice(b"k ");
        }
        get.extend_from_slice(b"\r\n");
        match p(&get) {
            Parsed::Command { request: Request::Get { keys, .. }, consumed, .. } => {
                assert_eq!(keys.iter().count(), 10_000);
                assert_eq!(consumed, get.len());
            }
            other => panic!("{other:?}"),
        }
    }

    /// Invariants on arbitrary bytes: no panic, consumption within the buffer, progress.
    #[test]
    fn any_bytes_keep_the_invariants() {
        let alphabet: &[u8] = b" \r\n\t0123-+=gestadcrpnoylxbm\x00\xff";
        let words: [&[u8]; 14] = [
            b"get ",
            b"gat ",
            b"set ",
            b"cas ",
            b"incr ",
            b"delete ",
            b"touch ",
            b"flush_all ",
            b"verbosity ",
            b"noreply",
            b"4294967296 ",
            b"\r\n",
            b"me ",
            b"mg ",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut buf = Vec::new();
        for _ in 0..200_000 {
            buf.clear();
            let len = (next() % 40) as usize;
            while buf.len() < len {
                let r = next();
                if r % 3 == 0 {
                    buf.extend_from_slice(words[(r / 3 % words.len() as u64) as usize]);
                } else {
                    buf.push(alphabet[(r / 3 % alphabet.len() as u64) as usize]);
                }
            }
            check(&buf);
        }
        for len in 0..4 {
            let mut bytes = vec![0u8; len];
            exhaust(&mut bytes, 0);
        }
    }

    fn exhaust(bytes: &mut Vec<u8>, i: usize) {
        if i == bytes.len() {
            check(bytes);
            return;
        }
        for b in [b' ', b'\r', b'\n', b'0', b'g', b'\xff'] {
            bytes[i] = b;
            exhaust(bytes, i + 1);
        }
    }

    fn check(buf: &[u8]) {
        let fits = |_: usize, len: usize| len < 3;
        match parse(buf, &LIMITS, &fits) {
            Parsed::Incomplete => assert!(buf.len() <= MAX_GET_LINE),
            Parsed::Command { consumed, .. } => assert!(consumed > 0 && consumed <= buf.len(), "{buf:?}"),
            Parsed::Invalid { consumed, close, .. } => assert!(close || (consumed > 0 && consumed <= buf.len()), "{buf:?}"),
        }
    }
}
