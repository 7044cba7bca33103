//! Failures that must abort the process with a clear message: stack
//! overflow (guarded and canary stacks) and yielding while unwinding. Each
//! case runs in a child process (this test binary, re-executed with
//! `COIO_ABORT_CASE` set), whose stderr and exit signal are checked.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use coio::{Generator, StackPolicy, Yielder};

const CASE: &str = "COIO_ABORT_CASE";

/// Recurses with frames of a few hundred bytes until `depth_bytes` below
/// `start`, then (if `yield_there`) yields from that depth.
#[inline(never)]
fn dig(y: &Yielder<(), ()>, start: usize, depth_bytes: usize, yield_there: bool) -> u64 {
    let frame = black_box([0xA5u8; 256]);
    let here = &frame as *const _ as usize;
    if start - here >= depth_bytes {
        if yield_there {
            y.yield_(());
        }
        return frame[7] as u64;
    }
    dig(y, start, depth_bytes, yield_there) + black_box(frame)[100] as u64
}

fn overflow(policy: StackPolicy, yield_at_bottom: bool) {
    overflow_named(policy, yield_at_bottom, None)
}

fn overflow_named(policy: StackPolicy, yield_at_bottom: bool, name: Option<&str>) {
    let mut builder = Generator::builder().stack_policy(policy);
    if let Some(name) = name {
        builder = builder.name(name);
    }
    let mut g = builder
        .build(move |y, ()| {
            // The yielder lives a few dozen bytes below the stack's top.
            let start = y as *const Yielder<(), ()> as usize;
            // Past the bottom (the guarded stack faults on the way), but within
            // the page of no-man's-land below a canary stack, leaving room in it
            // for the frames of the (debug build) report when yielding there; a
            // little deeper when not, so that the frames over the canary words
            // are ones that wrote all of their slots (the deepest one leaves the
            // copy it makes after its recursive call unwritten).
            let depth = coio::DEFAULT_STACK_SIZE + if yield_at_bottom { 256 } else { 1024 };
            let r = dig(y, start, depth, yield_at_bottom);
            y.yield_(());
            black_box(r);
        })
        .unwrap();
    g.resume(());
    g.resume(());
    unreachable!("the overflow went unnoticed");
}

/// A thread made with pthread_create directly has no alternate signal stack
/// (std gives one only to the threads it starts): coio must add one.
fn overflow_on_a_bare_pthread() {
    extern "C" fn body(_: *mut libc::c_void) -> *mut libc::c_void {
        overflow(StackPolicy::Guarded, false);
        std::ptr::null_mut()
    }
    // SAFETY: a zeroed pthread_t is a valid out-parameter; `body` has the
    // signature pthread_create expects and never returns.
    unsafe {
        let mut thread: libc::pthread_t = std::mem::zeroed();
        assert_eq!(
            libc::pthread_create(&mut thread, std::ptr::null(), body, std::ptr::null_mut()),
            0
        );
        libc::pthread_join(thread, std::ptr::null_mut());
    }
}

/// A frame bigger than a page on a small canary stack: it skips the canary
/// words and returns without yielding, so only hardware protection of the
/// no-man's-land (userfaultfd write protection) can catch it.
fn canary_large_frame() {
    #[inline(never)]
    fn big() -> u8 {
        let mut a = [0x41u8; 40 * 1024];
        black_box(&mut a);
        a[7]
    }
    let mut g = Generator::builder()
        .stack_size(16 * 1024)
        .stack_policy(StackPolicy::Canary)
        .build(|_: &Yielder<(), u32>, ()| black_box(big()) as u32)
        .unwrap();
    g.resume(());
    unreachable!("the overflow went unnoticed");
}

