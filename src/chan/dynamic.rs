//! [`Select`]: a select over a set of operations built at run time,
//! crossbeam-channel's API (for a fixed set written in the code,
//! [`select!`](crate::select!) is shorter and faster).
//!
//! # How it works
//!
//! A round tries the operations in a random order (each select draws a
//! fresh permutation, so among operations ready at once each is equally
//! likely to be chosen, as in Go) and *reserves* the first one that can
//! complete now, so that completing it later cannot wait:
//!
//! * a receive takes its value (or finds the channel closed) at once; the
//!   [`SelectedOperation`] holds it until [`recv`](SelectedOperation::recv)
//!   hands it over. Dropped uncompleted, it gives the value back to the
//!   channel's front (nothing is lost), except a timer channel's delivery
//!   (an `after`'s one message, a tick), which is dropped with it.
//! * a send claims the oldest waiting receiver (which keeps waiting, its
//!   packet reserved for this send), or finds room in the buffer, or finds
//!   the channel closed. [`send`](SelectedOperation::send) completes it;
//!   dropped uncompleted, the claimed receiver is told to look again. A
//!   waiting receive future (`recv_async`) is not held that way (its
//!   owner may poll or drop it before the send completes, on this very
//!   thread): it is told to look again, and the send holds a slot of the
//!   buffer instead, which `send` fills even if the channel is a
//!   rendezvous one or full by then (the value waits there for the next
//!   receive).
//!
//! With nothing ready, the select makes one blocker and queues it on
//! every channel involved, after checking under each channel's lock that
//! the operation is still not ready, and waits:
//!
//! * a receive queues as a waiting receiver, with a packet, as a
//!   `select!` arm does: a sender (a plain one, or a selecting one that
//!   reserves it) hands it a value, and that ends the wait with the
//!   receive reserved. So two selects meet on a rendezvous channel.
//! * a send has no value yet (it comes with `SelectedOperation::send`),
//!   so it queues as an *observer*: any change that can make a send ready
//!   (a receiver queued, room made, a close) wakes every observer of the
//!   channel, which tries again. `ready` waits this way for receives too.
//!   Observers cost the channel operations one branch when there are
//!   none.
//!
//! A select holding a claimed receiver keeps it waiting until the send is
//! completed; the parking core lets such a waiter block rather than spin
//! (the claim may last as long as the caller takes, on the waiter's own
//! worker).
//!
//! Timer channels ([`after`](super::after), [`tick`](super::tick)) are
//! ready when their delivery is due; the wait ends by then at the latest.
//! [`never`](super::never()) is never ready.
//!
//! [`ready`](Select::ready) and its variants only report an operation that
//! is ready, without reserving it: by the time the caller acts, another
//! thread may have taken it (crossbeam's semantics).

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::channel::{Chan, Packet, RecvFail, SendReservation};
use super::select::{Arms, Mode, rounds, shuffle};
use super::{
    Flavor, Receiver, RecvError, SelectTimeoutError, SendError, Sender, TryReadyError,
    TrySelectError,
};
use crate::park::Blocker;

/// One operation of a [`Select`], type-erased.
trait Operation<'a> {
    /// Reserves the operation if it can complete now.
    fn reserve(&self) -> Option<Option<Reservation<'a>>>;

    /// Whether it can complete now (no reservation).
    fn is_ready(&self) -> bool;

    /// Queues `blocker` to be woken when the operation may have become
    /// ready (operation number `oper`); false if it is ready now. With
    /// `reserve`, a receive queues as a waiting receiver, with a packet,
    /// so that a sender (or a selecting sender) can hand it a value: then
    /// the wait ends `Done(oper)` and [`claimed`](Self::claimed) takes it.
    ///
    /// # Safety
    /// `blocker`, and the operation (its packet), stay in place until
    /// `unwatch` ran or the blocker was seen `DONE`.
    unsafe fn watch(&self, blocker: &Blocker, oper: usize, reserve: bool) -> bool;

    /// Removes `blocker`'s entries.
    fn unwatch(&self, blocker: &Blocker);

    /// A sender handed this (receive) operation its value while the
    /// select waited: the reservation.
    fn claimed(&mut self) -> Reservation<'a>;

    /// For a timer channel: when it is next ready.
    fn deadline(&self) -> Option<Instant>;

    /// The channel's identity (see [`Receiver::id`]).
    fn id(&self) -> usize;
}

