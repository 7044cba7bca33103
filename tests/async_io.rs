//! Async I/O on coio's sockets (features `tokio` and `futures-io`):
//! tokio's and futures' extension traits over `TcpStream` and
//! `UnixStream`, `accept_async`, many connections at once on coio's
//! poller, and the error of a first poll outside a coroutine.

use std::time::Duration;

use coio::Runtime;
use coio::future::block_on;
use coio::net::unix::{UnixListener, UnixStream};
use coio::net::{TcpListener, TcpStream};

mod common;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// An echo server written with tokio's I/O traits over coio's sockets,
/// and blocking-style clients: 200 connections, 100 round trips each, with
/// messages larger than a socket buffer.
#[test]
fn tokio_traits_echo_many_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = rt(2);
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(move || {
        loop {
            let (mut s, _) = block_on(listener.accept_async()).unwrap();
            coio::spawn(move || {
                block_on(async move {
                    let mut buf = vec![0; 64 * 1024];
                    loop {
                        let n = s.read(&mut buf).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        s.write_all(&buf[..n]).await.unwrap();
                    }
                })
            });
        }
    });
    let total = rt.block_on(move || {
        let hs: Vec<_> = (0..200)
            .map(|i| {
                coio::spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    let len = if i % 10 == 0 { 300_000 } else { 64 };
                    let msg: Vec<u8> = (0..len).map(|b| (b % 251) as u8).collect();
                    let mut back = vec![0; len];
                    for _ in 0..if len > 64 { 3 } else { 100 } {
                        // The writer in its own coroutine: a large message
                        // does not fit in the socket buffers both ways.
                        let w = {
                            let mut c = c.try_clone().unwrap();
                            let msg = msg.clone();
                            coio::spawn(move || std::io::Write::write_all(&mut c, &msg).unwrap())
                        };
                        std::io::Read::read_exact(&mut c, &mut back).unwrap();
                        w.join().unwrap();
                        assert_eq!(back, msg);
                    }
                    len
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    });
    assert_eq!(total, 20 * 300_000 + 180 * 64);
}

/// futures-io's traits over a Unix stream pair, both ends async, in two
/// coroutines.
#[test]
fn futures_io_traits_over_unix_streams() {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    let dir = std::env::temp_dir().join(format!("coio-async-io-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let path = dir.clone();
    let got = rt(1).block_on(move || {
        let listener = UnixListener::bind(&path).unwrap();
        let p2 = path.clone();
        let client = coio::spawn(move || {
            block_on(async move {
                let mut c = UnixStream::connect(&p2).unwrap();
                for i in 0..1000u32 {
                    c.write_all(&i.to_le_bytes()).await.unwrap();
                }
                c.close().await.unwrap();
            })
        });
        let got = block_on(async move {
            let (mut s, _) = listener.accept_async().await.unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            all
        });
        client.join().unwrap();
        got
    });
    let _ = std::fs::remove_file(&dir);
    let want: Vec<u8> = (0..1000u32).flat_map(|i| i.to_le_bytes()).collect();
    assert_eq!(got, want);
}

/// Polled first on a plain thread (no worker to register with), a read
/// says why it cannot proceed instead of hanging.
#[test]
fn first_poll_outside_a_coroutine_is_an_error() {
    use tokio::io::AsyncReadExt;
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let _peer = std::thread::spawn(move || std_listener.accept().unwrap());
    let mut s = TcpStream::connect(addr).unwrap();
    let mut buf = [0; 4];
    let err = futures::executor::block_on(s.read(&mut buf)).unwrap_err();
    assert!(err.to_string().contains("outside a coroutine"), "{err}");
}

/// Once a coroutine registered the socket, async code elsewhere (a tokio
/// runtime's thread) can use it: coio's worker wakes that task.
#[test]
fn registered_sockets_serve_other_executors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = rt(1);
    let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut s = rt
        .block_on(move || {
            let c = TcpStream::connect(addr)?;
            let (s, _) = listener.accept()?;
            // An async read that finds nothing registers the socket with
            // this worker (whatever the driver: a blocking read on the
            // io_uring driver would go through the ring instead).
            let mut b = [0; 1];
            let first = block_on(std::future::poll_fn(|cx| {
                std::task::Poll::Ready(s.poll_read(cx, &mut b).is_pending())
            }));
            assert!(first, "nothing was sent yet");
            coio::spawn(move || {
                let mut c = c;
                let mut b = [0; 5];
                std::io::Read::read_exact(&mut c, &mut b).unwrap();
                std::io::Write::write_all(&mut c, &b).unwrap();
                coio::sleep(Duration::from_millis(100));
            });
            Ok::<_, std::io::Error>(s)
        })
        .unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let back = tokio.block_on(async move {
        s.write_all(b"hello").await.unwrap();
        let mut b = [0; 5];
        s.read_exact(&mut b).await.unwrap();
        b
    });
    assert_eq!(&back, b"hello");
}

/// A socket made in a coroutine can be handed to async code elsewhere even
/// if no coroutine ever waited on it (its reads there found data at once,
/// or went through the ring): the first poll that must wait registers it
/// with the worker that made it. (Before, the tokio task's read failed
/// with "first polled outside a coroutine"; from a review.)
#[test]
fn sockets_made_in_coroutines_serve_other_executors_unregistered() {
    use tokio::io::AsyncReadExt;
    for driver in [coio::IoDriver::Epoll, coio::IoDriver::Uring] {
        for blocking in [true, false] {
            let rt = Runtime::builder()
                .workers(1)
                .driver(driver)
                .build()
                .unwrap();
            let (s, tx) = rt.block_on(move || {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let mut c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (mut s, _) = listener.accept().unwrap();
                std::io::Write::write_all(&mut c, b"helo").unwrap();
                let mut b = [0; 4];
                if blocking {
                    std::io::Read::read_exact(&mut s, &mut b).unwrap();
                } else {
                    block_on(s.read_exact(&mut b)).unwrap();
                }
                assert_eq!(&b, b"helo");
                (s, c)
            });
            let mut s = s;
            let tokio = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let writer = std::thread::spawn(move || {
                let mut c = tx;
                std::thread::sleep(Duration::from_millis(50));
                std::io::Write::write_all(&mut c, b"rest").unwrap();
                c
            });
            let got = tokio.block_on(async move {
                let mut b = [0; 4];
                let r = tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut b)).await;
                r.map(|r| r.map(|_| b))
            });
            let _c = writer.join().unwrap();
            let got = got.expect("the read from tokio was never woken");
            assert_eq!(
                got.map_err(|e| e.to_string()),
                Ok(*b"rest"),
                "{driver:?}, blocking read first: {blocking}"
            );
        }
    }
}

