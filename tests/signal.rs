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
