//! Readiness of file descriptors for coroutines: what a socket's users
//! share with their worker's driver.
//!
//! # Why a socket is registered with one worker
//!
//! A started coroutine never leaves its worker, so a socket is, nearly
//! always, waited on by coroutines of one worker. Each socket is registered
//! (once, edge-triggered, for reading and writing) with the driver (see
//! `crate::driver`) of the worker whose coroutine first has to wait on it;
//! that worker then learns of its readiness itself and wakes the waiter on
//! its own queue, with no other thread involved. Go has one poller for all
//! its Ps because its goroutines move; ours do not. A socket shared with
//! coroutines of other workers still works: its events arrive at the
//! registering worker, which wakes those waiters through their home
//! workers' inboxes. The driver knows nothing of the waiters: an
//! [`IoState`] is the [`Ready`] target of its registration.
//!
//! # Readiness
//!
//! [`IoState`] is what one registered file descriptor shares between its
//! users and the poller: a `readiness` word and two queues of waiters, one
//! for reading and one for writing, so that one coroutine can read a socket
//! while another writes it. The word holds readiness bits and, above them,
//! a tick counted up by every event:
//!
//! * the poller ORs the event's bits in and bumps the tick, then wakes
//!   *one* waiter of each direction that became ready (see "One wake per
//!   event" below);
//! * a user that got `WouldBlock` clears the direction's bit, but only if
//!   the tick is still the one it read before the operation: an event that
//!   came in between is kept, so an edge cannot be lost;
//! * a waiter, under the queues' lock, checks the direction's readiness and
//!   sets the direction's *waiting* bit (also in the word) in one atomic
//!   operation, then queues; the poller's operation that records an event
//!   also reads the waiting bits, so either the waiter sees the event or the
//!   poller sees the bit, and then takes the lock (after the waiter queued)
//!   and wakes it. A direction whose bit is clear costs the poller no lock:
//!   the writable edge that epoll reports with every readable one on an
//!   edge-triggered socket, and every event of a socket whose coroutine is
//!   busy. The poller clears a waiting bit, under the lock, when it finds
//!   the queue empty.
//!
//! # One wake per event, passed on
//!
//! Many coroutines may wait on one descriptor: receivers sharing a UDP
//! socket, acceptors sharing a listener. Waking all of them for every
//! event (as tokio's readiness does) costs one wake, switch and requeue
//! per waiter per event, of which all but one find nothing: at light load,
//! with 1,000 receivers parked, several times the CPU per request of one
//! receiver (`bench/shared-pairs.sh`). Go avoids it by letting one
//! goroutine at a time wait in the poller (the descriptor's read lock);
//! its goroutines move to whichever P is free. Ours do not, so here an
//! event wakes one waiter *per worker*, which *passes the wake on*:
//!
//! * a coroutine's wait in the I/O loop (`Source::io`) queues its entry
//!   as [`PASSES_ON`], in the FIFO of its worker: woken, it retries its
//!   operation, and when that does not return `WouldBlock` (it moved data,
//!   or failed, or found the end) it calls [`IoState::pass_on`], which, if
//!   the direction still has waiters and is still ready (a datagram socket
//!   stays ready after a receive: more may be queued; a drained stream
//!   does not), wakes the next waiter of its own worker. A `WouldBlock`
//!   clears the readiness instead, and the waiters left sleep until the
//!   next event, as they should;
//! * one per worker, not one in all: a woken coroutine runs only on its
//!   own worker, which may be busy (a long computation, a full run queue)
//!   or gone for good (a runtime dropped under `panic = "abort"` leaves its
//!   coroutines suspended); the first waiter of an idle worker must not
//!   wait behind it (from a review: a datagram waited 3 s for a busy
//!   worker while a receiver idled on the other). So an event wakes the
//!   first of every worker, and each passes on within its worker only: an
//!   event costs at most one wake per worker with waiters, and a
//!   successful operation at most one more, whatever their number (a
//!   pass to every worker cost W wakes per datagram, and woke a busy
//!   worker's next waiter behind the one still queued to run: from a
//!   second review);
//! * every other waiter (an async task's waker, a future's entry, a wait
//!   for readiness alone, `Fd::readable`) cannot promise to retry: it may
//!   be dropped, or its caller may do something else. Every event wakes
//!   all of them (they are rare on a shared socket), and the async slot,
//!   as before.
//!
//! Why no waiter is left asleep while the direction is ready: a waiter
//! queues only after finding the direction not ready (in the same
//! operation that sets the waiting bit), and only an event makes it ready
//! again, which wakes the first `PASSES_ON` waiter of each worker. Each
//! either finds it not ready again (no one to wake) or succeeds and passes
//! the wake on to the next of its worker, which does the same: every
//! worker with waiters at the event has one woken waiter answerable for
//! them while the direction stays ready; its `pass_on` reads the word
//! after its own `seen`, so it sees the waiting bit of every waiter
//! queued before the event. A waiter that queues later found the
//! direction not ready, and the next event covers it. A descriptor's close
//! ([`Ready::driver_closed`]) and a shutdown through it ([`IoState::mark`])
//! still wake everyone. The loom model `loom_one_edge_two_readers` checks
//! the pass (two datagrams, one edge, two parked readers).
//!
//! # Lifetime
//!
//! The driver's table holds a reference to each registered state (see
//! "Lifetime of registrations" in `crate::driver`); dropping a socket
//! deregisters it. When the driver goes away (its worker exits), each
//! state is told: it marks itself unregistered and wakes its waiters, who
//! register with their own worker's driver and wait again.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
#[cfg(not(loom))]
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::*;
use std::task::Waker;

