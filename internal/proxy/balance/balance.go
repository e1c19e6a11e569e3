package balance

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/weftmesh/weft/internal/model"
)

// Balancer picks endpoints. Update and Pick may be called concurrently;
// Pick must be cheap and must never return an endpoint that a completed
// Update removed.
type Balancer interface {
	// Update replaces the endpoint set. State kept per endpoint (load,
	// latency) survives for endpoints whose ID stays.
	Update(endpoints []*model.Endpoint)
	// Pick chooses an endpoint for which skip, unless nil, is false: a
	// caller retrying after a failed connect excludes what it has tried,
	// since re-rolling cannot avoid an endpoint a balancer favours. The
	// caller must call done exactly once when the request or connection
	// ends, with its error if any.
	Pick(skip func(*model.Endpoint) bool) (ep *model.Endpoint, done Done, err error)
}

// Done reports the end of a picked request.
type Done func(err error)

// ErrNoEndpoints is returned by Pick when the set is empty.
var ErrNoEndpoints = errors.New("no endpoints")

// ErrAllSkipped is returned by Pick when skip excludes every endpoint.
var ErrAllSkipped = errors.New("every endpoint is excluded")

// Names of the registered balancers.
const (
	RoundRobin = "round-robin"
	// P2C is power of two choices over peak-EWMA latency times load.
	P2C = "p2c"
	// Default is the balancer used when none is named.
	Default = P2C
)

// Factory makes a balancer with an empty endpoint set.
type Factory func() Balancer

var registry = map[string]Factory{
	RoundRobin: func() Balancer { return newRoundRobin() },
	P2C:        func() Balancer { return newP2C() },
}

// New makes the balancer registered under name; "" is Default.
func New(name string) (Balancer, error) {
	if name == "" {
		name = Default
	}
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("balancer %q: unknown (have %v)", name, Names())
	}
	return f(), nil
}

// Names lists the registered balancers, sorted.
func Names() []string {
	return slices.Sorted(maps.Keys(registry))
}

func noop(error) {}
