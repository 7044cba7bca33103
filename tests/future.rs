//! `coio::future::block_on`: futures completed by other coroutines on the
//! same worker (the case that hangs with a thread-blocking `block_on`), by
//! plain threads, on plain threads; cancellation drops the future on the
//! coroutine's own thread; wakers that outlive their coroutine; many
//! wakes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use coio::Runtime;
use coio::future::block_on;

mod common;

/// A one-shot channel built on `Waker` alone, as async crates have them.
struct Shared<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// Wakers ever stored (each poll that found nothing stores one).
    polls: usize,
}

struct Sender<T>(Arc<Mutex<Shared<T>>>);
struct Receiver<T>(Arc<Mutex<Shared<T>>>);

fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let s = Arc::new(Mutex::new(Shared {
        value: None,
        waker: None,
        polls: 0,
    }));
    (Sender(s.clone()), Receiver(s))
}

impl<T> Sender<T> {
    fn send(self, v: T) {
        let waker = {
            let mut s = self.0.lock().unwrap();
            s.value = Some(v);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.0.lock().unwrap();
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.polls += 1;
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// Runs `f` on a thread; fails if it does not finish within 20 s (a
/// coroutine waiting for a wake that never comes).
fn within_20s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    common::within(Duration::from_secs(20), f)
}

/// The sender is another coroutine of the same, only worker: it runs while
/// the receiver's coroutine is parked in `block_on`.
#[test]
fn completed_by_a_coroutine_of_the_same_worker() {
    let v = within_20s(|| {
        rt(1).block_on(|| {
            let (tx, rx) = oneshot();
            coio::spawn(move || {
                coio::sleep(Duration::from_millis(5));
                tx.send(7u32);
            });
            block_on(rx)
        })
    });
    assert_eq!(v, 7);
}

/// Many coroutines at once on two workers, each waiting on a future that
/// another coroutine completes (more of them than workers: a thread-blocking
/// `block_on` hangs here).
#[test]
fn many_waiters_completed_by_coroutines() {
    let total = within_20s(|| {
        rt(2).block_on(|| {
            let waiters: Vec<_> = (0..64u64)
                .map(|i| {
                    let (tx, rx) = oneshot();
                    coio::spawn(move || {
                        coio::yield_now();
                        tx.send(i);
                    });
                    coio::spawn(move || block_on(rx))
                })
                .collect();
            waiters.into_iter().map(|w| w.join().unwrap()).sum::<u64>()
        })
    });
    assert_eq!(total, (0..64).sum());
}

/// Woken from a plain thread, many times in a row.
#[test]
fn completed_by_plain_threads() {
    within_20s(|| {
        rt(2).block_on(|| {
            for i in 0..1000u32 {
                let (tx, rx) = oneshot();
                let t = thread::spawn(move || tx.send(i));
                assert_eq!(block_on(rx), i);
                t.join().unwrap();
            }
        })
    });
}

/// Outside a coroutine, the thread itself waits.
#[test]
fn on_a_plain_thread() {
    let (tx, rx) = oneshot();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        tx.send("thread");
    });
    assert_eq!(within_20s(move || block_on(rx)), "thread");
    t.join().unwrap();
}

/// A future that wakes itself before returning `Pending`, a thousand
/// times: each wake comes before the park, which returns at once.
#[test]
fn self_waking_future() {
    struct Countdown(u32);
    impl Future for Countdown {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            if self.0 == 0 {
                return Poll::Ready(7);
            }
            self.0 -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    assert_eq!(
        within_20s(|| rt(1).block_on(|| block_on(Countdown(1000)))),
        7
    );
}

/// Cancelling a coroutine parked in `block_on` drops its future on the
/// coroutine's own worker thread, and the coroutine ends as cancelled.
#[test]
fn cancellation_drops_the_future_on_the_coroutine_thread() {
    struct Pending(Arc<Mutex<Option<String>>>);
    impl Future for Pending {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }
    impl Drop for Pending {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = thread::current().name().map(str::to_owned);
        }
    }
    let rt = rt(2);
    let dropped_on = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel();
    let h = {
        let dropped_on = dropped_on.clone();
        rt.spawn(move || {
            tx.send(thread::current().name().map(str::to_owned))
                .unwrap();
            block_on(Pending(dropped_on));
        })
    };
    let ran_on = rx.recv().unwrap();
    thread::sleep(Duration::from_millis(20));
    h.cancel();
    assert!(h.join().unwrap_err().is::<coio::Cancelled>());
    assert_eq!(*dropped_on.lock().unwrap(), ran_on);
    assert!(ran_on.unwrap().starts_with("coio-worker"));
}

