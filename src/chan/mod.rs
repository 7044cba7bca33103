//! Go-style channels for coroutines and threads alike, and
//! [`select!`](crate::select!).
//!
//! ```
//! use coio::chan;
//!
//! let sum = coio::run(|| {
//!     let (tx, rx) = chan::bounded(16);
//!     for i in 0..4u64 {
//!         let tx = tx.clone();
//!         coio::spawn(move || {
//!             for j in 0..100 {
//!                 tx.send(i * 100 + j).unwrap();
//!             }
//!         });
//!     }
//!     drop(tx); // the receiver ends once every sender is gone
//!     rx.iter().sum::<u64>()
//! });
//! assert_eq!(sum, (0..400).sum());
//! ```
//!
//! * [`bounded`]`(cap)` holds up to `cap` values; `bounded(0)` is Go's
//!   unbuffered channel: every send waits for a receiver (a rendezvous).
//!   [`unbounded`] never makes a sender wait.
//! * [`Sender`] and [`Receiver`] are both `Clone`: many producers, many
//!   consumers. Each value goes to exactly one receiver; waiting senders and
//!   receivers are served first come, first served.
//! * Closing is implicit, as in crossbeam-channel: once every `Sender` is
//!   dropped, receivers drain what is buffered and then get [`RecvError`];
//!   once every `Receiver` is dropped, buffered values are dropped and
//!   `send` gives the value back inside [`SendError`].
//! * A coroutine that waits suspends only itself; a plain thread waiting
//!   blocks. Both can use the same channel. Waits honour cancellation
//!   ([`JoinHandle::cancel`](crate::JoinHandle::cancel)): the coroutine
//!   unwinds with [`Cancelled`](crate::Cancelled), and a value it was
//!   sending is dropped.
//! * An operation that did not wait counts against the coroutine's
//!   cooperative budget: the 128th in a row (a consumer whose producers
//!   keep the channel full, a producer into a channel that always has
//!   room) yields the coroutine once, so that the other coroutines and the
//!   timers of its worker run. The `try_` forms and a select with a bare
//!   `default =>` arm never yield; the timed forms (`recv_timeout`, a
//!   select with `default(timeout)`, `Select::select_timeout`) count as the
//!   untimed ones do, and so does a timed form that times out without
//!   waiting (a zero timeout in a polling loop). As at any wait, a borrow of a thread-local (a
//!   `RefCell` in a `thread_local!`) must not be held across one.
//! * [`select!`](crate::select!) waits on several operations at once;
//!   [`Select`] does the same for a set of operations known only at run
//!   time.
//! * [`after`], [`tick`] and [`never`](never()) are Go's `time.After`, `time.Tick`
//!   and nil channel: a timeout for a whole loop of selects, a periodic
//!   tick, an arm switched off.
//!
//! The names follow `std::sync::mpsc` (whose [`channel`],
//! [`sync_channel`] and [`SyncSender`] are here too, as other names for
//! [`unbounded`], [`bounded`] and [`Sender`]) and crossbeam-channel. The
//! structure follows Go's channels: one lock per channel, a ring buffer and
//! FIFO queues of waiting senders and receivers, built on coio's parking
//! core (see `channel.rs`).

mod channel;
mod dynamic;
mod error;
#[doc(hidden)]
pub mod select;
mod timer;

use std::fmt;
use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::*;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::runtime::sleep::Sleep;
use channel::{AsyncWait, Chan, RecvFail, SendFail};
pub use dynamic::{Select, SelectedOperation};
pub use error::{
    ReadyTimeoutError, RecvError, RecvTimeoutError, SelectTimeoutError, SendError,
    SendTimeoutError, TryReadyError, TryRecvError, TrySelectError, TrySendError,
};
use timer::TimerChan;

/// A channel that holds up to `cap` values; `bounded(0)` is a rendezvous
/// channel (Go's unbuffered `make(chan T)`).
///
/// The buffer grows as it fills, up to `cap`: a large capacity costs memory
/// only when it is used.
///
/// ```
/// use coio::chan;
///
/// let (tx, rx) = chan::bounded(2);
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// assert!(tx.try_send(3).is_err()); // full: a `send` would wait
/// assert_eq!(rx.recv(), Ok(1));
///
/// // A rendezvous: the send completes when a receiver takes the value.
/// let (tx, rx) = chan::bounded(0);
/// std::thread::spawn(move || tx.send("ping").unwrap());
/// assert_eq!(rx.recv(), Ok("ping"));
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(cap));
    (
        Sender { chan: chan.clone() },
        Receiver {
            flavor: Flavor::Chan(chan),
        },
    )
}

