// Package ports hands tests loopback ports to listen on later, taken
// below the kernel's ephemeral range: a port picked by listening on :0 is
// in that range, and by the time the test listens on it an outgoing
// connection may hold it as its local port.
//
// Tests alone import it; it imports nothing of weft.
package ports
