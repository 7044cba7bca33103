// Go's side of bench/src/bin/contended.rs: `contended [PROCS]` (GOMAXPROCS,
// default 2) runs 20 rounds (after one warm-up) of 8 producer goroutines
// sending 2,000 values each round-robin over 4 channels (capacities 0 to
// 3) drained by 4 consumers, and prints the milliseconds per round
// (median, min, max). Each round starts its goroutines afresh, as the Rust
// side starts a fresh runtime. Spinning hogs, if wanted, are separate
// processes (the Rust side's `hog` mode: `contended hog`).
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

const rounds = 20

func round() {
	chans := make([]chan uint64, 4)
	for i := range chans {
		chans[i] = make(chan uint64, i)
	}
	var prod sync.WaitGroup
	for p := 0; p < 8; p++ {
		prod.Add(1)
		go func(p int) {
			defer prod.Done()
			for i := 0; i < 2000; i++ {
				chans[(p+i)%4] <- uint64(i)
			}
		}(p)
	}
	counts := make(chan int, 4)
	for _, c := range chans {
		go func(c chan uint64) {
			n := 0
			for range c {
				n++
			}
			counts <- n
		}(c)
	}
	prod.Wait()
	for _, c := range chans {
		close(c)
	}
	total := 0
	for i := 0; i < 4; i++ {
		total += <-counts
	}
	if total != 16000 {
		panic("lost values")
	}
}

func main() {
	procs := 2
	if len(os.Args) > 1 {
		if os.Args[1] == "hog" {
			for {
			}
		}
		procs, _ = strconv.Atoi(os.Args[1])
	}
	runtime.GOMAXPROCS(procs)
	round()
	ms := make([]float64, rounds)
	for i := range ms {
		t := time.Now()
		round()
		ms[i] = float64(time.Since(t).Nanoseconds()) / 1e6
	}
	sort.Float64s(ms)
	fmt.Printf("go procs %d: ms per round median %.2f min %.2f max %.2f\n", procs, ms[rounds/2], ms[0], ms[rounds-1])
}
