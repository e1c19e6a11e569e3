package appprobe

import (
	"reflect"
	"testing"
)

// FuzzParse holds Parse to its contract on any input: no panic, and a Set
// it accepts encodes to one it reads back the same.
func FuzzParse(f *testing.F) {
	f.Add(`{"app/readiness":{"port":8080,"path":"/healthz","scheme":"HTTP","timeoutSeconds":1}}`)
	f.Add(`{"web/liveness":{"port":8443,"scheme":"HTTPS","headers":[{"name":"Host","value":"a"}]}}`)
	f.Add(`{}`)
	f.Add(`null`)
	f.Add(`{"a/startup":{"port":1}}`)
	f.Fuzz(func(t *testing.T, s string) {
		set, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(set.Encode())
		if err != nil {
			t.Fatalf("Parse(Encode(%v)) = %v", set, err)
		}
		if len(set) > 0 && !reflect.DeepEqual(set, again) {
			t.Fatalf("round trip changed %v to %v", set, again)
		}
	})
}
