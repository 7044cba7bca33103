//! The driver: what a worker sleeps in and learns of I/O readiness from,
//! below the runtime and knowing nothing of coroutines.
//!
//! Each worker owns one [`Driver`]: an epoll instance (through `mio`), an
//! eventfd [`Waker`] registered in it, and a table of registrations. The
//! worker polls it without blocking while it is busy and sleeps in it when
//! it has nothing to run, with the nearest timer as the timeout (Go's
//! netpoller, one per worker). Whoever needs the worker awake (an inbox
//! push, an idle notification, shutdown) calls [`Handle::wake`]; a wake
//! that comes before the worker sleeps stays in epoll's ready list, so it
//! cannot be lost.
//!
//! The worker's timers are a heap of this layer too ([`Timers`], in
//! `timer`): deadlines whose entries wake any [`TimerTarget`] (the
//! runtime's are tasks); the worker sleeps in its driver until the nearest.
//!
//! What a registration wakes is the caller's business: the driver hands
//! each event's readiness bits to the registration's [`Ready`] target and
//! tells every target when the driver goes away. The I/O layer above the
//! runtime (`io::reactor`) registers its per-descriptor states, with their
//! readiness words and queues of parked coroutines; the driver never sees
//! those.
//!
//! A driver may also have an io_uring (`uring`, with the runtime's
//! `IoDriver::Uring`): completion-based operations whose records
//! ([`uring::Completion`]) the layer above keeps on parked coroutines'
//! stacks. The worker then sleeps in the ring, which watches the epoll
//! instance (and with it the waker) through one multishot poll, so that
//! both kinds of I/O and every wake end the same sleep.
//!
//! # Lifetime of registrations
//!
//! A registration's epoll token is a slot of the table (index and
//! generation), and the table holds a reference to the target. The worker
//! looks each event's token up under the table's lock and keeps its own
//! reference while it hands the event over; deregistering removes the
//! descriptor from epoll and empties the slot. An event whose slot has been
//! emptied or reused (another generation) is ignored, so nothing depends on
//! `EPOLL_CTL_DEL` having worked: safe code can close a registered
//! descriptor behind coio's back while a duplicate keeps the open file, and
//! with it the epoll registration, alive; its events then find an empty
//! slot, never freed memory. (Such misuse can at worst cost wakes of the
//! descriptor that reused the number, as in tokio.) When the driver is
//! dropped (its worker exits), the table is emptied and every target is
//! told ([`Ready::driver_closed`]).
//!
//! `epoll_wait` counts its timeout in milliseconds, so on a worker asleep
//! in it a timer fires up to a millisecond late (Go's netpoller has the
//! same granularity).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::*;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod timer;
#[cfg(target_os = "linux")]
pub(crate) mod uring;

pub(crate) use timer::{Target as TimerTarget, Timers};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

/// Readiness bit: a read will not block.
pub(crate) const READABLE: usize = 1;
/// Readiness bit: a write will not block.
pub(crate) const WRITABLE: usize = 2;
/// Readiness bit: the peer will send no more (reads return 0).
pub(crate) const READ_CLOSED: usize = 4;
/// Readiness bit: writing is closed (writes fail at once).
pub(crate) const WRITE_CLOSED: usize = 8;
/// Readiness bit: an error is pending on the descriptor.
pub(crate) const ERROR: usize = 16;
/// Readiness bit, sticky: urgent (out-of-band) data came on this TCP
/// socket (`EPOLLPRI`). A read stops at the urgent mark with more data
/// queued and no new edge to come, so on such a socket a short read does
/// not mean it was drained (`io::reactor`'s `clear_drained`).
pub(crate) const URGENT: usize = 128;

/// The epoll token of the waker (no slot's: index and generation would
/// both have to be `u32::MAX`).
const WAKER: Token = Token(usize::MAX);
/// Token of the ring's eventfd, where the ring sleeps in epoll (valgrind).
#[cfg(target_os = "linux")]
const RING: Token = Token(usize::MAX - 1);

/// Events fetched per `epoll_wait`.
const EVENTS: usize = 1024;

/// What a registration wakes: told of each event of its descriptor, and of
/// the driver's end. Called on the driver's (worker's) thread, outside the
/// table's lock.
pub(crate) trait Ready: Send + Sync {
    /// The descriptor became ready: `bits` is a set of the readiness bits
    /// above (edge-triggered: reported once per change).
    fn set_ready(&self, bits: usize);

    /// The driver is gone: no event will ever come (the registration is
    /// dropped from its table; the target registers elsewhere if it still
    /// needs events).
    fn driver_closed(&self);
}