/// What a reserved operation holds until it is completed.
enum Reservation<'a> {
    /// A receive's value (or `RecvError`), boxed with its channel (to give
    /// the value back if the operation is dropped uncompleted).
    Recv(Box<dyn Taken + 'a>),
    /// A reserved send.
    Send(SendReservation<'a>),
}

/// A received value held by a [`SelectedOperation`] (a `Held<'a, T>`,
/// type-erased).
trait Taken {}

/// The value of a reserved receive.
struct Held<'a, T> {
    /// The channel, for the give-back; None for a timer channel (a tick
    /// dropped uncompleted is lost, as one the receiver fell behind on).
    chan: Option<&'a Chan<T>>,
    value: Option<Result<T, RecvError>>,
}

impl<T> Taken for Held<'_, T> {}

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        // Dropped uncompleted: the value goes back to the channel, where
        // it is counted in flight until then (`Chan::try_recv_held`, and
        // the `HELD` hand-over), so that no receiver was told the channel
        // closed meanwhile.
        if let (Some(c), Some(Ok(v))) = (self.chan, self.value.take()) {
            c.give_back(v, true);
        }
    }
}

struct RecvOp<'a, T>(&'a Receiver<T>, Packet<T>);

impl<'a, T> Operation<'a> for RecvOp<'a, T> {
    fn reserve(&self) -> Option<Option<Reservation<'a>>> {
        let (chan, value) = match self.0.flavor() {
            Flavor::Chan(c) => match c.try_recv_held() {
                Ok(v) => (Some(&**c), Ok(v)),
                Err(RecvFail::Closed) => (None, Err(RecvError)),
                Err(RecvFail::Empty | RecvFail::Timeout) => return None,
            },
            Flavor::Timer(t, f) => (None, Ok(f(t.try_take(Instant::now())?))),
            Flavor::Never => return None,
        };
        Some(Some(Reservation::Recv(Box::new(Held {
            chan,
            value: Some(value),
        }))))
    }

    fn is_ready(&self) -> bool {
        match self.0.flavor() {
            Flavor::Chan(c) => c.is_ready(false),
            Flavor::Timer(t, _) => t.len() == 1,
            Flavor::Never => false,
        }
    }

    unsafe fn watch(&self, blocker: &Blocker, oper: usize, reserve: bool) -> bool {
        match self.0.flavor() {
            // SAFETY: caller (the packet is part of `self`).
            // `HELD`: a sender's hand-over counts the value in flight.
            Flavor::Chan(c) if reserve => unsafe {
                c.register_recv(blocker, oper | super::channel::HELD, &self.1)
            },
            // SAFETY: caller.
            Flavor::Chan(c) => unsafe { c.watch(blocker, oper, false) },
            // The select's deadline covers a timer; `never` never changes.
            Flavor::Timer(..) | Flavor::Never => true,
        }
    }

    fn unwatch(&self, blocker: &Blocker) {
        if let Flavor::Chan(c) = self.0.flavor() {
            c.unregister(blocker);
            c.unwatch(blocker);
        }
    }

    fn claimed(&mut self) -> Reservation<'a> {
        let Flavor::Chan(c) = self.0.flavor() else {
            unreachable!("coio: a timer channel's receive was claimed")
        };
        let v = self
            .1
            .take()
            .expect("coio: a select's receive was chosen without a value");
        Reservation::Recv(Box::new(Held {
            chan: Some(&**c),
            value: Some(Ok(v)),
        }))
    }

    fn deadline(&self) -> Option<Instant> {
        match self.0.flavor() {
            Flavor::Timer(t, _) => t.due(),
            _ => None,
        }
    }

    fn id(&self) -> usize {
        self.0.id()
    }
}

