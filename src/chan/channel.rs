//! The channel itself: one structure for every capacity, after Go's
//! `hchan`.
//!
//! A channel is a lock around a ring buffer and two wait queues of the
//! parking core: senders waiting for room (each with its value in its
//! packet) and receivers waiting for a value (each with an empty packet).
//! Capacity 0 is the rendezvous channel (no buffer: a value goes from a
//! sender's packet straight to a receiver); "unbounded" is a capacity no
//! buffer reaches.
//!
//! # Invariants (under the lock)
//!
//! * Waiting receivers exist only while the buffer is empty, and waiting
//!   senders only while it is full (for capacity 0: always "full").
//!   Operations keep this so: a send first serves the oldest waiting
//!   receiver; a receive that takes from a full buffer refills it from the
//!   oldest waiting sender; with capacity 0 a receive takes straight from
//!   the oldest waiting sender. FIFO on both sides: nobody starves.
//! * Queues may also hold stale entries (of waiters that timed out, were
//!   cancelled, or were chosen through another select arm); the parking
//!   core drops them when it meets them.
//! * "Every sender gone" ([`TX_CLOSED`] in `Chan::rx_state`) and
//!   `rx_closed` (every receiver gone) only ever go from false to true;
//!   when one is set, every waiter of the other side is woken to look
//!   again. A receiver still drains the buffer after the senders are gone;
//!   the buffer is emptied when `rx_closed` is set.
//! * A receive finds the channel closed only when every sender is gone,
//!   the buffer is empty *and* no receive future or dynamic select's
//!   reserved receive holds a value it was handed or took (`rx_state`
//!   counts those): one dropped before it takes its value gives the value
//!   back (`give_back`), and a receiver told "closed" meanwhile would have
//!   left it behind. The last such value taken or given back wakes the
//!   receivers (`landed`). A select's reservation counts its value under
//!   the lock when it takes it from the buffer (`try_recv_held`), and a
//!   sender's hand-over counts it for a receiver entry queued with
//!   [`HELD`], as for a future's.
//!
//! # Handing values over
//!
//! A claim of a waiter's blocker (under the lock) makes its packet the
//! claimer's until the claim is dropped, which wakes the waiter; values are
//! moved in or out of packets after the lock is released, and the claim is
//! dropped last, so the lock is held only for the bookkeeping.
//!
//! # Select
//!
//! A select arm uses the same operations in two steps: [`Chan::try_recv`] /
//! [`Chan::try_send`] (complete now, or report that it would wait), then
//! [`Chan::register_recv`] / [`Chan::register_send`], which, under the
//! lock, either find the arm ready (the select then starts over) or queue
//! an entry with the select's blocker. `me` is that blocker: a select does
//! not rendezvous with its own other arm.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::task::{Context, Poll};
use std::time::Instant;

#[cfg(loom)]
use loom::sync::atomic::AtomicUsize;
#[cfg(not(loom))]
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

use crate::park::{Blocker, Claimed, Lock, LockGuard, WaitQueue, Woken, unwind_cancelled};
use crate::runtime::worker::coop_spend_cancellable;

/// Where a value is handed over between a waiter and its claimer (see the
/// parking core's protocol for who may touch it when).
pub(crate) struct Packet<T>(UnsafeCell<Option<T>>);

impl<T> Packet<T> {
    /// A packet holding `v` (a waiting sender's) or nothing (a receiver's).
    #[inline]
    pub(crate) fn new(v: Option<T>) -> Packet<T> {
        Packet(UnsafeCell::new(v))
    }

    /// The pointer that goes into a queue entry.
    #[inline]
    fn as_ptr(&self) -> *mut () {
        self.0.get().cast()
    }

    /// Takes the value, for the waiter, once no claimer can touch the
    /// packet any more.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<T> {
        self.0.get_mut().take()
    }
}

/// Takes the value out of a claimed sender's packet.
///
/// # Safety
/// `c` must be a claim of an entry of `senders` of a `Chan<T>`: its packet
/// is a `Packet<T>` holding a value, the claimer's until `c` is dropped.
#[inline]
unsafe fn take_value<T>(c: &Claimed) -> T {
    // SAFETY: caller.
    match unsafe { (*c.packet().cast::<Option<T>>()).take() } {
        Some(v) => v,
        // Unwinding here would drop `c`, telling the sender its value went
        // through: a broken invariant must not look like a delivery.
        None => {
            note!("coio: a waiting sender without its value (a bug in coio); aborting");
            std::process::abort()
        }
    }
}