/// A worker's driver: its epoll instance and events buffer. Used only by
/// the worker's thread; other threads use its [`Handle`].
pub(crate) struct Driver {
    /// The worker's io_uring, if the runtime uses one (`uring`): then the
    /// worker sleeps in it, and the epoll instance is polled through it.
    #[cfg(target_os = "linux")]
    ring: Option<uring::Ring>,
    poll: Poll,
    events: Events,
    /// The targets of one poll's events with their bits (kept for its
    /// allocation).
    batch: Vec<(Arc<dyn Ready>, usize)>,
    handle: Arc<Handle>,
    /// Readiness events handed to their targets so far (for metrics).
    handed: u64,
}

/// The part of a driver that other threads use: to register and remove
/// descriptors, and to wake the worker.
pub(crate) struct Handle {
    /// A clone of the poll's registry (its own epoll descriptor, so that
    /// removals work even after the worker has gone).
    registry: Registry,
    waker: Waker,
    /// The registrations' targets, by token (see "Lifetime").
    slab: Mutex<Slab>,
    /// Live registrations: while there are none, a busy worker does not
    /// poll (no system call for a runtime without I/O).
    registered: AtomicUsize,
    /// The driver has been dropped (set under the `slab` lock, as the slab
    /// is emptied).
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
    target: Option<Arc<dyn Ready>>,
}

impl Slab {
    fn insert(&mut self, target: Arc<dyn Ready>) -> Token {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).expect("coio: over 2^32 registered descriptors")
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.target = Some(target);
        Token(((slot.generation as usize) << 32) | index as usize)
    }

    fn get(&self, token: Token) -> Option<&Arc<dyn Ready>> {
        let slot = self.slots.get(token.0 & 0xffff_ffff)?;
        if slot.generation as usize != token.0 >> 32 {
            return None;
        }
        slot.target.as_ref()
    }

    fn remove(&mut self, token: Token) -> Option<Arc<dyn Ready>> {
        let index = token.0 & 0xffff_ffff;
        let slot = self.slots.get_mut(index)?;
        if slot.generation as usize != token.0 >> 32 || slot.target.is_none() {
            return None;
        }
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        slot.target.take()
    }
}

impl Driver {
    /// A new epoll instance with its waker.
    pub(crate) fn new() -> io::Result<Driver> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        Ok(Driver {
            #[cfg(target_os = "linux")]
            ring: None,
            poll,
            events: Events::with_capacity(EVENTS),
            batch: Vec::with_capacity(EVENTS),
            handed: 0,
            handle: Arc::new(Handle {
                registry,
                waker,
                slab: Mutex::new(Slab::default()),
                registered: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// A driver with an io_uring of `entries` submission entries beside
    /// its epoll instance (see `uring`), created disabled: the worker's
    /// thread calls [`start`](Self::start) first.
    #[cfg(target_os = "linux")]
    pub(crate) fn with_ring(entries: u32) -> io::Result<Driver> {
        use std::os::fd::AsRawFd;
        let mut driver = Driver::new()?;
        let ring = uring::Ring::new(entries, driver.poll.as_raw_fd())?;
        if let Some(fd) = ring.sleeps_in_epoll() {
            driver.poll.registry().register(
                &mut mio::unix::SourceFd(&fd),
                RING,
                mio::Interest::READABLE,
            )?;
        }
        driver.ring = Some(ring);
        Ok(driver)
    }

    /// Called by the worker's thread before it uses the driver: enables
    /// the ring, with this thread as its one issuer. Should that fail
    /// (unexpected once the ring was created), the worker goes on with
    /// epoll alone and says so.
    pub(crate) fn start(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &self.ring
            && let Err(e) = ring.enable()
        {
            note!("coio: cannot enable a worker's io_uring ({e}); it uses epoll");
            self.ring = None;
        }
    }

    /// The worker's ring, if it has one.
    #[cfg(target_os = "linux")]
    #[inline]
    pub(crate) fn ring(&mut self) -> Option<&mut uring::Ring> {
        self.ring.as_mut()
    }

    pub(crate) fn handle(&self) -> &Arc<Handle> {
        &self.handle
    }

    /// Whether the worker has a ring.
    #[inline]
    pub(crate) fn has_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// Whether a poll could find anything: a descriptor is registered, or
    /// an operation of the ring is in flight.
    #[inline]
    pub(crate) fn has_work(&self) -> bool {
        #[cfg(target_os = "linux")]
        if self.ring.as_ref().is_some_and(|r| r.has_work()) {
            return true;
        }
        self.handle.registered.load(Relaxed) != 0
    }

    /// Waits up to `timeout` (none: forever; zero: just looks) for events,
    /// completions or a wake, and hands each event to its registration's
    /// target and each completion to its operation's record.
    pub(crate) fn poll(&mut self, timeout: Option<Duration>) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            if ring.sleeps_in_epoll().is_some() {
                // Under valgrind: submit and reap without waiting, sleep in
                // epoll (the ring's eventfd is in it), then take what woke
                // it from the ring.
                let before = ring.handed_over();
                ring.poll(Some(Duration::ZERO));
                let busy = ring.handed_over() != before;
                self.poll_epoll(if busy { Some(Duration::ZERO) } else { timeout });
                if let Some(ring) = &mut self.ring {
                    ring.poll(Some(Duration::ZERO));
                }
                return;
            }
            // The ring waits for both; epoll is then only looked at.
            if !ring.poll(timeout) {
                return;
            }
            return self.poll_epoll(Some(Duration::ZERO));
        }
        self.poll_epoll(timeout)
    }

    /// [`poll`](Self::poll) of the epoll instance.
    fn poll_epoll(&mut self, timeout: Option<Duration>) {
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                // epoll_wait fails only for bad arguments; say so rather
                // than spin on it.
                note!("coio: epoll_wait failed: {e}");
            }
            return;
        }
        // Take a reference to each event's target under the table's lock
        // (its descriptor may be deregistered on another thread
        // meanwhile), then hand the events over outside it.
        {
            let slab = self.handle.lock_slab();
            for ev in self.events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                #[cfg(target_os = "linux")]
                if ev.token() == RING {
                    continue;
                }
                let Some(target) = slab.get(ev.token()) else {
                    continue; // removed meanwhile (see "Lifetime")
                };
                let mut bits = 0;
                if ev.is_readable() {
                    bits |= READABLE;
                }
                if ev.is_priority() {
                    bits |= READABLE | URGENT;
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
                self.batch.push((target.clone(), bits));
            }
        }
        self.handed += self.batch.len() as u64;
        for (target, bits) in self.batch.drain(..) {
            target.set_ready(bits);
        }
    }

