//! The network comparison's HTTP server on may: `http_may <port> <workers>`
//! (see `coio_bench::net`), the shape of the `may_minihttp` crate's hello
//! example.
//!
//! `may::config().set_workers(workers)`, workers not pinned (as in
//! `echo_may`). may_minihttp's server on 127.0.0.1:<port>: one coroutine
//! per connection, HTTP/1.1 with keep-alive, requests parsed and answered
//! in batches (pipelining); every request gets `200` with the body
//! `Hello, World!`, which may_minihttp sends with `Content-Length` (and
//! `Server` and `Date`). Unlike the other servers it leaves TCP_NODELAY
//! off on accepted sockets (the crate's choice; its code has the call
//! commented out), which with one response per write makes no difference
//! to a request-response client.

use std::io;

use coio_bench::net::{self, HELLO};
use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

#[derive(Clone)]
struct Hello;

impl HttpService for Hello {
    fn call(&mut self, _req: Request, rsp: &mut Response) -> io::Result<()> {
        rsp.body(HELLO);
        Ok(())
    }
}

struct HelloFactory;

impl HttpServiceFactory for HelloFactory {
    type Service = Hello;

    fn new_service(&self, _: usize) -> Hello {
        Hello
    }
}

fn main() {
    let args = net::server_args();
    may::config().set_workers(args.workers);
    may::config().set_worker_pin(false);
    let server = HelloFactory
        .start(args.addr())
        .unwrap_or_else(|e| net::die("bind", e));
    let _ = server.join();
}
