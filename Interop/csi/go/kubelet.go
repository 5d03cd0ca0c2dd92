// A kubelet stand-in on grpc-go (what the kubelet and node-driver-registrar use) for the bpfman CSI node
// plugin: the calls the kubelet makes for an ephemeral inline volume, with the CSI spec's expected codes.
//
// Usage: kubelet SOCKET VOLUME_ID TARGET_PATH PROGRAM MAPS GROUP [all|publish|unpublish]
// "all" (the default) runs publish and unpublish in one process; "publish" stops after the publish checks and
// leaves the volume mounted, "unpublish" only unpublishes (twice), so a test can kill the plugin in between.
// Prints one line per check and PASS at the end; any unexpected reply exits 1.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func expectCode(what string, err error, code codes.Code, fragment string) {
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), fragment) {
		fail("%s: wanted %v %q, got %v", what, code, fragment, err)
	}
	fmt.Printf("ok %s: %v\n", what, code)
}

func main() {
	if len(os.Args) != 7 && len(os.Args) != 8 {
		fail("usage: kubelet SOCKET VOLUME_ID TARGET_PATH PROGRAM MAPS GROUP [all|publish|unpublish]")
	}
	socket, volume, target, program, maps, group := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	mode := "all"
	if len(os.Args) == 8 {
		mode = os.Args[7]
	}
	if mode != "all" && mode != "publish" && mode != "unpublish" {
		fail("unknown mode %q", mode)
	}
	conn, err := grpc.Dial("unix://"+socket, grpc.WithInsecure(), grpc.WithBlock(), grpc.WithTimeout(10*time.Second))
	if err != nil {
		fail("dial: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	identity := csi.NewIdentityClient(conn)
	node := csi.NewNodeClient(conn)

	// What node-driver-registrar and kubelet ask first.
	info, err := identity.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	if err != nil || info.GetName() != "csi.bpfman.io" || info.GetVendorVersion() == "" {
		fail("GetPluginInfo: %v %v", info, err)
	}
	caps, err := identity.GetPluginCapabilities(ctx, &csi.GetPluginCapabilitiesRequest{})
	if err != nil || len(caps.GetCapabilities()) != 0 {
		fail("GetPluginCapabilities: %v %v", caps, err)
	}
	probe, err := identity.Probe(ctx, &csi.ProbeRequest{})
	if err != nil || !probe.GetReady().GetValue() {
		fail("Probe: %v %v", probe, err)
	}
	nodeInfo, err := node.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil || nodeInfo.GetNodeId() == "" || nodeInfo.GetMaxVolumesPerNode() != 0 {
		fail("NodeGetInfo: %v %v", nodeInfo, err)
	}
	nodeCaps, err := node.NodeGetCapabilities(ctx, &csi.NodeGetCapabilitiesRequest{})
	if err != nil || len(nodeCaps.GetCapabilities()) != 1 ||
		nodeCaps.GetCapabilities()[0].GetRpc().GetType() != csi.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP {
		fail("NodeGetCapabilities: %v %v", nodeCaps, err)
	}
	fmt.Printf("ok identity and node info: node_id %s\n", nodeInfo.GetNodeId())

	publish := func(program, maps string, readonly bool) error {
		_, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
			VolumeId:   volume,
			TargetPath: target,
			Readonly:   readonly,
			VolumeCapability: &csi.VolumeCapability{
				AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{VolumeMountGroup: group}},
				AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
			},
			VolumeContext: map[string]string{
				"csi.bpfman.io/program":                  program,
				"csi.bpfman.io/maps":                     maps,
				"csi.storage.k8s.io/pod.name":            "go-stand-in",
				"csi.storage.k8s.io/ephemeral":           "true",
				"csi.storage.k8s.io/serviceAccount.name": "default",
			},
		})
		return err
	}

	if mode != "unpublish" {
		publishChecks(ctx, conn, publish, volume, target, program, maps)
	}
	if mode == "publish" {
		fmt.Println("PASS")
		return
	}
	for i := 1; i <= 2; i++ {
		if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: volume, TargetPath: target}); err != nil {
			fail("NodeUnpublishVolume %d: %v", i, err)
		}
		fmt.Printf("ok unpublish %d: OK\n", i)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		fail("target %s still there after unpublish: %v", target, err)
	}
	fmt.Println("PASS")
}

// publishChecks: NOT_FOUND for an unknown program, publish, idempotent repeat, ALREADY_EXISTS on incompatible
// repeats, UNIMPLEMENTED for the calls the plugin does not offer. Leaves the volume published.
func publishChecks(ctx context.Context, conn *grpc.ClientConn, publish func(string, string, bool) error,
	volume, target, program, maps string) {
	node := csi.NewNodeClient(conn)
	expectCode("publish of an unknown program", publish("no-such-program", maps, false), codes.NotFound,
		`program "no-such-program" not found`)
	if _, err := os.Stat(target); err == nil {
		entries, _ := os.ReadDir(target)
		if len(entries) != 0 {
			fail("NOT_FOUND left entries at %s", target)
		}
	}
	if err := publish(program, maps, false); err != nil {
		fail("NodePublishVolume: %v", err)
	}
	entries, err := os.ReadDir(target)
	if err != nil {
		fail("read %s: %v", target, err)
	}
	var names []string
	for _, entry := range entries {
		if entry.Name() != "maps.debug" && entry.Name() != "progs.debug" {
			names = append(names, entry.Name())
		}
	}
	want := strings.Split(maps, ",")
	sort.Strings(want)
	sort.Strings(names)
	if strings.Join(names, ",") != strings.Join(want, ",") {
		fail("pins at the target: %v, want %v", names, want)
	}
	fmt.Printf("ok published %v at %s\n", names, target)
	if err := publish(program, maps, false); err != nil {
		fail("repeated NodePublishVolume: %v", err)
	}
	fmt.Println("ok publish again: OK")
	expectCode("publish with other maps", publish(program, want[0], false), codes.AlreadyExists, "already published")
	expectCode("publish read-only over read-write", publish(program, maps, true), codes.AlreadyExists, "already published")
	_, err = node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: volume, StagingTargetPath: target + "-stage"})
	expectCode("NodeStageVolume", err, codes.Unimplemented, "")
	_, err = csi.NewControllerClient(conn).CreateVolume(ctx, &csi.CreateVolumeRequest{Name: volume})
	expectCode("Controller/CreateVolume", err, codes.Unimplemented, "")
}
