//! `coio::signal::notify`: signals as channel messages, in coroutines and
//! threads, several listeners, and the previous handling restored once
//! every listener is gone. Each test that raises a signal runs in a child
//! process of its own, so that the signals of one test never reach
//! another's listeners.

mod common;

use std::time::Duration;

use coio::chan;

/// Sends `sig` to this process.
fn raise(sig: i32) {
    // SAFETY: kill(2) on our own pid.
    assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
}

fn in_child(name: &str) -> std::process::Output {
    common::run_in_child(name, "child", &[])
}

#[test]
fn signals_arrive_in_coroutines_selects_and_threads() {
    if common::child_role().is_none() {
        let out = in_child("signals_arrive_in_coroutines_selects_and_threads");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    coio::run(|| {
        let a = coio::signal::notify(&[libc::SIGUSR1, libc::SIGUSR2]).unwrap();
        let b = coio::signal::notify(&[libc::SIGUSR1]).unwrap();
        // A coroutine waits in a select, a thread in a plain receive.
        let h = coio::spawn(move || {
            let (_keep, never_ready) = chan::bounded::<()>(0);
            coio::select! {
                recv(a) -> s => s.unwrap(),
                recv(never_ready) -> _ => unreachable!(),
            }
        });
        let t = std::thread::spawn(move || b.recv_timeout(Duration::from_secs(10)).unwrap());
        coio::sleep(Duration::from_millis(20));
        raise(libc::SIGUSR1);
        // Both listeners get it.
        assert_eq!(h.join().unwrap(), libc::SIGUSR1);
        while !t.is_finished() {
            coio::sleep(Duration::from_millis(1));
        }
        assert_eq!(t.join().unwrap(), libc::SIGUSR1);
        // Several in a row, in order, none lost (below the buffer).
        let c = coio::signal::notify(&[libc::SIGUSR2, libc::SIGHUP]).unwrap();
        for _ in 0..3 {
            raise(libc::SIGUSR2);
            assert_eq!(c.recv_timeout(Duration::from_secs(10)), Ok(libc::SIGUSR2));
            raise(libc::SIGHUP);
            assert_eq!(c.recv_timeout(Duration::from_secs(10)), Ok(libc::SIGHUP));
        }
    });
}

/// While a listener lives, SIGTERM is a message; once every listener
/// dropped its receiver, SIGTERM has its default effect again.
#[test]
fn a_signal_without_listeners_gets_its_previous_handling() {
    if common::child_role().is_none() {
        let out = in_child("a_signal_without_listeners_gets_its_previous_handling");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGTERM),
            "{:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("first SIGTERM received"), "{err}");
        return;
    }
    let stop = coio::signal::notify(&[libc::SIGTERM]).unwrap();
    raise(libc::SIGTERM);
    assert_eq!(
        stop.recv_timeout(Duration::from_secs(10)),
        Ok(libc::SIGTERM)
    );
    eprintln!("first SIGTERM received");
    drop(stop);
    raise(libc::SIGTERM);
    // The relay finds no listener, puts the default back and raises it
    // again: the process ends here.
    std::thread::sleep(Duration::from_secs(10));
    eprintln!("still alive after the second SIGTERM");
}

#[test]
fn signals_coio_cannot_watch_are_refused() {
    for sig in [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGURG,
        0,
        65,
    ] {
        let e = coio::signal::notify(&[libc::SIGUSR1, sig]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{sig}");
        assert!(e.to_string().contains(&format!("signal {sig}")), "{e}");
    }
}

/// The worker's thread id, for `pthread_kill`, and the spinner's stop flag.
static DEEP_THREAD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static DEEP_SPIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Recurses until less than `stop_below` of stack address is left above
/// the frame, then records its thread and spins until told to stop.
#[inline(never)]
fn deep(stop_below: usize) -> usize {
    use std::sync::atomic::Ordering::SeqCst;
    let buf = [0u8; 256];
    std::hint::black_box(&buf);
    if (&buf as *const u8 as usize) < stop_below {
        // SAFETY: pthread_self has no preconditions.
        DEEP_THREAD.store(unsafe { libc::pthread_self() } as u64, SeqCst);
        while DEEP_SPIN.load(SeqCst) {
            std::hint::spin_loop();
        }
        return 0;
    }
    deep(stop_below) + std::hint::black_box(1)
}

/// A signal that arrives while a coroutine has used most of its stack (2 KiB
/// left: legitimate, no overflow) is handled on the worker's alternate
/// stack. On the coroutine's own, the kernel could not fit the signal
/// frame and turned it into a SIGSEGV, which coio passed on to std's
/// handler: the signal was lost, and with it the process's overflow
/// reporting (std's handler resets SIGSEGV to its default).
#[test]
fn a_signal_on_a_nearly_full_coroutine_stack_is_not_lost() {
    use std::sync::atomic::Ordering::SeqCst;
    if common::child_role().is_none() {
        let out = in_child("a_signal_on_a_nearly_full_coroutine_stack_is_not_lost");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let rt = coio::Runtime::builder()
        .workers(1)
        .stall_warning(None)
        .build()
        .unwrap();
    let rx = coio::signal::notify(&[libc::SIGUSR1]).unwrap();
    let worker = std::thread::spawn(move || {
        rt.block_on(|| {
            coio::Builder::new()
                .stack_size(64 * 1024)
                .spawn(|| {
                    let here = 0u8;
                    let top = (&here as *const u8 as usize + 4095) & !4095;
                    deep(top - 64 * 1024 + 2048)
                })
                .unwrap()
                .join()
                .unwrap()
        })
    });
    while DEEP_THREAD.load(SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let tid = DEEP_THREAD.load(SeqCst) as libc::pthread_t;
    // SAFETY: the worker thread lives until `worker` is joined below.
    let sent = unsafe { libc::pthread_kill(tid, libc::SIGUSR1) };
    assert_eq!(sent, 0);
    let got = rx.recv_timeout(Duration::from_secs(10));
    DEEP_SPIN.store(false, SeqCst);
    worker.join().unwrap();
    assert_eq!(got, Ok(libc::SIGUSR1), "the signal was lost");
    // SAFETY: reads the current action only.
    let segv = unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGSEGV, std::ptr::null(), &mut now);
        now.sa_sigaction
    };
    assert_ne!(segv, libc::SIG_DFL, "coio's overflow handler is gone");
}
