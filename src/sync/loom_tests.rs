//! Model checks of the mutex's slow path with loom (`RUSTFLAGS="--cfg
//! loom" cargo test --release --lib loom_`; `.ci/run` runs them): plain
//! threads (loom's) lock and unlock one `Mutex` in every interleaving,
//! through the spin round, the queue, the retry wakes, the requeue at the
//! front and handoff mode (under loom a waiter counts as starving once it
//! has been woken, so the mode is reached). A lost wakeup leaves a thread
//! parked for good, which loom reports as a deadlock; mutual exclusion and
//! the publication of the holder's writes are checked by a loom cell that
//! every holder writes: loom fails on any two accesses that are not
//! ordered by happens-before.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use super::{Condvar, Mutex};

/// The model's main thread locks the mutex `main_rounds` times, and each
/// of `others` spawned threads once, each incrementing the cell; at the
/// end the count is exact and the mutex is free. `bound`: loom's
/// preemption bound (None: every interleaving).
fn contend(main_rounds: usize, others: usize, bound: Option<usize>) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = bound;
    b.check(move || {
        let m = Arc::new(Mutex::new(UnsafeCell::new(0usize)));
        let hs: Vec<_> = (0..others)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || bump(&m, 1))
            })
            .collect();
        bump(&m, main_rounds);
        for h in hs {
            h.join().unwrap();
        }
        let g = m.lock();
        // SAFETY: the lock is held; the other threads are done.
        let n = g.with(|p| unsafe { *p });
        assert_eq!(n, main_rounds + others);
        drop(g);
        assert!(!m.is_locked());
        assert!(m.try_lock().is_some());
    });
}

/// Locks `m` `rounds` times and increments its cell under the lock.
fn bump(m: &Mutex<UnsafeCell<usize>>, rounds: usize) {
    for _ in 0..rounds {
        let g = m.lock();
        // SAFETY: the lock is held; loom checks that no other access to
        // the cell is concurrent with this one.
        g.with_mut(|p| unsafe { *p += 1 });
    }
}

/// Two threads, every interleaving: the main thread relocks while the
/// other waits, is woken, loses, requeues (starving) and is handed the
/// lock; the main thread's third lock then queues in handoff mode.
#[test]
fn loom_mutex_two_threads() {
    contend(3, 1, Some(3));
}

/// Three threads, each once, under a preemption bound (unbounded, the
/// model takes minutes).
#[test]
fn loom_mutex_three_threads() {
    contend(1, 2, Some(3));
}

/// A waiter of a condition variable is not lost between its check of the
/// condition and its wait (it registers before it unlocks the mutex).
#[test]
fn loom_condvar_no_lost_wakeup() {
    loom::model(|| {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p = pair.clone();
        let t = thread::spawn(move || {
            *p.0.lock() = true;
            p.1.notify_one();
        });
        let (m, cv) = &*pair;
        let g = cv.wait_while(m.lock(), |ready| !*ready);
        assert!(*g);
        drop(g);
        t.join().unwrap();
    });
}

/// `OnceLock::wait` against an initializer and a second waiter that may
/// initialize: the waiter that only waits queues even while nobody runs
/// an initializer (a wait for one yet to come), and every interleaving
/// of its queueing with the initializer's `COMPLETE` wakes it (a lost
/// wake leaves it parked: a deadlock) and shows it the value.
#[test]
fn loom_once_lock_wait_sees_the_value() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let c = Arc::new(super::OnceLock::new());
        let waiter = {
            let c = c.clone();
            thread::spawn(move || *c.wait())
        };
        let other = {
            let c = c.clone();
            thread::spawn(move || *c.get_or_init(|| 2))
        };
        let mine = *c.get_or_init(|| 1);
        let theirs = other.join().unwrap();
        assert_eq!(mine, theirs);
        assert_eq!(waiter.join().unwrap(), mine);
    });
}

/// `RwLockWriteGuard::downgrade` while a reader and a writer queue: the
/// reader gets in (no lost hand-over: a deadlock otherwise), the writer
/// only after both read locks end, and the writer's and the downgrading
/// writer's writes are seen by whoever locks after them (a loom cell).
#[test]
fn loom_rwlock_downgrade() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let l = Arc::new(super::RwLock::new(UnsafeCell::new(0usize)));
        let w = l.write();
        // SAFETY: the write lock is held.
        w.with_mut(|p| unsafe { *p = 1 });
        let reader = {
            let l = l.clone();
            thread::spawn(move || {
                let r = l.read();
                // SAFETY: a read lock is held.
                r.with(|p| unsafe { *p })
            })
        };
        let writer = {
            let l = l.clone();
            thread::spawn(move || {
                let w = l.write();
                // SAFETY: the write lock is held.
                w.with_mut(|p| unsafe { *p += 10 });
            })
        };
        let r = super::RwLockWriteGuard::downgrade(w);
        // SAFETY: a read lock is held.
        let mine = r.with(|p| unsafe { *p });
        assert_eq!(mine, 1);
        drop(r);
        let seen = reader.join().unwrap();
        assert!(seen == 1 || seen == 11);
        writer.join().unwrap();
        // SAFETY: a read lock is held.
        assert_eq!(l.read().with(|p| unsafe { *p }), 11);
    });
}
