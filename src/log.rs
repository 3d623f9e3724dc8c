//! Verbosity and log lines. `-v` logs errors and warnings, `-vv` adds client commands and
//! responses, `-vvv` adds internal state changes. Lines go to stderr; the `verbosity` command
//! changes the level at run time.

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(0);

/// Warnings and errors (`-v`).
pub const WARN: u8 = 1;
/// Client commands and responses (`-vv`).
pub const TRAFFIC: u8 = 2;
/// Internal state changes: connections, replication link states (`-vvv`).
pub const STATE: u8 = 3;

pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

pub fn enabled(level: u8) -> bool {
    self::level() >= level
}

/// Writes one line to stderr when the level is enabled.
pub fn line(level: u8, text: std::fmt::Arguments) {
    if enabled(level) {
        eprintln!("{text}");
    }
}
