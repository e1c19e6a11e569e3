package tunnel

import (
	"io"
	"sync"
	"time"
)

// HalfCloser is a byte stream that can stop sending while it still
// receives. *net.TCPConn and *Stream are ones.
type HalfCloser interface {
	io.ReadWriteCloser
	CloseWrite() error
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Pipe copies down->up and up->down until both directions end, then
// closes both. down is the side that opened the connection.
//
//   - down stops sending: up is half-closed and Pipe waits for up to
//     finish answering, however long that takes.
//   - up stops sending: down is half-closed and gets linger to stop
//     sending too. Through the mesh a finished upstream cannot receive
//     more, so waiting longer would only hold the connection open.
//   - either side fails (a reset): both are closed at once, and the error
//     is returned.
func Pipe(down, up HalfCloser, linger time.Duration) error {
	fromDown := make(chan error, 1)
	fromUp := make(chan error, 1)
	go func() { fromDown <- copyHalf(up, down) }()
	go func() { fromUp <- copyHalf(down, up) }()
	closeBoth := func() {
		down.Close()
		up.Close()
	}
	select {
	case err := <-fromDown:
		if err != nil {
			closeBoth()
			<-fromUp
			return err
		}
		err = <-fromUp
		closeBoth()
		return err
	case err := <-fromUp:
		if err == nil && linger > 0 {
			setReadDeadline(down, time.Now().Add(linger))
			select {
			case <-fromDown:
				closeBoth()
				return nil
			case <-time.After(linger + time.Second):
				// down takes no deadline; closing it ends the copy.
			}
		}
		closeBoth()
		<-fromDown
		return err
	}
}

// copyHalf copies src to dst and, when src ends cleanly, half-closes dst.
func copyHalf(dst, src HalfCloser) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	if _, err := io.CopyBuffer(writerOnly{dst}, readerOnly{src}, *bp); err != nil {
		return err
	}
	// A peer that already went away cannot be half-closed; that is not
	// an error of this stream.
	_ = dst.CloseWrite()
	return nil
}

func setReadDeadline(c any, t time.Time) {
	if d, ok := c.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(t)
	}
}

// readerOnly and writerOnly hide ReaderFrom/WriterTo so io.CopyBuffer uses
// the pooled buffer and our Write (which may flush) on every chunk.
type readerOnly struct{ io.Reader }
type writerOnly struct{ io.Writer }
