//! Generators: stackful coroutines driven by hand on the current thread.
//!
//! ```
//! use coio::{Generator, GeneratorState};
//!
//! let mut g = Generator::new(|y, first: u32| {
//!     let second = y.yield_(first * 10);
//!     let third = y.yield_(second * 10);
//!     format!("done with {third}")
//! });
//! assert_eq!(g.resume(1), GeneratorState::Yielded(10));
//! assert_eq!(g.resume(2), GeneratorState::Yielded(20));
//! assert_eq!(g.resume(3), GeneratorState::Complete("done with 3".to_string()));
//! ```
//!
//! # Protocol
//!
//! Each switch carries one machine word (see the private `transfer`
//! module). A value of a primitive type (integers, floats, `bool`, `char`,
//! `()`) travels in it by value; any other value stays in a `ManuallyDrop` on
//! the sender's stack and its address travels, and the side that wakes up
//! moves it out before doing anything else. (corosensei sends every value of
//! up to a word by value, but a type with padding bytes would then be read
//! as a partly uninitialised integer, which is undefined behaviour; coio
//! does it only for types known to have none.) The parent sends the input,
//! with an order (`CONTINUE` or `UNWIND`) in the switch's order register;
//! the coroutine answers with the yielded value, or, when it finishes, with
//! its return value (the same way) or the address of its panic payload, and
//! a status (`RETURNED` or `PANICKED`) where a stack pointer would be.
//!
//! # Panics and unwinding
//!
//! The body runs under `catch_unwind` at the root of the coroutine. A panic
//! finishes the generator and is re-raised by `resume` in the parent with
//! `resume_unwind`, so it crosses no assembly frame. Dropping a suspended
//! generator resumes it with the order to unwind: its pending `yield_`
//! raises a [`ForcedUnwind`] panic that runs every destructor on the stack
//! and is swallowed at the root. If the body catches that panic and
//! suspends again, the order is repeated until the body finishes.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, offset_of, size_of};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr;

use super::{RawCoroutine, SUSPENDED, State};
use crate::arch;
use crate::stack::{self, DEFAULT_STACK_SIZE, StackPolicy};

/// What [`Generator::resume`] returns.
///
/// ```
/// use coio::{Generator, GeneratorState};
///
/// let mut g = Generator::new(|y, ()| {
///     y.yield_(1);
///     "done"
/// });
/// assert_eq!(g.resume(()), GeneratorState::Yielded(1));
/// assert_eq!(g.resume(()), GeneratorState::Complete("done"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GeneratorState<Y, R> {
    /// The generator yielded this value and can be resumed again.
    Yielded(Y),
    /// The generator returned this value and is finished.
    Complete(R),
}

/// The panic payload that unwinds a generator's stack when it is dropped
/// while suspended. Code that catches panics inside a generator should let
/// this one go on (`resume_unwind` it).
///
/// ```
/// use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
/// use coio::{ForcedUnwind, Generator};
///
/// let mut g = Generator::new(|y, ()| {
///     if let Err(payload) = catch_unwind(AssertUnwindSafe(|| y.yield_(1))) {
///         // The generator is being dropped: let the unwind go on.
///         if payload.is::<ForcedUnwind>() {
///             resume_unwind(payload);
///         }
///     }
/// });
/// assert_eq!(g.next(), Some(1)); // suspended in `yield_`
/// drop(g); // unwinds its stack, through the `catch_unwind`
/// ```
#[derive(Debug)]
pub struct ForcedUnwind(());

/// What the coroutine sent back, as the parent sees it (see the module
/// docs, "Protocol").
enum Out<Y, R> {
    Yielded(Y),
    Complete(R),
    Panicked(Box<dyn Any + Send>),
}

/// Handle given to a generator's body to yield values with.
///
/// It is not `Sync`, and the body only ever gets a short-lived, non-`'static`
/// reference to it, so it cannot be used from outside the generator's code
/// (not from another thread, and not from another generator's `'static`
/// closure).
///
/// It lives at the top of the generator's stack, in the scratch space of the
/// context switch, and its last field *is* the switch's link slot: a yield
/// finds the link at a constant offset from `&self` instead of loading it.
///
/// ```
/// use coio::{Generator, Yielder};
///
/// // Any function handed the yielder can yield, at any depth of calls.
/// fn countdown(y: &Yielder<(), u32>, from: u32) {
///     if from > 0 {
///         y.yield_(from);
///         countdown(y, from - 1);
///     }
/// }
/// let g = Generator::new(|y, ()| countdown(y, 3));
/// assert_eq!(g.collect::<Vec<_>>(), [3, 2, 1]);
/// ```
#[repr(C)]
pub struct Yielder<I, Y> {
    /// The link slot (written by the context switch; see `arch`).
    link: Cell<usize>,
    _marker: PhantomData<fn(Y) -> I>,
}