/// A channel without a limit: `send` never waits.
///
/// ```
/// let (tx, rx) = coio::chan::unbounded();
/// for i in 0..1000 {
///     tx.send(i).unwrap(); // no receiver needed yet
/// }
/// assert_eq!(tx.capacity(), None);
/// drop(tx);
/// assert_eq!(rx.iter().sum::<u32>(), 499_500);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    bounded(usize::MAX)
}

/// `std::sync::mpsc::channel`'s name for [`unbounded`], so that a port of
/// std code is a change of paths.
///
/// ```
/// use coio::chan::{channel, Receiver, Sender};
///
/// let (tx, rx): (Sender<u32>, Receiver<u32>) = channel();
/// tx.send(1).unwrap();
/// assert_eq!(rx.recv(), Ok(1));
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    unbounded()
}

/// `std::sync::mpsc::sync_channel`'s name for [`bounded`] (a `bound` of 0
/// is a rendezvous, as std's).
///
/// ```
/// use coio::chan::{sync_channel, SyncSender};
///
/// let (tx, rx) = sync_channel(1);
/// let tx: SyncSender<&str> = tx;
/// tx.send("one").unwrap();
/// assert!(tx.try_send("two").is_err()); // full
/// assert_eq!(rx.recv(), Ok("one"));
/// ```
pub fn sync_channel<T>(bound: usize) -> (SyncSender<T>, Receiver<T>) {
    bounded(bound)
}

/// `std::sync::mpsc::SyncSender`'s name: coio's channels have one sender
/// type, bounded or not.
///
/// ```
/// use coio::chan::{Sender, SyncSender, sync_channel};
///
/// let (tx, rx) = sync_channel::<u8>(1);
/// let same: Sender<u8> = tx.clone(); // the same type
/// let tx: SyncSender<u8> = same;
/// tx.send(7).unwrap();
/// assert_eq!(rx.recv(), Ok(7));
/// ```
pub type SyncSender<T> = Sender<T>;

/// The sending side of a channel. Clone it for more producers.
///
/// ```
/// use coio::chan;
///
/// coio::run(|| {
///     let (tx, rx) = chan::unbounded();
///     for id in 0..3 {
///         let tx = tx.clone();
///         coio::spawn(move || tx.send(id).unwrap());
///     }
///     drop(tx); // the clones keep the channel open until they are done
///     let mut got: Vec<u32> = rx.iter().collect();
///     got.sort();
///     assert_eq!(got, [0, 1, 2]);
/// });
/// ```
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// A channel that delivers one message, the [`Instant`] it was due, once
/// `duration` has passed: Go's `time.After`, for a timeout that spans a
/// whole loop of [`select!`](crate::select!)s (where `default(timeout)`
/// starts afresh each time).
///
/// The channel has no sender and never closes: after its one message,
/// receiving waits forever (a `select!` arm on it is never ready again).
/// It holds no timer: a receive or a select waits for the instant itself,
/// so an `after` that is never received from costs only its allocation.
/// Clones share the one message.
///
/// ```
/// use std::time::Duration;
/// use coio::chan;
///
/// coio::run(|| {
///     let (tx, rx) = chan::unbounded::<u32>();
///     coio::spawn(move || {
///         for i in 0.. {
///             if tx.send(i).is_err() {
///                 break;
///             }
///             coio::sleep(Duration::from_millis(1));
///         }
///     });
///     // Receive for 30 ms in all, however many messages come.
///     let timeout = chan::after(Duration::from_millis(30));
///     let mut got = 0;
///     loop {
///         coio::select! {
///             recv(rx) -> _ => got += 1,
///             recv(timeout) -> _ => break,
///         }
///     }
///     assert!(got > 0);
/// });
/// ```
pub fn after(duration: Duration) -> Receiver<Instant> {
    Receiver {
        flavor: Flavor::Timer(Arc::new(TimerChan::after(duration)), |i| i),
    }
}

/// A channel that delivers the instant of each tick, every `period`
/// (Go's `time.Tick`, crossbeam-channel's `tick`); the first tick is due
/// `period` from now.
///
/// Ticks keep to their schedule (the `n`-th is due `n * period` after the
/// start, however late the previous ones were taken), and a receiver that
/// falls behind is not handed a burst: it gets one tick, and those it
/// missed are dropped, as Go's ticker drops them. The channel never
/// closes; dropping every receiver stops it (it holds no timer). Clones
/// share the ticks (each goes to one receiver). A `period` of zero ticks
/// as fast as it is received from.
///
/// ```
/// use std::time::{Duration, Instant};
/// use coio::chan;
///
/// coio::run(|| {
///     let start = Instant::now();
///     let ticker = chan::tick(Duration::from_millis(5));
///     for _ in 0..3 {
///         let at = ticker.recv().unwrap();
///         assert!(at >= start);
///     }
///     assert!(start.elapsed() >= Duration::from_millis(15));
/// });
/// ```
pub fn tick(period: Duration) -> Receiver<Instant> {
    Receiver {
        flavor: Flavor::Timer(Arc::new(TimerChan::tick(period)), |i| i),
    }
}

