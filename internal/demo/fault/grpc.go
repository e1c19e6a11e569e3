package fault

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor applies the faults to unary methods whose full name
// starts with prefix (e.g. "/weft.demo.v1.Stock/"), so health checks and
// reflection stay clean. An injected error is UNAVAILABLE.
func (in *Injector) UnaryServerInterceptor(prefix string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, prefix) {
			if err := in.Apply(ctx); err != nil {
				return nil, grpcError(err)
			}
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor applies the faults once, when a stream opens, to
// streaming methods whose full name starts with prefix.
func (in *Injector) StreamServerInterceptor(prefix string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if strings.HasPrefix(info.FullMethod, prefix) {
			if err := in.Apply(ss.Context()); err != nil {
				return grpcError(err)
			}
		}
		return handler(srv, ss)
	}
}

func grpcError(err error) error {
	if errors.Is(err, ErrInjected) {
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.FromContextError(err).Err()
}
