package app

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// AppendAudit opens a connection to the audit service at addr, checks its
// greeting, appends one line (newlines in it become spaces) and returns the
// count the service answered. ctx bounds the whole exchange.
func AppendAudit(ctx context.Context, addr, line string) (int64, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("audit %s: %w", addr, err)
	}
	defer conn.Close()
	// Ending ctx unblocks the exchange; ctx.Err() then tells why it failed.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	n, err := auditExchange(conn, line)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
		}
		return 0, fmt.Errorf("audit %s: %w", addr, err)
	}
	return n, nil
}

func auditExchange(conn net.Conn, line string) (int64, error) {
	r := bufio.NewReader(conn)
	greeting, err := r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read greeting: %w", err)
	}
	if g := strings.TrimRight(greeting, "\r\n"); g != AuditGreeting {
		return 0, fmt.Errorf("greeting %q: want %q", g, AuditGreeting)
	}
	line = strings.NewReplacer("\r", " ", "\n", " ").Replace(line)
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return 0, fmt.Errorf("write line: %w", err)
	}
	reply, err := r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read reply: %w", err)
	}
	num, ok := strings.CutPrefix(strings.TrimRight(reply, "\r\n"), "ok ")
	if !ok {
		return 0, fmt.Errorf("reply %q: want \"ok <n>\"", reply)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reply %q: %w", reply, err)
	}
	return n, nil
}
