// The runtime comparison, Go's side: `rt <case> <workers>` prints one line
// of JSON, as the Rust binaries rt_coio, rt_tokio and rt_may do (their
// shared helpers, bench/src/rt.rs, describe the cases and the sizes, which
// are the same here). `bench/run.sh runtime` builds this program and runs
// all runtimes.
//
// GOMAXPROCS is set to `workers`; the measuring code is the main goroutine,
// which shares the Ps with what it spawns.
//
// One "op" is:
//   - spawn_all: one trivial goroutine started and run to its end, with all
//     1,000,000 started before main waits for them (ns = wall time /
//     1,000,000); each adds one to a shared atomic counter, and the one that
//     reaches the target wakes main through a one-slot channel (the same
//     wait group as in the Rust binaries);
//   - spawn_waves: the same, 1,000 started and waited for at a time;
//   - yield: one runtime.Gosched(), 100 goroutines yielding at once (ns =
//     wall time / all yields);
//   - pingpong: one round trip of a token between two goroutines over two
//     unbuffered channels (Go's own tool for it);
//   - idle100k, idle1m: creating one goroutine that then blocks for good on
//     a channel nobody writes; the line also gives resident bytes per
//     goroutine.
//
// Each timed case runs once to warm up and then reps times; the line gives
// the median.
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
	spawnN       = 1_000_000
	wave         = 1_000
	yielders     = 100
	yieldsEach   = 10_000
	rounds       = 100_000
	reps         = 5
	idleSettleMs = 200
)

var (
	counter atomic.Int64
	done    = make(chan struct{}, 1)
)

// trivial counts itself and wakes the waiter if it is the target-th.
func trivial(target int64) {
	if counter.Add(1) == target {
		done <- struct{}{}
	}
}

func nsPer(start time.Time, ops int) float64 {
	return float64(time.Since(start).Nanoseconds()) / float64(ops)
}

func spawnAll() float64 {
	counter.Store(0)
	start := time.Now()
	for i := 0; i < spawnN; i++ {
		go trivial(spawnN)
	}
	<-done
	return nsPer(start, spawnN)
}

func spawnWaves() float64 {
	counter.Store(0)
	start := time.Now()
	for w := int64(1); w <= spawnN/wave; w++ {
		for i := 0; i < wave; i++ {
			go trivial(w * wave)
		}
		<-done
	}
	return nsPer(start, spawnN)
}

func yields() float64 {
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(yielders)
	for i := 0; i < yielders; i++ {
		go func() {
			for j := 0; j < yieldsEach; j++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return nsPer(start, yielders*yieldsEach)
}

// pingpong: main is A, it starts B.
func pingpong() float64 {
	ping := make(chan struct{})
	pong := make(chan struct{})
	go func() {
		for i := 0; i < rounds; i++ {
			<-ping
			pong <- struct{}{}
		}
	}()
	start := time.Now()
	for i := 0; i < rounds; i++ {
		ping <- struct{}{}
		<-pong
	}
	return nsPer(start, rounds)
}

// rssBytes reads VmRSS from /proc/self/status.
func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kib, _ := strconv.ParseInt(f[1], 10, 64)
				return kib * 1024
			}
		}
	}
	return 0
}

// idle starts n goroutines that block for good and waits until all have
// started; it returns ns per goroutine and the resident set before the
// first one.
func idle(n int64) (float64, int64) {
	never := make(chan struct{})
	counter.Store(0)
	baseline := rssBytes()
	start := time.Now()
	for i := int64(0); i < n; i++ {
		go func() {
			trivial(n)
			<-never
		}()
	}
	<-done
	return nsPer(start, int(n)), baseline
}

func parseIdle(s string) (int64, bool) {
	// strings.CutPrefix and CutSuffix need Go 1.20; this is 1.19.
	if !strings.HasPrefix(s, "idle") {
		return 0, false
	}
	rest := strings.TrimPrefix(s, "idle")
	mul := int64(1)
	if strings.HasSuffix(rest, "k") {
		rest, mul = strings.TrimSuffix(rest, "k"), 1_000
	} else if strings.HasSuffix(rest, "m") {
		rest, mul = strings.TrimSuffix(rest, "m"), 1_000_000
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n * mul, true
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: %s <spawn_all|spawn_waves|yield|pingpong|idle100k|idle1m> <workers>\n", os.Args[0])
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

	if n, ok := parseIdle(name); ok {
		ns, baseline := idle(n)
		time.Sleep(idleSettleMs * time.Millisecond)
		bytes := float64(rssBytes()-baseline) / float64(n)
		fmt.Printf("{\"runtime\":\"go\",\"case\":%q,\"workers\":%d,\"ns_per_op\":%.1f,\"bytes_per_coroutine\":%.1f}\n",
			name, workers, ns, bytes)
		// The goroutines never finish: leave at once.
		os.Exit(0)
	}

	var run func() float64
	switch name {
	case "spawn_all":
		run = spawnAll
	case "spawn_waves":
		run = spawnWaves
	case "yield":
		run = yields
	case "pingpong":
		run = pingpong
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
