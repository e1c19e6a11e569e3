package proxy

import "sync"

// copyBufferSize is what ReverseProxy copies a body with when it is given
// no pool: 32 KiB.
const copyBufferSize = 32 << 10

// bufferPool lends both sides' ReverseProxies their copy buffers. Without
// one each request allocated a fresh 32 KiB buffer per proxy, about 70%
// of the bytes the request path allocated, and as much garbage to collect.
type bufferPool struct{ pool sync.Pool }

// copyBuffers is shared by every proxy of the process.
var copyBuffers = &bufferPool{pool: sync.Pool{New: func() any {
	b := make([]byte, copyBufferSize)
	return &b
}}}

// Get implements httputil.BufferPool.
func (p *bufferPool) Get() []byte { return *p.pool.Get().(*[]byte) }

// Put implements httputil.BufferPool.
func (p *bufferPool) Put(b []byte) {
	if cap(b) != copyBufferSize {
		return
	}
	b = b[:copyBufferSize]
	p.pool.Put(&b)
}