/// Puts `v` into a claimed receiver's packet.
///
/// # Safety
/// `c` must be a claim of an entry of `receivers` of a `Chan<T>`: its
/// packet is an empty `Packet<T>`, the claimer's until `c` is dropped.
#[inline]
unsafe fn give_value<T>(c: &Claimed, v: T) {
    // SAFETY: caller.
    unsafe { *c.packet().cast::<Option<T>>() = Some(v) };
}

/// The wait of an async operation (a [`RecvFut`](super::RecvFut) or
/// [`SendFut`](super::SendFut)): its blocker, woken through the future's
/// waker, and its packet, both inside the pinned future.
pub(crate) struct AsyncWait<T> {
    blocker: Blocker,
    packet: Packet<T>,
}

/// What the lock guards.
struct Inner<T> {
    /// Buffered values (never more than the capacity, less `reserved`;
    /// values given back by dropped async receives, and a dynamic select's
    /// send reserved on a waiting receive future, may exceed it).
    buf: VecDeque<T>,
    /// Buffer slots held for sends a dynamic select reserved
    /// ([`SendReservation::Room`]) and not yet completed or released:
    /// counted as taken, so that nobody else fills them meanwhile.
    reserved: usize,
    /// Senders waiting for room (packets hold their values).
    senders: WaitQueue,
    /// Receivers waiting for a value (packets are empty).
    receivers: WaitQueue,
    /// Every `Receiver` is gone.
    rx_closed: bool,
    /// Dynamic selects ([`Select`](super::Select)) waiting for an
    /// operation on this channel to become ready (entries without
    /// packets). Every change that can make a receive or a send ready
    /// wakes them all, to look again.
    observers: WaitQueue,
}

impl<T> Inner<T> {
    /// Wakes every observer (a change that may make an operation ready).
    /// One load and branch when there is none, the common case.
    #[inline]
    fn notify(&mut self) {
        self.notify_except(None);
    }

    /// [`notify`](Self::notify), except `me`'s entries (a select that
    /// registers a receive does not wake its own send's observer).
    #[inline]
    fn notify_except(&mut self, me: Option<&Blocker>) {
        if !self.observers.is_empty() {
            self.notify_all(me);
        }
    }

    /// Claims (with retry: look again) and wakes every observer but
    /// `me`'s. Under the channel's lock: observers are selecting
    /// coroutines or threads, whose wake runs no user code.
    #[cold]
    fn notify_all(&mut self, me: Option<&Blocker>) {
        while let Some(c) = self.observers.claim(me, true) {
            drop(c);
        }
    }

    /// Whether a receive would complete now (with a value, or closed: see
    /// [`Chan::tx_closed`]); a waiting sender of `me` (the asking select)
    /// does not count.
    fn recv_ready(&self, tx_closed: bool, me: Option<&Blocker>) -> bool {
        !self.buf.is_empty() || tx_closed || self.senders.has_waiting(me)
    }

    /// Whether a send would complete now (room, a receiver, or closed); a
    /// waiting receiver of `me` (the asking select) does not count.
    fn send_ready(&self, cap: usize, me: Option<&Blocker>) -> bool {
        self.rx_closed || self.has_room(cap) || self.receivers.has_waiting(me)
    }

    /// Moves the oldest waiting sender's value (not `me`'s) into a free
    /// slot of the buffer, if there is both; its claim is returned, to be
    /// dropped (which wakes the sender) once the lock is released.
    fn refill(&mut self, cap: usize, me: Option<&Blocker>) -> Option<Claimed> {
        if self.senders.is_empty() || !self.has_room(cap) {
            return None;
        }
        let c = self.senders.claim(me, false)?;
        // SAFETY: an entry of `senders` of a `Chan<T>`.
        let w = unsafe { take_value::<T>(&c) };
        self.buf.push_back(w);
        Some(c)
    }

    /// Whether the buffer has a free slot that no reservation holds.
    #[inline]
    fn has_room(&self, cap: usize) -> bool {
        self.buf.len() + self.reserved < cap
    }
}

/// A send a dynamic select chose, held until it is completed
/// ([`Chan::complete_send`]) or dropped uncompleted (then the claim is
/// released, or the slot given back with [`ReleaseRoom::release_room`]).
pub(crate) enum SendReservation<'a> {
    /// A waiting receiver, claimed: it waits until the value is in its
    /// packet (or the claim is released with retry).
    Receiver(Claimed),
    /// A slot of the buffer, held (counted in `reserved`) for this send: a
    /// free one, or one beyond the capacity in place of a receive future
    /// (`reserve_send`); the channel, to give the slot back if the send is
    /// dropped.
    Room(&'a dyn ReleaseRoom),
    /// Every receiver is gone.
    Closed,
}