// The readiness word is what the loom model checks (`loom_tests`).
#[cfg(loom)]
use loom::sync::atomic::AtomicUsize;

use mio::Token;

use crate::driver::{self, Ready};
pub(crate) use crate::driver::{ERROR, READ_CLOSED, READABLE, URGENT, WRITABLE, WRITE_CLOSED};
use crate::park::{Blocker, Claimed, Lock, LockGuard, WaitQueue, Woken};
use crate::runtime::dump::Wait;

/// Not readiness: coroutines may be queued to read (set under the waiters'
/// lock before one queues, cleared under it when the poller finds none).
const READ_WAITING: usize = 32;
/// Not readiness: coroutines may be queued to write (as `READ_WAITING`).
const WRITE_WAITING: usize = 64;
/// The operation number of a waiter that retries its operation once woken
/// and then calls [`IoState::pass_on`] (see "One wake per event, passed
/// on"), queued in its worker's FIFO; others queue with 0.
pub(crate) const PASSES_ON: usize = 1;
/// Where the event tick starts in `readiness`.
const TICK_SHIFT: u32 = 8;
const TICK_ONE: usize = 1 << TICK_SHIFT;
const BITS: usize = TICK_ONE - 1;

/// A direction of I/O.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    Read,
    Write,
}

impl Dir {
    /// What a dump says a coroutine waiting for this direction waits for.
    #[inline]
    pub(crate) fn wait(self) -> Wait {
        match self {
            Dir::Read => Wait::SocketRead,
            Dir::Write => Wait::SocketWrite,
        }
    }

    /// The bits that let an operation in this direction go ahead (it then
    /// completes or fails, without blocking). A `WouldBlock` proves all of
    /// them stale, the closed ones too: on a stream those never meet a
    /// `WouldBlock` (reads return 0, writes fail), but a datagram socket
    /// whose reading was shut down keeps reporting `READ_CLOSED` while its
    /// reads return `WouldBlock`, and keeping the bit would make the user
    /// spin.
    #[inline]
    pub(crate) fn ready_mask(self) -> usize {
        match self {
            Dir::Read => READABLE | READ_CLOSED | ERROR,
            Dir::Write => WRITABLE | WRITE_CLOSED | ERROR,
        }
    }

    /// The direction's "may have waiters" bit.
    #[inline]
    fn waiting_bit(self) -> usize {
        match self {
            Dir::Read => READ_WAITING,
            Dir::Write => WRITE_WAITING,
        }
    }
}

/// What one registered descriptor shares with its worker's driver:
/// readiness and waiters (see the module docs).
pub(crate) struct IoState {
    /// Readiness bits, and the event tick above them.
    readiness: AtomicUsize,
    /// Waiters for each direction.
    waiters: Lock<Waiters>,
    /// The driver this descriptor is registered with, and its token there.
    registered: Lock<Option<(Arc<driver::Handle>, Token)>>,
    /// Registered with a driver that has not closed: set under the
    /// `registered` lock by `register`, cleared by `deregister` and when the
    /// driver closes (`driver_closed`, under the same lock, before the
    /// waiters are woken). Lets
    /// every wait after the first skip that lock, twice.
    live: AtomicBool,
}

// Sockets are unwind-safe, as std's (a handler run under `catch_unwind`
// that uses one): the state behind these locks is changed only in coio's
// own short sections, whose guards release on unwind and which leave it
// consistent wherever a panic can start (a user's waker cloned or dropped
// under the waiters' lock included: at worst a stale "may have waiters"
// bit, which costs a look at an empty queue).
impl std::panic::RefUnwindSafe for IoState {}
impl std::panic::UnwindSafe for IoState {}

struct Waiters {
    read: DirQueue,
    write: DirQueue,
    /// The task of an async reader (`poll_ready`): one per direction, the
    /// latest poll's, as tokio's sockets keep it.
    read_task: Option<Waker>,
    /// The task of an async writer.
    write_task: Option<Waker>,
}

/// The waiters of one direction (see "One wake per event, passed on"):
/// coroutines that pass the wake on, in one FIFO per home worker, and the
/// others, in one FIFO.
#[derive(Default)]
struct DirQueue {
    /// [`PASSES_ON`] waiters by their worker's `uid` (few: the workers
    /// whose coroutines wait on this descriptor at once). An empty queue
    /// stays, with its buffer, for its worker's next wait (no allocation
    /// per wait), or for another worker's: a slot is reused whenever it is
    /// empty, so there are never more than the most workers that waited
    /// at once.
    homes: Vec<(usize, WaitQueue)>,
    /// Waiters that cannot promise to retry: woken by every event.
    others: WaitQueue,
}

