//! The server loop: listeners, the handler thread pool, and the per-connection loop.

pub mod connection;
pub mod listener;
pub mod pool;
