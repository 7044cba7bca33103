//! The machinery behind [`select!`](crate::select): public only for the
//! macro's expansion, not an API. Its rounds (`rounds`) also run
//! [`Select`](super::Select)'s, over that type's operations.
//!
//! A select runs in rounds:
//!
//! 1. **Try.** The arms are tried in a random order (a fresh permutation
//!    per select, as Go does), each under its channel's lock: the first that
//!    can complete without waiting completes, so among the arms ready at
//!    once each is equally likely to be chosen. An arm on a closed channel
//!    counts as ready (it completes with an error).
//! 2. **Register.** With nothing ready (and no `default`), one blocker is
//!    made and every arm queues an entry with it, in the same order, the arm
//!    number being the entry's operation. An arm that finds, under its lock,
//!    that it has become ready stops the registration: the select aborts
//!    its blocker and starts over at 1 (unless a waker claimed the blocker
//!    in between: that claim wins).
//! 3. **Wait.** The first waker to claim the blocker performs its arm (a
//!    sender writes the value into the receive arm's packet, a receiver
//!    takes the value from the send arm's packet) and wakes the select.
//!    Every entry is then removed from every channel, and the chosen arm's
//!    result is read from its packet. A claim to retry (a channel closed),
//!    or a timer arm's delivery coming due, starts over at 1; so does the
//!    deadline, and the select ends there if no arm is ready then; a
//!    cancellation ends it.
//!
//! No coroutine or thread is spawned per arm, and nothing is cancelled: an
//! arm that was not chosen has not happened. A send arm's value is evaluated
//! before the select starts (as in Go); if another arm is chosen, it is
//! dropped.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use super::channel::{Packet, RecvFail, SendFail};
use super::timer::earliest;
use super::{Flavor, Receiver, RecvError, SendError, Sender};
use crate::park::{Blocker, Woken, unwind_cancelled};
use crate::runtime::worker::coop_spend_cancellable;

/// How long a select may wait.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// No `default` arm: until an arm is ready.
    Block,
    /// `default =>`: not at all.
    Try,
    /// `default(timeout) =>`: until the deadline (None: never).
    Until(Option<Instant>),
}

impl Mode {
    /// `default(timeout)`: a deadline `timeout` from now.
    pub fn timeout(timeout: std::time::Duration) -> Mode {
        Mode::Until(Instant::now().checked_add(timeout))
    }
}

/// What a select does with one arm (its channel's two steps and the
/// arm's result).
pub(crate) trait ArmOps {
    /// Step 1: completes the arm now if it can (a closed channel
    /// completes it with an error); true if it did.
    fn try_now(&mut self) -> bool;

    /// Step 2: queues an entry for operation `oper` with `blocker`, or
    /// returns false if the arm is ready now.
    ///
    /// # Safety
    /// `blocker`, and the arm itself (its packet), must stay in place until
    /// `unregister` has run or the blocker was seen `DONE`.
    unsafe fn register(&mut self, blocker: &Blocker, oper: usize) -> bool;

    /// Removes the entries of `blocker` from the arm's channel.
    fn unregister(&mut self, blocker: &Blocker);

    /// Step 3: a waker claimed this arm and performed it; takes the result
    /// from the packet.
    fn claimed(&mut self);

    /// For a timer channel's arm ([`after`](super::after),
    /// [`tick`](super::tick)), which registers nothing: when it is next
    /// ready. The select waits no longer than that.
    fn deadline(&self) -> Option<Instant> {
        None
    }
}

/// An arm as `run` takes it (made by `RecvArm::arm` / `SendArm::arm`).
pub struct ArmRef<'a>(&'a mut (dyn ArmOps + 'a));

/// A `recv(r) -> msg` arm.
pub struct RecvArm<'r, T> {
    rx: &'r Receiver<T>,
    /// Where a waking sender puts the value.
    packet: Packet<T>,
    /// The arm's result, once it was chosen.
    result: Option<Result<T, RecvError>>,
}

