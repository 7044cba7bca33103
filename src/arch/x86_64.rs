//! The x86_64 System V context switch.
//!
//! # Model
//!
//! A suspended context is nothing but a stack pointer: everything needed to
//! continue it was pushed onto its own stack before it let go of the CPU.
//! Switching is split into two halves that always come in pairs, so that every
//! switch saves the current context and restores another in one step (there is
//! no bare "save" or "load": jumping to a stale context is impossible to
//! express):
//!
//! * [`resume`] runs on the parent (whoever drives the coroutine). It enters
//!   the coroutine with a `call`, so the return address of the parent sits on
//!   the parent's stack exactly as for an ordinary function call.
//! * [`suspend`] and [`finish`] run on the coroutine. They go back to the
//!   parent with a `ret`, which pops that very return address.
//! * [`transfer`] runs on a coroutine too: it saves it like `suspend` and
//!   enters another coroutine of the same parent as `resume` would, reusing
//!   the parent's pending return address (whichever coroutine goes back
//!   last pops it).
//!
//! Every `call` is thus matched by one `ret`, and the CPU's return-address
//! predictor stays balanced: a round trip costs two correctly predicted
//! branches and a handful of pushes and pops.
//!
//! Each half carries one machine word across (`rdi`). `resume` also passes
//! an *order* word (`rcx`, untouched by the switch, so it arrives as it was
//! set) that the coroutine layer uses to say "unwind" without a store to
//! memory, and learns the coroutine's new stack pointer (`rsi`; once the
//! coroutine has finished, a status of 0 or 1 instead).
//!
//! # What is saved
//!
//! The System V ABI makes `rbx`, `rbp`, `r12`–`r15`, `rsp`, the MXCSR control
//! bits and the x87 control word callee-saved. The switches are inline
//! assembly, so the compiler is told that `r12`–`r15` and every caller-saved
//! register are clobbered and spills only the ones that are live at that
//! point, often none. `rbx` and `rbp` cannot be named as clobbers (LLVM
//! reserves them), so the assembly pushes them itself. MXCSR and the x87
//! control word are deliberately *not* saved: they are per-thread settings
//! that Rust code never changes, saving them costs a serialising
//! `stmxcsr`/`ldmxcsr` pair on every switch, and since a started coroutine
//! never changes thread (see the runtime) they describe the thread, not the
//! coroutine. Code that changes them must restore them before it suspends.
//!
//! # Stack layout
//!
//! ```text
//!  top ─────────► ┌──────────────────────────┐  (16-byte aligned)
//!       top - 8   │ entry function           │  read once by the trampoline
//!       top - 16  │ link                     │  parent's stack pointer while running
//!       top - 48  │ scratch (32 bytes)       │  free for the coroutine layer
//!                 ├──────────────────────────┤
//!                 │ initial object (closure) │  16-byte aligned
//!  initial sp ──► │ address of `trampoline`  │  "resume address" of a fresh stack
//!                 └──────────────────────────┘
//! ```
//!
//! A suspended stack (after [`suspend`]) holds, from its stack pointer up:
//! the resume address, the saved `rbx`, the saved `rbp`.
//!
//! While the coroutine runs, the *link* slot holds the parent's stack
//! pointer, and at that address the parent's stack holds, upwards: the
//! parent's `rbp`, the return address into [`resume`], the parent's `rbx`.
//! That is all the unwinder needs to step from the coroutine's outermost
//! frame (the trampoline) into the parent, see the CFI of [`trampoline`].

use core::arch::{asm, naked_asm};
use core::mem::{align_of, size_of};

/// Required alignment of a stack top.
pub const STACK_ALIGN: usize = 16;

/// Bytes right below the link slot that [`init_stack`] leaves free for the
/// coroutine layer. It keeps a structure there whose last word *is* the link
/// slot, so that the code of a coroutine finds its link at a constant offset
/// from a pointer it already holds in a register, instead of loading it:
/// that load would sit on the critical path of every switch.
pub const SCRATCH: usize = 32;

/// Signature of a coroutine's entry function, called by the trampoline on the
/// coroutine's stack with the word passed to the first [`resume`], a pointer
/// to the initial object, the address of the link slot and the order word of
/// that resume. It must never return: it ends with [`finish`].
pub type EntryFn =
    unsafe extern "C" fn(arg: usize, obj: *mut u8, link: *mut usize, order: usize) -> !;

