// Image benchmark client (Interop/images/bench/run.sh): times single RPCs on the daemon's Unix socket with
// grpc-go, so that what is measured is the call and not a process start. One List goes first on the connection
// (untimed), so the HTTP/2 handshake is not in any timed call. Methods:
//
//	pull       PullBytecode(-url, -policy) once; prints "us=N"
//	load-both  -n rounds of Load(-object as a file), then Load(-url with -policy); each Load timed alone and
//	           followed by an untimed Unload of what it loaded; prints a "file p50us= p90us= ..." line and an
//	           "image ..." line. File and image alternate so that drift on a shared VM hits both alike.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	gobpfman "github.com/bpfman/bpfman/clients/gobpfman/v1"
	"google.golang.org/grpc"
)

func main() {
	socket := flag.String("socket", "", "Unix socket path")
	method := flag.String("method", "pull", "pull or load-both")
	url := flag.String("url", "", "image url")
	policy := flag.Int("policy", 0, "image pull policy: 0 Always, 1 IfNotPresent, 2 Never")
	object := flag.String("object", "", "load-both: the object file")
	fn := flag.String("fn", "count_kill", "load-both: the tracepoint program to load")
	rounds := flag.Int("n", 20, "load-both: rounds")
	flag.Parse()
	conn, err := grpc.Dial("unix://"+*socket, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fail("dial", err)
	}
	c := gobpfman.NewBpfmanClient(conn)
	ctx := context.Background()
	if _, err := c.List(ctx, &gobpfman.ListRequest{}); err != nil {
		fail("list", err)
	}
	image := &gobpfman.BytecodeImage{Url: *url, ImagePullPolicy: int32(*policy)}
	switch *method {
	case "pull":
		t := time.Now()
		if _, err := c.PullBytecode(ctx, &gobpfman.PullBytecodeRequest{Image: image}); err != nil {
			fail("pull", err)
		}
		fmt.Printf("us=%d\n", time.Since(t).Microseconds())
	case "load-both":
		info := []*gobpfman.LoadInfo{{Name: *fn, ProgramType: gobpfman.BpfmanProgramType_TRACEPOINT}}
		file := &gobpfman.BytecodeLocation{Location: &gobpfman.BytecodeLocation_File{File: *object}}
		fromImage := &gobpfman.BytecodeLocation{Location: &gobpfman.BytecodeLocation_Image{Image: image}}
		load := func(where *gobpfman.BytecodeLocation) time.Duration {
			t := time.Now()
			loaded, err := c.Load(ctx, &gobpfman.LoadRequest{Bytecode: where, Info: info})
			took := time.Since(t)
			if err != nil {
				fail("load", err)
			}
			id := loaded.Programs[0].GetKernelInfo().GetId()
			if _, err := c.Unload(ctx, &gobpfman.UnloadRequest{Id: id}); err != nil {
				fail("unload", err)
			}
			return took
		}
		// One untimed round first: the first Load of a daemon's life pays for things later ones do not.
		load(file)
		load(fromImage)
		var files, images []time.Duration
		for i := 0; i < *rounds; i++ {
			files = append(files, load(file))
			images = append(images, load(fromImage))
		}
		report("file", files)
		report("image", images)
	default:
		fail("method", fmt.Errorf("unknown method %q", *method))
	}
}

// report prints the median and the 90th percentile (nearest rank) of the samples, in µs.
func report(name string, samples []time.Duration) {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	n := len(samples)
	p90 := (n*9+9)/10 - 1
	fmt.Printf("%s n=%d p50us=%d p90us=%d minus=%d maxus=%d\n", name, n, samples[n/2].Microseconds(),
		samples[p90].Microseconds(), samples[0].Microseconds(), samples[n-1].Microseconds())
}

func fail(what string, err error) {
	fmt.Println(what+":", err)
	os.Exit(1)
}
