//! The integration-test harness: starts the real binary (or Debian's memcached, for
//! comparisons) on a free port, waits for it by polling a connect with a deadline, and kills it
//! when dropped, even when the test panics.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start answering.
pub const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long one read may wait before a test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The binary under test: memcachedrep, or the program named by `MEMCACHEDREP_TEST_SERVER`
/// (e.g. `/usr/bin/memcached`, to check that a test's expectations are memcached's own).
pub fn binary() -> PathBuf {
    match std::env::var_os("MEMCACHEDREP_TEST_SERVER") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_memcachedrep")),
    }
}

/// `MEMCACHEDREP_TEST_WRAPPER` (e.g. `tests/valgrind/memcheck.sh`): a program that memcachedrep
/// is started under, with the server's command line as its arguments. Debian's memcached is
/// never wrapped.
pub fn wrapper() -> Option<PathBuf> {
    std::env::var_os("MEMCACHEDREP_TEST_WRAPPER").filter(|w| !w.is_empty()).map(PathBuf::from)
}

/// How many times longer the server may take under the wrapper (valgrind runs it some 30
/// times slower): every deadline of this harness is multiplied by it.
pub fn slowdown() -> u32 {
    if wrapper().is_some() {
        20
    } else {
        1
    }
}

/// The command that starts `program`: under the wrapper when it is memcachedrep.
pub fn server_command(program: &std::path::Path) -> Command {
    match wrapper() {
        Some(wrapper) if program == binary() => {
            let mut cmd = Command::new(wrapper);
            cmd.arg(program);
            cmd
        }
        _ => Command::new(program),
    }
}

/// Whether the tests run against another server than memcachedrep.
pub fn against_reference() -> bool {
    std::env::var_os("MEMCACHEDREP_TEST_SERVER").is_some()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind port 0").local_addr().unwrap().port()
}

/// Whether an external program is there. In CI a missing one fails the test; elsewhere the
/// test is skipped (`skip`) and the caller returns early on `false`.
pub fn require_program(program: &str, debian_package: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} || test -x {program}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{program} is missing: CI must install Debian's {debian_package}");
        }
        skip(&format!("{program} not found"), &format!("install: apt-get install {debian_package}"));
    }
    found
}

/// Whether the tests run as root, which some need. In CI its absence fails the test;
/// elsewhere the test is skipped (`skip`) and the caller returns early on `false`.
pub fn require_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} needs root, and CI runs the tests as root");
    }
    skip(&format!("{what} needs root"), "run the tests as root");
    false
}

/// Says that the running test is skipped, and why: a skipped test still shows as passed, so
/// the line goes to stderr and is appended to the file `MEMCACHEDREP_SKIPPED` names, where
/// `make test` counts them.
pub fn skip(reason: &str, remedy: &str) {
    let binary = std::env::args().next().unwrap_or_default();
    let binary = std::path::Path::new(&binary).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    // Test binaries are named "<file>-<hash>".
    let binary = binary.rsplit_once('-').map_or(binary.as_str(), |(name, _)| name).to_string();
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let line = format!("SKIPPED: {binary}::{test}: {reason} ({remedy})\n");
    eprint!("{line}");
    if let Some(path) = std::env::var_os("MEMCACHEDREP_SKIPPED") {
        let appended = std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            panic!("cannot record the skip in {}: {e}", PathBuf::from(path).display());
        }
    }
}

/// Polls `cond` until it holds or `deadline` passes; panics with `what` on time-out.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline * slowdown();
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= end {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running server process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    /// Set when started on a unix socket.
    pub socket: Option<PathBuf>,
}

impl Server {
    /// Starts memcachedrep on 127.0.0.1 and a free port with these extra arguments.
    pub fn start(args: &[&str]) -> Server {
        Server::start_program(&binary().to_string_lossy(), args)
    }

