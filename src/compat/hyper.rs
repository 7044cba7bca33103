//! hyper 1.x on coio: [`Executor`] and [`Timer`] for hyper's `rt` traits.
//!
//! With the `hyper` feature, coio's [`TcpStream`](crate::net::TcpStream)
//! and [`UnixStream`](crate::net::unix::UnixStream) implement
//! `hyper::rt::Read` and `hyper::rt::Write`, driven by the worker's poller.
//! A server serves each connection in a coroutine of its own, with
//! [`coio::future::block_on`](crate::future::block_on) around hyper's
//! connection future:
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http_body_util::Full;
//! use hyper::body::Bytes;
//! use hyper::server::conn::http1;
//! use hyper::service::service_fn;
//!
//! coio::run(|| {
//!     let listener = coio::net::TcpListener::bind("127.0.0.1:8081").unwrap();
//!     for conn in listener.incoming() {
//!         let conn = conn.unwrap();
//!         coio::spawn(move || {
//!             let service = service_fn(|_req| async {
//!                 Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("Hello, World!"))))
//!             });
//!             let _ = coio::future::block_on(
//!                 http1::Builder::new()
//!                     .timer(coio::compat::hyper::Timer)
//!                     .serve_connection(conn, service),
//!             );
//!         });
//!     }
//! });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::future::Sleep;

/// Runs each future hyper hands it (HTTP/2 streams, a client
/// connection's background task) in a coroutine of its own, with
/// [`coio::future::block_on`](crate::future::block_on).
///
/// ```
/// use std::io::{Read, Write};
/// use http_body_util::Empty;
/// use hyper::body::Bytes;
/// use hyper::rt::Executor as _;
/// use coio::net::{TcpListener, TcpStream};
///
/// coio::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     coio::spawn(move || -> std::io::Result<()> {
///         let (mut conn, _) = listener.accept()?;
///         conn.read(&mut [0; 1024])?;
///         conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
///     });
///     let stream = TcpStream::connect(addr)?;
///     let status = coio::future::block_on(async {
///         let (mut sender, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
///         // The connection's task, in a coroutine of its own.
///         coio::compat::hyper::Executor.execute(conn);
///         let req = hyper::Request::get("/").body(Empty::<Bytes>::new()).unwrap();
///         sender.send_request(req).await.unwrap().status()
///     });
///     assert_eq!(status, 204);
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
/// As [`coio::spawn`](crate::spawn): hyper must call it inside a runtime
/// (from a coroutine, or a thread in `Runtime::block_on`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Executor;

impl<F> ::hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        drop(crate::spawn(move || crate::future::block_on(fut)));
    }
}

/// hyper's timer on coio's timers: its sleeps are [`Sleep`]s, armed on the
/// worker of the coroutine that polls them (see
/// [`coio::future::sleep`](crate::future::sleep)).
///
/// ```
/// use std::time::{Duration, Instant};
/// use hyper::rt::Timer as _;
/// use coio::compat::hyper::Timer;
///
/// // Given to hyper, for its timeouts:
/// let mut server = hyper::server::conn::http1::Builder::new();
/// server.timer(Timer).header_read_timeout(Duration::from_secs(5));
/// // Its sleeps are coio's:
/// coio::run(|| {
///     let start = Instant::now();
///     coio::future::block_on(Timer.sleep(Duration::from_millis(5)));
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Timer;

/// A [`Sleep`] as hyper's `rt::Sleep`.
struct HyperSleep(Sleep);

impl Future for HyperSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

impl ::hyper::rt::Sleep for HyperSleep {}

impl ::hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(HyperSleep(crate::future::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(HyperSleep(crate::future::sleep_until(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn ::hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(s) => s.get_mut().0.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}
