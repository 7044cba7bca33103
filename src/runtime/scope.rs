//! Scoped coroutines: children that may borrow from their parent's stack.
//!
//! As with `std::thread::scope`, soundness rests on one rule: [`scope`]
//! does not return, by any path, before every coroutine spawned in it has
//! finished or been dropped unrun. The [`Scope`] lives inside `scope` and
//! the caller only ever sees a reference to it, so nothing the caller does
//! (leaking a [`ScopedJoinHandle`] with `mem::forget`, say) can skip the
//! wait. The wait is not cancellable: a parent cancelled while it waits
//! cancels its children instead (and any child spawned later), keeps
//! waiting for them to unwind, and unwinds with `Cancelled` itself once
//! they are done.
//!
//! Each child's closure is boxed with its lifetime erased to `'static` and
//! spawned as an ordinary coroutine, inside a `ChildJob` that drops the
//! closure and the child's share of its result before it counts the child
//! out (whether the closure ran or was dropped unrun because the child was
//! cancelled before it started), and wakes the parent when it was the last.
//! So nothing that borrows from the scope is touched once the count is zero.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::thread;

use super::blocking::{self, current_waiter, wait_until};
use super::task::{self, Cancelled, Coroutine, JoinHandle, TaskCell, TaskRef, Waiter};
use super::{Shared, spawn_task, worker};

/// A scope to spawn coroutines that borrow from the enclosing function; see
/// [`scope`].
///
/// ```
/// let mut counts = [0usize; 3];
/// coio::run(|| {
///     coio::scope(|s| {
///         // Each child borrows one element mutably.
///         for (i, c) in counts.iter_mut().enumerate() {
///             s.spawn(move || *c = i * 10);
///         }
///     }); // every child has finished here
/// });
/// assert_eq!(counts, [0, 10, 20]);
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    shared: Arc<Shared>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

struct ScopeData {
    /// Children spawned and not yet done.
    running: AtomicUsize,
    /// Children that panicked and whose handle did not take the result.
    unjoined_panics: AtomicUsize,
    /// The parent, once it waits.
    waiter: Mutex<Option<Waiter>>,
    /// Every child, for cancellation.
    children: Mutex<Children>,
}

/// A scope's children, for cancellation.
#[derive(Default)]
struct Children {
    tasks: Vec<TaskRef>,
    /// The parent was cancelled while it waited, and cancelled `tasks`: a
    /// child spawned later (by a child that was in `blocking`, or
    /// computing) is cancelled at its spawn.
    cancelled: bool,
}

impl ScopeData {
    fn lock_children(&self) -> std::sync::MutexGuard<'_, Children> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A scoped child's closure and result slot. However it ends (run, or
/// dropped unrun when it is cancelled before it starts), it drops the
/// closure and its share of the result first and counts the child out
/// last: the scope may return, and what the closure borrows go away, as
/// soon as the count reaches zero. A type with a `Drop` impl, so that the
/// closure that runs it captures it whole.
struct ChildJob<F, T> {
    f: Option<F>,
    packet: Option<Arc<Packet<T>>>,
    data: Arc<ScopeData>,
}

impl<F: FnOnce() -> T, T> ChildJob<F, T> {
    fn run(mut self) {
        let Some(f) = self.f.take() else { return };
        let out = catch_unwind(AssertUnwindSafe(f));
        if let Err(p) = &out
            && !p.is::<Cancelled>()
        {
            self.data.unjoined_panics.fetch_add(1, AcqRel);
        }
        if let Some(packet) = &self.packet {
            *packet.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
        }
        // `self` drops here: the packet, then the count.
    }
}

impl<F, T> Drop for ChildJob<F, T> {
    fn drop(&mut self) {
        /// Counts the child out even if a destructor below panics.
        struct CountOut<'a>(&'a ScopeData);
        impl Drop for CountOut<'_> {
            fn drop(&mut self) {
                if self.0.running.fetch_sub(1, AcqRel) == 1 {
                    let w = self
                        .0
                        .waiter
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    if let Some(w) = w {
                        w.wake();
                    }
                }
            }
        }
        let _count_out = CountOut(&self.data);
        drop(self.packet.take());
        drop(self.f.take());
    }
}