    /// Starts any memcached-compatible program (e.g. Debian's `memcached`) the same way.
    pub fn start_program(program: &str, args: &[&str]) -> Server {
        let port = free_port();
        let mut cmd = server_command(std::path::Path::new(program));
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string()]);
        cmd.args(args);
        if is_root() && !args.contains(&"-u") {
            cmd.args(["-u", "root"]);
        }
        let child = cmd.stdin(Stdio::null()).spawn().unwrap_or_else(|e| panic!("start {program}: {e}"));
        let mut server = Server { child, port, socket: None };
        server.wait_ready();
        server
    }

    /// Starts memcachedrep listening only on a unix socket at `path`.
    pub fn start_unix(path: &std::path::Path, args: &[&str]) -> Server {
        let mut cmd = server_command(&binary());
        cmd.arg("-s").arg(path).args(args);
        if is_root() && !args.contains(&"-u") {
            cmd.args(["-u", "root"]);
        }
        let child = cmd.stdin(Stdio::null()).spawn().expect("start memcachedrep");
        let server = Server { child, port: 0, socket: Some(path.to_path_buf()) };
        let deadline = Instant::now() + START_DEADLINE * slowdown();
        while std::os::unix::net::UnixStream::connect(path).is_err() {
            assert!(Instant::now() < deadline, "unix socket {} never answered", path.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE * slowdown();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("server exited before answering: {status}");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "server on port {} never answered", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    /// Sends a signal and waits (with a deadline) for the process to exit; returns its status.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        Command::new("kill").args(["-s", signal, &self.child.id().to_string()]).status().expect("kill");
        let deadline = Instant::now() + START_DEADLINE * slowdown();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit after SIG{signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// RSS of the process in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `deadline` for `child` to exit; kills it and returns None when it does not.
pub fn wait_or_kill(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + deadline * slowdown();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// A raw protocol client over TCP.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT * slowdown())).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads until the buffered reply ends with `suffix`, and returns (and consumes) it all.
    pub fn read_until(&mut self, suffix: &[u8]) -> Vec<u8> {
        let deadline = Instant::now() + IO_TIMEOUT * slowdown();
        while !self.buf.ends_with(suffix) {
            assert!(Instant::now() < deadline, "no reply ending {:?}; got {:?}", show(suffix), show(&self.buf));
            let mut chunk = [0u8; 65536];
            match read_some(&mut self.stream, &mut chunk) {
                Ok(0) => panic!("connection closed; got {:?}", show(&self.buf)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read: {e}; got {:?}", show(&self.buf)),
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let mut chunk = [0u8; 65536];
            match read_some(&mut self.stream, &mut chunk) {
                Ok(0) => panic!("connection closed after {:?}", show(&self.buf)),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e) => panic!("read: {e}; got {:?}", show(&self.buf)),
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one line, "\r\n" included.
    pub fn line(&mut self) -> String {
        let deadline = Instant::now() + IO_TIMEOUT * slowdown();
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return String::from_utf8_lossy(&line).into_owned();
            }
            assert!(Instant::now() < deadline, "no line; got {:?}", show(&self.buf));
            let mut chunk = [0u8; 65536];
            match read_some(&mut self.stream, &mut chunk) {
                Ok(0) => panic!("connection closed; got {:?}", show(&self.buf)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read: {e}; got {:?}", show(&self.buf)),
            }
        }
    }

    /// Sends `request` and reads until the reply ends with `suffix`.
    pub fn call(&mut self, request: &[u8], suffix: &[u8]) -> Vec<u8> {
        self.send(request);
        self.read_until(suffix)
    }

    /// Sends a one-line command (no "\r\n") and returns the one-line answer without "\r\n".
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.line().trim_end_matches("\r\n").to_string()
    }

    /// Stores a value with `set` and checks the answer.
    pub fn set(&mut self, key: &str, flags: u32, exptime: i64, value: &[u8]) {
        let mut req = format!("set {key} {flags} {exptime} {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
        assert_eq!(show(&self.call(&req, b"\r\n")), "STORED\r\n", "set {key}");
    }

    /// `get` of one key: the value, or None on a miss.
    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.send(format!("get {key}\r\n").as_bytes());
        let header = self.line();
        if header == "END\r\n" {
            return None;
        }
        let len: usize = header.trim_end().rsplit(' ').next().unwrap().parse().expect("length");
        let mut value = self.read_exact(len + 2);
        value.truncate(len);
        assert_eq!(self.line(), "END\r\n");
        Some(value)
    }

    /// `stats [group]` as (name, value) pairs.
    pub fn stats(&mut self, group: &str) -> Vec<(String, String)> {
        let cmd = if group.is_empty() { "stats\r\n".to_string() } else { format!("stats {group}\r\n") };
        let reply = self.call(cmd.as_bytes(), b"END\r\n");
        String::from_utf8_lossy(&reply)
            .lines()
            .filter_map(|l| l.strip_prefix("STAT "))
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap_or((l, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// One `stats` value by name.
    pub fn stat(&mut self, group: &str, name: &str) -> String {
        self.stats(group)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no stat {name} in 'stats {group}'"))
    }

    /// Whether the server has closed this connection (reads EOF within the deadline).
    pub fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match read_some(&mut self.stream, &mut chunk) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// One read that retries when a signal interrupts it (other tests kill their servers).
fn read_some(stream: &mut TcpStream, chunk: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match stream.read(chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Bytes as text with \r and \n visible, for assertion messages.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
