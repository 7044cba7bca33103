//! The errors of channel operations (the names and shapes of
//! `std::sync::mpsc` and crossbeam-channel).

use std::error::Error;
use std::fmt;

/// `send` failed because every receiver is gone; the value comes back.
///
/// ```
/// use coio::chan::{self, SendError};
///
/// let (tx, rx) = chan::bounded(1);
/// drop(rx);
/// let err = tx.send(String::from("lost")).unwrap_err();
/// assert_eq!(err, SendError(String::from("lost")));
/// assert_eq!(err.to_string(), "sending on a channel whose receivers are all gone");
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// `recv` failed because every sender is gone and the channel is empty.
///
/// ```
/// use coio::chan::{self, RecvError};
///
/// let (tx, rx) = chan::bounded(1);
/// tx.send(1).unwrap();
/// drop(tx);
/// assert_eq!(rx.recv(), Ok(1)); // what is buffered comes first
/// assert_eq!(rx.recv(), Err(RecvError));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct RecvError;

/// Why `try_send` failed; the value comes back.
///
/// ```
/// use coio::chan::{self, TrySendError};
///
/// let (tx, rx) = chan::bounded(0);
/// // No receiver is waiting: a rendezvous channel is full.
/// assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
/// drop(rx);
/// assert_eq!(tx.try_send(2), Err(TrySendError::Disconnected(2)));
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The channel is full (for `bounded(0)`: no receiver is waiting).
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// Why `try_recv` failed.
///
/// ```
/// use coio::chan::{self, TryRecvError};
///
/// let (tx, rx) = chan::unbounded();
/// tx.send(1).unwrap();
/// drop(tx);
/// let mut got = Vec::new();
/// loop {
///     match rx.try_recv() {
///         Ok(v) => got.push(v),
///         Err(TryRecvError::Empty) => { /* nothing yet: do other work */ }
///         Err(TryRecvError::Disconnected) => break,
///     }
/// }
/// assert_eq!(got, [1]);
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// Nothing to receive now.
    Empty,
    /// Every sender is gone and the channel is empty.
    Disconnected,
}

/// Why `send_timeout` failed; the value comes back.
///
/// ```
/// use std::time::Duration;
/// use coio::chan::{self, SendTimeoutError};
///
/// let (tx, rx) = chan::bounded(0);
/// let t = Duration::from_millis(5);
/// assert_eq!(tx.send_timeout(1, t), Err(SendTimeoutError::Timeout(1)));
/// drop(rx);
/// assert_eq!(tx.send_timeout(2, t), Err(SendTimeoutError::Disconnected(2)));
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// The time ran out.
    Timeout(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// Why `recv_timeout` failed.
///
/// ```
/// use std::time::Duration;
/// use coio::chan::{self, RecvTimeoutError};
///
/// coio::run(|| {
///     let (tx, rx) = chan::bounded(1);
///     let (short, long) = (Duration::from_millis(5), Duration::from_secs(5));
///     assert_eq!(rx.recv_timeout(short), Err(RecvTimeoutError::Timeout));
///     coio::spawn(move || tx.send(1).unwrap());
///     assert_eq!(rx.recv_timeout(long), Ok(1));
///     // The coroutine ends, dropping the only sender.
///     assert_eq!(rx.recv_timeout(long), Err(RecvTimeoutError::Disconnected));
/// });
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvTimeoutError {
    /// The time ran out.
    Timeout,
    /// Every sender is gone and the channel is empty.
    Disconnected,
}

impl<T> SendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let (tx, rx) = coio::chan::unbounded();
    /// drop(rx);
    /// let v = tx.send(vec![1, 2]).unwrap_err().into_inner();
    /// assert_eq!(v, [1, 2]);
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let (tx, _rx) = coio::chan::bounded(0);
    /// let job = tx.try_send("job").unwrap_err().into_inner();
    /// assert_eq!(job, "job"); // to keep, or to retry later
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }

    /// Whether the channel was full.
    ///
    /// ```
    /// let (tx, _rx) = coio::chan::bounded(1);
    /// tx.try_send(1).unwrap();
    /// let err = tx.try_send(2).unwrap_err();
    /// assert!(err.is_full() && !err.is_disconnected());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether every receiver is gone.
    ///
    /// ```
    /// let (tx, rx) = coio::chan::bounded(1);
    /// drop(rx);
    /// let err = tx.try_send(1).unwrap_err();
    /// assert!(err.is_disconnected() && !err.is_full());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, _rx) = coio::chan::bounded(0);
    /// let err = tx.send_timeout(7, Duration::from_millis(1)).unwrap_err();
    /// assert_eq!(err.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => v,
        }
    }

    /// Whether the time ran out.
    ///
    /// ```
    /// use std::time::Instant;
    ///
    /// let (tx, _rx) = coio::chan::bounded(0);
    /// // A deadline already passed: no waiting at all.
    /// let err = tx.send_deadline(1, Instant::now()).unwrap_err();
    /// assert!(err.is_timeout() && !err.is_disconnected());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// Whether every receiver is gone.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = coio::chan::bounded(1);
    /// drop(rx);
    /// let err = tx.send_timeout(1, Duration::from_secs(1)).unwrap_err();
    /// assert!(err.is_disconnected() && !err.is_timeout());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected(_))
    }
}

