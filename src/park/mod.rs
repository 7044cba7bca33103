//! The parking core: how everything in coio that can wait, waits.
//!
//! Two pieces, after Go's `sudog` and crossbeam-channel's `Context`:
//!
//! * A [`Blocker`] lives on the stack of whoever waits (a coroutine, or a
//!   plain thread outside a runtime), for the length of one blocking call.
//!   It knows whom to wake and holds one atomic word, `state`, through
//!   which the wait is decided exactly once.
//! * A [`WaitQueue`] is a FIFO of entries — a pointer to a blocker, the
//!   number of the operation it waits for, and a pointer to its *packet*
//!   (where a value is handed over) — kept under the lock of whatever it
//!   belongs to: a channel, a mutex's slow path, a condvar, ...
//!
//! A `select` puts one entry per arm into several queues, all pointing to
//! the same blocker: the first waker to claim the blocker picks the arm.
//!
//! # The protocol
//!
//! 1. The waiter makes a blocker and, under the owner's lock, checks its
//!    condition; if it must wait it pushes an entry and lets go of the lock.
//! 2. A waker, under the same lock, takes entries from the front and
//!    [claims](WaitQueue::claim) one: a CAS of `state` from `WAITING` to
//!    `CLAIMED`, recording the operation and whether the waker performed it
//!    (`done`) or only asks the waiter to look again (`retry`). At most one
//!    claim of a blocker succeeds. An entry whose claim fails is stale (its
//!    blocker was claimed through another queue, or gave up) and is dropped.
//! 3. Having claimed, the waker may use the packet (write the value a
//!    receiver waits for, or take the value of a waiting sender), and then
//!    [finishes](Claimed): it stores `DONE` (Release) and wakes the waiter.
//! 4. The waiter returns only when no waker can touch its blocker any more:
//!    after it saw `DONE` (Acquire: the packet is written), or after it gave
//!    up — a CAS from `WAITING` to `ABORTED`, on a deadline or on
//!    cancellation — and then removed its entries from every queue, under
//!    each queue's lock (a waker reads entries only under that lock).
//!
//! The blocker may be gone the moment its waiter sees `DONE`, so the waker
//! reads whom to wake before that store, and keeps that coroutine or thread
//! alive across the wake with a reference of its own, unless the coroutine
//! lives on the waker's own worker (it cannot run before the waker lets go
//! of the thread). Waking *before* `DONE` would need no reference, but a
//! waiter woken on another core would then spin until the store, which
//! comes after the wake's system call when its worker was asleep, and, on
//! a machine with fewer cores than busy threads, after the waiter's worker
//! gave the waker's core back: measured, round trips of 12–130 µs instead
//! of 0.1–2 µs in the two-worker ping-pong. A waiter may still see
//! `CLAIMED` without `DONE` (resumed by a timer or a stale wake while a
//! waker fills its packet); it then spins: the waker does not block in
//! between.
//!
//! Wakes are hints: a waiter may also be resumed by a stale wake, a timer
//! or a cancellation, so it always re-reads `state`.
//!
//! # Blocking
//!
//! In a coroutine, waiting suspends the coroutine (the worker's
//! `block_current`, which also honours the deadline through the worker's
//! timers); on a plain thread it parks the thread. The one-waiter waits of
//! the runtime (join, `park`) use the same two mechanisms through
//! `runtime::blocking::wait_until`.

mod lock;

pub(crate) use lock::{Lock, LockGuard};

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::task::Waker;
use std::time::Instant;

#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering::*};
#[cfg(loom)]
use loom::thread::{self, Thread};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering::*};
#[cfg(not(loom))]
use std::thread::{self, Thread};

use crate::runtime::dump::Wait;
use crate::runtime::task::{self, Started};
use crate::runtime::{blocking, worker};