/// How the body ended, as `arch::finish` reports it to the parent.
const RETURNED: usize = 0;
const PANICKED: usize = 1;

/// The resume order that lets the body go on.
const CONTINUE: usize = 0;
/// The resume order that unwinds the body (the generator is being dropped).
const UNWIND: usize = 1;

/// The yielder of the coroutine whose link slot is `link`.
#[inline(always)]
fn yielder_at<I, Y>(link: *mut usize) -> *mut Yielder<I, Y> {
    const { assert!(size_of::<Yielder<(), ()>>() <= arch::SCRATCH + 8) };
    link.cast::<u8>()
        .wrapping_sub(offset_of!(Yielder<I, Y>, link))
        .cast()
}

/// How a value crosses a switch: in the switch's word itself, or by address.
mod transfer {
    use std::any::TypeId;
    use std::mem::{ManuallyDrop, MaybeUninit, align_of, size_of};
    use std::ptr;

    /// Whether a `T` travels in the word itself: the primitive types whose
    /// every byte is always initialised (no padding, no niche games) and
    /// that fit in a word.
    #[inline(always)]
    pub(super) fn by_value<T: 'static>() -> bool {
        let t = TypeId::of::<T>();
        size_of::<T>() <= size_of::<usize>()
            && (t == TypeId::of::<()>()
                || t == TypeId::of::<bool>()
                || t == TypeId::of::<char>()
                || t == TypeId::of::<u8>()
                || t == TypeId::of::<u16>()
                || t == TypeId::of::<u32>()
                || t == TypeId::of::<u64>()
                || t == TypeId::of::<usize>()
                || t == TypeId::of::<i8>()
                || t == TypeId::of::<i16>()
                || t == TypeId::of::<i32>()
                || t == TypeId::of::<i64>()
                || t == TypeId::of::<isize>()
                || t == TypeId::of::<f32>()
                || t == TypeId::of::<f64>())
    }

    /// The word that sends `slot`'s value. The value must then be treated as
    /// moved out of `slot`; by address, `slot` must stay where it is until
    /// the receiver has taken it.
    #[inline(always)]
    pub(super) fn send<T: 'static>(slot: &ManuallyDrop<T>) -> usize {
        if by_value::<T>() {
            let mut word = 0usize;
            // SAFETY: `T` is one of the primitives above: at most a word,
            // every byte initialised; the rest of `word` stays zero.
            unsafe {
                ptr::copy_nonoverlapping(
                    (slot as *const ManuallyDrop<T>).cast::<u8>(),
                    (&mut word as *mut usize).cast::<u8>(),
                    size_of::<T>(),
                )
            };
            word
        } else {
            slot as *const ManuallyDrop<T> as usize
        }
    }

    /// Takes the value sent with `word`.
    ///
    /// # Safety
    /// `word` must come from [`send::<T>`](send), once, while its slot is
    /// still in place.
    #[inline(always)]
    pub(super) unsafe fn receive<T: 'static>(word: usize) -> T {
        if by_value::<T>() {
            // SAFETY: the word holds the bytes of a valid `T` (see `send`),
            // and `usize` is at least as aligned as these primitives.
            unsafe { ptr::read((&word as *const usize).cast::<T>()) }
        } else if size_of::<T>() <= 64 && size_of::<T>().is_multiple_of(8) && align_of::<T>() >= 8 {
            // Small values move word by word, with word-sized loads: the
            // sender usually stored the value a word at a time, and a wider
            // load spanning two of those stores cannot be forwarded from
            // them (a stall of a dozen cycles on every switch; measured with
            // a `String`). Volatile keeps the compiler from merging the loads.
            let mut out = MaybeUninit::<T>::uninit();
            let src = word as *const MaybeUninit<u64>;
            let dst = out.as_mut_ptr().cast::<MaybeUninit<u64>>();
            for i in 0..size_of::<T>() / 8 {
                // SAFETY: `src` is the address of a `T` the sender gave up
                // (caller), `dst` our own `T`-sized buffer; both are 8-byte
                // aligned (checked above) and `i` stays inside them. Words
                // are copied as `MaybeUninit`, so padding stays padding.
                unsafe { dst.add(i).write(src.add(i).read_volatile()) };
            }
            // SAFETY: every byte of the `T` was copied from a valid `T`.
            unsafe { out.assume_init() }
        } else {
            // SAFETY: the address of a `T` the sender gave up (caller).
            unsafe { ptr::read(word as *const T) }
        }
    }
}