/// A channel that never delivers and never closes: Go's nil channel, to
/// switch a [`select!`](crate::select!) arm off (its receive is never
/// ready). Receiving from it waits forever (or until the coroutine is
/// cancelled, or a timeout).
///
/// ```
/// use std::time::Duration;
/// use coio::chan;
///
/// coio::run(|| {
///     let (tx, rx) = chan::bounded::<u32>(1);
///     tx.send(1).unwrap();
///     // An optional channel: `never()` stands in for "none".
///     let extra: Option<chan::Receiver<u32>> = None;
///     let extra = extra.unwrap_or_else(chan::never);
///     let got = coio::select! {
///         recv(rx) -> v => v.unwrap(),
///         recv(extra) -> v => v.unwrap() + 100,
///     };
///     assert_eq!(got, 1);
///     assert!(extra.recv_timeout(Duration::from_millis(1)).is_err());
/// });
/// ```
pub fn never<T>() -> Receiver<T> {
    Receiver {
        flavor: Flavor::Never,
    }
}

/// The receiving side of a channel. Clone it for more consumers (each
/// value goes to one of them).
///
/// ```
/// use std::thread;
///
/// let (tx, rx) = coio::chan::bounded(4);
/// let workers: Vec<_> = (0..2)
///     .map(|_| {
///         let rx = rx.clone();
///         thread::spawn(move || rx.iter().count())
///     })
///     .collect();
/// for i in 0..100 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// let total: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
/// assert_eq!(total, 100);
/// ```
pub struct Receiver<T> {
    flavor: Flavor<T>,
}

/// What a [`Receiver`] receives from.
pub(crate) enum Flavor<T> {
    /// A channel of [`bounded`] or [`unbounded`].
    Chan(Arc<Chan<T>>),
    /// An [`after`] or [`tick`] channel. `T` is `Instant` (only those two
    /// make this flavor); the function is the identity, typed `Instant ->
    /// T` so that the generic code needs no cast.
    Timer(Arc<TimerChan>, fn(Instant) -> T),
    /// [`never`](never()).
    Never,
}