/// Async code off the workers polls sockets made in a coroutine (each
/// poll registers one with its home worker's driver) while the runtime is
/// dropped under it: afterwards every poll is an error, none `Pending` on a
/// dead driver for ever. (Before the fix, 13 of 200 rounds left one so: a
/// registration landed in the closing driver's table after it was taken,
/// or set the socket live after the close cleared it; from a review.)
#[test]
fn async_polls_racing_a_runtime_drop_never_hang() {
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use tokio::io::{AsyncRead, ReadBuf};
    fn poll_once(s: &mut TcpStream) -> Poll<std::io::Result<()>> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut b = [0u8; 8];
        Pin::new(s).poll_read(&mut cx, &mut ReadBuf::new(&mut b))
    }
    for driver in [coio::IoDriver::Epoll, coio::IoDriver::Uring] {
        for round in 0..60 {
            let rt = Runtime::builder()
                .workers(1)
                .driver(driver)
                .build()
                .unwrap();
            let (servers, clients) = rt.block_on(|| {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                let (mut servers, mut clients) = (Vec::new(), Vec::new());
                for _ in 0..100 {
                    clients.push(TcpStream::connect(addr).unwrap());
                    servers.push(l.accept().unwrap().0);
                }
                (servers, clients)
            });
            let go = std::sync::Arc::new(std::sync::Barrier::new(2));
            let go2 = go.clone();
            let poller = std::thread::spawn(move || {
                let mut servers = servers;
                go2.wait();
                for s in &mut servers {
                    let _ = poll_once(s);
                }
                servers
            });
            go.wait();
            drop(rt);
            let mut servers = poller.join().unwrap();
            let pending = servers
                .iter_mut()
                .map(poll_once)
                .filter(Poll::is_pending)
                .count();
            assert_eq!(
                pending, 0,
                "{driver:?}, round {round}: sockets left pending on a dead driver"
            );
            drop(clients);
        }
    }
}

