//! The only way storage takes its mutexes: a guard that aborts the process when it is dropped
//! by a panic. Stripe and class locks guard intrusive raw-pointer lists (hash chains, LRUs,
//! free lists); a panic half way through relinking one would leave it inconsistent, and
//! carrying on (as the server does after a handler's panic) would turn that into silent
//! corruption. Aborting stops the process at the fault instead.
//!
//! Because every holder aborts on a panic, a storage mutex is never poisoned; a poisoned one is
//! taken as it is.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, TryLockError};

/// A held storage lock. Dropping it while the thread panics aborts the process.
pub struct Held<'a, T>(MutexGuard<'a, T>);

/// Blocks until `mutex` is ours.
pub fn lock<T>(mutex: &Mutex<T>) -> Held<'_, T> {
    Held(mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// `mutex` if it is free now, else None.
pub fn try_lock<T>(mutex: &Mutex<T>) -> Option<Held<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(Held(guard)),
        Err(TryLockError::Poisoned(poisoned)) => Some(Held(poisoned.into_inner())),
        Err(TryLockError::WouldBlock) => None,
    }
}

impl<T> Deref for Held<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Held<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("memcachedrep: panic while holding a storage lock; aborting to keep the cache from corruption");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{self, AssertUnwindSafe};
    use std::process::Command;

    use crate::storage::{Cache, CacheConfig, Lookup, StoreMode, StoreOutcome};

    /// Set in the child process that `a_panic_under_a_storage_lock_aborts` starts.
    const CHILD_ENV: &str = "MEMCACHEDREP_TEST_PANIC_UNDER_LOCK";

    fn cache() -> Cache {
        Cache::new(&CacheConfig::test(4 << 20)).unwrap()
    }

    /// Reruns this test binary on this one test with `CHILD_ENV` set: the child panics inside a
    /// `get` callback, which runs under the key's stripe lock, and must die of SIGABRT.
    #[test]
    #[cfg_attr(miri, ignore = "starts a child process and aborts it")]
    fn a_panic_under_a_storage_lock_aborts() {
        if std::env::var_os(CHILD_ENV).is_some() {
            let c = cache();
            c.store(StoreMode::Set, b"k", 0, 0, b"v");
            c.get(b"k", None, |_| panic!("a callback panics under the stripe lock"));
            return;
        }
        let name = "storage::lock::tests::a_panic_under_a_storage_lock_aborts";
        let out = Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "child ended {:?}; stderr: {stderr}", out.status);
        assert!(stderr.contains("panic while holding a storage lock"), "stderr: {stderr}");
    }

    #[test]
    fn a_panic_outside_storage_locks_leaves_the_cache_usable() {
        let c = cache();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            c.store(StoreMode::Set, b"k", 0, 0, b"before");
            let seen = c.get(b"k", None, |it| it.value.to_vec()).1;
            panic!("after the lock is released: {seen:?}");
        }));
        assert!(caught.is_err());
        assert_eq!(c.store(StoreMode::Set, b"k", 0, 0, b"after"), StoreOutcome::Stored);
        assert_eq!(c.get(b"k", None, |it| it.value.to_vec()), (Lookup::Hit, Some(b"after".to_vec())));
    }
}