impl<'r, T> RecvArm<'r, T> {
    /// An arm receiving from `rx`.
    pub fn new(rx: &'r Receiver<T>) -> Self {
        RecvArm {
            rx,
            packet: Packet::new(None),
            result: None,
        }
    }

    /// The arm, for `run`.
    pub fn arm(&mut self) -> ArmRef<'_> {
        ArmRef(self)
    }

    /// Whether the select chose this arm.
    pub fn is_chosen(&self) -> bool {
        self.result.is_some()
    }

    /// The result of the chosen arm.
    pub fn into_result(self) -> Result<T, RecvError> {
        self.result
            .expect("coio: select read the result of an arm it did not choose")
    }

    /// The result if this arm was chosen; the arm is dropped either way.
    pub fn into_chosen(self) -> Option<Result<T, RecvError>> {
        self.result
    }
}

impl<T> ArmOps for RecvArm<'_, T> {
    fn try_now(&mut self) -> bool {
        let c = match self.rx.flavor() {
            Flavor::Chan(c) => c,
            Flavor::Timer(t, f) => match t.try_take(Instant::now()) {
                Some(i) => {
                    self.result = Some(Ok(f(i)));
                    return true;
                }
                None => return false,
            },
            Flavor::Never => return false,
        };
        match c.try_recv(None) {
            Ok(v) => self.result = Some(Ok(v)),
            Err(RecvFail::Closed) => self.result = Some(Err(RecvError)),
            Err(RecvFail::Empty | RecvFail::Timeout) => return false,
        }
        true
    }

    unsafe fn register(&mut self, blocker: &Blocker, oper: usize) -> bool {
        match self.rx.flavor() {
            // SAFETY: caller (the packet is part of `self`).
            Flavor::Chan(c) => unsafe { c.register_recv(blocker, oper, &self.packet) },
            // Nothing to queue: the select's deadline covers a timer arm,
            // and `never` is never ready.
            Flavor::Timer(..) | Flavor::Never => true,
        }
    }

    fn unregister(&mut self, blocker: &Blocker) {
        if let Flavor::Chan(c) = self.rx.flavor() {
            c.unregister(blocker);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.rx.flavor() {
            Flavor::Timer(t, _) => t.due(),
            _ => None,
        }
    }

    fn claimed(&mut self) {
        let v = self
            .packet
            .take()
            .expect("coio: a select's receive arm was chosen without a value");
        self.result = Some(Ok(v));
    }
}

/// A `send(s, value) -> res` arm.
pub struct SendArm<'s, T> {
    tx: &'s Sender<T>,
    /// The value, until it is sent (a waking receiver takes it from here).
    packet: Packet<T>,
    /// The arm's result, once it was chosen.
    result: Option<Result<(), SendError<T>>>,
}

impl<'s, T> SendArm<'s, T> {
    /// An arm sending `value` on `tx`.
    pub fn new(tx: &'s Sender<T>, value: T) -> Self {
        SendArm {
            tx,
            packet: Packet::new(Some(value)),
            result: None,
        }
    }

    /// The arm, for `run`.
    pub fn arm(&mut self) -> ArmRef<'_> {
        ArmRef(self)
    }

    /// Whether the select chose this arm.
    pub fn is_chosen(&self) -> bool {
        self.result.is_some()
    }

    /// The result of the chosen arm.
    pub fn into_result(self) -> Result<(), SendError<T>> {
        self.result
            .expect("coio: select read the result of an arm it did not choose")
    }

    /// The result if this arm was chosen; the arm, and the value it did
    /// not send, are dropped either way.
    pub fn into_chosen(self) -> Option<Result<(), SendError<T>>> {
        self.result
    }
}

