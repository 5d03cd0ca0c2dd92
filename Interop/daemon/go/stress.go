// A concurrency run shaped like upstream bpfman's daemon stress test: N concurrent callers, each doing
// ITERATIONS rounds of Load -> Get -> Attach -> Get -> Detach -> Get -> Unload -> Get per kind, through the
// bindings the Kubernetes agent uses.
//
// Usage: stress SOCKET CALLERS ITERATIONS KIND=ARGS...
//
//	tracepoint=OBJECT,FN,GROUP/NAME   uprobe=OBJECT,FN,TARGET,SYMBOL   tcx=OBJECT,FN,IFACE_PREFIX,NETNS
//	xdp=OBJECT,FN,IFACE_PREFIX,NETNS   tc=OBJECT,FN,IFACE_PREFIX,NETNS   (caller N attaches to its own
//	interface, IFACE_PREFIX<N>, as SPEC §10 scenario 45 asks of the network kinds)
//	kprobe=OBJECT,FN,KERNEL_FN   fentry=OBJECT,FN,KERNEL_FN   fexit=OBJECT,FN,KERNEL_FN   lsm=OBJECT,FN,HOOK
//	(fentry and fexit name their kernel function at Load, LSM programs their hook)
//
// Prints "PASS <calls> calls in <seconds> s" or the failures, and exits 1 on any failure.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	gobpfman "github.com/bpfman/bpfman/clients/gobpfman/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type kind struct {
	name  string
	ptype gobpfman.BpfmanProgramType
	args  []string
}

func contains(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func attachInfo(k kind, caller int) *gobpfman.AttachInfo {
	switch k.name {
	case "tracepoint":
		return &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_TracepointAttachInfo{
			TracepointAttachInfo: &gobpfman.TracepointAttachInfo{Tracepoint: k.args[2]}}}
	case "uprobe":
		pid := int32(os.Getpid())
		fn := k.args[3]
		return &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_UprobeAttachInfo{
			UprobeAttachInfo: &gobpfman.UprobeAttachInfo{Target: k.args[2], FnName: &fn, Pid: &pid}}}
	case "xdp":
		netns := k.args[3]
		return &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_XdpAttachInfo{
			XdpAttachInfo: &gobpfman.XDPAttachInfo{Priority: 100, Iface: k.args[2] + strconv.Itoa(caller), Netns: &netns}}}
	case "tc":
		netns := k.args[3]
		return &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_TcAttachInfo{
			TcAttachInfo: &gobpfman.TCAttachInfo{Priority: 100, Iface: k.args[2] + strconv.Itoa(caller), Direction: "ingress", Netns: &netns}}}
	case "kprobe":
		return &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_KprobeAttachInfo{
			KprobeAttachInfo: &gobpfman.KprobeAttachInfo{FnName: k.args[2]}}}
	case "fentry":
		return &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_FentryAttachInfo{FentryAttachInfo: &gobpfman.FentryAttachInfo{}}}
	case "fexit":
		return &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_FexitAttachInfo{FexitAttachInfo: &gobpfman.FexitAttachInfo{}}}
	case "lsm":
		return &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_LsmAttachInfo{LsmAttachInfo: &gobpfman.LsmAttachInfo{}}}
	case "tcx":
		netns := k.args[3]
		return &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_TcxAttachInfo{
			TcxAttachInfo: &gobpfman.TCXAttachInfo{Priority: 100, Iface: k.args[2] + strconv.Itoa(caller), Direction: "ingress", Netns: &netns}}}
	}
	return nil
}

// loadInfo names the program and, for the kinds that take it at load, the kernel function or LSM hook.
func loadInfo(k kind) *gobpfman.LoadInfo {
	info := &gobpfman.LoadInfo{Name: k.args[1], ProgramType: k.ptype}
	switch k.name {
	case "fentry":
		info.Info = &gobpfman.ProgSpecificInfo{Info: &gobpfman.ProgSpecificInfo_FentryLoadInfo{
			FentryLoadInfo: &gobpfman.FentryLoadInfo{FnName: k.args[2]}}}
	case "fexit":
		info.Info = &gobpfman.ProgSpecificInfo{Info: &gobpfman.ProgSpecificInfo_FexitLoadInfo{
			FexitLoadInfo: &gobpfman.FexitLoadInfo{FnName: k.args[2]}}}
	case "lsm":
		info.Info = &gobpfman.ProgSpecificInfo{Info: &gobpfman.ProgSpecificInfo_LsmLoadInfo{
			LsmLoadInfo: &gobpfman.LsmLoadInfo{HookName: k.args[2]}}}
	}
	return info
}

