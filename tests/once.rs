//! `OnceLock::wait`, `Once` and `LazyLock`: std's one-time initializations,
//! whose waiters suspend only themselves (std's block the whole worker
//! thread: with an initializer that waits on the same worker, for good).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::time::Duration;

use coio::Runtime;
use coio::sync::{LazyLock, Once, OnceLock};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

mod common;
use common::watchdog;

#[test]
fn once_lock_wait_waits_for_an_initializer_yet_to_come() {
    watchdog(60, "OnceLock::wait");
    for workers in [1, 2] {
        rt(workers).block_on(|| {
            let c = Arc::new(OnceLock::new());
            // Coroutines and a plain thread wait before anyone
            // initializes (the state is not even RUNNING yet).
            let waiters: Vec<_> = (0..10)
                .map(|_| {
                    let c = c.clone();
                    coio::spawn(move || *c.wait())
                })
                .collect();
            let c2 = c.clone();
            let thread = std::thread::spawn(move || *c2.wait());
            coio::sleep(Duration::from_millis(20));
            assert!(!thread.is_finished());
            // An initializer that itself waits on the same worker.
            let c3 = c.clone();
            coio::spawn(move || {
                c3.get_or_init(|| {
                    coio::sleep(Duration::from_millis(10));
                    7
                });
            })
            .join()
            .unwrap();
            for w in waiters {
                assert_eq!(w.join().unwrap(), 7);
            }
            while !thread.is_finished() {
                coio::sleep(Duration::from_millis(1));
            }
            assert_eq!(thread.join().unwrap(), 7);
            assert_eq!(*c.wait(), 7); // set: returns at once
        });
    }
}

/// An initializer that panics with both kinds of waiters queued: one of
/// those that may initialize takes over (never one that only waits), and
/// the ones that only wait get its value.
#[test]
fn an_abandoned_initialization_passes_to_an_initializer_not_to_a_waiter() {
    watchdog(60, "an abandoned OnceLock initialization");
    rt(1).block_on(|| {
        let c = Arc::new(OnceLock::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let (c1, r1) = (c.clone(), runs.clone());
        let first = coio::spawn(move || {
            c1.get_or_init(|| {
                r1.fetch_add(1, SeqCst);
                coio::sleep(Duration::from_millis(20));
                panic!("the first initializer fails");
            });
        });
        coio::sleep(Duration::from_millis(5));
        // Queued in this order: waiters, then an initializer, then waiters.
        let mut waiters: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                coio::spawn(move || *c.wait())
            })
            .collect();
        let (c2, r2) = (c.clone(), runs.clone());
        let second = coio::spawn(move || {
            *c2.get_or_init(|| {
                r2.fetch_add(1, SeqCst);
                11
            })
        });
        waiters.extend((0..3).map(|_| {
            let c = c.clone();
            coio::spawn(move || *c.wait())
        }));
        assert!(first.join().is_err());
        assert_eq!(second.join().unwrap(), 11);
        for w in waiters {
            assert_eq!(w.join().unwrap(), 11);
        }
        assert_eq!(runs.load(SeqCst), 2);
    });
}

#[test]
fn a_cancelled_waiter_leaves_the_others_waiting() {
    rt(1).block_on(|| {
        let c = Arc::new(OnceLock::<u32>::new());
        let c1 = c.clone();
        let cancelled = coio::spawn(move || *c1.wait());
        let c2 = c.clone();
        let other = coio::spawn(move || *c2.wait());
        coio::sleep(Duration::from_millis(5));
        cancelled.cancel();
        assert!(cancelled.join().unwrap_err().is::<coio::Cancelled>());
        c.set(3).unwrap();
        assert_eq!(other.join().unwrap(), 3);
    });
}

#[test]
fn once_runs_its_closure_once_while_others_wait() {
    static INIT: Once = Once::new();
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    rt(1).block_on(|| {
        let hs: Vec<_> = (0..20)
            .map(|_| {
                coio::spawn(|| {
                    INIT.call_once(|| {
                        // Waits on the worker its waiters share.
                        coio::sleep(Duration::from_millis(10));
                        RUNS.fetch_add(1, SeqCst);
                    });
                    // Done by the time call_once returns.
                    assert_eq!(RUNS.load(SeqCst), 1);
                })
            })
            .collect();
        let waiter = coio::spawn(|| INIT.wait());
        for h in hs {
            h.join().unwrap();
        }
        waiter.join().unwrap();
    });
    assert!(INIT.is_completed());
    INIT.call_once(|| unreachable!());
    assert_eq!(RUNS.load(SeqCst), 1);
    assert_eq!(format!("{:?}", Once::new()), "Once { .. }");
}

#[test]
fn a_panicking_closure_poisons_a_once_as_std() {
    let once = Once::new();
    assert!(std::panic::catch_unwind(|| once.call_once(|| panic!("boom"))).is_err());
    assert!(!once.is_completed());
    // call_once and wait panic on a poisoned Once.
    let e = std::panic::catch_unwind(|| once.call_once(|| {})).unwrap_err();
    assert_eq!(
        e.downcast_ref::<&str>(),
        Some(&"Once instance has previously been poisoned")
    );
    assert!(std::panic::catch_unwind(|| once.wait()).is_err());
    // call_once_force runs, told so, and completes it.
    let mut told = None;
    once.call_once_force(|s| told = Some(s.is_poisoned()));
    assert_eq!(told, Some(true));
    assert!(once.is_completed());
    once.wait();
    once.wait_force();
}

