//! The network comparison's echo server on coio: `echo_coio <port>
//! <workers>` (see `coio_bench::net`).
//!
//! It is `examples/echo.rs`, included as a module, so that the benchmark
//! measures the very code the example shows and the tests drive: a
//! `coio::net::TcpListener` accepted in a loop by one coroutine, and one
//! coroutine per connection that reads up to 4096 bytes (`ECHO_BUF`) and
//! writes them back until the peer closes; TCP_NODELAY on every accepted
//! socket. A `coio::Runtime` with `workers` workers, other settings at
//! their defaults (128 KiB stacks, reserved, not committed). The variant
//! `epoll` or `uring` (third word) picks the I/O driver
//! (`RuntimeBuilder::driver`); without it, the default (`COIO_DRIVER`, else
//! epoll). A server asked for io_uring that fell back to epoll exits.

#[path = "../../../examples/echo.rs"]
#[allow(dead_code)]
mod echo;

use coio_bench::net;

fn main() {
    let args = net::server_args();
    let rt = net::coio_runtime(&args);
    rt.block_on(move || {
        let listener =
            coio::net::TcpListener::bind(args.addr()).unwrap_or_else(|e| net::die("bind", e));
        echo::accept_loop(&listener)
    })
    .unwrap_or_else(|e| net::die("accept", e));
}
