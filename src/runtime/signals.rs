//! The process's signal relay: what coio does when a signal it was asked
//! to watch arrives (`coio::signal::notify`'s channels, the dump signal).
//!
//! Signals are process-wide and arrive on any thread, while coio's pollers
//! belong to runtimes, which come and go: so, as Go's `os/signal` does with
//! a goroutine of its own, the relay is one thread per process,
//! `coio-signals`, started by the first listener. For each signal watched,
//! the handler installed is the classic self-pipe: it writes the signal's
//! number as one byte to a non-blocking pipe (write(2) is
//! async-signal-safe; errno is preserved) and does nothing else. The
//! thread, blocked in read(2) on the other end (it costs nothing while no
//! signal comes), calls the signal's listeners, outside the registry's
//! lock.
//!
//! A listener returns false once it is gone (its channel's receivers were
//! dropped, its runtime shut down): it is removed. A signal whose
//! listeners were all gone is not swallowed: its previous handling is put
//! back and the signal raised again, so that a SIGINT after the last
//! receiver went away still ends the process. Removing the last listener
//! of a signal ([`unlisten`]) likewise puts back the handling it replaced,
//! if ours is still the one installed.
//!
//! Signals that cannot be caught (SIGKILL, SIGSTOP), that report faults
//! (a handler that returns would make the fault repeat), and coio's own
//! (SIGSEGV and SIGBUS report stack overflows, SIGURG interrupts workers
//! for dumps) are refused.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// What a listener does with its signal; false: it is gone, remove it.
pub(crate) type Listener = Arc<dyn Fn(i32) -> bool + Send + Sync>;

/// The listeners, and the handling each watched signal had before ours.
struct Relay {
    next_id: u64,
    listeners: Vec<(u64, i32, Listener)>,
    previous: Vec<(i32, libc::sigaction)>,
}

static RELAY: Mutex<Relay> = Mutex::new(Relay {
    next_id: 1,
    listeners: Vec::new(),
    previous: Vec::new(),
});

/// The pipe's write end; -1 until the relay thread runs.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

fn relay() -> std::sync::MutexGuard<'static, Relay> {
    RELAY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks that `sig` may be watched; the error says why not, for the
/// purpose `what` ("trigger dumps", "be notified").
pub(crate) fn check(sig: i32, what: &str) -> io::Result<()> {
    let refused = matches!(
        sig,
        libc::SIGKILL
            | libc::SIGSTOP
            | libc::SIGSEGV
            | libc::SIGBUS
            | libc::SIGURG
            | libc::SIGILL
            | libc::SIGFPE
            | libc::SIGTRAP
            | libc::SIGSYS
            | libc::SIGABRT
    ) || !(1..=64).contains(&sig);
    if !refused {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "coio: signal {sig} cannot {what} (SIGKILL and SIGSTOP cannot be caught; SIGSEGV, \
             SIGBUS and SIGURG are coio's own; SIGILL, SIGFPE, SIGTRAP, SIGSYS and SIGABRT \
             report faults, which a handler that returns would repeat forever; signals are \
             numbered 1 to 64)"
        ),
    ))
}

/// Calls `f` on the relay thread each time `sig` arrives, until it returns
/// false or [`unlisten`] removes it; returns its id. `what`: the purpose,
/// for the error if `sig` is refused (see [`check`]).
pub(crate) fn listen(sig: i32, what: &str, f: Listener) -> io::Result<u64> {
    check(sig, what)?;
    let mut r = relay();
    start()?;
    if !r.previous.iter().any(|(s, _)| *s == sig) {
        // SAFETY: installing a handler that only calls write(2) (async-
        // signal-safe) on a descriptor that stays open for the process's
        // life; the previous action is kept, to be put back.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, &sa, &mut old) != 0 {
                return Err(io::Error::last_os_error());
            }
            r.previous.push((sig, old));
        }
    }
    let id = r.next_id;
    r.next_id += 1;
    r.listeners.push((id, sig, f));
    Ok(id)
}

/// Removes the listener `id` (nothing if it is gone already).
pub(crate) fn unlisten(id: u64) {
    let mut r = relay();
    r.listeners.retain(|(i, _, _)| *i != id);
    restore_unwatched(&mut r);
}