impl<I: 'static, Y: 'static> Yielder<I, Y> {
    /// Suspends the generator, handing `value` to the caller of
    /// [`Generator::resume`], and returns the input of the next `resume`.
    ///
    /// If the generator is dropped while suspended here, this call does not
    /// return: it unwinds (with a [`ForcedUnwind`] payload) so that the
    /// destructors on the generator's stack run. (Not when the program is
    /// built with `panic = "abort"`, or when the generator is dropped while
    /// its thread exits: it is then leaked, destructors and all.)
    ///
    /// ```
    /// use coio::{Generator, GeneratorState};
    ///
    /// let mut g = Generator::new(|y, first: i32| {
    ///     let second = y.yield_(first * 2); // hands out 2, gets the next input
    ///     second * 2
    /// });
    /// assert_eq!(g.resume(1), GeneratorState::Yielded(2));
    /// assert_eq!(g.resume(5), GeneratorState::Complete(10));
    /// ```
    ///
    /// # Aborts (debug builds)
    /// Yielding while the generator is unwinding from a panic (a destructor
    /// that yields, say) is a bug: std's panic count belongs to the thread,
    /// so the resumer would go on with `std::thread::panicking()` true until
    /// the generator is resumed and finishes unwinding (and dropping the
    /// generator then aborts: its forced unwind would start inside a
    /// destructor that runs during unwinding). Built with debug assertions,
    /// the resumer checks for it as soon as it is back and aborts the
    /// process with a message (it cannot tell when it was itself unwinding
    /// as it resumed the generator, and then lets it pass). Without debug
    /// assertions nothing checks, as with corosensei: the two reads of the
    /// panic count cost a sixth of a round trip (BENCHMARKS.md, issue 13),
    /// and what follows is the behaviour above, never undefined behaviour.
    #[inline]
    pub fn yield_(&self, value: Y) -> I {
        let value = ManuallyDrop::new(value);
        self.check_stack();
        // SAFETY: we are on this generator's stack, running: only its body
        // can reach this yielder (the body gets a reference that is neither
        // 'static, so no other generator's 'static closure can capture it,
        // nor Send, since Yielder is !Sync). `link` is its link slot. The
        // parent moves `value` out before it resumes us.
        let (arg, order) = unsafe { arch::suspend(transfer::send(&value), self.link.as_ptr()) };
        if order == UNWIND {
            resume_unwind(Box::new(ForcedUnwind(())));
        }
        // SAFETY: the parent sent an I with `transfer::send`.
        unsafe { transfer::receive::<I>(arg) }
    }
}

impl<I, Y> Yielder<I, Y> {
    /// On a canary stack, checks for an overflow before the generator
    /// suspends or finishes (see `stack::overflow::check_canary`).
    #[inline(always)]
    fn check_stack(&self) {
        // The switch top is right above the link slot and the entry word.
        stack::check_overflow(self.link.as_ptr() as usize + 16, arch::stack_pointer());
    }
}

impl<I, Y> fmt::Debug for Yielder<I, Y> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

#[cfg(debug_assertions)]
#[cold]
#[inline(never)]
fn abort_yield_while_panicking() -> ! {
    note!(
        "\ncoio: a generator tried to yield while it was unwinding from a panic \
         (a destructor called yield_); the thread's panic state cannot be carried \
         across a suspension, aborting (checked in debug builds only)"
    );
    std::process::abort()
}

