//! Carries out a parsed request against the cache and writes the response bytes.

use super::{Next, Request};
use crate::config::Settings;
use crate::stats::{ConnRegistry, LocalCounts, Stats};
use crate::storage::Cache;

/// Everything a command may read or change besides its connection.
pub struct Context<'a> {
    pub cache: &'a Cache,
    pub stats: &'a Stats,
    pub settings: &'a Settings,
    pub conns: &'a ConnRegistry,
}

/// Executes `request`, appending the response (if any: `noreply` writes nothing on success)
/// to `out` and counting into `local`.
pub fn execute(request: Request, ctx: &Context, local: &mut LocalCounts, out: &mut Vec<u8>) -> Next {
    let _ = (request, ctx, local, out);
    todo!()
}
