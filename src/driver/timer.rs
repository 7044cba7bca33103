//! Timers: a binary heap of deadlines, each waking one target.
//!
//! One heap per worker, used by its thread only: the runtime arms a timer
//! on the home worker of the coroutine that sleeps, so it fires there and
//! the wake is a local queue push, and a worker asleep in its driver sleeps
//! until the nearest deadline. The heap knows nothing of coroutines: a
//! target is anything with a timer generation ([`Target`]).
//!
//! Cancelling a timer (the wait ended early) is lazy: each target has a
//! timer generation, bumped when a timer is armed, fires or is disarmed; an
//! entry whose recorded generation no longer matches is dead and is skipped
//! when popped. Dead entries are counted and the heap is compacted when
//! they make up more than half of it, so a loop of `park_timeout(1 h)` that
//! is always unparked early does not grow memory without bound.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a timer wakes: something with a timer generation, which only the
/// heap's thread reads and writes.
pub(crate) trait Target {
    /// The target's timer generation.
    fn timer_generation(&self) -> &Cell<u32>;
}

struct Entry<T> {
    deadline: Instant,
    /// Tie-breaker: equal deadlines fire in arming order.
    seq: u64,
    /// The task's timer generation when this was armed.
    generation: u32,
    target: T,
}

impl<T: Target> Entry<T> {
    /// Whether this entry is still the target's current timer.
    fn live(&self) -> bool {
        self.target.timer_generation().get() == self.generation
    }
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    /// Reversed: the heap's top is the earliest deadline.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// One worker's timers. Only its worker thread uses it.
pub(crate) struct Timers<T> {
    heap: BinaryHeap<Entry<T>>,
    /// Entries known to be dead but still in the heap.
    dead: usize,
    seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            dead: 0,
            seq: 0,
        }
    }
}

impl<T: Target> Timers<T> {
    /// Arms a timer that wakes `target` at `deadline`; returns its
    /// generation (for [`disarm`](Self::disarm)). Only this heap's thread
    /// may use `target`'s generation.
    pub(crate) fn arm(&mut self, deadline: Instant, target: T) -> u32 {
        let cell = target.timer_generation();
        let generation = cell.get().wrapping_add(1);
        cell.set(generation);
        self.seq += 1;
        self.heap.push(Entry {
            deadline,
            seq: self.seq,
            generation,
            target,
        });
        generation
    }

    /// Cancels the timer armed with `generation` (of the target whose
    /// generation is `cell`) if it has not fired.
    pub(crate) fn disarm(&mut self, cell: &Cell<u32>, generation: u32) {
        if cell.get() == generation {
            cell.set(generation.wrapping_add(1));
            self.dead += 1;
            if self.dead > 64 && self.dead * 2 > self.heap.len() {
                self.heap.retain(Entry::live);
                self.dead = 0;
            }
        }
    }

    /// The earliest deadline, if any timer is armed.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(top) = self.heap.peek() {
            if top.live() {
                return Some(top.deadline);
            }
            self.heap.pop();
            self.dead = self.dead.saturating_sub(1);
        }
        None
    }

    /// Whether any entry (live or dead) is in the heap.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Pops the next live timer due at `now`, if any, and returns its
    /// target (one at a time, so that the caller can fire it with the
    /// heap let go: firing may run code that arms or disarms timers).
    #[inline]
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        while let Some(top) = self.heap.peek() {
            if top.deadline > now {
                break;
            }
            let Some(e) = self.heap.pop() else { break };
            if e.live() {
                e.target
                    .timer_generation()
                    .set(e.generation.wrapping_add(1));
                return Some(e.target);
            }
            self.dead = self.dead.saturating_sub(1);
        }
        None
    }

    /// Empties the heap (worker exit), returning the live timers' targets.
    pub(crate) fn take_all(&mut self) -> Vec<T> {
        self.dead = 0;
        self.heap
            .drain()
            .filter(Entry::live)
            .map(|e| e.target)
            .collect()
    }
}