/// As tests/unix.rs's `a_read_after_a_message_with_descriptors_gets_the_rest`
/// through tokio's `AsyncRead`: a short read that stopped after a message
/// with descriptors does not mean the stream is drained. (A coio sleep
/// against the read turns the old hang into a failure.)
#[test]
fn an_async_read_after_a_message_with_descriptors_gets_the_rest() {
    use std::os::fd::AsRawFd;
    use tokio::io::AsyncReadExt;
    let got = rt(1).block_on(|| {
        let (mut rx, tx) = UnixStream::pair().unwrap();
        let mut buf = [0; 64];
        block_on(async {
            // Registered, its waker kept, the read bit cleared.
            let mut read = std::pin::pin!(rx.read(&mut buf));
            assert!(futures::poll!(read.as_mut()).is_pending());
        });
        common::send_with_fd(tx.as_raw_fd(), b"a", tx.as_raw_fd());
        std::io::Write::write_all(&mut &tx, b"b").unwrap();
        block_on(async {
            let n = rx.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"a");
            let read = std::pin::pin!(rx.read(&mut buf));
            let timeout = std::pin::pin!(coio::future::sleep(Duration::from_secs(10)));
            match futures::future::select(read, timeout).await {
                futures::future::Either::Left((n, _)) => Some(n.unwrap()),
                futures::future::Either::Right(_) => None,
            }
        })
        .map(|n| buf[..n].to_vec())
    });
    assert_eq!(got.as_deref(), Some(&b"b"[..]));
}

/// Two coroutines of one worker each read, in `compat::tokio::block_on`
/// (which enters tokio's context while it polls its future), a socket
/// that always has data, a byte at a time: their budgets run out again and
/// again. The yield happens in `block_on`, between polls, never inside one
/// with tokio's context guard held (a coroutine yielded there, the other
/// entered its own guard, and tokio panicked: "`EnterGuard` values dropped
/// out of order"), and no other coroutine sees tokio's context as current.
#[test]
fn budget_yields_happen_between_polls() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use tokio::io::AsyncReadExt;
    const N: usize = 2000;
    let (joined, leaked) = rt(1).block_on(|| {
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (mut rx, tx) = UnixStream::pair().unwrap();
                std::io::Write::write_all(&mut &tx, &[7; N]).unwrap();
                coio::spawn(move || {
                    let _tx = tx;
                    coio::compat::tokio::block_on(async move {
                        let mut b = [0; 1];
                        for _ in 0..N {
                            rx.read_exact(&mut b).await.unwrap();
                        }
                    })
                })
            })
            .collect();
        let watcher = {
            let done = done.clone();
            coio::spawn(move || {
                let mut leaked = false;
                while !done.load(SeqCst) {
                    leaked |= tokio::runtime::Handle::try_current().is_ok();
                    coio::yield_now();
                }
                leaked
            })
        };
        let joined: Vec<_> = readers.into_iter().map(|h| h.join().is_ok()).collect();
        done.store(true, SeqCst);
        (joined, watcher.join().unwrap())
    });
    assert_eq!(joined, [true, true], "a reader panicked");
    assert!(
        !leaked,
        "a coroutine outside tokio's block_on saw tokio's context"
    );
}