/// Where a wake's pass through a direction's queues stands (see
/// `IoState::wake_one`): the others it may still claim (as many as were
/// queued when it began: one that queues again meanwhile is not claimed
/// twice), and the next home slot.
struct Cursor {
    others: usize,
    home: usize,
}

impl DirQueue {
    fn new() -> DirQueue {
        DirQueue {
            homes: Vec::new(),
            others: WaitQueue::new(),
        }
    }

    /// Whether no entry is queued (stale ones count).
    fn is_empty(&self) -> bool {
        self.others.is_empty() && self.homes.iter().all(|(_, q)| q.is_empty())
    }

    /// Queues `blocker`: in its home's FIFO if it passes the wake on
    /// (`home`: its worker's `uid`), else with the others.
    ///
    /// # Safety
    /// As [`WaitQueue::push`].
    unsafe fn push(&mut self, blocker: &Blocker, home: Option<usize>) {
        let Some(home) = home else {
            // SAFETY: the caller's.
            unsafe { self.others.push(blocker, 0, std::ptr::null_mut()) };
            return;
        };
        let i = match self.homes.iter().position(|(h, _)| *h == home) {
            Some(i) => i,
            None => match self.homes.iter().position(|(_, q)| q.is_empty()) {
                // An empty slot, another worker's: now this one's.
                Some(i) => {
                    self.homes[i].0 = home;
                    i
                }
                None => {
                    self.homes.push((home, WaitQueue::new()));
                    self.homes.len() - 1
                }
            },
        };
        // SAFETY: the caller's.
        unsafe {
            self.homes[i]
                .1
                .push(blocker, PASSES_ON, std::ptr::null_mut())
        };
    }

    /// Removes `blocker`'s entry, queued with `home` (after it gave up).
    fn remove(&mut self, blocker: &Blocker, home: Option<usize>) {
        let Some(home) = home else {
            self.others.remove(blocker);
            return;
        };
        if let Some((_, q)) = self.homes.iter_mut().find(|(h, _)| *h == home) {
            q.remove(blocker);
        }
    }

    /// The next claim of a wake's pass (`cursor`): an other waiter while
    /// the cursor allows, then the oldest waiter of each home slot in turn
    /// (slots never move: a pass visits every one that was there when it
    /// began). None when the pass has nothing more to claim.
    fn claim_next(&mut self, cursor: &mut Cursor) -> Option<Claimed> {
        while cursor.others > 0 {
            cursor.others -= 1;
            match self.others.claim_oldest(true) {
                Some((_, c)) => return Some(c),
                None => cursor.others = 0,
            }
        }
        while cursor.home < self.homes.len() {
            let i = cursor.home;
            cursor.home += 1;
            if let Some((_, c)) = self.homes[i].1.claim_oldest(true) {
                return Some(c);
            }
        }
        None
    }

    /// Whether the pass at `cursor` has nothing more to claim.
    fn pass_over(&self, cursor: &Cursor) -> bool {
        (cursor.others == 0 || self.others.is_empty())
            && self.homes[cursor.home.min(self.homes.len())..]
                .iter()
                .all(|(_, q)| q.is_empty())
    }

    /// Claims the oldest waiter of `home`'s queue, if any.
    fn claim_home(&mut self, home: usize) -> Option<Claimed> {
        let (_, q) = self.homes.iter_mut().find(|(h, _)| *h == home)?;
        q.claim_oldest(true).map(|(_, c)| c)
    }

    /// Claims any waiter (the others first).
    fn claim_any(&mut self) -> Option<Claimed> {
        if let Some((_, c)) = self.others.claim_oldest(true) {
            return Some(c);
        }
        self.homes
            .iter_mut()
            .find_map(|(_, q)| q.claim_oldest(true).map(|(_, c)| c))
    }
}

impl Waiters {
    fn queue(&mut self, dir: Dir) -> &mut DirQueue {
        match dir {
            Dir::Read => &mut self.read,
            Dir::Write => &mut self.write,
        }
    }

    fn task(&mut self, dir: Dir) -> &mut Option<Waker> {
        match dir {
            Dir::Read => &mut self.read_task,
            Dir::Write => &mut self.write_task,
        }
    }
}

/// The readiness seen before an operation, to clear it after a
/// `WouldBlock` (see [`IoState::clear`]).
#[derive(Clone, Copy)]
pub(crate) struct Seen(usize);

impl IoState {
    /// A descriptor not yet registered, assumed ready both ways: the first
    /// operation is simply tried.
    pub(crate) fn new() -> IoState {
        IoState {
            readiness: AtomicUsize::new(READABLE | WRITABLE),
            waiters: Lock::new(Waiters {
                read: DirQueue::new(),
                write: DirQueue::new(),
                read_task: None,
                write_task: None,
            }),
            registered: Lock::new(None),
            live: AtomicBool::new(false),
        }
    }

    /// The current readiness, for [`is_ready`](Self::is_ready) and
    /// [`clear`](Self::clear).
    #[inline]
    pub(crate) fn seen(&self) -> Seen {
        Seen(self.readiness.load(Acquire))
    }