/// Fork with live canary generators: the child runs the inherited ones,
/// drops them, and makes new slabs of several sizes; then the parent goes on
/// with its own. A child must never protect pages of its parent (a
/// userfaultfd acts on the process that opened it).
fn fork_with_canary_stacks() {
    type G = Generator<(), u64, u64>;
    fn make(size: usize) -> G {
        Generator::builder()
            .stack_size(size)
            .stack_policy(StackPolicy::Canary)
            .build(|y: &Yielder<(), u64>, ()| {
                let mut a = [0u8; 8000];
                a[7] = 1;
                black_box(&mut a);
                let mut s = 0;
                for i in 0..3 {
                    y.yield_(i + a[7] as u64);
                    s += i;
                }
                s
            })
            .unwrap()
    }
    fn drive(gens: &mut [G]) {
        for g in gens.iter_mut() {
            while let coio::GeneratorState::Yielded(_) = g.resume(()) {}
        }
    }
    let mut parent: Vec<G> = (0..3000).map(|_| make(128 << 10)).collect();
    for g in parent.iter_mut().take(1500) {
        g.resume(());
    }
    let mut heap = vec![1u8; 32 << 20];
    // SAFETY: fork in a process with one thread (the harness runs this case
    // alone); the child only runs coio code and then _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drive(&mut parent);
        drop(parent);
        drop(heap);
        for size in [128 << 10, 64 << 10, 16 << 10] {
            let mut v: Vec<G> = (0..3000).map(|_| make(size)).collect();
            drive(&mut v);
        }
        // SAFETY: leave the child without running the parent's exit code.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child we just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(status, 0, "the child failed");
    heap.iter_mut().for_each(|b| *b = b.wrapping_add(1));
    black_box(&heap);
    drive(&mut parent);
    drop(parent);
    for size in [128 << 10, 64 << 10, 16 << 10] {
        let mut v: Vec<G> = (0..3000).map(|_| make(size)).collect();
        drive(&mut v);
    }
    println!("fork case completed");
}

fn yield_while_unwinding() {
    struct YieldOnDrop<'a>(&'a Yielder<(), ()>);
    impl Drop for YieldOnDrop<'_> {
        fn drop(&mut self) {
            self.0.yield_(());
        }
    }
    let mut g = Generator::new(|y: &Yielder<(), ()>, ()| {
        let _guard = YieldOnDrop(y);
        panic!("unwinding through a destructor that yields");
    });
    let _ = g.resume(());
    unreachable!("yield while unwinding was allowed");
}

fn segfault_outside_coroutines() {
    // Make sure coio's handler is installed, then fault on a plain address.
    let mut g = Generator::new(|y: &Yielder<(), ()>, ()| y.yield_(()));
    g.resume(());
    // SAFETY: deliberately faulting: address 16 is never mapped.
    unsafe { std::ptr::read_volatile(std::ptr::without_provenance::<u64>(16)) };
    unreachable!("the fault was swallowed");
}

/// Runs `case` in a child process; returns its stderr after checking that
/// it died of SIGABRT.
fn run_child(case: &str) -> String {
    run_child_expecting(case, libc::SIGABRT)
}

/// Runs `case` in a child process (this test binary, re-executed with only
/// the `child` test) and returns its output.
fn spawn_child(case: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .output()
        .expect("re-running the test binary")
}

fn run_child_expecting(case: &str, signal: i32) -> String {
    let out = spawn_child(case);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.signal(),
        Some(signal),
        "case {case}: expected signal {signal}, got {:?}; stderr:\n{stderr}",
        out.status
    );
    stderr
}

/// The entry point of the child processes (a no-op in the normal run).
#[test]
fn child() {
    match std::env::var(CASE).as_deref() {
        Ok("guarded") => overflow(StackPolicy::Guarded, false),
        Ok("guarded-named") => overflow_named(StackPolicy::Guarded, false, Some("tree walker")),
        Ok("canary-named") => overflow_named(StackPolicy::Canary, true, Some("tree walker")),
        Ok("guarded-thread") => {
            std::thread::spawn(|| overflow(StackPolicy::Guarded, false))
                .join()
                .unwrap();
        }
        Ok("guarded-pthread") => overflow_on_a_bare_pthread(),
        Ok("canary-deep") => overflow(StackPolicy::Canary, true),
        Ok("canary-dirty") => overflow(StackPolicy::Canary, false),
        Ok("yield-unwinding") => yield_while_unwinding(),
        Ok("segfault") => segfault_outside_coroutines(),
        Ok("canary-large-frame") => canary_large_frame(),
        Ok("fork-canary") => fork_with_canary_stacks(),
        _ => {}
    }
}