/// Gives back a buffer slot that a dynamic select reserved for a send it
/// then dropped uncompleted (a [`Chan`] of any value type).
pub(crate) trait ReleaseRoom {
    fn release_room(&self);
}

/// A channel, shared by its senders and receivers.
pub(crate) struct Chan<T> {
    /// Buffer, queues and close flags.
    inner: Lock<Inner<T>>,
    /// Buffer capacity; `usize::MAX` for unbounded.
    cap: usize,
    /// Live `Sender`s (the last one to go closes the sending side).
    pub(crate) tx_count: AtomicUsize,
    /// Live `Receiver`s (the last one to go closes the receiving side).
    pub(crate) rx_count: AtomicUsize,
    /// [`TX_CLOSED`] once every sender is gone, plus [`IN_FLIGHT`] per
    /// value handed to a receive future and not yet taken or given back
    /// (module docs). One word, so that the future that settles the last
    /// of them sees whether the senders are gone with the same access.
    rx_state: AtomicUsize,
}

/// `Chan::rx_state`: every sender is gone.
const TX_CLOSED: usize = 1;
/// `Chan::rx_state`: one value in a receive future's hands (or a dynamic
/// select's reserved receive's).
const IN_FLIGHT: usize = 2;

/// A flag on the operation number of a receiver's queue entry: a dynamic
/// select's reserving receive, which may give its value back (dropped
/// uncompleted), so that a hand-over counts the value in flight as for a
/// future. Far above any select's operation index; `select::rounds`
/// masks it off.
pub(crate) const HELD: usize = 1 << 40;

/// A send's outcome other than success; the value comes back.
pub(crate) enum SendFail<T> {
    /// No room and no waiting receiver (only for non-blocking sends).
    Full(T),
    /// Every receiver is gone.
    Closed(T),
    /// The deadline passed.
    Timeout(T),
}

/// A receive's outcome other than a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvFail {
    /// Nothing to take (only for non-blocking receives).
    Empty,
    /// Every sender is gone and the buffer is drained.
    Closed,
    /// The deadline passed.
    Timeout,
}

// SAFETY: the channel moves values of `T` between threads (hence `T:
// Send`), only through the lock or the parking core's packet protocol;
// `&Chan` gives no access to a `&T`, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Chan<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Chan<T> {}

impl<T> Chan<T> {
    /// A channel of capacity `cap` (`usize::MAX`: unbounded), with one
    /// sender and one receiver.
    pub(crate) fn new(cap: usize) -> Chan<T> {
        Chan {
            inner: Lock::new(Inner {
                buf: VecDeque::new(),
                reserved: 0,
                senders: WaitQueue::new(),
                receivers: WaitQueue::new(),
                rx_closed: false,
                observers: WaitQueue::new(),
            }),
            cap,
            tx_count: AtomicUsize::new(1),
            rx_count: AtomicUsize::new(1),
            rx_state: AtomicUsize::new(0),
        }
    }

    /// Whether a receive finds the channel closed (once the buffer is
    /// empty): every sender is gone and no receive future holds a value
    /// (module docs).
    #[inline]
    fn tx_closed(&self) -> bool {
        self.rx_state.load(Acquire) == TX_CLOSED
    }

    /// Puts `v` into the packet of `c`, a claimed receiver, counting it
    /// in flight if the receiver is a future or a dynamic select's
    /// reserving receive ([`HELD`]): either may give it back.
    ///
    /// # Safety
    /// As for [`give_value`].
    #[inline]
    unsafe fn hand_over(&self, c: &Claimed, v: T) {
        if c.is_future() || c.oper() & HELD != 0 {
            // Before the claim finishes (the future cannot settle the value
            // before that). No receiver can see the senders gone meanwhile
            // without this: the caller holds a `Sender` (a send), or a
            // value counted already (`give_back`).
            self.rx_state.fetch_add(IN_FLIGHT, Relaxed);
        }
        // SAFETY: caller.
        unsafe { give_value(c, v) };
    }

