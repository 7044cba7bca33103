//! coio where panics abort (`panic = "abort"`), which test builds cannot
//! show (cargo builds tests with unwinding): `.ci/run` runs this program.
//!
//! - no argument: runtimes shut down with coroutines still waiting on a
//!   socket, a timer, a channel and a join, one that yields in a loop, and
//!   one not started yet. Where nothing unwinds, the started ones are left
//!   suspended (leaked), the one not started is dropped, and the program
//!   goes on: it prints `done` and exits with 0 (it aborted, silently).
//! - `cancel`: cancels a sleeping coroutine, which cannot unwind: the
//!   process aborts with coio's message saying so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
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
    println!("done");
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
