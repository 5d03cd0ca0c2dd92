// grpc-go load generator for the transport benchmark: N callers share one connection and call
// /h2test.v1.Echo/Unary back to back for a fixed time.
// Usage: loadgen -socket PATH -callers N -seconds S
// Prints: calls=<n> rate=<calls/s> p50us=<µs> p99us=<µs> errors=<n>
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"

	pb "h2test/echopb"
)

func main() {
	socket := flag.String("socket", "", "Unix socket path")
	callers := flag.Int("callers", 1, "concurrent callers")
	seconds := flag.Float64("seconds", 3, "measured duration")
	warmup := flag.Float64("warmup", 0.5, "unmeasured warm-up")
	flag.Parse()
	conn, err := grpc.Dial("unix://"+*socket, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", *socket)
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	client := pb.NewEchoClient(conn)
	request := &pb.EchoRequest{Text: "ping"}

	run := func(d time.Duration, record bool) ([]time.Duration, int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var all []time.Duration
		errors := 0
		stop := time.Now().Add(d)
		for i := 0; i < *callers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]time.Duration, 0, 1<<16)
				errs := 0
				for time.Now().Before(stop) {
					start := time.Now()
					_, err := client.Unary(context.Background(), request)
					if err != nil {
						errs++
						continue
					}
					if record {
						local = append(local, time.Since(start))
					}
				}
				mu.Lock()
				all = append(all, local...)
				errors += errs
				mu.Unlock()
			}()
		}
		wg.Wait()
		return all, errors
	}
	run(time.Duration(*warmup*float64(time.Second)), false)
	latencies, errors := run(time.Duration(*seconds*float64(time.Second)), true)
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	n := len(latencies)
	if n == 0 {
		fmt.Println("calls=0 rate=0 p50us=0 p99us=0 errors=", errors)
		os.Exit(1)
	}
	fmt.Printf("calls=%d rate=%.0f p50us=%.0f p99us=%.0f errors=%d\n", n, float64(n)/(*seconds),
		float64(latencies[n/2].Microseconds()), float64(latencies[n*99/100].Microseconds()), errors)
}
