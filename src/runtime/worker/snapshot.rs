//! A worker's part of a dump: its coroutines, written into the dumper's
//! buffer by the worker's own thread (see `runtime::dump` for the protocol).
//!
//! Only the home thread reads a coroutine's home-local fields and its
//! stack, so the worker answers for its own coroutines: from its loop, from
//! a coroutine that is switching away (both in `answer`), or from a signal
//! handler while a coroutine runs on it (`answer_signal`, for a worker
//! that does not come back to its loop). Everything here allocates
//! nothing and takes no lock: the signal handler runs it.

use super::Local;
use std::sync::Arc;

use crate::arch;
use crate::runtime::dump::{Kind, Request, Writer};
use crate::runtime::task::{self, Started};
use crate::stack;
use crate::trace;

/// Most frames recorded per coroutine.
const MAX_FRAMES: usize = 128;

impl Local {
    /// This worker's index.
    #[inline]
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Answers a dump request, if one waits: from the worker's loop (no
    /// coroutine runs), or for the dumper's own worker from the dumping
    /// coroutine, whose registers `running` are then those of a frame of
    /// it that outlives the call (see `trace::caller_regs`).
    #[cold]
    pub(crate) fn answer_dump(&self, running: Option<(u64, u64, u64)>) {
        let slot = self.dump_slot();
        let Some(req) = slot.begin() else { return };
        let running = running.filter(|_| self.in_coroutine());
        // SAFETY: `begin` handed us the request until `finish`; we are the
        // worker's thread, outside any borrow of its queues.
        unsafe { self.snapshot(&mut *req, running, true) };
        slot.finish();
    }

    /// Writes this worker's coroutines into `req`: the running one (the
    /// caller, or the one a signal interrupted, with its registers
    /// `running`), the suspended ones walked from their saved contexts,
    /// and, with `list_fresh`, the fresh ones in its queues.
    ///
    /// # Safety
    /// Called on the worker's thread. A signal handler may call it only
    /// while a coroutine runs ([`in_coroutine`](Self::in_coroutine), and
    /// `running` within its stack): the registry is then not being changed.
    pub(crate) unsafe fn snapshot(
        &self,
        req: &mut Request,
        running: Option<(u64, u64, u64)>,
        list_fresh: bool,
    ) {
        // Registers from a signal are the interrupted instruction's; the
        // dumper's own (not listing fresh ones: no signal) are a call's.
        let from_call = list_fresh;
        let mut w = Writer::new(req);
        let Ok(registry) = self.registry.try_borrow() else {
            w.lost();
            return;
        };
        let current = self.current.get();
        // SAFETY: the request's unwinder and cache, the dumper's, are ours
        // until `finish` (caller's contract).
        let (unwinder, cache) = unsafe { (&*w.request().unwinder, &mut *w.request().cache) };
        let mut frames = [0u64; MAX_FRAMES];
        for t in registry.slots.iter().flatten() {
            let h = t.header();
            // SAFETY: home-local, read on the home thread; nothing borrows
            // it now (the loop, or a coroutine outside coio's code).
            let Some(raw) = (unsafe { &*h.local.raw.get() }) else {
                continue;
            };
            let stack = raw.stack();
            let top = stack.switch_top() as u64;
            // SAFETY: the coroutine's own descriptor word (home thread).
            let wait = unsafe { stack.wait_word().read() };
            let is_current = current.is_some_and(|c| c.same(Started::of(&**t)));
            if w.request().running_only && !is_current {
                continue;
            }
            let (kind, (n, end)) = if is_current {
                let kind = Kind::Running;
                match running {
                    // SAFETY: the running coroutine's stack, from registers
                    // inside it up to its top: interrupted, or the caller.
                    Some(regs) if regs.1 < top => (kind, unsafe {
                        trace::walk_from(unwinder, cache, regs, from_call, top, &mut frames)
                    }),
                    _ => (kind, (0, trace::End::Lost)),
                }
            } else {
                let kind = if h.state_bits() & task::STATE_MASK == task::WAITING {
                    Kind::Waiting
                } else {
                    Kind::Runnable
                };
                let sp = raw.context();
                if sp.is_null() || !stack::holds(top as usize, sp as usize) {
                    // Suspended on another stack (inside a generator it
                    // resumed), or its context is being saved (a switch
                    // the signal interrupted): not walked.
                    (kind, (0, trace::End::Lost))
                // SAFETY: a suspended context of this worker's, on its own
                // stack (checked): unchanged until the worker resumes it,
                // which it does not do while it runs this.
                } else if unsafe { arch::is_fresh(sp) } {
                    (kind, (0, trace::End::Complete))
                } else {
                    // SAFETY: as above.
                    (kind, unsafe {
                        trace::walk_suspended(unwinder, cache, sp as u64, top, &mut frames)
                    })
                }
            };
            w.coroutine(&**t, kind, wait, self.index, &frames[..n], end);
        }
        drop(registry);
        if w.request().running_only {
            return;
        }
        if list_fresh {
            self.list_fresh(&mut w);
        } else {
            w.unlisted(self.fresh.len() + self.overflow.try_borrow().map_or(0, |o| o.len()));
        }
    }