/// A waker kept after its coroutine finished: waking it does nothing, and
/// other coroutines (reusing the finished one's memory) are not woken by
/// it; dropping it frees what it held.
#[test]
fn a_waker_outliving_its_coroutine_is_harmless() {
    let rt = rt(1);
    let (tx, rx) = oneshot::<u32>();
    let kept = Arc::new(Mutex::new(None));
    {
        let kept = kept.clone();
        rt.block_on(move || {
            coio::spawn(move || {
                // Polled once: the waker is stored, then the value comes.
                let got = block_on(rx);
                assert_eq!(got, 1);
            });
            coio::sleep(Duration::from_millis(5));
            *kept.lock().unwrap() = tx.0.lock().unwrap().waker.clone();
            tx.send(1);
        });
    }
    let waker = kept.lock().unwrap().take().expect("a waker was stored");
    // The coroutine has finished; new ones run and park meanwhile.
    let woken = Arc::new(AtomicUsize::new(0));
    rt.block_on(|| {
        let parked: Vec<_> = (0..8)
            .map(|_| {
                let woken = woken.clone();
                coio::spawn(move || {
                    coio::park_timeout(Duration::from_millis(200));
                    woken.fetch_add(1, Relaxed);
                })
            })
            .collect();
        coio::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        waker.wake_by_ref();
        waker.wake();
        for p in parked {
            p.join().unwrap();
        }
        // None of them was woken early by the stale waker.
        assert!(t0.elapsed() >= Duration::from_millis(150));
    });
    assert_eq!(woken.load(Relaxed), 8);
}

coio::coroutine_local! {
    /// A value whose drop is counted (see the test below).
    static COUNTED: Counted = Counted;
}

/// Counts its drops.
struct Counted;

static COUNTED_DROPS: AtomicUsize = AtomicUsize::new(0);

impl Drop for Counted {
    fn drop(&mut self) {
        COUNTED_DROPS.fetch_add(1, SeqCst);
    }
}

/// A detached coroutine's result is dropped on the coroutine after its
/// coroutine-locals were: what that destructor makes there (a value, a
/// `block_on`'s kept waker, which holds a count on the task) is dropped
/// too, not leaked with the task.
#[test]
fn locals_made_by_a_detached_result_s_drop_are_dropped() {
    struct MakesLocals;
    impl Drop for MakesLocals {
        fn drop(&mut self) {
            block_on(std::future::ready(()));
            COUNTED.with(|_| ());
        }
    }
    const N: usize = 200;
    within_20s(|| {
        // One worker: each coroutine starts only after its handle was
        // dropped here, so it is detached for certain and its result is
        // dropped on it (a result of a coroutine that finished first is
        // dropped with the handle, on this coroutine).
        rt(1).block_on(|| {
            let before = COUNTED_DROPS.load(SeqCst);
            for _ in 0..N {
                drop(coio::spawn(|| MakesLocals));
            }
            let t = Instant::now();
            while COUNTED_DROPS.load(SeqCst) - before < N {
                assert!(t.elapsed() < Duration::from_secs(10), "locals leaked");
                coio::sleep(Duration::from_millis(1));
            }
        })
    });
}