/// A stackful generator: a closure on its own stack that can suspend itself
/// anywhere, however deep in calls, with [`Yielder::yield_`].
///
/// `I` is the type of the values sent in by [`resume`](Self::resume), `Y`
/// of the values yielded, `R` of the value returned. A generator whose input
/// is `()` is an [`Iterator`] over its yielded values.
///
/// A generator runs on the thread that resumes it and is neither `Send` nor
/// `Sync`: see the thread-local rule in the [module docs](super). To run
/// one elsewhere, send the closure and create the generator there.
///
/// The closure and the inputs must be `'static`, as for
/// `std::thread::spawn`: a suspended generator can be leaked
/// (`mem::forget`, an `Rc` cycle), and then its frames are never unwound,
/// so nothing they hold may borrow from anything that can go away (a
/// `std::thread::scope` suspended inside would otherwise outlive the data
/// its threads borrow). A leaked generator's stack is never reused. Its
/// frames may still borrow the thread's thread-locals, shared with other
/// threads: a thread of coio's own (see the [module docs](super)) with such
/// frames never exits, so that its thread-locals live on; a plain thread
/// exits as it will (see ARCHITECTURE.md, "Known gaps").
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// assert_send(coio::Generator::new(|y, ()| y.yield_(1)));
/// ```
///
/// Nor can the yielder leave the body, or the generator outlive what it
/// borrows:
///
/// ```compile_fail
/// let mut stash = None;
/// let mut g = coio::Generator::new(|y: &coio::Yielder<(), ()>, ()| stash = Some(y));
/// g.resume(());
/// ```
///
/// ```compile_fail
/// let v = vec![1, 2, 3];
/// let g = coio::Generator::new(|y, ()| for x in &v { y.yield_(*x); });
/// ```
///
/// And a generator cannot be re-typed to take inputs that promise less than
/// the ones it already holds (its input type is invariant):
///
/// ```compile_fail
/// fn retype(
///     g: coio::Generator<for<'a> fn(&'a str), (), ()>,
/// ) -> coio::Generator<fn(&'static str), (), ()> {
///     g
/// }
/// ```
pub struct Generator<I: 'static, Y: 'static, R: 'static> {
    raw: RawCoroutine,
    _marker: PhantomData<Marker<I, Y, R>>,
}

/// What a generator owns besides its stack, for variance and auto traits:
/// `*mut ()` so that it is neither `Send` nor `Sync`; the value types by
/// function signature (it owns none of them between resumes). `I` appears
/// on both sides, which makes it invariant: the body keeps the inputs it
/// was given on its stack, so a generator must not be re-typed to accept
/// inputs that live shorter (or longer) than the ones it holds.
type Marker<I, Y, R> = (*mut (), fn(I) -> (I, Y, R));

/// Settings for a new [`Generator`].
///
/// ```
/// use coio::{GeneratorBuilder, StackPolicy};
///
/// let g = GeneratorBuilder::new()
///     .name("tokens")
///     .stack_size(32 * 1024)
///     .stack_policy(StackPolicy::Canary)
///     .build(|y, ()| {
///         for t in ["let", "x", "="] {
///             y.yield_(t);
///         }
///     })?;
/// assert_eq!(g.collect::<Vec<_>>(), ["let", "x", "="]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GeneratorBuilder {
    stack_size: usize,
    policy: StackPolicy,
    name: Option<String>,
}

impl Default for GeneratorBuilder {
    fn default() -> Self {
        GeneratorBuilder {
            stack_size: DEFAULT_STACK_SIZE,
            policy: StackPolicy::Auto,
            name: None,
        }
    }
}

impl GeneratorBuilder {
    /// Default settings: [`DEFAULT_STACK_SIZE`] and [`StackPolicy::Auto`].
    ///
    /// ```
    /// let g = coio::GeneratorBuilder::new().build(|y, ()| y.yield_(1))?;
    /// assert_eq!(g.stack_size(), coio::DEFAULT_STACK_SIZE);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A name for the generator, shown by [`Generator::name`] and in the
    /// report if its stack overflows (unnamed generators are reported by
    /// the address of their stack).
    ///
    /// ```
    /// let g = coio::GeneratorBuilder::new()
    ///     .name("lexer")
    ///     .build(|y, ()| y.yield_(1))?;
    /// assert_eq!(g.name(), Some("lexer"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Usable stack size in bytes, rounded up to whole pages and to at least
    /// [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE); more than
    /// [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE) makes `build` fail.
    ///
    /// ```
    /// // Rounded up to whole pages.
    /// let g = coio::GeneratorBuilder::new()
    ///     .stack_size(100_000)
    ///     .build(|y, ()| y.yield_(1))?;
    /// assert_eq!(g.stack_size(), 25 * 4096);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// How a stack overflow is caught; see [`StackPolicy`].
    ///
    /// ```
    /// use coio::{GeneratorBuilder, StackPolicy};
    ///
    /// // A guard page, whatever the process's mapping count.
    /// let mut g = GeneratorBuilder::new()
    ///     .stack_policy(StackPolicy::Guarded)
    ///     .build(|y, ()| y.yield_(1))?;
    /// assert_eq!(g.next(), Some(1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_policy(mut self, policy: StackPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Creates the generator. Fails when no stack can be had (memory or
    /// mappings exhausted), with an error saying which, and with
    /// `InvalidInput` for a stack size above
    /// [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE) or a closure too large for
    /// the stack (its size plus 4 KiB).
    ///
    /// ```
    /// let evens = coio::GeneratorBuilder::new().build(|y, ()| {
    ///     for i in (0..6).step_by(2) {
    ///         y.yield_(i);
    ///     }
    /// })?;
    /// assert_eq!(evens.collect::<Vec<_>>(), [0, 2, 4]);
    ///
    /// let too_big = coio::GeneratorBuilder::new()
    ///     .stack_size(coio::MAX_STACK_SIZE + 1)
    ///     .build(|y, ()| y.yield_(1));
    /// assert_eq!(too_big.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn build<F, I, Y, R>(self, f: F) -> io::Result<Generator<I, Y, R>>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'static,
        I: 'static,
        Y: 'static,
        R: 'static,
    {
        let g = Generator::create(self.stack_size, self.policy, f)?;
        if let Some(name) = self.name {
            // The generator owns the name from here on; its address lives in
            // the stack's descriptor (where the overflow report finds it)
            // until the generator is dropped (see `Drop`).
            let name: &'static str = Box::leak(name.into_boxed_str());
            g.raw.stack().set_owner(Some(name), 0);
        }
        Ok(g)
    }
}