/// A deadline `dur` from now (None: too far to represent, never).
fn deadline_in(dur: Duration) -> Option<Instant> {
    Instant::now().checked_add(dur)
}

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full (for `bounded(0)`:
    /// until a receiver takes it).
    ///
    /// # Errors
    /// [`SendError`] with the value if every receiver is gone.
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits, or before it sends when its cooperative
    /// budget is spent (see [`JoinHandle::cancel`](crate::JoinHandle::cancel));
    /// the value is dropped, unsent.
    ///
    /// ```
    /// use coio::chan::{self, SendError};
    ///
    /// coio::run(|| {
    ///     let (tx, rx) = chan::bounded(0);
    ///     let h = coio::spawn(move || rx.recv().unwrap());
    ///     tx.send(42).unwrap(); // waits until the coroutine takes it
    ///     assert_eq!(h.join().unwrap(), 42);
    ///     // The receiver is gone with its coroutine: the value comes back.
    ///     assert_eq!(tx.send(7), Err(SendError(7)));
    /// });
    /// ```
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self.chan.send(value, None) {
            Ok(()) => Ok(()),
            Err(SendFail::Closed(v) | SendFail::Full(v) | SendFail::Timeout(v)) => {
                Err(SendError(v))
            }
        }
    }

    /// Sends `value` if that needs no waiting: there is room, or (for
    /// `bounded(0)`) a receiver is waiting.
    ///
    /// ```
    /// use coio::chan::{self, TrySendError};
    ///
    /// let (tx, rx) = chan::bounded(1);
    /// assert_eq!(tx.try_send(1), Ok(()));
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// drop(rx);
    /// assert_eq!(tx.try_send(3), Err(TrySendError::Disconnected(3)));
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        match self.chan.try_send(value, None) {
            Ok(()) => Ok(()),
            Err(SendFail::Full(v) | SendFail::Timeout(v)) => Err(TrySendError::Full(v)),
            Err(SendFail::Closed(v)) => Err(TrySendError::Disconnected(v)),
        }
    }

    /// A future that sends `value`: [`send`](Self::send) for async code
    /// (any executor), so that async tasks and coroutines share channels.
    /// It completes with `Err` carrying the value back if every receiver
    /// is gone. Dropped before it completes, it drops the value unsent,
    /// unless a receiver took the value from its queued wait already (the
    /// send then happened, though the future was not polled to see it).
    ///
    /// ```
    /// # coio::run(|| {
    /// let (tx, rx) = coio::chan::bounded(0);
    /// coio::spawn(move || coio::future::block_on(tx.send_async(7)).unwrap());
    /// assert_eq!(rx.recv(), Ok(7));
    /// # });
    /// ```
    pub fn send_async(&self, value: T) -> SendFut<'_, T> {
        SendFut {
            chan: &self.chan,
            value: Some(value),
            wait: None,
            _pinned: PhantomPinned,
        }
    }

    /// As [`send`](Self::send), waiting for `timeout` at most.
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::chan::{self, SendTimeoutError};
    ///
    /// let (tx, _rx) = chan::bounded(1);
    /// let t = Duration::from_millis(5);
    /// assert_eq!(tx.send_timeout(1, t), Ok(()));
    /// // Full, and nobody receives: after 5 ms the value comes back.
    /// assert_eq!(tx.send_timeout(2, t), Err(SendTimeoutError::Timeout(2)));
    /// ```
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_deadline_opt(value, deadline_in(timeout))
    }

    /// As [`send`](Self::send), waiting until `deadline` at most.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use coio::chan;
    ///
    /// coio::run(|| {
    ///     let (tx, rx) = chan::bounded(0);
    ///     coio::spawn(move || rx.iter().count());
    ///     // One deadline for a whole batch of sends.
    ///     let deadline = Instant::now() + Duration::from_secs(1);
    ///     for job in ["a", "b", "c"] {
    ///         tx.send_deadline(job, deadline).unwrap();
    ///     }
    /// });
    /// ```
    pub fn send_deadline(&self, value: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.send_deadline_opt(value, Some(deadline))
    }

    fn send_deadline_opt(
        &self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        match self.chan.send(value, deadline) {
            Ok(()) => Ok(()),
            Err(SendFail::Timeout(v) | SendFail::Full(v)) => Err(SendTimeoutError::Timeout(v)),
            Err(SendFail::Closed(v)) => Err(SendTimeoutError::Disconnected(v)),
        }
    }

    /// Values buffered in the channel now.
    ///
    /// ```
    /// let (tx, rx) = coio::chan::bounded(4);
    /// tx.send('a').unwrap();
    /// tx.send('b').unwrap();
    /// assert_eq!(tx.len(), 2);
    /// rx.recv().unwrap();
    /// assert_eq!(tx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no value is buffered now.
    ///
    /// ```
    /// let (tx, _rx) = coio::chan::unbounded();
    /// assert!(tx.is_empty());
    /// tx.send(()).unwrap();
    /// assert!(!tx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer is full now (always true for `bounded(0)`).
    ///
    /// ```
    /// use coio::chan;
    ///
    /// let (tx, _rx) = chan::bounded(1);
    /// assert!(!tx.is_full());
    /// tx.send(1).unwrap();
    /// assert!(tx.is_full());
    /// assert!(chan::bounded::<u8>(0).0.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.chan.is_full()
    }

    /// The capacity: `Some(cap)` for `bounded(cap)`, `None` for unbounded.
    ///
    /// ```
    /// use coio::chan;
    ///
    /// assert_eq!(chan::bounded::<u8>(8).0.capacity(), Some(8));
    /// assert_eq!(chan::bounded::<u8>(0).0.capacity(), Some(0));
    /// assert_eq!(chan::unbounded::<u8>().0.capacity(), None);
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// Whether both senders belong to the same channel.
    ///
    /// ```
    /// use coio::chan;
    ///
    /// let (tx, _rx) = chan::unbounded::<u8>();
    /// let (other, _rx2) = chan::unbounded::<u8>();
    /// assert!(tx.same_channel(&tx.clone()));
    /// assert!(!tx.same_channel(&other));
    /// ```
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    pub(crate) fn chan(&self) -> &Chan<T> {
        &self.chan
    }

    /// The channel's identity (see [`Receiver::id`]).
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.chan) as *const () as usize
    }
}

impl<T> Receiver<T> {
    /// Receives a value, waiting for one. Buffered values are still
    /// received after every sender is gone.
    ///
    /// # Errors
    /// [`RecvError`] once every sender is gone and the buffer is empty.
    ///
    /// # Panics
    /// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
    /// cancelled while it waits, or before it receives when its
    /// cooperative budget is spent (see
    /// [`JoinHandle::cancel`](crate::JoinHandle::cancel)): a call that
    /// unwinds takes no value out of the channel.
    ///
    /// ```
    /// use coio::chan::{self, RecvError};
    ///
    /// coio::run(|| {
    ///     let (tx, rx) = chan::bounded(1);
    ///     coio::spawn(move || {
    ///         tx.send(1).unwrap();
    ///         tx.send(2).unwrap();
    ///     });
    ///     assert_eq!(rx.recv(), Ok(1));
    ///     assert_eq!(rx.recv(), Ok(2));
    ///     assert_eq!(rx.recv(), Err(RecvError)); // the sender is gone
    /// });
    /// ```
    pub fn recv(&self) -> Result<T, RecvError> {
        match &self.flavor {
            Flavor::Chan(c) => c.recv(None).map_err(|_| RecvError),
            Flavor::Timer(t, f) => t.recv(None).map(f).map_err(|_| RecvError),
            Flavor::Never => Err(timer::recv_never(None)).map_err(|_| RecvError),
        }
    }

