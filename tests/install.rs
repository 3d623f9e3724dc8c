//! Installing and running memcachedrep the Debian way: `make install` and `make uninstall`
//! into a temporary root (DESTDIR), the installed init script run for real (start, status,
//! restart, stop) with a defaults file named by MEMCACHEDREP_DEFAULTS, the daemon flags the
//! script relies on (-d, -P, -u), and the checks on the script and the manual page.
//! It must never touch the machine's /etc or /usr/local, and it kills every daemon it starts.
//! Every flag of `-h` being in the manual page is tests/flags.rs's check, not repeated here.

mod common;

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{against_reference, free_port, is_root, require_program, require_root, wait_or_kill, wait_until, Client};

/// How long make, the init script or a daemon's start may take before the test fails. Longer
/// than the script's stop schedule (30 s of SIGTERM) would be too slow for the suite.
const COMMAND_DEADLINE: Duration = Duration::from_secs(20);

/// Our binary, whatever MEMCACHEDREP_TEST_SERVER says: what is installed is memcachedrep.
fn our_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_memcachedrep"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("memcachedrep-install-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one command did: its exit code (None: killed at the deadline, or by a signal) and
/// its output. Output goes through files, so a daemon that keeps a descriptor open cannot
/// make the test wait for it.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn shown(&self) -> String {
        format!("exit {:?}\nstdout: {}\nstderr: {}", self.code, self.stdout, self.stderr)
    }
}

fn run(cmd: &mut Command, scratch: &Path) -> Ran {
    let out_path = scratch.join("command.stdout");
    let err_path = scratch.join("command.stderr");
    let out = File::create(&out_path).expect("create stdout file");
    let err = File::create(&err_path).expect("create stderr file");
    let mut child = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().expect("spawn");
    let status = wait_or_kill(&mut child, COMMAND_DEADLINE);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    Ran { code: status.and_then(|s| s.code()), stdout: read(&out_path), stderr: read(&err_path) }
}

/// `make TARGET DESTDIR=root VARS...` in the repository, installing the binary under test.
/// CARGO=false: over a finished build, install must not run cargo (it would need no network,
/// but a root "make install" must not rebuild a user's tree either).
fn make(target: &str, root: &Path, vars: &[&str], scratch: &Path) -> Ran {
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(repo()).arg("--no-print-directory").arg(target);
    cmd.arg(format!("DESTDIR={}", root.display()));
    cmd.arg(format!("BIN={}", our_binary().display()));
    cmd.arg("CARGO=false");
    cmd.args(vars);
    let ran = run(&mut cmd, scratch);
    assert_eq!(ran.code, Some(0), "make {target} {vars:?}\n{}", ran.shown());
    ran
}

/// Every file (not directory) under `root`, as sorted paths relative to it.
fn files_under(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read_dir").map(|e| e.expect("dir entry")) {
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                walk(&path, root, found);
            } else {
                found.push(path.strip_prefix(root).expect("under root").display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(root, root, &mut found);
    found.sort();
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display())).permissions().mode() & 0o7777
}

#[test]
fn make_install_puts_exactly_four_files_and_keeps_the_operators_defaults() {
    if !require_program("make", "make") {
        return;
    }
    let scratch = TempDir::new("make");
    let root = scratch.path().join("root");
    let first = make("install", &root, &["PREFIX=/usr/local"], scratch.path());
    let installed =
        ["etc/init.d/memcachedrep", "etc/memcachedrep", "usr/local/bin/memcachedrep", "usr/local/share/man/man1/memcachedrep.1"];
    assert_eq!(files_under(&root), installed, "make install output:\n{}", first.shown());
    assert_eq!(mode(&root.join("etc/init.d/memcachedrep")), 0o755);
    assert_eq!(mode(&root.join("usr/local/bin/memcachedrep")), 0o755);
    assert_eq!(mode(&root.join("usr/local/share/man/man1/memcachedrep.1")), 0o644);
    assert_eq!(mode(&root.join("etc/memcachedrep")), 0o644);
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("read {p}: {e}"));
    let shipped = |p: &str| std::fs::read_to_string(repo().join(p)).unwrap_or_else(|e| panic!("read {p}: {e}"));
    assert_eq!(read("etc/memcachedrep"), shipped("init/memcachedrep.default"));
    assert_eq!(read("usr/local/share/man/man1/memcachedrep.1"), shipped("man/memcachedrep.1"));
    assert_eq!(std::fs::read(root.join("usr/local/bin/memcachedrep")).unwrap(), std::fs::read(our_binary()).unwrap());
    assert!(read("etc/init.d/memcachedrep").lines().any(|l| l == "DAEMON=/usr/local/bin/memcachedrep"));

    // The operator's edits survive a second install.
    let edited = "DAEMON_ARGS=\"-m 512 -p 11211 -u nobody\"\n";
    std::fs::write(root.join("etc/memcachedrep"), edited).unwrap();
    let again = make("install", &root, &["PREFIX=/usr/local"], scratch.path());
    assert_eq!(read("etc/memcachedrep"), edited, "a second install overwrote /etc/memcachedrep:\n{}", again.shown());
    assert_eq!(files_under(&root), installed);

    // Uninstall removes the three and leaves the operator's file; a second one is harmless.
    make("uninstall", &root, &["PREFIX=/usr/local"], scratch.path());
    assert_eq!(files_under(&root), ["etc/memcachedrep"]);
    assert_eq!(read("etc/memcachedrep"), edited);
    make("uninstall", &root, &["PREFIX=/usr/local"], scratch.path());
    assert_eq!(files_under(&root), ["etc/memcachedrep"]);
}

