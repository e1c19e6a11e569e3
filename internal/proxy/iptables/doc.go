// Package iptables makes a network namespace's TCP traffic pass through
// weft's proxy without the app knowing: the nat-table rules `weft-proxy
// init` installs (Install, Remove, Script), and, for the proxy, where a
// redirected connection was going (OriginalDst).
//
// Inbound, connections arriving at the namespace's addresses are
// redirected to the proxy's transparent inbound port, except those to the
// proxy's own mesh and admin ports (mesh traffic between proxies goes
// there directly) and to ports the operator skips. Outbound, connections
// opened by any user but the proxy's are redirected to its transparent
// outbound port, except those leaving over loopback (to 127.0.0.0/8, ::1
// or the namespace's own addresses) and to ports the operator skips. The
// proxy's own connections are never redirected, or it would loop.
//
// The rules live in chains of their own (WEFT_INBOUND, WEFT_IN_REDIRECT,
// WEFT_OUTPUT, WEFT_REDIRECT), reached by one jump each from PREROUTING and
// OUTPUT, so installing again replaces them and leaves one set, and
// removing them touches nothing else. Rules go in with the iptables-restore
// and iptables-save binaries (Debian's iptables package), which work with
// either kernel back end (nf_tables or legacy).
//
// It is a leaf of the proxy: it imports nothing of weft.
package iptables
