//! The network comparison's hyper server on coio: `http_hyper_coio <port>
//! <workers>` (see `coio_bench::net`).
//!
//! The same hyper 1.x HTTP/1 server as `http_hyper` (the same service, the
//! same `http1::Builder` settings: no timer, so no header-read timeout, as
//! there), on coio instead of tokio: one coroutine per connection running
//! hyper's connection future in `coio::future::block_on`, over coio's own
//! `TcpStream` (hyper's `rt::Read`/`Write` with coio's `hyper` feature),
//! `TCP_NODELAY` set. A `coio::Runtime` with `workers` workers, other
//! settings at their defaults (the variant word picks the driver, as for
//! `http_coio`).

use std::convert::Infallible;

use coio_bench::net::{self, HELLO};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        HELLO.as_bytes(),
    ))))
}

fn main() {
    let args = net::server_args();
    let rt = net::coio_runtime(&args);
    rt.block_on(move || {
        let listener =
            coio::net::TcpListener::bind(args.addr()).unwrap_or_else(|e| net::die("bind", e));
        loop {
            let Ok((s, _)) = listener.accept() else {
                continue;
            };
            let _ = s.set_nodelay(true);
            coio::spawn(move || {
                let _ = coio::future::block_on(
                    http1::Builder::new().serve_connection(s, service_fn(hello)),
                );
            });
        }
    });
}
