//! `coio::io::Fd`, the wrapper for any descriptor: a pipe and an eventfd
//! through the netpoller, from coroutines and plain threads; timeouts,
//! the non-blocking mode, cancellation, `into_inner`.

use std::io::{self, ErrorKind, PipeReader, PipeWriter, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coio::io::Fd;
use coio::{Runtime, chan};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

fn pipe() -> (Fd<PipeReader>, Fd<PipeWriter>) {
    let (r, w) = io::pipe().unwrap();
    (Fd::new(r).unwrap(), Fd::new(w).unwrap())
}

/// A non-blocking eventfd.
fn eventfd() -> Fd<OwnedFd> {
    // SAFETY: no pointers; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "{}", io::Error::last_os_error());
    // SAFETY: a new descriptor that nothing else owns.
    Fd::new(unsafe { OwnedFd::from_raw_fd(fd) }).unwrap()
}

/// Reads the eventfd's counter (WouldBlock while it is 0).
fn event_read(fd: &OwnedFd) -> io::Result<u64> {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into `v`, which has 8.
    let r = unsafe { libc::read(fd.as_raw_fd(), (&raw mut v).cast(), 8) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

/// Adds `v` to the eventfd's counter.
fn event_write(fd: &OwnedFd, v: u64) -> io::Result<()> {
    // SAFETY: writes the 8 bytes of `v`.
    let r = unsafe { libc::write(fd.as_raw_fd(), (&raw const v).cast(), 8) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[test]
fn pipe_read_parks_the_coroutine_not_the_worker() {
    // One worker: the writer can run only if the reader's wait parked the
    // coroutine rather than the thread.
    let log = rt(1).block_on(|| {
        let (mut r, mut w) = pipe();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = chan::bounded(1);
        let reader = {
            let log = log.clone();
            coio::spawn(move || {
                log.lock().unwrap().push("read");
                ready_tx.send(()).unwrap();
                let mut buf = [0; 5];
                r.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"hello");
                log.lock().unwrap().push("got");
                // The writer's end closed: end of file.
                assert_eq!(r.read(&mut buf).unwrap(), 0);
            })
        };
        ready_rx.recv().unwrap();
        coio::yield_now();
        log.lock().unwrap().push("write");
        w.write_all(b"hello").unwrap();
        drop(w);
        reader.join().unwrap();
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    });
    assert_eq!(log, ["read", "write", "got"]);
}

#[test]
fn pipe_transfer_larger_than_its_buffer() {
    // The writer fills the pipe and waits for writability while the
    // reader drains it, on one worker, through shared references.
    const N: usize = 4 << 20;
    for workers in [1, 2] {
        rt(workers).block_on(|| {
            let (r, w) = pipe();
            let writer = coio::spawn(move || {
                let chunk: Vec<u8> = (0..10_007u32).map(|i| i as u8).collect();
                let mut sent = 0;
                while sent < N {
                    let n = (N - sent).min(chunk.len());
                    (&w).write_all(&chunk[..n]).unwrap();
                    sent += n;
                }
            });
            let mut got = 0usize;
            let mut buf = vec![0; 65536];
            loop {
                let n = (&r).read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                for (k, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, ((got + k) % 10_007) as u8);
                }
                got += n;
            }
            writer.join().unwrap();
            assert_eq!(got, N);
        });
    }
}

#[test]
fn eventfd_readable_after_a_write() {
    rt(1).block_on(|| {
        let efd = Arc::new(eventfd());
        // Nothing written yet.
        assert_eq!(
            event_read(efd.get_ref()).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        let (ready_tx, ready_rx) = chan::bounded(1);
        let waiter = {
            let efd = efd.clone();
            coio::spawn(move || {
                ready_tx.send(()).unwrap();
                efd.readable().unwrap();
                efd.read_with(event_read).unwrap()
            })
        };
        ready_rx.recv().unwrap();
        coio::yield_now();
        efd.write_with(|f| event_write(f, 3)).unwrap();
        assert_eq!(waiter.join().unwrap(), 3);
        // Writable at once (the counter is far from full).
        efd.writable().unwrap();
        // A timeout ends both kinds of wait. (`readable` is a hint: it
        // returns at once while the last operation left the descriptor
        // marked readable, so the read that finds it empty comes first.)
        efd.set_read_timeout(Some(Duration::from_millis(30)))
            .unwrap();
        assert_eq!(efd.read_timeout(), Some(Duration::from_millis(30)));
        let start = Instant::now();
        assert_eq!(
            efd.read_with(event_read).unwrap_err().kind(),
            ErrorKind::TimedOut
        );
        assert_eq!(efd.readable().unwrap_err().kind(), ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(60));
        // Still usable.
        efd.write_with(|f| event_write(f, 1)).unwrap();
        assert_eq!(efd.read_with(event_read).unwrap(), 1);
        assert!(efd.set_write_timeout(Some(Duration::ZERO)).is_err());
        assert_eq!(efd.write_timeout(), None);
    });
}

#[test]
fn plain_threads_use_the_same_type() {
    let (mut r, mut w) = pipe();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        w.write_all(b"thread").unwrap();
    });
    let mut buf = [0; 6];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"thread");
    t.join().unwrap();
    let efd = eventfd();
    efd.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    assert_eq!(
        efd.read_with(event_read).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
    efd.write_with(|f| event_write(f, 2)).unwrap();
    efd.readable().unwrap();
    assert_eq!(efd.read_with(event_read).unwrap(), 2);
}

#[test]
fn nonblocking_mode_and_into_inner() {
    let check = || {
        let (mut r, mut w) = pipe();
        let fd = r.as_raw_fd();
        assert!(format!("{r:?}").starts_with("Fd("));
        r.set_nonblocking(true);
        let mut buf = [0; 2];
        assert_eq!(r.read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        r.set_nonblocking(false);
        w.write_all(b"ok").unwrap();
        r.read_exact(&mut buf).unwrap();
        // The object comes back, its descriptor still non-blocking.
        let mut inner = r.into_inner();
        assert_eq!(inner.as_raw_fd(), fd);
        assert_eq!(
            inner.read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        w.write_all(b"hi").unwrap();
        assert_eq!(inner.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf, b"hi");
        // And can be wrapped again.
        let mut r = Fd::new(inner).unwrap();
        w.get_mut().write_all(b"go").unwrap();
        r.read_with_mut(|p| p.read_exact(&mut buf)).unwrap();
        assert_eq!(&buf, b"go");
    };
    rt(1).block_on(check);
    check();
}

#[test]
fn cancel_wakes_a_coroutine_blocked_in_read() {
    let rt = rt(1);
    let (r, _w) = pipe();
    let (ready_tx, ready_rx) = chan::bounded(1);
    let reader = rt.spawn(move || {
        let mut r = r;
        ready_tx.send(()).unwrap();
        let _ = r.read(&mut [0; 1]);
        unreachable!("the read cannot complete: nobody writes");
    });
    ready_rx.recv().unwrap();
    reader.cancel();
    assert!(reader.join().unwrap_err().is::<coio::Cancelled>());
}