    #[inline]
    pub(crate) fn is_ready(seen: Seen, dir: Dir) -> bool {
        seen.0 & dir.ready_mask() != 0
    }

    /// An operation in direction `dir` returned `WouldBlock`: clears the
    /// direction's bits unless an event came after `seen` was read.
    #[inline]
    pub(crate) fn clear(&self, seen: Seen, dir: Dir) {
        self.clear_bits(seen, dir.ready_mask());
    }

    /// A read or write of a stream moved fewer bytes than asked: the
    /// socket's buffer was drained (or filled), so the direction is not
    /// ready, unless an event came after `seen` was read. Only the
    /// readiness bit goes: an end of stream, a hang-up or an error already
    /// reported must still let the next operation through (it returns 0 or
    /// the error at once), since epoll will not report it again. Not on a
    /// socket that had urgent data ([`URGENT`]): its reads stop at the
    /// urgent mark, drained or not, and only a `WouldBlock` tells.
    #[inline]
    pub(crate) fn clear_drained(&self, seen: Seen, dir: Dir) {
        let bit = match dir {
            Dir::Read if seen.0 & URGENT != 0 => return,
            Dir::Read => READABLE,
            Dir::Write => WRITABLE,
        };
        self.clear_bits(seen, bit);
    }

    #[inline]
    fn clear_bits(&self, seen: Seen, bits: usize) {
        let new = seen.0 & !bits;
        if new != seen.0 {
            // A failed CAS means the tick moved: keep the new event.
            let _ = self
                .readiness
                .compare_exchange(seen.0, new, AcqRel, Relaxed);
        }
    }

