package appprobe

import (
	"strings"
	"testing"
)

func TestEncodeParse(t *testing.T) {
	set := Set{
		Key("app", "readiness"): {Port: 8080, Path: "/healthz?full=1", Scheme: "HTTP", Headers: []Header{{Name: "Host", Value: "shop.local"}}, TimeoutSeconds: 3},
		Key("app", "liveness"):  {Port: 8443, Scheme: "HTTPS"},
		Key("db", "startup"):    {Port: 5432, Scheme: "TCP"},
	}
	got, err := Parse(set.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["db/startup"].Scheme != "TCP" || got["app/readiness"].Headers[0].Value != "shop.local" || got["app/liveness"].Port != 8443 {
		t.Fatalf("round trip = %+v", got)
	}
	if Path("app", "readiness") != "/app-health/app/readiness" {
		t.Fatalf("Path = %q", Path("app", "readiness"))
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`not json`, "app probes:"},
		{`{"app/readiness":{"port":8080,"verb":"POST"}}`, `unknown field "verb"`},
		{`{"app":{"port":8080}}`, `app probe "app": key: want container/kind`},
		{`{"App/readiness":{"port":8080}}`, `key: want container/kind`},
		{`{"app/ready":{"port":8080}}`, `key: kind "ready"`},
		{`{"app/readiness":{"port":0}}`, `port: 0`},
		{`{"app/readiness":{"port":70000}}`, `port: 70000`},
		{`{"app/readiness":{"port":80,"path":"healthz"}}`, `path: "healthz"`},
		{`{"app/readiness":{"port":80,"scheme":"ftp"}}`, `scheme: "ftp"`},
		{`{"app/readiness":{"port":80,"timeoutSeconds":-1}}`, `timeoutSeconds: -1`},
		{`{"app/readiness":{"port":80,"headers":[{"name":"X A","value":"b"}]}}`, `headers[0]`},
		{`{"app/readiness":{"port":80,"headers":[{"name":"X","value":"a\r\nB: c"}]}}`, `headers[0]`},
	} {
		_, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}
