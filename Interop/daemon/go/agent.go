// A bpfman client shaped like the Kubernetes agent (bpfman-operator's bpfman-agent): it imports the
// generated bindings from github.com/bpfman/bpfman/clients/gobpfman/v1 and drives the daemon over its
// Unix socket with grpc-go.
//
// Usage: agent SOCKET OBJECT KIND ARGS...
//
//	agent SOCK OBJ tracepoint FN GROUP/NAME
//	agent SOCK OBJ tcx FN IFACE DIRECTION NETNS
//	agent SOCK OBJ tc FN IFACE DIRECTION NETNS
//	agent SOCK OBJ xdp FN IFACE NETNS
//
// OBJ is a file path, or image:URL for a bytecode image (pull policy IfNotPresent, as the operator's default),
// in which case the image url and policy must come back from Load and Get with empty credentials.
// With AGENT_KEEP=1 in the environment the agent stops after Attach and its checks, leaving the program loaded
// and attached as the real agent does (its bpfman.io/uuid is then unique to the run).
// Prints PASS on success; any unexpected reply exits 1.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	gobpfman "github.com/bpfman/bpfman/clients/gobpfman/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func contains(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func main() {
	if len(os.Args) < 5 {
		fail("usage: agent SOCKET OBJECT KIND ARGS...")
	}
	sock, object, kind, fn := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, "unix://"+sock, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fail("dial: %v", err)
	}
	defer conn.Close()
	c := gobpfman.NewBpfmanClient(conn)

	programType := map[string]gobpfman.BpfmanProgramType{
		"tracepoint": gobpfman.BpfmanProgramType_TRACEPOINT, "tcx": gobpfman.BpfmanProgramType_TCX,
		"tc": gobpfman.BpfmanProgramType_TC, "xdp": gobpfman.BpfmanProgramType_XDP,
	}[kind]
	uuid := "8f0c2a4e-6d1b-4e8a-9c3f-5b7d9e1a2c4f"
	keep := os.Getenv("AGENT_KEEP") == "1"
	if keep {
		uuid = fmt.Sprintf("8f0c2a4e-6d1b-4e8a-9c3f-%012x", time.Now().UnixNano()&0xffffffffffff)
	}
	location := &gobpfman.BytecodeLocation{Location: &gobpfman.BytecodeLocation_File{File: object}}
	imageURL := ""
	if strings.HasPrefix(object, "image:") {
		imageURL = strings.TrimPrefix(object, "image:")
		location = &gobpfman.BytecodeLocation{Location: &gobpfman.BytecodeLocation_Image{Image: &gobpfman.BytecodeImage{
			Url: imageURL, ImagePullPolicy: 1,
		}}}
	}
	load := &gobpfman.LoadRequest{
		Bytecode: location,
		Info:     []*gobpfman.LoadInfo{{Name: fn, ProgramType: programType}},
		Metadata: map[string]string{"bpfman.io/uuid": uuid, "bpfman.io/ProgramName": "go-agent-" + kind},
	}
	loaded, err := c.Load(ctx, load)
	if err != nil {
		fail("Load: %v", err)
	}
	if len(loaded.Programs) != 1 {
		fail("Load returned %d programs", len(loaded.Programs))
	}
	// The agent matches results by info.name and stores kernel_info.id.
	p := loaded.Programs[0]
	if p.GetInfo().GetName() != fn || p.GetKernelInfo().GetId() == 0 {
		fail("Load result %v", p)
	}
	id := p.GetKernelInfo().GetId()
	if imageURL != "" {
		got, err := c.Get(ctx, &gobpfman.GetRequest{Id: id})
		if err != nil {
			fail("Get after an image Load: %v", err)
		}
		for what, image := range map[string]*gobpfman.BytecodeImage{
			"Load": p.GetInfo().GetBytecode().GetImage(), "Get": got.GetInfo().GetBytecode().GetImage(),
		} {
			if image.GetUrl() != imageURL || image.GetImagePullPolicy() != 1 ||
				image.Username == nil || image.GetUsername() != "" || image.Password == nil || image.GetPassword() != "" {
				fail("%s reports the image as %v", what, image)
			}
		}
	}
	if p.GetInfo().GetMetadata()["bpfman.io/uuid"] != uuid {
		fail("metadata %v", p.GetInfo().GetMetadata())
	}

	var attach *gobpfman.AttachInfo
	switch kind {
	case "tracepoint":
		attach = &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_TracepointAttachInfo{
			TracepointAttachInfo: &gobpfman.TracepointAttachInfo{Tracepoint: os.Args[5]}}}
	case "tcx":
		netns := os.Args[7]
		attach = &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_TcxAttachInfo{
			TcxAttachInfo: &gobpfman.TCXAttachInfo{Priority: 100, Iface: os.Args[5], Direction: os.Args[6], Netns: &netns,
				Metadata: map[string]string{"bpfman.io/ProgramName": "go-agent-tcx"}}}}
	case "tc":
		netns := os.Args[7]
		attach = &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_TcAttachInfo{
			TcAttachInfo: &gobpfman.TCAttachInfo{Priority: 100, Iface: os.Args[5], Direction: os.Args[6], Netns: &netns}}}
	case "xdp":
		netns := os.Args[6]
		attach = &gobpfman.AttachInfo{Info: &gobpfman.AttachInfo_XdpAttachInfo{
			XdpAttachInfo: &gobpfman.XDPAttachInfo{Priority: 100, Iface: os.Args[5], Netns: &netns}}}
	default:
		fail("unknown kind %s", kind)
	}
	attached, err := c.Attach(ctx, &gobpfman.AttachRequest{Id: id, Attach: attach})
	if err != nil {
		fail("Attach: %v", err)
	}
	link := attached.GetLinkId()
	if link == 0 {
		fail("link id 0")
	}
	// "Link attached" is decided by linkId in Get(progId).info.links.
	got, err := c.Get(ctx, &gobpfman.GetRequest{Id: id})
	if err != nil {
		fail("Get: %v", err)
	}
	if !contains(got.GetInfo().GetLinks(), link) {
		fail("link %d not in info.links %v", link, got.GetInfo().GetLinks())
	}
	if got.GetKernelInfo().GetProgramType() != map[string]uint32{"tracepoint": 5, "tcx": 3, "tc": 3, "xdp": 6}[kind] {
		fail("program_type %d", got.GetKernelInfo().GetProgramType())
	}
	list, err := c.List(ctx, &gobpfman.ListRequest{MatchMetadata: map[string]string{"bpfman.io/uuid": uuid}})
	if err != nil || len(list.GetResults()) != 1 || list.GetResults()[0].GetKernelInfo().GetId() != id {
		fail("List by uuid: %v %v", list, err)
	}
	if keep {
		fmt.Printf("program %d link %d\nPASS\n", id, link)
		return
	}
	if _, err := c.Detach(ctx, &gobpfman.DetachRequest{LinkId: link}); err != nil {
		fail("Detach: %v", err)
	}
	got, err = c.Get(ctx, &gobpfman.GetRequest{Id: id})
	if err != nil || contains(got.GetInfo().GetLinks(), link) {
		fail("after Detach: %v %v", got, err)
	}
	if _, err := c.Unload(ctx, &gobpfman.UnloadRequest{Id: id}); err != nil {
		fail("Unload: %v", err)
	}
	_, err = c.Get(ctx, &gobpfman.GetRequest{Id: id})
	if status.Code(err) != codes.NotFound {
		fail("Get after Unload: want NotFound, got %v", err)
	}
	fmt.Printf("program %d link %d\nPASS\n", id, link)
}
