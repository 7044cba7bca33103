//! The netpoller: one epoll instance (through `mio`) per worker, polled by
//! the worker itself.
//!
//! # Why one per worker
//!
//! A started coroutine never leaves its worker, so a socket is, nearly
//! always, waited on by coroutines of one worker. Each socket is registered
//! (once, edge-triggered, for reading and writing) with the poller of the
//! worker whose coroutine first has to wait on it; that worker then learns
//! of its readiness itself and wakes the waiter on its own queue, with no
//! other thread involved. Go has one poller for all its Ps because its
//! goroutines move; ours do not. A socket shared with coroutines of other
//! workers still works: its events arrive at the registering worker, which
//! wakes those waiters through their home workers' inboxes.
//!
//! # Who polls, and when
//!
//! No thread is dedicated to I/O. A worker polls its epoll
//!
//! * without blocking, every 61 scheduling ticks while it is busy (with the
//!   timers and the injector), and on every round of its search for work;
//! * blocking, when it has nothing to run: it sleeps in `epoll_wait`, with
//!   the nearest timer as the timeout, instead of on a futex. Whoever needs
//!   it awake (an inbox push, an idle notification, shutdown) writes to its
//!   `mio::Waker` (an eventfd registered in the same epoll). A write that
//!   comes before the worker sleeps stays in epoll's ready list, so it
//!   cannot be lost (the role the thread's park token played before).
//!
//! `epoll_wait` counts its timeout in milliseconds, so on a worker asleep
//! in it a timer fires up to a millisecond late (Go's netpoller has the
//! same granularity).
//!
//! # Readiness
//!
//! [`IoState`] is what one registered file descriptor shares between its
//! users and the poller: a `readiness` word and two queues of waiters, one
//! for reading and one for writing, so that one coroutine can read a socket
//! while another writes it. The word holds readiness bits and, above them,
//! a tick counted up by every event:
//!
//! * the poller ORs the event's bits in and bumps the tick, then wakes the
//!   waiters of each direction that became ready (all of them: each
//!   retries its operation);
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
//! # Lifetime
//!
//! The epoll token of a registration is a slot of the poller's table
//! (index and generation), and the table holds a reference to the
//! `IoState`. The worker looks each event's token up under the table's
//! lock and keeps its own reference while it handles the event; dropping a
//! socket removes it from epoll and empties its slot. An event whose slot
//! has been emptied or reused (another generation) is ignored. So nothing
//! depends on `EPOLL_CTL_DEL` having worked: safe code can close a
//! registered descriptor behind coio's back (replacing an `Fd`'s inner
//! object, say) while a duplicate keeps the open file, and with it the
//! epoll registration, alive; its events then find an empty slot, never
//! freed memory. (Such misuse can at worst cost wakes of the socket that
//! reused the descriptor number, as in tokio.) When the worker exits, the
//! table is emptied.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::AtomicBool;
#[cfg(not(loom))]
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// The readiness word is what the loom model checks (`loom_tests`).
#[cfg(loom)]
use loom::sync::atomic::AtomicUsize;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use crate::park::{Blocker, Lock, WaitQueue, Woken};

/// Readiness bit: a read will not block.
pub(crate) const READABLE: usize = 1;
/// Readiness bit: a write will not block.
pub(crate) const WRITABLE: usize = 2;
/// Readiness bit: the peer will send no more (reads return 0).
pub(crate) const READ_CLOSED: usize = 4;
/// Readiness bit: writing is closed (writes fail at once).
pub(crate) const WRITE_CLOSED: usize = 8;
/// Readiness bit: an error is pending on the socket.
pub(crate) const ERROR: usize = 16;
/// Not readiness: coroutines may be queued to read (set under the waiters'
/// lock before one queues, cleared under it when the poller finds none).
const READ_WAITING: usize = 32;
/// Not readiness: coroutines may be queued to write (as `READ_WAITING`).
const WRITE_WAITING: usize = 64;
/// Where the event tick starts in `readiness`.
const TICK_SHIFT: u32 = 8;
const TICK_ONE: usize = 1 << TICK_SHIFT;
const BITS: usize = TICK_ONE - 1;

