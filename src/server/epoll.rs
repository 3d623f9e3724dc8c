//! The readiness calls the handler threads park connections with: an `epoll` set, an
//! `eventfd` that wakes a handler blocked in `epoll_wait`, and `poll` on one socket for a
//! handler that must wait for a client to take part of a long answer. Knows nothing of
//! connections: it deals in descriptors and the 64-bit token each was registered with.
//!
//! Every `unsafe` block of the server layer is here (issue 9 names epoll for parking
//! connections); each wraps one system call on descriptors this module owns or is handed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// What a registered descriptor is waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Readable,
    Writable,
}

impl Interest {
    fn events(self) -> u32 {
        // Level-triggered: input left in the socket is reported again at the next wait, so a
        // handler may read one buffer's worth and move on to another connection.
        match self {
            Interest::Readable => (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            Interest::Writable => libc::EPOLLOUT as u32,
        }
    }
}

/// One ready descriptor, by the token it was registered with.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub token: u64,
}

/// An epoll set. Any thread may wait in it, each with its own `Events`.
pub struct Epoll {
    fd: OwnedFd,
}

/// Room for the ready descriptors one wait returns.
pub struct Events(Vec<libc::epoll_event>);

impl Events {
    /// Room for at most `batch` ready descriptors per wait.
    pub fn new(batch: usize) -> Events {
        Events(vec![libc::epoll_event { events: 0, u64: 0 }; batch.max(1)])
    }
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; the result is a new descriptor or -1.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned to us and nothing else owns it.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    pub fn modify(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    /// Removes `fd`; closing it would too, but only once no other descriptor shares its file.
    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        let mut unused = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: the event is ignored by DEL but must be a valid pointer on old kernels.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut unused) }).map(drop)
    }

    fn control(&self, op: libc::c_int, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event { events: interest.events(), u64: token };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) }).map(drop)
    }

    /// Waits up to `timeout` (None: for ever; zero: not at all) and appends the ready
    /// descriptors' tokens to `ready`. A signal's interruption is an empty wait.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        let millis = timeout.map_or(-1, |t| libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX));
        let events = &mut events.0;
        let capacity = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `events` holds `capacity` writable epoll_event entries; the kernel writes at
        // most that many.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), capacity, millis) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        ready.extend(events[..n as usize].iter().map(|e| Ready { token: e.u64 }));
        Ok(())
    }
}

/// An eventfd: `wake` from any thread makes the descriptor readable until `drain`.
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: no pointers; the result is a new descriptor or -1.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `fd` was just returned to us and nothing else owns it.
        Ok(Waker { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives through the call. A full counter
        // (EAGAIN) already means "readable", so the result needs no check.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub fn drain(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into `count`, which lives through the call. Empty
        // (EAGAIN) is as good as drained.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
    }
}

/// Waits up to `timeout` for `fd` to take more output. False when it timed out.
pub fn wait_writable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut poll = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    loop {
        // SAFETY: one pollfd we own, for the duration of the call.
        match check(unsafe { libc::poll(&mut poll, 1, millis) }) {
            Ok(ready) => return Ok(ready > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{wait_writable, Epoll, Events, Interest, Ready, Waker};
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn tokens(epoll: &Epoll, timeout: Duration) -> Vec<u64> {
        let mut ready: Vec<Ready> = Vec::new();
        epoll.wait(&mut Events::new(8), Some(timeout), &mut ready).unwrap();
        ready.iter().map(|r| r.token).collect()
    }

    #[test]
    fn a_readable_socket_is_reported_with_its_token_until_read() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let epoll = Epoll::new().unwrap();
        epoll.add(b.as_raw_fd(), 42, Interest::Readable).unwrap();
        assert!(tokens(&epoll, Duration::ZERO).is_empty(), "nothing sent yet");
        a.write_all(b"x").unwrap();
        assert_eq!(tokens(&epoll, Duration::from_secs(5)), vec![42]);
        assert_eq!(tokens(&epoll, Duration::ZERO), vec![42], "level-triggered: still unread");
        epoll.modify(b.as_raw_fd(), 7, Interest::Writable).unwrap();
        assert_eq!(tokens(&epoll, Duration::ZERO), vec![7], "an empty send buffer is writable");
        epoll.remove(b.as_raw_fd()).unwrap();
        assert!(tokens(&epoll, Duration::ZERO).is_empty());
    }

    #[test]
    fn a_waker_wakes_a_wait_until_drained() {
        let waker = Waker::new().unwrap();
        let epoll = Epoll::new().unwrap();
        epoll.add(waker.fd(), 1, Interest::Readable).unwrap();
        waker.wake();
        waker.wake();
        assert_eq!(tokens(&epoll, Duration::from_secs(5)), vec![1]);
        waker.drain();
        assert!(tokens(&epoll, Duration::ZERO).is_empty());
    }

    #[test]
    fn a_full_socket_is_not_writable_until_read() {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let block = vec![0u8; 64 * 1024];
        while (&a).write(&block).is_ok() {}
        assert!(!wait_writable(a.as_raw_fd(), Duration::from_millis(20)).unwrap());
        drop(b);
        assert!(wait_writable(a.as_raw_fd(), Duration::from_secs(5)).unwrap(), "a closed peer reports writable (an error to come)");
    }
}
