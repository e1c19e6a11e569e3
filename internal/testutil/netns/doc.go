// Package netns gives tests Linux network namespaces of their own:
// made and deleted with ip(8), entered by one OS thread at a time to open
// sockets and start processes inside. Tests give the hosts in them
// addresses in 198.18.0.0/15 (or 2001:2::/48) on links to other test
// namespaces only, so nothing they send can leave the machine.
//
// For tests only; it imports nothing of weft.
package netns