#[test]
fn the_installed_init_script_runs_the_binary_under_prefix() {
    if !require_program("make", "make") {
        return;
    }
    let scratch = TempDir::new("prefix");
    let root = scratch.path().join("root");
    make("install", &root, &["PREFIX=/opt/memcachedrep"], scratch.path());
    assert_eq!(
        files_under(&root),
        [
            "etc/init.d/memcachedrep",
            "etc/memcachedrep",
            "opt/memcachedrep/bin/memcachedrep",
            "opt/memcachedrep/share/man/man1/memcachedrep.1",
        ]
    );
    let script = std::fs::read_to_string(root.join("etc/init.d/memcachedrep")).unwrap();
    let daemon_lines: Vec<&str> = script.lines().filter(|l| l.starts_with("DAEMON=")).collect();
    assert_eq!(daemon_lines, ["DAEMON=/opt/memcachedrep/bin/memcachedrep"]);
    make("uninstall", &root, &["PREFIX=/opt/memcachedrep"], scratch.path());
    assert_eq!(files_under(&root), ["etc/memcachedrep"]);
}

/// The init script installed into a temporary root, run with a defaults file of its own.
struct Service {
    scratch: TempDir,
    root: PathBuf,
    script: PathBuf,
    defaults: PathBuf,
    pidfile: PathBuf,
}

impl Service {
    /// Installs into a temporary root and writes a defaults file with these DAEMON_ARGS
    /// (`{pidfile}` stands for the pidfile's path) and DAEMON set to the installed binary.
    fn install(name: &str, daemon_args: &str) -> Service {
        let scratch = TempDir::new(name);
        let root = scratch.path().join("root");
        make("install", &root, &[], scratch.path());
        let pidfile = scratch.path().join("memcachedrep.pid");
        let defaults = scratch.path().join("defaults");
        let args = daemon_args.replace("{pidfile}", &pidfile.display().to_string());
        let daemon = root.join("usr/local/bin/memcachedrep");
        std::fs::write(&defaults, format!("DAEMON={}\nDAEMON_ARGS=\"{args}\"\n", daemon.display())).unwrap();
        Service { script: root.join("etc/init.d/memcachedrep"), root, defaults, pidfile, scratch }
    }

    /// Runs `/etc/init.d/memcachedrep ACTION` as an init system would: with sh (dash).
    fn run(&self, action: &str) -> Ran {
        let mut cmd = Command::new("sh");
        cmd.arg(&self.script).arg(action).env("MEMCACHEDREP_DEFAULTS", &self.defaults);
        run(&mut cmd, self.scratch.path())
    }

    /// The pid in the pidfile, if there is one.
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pidfile).ok().and_then(|s| s.trim().parse().ok())
    }
}

impl Drop for Service {
    /// Whatever happened, no daemon outlives the test.
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-s", "KILL", &pid.to_string()]).status();
        }
    }
}

/// Whether a process runs: it exists and is not a zombie waiting for its parent (the daemon's
/// parent is init, which may reap it a moment later).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// The real user id of a process, from /proc.
fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("Uid line")
}

/// The user id of `nobody`, from /etc/passwd.
fn nobody_uid() -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|l| l.strip_prefix("nobody:"))
        .and_then(|rest| rest.split(':').nth(1))
        .and_then(|uid| uid.parse().ok())
        .expect("a nobody user in /etc/passwd")
}

