package ports

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
)

// The range handed out: below Linux's default ephemeral range (32768 up)
// and below the ports the e2e demo test uses (21000 up).
const (
	first = 12000
	count = 9000
)

// next starts at a place that depends on the process, so that test
// binaries run side by side rarely try the same ports.
var next atomic.Int64

func init() { next.Store(int64(os.Getpid()*7919) % count) }

// Free returns a loopback port nothing listens on now.
func Free(t testing.TB) int {
	t.Helper()
	for range count {
		p := first + int(next.Add(1)%count)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatalf("no free loopback port in %d-%d", first, first+count-1)
	return 0
}