struct SendOp<'a, T>(&'a Sender<T>);

impl<'a, T> Operation<'a> for SendOp<'a, T> {
    fn reserve(&self) -> Option<Option<Reservation<'a>>> {
        self.0
            .chan()
            .reserve_send()
            .map(|r| Some(Reservation::Send(r)))
    }

    fn is_ready(&self) -> bool {
        self.0.chan().is_ready(true)
    }

    unsafe fn watch(&self, blocker: &Blocker, oper: usize, _reserve: bool) -> bool {
        // SAFETY: caller.
        unsafe { self.0.chan().watch(blocker, oper, true) }
    }

    fn unwatch(&self, blocker: &Blocker) {
        self.0.chan().unwatch(blocker);
    }

    fn claimed(&mut self) -> Reservation<'a> {
        unreachable!("coio: a select's send was claimed (it only observes)")
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn id(&self) -> usize {
        self.0.id()
    }
}

/// A select over operations added at run time: crossbeam-channel's
/// `Select`, for a set of channels whose size is known only when the
/// program runs.
///
/// Add operations with [`recv`](Select::recv) and [`send`](Select::send)
/// (each returns its index), then [`select`](Select::select) waits until
/// one of them can complete, chooses it (uniformly at random among those
/// ready at once, as Go does) and returns it as a [`SelectedOperation`],
/// which must then be completed with the same channel:
/// [`SelectedOperation::recv`] or [`SelectedOperation::send`]. Completing
/// never waits: the operation was reserved when it was chosen. The
/// variants [`try_select`](Select::try_select),
/// [`select_timeout`](Select::select_timeout) and
/// [`select_deadline`](Select::select_deadline) wait less;
/// [`ready`](Select::ready) and its variants only tell which operation is
/// ready, without reserving it.
///
/// A waiting select suspends only its coroutine (a plain thread blocks),
/// and honours cancellation like every other wait.
///
/// ```
/// use coio::chan::{self, Select};
///
/// coio::run(|| {
///     // Receive from whichever of n channels has a value.
///     let chans: Vec<_> = (0..5).map(|_| chan::bounded::<usize>(1)).collect();
///     chans[3].0.send(33).unwrap();
///     let mut sel = Select::new();
///     for (_, rx) in &chans {
///         sel.recv(rx);
///     }
///     let op = sel.select();
///     let i = op.index();
///     assert_eq!(i, 3);
///     assert_eq!(op.recv(&chans[i].1), Ok(33));
/// });
/// ```
pub struct Select<'a> {
    /// The operations, by index; None: removed.
    ops: Vec<Option<Box<dyn Operation<'a> + 'a>>>,
    /// Operations not removed.
    live: usize,
    /// `Select` holds a blocker's address only during a call; it is tied
    /// to its thread like crossbeam's (and like a coroutine).
    _not_send: PhantomData<*mut ()>,
}