/// The first code a new stack runs, entered through the `call` in
/// [`resume`] with `rdi` = argument, `rsi` = address of the link slot,
/// `rcx` = order (passed through untouched),
/// `rdx` = initial stack pointer (pointing at this function's address, with
/// the initial object right above it).
///
/// Its call frame information is what makes backtraces cross from the
/// coroutine into the parent: the canonical frame address of this frame is
/// computed from the link slot (`rbp` keeps its address for the life of the
/// coroutine, and `rbp` is callee-saved, so the unwinder recovers it for this
/// frame from the frames below). From `CFA = [link] + 24` the parent's
/// `rbx`, return address and `rbp` sit at `CFA - 8`, `CFA - 16` and
/// `CFA - 24`, and the parent's stack pointer is the CFA itself, which is
/// exactly the value the parent's own CFI expects at its return address.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() {
    naked_asm!(
        ".cfi_startproc",
        // Still on the parent's stack, just called: the CIE's default rule
        // (CFA = rsp + 8, return address at CFA - 8) is right here.
        //
        // Save the parent's frame pointer next to the return address, which
        // gives the parent's stack the same shape as after `suspend`.
        "push rbp",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_offset rbp, -16",
        // Publish the parent's stack pointer in the link slot.
        "mov [rsi], rsp",
        // rbp = link slot address, for the rest of this frame's life.
        "mov rbp, rsi",
        // From here on: CFA = [rbp] + 24, i.e. DW_CFA_def_cfa_expression,
        // 5 bytes: DW_OP_breg6 (rbp) 0, DW_OP_deref, DW_OP_plus_uconst 24.
        ".cfi_escape 0x0f, 5, 0x76, 0x00, 0x06, 0x23, 0x18",
        ".cfi_offset rbx, -8",
        ".cfi_offset rip, -16",
        ".cfi_offset rbp, -24",
        // Move onto the coroutine's stack, past the resume address: rsp now
        // points at the 16-byte aligned initial object.
        "lea rsp, [rdx + 8]",
        // entry(arg = rdi, obj = rsp, link = rbp, order = rcx as passed)
        "mov rsi, rsp",
        "mov rdx, rbp",
        // A return address inside this function, so that an unwinder standing
        // in the entry function finds this FDE for the next frame up. The
        // push also gives the entry function the alignment of a real call
        // (rsp + 8 is 16-byte aligned on its first instruction).
        "lea rax, [rip + 2f]",
        "push rax",
        // The entry function's address is stored right above the link slot.
        "jmp [rbp + 8]",
        // Never reached: entry functions end with `finish`.
        "2:",
        "ud2",
        ".cfi_endproc",
    )
}

/// Writes the initial frame for a coroutine onto the stack ending at `top`
/// and returns its initial stack pointer. The first [`resume`] of it calls
/// `entry(arg, obj, link, order)` where `obj` points at the moved `obj`.
///
/// # Safety
/// `top` must be 16-byte aligned and the end of a writable region large
/// enough for the reserved words, `obj` and the coroutine's frames. The
/// object is owned by the stack from now on: it must be read out exactly once
/// (by `entry`).
#[inline(always)]
pub unsafe fn init_stack<T>(top: *mut u8, entry: EntryFn, obj: T) -> *mut u8 {
    debug_assert_eq!(top as usize % STACK_ALIGN, 0);
    let link = top.wrapping_sub(16);
    let align = if align_of::<T>() > STACK_ALIGN {
        align_of::<T>()
    } else {
        STACK_ALIGN
    };
    let obj_at = (link as usize - SCRATCH - size_of::<T>()) & !(align - 1);
    let sp = obj_at - 8;
    // SAFETY: all three writes land between `sp` and `top`, inside the
    // caller's writable stack; every address is aligned for its type.
    unsafe {
        // (The link slot is written by the trampoline before anything reads
        // it.)
        top.wrapping_sub(8).cast::<usize>().write(entry as usize);
        (obj_at as *mut T).write(obj);
        (sp as *mut usize).write(trampoline as *const () as usize);
    }
    sp as *mut u8
}

/// Whether the context `sp` has never been resumed (it still starts at the
/// trampoline).
///
/// # Safety
/// `sp` must be a context made by [`init_stack`] or returned by [`resume`].
#[inline(always)]
pub unsafe fn is_fresh(sp: *mut u8) -> bool {
    // SAFETY: the first word of a saved context is its resume address.
    unsafe { sp.cast::<usize>().read() == trampoline as *const () as usize }
}

