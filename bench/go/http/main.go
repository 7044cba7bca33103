// The network comparison's HTTP server in Go: `http <port> <workers>`, as
// the Rust HTTP servers are called (bench/src/net.rs describes them all).
// `bench/run.sh net` builds this program, starts it, drives it with wrk and
// kills it.
//
// GOMAXPROCS is set to `workers`. net/http's server on 127.0.0.1:<port>
// (keep-alive on, one goroutine per connection, TCP_NODELAY as Go sets it
// by default); every request gets 200 with the body "Hello, World!" and,
// set explicitly, Content-Length: 13 and Content-Type: text/plain (net/http
// adds Date).
package main

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
)

var hello = []byte("Hello, World!")

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: http <port> <workers>")
		os.Exit(2)
	}
	port, err1 := strconv.Atoi(os.Args[1])
	workers, err2 := strconv.Atoi(os.Args[2])
	if err1 != nil || err2 != nil || workers < 1 {
		fmt.Fprintln(os.Stderr, "usage: http <port> <workers>")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(workers)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Content-Type"] = []string{"text/plain"}
		hd["Content-Length"] = []string{"13"}
		w.Write(hello)
	})
	err := http.ListenAndServe("127.0.0.1:"+strconv.Itoa(port), h)
	fmt.Fprintln(os.Stderr, "serve:", err)
	os.Exit(1)
}
