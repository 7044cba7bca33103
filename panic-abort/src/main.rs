//! coio where panics abort (`panic = "abort"`), which test builds cannot
//! show (cargo builds tests with unwinding): `.ci/run` runs this program.
//!
//! - no argument: runtimes shut down with coroutines still waiting on a
//!   socket (one shared with another runtime too, whose receiver must
//!   still be woken), a timer, a channel and a join, one that yields in a loop, and
//!   one not started yet. Where nothing unwinds, the started ones are left
//!   suspended (leaked), the one not started is dropped, and the program
//!   goes on: it prints `done` and exits with 0 (it aborted, silently).
//!   Frames left suspended inside a worker's thread-local borrow that
//!   scoped threads read on keep the worker from exiting (its
//!   thread-locals stay alive).
//! - `cancel`: cancels a sleeping coroutine, which cannot unwind: the
//!   process aborts with coio's message saying so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

/// Sets its flag when dropped.
struct Flag(Arc<AtomicBool>);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("cancel") {
        coio::run(|| {
            let h = coio::spawn(|| coio::sleep(Duration::from_secs(3600)));
            coio::sleep(Duration::from_millis(10));
            h.cancel();
            let _ = h.join();
        });
        println!("not reached: a cancel needs unwinding");
        return;
    }
    let dropped = Arc::new(AtomicBool::new(false));
    for workers in [1, 2] {
        let rt = coio::Runtime::builder()
            .workers(workers)
            .build()
            .expect("runtime");
        let flag = Flag(dropped.clone());
        let total = rt.block_on(move || {
            let listener = coio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            coio::spawn(move || while let Ok((_s, _)) = listener.accept() {});
            coio::spawn(|| coio::sleep(Duration::from_secs(3600)));
            let (tx, rx) = coio::chan::bounded::<u32>(0);
            coio::spawn(move || rx.recv());
            let parked = coio::spawn(coio::park);
            coio::spawn(move || parked.join());
            coio::spawn(|| {
                loop {
                    coio::yield_now();
                }
            });
            // Real work meanwhile: a ping-pong.
            let (ping, pong) = (coio::chan::bounded::<u64>(0), coio::chan::bounded::<u64>(0));
            let (to_echo, from_main) = ping;
            let (to_main, from_echo) = pong;
            let echo = coio::spawn(move || {
                while let Ok(v) = from_main.recv() {
                    to_main.send(v + 1).unwrap();
                }
            });
            let mut v = 0;
            for _ in 0..10_000 {
                to_echo.send(v).unwrap();
                v = from_echo.recv().unwrap();
            }
            drop(to_echo);
            echo.join().unwrap();
            // Not started by the time the runtime shuts down (most likely):
            // dropped, with what it owns.
            coio::spawn(move || drop(flag));
            std::mem::forget(tx);
            coio::sleep(Duration::from_millis(20));
            v
        });
        assert_eq!(total, 10_000);
        drop(rt);
    }
    assert!(
        dropped.load(SeqCst),
        "a coroutine's closure was not dropped"
    );
    wakes_after_the_drop();
    borrows_that_outlive_the_drop();
    a_socket_shared_with_a_dropped_runtime();
    println!("done");
}

