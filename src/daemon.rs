//! Process-level OS calls that std lacks: fork/setsid, the pidfile, the user switch, rlimits,
//! mlockall, signal waiting and CPU times. Every `unsafe` block outside `storage` is here.

/// CPU time used by the process so far: (user, system) seconds, for `stats` rusage_*.
pub fn cpu_times() -> (f64, f64) {
    todo!()
}