/// A future polled in a coroutine by another executor than coio's
/// (futures' `block_on`, a documented hazard: it blocks the worker) reads
/// a socket that always has data: when the budget runs out, its reads ask
/// for a yield once, and then go on (that executor polls again at once and
/// never yields; asking again would spin it for ever).
#[test]
fn another_executor_s_polls_go_on_when_the_budget_runs_out() {
    use futures::io::AsyncReadExt;
    const N: usize = 2000;
    let n = common::within(Duration::from_secs(30), || {
        rt(1).block_on(|| {
            let (mut rx, tx) = UnixStream::pair().unwrap();
            std::io::Write::write_all(&mut &tx, &[7; N]).unwrap();
            futures::executor::block_on(async move {
                let mut b = [0; 1];
                for _ in 0..N {
                    rx.read_exact(&mut b).await.unwrap();
                }
                N
            })
        })
    });
    assert_eq!(n, N);
}

/// Two tasks awaiting `accept_async` on one listener (as with tokio's
/// `accept()` futures): each is woken by a connection, whoever polled
/// last. (The listener kept one waker, the last poll's: the first task was
/// never woken, with its connection queued.)
#[test]
fn two_accept_futures_on_one_listener_are_both_woken() {
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::task::{Context, Wake, Waker};
    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }
    let flag = || Arc::new(Flag(AtomicBool::new(false)));
    let accepted = common::within(Duration::from_secs(30), move || {
        rt(1).block_on(move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut futs = [
                Box::pin(listener.accept_async()),
                Box::pin(listener.accept_async()),
            ];
            let flags = [flag(), flag()];
            let wakers = flags.clone().map(Waker::from);
            for (f, w) in futs.iter_mut().zip(&wakers) {
                assert!(f.as_mut().poll(&mut Context::from_waker(w)).is_pending());
            }
            let mut accepted = [false, false];
            let mut clients = Vec::new();
            for _ in 0..2 {
                clients.push(TcpStream::connect(addr).unwrap());
                // The one that takes this connection: the first woken one
                // still waiting (a wake it never gets hangs here).
                loop {
                    let woken = (0..2).find(|&i| !accepted[i] && flags[i].0.swap(false, SeqCst));
                    if let Some(i) = woken {
                        let cx = &mut Context::from_waker(&wakers[i]);
                        if futs[i].as_mut().poll(cx).is_ready() {
                            accepted[i] = true;
                            break;
                        }
                    }
                    coio::sleep(Duration::from_millis(1));
                }
            }
            accepted
        })
    });
    assert_eq!(accepted, [true, true]);
}

/// Accept futures dropped while they wait leave no entry behind (an entry
/// woken after its future was freed would write to freed memory: the
/// valgrind step of `.ci/run` runs this), and the listener goes on.
#[test]
fn dropped_accept_futures_leave_nothing_behind() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let ok = common::within(Duration::from_secs(30), || {
        rt(1).block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            for _ in 0..100 {
                let mut f = Box::pin(listener.accept_async());
                assert!(
                    f.as_mut()
                        .poll(&mut Context::from_waker(Waker::noop()))
                        .is_pending()
                );
            }
            let client = TcpStream::connect(addr).unwrap();
            let (s, _) = block_on(listener.accept_async()).unwrap();
            s.peer_addr().unwrap() == client.local_addr().unwrap()
        })
    });
    assert!(ok);
}

/// A future that goes on when one of its leaves asks for a yield (the
/// first ready of two receives: the first asks, out of budget, the second
/// is ready) still yields, in `block_on` after the poll: the ask used to
/// be dropped with the `Ready`, stay set, and let every later leaf go on
/// without asking, so that a coroutine of the same worker never ran.
#[test]
fn a_yield_asked_for_inside_a_ready_poll_is_made() {
    use std::future::{Future, poll_fn};
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::task::Poll;
    common::within(Duration::from_secs(30), || {
        rt(1).block_on(|| {
            let (ta, ra) = coio::chan::unbounded::<u32>();
            let (tb, rb) = coio::chan::unbounded::<u32>();
            ta.try_send(1).unwrap();
            tb.try_send(2).unwrap();
            let flag = Arc::new(AtomicBool::new(false));
            let setter = {
                let flag = flag.clone();
                coio::spawn(move || flag.store(true, SeqCst))
            };
            let mut rounds = 0u64;
            while !flag.load(SeqCst) {
                let (i, v) = block_on(async {
                    let mut a = pin!(ra.recv_async());
                    let mut b = pin!(rb.recv_async());
                    poll_fn(|cx| {
                        if let Poll::Ready(v) = a.as_mut().poll(cx) {
                            return Poll::Ready((0, v.unwrap()));
                        }
                        if let Poll::Ready(v) = b.as_mut().poll(cx) {
                            return Poll::Ready((1, v.unwrap()));
                        }
                        Poll::Pending
                    })
                    .await
                });
                // Back where it came from (a try_ form: never yields).
                [&ta, &tb][i].try_send(v).unwrap();
                rounds += 1;
                assert!(rounds < 1_000_000, "the other coroutine never ran");
            }
            setter.join().unwrap();
        })
    });
}