/// `state`: nobody has claimed the blocker yet.
const WAITING: usize = 0;
/// `state`: the waiter gave up (deadline or cancellation).
const ABORTED: usize = 1;
/// `state`: a waker claimed the blocker (operation number in the high bits).
const CLAIMED: usize = 2;
/// `state`: the waker is done with the blocker; the waiter may go.
const DONE: usize = 4;
/// `state`: the claim asks the waiter to look again (the waker did not
/// perform the operation: a lock was released, a channel closed, ...).
const RETRY: usize = 8;
/// `state`: where the operation number starts.
const OPER_SHIFT: u32 = 4;

/// Who is to be woken.
enum Who {
    /// A coroutine, which is suspended in this wait and so unfinished: the
    /// non-owning pointer stays valid until the wait returns, which is after
    /// every waker is done with it (module docs).
    Task(Started),
    /// A plain thread.
    Thread(Thread),
    /// An async task (a future's [`Waker`]). Replaced only while the
    /// blocker is `WAITING`, under the lock of the one queue that holds its
    /// entry (`set_waker`); a claimer reads it after its claim, so never
    /// while it changes.
    Waker(UnsafeCell<Waker>),
}

/// One wait of one coroutine or thread (see the module docs).
pub(crate) struct Blocker {
    /// `WAITING`, `ABORTED`, or `CLAIMED` with `RETRY`, `DONE` and the
    /// operation number.
    state: AtomicUsize,
    /// Whom a claim wakes.
    who: Who,
    /// What a dump says the coroutine waits for.
    wait: Wait,
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// A waker claimed operation `oper` and performed it.
    Done(usize),
    /// A waker claimed operation `oper` but asks the waiter to look again.
    Retry(usize),
    /// The deadline passed first (the blocker is aborted).
    TimedOut,
    /// The coroutine was cancelled first (the blocker is aborted). The
    /// caller removes its entries and then calls [`unwind_cancelled`].
    Cancelled,
}

impl Blocker {
    /// A blocker for the caller: its coroutine, or its thread.
    #[inline]
    pub(crate) fn new(wait: Wait) -> Blocker {
        let who = match worker::coroutine_local() {
            Some(l) => Who::Task(l.current_started()),
            None => Who::Thread(thread::current()),
        };
        Blocker {
            state: AtomicUsize::new(WAITING),
            who,
            wait,
        }
    }

    /// A blocker for a future, woken through `waker` (see
    /// [`poll_woken`](Self::poll_woken)).
    pub(crate) fn for_waker(waker: Waker) -> Blocker {
        Blocker {
            state: AtomicUsize::new(WAITING),
            who: Who::Waker(UnsafeCell::new(waker)),
            wait: Wait::Future,
        }
    }

    /// For a future's blocker: how its wait ended, or None while nobody
    /// claimed it. A claim not yet finished is waited out (the claimer
    /// reaches `DONE` without blocking).
    pub(crate) fn poll_woken(&self) -> Option<Woken> {
        let mut spins = 0u32;
        loop {
            let s = self.state.load(Acquire);
            if s == WAITING || s == ABORTED {
                return None;
            }
            if s & DONE != 0 {
                let oper = s >> OPER_SHIFT;
                return Some(if s & RETRY != 0 {
                    Woken::Retry(oper)
                } else {
                    Woken::Done(oper)
                });
            }
            spins += 1;
            if spins < 64 && !cfg!(loom) {
                std::hint::spin_loop();
            } else {
                // A dynamic select's claim may last until its caller
                // completes the operation, maybe on this worker: let it
                // run (a thread yields its core).
                yield_while_claimed();
            }
        }
    }

