//! Async interop with real crates: `coio::future::block_on` of futures'
//! and tokio's channels fed from coroutines, plain threads and a tokio
//! runtime; many concurrent `block_on`s; a panicking future; join handles
//! awaited from coio, tokio and futures' executor; channels shared by
//! async code and coroutines (`send_async`/`recv_async`), including
//! futures dropped mid-wait; `coio::future::sleep`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::thread;
use std::time::{Duration, Instant};

use coio::Runtime;
use coio::chan;
use coio::future::block_on;
use futures::StreamExt;
use futures::channel::{mpsc as fmpsc, oneshot};
use futures::task::noop_waker;

mod common;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// Runs `f` on a thread; fails if it does not finish within 30 s (a lost
/// wake).
fn within_30s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    common::within(Duration::from_secs(30), f)
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A futures oneshot completed by a coroutine of the same (only) worker:
/// the case that hangs with `futures::executor::block_on`.
#[test]
fn futures_oneshot_from_a_coroutine_of_the_same_worker() {
    let v = within_30s(|| {
        rt(1).block_on(|| {
            let (tx, rx) = oneshot::channel();
            coio::spawn(move || tx.send(5).unwrap());
            block_on(rx).unwrap()
        })
    });
    assert_eq!(v, 5);
}

/// A futures mpsc stream fed by a plain thread and by a tokio task.
#[test]
fn futures_mpsc_from_a_thread_and_a_tokio_task() {
    let tokio = tokio_rt();
    let handle = tokio.handle().clone();
    let sum = within_30s(move || {
        rt(2).block_on(move || {
            let (tx, mut rx) = fmpsc::unbounded::<u64>();
            let t = tx.clone();
            let th = thread::spawn(move || {
                for i in 0..1000 {
                    t.unbounded_send(i).unwrap();
                }
            });
            handle.spawn(async move {
                for i in 1000..2000 {
                    tx.unbounded_send(i).unwrap();
                    tokio::task::yield_now().await;
                }
            });
            let mut sum = 0;
            while let Some(v) = block_on(rx.next()) {
                sum += v;
            }
            th.join().unwrap();
            sum
        })
    });
    assert_eq!(sum, (0..2000).sum::<u64>());
}

/// A tokio oneshot sent from a tokio runtime's thread.
#[test]
fn tokio_oneshot_from_a_tokio_runtime() {
    let tokio = tokio_rt();
    let handle = tokio.handle().clone();
    let v = within_30s(move || {
        rt(1).block_on(move || {
            let (tx, rx) = tokio::sync::oneshot::channel();
            handle.spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.send(9).unwrap();
            });
            block_on(rx).unwrap()
        })
    });
    assert_eq!(v, 9);
}

/// 10,000 coroutines in `block_on` at once, each completed by another
/// coroutine, on 1 and 2 workers.
#[test]
fn ten_thousand_concurrent_block_ons() {
    for workers in [1, 2] {
        let done = within_30s(move || {
            rt(workers).block_on(|| {
                let done = Arc::new(AtomicUsize::new(0));
                let mut senders = Vec::new();
                let mut waiters = Vec::new();
                for i in 0..10_000u64 {
                    let (tx, rx) = oneshot::channel();
                    senders.push(tx);
                    let done = done.clone();
                    waiters.push(coio::spawn(move || {
                        assert_eq!(block_on(rx).unwrap(), i);
                        done.fetch_add(1, Relaxed);
                    }));
                }
                // Let them all reach their block_on, then complete them
                // from another coroutine.
                coio::sleep(Duration::from_millis(50));
                coio::spawn(move || {
                    for (i, tx) in senders.into_iter().enumerate() {
                        tx.send(i as u64).unwrap();
                    }
                })
                .join()
                .unwrap();
                for w in waiters {
                    w.join().unwrap();
                }
                done.load(Relaxed)
            })
        });
        assert_eq!(done, 10_000, "{workers} workers");
    }
}

/// A future whose poll panics: the panic goes on in the caller, the
/// coroutine's join reports it, and the worker goes on.
#[test]
fn a_panicking_future() {
    rt(1).block_on(|| {
        let h = coio::spawn(|| {
            block_on(async {
                coio::yield_now();
                panic!("boom in poll");
            })
        });
        let err = h.join().unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"boom in poll"));
        assert_eq!(block_on(async { 1 }), 1);
    });
}

