// Load generator for the daemon benchmark: CALLERS goroutines calling Get(id) or List(programs only) back
// to back over one grpc-go connection for SECONDS; prints "calls=N rate=R p50us=X p99us=Y".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	gobpfman "github.com/bpfman/bpfman/clients/gobpfman/v1"
	"google.golang.org/grpc"
)

func main() {
	socket := flag.String("socket", "", "Unix socket path")
	method := flag.String("method", "get", "get or list")
	id := flag.Uint("id", 1, "program id for Get")
	callers := flag.Int("callers", 1, "concurrent callers")
	seconds := flag.Float64("seconds", 3, "measured duration")
	flag.Parse()
	conn, err := grpc.Dial("unix://"+*socket, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	c := gobpfman.NewBpfmanClient(conn)
	call := func() error {
		if *method == "list" {
			_, err := c.List(context.Background(), &gobpfman.ListRequest{BpfmanProgramsOnly: func() *bool { b := true; return &b }()})
			return err
		}
		_, err := c.Get(context.Background(), &gobpfman.GetRequest{Id: uint32(*id)})
		return err
	}
	for i := 0; i < 200; i++ { // warm-up
		if err := call(); err != nil {
			fmt.Println("call:", err)
			os.Exit(1)
		}
	}
	var mu sync.Mutex
	var latencies []time.Duration
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Duration(*seconds * float64(time.Second)))
	start := time.Now()
	for g := 0; g < *callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t := time.Now()
				if err := call(); err != nil {
					fmt.Println("call:", err)
					os.Exit(1)
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	n := len(latencies)
	fmt.Printf("calls=%d rate=%.0f p50us=%.0f p99us=%.0f\n", n, float64(n)/elapsed,
		float64(latencies[n/2].Microseconds()), float64(latencies[n*99/100].Microseconds()))
}
