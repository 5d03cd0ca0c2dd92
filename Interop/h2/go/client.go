// grpc-go client for the H2Transport interop tests (GOPATH mode, Debian's grpc-go).
//
// Usage: client -socket PATH -scenario NAME
// Prints one line per check and exits 1 on the first failure.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "h2test/echopb"
)

func check(ok bool, format string, args ...interface{}) {
	what := fmt.Sprintf(format, args...)
	if !ok {
		fmt.Println("FAIL", what)
		os.Exit(1)
	}
	fmt.Println("ok", what)
}

func dial(path string) *grpc.ClientConn {
	conn, err := grpc.Dial("unix://"+path, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}))
	check(err == nil, "dial %v", err)
	return conn
}

func ctx(seconds float64) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Duration(seconds*float64(time.Second)))
}

func unary(c pb.EchoClient) {
	cx, cancel := ctx(10)
	defer cancel()
	r, err := c.Unary(cx, &pb.EchoRequest{Text: "hello", Payload: []byte{0, 1, 2}})
	check(err == nil && r.Text == "hello" && bytes.Equal(r.Payload, []byte{0, 1, 2}), "unary echo (%v)", err)
}

func statuses(c pb.EchoClient, conn *grpc.ClientConn) {
	for code := 1; code <= 16; code++ {
		cx, cancel := ctx(10)
		msg := fmt.Sprintf("failed with %d: 100%% ünïcode", code)
		_, err := c.Unary(cx, &pb.EchoRequest{Text: msg, Status: int32(code)})
		cancel()
		s, _ := status.FromError(err)
		check(s.Code() == codes.Code(code) && s.Message() == msg, "status %v %q", s.Code(), s.Message())
	}
	cx, cancel := ctx(10)
	defer cancel()
	err := conn.Invoke(cx, "/h2test.v1.Echo/Nope", &pb.EchoRequest{}, &pb.EchoReply{})
	s, _ := status.FromError(err)
	check(s.Code() == codes.Unimplemented && s.Message() == "unknown method Nope for service h2test.v1.Echo",
		"unknown method: %v", err)
	err = conn.Invoke(cx, "/h2test.v1.Nothing/Unary", &pb.EchoRequest{}, &pb.EchoReply{})
	s, _ = status.FromError(err)
	check(s.Code() == codes.Unimplemented && s.Message() == "unknown service h2test.v1.Nothing",
		"unknown service: %v", err)
}

func deadline(c pb.EchoClient) {
	cx, cancel := ctx(0.3)
	defer cancel()
	start := time.Now()
	_, err := c.Unary(cx, &pb.EchoRequest{Text: "go-slow", SleepMs: 5000})
	check(status.Code(err) == codes.DeadlineExceeded, "deadline: %v", err)
	check(time.Since(start) < 2*time.Second, "deadline honoured promptly")
}

func cancellation(c pb.EchoClient, tag string) {
	cx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(300 * time.Millisecond); cancel() }()
	_, err := c.Unary(cx, &pb.EchoRequest{Text: tag, SleepMs: 10000})
	check(status.Code(err) == codes.Canceled, "cancelled: %v", err)
	unary(c)
}

func concurrency(c pb.EchoClient, path string) {
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cx, cancel := ctx(20)
			defer cancel()
			text := fmt.Sprintf("c%d", i)
			r, err := c.Unary(cx, &pb.EchoRequest{Text: text, SleepMs: 100})
			if err == nil && r.Text != text {
				err = fmt.Errorf("got %q want %q", r.Text, text)
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			fmt.Println("error:", err)
		}
	}
	check(failed == 0, "100 concurrent calls on one connection")
	conns := make([]*grpc.ClientConn, 20)
	for i := range conns {
		conns[i] = dial(path)
	}
	var wg2 sync.WaitGroup
	bad := make(chan int, 20)
	for i, conn := range conns {
		wg2.Add(1)
		go func(i int, conn *grpc.ClientConn) {
			defer wg2.Done()
			cx, cancel := ctx(20)
			defer cancel()
			r, err := pb.NewEchoClient(conn).Unary(cx, &pb.EchoRequest{Text: fmt.Sprint(i)})
			if err != nil || r.Text != fmt.Sprint(i) {
				bad <- i
			}
		}(i, conn)
	}
	wg2.Wait()
	close(bad)
	check(len(bad) == 0, "20 connections")
	for _, conn := range conns {
		conn.Close()
	}
}

func large(c pb.EchoClient) {
	payload := make([]byte, 3<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	cx, cancel := ctx(30)
	defer cancel()
	r, err := c.Unary(cx, &pb.EchoRequest{Text: "big", Payload: payload})
	check(err == nil && bytes.Equal(r.Payload, payload), "3 MiB round trip (%v)", err)
	_, err = c.Unary(cx, &pb.EchoRequest{Payload: make([]byte, 5<<20)})
	check(status.Code(err) == codes.ResourceExhausted, "5 MiB over the limit: %v", err)
	unary(c)
}

func streaming(c pb.EchoClient) {
	cx, cancel := ctx(20)
	defer cancel()
	ss, err := c.ServerStream(cx, &pb.EchoRequest{Text: "s", Count: 50})
	check(err == nil, "server stream open")
	n := 0
	for {
		r, err := ss.Recv()
		if err == io.EOF {
			break
		}
		check(err == nil && int(r.Index) == n, "server stream message %d (%v)", n, err)
		n++
	}
	check(n == 50, "server streaming 50 messages")

	cs, err := c.ClientStream(cx)
	check(err == nil, "client stream open")
	for i := 0; i < 20; i++ {
		check(cs.Send(&pb.EchoRequest{Text: fmt.Sprint(i)}) == nil, "client stream send %d", i)
	}
	r, err := cs.CloseAndRecv()
	check(err == nil && r.Index == 20 && r.Text == "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19",
		"client streaming 20 messages (%v)", err)

	bs, err := c.Bidi(cx)
	check(err == nil, "bidi open")
	for i := 0; i < 10; i++ {
		text := fmt.Sprintf("b%d", i)
		check(bs.Send(&pb.EchoRequest{Text: text}) == nil, "bidi send %d", i)
		r, err := bs.Recv()
		check(err == nil && r.Text == text && int(r.Index) == i, "bidi reply %d before next send (%v)", i, err)
	}
	check(bs.CloseSend() == nil, "bidi close send")
	_, err = bs.Recv()
	check(err == io.EOF, "bidi ends OK after half-close (%v)", err)

	bs, err = c.Bidi(cx)
	check(err == nil, "bidi open")
	check(bs.Send(&pb.EchoRequest{Text: "x", Status: 5}) == nil, "bidi send failing request")
	_, err = bs.Recv()
	check(status.Code(err) == codes.NotFound, "bidi handler error ends the stream: %v", err)
}

func main() {
	socket := flag.String("socket", "", "Unix socket path")
	scenario := flag.String("scenario", "unary", "scenario name")
	tag := flag.String("tag", "go-cancel", "text for the cancellation scenario")
	flag.Parse()
	conn := dial(*socket)
	defer conn.Close()
	c := pb.NewEchoClient(conn)
	switch *scenario {
	case "unary":
		unary(c)
	case "status":
		statuses(c, conn)
	case "deadline":
		deadline(c)
	case "cancel":
		cancellation(c, *tag)
	case "concurrency":
		concurrency(c, *socket)
	case "large":
		large(c)
	case "streaming":
		streaming(c)
	default:
		check(false, "unknown scenario %s", *scenario)
	}
	fmt.Println("PASS")
}
