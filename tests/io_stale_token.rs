//! Regressions from the review of the I/O layer: safe code can close a
//! registered descriptor behind coio's back (replace `Fd`'s inner object
//! through `get_mut`, or wrap a descriptor it does not own) while another
//! descriptor of the same open file keeps the epoll registration alive.
//! With raw-pointer tokens, `EPOLL_CTL_DEL` then failed, the `IoState` was
//! freed anyway, and the next event dereferenced it (valgrind: invalid
//! reads; the worker spun on a lock in freed memory). The tokens are now
//! checked slots of the poller's table, and the stale events are ignored.
//! Memory errors show only under valgrind, which `.ci/run` uses on this
//! file; the watchdog turns the old spin into an abort.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use coio::Runtime;
use coio::io::Fd;

/// The worker that handles the stale event locks a `Lock` inside freed
/// (sprayed) memory and spins there forever: abort the process instead of
/// hanging the test run.
fn watchdog() {
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(10));
        eprintln!("watchdog: the worker is stuck (spinning on freed IoState memory)");
        std::process::abort();
    });
}

#[test]
fn replacing_inner_through_get_mut_is_harmless() {
    watchdog();
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let (a, b) = UnixStream::pair().unwrap();
        // Same open file description as `a`, another descriptor number.
        let keep = a.try_clone().unwrap();
        let fd = Fd::new(a).unwrap();
        fd.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let mut buf = [0; 1];
        // Registers `a` with the worker's epoll (token = &IoState), then
        // times out.
        let e = (&fd).read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        let mut fd = fd;
        let (c, _d) = UnixStream::pair().unwrap();
        // Safe code: drops (closes) `a`. The epoll item stays, since `keep`
        // holds the description open.
        *fd.get_mut() = c;
        // EPOLL_CTL_DEL(a) fails with EBADF; the IoState goes to the
        // release list and is freed at the worker's next poll.
        drop(fd);
        coio::sleep(Duration::from_millis(5));
        // Reuse the freed memory a little, then make the description
        // readable: the worker's poll dereferences the stale token.
        let spray: Vec<Vec<u8>> = (4..40).map(|n| vec![0xa5u8; n * 8]).collect();
        (&b).write_all(b"x").unwrap();
        coio::sleep(Duration::from_millis(20));
        drop(spray);
        drop(keep);
    });
}

/// The same without `get_mut`: `Fd::new` accepts any `T: AsRawFd`, a safe
/// trait that promises no ownership. Here the descriptor's real owner closes
/// it while the `Fd` is registered.
#[derive(Debug)]
struct NotOwned(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for NotOwned {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

#[test]
fn fd_over_a_descriptor_closed_by_its_owner_is_harmless() {
    use std::os::fd::AsRawFd;
    watchdog();
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let keep = a.try_clone().unwrap();
        let fd = Fd::new(NotOwned(a.as_raw_fd())).unwrap();
        fd.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let e = fd.readable().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        drop(a);
        drop(fd);
        coio::sleep(Duration::from_millis(5));
        let spray: Vec<Vec<u8>> = (4..40).map(|n| vec![0xa5u8; n * 8]).collect();
        (&b).write_all(b"x").unwrap();
        coio::sleep(Duration::from_millis(20));
        drop(spray);
        drop(keep);
    });
}
