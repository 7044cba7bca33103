// The balance comparison, Go's side: `balance <case> <workers>` prints one
// line of JSON, as balance_coio and balance_tokio do; bench/src/balance.rs
// describes the scenario, the cases and the sizes, which are the same here
// (and so is the random sequence of the random8 case).
//
// GOMAXPROCS is set to `workers`; the measuring code is the main goroutine.
// Efficiency is per core used: the fewer of the workers and the machine's
// cores.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

const (
	coroutines = 64
	rounds     = 10
	workMs     = 2
	sliceUs    = 50
	randomBusy = 8
	slices     = workMs * 1000 / sliceUs
)

// xorshift64*, seeded as in bench/src/balance.rs.
type rng struct{ x uint64 }

func (r *rng) next() uint64 {
	x := r.x
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	r.x = x
	return x * 0x2545f4914f6cdd1d
}

func (r *rng) pick(k, n int) []int {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	for i := 0; i < k; i++ {
		j := i + int(r.next()%uint64(n-i))
		all[i], all[j] = all[j], all[i]
	}
	return all[:k]
}

func slice() {
	end := time.Now().Add(sliceUs * time.Microsecond)
	for time.Now().Before(end) {
	}
}

func work() {
	for i := 0; i < slices; i++ {
		slice()
		runtime.Gosched()
	}
}

func main() {
	c := "all"
	if len(os.Args) > 1 {
		c = os.Args[1]
	}
	workers := 2
	if len(os.Args) > 2 {
		workers, _ = strconv.Atoi(os.Args[2])
	}
	runtime.GOMAXPROCS(workers)
	done := make(chan struct{}, coroutines)
	orders := make([]chan struct{}, coroutines)
	for i := range orders {
		orders[i] = make(chan struct{}, 1)
		go func(order chan struct{}) {
			for range order {
				if c == "child" {
					joined := make(chan struct{})
					go func() { work(); close(joined) }()
					<-joined
				} else {
					work()
				}
				done <- struct{}{}
			}
		}(orders[i])
	}
	time.Sleep(20 * time.Millisecond)
	r := rng{0x9e3779b97f4a7c15}
	busy := 0
	start := time.Now()
	for round := 0; round < rounds; round++ {
		var who []int
		if c == "random8" {
			who = r.pick(randomBusy, coroutines)
		} else {
			who = make([]int, coroutines)
			for i := range who {
				who[i] = i
			}
		}
		for _, i := range who {
			orders[i] <- struct{}{}
		}
		for range who {
			<-done
		}
		busy += len(who)
	}
	secs := time.Since(start).Seconds()
	cores := workers
	if runtime.NumCPU() < cores {
		cores = runtime.NumCPU()
	}
	eff := float64(busy) * workMs / 1000 / float64(cores) / secs
	fmt.Printf("{\"runtime\":\"go\",\"case\":\"%s\",\"workers\":%d,\"efficiency\":%.3f,\"secs\":%.4f}\n", c, workers, eff, secs)
}
