// The floor for the daemon benchmark: a grpc-go server answering bpfman.v1.Bpfman Get and List with empty
// responses, on a Unix socket. Whatever it costs is what any gRPC daemon costs.
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
}

func (floor) Get(context.Context, *gobpfman.GetRequest) (*gobpfman.GetResponse, error) {
	return &gobpfman.GetResponse{}, nil
}

func (floor) List(context.Context, *gobpfman.ListRequest) (*gobpfman.ListResponse, error) {
	return &gobpfman.ListResponse{}, nil
}

func main() {
	socket := flag.String("socket", "", "Unix socket path")
	flag.Parse()
	os.Remove(*socket)
	listener, err := net.Listen("unix", *socket)
	if err != nil {
		panic(err)
	}
	server := grpc.NewServer()
	gobpfman.RegisterBpfmanServer(server, floor{})
	server.Serve(listener)
}
