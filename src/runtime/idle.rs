//! Which workers are awake, which are looking for work, and who wakes whom.
//!
//! The protocol follows Go's `findrunnable`/`wakep` and tokio's `idle.rs`:
//!
//! * A worker without local work becomes a *searcher* (if fewer than half
//!   of the workers already search) and looks for stealable work — the
//!   global injector and other workers' queues of fresh coroutines — for a
//!   few microseconds, spinning. Then it *parks*: it puts itself on the
//!   sleepers list and sleeps on its thread's futex.
//! * Whoever makes fresh work available (spawn, injection) calls
//!   [`Idle::notify_work`]: it wakes one sleeper, and only if no worker is
//!   searching already (a searcher will find the work) and not every
//!   worker is awake.
//! * A searcher that finds work stops searching; if it was the last one and
//!   more stealable work is visible, it notifies, so that work spreads.
//! * The last searcher to park checks every stealable queue once more after
//!   it has announced that it parks. This is what makes the protocol lose no
//!   work: a spawner pushes, then (after a SeqCst fence) reads the counts;
//!   the parker writes the counts (SeqCst), then reads the queues. One of
//!   the two sees the other.
//!
//! Started coroutines are never stolen, so a wake of one goes to its home
//! worker directly (its inbox, `worker::Remote`), whatever this protocol
//! says; a worker woken that way leaves the sleepers list itself.
//!
//! `state` packs the number of awake (unparked) workers in the high bits and
//! the number of searchers in the low 16 bits, so that both are read in one
//! load.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed, Ordering::SeqCst, fence};

const SEARCH_MASK: usize = 0xffff;
const UNPARKED_ONE: usize = 1 << 16;

pub(crate) struct Idle {
    /// `unparked << 16 | searching`.
    state: AtomicUsize,
    /// Indices of parked workers. Guarded changes of `state` that concern
    /// sleepers happen under this lock.
    sleepers: Mutex<Vec<usize>>,
    workers: usize,
}

impl Idle {
    pub(crate) fn new(workers: usize) -> Idle {
        Idle {
            state: AtomicUsize::new(workers * UNPARKED_ONE),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            workers,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        self.sleepers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tries to become a searcher: allowed while fewer than half of the
    /// workers (at least one) search.
    #[inline]
    pub(crate) fn try_search(&self) -> bool {
        let s = self.state.load(SeqCst);
        if 2 * (s & SEARCH_MASK) >= self.workers.max(2) {
            return false;
        }
        self.state.fetch_add(1, SeqCst);
        true
    }

    /// Stops searching; true if this was the last searcher.
    #[inline]
    pub(crate) fn stop_searching(&self) -> bool {
        self.state.fetch_sub(1, SeqCst) & SEARCH_MASK == 1
    }

    /// Called after fresh work was made stealable: wakes one parked worker
    /// unless some worker searches already or all are awake. Returns the
    /// index of the worker to unpark (the caller unparks its thread).
    #[inline]
    pub(crate) fn notify_work(&self) -> Option<usize> {
        fence(SeqCst);
        let s = self.state.load(SeqCst);
        if s & SEARCH_MASK != 0 || s >> 16 >= self.workers {
            return None;
        }
        self.notify_slow()
    }

    /// [`notify_work`](Self::notify_work) for work a worker pushed on its
    /// own `fresh` queue, without the fence: if the counts read here are
    /// stale, a sleeper that could have helped stays asleep, but the work is
    /// not lost, because the pushing worker runs its own queue before it
    /// ever parks. This keeps a SeqCst fence off every spawn.
    #[inline]
    pub(crate) fn notify_local_work(&self) -> Option<usize> {
        let s = self.state.load(Relaxed);
        if s & SEARCH_MASK != 0 || s >> 16 >= self.workers {
            return None;
        }
        self.notify_slow()
    }

    #[cold]
    fn notify_slow(&self) -> Option<usize> {
        let mut sleepers = self.lock();
        let s = self.state.load(SeqCst);
        if s & SEARCH_MASK != 0 || s >> 16 >= self.workers {
            return None;
        }
        let index = sleepers.pop()?;
        // It wakes as an awake searcher.
        self.state.fetch_add(UNPARKED_ONE | 1, SeqCst);
        Some(index)
    }

    /// Announces that worker `index` parks (stopping its search if it was
    /// searching). Returns true if it was the last searcher: it must then
    /// look at every stealable queue once more before it sleeps.
    pub(crate) fn park(&self, index: usize, searching: bool) -> bool {
        let mut sleepers = self.lock();
        sleepers.push(index);
        let dec = UNPARKED_ONE + usize::from(searching);
        let prev = self.state.fetch_sub(dec, SeqCst);
        searching && prev & SEARCH_MASK == 1
    }

    /// Worker `index` is awake again. Returns true if it was still on the
    /// sleepers list (it woke for its own reasons and now counts as awake,
    /// not searching); false if a notifier took it off the list, which
    /// counted it as an awake searcher.
    pub(crate) fn unpark(&self, index: usize) -> bool {
        let mut sleepers = self.lock();
        match sleepers.iter().position(|&i| i == index) {
            Some(pos) => {
                sleepers.swap_remove(pos);
                self.state.fetch_add(UNPARKED_ONE, SeqCst);
                true
            }
            None => false,
        }
    }

    /// Every worker is asleep and none is searching.
    pub(crate) fn all_parked(&self) -> bool {
        self.state.load(SeqCst) == 0
    }
}
