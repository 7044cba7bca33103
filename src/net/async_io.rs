//! Async I/O on coio's stream sockets: the `poll_*` forms of their reads,
//! writes and accepts, and, behind cargo features, the async I/O traits of
//! the ecosystem on top of them:
//!
//! * `tokio`: [`tokio::io::AsyncRead`] and [`tokio::io::AsyncWrite`];
//! * `futures-io`: [`futures_io::AsyncRead`] and [`futures_io::AsyncWrite`];
//! * `hyper`: [`hyper::rt::Read`] and [`hyper::rt::Write`].
//!
//! Each is implemented for [`TcpStream`](super::TcpStream),
//! [`UnixStream`](super::unix::UnixStream) and shared references to them.
//!
//! # Driven by coio's own poller
//!
//! There is no second reactor. A poll tries the operation at once while the
//! socket may be ready (the same readiness word the blocking path uses);
//! on `WouldBlock` it keeps the task's waker in the socket's readiness
//! state, one per direction (the latest poll's, as tokio's sockets do), and
//! the worker's driver wakes it with the socket's next event of that
//! direction. The socket is registered, at the first poll that must wait,
//! with the worker of the polling coroutine; polled on another thread
//! (a tokio task's), with the worker whose coroutine made the socket (an
//! accept or connect in a coroutine). So a socket made or waited on in a
//! coroutine can be polled from any thread; one made outside coio's
//! coroutines must first be polled in one: in
//! [`coio::future::block_on`](crate::future::block_on), or spawned with
//! `coio::compat::hyper::Executor` (feature `hyper`). A poll elsewhere
//! that must wait returns an error saying so.
//!
//! The sockets' own methods, std's names, win over the async extension
//! traits' methods of the same name: `stream.shutdown().await` does not
//! compile (the inherent `shutdown(how)` is found first); write
//! `AsyncWriteExt::shutdown(&mut stream).await` (tokio) or
//! `AsyncWriteExt::close(&mut stream).await` (futures). With both
//! `std::io::Read` and an async extension trait in scope, `read_to_end`,
//! `write_all` and the like are ambiguous: name the trait, or import only
//! one of them in the module that does async I/O.
//!
//! Read and write timeouts (`set_read_timeout`, ...) and the non-blocking
//! mode concern the blocking calls only: async code has its own timeouts.
//! The io_uring driver does not change this path: async operations wait
//! for readiness.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};

use crate::io::{Dir, Fd, sys};

/// Whether a transfer of `n` of `len` bytes drained (or filled) the
/// socket's buffer (see `Source::io_stream`).
#[inline]
fn partial(len: usize) -> impl Fn(&usize) -> bool {
    move |&n| n > 0 && n < len
}

/// [`partial`] for a read: never on a socket whose short reads do not
/// prove it drained (see `short_read_drains` of the stream types).
#[inline]
fn partial_read(len: usize, drains: bool) -> impl Fn(&usize) -> bool {
    partial(if drains { len } else { 0 })
}

/// One poll of a read of a stream socket into `buf`.
pub(crate) fn poll_read<T: AsRawFd>(
    io: &Fd<T>,
    cx: &mut Context<'_>,
    buf: &mut [u8],
    drains: bool,
) -> Poll<io::Result<usize>> {
    let fd = io.as_raw_fd();
    let len = buf.len();
    io.source().poll_io(
        Dir::Read,
        cx,
        || sys::recv(fd, buf),
        partial_read(len, drains),
    )
}

/// One poll of a read into memory that may be uninitialized; `Ready(n)`:
/// the first `n` bytes are now initialized.
#[cfg_attr(not(any(feature = "tokio", feature = "hyper")), allow(dead_code))]
pub(crate) fn poll_read_uninit<T: AsRawFd>(
    io: &Fd<T>,
    cx: &mut Context<'_>,
    buf: &mut [MaybeUninit<u8>],
    drains: bool,
) -> Poll<io::Result<usize>> {
    let fd = io.as_raw_fd();
    let len = buf.len();
    io.source().poll_io(
        Dir::Read,
        cx,
        || sys::recv_uninit(fd, buf),
        partial_read(len, drains),
    )
}

/// One poll of a write of `buf`.
pub(crate) fn poll_write<T: AsRawFd>(
    io: &Fd<T>,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    let fd = io.as_raw_fd();
    if buf.is_empty() {
        // One send of nothing, which never waits for room, as the blocking
        // `write` does (std's returns at once: 0, or the socket's error).
        return Poll::Ready(sys::send(fd, buf));
    }
    io.source()
        .poll_io(Dir::Write, cx, || sys::send(fd, buf), partial(buf.len()))
}

/// One poll of a vectored write of `bufs`.
pub(crate) fn poll_write_vectored<T: AsRawFd>(
    io: &Fd<T>,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let fd = io.as_raw_fd();
    let bufs = sys::iov_max(bufs);
    let len = bufs.iter().map(|b| b.len()).sum();
    if len == 0 {
        // As in `poll_write`.
        return Poll::Ready(sys::send_vectored(fd, bufs));
    }
    io.source().poll_io(
        Dir::Write,
        cx,
        || sys::send_vectored(fd, bufs),
        partial(len),
    )
}