impl TryRecvError {
    /// Whether nothing was there.
    ///
    /// ```
    /// let (_tx, rx) = coio::chan::bounded::<u8>(1);
    /// let err = rx.try_recv().unwrap_err();
    /// assert!(err.is_empty() && !err.is_disconnected());
    /// ```
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// Whether every sender is gone.
    ///
    /// ```
    /// let (tx, rx) = coio::chan::bounded::<u8>(1);
    /// drop(tx);
    /// let err = rx.try_recv().unwrap_err();
    /// assert!(err.is_disconnected() && !err.is_empty());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl RecvTimeoutError {
    /// Whether the time ran out.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rx = coio::chan::never::<u8>();
    /// let err = rx.recv_timeout(Duration::from_millis(1)).unwrap_err();
    /// assert!(err.is_timeout() && !err.is_disconnected());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }

    /// Whether every sender is gone.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let (tx, rx) = coio::chan::bounded::<u8>(1);
    /// drop(tx);
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// let err = rx.recv_deadline(deadline).unwrap_err();
    /// assert!(err.is_disconnected() && !err.is_timeout());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvTimeoutError::Disconnected)
    }
}

// The values need not be `Debug`: like std, the `Debug` output hides them.
impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("SendError { .. }")
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.pad("Full(..)"),
            TrySendError::Disconnected(_) => f.pad("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.pad("Timeout(..)"),
            SendTimeoutError::Disconnected(_) => f.pad("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("sending on a channel whose receivers are all gone")
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("receiving on an empty channel whose senders are all gone")
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.pad("sending on a full channel"),
            TrySendError::Disconnected(_) => SendError(()).fmt(f),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.pad("receiving on an empty channel"),
            TryRecvError::Disconnected => RecvError.fmt(f),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.pad("timed out waiting to send on a channel"),
            SendTimeoutError::Disconnected(_) => SendError(()).fmt(f),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.pad("timed out waiting to receive on a channel"),
            RecvTimeoutError::Disconnected => RecvError.fmt(f),
        }
    }
}

impl<T> Error for SendError<T> {}
impl Error for RecvError {}
impl<T> Error for TrySendError<T> {}
impl Error for TryRecvError {}
impl<T> Error for SendTimeoutError<T> {}
impl Error for RecvTimeoutError {}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        TrySendError::Disconnected(e.0)
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        SendTimeoutError::Disconnected(e.0)
    }
}

impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> Self {
        TryRecvError::Disconnected
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Disconnected
    }
}

/// [`Select::try_select`](super::Select::try_select) found no operation
/// ready.
///
/// ```
/// use coio::chan::{self, Select, TrySelectError};
///
/// let (_tx, rx) = chan::bounded::<u8>(1);
/// let mut sel = Select::new();
/// sel.recv(&rx);
/// assert!(matches!(sel.try_select(), Err(TrySelectError)));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct TrySelectError;

/// [`Select::select_timeout`](super::Select::select_timeout) (or
/// `select_deadline`) found no operation ready in time.
///
/// ```
/// use std::time::Duration;
/// use coio::chan::{self, Select, SelectTimeoutError};
///
/// coio::run(|| {
///     let (_tx, rx) = chan::bounded::<u8>(1);
///     let mut sel = Select::new();
///     sel.recv(&rx);
///     let r = sel.select_timeout(Duration::from_millis(5));
///     assert!(matches!(r, Err(SelectTimeoutError)));
/// });
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct SelectTimeoutError;

/// [`Select::try_ready`](super::Select::try_ready) found no operation
/// ready.
///
/// ```
/// use coio::chan::{self, Select, TryReadyError};
///
/// let (tx, rx) = chan::bounded::<u8>(1);
/// let mut sel = Select::new();
/// sel.recv(&rx);
/// assert_eq!(sel.try_ready(), Err(TryReadyError));
/// tx.send(1).unwrap();
/// assert_eq!(sel.try_ready(), Ok(0));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct TryReadyError;

/// [`Select::ready_timeout`](super::Select::ready_timeout) (or
/// `ready_deadline`) found no operation ready in time.
///
/// ```
/// use std::time::Instant;
/// use coio::chan::{self, ReadyTimeoutError, Select};
///
/// let (tx, _rx) = chan::bounded::<u8>(0);
/// let mut sel = Select::new();
/// sel.send(&tx); // no receiver waits: never ready
/// assert_eq!(sel.ready_deadline(Instant::now()), Err(ReadyTimeoutError));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct ReadyTimeoutError;

impl fmt::Display for TrySelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        "all operations in select would block".fmt(f)
    }
}

impl fmt::Display for SelectTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        "timed out waiting on select".fmt(f)
    }
}

impl fmt::Display for TryReadyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        "all operations in select would block".fmt(f)
    }
}

impl fmt::Display for ReadyTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        "timed out waiting on select".fmt(f)
    }
}

impl Error for TrySelectError {}
impl Error for SelectTimeoutError {}
impl Error for TryReadyError {}
impl Error for ReadyTimeoutError {}