impl<T> ArmOps for SendArm<'_, T> {
    fn try_now(&mut self) -> bool {
        let v = self
            .packet
            .take()
            .expect("coio: a select's send arm lost its value");
        match self.tx.chan().try_send(v, None) {
            Ok(()) => self.result = Some(Ok(())),
            Err(SendFail::Closed(v)) => self.result = Some(Err(SendError(v))),
            Err(SendFail::Full(v) | SendFail::Timeout(v)) => {
                self.packet = Packet::new(Some(v));
                return false;
            }
        }
        true
    }

    unsafe fn register(&mut self, blocker: &Blocker, oper: usize) -> bool {
        // SAFETY: caller (the packet is part of `self`).
        unsafe { self.tx.chan().register_send(blocker, oper, &self.packet) }
    }

    fn unregister(&mut self, blocker: &Blocker) {
        self.tx.chan().unregister(blocker);
    }

    fn claimed(&mut self) {
        debug_assert!(self.packet.take().is_none());
        self.result = Some(Ok(()));
    }
}

thread_local! {
    /// The thread's state for the select order (xorshift64*).
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A random number below `n` (n > 0). Reads a thread-local: never inlined
/// into a function that switches (see the thread-local rule in the crate
/// docs).
#[inline(never)]
pub(crate) fn random_below(n: usize) -> usize {
    let x = RNG.with(|r| {
        let mut x = r.get();
        if x == 0 {
            // Seed: a process-wide counter, spread (never 0 after the or).
            static SEEDS: AtomicU64 = AtomicU64::new(0);
            x = (SEEDS.fetch_add(1, Relaxed) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    });
    (((x >> 32) * n as u64) >> 32) as usize
}

/// The arms of one select as its rounds see them, by index: `select!`'s
/// [`ArmRef`]s here, a [`Select`](super::Select)'s operations in
/// `dynamic`. [`rounds`] is the protocol (the module docs), written once
/// for both.
pub(crate) trait Arms {
    /// What the chosen arm gives its caller.
    type Won;

    /// Step 1 for arm `i`: `Some` if it completed now (or, for
    /// `Select::ready`, is ready now).
    fn try_now(&mut self, i: usize) -> Option<Self::Won>;

    /// When timer arm `i` is next ready (None for any other arm).
    fn deadline(&self, i: usize) -> Option<Instant>;

    /// Step 2 for arm `i`: queues an entry for operation `i` with
    /// `blocker`, or returns false if the arm is ready now.
    ///
    /// # Safety
    /// `blocker`, and the arm (its packet), stay in place until
    /// `unregister(i, blocker)` has run or the blocker was seen `DONE`.
    unsafe fn register(&mut self, i: usize, blocker: &Blocker) -> bool;

    /// Removes `blocker`'s entries of arm `i`.
    fn unregister(&mut self, i: usize, blocker: &Blocker);

    /// Step 3: a waker claimed arm `i` and performed it.
    fn claimed(&mut self, i: usize) -> Self::Won;
}

impl Arms for [ArmRef<'_>] {
    type Won = ();

    #[inline]
    fn try_now(&mut self, i: usize) -> Option<()> {
        self[i].0.try_now().then_some(())
    }

    fn deadline(&self, i: usize) -> Option<Instant> {
        self[i].0.deadline()
    }

    unsafe fn register(&mut self, i: usize, blocker: &Blocker) -> bool {
        // SAFETY: the caller's contract is `ArmOps::register`'s.
        unsafe { self[i].0.register(blocker, i) }
    }

    fn unregister(&mut self, i: usize, blocker: &Blocker) {
        self[i].0.unregister(blocker);
    }

    fn claimed(&mut self, i: usize) {
        self[i].0.claimed();
    }
}

/// Puts `order` in a uniformly random order (Fisher-Yates), a fresh
/// permutation per select. Under loom it stays as it is: loom replays an
/// execution's choices and needs every other source of nondeterminism
/// gone (its models order the arms).
pub(crate) fn shuffle(order: &mut [usize]) {
    if cfg!(loom) {
        return;
    }
    for i in (1..order.len()).rev() {
        order.swap(i, random_below(i + 1));
    }
}

/// The rounds of a select (the module docs) over the arms in `order`:
/// the chosen arm's index and what it gave, or None when `mode` ran out.
pub(crate) fn rounds<A: Arms + ?Sized>(
    arms: &mut A,
    order: &[usize],
    mode: Mode,
) -> Option<(usize, A::Won)> {
    if !matches!(mode, Mode::Try) {
        // A select counts against the coroutine's cooperative budget, as a
        // `recv` does, before it tries its arms: the budget's yield is a
        // cancellation point where no arm has done anything (after, a
        // dynamic select's arm would hold a reservation, which an unwind
        // would not release, and a receive's value would be lost). One
        // that then waits starts a new budget. A `default` arm makes it a
        // `try_` (which never yields).
        coop_spend_cancellable();
    }
    loop {
        for &i in order {
            if let Some(won) = arms.try_now(i) {
                return Some((i, won));
            }
        }
        let until = match mode {
            Mode::Try => return None,
            Mode::Block => None,
            Mode::Until(d) => {
                if d.is_some_and(|d| Instant::now() >= d) {
                    return None;
                }
                d
            }
        };
        // The nearest delivery of a timer arm ends the wait too (the arm
        // is then tried again).
        let timer = order
            .iter()
            .fold(None, |t, &i| earliest(t, arms.deadline(i)));
        let blocker = Blocker::new(crate::runtime::dump::Wait::Select);
        let mut registered = 0;
        let mut ready = false;
        for &i in order {
            // SAFETY: `blocker` lives on this frame and the arms are
            // borrowed for the whole call; every registered entry is
            // removed below before either goes, and the wait returns only
            // after DONE or an abort.
            if !unsafe { arms.register(i, &blocker) } {
                ready = true;
                break;
            }
            registered += 1;
        }
        let woken = if ready && blocker.abort() {
            None
        } else {
            Some(blocker.wait(earliest(until, timer), true))
        };
        for &i in &order[..registered] {
            arms.unregister(i, &blocker);
        }
        match woken {
            Some(Woken::Done(i)) => {
                // (A dynamic select's receive queues with `HELD` set.)
                let i = i & !super::channel::HELD;
                return Some((i, arms.claimed(i)));
            }
            // An arm became ready while we registered, a channel closed, a
            // timer arm's delivery is due, or the deadline passed: try the
            // arms again (at the deadline, the check above ends it).
            None | Some(Woken::Retry(_) | Woken::TimedOut) => {}
            Some(Woken::Cancelled) => unwind_cancelled(),
        }
    }
}

/// Runs a select over `arms` (see the module docs); returns the chosen
/// arm's index, or None when `mode` ran out (the `default` arm).
pub fn run(arms: &mut [ArmRef<'_>], mode: Mode) -> Option<usize> {
    let n = arms.len();
    let mut small = [0usize; 16];
    let mut large = Vec::new();
    let order: &mut [usize] = if n <= small.len() {
        &mut small[..n]
    } else {
        large.resize(n, 0);
        &mut large
    };
    for (i, o) in order.iter_mut().enumerate() {
        *o = i;
    }
    shuffle(order);
    rounds(arms, order, mode).map(|(i, ())| i)
}

/// Waits on several channel operations at once and runs the arm of the
/// one that completes (Go's `select`, in crossbeam-channel's syntax).
///
/// ```
/// use std::time::Duration;
/// use coio::chan;
///
/// coio::run(|| {
///     let (tx1, rx1) = chan::bounded::<i32>(0);
///     let (tx2, rx2) = chan::bounded::<i32>(1);
///     coio::spawn(move || tx1.send(1).unwrap());
///     let got = coio::select! {
///         recv(rx1) -> msg => msg.unwrap(),
///         send(tx2, 2) -> res => { res.unwrap(); 2 }
///         default(Duration::from_secs(1)) => 0,
///     };
///     assert!(got == 1 || got == 2);
/// });
/// ```
///
/// Arms, in any number and order:
/// * `recv(r) -> msg => body`: receive from `r` (a `Receiver` or a
///   reference to one); `msg` is a `Result<T, RecvError>` (an error once
///   the channel is closed and empty: a closed channel is always ready).
/// * `send(s, value) -> res => body`: send `value` on `s`; `res` is a
///   `Result<(), SendError<T>>`. `value` is evaluated before the select
///   starts, as in Go, and dropped if another arm is chosen (before that
///   arm's body runs).
/// * `default => body`: run if no other arm is ready now.
/// * `default(timeout) => body`: run if no other arm becomes ready within
///   `timeout` (a `Duration`). At most one `default` arm.
///
/// Bodies are expressions followed by a comma, or blocks. The `select!`
/// is an expression: its value is the value of the body that ran.
///
/// Among the arms ready at once, one is chosen uniformly at random. No
/// arm is performed but the chosen one, nothing is spawned, and the
/// caller's coroutine simply waits (a plain thread blocks). Without a
/// `default` arm, `select!` waits until an arm is ready, or forever if it
/// has none.
///
/// # Panics
/// Unwinds with [`Cancelled`](crate::Cancelled) if the coroutine is
/// cancelled while it waits.
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select_internal!(@parse [] [] $($tokens)*)
    };
}

/// The parser of [`select!`]: not an API.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_internal {
    // recv arms.
    (@parse [$($arms:tt)*] [$($dflt:tt)*]
        recv($r:expr) -> $p:pat => $body:block, $($rest:tt)*) => {
        $crate::__select_internal!(@recv [$($arms)*] [$($dflt)*] ($r) ($p) ($body) $($rest)*)
    };
    (@parse [$($arms:tt)*] [$($dflt:tt)*]
        recv($r:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@recv [$($arms)*] [$($dflt)*] ($r) ($p) ($body) $($rest)*)
    };
    (@parse [$($arms:tt)*] [$($dflt:tt)*]
        recv($r:expr) -> $p:pat => $body:expr, $($rest:tt)*) => {
        $crate::__select_internal!(@recv [$($arms)*] [$($dflt)*] ($r) ($p) ($body) $($rest)*)
    };
    (@parse [$($arms:tt)*] [$($dflt:tt)*]
        recv($r:expr) -> $p:pat => $body:expr) => {
        $crate::__select_internal!(@recv [$($arms)*] [$($dflt)*] ($r) ($p) ($body))
    };
    // send arms.
    (@parse [$($arms:tt)*] [$($dflt:tt)*]
        send($s:expr, $v:expr) -> $p:pat => $body:block, $($rest:tt)*) => {
        $crate::__select_internal!(@send [$($arms)*] [$($dflt)*] ($s) ($v) ($p) ($body) $($rest)*)
    };
    (@parse [$($arms:tt)*] [$($dflt:tt)*]
        send($s:expr, $v:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@send [$($arms)*] [$($dflt)*] ($s) ($v) ($p) ($body) $($rest)*)
    };
    (@parse [$($arms:tt)*] [$($dflt:tt)*]
        send($s:expr, $v:expr) -> $p:pat => $body:expr, $($rest:tt)*) => {
        $crate::__select_internal!(@send [$($arms)*] [$($dflt)*] ($s) ($v) ($p) ($body) $($rest)*)
    };
    (@parse [$($arms:tt)*] [$($dflt:tt)*]
        send($s:expr, $v:expr) -> $p:pat => $body:expr) => {
        $crate::__select_internal!(@send [$($arms)*] [$($dflt)*] ($s) ($v) ($p) ($body))
    };
    // default arms.
    (@parse [$($arms:tt)*] [] default($t:expr) => $body:block, $($rest:tt)*) => {
        $crate::__select_internal!(@parse [$($arms)*] [until ($t) ($body)] $($rest)*)
    };
    (@parse [$($arms:tt)*] [] default($t:expr) => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse [$($arms)*] [until ($t) ($body)] $($rest)*)
    };
    (@parse [$($arms:tt)*] [] default($t:expr) => $body:expr, $($rest:tt)*) => {
        $crate::__select_internal!(@parse [$($arms)*] [until ($t) ($body)] $($rest)*)
    };
    (@parse [$($arms:tt)*] [] default($t:expr) => $body:expr) => {
        $crate::__select_internal!(@parse [$($arms)*] [until ($t) ($body)])
    };
    (@parse [$($arms:tt)*] [] default => $body:block, $($rest:tt)*) => {
        $crate::__select_internal!(@parse [$($arms)*] [try ($body)] $($rest)*)
    };
    (@parse [$($arms:tt)*] [] default => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse [$($arms)*] [try ($body)] $($rest)*)
    };
    (@parse [$($arms:tt)*] [] default => $body:expr, $($rest:tt)*) => {
        $crate::__select_internal!(@parse [$($arms)*] [try ($body)] $($rest)*)
    };
    (@parse [$($arms:tt)*] [] default => $body:expr) => {
        $crate::__select_internal!(@parse [$($arms)*] [try ($body)])
    };
    (@parse [$($arms:tt)*] [$($dflt:tt)+] default $($rest:tt)*) => {
        ::core::compile_error!("coio::select!: at most one `default` arm")
    };
    // The end: run the select and the chosen arm's body.
    (@parse [$(($a:ident ($p:pat) ($body:expr)))*] [$($dflt:tt)*]) => {{
        let _ = $crate::chan::select::run(
            &mut [$($a.arm()),*],
            $crate::__select_internal!(@mode $($dflt)*),
        );
        // Every arm gives up its result, or is dropped with the value it
        // did not send, before any body runs.
        $(let $a = $a.into_chosen();)*
        $(if let ::core::option::Option::Some(__coio_result) = $a {
            let $p = __coio_result;
            $body
        } else)* {
            $crate::__select_internal!(@default $($dflt)*)
        }
    }};
    (@parse [$($arms:tt)*] [$($dflt:tt)*] $($rest:tt)+) => {
        ::core::compile_error!(
            "coio::select!: expected `recv(r) -> msg => body`, `send(s, value) -> res => body`, \
             `default => body` or `default(timeout) => body`"
        )
    };
    // One arm, bound to its own variable: each expansion of these rules
    // makes a distinct `__coio_arm` (macro hygiene), and `@parse` carries
    // it on. The channel is borrowed by a `match`, not a `let`, so that a
    // temporary channel (`recv(chan::after(d)) -> _`, as crossbeam's docs
    // write a timeout) lives until the select is over; a send's value is
    // evaluated after its channel (Go's order) by a `let` of its own, so
    // that its temporaries (a `RefCell` borrow, a lock guard) end at once.
    (@recv [$($arms:tt)*] [$($dflt:tt)*] ($r:expr) ($p:pat) ($body:expr) $($rest:tt)*) => {{
        match &$r {
            __coio_chan => {
                let mut __coio_arm = $crate::chan::select::RecvArm::new(__coio_chan);
                $crate::__select_internal!(@parse [$($arms)* (__coio_arm ($p) ($body))] [$($dflt)*] $($rest)*)
            }
        }
    }};
    (@send [$($arms:tt)*] [$($dflt:tt)*] ($s:expr) ($v:expr) ($p:pat) ($body:expr) $($rest:tt)*) => {{
        match &$s {
            __coio_chan => {
                let __coio_value = $v;
                let mut __coio_arm = $crate::chan::select::SendArm::new(__coio_chan, __coio_value);
                $crate::__select_internal!(@parse [$($arms)* (__coio_arm ($p) ($body))] [$($dflt)*] $($rest)*)
            }
        }
    }};
    (@mode) => { $crate::chan::select::Mode::Block };
    (@mode try ($body:expr)) => { $crate::chan::select::Mode::Try };
    (@mode until ($t:expr) ($body:expr)) => { $crate::chan::select::Mode::timeout($t) };
    (@default) => { ::core::unreachable!("coio::select!: no arm was chosen") };
    (@default try ($body:expr)) => { $body };
    (@default until ($t:expr) ($body:expr)) => { $body };
}