func round(ctx context.Context, c gobpfman.BpfmanClient, k kind, caller int) error {
	meta := map[string]string{"goroutine": strconv.Itoa(caller), "kind": k.name}
	loaded, err := c.Load(ctx, &gobpfman.LoadRequest{
		Bytecode: &gobpfman.BytecodeLocation{Location: &gobpfman.BytecodeLocation_File{File: k.args[0]}},
		Info:     []*gobpfman.LoadInfo{loadInfo(k)},
		Metadata: meta,
	})
	if err != nil {
		return fmt.Errorf("Load: %v", err)
	}
	id := loaded.Programs[0].GetKernelInfo().GetId()
	got, err := c.Get(ctx, &gobpfman.GetRequest{Id: id})
	if err != nil || got.GetKernelInfo().GetId() != id || got.GetInfo().GetMetadata()["goroutine"] != meta["goroutine"] {
		return fmt.Errorf("Get %d after Load: %v %v", id, got, err)
	}
	attached, err := c.Attach(ctx, &gobpfman.AttachRequest{Id: id, Attach: attachInfo(k, caller)})
	if err != nil || attached.GetLinkId() == 0 {
		return fmt.Errorf("Attach %d: %v", id, err)
	}
	link := attached.GetLinkId()
	got, err = c.Get(ctx, &gobpfman.GetRequest{Id: id})
	if err != nil || !contains(got.GetInfo().GetLinks(), link) {
		return fmt.Errorf("Get %d after Attach: link %d missing (%v)", id, link, err)
	}
	if _, err := c.Detach(ctx, &gobpfman.DetachRequest{LinkId: link}); err != nil {
		return fmt.Errorf("Detach %d: %v", link, err)
	}
	got, err = c.Get(ctx, &gobpfman.GetRequest{Id: id})
	if err != nil || contains(got.GetInfo().GetLinks(), link) {
		return fmt.Errorf("Get %d after Detach: %v %v", id, got.GetInfo().GetLinks(), err)
	}
	if _, err := c.Unload(ctx, &gobpfman.UnloadRequest{Id: id}); err != nil {
		return fmt.Errorf("Unload %d: %v", id, err)
	}
	if _, err := c.Get(ctx, &gobpfman.GetRequest{Id: id}); status.Code(err) != codes.NotFound {
		return fmt.Errorf("Get %d after Unload: want NotFound, got %v", id, err)
	}
	return nil
}

func main() {
	if len(os.Args) < 5 {
		fmt.Println("usage: stress SOCKET CALLERS ITERATIONS KIND=ARGS...")
		os.Exit(2)
	}
	callers, _ := strconv.Atoi(os.Args[2])
	iterations, _ := strconv.Atoi(os.Args[3])
	types := map[string]gobpfman.BpfmanProgramType{
		"tracepoint": gobpfman.BpfmanProgramType_TRACEPOINT, "uprobe": gobpfman.BpfmanProgramType_UPROBE,
		"tcx": gobpfman.BpfmanProgramType_TCX, "xdp": gobpfman.BpfmanProgramType_XDP, "tc": gobpfman.BpfmanProgramType_TC,
		"kprobe": gobpfman.BpfmanProgramType_KPROBE, "fentry": gobpfman.BpfmanProgramType_FENTRY,
		"fexit": gobpfman.BpfmanProgramType_FEXIT, "lsm": gobpfman.BpfmanProgramType_LSM,
	}
	var kinds []kind
	for _, spec := range os.Args[4:] {
		parts := strings.SplitN(spec, "=", 2)
		kinds = append(kinds, kind{name: parts[0], ptype: types[parts[0]], args: strings.Split(parts[1], ",")})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := grpc.DialContext(ctx, "unix://"+os.Args[1], grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fmt.Printf("FAIL: dial: %v\n", err)
		os.Exit(1)
	}
	defer conn.Close()
	c := gobpfman.NewBpfmanClient(conn)
	start := time.Now()
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < iterations; i++ {
				for _, k := range kinds {
					if err := round(ctx, c, k, g); err != nil {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("caller %d iteration %d %s: %v", g, i, k.name, err))
						mu.Unlock()
					}
				}
			}
		}(g)
	}
	wg.Wait()
	if len(failures) > 0 {
		for _, f := range failures {
			fmt.Println("FAIL: " + f)
		}
		os.Exit(1)
	}
	fmt.Printf("PASS %d calls in %.2f s\n", callers*iterations*len(kinds)*8, time.Since(start).Seconds())
}