/// A child's result, shared by the child and its handle.
struct Packet<T> {
    result: Mutex<Option<thread::Result<T>>>,
}

/// Owned permission to join a scoped coroutine.
///
/// ```
/// let nums = vec![1, 2, 3, 4];
/// let sum = coio::run(|| {
///     coio::scope(|s| {
///         let (a, b) = nums.split_at(2);
///         let left = s.spawn(move || a.iter().sum::<i32>());
///         let right = s.spawn(move || b.iter().sum::<i32>());
///         left.join().unwrap() + right.join().unwrap()
///     })
/// });
/// assert_eq!(sum, 10);
/// ```
pub struct ScopedJoinHandle<'scope, T> {
    inner: JoinHandle<()>,
    packet: Arc<Packet<T>>,
    data: Arc<ScopeData>,
    _scope: PhantomData<&'scope ()>,
}

/// Runs `f` with a [`Scope`] in which coroutines can be spawned that borrow
/// from the caller, and waits for all of them before returning (as
/// `std::thread::scope`).
///
/// ```
/// let mut words = vec!["a".to_string(), "b".to_string()];
/// let total = coio::run(|| {
///     coio::scope(|s| {
///         let lens: Vec<_> = words.iter().map(|w| s.spawn(move || w.len())).collect();
///         lens.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
///     })
/// });
/// words.push("c".into());
/// assert_eq!(total, 2);
/// ```
///
/// # Panics
/// If `f` panics, after all children finished, with its payload. If a
/// child panicked and its handle was not joined, with a message (a child
/// that was cancelled does not count).
/// Outside a coroutine of a coio runtime (spawn needs one).
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let Some(l) = worker::coroutine_local() else {
        blocking::not_in_coroutine("coio::scope")
    };
    let scope = Scope {
        data: Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            unjoined_panics: AtomicUsize::new(0),
            waiter: Mutex::new(None),
            children: Mutex::new(Children::default()),
        }),
        shared: l.shared.clone(),
        scope: PhantomData,
        env: PhantomData,
    };
    let out = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    scope.wait_all();
    match out {
        Err(payload) => resume_unwind(payload),
        Ok(_) if scope.data.unjoined_panics.load(Acquire) > 0 => {
            panic!("coio::scope: a scoped coroutine panicked")
        }
        Ok(v) => {
            // The wait was a blocking point that could not be cancelled:
            // a cancelled caller unwinds now that its children are done.
            if let Some(l) = worker::coroutine_local() {
                blocking::check_cancel(l);
            }
            v
        }
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns a coroutine that may borrow anything that outlives the scope.
    /// It is joined automatically when the scope ends.
    ///
    /// ```
    /// let text = String::from("hello");
    /// let n = coio::run(|| coio::scope(|s| s.spawn(|| text.len()).join().unwrap()));
    /// assert_eq!(n, 5);
    /// ```
    ///
    /// # Panics
    /// If `f`'s captures do not fit on the coroutine's stack, as
    /// [`spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        super::assert_fits::<F>(self.shared.stack_size);
        let packet = Arc::new(Packet {
            result: Mutex::new(None),
        });
        self.data.running.fetch_add(1, AcqRel);
        let child = ChildJob {
            f: Some(f),
            packet: Some(packet.clone()),
            data: self.data.clone(),
        };
        let job: Box<dyn FnOnce() + Send + 'scope> = Box::new(move || child.run());
        // SAFETY: `scope` waits until every child's `ChildJob` has been
        // dropped (run or not), which drops everything of 'scope it holds
        // before it counts the child out; the erased borrows are not used
        // after that.
        let job: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(job) };
        let task = TaskCell::new(job, None, Location::caller());
        let cancelled = {
            let mut children = self.data.lock_children();
            let tasks = &mut children.tasks;
            if tasks.len() >= 64 && tasks.len().is_power_of_two() {
                tasks.retain(|t| !t.header().is_complete());
            }
            tasks.push(task.clone());
            children.cancelled
        };
        spawn_task(&self.shared, task.clone());
        if cancelled {
            // The parent's cancel went by (see `Children`): this child is
            // dropped unrun, or unwinds at its first wait (once spawned, as
            // `wait_all` cancels the others: a wake of a task not yet
            // queued would queue it twice).
            task::cancel(&*task);
        }
        ScopedJoinHandle {
            inner: JoinHandle::new(task),
            packet,
            data: self.data.clone(),
            _scope: PhantomData,
        }
    }

    /// Waits for every child; not cancellable (see module docs).
    fn wait_all(&self) {
        let data = &self.data;
        if data.running.load(Acquire) == 0 {
            return;
        }
        *data.waiter.lock().unwrap_or_else(|e| e.into_inner()) = Some(current_waiter());
        wait_until(
            || {
                if worker::coroutine_local()
                    .is_some_and(|l| l.with_current(|t| t.header().is_cancelled()))
                {
                    // Once: the children of the first pass, later ones at
                    // their spawn.
                    let to_cancel = {
                        let mut children = data.lock_children();
                        let first = !std::mem::replace(&mut children.cancelled, true);
                        if first {
                            children.tasks.clone()
                        } else {
                            Vec::new()
                        }
                    };
                    for c in to_cancel {
                        task::cancel(&*c);
                    }
                }
                data.running.load(Acquire) == 0
            },
            None,
            false,
            super::dump::Wait::Scope,
        );
    }
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the coroutine and returns its result (`Err` with the panic
    /// payload, or [`Cancelled`]).
    ///
    /// ```
    /// let v = vec![1, 2, 3];
    /// coio::run(|| {
    ///     coio::scope(|s| {
    ///         let h = s.spawn(|| v.len());
    ///         assert_eq!(h.join().unwrap(), 3);
    ///     })
    /// });
    /// ```
    pub fn join(self) -> thread::Result<T> {
        let outer = self.inner.join();
        let stored = self
            .packet
            .result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match stored {
            Some(Ok(v)) => Ok(v),
            Some(Err(p)) => {
                if !p.is::<Cancelled>() {
                    self.data.unjoined_panics.fetch_sub(1, AcqRel);
                }
                Err(p)
            }
            None => match outer {
                Err(p) => Err(p),
                Ok(()) => Err(Box::new(Cancelled)),
            },
        }
    }

    /// Whether the coroutine has finished.
    ///
    /// ```
    /// coio::run(|| {
    ///     coio::scope(|s| {
    ///         let (tx, rx) = coio::chan::bounded::<()>(0);
    ///         let h = s.spawn(move || rx.recv());
    ///         assert!(!h.is_finished()); // it waits for a message, or for `tx` to go
    ///         drop(tx);
    ///         assert!(h.join().unwrap().is_err());
    ///     })
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Cancels the coroutine (see [`JoinHandle::cancel`]).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// coio::run(|| {
    ///     coio::scope(|s| {
    ///         let h = s.spawn(|| coio::sleep(Duration::from_secs(3600)));
    ///         h.cancel();
    ///         assert!(h.join().unwrap_err().is::<coio::Cancelled>());
    ///     })
    /// });
    /// ```
    pub fn cancel(&self) {
        self.inner.cancel()
    }

    /// A handle to the coroutine.
    ///
    /// ```
    /// coio::run(|| {
    ///     coio::scope(|s| {
    ///         let h = s.spawn(coio::park);
    ///         h.coroutine().unpark();
    ///         h.join().unwrap();
    ///     })
    /// });
    /// ```
    pub fn coroutine(&self) -> Coroutine {
        self.inner.coroutine()
    }
}