/// A future of `compat::tokio::block_on` whose coroutine is cancelled is
/// dropped as the coroutine unwinds, inside tokio's context: its
/// destructors may need it (sqlx's pooled connection spawns a task to go
/// back to its pool). Dropped outside, that spawn panicked during the
/// unwind, and the process aborted.
#[test]
fn a_cancelled_compat_future_is_dropped_in_tokio_s_context() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    struct SpawnsOnDrop(Arc<AtomicBool>);
    impl Drop for SpawnsOnDrop {
        fn drop(&mut self) {
            tokio::spawn(async {});
            self.0.store(true, SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let cancelled = common::within(Duration::from_secs(30), move || {
        rt(1).block_on(move || {
            let h = coio::spawn(move || {
                coio::compat::tokio::block_on(async move {
                    let _d = SpawnsOnDrop(d);
                    coio::future::sleep(Duration::from_secs(3600)).await;
                })
            });
            coio::sleep(Duration::from_millis(50));
            h.cancel();
            h.join().is_err()
        })
    });
    assert!(cancelled);
    assert!(dropped.load(SeqCst));
}

/// Futures of `compat::tokio::block_on` that block their coroutines inside
/// their polls (a blocking coio call, a nested `block_on`), two on one
/// worker, whose waits overlap and end in the other order: each poll used
/// to enter tokio's context with a guard of its own, and the guards were
/// dropped out of the order they were made in (tokio panicked: "`EnterGuard`
/// values dropped out of order"). No coroutine sees the context afterwards.
#[test]
fn compat_futures_may_block_their_coroutines_inside_a_poll() {
    let (a, b, leaked) = common::within(Duration::from_secs(30), || {
        rt(1).block_on(|| {
            let a = coio::spawn(|| {
                coio::compat::tokio::block_on(async {
                    coio::sleep(Duration::from_millis(10));
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    1
                })
            });
            let b = coio::spawn(|| {
                coio::compat::tokio::block_on(async {
                    let n = coio::future::block_on(async {
                        coio::future::sleep(Duration::from_millis(50)).await;
                        2
                    });
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    n
                })
            });
            let (a, b) = (a.join(), b.join());
            let leaked = coio::spawn(|| tokio::runtime::Handle::try_current().is_ok())
                .join()
                .unwrap();
            (a.ok(), b.ok(), leaked)
        })
    });
    assert_eq!((a, b), (Some(1), Some(2)));
    assert!(!leaked, "tokio's context stayed entered");
}

/// `compat::tokio::block_on` in a `spawn_blocking` closure of its own
/// runtime is fine (that thread does not drive the runtime).
#[test]
fn compat_block_on_in_spawn_blocking() {
    let n = common::within(Duration::from_secs(30), || {
        let task = coio::compat::tokio::handle().spawn_blocking(|| {
            coio::compat::tokio::block_on(async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                5
            })
        });
        block_on(task).unwrap()
    });
    assert_eq!(n, 5);
}

/// A generator suspended inside a poll of a `compat::tokio::block_on`
/// future and leaked leaves the thread in tokio's context; the thread's
/// exit does not drop that entry (tokio's own thread-local may be gone by
/// then: the process aborted).
#[test]
fn a_leaked_generator_inside_a_compat_poll_lets_its_thread_end() {
    let t = std::thread::spawn(|| {
        let mut g = coio::Generator::new(|y, ()| {
            coio::compat::tokio::block_on(async {
                y.yield_(1u32);
                2u32
            })
        });
        let _ = g.resume(());
        std::mem::forget(g);
    });
    t.join().unwrap();
}

/// An async write of nothing completes at once with 0, as the blocking
/// one (and std's) does, even on a socket whose send buffer is full (it
/// waited for room), plain and vectored.
#[test]
fn an_async_empty_write_to_a_full_socket_completes_at_once() {
    use tokio::io::AsyncWriteExt;
    let (plain, vectored) = common::within(Duration::from_secs(30), || {
        rt(1).block_on(|| {
            let (mut c, _s) = common::full_socket();
            let plain = block_on(c.write(&[])).map_err(|e| e.kind());
            let empty = [std::io::IoSlice::new(&[]), std::io::IoSlice::new(&[])];
            let vectored = block_on(c.write_vectored(&empty)).map_err(|e| e.kind());
            (plain, vectored)
        })
    });
    assert_eq!(plain, Ok(0));
    assert_eq!(vectored, Ok(0));
}

/// An async write of nothing after the socket's writing was shut down
/// fails as the blocking one (and std's) does: it is a real send of
/// nothing, not an `Ok(0)` made up.
#[test]
fn an_async_empty_write_after_shutdown_fails_as_std_s() {
    use tokio::io::AsyncWriteExt;
    let (blocking, plain, vectored) = common::within(Duration::from_secs(30), || {
        rt(1).block_on(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (_s, _) = l.accept().unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let blocking = std::io::Write::write(&mut c, &[]).map_err(|e| e.kind());
            let plain = block_on(c.write(&[])).map_err(|e| e.kind());
            let empty = [std::io::IoSlice::new(&[])];
            let vectored = block_on(c.write_vectored(&empty)).map_err(|e| e.kind());
            (blocking, plain, vectored)
        })
    });
    assert_eq!(blocking, Err(std::io::ErrorKind::BrokenPipe));
    assert_eq!(plain, blocking);
    assert_eq!(vectored, blocking);
}

