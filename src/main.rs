//! memcachedrep: start-up only (settings, daemon, listeners, signals, shutdown).

mod config;
mod daemon;
mod log;
mod protocol;
mod server;
mod stats;
mod storage;

fn main() {
    todo!()
}