fn answers_version(port: u16) -> bool {
    let mut client = Client::connect(port);
    client.cmd("version").starts_with("VERSION ")
}

#[test]
fn init_script_starts_reports_restarts_and_stops_the_daemon() {
    if !require_program("make", "make") || !require_root("running the init script") {
        return;
    }
    let port = free_port();
    let service = Service::install("service", &format!("-m 16 -p {port} -l 127.0.0.1 -u nobody -P {{pidfile}}"));

    let started = service.run("start");
    assert_eq!(started.code, Some(0), "start\n{}", started.shown());
    // -d returns only once the daemon listens: no waiting before the first connect.
    let first = service.pid().unwrap_or_else(|| panic!("no pidfile after start\n{}", started.shown()));
    assert!(alive(first), "the pidfile names {first}, which does not run");
    assert!(answers_version(port));
    assert_eq!(uid_of(first), nobody_uid(), "-u nobody: the daemon must run as nobody");

    let status = service.run("status");
    assert_eq!(status.code, Some(0), "status of a running service\n{}", status.shown());
    assert!(status.stdout.contains("is running"), "{}", status.shown());

    let again = service.run("start");
    assert_eq!(again.code, Some(0), "start when running\n{}", again.shown());
    assert!(again.stderr.is_empty(), "start when running must be quiet\n{}", again.shown());
    assert_eq!(service.pid(), Some(first), "start when running must keep the running daemon");
    assert!(alive(first));

    // A new binary installed over the running one: the script still knows the old process.
    make("install", &service.root, &[], service.scratch.path());
    let restarted = service.run("restart");
    assert_eq!(restarted.code, Some(0), "restart\n{}", restarted.shown());
    let second = service.pid().unwrap_or_else(|| panic!("no pidfile after restart\n{}", restarted.shown()));
    assert_ne!(second, first, "restart must start a new daemon");
    assert!(!alive(first), "restart left the old daemon {first} running");
    assert!(alive(second));
    assert!(answers_version(port));

    let reloaded = service.run("force-reload");
    assert_eq!(reloaded.code, Some(0), "force-reload\n{}", reloaded.shown());
    let third = service.pid().expect("a pidfile after force-reload");
    assert_ne!(third, second, "force-reload restarts");
    assert!(answers_version(port));

    let stopped = service.run("stop");
    assert_eq!(stopped.code, Some(0), "stop\n{}", stopped.shown());
    assert!(!alive(third), "stop returned while {third} still runs");
    // The daemon runs as nobody and cannot remove a pidfile in root's directory: the script must.
    assert!(!service.pidfile.exists(), "stop left the pidfile");

    let status = service.run("status");
    assert_eq!(status.code, Some(3), "status of a stopped service (LSB: 3)\n{}", status.shown());
    assert!(status.stdout.contains("not running"), "{}", status.shown());

    let again = service.run("stop");
    assert_eq!(again.code, Some(0), "stop when stopped\n{}", again.shown());
    assert!(again.stderr.is_empty(), "stop when stopped must be quiet\n{}", again.shown());

    let usage = service.run("bogus");
    assert_eq!(usage.code, Some(2), "an unknown action\n{}", usage.shown());
    assert!(usage.stderr.contains("Usage:"), "{}", usage.shown());
}

#[test]
fn init_script_status_tells_a_dead_daemon_from_a_stopped_one() {
    if !require_program("make", "make") || !require_root("running the init script") {
        return;
    }
    let port = free_port();
    // No -P and no -d: the script adds both, with its default pidfile moved by PIDFILE.
    let service = Service::install("dead", &format!("-m 16 -p {port} -l 127.0.0.1 -u root"));
    let pidfile = service.pidfile.display().to_string();
    let mut defaults = std::fs::read_to_string(&service.defaults).unwrap();
    defaults.push_str(&format!("PIDFILE={pidfile}\n"));
    std::fs::write(&service.defaults, defaults).unwrap();

    let started = service.run("start");
    assert_eq!(started.code, Some(0), "start\n{}", started.shown());
    let pid = service.pid().unwrap_or_else(|| panic!("no pidfile at PIDFILE\n{}", started.shown()));
    assert!(answers_version(port));

    Command::new("kill").args(["-s", "KILL", &pid.to_string()]).status().expect("kill");
    wait_until("the killed daemon to be gone", COMMAND_DEADLINE, || !alive(pid));
    // Init may not have reaped it yet; status is LSB's 1 (dead, pidfile left) once it has.
    wait_until("status to say dead with a pidfile", COMMAND_DEADLINE, || service.run("status").code == Some(1));

    // start over a stale pidfile starts a new daemon.
    let started = service.run("start");
    assert_eq!(started.code, Some(0), "start over a stale pidfile\n{}", started.shown());
    let fresh = service.pid().expect("a pidfile");
    assert_ne!(fresh, pid);
    assert!(answers_version(port));
    let stopped = service.run("stop");
    assert_eq!(stopped.code, Some(0), "stop\n{}", stopped.shown());
    assert!(!alive(fresh) && !service.pidfile.exists());
}

