//! hyper 1.x on coio: an HTTP/1.1 server answering `GET /` with `Hello,
//! World!`. Each connection is a coroutine that runs hyper's connection
//! future with `coio::future::block_on`; the socket is coio's own
//! `TcpStream` (hyper's `rt::Read`/`Write`, driven by the worker's poller,
//! no second reactor), and hyper's timer (its header-read timeout) is
//! coio's (`coio::compat::hyper::Timer`).
//!
//! Run: `cargo run --release --features hyper --example hyper [ADDR]`
//! (default `127.0.0.1:8081`), then `curl http://127.0.0.1:8081/`.
//! `COIO_WORKERS` sets the number of worker threads.

use std::convert::Infallible;
use std::io;

use coio::net::{TcpListener, TcpStream};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    coio::run(move || {
        let listener = TcpListener::bind(addr.as_str())?;
        eprintln!("hyper: listening on {}", listener.local_addr()?);
        accept_loop(&listener)
    })
}

/// Accepts connections forever, each served by its own coroutine.
pub fn accept_loop(listener: &TcpListener) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                coio::spawn(move || serve(stream));
            }
            // Out of descriptors, say: back off rather than spin.
            Err(e) => {
                eprintln!("hyper: accept: {e}");
                coio::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// Serves one connection with hyper, until the client closes it.
fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let conn = http1::Builder::new()
        .timer(coio::compat::hyper::Timer)
        .serve_connection(stream, service_fn(hello));
    if let Err(e) = coio::future::block_on(conn) {
        // A client that goes away mid-request is routine; say so only in
        // debug builds.
        if cfg!(debug_assertions) && !e.is_incomplete_message() {
            eprintln!("hyper: connection: {e}");
        }
    }
}

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/" {
        let mut not_found = Response::new(Full::new(Bytes::from_static(b"Not Found")));
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return Ok(not_found);
    }
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}