/// Puts back the previous handling of every signal nobody listens to any
/// more, if ours is still installed; returns the signals restored.
fn restore_unwatched(r: &mut Relay) -> Vec<i32> {
    let Relay {
        listeners,
        previous,
        ..
    } = r;
    let mut restored = Vec::new();
    previous.retain(|(sig, old)| {
        if listeners.iter().any(|(_, s, _)| s == sig) {
            return true;
        }
        // SAFETY: querying, then restoring the action we replaced if ours
        // is still the one installed.
        unsafe {
            let mut now: libc::sigaction = std::mem::zeroed();
            libc::sigaction(*sig, std::ptr::null(), &mut now);
            if now.sa_sigaction == on_signal as *const () as usize {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
        restored.push(*sig);
        false
    });
    restored
}

/// The handler: one byte, the signal's number, into the pipe. Nothing
/// else.
extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE_WRITE.load(Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: errno is this thread's; a one-byte write to a non-blocking
    // pipe (a full pipe drops the byte: 64 KiB of signals are pending).
    unsafe {
        let errno = *libc::__errno_location();
        let b = sig as u8;
        libc::write(fd, (&raw const b).cast(), 1);
        *libc::__errno_location() = errno;
    }
}

/// What [`start`] makes, for its errors.
const RELAY_NAME: &str = "the signal relay (a pipe and a thread)";

/// Starts the relay thread, once per process (under the registry's lock).
fn start() -> io::Result<()> {
    if PIPE_WRITE.load(Relaxed) >= 0 {
        return Ok(());
    }
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(super::start_error(io::Error::last_os_error(), RELAY_NAME));
    }
    let read = fds[0];
    // The reading end blocks: the thread waits in read(2).
    // SAFETY: our own descriptor.
    unsafe {
        let flags = libc::fcntl(read, libc::F_GETFL);
        libc::fcntl(read, libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
    let spawned = std::thread::Builder::new()
        .name("coio-signals".into())
        // Listeners wake user wakers here (channel receivers awaited
        // elsewhere): user code, which may leave frames (see
        // `coroutine::run_owned`).
        .spawn(move || crate::coroutine::run_owned(|| run(read)));
    if let Err(e) = spawned {
        // SAFETY: our own descriptors, used by nobody else.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        return Err(super::start_error(e, RELAY_NAME));
    }
    PIPE_WRITE.store(fds[1], Relaxed);
    Ok(())
}

/// The relay thread: waits for signals and calls their listeners.
fn run(read: libc::c_int) {
    loop {
        let mut b = 0u8;
        // SAFETY: a one-byte read into `b`.
        let n = unsafe { libc::read(read, (&raw mut b).cast(), 1) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        // Caught as a whole too: dropping a listener (the last reference
        // to a user's channel) runs user code.
        let sig = i32::from(b);
        crate::surviving(|| deliver(sig));
    }
}

/// Calls `sig`'s listeners (outside the lock: a dump takes a while, and a
/// listener may register another); removes those that are gone, and if
/// none was left to take the signal, gives it its previous handling and
/// raises it again.
fn deliver(sig: i32) {
    let targets: Vec<(u64, Listener)> = relay()
        .listeners
        .iter()
        .filter(|(_, s, _)| *s == sig)
        .map(|(id, _, f)| (*id, f.clone()))
        .collect();
    let mut gone = Vec::new();
    let mut taken = false;
    for (id, f) in &targets {
        // A listener wakes a user's waker, which may panic: the relay goes
        // on for the others (the panic hook has reported it).
        match crate::surviving(|| f(sig)) {
            Some(false) => gone.push(*id),
            Some(true) | None => taken = true,
        }
    }
    if gone.is_empty() {
        return;
    }
    let mut r = relay();
    r.listeners.retain(|(id, _, _)| !gone.contains(id));
    let restored = restore_unwatched(&mut r);
    drop(r);
    if !taken && restored.contains(&sig) {
        // SAFETY: raising a signal at ourselves; its handling is now what
        // it was before coio's.
        unsafe { libc::raise(sig) };
    }
}