/// A generator running `block_on` whose future suspended it inside `poll`,
/// resumed by another coroutine: the future gets that coroutine's waker
/// (the one that parks), not the first one's.
#[test]
fn block_on_in_a_generator_resumed_by_another_coroutine() {
    use coio::{Generator, GeneratorState, Yielder};
    use std::cell::RefCell;

    /// Pending once after suspending its generator, then waits for `rx`.
    struct SuspendThenWait<'a> {
        y: &'a Yielder<(), ()>,
        suspended: bool,
        rx: Receiver<u32>,
    }
    impl Future for SuspendThenWait<'_> {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            if !self.suspended {
                self.suspended = true;
                self.y.yield_(());
            }
            Pin::new(&mut self.rx).poll(cx)
        }
    }

    thread_local! {
        static STASH: RefCell<Option<Generator<(), (), u32>>> = const { RefCell::new(None) };
    }
    let got = within_20s(|| {
        Runtime::builder().workers(1).build().unwrap().block_on(|| {
            let (tx, rx) = oneshot::<u32>();
            let rx = Mutex::new(Some(rx));
            // A: starts the generator, which suspends inside `poll`, and
            // leaves it to B (this coroutine), then finishes.
            let a = coio::spawn(move || {
                let rx = rx.lock().unwrap().take().unwrap();
                let mut g = Generator::new(move |y: &Yielder<(), ()>, ()| {
                    block_on(SuspendThenWait {
                        y,
                        suspended: false,
                        rx,
                    })
                });
                assert!(matches!(g.resume(()), GeneratorState::Yielded(())));
                STASH.with(|s| *s.borrow_mut() = Some(g));
            });
            a.join().unwrap();
            // The sender comes later, from another coroutine.
            coio::spawn(move || {
                coio::sleep(Duration::from_millis(20));
                tx.send(7);
            });
            let mut g = STASH.with(|s| s.borrow_mut().take()).unwrap();
            match g.resume(()) {
                GeneratorState::Complete(v) => v,
                GeneratorState::Yielded(()) => panic!("yielded again"),
            }
        })
    });
    assert_eq!(got, 7);
}

/// The helper thread of a `future::sleep` polled off the workers (one per
/// sleep, the documented fallback) ends when the sleep is dropped, not at
/// its deadline: a timeout raced against quick work in a loop would pile
/// up threads (with `Duration::MAX`, each sleeping for a century).
#[test]
fn a_dropped_sleep_off_the_workers_ends_its_helper_thread() {
    fn helpers() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
            .filter(|n| n.trim_end() == "coio-sleep")
            .count()
    }
    for _ in 0..20 {
        let mut s = std::pin::pin!(coio::future::sleep(Duration::MAX));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(s.as_mut().poll(&mut cx).is_pending());
    }
    // (Other tests of this binary may have a helper or two of their own.)
    let start = Instant::now();
    while helpers() >= 20 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the helper threads of 20 dropped sleeps still wait"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// A future that waits for `a` and, in its first poll, runs a nested
/// `block_on` of `b` (a sync helper called from async code).
struct WithNested {
    a: Receiver<u32>,
    b: Option<Receiver<u32>>,
    from_b: u32,
}

impl Future for WithNested {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if let Poll::Ready(v) = Pin::new(&mut self.a).poll(cx) {
            return Poll::Ready(v + self.from_b);
        }
        if let Some(b) = self.b.take() {
            self.from_b = block_on(b);
        }
        Poll::Pending
    }
}

/// `a` is sent (waking the outer `block_on`) while the nested one waits for
/// `b`: the nested wait must not take the outer one's wake (they share the
/// coroutine's, or the thread's, park token), or the outer one would park
/// for ever once `b` comes.
fn nested_block_on_keeps_the_outer_wake(send: impl FnOnce(Box<dyn FnOnce() + Send>)) -> u32 {
    let (tx_a, rx_a) = oneshot();
    let (tx_b, rx_b) = oneshot();
    send(Box::new(move || {
        thread::sleep(Duration::from_millis(10));
        tx_a.send(1);
        thread::sleep(Duration::from_millis(40));
        tx_b.send(10);
    }));
    block_on(WithNested {
        a: rx_a,
        b: Some(rx_b),
        from_b: 0,
    })
}

