//! The command line as a user meets it: `-h` lists every flag, and the manual page and README
//! document every flag `-h` prints (the table drives the check); bad values are refused with
//! one stderr line naming the flag and memcached's exit status (64 for replication's own
//! flags); `-V`, `-i`; root without `-u`. It must not start a server that stays up: every run
//! is killed at a deadline.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{against_reference, binary, free_port, is_root, wait_or_kill, Server};

/// How long a refused command line may take to exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// What one run of the binary did: its exit code (None: killed at the deadline, or by a
/// signal), stdout and stderr.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary under test with `args`, on a port of its own and loopback only in case it
/// starts serving (with `-u root` when root, so that is not what stops it), and kills it if
/// it has not exited by the deadline.
fn run(args: &[&str]) -> Ran {
    let user: &[&str] = if is_root() { &["-u", "root"] } else { &[] };
    run_exactly(&[user, args].concat())
}

/// `run` without the `-u root`; an argument need not be UTF-8.
fn run_exactly<A: AsRef<std::ffi::OsStr>>(args: &[A]) -> Ran {
    let port = free_port().to_string();
    let mut child = Command::new(binary())
        .args(["-l", "127.0.0.1", "-p", &port])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server binary");
    let status = wait_or_kill(&mut child, EXIT_DEADLINE);
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("read stdout");
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    Ran { code: status.and_then(|s| s.code()), stdout, stderr }
}

/// One row of `-h`: the flag column and the help text (continuation lines joined).
struct Row {
    left: String,
    help: String,
}

/// `-h` parsed into its rows: flags start at column 0 with `-`, sub-options with `   -` or
/// `   *`; lines indented to the help column continue the row above; other lines are headings.
fn help_rows() -> Vec<Row> {
    let ran = run(&["-h"]);
    assert_eq!(ran.code, Some(0), "-h exits 0; stderr: {}", ran.stderr);
    let mut rows: Vec<Row> = Vec::new();
    let mut in_row = false;
    for line in ran.stdout.lines().skip(1) {
        let is_row = line.starts_with('-') || line.starts_with("   - ") || line.starts_with("   * ");
        if is_row {
            let (left, help) = split_row(line);
            rows.push(Row { left, help });
            in_row = true;
        } else if in_row && line.starts_with("        ") {
            if let Some(row) = rows.last_mut() {
                row.help.push(' ');
                row.help.push_str(line.trim());
            }
        } else {
            in_row = false;
        }
    }
    assert!(rows.len() > 20, "-h printed too few rows:\n{}", ran.stdout);
    rows
}

/// A row's flag column and help: they are separated by a run of two or more spaces (the
/// help may also start on the next line).
fn split_row(line: &str) -> (String, String) {
    let body = line.trim_start();
    let indent = line.len() - body.len();
    match body.find("  ") {
        Some(gap) => (line[..indent + gap].trim().to_string(), body[gap..].trim().to_string()),
        None => (body.to_string(), String::new()),
    }
}

/// The flag tokens of a row: `-p` and `--port` from `-p, --port=<num>`, `-D` from `-D <char>`,
/// `idle_timeout` from `   - idle_timeout=N`.
fn tokens(row: &Row) -> Vec<String> {
    let left = row.left.trim_start_matches(['-', '*', ' ']);
    if row.left.starts_with(' ') || row.left.starts_with("- ") || row.left.starts_with("* ") {
        return vec![left.split('=').next().unwrap_or(left).to_string()];
    }
    row.left.split([',', ' ', '=']).filter(|t| t.starts_with('-')).map(str::to_string).collect()
}

/// Whether `token` appears in `text` on its own: not inside a longer flag or word (`-v` in
/// `-vv`, `--listen` in `--listen-backlog`, `modern` in `no_modern`).
fn has_token(text: &str, token: &str) -> bool {
    let joins = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    text.match_indices(token)
        .any(|(at, _)| !text[..at].chars().next_back().is_some_and(joins) && !text[at + token.len()..].chars().next().is_some_and(joins))
}

fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn repo_file(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

/// The manual page's text with roff's escapes for hyphens and fonts taken out.
fn man_text() -> String {
    let mut text = repo_file("man/memcachedrep.1").replace("\\-", "-").replace("\\&", "");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        text = text.replace(font, "");
    }
    // `.BI "-p, --port=" num` and `.BR -C ", " --disable-cas` put quotes around parts.
    text.replace('"', " ")
}

#[test]
fn help_lists_every_memcached_flag_we_take() {
    if against_reference() {
        return;
    }
    let rows = help_rows();
    let shown: Vec<String> = rows.iter().flat_map(tokens).collect();
    let flags = [
        "-p", "-U", "-s", "-a", "-l", "-d", "-r", "-u", "-m", "-M", "-c", "-k", "-v", "-vv", "-vvv", "-h", "-i", "-V", "-P", "-f", "-n",
        "-L", "-D", "-t", "-R", "-C", "-b", "-B", "-I", "-F", "-o", "-x", "-X", "-q",
    ];
    let long = [
        "--port",
        "--udp-port",
        "--unix-socket",
        "--unix-mask",
        "--listen",
        "--daemon",
        "--enable-coredumps",
        "--user",
        "--memory-limit",
        "--disable-evictions",
        "--conn-limit",
        "--lock-memory",
        "--verbose",
        "--help",
        "--license",
        "--version",
        "--pidfile",
        "--slab-growth-factor",
        "--slab-min-size",
        "--enable-largepages",
        "--threads",
        "--max-reqs-per-event",
        "--disable-cas",
        "--listen-backlog",
        "--protocol",
        "--max-item-size",
        "--disable-flush-all",
        "--extended",
        "--peer",
        "--replication-port",
        "--queue-size",
    ];
    for flag in flags.iter().chain(long.iter()) {
        assert!(shown.iter().any(|s| s == flag), "-h does not list {flag}");
    }
    let subs = [
        "idle_timeout",
        "hashpower",
        "maxconns_fast",
        "no_maxconns_fast",
        "modern",
        "hot_lru_pct",
        "repl_join_wait",
        "repl_drain_timeout",
        "repl_tombstone_ttl",
        "repcached_link",
    ];
    for sub in subs {
        assert!(shown.iter().any(|s| s == sub), "-h does not list -o {sub}");
    }
}

#[test]
fn every_flag_in_help_is_in_the_man_page_and_the_readme() {
    if against_reference() {
        return;
    }
    let man = man_text();
    let readme = repo_file("README");
    for row in help_rows() {
        for token in tokens(&row) {
            assert!(has_token(&man, &token), "man/memcachedrep.1 does not mention {token}");
            assert!(has_token(&readme, &token), "README does not mention {token}");
        }
    }
}

#[test]
fn the_readme_uses_the_words_of_help() {
    if against_reference() {
        return;
    }
    let readme = squeeze(&repo_file("README"));
    for row in help_rows() {
        let help = match row.help.rfind(" (default: ") {
            Some(at) if row.help.ends_with(')') => &row.help[..at],
            _ => row.help.as_str(),
        };
        assert!(readme.contains(&squeeze(help)), "README lacks the -h words for {}: {help:?}", row.left);
    }
}