impl<'a> Select<'a> {
    /// An empty select.
    ///
    /// ```
    /// let mut sel = coio::chan::Select::new();
    /// assert!(sel.try_select().is_err());
    /// ```
    pub fn new() -> Select<'a> {
        Select {
            ops: Vec::new(),
            live: 0,
            _not_send: PhantomData,
        }
    }

    /// Adds a send on `s`; returns its index.
    ///
    /// ```
    /// use coio::chan::{self, Select};
    ///
    /// let (tx, rx) = chan::bounded(1);
    /// let mut sel = Select::new();
    /// let i = sel.send(&tx);
    /// let op = sel.select();
    /// assert_eq!(op.index(), i);
    /// op.send(&tx, "hi").unwrap();
    /// assert_eq!(rx.recv(), Ok("hi"));
    /// ```
    pub fn send<T>(&mut self, s: &'a Sender<T>) -> usize {
        self.add(Box::new(SendOp(s)))
    }

    /// Adds a receive from `r`; returns its index.
    ///
    /// ```
    /// use coio::chan::{self, Select};
    ///
    /// let (tx, rx) = chan::unbounded();
    /// tx.send(5).unwrap();
    /// let mut sel = Select::new();
    /// let i = sel.recv(&rx);
    /// let op = sel.select();
    /// assert_eq!(op.index(), i);
    /// assert_eq!(op.recv(&rx), Ok(5));
    /// ```
    pub fn recv<T>(&mut self, r: &'a Receiver<T>) -> usize {
        self.add(Box::new(RecvOp(r, Packet::new(None))))
    }

    fn add(&mut self, op: Box<dyn Operation<'a> + 'a>) -> usize {
        self.ops.push(Some(op));
        self.live += 1;
        self.ops.len() - 1
    }

    /// Removes the operation with index `index`: it will not be chosen any
    /// more (the other indices stay as they are).
    ///
    /// # Panics
    /// If there is no operation with that index (never added, or removed
    /// already).
    ///
    /// ```
    /// use coio::chan::{self, Select};
    ///
    /// let (tx1, rx1) = chan::unbounded::<u8>();
    /// let (tx2, rx2) = chan::unbounded::<u8>();
    /// tx1.send(1).unwrap();
    /// tx2.send(2).unwrap();
    /// let mut sel = Select::new();
    /// let i1 = sel.recv(&rx1);
    /// let i2 = sel.recv(&rx2);
    /// sel.remove(i1);
    /// let op = sel.select();
    /// assert_eq!(op.index(), i2);
    /// assert_eq!(op.recv(&rx2), Ok(2));
    /// ```
    pub fn remove(&mut self, index: usize) {
        let slot = self.ops.get_mut(index).and_then(Option::take);
        assert!(
            slot.is_some(),
            "coio::chan::Select::remove: no operation with index {index} (never added, or removed already)"
        );
        self.live -= 1;
    }

    /// Chooses and reserves an operation that can complete now, without
    /// waiting.
    ///
    /// # Errors
    /// [`TrySelectError`] if none can.
    ///
    /// ```
    /// use coio::chan::{self, Select};
    ///
    /// let (tx, rx) = chan::bounded::<u8>(1);
    /// let mut sel = Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.try_select().is_err());
    /// tx.send(1).unwrap();
    /// assert_eq!(sel.try_select().unwrap().recv(&rx), Ok(1));
    /// ```
    pub fn try_select(&mut self) -> Result<SelectedOperation<'a>, TrySelectError> {
        self.run_select(Mode::Try).ok_or(TrySelectError)
    }

    /// Waits until an operation can complete, then chooses and reserves
    /// it. With no operation, waits forever (Go's `select {}`).
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits.
    ///
    /// ```
    /// use coio::chan::{self, Select};
    ///
    /// coio::run(|| {
    ///     let (tx, rx) = chan::bounded::<u8>(0);
    ///     coio::spawn(move || tx.send(7).unwrap());
    ///     let mut sel = Select::new();
    ///     sel.recv(&rx);
    ///     assert_eq!(sel.select().recv(&rx), Ok(7));
    /// });
    /// ```
    pub fn select(&mut self) -> SelectedOperation<'a> {
        self.run_select(Mode::Block)
            .expect("coio: a select without deadline ended without an operation")
    }

    /// As [`select`](Self::select), waiting for `timeout` at most.
    ///
    /// # Errors
    /// [`SelectTimeoutError`] if no operation could complete in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::chan::{self, Select};
    ///
    /// let (_tx, rx) = chan::bounded::<u8>(1);
    /// let mut sel = Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.select_timeout(Duration::from_millis(5)).is_err());
    /// ```
    pub fn select_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        self.run_select(Mode::timeout(timeout))
            .ok_or(SelectTimeoutError)
    }

    /// As [`select`](Self::select), waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`SelectTimeoutError`] if no operation could complete in time.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use coio::chan::{self, Select};
    ///
    /// let (tx, rx) = chan::bounded::<u8>(1);
    /// tx.send(1).unwrap();
    /// let mut sel = Select::new();
    /// sel.recv(&rx);
    /// let op = sel.select_deadline(Instant::now() + Duration::from_secs(1)).unwrap();
    /// assert_eq!(op.recv(&rx), Ok(1));
    /// ```
    pub fn select_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        self.run_select(Mode::Until(Some(deadline)))
            .ok_or(SelectTimeoutError)
    }

    /// The index of an operation that can complete now, without
    /// reserving it (another thread may take it first).
    ///
    /// # Errors
    /// [`TryReadyError`] if none can.
    ///
    /// ```
    /// use coio::chan::{self, Select};
    ///
    /// let (tx, rx) = chan::bounded::<u8>(1);
    /// let mut sel = Select::new();
    /// let i = sel.recv(&rx);
    /// assert!(sel.try_ready().is_err());
    /// tx.send(1).unwrap();
    /// assert_eq!(sel.try_ready(), Ok(i));
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn try_ready(&mut self) -> Result<usize, TryReadyError> {
        self.run_ready(Mode::Try).ok_or(TryReadyError)
    }

    /// Waits until an operation can complete and returns its index,
    /// without reserving it (another thread may take it first). With no
    /// operation, waits forever.
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits.
    ///
    /// ```
    /// use coio::chan::{self, Select};
    ///
    /// coio::run(|| {
    ///     let (tx, rx) = chan::bounded::<u8>(1);
    ///     coio::spawn(move || tx.send(1).unwrap());
    ///     let mut sel = Select::new();
    ///     let i = sel.recv(&rx);
    ///     assert_eq!(sel.ready(), i);
    ///     assert_eq!(rx.recv(), Ok(1));
    /// });
    /// ```
    pub fn ready(&mut self) -> usize {
        self.run_ready(Mode::Block)
            .expect("coio: a select without deadline ended without an operation")
    }

    /// As [`ready`](Self::ready), waiting for `timeout` at most.
    ///
    /// # Errors
    /// [`ReadyTimeoutError`](super::ReadyTimeoutError) if no operation
    /// became ready in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::chan::{self, Select};
    ///
    /// let (_tx, rx) = chan::bounded::<u8>(1);
    /// let mut sel = Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.ready_timeout(Duration::from_millis(5)).is_err());
    /// ```
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, super::ReadyTimeoutError> {
        self.run_ready(Mode::timeout(timeout))
            .ok_or(super::ReadyTimeoutError)
    }

    /// As [`ready`](Self::ready), waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`ReadyTimeoutError`](super::ReadyTimeoutError) if no operation
    /// became ready in time.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use coio::chan::{self, Select};
    ///
    /// let (tx, _rx) = chan::bounded::<u8>(1);
    /// let mut sel = Select::new();
    /// let i = sel.send(&tx);
    /// assert_eq!(sel.ready_deadline(Instant::now() + Duration::from_secs(1)), Ok(i));
    /// ```
    pub fn ready_deadline(&mut self, deadline: Instant) -> Result<usize, super::ReadyTimeoutError> {
        self.run_ready(Mode::Until(Some(deadline)))
            .ok_or(super::ReadyTimeoutError)
    }

    /// A select: reserves an operation, or gives up when `mode` runs out.
    fn run_select(&mut self, mode: Mode) -> Option<SelectedOperation<'a>> {
        let (index, reservation) = self.run(mode, true, |op| op.reserve())?;
        let id = self.ops[index].as_ref().map_or(0, |op| op.id());
        Some(SelectedOperation {
            index,
            id,
            reservation,
        })
    }

    fn run_ready(&mut self, mode: Mode) -> Option<usize> {
        self.run(mode, false, |op| op.is_ready().then_some(None))
            .map(|(i, _)| i)
    }

    /// The rounds of a select (`select::rounds`) over the live operations,
    /// with `attempt` as the try of one; `reserve`: a select (receives wait
    /// as receivers, whose claim reserves them), not a `ready`.
    fn run(
        &mut self,
        mode: Mode,
        reserve: bool,
        attempt: impl Fn(&(dyn Operation<'a> + 'a)) -> Option<Option<Reservation<'a>>>,
    ) -> Option<(usize, Option<Reservation<'a>>)> {
        let mut order: Vec<usize> = Vec::with_capacity(self.live);
        order.extend((0..self.ops.len()).filter(|&i| self.ops[i].is_some()));
        shuffle(&mut order);
        let mut ops = Ops {
            ops: &mut self.ops,
            reserve,
            attempt,
        };
        rounds(&mut ops, &order, mode)
    }
}