fn assert_overflow_report(stderr: &str) {
    let expected = format!(
        "' overflowed its stack of {} bytes",
        coio::DEFAULT_STACK_SIZE
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("coio: coroutine '"))
        .unwrap_or_else(|| panic!("no report line starting with `coio: coroutine '`:\n{stderr}"));
    assert!(line.contains(&expected), "unexpected report `{line}`");
    assert!(
        line.contains("generator@0x"),
        "a generator is named by its stack: `{line}`"
    );
}

#[test]
fn overflow_of_guarded_stack_is_reported() {
    assert_overflow_report(&run_child("guarded"));
}

#[test]
fn overflow_of_a_named_generator_names_it() {
    for case in ["guarded-named", "canary-named"] {
        let stderr = run_child(case);
        let expected = format!(
            "coio: coroutine 'tree walker' overflowed its stack of {} bytes",
            coio::DEFAULT_STACK_SIZE
        );
        assert!(
            stderr.lines().any(|l| l == expected),
            "case {case}:\n{stderr}"
        );
    }
}

#[test]
fn overflow_on_a_spawned_thread_is_reported() {
    assert_overflow_report(&run_child("guarded-thread"));
}

#[test]
fn overflow_on_a_thread_without_an_alternate_signal_stack_is_reported() {
    assert_overflow_report(&run_child("guarded-pthread"));
}

#[test]
fn overflow_of_canary_stack_is_reported_at_a_yield_below_the_bottom() {
    assert_overflow_report(&run_child("canary-deep"));
}

#[test]
fn overflow_of_canary_stack_is_reported_at_the_next_yield() {
    assert_overflow_report(&run_child("canary-dirty"));
}

#[test]
#[cfg(debug_assertions)]
fn yield_while_unwinding_aborts_with_a_message() {
    let stderr = run_child("yield-unwinding");
    assert!(
        stderr.contains("coio: a generator tried to yield while it was unwinding"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn other_faults_still_kill_the_process_with_sigsegv() {
    let stderr = run_child_expecting("segfault", libc::SIGSEGV);
    assert!(
        !stderr.contains("coio: coroutine"),
        "not an overflow:\n{stderr}"
    );
}

/// Where the kernel offers userfaultfd write protection (Linux 6.4+, not
/// blocked by seccomp), canary stacks get hardware guard pages too, and an
/// overflow that skips the canary words is still reported. The machine this
/// project runs on has it; elsewhere the case is skipped, with a note.
#[test]
fn overflow_of_canary_stack_past_the_canary_words_is_caught_by_write_protection() {
    let out = spawn_child("canary-large-frame");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.signal() == Some(libc::SIGABRT) && stderr.contains("coio: coroutine '") {
        let line = stderr
            .lines()
            .find(|l| l.starts_with("coio: coroutine '"))
            .unwrap();
        assert!(
            line.ends_with("overflowed its stack of 16384 bytes"),
            "{line}"
        );
    } else if std::env::var_os("COIO_UFFD").is_some_and(|v| v == "off") {
        eprintln!(
            "note: COIO_UFFD=off; the large-frame canary case is not caught (documented gap)"
        );
    } else {
        // SAFETY: probing for userfaultfd: a flags word in, a descriptor out.
        let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | 1) };
        assert!(
            fd < 0,
            "userfaultfd is available but the overflow was not caught: {:?}\n{stderr}",
            out.status
        );
        eprintln!(
            "note: no userfaultfd here; the large-frame canary case is not caught (documented gap)"
        );
    }
}

#[test]
fn forked_child_does_not_touch_the_parents_stacks() {
    let out = spawn_child("fork-canary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("fork case completed"),
        "{:?}\n{}\n{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
}