/// A port taken on every address family: an IPv6 socket, which also takes IPv4 unless the
/// machine says IPv6 sockets are IPv6 only (then an IPv4 one joins it), or an IPv4 socket
/// where the machine has no IPv6.
fn busy_port() -> (Vec<TcpListener>, u16) {
    let first = TcpListener::bind("[::]:0").or_else(|_| TcpListener::bind("0.0.0.0:0")).expect("bind a port");
    let port = first.local_addr().unwrap().port();
    let mut holders = vec![first];
    holders.extend(TcpListener::bind(("0.0.0.0", port)).ok());
    (holders, port)
}

#[test]
fn a_daemonised_start_on_a_busy_port_fails_with_memcacheds_message() {
    // memcached itself forks before it binds, so its starting command cannot report this.
    if against_reference() {
        return;
    }
    let scratch = TempDir::new("busy");
    let (_holder, port) = busy_port();
    let pidfile = scratch.path().join("busy.pid");
    let mut cmd = Command::new(our_binary());
    cmd.args(["-d", "-p", &port.to_string(), "-P"]).arg(&pidfile);
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    let ran = run(&mut cmd, scratch.path());
    assert_eq!(ran.code, Some(71), "{}", ran.shown());
    assert_eq!(ran.stderr, format!("failed to listen on TCP port {port}: Address already in use\n"));
    assert!(!pidfile.exists(), "a failed start wrote a pidfile");
}

#[test]
fn init_script_start_on_a_busy_port_fails_and_says_why() {
    if !require_program("make", "make") || !require_root("running the init script") {
        return;
    }
    let (_holder, port) = busy_port();
    let service = Service::install("busy-service", &format!("-m 16 -p {port} -u root -P {{pidfile}}"));
    let ran = service.run("start");
    assert_eq!(ran.code, Some(1), "{}", ran.shown());
    assert!(ran.stderr.contains(&format!("failed to listen on TCP port {port}: Address already in use")), "{}", ran.shown());
    assert!(!service.pidfile.exists(), "a failed start wrote a pidfile");
    let status = service.run("status");
    assert_eq!(status.code, Some(3), "{}", status.shown());
}