#[test]
fn bad_values_are_refused_with_one_line_naming_the_flag() {
    // (arguments, a word the line must contain to name what is at fault, memcached's exit
    // status when it refuses them too, or None where memcached quietly misreads the value.)
    let cases: &[(&[&str], &str, Option<i32>)] = &[
        (&["-m", "abc"], "-m", Some(64)),
        (&["-m", "-1"], "-m", None),
        (&["-p", "70000"], "-p", Some(64)),
        (&["-c", "0"], "-c", Some(1)),
        (&["-t", "0"], "-t", Some(1)),
        (&["-t", "1000"], "-t", Some(1)),
        (&["-f", "1"], "-f", Some(1)),
        (&["-f", "0.5"], "-f", Some(1)),
        (&["-n", "0"], "-n", Some(1)),
        (&["-I", "512"], "-I", Some(64)),
        (&["-I", "2g"], "-I", Some(64)),
        (&["-I", "1k"], "-I", Some(64)),
        (&["-I", "100000000000"], "-I", Some(64)),
        (&["-B", "foo"], "-B", Some(64)),
        (&["-D", "ab"], "-D", None),
        (&["-b", "x"], "-b", None),
        (&["-o", "nosuch"], "nosuch", Some(1)),
        (&["-o", "hashpower=100"], "hashpower", Some(1)),
        (&["-o", "idle_timeout=x"], "idle_timeout", None),
        (&["-z"], "'z'", Some(1)),
        (&["--nosuch"], "--nosuch", Some(1)),
        (&["-p"], "'p'", Some(1)),
        (&["-a", "999"], "-a", None),
        (&["-R", "0"], "-R", Some(1)),
        (&["-l", "127.0.0.1:abc"], "-l", Some(71)),
    ];
    for (args, names, memcached_status) in cases {
        if against_reference() && memcached_status.is_none() {
            continue;
        }
        let ran = run(args);
        let shown = format!("{args:?}: exit {:?}, stderr {:?}", ran.code, ran.stderr);
        match memcached_status {
            Some(status) => assert_eq!(ran.code, Some(*status), "{shown}"),
            None => assert!(ran.code.is_some_and(|c| c != 0), "{shown}"),
        }
        if against_reference() {
            continue;
        }
        let lines: Vec<&str> = ran.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{shown}");
        assert!(lines[0].contains(names), "{shown}: the line should name {names}");
        assert!(ran.stdout.is_empty(), "{shown}: stdout {:?}", ran.stdout);
    }
}

#[test]
fn bad_replication_values_are_refused_with_one_line_and_status_64() {
    if against_reference() {
        return;
    }
    // (arguments, a word the line must contain, the exit status): ours, memcached has none.
    let cases: &[(&[&str], &str, i32)] = &[
        (&["-x", ""], "-x", 64),
        (&["-x", "::1"], "-x", 64),
        (&["-x", "127.0.0.2:0"], "-x", 64),
        (&["--peer=127.0.0.2:70000"], "-x", 64),
        (&["-X", "0"], "-X", 64),
        (&["-X", "70000"], "-X", 64),
        (&["-q", "0"], "-q", 64),
        (&["--queue-size=x"], "--queue-size", 64),
        (&["-x", "127.0.0.2", "-X", "11211", "-l", "127.0.0.1:11211"], "-X", 64),
        (&["-o", "repl_join_wait=x"], "repl_join_wait", 1),
        (&["-o", "repl_tombstone_ttl"], "repl_tombstone_ttl", 1),
        (&["-o", "repcached_link"], "repcached_link", 1),
        (&["-o", "repcached_link=::1"], "repcached_link", 1),
        (&["-o", "repcached_link=127.0.0.2:0"], "repcached_link", 1),
        (&["-o", "repcached_link=127.0.0.2:11211", "-l", "127.0.0.1:11211"], "repcached_link", 64),
        (&["-o", "repcached_link=127.0.0.2", "-x", "127.0.0.2"], "repcached_link", 64),
    ];
    for (args, names, status) in cases {
        let ran = run(args);
        let shown = format!("{args:?}: exit {:?}, stderr {:?}", ran.code, ran.stderr);
        assert_eq!(ran.code, Some(*status), "{shown}");
        let lines: Vec<&str> = ran.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{shown}");
        assert!(lines[0].contains(names), "{shown}: the line should name {names}");
        assert!(ran.stdout.is_empty(), "{shown}: stdout {:?}", ran.stdout);
    }
}

#[test]
fn version_prints_name_and_version() {
    if against_reference() {
        return;
    }
    let ran = run(&["-V"]);
    assert_eq!(ran.code, Some(0));
    assert_eq!(ran.stdout, format!("memcachedrep 1.6.18-memcachedrep-{}\n", env!("CARGO_PKG_VERSION")));
    assert!(ran.stderr.is_empty(), "{}", ran.stderr);
}