/// A select's live operations as `select::rounds` sees them.
struct Ops<'s, 'a, F> {
    ops: &'s mut [Option<Box<dyn Operation<'a> + 'a>>],
    /// A select, not a `ready` (see `Operation::watch`).
    reserve: bool,
    /// Step 1 of one operation.
    attempt: F,
}

impl<'a, F> Ops<'_, 'a, F> {
    /// Operation `i`, which the rounds take only from the live ones.
    fn op(&self, i: usize) -> &(dyn Operation<'a> + 'a) {
        self.ops[i].as_deref().expect("live operation")
    }
}

impl<'a, F> Arms for Ops<'_, 'a, F>
where
    F: Fn(&(dyn Operation<'a> + 'a)) -> Option<Option<Reservation<'a>>>,
{
    type Won = Option<Reservation<'a>>;

    fn try_now(&mut self, i: usize) -> Option<Self::Won> {
        (self.attempt)(self.op(i))
    }

    fn deadline(&self, i: usize) -> Option<Instant> {
        self.op(i).deadline()
    }

    unsafe fn register(&mut self, i: usize, blocker: &Blocker) -> bool {
        // SAFETY: the caller's contract is `watch`'s.
        unsafe { self.op(i).watch(blocker, i, self.reserve) }
    }

    fn unregister(&mut self, i: usize, blocker: &Blocker) {
        self.op(i).unwatch(blocker);
    }

    fn claimed(&mut self, i: usize) -> Self::Won {
        // A sender handed receive `i` its value.
        let op = self.ops[i].as_deref_mut().expect("live operation");
        Some(op.claimed())
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Select::new()
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("operations", &self.live)
            .finish_non_exhaustive()
    }
}

