//! Placement: where fresh coroutines start (issue 12), the only balancing
//! there is, since a started coroutine never moves.
//!
//! A worker's *load* is what it homes (started and alive: its registry)
//! plus what waits to start in its queues and what was dealt to it; its
//! *effective load* adds its recent busy time (`Progress::busy`). Its
//! *cap* is its share of the whole runtime's effective load plus slack
//! ([`HOME_SLACK`] while shares are small, less for large ones). A worker
//! past its cap starts no more fresh coroutines and deals those beyond its
//! share to the workers below theirs (`deal`), straight into their inboxes
//! (`Remote::deal`); a worker below its cap may steal (`may_steal`). The
//! cap is recounted when dealing, when the worker wakes, and every 61
//! ticks while fresh coroutines are queued (`balance`). ARCHITECTURE.md,
//! "Placement by homes", has the measurements.

use std::sync::atomic::Ordering::*;
use std::time::Instant;

use super::Local;
#[cfg(doc)]
use crate::runtime::monitor::BUSY_TAU;
use crate::runtime::task::TaskRef;

/// How many coroutines a worker may home beyond its share of all the
/// runtime's (started and waiting to start) before it deals fresh ones to
/// the others, while shares are small (see `Local::deal`): small groups,
/// such as a coroutine and the few partners it spawned to talk to, stay
/// together.
pub(super) const HOME_SLACK: usize = 8;

impl Local {
    /// Whether this worker homes fewer coroutines than its share allows
    /// (`home_cap`, as last computed), or is alone, or closing.
    #[inline]
    pub(super) fn may_start_fresh(&self) -> bool {
        self.registry.borrow().len < self.home_cap.get() || self.alone() || self.closing.get()
    }

    /// The next fresh coroutine of this worker to start here. Past its
    /// share (`may_start_fresh`), it first deals what it has beyond that
    /// share to the workers below theirs (`deal`); what is left it starts
    /// itself: dealing never makes a coroutine wait for anyone.
    ///
    /// The emptiness check is always inlined: `next_task` makes it on most
    /// switches, and as a call it cost the ping-pong of `rt_coio` 4% more
    /// instructions when a change elsewhere made LLVM stop inlining this.
    #[inline(always)]
    pub(super) fn take_fresh(&self) -> Option<TaskRef> {
        if !self.has_fresh() {
            return None;
        }
        self.take_some_fresh()
    }

    /// [`take_fresh`](Self::take_fresh) with fresh coroutines queued.
    #[inline]
    fn take_some_fresh(&self) -> Option<TaskRef> {
        if !self.may_start_fresh() {
            self.deal();
        }
        self.pop_fresh()
    }

    /// Every worker's effective load (see `effective_loads`) and the share
    /// of one; sets `home_cap` from them. Reads a line of every other
    /// worker: done when dealing, every [`FAIRNESS_TICKS`] ticks and when
    /// the worker wakes, not per spawn.
    #[cold]
    pub(super) fn shares(&self) -> (Vec<usize>, usize) {
        let loads = self.effective_loads();
        let share = self.set_cap(&loads);
        (loads, share)
    }

    /// Recomputes `home_cap` alone: [`shares`](Self::shares), for its side
    /// effect.
    #[cold]
    pub(super) fn refresh_cap(&self) {
        self.shares();
    }

    /// Every worker's effective load: what it homes plus what waits to
    /// start in its queues (`load_of`), plus, for a worker more than half
    /// busy of late (`Progress::busy`), the runtime's mean load per worker
    /// times `2 × busy − 1`. A worker kept busy counts as homing up to
    /// twice the mean, so fresh coroutines go to workers with time to run
    /// them, even where the counts are even (a worker busy with one
    /// coroutine that computes counts as busy as one with a hundred).
    /// Counts alone decide among workers with time to spare, as in a burst
    /// after a quiet spell: the busy fraction is an average over about
    /// [`BUSY_TAU`], so the spawner of a burst, busy for a few
    /// milliseconds, does not push the burst away from its own worker.
    pub(super) fn effective_loads(&self) -> Vec<usize> {
        let n = self.shared.remotes.len();
        let mut loads: Vec<usize> = (0..n).map(|i| self.load_of(i)).collect();
        let mean = (loads.iter().sum::<usize>() + self.shared.injector.len()) as f64 / n as f64;
        let monitor = &self.shared.monitor;
        let now = monitor.micros(Instant::now());
        for (i, load) in loads.iter_mut().enumerate() {
            let over_half = (2.0 * monitor.progress[i].busy(now) - 1.0).max(0.0);
            *load += (over_half * mean).round() as usize;
        }
        loads
    }

