//! Process-level OS calls that std lacks: fork/setsid, the pidfile, the user switch, rlimits,
//! mlockall, signal waiting and CPU times. Every `unsafe` block outside `storage` is here.
