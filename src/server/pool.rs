//! A pool of reusable blocking handler threads with small stacks. Knows nothing of sockets:
//! it runs boxed jobs, one at a time per thread.
//!
//! A submitted job goes to an idle thread when there is one, else to a new thread, so a job
//! never waits behind another. When its job ends a thread waits for the next one, unless
//! `keep_idle` threads already wait, in which case it exits: the pool grows with the load and
//! shrinks back to `keep_idle` idle threads.

use std::collections::VecDeque;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Work for one thread: in the server, serving one connection until it closes.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Called with the number of live threads whenever it changes.
pub type AliveHook = Box<dyn Fn(usize) + Send + Sync + 'static>;

pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when a job is queued for an idle thread, or when the pool is dropped.
    work: Condvar,
    keep_idle: usize,
    stack_size: usize,
    on_alive: AliveHook,
}

#[derive(Default)]
struct State {
    /// Jobs handed to idle threads and not yet taken.
    queue: VecDeque<Job>,
    /// Waiting threads not yet promised a job: a submit takes one of these or spawns.
    idle: usize,
    alive: usize,
    closed: bool,
}

impl Pool {
    /// A pool that keeps at most `keep_idle` idle threads, each with `stack_size` bytes of
    /// stack. No thread starts until the first job.
    pub fn new(keep_idle: usize, stack_size: usize, on_alive: AliveHook) -> Pool {
        let inner = Inner { state: Mutex::new(State::default()), work: Condvar::new(), keep_idle, stack_size, on_alive };
        Pool { inner: Arc::new(inner) }
    }

    /// Runs `job` on an idle thread, or on a new one when none is idle. When no thread can be
    /// started the job is dropped without running and the error returned.
    pub fn submit(&self, job: Job) -> io::Result<()> {
        let mut state = self.inner.lock();
        if state.idle > 0 {
            state.idle -= 1;
            state.queue.push_back(job);
            drop(state);
            self.inner.work.notify_one();
            return Ok(());
        }
        state.alive += 1;
        (self.inner.on_alive)(state.alive);
        drop(state);
        let inner = Arc::clone(&self.inner);
        let spawned =
            std::thread::Builder::new().name("handler".to_string()).stack_size(self.inner.stack_size).spawn(move || inner.run(job));
        if let Err(e) = spawned {
            let mut state = self.inner.lock();
            state.alive -= 1;
            (self.inner.on_alive)(state.alive);
            return Err(e);
        }
        Ok(())
    }
}

impl Drop for Pool {
    /// Idle threads exit; busy ones finish their job first.
    fn drop(&mut self) {
        self.inner.lock().closed = true;
        self.inner.work.notify_all();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A job runs outside the lock, so a poisoned lock only means a panic in a hook.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self, first: Job) {
        let mut job = first;
        loop {
            // A panicking job ends only itself (its captures are dropped while unwinding);
            // the thread stays in the pool and the count of live threads stays right.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
            match self.next_job() {
                Some(next) => job = next,
                None => return,
            }
        }
    }