    /// For a future's blocker: makes `waker` the one a claim wakes, unless
    /// it wakes the same task already. Returns false, changing nothing, if
    /// the blocker was claimed meanwhile (the caller then polls
    /// [`poll_woken`](Self::poll_woken) again).
    ///
    /// # Safety
    /// The caller holds the lock of the one queue that holds this
    /// blocker's entry (claims happen only under it), and is the blocker's
    /// owner (the only one who replaces the waker).
    pub(crate) unsafe fn set_waker(&self, waker: &Waker) -> bool {
        let Who::Waker(cell) = &self.who else {
            unreachable!("coio: set_waker on a blocker of a coroutine or thread")
        };
        if self.state.load(Acquire) != WAITING {
            return false;
        }
        // SAFETY: unclaimed, and no claim can happen while the caller holds
        // the queue's lock; only the owner writes (caller), and a claimer
        // reads only after its claim.
        let cur = unsafe { &mut *cell.get() };
        if !cur.will_wake(waker) {
            cur.clone_from(waker);
        }
        true
    }

    /// Gives up on the wait unless a waker claimed it already. Returns true
    /// if it did: the caller must then remove its entries.
    #[inline]
    pub(crate) fn abort(&self) -> bool {
        self.state
            .compare_exchange(WAITING, ABORTED, Acquire, Acquire)
            .is_ok()
    }

    /// Whether the blocker is still unclaimed.
    #[inline]
    fn is_waiting(&self) -> bool {
        self.state.load(Relaxed) == WAITING
    }

    /// Waits until a waker claims this blocker and finishes, the deadline
    /// passes, or (with `cancellable`) the coroutine is cancelled. On
    /// `TimedOut` and `Cancelled` the blocker is aborted: no waker will
    /// claim it, and the caller must remove its entries.
    // Inlined (with `wait_inner`) into every wait: one frame fewer on the
    // stack of each parked coroutine (see `Source::io_with`).
    #[inline(always)]
    pub(crate) fn wait(&self, deadline: Option<Instant>, cancellable: bool) -> Woken {
        self.wait_in::<false>(deadline, cancellable)
    }

    /// [`wait`](Blocker::wait) with the coroutine's suspension inlined too
    /// (`Local::block_current_inlined`), for the socket calls' wait
    /// (`Source::park`, itself inlined into each call): no frame between
    /// a parked connection's socket call and its saved context (see
    /// `Source::io_with`).
    #[inline(always)]
    pub(crate) fn wait_inlined(&self, deadline: Option<Instant>, cancellable: bool) -> Woken {
        self.wait_in::<true>(deadline, cancellable)
    }

    #[inline(always)]
    fn wait_in<const INLINED: bool>(&self, deadline: Option<Instant>, cancellable: bool) -> Woken {
        // Nothing below is meant to panic; if something did, the caller's
        // entries would still point into this frame after the unwind took
        // it away, and the next claimer would write to freed stack.
        let abort_on_unwind = AbortOnUnwind("inside a wait of the parking core");
        let woken = self.wait_inner::<INLINED>(deadline, cancellable);
        std::mem::forget(abort_on_unwind);
        woken
    }

    #[inline(always)]
    fn wait_inner<const INLINED: bool>(
        &self,
        deadline: Option<Instant>,
        cancellable: bool,
    ) -> Woken {
        let mut spins = 0u32;
        loop {
            let s = self.state.load(Acquire);
            if s & DONE != 0 {
                let oper = s >> OPER_SHIFT;
                return if s & RETRY != 0 {
                    Woken::Retry(oper)
                } else {
                    Woken::Done(oper)
                };
            }
            if s == WAITING {
                if cancellable && is_cancelled() && self.abort() {
                    return Woken::Cancelled;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) && self.abort() {
                    // A wait that may not have waited at all (its deadline
                    // had passed): it spends the cooperative budget, so
                    // that a loop of zero timeouts lets the worker's other
                    // coroutines run. (After a real wait the budget is
                    // fresh, and this spends one of 128.)
                    worker::coop_spend();
                    return Woken::TimedOut;
                }
                if self.state.load(Acquire) == WAITING {
                    self.block::<INLINED>(deadline);
                }
                continue;
            }
            // Claimed, not yet finished: the waker is between its claim and
            // its `DONE` store. Usually it gets there without blocking, in
            // nanoseconds: spin. But a dynamic select holds a claim until
            // its caller completes the operation it chose, which may take
            // a while, on this very worker: then block until the wake that
            // follows `DONE` (it may have come already: a wake is never
            // lost, it makes the next block return at once).
            spins += 1;
            // (Under loom every round blocks: a spin that does not would
            // let the model run this loop without the waker ever moving.)
            if spins < 64 && !cfg!(loom) {
                std::hint::spin_loop();
            } else {
                self.block::<false>(None);
            }
        }
    }

