//! Stack traces of coroutines that are not running, or not running here:
//! walking a stack from a saved context or from a signal's registers, and
//! naming the addresses found.
//!
//! This layer knows stacks and registers, nothing of coroutines beyond the
//! shape the context switch leaves on a suspended stack (`arch`): the
//! runtime's dump (`runtime::dump`) decides what to walk and when.
//!
//! # Walking (`walk_*`)
//!
//! Release builds keep no frame pointers, so a walk follows the unwind
//! tables (`.eh_frame`, which every Rust binary has, for panics) with
//! `framehop`. The modules (the executable, its shared libraries, the
//! vDSO) are found once per dump with `dl_iterate_phdr`, and their tables
//! are used where they are mapped: no file is read, nothing is copied.
//!
//! A walk allocates nothing, takes no lock and calls no libc function: it
//! reads the walked stack's words, each checked against the stack's
//! bounds first, and the mapped tables. That makes it safe in a signal
//! handler (the capture of a running coroutine: `runtime::dump`), given an
//! [`Unwinder`] and a [`Cache`] built beforehand.
//!
//! A suspended coroutine's stack holds, from its saved stack pointer up,
//! the resume address, the saved `rbx` and the saved `rbp` (see `arch`):
//! the walk starts there as if at that address with `rsp` 24 bytes higher,
//! which is the state the compiler's unwind info describes at that point.
//! Every walk stops at the coroutine's outermost frame: the return address
//! into `arch`'s trampoline.
//!
//! # Naming (`Symbolizer`)
//!
//! Addresses are named with `addr2line`: function names (inlined frames
//! included) and `file:line` from the DWARF line tables where the build
//! kept them (`debug = "line-tables-only"` or more), else the ELF symbol
//! table's name alone. Each distinct address is looked up once and kept,
//! across dumps: a dump of 100,000 coroutines parked at a few hundred
//! distinct places names a few hundred addresses.

mod modules;
mod symbolize;

pub(crate) use modules::Unwinder;
pub(crate) use symbolize::{Sym, Symbolizer};

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64};
use framehop::{FrameAddress, MustNotAllocateDuringUnwind};

/// framehop's cache of unwind rules (one per walking thread).
pub(crate) type Cache = CacheX86_64<MustNotAllocateDuringUnwind>;

/// A new cache (allocates: build it before a signal-context walk).
pub(crate) fn new_cache() -> Box<Cache> {
    Box::new(Cache::new_in())
}

/// Whether the return address `ra` is the one into the trampoline that
/// starts every coroutine (the end of its stack). The trampoline is 30
/// bytes long and its only call returns to its last instruction but one.
#[inline]
fn is_trampoline_return(ra: u64) -> bool {
    let t = crate::arch::trampoline_address() as u64;
    ra > t && ra - t < 32
}

/// Memory a walk may read: one stack, `[lo, hi)`.
#[derive(Clone, Copy)]
struct Bounds {
    lo: u64,
    hi: u64,
}

impl Bounds {
    #[inline(always)]
    fn read(self, addr: u64) -> Result<u64, ()> {
        if addr.is_multiple_of(8) && addr >= self.lo && addr.wrapping_add(8) <= self.hi {
            // SAFETY: aligned, inside the stack the caller vouched for
            // (mapped, and not changing while it is walked). Read as the
            // CPU sees it: stack words may be uninitialised to Rust.
            Ok(unsafe { crate::arch::read_word(addr as usize) } as u64)
        } else {
            Err(())
        }
    }
}

/// How a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// At the coroutine's outermost frame: the whole stack is there.
    Complete,
    /// `out` was full.
    Truncated,
    /// The unwind info or the stack's contents did not allow going on.
    Lost,
}

