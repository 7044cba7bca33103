//! The network comparison's echo server on may: `echo_may <port> <workers>`
//! (see `coio_bench::net`).
//!
//! `may::config().set_workers(workers)` with the workers not pinned to
//! cores (`set_worker_pin(false)`; may pins them by default, which none of
//! the other servers does), other settings at their defaults (32 KiB
//! stacks). A may::net::TcpListener on 127.0.0.1:<port>, accepted in a loop
//! by one coroutine, and one coroutine per connection that reads up to
//! `ECHO_BUF` bytes and writes them back until the peer closes; TCP_NODELAY
//! on every accepted socket.

use std::io::{Read, Write};

use coio_bench::net::{self, ECHO_BUF};
use may::go;
use may::net::{TcpListener, TcpStream};

fn serve(mut s: TcpStream) {
    let mut buf = [0u8; ECHO_BUF];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn main() {
    let args = net::server_args();
    may::config().set_workers(args.workers);
    may::config().set_worker_pin(false);
    let addr = args.addr();
    let accept = go!(move || {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| net::die("bind", e));
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            let _ = s.set_nodelay(true);
            go!(move || serve(s));
        }
    });
    let _ = accept.join();
}