/// A port under 1024 that is free: only root may bind it.
fn free_privileged_port() -> Option<u16> {
    (900..1024).find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

#[test]
fn the_daemon_binds_a_privileged_port_then_becomes_the_user() {
    if against_reference() || !require_root("binding a port under 1024") {
        return;
    }
    let port = free_privileged_port().expect("a free port under 1024");
    let scratch = TempDir::new("user");
    let pidfile = scratch.path().join("user.pid");
    let mut cmd = Command::new(our_binary());
    cmd.args(["-d", "-l", "127.0.0.1", "-p", &port.to_string(), "-u", "nobody", "-P"]).arg(&pidfile);
    let ran = run(&mut cmd, scratch.path());
    assert_eq!(ran.code, Some(0), "{}", ran.shown());
    let pid: u32 = std::fs::read_to_string(&pidfile).expect("the pidfile").trim().parse().expect("a pid");
    let kill = |signal: &str| Command::new("kill").args(["-s", signal, &pid.to_string()]).status().expect("kill");
    let checked = std::panic::catch_unwind(|| {
        assert!(answers_version(port));
        assert_eq!(uid_of(pid), nobody_uid(), "the daemon must have become nobody");
    });
    kill("TERM");
    wait_until("the daemon to stop on SIGTERM", COMMAND_DEADLINE, || !alive(pid));
    if let Err(panic) = checked {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn the_init_script_and_defaults_are_plain_sh_with_an_lsb_header() {
    let script = repo().join("init/memcachedrep");
    let scratch = TempDir::new("sh");
    assert_eq!(mode(&script) & 0o111, 0o111, "init/memcachedrep must be executable");
    let ran = run(Command::new("sh").arg("-n").arg(&script), scratch.path());
    assert_eq!(ran.code, Some(0), "sh -n\n{}", ran.shown());
    let defaults = repo().join("init/memcachedrep.default");
    let ran = run(Command::new("sh").arg("-n").arg(&defaults), scratch.path());
    assert_eq!(ran.code, Some(0), "sh -n init/memcachedrep.default\n{}", ran.shown());
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.starts_with("#!/bin/sh\n"));
    let header: Vec<&str> = text.lines().skip_while(|l| *l != "### BEGIN INIT INFO").take_while(|l| *l != "### END INIT INFO").collect();
    for line in [
        "# Provides:          memcachedrep",
        "# Required-Start:    $remote_fs $network $syslog",
        "# Default-Start:     2 3 4 5",
        "# Default-Stop:      0 1 6",
    ] {
        assert!(header.contains(&line), "the LSB header lacks {line:?}");
    }
    assert!(header.iter().any(|l| l.starts_with("# Short-Description: ")));
    // checkbashisms (Debian's devscripts) is a bonus where installed, not a requirement.
    if Command::new("sh").args(["-c", "command -v checkbashisms"]).stdout(Stdio::null()).status().is_ok_and(|s| s.success()) {
        let ran = run(Command::new("checkbashisms").arg(&script), scratch.path());
        assert_eq!(ran.code, Some(0), "checkbashisms\n{}", ran.shown());
    }
}

#[test]
fn the_man_page_renders_without_warnings_and_names_the_files() {
    let page = repo().join("man/memcachedrep.1");
    let scratch = TempDir::new("man");
    if require_program("groff", "groff-base") {
        let ran = run(Command::new("groff").args(["-man", "-ww", "-z"]).arg(&page), scratch.path());
        assert_eq!(ran.code, Some(0), "groff\n{}", ran.shown());
        assert!(ran.stdout.is_empty() && ran.stderr.is_empty(), "groff warns:\n{}", ran.shown());
    }
    if require_program("man", "man-db") {
        let mut cmd = Command::new("man");
        cmd.arg("-l").arg(&page).env("MANWIDTH", "80").env("MANPAGER", "cat").env_remove("MAN_KEEP_FORMATTING");
        let ran = run(&mut cmd, scratch.path());
        assert_eq!(ran.code, Some(0), "man -l\n{}", ran.shown());
        assert!(ran.stderr.is_empty(), "man -l warns:\n{}", ran.shown());
        let text = ran.stdout;
        for words in ["FILES", "/etc/memcachedrep", "/etc/init.d/memcachedrep", "/var/run/memcachedrep.pid"] {
            assert!(text.contains(words), "the rendered page lacks {words:?}");
        }
    }
}

#[test]
fn init_script_start_with_an_unknown_user_fails_and_leaves_no_pidfile() {
    if !require_program("make", "make") || !require_root("running the init script") {
        return;
    }
    let port = free_port();
    let args = format!("-m 16 -p {port} -l 127.0.0.1 -u no-such-user-here -P {{pidfile}}");
    let service = Service::install("nouser", &args);
    let ran = service.run("start");
    assert_eq!(ran.code, Some(1), "{}", ran.shown());
    assert!(ran.stderr.contains("can't find the user no-such-user-here to switch to"), "{}", ran.shown());
    assert!(!service.pidfile.exists(), "a failed start left its pidfile");
    assert_eq!(service.run("status").code, Some(3));
}

#[test]
fn init_script_does_not_start_a_disabled_service() {
    if !require_program("make", "make") || !require_root("running the init script") {
        return;
    }
    let port = free_port();
    let service = Service::install("disabled", &format!("-m 16 -p {port} -l 127.0.0.1 -u root -P {{pidfile}}"));
    let mut defaults = std::fs::read_to_string(&service.defaults).unwrap();
    defaults.push_str("ENABLE=no\n");
    std::fs::write(&service.defaults, defaults).unwrap();
    let ran = service.run("start");
    assert_eq!(ran.code, Some(0), "{}", ran.shown());
    assert!(ran.stdout.contains("disabled"), "{}", ran.shown());
    assert!(!service.pidfile.exists(), "a disabled service started");
    assert_eq!(service.run("status").code, Some(3));
}
