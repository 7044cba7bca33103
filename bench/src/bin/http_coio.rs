//! The network comparison's HTTP server on coio: `http_coio <port>
//! <workers>` (see `coio_bench::net`).
//!
//! It is `examples/http.rs`, included as a module: one coroutine per
//! connection, blocking-style reads and writes on `coio::net::TcpStream`,
//! `httparse` for the requests, keep-alive, every pipelined request
//! answered in one write; `GET /` answers `Hello, World!` with
//! `Content-Length`, `Content-Type` and `Date` headers. A `coio::Runtime`
//! with `workers` workers, other settings at their defaults. The variant
//! `epoll` or `uring` (third word) picks the I/O driver
//! (`RuntimeBuilder::driver`); without it, the default (`COIO_DRIVER`, else
//! epoll). A server asked for io_uring that fell back to epoll exits.

#[path = "../../../examples/http.rs"]
#[allow(dead_code)]
mod http;

use coio_bench::net;

fn main() {
    let args = net::server_args();
    let rt = net::coio_runtime(&args);
    rt.block_on(move || {
        let listener =
            coio::net::TcpListener::bind(args.addr()).unwrap_or_else(|e| net::die("bind", e));
        http::accept_loop(&listener)
    })
    .unwrap_or_else(|e| net::die("accept", e));
}
