//! A user's waker that panics when woken, kept by one of coio's futures,
//! and woken by coio's own code: a channel's hand-over or close, a
//! select's reservation, a worker's poller or timers. The panic is
//! reported (by the hook) and goes no further: the channel keeps its
//! values and wakes its other waiters, the worker goes on serving its
//! other coroutines. (Before, the first three lost a value, stranded a
//! receiver and leaked a slot; from a review.) Also: a cancelled
//! sender's unsent value whose destructor panics.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use coio::chan;

struct Panicking;

impl Wake for Panicking {
    fn wake(self: Arc<Self>) {
        panic!("this waker panics");
    }
}

fn panicking() -> Waker {
    Waker::from(Arc::new(Panicking))
}

mod common;
use common::watchdog;

#[test]
fn a_close_wakes_the_receivers_queued_behind_a_panicking_waker() {
    watchdog(20, "a receiver behind a panicking waker, at the close");
    let (tx, rx) = chan::bounded::<u32>(0);
    let rx2 = rx.clone();
    let waker = panicking();
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(rx.recv_async());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    let t = std::thread::spawn(move || rx2.recv());
    std::thread::sleep(Duration::from_millis(100));
    drop(tx); // wakes the future (panics, survived), then the thread
    assert_eq!(t.join().unwrap(), Err(chan::RecvError));
    drop(fut);
}

#[test]
fn a_receive_that_refills_from_a_send_future_with_a_panicking_waker_returns_its_value() {
    let (tx, rx) = chan::bounded::<u32>(1);
    tx.send(1).unwrap();
    let waker = panicking();
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(tx.send_async(2));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    // Takes 1, moves 2 from the future into the buffer, wakes the future.
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    drop(fut);
}

#[test]
fn a_select_whose_send_meets_a_panicking_waker_keeps_the_slot_count() {
    let (tx, rx) = chan::bounded::<u32>(1);
    let waker = panicking();
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(rx.recv_async());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    let mut sel = chan::Select::new();
    sel.send(&tx);
    let op = sel.select();
    op.send(&tx, 1).unwrap();
    // The future got the value (its wake panicked): the channel is empty.
    let noop = Waker::noop();
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(noop)),
        std::task::Poll::Ready(Ok(1))
    );
    assert!(!tx.is_full());
    assert!(tx.try_send(2).is_ok());
    assert_eq!(rx.try_recv(), Ok(2));
}

/// The worker's poller wakes an `accept_async` future of a coroutine's,
/// kept with a panicking waker, and its timers wake an async sleep's: the
/// worker goes on, and its other coroutines with it.
#[test]
fn a_worker_survives_panicking_wakers_on_its_poller_and_timers() {
    watchdog(30, "a worker after panicking wakers");
    let rt = coio::Runtime::builder().workers(1).build().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let served2 = served.clone();
    rt.block_on(move || {
        let l = coio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let waker = panicking();
        let mut cx = Context::from_waker(&waker);
        let mut accept = pin!(l.accept_async());
        assert!(accept.as_mut().poll(&mut cx).is_pending());
        let mut sleep = pin!(coio::future::sleep(Duration::from_millis(10)));
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        // Another coroutine of the worker, served after the wakes.
        let other = coio::spawn(move || {
            coio::sleep(Duration::from_millis(50));
            served2.fetch_add(1, SeqCst);
        });
        let _c = std::net::TcpStream::connect(addr).unwrap();
        coio::sleep(Duration::from_millis(100));
        other.join().unwrap();
        // Both futures were woken (their wakes panicked) and are ready.
        let noop = Context::from_waker(Waker::noop());
        let mut noop = noop;
        assert!(sleep.as_mut().poll(&mut noop).is_ready());
        assert!(matches!(
            accept.as_mut().poll(&mut noop),
            std::task::Poll::Ready(Ok(_))
        ));
    });
    assert_eq!(served.load(SeqCst), 1);
    // The runtime still serves.
    assert_eq!(rt.block_on(|| 7), 7);
}

/// A sender cancelled while it waits drops its unsent value: a panic of
/// that value's destructor is reported, and `join` still says
/// `Cancelled`.
#[test]
fn a_cancelled_senders_value_whose_drop_panics_still_ends_it_cancelled() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("this destructor panics");
        }
    }
    let (tx, rx) = chan::bounded::<Bomb>(0);
    let err = coio::run(move || {
        let h = coio::spawn(move || {
            let _ = tx.send(Bomb);
        });
        coio::sleep(Duration::from_millis(10));
        h.cancel();
        h.join().unwrap_err()
    });
    assert!(err.is::<coio::Cancelled>());
    drop(rx);
}
