// The network comparison's echo server in Go: `echo <port> <workers>`, as
// the Rust echo servers are called (bench/src/net.rs describes them all).
// `bench/run.sh net` builds this program, starts it, drives it with
// loadgen and kills it.
//
// GOMAXPROCS is set to `workers`. A net.Listener on 127.0.0.1:<port>, the
// main goroutine accepting, and one goroutine per connection that reads up
// to 4096 bytes and writes them back until the peer closes; TCP_NODELAY on
// every accepted socket (Go's default, set again explicitly).
package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
)

func serve(c *net.TCPConn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: echo <port> <workers>")
		os.Exit(2)
	}
	port, err1 := strconv.Atoi(os.Args[1])
	workers, err2 := strconv.Atoi(os.Args[2])
	if err1 != nil || err2 != nil || workers < 1 {
		fmt.Fprintln(os.Stderr, "usage: echo <port> <workers>")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(workers)
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bind:", err)
		os.Exit(1)
	}
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			continue
		}
		c.SetNoDelay(true)
		go serve(c)
	}
}