    /// Worker `i`'s load: exact for this one, as published for the others.
    #[inline]
    pub(super) fn load_of(&self, i: usize) -> usize {
        if i == self.index {
            return self.load();
        }
        let p = &self.shared.monitor.progress[i];
        p.homed() + p.overflow() + p.dealt.load(Relaxed) + self.shared.remotes[i].stealer.len()
    }

    /// Sets `home_cap` from every worker's effective load (plus the
    /// injector's); returns the share. The cap counts coroutines: this
    /// worker's share plus slack, less what its busy time adds to its load.
    pub(super) fn set_cap(&self, loads: &[usize]) -> usize {
        let n = loads.len();
        let share = (loads.iter().sum::<usize>() + self.shared.injector.len()).div_ceil(n);
        // Small groups keep some slack (a coroutine and the few it talks
        // to stay together); large shares get little, so that the workers
        // that fill up first leave enough for the last one (each may go
        // over by a sixteenth of a share in all), and so that a worker
        // keeps close to its share when all of them get busy.
        let slack = if share < 2 * HOME_SLACK {
            HOME_SLACK
        } else {
            (share / (16 * n)).clamp(1, HOME_SLACK)
        };
        let busy = loads[self.index].saturating_sub(self.load());
        self.home_cap.set((share + slack).saturating_sub(busy));
        share
    }

    /// Whether fresh coroutines wait in this worker's queues.
    #[inline]
    pub(super) fn has_fresh(&self) -> bool {
        !self.fresh.is_empty() || !self.overflow.borrow().is_empty()
    }

    /// Whether this is the runtime's only worker (placement has nothing to
    /// decide).
    #[inline]
    pub(super) fn alone(&self) -> bool {
        self.shared.remotes.len() == 1
    }

    /// What this worker homes plus what waits to start in its queues.
    #[inline]
    pub(super) fn load(&self) -> usize {
        self.registry.borrow().len + self.fresh.len() + self.overflow.borrow().len()
    }

    /// Whether this worker may take fresh coroutines from others (steal):
    /// only while its load is below its share.
    #[inline]
    pub(super) fn may_steal(&self) -> bool {
        self.load() < self.home_cap.get() || self.alone() || self.closing.get()
    }

    /// Placement, the only balancing there is (a started coroutine never
    /// moves): deals this worker's fresh coroutines beyond its share of
    /// all the runtime's to the workers below theirs, straight into their
    /// inboxes, waking them if they sleep. Coroutines that block right
    /// after they start count for nothing in the run queues, so without
    /// this a burst of spawns whose coroutines block at once all started
    /// on the spawner's worker before a sleeping worker could wake (62 of
    /// 64 on one of two workers). A worker's load here is what it homes
    /// (started and alive) plus what waits to start in its queues.
    #[cold]
    pub(super) fn deal(&self) {
        let n = self.shared.remotes.len();
        let (loads, share) = self.shares();
        // Past its cap, a worker keeps exactly its share: the slack is
        // there so that it does not deal at every spawn, not to keep.
        let mut surplus = loads[self.index].saturating_sub(share);
        if surplus == 0 || self.shared.closed.load(Relaxed) {
            return;
        }
        // Least loaded first.
        let mut order: Vec<usize> = (0..n).filter(|&i| i != self.index).collect();
        order.sort_by_key(|&i| loads[i]);
        for i in order {
            let room = share.saturating_sub(loads[i]).min(surplus);
            if room == 0 {
                break;
            }
            let mut batch = Vec::with_capacity(room);
            while batch.len() < room {
                let t = self.overflow.borrow_mut().pop_back();
                match t.or_else(|| self.fresh.pop()) {
                    Some(t) => batch.push(t),
                    None => break,
                }
            }
            surplus -= batch.len();
            // Published before the batch shows up in the other's count, so
            // that nobody counts it twice (a total counted twice raised
            // every share computed meanwhile: 177 for a share of 100).
            self.progress().set_overflow(self.overflow.borrow().len());
            self.shared.remotes[i].deal(batch, &self.shared, i);
            if surplus == 0 {
                break;
            }
        }
    }

    /// Publishes this worker's load (runnable started coroutines) and
    /// reads the others' (every FAIRNESS_TICKS ticks; see `next_task`).
    #[cold]
    pub(super) fn balance(&self) {
        let progress = &self.shared.monitor.progress;
        progress[self.index].set_load(self.ready.borrow().len());
        let (mut min, mut max) = (usize::MAX, 0);
        for (i, p) in progress.iter().enumerate() {
            if i != self.index {
                let load = p.load();
                min = min.min(load);
                max = max.max(load);
            }
        }
        self.others_min.set(min);
        self.others_max.set(max);
        // The cap decides where fresh coroutines start: recounted when
        // there are some to start (reading the others' counts costs a
        // cache miss or two, measurable every 61 ticks of a yield loop).
        if !self.alone() && self.has_fresh() {
            self.refresh_cap();
        }
    }
}