    /// Suspends the coroutine, or parks the thread, once (until a wake, a
    /// timer, or spuriously).
    #[inline]
    fn block<const INLINED: bool>(&self, deadline: Option<Instant>) {
        match &self.who {
            Who::Task(_) => match worker::coroutine_local() {
                Some(l) if INLINED => l.block_current_inlined(deadline, false, self.wait),
                Some(l) => l.block_current(deadline, false, self.wait),
                None => unreachable!("coio: a coroutine's blocker outside its coroutine"),
            },
            Who::Thread(_) => match deadline {
                None => thread::park(),
                Some(d) => park_timeout(d),
            },
            Who::Waker(_) => unreachable!("coio: a future's blocker waits by polling"),
        }
    }

    /// Claims the blocker for operation `oper`. Called under the lock of a
    /// queue that holds an entry of it.
    #[inline]
    fn claim(&self, oper: usize, retry: bool) -> bool {
        self.state
            .compare_exchange(WAITING, claimed_state(oper, retry), AcqRel, Relaxed)
            .is_ok()
    }
}

/// The state word a claim of `oper` writes.
#[inline]
fn claimed_state(oper: usize, retry: bool) -> usize {
    CLAIMED | if retry { RETRY } else { 0 } | (oper << OPER_SHIFT)
}

#[cfg(not(loom))]
fn park_timeout(d: Instant) {
    thread::park_timeout(d.saturating_duration_since(Instant::now()));
}

#[cfg(loom)]
fn park_timeout(_: Instant) {
    // loom has no timed park; its models use no deadlines.
    thread::yield_now();
}