/// The initial object written onto a generator's stack.
struct Start<F> {
    f: F,
}

/// Root of every generator's stack; see the module docs.
unsafe extern "C" fn entry<F, I, Y, R>(
    arg: usize,
    obj: *mut u8,
    link: *mut usize,
    order: usize,
) -> !
where
    F: FnOnce(&Yielder<I, Y>, I) -> R,
    I: 'static,
    R: 'static,
{
    // SAFETY: the yielder is the link slot plus markers: it lives in the
    // switch's scratch space for the life of the coroutine, and its only
    // field is written by the switch (through a Cell).
    let yielder: &Yielder<I, Y> = unsafe { &*yielder_at::<I, Y>(link) };
    // Counted until the resumer sees the body end (`send`): the count is
    // read here before the body first switches away, and not after.
    super::frame_begins();
    let out: Result<R, Box<dyn Any + Send>> = {
        // SAFETY: the initial object is our Start<F>; moved out once.
        let f = unsafe { ptr::read(obj.cast::<Start<F>>()) }.f;
        if order == UNWIND {
            catch_unwind(AssertUnwindSafe(move || drop(f)))
                .and_then(|()| Err(Box::new(ForcedUnwind(())) as Box<dyn Any + Send>))
        } else {
            // SAFETY: the first resume sends an I with `transfer::send`.
            let input = unsafe { transfer::receive::<I>(arg) };
            catch_unwind(AssertUnwindSafe(|| f(yielder, input)))
        }
    };
    yielder.check_stack();
    // The result leaves like a yielded value (a primitive in the register);
    // a panic payload by the address of its box. The parent reads either
    // before anything else (the stack stays mapped and is never run again).
    match out {
        Ok(r) => {
            let r = ManuallyDrop::new(r);
            // SAFETY: we are the coroutine, running, with link slot `link`.
            unsafe { arch::finish(transfer::send(&r), RETURNED, link) }
        }
        Err(payload) => {
            let payload = ManuallyDrop::new(payload);
            // SAFETY: as above.
            unsafe {
                arch::finish(
                    &*payload as *const Box<dyn Any + Send> as usize,
                    PANICKED,
                    link,
                )
            }
        }
    }
}