    /// The poller saw an event: records it, then wakes a waiter of each
    /// direction it makes ready (`wake_one`; every waiter if `all`), if
    /// that direction may have any (its
    /// waiting bit, read by the same atomic operation that records the
    /// event: a waiter sets the bit, under the waiters' lock, by an
    /// operation on the same word that checks readiness, so either the
    /// waiter sees the event or the poller sees the bit, and then takes the
    /// lock after the waiter has queued). An event on a socket nobody waits
    /// on (the writable edge that comes with every readable one) takes no
    /// lock.
    fn record(&self, bits: usize, all: bool) {
        let mut cur = self.readiness.load(Relaxed);
        loop {
            let new = ((cur & !BITS).wrapping_add(TICK_ONE)) | (cur & BITS) | bits;
            match self
                .readiness
                .compare_exchange_weak(cur, new, AcqRel, Relaxed)
            {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        for dir in [Dir::Read, Dir::Write] {
            if bits & dir.ready_mask() != 0 && cur & dir.waiting_bit() != 0 {
                if all {
                    self.wake_all(dir);
                } else {
                    self.wake_one(dir);
                }
            }
        }
    }

    /// Records `bits` that the poller will not report (a shutdown made
    /// through this descriptor), waking all their directions' waiters.
    pub(crate) fn mark(&self, bits: usize) {
        self.record(bits, true);
    }

    /// A coroutine of worker `home` that was woken to retry (or just tried)
    /// its operation in direction `dir` did not get `WouldBlock`: if the
    /// direction still has waiters and is still ready, wakes the next of
    /// that worker's (see "One wake per event, passed on"; the event woke
    /// the first of every worker, each of which passes on within its
    /// worker). One load when nobody else waits.
    #[inline]
    pub(crate) fn pass_on(&self, dir: Dir, home: usize) {
        let cur = self.readiness.load(Acquire);
        if cur & dir.waiting_bit() != 0 && Self::is_ready(Seen(cur), dir) {
            self.wake_home(dir, home);
        }
    }

    /// The pass of `pass_on`: wakes the oldest waiter of `home`, if any.
    #[cold]
    #[inline(never)]
    fn wake_home(&self, dir: Dir, home: usize) {
        let claimed = {
            let mut w = self.waiters.lock();
            let queue = w.queue(dir);
            let claimed = queue.claim_home(home);
            if queue.is_empty() {
                self.readiness.fetch_and(!dir.waiting_bit(), AcqRel);
            }
            claimed
        };
        // Outside the lock.
        drop(claimed);
    }

    /// An event's wake: the oldest [`PASSES_ON`] waiter of each home
    /// worker of `dir`, every other waiter queued when it began, and the
    /// async waiter's waker, each claim finished outside the lock (one
    /// claim per lock: no allocation, whatever their number). Clears the
    /// direction's waiting bit, under the lock, once the queues are empty.
    /// As in `wake_all`, the async slot is emptied on every round.
    #[cold]
    #[inline(never)]
    fn wake_one(&self, dir: Dir) {
        let mut cursor: Option<Cursor> = None;
        loop {
            let (claimed, task, over) = {
                let mut w = self.waiters.lock();
                let task = w.task(dir).take();
                let queue = w.queue(dir);
                let cursor = cursor.get_or_insert_with(|| Cursor {
                    others: queue.others.len(),
                    home: 0,
                });
                let claimed = queue.claim_next(cursor);
                if queue.is_empty() {
                    self.readiness.fetch_and(!dir.waiting_bit(), AcqRel);
                }
                let over = claimed.is_none() || queue.pass_over(cursor);
                (claimed, task, over)
            };
            // Outside the lock.
            drop(claimed);
            if let Some(t) = task {
                // On the poller (a worker) or a coroutine passing a wake
                // on: a panicking waker goes no further.
                crate::wake_surviving(t);
            }
            if over {
                break;
            }
        }
    }

    /// Wakes every waiter of `dir`, each claim finished (its wake made)
    /// outside the lock, and clears the direction's waiting bit once the
    /// queues and the async waiter's slot are empty (under the lock, where
    /// waiters set it). The slot is emptied on every pass: an async task
    /// may keep a waker there again between two passes (polled by another
    /// thread, woken by something else), and a slot left full would keep
    /// the loop going forever.
    fn wake_all(&self, dir: Dir) {
        loop {
            let (claimed, task, empty) = {
                let mut w = self.waiters.lock();
                let task = w.task(dir).take();
                let queue = w.queue(dir);
                let claimed = queue.claim_any();
                let empty = queue.is_empty();
                if empty {
                    self.readiness.fetch_and(!dir.waiting_bit(), AcqRel);
                }
                (claimed, task, empty)
            };
            // Outside the lock.
            drop(claimed);
            if let Some(t) = task {
                // On the poller (a worker) or a coroutine passing a wake
                // on: a panicking waker goes no further.
                crate::wake_surviving(t);
            }
            if empty {
                break;
            }
        }
    }

    /// Registers `fd` (whose state this is) with `driver`, unless it is
    /// registered with a driver that has not closed already.
    #[inline]
    pub(crate) fn register(
        self: &Arc<Self>,
        fd: RawFd,
        driver: &Arc<driver::Handle>,
    ) -> io::Result<()> {
        if self.live.load(Acquire) {
            return Ok(());
        }
        self.register_slow(fd, driver)
    }

    #[cold]
    fn register_slow(self: &Arc<Self>, fd: RawFd, handle: &Arc<driver::Handle>) -> io::Result<()> {
        let mut reg = self.registered.lock();
        if let Some((h, _)) = &*reg {
            if !h.is_closed() {
                // (Live already, unless a close of another driver cleared
                // it: see `driver_closed`.)
                self.live.store(true, Release);
                return Ok(());
            }
            // Its worker is gone, and its driver with it (whose table let
            // go of us): start over here.
            h.forget();
            *reg = None;
        }
        let token = handle.register(fd, self.clone())?;
        *reg = Some((handle.clone(), token));
        self.live.store(true, Release);
        Ok(())
    }

    /// Removes `fd` from its driver, if registered (see "Lifetime of
    /// registrations" in `crate::driver`). Called before `fd` is closed or
    /// given away.
    pub(crate) fn deregister(&self, fd: RawFd) {
        let (handle, token) = {
            let mut reg = self.registered.lock();
            let Some(r) = reg.take() else {
                return;
            };
            // Under the lock, as every write of `live` (a registration
            // after it must find the flag cleared, not clear it after).
            self.live.store(false, Release);
            r
        };
        handle.deregister(fd, token);
    }

    /// Whether the driver this descriptor is registered with has closed (its
    /// events will never come; the caller retries and re-registers).
    #[inline]
    fn unregistered(&self) -> bool {
        !self.live.load(Acquire)
    }

    /// Waits until `dir` is ready, `deadline` passes (`TimedOut`) or the
    /// coroutine is cancelled (it unwinds). The descriptor must be
    /// registered. Called by a coroutine (or a coroutine's thread blocking
    /// in place while it unwinds). `passes_on`, the `uid` of the caller's
    /// worker: once woken (an `Ok`), the caller retries its operation and,
    /// unless that returns `WouldBlock`, calls [`pass_on`](Self::pass_on);
    /// an event then wakes it alone of the waiters of that worker (see
    /// "One wake per event, passed on").
    #[inline(always)]
    pub(crate) fn wait(
        &self,
        dir: Dir,
        deadline: Option<std::time::Instant>,
        wait: Wait,
        passes_on: Option<usize>,
    ) -> io::Result<()> {
        let blocker = Blocker::new(wait);
        {
            let mut w = self.waiters.lock();
            if self.unregistered() {
                return Ok(());
            }
            // Checks readiness and announces the waiter in one operation
            // (see `record`).
            let announced = self.readiness.fetch_update(AcqRel, Acquire, |cur| {
                (!Self::is_ready(Seen(cur), dir)).then_some(cur | dir.waiting_bit())
            });
            if announced.is_err() {
                return Ok(());
            }
            // SAFETY: the entry is removed (below, or by a claimer) before
            // `blocker` goes out of scope: `wait` returns only after a
            // claim finished or after the abort, and on abort we remove it.
            unsafe { w.queue(dir).push(&blocker, passes_on) };
        }
        match blocker.wait_inlined(deadline, true) {
            Woken::Done(_) | Woken::Retry(_) => Ok(()),
            Woken::TimedOut => {
                self.waiters.lock().queue(dir).remove(&blocker, passes_on);
                Err(super::source::timed_out())
            }
            Woken::Cancelled => {
                self.waiters.lock().queue(dir).remove(&blocker, passes_on);
                crate::park::unwind_cancelled()
            }
        }
    }
}

impl IoState {
    /// Whether the descriptor is registered with a live driver (else an
    /// async waiter must register it first: [`poll_ready`] would return at
    /// once).
    ///
    /// [`poll_ready`]: Self::poll_ready
    #[inline]
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Acquire)
    }