/// The waiters of a closure that panics: a waiting call_once panics (the
/// Once is poisoned), a waiting wait panics, a call_once_force completes.
#[test]
fn the_waiters_of_a_panicking_once_closure_see_the_poison() {
    watchdog(60, "waiters of a poisoned Once");
    rt(1).block_on(|| {
        let once = Arc::new(Once::new());
        let o = once.clone();
        let first = coio::spawn(move || {
            o.call_once(|| {
                coio::sleep(Duration::from_millis(20));
                panic!("the closure fails");
            })
        });
        coio::sleep(Duration::from_millis(5));
        let o = once.clone();
        let calls = coio::spawn(move || o.call_once(|| {}));
        let o = once.clone();
        let waits = coio::spawn(move || o.wait());
        let o = once.clone();
        let forced = coio::spawn(move || {
            let mut poisoned = false;
            o.call_once_force(|s| poisoned = s.is_poisoned());
            poisoned
        });
        assert!(first.join().is_err());
        assert!(calls.join().is_err());
        assert!(waits.join().is_err());
        assert!(forced.join().unwrap());
        assert!(once.is_completed());
    });
}

/// A cancellation of the closure's coroutine is not a failure of the
/// closure: the Once is not poisoned, and the next caller runs its own.
#[test]
fn a_cancelled_once_closure_does_not_poison() {
    rt(1).block_on(|| {
        let once = Arc::new(Once::new());
        let o = once.clone();
        let first = coio::spawn(move || o.call_once(|| coio::sleep(Duration::from_secs(60))));
        coio::sleep(Duration::from_millis(5));
        let o = once.clone();
        let next = coio::spawn(move || {
            let mut ran = false;
            o.call_once(|| ran = true);
            ran
        });
        coio::sleep(Duration::from_millis(5));
        first.cancel();
        assert!(first.join().unwrap_err().is::<coio::Cancelled>());
        assert!(next.join().unwrap());
        assert!(once.is_completed());
    });
}

#[test]
fn lazy_lock_makes_its_value_once_while_others_wait_on_the_same_worker() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    static TABLE: LazyLock<Vec<u32>> = LazyLock::new(|| {
        RUNS.fetch_add(1, SeqCst);
        // With std's LazyLock, the first waiter on this worker would block
        // the worker, and this sleep would never end.
        coio::sleep(Duration::from_millis(20));
        vec![1, 2, 3]
    });
    watchdog(60, "LazyLock");
    rt(1).block_on(|| {
        let hs: Vec<_> = (0..20).map(|_| coio::spawn(|| TABLE.len())).collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), 3);
        }
    });
    assert_eq!(RUNS.load(SeqCst), 1);
    assert_eq!(*LazyLock::force(&TABLE), [1, 2, 3]);
    assert_eq!(format!("{TABLE:?}"), "LazyLock([1, 2, 3])");
    let mut l = LazyLock::new(|| 5);
    *l += 1;
    assert_eq!(*l, 6);
    let d: LazyLock<u8> = LazyLock::default();
    assert_eq!(format!("{d:?}"), "LazyLock(<uninit>)");
    assert_eq!(*d, 0);
}

#[test]
fn a_panicking_lazy_lock_function_poisons_it_as_std() {
    let l: LazyLock<u32> = LazyLock::new(|| panic!("cannot make it"));
    assert!(std::panic::catch_unwind(|| *l).is_err());
    let e = std::panic::catch_unwind(|| *l).unwrap_err();
    assert_eq!(
        e.downcast_ref::<&str>(),
        Some(&"LazyLock instance has previously been poisoned")
    );
}

/// Threads call `wait` while a closure panics: each must panic (the Once
/// is poisoned), none may stay parked. (From a review: a `wait` that
/// looked at the poison just before the closure unwound, and queued just
/// after the unwinding closure's wakes, was never woken; 1 in ~100
/// rounds.)
#[test]
fn every_wait_racing_a_poisoning_closure_panics() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::Instant;
    // Thousands of expected panics: keep them off the output.
    std::panic::set_hook(Box::new(|_| {}));
    watchdog(60, "Once::wait racing a poisoning closure");
    let spin = |ns: u64| {
        let t = Instant::now();
        while t.elapsed() < Duration::from_nanos(ns) {
            std::hint::spin_loop();
        }
    };
    let start = Instant::now();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(4) {
        rounds += 1;
        let once = Once::new();
        let go = std::sync::Barrier::new(9);
        std::thread::scope(|s| {
            for _ in 0..8 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let delay = rng % 8_000;
                let (once, go) = (&once, &go);
                s.spawn(move || {
                    go.wait();
                    spin(delay);
                    assert!(catch_unwind(AssertUnwindSafe(|| once.wait())).is_err());
                });
            }
            go.wait();
            let _ = catch_unwind(AssertUnwindSafe(|| once.call_once(|| panic!("boom"))));
        });
    }
    let _ = std::panic::take_hook();
    assert!(rounds > 10);
}

/// As std's: `wait` on a poisoned Once while a `call_once_force` runs on
/// it waits for that closure and returns (std panics only when none
/// runs).
#[test]
fn wait_on_a_poisoned_once_waits_for_a_forced_closure_as_std() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    watchdog(30, "wait during a forced closure");
    let coio_once = Once::new();
    let std_once = std::sync::Once::new();
    let _ = catch_unwind(|| coio_once.call_once(|| panic!("x")));
    let _ = catch_unwind(|| std_once.call_once(|| panic!("x")));
    let results = std::thread::scope(|s| {
        s.spawn(|| coio_once.call_once_force(|_| std::thread::sleep(Duration::from_millis(200))));
        s.spawn(|| std_once.call_once_force(|_| std::thread::sleep(Duration::from_millis(200))));
        std::thread::sleep(Duration::from_millis(50));
        (
            catch_unwind(AssertUnwindSafe(|| coio_once.wait())).is_ok(),
            catch_unwind(AssertUnwindSafe(|| std_once.wait())).is_ok(),
        )
    });
    assert_eq!(results, (true, true));
}
