//! What the comparison benches share: which two programs they compare, their knobs from the
//! environment, and the median they report.
//!
//! Ours is the release build cargo made for the bench (`CARGO_BIN_EXE_memcachedrep`), theirs
//! is `memcached` from PATH; `BENCH_OURS` and `BENCH_THEIRS` override either (a path, or a
//! name looked up in PATH).

use std::path::PathBuf;

/// The program under test and the reference, or the process exits saying which is missing.
pub fn programs() -> (PathBuf, PathBuf) {
    let ours = match std::env::var("BENCH_OURS") {
        Ok(p) => find_program(&p).unwrap_or_else(|| fail(&format!("BENCH_OURS={p} not found"))),
        Err(_) => PathBuf::from(env!("CARGO_BIN_EXE_memcachedrep")),
    };
    let theirs = match std::env::var("BENCH_THEIRS") {
        Ok(p) => find_program(&p),
        Err(_) => find_program("memcached"),
    }
    .unwrap_or_else(|| fail("memcached not found: apt-get install memcached"));
    (ours, theirs)
}

/// A program by name from PATH, or the path itself.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let candidate = PathBuf::from(name);
    if candidate.components().count() > 1 {
        return candidate.is_file().then_some(candidate);
    }
    std::env::var_os("PATH").map(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file())).unwrap_or(None)
}

pub fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(1);
}