/// The address of the trampoline: a return address just past it is the
/// outermost frame of a coroutine (where a stack walk ends, `trace`).
#[inline]
pub fn trampoline_address() -> usize {
    trampoline as *const () as usize
}

/// The current stack pointer.
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads rsp into a register; no memory, stack or flags touched.
    unsafe { asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// Reads the machine word at `addr` as the CPU sees it, for scanning stack
/// memory whose bytes Rust may consider uninitialised (a plain read would
/// turn them into an integer, which is undefined behaviour; an `asm!` load
/// yields an ordinary, initialised value).
///
/// # Safety
/// `addr` must be 8-byte aligned, mapped and readable.
#[inline(always)]
pub unsafe fn read_word(addr: usize) -> usize {
    let value: usize;
    // SAFETY: an 8-byte load from readable memory (caller's guarantee); no
    // stack, no flags, no writes.
    unsafe {
        asm!("mov {}, [{}]", out(reg) value, in(reg) addr, options(readonly, nostack, preserves_flags))
    };
    value
}

/// Address of the link slot of the stack ending at `top`.
#[inline(always)]
pub fn link_slot(top: *mut u8) -> *mut usize {
    top.wrapping_sub(16).cast()
}

/// Assembly that saves the running coroutine's context on its own stack:
/// its `rbp`, its `rbx`, then the address to resume at (the local label `2`,
/// which the same `asm!` must define with `resumed!`). The stack pointer
/// is then the context's handle. `suspend` and `transfer` both save with
/// it, so that `resume` (and `transfer`) can continue either kind.
macro_rules! save_context {
    () => {
        concat!(
            "push rbp\n",
            "push rbx\n",
            "lea rax, [rip + 2f]\n",
            "push rax\n",
        )
    };
}

/// Assembly where a context saved by `save_context!` continues. It is
/// entered by `resume`'s `call` (or by `transfer`, in the same state): rdi =
/// arg, rsi = the link slot, rdx = the context, rcx = order, on the
/// parent's stack right after the parent's `call`. The same steps as the
/// trampoline: save the parent's `rbp` next to its return address, publish
/// the parent's stack pointer in the link slot, move back onto our own
/// stack past the resume address, and restore `rbx` and `rbp`.
macro_rules! resumed {
    () => {
        concat!(
            "2:\n",
            "push rbp\n",
            "mov [rsi], rsp\n",
            "lea rsp, [rdx + 8]\n",
            "pop rbx\n",
            "pop rbp\n",
        )
    };
}

/// Switches from the current context into the suspended context `sp`,
/// passing `arg` and `order`. Returns when the coroutine suspends or
/// finishes, with the word it passed and its new stack pointer, or, once it
/// has finished, the status it gave [`finish`] (0 or 1).
///
/// # Safety
/// `sp` must be the stack pointer of a context made by [`init_stack`] or
/// returned by an earlier `resume`, never resumed since, whose stack has the
/// link slot `link`.
#[inline(always)]
pub unsafe fn resume(arg: usize, order: usize, sp: *mut u8, link: *mut usize) -> (usize, *mut u8) {
    let ret: usize;
    let new_sp: *mut u8;
    // SAFETY: the caller guarantees `sp` is a live suspended context. The
    // block saves rbx itself, declares every other register it (or the
    // coroutine) may change as clobbered, and returns here through the `ret`
    // of `suspend`/`finish` with rsp restored to its value before the `call`.
    unsafe {
        asm!(
            // rbx is reserved by LLVM and may hold a live value: keep it on our
            // stack, where the trampoline's CFI also expects it.
            "push rbx",
            // Push the return address and jump to the coroutine's resume
            // address (the first word of its saved context).
            "call [rdx]",
            // The coroutine suspended or finished: rsp is back to where the
            // `call` left it.
            "pop rbx",
            inlateout("rdi") arg => ret,
            inlateout("rsi") link => new_sp,
            in("rdx") sp,
            inlateout("rcx") order => _,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    (ret, new_sp)
}

/// Suspends the running coroutine, passing `arg` to its parent (whose
/// `resume` returns). Returns the word and the order passed by the next
/// `resume`.
///
/// # Safety
/// Must run on the coroutine's own stack, while it is running, with `link`
/// its link slot.
#[inline(always)]
pub unsafe fn suspend(arg: usize, link: *mut usize) -> (usize, usize) {
    let ret: usize;
    let order: usize;
    // SAFETY: the caller guarantees we are on the coroutine's stack and that
    // the link slot holds the parent's live context. Everything we need when
    // we are resumed is saved on our stack; the clobbers cover the rest.
    unsafe {
        asm!(
            save_context!(),
            // Our stack pointer is the handle of the suspended context; the
            // parent receives it in rsi.
            "mov rsi, rsp",
            // Switch to the parent, restore its rbp and return into its
            // `call [rdx]`.
            "mov rsp, [rdx]",
            "pop rbp",
            "ret",
            resumed!(),
            inlateout("rdi") arg => ret,
            in("rdx") link,
            lateout("rcx") order,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    (ret, order)
}

/// Switches from the running coroutine straight into another suspended
/// coroutine of the same parent, as if the first had suspended and the
/// parent had resumed the second at once, without running the parent:
/// the running coroutine's context is saved and its stack pointer written
/// to `*save_to`; the parent's context (in `from_link`) becomes the second
/// one's link (written by its resume path, exactly as after a `resume`);
/// the second one gets `arg` and `order`. When the second coroutine later
/// suspends or finishes, the parent's pending `resume` returns with *its*
/// stack pointer or status: the parent must know who runs (the scheduler
/// keeps track).
///
/// The return address the parent's `call` pushed stays where it is and is
/// reused by whichever coroutine goes back last, so calls and returns stay
/// paired. Returns the word and order of whoever resumes this coroutine
/// later (a `resume`, or another `transfer`).
///
/// # Safety
/// Must run on the running coroutine's own stack, with `from_link` its link
/// slot (holding the parent's live context). `to_sp` must be a suspended
/// context (made by [`init_stack`] or saved by [`suspend`]/`transfer`)
/// whose link slot is `to_link`, never resumed since, and not this
/// coroutine. `save_to` must be valid for a write and read back as this
/// coroutine's context by whoever resumes it.
#[inline(always)]
pub unsafe fn transfer(
    arg: usize,
    order: usize,
    save_to: *mut *mut u8,
    to_sp: *mut u8,
    to_link: *mut usize,
    from_link: *mut usize,
) -> (usize, usize) {
    let ret: usize;
    let order_in: usize;
    // SAFETY: the caller guarantees the contexts are live and distinct. Our
    // context is saved exactly as `suspend` saves it (so both `resume` and
    // `transfer` can continue it), and the target is entered in exactly the
    // state `resume` enters it in: on the parent's stack right after its
    // `call`, with the parent's rbp in rbp.
    unsafe {
        asm!(
            save_context!(),
            "mov [r8], rsp",
            // Onto the parent's stack: restore its rbp; rsp then points at
            // the return address of its `call`, as right after that call.
            "mov rsp, [r9]",
            "pop rbp",
            // Enter the target like `resume` does: rdi = arg, rsi = its link
            // slot, rdx = its context, rcx = order.
            "jmp [rdx]",
            resumed!(),
            inlateout("rdi") arg => ret,
            inlateout("rsi") to_link => _,
            inlateout("rdx") to_sp => _,
            inlateout("rcx") order => order_in,
            inlateout("r8") save_to => _,
            inlateout("r9") from_link => _,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    (ret, order_in)
}

/// Leaves the running coroutine for good, passing `arg` to its parent, whose
/// `resume` returns `status` (0 or 1, never a stack pointer: the coroutine
/// layer's "returned" or "panicked") in place of a stack pointer. Nothing on
/// the coroutine's stack is dropped; the memory stays valid until the stack
/// is freed, so the parent may still read `arg` if it points there.
///
/// # Safety
/// Same as [`suspend`]; the coroutine must never be resumed again; `status`
/// must be 0 or 1.
#[inline(always)]
pub unsafe fn finish(arg: usize, status: usize, link: *mut usize) -> ! {
    // SAFETY: the link slot holds the parent's live context (caller's
    // guarantee); restoring rsp/rbp and returning into its `call` is exactly
    // what `suspend` does minus saving our own context.
    unsafe {
        asm!(
            "mov rsp, [rdx]",
            "pop rbp",
            "ret",
            in("rdi") arg,
            in("rsi") status,
            in("rdx") link,
            options(noreturn),
        );
    }
}