/// The operation a [`Select`] chose, reserved: complete it with
/// [`recv`](Self::recv) or [`send`](Self::send) on the channel it was
/// added with (this never waits).
///
/// Dropped without being completed, it gives the operation up: a
/// received value goes back to the front of its channel (a delivery of
/// [`after`](super::after) or [`tick`](super::tick) is dropped: it is
/// lost), and a receiver claimed for a send is told to look again.
/// Meanwhile that receiver keeps waiting, past its timeout and through a
/// cancellation (it is claimed: both apply once the operation is
/// completed or dropped), as a lock's holder keeps its waiters: complete
/// the operation promptly, and do not wait for that receiver's coroutine
/// (a `join`) while holding it.
///
/// ```
/// use coio::chan::{self, Select};
///
/// let (tx, rx) = chan::unbounded();
/// tx.send(1).unwrap();
/// let mut sel = Select::new();
/// sel.recv(&rx);
/// let op = sel.select(); // reserves the value
/// assert!(rx.try_recv().is_err());
/// drop(op); // not completed: the value goes back
/// assert_eq!(rx.try_recv(), Ok(1));
/// ```
pub struct SelectedOperation<'a> {
    index: usize,
    /// The chosen channel's identity (see [`Receiver::id`]).
    id: usize,
    /// None once completed.
    reservation: Option<Reservation<'a>>,
}

