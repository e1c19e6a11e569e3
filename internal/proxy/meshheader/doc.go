// Package meshheader defines the headers two weft proxies exchange on a
// mesh hop (which app port a request is for, which protocol the original
// client spoke), and the one the control plane sends to tap a proxy, and
// parses them strictly, since they arrive from the network.
//
// It is a leaf: it must not import anything of weft but the model, and
// never control-plane, discovery, source or Kubernetes packages.
package meshheader