    /// Writes the fresh coroutines of this worker's queues: the deque is
    /// emptied and refilled in the same order (thieves may take some
    /// meanwhile: they appear in the thief's part, or nowhere, as in any
    /// snapshot of a moving system).
    fn list_fresh(&self, w: &mut Writer<'_>) {
        let n = self.fresh.len();
        // One met again (put back already): the round is over. Thieves
        // take some meanwhile, maybe the first one put back, so each one
        // listed is looked for, not only the first (at most `FRESH_CAP`).
        let mut listed: Vec<*const ()> = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(t) = self.fresh.pop() else { break };
            let p = Arc::as_ptr(&t) as *const ();
            if listed.contains(&p) {
                self.fresh.push(t);
                break;
            }
            listed.push(p);
            w.coroutine(
                &*t,
                Kind::NotStarted,
                0,
                self.index,
                &[],
                trace::End::Complete,
            );
            self.fresh.push(t);
        }
        if let Ok(overflow) = self.overflow.try_borrow() {
            for t in overflow.iter() {
                w.coroutine(
                    &**t,
                    Kind::NotStarted,
                    0,
                    self.index,
                    &[],
                    trace::End::Complete,
                );
            }
        }
    }
}

impl Local {
    /// For the signal handler: whether `sp` is on this worker's thread
    /// stack (its loop) or on one of its coroutines' stacks other than the
    /// running one's (a switch between them), where the registry's
    /// contexts may be mid-update; elsewhere (a generator's stack) they
    /// are not.
    fn in_switch(&self, sp: usize) -> bool {
        let slot = self.dump_slot();
        if slot.on_thread_stack(sp) {
            return true;
        }
        let Ok(registry) = self.registry.try_borrow() else {
            return true;
        };
        let current = self.current.get();
        registry.slots.iter().flatten().any(|t| {
            if current.is_some_and(|c| c.same(Started::of(&**t))) {
                return false;
            }
            // SAFETY: home-local, read on the home thread; the interrupted
            // code is outside the scheduler's changes to it.
            match unsafe { &*t.header().local.raw.get() } {
                Some(raw) => stack::holds(raw.stack().switch_top() as usize, sp),
                None => false,
            }
        })
    }
}

/// Answers a dump request from the SIGURG handler, if this thread is a
/// worker with a request waiting and a coroutine running whose stack holds
/// the interrupted stack pointer (the caller has checked that the signal
/// is one of the dumps').
///
/// # Safety
/// Called from a signal handler with the interrupted registers.
pub(crate) unsafe fn answer_signal(regs: (u64, u64, u64)) {
    let Some(l) = super::local() else {
        return;
    };
    let slot = l.dump_slot();
    if !slot.requested() {
        return;
    }
    // A coroutine must run, and the signal must have caught it on its own
    // stack: between the switch's bookkeeping and the switch itself, the
    // registry's saved contexts are not all current; the dumper signals
    // again.
    let Some(cur) = l.current.get().filter(|_| l.in_coroutine()) else {
        return;
    };
    // SAFETY: the running task is unfinished.
    let h = unsafe { cur.get() }.header();
    // SAFETY: home-local; the interrupted code is not inside coio's
    // scheduler (checked next), which is what borrows it.
    let Some(raw) = (unsafe { &*h.local.raw.get() }) else {
        return;
    };
    let top = raw.stack().switch_top() as usize;
    let on_its_stack = stack::holds(top, regs.1 as usize);
    // Off its stack, it is either in a switch (gone in an instant: wait for
    // the next signal) or running on a stack of its own, a generator's,
    // for as long as it likes: after three signals, answer without its
    // frames. The registry is not being changed either way (that happens
    // with no coroutine running); a context the switch is saving may be
    // stale, which only makes that one walk read the wrong words of its own
    // stack (every read is bounded).
    if !on_its_stack && (slot.signals() < 3 || l.in_switch(regs.1 as usize)) {
        return;
    }
    let Some(req) = slot.begin() else { return };
    // SAFETY: a coroutine runs, interrupted outside the scheduler: the
    // registry is not being changed. `begin` gave us the request.
    unsafe { l.snapshot(&mut *req, on_its_stack.then_some(regs), false) };
    slot.finish();
}