    /// A future that receives a value: [`recv`](Self::recv) for async
    /// code (any executor). It completes with `Err` once every sender is
    /// gone and the buffer is drained. Dropping it before it completes
    /// loses nothing: a value a sender handed it meanwhile goes back to the
    /// channel, for the next receiver, ahead of what is buffered. When
    /// several such futures are dropped with values in hand, their values
    /// come back in the order the futures are dropped in, last dropped
    /// first, which is not always the order they were sent in.
    ///
    /// A value in a future's hands still counts as the channel's: once
    /// every sender is gone, the other receivers are told the channel is
    /// closed only when no future holds one any more (each is taken, or
    /// given back to them). So a future leaked with a value in hand
    /// (`mem::forget`) keeps them waiting, as a leaked `Sender` does. A
    /// value that a dynamic [`Select`]'s receive reserved counts the same
    /// way, until its [`SelectedOperation`] is completed or dropped.
    ///
    /// ```
    /// # coio::run(|| {
    /// let (tx, rx) = coio::chan::bounded(1);
    /// let h = coio::spawn(move || coio::future::block_on(rx.recv_async()));
    /// tx.send("hi").unwrap();
    /// assert_eq!(h.join().unwrap(), Ok("hi"));
    /// # });
    /// ```
    pub fn recv_async(&self) -> RecvFut<'_, T> {
        RecvFut {
            rx: self,
            wait: None,
            sleep: None,
            _pinned: PhantomPinned,
        }
    }

    /// Receives a value if one is there (or, for `bounded(0)`, a sender is
    /// waiting).
    ///
    /// ```
    /// use coio::chan::{self, TryRecvError};
    ///
    /// let (tx, rx) = chan::unbounded();
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(5).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Ok(5));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        match &self.flavor {
            Flavor::Chan(c) => c.try_recv(None).map_err(|e| match e {
                RecvFail::Closed => TryRecvError::Disconnected,
                RecvFail::Empty | RecvFail::Timeout => TryRecvError::Empty,
            }),
            Flavor::Timer(t, f) => t.try_take(Instant::now()).map(f).ok_or(TryRecvError::Empty),
            Flavor::Never => Err(TryRecvError::Empty),
        }
    }

    /// As [`recv`](Self::recv), waiting for `timeout` at most.
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::chan::{self, RecvTimeoutError};
    ///
    /// let (tx, rx) = chan::bounded(1);
    /// let t = Duration::from_millis(5);
    /// assert_eq!(rx.recv_timeout(t), Err(RecvTimeoutError::Timeout));
    /// std::thread::spawn(move || tx.send(3).unwrap());
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(3));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_deadline_opt(deadline_in(timeout))
    }

    /// As [`recv`](Self::recv), waiting until `deadline` at most.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let (tx, rx) = coio::chan::unbounded();
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// // One deadline for several receives: collect for 10 ms.
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// let mut got = Vec::new();
    /// while let Ok(v) = rx.recv_deadline(deadline) {
    ///     got.push(v);
    /// }
    /// assert_eq!(got, [1, 2]);
    /// assert!(Instant::now() >= deadline);
    /// ```
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_deadline_opt(Some(deadline))
    }

    fn recv_deadline_opt(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let r = match &self.flavor {
            Flavor::Chan(c) => c.recv(deadline),
            Flavor::Timer(t, f) => t.recv(deadline).map(f),
            Flavor::Never => Err(timer::recv_never(deadline)),
        };
        r.map_err(|e| match e {
            RecvFail::Closed => RecvTimeoutError::Disconnected,
            RecvFail::Empty | RecvFail::Timeout => RecvTimeoutError::Timeout,
        })
    }

    /// An iterator that receives until every sender is gone.
    ///
    /// ```
    /// coio::run(|| {
    ///     let (tx, rx) = coio::chan::bounded(0);
    ///     coio::spawn(move || {
    ///         for word in ["a", "b", "c"] {
    ///             tx.send(word).unwrap();
    ///         }
    ///     });
    ///     let words: Vec<_> = rx.iter().collect();
    ///     assert_eq!(words, ["a", "b", "c"]);
    /// });
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the values available now, without waiting.
    ///
    /// ```
    /// let (tx, rx) = coio::chan::unbounded();
    /// for i in 0..3 {
    ///     tx.send(i).unwrap();
    /// }
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
    /// // The sender is still there, but nothing more is: the iterator ends.
    /// assert_eq!(rx.try_iter().next(), None);
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Values buffered in the channel now (for [`after`] and [`tick`]: 1
    /// if a delivery is due, else 0; for [`never`](never()): 0).
    ///
    /// ```
    /// use coio::chan;
    ///
    /// let (tx, rx) = chan::bounded(3);
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.len(), 2);
    /// assert_eq!(chan::never::<u8>().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        match &self.flavor {
            Flavor::Chan(c) => c.len(),
            Flavor::Timer(t, _) => t.len(),
            Flavor::Never => 0,
        }
    }

    /// Whether no value is buffered now.
    ///
    /// ```
    /// let (tx, rx) = coio::chan::bounded(1);
    /// assert!(rx.is_empty());
    /// tx.send(1).unwrap();
    /// assert!(!rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer is full now (always true for `bounded(0)` and
    /// [`never`](never()); for [`after`] and [`tick`], whether a delivery is due).
    ///
    /// ```
    /// use coio::chan;
    ///
    /// let (tx, rx) = chan::bounded(1);
    /// tx.send(1).unwrap();
    /// assert!(rx.is_full());
    /// rx.recv().unwrap();
    /// assert!(!rx.is_full());
    /// assert!(chan::never::<u8>().is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        match &self.flavor {
            Flavor::Chan(c) => c.is_full(),
            Flavor::Timer(t, _) => t.len() == 1,
            Flavor::Never => true,
        }
    }

    /// The capacity: `Some(cap)` for `bounded(cap)`, `None` for unbounded
    /// (`Some(1)` for [`after`] and [`tick`], `Some(0)` for [`never`](never())).
    ///
    /// ```
    /// use std::time::Duration;
    /// use coio::chan;
    ///
    /// assert_eq!(chan::bounded::<u8>(3).1.capacity(), Some(3));
    /// assert_eq!(chan::unbounded::<u8>().1.capacity(), None);
    /// assert_eq!(chan::after(Duration::from_secs(1)).capacity(), Some(1));
    /// assert_eq!(chan::never::<u8>().capacity(), Some(0));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        match &self.flavor {
            Flavor::Chan(c) => c.capacity(),
            Flavor::Timer(..) => Some(1),
            Flavor::Never => Some(0),
        }
    }

    /// Whether both receivers belong to the same channel (any two
    /// [`never`](never()) receivers do).
    ///
    /// ```
    /// use coio::chan;
    ///
    /// let (_tx, rx) = chan::unbounded::<u8>();
    /// assert!(rx.same_channel(&rx.clone()));
    /// assert!(!rx.same_channel(&chan::unbounded().1));
    /// assert!(chan::never::<u8>().same_channel(&chan::never()));
    /// ```
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        self.id() == other.id()
    }

    /// The channel's identity: the address of its shared state (0 for
    /// [`never`](never())). Two live receivers have the same identity if and only
    /// if they receive from the same channel, so also the same `T`.
    pub(crate) fn id(&self) -> usize {
        match &self.flavor {
            Flavor::Chan(c) => Arc::as_ptr(c) as *const () as usize,
            Flavor::Timer(t, _) => Arc::as_ptr(t) as *const () as usize,
            Flavor::Never => 0,
        }
    }

    pub(crate) fn flavor(&self) -> &Flavor<T> {
        &self.flavor
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.tx_count.fetch_add(1, Relaxed);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        let flavor = match &self.flavor {
            Flavor::Chan(c) => {
                c.rx_count.fetch_add(1, Relaxed);
                Flavor::Chan(c.clone())
            }
            Flavor::Timer(t, f) => Flavor::Timer(t.clone(), *f),
            Flavor::Never => Flavor::Never,
        };
        Receiver { flavor }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // AcqRel: the last one sees every other sender's work done.
        if self.chan.tx_count.fetch_sub(1, AcqRel) == 1 {
            self.chan.close_tx();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if let Flavor::Chan(c) = &self.flavor
            && c.rx_count.fetch_sub(1, AcqRel) == 1
        {
            c.close_rx();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Sender { .. }")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Receiver { .. }")
    }
}