/// The epoll token of the waker (no slot's: index and generation would
/// both have to be `u32::MAX`).
const WAKER: Token = Token(usize::MAX);

/// Events fetched per `epoll_wait`.
const EVENTS: usize = 1024;

/// A direction of I/O.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    Read,
    Write,
}

impl Dir {
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

/// A worker's poller: its epoll instance and the events buffer. Lives in
/// the worker's `Local`, used only by the worker's thread.
pub(crate) struct Poller {
    poll: Poll,
    events: Events,
    /// The states of one poll's events with their bits (kept for its
    /// allocation).
    batch: Vec<(Arc<IoState>, usize)>,
    handle: Arc<Handle>,
}

/// The part of a poller that other threads use: to register and remove
/// descriptors, and to wake the worker.
pub(crate) struct Handle {
    /// A clone of the poll's registry (its own epoll descriptor, so that
    /// removals work even after the worker has gone).
    registry: Registry,
    waker: Waker,
    /// The registered descriptors' states, by token (see "Lifetime").
    slab: Mutex<Slab>,
    /// Live registrations: while there are none, a busy worker does not
    /// poll (no system call for a runtime without I/O).
    registered: std::sync::atomic::AtomicUsize,
    /// The worker has exited (set under the `slab` lock, as the slab is
    /// emptied; read without it by every wait).
    closed: AtomicBool,
}

/// The table of registrations: a token is `generation << 32 | index`.
#[derive(Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    state: Option<Arc<IoState>>,
}

impl Slab {
    fn insert(&mut self, state: Arc<IoState>) -> Token {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).expect("coio: over 2^32 registered descriptors")
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.state = Some(state);
        Token(((slot.generation as usize) << 32) | index as usize)
    }

    fn get(&self, token: Token) -> Option<&Arc<IoState>> {
        let slot = self.slots.get(token.0 & 0xffff_ffff)?;
        if slot.generation as usize != token.0 >> 32 {
            return None;
        }
        slot.state.as_ref()
    }

    fn remove(&mut self, token: Token) -> Option<Arc<IoState>> {
        let index = token.0 & 0xffff_ffff;
        let slot = self.slots.get_mut(index)?;
        if slot.generation as usize != token.0 >> 32 || slot.state.is_none() {
            return None;
        }
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        slot.state.take()
    }
}

impl Poller {
    /// A new epoll instance with its waker.
    pub(crate) fn new() -> io::Result<Poller> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        Ok(Poller {
            poll,
            events: Events::with_capacity(EVENTS),
            batch: Vec::with_capacity(EVENTS),
            handle: Arc::new(Handle {
                registry,
                waker,
                slab: Mutex::new(Slab::default()),
                registered: std::sync::atomic::AtomicUsize::new(0),
                closed: AtomicBool::new(false),
            }),
        })
    }

    pub(crate) fn handle(&self) -> &Arc<Handle> {
        &self.handle
    }

    /// Whether any descriptor is registered here (worth a poll).
    #[inline]
    pub(crate) fn has_registrations(&self) -> bool {
        self.handle.registered.load(Relaxed) != 0
    }

    /// Waits up to `timeout` (none: forever; zero: just looks) for events
    /// and wakes the coroutines waiting for them.
    pub(crate) fn poll(&mut self, timeout: Option<Duration>) {
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                // epoll_wait fails only for bad arguments; say so rather
                // than spin on it.
                eprintln!("coio: epoll_wait failed: {e}");
            }
            return;
        }
        // Take a reference to each event's state under the table's lock
        // (its socket may be dropped on another thread meanwhile), then
        // record and wake outside it.
        {
            let slab = self.handle.lock_slab();
            for ev in self.events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                let Some(state) = slab.get(ev.token()) else {
                    continue; // removed meanwhile (see "Lifetime")
                };
                let mut bits = 0;
                if ev.is_readable() {
                    bits |= READABLE;
                }
                if ev.is_writable() {
                    bits |= WRITABLE;
                }
                if ev.is_read_closed() {
                    bits |= READ_CLOSED;
                }
                if ev.is_write_closed() {
                    bits |= WRITE_CLOSED;
                }
                if ev.is_error() {
                    bits |= ERROR;
                }
                self.batch.push((state.clone(), bits));
            }
        }
        for (state, bits) in self.batch.drain(..) {
            state.set_ready(bits);
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // Nothing polls any more: let go of every registered state, and
        // wake whoever waits on one (coroutines of other runtimes, or of
        // this one's other workers): they find the poller closed and
        // register with their own worker. A waiter that queues after this
        // sees `closed` under its queue's lock (`wait`).
        let slab = {
            let mut slab = self.handle.lock_slab();
            self.handle.closed.store(true, Release);
            std::mem::take(&mut *slab)
        };
        for state in slab.slots.into_iter().filter_map(|s| s.state) {
            // Before the wakes: a waiter that queues after them sees it
            // under its queue's lock (`wait`); one queued before is woken.
            state.live.store(false, Release);
            state.wake_all(Dir::Read);
            state.wake_all(Dir::Write);
        }
    }
}

