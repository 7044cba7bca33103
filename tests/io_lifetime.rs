//! Lifetime paths of a registered socket, from the review of the I/O
//! layer: a clone outliving its original, a socket outliving its runtime
//! (then used on a plain thread and in a new runtime), a socket dropped on
//! a plain thread while events for its open file keep arriving, a runtime
//! dropped with readers blocked, a forgotten socket. `.ci/run` runs them
//! under valgrind too.

use std::io::{ErrorKind, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use coio::Runtime;
use coio::net::unix::UnixStream;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// Registers `s` with the current worker: a read that waits, then times
/// out.
fn register(s: &UnixStream) {
    s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    let e = (&*s).read(&mut [0; 1]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    s.set_read_timeout(None).unwrap();
}

/// A dup (`try_clone`) has its own descriptor number, so its own epoll
/// item and `IoState`: dropping the original while the clone's reader
/// waits leaves the clone's registration alone, and events for the shared
/// description go to the clone's (live) state only.
#[test]
fn dropping_the_original_of_a_clone_keeps_the_clone_working() {
    rt(2).block_on(|| {
        let (a, b) = UnixStream::pair().unwrap();
        register(&a);
        let c = a.try_clone().unwrap();
        let reader = coio::spawn(move || {
            let mut buf = [0; 1];
            (&c).read_exact(&mut buf).unwrap();
            buf[0]
        });
        coio::sleep(Duration::from_millis(10));
        drop(a);
        coio::sleep(Duration::from_millis(10));
        (&b).write_all(b"z").unwrap();
        assert_eq!(reader.join().unwrap(), b'z');
    });
}

/// Registered in a runtime, the runtime dropped, then the socket used on a
/// plain thread, in another runtime, and dropped there: the closed poller
/// frees at once, and the socket registers afresh.
#[test]
fn socket_outlives_its_runtime() {
    let (a, b) = UnixStream::pair().unwrap();
    let a = rt(1).block_on(move || {
        register(&a);
        a
    });
    // Plain thread: poll(2).
    (&b).write_all(b"1").unwrap();
    let mut buf = [0; 1];
    (&a).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"1");
    // Another runtime: re-registers with its worker.
    let rt2 = rt(1);
    let (tx, rx) = mpsc::channel();
    let _h = rt2.spawn(move || {
        let mut buf = [0; 1];
        (&a).read_exact(&mut buf).unwrap();
        tx.send(buf[0]).unwrap();
        drop(a);
    });
    std::thread::sleep(Duration::from_millis(20));
    (&b).write_all(b"2").unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(3)), Ok(b'2'));
}

/// Registered on one worker, dropped on a plain thread while the runtime
/// runs, with events still arriving for the description (a clone lives on).
#[test]
fn dropped_on_a_plain_thread_while_events_arrive() {
    let rt = rt(2);
    for _ in 0..50 {
        let (a, b) = UnixStream::pair().unwrap();
        let a = rt.block_on(move || {
            register(&a);
            a
        });
        let keep = a.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            for _ in 0..20 {
                let _ = (&b).write_all(b"x");
            }
        });
        drop(a);
        writer.join().unwrap();
        drop(keep);
    }
    // Let the worker poll (and free) a few times.
    rt.block_on(|| coio::sleep(Duration::from_millis(5)));
}

/// A runtime dropped while coroutines block in reads of registered sockets
/// (theirs and another worker's): shutdown cancels them, the sockets are
/// dropped while unwinding, and the drop returns.
#[test]
fn runtime_drop_with_readers_blocked() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = rt(2);
        let mut peers = Vec::new();
        for _ in 0..8 {
            let (a, b) = UnixStream::pair().unwrap();
            peers.push(b);
            rt.spawn(move || {
                let mut buf = [0; 1];
                let _ = (&a).read(&mut buf);
            });
        }
        std::thread::sleep(Duration::from_millis(20));
        drop(rt);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("runtime drop hangs with coroutines blocked in I/O");
}

/// A forgotten socket leaks (its fd and state) but is no memory error.
#[test]
fn forgotten_registered_socket() {
    rt(1).block_on(|| {
        let (a, b) = UnixStream::pair().unwrap();
        register(&a);
        std::mem::forget(a);
        (&b).write_all(b"x").unwrap();
        coio::sleep(Duration::from_millis(5));
    });
}