    /// An async waiter's first step, as `wait`'s: None (no wait) if the
    /// descriptor is not registered with a live driver or `dir` is ready;
    /// else the waiters' lock, with the direction's waiting bit set by the
    /// same operation that found it not ready (see `record`), for the
    /// caller to keep its waiter under.
    fn announce(&self, dir: Dir) -> Option<LockGuard<'_, Waiters>> {
        let w = self.waiters.lock();
        if self.unregistered() {
            return None;
        }
        self.readiness
            .fetch_update(AcqRel, Acquire, |cur| {
                (!Self::is_ready(Seen(cur), dir)).then_some(cur | dir.waiting_bit())
            })
            .ok()?;
        Some(w)
    }

    /// The async form of [`wait`](Self::wait): `Ready` if `dir` is ready
    /// (or the descriptor is not registered with a live driver: the caller
    /// then registers it and tries again), else `Pending` with `waker`
    /// kept to be woken by the next event of `dir` (replacing the one of
    /// an earlier poll: one async waiter per direction).
    pub(crate) fn poll_ready(&self, dir: Dir, waker: &Waker) -> std::task::Poll<()> {
        use std::task::Poll;
        let Some(mut w) = self.announce(dir) else {
            return Poll::Ready(());
        };
        crate::runtime::task::keep_waker(w.task(dir), waker);
        Poll::Pending
    }
}

/// An async waiter of one direction with an entry of its own in the
/// direction's queue, as a coroutine's `wait` has, instead of the one
/// waker slot of [`IoState::poll_ready`] (whose last poll's waker
/// replaces the others'): for futures that several tasks may await at
/// once on one socket (`accept_async` on a shared listener). Every event
/// of the direction wakes it (see "One wake per event, passed on").
/// Dropping it removes its entry.
#[derive(Default)]
pub(crate) struct QueuedWait {
    /// The queued entry: the state whose queue holds it, the direction,
    /// and the blocker, boxed so that the entry's address stays put while
    /// the future that owns this moves between polls.
    entry: Option<(Arc<IoState>, Dir, Box<Blocker>)>,
}

impl QueuedWait {
    /// Removes the entry, if any (claimed or not: a claim in progress is
    /// waited out, so that the claimer is done with the blocker).
    pub(crate) fn clear(&mut self) {
        let Some((state, dir, blocker)) = self.entry.take() else {
            return;
        };
        if blocker.abort() {
            state.waiters.lock().queue(dir).remove(&blocker, None);
        } else {
            // Claimed: `poll_woken` returns once the claim is finished.
            let _ = blocker.poll_woken();
        }
    }
}

impl Drop for QueuedWait {
    fn drop(&mut self) {
        self.clear();
    }
}

impl IoState {
    /// [`poll_ready`](Self::poll_ready) with an entry of the caller's own
    /// ([`QueuedWait`]): `Ready` if `dir` is ready, the descriptor is not
    /// registered with a live driver, or `wait`'s entry was woken (the
    /// entry is gone then); else `Pending` with `wait` queued, or its
    /// waker brought up to date.
    pub(crate) fn poll_ready_queued(
        self: &Arc<Self>,
        dir: Dir,
        wait: &mut QueuedWait,
        waker: &Waker,
    ) -> std::task::Poll<()> {
        use std::task::Poll;
        if let Some((_, _, blocker)) = &wait.entry {
            if blocker.poll_woken().is_none() {
                let _w = self.waiters.lock();
                // SAFETY: we hold the lock of the one queue with the
                // blocker's entry, and own the blocker.
                if unsafe { blocker.set_waker(waker) } {
                    return Poll::Pending;
                }
            }
            // Woken (or claimed while we looked): the entry is gone.
            wait.clear();
            return Poll::Ready(());
        }
        let Some(mut w) = self.announce(dir) else {
            return Poll::Ready(());
        };
        let blocker = Box::new(Blocker::for_waker(waker.clone()));
        // SAFETY: the entry is removed before the box is freed: by a claim
        // (which `QueuedWait::clear` waits out) or by `clear` itself.
        unsafe { w.queue(dir).push(&blocker, None) };
        drop(w);
        wait.entry = Some((self.clone(), dir, blocker));
        Poll::Pending
    }
}

impl Ready for IoState {
    fn set_ready(&self, bits: usize) {
        self.record(bits, false);
    }

