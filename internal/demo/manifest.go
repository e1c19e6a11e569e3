package demo

import (
	"fmt"
	"slices"
	"strings"
)

// manifest renders svc and the workloads it selects; for a nil svc, the
// workloads with no app port (the load generator), which no service selects.
func manifest(base int, svc *service) []byte {
	var b strings.Builder
	name := "loadgen"
	if svc != nil {
		name = svc.name
	}
	fmt.Fprintf(&b, "# weft demo: %s. Written by `weft up --demo` (port base %d).\n", name, base)
	docs := 0
	if svc != nil {
		writeService(&b, svc, "")
		docs++
		// A service per version too, as backends of traffic splits and
		// canary routes (catalog-v1, catalog-v2).
		var versions []string
		for _, w := range workloads {
			if w.app == svc.name && w.version != "" && !slices.Contains(versions, w.version) {
				versions = append(versions, w.version)
			}
		}
		if len(versions) > 1 {
			for _, v := range versions {
				b.WriteString("---\n")
				writeService(&b, svc, v)
				docs++
			}
		}
	}
	for i, w := range workloads {
		if (svc == nil && w.portName == "") || (svc != nil && w.app == svc.name) {
			if docs > 0 {
				b.WriteString("---\n")
			}
			writeWorkload(&b, w, portsOf(base, i))
			docs++
		}
	}
	return []byte(b.String())
}

// writeService writes s, or with a version, the service of that version's
// workloads alone, named s.name-version.
func writeService(b *strings.Builder, s *service, version string) {
	name, selector := s.name, ""
	if version != "" {
		name, selector = s.name+"-"+version, "\n    version: "+version
	}
	fmt.Fprintf(b, `apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: %s
spec:
  selector:
    app: %s%s
  ports:
  - name: %s
    port: %d
    targetPort: %s
    appProtocol: %s
`, name, Namespace, s.name, selector, s.portName, s.port, s.portName, s.appProtocol)
}

func writeWorkload(b *strings.Builder, w workload, p ports) {
	fmt.Fprintf(b, `apiVersion: weft.dev/v1alpha1
kind: Workload
metadata:
  name: %s
  namespace: %s
  labels:
    app: %s
`, w.name, Namespace, w.app)
	if w.version != "" {
		fmt.Fprintf(b, "    version: %s\n", w.version)
	}
	fmt.Fprintf(b, "spec:\n  serviceAccount: %s\n  address: 127.0.0.1\n", w.serviceAccount)
	if w.portName != "" {
		fmt.Fprintf(b, "  ports:\n  - name: %s\n    port: %d\n    protocol: %s\n", w.portName, p.App, w.protocol)
	}
	fmt.Fprintf(b, "  proxy:\n    inboundPort: %d\n    adminPort: %d\n", p.Inbound, p.Admin)
	if len(w.outbound) > 0 {
		b.WriteString("  outbound:\n")
		for j, o := range w.outbound {
			fmt.Fprintf(b, "  - service: %s\n    port: %d\n    localPort: %d\n", o.service, o.port, p.Outbound[j])
		}
	}
}
