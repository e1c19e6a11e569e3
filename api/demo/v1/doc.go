// Package demov1 is the wire API of the demo application's stock service
// (gRPC), generated from stock.proto by `make gen`. Only doc.go is written by
// hand; the rest is generated and committed.
package demov1
