//! The readiness calls the handler threads park connections with: one epoll set that every
//! handler waits on, and `poll` on one socket for a handler that must wait for a client to
//! take part of a long answer. Knows nothing of connections: it deals in descriptors and the
//! 64-bit token each was registered with.
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

/// One ready descriptor, by the token it was registered with.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub token: u64,
}

/// A handle on an epoll set, with room for the ready descriptors of one wait.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new set; this handle returns at most `batch` ready descriptors per wait.
    pub fn new(batch: usize) -> io::Result<Epoll> {
        // SAFETY: no pointers; the result is a new descriptor or -1.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned to us and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd, events: vec![libc::epoll_event { events: 0, u64: 0 }; batch.max(1)] })
    }

    /// Another handle on the same set, for another thread, returning at most `batch` ready
    /// descriptors per wait.
    pub fn try_clone(&self, batch: usize) -> io::Result<Epoll> {
        Ok(Epoll { fd: self.fd.try_clone()?, events: vec![libc::epoll_event { events: 0, u64: 0 }; batch.max(1)] })
    }

    /// Adds `fd`, edge-triggered for input and output: it is reported once each time input
    /// arrives, the peer hangs up, or room to write opens after a write found none (and once
    /// at once if it is ready when added).
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) }).map(drop)
    }

    /// Removes `fd`; closing it would too, but only once no other descriptor shares its file.
    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        let mut unused = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: the event is ignored by DEL but must be a valid pointer on old kernels.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut unused) }).map(drop)
    }

    /// Waits up to `timeout` (None: for ever; zero: not at all) and appends the ready
    /// descriptors' tokens to `ready`. A signal's interruption is an empty wait.
    pub fn wait(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        let millis = timeout.map_or(-1, |t| libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX));
        let capacity = libc::c_int::try_from(self.events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `events` holds `capacity` writable epoll_event entries; the kernel writes at
        // most that many.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), capacity, millis) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        ready.extend(self.events[..n as usize].iter().map(|e| Ready { token: e.u64 }));
        Ok(())
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
    use super::{wait_writable, Epoll, Ready};
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn tokens(epoll: &mut Epoll, timeout: Duration) -> Vec<u64> {
        let mut ready: Vec<Ready> = Vec::new();
        epoll.wait(Some(timeout), &mut ready).unwrap();
        ready.iter().map(|r| r.token).collect()
    }

    #[test]
    fn each_edge_is_reported_once_with_its_token() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let mut epoll = Epoll::new(8).unwrap();
        epoll.add(b.as_raw_fd(), 42).unwrap();
        assert_eq!(tokens(&mut epoll, Duration::from_secs(5)), vec![42], "writable when added");
        assert!(tokens(&mut epoll, Duration::ZERO).is_empty(), "an edge is reported once");
        a.write_all(b"x").unwrap();
        assert_eq!(tokens(&mut epoll, Duration::from_secs(5)), vec![42], "input arrived");
        assert!(tokens(&mut epoll, Duration::ZERO).is_empty(), "unread input is not reported again");
        a.write_all(b"y").unwrap();
        assert_eq!(tokens(&mut epoll, Duration::from_secs(5)), vec![42], "more input is a new edge");
        let mut got = [0u8; 2];
        b.read_exact(&mut got).unwrap();
        epoll.remove(b.as_raw_fd()).unwrap();
        a.write_all(b"z").unwrap();
        assert!(tokens(&mut epoll, Duration::ZERO).is_empty(), "removed");
    }

    #[test]
    fn every_handle_waits_on_the_same_set() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let first = Epoll::new(8).unwrap();
        let mut second = first.try_clone(8).unwrap();
        first.add(b.as_raw_fd(), 7).unwrap();
        assert_eq!(tokens(&mut second, Duration::from_secs(5)), vec![7]);
        a.write_all(b"x").unwrap();
        assert_eq!(tokens(&mut second, Duration::from_secs(5)), vec![7]);
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