/// Aborts the process, saying where (`coio: a panic <where> (a bug in
/// coio); aborting`), if dropped: armed around code that must not unwind
/// (disarmed with `mem::forget`).
pub(crate) struct AbortOnUnwind(pub(crate) &'static str);

impl Drop for AbortOnUnwind {
    #[cold]
    fn drop(&mut self) {
        note!("coio: a panic {} (a bug in coio); aborting", self.0);
        std::process::abort();
    }
}

/// Whether the running coroutine was cancelled (false on a plain thread,
/// and while the coroutine unwinds: it must be able to wait then).
#[inline]
pub(crate) fn is_cancelled() -> bool {
    worker::coroutine_local().is_some_and(blocking::cancel_pending)
}

/// Whether the running coroutine was cancelled, unwinding or not (false
/// on a plain thread): for a destructor that tells a cancellation's
/// unwind from a panic's (a `Once`'s poison).
pub(crate) fn cancel_requested() -> bool {
    worker::coroutine_local().is_some_and(|l| l.with_current(|t| t.header().is_cancelled()))
}

/// Unwinds with [`Cancelled`](crate::Cancelled), after a wait returned
/// `Woken::Cancelled` and the caller cleaned up.
pub(crate) use crate::runtime::blocking::unwind_cancelled;

/// A waiting operation in a [`WaitQueue`].
struct Entry {
    /// The waiter's blocker (on its stack; see the module docs for why it
    /// outlives the entry).
    blocker: NonNull<Blocker>,
    /// The operation number, reported to the waiter by a claim.
    oper: usize,
    /// Where the value of the operation is handed over; its type is known
    /// to the queue's owner.
    packet: *mut (),
}

impl Entry {
    /// Claims the entry's blocker, just taken out of its queue under the
    /// queue's lock (None: it was stale).
    #[inline]
    fn claim(self, retry: bool) -> Option<Claimed> {
        // SAFETY: the entry was in the queue until now, under the lock we
        // hold, so its blocker is alive (step 4 of the protocol: its owner
        // removes its entries under this lock before it goes).
        let claimed = unsafe { self.blocker.as_ref() }.claim(self.oper, retry);
        claimed.then(|| Claimed {
            blocker: self.blocker,
            packet: self.packet,
            state: claimed_state(self.oper, retry),
        })
    }
}

// SAFETY: an entry is a pair of pointers into the waiter's stack, used only
// under the protocol of the module docs (blocker: `Sync` atomics and a
// `Send + Sync` waker; packet: accessed by one claimer, then by the waiter
// after `DONE`), whatever thread holds the queue.
unsafe impl Send for Entry {}

/// A FIFO of waiting operations, kept under its owner's lock.
#[derive(Default)]
pub(crate) struct WaitQueue {
    entries: VecDeque<Entry>,
}

impl WaitQueue {
    /// An empty queue (allocates nothing).
    pub(crate) const fn new() -> WaitQueue {
        WaitQueue {
            entries: VecDeque::new(),
        }
    }

    /// Queues operation `oper` of `blocker`, with its packet.
    ///
    /// # Safety
    /// `blocker` must stay where it is until the wait protocol lets its
    /// owner go (module docs, step 4): the caller removes this entry under
    /// the same lock, or waits for `DONE`. `packet` must stay valid as long
    /// and be of the type the queue's owner expects for `oper`.
    #[inline]
    pub(crate) unsafe fn push(&mut self, blocker: &Blocker, oper: usize, packet: *mut ()) {
        self.entries.push_back(Entry {
            blocker: NonNull::from(blocker),
            oper,
            packet,
        });
    }

    /// As [`push`](Self::push), at the front: for a waiter that was woken
    /// to retry, lost the race, and waits again (it keeps its turn).
    ///
    /// # Safety
    /// As for [`push`](Self::push).
    #[inline]
    pub(crate) unsafe fn push_front(&mut self, blocker: &Blocker, oper: usize, packet: *mut ()) {
        self.entries.push_front(Entry {
            blocker: NonNull::from(blocker),
            oper,
            packet,
        });
    }

    /// The operation number of the oldest entry still waiting, dropping
    /// the stale entries in front of it. (Its waiter may give up right
    /// after: a following `claim` may then take a later entry or none.)
    pub(crate) fn front(&mut self) -> Option<usize> {
        while let Some(e) = self.entries.front() {
            // SAFETY: as in `claim`.
            if unsafe { e.blocker.as_ref() }.is_waiting() {
                return Some(e.oper);
            }
            self.entries.pop_front();
        }
        None
    }

    /// Removes every entry of `blocker` (after it gave up, or after it was
    /// claimed through another queue).
    pub(crate) fn remove(&mut self, blocker: &Blocker) {
        let b = NonNull::from(blocker);
        self.entries.retain(|e| e.blocker != b);
    }

    /// Claims the oldest claimable entry, skipping those of `skip` (a
    /// selecting waiter does not rendezvous with itself) and dropping stale
    /// ones. `retry`: the claimer does not perform the operation, it only
    /// asks the waiter to look again.
    #[inline]
    pub(crate) fn claim(&mut self, skip: Option<&Blocker>, retry: bool) -> Option<Claimed> {
        let skip = skip.map(NonNull::from);
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            if Some(e.blocker) == skip {
                i += 1;
                continue;
            }
            let e = if i == 0 {
                self.entries.pop_front()
            } else {
                self.entries.remove(i)
            }
            .expect("index in range");
            if let Some(c) = e.claim(retry) {
                return Some(c);
            }
        }
        None
    }

    /// Claims the oldest claimable entry, dropping stale ones, with its
    /// operation number: for owners whose waiters say by it how they
    /// take a wake (the readiness queues' `PASSES_ON`).
    #[inline]
    pub(crate) fn claim_oldest(&mut self, retry: bool) -> Option<(usize, Claimed)> {
        while let Some(e) = self.entries.pop_front() {
            let oper = e.oper;
            if let Some(c) = e.claim(retry) {
                return Some((oper, c));
            }
        }
        None
    }

    /// Claims the oldest claimable entry whose operation number satisfies
    /// `pred`, leaving the others queued (and dropping stale ones met on
    /// the way): for owners whose waiters want different things of one
    /// event (a `OnceLock`'s waiters that may initialize it, and those
    /// that only wait for it).
    pub(crate) fn claim_matching(
        &mut self,
        retry: bool,
        pred: impl Fn(usize) -> bool,
    ) -> Option<Claimed> {
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            // SAFETY: as in `claim`.
            let waiting = unsafe { e.blocker.as_ref() }.is_waiting();
            if waiting && !pred(e.oper) {
                i += 1;
                continue;
            }
            let e = self.entries.remove(i).expect("index in range");
            if let Some(c) = e.claim(retry) {
                return Some(c);
            }
        }
        None
    }

    /// Claims the oldest entry still waiting if its operation number
    /// satisfies `pred`, dropping the stale entries in front of it; None,
    /// claiming nothing, if no entry waits or the oldest one does not
    /// satisfy `pred`. For owners whose waiters wait for different
    /// operations and must be served strictly in order (an `RwLock`'s
    /// readers and writers): `front` then `claim` could claim an entry
    /// behind one that gave up in between.
    pub(crate) fn claim_front_if(
        &mut self,
        retry: bool,
        pred: impl Fn(usize) -> bool,
    ) -> Option<Claimed> {
        while let Some(e) = self.entries.front() {
            // SAFETY: as in `claim`.
            if unsafe { e.blocker.as_ref() }.is_waiting() && !pred(e.oper) {
                return None;
            }
            let e = self.entries.pop_front().expect("a front entry");
            if let Some(c) = e.claim(retry) {
                return Some(c);
            }
        }
        None
    }

    /// Whether an entry other than `skip`'s is still unclaimed (a waiting
    /// counterpart exists). May be stale the moment the lock is released.
    pub(crate) fn has_waiting(&self, skip: Option<&Blocker>) -> bool {
        let skip = skip.map(NonNull::from);
        self.entries.iter().any(|e| {
            // SAFETY: as in `claim`.
            Some(e.blocker) != skip && unsafe { e.blocker.as_ref() }.is_waiting()
        })
    }

    /// The number of entries (stale ones count).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the queue has no entries (stale ones count).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A successful claim. Dropping it finishes the claim: it releases the
