//! The network comparison's HTTP server on hyper 1 and tokio: `http_hyper
//! <port> <workers> [current|multi]` (see `coio_bench::net`; the runtime
//! flavour is chosen as in `echo_tokio`: current-thread for one worker,
//! multi-thread otherwise, unless the third word says).
//!
//! hyper's HTTP/1 server (`hyper::server::conn::http1`, keep-alive on, as
//! by default) on a tokio::net::TcpListener on 127.0.0.1:<port>, one task
//! per connection, TCP_NODELAY on every accepted socket. Every request,
//! whatever its path, gets `200` with the body `Hello, World!` as a
//! `Full<Bytes>`, so hyper sends `content-length: 13` (and `date`).

use std::convert::Infallible;

use coio_bench::net::{self, HELLO};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        HELLO.as_bytes(),
    ))))
}

fn main() {
    let args = net::server_args();
    let current = match args.variant.as_deref() {
        None => args.workers == 1,
        Some("current") => true,
        Some("multi") => false,
        Some(other) => net::die("unknown variant (current | multi)", other),
    };
    let mut builder = if current {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.workers);
        b
    };
    let runtime = builder
        .enable_all()
        .build()
        .unwrap_or_else(|e| net::die("tokio runtime", e));
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.addr())
            .await
            .unwrap_or_else(|e| net::die("bind", e));
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), service_fn(hello))
                    .await;
            });
        }
    });
}
