// The grpc-go side of the transport benchmark: the same trivial unary method as h2-echo-server.
// Usage: goserver -socket PATH
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"

	pb "h2test/echopb"
)

type echo struct {
	pb.UnimplementedEchoServer
}

func (echo) Unary(_ context.Context, r *pb.EchoRequest) (*pb.EchoReply, error) {
	return &pb.EchoReply{Text: r.Text}, nil
}

func main() {
	socket := flag.String("socket", "", "Unix socket path")
	flag.Parse()
	os.Remove(*socket)
	l, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := grpc.NewServer()
	pb.RegisterEchoServer(s, echo{})
	fmt.Println("listening", *socket)
	s.Serve(l)
}
