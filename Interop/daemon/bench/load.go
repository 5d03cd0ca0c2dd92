// Load generator for the daemon benchmark: CALLERS goroutines calling back to back over one grpc-go connection
// for SECONDS; prints "calls=N rate=R p50us=X p99us=Y". Methods:
//
//	get          Get(id)
//	list         List(bpfman_programs_only)
//	get-unknown  Get(id) of an id that does not exist: NOT_FOUND is the expected answer
//	tcx          Load(-object, program -fn as TCX) then Attach(TCX, -iface ingress), timed together; Detach and
//	             Unload follow, untimed (the reference daemon's "TCX Load+Attach", INTEROP.md)
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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func main() {
	socket := flag.String("socket", "", "Unix socket path")
	method := flag.String("method", "get", "get or list")
	id := flag.Uint("id", 1, "program id for Get")
	callers := flag.Int("callers", 1, "concurrent callers")
	seconds := flag.Float64("seconds", 3, "measured duration")
	object := flag.String("object", "", "tcx: object file")
	fn := flag.String("fn", "", "tcx: program name")
	iface := flag.String("iface", "", "tcx: interface")
	flag.Parse()
	conn, err := grpc.Dial("unix://"+*socket, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	c := gobpfman.NewBpfmanClient(conn)
	ctx := context.Background()
	// call makes one call (tcx: one Load+Attach) and returns the time to time; tcx's teardown is not in it.
	call := func() (time.Duration, error) {
		t := time.Now()
		switch *method {
		case "list":
			_, err := c.List(ctx, &gobpfman.ListRequest{BpfmanProgramsOnly: func() *bool { b := true; return &b }()})
			return time.Since(t), err
		case "get-unknown":
			_, err := c.Get(ctx, &gobpfman.GetRequest{Id: uint32(*id)})
			if status.Code(err) != codes.NotFound {
				return 0, fmt.Errorf("want NotFound, got %v", err)
			}
			return time.Since(t), nil
		case "tcx":
			loaded, err := c.Load(ctx, &gobpfman.LoadRequest{
				Bytecode: &gobpfman.BytecodeLocation{Location: &gobpfman.BytecodeLocation_File{File: *object}},
				Info:     []*gobpfman.LoadInfo{{Name: *fn, ProgramType: gobpfman.BpfmanProgramType_TCX}},
			})
			if err != nil {
				return 0, err
			}
			program := loaded.Programs[0].GetKernelInfo().GetId()
			attached, err := c.Attach(ctx, &gobpfman.AttachRequest{Id: program, Attach: &gobpfman.AttachInfo{
				Info: &gobpfman.AttachInfo_TcxAttachInfo{TcxAttachInfo: &gobpfman.TCXAttachInfo{
					Priority: 100, Iface: *iface, Direction: "ingress"}}}})
			elapsed := time.Since(t)
			if err != nil {
				return 0, err
			}
			if _, err := c.Detach(ctx, &gobpfman.DetachRequest{LinkId: attached.GetLinkId()}); err != nil {
				return 0, err
			}
			_, err = c.Unload(ctx, &gobpfman.UnloadRequest{Id: program})
			return elapsed, err
		}
		_, err := c.Get(ctx, &gobpfman.GetRequest{Id: uint32(*id)})
		return time.Since(t), err
	}
	warmUp := 200
	if *method == "tcx" {
		warmUp = 5
	}
	for i := 0; i < warmUp; i++ {
		if _, err := call(); err != nil {
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
				took, err := call()
				if err != nil {
					fmt.Println("call:", err)
					os.Exit(1)
				}
				mine = append(mine, took)
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