/// A receiver left suspended for good (its runtime dropped) on a socket
/// that another runtime's receiver shares: the first waiter of the
/// socket's queue never runs again, and an event's wake must still reach
/// the live one (an event wakes the first waiter of each worker; when it
/// woke the first in all, the datagram stayed unread: from a review).
fn a_socket_shared_with_a_dropped_runtime() {
    let y = coio::Runtime::builder()
        .workers(1)
        .build()
        .expect("runtime");
    let sock = Arc::new(y.block_on(|| coio::net::UdpSocket::bind("127.0.0.1:0").expect("bind")));
    let addr = sock.local_addr().expect("addr");
    // Registered with Y's driver by a wait there that times out.
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let s = sock.clone();
    y.block_on(move || assert!(s.recv(&mut [0; 8]).is_err()));
    sock.set_read_timeout(None).expect("timeout");
    // The oldest waiter, in runtime X, which is then dropped.
    let x = coio::Runtime::builder()
        .workers(1)
        .build()
        .expect("runtime");
    let s = sock.clone();
    x.spawn(move || {
        let _ = s.recv(&mut [0; 8]);
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(x);
    let (tx, rx) = std::sync::mpsc::channel();
    let s = sock.clone();
    y.spawn(move || tx.send(s.recv(&mut [0; 8]).expect("recv")).expect("send"));
    std::thread::sleep(Duration::from_millis(50));
    let c = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    c.send_to(b"one", addr).expect("send");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok(3),
        "the live receiver was not woken"
    );
}

thread_local! {
    /// Borrowed by suspended frames, and through them by scoped threads.
    static BORROWED: Vec<u64> = (0..512).collect();
}

/// Reads `v` until `stop`, counting reads and the ones that found it changed.
fn read_until_stopped(v: &[u64], stop: &AtomicBool, reads: &AtomicUsize, bad: &AtomicUsize) {
    while !stop.load(SeqCst) {
        if v.iter().fold(0u64, |a, x| a.wrapping_add(*x)) != 511 * 512 / 2 {
            bad.fetch_add(1, SeqCst);
        }
        reads.fetch_add(1, SeqCst);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Frames left suspended for good inside a worker's `thread_local!` borrow
/// that a `thread::scope`'s thread reads on: a coroutine sleeping there at
/// shutdown (left suspended), and a generator suspended there and dropped
/// (leaked: it cannot unwind). The worker must stay (parked for good), not
/// exit and destroy the value under the readers; the drop returns.
fn borrows_that_outlive_the_drop() {
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(AtomicUsize::new(0));
    let rt = coio::Runtime::builder()
        .workers(1)
        .build()
        .expect("runtime");
    let (s, r, b) = (stop.clone(), reads.clone(), bad.clone());
    rt.block_on(move || {
        let (s2, r2, b2) = (s.clone(), r.clone(), b.clone());
        coio::spawn(move || {
            BORROWED.with(|v| {
                std::thread::scope(|sc| {
                    sc.spawn(|| read_until_stopped(v, &s2, &r2, &b2));
                    coio::sleep(Duration::from_secs(3600));
                })
            })
        });
        coio::spawn(move || {
            let mut g = coio::Generator::new(move |y: &coio::Yielder<(), ()>, ()| {
                BORROWED.with(|v| {
                    std::thread::scope(|sc| {
                        sc.spawn(|| read_until_stopped(v, &s, &r, &b));
                        y.yield_(());
                    })
                })
            });
            g.resume(());
            drop(g);
        })
        .join()
        .unwrap();
        coio::sleep(Duration::from_millis(20));
    });
    drop(rt);
    std::thread::sleep(Duration::from_millis(100));
    let before = reads.load(SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    assert!(reads.load(SeqCst) > before, "the readers stopped");
    assert_eq!(bad.load(SeqCst), 0, "a reader saw the value destroyed");
    stop.store(true, SeqCst);
}

/// Coroutines left suspended are woken after their runtime is gone: by a
/// channel's sender (from this thread and from another runtime's
/// coroutine), by an unpark, and by a `blocking` call that ends. The
/// wakes land in the leaked runtime's inboxes, harmlessly (they read freed
/// memory: valgrind in CI).
fn wakes_after_the_drop() {
    let (tx, rx) = coio::chan::bounded::<u32>(0);
    let (tx2, rx2) = coio::chan::bounded::<u32>(0);
    let (me_tx, me_rx) = std::sync::mpsc::channel();
    let rt = coio::Runtime::builder()
        .workers(1)
        .build()
        .expect("runtime");
    rt.block_on(move || {
        coio::spawn(move || rx.recv());
        coio::spawn(move || rx2.recv());
        coio::spawn(move || {
            me_tx.send(coio::current()).unwrap();
            coio::park();
        });
        coio::spawn(|| coio::blocking(|| std::thread::sleep(Duration::from_millis(200))));
        coio::sleep(Duration::from_millis(20));
    });
    let parked = me_rx.recv().unwrap();
    drop(rt);
    let _ = tx.send(7);
    coio::Runtime::builder()
        .workers(1)
        .build()
        .expect("runtime")
        .block_on(move || {
            let _ = tx2.send(8);
        });
    parked.unpark();
    // The blocking call ends meanwhile, and wakes its coroutine.
    std::thread::sleep(Duration::from_millis(300));
}
