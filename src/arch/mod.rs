//! Architecture-specific code: the context switch and the first frame of a
//! new stack. One file per architecture, all with the same items:
//!
//! * `init_stack(top, entry, obj) -> sp`: lay out a fresh context;
//! * `resume(arg, order, sp, link) -> (arg, sp)`: enter a suspended context;
//! * `suspend(arg, link) -> (arg, order)`: leave the running coroutine, keeping it;
//! * `finish(arg, link) -> !`: leave the running coroutine for good;
//! * `is_fresh(sp)`, `link_slot(top)`, `stack_pointer()`, `read_word(addr)`, `SCRATCH`, `STACK_ALIGN`.
//!
//! Only x86_64 with the System V ABI exists today; another architecture is a
//! new file with these items and a line below.

#[cfg(all(target_arch = "x86_64", unix))]
mod x86_64;
#[cfg(all(target_arch = "x86_64", unix))]
pub(crate) use x86_64::*;

#[cfg(not(all(target_arch = "x86_64", unix)))]
compile_error!(
    "coio supports x86_64 with the System V ABI (Linux) only; other targets need a `src/arch` port"
);

/// Tells valgrind's memcheck that the kernel initialised `len` bytes at
/// `ptr` in a way it cannot see (an io_uring completion); nothing natively.
#[inline(always)]
pub(crate) fn valgrind_defined(ptr: *const u8, len: usize) {
    // VG_USERREQ__MAKE_MEM_DEFINED: memcheck's tool base ('M', 'C') + 2.
    valgrind_request(0, 0x4d43_0002, [ptr as usize, len, 0, 0, 0]);
}

/// Whether the process runs under valgrind (`RUNNING_ON_VALGRIND`; false
/// natively, at the cost of the few instructions of a client request).
#[inline]
pub(crate) fn running_on_valgrind() -> bool {
    // VG_USERREQ__RUNNING_ON_VALGRIND
    valgrind_request(0, 0x1001, [0; 5]) != 0
}

/// Executes the valgrind client request `request` with up to five arguments
/// and returns its result, or `default` when not running under valgrind (the
/// magic instruction sequence is then a no-op). The sequence and request
/// numbers are valgrind's documented client-request ABI for amd64.
#[inline(always)]
pub(crate) fn valgrind_request(default: usize, request: usize, args: [usize; 5]) -> usize {
    let block: [usize; 6] = [request, args[0], args[1], args[2], args[3], args[4]];
    let result: usize;
    // SAFETY: natively the sequence changes nothing: the four rotations of
    // rdi add up to 128 bits, `xchg rbx, rbx` is a no-op, and rdx keeps
    // `default`. Under valgrind the request reads `block` (alive across the
    // asm) and writes its result to rdx. No stack is used.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") default => result,
            in("rax") block.as_ptr(),
            inout("rdi") 0usize => _,
            options(nostack),
        );
    }
    result
}