#[test]
fn license_is_bsd_3_clause() {
    if against_reference() {
        return;
    }
    let ran = run(&["-i"]);
    assert_eq!(ran.code, Some(0));
    assert!(ran.stdout.contains("BSD 3-Clause"), "{}", ran.stdout);
}

#[test]
fn root_without_u_is_refused() {
    if !common::require_root("refusing root without -u") {
        return;
    }
    let ran = run_exactly::<&str>(&[]);
    assert!(ran.code.is_some_and(|c| c != 0), "exit {:?}, stderr {:?}", ran.code, ran.stderr);
    assert!(ran.stderr.contains("can't run as root without the -u switch"), "stderr {:?}", ran.stderr);
}

#[test]
fn an_argument_that_is_not_utf8_is_refused_with_one_line_and_status_64() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    if against_reference() {
        return;
    }
    let ran = run_exactly(&[OsStr::new("-o"), OsStr::from_bytes(b"idle_timeout=\xff")]);
    assert_eq!(ran.code, Some(64), "stderr {:?}", ran.stderr);
    assert_eq!(ran.stderr, "memcachedrep: argument is not valid UTF-8: \"idle_timeout=\u{fffd}\"\n");
}

/// Found by `make fuzz` (cmdline): the checks accepted these and the cache then refused
/// them; memcached serves them with its largest slab class alone.
#[test]
fn a_chunk_size_or_growth_factor_past_the_page_still_serves() {
    for args in [&["-n", "2000000"][..], &["-f", "20000"]] {
        let server = Server::start(args);
        let mut client = server.connect();
        client.set("k", 3, 0, b"value");
        assert_eq!(client.get("k").as_deref(), Some(&b"value"[..]), "{args:?}");
    }
}

/// A server killed when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines of a ports file, with each port number replaced by "N", and the TCP ports.
fn read_ports_file(path: &std::path::Path) -> (Vec<String>, Vec<u16>) {
    let text = std::fs::read_to_string(path).expect("ports file");
    let shape = text.lines().map(|l| l.rsplit_once(": ").map_or(l.to_string(), |(kind, _)| format!("{kind}: N"))).collect();
    let tcp = text.lines().filter_map(|l| l.strip_prefix("TCP INET: ")).map(|p| p.parse().expect("port")).collect();
    (shape, tcp)
}

/// A harness's start, as memcached's own tests do it: any free port (-p -1, -U -1), and the
/// ports read from MEMCACHED_PORT_FILENAME, which appears (renamed into place) once the server
/// takes clients.
#[test]
fn the_ports_file_names_the_ports_the_kernel_picked() {
    let mut programs = vec![binary()];
    if !against_reference() && common::require_program("/usr/bin/memcached", "memcached") {
        programs.push("/usr/bin/memcached".into());
    }
    let user: &[&str] = if is_root() { &["-u", "root"] } else { &[] };
    let mut shapes = Vec::new();
    for program in programs {
        let dir = std::env::temp_dir().join(format!("memcachedrep-ports-{}-{}", std::process::id(), shapes.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ports");
        let child = Command::new(&program)
            .args(["-p", "-1", "-U", "-1", "-l", "127.0.0.1,127.0.0.2"])
            .args(user)
            .env("MEMCACHED_PORT_FILENAME", &path)
            .stdout(Stdio::null())
            .spawn()
            .expect("start");
        let _server = KillOnDrop(child);
        common::wait_until("the ports file", common::START_DEADLINE, || path.exists());
        let (shape, tcp) = read_ports_file(&path);
        // The first -l address comes first.
        let mut client = common::Client::connect(tcp[0]);
        assert!(client.cmd("version").starts_with("VERSION "), "{} on port {}", program.display(), tcp[0]);
        assert!(!dir.join("ports.lck").exists(), "the temporary file stays behind");
        std::fs::remove_dir_all(&dir).unwrap();
        shapes.push(shape);
    }
    assert_eq!(shapes[0], ["TCP INET: N", "TCP INET: N", "UDP INET: N", "UDP INET: N"]);
    assert!(shapes.iter().all(|s| *s == shapes[0]), "{shapes:?}");
}