    /// A value a receive future (or a dynamic select's reservation) held
    /// was taken or given back. The last one after the senders went wakes
    /// the receivers, which may find the channel closed now.
    #[inline]
    pub(crate) fn landed(&self) {
        if self.rx_state.fetch_sub(IN_FLIGHT, AcqRel) == IN_FLIGHT | TX_CLOSED {
            self.wake_receivers();
        }
    }

    /// The capacity: `Some(cap)` for `bounded(cap)`, `None` for unbounded.
    #[inline]
    pub(crate) fn capacity(&self) -> Option<usize> {
        (self.cap != usize::MAX).then_some(self.cap)
    }

    /// Locks the channel.
    #[inline]
    fn lock(&self) -> LockGuard<'_, Inner<T>> {
        self.inner.lock()
    }

    /// Buffered values.
    pub(crate) fn len(&self) -> usize {
        self.lock().buf.len()
    }

    /// Whether the buffer is full (always for capacity 0); slots a
    /// select reserved count as full.
    pub(crate) fn is_full(&self) -> bool {
        !self.lock().has_room(self.cap)
    }

    /// Sends without waiting: to the oldest waiting receiver, else into the
    /// buffer. `me`: the selecting blocker, whose own entries are skipped.
    #[inline]
    pub(crate) fn try_send(&self, v: T, me: Option<&Blocker>) -> Result<(), SendFail<T>> {
        self.send_locked(self.lock(), v, me).map_err(|(_, e)| e)
    }

    /// `try_send` with the lock held; on `Full`, gives the lock back.
    #[inline]
    fn send_locked<'a>(
        &'a self,
        mut g: LockGuard<'a, Inner<T>>,
        v: T,
        me: Option<&Blocker>,
    ) -> Result<(), (LockGuard<'a, Inner<T>>, SendFail<T>)> {
        if g.rx_closed {
            return Err((g, SendFail::Closed(v)));
        }
        if let Some(c) = g.receivers.claim(me, false) {
            drop(g);
            // SAFETY: an entry of `receivers` of a `Chan<T>`.
            unsafe { self.hand_over(&c, v) };
            return Ok(());
        }
        if g.has_room(self.cap) {
            g.buf.push_back(v);
            g.notify();
            return Ok(());
        }
        Err((g, SendFail::Full(v)))
    }

    /// Receives without waiting: from the buffer (refilling it from the
    /// oldest waiting sender), else from the oldest waiting sender.
    #[inline]
    pub(crate) fn try_recv(&self, me: Option<&Blocker>) -> Result<T, RecvFail> {
        self.recv_locked(self.lock(), me).map_err(|(_, e)| e)
    }

    /// [`try_recv`](Self::try_recv) for a dynamic select's reservation,
    /// which may give the value back (`give_back(v, true)`) or take it
    /// (`landed`): a value it gets is counted in flight, under the lock
    /// (from the buffer) or before the sender's claim is finished (from
    /// a waiting sender, which holds a `Sender` until then), so that no
    /// receiver finds the channel closed while the value is held.
    pub(crate) fn try_recv_held(&self) -> Result<T, RecvFail> {
        self.recv_counting(self.lock(), None, true)
            .map_err(|(_, e)| e)
    }

    /// `try_recv` with the lock held; on `Empty`, gives the lock back.
    #[inline]
    fn recv_locked<'a>(
        &'a self,
        g: LockGuard<'a, Inner<T>>,
        me: Option<&Blocker>,
    ) -> Result<T, (LockGuard<'a, Inner<T>>, RecvFail)> {
        self.recv_counting(g, me, false)
    }

    /// `recv_locked`, counting the value it gets in flight if `held` (see
    /// `try_recv_held`).
    #[inline]
    fn recv_counting<'a>(
        &'a self,
        mut g: LockGuard<'a, Inner<T>>,
        me: Option<&Blocker>,
        held: bool,
    ) -> Result<T, (LockGuard<'a, Inner<T>>, RecvFail)> {
        if let Some(v) = g.buf.pop_front() {
            if held {
                self.rx_state.fetch_add(IN_FLIGHT, Relaxed);
            }
            g.notify();
            // (The buffer can be over-full: `give_back`, and
            // `reserve_send` on a receive future. No refill until it is
            // not.)
            if let Some(c) = g.refill(self.cap, me) {
                drop(g);
                drop(c);
            }
            return Ok(v);
        }
        if !g.senders.is_empty()
            && let Some(c) = g.senders.claim(me, false)
        {
            drop(g);
            if held {
                // Before the claim is finished (the sender holds its
                // `Sender` until then).
                self.rx_state.fetch_add(IN_FLIGHT, Relaxed);
            }
            // SAFETY: as above.
            return Ok(unsafe { take_value::<T>(&c) });
        }
        if self.tx_closed() {
            return Err((g, RecvFail::Closed));
        }
        Err((g, RecvFail::Empty))
    }

    /// Sends `v`, waiting for room or a receiver until `deadline`.
    ///
    /// Every call counts against the coroutine's cooperative budget
    /// before it does anything: a loop of operations that never wait (a
    /// channel a thread keeps empty, sends into a closed one, timed-out
    /// sends) lets the worker's others run, and the budget's yield is a
    /// cancellation point, before the operation, so that no value is sent,
    /// or taken out of the channel, by a call that then unwinds. (A call
    /// that waits starts a new budget: the spend was moot.)
    pub(crate) fn send(&self, v: T, deadline: Option<Instant>) -> Result<(), SendFail<T>> {
        coop_spend_cancellable();
        let mut v = v;
        loop {
            let mut g = match self.send_locked(self.lock(), v, None) {
                Ok(()) => return Ok(()),
                Err((g, SendFail::Full(w))) => {
                    v = w;
                    g
                }
                // Disconnected.
                Err((_, fail)) => return Err(fail),
            };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                drop(g);
                return Err(SendFail::Timeout(v));
            }
            let blocker = Blocker::new(crate::runtime::dump::Wait::ChanSend);
            let mut packet = Packet::new(Some(v));
            // SAFETY: `blocker` and `packet` live until the wait protocol
            // lets us go: below, we return only after DONE or after
            // removing the entry under the lock.
            unsafe { g.senders.push(&blocker, 0, packet.as_ptr()) };
            g.notify();
            drop(g);
            match blocker.wait(deadline, true) {
                // A receiver took the value.
                Woken::Done(_) => return Ok(()),
                // The receivers went away: look again (we get our value
                // back below).
                Woken::Retry(_) => {}
                Woken::TimedOut => {
                    self.lock().senders.remove(&blocker);
                    let v = packet
                        .take()
                        .expect("coio: an unclaimed sender lost its value");
                    return Err(SendFail::Timeout(v));
                }
                Woken::Cancelled => {
                    self.lock().senders.remove(&blocker);
                    // The unsent value goes with the cancellation; a panic
                    // of its destructor (reported by the hook) must not
                    // take the place of `Cancelled` in `join`.
                    crate::surviving(|| drop(packet));
                    unwind_cancelled();
                }
            }
            v = packet
                .take()
                .expect("coio: a sender woken to retry lost its value");
        }
    }

    /// Receives a value, waiting for one until `deadline`.
    /// (The budget as in `send`.)
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvFail> {
        coop_spend_cancellable();
        loop {
            let mut g = match self.recv_locked(self.lock(), None) {
                Ok(v) => return Ok(v),
                Err((_, RecvFail::Closed)) => return Err(RecvFail::Closed),
                Err((g, _)) => g,
            };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                drop(g);
                return Err(RecvFail::Timeout);
            }
            let blocker = Blocker::new(crate::runtime::dump::Wait::ChanRecv);
            let mut packet = Packet::new(None);
            // SAFETY: as in `send`.
            unsafe { g.receivers.push(&blocker, 0, packet.as_ptr()) };
            g.notify();
            drop(g);
            match blocker.wait(deadline, true) {
                Woken::Done(_) => {
                    return Ok(packet
                        .take()
                        .expect("coio: a receiver was woken without a value"));
                }
                // The senders went away: look again.
                Woken::Retry(_) => {}
                Woken::TimedOut => {
                    self.lock().receivers.remove(&blocker);
                    return Err(RecvFail::Timeout);
                }
                Woken::Cancelled => {
                    self.lock().receivers.remove(&blocker);
                    unwind_cancelled();
                }
            }
        }
    }

    /// One poll of an async receive ([`RecvFut`](super::RecvFut)): a
    /// value, the channel closed, or `Pending` with `wait`'s entry queued
    /// (and its waker up to date).
    ///
    /// # Safety
    /// `wait` stays in place (pinned) while it is `Some`, and whoever
    /// owns it calls [`cancel_recv`](Self::cancel_recv) before dropping it.
    pub(crate) unsafe fn poll_recv(
        &self,
        wait: &mut Option<AsyncWait<T>>,
        cx: &Context<'_>,
    ) -> Poll<Result<T, RecvFail>> {
        loop {
            if let Some(w) = wait {
                match w.blocker.poll_woken() {
                    Some(Woken::Done(_)) => {
                        let v = w.packet.take();
                        *wait = None;
                        self.landed();
                        return Poll::Ready(Ok(
                            v.expect("coio: a receiver was woken without a value")
                        ));
                    }
                    // The senders went away: look again.
                    Some(_) => *wait = None,
                    None => {
                        let _g = self.lock();
                        // SAFETY: we hold the lock of `receivers`, the one
                        // queue with our entry, and own the blocker.
                        if unsafe { w.blocker.set_waker(cx.waker()) } {
                            return Poll::Pending;
                        }
                        // Claimed meanwhile: read the outcome.
                        continue;
                    }
                }
            }
            // As in `recv` (a future polled by a coroutine's `block_on`),
            // the yield made by `block_on`, outside this poll.
            std::task::ready!(crate::runtime::worker::coop_poll_proceed(cx));
            let mut g = match self.recv_locked(self.lock(), None) {
                Ok(v) => {
                    crate::runtime::worker::coop_spend_in_poll();
                    return Poll::Ready(Ok(v));
                }
                Err((_, RecvFail::Closed)) => {
                    // As in `recv`.
                    crate::runtime::worker::coop_spend_in_poll();
                    return Poll::Ready(Err(RecvFail::Closed));
                }
                Err((g, _)) => g,
            };
            let w = wait.insert(AsyncWait {
                blocker: Blocker::for_waker(cx.waker().clone()),
                packet: Packet::new(None),
            });
            // SAFETY: `wait` stays in place until its entry is gone: the
            // caller's contract, and `cancel_recv` removes it or waits for
            // the claim to finish.
            unsafe { g.receivers.push(&w.blocker, 0, w.packet.as_ptr()) };
            g.notify();
            return Poll::Pending;
        }
    }

    /// Ends an async receive that is dropped: removes its entry, or, if a
    /// sender handed it a value already, gives that value back to the
    /// channel, so that dropping a receive future loses nothing.
    pub(crate) fn cancel_recv(&self, wait: &mut Option<AsyncWait<T>>) {
        let Some(w) = wait else { return };
        if w.blocker.abort() {
            self.lock().receivers.remove(&w.blocker);
        } else if let Some(Woken::Done(_)) = w.blocker.poll_woken()
            && let Some(v) = w.packet.take()
        {
            self.give_back(v, true);
        }
        *wait = None;
    }

    /// A value handed to a receive future that was dropped before taking
    /// it (`counted`: it is in `rx_state`'s count), or held by a dynamic
    /// select's receive dropped uncompleted (not counted): it goes to the
    /// oldest waiting receiver, else back to the front of the buffer (it
    /// was the oldest value; the buffer may then hold one more than its
    /// capacity, or a value for a rendezvous channel, until a receive
    /// takes it).
    pub(crate) fn give_back(&self, v: T, counted: bool) {
        let mut g = self.lock();
        if g.rx_closed {
            drop(g);
            drop(v);
        } else if let Some(c) = g.receivers.claim(None, false) {
            drop(g);
            // SAFETY: an entry of `receivers` of a `Chan<T>`.
            unsafe { self.hand_over(&c, v) };
        } else {
            g.buf.push_front(v);
            g.notify();
            drop(g);
        }
        // Counted in its new place first (handed over, or buffered under
        // the lock): no receiver sees the channel closed in between.
        if counted {
            self.landed();
        }
    }

    /// One poll of an async send ([`SendFut`](super::SendFut)) of the
    /// value in `value` (taken from there when it is sent or queued, put
    /// back when the receivers went away while it waited).
    ///
    /// # Safety
    /// As for [`poll_recv`](Self::poll_recv) (with
    /// [`cancel_send`](Self::cancel_send)).
    pub(crate) unsafe fn poll_send(
        &self,
        value: &mut Option<T>,
        wait: &mut Option<AsyncWait<T>>,
        cx: &Context<'_>,
    ) -> Poll<Result<(), SendFail<T>>> {
        loop {
            if let Some(w) = wait {
                match w.blocker.poll_woken() {
                    Some(Woken::Done(_)) => {
                        *wait = None;
                        return Poll::Ready(Ok(()));
                    }
                    // The receivers went away: look again, with our value.
                    Some(_) => {
                        *value = w.packet.take();
                        *wait = None;
                    }
                    None => {
                        let _g = self.lock();
                        // SAFETY: as in `poll_recv`, for `senders`.
                        if unsafe { w.blocker.set_waker(cx.waker()) } {
                            return Poll::Pending;
                        }
                        continue;
                    }
                }
            }
            // As in `poll_recv`.
            std::task::ready!(crate::runtime::worker::coop_poll_proceed(cx));
            let v = value
                .take()
                .expect("coio: a send future was polled after it completed");
            let (mut g, v) = match self.send_locked(self.lock(), v, None) {
                Ok(()) => {
                    crate::runtime::worker::coop_spend_in_poll();
                    return Poll::Ready(Ok(()));
                }
                Err((g, SendFail::Full(v))) => (g, v),
                Err((_, fail)) => {
                    // As in `send`.
                    crate::runtime::worker::coop_spend_in_poll();
                    return Poll::Ready(Err(fail));
                }
            };
            let w = wait.insert(AsyncWait {
                blocker: Blocker::for_waker(cx.waker().clone()),
                packet: Packet::new(Some(v)),
            });
            // SAFETY: as in `poll_recv`.
            unsafe { g.senders.push(&w.blocker, 0, w.packet.as_ptr()) };
            g.notify();
            return Poll::Pending;
        }
    }

    /// Ends an async send that is dropped: removes its entry (its value is
    /// dropped with it), unless a receiver took the value already.
    pub(crate) fn cancel_send(&self, wait: &mut Option<AsyncWait<T>>) {
        let Some(w) = wait else { return };
        if w.blocker.abort() {
            self.lock().senders.remove(&w.blocker);
        } else {
            // Claimed: wait until the claimer is done with our packet.
            let _ = w.blocker.poll_woken();
        }
        *wait = None;
    }

    /// Select, second step of a send arm: queues the entry (`oper`, with
    /// the value in `packet`) and returns true, or returns false if the arm
    /// is ready now (room, a waiting receiver other than `me`, or closed).
    ///
    /// # Safety
    /// `blocker` and `packet` must stay in place until the select has
    /// removed this entry (`unregister`) or seen `DONE`.
    pub(crate) unsafe fn register_send(
        &self,
        blocker: &Blocker,
        oper: usize,
        packet: &Packet<T>,
    ) -> bool {
        let mut g = self.lock();
        if g.rx_closed || g.has_room(self.cap) || g.receivers.has_waiting(Some(blocker)) {
            return false;
        }
        // SAFETY: caller.
        unsafe { g.senders.push(blocker, oper, packet.as_ptr()) };
        g.notify_except(Some(blocker));
        true
    }

    /// Select, second step of a receive arm (see `register_send`).
    ///
    /// # Safety
    /// As for `register_send`.
    pub(crate) unsafe fn register_recv(
        &self,
        blocker: &Blocker,
        oper: usize,
        packet: &Packet<T>,
    ) -> bool {
        let mut g = self.lock();
        if self.tx_closed() || !g.buf.is_empty() || g.senders.has_waiting(Some(blocker)) {
            return false;
        }
        // SAFETY: caller.
        unsafe { g.receivers.push(blocker, oper, packet.as_ptr()) };
        g.notify_except(Some(blocker));
        true
    }

    /// Removes a select's entries from both queues.
    pub(crate) fn unregister(&self, blocker: &Blocker) {
        let mut g = self.lock();
        g.senders.remove(blocker);
        g.receivers.remove(blocker);
    }

    /// Dynamic select: whether a receive (`send`: a send) would complete
    /// now.
    pub(crate) fn is_ready(&self, send: bool) -> bool {
        let g = self.lock();
        if send {
            g.send_ready(self.cap, None)
        } else {
            g.recv_ready(self.tx_closed(), None)
        }
    }

    /// Dynamic select: queues `blocker` as an observer (operation `oper`)
    /// and returns true, or returns false if the receive (`send`: the
    /// send) is ready now.
    ///
    /// # Safety
    /// `blocker` stays in place until [`unwatch`](Self::unwatch) has run
    /// or it was seen `DONE`.
    pub(crate) unsafe fn watch(&self, blocker: &Blocker, oper: usize, send: bool) -> bool {
        let mut g = self.lock();
        let ready = if send {
            g.send_ready(self.cap, Some(blocker))
        } else {
            g.recv_ready(self.tx_closed(), Some(blocker))
        };
        if ready {
            return false;
        }
        // SAFETY: caller; observers have no packet.
        unsafe { g.observers.push(blocker, oper, std::ptr::null_mut()) };
        true
    }

    /// Dynamic select: removes `blocker`'s observer entries.
    pub(crate) fn unwatch(&self, blocker: &Blocker) {
        self.lock().observers.remove(blocker);
    }

    /// Dynamic select: reserves a send if one would complete now: claims
    /// the oldest waiting receiver (a receive future: holds a slot in its
    /// place, see below), or holds a free slot of the buffer, or finds the
    /// channel closed.
    pub(crate) fn reserve_send(&self) -> Option<SendReservation<'_>> {
        let mut g = self.lock();
        if g.rx_closed {
            return Some(SendReservation::Closed);
        }
        if let Some(c) = g.receivers.claim(None, false) {
            if !c.is_future() {
                return Some(SendReservation::Receiver(c));
            }
            // A receive future's claim cannot be held until the caller
            // completes the send: the future's poll and drop wait for a
            // claim to finish, and its owner may be this very thread (it
            // spun for ever). It is told to look again, and the send
            // holds a slot instead, which `complete_send` hands to a
            // waiting receiver or, if none waits by then, puts in the
            // buffer even if that makes it over-full (as `give_back`).
            g.reserved += 1;
            drop(g);
            c.release();
            return Some(SendReservation::Room(self));
        }
        if g.has_room(self.cap) {
            g.reserved += 1;
            return Some(SendReservation::Room(self));
        }
        None
    }

    /// Completes a reserved send with `v`, without waiting: into the
    /// claimed receiver's packet; or, into the slot held for it, which
    /// goes to the oldest waiting receiver if one came meanwhile (the
    /// buffer is then empty), else into the buffer (over-full if the slot
    /// was held for a receive future, see `reserve_send`). `Err(v)`: every
    /// receiver is gone.
    pub(crate) fn complete_send(&self, r: SendReservation<'_>, v: T) -> Result<(), T> {
        match r {
            SendReservation::Receiver(c) => {
                // SAFETY: a claim of an entry of `receivers` of this
                // `Chan<T>` (`reserve_send`), kept unfinished until now.
                unsafe { self.hand_over(&c, v) };
                drop(c);
                Ok(())
            }
            SendReservation::Closed => Err(v),
            SendReservation::Room(_) => {
                let mut g = self.lock();
                g.reserved -= 1;
                if g.rx_closed {
                    return Err(v);
                }
                if let Some(c) = g.receivers.claim(None, false) {
                    drop(g);
                    // SAFETY: an entry of `receivers` of a `Chan<T>`.
                    unsafe { self.hand_over(&c, v) };
                    return Ok(());
                }
                g.buf.push_back(v);
                g.notify();
                Ok(())
            }
        }
    }

    /// The last sender is gone: waiting receivers look again (and find the
    /// channel closed once the buffer is drained and no receive future
    /// holds a value).
    pub(crate) fn close_tx(&self) {
        {
            // Under the lock, where the receivers read it before they
            // queue.
            let _g = self.lock();
            self.rx_state.fetch_or(TX_CLOSED, AcqRel);
        }
        self.wake_receivers();
    }

    /// Wakes every waiting receiver, and every select watching, to look
    /// again (the senders are gone, or the last value in flight after
    /// that landed).
    fn wake_receivers(&self) {
        self.lock().notify();
        // One claim at a time, each woken outside the lock (an async
        // waiter's waker may run any code). Receivers queue after this
        // only while values are in flight, and the last of those to land
        // wakes them again.
        loop {
            let c = self.lock().receivers.claim(None, true);
            match c {
                Some(c) => drop(c),
                None => return,
            }
        }
    }

    /// The last receiver is gone: buffered values are dropped (after the
    /// lock is released: their destructors may use channels), and waiting
    /// senders look again (and get their values back).
    pub(crate) fn close_rx(&self) {
        let buf = {
            let mut g = self.lock();
            g.rx_closed = true;
            g.notify();
            std::mem::take(&mut g.buf)
        };
        // As in `close_tx`.
        loop {
            let c = self.lock().senders.claim(None, true);
            match c {
                Some(c) => drop(c),
                None => break,
            }
        }
        drop(buf);
    }
}

impl<T> ReleaseRoom for Chan<T> {
    /// Gives back a slot held by [`reserve_send`](Chan::reserve_send) for
    /// a send dropped uncompleted: the oldest waiting sender's value takes
    /// it, and selects waiting to send hear of the change.
    fn release_room(&self) {
        let mut g = self.lock();
        g.reserved -= 1;
        let c = g.refill(self.cap, None);
        g.notify();
        drop(g);
        drop(c);
    }
}