#[test]
fn a_nested_block_on_keeps_the_outer_wake_in_a_coroutine() {
    let v = within_20s(|| {
        rt(1).block_on(|| {
            nested_block_on_keeps_the_outer_wake(|f| {
                // A plain thread: its sleeps leave the worker to the waiter.
                thread::spawn(f);
            })
        })
    });
    assert_eq!(v, 11);
}

#[test]
fn a_nested_block_on_keeps_the_outer_wake_on_a_thread() {
    let v = within_20s(|| {
        nested_block_on_keeps_the_outer_wake(|f| {
            thread::spawn(f);
        })
    });
    assert_eq!(v, 11);
}

/// A waker that drops a future (here, a sleep) when it is woken, as some
/// executors drop a task's future once they are gone.
struct DropsOnWake(Mutex<Option<coio::future::Sleep>>);

impl std::task::Wake for DropsOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        drop(self.0.lock().unwrap().take());
    }
}

/// A sleep's waker, run by the worker as its timer fires, drops another
/// sleep armed on the same worker: the worker's timer heap must not be
/// borrowed meanwhile (it was: "already borrowed", and the worker
/// aborted the process).
#[test]
fn a_sleep_s_waker_may_drop_another_sleep_of_the_worker() {
    use futures::task::noop_waker;
    within_20s(|| {
        rt(1).block_on(|| {
            let mut long = coio::future::sleep(Duration::from_secs(3600));
            let noop = noop_waker();
            assert!(
                Pin::new(&mut long)
                    .poll(&mut Context::from_waker(&noop))
                    .is_pending()
            );
            let dropper = Arc::new(DropsOnWake(Mutex::new(Some(long))));
            let waker = Waker::from(dropper.clone());
            let mut short = coio::future::sleep(Duration::from_millis(5));
            assert!(
                Pin::new(&mut short)
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
            );
            coio::sleep(Duration::from_millis(50));
            assert!(dropper.0.lock().unwrap().is_none(), "not woken");
        })
    });
}

/// A sleep first polled in a coroutine (its timer armed on that worker),
/// then awaited elsewhere after the runtime is gone: the worker's exit
/// wakes it, to arm again where it is polled (it hung: the exit dropped
/// the timer unwoken). It still waits for its deadline.
#[test]
fn a_sleep_outlives_the_runtime_it_was_armed_on() {
    use futures::task::noop_waker;
    let start = Instant::now();
    let sleep = rt(1).block_on(|| {
        let mut s = coio::future::sleep(Duration::from_millis(300));
        let noop = noop_waker();
        assert!(
            Pin::new(&mut s)
                .poll(&mut Context::from_waker(&noop))
                .is_pending()
        );
        s
    });
    within_20s(move || futures::executor::block_on(sleep));
    assert!(start.elapsed() >= Duration::from_millis(300));
}

/// A future that wakes itself at every poll (a busy wait) in a coroutine
/// that is cancelled: `block_on` polls it again without parking (its wake
/// came during the poll), and still unwinds with `Cancelled` there (it
/// looped for ever: only a park checked for cancellation).
#[test]
fn a_self_waking_future_s_coroutine_can_be_cancelled() {
    let r = within_20s(|| {
        let rt = rt(1);
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let h = rt.spawn(move || {
            block_on(std::future::poll_fn(|cx| {
                s.store(1, SeqCst);
                cx.waker().wake_by_ref();
                Poll::<()>::Pending
            }))
        });
        while started.load(SeqCst) == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        h.cancel();
        h.join().map_err(|e| e.is::<coio::Cancelled>())
    });
    assert_eq!(r, Err(true));
}

