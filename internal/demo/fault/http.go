package fault

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ControlPath is where every demo service serves its fault switches.
const ControlPath = "/_demo/faults"

// ControlHandler serves the fault switches: GET returns the current settings
// as JSON; POST changes the ones named in the query or form (latency,
// latency_jitter, error_rate) and returns the result. Durations use Go's
// syntax ("100ms"); a request with an invalid value changes nothing.
func (in *Injector) ControlHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPost:
			if err := r.ParseForm(); err != nil {
				WriteJSONError(w, http.StatusBadRequest, fmt.Errorf("faults: %w", err))
				return
			}
			s, err := update(in.Settings(), r.Form)
			if err == nil {
				err = in.Set(s)
			}
			if err != nil {
				WriteJSONError(w, http.StatusBadRequest, fmt.Errorf("faults: %w", err))
				return
			}
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			WriteJSONError(w, http.StatusMethodNotAllowed, errors.New("faults: use GET or POST"))
			return
		}
		writeJSON(w, http.StatusOK, in.Settings())
	})
}

// update returns s with the values present in form applied.
func update(s Settings, form url.Values) (Settings, error) {
	durations := []struct {
		key string
		dst *time.Duration
	}{{"latency", &s.Latency}, {"latency_jitter", &s.Jitter}}
	for _, d := range durations {
		if !form.Has(d.key) {
			continue
		}
		v, err := time.ParseDuration(form.Get(d.key))
		if err != nil {
			return s, fmt.Errorf("%s: %w", d.key, err)
		}
		*d.dst = v
	}
	if form.Has("error_rate") {
		v, err := strconv.ParseFloat(form.Get("error_rate"), 64)
		if err != nil {
			return s, fmt.Errorf("error_rate: %w", err)
		}
		s.ErrorRate = v
	}
	return s, s.Validate()
}

// Middleware serves ControlPath itself and applies the faults to every other
// request: an injected error is answered 500 with a JSON error.
func (in *Injector) Middleware(next http.Handler) http.Handler {
	control := in.ControlHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == ControlPath {
			control.ServeHTTP(w, r)
			return
		}
		if err := in.Apply(r.Context()); err != nil {
			// A client gone during the latency gets no answer worth writing.
			WriteJSONError(w, http.StatusInternalServerError, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// WriteJSONError answers {"error": err.Error()} with the given status.
func WriteJSONError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the status is sent; nothing to do on error
}
