//! Regression from the review of the I/O layer: a socket stays registered
//! with the worker of the first coroutine that waited on it. When that
//! worker's runtime was dropped while a coroutine of another runtime waited
//! on the socket, nothing polled the old epoll any more and the waiter was
//! never woken. Now the exiting worker wakes every waiter of its
//! registrations, and a waiter that queues later sees the poller closed
//! under its queue's lock; both re-register with their own worker.

use std::io::{ErrorKind, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use coio::Runtime;
use coio::net::unix::UnixStream;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

#[test]
fn waiter_in_runtime_b_is_woken_when_registering_runtime_a_is_dropped() {
    let (a, b) = UnixStream::pair().unwrap();
    let rt_a = rt(1);
    // Registers `a` with runtime A's worker (the read waits, then times out).
    let a = rt_a.block_on(move || {
        a.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let e = (&a).read(&mut [0; 1]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        a.set_read_timeout(None).unwrap();
        a
    });
    let rt_b = rt(1);
    let (tx, rx) = mpsc::channel();
    let _h = rt_b.spawn(move || {
        let mut buf = [0; 1];
        // A is alive: `register` keeps A's registration; this waits on
        // the IoState's queue, woken only by A's worker.
        let r = (&a).read(&mut buf).map(|n| buf[..n].to_vec());
        tx.send(r).unwrap();
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(rt_a);
    (&b).write_all(b"x").unwrap();
    let got = rx.recv_timeout(Duration::from_secs(3));
    assert!(
        matches!(got, Ok(Ok(ref v)) if v == b"x"),
        "reader in runtime B not woken: {got:?}"
    );
    // (On failure, `rt_b`'s drop cancels the reader.)
}

/// The same while runtime A lives: A's worker wakes B's coroutine through
/// its inbox (works; for contrast).
#[test]
fn waiter_in_runtime_b_is_woken_by_live_runtime_a() {
    let (a, b) = UnixStream::pair().unwrap();
    let rt_a = rt(1);
    let a = rt_a.block_on(move || {
        a.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let e = (&a).read(&mut [0; 1]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        a.set_read_timeout(None).unwrap();
        a
    });
    let rt_b = rt(1);
    let (tx, rx) = mpsc::channel();
    let _h = rt_b.spawn(move || {
        let mut buf = [0; 1];
        let r = (&a).read(&mut buf).map(|n| buf[..n].to_vec());
        tx.send(r).unwrap();
    });
    std::thread::sleep(Duration::from_millis(50));
    (&b).write_all(b"x").unwrap();
    let got = rx.recv_timeout(Duration::from_secs(3));
    assert!(matches!(got, Ok(Ok(ref v)) if v == b"x"), "{got:?}");
    drop(rt_a);
}