/// A `JoinHandle` awaited by async code on coio, on a tokio runtime and on
/// futures' own executor (a plain thread).
#[test]
fn join_handles_are_futures_on_any_executor() {
    let tokio = tokio_rt();
    let rt = rt(2);
    // From coio.
    let v = rt.block_on(|| {
        let h = coio::spawn(|| {
            coio::sleep(Duration::from_millis(10));
            1
        });
        block_on(h).unwrap()
    });
    assert_eq!(v, 1);
    // From a tokio task.
    let h = rt.spawn(|| {
        coio::sleep(Duration::from_millis(10));
        2
    });
    let v = within_30s(move || tokio.block_on(async move { h.await.unwrap() }));
    assert_eq!(v, 2);
    // From futures' executor on a plain thread; finished before the await.
    let h = rt.spawn(|| 3);
    while !h.is_finished() {
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(futures::executor::block_on(h).unwrap(), 3);
    // A panic and a cancellation come through as `Err`.
    let h = rt.spawn(|| -> u32 { panic!("joined through await") });
    assert!(futures::executor::block_on(h).is_err());
    let h = rt.spawn(|| coio::sleep(Duration::from_secs(3600)));
    h.cancel();
    let err = futures::executor::block_on(h).unwrap_err();
    assert!(err.is::<coio::Cancelled>());
}

/// A `JoinHandle` polled once (its waiter registered), then dropped: the
/// coroutine runs on, and its result is dropped once, when it finishes.
#[test]
fn a_polled_then_dropped_join_handle_detaches() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Relaxed);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let rt = rt(1);
    let (go_tx, go_rx) = chan::bounded::<()>(0);
    let mut h = Box::pin(rt.spawn(move || {
        go_rx.recv().unwrap();
        Counted(d)
    }));
    let waker = noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(h.as_mut().poll(&mut cx).is_pending());
    drop(h);
    go_tx.send(()).unwrap();
    let t = Instant::now();
    while drops.load(Relaxed) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "result never dropped"
        );
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(20));
    assert_eq!(drops.load(Relaxed), 1);
    // And `join` after a poll still works.
    let mut h = Box::pin(rt.spawn(|| {
        coio::sleep(Duration::from_millis(20));
        4
    }));
    assert!(h.as_mut().poll(&mut cx).is_pending());
    let h = std::pin::Pin::into_inner(h);
    assert_eq!(h.join().unwrap(), 4);
}

use std::future::Future;

/// Channels shared by tokio tasks and coroutines, both ways, bounded and
/// rendezvous.
#[test]
fn channels_between_tokio_tasks_and_coroutines() {
    for cap in [0, 1, 16] {
        let tokio = tokio_rt();
        let rt = rt(2);
        let (to_co_tx, to_co_rx) = chan::bounded::<u64>(cap);
        let (to_async_tx, to_async_rx) = chan::bounded::<u64>(cap);
        // A tokio task sends to coroutines...
        let producer = tokio.spawn(async move {
            for i in 0..5000 {
                to_co_tx.send_async(i).await.unwrap();
            }
        });
        // ...which double each value and send it back to a tokio task.
        for _ in 0..2 {
            let (rx, tx) = (to_co_rx.clone(), to_async_tx.clone());
            rt.spawn(move || {
                for v in rx.iter() {
                    tx.send(v * 2).unwrap();
                }
            });
        }
        drop((to_co_rx, to_async_tx));
        let consumer = tokio.spawn(async move {
            let mut sum = 0;
            while let Ok(v) = to_async_rx.recv_async().await {
                sum += v;
            }
            sum
        });
        let sum = within_30s(move || {
            tokio.block_on(async {
                producer.await.unwrap();
                consumer.await.unwrap()
            })
        });
        assert_eq!(sum, 2 * (0..5000).sum::<u64>(), "capacity {cap}");
        drop(rt);
    }
}

/// A receive future dropped after a sender handed it a value (queued,
/// claimed, never polled again) gives the value back to the channel: the
/// next receiver gets it, in order.
#[test]
fn a_dropped_receive_future_loses_no_value() {
    let waker = noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    for cap in [0, 2] {
        let (tx, rx) = chan::bounded::<u32>(cap);
        let mut f = Box::pin(rx.recv_async());
        assert!(f.as_mut().poll(&mut cx).is_pending());
        // The send hands the value to the waiting future.
        let sender = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
            tx
        });
        // Let the first send reach the future, then drop it unpolled.
        thread::sleep(Duration::from_millis(50));
        drop(f);
        assert_eq!(rx.recv(), Ok(1), "capacity {cap}");
        assert_eq!(rx.recv(), Ok(2), "capacity {cap}");
        let tx = sender.join().unwrap();
        drop(tx);
        assert!(rx.recv().is_err());
    }
}

/// A send future dropped while it waits drops its value unsent; one whose
/// receivers all go away completes with the value back.
#[test]
fn send_futures_dropped_or_disconnected() {
    let waker = noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let (tx, rx) = chan::bounded::<String>(0);
    let mut f = Box::pin(tx.send_async("dropped".into()));
    assert!(f.as_mut().poll(&mut cx).is_pending());
    drop(f);
    assert_eq!(rx.try_recv(), Err(chan::TryRecvError::Empty));
    let mut f = Box::pin(tx.send_async("back".into()));
    assert!(f.as_mut().poll(&mut cx).is_pending());
    drop(rx);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(chan::SendError(v))) => assert_eq!(v, "back"),
        other => panic!("expected the value back, got {other:?}"),
    }
}