impl Handle {
    fn lock_slab(&self) -> std::sync::MutexGuard<'_, Slab> {
        self.slab.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the worker if it sleeps in (or is about to enter) its poll.
    #[inline]
    pub(crate) fn wake(&self) {
        // An eventfd write fails only if the counter would overflow, which
        // mio handles by resetting it; nothing useful to do otherwise.
        let _ = self.waker.wake();
    }

    /// Whether the worker has exited (its epoll is polled no more).
    #[inline]
    fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }
}

/// What one registered descriptor shares with the poller: readiness and
/// waiters (see the module docs).
pub(crate) struct IoState {
    /// Readiness bits, and the event tick above them.
    readiness: AtomicUsize,
    /// Waiters for each direction.
    waiters: Lock<Waiters>,
    /// The poller this descriptor is registered with, and its token there.
    registered: Lock<Option<(Arc<Handle>, Token)>>,
    /// Registered with a poller that has not exited: set under the
    /// `registered` lock by `register`, cleared by `deregister` and by the
    /// poller's drop (for every state of its table, before it wakes their
    /// waiters). Lets every wait after the first skip that lock, twice.
    live: AtomicBool,
}

struct Waiters {
    read: WaitQueue,
    write: WaitQueue,
}

impl Waiters {
    fn queue(&mut self, dir: Dir) -> &mut WaitQueue {
        match dir {
            Dir::Read => &mut self.read,
            Dir::Write => &mut self.write,
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
                read: WaitQueue::new(),
                write: WaitQueue::new(),
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
    /// the error at once), since epoll will not report it again.
    #[inline]
    pub(crate) fn clear_drained(&self, seen: Seen, dir: Dir) {
        let bit = match dir {
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

    /// The poller saw an event: records it, then wakes the waiters of each
    /// direction it makes ready, if that direction may have any (its
    /// waiting bit, read by the same atomic operation that records the
    /// event: a waiter sets the bit, under the waiters' lock, by an
    /// operation on the same word that checks readiness, so either the
    /// waiter sees the event or the poller sees the bit, and then takes the
    /// lock after the waiter has queued). An event on a socket nobody waits
    /// on (the writable edge that comes with every readable one) takes no
    /// lock.
    fn set_ready(&self, bits: usize) {
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
                self.wake_all(dir);
            }
        }
    }

    /// Wakes every waiter of `dir`, each claim finished (its wake made)
    /// outside the lock, and clears the direction's waiting bit once the
    /// queue is empty (under the lock, where waiters set it).
    fn wake_all(&self, dir: Dir) {
        loop {
            let (claimed, empty) = {
                let mut w = self.waiters.lock();
                let queue = w.queue(dir);
                let claimed = queue.claim(None, true);
                let empty = queue.is_empty();
                if empty {
                    self.readiness.fetch_and(!dir.waiting_bit(), AcqRel);
                }
                (claimed, empty)
            };
            // Outside the lock.
            drop(claimed);
            if empty {
                return;
            }
        }
    }

    /// Registers `fd` (whose state this is) with `poller`'s epoll, unless
    /// it is registered with a live poller already.
    #[inline]
    pub(crate) fn register(self: &Arc<Self>, fd: RawFd, poller: &Poller) -> io::Result<()> {
        if self.live.load(Acquire) {
            return Ok(());
        }
        self.register_slow(fd, poller)
    }

    #[cold]
    fn register_slow(self: &Arc<Self>, fd: RawFd, poller: &Poller) -> io::Result<()> {
        let mut reg = self.registered.lock();
        if let Some((h, _)) = &*reg {
            if !h.is_closed() {
                return Ok(());
            }
            // Its worker is gone, and its epoll with it (its table let go
            // of us): start over here.
            h.registered.fetch_sub(1, Relaxed);
            *reg = None;
        }
        let handle = poller.handle();
        let token = handle.lock_slab().insert(self.clone());
        if let Err(e) = handle.registry.register(
            &mut SourceFd(&fd),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            handle.lock_slab().remove(token);
            return Err(e);
        }
        handle.registered.fetch_add(1, Relaxed);
        *reg = Some((handle.clone(), token));
        self.live.store(true, Release);
        Ok(())
    }

    /// Removes `fd` from its poller's epoll, if registered, and empties its
    /// slot in the poller's table (see "Lifetime"). Called before `fd` is
    /// closed or given away.
    pub(crate) fn deregister(&self, fd: RawFd) {
        let Some((handle, token)) = self.registered.lock().take() else {
            return;
        };
        self.live.store(false, Release);
        // A failure means the descriptor was closed (or replaced) behind
        // our back; the emptied slot makes its events harmless.
        let _ = handle.registry.deregister(&mut SourceFd(&fd));
        handle.registered.fetch_sub(1, Relaxed);
        let state = handle.lock_slab().remove(token);
        // The table's reference, dropped outside its lock.
        drop(state);
    }

    /// Whether the poller this descriptor is registered with has exited (its
    /// events will never come; the caller retries and re-registers).
    #[inline]
    fn poller_closed(&self) -> bool {
        !self.live.load(Acquire)
    }

    /// Waits until `dir` is ready, `deadline` passes (`TimedOut`) or the
    /// coroutine is cancelled (it unwinds). The descriptor must be
    /// registered. Called by a coroutine (or a coroutine's thread blocking
    /// in place while it unwinds).
    pub(crate) fn wait(&self, dir: Dir, deadline: Option<std::time::Instant>) -> io::Result<()> {
        let blocker = Blocker::new();
        {
            let mut w = self.waiters.lock();
            if self.poller_closed() {
                return Ok(());
            }
            // Checks readiness and announces the waiter in one operation
            // (see `set_ready`).
            let announced = self.readiness.fetch_update(AcqRel, Acquire, |cur| {
                (!Self::is_ready(Seen(cur), dir)).then_some(cur | dir.waiting_bit())
            });
            if announced.is_err() {
                return Ok(());
            }
            // SAFETY: the entry is removed (below, or by a claimer) before
            // `blocker` goes out of scope: `wait` returns only after a
            // claim finished or after the abort, and on abort we remove it.
            unsafe { w.queue(dir).push(&blocker, 0, std::ptr::null_mut()) };
        }
        match blocker.wait(deadline, true) {
            Woken::Done(_) | Woken::Retry(_) => Ok(()),
            Woken::TimedOut => {
                self.waiters.lock().queue(dir).remove(&blocker);
                Err(super::source::timed_out())
            }
            Woken::Cancelled => {
                self.waiters.lock().queue(dir).remove(&blocker);
                crate::park::unwind_cancelled()
            }
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
                    return;
                }
                state.clear(seen, Dir::Read);
            }
            state.wait(Dir::Read, None).unwrap();
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
                state.wait(Dir::Read, None).unwrap();
            }
            assert!(flag.load(SeqCst));
            poller.join().unwrap();
        });
    }
}