/// blocker (`DONE`) and then wakes the waiter (step 3 of the protocol);
/// until then the waiter waits, and its packet belongs to the claimer.
pub(crate) struct Claimed {
    blocker: NonNull<Blocker>,
    packet: *mut (),
    /// The state word the claim wrote (only the claimer writes it after
    /// that, so `DONE` is a plain store).
    state: usize,
}

impl Claimed {
    /// The entry's packet (its type is the queue owner's business).
    #[inline]
    pub(crate) fn packet(&self) -> *mut () {
        self.packet
    }

    /// The operation number the claimed entry was queued with.
    #[inline]
    pub(crate) fn oper(&self) -> usize {
        self.state >> OPER_SHIFT
    }

    /// Whether the claimed waiter is a future (its blocker wakes a
    /// [`Waker`]): its owner polls or drops it on its own schedule, and
    /// both wait for the claim to finish, so such a claim must not be held
    /// across code that may wait for that owner.
    #[inline]
    pub(crate) fn is_future(&self) -> bool {
        // SAFETY: claimed and not yet DONE: the blocker is alive (as in
        // `drop`), and `who` is read-only to a claimer.
        matches!(unsafe { self.blocker.as_ref() }.who, Who::Waker(_))
    }

    /// Finishes the claim as a retry (the waiter looks again), whatever
    /// it was claimed as: for a claimer that gives up on the operation
    /// without touching the packet (a dynamic select's reservation
    /// dropped uncompleted).
    pub(crate) fn release(mut self) {
        self.state |= RETRY;
    }
}

