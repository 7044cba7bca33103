//! Unix signals as channel messages: Go's `signal.Notify`.
//!
//! [`notify`] returns a [`Receiver`](crate::chan::Receiver) that gets the
//! number of each listed signal the process receives, from then on, until
//! the receiver is dropped. Receive from it like from any channel: in a
//! coroutine (alone or in a [`select!`](crate::select!)) the wait parks
//! only the coroutine; on a plain thread it blocks the thread. Several
//! listeners may watch the same signal: each gets every occurrence.
//!
//! ```
//! use std::time::Duration;
//!
//! coio::run(|| {
//!     let signals = coio::signal::notify(&[libc::SIGUSR2]).unwrap();
//!     // SAFETY: sending a signal to our own process, which now handles it.
//!     unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
//!     assert_eq!(signals.recv_timeout(Duration::from_secs(5)), Ok(libc::SIGUSR2));
//! });
//! ```
//!
//! Graceful shutdown, the usual use: stop accepting on SIGINT or SIGTERM
//! and let the connections in flight finish (`examples/http.rs` does
//! this):
//!
//! ```no_run
//! use coio::net::TcpListener;
//!
//! coio::run(|| -> std::io::Result<()> {
//!     let stop = coio::signal::notify(&[libc::SIGINT, libc::SIGTERM])?;
//!     let listener = TcpListener::bind("127.0.0.1:8080")?;
//!     let (conns_tx, conns_rx) = coio::chan::bounded(0);
//!     coio::spawn(move || {
//!         for conn in listener.incoming() {
//!             if conns_tx.send(conn).is_err() {
//!                 break;
//!             }
//!         }
//!     });
//!     let mut handlers = Vec::new();
//!     loop {
//!         coio::select! {
//!             recv(conns_rx) -> conn => {
//!                 let conn = conn.unwrap()?;
//!                 handlers.push(coio::spawn(move || drop(conn)));
//!             }
//!             recv(stop) -> _ => break,
//!         }
//!     }
//!     for h in handlers {
//!         let _ = h.join();
//!     }
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # How
//!
//! The first listener of a signal installs a handler for it that writes
//! the signal's number to a pipe, and nothing else; a thread of coio's,
//! `coio-signals`, one per process, reads the pipe and sends the number
//! to every listener's channel without waiting. A thread rather than a
//! runtime's poller, because signals belong to the process while runtimes
//! come and go, and plain threads may listen too (Go likewise relays
//! signals through a goroutine of its own).
//!
//! While a listener's channel is full (64 signals it did not receive yet),
//! further signals are dropped for it, as Go drops them for a full
//! channel. A signal that arrives after every listener of it dropped its
//! receiver gets the handling it had before (for SIGINT and SIGTERM:
//! the process ends), and so does every later one.
//!
//! Signals that cannot be caught (SIGKILL, SIGSTOP), that report faults
//! (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT) and
//! coio's own SIGURG are refused with [`InvalidInput`](std::io::ErrorKind::InvalidInput).
//! A signal also chosen as the dump signal
//! ([`RuntimeBuilder::dump_signal`](crate::RuntimeBuilder::dump_signal))
//! does both: the dump, and the message.

use std::io;
use std::sync::Arc;

use crate::chan::{self, TrySendError};
use crate::runtime::signals;

/// How many signals a listener's channel holds before further ones are
/// dropped for it.
const BUFFER: usize = 64;

/// A channel that receives the number of each of `signals` that the
/// process gets from now on (Go's `signal.Notify`); see the
/// [module docs](self).
///
/// # Errors
/// [`InvalidInput`](io::ErrorKind::InvalidInput) for a signal that cannot
/// be watched (SIGKILL, SIGSTOP, the fault signals, SIGURG, a number
/// outside 1 to 64), and the OS error if the handler or the relay thread
/// cannot be set up. Nothing is watched then.
///
/// ```
/// // Ctrl-C and `kill` as messages, from a plain thread too.
/// let stop = coio::signal::notify(&[libc::SIGINT, libc::SIGTERM]).unwrap();
/// assert!(stop.try_recv().is_err()); // nothing yet
/// assert!(coio::signal::notify(&[libc::SIGKILL]).is_err());
/// ```
pub fn notify(signals: &[i32]) -> io::Result<chan::Receiver<i32>> {
    for &sig in signals {
        signals::check(sig, "be notified")?;
    }
    let (tx, rx) = chan::bounded(BUFFER);
    let mut ids = Vec::with_capacity(signals.len());
    for &sig in signals {
        let tx = tx.clone();
        let listener = Arc::new(move |sig| match tx.try_send(sig) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
        match signals::listen(sig, "be notified", listener) {
            Ok(id) => ids.push(id),
            Err(e) => {
                for id in ids {
                    signals::unlisten(id);
                }
                return Err(e);
            }
        }
    }
    Ok(rx)
}
