// The channel and lock comparison, Go's side: `ch <case> <workers>` prints
// one line of JSON, as the Rust binaries ch_coio, ch_tokio, ch_may and
// ch_xbeam do (their shared helpers, bench/src/ch.rs, describe the cases,
// the sizes and what the clock covers, which are the same here).
// `bench/run.sh chan` builds this program and runs all runtimes.
//
// GOMAXPROCS is set to `workers`; the measuring code is the main goroutine,
// which shares the Ps with what it starts. The clock runs from just before
// the first `go` statement until a WaitGroup of every goroutine started is
// done (the Rust binaries join each one's handle instead).
//
// One "op" is:
//   - pingpong: one round trip of a value between two goroutines over two
//     unbuffered channels, `make(chan int)` (rendezvous);
//   - mpmc_bounded: one of 1,000,000 uint64 moved from 4 producer
//     goroutines to 4 consumer goroutines through one `make(chan uint64,
//     128)`. The last producer to finish closes the channel (as dropping
//     the last sender does in Rust); the consumers range over it and then
//     hand their count and sum to main, which checks the totals;
//   - mpmc_unbounded: the same through a channel with room for all
//     1,000,000 values, `make(chan uint64, 1_000_000)`: Go has no unbounded
//     channel, and with that much room a sender never waits, as with one;
//   - mutex: one of 1,000,000 increments of a counter behind one
//     sync.Mutex, made by 8 goroutines at once.
//
// Each case runs once to warm up and then reps times; the line gives the
// median.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	rounds         = 100_000
	producers      = 4
	consumers      = 4
	messages       = 1_000_000
	capacity       = 128
	lockers        = 8
	increments     = 1_000_000
	incrementsEach = increments / lockers
	reps           = 5
)

func nsPer(start time.Time, ops int) float64 {
	return float64(time.Since(start).Nanoseconds()) / float64(ops)
}

// pingpong: main is A, it starts B, which sends back what it gets.
func pingpong() float64 {
	ping := make(chan int)
	pong := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(1)
	go func() {
		for i := 0; i < rounds; i++ {
			pong <- <-ping
		}
		wg.Done()
	}()
	for i := 0; i < rounds; i++ {
		ping <- i
		<-pong
	}
	wg.Wait()
	return nsPer(start, rounds)
}

// received is what one consumer got: how many values, and their sum.
type received struct {
	count int
	sum   uint64
}

// mpmc starts 4 consumers, then 4 producers, on ch.
func mpmc(ch chan uint64) float64 {
	var wg sync.WaitGroup
	var sending atomic.Int64
	got := make([]received, consumers)
	start := time.Now()
	wg.Add(consumers + producers)
	for c := 0; c < consumers; c++ {
		go func(r *received) {
			// Locals, not *r: the slots of got share a cache line.
			count, sum := 0, uint64(0)
			for v := range ch {
				count++
				sum += v
			}
			*r = received{count, sum}
			wg.Done()
		}(&got[c])
	}
	sending.Store(producers)
	for p := 0; p < producers; p++ {
		go func(p uint64) {
			each := uint64(messages / producers)
			for v := p * each; v < (p+1)*each; v++ {
				ch <- v
			}
			if sending.Add(-1) == 0 {
				close(ch)
			}
			wg.Done()
		}(uint64(p))
	}
	wg.Wait()
	ns := nsPer(start, messages)
	var total received
	for _, r := range got {
		total.count += r.count
		total.sum += r.sum
	}
	expected := uint64(messages) * (messages - 1) / 2
	if total.count != messages || total.sum != expected {
		panic(fmt.Sprintf("consumers received %d values summing to %d, expected %d summing to %d",
			total.count, total.sum, messages, expected))
	}
	return ns
}

func mpmcBounded() float64 {
	return mpmc(make(chan uint64, capacity))
}

func mpmcUnbounded() float64 {
	return mpmc(make(chan uint64, messages))
}

// mutex: 8 goroutines incrementing one counter, each taking the lock for
// every increment.
func mutex() float64 {
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	start := time.Now()
	wg.Add(lockers)
	for i := 0; i < lockers; i++ {
		go func() {
			for j := 0; j < incrementsEach; j++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	ns := nsPer(start, increments)
	if counter != increments {
		panic(fmt.Sprintf("the counter is %d after %d increments", counter, increments))
	}
	return ns
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: %s <pingpong|mpmc_bounded|mpmc_unbounded|mutex> <workers>\n", os.Args[0])
	os.Exit(2)
}

func main() {
	if len(os.Args) != 3 {
		usage()
	}
	name := os.Args[1]
	workers, err := strconv.Atoi(os.Args[2])
	if err != nil || workers <= 0 {
		usage()
	}
	runtime.GOMAXPROCS(workers)

	var run func() float64
	switch name {
	case "pingpong":
		run = pingpong
	case "mpmc_bounded":
		run = mpmcBounded
	case "mpmc_unbounded":
		run = mpmcUnbounded
	case "mutex":
		run = mutex
	default:
		usage()
	}
	samples := make([]float64, 0, reps+1)
	for i := 0; i <= reps; i++ {
		samples = append(samples, run())
	}
	samples = samples[1:] // the warm-up
	sorted := append([]float64(nil), samples...)
	sort.Float64s(sorted)
	median := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	parts := make([]string, len(samples))
	for i, s := range samples {
		parts[i] = strconv.FormatFloat(s, 'f', 1, 64)
	}
	fmt.Printf("{\"runtime\":\"go\",\"case\":%q,\"workers\":%d,\"ns_per_op\":%.1f,\"samples\":[%s]}\n",
		name, workers, median, strings.Join(parts, ","))
}