impl<I: 'static, Y: 'static, R: 'static> Generator<I, Y, R> {
    /// Creates a generator with the default settings. Its body runs on the
    /// first [`resume`](Self::resume), which passes the first input.
    ///
    /// ```
    /// use coio::{Generator, GeneratorState};
    ///
    /// // Takes u32s, yields u32s, returns a String.
    /// let mut g = Generator::new(|y, start: u32| {
    ///     let next = y.yield_(start + 1);
    ///     format!("got {next}")
    /// });
    /// assert_eq!(g.resume(1), GeneratorState::Yielded(2));
    /// assert_eq!(g.resume(5), GeneratorState::Complete("got 5".to_string()));
    /// ```
    ///
    /// # Panics
    /// If no stack can be allocated, or the closure does not fit on it
    /// (its size plus 4 KiB exceeds the default stack size); use
    /// [`Generator::builder`] to get an error instead.
    #[inline]
    pub fn new<F>(f: F) -> Self
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'static,
        I: 'static,
    {
        // Scalars rather than a builder value: copying the builder through
        // memory cost a store-forwarding stall on this hot path (measured).
        match Self::create(DEFAULT_STACK_SIZE, StackPolicy::Auto, f) {
            Ok(g) => g,
            Err(e) => panic!("coio: cannot create a generator: {e}"),
        }
    }

    #[inline(always)]
    fn create<F>(stack_size: usize, policy: StackPolicy, f: F) -> io::Result<Self>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'static,
        I: 'static,
    {
        let size = stack::usable_size(stack_size)?;
        if !super::fits_on_stack::<Start<F>>(size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "coio: the generator's closure ({} bytes) does not fit on a stack of {size} bytes; \
                     box it or ask for a larger stack",
                    size_of::<F>(),
                ),
            ));
        }
        let stack = stack::allocate(size, policy)?;
        // SAFETY: `entry::<F, I, Y, R>` takes the Start<F> it is given and
        // ends with `arch::finish`.
        let raw = unsafe { RawCoroutine::new(stack, entry::<F, I, Y, R>, Start { f }) };
        Ok(Generator {
            raw,
            _marker: PhantomData,
        })
    }

    /// Runs the generator until it yields or returns, sending it `input`
    /// (the first input becomes the closure's second argument, later ones are
    /// what `yield_` returns).
    ///
    /// ```
    /// use coio::{Generator, GeneratorState};
    ///
    /// // A running total: each resume sends a number in and gets the sum so far.
    /// let mut acc = Generator::new(|y, mut n: u64| {
    ///     let mut sum = 0;
    ///     while n != 0 {
    ///         sum += n;
    ///         n = y.yield_(sum);
    ///     }
    ///     sum
    /// });
    /// assert_eq!(acc.resume(3), GeneratorState::Yielded(3));
    /// assert_eq!(acc.resume(4), GeneratorState::Yielded(7));
    /// assert_eq!(acc.resume(0), GeneratorState::Complete(7));
    /// ```
    ///
    /// # Panics
    /// If the generator panics, the panic is re-raised here and the
    /// generator is finished. Resuming a finished generator panics, and so
    /// does resuming a suspended one once its thread has begun to exit (from
    /// a thread-local's destructor on a thread of coio's own, see the
    /// [module docs](super), or after coio's own thread-local was destroyed
    /// on another thread): thread-locals its frames use may be destroyed
    /// already.
    ///
    /// # Aborts
    /// If a generator started in a thread-local's destructor, while a
    /// thread of coio's own exits, suspends: its
    /// frames could outlive the thread-locals they borrow (and the thread
    /// has already made sure no other frames are live). Run such
    /// generators to completion.
    #[inline]
    pub fn resume(&mut self, input: I) -> GeneratorState<Y, R> {
        if self.raw.is_finished() {
            resumed_finished();
        }
        if stack::thread_exit_begun() {
            // Out of line: the common path falls through (one load and an
            // untaken branch per resume).
            return self.resume_at_thread_exit(input);
        }
        let input = ManuallyDrop::new(input);
        match self.send(transfer::send(&input), CONTINUE) {
            Out::Yielded(y) => GeneratorState::Yielded(y),
            Out::Complete(r) => GeneratorState::Complete(r),
            Out::Panicked(payload) => resume_unwind(payload),
        }
    }

    /// A resume once the thread has begun to exit (only thread-locals'
    /// destructors run): refused for a suspended generator (see
    /// `resumed_at_thread_exit`). A fresh one runs; on a thread of coio's
    /// own, which promises never to exit under live frames but is past
    /// its last count of them, it must not suspend: the process aborts if
    /// it does (see `suspended_at_thread_exit`).
    #[cold]
    #[inline(never)]
    fn resume_at_thread_exit(&mut self, input: I) -> GeneratorState<Y, R> {
        if self.raw.state() == State::Suspended {
            resumed_at_thread_exit();
        }
        let input = ManuallyDrop::new(input);
        match self.send(transfer::send(&input), CONTINUE) {
            Out::Yielded(y) => {
                if super::thread_owned() {
                    suspended_at_thread_exit();
                }
                GeneratorState::Yielded(y)
            }
            Out::Complete(r) => GeneratorState::Complete(r),
            Out::Panicked(payload) => resume_unwind(payload),
        }
    }

    /// The name given with [`GeneratorBuilder::name`], if any.
    ///
    /// ```
    /// let g = coio::Generator::builder()
    ///     .name("parser")
    ///     .build(|y, ()| y.yield_(1))?;
    /// assert_eq!(g.name(), Some("parser"));
    /// assert_eq!(coio::Generator::new(|y, ()| y.yield_(1)).name(), None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        // SAFETY: a recorded name is owned by this generator until it drops.
        unsafe { self.raw.stack().owner_name() }
    }

    /// Whether the generator has returned (or panicked).
    ///
    /// ```
    /// let mut g = coio::Generator::new(|y, ()| y.yield_(1));
    /// assert_eq!(g.next(), Some(1));
    /// assert!(!g.is_finished());
    /// assert_eq!(g.next(), None); // the body returned
    /// assert!(g.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.raw.is_finished()
    }

    /// Whether the generator has been resumed at least once.
    ///
    /// ```
    /// let mut g = coio::Generator::new(|y, ()| y.yield_("hi"));
    /// assert!(!g.is_started()); // the body has not run yet
    /// assert_eq!(g.next(), Some("hi"));
    /// assert!(g.is_started());
    /// ```
    pub fn is_started(&self) -> bool {
        self.raw.state() != State::Fresh
    }

    /// For measurements (the `stack_use` bench): the deepest extent of the
    /// stack written so far, in bytes from the top, found by scanning up
    /// from the bottom for the first non-zero word. Meaningful only on a
    /// stack that was fresh (never used by an earlier coroutine).
    #[doc(hidden)]
    pub fn stack_high_water(&self) -> usize {
        let stack = self.raw.stack();
        let top = stack.top();
        let mut p = top - stack.size();
        // SAFETY: `p` walks our own stack, mapped and readable, by words.
        while p < top && unsafe { arch::read_word(p) } == 0 {
            p += 8;
        }
        top - p
    }

    /// Usable size of the generator's stack, in bytes.
    ///
    /// ```
    /// let g = coio::Generator::builder()
    ///     .stack_size(64 * 1024)
    ///     .build(|y, ()| y.yield_(1))?;
    /// assert_eq!(g.stack_size(), 64 * 1024);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_size(&self) -> usize {
        self.raw.stack().size()
    }

    /// One round trip: sends `arg` (from `transfer::send` of an input the
    /// caller gave up, or anything with the order [`UNWIND`]) and takes the
    /// answer. The generator must not have finished.
    #[inline(always)]
    fn send(&mut self, arg: usize, order: usize) -> Out<Y, R> {
        // The yield-while-unwinding check, in debug builds (see `yield_`).
        #[cfg(debug_assertions)]
        let was_panicking = std::thread::panicking();
        // SAFETY: the generator has not finished (callers check), is !Send
        // so this is the thread it runs on, and expects such an `arg`.
        let (ret, status) = unsafe { self.raw.resume(arg, order) };
        match status {
            SUSPENDED => {
                #[cfg(debug_assertions)]
                if std::thread::panicking() && !was_panicking {
                    abort_yield_while_panicking();
                }
                // SAFETY: `yield_` sent a Y with `transfer::send`.
                Out::Yielded(unsafe { transfer::receive::<Y>(ret) })
            }
            RETURNED => {
                // The body ended (it began on this thread: `entry`).
                super::frame_ends();
                // SAFETY: the body returned an R sent with
                // `transfer::send`; its slot lies on the finished stack,
                // still mapped.
                Out::Complete(unsafe { transfer::receive::<R>(ret) })
            }
            _ => {
                super::frame_ends();
                // SAFETY: the body panicked and sent the address of the
                // payload's box, on the finished stack, still mapped.
                Out::Panicked(unsafe { ptr::read(ret as *const Box<dyn Any + Send>) })
            }
        }
    }
}

