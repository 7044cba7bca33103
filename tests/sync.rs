//! `coio::sync`: each primitive's API, coroutines and plain threads mixed,
//! cancellation of each kind of wait, timeouts, fairness, no poisoning.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};

use coio::sync::{Barrier, Condvar, Mutex, OnceLock, RwLock, Semaphore, WaitGroup};
use coio::{Cancelled, Runtime};

mod common;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// The slack allowed past a timeout's deadline (the machine is noisy).
const SLACK: Duration = Duration::from_millis(200);

/// Asserts that a wait of `asked` that started at `start` returned within
/// the tolerance: not early, and not much late.
fn assert_timed(start: Instant, asked: Duration) {
    let took = start.elapsed();
    assert!(took >= asked, "returned early: {took:?} < {asked:?}");
    assert!(
        took < asked + SLACK,
        "returned late: {took:?} for {asked:?}"
    );
}

/// Waits (sleeping, in a coroutine) until `cond` holds.
fn wait_for(cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "condition never held"
        );
        coio::sleep(Duration::from_millis(1));
    }
}

/// Joins a plain thread from a coroutine without blocking the worker
/// (which may run the coroutine the thread waits for).
fn join_thread<T>(t: std::thread::JoinHandle<T>) -> T {
    wait_for(|| t.is_finished());
    t.join().unwrap()
}

/// Asserts that `h` ends with the `Cancelled` payload.
fn assert_cancelled<T: std::fmt::Debug>(h: coio::JoinHandle<T>) {
    let p = h.join().unwrap_err();
    assert!(p.is::<Cancelled>(), "not cancelled");
}

// ---------------------------------------------------------------- Mutex

#[test]
fn mutex_api() {
    static M: Mutex<u32> = Mutex::new(1);
    *M.lock() += 1;
    assert_eq!(*M.lock(), 2);
    let g = M.lock();
    assert!(M.is_locked());
    assert!(M.try_lock().is_none());
    assert!(M.lock_timeout(Duration::from_millis(5)).is_none());
    drop(g);
    assert!(!M.is_locked());
    assert!(M.try_lock().is_some());
    assert!(M.lock_timeout(Duration::from_millis(5)).is_some());

    let mut m = Mutex::from(vec![1, 2]);
    m.get_mut().push(3);
    assert_eq!(format!("{:?}", m), "Mutex { data: [1, 2, 3], .. }");
    {
        let _g = m.lock();
        assert_eq!(format!("{:?}", m), "Mutex { data: <locked>, .. }");
    }
    assert_eq!(m.into_inner(), [1, 2, 3]);
    assert_eq!(*Mutex::<u8>::default().lock(), 0);

    // Unsized values.
    let s: &Mutex<[u8]> = &Mutex::new([1, 2, 3]);
    assert_eq!(s.lock().len(), 3);

    // Guards: Send iff T: Send, Sync iff T: Sync.
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<coio::sync::MutexGuard<'static, u8>>();
    sync::<coio::sync::MutexGuard<'static, u8>>();
    sync::<Mutex<std::cell::Cell<u8>>>();
}