/// The async I/O traits for a stream socket type `$t` (with an `io:
/// Fd<_>` field and a `shutdown(Shutdown)` method) and for `&$t`, each
/// behind its cargo feature. The `poll_*` methods' examples start with
/// `setup` (doctest lines, run in a coroutine, that bind `a` and `b`, two
/// connected streams of the type).
macro_rules! stream_async {
    ($t:ty, setup = $setup:literal) => {
        impl $t {
            /// Polls a read into `buf`: `Ready` with the number of bytes
            /// read (0 at the end of the stream) or an error, or `Pending`
            /// until the socket may be readable (see `coio::net`'s "Async
            /// I/O": the first poll must come from a coroutine).
            ///
            /// ```
            /// use std::future::poll_fn;
            /// use std::io::Write;
            ///
            /// coio::run(|| -> std::io::Result<()> {
            #[doc = concat!("    ", $setup)]
            ///     (&b).write_all(b"hi")?;
            ///     let mut buf = [0; 8];
            ///     let n = coio::future::block_on(poll_fn(|cx| a.poll_read(cx, &mut buf)))?;
            ///     assert_eq!(&buf[..n], b"hi");
            ///     Ok(())
            /// })?;
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// The OS error.
            pub fn poll_read(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::async_io::poll_read(&self.io, cx, buf, self.short_read_drains())
            }

            /// Polls a write of `buf` (see [`poll_read`](Self::poll_read)).
            ///
            /// ```
            /// use std::future::poll_fn;
            /// use std::io::Read;
            ///
            /// coio::run(|| -> std::io::Result<()> {
            #[doc = concat!("    ", $setup)]
            ///     let n = coio::future::block_on(poll_fn(|cx| a.poll_write(cx, b"ping")))?;
            ///     assert_eq!(n, 4);
            ///     let mut got = [0; 4];
            ///     (&b).read_exact(&mut got)?;
            ///     assert_eq!(&got, b"ping");
            ///     Ok(())
            /// })?;
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// The OS error.
            pub fn poll_write(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::async_io::poll_write(&self.io, cx, buf)
            }

            /// Polls a vectored write of `bufs` (see
            /// [`poll_read`](Self::poll_read)).
            ///
            /// ```
            /// use std::future::poll_fn;
            /// use std::io::{IoSlice, Read};
            ///
            /// coio::run(|| -> std::io::Result<()> {
            #[doc = concat!("    ", $setup)]
            ///     let bufs = [IoSlice::new(b"po"), IoSlice::new(b"ng")];
            ///     let n = coio::future::block_on(poll_fn(|cx| a.poll_write_vectored(cx, &bufs)))?;
            ///     assert_eq!(n, 4);
            ///     let mut got = [0; 4];
            ///     (&b).read_exact(&mut got)?;
            ///     assert_eq!(&got, b"pong");
            ///     Ok(())
            /// })?;
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// The OS error.
            pub fn poll_write_vectored(
                &self,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::async_io::poll_write_vectored(&self.io, cx, bufs)
            }
        }

        $crate::net::async_io::stream_async!(@traits $t);
        $crate::net::async_io::stream_async!(@traits &$t);
    };
    (@traits $t:ty) => {
        #[cfg(feature = "tokio")]
        impl tokio::io::AsyncRead for $t {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                // SAFETY: `poll_read_uninit` only writes to the memory (a
                // system call's output), never de-initializes it.
                let dst = unsafe { buf.unfilled_mut() };
                match $crate::net::async_io::poll_read_uninit(&self.io, cx, dst, self.short_read_drains()) {
                    std::task::Poll::Ready(Ok(n)) => {
                        // SAFETY: the read initialized the first `n` bytes
                        // of the unfilled part.
                        unsafe { buf.assume_init(n) };
                        buf.advance(n);
                        std::task::Poll::Ready(Ok(()))
                    }
                    std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
                    std::task::Poll::Pending => std::task::Poll::Pending,
                }
            }
        }

        #[cfg(feature = "tokio")]
        impl tokio::io::AsyncWrite for $t {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::async_io::poll_write(&self.io, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::async_io::poll_write_vectored(&self.io, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }

        #[cfg(feature = "futures-io")]
        impl futures_io::AsyncRead for $t {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::async_io::poll_read(&self.io, cx, buf, self.short_read_drains())
            }
        }

        #[cfg(feature = "futures-io")]
        impl futures_io::AsyncWrite for $t {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::async_io::poll_write(&self.io, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::async_io::poll_write_vectored(&self.io, cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }

        #[cfg(feature = "hyper")]
        impl hyper::rt::Read for $t {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                mut buf: hyper::rt::ReadBufCursor<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                // SAFETY: `poll_read_uninit` only writes to the memory.
                let dst = unsafe { buf.as_mut() };
                match $crate::net::async_io::poll_read_uninit(&self.io, cx, dst, self.short_read_drains()) {
                    std::task::Poll::Ready(Ok(n)) => {
                        // SAFETY: the read initialized the first `n` bytes.
                        unsafe { buf.advance(n) };
                        std::task::Poll::Ready(Ok(()))
                    }
                    std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
                    std::task::Poll::Pending => std::task::Poll::Pending,
                }
            }
        }

        #[cfg(feature = "hyper")]
        impl hyper::rt::Write for $t {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::async_io::poll_write(&self.io, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::async_io::poll_write_vectored(&self.io, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }
    };
}

pub(crate) use stream_async;