#[cold]
#[inline(never)]
fn resumed_finished() -> ! {
    panic!("coio: resumed a generator that has already finished")
}

/// A suspended generator resumed once its thread has begun to exit (by a
/// thread-local's destructor): its frames may go on using a thread-local
/// destroyed already, so it is not resumed (see `finish_for_drop`, which
/// leaks it then). A fresh one has no frames and runs.
#[cold]
#[inline(never)]
fn resumed_at_thread_exit() -> ! {
    panic!(
        "coio: a suspended generator was resumed while its thread exits (from a \
         thread-local's destructor); its frames may use thread-locals destroyed \
         already. Finish it before the thread ends"
    )
}

/// A generator suspended in a thread-local's destructor while a thread of
/// coio's own exits: its frames may borrow thread-locals destroyed next
/// (and share the borrows with other threads), and the thread has already
/// decided to exit. Aborts, since a panic could be caught and the
/// generator leaked all the same.
#[cold]
#[inline(never)]
fn suspended_at_thread_exit() -> ! {
    note!(
        "coio: a generator suspended in a thread-local's destructor while a thread of coio's \
         own (a runtime worker, a blocking-pool, async-sleep, signal or compat::tokio thread) \
         exits; its frames could outlive the thread-locals they borrow. Aborting. Let \
         generators started in such destructors run to completion"
    );
    std::process::abort()
}