    /// Nothing polls the driver any more: whoever waits (coroutines of
    /// other runtimes, or of this one's other workers) is woken, finds the
    /// state unregistered and registers with its own worker. `live` is
    /// cleared before the wakes: a waiter that queues after them sees it
    /// under its queue's lock (`wait`); one queued before is woken.
    fn driver_closed(&self) {
        // Under the `registered` lock: a registration from another thread
        // (async code off the workers, `Source::register_async`) that put
        // this state in the slab before the driver took it sets `live`
        // under that lock too, and must not set it after this clears it.
        // Only if the registration is still this driver's (or none): a
        // registrant that found it closed may have moved it to another
        // driver meanwhile, whose `live` this must not clear (the state
        // would then wait as if unregistered, and never re-register: a
        // spin).
        let reg = self.registered.lock();
        if reg.as_ref().is_none_or(|(h, _)| h.is_closed()) {
            self.live.store(false, Release);
        }
        drop(reg);
        // Users' wakers run here (at a worker's end): one that panics (the
        // hook has reported it) must not keep the others from being woken.
        // `wake_all` takes each task out before waking it, so going on
        // wakes the rest.
        for dir in [Dir::Read, Dir::Write] {
            while crate::surviving(|| self.wake_all(dir)).is_none() {}
        }
    }
}

/// Model checks of the readiness protocol (`RUSTFLAGS="--cfg loom" cargo
/// test --release --lib loom_`; `.ci/run` runs them), with plain threads as
/// the socket's user and as the poller, and a flag as the socket's data.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    /// A state as `register` leaves it (no poller: the model plays the
    /// poller's part itself).
    fn registered() -> IoState {
        let state = IoState::new();
        state.live.store(true, std::sync::atomic::Ordering::Release);
        state
    }

    /// The user's loop of `Source::io` for a read: try while the word says
    /// ready, clear after `WouldBlock`, wait otherwise.
    fn read(state: &IoState, data: &AtomicBool) {
        loop {
            let seen = state.seen();
            if IoState::is_ready(seen, Dir::Read) {
                // (A CAS, not a swap: loom 0.7's `swap` was seen to read a
                // value older than the thread's own store.)
                if data.compare_exchange(true, false, SeqCst, SeqCst).is_ok() {
                    state.pass_on(Dir::Read, 1);
                    return;
                }
                state.clear(seen, Dir::Read);
            }
            state
                .wait(Dir::Read, None, Wait::SocketRead, Some(1))
                .unwrap();
        }
    }

    /// Data arrives (the kernel's part), then the poller reports the edge,
    /// while the user tries, clears and waits: the user always gets the
    /// data (a lost edge would leave it waiting forever, which loom reports
    /// as a deadlock).
    #[test]
    fn loom_edge_is_never_lost() {
        loom::model(|| {
            let state = Arc::new(registered());
            let data = Arc::new(AtomicBool::new(false));
            let poller = {
                let (state, data) = (state.clone(), data.clone());
                loom::thread::spawn(move || {
                    data.store(true, SeqCst);
                    state.set_ready(READABLE);
                })
            };
            read(&state, &data);
            poller.join().unwrap();
        });
    }

    /// A reader of a datagram socket (`data` counts the datagrams queued),
    /// as `Source::io` reads: try while ready, take one datagram and pass
    /// the wake on, clear on `WouldBlock` (none left), wait otherwise.
    fn read_datagram(state: &IoState, data: &loom::sync::atomic::AtomicUsize) {
        loop {
            let seen = state.seen();
            if IoState::is_ready(seen, Dir::Read) {
                let n = data.load(SeqCst);
                if n > 0 {
                    if data.compare_exchange(n, n - 1, SeqCst, SeqCst).is_ok() {
                        state.pass_on(Dir::Read, 1);
                        return;
                    }
                    // Another reader took one meanwhile: try again (a
                    // datagram socket's `EINTR`-like retry, for the model).
                    continue;
                }
                state.clear(seen, Dir::Read);
            }
            state
                .wait(Dir::Read, None, Wait::SocketRead, Some(1))
                .unwrap();
        }
    }

    /// Two readers share a datagram socket; two datagrams arrive with one
    /// edge (epoll merges the events of a burst). The edge wakes one
    /// reader; it must pass the wake on, or the other sleeps with a
    /// datagram queued (loom reports that as a deadlock).
    #[test]
    fn loom_one_edge_two_readers() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let state = Arc::new(registered());
            // As a socket that found nothing yet (a fresh state says ready).
            state.clear(state.seen(), Dir::Read);
            let data = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let (state, data) = (state.clone(), data.clone());
                    loom::thread::spawn(move || read_datagram(&state, &data))
                })
                .collect();
            data.fetch_add(2, SeqCst);
            state.set_ready(READABLE);
            for r in readers {
                r.join().unwrap();
            }
            assert_eq!(data.load(SeqCst), 0);
        });
    }

    /// A waker that records its wake, for the async waiter of a model.
    struct Flag(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }

    /// The poller wakes two blocking waiters of a direction, one per pass
    /// of `wake_all`, and an async waiter's waker. Between its passes the
    /// async task polls again (woken by something else: a timer of its
    /// select, say) and, finding the socket drained, keeps its waker anew.
    /// The wake must still end. (`wake_all` took the waker slot on its
    /// first pass only: a waker kept after that left the slot full, and
    /// the poller, a worker, looped forever. Loom reports that loop as a
    /// model that exceeds its branches.)
    #[test]
    fn loom_wake_all_ends_when_an_async_waiter_polls_between() {
        loom::model(|| {
            let state = Arc::new(registered());
            // Two waiters queued as `wait` queues them, by this thread
            // (whose unparks the claims make are harmless).
            let (a, b) = (
                Blocker::new(Wait::SocketRead),
                Blocker::new(Wait::SocketRead),
            );
            {
                let mut w = state.waiters.lock();
                state.readiness.fetch_or(Dir::Read.waiting_bit(), AcqRel);
                // SAFETY: the poller's `set_ready` below claims both, and
                // finishes the claims, before `a` and `b` go out of scope.
                unsafe {
                    w.queue(Dir::Read).push(&a, None);
                    w.queue(Dir::Read).push(&b, None);
                }
            }
            let flag = |_| std::sync::Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
            let (first, second) = (flag(1), flag(2));
            // The async task's first poll: its read found nothing (a new
            // state says ready, to be tried), its waker is kept.
            state.clear(state.seen(), Dir::Read);
            let waker = std::task::Waker::from(first.clone());
            assert!(state.poll_ready(Dir::Read, &waker).is_pending());
            let task = {
                let (state, second) = (state.clone(), second.clone());
                loom::thread::spawn(move || {
                    // Its next poll, with another waker.
                    let seen = state.seen();
                    if IoState::is_ready(seen, Dir::Read) {
                        // The read it made found the socket drained.
                        state.clear(seen, Dir::Read);
                    }
                    let waker = std::task::Waker::from(second);
                    state.poll_ready(Dir::Read, &waker).is_ready()
                })
            };
            state.set_ready(READABLE);
            task.join().unwrap();
            assert!(a.poll_woken().is_some() && b.poll_woken().is_some());
            // The event came after the first poll: the task is woken,
            // through the waker kept last before the event's wake.
            assert!(first.0.load(SeqCst) || second.0.load(SeqCst));
        });
    }

    /// Two edges for two pieces of data, the user reading twice: the second
    /// edge may come while the user handles the first one (between its try
    /// and its clear), and must still wake it.
    #[test]
    fn loom_edge_during_clear_is_kept() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let state = Arc::new(registered());
            let data = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
            let flag = Arc::new(AtomicBool::new(false));
            let poller = {
                let (state, data, flag) = (state.clone(), data.clone(), flag.clone());
                loom::thread::spawn(move || {
                    for _ in 0..2 {
                        data.fetch_add(1, SeqCst);
                        flag.store(true, SeqCst);
                        state.set_ready(READABLE);
                    }
                })
            };
            let mut got = 0;
            while got < 2 {
                let seen = state.seen();
                if IoState::is_ready(seen, Dir::Read) {
                    let n = data.load(SeqCst);
                    if n > 0 && data.compare_exchange(n, 0, SeqCst, SeqCst).is_ok() {
                        got += n;
                        continue;
                    }
                    state.clear(seen, Dir::Read);
                }
                state
                    .wait(Dir::Read, None, Wait::SocketRead, Some(1))
                    .unwrap();
            }
            assert!(flag.load(SeqCst));
            poller.join().unwrap();
        });
    }
}