impl SelectedOperation<'_> {
    /// The index [`Select::recv`] or [`Select::send`] returned for the
    /// chosen operation.
    ///
    /// ```
    /// use coio::chan::{self, Select};
    ///
    /// let (tx, rx) = chan::unbounded::<u8>();
    /// let (_tx2, rx2) = chan::unbounded::<u8>();
    /// tx.send(1).unwrap();
    /// let mut sel = Select::new();
    /// let _ = sel.recv(&rx2);
    /// let i = sel.recv(&rx);
    /// let op = sel.select();
    /// assert_eq!(op.index(), i);
    /// op.recv(&rx).unwrap();
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// Completes the chosen receive: its value, or [`RecvError`] if the
    /// channel was closed and empty.
    ///
    /// # Panics
    /// If `r` is not a receiver of the chosen operation's channel, or the
    /// chosen operation is a send.
    ///
    /// ```
    /// use coio::chan::{self, Select};
    ///
    /// let (tx, rx) = chan::unbounded::<&str>();
    /// drop(tx);
    /// let mut sel = Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.select().recv(&rx).is_err());
    /// ```
    pub fn recv<T>(mut self, r: &Receiver<T>) -> Result<T, RecvError> {
        assert!(
            r.id() == self.id && self.id != 0,
            "coio::chan::SelectedOperation::recv: not the receiver of the chosen operation ({})",
            self.index
        );
        // Checked before the reservation is taken out: on the panic, the
        // drop below still releases what a send reservation holds.
        assert!(
            matches!(self.reservation, Some(Reservation::Recv(_))),
            "coio::chan::SelectedOperation::recv: the chosen operation ({}) is a send",
            self.index
        );
        match self.reservation.take() {
            Some(Reservation::Recv(taken)) => {
                let raw: *mut (dyn Taken + '_) = Box::into_raw(taken);
                // SAFETY: the box was made by `RecvOp::<T>::reserve` as a
                // `Held<'_, T>` of the chosen receiver's channel, and `r`
                // receives from that channel (same identity, checked
                // above: two live channels never share an address), so
                // its `T` is this `T`.
                let mut held = unsafe { Box::from_raw(raw.cast::<Held<'_, T>>()) };
                let v = held
                    .value
                    .take()
                    .expect("coio: a reserved receive without its value");
                if let (Some(c), Ok(_)) = (held.chan, &v) {
                    // Taken: no longer in flight.
                    c.landed();
                }
                v
            }
            _ => unreachable!("coio: checked above"),
        }
    }

    /// Completes the chosen send with `msg`.
    ///
    /// # Errors
    /// [`SendError`] with the value if every receiver is gone.
    ///
    /// # Panics
    /// If `s` is not a sender of the chosen operation's channel, or the
    /// chosen operation is a receive.
    ///
    /// ```
    /// use coio::chan::{self, Select};
    ///
    /// coio::run(|| {
    ///     let (tx, rx) = chan::bounded::<u32>(0);
    ///     let h = coio::spawn(move || rx.recv().unwrap());
    ///     let mut sel = Select::new();
    ///     sel.send(&tx);
    ///     sel.select().send(&tx, 9).unwrap();
    ///     assert_eq!(h.join().unwrap(), 9);
    /// });
    /// ```
    pub fn send<T>(mut self, s: &Sender<T>, msg: T) -> Result<(), SendError<T>> {
        assert!(
            s.id() == self.id,
            "coio::chan::SelectedOperation::send: not the sender of the chosen operation ({})",
            self.index
        );
        // As in `recv`: the reservation stays for the drop on a panic.
        assert!(
            matches!(self.reservation, Some(Reservation::Send(_))),
            "coio::chan::SelectedOperation::send: the chosen operation ({}) is a receive",
            self.index
        );
        match self.reservation.take() {
            Some(Reservation::Send(r)) => s.chan().complete_send(r, msg).map_err(SendError),
            _ => unreachable!("coio: checked above"),
        }
    }
}

impl Drop for SelectedOperation<'_> {
    fn drop(&mut self) {
        match self.reservation.take() {
            // The value goes back (`Held`'s drop).
            Some(Reservation::Recv(taken)) => drop(taken),
            Some(Reservation::Send(SendReservation::Receiver(c))) => c.release(),
            // The slot held for the send goes back to the channel.
            Some(Reservation::Send(SendReservation::Room(chan))) => chan.release_room(),
            Some(Reservation::Send(SendReservation::Closed)) | None => {}
        }
    }
}

impl fmt::Debug for SelectedOperation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectedOperation")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}