impl Generator<(), (), ()> {
    /// Settings for a new generator (stack size and overflow policy):
    /// `Generator::builder().stack_size(1 << 20).build(|y, input| ...)`.
    ///
    /// ```
    /// let mut g = coio::Generator::builder()
    ///     .stack_size(1 << 20)
    ///     .build(|y, ()| y.yield_(1))?;
    /// assert_eq!(g.next(), Some(1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder() -> GeneratorBuilder {
        GeneratorBuilder::new()
    }
}

impl<I: 'static, Y: 'static, R: 'static> Drop for Generator<I, Y, R> {
    #[inline]
    fn drop(&mut self) {
        /// A name set by the builder is ours to free, and the stack must go
        /// back to the pool without it, also when finishing unwinds (a body
        /// that turns the forced unwind into a panic, a captured value whose
        /// drop panics: the next generator on the stack reported the name,
        /// and freed it); a leaked (unfinished) generator keeps both.
        struct FreeName<'g, I: 'static, Y: 'static, R: 'static>(&'g mut Generator<I, Y, R>);
        impl<I: 'static, Y: 'static, R: 'static> Drop for FreeName<'_, I, Y, R> {
            #[inline]
            fn drop(&mut self) {
                if self.0.raw.is_finished() && self.0.raw.stack().has_owner_name() {
                    self.0.free_name();
                }
            }
        }
        let g = FreeName(self);
        // Finished: only the stack goes back to the pool (the raw
        // coroutine's drop). Otherwise finish it first.
        if !g.0.raw.is_finished() {
            g.0.finish_for_drop();
        }
    }
}

impl<I: 'static, Y: 'static, R: 'static> Generator<I, Y, R> {
    /// Finishes an unfinished generator by resuming it with the order to
    /// unwind: a fresh one drops its closure, a suspended one unwinds its
    /// stack (repeated if the body caught the unwind and suspended again).
    #[cold]
    #[inline(never)]
    fn free_name(&mut self) {
        // SAFETY: a recorded name is the one `build` leaked for us.
        let name: Option<&'static str> = unsafe { self.raw.stack().owner_name() };
        if let Some(name) = name {
            self.raw.stack().set_owner(None, 0);
            // SAFETY: `name` came from Box::leak in `build`; nothing else
            // refers to it now that the descriptor is cleared.
            drop(unsafe { Box::from_raw(name as *const str as *mut str) });
        }
    }

    #[cold]
    #[inline(never)]
    fn finish_for_drop(&mut self) {
        // A fresh generator has no frames: finishing it only drops its
        // closure, which is always possible. A suspended one is unwound,
        // except when that cannot be done safely; it is then leaked (the
        // raw coroutine leaks its stack, and nothing on it is dropped):
        // - at thread exit, where the thread-locals its frames use may be
        //   gone already (see the thread-local rule in the module docs);
        // - when panics abort (`panic = "abort"`): there is no unwinding.
        if self.raw.state() == State::Suspended
            && (cfg!(panic = "abort") || stack::thread_exiting())
        {
            return;
        }
        while !self.raw.is_finished() {
            match self.send(0, UNWIND) {
                Out::Yielded(y) => drop(y),
                Out::Complete(r) => drop(r),
                Out::Panicked(payload) => {
                    if !payload.is::<ForcedUnwind>() && !std::thread::panicking() {
                        resume_unwind(payload);
                    }
                }
            }
        }
    }
}

impl<Y: 'static, R: 'static> Iterator for Generator<(), Y, R> {
    type Item = Y;

    /// Resumes the generator; `None` once it has returned.
    fn next(&mut self) -> Option<Y> {
        if self.is_finished() {
            return None;
        }
        match self.resume(()) {
            GeneratorState::Yielded(y) => Some(y),
            GeneratorState::Complete(_) => None,
        }
    }
}

impl<I: 'static, Y: 'static, R: 'static> fmt::Debug for Generator<I, Y, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("state", &self.raw.state())
            .field("name", &self.name())
            .field("stack_size", &self.stack_size())
            .finish()
    }
}