#[test]
fn mutex_counts_exactly_with_coroutines_and_threads() {
    let rt = rt(2);
    let m = Arc::new(Mutex::new(0u64));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    rt.block_on(|| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let m = m.clone();
                coio::spawn(move || {
                    for j in 0..20_000 {
                        let mut g = m.lock();
                        *g += 1;
                        // Sometimes hold the lock across a suspension.
                        if j % 1000 == i {
                            coio::yield_now();
                        }
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(*m.lock(), 10 * 20_000);
}

/// On one worker (no spinning: the holder cannot run meanwhile), holders
/// that suspend inside the critical section hand the lock on in turn.
#[test]
fn mutex_one_worker_holders_that_suspend() {
    let rt = rt(1);
    let m = Arc::new(Mutex::new(0u64));
    rt.block_on(|| {
        let hs: Vec<_> = (0..10)
            .map(|_| {
                let m = m.clone();
                coio::spawn(move || {
                    for _ in 0..1_000 {
                        let mut g = m.lock();
                        coio::yield_now();
                        *g += 1;
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    assert_eq!(*m.lock(), 10_000);
}

/// The lock is exclusive: a flag set inside the critical section is never
/// seen set by another holder.
#[test]
fn mutex_excludes() {
    let rt = rt(2);
    let m = Arc::new(Mutex::new(()));
    let inside = Arc::new(AtomicBool::new(false));
    rt.block_on(|| {
        let hs: Vec<_> = (0..6)
            .map(|_| {
                let (m, inside) = (m.clone(), inside.clone());
                coio::spawn(move || {
                    for i in 0..5_000 {
                        let _g = m.lock();
                        assert!(!inside.swap(true, SeqCst));
                        if i % 100 == 0 {
                            coio::yield_now();
                        }
                        inside.store(false, SeqCst);
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
}

#[test]
fn mutex_no_poisoning_after_panicking_holder() {
    let rt = rt(2);
    let m = Arc::new(Mutex::new(1));
    rt.block_on(|| {
        let m2 = m.clone();
        let h = coio::spawn(move || {
            let mut g = m2.lock();
            *g = 2;
            panic!("holder fails");
        });
        assert!(h.join().is_err());
        assert!(!m.is_locked());
        assert_eq!(*m.lock(), 2);
    });
    // On a plain thread too.
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _g = m.lock();
        panic!("thread holder fails");
    }));
    assert!(r.is_err());
    assert_eq!(*m.try_lock().unwrap(), 2);
}

#[test]
fn mutex_cancel_waiting_coroutine() {
    let rt = rt(2);
    rt.block_on(|| {
        let m = Arc::new(Mutex::new(0));
        let g = m.lock();
        let started = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (m, s) = (m.clone(), started.clone());
                coio::spawn(move || {
                    s.fetch_add(1, SeqCst);
                    *m.lock() += 1;
                })
            })
            .collect();
        wait_for(|| started.load(SeqCst) == 3);
        coio::sleep(Duration::from_millis(20));
        // Cancel the middle one; the others still get the lock.
        hs[1].cancel();
        let mut hs = hs.into_iter();
        let (a, b, c) = (hs.next().unwrap(), hs.next().unwrap(), hs.next().unwrap());
        assert_cancelled(b);
        drop(g);
        a.join().unwrap();
        c.join().unwrap();
        assert_eq!(*m.lock(), 2);
        assert!(!m.is_locked());
    });
}

#[test]
fn mutex_lock_timeout_in_coroutine_and_thread() {
    let rt = rt(2);
    let m = Arc::new(Mutex::new(()));
    let g = m.lock();
    let asked = Duration::from_millis(50);
    let m2 = m.clone();
    rt.block_on(move || {
        let start = Instant::now();
        assert!(m2.lock_timeout(asked).is_none());
        assert_timed(start, asked);
    });
    let start = Instant::now();
    let m3 = m.clone();
    std::thread::spawn(move || assert!(m3.lock_timeout(asked).is_none()))
        .join()
        .unwrap();
    assert_timed(start, asked);
    drop(g);
    // The timed-out waiters left nothing behind.
    assert!(m.try_lock().is_some());
    // And a timed wait that succeeds.
    let g = m.lock();
    let m4 = m.clone();
    let t = std::thread::spawn(move || m4.lock_timeout(Duration::from_secs(10)).is_some());
    std::thread::sleep(Duration::from_millis(20));
    drop(g);
    assert!(t.join().unwrap());
}

/// A waiter (a coroutine, and a plain thread) is not starved by two
/// threads that relock in a loop: handoff mode gives it the lock. Driven
/// from the test's thread, so that a starved waiter fails the test instead
/// of hanging it.
#[test]
fn mutex_waiter_not_starved() {
    let rt = rt(2);
    let m = Arc::new(Mutex::new(()));
    let rounds = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // The hogs are plain threads: a coroutine that never suspends starves
    // the coroutines homed on its worker (there is no preemption), and
    // where the hogs start is not this test's subject.
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let (m, rounds, stop) = (m.clone(), rounds.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    let _g = m.lock();
                    rounds.fetch_add(1, Relaxed);
                    // Hold it a little, so that it is mostly locked.
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(20) {}
                }
            })
        })
        .collect();
    while rounds.load(Relaxed) < 100 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // A plain thread and a coroutine each want it once.
    let m2 = m.clone();
    let thread = std::thread::spawn(move || {
        let start = Instant::now();
        drop(m2.lock());
        start.elapsed()
    });
    let m3 = m.clone();
    let co = rt.spawn(move || {
        let start = Instant::now();
        drop(m3.lock());
        start.elapsed()
    });
    let start = Instant::now();
    while !(co.is_finished() && thread.is_finished()) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let starved = !(co.is_finished() && thread.is_finished());
    stop.store(true, Relaxed);
    assert!(!starved, "a waiter starved for 5 s");
    let co_took = co.join().unwrap();
    let th_took = thread.join().unwrap();
    hogs.into_iter().for_each(|h| h.join().unwrap());
    assert!(
        co_took < Duration::from_secs(2),
        "coroutine waited {co_took:?}"
    );
    assert!(
        th_took < Duration::from_secs(2),
        "thread waited {th_took:?}"
    );
}

// ---------------------------------------------------------------- RwLock

#[test]
fn rwlock_api() {
    let l = RwLock::new(1);
    {
        let a = l.read();
        let b = l.try_read().unwrap();
        let c = l.read_timeout(Duration::from_millis(1)).unwrap();
        assert_eq!(*a + *b + *c, 3);
        assert!(l.try_write().is_none());
        let start = Instant::now();
        assert!(l.write_timeout(Duration::from_millis(30)).is_none());
        assert_timed(start, Duration::from_millis(30));
    }
    {
        let mut w = l.write();
        *w = 5;
        assert!(l.try_read().is_none());
        assert!(l.try_write().is_none());
        let start = Instant::now();
        assert!(l.read_timeout(Duration::from_millis(30)).is_none());
        assert_timed(start, Duration::from_millis(30));
    }
    assert_eq!(*l.write_timeout(Duration::from_millis(1)).unwrap(), 5);
    assert_eq!(format!("{l:?}"), "RwLock { data: 5, .. }");
    let mut l = l;
    *l.get_mut() += 1;
    assert_eq!(l.into_inner(), 6);
    let u: &RwLock<[u8]> = &RwLock::new([0; 4]);
    assert_eq!(u.read().len(), 4);
}

#[test]
fn rwlock_readers_share_writers_exclude() {
    let rt = rt(2);
    let l = Arc::new(RwLock::new(0u64));
    let readers_in = Arc::new(AtomicUsize::new(0));
    let max_readers = Arc::new(AtomicUsize::new(0));
    let writer_in = Arc::new(AtomicBool::new(false));
    let thread = {
        let l = l.clone();
        std::thread::spawn(move || {
            for _ in 0..2_000 {
                *l.write() += 1;
            }
        })
    };
    rt.block_on(|| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let (l, r, mx, w) = (
                    l.clone(),
                    readers_in.clone(),
                    max_readers.clone(),
                    writer_in.clone(),
                );
                coio::spawn(move || {
                    for j in 0..2_000 {
                        if (i + j) % 4 == 0 {
                            let mut g = l.write();
                            assert!(!w.swap(true, SeqCst));
                            assert_eq!(r.load(SeqCst), 0);
                            *g += 1;
                            w.store(false, SeqCst);
                        } else {
                            let _g = l.read();
                            let n = r.fetch_add(1, SeqCst) + 1;
                            mx.fetch_max(n, SeqCst);
                            assert!(!w.load(SeqCst));
                            if j % 50 == 0 {
                                coio::yield_now();
                            }
                            r.fetch_sub(1, SeqCst);
                        }
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    thread.join().unwrap();
    assert_eq!(*l.read(), 2_000 + 8 * 2_000 / 4);
}

/// A writer gets the lock while a stream of readers keeps it read-locked
/// (readers that come after it queue behind it).
#[test]
fn rwlock_writer_not_starved_by_readers() {
    let rt = rt(2);
    rt.block_on(|| {
        let l = Arc::new(RwLock::new(0u64));
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (l, stop, reads) = (l.clone(), stop.clone(), reads.clone());
                coio::spawn(move || {
                    while !stop.load(Relaxed) {
                        let _g = l.read();
                        reads.fetch_add(1, Relaxed);
                        // Overlapping read holds: the lock is never free.
                        coio::sleep(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        wait_for(|| reads.load(Relaxed) > 20);
        // (Timeouts, so that a starved writer fails the test instead of
        // hanging it.)
        let start = Instant::now();
        *l.write_timeout(Duration::from_secs(10))
            .expect("writer starved") += 1;
        let took = start.elapsed();
        let l2 = l.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            *l2.write_timeout(Duration::from_secs(10))
                .expect("thread writer starved") += 1;
            start.elapsed()
        });
        let th_took = join_thread(t);
        stop.store(true, Relaxed);
        readers.into_iter().for_each(|h| h.join().unwrap());
        assert!(took < Duration::from_secs(2), "writer waited {took:?}");
        assert!(
            th_took < Duration::from_secs(2),
            "thread writer waited {th_took:?}"
        );
        assert_eq!(*l.read(), 2);
    });
}

#[test]
fn rwlock_cancel_and_timeout_let_readers_behind_in() {
    let rt = rt(2);
    rt.block_on(|| {
        let l = Arc::new(RwLock::new(0));
        let r = l.read();
        // A writer queues behind the reader, a reader behind the writer.
        let l2 = l.clone();
        let writer = coio::spawn(move || *l2.write() += 1);
        wait_for(|| l.try_read().is_none());
        let l3 = l.clone();
        let reader = coio::spawn(move || *l3.read());
        coio::sleep(Duration::from_millis(20));
        assert!(!reader.is_finished());
        // The writer gives up: the reader behind it joins the first one.
        writer.cancel();
        assert_cancelled(writer);
        assert_eq!(reader.join().unwrap(), 0);
        // A timed-out writer likewise.
        let l4 = l.clone();
        let w = std::thread::spawn(move || l4.write_timeout(Duration::from_millis(30)).is_none());
        assert!(join_thread(w));
        drop(r);
        *l.write() += 1;
        assert_eq!(*l.read(), 1);
    });
}

// ---------------------------------------------------------------- Condvar

#[test]
fn condvar_api_and_mixed_waiters() {
    let rt = rt(2);
    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    // A plain thread waits for 1.
    let p = pair.clone();
    let t = std::thread::spawn(move || {
        let (m, cv) = &*p;
        *cv.wait_while(m.lock(), |v| *v < 1)
    });
    rt.block_on(|| {
        let (m, cv) = &*pair;
        // Coroutines wait for 2.
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let p = pair.clone();
                coio::spawn(move || {
                    let (m, cv) = &*p;
                    let mut g = m.lock();
                    while *g < 2 {
                        g = cv.wait(g);
                    }
                    *g
                })
            })
            .collect();
        coio::sleep(Duration::from_millis(20));
        *m.lock() = 1;
        cv.notify_all();
        assert_eq!(join_thread(t), 1);
        *m.lock() = 2;
        cv.notify_all();
        for h in hs {
            assert_eq!(h.join().unwrap(), 2);
        }
        // Nobody waits: notifying is a no-op.
        cv.notify_one();
        cv.notify_all();
    });
    assert_eq!(format!("{:?}", Condvar::default()), "Condvar { .. }");
}

#[test]
fn condvar_notify_one_wakes_one() {
    let rt = rt(2);
    rt.block_on(|| {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let woke = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (p, w) = (pair.clone(), woke.clone());
                coio::spawn(move || {
                    let (m, cv) = &*p;
                    let mut g = m.lock();
                    *g += 1;
                    let _g = cv.wait(g);
                    w.fetch_add(1, SeqCst);
                })
            })
            .collect();
        let (m, cv) = &*pair;
        wait_for(|| *m.lock() == 3);
        cv.notify_one();
        wait_for(|| woke.load(SeqCst) == 1);
        coio::sleep(Duration::from_millis(20));
        assert_eq!(woke.load(SeqCst), 1);
        cv.notify_one();
        cv.notify_one();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(woke.load(SeqCst), 3);
    });
}

#[test]
fn condvar_timeouts() {
    let rt = rt(2);
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let asked = Duration::from_millis(50);
    let p = pair.clone();
    rt.block_on(move || {
        let (m, cv) = &*p;
        let start = Instant::now();
        let (g, r) = cv.wait_timeout(m.lock(), asked);
        assert!(r.timed_out());
        assert_timed(start, asked);
        drop(g);
        let start = Instant::now();
        let (g, r) = cv.wait_timeout_while(m.lock(), asked, |ready| !*ready);
        assert!(r.timed_out() && !*g);
        assert_timed(start, asked);
    });
    // On a thread, and one that is notified in time.
    let (m, cv) = &*pair;
    let start = Instant::now();
    let (g, r) = cv.wait_timeout(m.lock(), asked);
    assert!(r.timed_out());
    assert_timed(start, asked);
    drop(g);
    let p = pair.clone();
    let t = std::thread::spawn(move || {
        let (m, cv) = &*p;
        let (g, r) = cv.wait_timeout_while(m.lock(), Duration::from_secs(10), |r| !*r);
        (*g, r.timed_out())
    });
    std::thread::sleep(Duration::from_millis(20));
    *m.lock() = true;
    cv.notify_all();
    assert_eq!(t.join().unwrap(), (true, false));
}

#[test]
fn condvar_cancel_releases_mutex() {
    let rt = rt(2);
    rt.block_on(|| {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let started = Arc::new(AtomicUsize::new(0));
        let mk = |pair: Arc<(Mutex<u32>, Condvar)>, started: Arc<AtomicUsize>| {
            coio::spawn(move || {
                let (m, cv) = &*pair;
                let mut g = m.lock();
                started.fetch_add(1, SeqCst);
                while *g == 0 {
                    g = cv.wait(g);
                }
                *g
            })
        };
        let a = mk(pair.clone(), started.clone());
        let b = mk(pair.clone(), started.clone());
        wait_for(|| started.load(SeqCst) == 2);
        let (m, cv) = &*pair;
        // Both are waiting once the mutex is free again.
        drop(m.lock());
        a.cancel();
        assert_cancelled(a);
        // The cancelled waiter left the mutex unlocked and its entry gone:
        // one notify reaches the other.
        assert!(!m.is_locked());
        *m.lock() = 7;
        cv.notify_one();
        assert_eq!(b.join().unwrap(), 7);
    });
}

// ---------------------------------------------------------------- Semaphore

#[test]
fn semaphore_api() {
    let s = Semaphore::new(2);
    assert_eq!(s.available_permits(), 2);
    let a = s.acquire();
    let b = s.try_acquire().unwrap();
    assert!(s.try_acquire().is_none());
    let start = Instant::now();
    assert!(s.acquire_timeout(Duration::from_millis(30)).is_none());
    assert_timed(start, Duration::from_millis(30));
    drop(a);
    assert_eq!(s.available_permits(), 1);
    b.forget();
    assert_eq!(s.available_permits(), 1);
    s.add_permits(3);
    assert_eq!(s.available_permits(), 4);
    let ps: Vec<_> = (0..4).map(|_| s.acquire()).collect();
    assert_eq!(s.available_permits(), 0);
    drop(ps);
    assert_eq!(s.available_permits(), 4);
    assert!(format!("{s:?}").contains("permits: 4"));
}

/// Never more holders than permits, and permits go to waiters in order.
#[test]
fn semaphore_limits_and_is_fifo() {
    let rt = rt(2);
    rt.block_on(|| {
        let s = Arc::new(Semaphore::new(3));
        let inside = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..12)
            .map(|_| {
                let (s, inside) = (s.clone(), inside.clone());
                coio::spawn(move || {
                    for _ in 0..500 {
                        let _p = s.acquire();
                        assert!(inside.fetch_add(1, SeqCst) < 3);
                        coio::yield_now();
                        inside.fetch_sub(1, SeqCst);
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(s.available_permits(), 3);

        // FIFO: waiters queued one after another get permits in order
        // (each keeps its permit; they are released one at a time).
        let p = s.acquire();
        let p2 = s.acquire();
        let p3 = s.acquire();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for i in 0..5 {
            let (s, order) = (s.clone(), order.clone());
            hs.push(coio::spawn(move || {
                s.acquire().forget();
                order.lock().push(i);
            }));
            // Let it queue before the next one comes.
            coio::sleep(Duration::from_millis(5));
        }
        drop(p);
        // A newcomer cannot overtake the queue.
        assert!(s.try_acquire().is_none());
        wait_for(|| order.lock().len() == 1);
        drop(p2);
        wait_for(|| order.lock().len() == 2);
        drop(p3);
        wait_for(|| order.lock().len() == 3);
        s.add_permits(1);
        wait_for(|| order.lock().len() == 4);
        s.add_permits(1);
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(*order.lock(), [0, 1, 2, 3, 4]);
    });
}

#[test]
fn semaphore_cancel_and_add_permits() {
    let rt = rt(2);
    rt.block_on(|| {
        let s = Arc::new(Semaphore::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (s, st) = (s.clone(), started.clone());
                coio::spawn(move || {
                    st.fetch_add(1, SeqCst);
                    s.acquire().forget();
                })
            })
            .collect();
        wait_for(|| started.load(SeqCst) == 3);
        coio::sleep(Duration::from_millis(10));
        let mut hs = hs.into_iter();
        let first = hs.next().unwrap();
        first.cancel();
        assert_cancelled(first);
        // Two permits for the two left; none is lost to the cancelled one.
        s.add_permits(2);
        hs.for_each(|h| h.join().unwrap());
        assert_eq!(s.available_permits(), 0);
        s.add_permits(1);
        assert!(s.try_acquire().is_some());
    });
}

// ---------------------------------------------------------------- Barrier

#[test]
fn barrier_one_leader_per_generation() {
    let rt = rt(2);
    const N: usize = 5;
    const ROUNDS: usize = 300;
    let b = Arc::new(Barrier::new(N));
    let leaders = Arc::new(AtomicUsize::new(0));
    // Per generation: how many got past, checked by the leader of the
    // next one.
    let passed = Arc::new(AtomicUsize::new(0));
    // One party is a plain thread.
    let thread = {
        let (b, l, p) = (b.clone(), leaders.clone(), passed.clone());
        std::thread::spawn(move || {
            for _ in 0..ROUNDS {
                if b.wait().is_leader() {
                    l.fetch_add(1, SeqCst);
                }
                p.fetch_add(1, SeqCst);
            }
        })
    };
    rt.block_on(|| {
        let hs: Vec<_> = (0..N - 1)
            .map(|_| {
                let (b, l, p) = (b.clone(), leaders.clone(), passed.clone());
                coio::spawn(move || {
                    for round in 0..ROUNDS {
                        // Nobody is more than one generation ahead.
                        assert!(p.load(SeqCst) <= (round + 1) * N);
                        if b.wait().is_leader() {
                            l.fetch_add(1, SeqCst);
                        }
                        p.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    thread.join().unwrap();
    assert_eq!(leaders.load(SeqCst), ROUNDS);
    assert_eq!(passed.load(SeqCst), ROUNDS * N);
    assert!(Barrier::new(0).wait().is_leader());
    assert!(Barrier::new(1).wait().is_leader());
}

#[test]
fn barrier_cancelled_waiter_withdraws() {
    let rt = rt(2);
    rt.block_on(|| {
        let b = Arc::new(Barrier::new(2));
        let b2 = b.clone();
        let h = coio::spawn(move || b2.wait());
        coio::sleep(Duration::from_millis(20));
        h.cancel();
        assert_cancelled(h);
        // Its arrival is withdrawn: two new parties make the generation.
        let b3 = b.clone();
        let h = coio::spawn(move || b3.wait().is_leader());
        let me = b.wait().is_leader();
        assert!(me ^ h.join().unwrap());
    });
}

// ---------------------------------------------------------------- WaitGroup

#[test]
fn wait_group_thousand_coroutines() {
    let rt = rt(2);
    rt.block_on(|| {
        let wg = Arc::new(WaitGroup::new());
        let n = Arc::new(AtomicUsize::new(0));
        // Waiters (coroutines and a thread) before any work is added wait
        // for nothing.
        wg.wait();
        wg.add(1_000);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let (wg, n) = (wg.clone(), n.clone());
                coio::spawn(move || {
                    wg.wait();
                    n.load(SeqCst)
                })
            })
            .collect();
        let (wg2, n2) = (wg.clone(), n.clone());
        let thread = std::thread::spawn(move || {
            wg2.wait();
            n2.load(SeqCst)
        });
        for _ in 0..1_000 {
            let (wg, n) = (wg.clone(), n.clone());
            coio::spawn(move || {
                coio::sleep(Duration::from_millis(1));
                n.fetch_add(1, SeqCst);
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(n.load(SeqCst), 1_000);
        for w in waiters {
            assert_eq!(w.join().unwrap(), 1_000);
        }
        assert_eq!(join_thread(thread), 1_000);
        // Reusable.
        wg.add(2);
        wg.done();
        assert!(!wg.wait_timeout(Duration::from_millis(10)));
        wg.done();
        assert!(wg.wait_timeout(Duration::from_millis(10)));
    });
}

#[test]
fn wait_group_timeout_cancel_and_misuse() {
    let rt = rt(2);
    rt.block_on(|| {
        let wg = Arc::new(WaitGroup::new());
        wg.add(1);
        let asked = Duration::from_millis(40);
        let start = Instant::now();
        assert!(!wg.wait_timeout(asked));
        assert_timed(start, asked);
        let wg2 = wg.clone();
        let h = coio::spawn(move || wg2.wait());
        coio::sleep(Duration::from_millis(10));
        h.cancel();
        assert_cancelled(h);
        wg.done();
        wg.wait();
        let r = catch_unwind(AssertUnwindSafe(|| wg.done()));
        let msg = r.unwrap_err();
        let msg = (msg.downcast_ref::<&str>().copied())
            .or(msg.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("");
        assert!(msg.contains("more times than add"), "{msg}");
        // The failed done changed nothing.
        wg.add(1);
        wg.done();
        wg.wait();
    });
}

// ---------------------------------------------------------------- OnceLock

#[test]
fn once_lock_api() {
    static C: OnceLock<String> = OnceLock::new();
    assert!(C.get().is_none());
    assert_eq!(C.get_or_init(|| "a".into()), "a");
    assert_eq!(C.set("b".into()), Err("b".into()));
    assert_eq!(C.get().map(String::as_str), Some("a"));

    let mut c = OnceLock::new();
    assert_eq!(c.set(1), Ok(()));
    *c.get_mut().unwrap() += 1;
    assert_eq!(c.take(), Some(2));
    assert!(c.get().is_none());
    assert_eq!(c.get_or_init(|| 3), &3);
    assert_eq!(format!("{c:?}"), "OnceLock(3)");
    assert_eq!(c.clone(), OnceLock::from(3));
    assert_eq!(c.into_inner(), Some(3));
    assert_eq!(OnceLock::<u8>::default().into_inner(), None);

    // The value is dropped with the cell.
    let drops = Arc::new(AtomicUsize::new(0));
    struct D(Arc<AtomicUsize>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let c = OnceLock::new();
    let _ = c.set(D(drops.clone()));
    drop(c);
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn once_lock_initializes_once_for_100_callers() {
    let rt = rt(2);
    rt.block_on(|| {
        let c = Arc::new(OnceLock::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..100)
            .map(|i| {
                let (c, runs) = (c.clone(), runs.clone());
                coio::spawn(move || {
                    *c.get_or_init(|| {
                        runs.fetch_add(1, SeqCst);
                        // Long enough that the others find it running.
                        coio::sleep(Duration::from_millis(20));
                        i * 1000
                    })
                })
            })
            .collect();
        let (c2, r2) = (c.clone(), runs.clone());
        let thread = std::thread::spawn(move || {
            *c2.get_or_init(|| {
                r2.fetch_add(1, SeqCst);
                usize::MAX
            })
        });
        let vals: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        let tv = join_thread(thread);
        assert_eq!(runs.load(SeqCst), 1);
        assert!(vals.iter().all(|&v| v == vals[0]));
        assert_eq!(tv, vals[0]);
    });
}

#[test]
fn once_lock_retried_after_panicking_initializer() {
    let rt = rt(2);
    rt.block_on(|| {
        let c = Arc::new(OnceLock::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicBool::new(false));
        // The first initializer panics after the others queued.
        let (c1, r1, s1) = (c.clone(), runs.clone(), started.clone());
        let first = coio::spawn(move || {
            *c1.get_or_init(|| {
                r1.fetch_add(1, SeqCst);
                s1.store(true, SeqCst);
                coio::sleep(Duration::from_millis(30));
                panic!("initializer fails");
            })
        });
        wait_for(|| started.load(SeqCst));
        let hs: Vec<_> = (0..10)
            .map(|i| {
                let (c, runs) = (c.clone(), runs.clone());
                coio::spawn(move || {
                    *c.get_or_init(|| {
                        runs.fetch_add(1, SeqCst);
                        i
                    })
                })
            })
            .collect();
        assert!(first.join().is_err());
        let vals: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        // One waiter took over; everybody got its value.
        assert_eq!(runs.load(SeqCst), 2);
        assert!(vals.iter().all(|&v| v == vals[0]));
        // A panic with nobody waiting leaves it empty for the next caller.
        let d = OnceLock::new();
        assert!(catch_unwind(AssertUnwindSafe(|| d.get_or_init(|| panic!("no")))).is_err());
        assert_eq!(d.get_or_init(|| 4), &4);
    });
}

#[test]
fn once_lock_cancelled_waiter_and_cancelled_initializer() {
    let rt = rt(2);
    rt.block_on(|| {
        let c = Arc::new(OnceLock::new());
        let started = Arc::new(AtomicBool::new(false));
        let (c1, s1) = (c.clone(), started.clone());
        let init = coio::spawn(move || {
            *c1.get_or_init(|| {
                s1.store(true, SeqCst);
                coio::sleep(Duration::from_secs(3600));
                1
            })
        });
        wait_for(|| started.load(SeqCst));
        let c2 = c.clone();
        let waiter = coio::spawn(move || *c2.get_or_init(|| 2));
        let c3 = c.clone();
        let other = coio::spawn(move || *c3.get_or_init(|| 3));
        coio::sleep(Duration::from_millis(20));
        waiter.cancel();
        assert_cancelled(waiter);
        // The initializer is cancelled: the remaining waiter takes over.
        init.cancel();
        assert_cancelled(init);
        assert_eq!(other.join().unwrap(), 3);
        assert_eq!(c.get(), Some(&3));
    });
}

/// Polling loops with zero timeouts, ported from threads (where the OS
/// preempts the poller): each must let the coroutine it waits for, homed
/// on the same single worker, run. A timed wait that ends without waiting
/// spends the cooperative budget as an operation that completes does; a
/// zero `sleep` yields. (Each loop used to hold the worker for ever.)
#[test]
fn zero_timeout_polling_loops_let_the_others_run() {
    use coio::chan::{self, Select};
    let z = Duration::ZERO;
    common::within(Duration::from_secs(30), move || {
        rt(1).block_on(move || {
            // A lock held by a coroutine that gives it back when it runs
            // again (after the poller started), and the poller's loop.
            fn poll_until(hold: impl FnOnce() + Send + 'static, mut poll: impl FnMut() -> bool) {
                let holder = coio::spawn(hold);
                coio::yield_now();
                while !poll() {}
                holder.join().unwrap();
            }
            let m = Arc::new(Mutex::new(0));
            let m2 = m.clone();
            poll_until(
                move || {
                    let _g = m2.lock();
                    coio::yield_now();
                },
                || m.lock_timeout(z).is_some(),
            );
            let l = Arc::new(RwLock::new(0));
            let l2 = l.clone();
            poll_until(
                move || {
                    let _g = l2.read();
                    coio::yield_now();
                },
                || l.write_timeout(z).is_some(),
            );
            let s = Arc::new(Semaphore::new(1));
            let s2 = s.clone();
            poll_until(
                move || {
                    let _p = s2.acquire();
                    coio::yield_now();
                },
                || s.acquire_timeout(z).is_some(),
            );

            // A condition set by a coroutine that has not run yet.
            let pair = Arc::new((Mutex::new(false), Condvar::new()));
            let setter = {
                let pair = pair.clone();
                coio::spawn(move || {
                    *pair.0.lock() = true;
                    pair.1.notify_all();
                })
            };
            let mut g = pair.0.lock();
            while !*g {
                g = pair.1.wait_timeout(g, z).0;
            }
            drop(g);
            setter.join().unwrap();
            let setter = {
                let pair = pair.clone();
                coio::spawn(move || {
                    *pair.0.lock() = false;
                    pair.1.notify_all();
                })
            };
            // (The lock taken anew each time: the setter needs it.)
            while pair
                .1
                .wait_timeout_while(pair.0.lock(), z, |set| *set)
                .1
                .timed_out()
            {}
            setter.join().unwrap();

            let flag = Arc::new(AtomicBool::new(false));
            let setter = {
                let flag = flag.clone();
                coio::spawn(move || flag.store(true, SeqCst))
            };
            while !flag.load(SeqCst) {
                coio::sleep(z);
            }
            setter.join().unwrap();

            let (tx, rx) = chan::bounded(1);
            let sender = coio::spawn(move || tx.send(1).unwrap());
            let got = loop {
                match rx.recv_timeout(z) {
                    Ok(v) => break v,
                    Err(chan::RecvTimeoutError::Timeout) => {}
                    Err(e) => panic!("{e:?}"),
                }
            };
            assert_eq!(got, 1);
            sender.join().unwrap();

            let (tx, rx) = chan::bounded(1);
            tx.send(0).unwrap();
            let receiver = coio::spawn(move || rx.recv().unwrap() + rx.recv().unwrap());
            while tx.send_timeout(1, z).is_err() {}
            assert_eq!(receiver.join().unwrap(), 1);

            let (tx, rx) = chan::bounded::<u8>(1);
            let sender = coio::spawn(move || tx.send(2).unwrap());
            loop {
                let mut sel = Select::new();
                sel.recv(&rx);
                if let Ok(op) = sel.select_timeout(z) {
                    assert_eq!(op.recv(&rx), Ok(2));
                    break;
                }
            }
            sender.join().unwrap();
        });
    });
}

/// Loops of operations that complete at once without waiting, on one
/// worker, until another coroutine of the worker has run: on a closed
/// channel (blocking and async forms, whose results are errors), and of
/// async sleeps that are due at once. Each spends the cooperative budget,
/// so the other coroutine gets its turn (each loop ran for ever).
#[test]
fn operations_that_fail_or_finish_at_once_let_the_others_run() {
    use coio::chan;
    use coio::future::block_on;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    common::within(Duration::from_secs(30), || {
        rt(1).block_on(|| {
            // Runs `step` until a coroutine spawned first has run.
            fn until_the_other_ran(mut step: impl FnMut()) {
                let ran = Arc::new(AtomicBool::new(false));
                let r = ran.clone();
                let other = coio::spawn(move || r.store(true, SeqCst));
                while !ran.load(SeqCst) {
                    step();
                }
                other.join().unwrap();
            }
            let (tx, rx) = chan::bounded::<u32>(1);
            drop(rx);
            until_the_other_ran(|| assert!(tx.send(1).is_err()));
            until_the_other_ran(|| assert!(block_on(tx.send_async(1)).is_err()));
            let (tx, rx) = chan::bounded::<u32>(1);
            drop(tx);
            until_the_other_ran(|| assert!(rx.recv().is_err()));
            until_the_other_ran(|| assert!(block_on(rx.recv_async()).is_err()));
            until_the_other_ran(|| block_on(coio::future::sleep(Duration::ZERO)));
            // In one `block_on`.
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let other = coio::spawn(move || r.store(true, SeqCst));
            block_on(async {
                while !ran.load(SeqCst) {
                    coio::future::sleep(Duration::ZERO).await;
                }
            });
            other.join().unwrap();
        })
    });
}

/// The same loops on a closed channel while another coroutine of the worker
/// uses the channel: the budget's yield comes after the channel's lock is
/// released (it came with the lock held, and the other coroutine spun on
/// it for ever, its worker with it).
#[test]
fn a_closed_channel_s_budget_yield_holds_no_lock() {
    use coio::chan;
    common::within(Duration::from_secs(30), || {
        rt(1).block_on(|| {
            let (tx, rx) = chan::unbounded::<u32>();
            drop(tx);
            let rx2 = rx.clone();
            let a = coio::spawn(move || {
                for _ in 0..1000 {
                    assert!(rx.recv().is_err());
                }
            });
            let b = coio::spawn(move || {
                for _ in 0..1000 {
                    assert_eq!(rx2.len(), 0);
                    coio::yield_now();
                }
            });
            a.join().unwrap();
            b.join().unwrap();
            let (tx, rx) = chan::unbounded::<u32>();
            drop(rx);
            let tx2 = tx.clone();
            let senders: Vec<_> = [tx, tx2]
                .into_iter()
                .map(|tx| {
                    coio::spawn(move || {
                        for i in 0..1000 {
                            assert!(tx.send(i).is_err());
                        }
                    })
                })
                .collect();
            for s in senders {
                s.join().unwrap();
            }
        })
    });
}

/// The types without data of the user's, and `OnceLock`, are unwind-safe
/// as std's are (code that uses std's in a `catch_unwind` closure stopped
/// compiling with coio's).
#[test]
fn the_dataless_types_and_once_lock_are_unwind_safe() {
    use std::panic::{RefUnwindSafe, UnwindSafe, catch_unwind};
    fn unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}
    unwind_safe::<coio::sync::Condvar>();
    unwind_safe::<coio::sync::Barrier>();
    unwind_safe::<coio::sync::Semaphore>();
    unwind_safe::<coio::sync::WaitGroup>();
    unwind_safe::<coio::sync::OnceLock<u32>>();
    let b = std::sync::Arc::new(coio::sync::Barrier::new(1));
    assert!(catch_unwind(|| b.wait().is_leader()).unwrap());
}

/// `RwLockWriteGuard::downgrade`: the writer becomes a reader with no
/// writer in between; the readers queued at the front join it at once, a
/// writer queued at the front waits for it (and the readers behind that
/// writer wait too: arrival order).
#[test]
fn rwlock_downgrade_lets_queued_readers_in_and_no_writer_between() {
    use coio::sync::RwLockWriteGuard;
    rt(1).block_on(|| {
        let l = Arc::new(RwLock::new(0u32));
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut w = l.write();
        // Queued in order: two readers, a writer, a reader.
        let spawn_reader = |name: &'static str| {
            let (l, log) = (l.clone(), log.clone());
            coio::spawn(move || {
                let r = l.read();
                log.lock().push((name, *r));
                coio::sleep(Duration::from_millis(20));
            })
        };
        let r1 = spawn_reader("r1");
        let r2 = spawn_reader("r2");
        let (l2, log2) = (l.clone(), log.clone());
        let writer = coio::spawn(move || {
            let mut w = l2.write();
            *w += 10;
            log2.lock().push(("w", *w));
        });
        let r3 = spawn_reader("r3");
        coio::sleep(Duration::from_millis(10)); // all four queued
        *w = 1;
        let r = RwLockWriteGuard::downgrade(w);
        assert_eq!(*r, 1);
        coio::sleep(Duration::from_millis(5));
        // r1 and r2 joined the downgraded lock (woken together, they run
        // in either order); the writer and r3 wait.
        let sorted = |mut v: Vec<(&'static str, u32)>| {
            v[..2].sort_unstable();
            v
        };
        assert_eq!(sorted(log.lock().clone()), [("r1", 1), ("r2", 1)]);
        drop(r);
        for h in [r1, r2, writer, r3] {
            h.join().unwrap();
        }
        assert_eq!(
            sorted(log.lock().clone()),
            [("r1", 1), ("r2", 1), ("w", 11), ("r3", 11)]
        );
        // Uncontended: one CAS; the lock is then a plain read lock.
        let r = RwLockWriteGuard::downgrade(l.write());
        assert!(l.try_read().is_some() && l.try_write().is_none());
        drop(r);
        assert!(l.try_write().is_some());
    });
}
