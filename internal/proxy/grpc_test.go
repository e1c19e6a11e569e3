package proxy_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
)

// grpcApp is the interop TestService with hooks to watch what reached it.
type grpcApp struct {
	testpb.UnimplementedTestServiceServer
	// started gets a value when a call asking to hang (metadata
	// "x-hang") arrives; ended gets how it ended and the deadline it saw.
	started chan struct{}
	ended   chan hangResult
}

type hangResult struct {
	err         error
	hadDeadline bool
}

func (a *grpcApp) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "unary"))
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("x-hang")) > 0 {
		_, hadDeadline := ctx.Deadline()
		a.started <- struct{}{}
		<-ctx.Done()
		a.ended <- hangResult{err: ctx.Err(), hadDeadline: hadDeadline}
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (a *grpcApp) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	stream.SetTrailer(metadata.Pairs("x-trailer", "bidi"))
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

func serveGRPC(t *testing.T) (*grpcApp, uint32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &grpcApp{started: make(chan struct{}, 1), ended: make(chan hangResult, 1)}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, app)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return app, uint32(ln.Addr().(*net.TCPAddr).Port)
}

func payload(s string) *testpb.Payload { return &testpb.Payload{Body: []byte(s)} }

func TestGRPC(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		svcProto model.Protocol
		appProto model.Protocol
	}{
		{desc: "declared grpc", svcProto: model.ProtocolGRPC, appProto: model.ProtocolGRPC},
		{desc: "detected", svcProto: model.ProtocolDetect, appProto: model.ProtocolDetect},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			app, port := serveGRPC(t)
			c, _ := meshPair(t, tc.svcProto, tc.appProto, port)
			conn, err := grpc.NewClient("passthrough:///"+c.addr(80), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			client := testpb.NewTestServiceClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			t.Run("unary with trailer", func(t *testing.T) {
				var trailer metadata.MD
				resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: payload("hello")}, grpc.Trailer(&trailer))
				if err != nil {
					t.Fatalf("UnaryCall: %v", err)
				}
				if string(resp.GetPayload().GetBody()) != "hello" {
					t.Fatalf("payload %q", resp.GetPayload().GetBody())
				}
				if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "unary" {
					t.Fatalf("trailer x-trailer = %v, want [unary]", got)
				}
			})

			t.Run("bidi streaming in lockstep", func(t *testing.T) {
				stream, err := client.FullDuplexCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				// Each answer must arrive before the next message is sent:
				// nothing may buffer a stream until it ends.
				for i := range 5 {
					msg := "msg-" + strconv.Itoa(i)
					if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: payload(msg)}); err != nil {
						t.Fatalf("Send %d: %v", i, err)
					}
					resp, err := stream.Recv()
					if err != nil {
						t.Fatalf("Recv %d: %v", i, err)
					}
					if got := string(resp.GetPayload().GetBody()); got != msg {
						t.Fatalf("Recv %d = %q, want %q", i, got, msg)
					}
				}
				if err := stream.CloseSend(); err != nil {
					t.Fatal(err)
				}
				if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
					t.Fatalf("after CloseSend, Recv = %v, want EOF", err)
				}
				if got := stream.Trailer().Get("x-trailer"); len(got) != 1 || got[0] != "bidi" {
					t.Fatalf("trailer x-trailer = %v, want [bidi]", got)
				}
			})

			t.Run("deadline reaches the app", func(t *testing.T) {
				drain(app)
				dctx, dcancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "x-hang", "1"), 300*time.Millisecond)
				defer dcancel()
				_, err := client.UnaryCall(dctx, &testpb.SimpleRequest{})
				if status.Code(err) != codes.DeadlineExceeded {
					t.Fatalf("UnaryCall = %v, want DeadlineExceeded", err)
				}
				res := waitHang(t, app)
				if !res.hadDeadline {
					t.Fatal("the app saw no deadline: grpc-timeout was lost")
				}
			})

			t.Run("cancellation reaches the app", func(t *testing.T) {
				drain(app)
				cctx, ccancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, "x-hang", "1"))
				errc := make(chan error, 1)
				go func() {
					_, err := client.UnaryCall(cctx, &testpb.SimpleRequest{})
					errc <- err
				}()
				select {
				case <-app.started:
				case <-time.After(5 * time.Second):
					t.Fatal("call never reached the app")
				}
				ccancel()
				if err := <-errc; status.Code(err) != codes.Canceled {
					t.Fatalf("UnaryCall = %v, want Canceled", err)
				}
				if res := waitHangEnd(t, app); !errors.Is(res.err, context.Canceled) {
					t.Fatalf("app's context ended with %v, want Canceled", res.err)
				}
			})
		})
	}
}

// drain forgets what an earlier, failed subtest left behind.
func drain(app *grpcApp) {
	for {
		select {
		case <-app.started:
		case <-app.ended:
		default:
			return
		}
	}
}

func TestGRPCUnavailable(t *testing.T) {
	c := newClient(t, proxy.Options{}, service(model.ServicePort{Port: 80, Protocol: model.ProtocolGRPC}), []uint32{80})
	conn, err := grpc.NewClient("passthrough:///"+c.addr(80), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{})
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "no endpoints") {
		t.Fatalf("UnaryCall = %v, want Unavailable saying there are no endpoints", err)
	}
}

func waitHang(t *testing.T, app *grpcApp) hangResult {
	t.Helper()
	select {
	case <-app.started:
	case <-time.After(5 * time.Second):
		t.Fatal("call never reached the app")
	}
	return waitHangEnd(t, app)
}

func waitHangEnd(t *testing.T, app *grpcApp) hangResult {
	t.Helper()
	select {
	case res := <-app.ended:
		return res
	case <-time.After(5 * time.Second):
		t.Fatal("the app never saw the call end")
	}
	return hangResult{}
}