/// One round of waiting for another claimer to finish, for a future's
/// blocker (which cannot block): a coroutine yields to the others of its
/// worker, a thread yields its core.
#[cfg(not(loom))]
fn yield_while_claimed() {
    if crate::is_coroutine() {
        crate::yield_now();
    } else {
        thread::yield_now();
    }
}

#[cfg(loom)]
fn yield_while_claimed() {
    thread::yield_now();
}

impl Drop for Claimed {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: claimed and not yet DONE, so the waiter is still waiting
        // and its blocker alive (protocol, step 4).
        let b = unsafe { self.blocker.as_ref() };
        let done = self.state | DONE;
        match &b.who {
            Who::Task(t) => {
                // SAFETY: the coroutine is waiting in this wait, hence
                // unfinished (see `Who::Task`).
                let task = unsafe { t.get() };
                // After each `DONE` store below the waiter may free the
                // blocker while the store's `&self` is formally still live
                // (the pattern of rust-lang/rust#55005, as in `Arc`'s
                // drop); nothing is read through `b` after it.
                if let Some(home) = task::home_here(task) {
                    // Its worker is this thread, busy with us: it cannot
                    // run (nor finish) before we are done here.
                    b.state.store(done, Release);
                    task::wake_at_home(home, task);
                } else {
                    // It may run on its own thread the moment it sees
                    // DONE: hold a reference across the wake.
                    // SAFETY: as above.
                    let task = unsafe { t.to_ref() };
                    b.state.store(done, Release);
                    task::wake(&*task);
                }
            }
            Who::Thread(t) => {
                let t = t.clone();
                b.state.store(done, Release);
                t.unpark();
            }
            Who::Waker(w) => {
                // The future may be dropped the moment it sees DONE: take
                // the waker out first (leaving one that does nothing; the
                // blocker's wait is over, nobody wakes it again).
                // SAFETY: claimed, so its owner no longer touches it
                // (`set_waker`) until it sees DONE, and we are its only
                // claimer.
                let w = unsafe { std::mem::replace(&mut *w.get(), Waker::noop().clone()) };
                b.state.store(done, Release);
                // A user's waker: its panic (reported by the hook) must
                // not unwind through the claimer, whose owner (a channel
                // handing over a value, waking the receivers of a close,
                // counting a select's reservation) is mid-way through its
                // own bookkeeping, and would lose a value or leave
                // waiters unwoken.
                crate::wake_surviving(w);
            }
        }
    }
}

