//! Per-worker timers: a binary heap of deadlines, each waking one task.
//!
//! Timers live on the home worker of the coroutine that sleeps, so they
//! fire there and the wake is a local queue push. Cancelling a timer (the
//! wait ended early) is lazy: each task has a timer generation
//! (`HomeLocal::timer_gen`, home-local like the heap), bumped when a timer
//! is armed, fires or is disarmed; an entry whose recorded generation no
//! longer matches is dead and is skipped when popped. Dead entries are
//! counted and the heap is compacted when they make up more than half of
//! it, so a loop of `park_timeout(1 h)` that is always unparked early does
//! not grow memory without bound.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::task::TaskRef;

struct Entry {
    deadline: Instant,
    /// Tie-breaker: equal deadlines fire in arming order.
    seq: u64,
    /// The task's timer generation when this was armed.
    generation: u32,
    task: TaskRef,
}

impl Entry {
    /// Whether this entry is still the task's current timer.
    fn live(&self) -> bool {
        self.task.header().local.timer_gen.get() == self.generation
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed: the heap's top is the earliest deadline.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// One worker's timers. Only its worker thread uses it.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Entry>,
    /// Entries known to be dead but still in the heap.
    dead: usize,
    seq: u64,
}

impl Timers {
    /// Arms a timer that wakes `task` at `deadline`; returns its
    /// generation (for [`disarm`](Self::disarm)). `task` must be homed on
    /// this worker.
    pub(crate) fn arm(&mut self, deadline: Instant, task: TaskRef) -> u32 {
        let cell = &task.header().local.timer_gen;
        let generation = cell.get().wrapping_add(1);
        cell.set(generation);
        self.seq += 1;
        self.heap.push(Entry {
            deadline,
            seq: self.seq,
            generation,
            task,
        });
        generation
    }

    /// Cancels the timer armed with `generation` if it has not fired.
    pub(crate) fn disarm(&mut self, task: &TaskRef, generation: u32) {
        let cell = &task.header().local.timer_gen;
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

    /// Pops the timers due at `now`, passing each live one's task to `wake`.
    pub(crate) fn fire(&mut self, now: Instant, mut wake: impl FnMut(TaskRef)) {
        while let Some(top) = self.heap.peek() {
            if top.deadline > now {
                break;
            }
            let Some(e) = self.heap.pop() else { break };
            if e.live() {
                e.task
                    .header()
                    .local
                    .timer_gen
                    .set(e.generation.wrapping_add(1));
                wake(e.task);
            } else {
                self.dead = self.dead.saturating_sub(1);
            }
        }
    }

    /// Drops every entry (worker exit).
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
        self.dead = 0;
    }
}
