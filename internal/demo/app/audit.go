package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/demo/fault"
)

// The audit line protocol. The server speaks first with AuditGreeting; then
// for every line the client sends it appends the line and answers
// "ok <n>\n", n being the running count of lines appended since start.
const (
	AuditGreeting = "audit ready"
	// auditMaxLine bounds one line, newline included.
	auditMaxLine = 64 << 10
	// auditIdle closes a connection that sends nothing for this long.
	auditIdle = 5 * time.Minute
)

// AuditConfig configures the audit service.
type AuditConfig struct {
	// Faults are the switches; nil starts with none.
	Faults *fault.Injector
	Log    *slog.Logger
}

// Audit is the opaque-TCP audit service. An injected error closes the
// connection instead of answering.
type Audit struct {
	cfg   AuditConfig
	log   *slog.Logger
	count atomic.Int64
}

// NewAudit returns an audit service with a count of zero.
func NewAudit(cfg AuditConfig) *Audit {
	cfg.Faults = faultsOrNone(cfg.Faults)
	return &Audit{cfg: cfg, log: logger(cfg.Log, "audit")}
}

// Count is the number of lines appended so far.
func (a *Audit) Count() int64 { return a.count.Load() }

// Serve accepts connections on ln until ctx ends, then closes the listener
// and every open connection.
func (a *Audit) Serve(ctx context.Context, ln net.Listener) error {
	a.log.Info("audit serving", "addr", ln.Addr().String())
	// On return: cancel (closing every connection), then wait for them.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()

	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("audit: accept on %s: %w", ln.Addr(), err)
		}
		wg.Go(func() {
			// Closing the connection when ctx ends unblocks its reads.
			stopConn := context.AfterFunc(ctx, func() { _ = conn.Close() })
			defer stopConn()
			defer conn.Close()
			if err := a.handle(ctx, conn); err != nil && ctx.Err() == nil {
				a.log.Debug("audit connection ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		})
	}
}

func (a *Audit) handle(ctx context.Context, conn net.Conn) error {
	w := bufio.NewWriter(conn)
	if _, err := w.WriteString(AuditGreeting + "\n"); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, 4096), auditMaxLine)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(auditIdle))
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				return fmt.Errorf("read: %w", err)
			}
			return nil // the client closed
		}
		if err := a.cfg.Faults.Apply(ctx); err != nil {
			return fmt.Errorf("line dropped: %w", err) // the caller closes
		}
		n := a.count.Add(1)
		a.log.Debug("audit", "n", n, "line", sc.Text())
		if _, err := w.WriteString("ok " + strconv.FormatInt(n, 10) + "\n"); err != nil {
			return fmt.Errorf("reply: %w", err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("reply: %w", err)
		}
	}
}