/// Model checks of the protocol (`RUSTFLAGS="--cfg loom" cargo test
/// --release --lib loom_`; `.ci/run` runs them), on plain threads: a
/// claim and a give-up race, and exactly one wins; a wake is never lost.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    /// A queue under a lock, as its owners keep it.
    type Shared = Arc<Lock<WaitQueue>>;

    /// A waiter that gives up (as on a deadline) while a waker claims it:
    /// exactly one of them wins, and a claimed waiter sees `Done` with the
    /// packet written.
    #[test]
    fn loom_claim_or_abort_exactly_once() {
        loom::model(|| {
            let q: Shared = Arc::new(Lock::new(WaitQueue::new()));
            let claimed = Arc::new(AtomicBool::new(false));
            let waker = {
                let (q, claimed) = (q.clone(), claimed.clone());
                loom::thread::spawn(move || {
                    let c = q.lock().claim(None, false);
                    if let Some(c) = c {
                        // SAFETY: the waiter's packet is a u32, ours until
                        // the claim is dropped.
                        unsafe { *c.packet().cast::<u32>() = 7 };
                        claimed.store(true, Relaxed);
                    }
                })
            };
            let blocker = Blocker::new(Wait::Park);
            let mut packet = 0u32;
            // SAFETY: both live until the end of this closure, after the
            // entry is removed or DONE is seen.
            unsafe { q.lock().push(&blocker, 3, (&mut packet as *mut u32).cast()) };
            if blocker.abort() {
                q.lock().remove(&blocker);
                waker.join().unwrap();
                assert!(!claimed.load(Relaxed), "claimed after an abort");
            } else {
                assert_eq!(blocker.wait(None, true), Woken::Done(3));
                // Read the packet only after DONE (Acquire).
                assert_eq!(unsafe { std::ptr::read_volatile(&packet) }, 7);
                waker.join().unwrap();
                assert!(claimed.load(Relaxed));
            }
        });
    }

    /// A waiter that checks its condition and queues under the lock, and a
    /// waker that sets the condition and claims under the lock: the waiter
    /// always wakes (no lost wakeup), by a claim or by the condition.
    #[test]
    fn loom_no_lost_wakeup() {
        loom::model(|| {
            let q: Shared = Arc::new(Lock::new(WaitQueue::new()));
            let flag = Arc::new(AtomicBool::new(false));
            let waker = {
                let (q, flag) = (q.clone(), flag.clone());
                loom::thread::spawn(move || {
                    let mut g = q.lock();
                    flag.store(true, Relaxed);
                    let c = g.claim(None, true);
                    drop(g);
                    drop(c);
                })
            };
            loop {
                let mut g = q.lock();
                if flag.load(Relaxed) {
                    break;
                }
                let blocker = Blocker::new(Wait::Park);
                // SAFETY: we wait for DONE below (no abort without a
                // deadline or cancellation).
                unsafe { g.push(&blocker, 0, std::ptr::null_mut()) };
                drop(g);
                assert_eq!(blocker.wait(None, true), Woken::Retry(0));
            }
            waker.join().unwrap();
        });
    }

    /// A future's blocker whose waker is replaced (a poll with a new
    /// waker, under the queue's lock) while a waker claims it: the claim
    /// wakes the waker that the future waits with, or the future sees the
    /// claim (a lost wakeup would leave it waiting forever: a deadlock of
    /// the model).
    #[test]
    fn loom_future_waker_replaced_during_a_claim() {
        use std::task::Wake;

        struct Flag(AtomicBool, Thread);
        impl Wake for Flag {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.store(true, Release);
                self.1.unpark();
            }
        }

        loom::model(|| {
            let q: Shared = Arc::new(Lock::new(WaitQueue::new()));
            let first = std::sync::Arc::new(Flag(AtomicBool::new(false), thread::current()));
            let second = std::sync::Arc::new(Flag(AtomicBool::new(false), thread::current()));
            let blocker = Blocker::for_waker(first.clone().into());
            // SAFETY: the blocker lives until the end of the model, after
            // the claim finished (we wait for DONE below).
            unsafe { q.lock().push(&blocker, 0, std::ptr::null_mut()) };
            let waker = {
                let q = q.clone();
                loom::thread::spawn(move || {
                    let c = q.lock().claim(None, false);
                    drop(c);
                })
            };
            // The re-poll with a new waker.
            let new: std::task::Waker = second.clone().into();
            loop {
                if let Some(w) = blocker.poll_woken() {
                    assert_eq!(w, Woken::Done(0));
                    break;
                }
                let g = q.lock();
                // SAFETY: we hold the queue's lock and own the blocker.
                if unsafe { blocker.set_waker(&new) } {
                    drop(g);
                    // Pending: only the new waker brings us back.
                    while !second.0.load(Acquire) {
                        thread::park();
                    }
                }
            }
            waker.join().unwrap();
        });
    }
}