/// Walks from `addr` with `regs`, reading within `bounds`, into `out`
/// (lookup addresses: the pc of the innermost frame, return address - 1
/// for the others, which falls in the call instruction). Returns how many
/// were written and how the walk ended.
fn walk(
    unwinder: &Unwinder,
    cache: &mut Cache,
    mut addr: FrameAddress,
    mut regs: UnwindRegsX86_64,
    bounds: Bounds,
    out: &mut [u64],
) -> (usize, End) {
    let mut read = |a: u64| bounds.read(a);
    let mut n = 0;
    loop {
        if n == out.len() {
            return (n, End::Truncated);
        }
        out[n] = addr.address_for_lookup();
        n += 1;
        match unwinder.unwind_frame(addr, &mut regs, cache, &mut read) {
            Ok(Some(ra)) if is_trampoline_return(ra) => return (n, End::Complete),
            Ok(Some(ra)) => match FrameAddress::from_return_address(ra) {
                Some(a) => addr = a,
                None => return (n, End::Lost),
            },
            Ok(None) | Err(_) => return (n, End::Lost),
        }
    }
}

/// Walks a suspended stack whose saved context is `sp` and whose frames
/// lie in `[sp, top)`.
///
/// # Safety
/// `[sp, top)` must stay mapped and unchanged during the call (the
/// coroutine is suspended and cannot be resumed meanwhile).
pub(crate) unsafe fn walk_suspended(
    unwinder: &Unwinder,
    cache: &mut Cache,
    sp: u64,
    top: u64,
    out: &mut [u64],
) -> (usize, End) {
    let bounds = Bounds { lo: sp, hi: top };
    let (Ok(pc), Ok(bp)) = (bounds.read(sp), bounds.read(sp + 16)) else {
        return (0, End::Lost);
    };
    let regs = UnwindRegsX86_64::new(pc, sp + 24, bp);
    walk(
        unwinder,
        cache,
        FrameAddress::from_instruction_pointer(pc),
        regs,
        bounds,
        out,
    )
}

/// Walks a stack interrupted at `pc` with stack pointer `sp` and frame
/// register `bp` (a signal's registers; with `from_call`, [`caller_regs`]'
/// three, `pc` being a return address), whose frames lie in `[sp, top)`.
///
/// # Safety
/// `[sp, top)` must stay mapped and unchanged during the call (the code
/// that runs on it is interrupted, or waits for this call).
pub(crate) unsafe fn walk_from(
    unwinder: &Unwinder,
    cache: &mut Cache,
    (pc, sp, bp): (u64, u64, u64),
    from_call: bool,
    top: u64,
    out: &mut [u64],
) -> (usize, End) {
    let regs = UnwindRegsX86_64::new(pc, sp, bp);
    let addr = if from_call {
        match FrameAddress::from_return_address(pc) {
            Some(a) => a,
            None => return (0, End::Lost),
        }
    } else {
        FrameAddress::from_instruction_pointer(pc)
    };
    walk(unwinder, cache, addr, regs, Bounds { lo: sp, hi: top }, out)
}

/// The caller's registers as a walk from its frame needs them:
/// `[return address, stack pointer after the return, rbp]`, that is the
/// state of the caller's frame at its call of this function. A walk
/// from them (with `from_call`) is valid as long as the caller has not
/// returned: its frame and the ones above are unchanged, whatever it calls
/// meanwhile (on this stack or another).
///
/// # Safety
/// `out` must be valid for writing three words.
// SAFETY (of the naked body): it follows the C ABI (`out` in `rdi`, `rax`
// caller-saved, `rsp` and `rbp` untouched) and writes only `out`.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn caller_regs(out: *mut [u64; 3]) {
    std::arch::naked_asm!(
        // The return address, on top of the stack at entry.
        "mov rax, [rsp]",
        "mov [rdi], rax",
        // The caller's stack pointer once the call has returned.
        "lea rax, [rsp + 8]",
        "mov [rdi + 8], rax",
        // rbp is callee-saved and untouched here: the caller's.
        "mov [rdi + 16], rbp",
        "ret",
    )
}