/// Receives until every sender is gone ([`Receiver::iter`]).
///
/// ```
/// let (tx, rx) = coio::chan::unbounded();
/// std::thread::spawn(move || {
///     for i in 1..=3 {
///         tx.send(i).unwrap();
///     }
/// });
/// let mut sum = 0;
/// for v in &rx {
///     sum += v; // `&rx` iterates with an `Iter`
/// }
/// assert_eq!(sum, 6);
/// ```
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Receives what is there without waiting ([`Receiver::try_iter`]).
///
/// ```
/// use std::time::Duration;
///
/// let (tx, rx) = coio::chan::unbounded();
/// for i in 0..5 {
///     tx.send(i).unwrap();
/// }
/// // Wait for the first value, then take the rest of the batch.
/// let first = rx.recv_timeout(Duration::from_secs(1)).unwrap();
/// let rest: Vec<_> = rx.try_iter().collect();
/// assert_eq!((first, rest), (0, vec![1, 2, 3, 4]));
/// ```
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Receives until every sender is gone (`for v in rx`).
///
/// ```
/// coio::run(|| {
///     let (tx, rx) = coio::chan::bounded::<String>(2);
///     let consumer = coio::spawn(move || {
///         let mut total = 0;
///         for line in rx {
///             total += line.len();
///         }
///         total
///     });
///     tx.send("ab".to_string()).unwrap();
///     tx.send("cde".to_string()).unwrap();
///     drop(tx);
///     assert_eq!(consumer.join().unwrap(), 5);
/// });
/// ```
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// The future of [`Sender::send_async`]: sends its value when awaited
/// (see there for another example).
///
/// ```
/// use futures::executor::block_on; // any executor will do
///
/// let (tx, rx) = coio::chan::bounded(1);
/// let fut: coio::chan::SendFut<'_, u32> = tx.send_async(1);
/// block_on(fut).unwrap();
/// // Full now: dropped before it is polled, a send future sends nothing.
/// drop(tx.send_async(2));
/// assert_eq!(rx.try_recv(), Ok(1));
/// assert!(rx.try_recv().is_err());
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SendFut<'a, T> {
    chan: &'a Chan<T>,
    /// The value, until it is sent or queued (then it is in `wait`).
    value: Option<T>,
    /// The queued wait, pinned in place (see `Chan::poll_send`).
    wait: Option<AsyncWait<T>>,
    _pinned: PhantomPinned,
}

