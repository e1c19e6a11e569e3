// Package files is universal mode's source: a directory of Kubernetes-style
// manifests, watched, whose changes take effect without a restart.
//
// A file or object that does not parse or validate is reported (log line,
// Status) and the last good version of each object it held stays in force,
// so a bad edit never drops anything that was serving.
//
// It imports the model and the manifest decoder; it must not import servers,
// the proxy or Kubernetes client packages.
package files