    /// Waits for the next job as an idle thread, or returns None when this thread should exit.
    fn next_job(&self) -> Option<Job> {
        let mut state = self.lock();
        if state.idle >= self.keep_idle || state.closed {
            state.alive -= 1;
            (self.on_alive)(state.alive);
            return None;
        }
        state.idle += 1;
        loop {
            if let Some(job) = state.queue.pop_front() {
                return Some(job);
            }
            if state.closed {
                state.idle -= 1;
                state.alive -= 1;
                (self.on_alive)(state.alive);
                return None;
            }
            state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AliveHook, Pool};
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread::ThreadId;
    use std::time::{Duration, Instant};

    const STACK: usize = 256 * 1024;
    const DEADLINE: Duration = Duration::from_secs(10);

    fn counting_hook() -> (AliveHook, Arc<AtomicUsize>) {
        let alive = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&alive);
        (Box::new(move |n| seen.store(n, Ordering::SeqCst)), alive)
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + DEADLINE;
        while !cond() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A barrier with a deadline, so that a pool bug fails the test instead of hanging it.
    #[derive(Default)]
    struct Gate {
        arrived: Mutex<usize>,
        changed: Condvar,
    }

    impl Gate {
        /// Counts this arrival, then waits until `n` have arrived; false on time-out.
        fn arrive_and_wait(&self, n: usize) -> bool {
            let end = Instant::now() + DEADLINE;
            let mut arrived = self.arrived.lock().unwrap();
            *arrived += 1;
            self.changed.notify_all();
            while *arrived < n {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                arrived = self.changed.wait_timeout(arrived, left).unwrap().0;
            }
            true
        }
    }

    #[test]
    fn every_submitted_job_runs() {
        let (hook, _) = counting_hook();
        let pool = Pool::new(2, STACK, hook);
        let (tx, rx) = mpsc::channel();
        for i in 0..200 {
            let tx = tx.clone();
            pool.submit(Box::new(move || tx.send(i).unwrap())).unwrap();
        }
        let mut got: Vec<i32> = (0..200).map(|_| rx.recv_timeout(DEADLINE).unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn a_thread_whose_job_ended_runs_the_next_one() {
        let (hook, alive) = counting_hook();
        let pool = Pool::new(1, STACK, hook);
        let ids = Arc::new(Mutex::new(HashSet::<ThreadId>::new()));
        for _ in 0..20 {
            let ids = Arc::clone(&ids);
            let (tx, rx) = mpsc::channel();
            pool.submit(Box::new(move || {
                ids.lock().unwrap().insert(std::thread::current().id());
                tx.send(()).unwrap();
            }))
            .unwrap();
            rx.recv_timeout(DEADLINE).unwrap();
            // The next submit must find the thread back in the pool.
            wait_for("the thread to go idle", || pool.inner.lock().idle == 1);
        }
        assert_eq!(ids.lock().unwrap().len(), 1, "one thread served the jobs one after another");
        assert_eq!(alive.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panicking_job_leaves_its_thread_in_the_pool() {
        let (hook, alive) = counting_hook();
        let pool = Pool::new(1, STACK, hook);
        pool.submit(Box::new(|| panic!("job panics on purpose"))).unwrap();
        wait_for("the thread to go idle", || pool.inner.lock().idle == 1);
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move || tx.send(()).unwrap())).unwrap();
        rx.recv_timeout(DEADLINE).unwrap();
        assert_eq!(alive.load(Ordering::SeqCst), 1, "the same thread ran the next job");
    }

    #[test]
    fn idle_threads_beyond_the_keep_count_exit() {
        let (hook, alive) = counting_hook();
        let pool = Pool::new(2, STACK, hook);
        let started = Arc::new(Gate::default());
        let release = Arc::new(Gate::default());
        for _ in 0..8 {
            let (started, release) = (Arc::clone(&started), Arc::clone(&release));
            pool.submit(Box::new(move || {
                assert!(started.arrive_and_wait(9));
                assert!(release.arrive_and_wait(9));
            }))
            .unwrap();
        }
        assert!(started.arrive_and_wait(9), "all eight jobs started");
        assert_eq!(alive.load(Ordering::SeqCst), 8, "one thread per concurrent job");
        assert!(release.arrive_and_wait(9));
        wait_for("extra threads to exit", || alive.load(Ordering::SeqCst) == 2);
        wait_for("two idle threads", || pool.inner.lock().idle == 2);
        drop(pool);
        wait_for("idle threads to exit when the pool goes", || alive.load(Ordering::SeqCst) == 0);
    }

    #[test]
    fn a_job_never_waits_behind_a_busy_thread() {
        // Each job of a round waits until all ten have started: that only happens if every
        // job gets a thread at once, also when fewer threads are idle than jobs come in.
        let (hook, alive) = counting_hook();
        let pool = Pool::new(3, STACK, hook);
        for round in 0..3 {
            let all = Arc::new(Gate::default());
            let (tx, rx) = mpsc::channel();
            for _ in 0..10 {
                let (all, tx) = (Arc::clone(&all), tx.clone());
                pool.submit(Box::new(move || tx.send(all.arrive_and_wait(10)).unwrap())).unwrap();
            }
            for _ in 0..10 {
                assert_eq!(rx.recv_timeout(DEADLINE), Ok(true), "round {round}: a job waited for a thread");
            }
            wait_for("the pool to shrink to its keep count", || alive.load(Ordering::SeqCst) == 3);
        }
    }
}