/// The future of [`Receiver::recv_async`]: receives a value when awaited
/// (see there for another example).
///
/// ```
/// use futures::executor::block_on;
///
/// let (tx, rx) = coio::chan::bounded(0);
/// block_on(async {
///     // A rendezvous between two futures of one task.
///     let (sent, got) = futures::join!(tx.send_async("hi"), rx.recv_async());
///     assert_eq!(sent, Ok(()));
///     assert_eq!(got, Ok("hi"));
/// });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct RecvFut<'a, T> {
    rx: &'a Receiver<T>,
    /// The queued wait, pinned in place (see `Chan::poll_recv`).
    wait: Option<AsyncWait<T>>,
    /// For [`after`] and [`tick`]: the sleep until the next delivery.
    sleep: Option<Sleep>,
    _pinned: PhantomPinned,
}

// SAFETY: the futures move values of `T` between threads (hence `T:
// Send`), through the channel's protocol; the blocker inside `wait` holds
// only an atomic and a `Waker` (`Send + Sync`), whose changes are ordered by
// the channel's lock (`Blocker::set_waker`).
unsafe impl<T: Send> Send for SendFut<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for RecvFut<'_, T> {}

impl<T> Future for SendFut<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: nothing is moved out of the pinned future; `wait` stays
        // in place until `drop` cancels it.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `wait` is pinned with the future, whose `drop` calls
        // `cancel_send`.
        unsafe { this.chan.poll_send(&mut this.value, &mut this.wait, cx) }.map(|r| match r {
            Ok(()) => Ok(()),
            Err(SendFail::Closed(v) | SendFail::Full(v) | SendFail::Timeout(v)) => {
                Err(SendError(v))
            }
        })
    }
}

impl<T> Drop for SendFut<'_, T> {
    fn drop(&mut self) {
        self.chan.cancel_send(&mut self.wait);
    }
}

impl<T> Future for RecvFut<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: as in `SendFut::poll`.
        let this = unsafe { self.get_unchecked_mut() };
        match &this.rx.flavor {
            Flavor::Chan(c) => {
                // SAFETY: `wait` is pinned with the future, whose `drop`
                // calls `cancel_recv`.
                unsafe { c.poll_recv(&mut this.wait, cx) }.map(|r| r.map_err(|_| RecvError))
            }
            Flavor::Timer(t, f) => loop {
                // As a channel's (`Chan::poll_recv`): a future on a tick
                // always due yields in `block_on` every budget.
                std::task::ready!(crate::runtime::worker::coop_poll_proceed(cx));
                if let Some(i) = t.try_take(Instant::now()) {
                    crate::runtime::worker::coop_spend_in_poll();
                    return Poll::Ready(Ok(f(i)));
                }
                // An `after` that delivered (to a clone) never does again.
                let Some(due) = t.due() else {
                    return Poll::Pending;
                };
                let s = this.sleep.get_or_insert_with(|| Sleep::until(due));
                s.reset(due);
                if Pin::new(s).poll(cx).is_pending() {
                    return Poll::Pending;
                }
            },
            Flavor::Never => Poll::Pending,
        }
    }
}

impl<T> Drop for RecvFut<'_, T> {
    fn drop(&mut self) {
        if let Flavor::Chan(c) = &self.rx.flavor {
            c.cancel_recv(&mut self.wait);
        }
    }
}