/// Registrations racing a driver's close, with real drivers and threads.
#[cfg(all(test, not(loom)))]
mod race_tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::sync::Barrier;

    /// A thread registers with driver A while A is dropped, and another
    /// registers with driver B (which then wins, A being closed). After
    /// each round `live` says the truth: true if registered with a driver
    /// that has not closed, false otherwise. (A's close cleared `live`
    /// after B's registration set it, in 18 of 20,000 rounds: every wait
    /// on the socket then returned at once, a spin; from a review.)
    #[test]
    fn live_says_the_truth_after_a_close_races_two_registrations() {
        for round in 0..5_000u32 {
            let (s, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
            s.set_nonblocking(true).unwrap();
            let fd = s.as_raw_fd();
            let state = Arc::new(IoState::new());
            let b = driver::Driver::new().unwrap();
            let a = driver::Driver::new().unwrap();
            let (ha, hb) = (a.handle().clone(), b.handle().clone());
            let go = Arc::new(Barrier::new(3));
            let spin = |n: u32| (0..n).for_each(|_| std::hint::spin_loop());
            let closer = {
                let go = go.clone();
                std::thread::spawn(move || {
                    go.wait();
                    spin(round % 200);
                    drop(a);
                })
            };
            let to_a = {
                let (go, state) = (go.clone(), state.clone());
                std::thread::spawn(move || {
                    go.wait();
                    let _ = state.register(fd, &ha);
                })
            };
            go.wait();
            spin((round / 200) % 50);
            let _ = state.register(fd, &hb);
            to_a.join().unwrap();
            closer.join().unwrap();
            let truth = match &*state.registered.lock() {
                Some((h, _)) => !h.is_closed(),
                None => false,
            };
            assert_eq!(state.is_live(), truth, "round {round}");
            state.deregister(fd);
            drop(b);
        }
    }
}
