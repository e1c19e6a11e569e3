package control

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Conn is the proxy's connection to the control plane, made anew each
// time the proxy's certificate changes. The control plane checks the
// certificate of every call, and a TLS connection keeps the one it was
// made with: after a root rotation, calls on a connection made under the
// old root would be refused. Streams open on an older connection go on
// until its certificate expires, when it is closed and they reconnect.
type Conn struct {
	target string
	creds  credentials.TransportCredentials
	leaf   func() *x509.Certificate

	mu     sync.Mutex
	cur    *grpc.ClientConn
	serial string
	// notAfter is when the certificate cur was made under expires.
	notAfter time.Time
	closed   bool
	old      []*grpc.ClientConn
}

var _ grpc.ClientConnInterface = (*Conn)(nil)

// NewConn returns a Conn to target whose calls carry the certificate leaf
// returns at the time (nil: none yet).
func NewConn(target string, creds credentials.TransportCredentials, leaf func() *x509.Certificate) *Conn {
	return &Conn{target: target, creds: creds, leaf: leaf}
}

// current returns the connection made under the current certificate.
func (c *Conn) current() (*grpc.ClientConn, error) {
	serial, notAfter := "", time.Time{}
	if l := c.leaf(); l != nil {
		serial, notAfter = l.SerialNumber.String(), l.NotAfter
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("control plane %s: connection closed", c.target)
	}
	if c.cur != nil && serial == c.serial {
		return c.cur, nil
	}
	cc, err := Dial(c.target, c.creds)
	if err != nil {
		return nil, err
	}
	if prev := c.cur; prev != nil {
		c.old = append(c.old, prev)
		// Its streams may go on while its certificate is valid.
		time.AfterFunc(time.Until(c.notAfter)+time.Second, func() { c.retire(prev) })
	}
	c.cur, c.serial, c.notAfter = cc, serial, notAfter
	return cc, nil
}

func (c *Conn) retire(cc *grpc.ClientConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, o := range c.old {
		if o == cc {
			c.old = append(c.old[:i], c.old[i+1:]...)
			cc.Close()
			return
		}
	}
}

// Invoke implements grpc.ClientConnInterface.
func (c *Conn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	cc, err := c.current()
	if err != nil {
		return err
	}
	return cc.Invoke(ctx, method, args, reply, opts...)
}

// NewStream implements grpc.ClientConnInterface.
func (c *Conn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc, err := c.current()
	if err != nil {
		return nil, err
	}
	return cc.NewStream(ctx, desc, method, opts...)
}

// Close closes every connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, cc := range append(c.old, c.cur) {
		if cc != nil {
			cc.Close()
		}
	}
	c.old, c.cur = nil, nil
	return nil
}
