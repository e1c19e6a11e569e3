package tap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func TestFilterMatch(t *testing.T) {
	e := &Event{Proxy: "demo/web-0", Direction: "outbound", Method: "GET", Path: "/products/1",
		DestinationService: "demo/catalog", DestinationWorkload: "demo/catalog-v1-0", SourceWorkload: "demo/web-0"}
	tests := []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{Workload: "demo/web-0"}, true},
		{Filter{Workload: "demo/catalog-v1-0"}, true},
		{Filter{Workload: "demo/stock-0"}, false},
		{Filter{Service: "demo/catalog"}, true},
		{Filter{Service: "demo/stock"}, false},
		{Filter{PathPrefix: "/products"}, true},
		{Filter{PathPrefix: "/orders"}, false},
		{Filter{Method: "POST"}, false},
		{Filter{Direction: "inbound"}, false},
		{Filter{Service: "demo/catalog", Method: "GET", Direction: "outbound"}, true},
	}
	for _, tc := range tests {
		if got := tc.f.Match(e); got != tc.want {
			t.Errorf("%+v.Match = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestParseFilter(t *testing.T) {
	f := Filter{Workload: "demo/web-0", Service: "demo/catalog", PathPrefix: "/p", Method: "GET", Direction: "inbound"}
	got, err := ParseFilter(f.Query())
	if err != nil || got != f {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, q := range []string{"direction=sideways", "path=products"} {
		v, _ := url.ParseQuery(q)
		if _, err := ParseFilter(v); err == nil {
			t.Errorf("ParseFilter(%s) accepted it", q)
		}
	}
}

func TestPublishWithoutSubscribersIsFree(t *testing.T) {
	h := NewHub()
	if h.Active() {
		t.Fatal("a new hub is active")
	}
	e := &Event{}
	if n := testing.AllocsPerRun(100, func() { h.Publish(e) }); n > 0 {
		t.Errorf("Publish without subscribers allocates %v times", n)
	}
}

func TestSlowSubscriberDropsAndCounts(t *testing.T) {
	h := NewHub()
	s, cancel := h.subscribe(Filter{}, 2)
	defer cancel()
	for i := range 5 {
		h.Publish(&Event{Status: i})
	}
	if got := s.dropped.Load(); got != 3 {
		t.Errorf("dropped %d, want 3", got)
	}
	if e := <-s.events; e.Status != 0 {
		t.Errorf("first event %d", e.Status)
	}
	cancel()
	if h.Active() {
		t.Error("hub still active after the only subscriber left")
	}
}

func TestServeStreamsFilteredEvents(t *testing.T) {
	h := NewHub()
	srv := httptest.NewServer(http.HandlerFunc(h.Serve))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"?path=/products&direction=outbound", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	// The subscription exists once the headers are flushed.
	for !h.Active() {
		time.Sleep(time.Millisecond)
	}
	go func() {
		for i := range 6 {
			dir := "outbound"
			if i%2 == 1 {
				dir = "inbound"
			}
			h.Publish(&Event{Direction: dir, Path: fmt.Sprintf("/products/%d", i), Status: 200})
		}
		h.Publish(&Event{Direction: "outbound", Path: "/health"})
		h.Publish(&Event{Direction: "outbound", Path: "/products/last"})
	}()
	var paths []string
	errDone := errors.New("done")
	err = Read(ctx, resp.Body, func(r Record) error {
		if r.Event == nil {
			return fmt.Errorf("unexpected record %+v", r)
		}
		paths = append(paths, r.Event.Path)
		if r.Event.Path == "/products/last" {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	if want := "[/products/0 /products/2 /products/4 /products/last]"; fmt.Sprint(paths) != want {
		t.Errorf("paths %v, want %s", paths, want)
	}
}

func TestServeRefusesBadFilter(t *testing.T) {
	h := NewHub()
	rec := httptest.NewRecorder()
	h.Serve(rec, httptest.NewRequest(http.MethodGet, "/?direction=up", nil))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("status %d, want 400", rec.Code)
	}
	body, _ := io.ReadAll(rec.Body)
	if len(body) == 0 {
		t.Error("no reason given")
	}
}
