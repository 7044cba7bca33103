//! The timer channels: [`after`](super::after), [`tick`](super::tick) and
//! [`never`](super::never()), Go's `time.After`, `time.Tick` and nil
//! channel, under crossbeam-channel's names.
//!
//! They are receivers without senders, as in crossbeam-channel: a timer
//! channel holds no buffer, queue or timer, only the instant of its next
//! delivery. A receive that finds that instant passed takes the delivery
//! (a compare-and-swap moves it on: to "none" for `after`, to the next
//! tick for `tick`); one that finds it ahead waits until then, as a
//! receive with a deadline waits (the coroutine parks on its worker's
//! timers; a thread parks). `select!` and [`Select`](super::Select) ask
//! each timer arm for its next delivery and wait no longer than the
//! nearest one. So a timer channel that nobody receives from costs
//! nothing but its allocation (Go before 1.23 kept every unfired timer in
//! the heap), and `after` in a loop of selects allocates one small
//! object per iteration.
//!
//! Ticks follow their grid, as Go's tickers do: the `n`-th tick is due
//! at `start + n * period`; a receiver that falls behind gets one tick
//! (the latest due one's instant is not kept: the delivery is the oldest
//! tick not taken) and the ticks it missed are dropped, so a slow
//! receiver is never handed a burst.

#[cfg(loom)]
use loom::sync::atomic::AtomicU64;
#[cfg(not(loom))]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::*;
use std::time::{Duration, Instant};

use super::channel::RecvFail;
use crate::park::{Blocker, Woken, unwind_cancelled};
use crate::runtime::dump::Wait;
use crate::runtime::worker::coop_spend_cancellable;

/// "No delivery any more" in [`TimerChan::next`].
const NONE: u64 = u64::MAX;

/// The shared state of an `after` or `tick` channel (its clones share it:
/// each delivery goes to one receiver).
pub(crate) struct TimerChan {
    /// The instant the offsets count from.
    base: Instant,
    /// The next delivery, in nanoseconds after `base`; [`NONE`]: none.
    next: AtomicU64,
    /// The period of a `tick`, in nanoseconds (at least 1); 0 for `after`.
    period: u64,
}

/// Nanoseconds of `d`, saturating below [`NONE`] (a delivery that far
/// away is, in practice, never).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(NONE).min(NONE - 1)
}

impl TimerChan {
    /// One delivery, `d` from now.
    pub(crate) fn after(d: Duration) -> TimerChan {
        TimerChan {
            base: Instant::now(),
            next: AtomicU64::new(nanos(d)),
            period: 0,
        }
    }

    /// A delivery every `period` (at least 1 ns), the first one `period`
    /// from now.
    pub(crate) fn tick(period: Duration) -> TimerChan {
        let p = nanos(period).max(1);
        TimerChan {
            base: Instant::now(),
            next: AtomicU64::new(p),
            period: p,
        }
    }

    /// The instant `off` nanoseconds after `base`.
    fn at(&self, off: u64) -> Instant {
        self.base + Duration::from_nanos(off)
    }

    /// When the next delivery is due; None if there is none any more (an
    /// `after` that delivered).
    pub(crate) fn due(&self) -> Option<Instant> {
        match self.next.load(Acquire) {
            NONE => None,
            off => Some(self.at(off)),
        }
    }

    /// Takes the delivery due by `now`, if any: its instant.
    pub(crate) fn try_take(&self, now: Instant) -> Option<Instant> {
        let elapsed = nanos(now.saturating_duration_since(self.base));
        let mut off = self.next.load(Acquire);
        loop {
            if off == NONE || off > elapsed {
                return None;
            }
            let next = match (elapsed - off).checked_div(self.period) {
                // An `after`: its one delivery.
                None => NONE,
                // The first grid point after `now`: the ticks missed in
                // between are dropped.
                Some(behind) => off
                    .saturating_add((behind + 1).saturating_mul(self.period))
                    .min(NONE - 1),
            };
            match self.next.compare_exchange_weak(off, next, AcqRel, Acquire) {
                Ok(_) => return Some(self.at(off)),
                Err(cur) => off = cur,
            }
        }
    }

    /// Deliveries ready now: 0 or 1.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.due().is_some_and(|d| Instant::now() >= d))
    }

    /// Receives, waiting until `deadline` at most (None: no limit).
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<Instant, RecvFail> {
        // As a channel's receive, this counts against the budget: a loop on
        // a tick always due (`tick(1ns)`, a body slower than the period)
        // kept its worker, and could not be cancelled. Spent before the
        // take, so that a receive cancelled at the budget's yield has taken
        // nothing (`after`'s one delivery went to nobody: its clones did
        // not get it either).
        coop_spend_cancellable();
        loop {
            let now = Instant::now();
            if let Some(i) = self.try_take(now) {
                return Ok(i);
            }
            if deadline.is_some_and(|d| now >= d) {
                return Err(RecvFail::Timeout);
            }
            sleep_until(earliest(self.due(), deadline));
        }
    }
}

/// The earlier of two optional deadlines (None: no deadline).
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A receive on [`never`](super::never()): waits until `deadline` (None:
/// forever, or until the coroutine is cancelled).
pub(crate) fn recv_never(deadline: Option<Instant>) -> RecvFail {
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // As `TimerChan::recv`'s (a zero-timeout polling loop).
            coop_spend_cancellable();
            return RecvFail::Timeout;
        }
        sleep_until(deadline);
    }
}

/// Waits until `until` (None: until cancelled), or less (a spurious wake):
/// the coroutine parks on its worker's timers, a thread parks. Shown in a
/// dump as a channel receive. Unwinds with `Cancelled` on cancellation.
fn sleep_until(until: Option<Instant>) {
    // A blocker nobody else knows: only the deadline or a cancellation
    // ends its wait.
    let b = Blocker::new(Wait::ChanRecv);
    if let Woken::Cancelled = b.wait(until, true) {
        unwind_cancelled();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn after_delivers_once() {
        let t = TimerChan::after(Duration::from_millis(5));
        let due = t.due().unwrap();
        assert_eq!(t.try_take(due - Duration::from_millis(1)), None);
        assert_eq!(t.try_take(due + Duration::from_secs(1)), Some(due));
        assert_eq!(t.try_take(due + Duration::from_secs(2)), None);
        assert_eq!(t.due(), None);
    }

    #[test]
    fn ticks_follow_their_grid_and_drop_missed_ones() {
        let p = Duration::from_millis(10);
        let t = TimerChan::tick(p);
        let first = t.due().unwrap();
        assert_eq!(t.try_take(first), Some(first));
        assert_eq!(t.due(), Some(first + p));
        // Taken 3.5 periods late: one delivery, the next on the grid.
        let late = first + p * 4 + p / 2;
        assert_eq!(t.try_take(late), Some(first + p));
        assert_eq!(t.due(), Some(first + p * 5));
        assert_eq!(t.try_take(late), None);
    }

    #[test]
    fn huge_durations_never_deliver() {
        let t = TimerChan::after(Duration::MAX);
        assert!(
            t.try_take(Instant::now() + Duration::from_secs(100 * 365 * 86_400))
                .is_none()
        );
        let t = TimerChan::tick(Duration::MAX);
        assert!(
            t.try_take(Instant::now() + Duration::from_secs(100 * 365 * 86_400))
                .is_none()
        );
    }
}