/// A future that wakes itself until another coroutine of its only worker
/// sets a flag (`yield_now().await` in a loop, as async code waits): the
/// self-wake lets the others run, as an executor queues a self-woken task
/// behind them (`block_on` polled it again at once, for ever).
#[test]
fn a_self_waking_future_lets_the_worker_s_other_coroutines_run() {
    let polls = within_20s(|| {
        let rt = rt(1);
        rt.block_on(|| {
            let flag = Arc::new(AtomicUsize::new(0));
            let f = flag.clone();
            let h = coio::spawn(move || {
                let mut polls = 0u64;
                block_on(std::future::poll_fn(|cx| {
                    polls += 1;
                    if f.load(SeqCst) == 1 {
                        return Poll::Ready(());
                    }
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }));
                polls
            });
            coio::spawn(move || flag.store(1, SeqCst));
            h.join().unwrap()
        })
    });
    assert!(polls >= 2, "{polls}");
}

/// A dynamic select's send that found a receive future waiting does not
/// hold the future's claim until the send is completed: the future's
/// poll and drop, on the select's own thread before the completion,
/// return at once (both waited for the claim, for ever). The value then
/// reaches the future if it waits again, else the channel.
#[test]
fn a_selected_send_does_not_hold_a_receive_future() {
    use coio::chan::{self, Select};
    common::within(Duration::from_secs(20), || {
        let mut cx = Context::from_waker(Waker::noop());
        for drop_it in [false, true] {
            let (tx, rx) = chan::bounded::<u32>(0);
            let mut fut = Box::pin(rx.recv_async());
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            let mut sel = Select::new();
            sel.send(&tx);
            let op = sel.select();
            if drop_it {
                drop(fut);
                op.send(&tx, 1).unwrap();
                assert_eq!(rx.try_recv(), Ok(1));
            } else {
                assert!(fut.as_mut().poll(&mut cx).is_pending());
                op.send(&tx, 1).unwrap();
                assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(1)));
            }
            assert!(rx.try_recv().is_err());
        }
        // From another thread that holds the operation for a while: the
        // future's poll does not wait for it.
        let (tx, rx) = chan::bounded::<u32>(0);
        let mut fut = Box::pin(rx.recv_async());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        let (selected_tx, selected) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let mut sel = Select::new();
            sel.send(&tx);
            let op = sel.select();
            selected_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            op.send(&tx, 1).unwrap();
        });
        selected.recv().unwrap();
        let t = std::time::Instant::now();
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        holder.join().unwrap();
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(1)));
    });
}

/// A value handed to a receive future still counts as the channel's once
/// the senders are gone: another receiver is not told the channel is
/// closed while the future holds it; it gets the value when the future is
/// dropped, and "closed" only after that, or after the future took its
/// value. (It was told "closed" at once, and the value came back with
/// nobody left to take it.)
#[test]
fn a_value_in_a_receive_future_s_hands_keeps_the_channel_open() {
    use coio::chan;
    common::within(Duration::from_secs(20), || {
        let mut cx = Context::from_waker(Waker::noop());
        for take_it in [false, true] {
            let (tx, rx) = chan::unbounded::<u32>();
            let other = rx.clone();
            let mut fut = Box::pin(rx.recv_async());
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            let (out_tx, out) = mpsc::channel();
            let receiver = thread::spawn(move || {
                while let Ok(v) = other.recv() {
                    out_tx.send(Some(v)).unwrap();
                }
                out_tx.send(None).unwrap();
            });
            thread::sleep(Duration::from_millis(50)); // it waits, behind the future
            tx.send(7).unwrap(); // to the future
            drop(tx);
            assert_eq!(
                out.recv_timeout(Duration::from_millis(200)),
                Err(mpsc::RecvTimeoutError::Timeout),
                "told closed while the future holds a value"
            );
            if take_it {
                assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(7)));
            } else {
                drop(fut);
                assert_eq!(out.recv().unwrap(), Some(7));
            }
            assert_eq!(out.recv().unwrap(), None);
            receiver.join().unwrap();
            assert!(rx.try_recv().is_err());
        }
    });
}