impl<T> fmt::Debug for SendFut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFut")
            .field("queued", &self.wait.is_some())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for RecvFut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvFut")
            .field("queued", &self.wait.is_some())
            .finish_non_exhaustive()
    }
}

/// Model checks of the channel (`RUSTFLAGS="--cfg loom" cargo test
/// --release --lib loom_`), on plain threads: every value is delivered
/// exactly once and no waiter is left asleep, whatever the interleaving.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    /// Runs a model with at most 3 preemptions per execution: a channel
    /// operation is many atomic steps, and the full space of three threads
    /// does not finish in CI's time. Bounded exploration still covers every
    /// interleaving of whole operations and most races inside them (see
    /// loom's docs on `preemption_bound`).
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(f);
    }

    /// A rendezvous: the sender returns only once the receiver has the
    /// value; neither is left waiting.
    #[test]
    fn loom_rendezvous() {
        model(|| {
            let (tx, rx) = bounded::<u32>(0);
            let t = thread::spawn(move || tx.send(5).unwrap());
            assert_eq!(rx.recv(), Ok(5));
            t.join().unwrap();
            assert_eq!(rx.recv(), Err(RecvError));
        });
    }

    /// The last sender leaving wakes a waiting receiver, which drains the
    /// buffer first.
    #[test]
    fn loom_close_wakes_receiver() {
        model(|| {
            let (tx, rx) = bounded::<u32>(1);
            let t = thread::spawn(move || {
                tx.send(1).unwrap();
                drop(tx);
            });
            assert_eq!(rx.recv(), Ok(1));
            assert_eq!(rx.recv(), Err(RecvError));
            t.join().unwrap();
        });
    }

    /// A select over two rendezvous channels, each with a sender: it takes
    /// exactly one value, and the other is still there for a plain receive.
    #[test]
    fn loom_select_takes_exactly_one() {
        model(|| {
            let (tx1, rx1) = bounded::<u32>(0);
            let (tx2, rx2) = bounded::<u32>(0);
            let t1 = thread::spawn(move || tx1.send(1).unwrap());
            let t2 = thread::spawn(move || tx2.send(2).unwrap());
            let first = crate::select! {
                recv(rx1) -> m => m.unwrap(),
                recv(rx2) -> m => m.unwrap(),
            };
            let second = if first == 1 { rx2.recv() } else { rx1.recv() };
            assert_eq!(first + second.unwrap(), 3);
            t1.join().unwrap();
            t2.join().unwrap();
        });
    }

    /// A dynamic select's send on a rendezvous channel against a plain
    /// receiver: the select waits as an observer until the receiver
    /// queues, claims it, and completes the send while holding the claim
    /// (the receiver blocks meanwhile); the value arrives once.
    #[test]
    fn loom_dynamic_select_send_meets_receiver() {
        model(|| {
            let (tx, rx) = bounded::<u32>(0);
            let t = thread::spawn(move || rx.recv().unwrap());
            let mut sel = Select::new();
            sel.send(&tx);
            sel.select().send(&tx, 7).unwrap();
            assert_eq!(t.join().unwrap(), 7);
        });
    }

    /// A receive future handed a value as the last sender leaves, then
    /// polled once more (taking it) or dropped (giving it back), beside a
    /// plain receiver on another thread: the value arrives exactly once,
    /// and the plain receiver is told "closed" only after that, never
    /// while the future holds it, and is never left waiting.
    #[test]
    fn loom_a_value_in_a_future_s_hands_is_not_lost_at_close() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        model(|| {
            let (tx, rx) = unbounded::<u32>();
            let other = rx.clone();
            let mut cx = Context::from_waker(Waker::noop());
            let mut fut = Box::pin(rx.recv_async());
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            let s = thread::spawn(move || {
                tx.send(7).unwrap();
                drop(tx);
            });
            let b = thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(v) = other.recv() {
                    got.push(v);
                }
                got
            });
            let mut got = match fut.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(v)) => vec![v],
                _ => Vec::new(),
            };
            drop(fut);
            s.join().unwrap();
            got.extend(b.join().unwrap());
            assert_eq!(got, [7]);
        });
    }

    /// Two dynamic selects meet on a rendezvous channel: the receiving
    /// one waits as a receiver with a packet, the sending one observes,
    /// is woken by the receiver's registration, and claims it.
    #[test]
    fn loom_dynamic_selects_meet() {
        model(|| {
            let (tx, rx) = bounded::<u32>(0);
            let t = thread::spawn(move || {
                let mut sel = Select::new();
                sel.recv(&rx);
                sel.select().recv(&rx).unwrap()
            });
            let mut sel = Select::new();
            sel.send(&tx);
            sel.select().send(&tx, 9).unwrap();
            assert_eq!(t.join().unwrap(), 9);
        });
    }
}
