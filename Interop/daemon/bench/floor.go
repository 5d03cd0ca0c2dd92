// The floor for the daemon benchmark: a grpc-go server answering bpfman.v1.Bpfman Get and List on a Unix
// socket, doing no work per call. Whatever it costs is what any gRPC daemon costs.
//
// By default it answers with empty responses (the anchor). With -mirror SOCKET it first asks the
// daemon at SOCKET once for Get(-id) and List(bpfman_programs_only) and then answers every call with those
// same messages: the cost of a gRPC daemon that has the real answer ready, including the client's decoding
// of it, which an empty response leaves out.
package main

import (
	"context"
	"flag"
	"net"
	"os"

	gobpfman "github.com/bpfman/bpfman/clients/gobpfman/v1"
	"google.golang.org/grpc"
)

type floor struct {
	gobpfman.UnimplementedBpfmanServer
	get  *gobpfman.GetResponse
	list *gobpfman.ListResponse
}

func (f floor) Get(context.Context, *gobpfman.GetRequest) (*gobpfman.GetResponse, error) {
	return f.get, nil
}

func (f floor) List(context.Context, *gobpfman.ListRequest) (*gobpfman.ListResponse, error) {
	return f.list, nil
}

func main() {
	socket := flag.String("socket", "", "Unix socket path")
	mirror := flag.String("mirror", "", "daemon socket whose Get and List answers to serve (default: empty answers)")
	id := flag.Uint("id", 1, "program id for the mirrored Get")
	flag.Parse()
	f := floor{get: &gobpfman.GetResponse{}, list: &gobpfman.ListResponse{}}
	if *mirror != "" {
		conn, err := grpc.Dial("unix://"+*mirror, grpc.WithInsecure(), grpc.WithBlock())
		if err != nil {
			panic(err)
		}
		c := gobpfman.NewBpfmanClient(conn)
		if f.get, err = c.Get(context.Background(), &gobpfman.GetRequest{Id: uint32(*id)}); err != nil {
			panic(err)
		}
		only := true
		if f.list, err = c.List(context.Background(), &gobpfman.ListRequest{BpfmanProgramsOnly: &only}); err != nil {
			panic(err)
		}
		conn.Close()
	}
	os.Remove(*socket)
	listener, err := net.Listen("unix", *socket)
	if err != nil {
		panic(err)
	}
	server := grpc.NewServer()
	gobpfman.RegisterBpfmanServer(server, f)
	server.Serve(listener)
}