    /// I/O events (readiness) and completions (the ring's) handed over so
    /// far.
    pub(crate) fn events(&self) -> u64 {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &self.ring {
            return self.handed + ring.handed_over() as u64;
        }
        self.handed
    }
}

impl Driver {
    /// Nothing polls any more: refuses registrations from now on, lets go
    /// of every target and tells it (its waiters are woken: user wakers
    /// run). Again, or at the drop, it does nothing more. A waker that
    /// panics does not keep the other targets from being told (the panic
    /// hook has reported it).
    pub(crate) fn close(&mut self) {
        let slab = {
            let mut slab = self.handle.lock_slab();
            self.handle.closed.store(true, Release);
            std::mem::take(&mut *slab)
        };
        for target in slab.slots.into_iter().filter_map(|s| s.target) {
            // Moved in: its last reference may go here too.
            crate::surviving(move || target.driver_closed());
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.close();
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

    /// Whether the driver has been dropped (its epoll is polled no more).
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }

    /// Registers `fd` (edge-triggered, for reading and writing) with
    /// `target` to tell of its events; returns the token to deregister it
    /// with.
    ///
    /// # Errors
    /// The registry's error; an error saying so if the driver has closed
    /// (checked under the table's lock, which the driver's drop takes to
    /// close it: a registration from another thread never lands in a table
    /// that nobody will empty or poll).
    pub(crate) fn register(&self, fd: RawFd, target: Arc<dyn Ready>) -> io::Result<Token> {
        let token = {
            let mut slab = self.lock_slab();
            if self.closed.load(Relaxed) {
                return Err(io::Error::other(
                    "coio: the runtime of this socket has shut down",
                ));
            }
            slab.insert(target)
        };
        if let Err(e) = self.registry.register(
            &mut SourceFd(&fd),
            token,
            Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY,
        ) {
            self.lock_slab().remove(token);
            return Err(e);
        }
        self.registered.fetch_add(1, Relaxed);
        Ok(token)
    }

    /// Removes `fd`, registered as `token`, from epoll and empties its slot
    /// (see "Lifetime"); the target's reference is dropped outside the
    /// table's lock. A failure of the removal means the descriptor was
    /// closed (or replaced) behind our back; the emptied slot makes its
    /// events harmless.
    pub(crate) fn deregister(&self, fd: RawFd, token: Token) {
        let _ = self.registry.deregister(&mut SourceFd(&fd));
        self.registered.fetch_sub(1, Relaxed);
        let target = self.lock_slab().remove(token);
        drop(target);
    }

    /// A registration whose driver has closed is forgotten (its slot went
    /// with the table): only the count changes.
    pub(crate) fn forget(&self) {
        self.registered.fetch_sub(1, Relaxed);
    }
}