/// The same with nobody else receiving: the value dropped with the
/// future goes back to the buffer, and a later receive takes it, then
/// finds the channel closed.
#[test]
fn a_value_given_back_after_the_senders_left_is_received_later() {
    use coio::chan;
    common::within(Duration::from_secs(20), || {
        let mut cx = Context::from_waker(Waker::noop());
        let (tx, rx) = chan::bounded::<u32>(0);
        let mut fut = Box::pin(rx.recv_async());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        let sender = thread::spawn(move || tx.send(7).unwrap());
        sender.join().unwrap(); // to the future, then gone
        drop(fut);
        assert_eq!(rx.recv(), Ok(7));
        assert!(rx.recv().is_err());
    });
}

/// A value a dynamic select's receive held, given back when its operation
/// is dropped uncompleted, is not one a receive future held: the count of
/// those stays right, and the channel is seen closed once drained, the
/// value given back to the buffer or to a waiting future. (It was taken off
/// the count, which wrapped, and the channel never looked closed again:
/// receivers waited for ever.)
#[test]
fn a_select_s_receive_given_back_leaves_the_close_seen() {
    common::within(Duration::from_secs(30), || {
        use coio::chan::{self, RecvTimeoutError, Select};
        let closed = |rx: &chan::Receiver<u32>| {
            assert_eq!(
                rx.recv_timeout(Duration::from_secs(5)),
                Err(RecvTimeoutError::Disconnected)
            );
        };
        for close_first in [false, true] {
            let (tx, rx) = chan::bounded::<u32>(4);
            tx.send(1).unwrap();
            tx.send(2).unwrap();
            if close_first {
                drop(tx);
                let mut sel = Select::new();
                sel.recv(&rx);
                drop(sel.select());
            } else {
                let mut sel = Select::new();
                sel.recv(&rx);
                drop(sel.select());
                drop(tx);
            }
            assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2]);
            closed(&rx);
        }
        // Given back to a waiting receive future.
        let (tx, rx) = chan::unbounded::<u32>();
        tx.send(1).unwrap();
        let mut sel = Select::new();
        sel.recv(&rx);
        let op = sel.select();
        let mut cx = Context::from_waker(Waker::noop());
        let mut fut = Box::pin(rx.recv_async());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(op);
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(1)));
        drop(fut);
        drop(tx);
        closed(&rx);
    });
}

/// A loop of async channel operations that never wait (on a closed
/// channel) yields to the worker's others and is cancelled, as the
/// blocking forms are: the budget's yield after a pending poll is a
/// cancellation point (it was not: `cancel` then `join` hung; found by a
/// review).
#[test]
fn an_async_channel_loop_that_never_waits_can_be_cancelled() {
    for workers in [1, 2] {
        for send in [false, true] {
            let cancelled = common::within(Duration::from_secs(20), move || {
                rt(workers).block_on(move || {
                    let (tx, rx) = coio::chan::bounded::<u32>(1);
                    let laps = Arc::new(AtomicUsize::new(0));
                    let laps2 = laps.clone();
                    let h = if send {
                        drop(rx);
                        coio::spawn(move || {
                            loop {
                                assert!(block_on(tx.send_async(1)).is_err());
                                laps2.fetch_add(1, SeqCst);
                            }
                        })
                    } else {
                        drop(tx);
                        coio::spawn(move || {
                            loop {
                                assert!(block_on(rx.recv_async()).is_err());
                                laps2.fetch_add(1, SeqCst);
                            }
                        })
                    };
                    // Past two budgets' worth: in its loop (and this
                    // coroutine ran meanwhile, on its worker or another).
                    while laps.load(SeqCst) < 300 {
                        coio::sleep(Duration::from_millis(1));
                    }
                    h.cancel();
                    h.join().unwrap_err().is::<coio::Cancelled>()
                })
            });
            assert!(cancelled, "{workers} workers, send {send}");
        }
    }
}