/// The tokio runtime that `compat::tokio` starts is coio's: a frame that a
/// `spawn_blocking` closure leaves on one of its threads (a generator
/// suspended inside a thread-local's borrow that a scoped thread reads,
/// then forgotten) keeps that thread from exiting past tokio's keep-alive
/// (10 s), as on coio's own threads. In a child process: before, the
/// thread exited and the scoped thread read the destroyed value.
#[test]
fn a_frame_left_on_a_compat_tokio_thread_keeps_its_thread_locals() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    /// Counts its drop, and overwrites itself.
    struct Value(Vec<u64>);
    impl Drop for Value {
        fn drop(&mut self) {
            DROPS.fetch_add(1, SeqCst);
            self.0.iter_mut().for_each(|x| *x = u64::MAX);
        }
    }
    thread_local! {
        static VALUE: Value = Value((0..64).collect());
    }
    const NAME: &str = "a_frame_left_on_a_compat_tokio_thread_keeps_its_thread_locals";
    if common::child_role().is_none() {
        let out = common::run_in_child(NAME, "child", &[]);
        common::assert_child_ok(&out);
        assert!(String::from_utf8_lossy(&out.stdout).contains("held"));
        return;
    }
    let (bad, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (b, s) = (bad.clone(), stop.clone());
    let h = coio::compat::tokio::handle();
    h.block_on(h.spawn_blocking(move || {
        let mut g = coio::Generator::new(move |y: &coio::Yielder<(), ()>, ()| {
            VALUE.with(|v| {
                std::thread::scope(|sc| {
                    sc.spawn(|| {
                        while !s.load(SeqCst) {
                            if v.0.iter().fold(0u64, |a, x| a.wrapping_add(*x)) != 63 * 64 / 2 {
                                b.fetch_add(1, SeqCst);
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    });
                    y.yield_(());
                })
            })
        });
        g.resume(());
        std::mem::forget(g);
    }))
    .unwrap();
    // Past tokio's keep-alive for idle blocking threads (10 s).
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(DROPS.load(SeqCst), 0, "the thread-local was destroyed");
    assert_eq!(bad.load(SeqCst), 0, "read a destroyed thread-local");
    stop.store(true, SeqCst);
    println!("held");
}
