//! The network comparison's echo server on plain OS threads, to test the
//! harness: `echo_std <port> <workers>` (see `coio_bench::net`).
//!
//! A std::net::TcpListener on 127.0.0.1:<port>, the main thread accepting,
//! and one OS thread per connection that reads up to `ECHO_BUF` bytes and
//! writes them back until the peer closes; TCP_NODELAY on every accepted
//! socket. `workers` is taken but has no meaning here: the kernel schedules
//! the threads (under `taskset -c 0` they all share CPU 0).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use coio_bench::net::{self, ECHO_BUF};

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
    let listener = TcpListener::bind(args.addr()).unwrap_or_else(|e| net::die("bind", e));
    for s in listener.incoming() {
        let Ok(s) = s else { continue };
        let _ = s.set_nodelay(true);
        std::thread::spawn(move || serve(s));
    }
}