/// Receive futures in a `select`-like race, dropped and recreated in a
/// loop while a coroutine sends: every value arrives exactly once.
#[test]
fn racing_receive_futures_lose_nothing() {
    let n = race_count();
    assert_eq!(race_receives(false, n), (1..=n).sum::<u64>());
}

/// As above, with the sender on the other worker for certain: claims of
/// the dropped futures' blockers then come from another thread (the
/// sender usually starts on the receiver's worker, and only sometimes
/// elsewhere). Under valgrind this is the case whose every handoff waited
/// for the end of a scheduling quantum: it needs the runtime's thread
/// yields under valgrind (`Local::yield_current`) and `--fair-sched=yes`,
/// with which `.ci/run` runs it.
#[test]
fn racing_receive_futures_across_workers_lose_nothing() {
    let n = race_count();
    assert_eq!(race_receives(true, n), (1..=n).sum::<u64>());
}

/// Values sent in each race: 20,000, but 4,000 under valgrind (`.ci/run`),
/// where 20,000 took 20 s to 48 s as the machine drifted (it missed its 30
/// s in CI once, with a build that had passed in 20). The limit is 120 s:
/// a lost value hangs for ever.
fn race_count() -> u64 {
    if common::under_valgrind() {
        4_000
    } else {
        20_000
    }
}

/// The race of the two tests above, in `rt(2)`; the sum of the `n` values
/// received. With
/// `other_worker`, the receiver holds its worker until the sender has
/// started, which can then only be on the other worker.
fn race_receives(other_worker: bool, n: u64) -> u64 {
    common::within(Duration::from_secs(120), move || {
        rt(2).block_on(move || {
            let (tx, rx) = chan::bounded::<u64>(0);
            let started = Arc::new(AtomicBool::new(false));
            let sender_started = started.clone();
            coio::spawn(move || {
                sender_started.store(true, SeqCst);
                for i in 1..=n {
                    tx.send(i).unwrap();
                }
            });
            // No coroutine yield: this worker stays busy, so another one
            // steals the sender and starts it. (The thread yields: under
            // valgrind, which runs one thread at a time, that other worker
            // runs only when this thread lets it.)
            while other_worker && !started.load(SeqCst) {
                thread::yield_now();
            }
            let mut sum = 0;
            let mut timeouts = 0;
            loop {
                // Race the receive against a short sleep; the loser is
                // dropped (often a receive that was just handed a value).
                let r = block_on(async {
                    let recv = std::pin::pin!(rx.recv_async());
                    let sleep = std::pin::pin!(coio::future::sleep(Duration::from_micros(50)));
                    match futures::future::select(recv, sleep).await {
                        futures::future::Either::Left((r, _)) => Some(r),
                        futures::future::Either::Right(_) => None,
                    }
                });
                match r {
                    Some(Ok(v)) => sum += v,
                    Some(Err(_)) => break,
                    // A sleep that was over before its first poll (under
                    // valgrind, 50 µs is shorter than building the two
                    // futures) completes without parking: without this
                    // yield the loop would never let the sender, runnable
                    // on this worker, run (coroutines are not preempted).
                    None => {
                        timeouts += 1;
                        coio::yield_now();
                    }
                }
            }
            let _ = timeouts;
            sum
        })
    })
}

/// `coio::future::sleep`: in coroutines (on the worker's timers), reset,
/// dropped early, and on a plain thread (the helper-thread fallback).
#[test]
fn async_sleeps() {
    rt(1).block_on(|| {
        let t = Instant::now();
        block_on(coio::future::sleep(Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(30));
        // Many at once, in one block_on, complete in deadline order.
        let t = Instant::now();
        let order = block_on(async {
            let mut order = Vec::new();
            let mut futs = futures::stream::FuturesUnordered::new();
            for ms in [40u64, 10, 30, 20] {
                futs.push(async move {
                    coio::future::sleep(Duration::from_millis(ms)).await;
                    ms
                });
            }
            while let Some(ms) = futs.next().await {
                order.push(ms);
            }
            order
        });
        assert_eq!(order, [10, 20, 30, 40]);
        assert!(t.elapsed() < Duration::from_millis(1000));
        // Reset to later, then to sooner.
        let mut s = coio::future::sleep(Duration::from_secs(3600));
        let waker = noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut s).poll(&mut cx).is_pending());
        let t = Instant::now();
        s.reset(t + Duration::from_millis(20));
        block_on(&mut s);
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert!(s.is_elapsed());
        // Many dropped early leave nothing behind that fires late.
        for _ in 0..1000 {
            let mut s = coio::future::sleep(Duration::from_millis(5));
            assert!(std::pin::Pin::new(&mut s).poll(&mut cx).is_pending());
        }
        coio::sleep(Duration::from_millis(20));
    });
    // A plain thread's executor.
    let t = Instant::now();
    futures::executor::block_on(coio::future::sleep(Duration::from_millis(20)));
    assert!(t.elapsed() >= Duration::from_millis(20));
}
