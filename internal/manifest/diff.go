package manifest

import "github.com/weftmesh/weft/internal/model"

// Diff returns the changes that take a source's objects in the store from
// applied to want: puts for the new and changed, deletes for the gone.
func Diff(applied, want map[Key]Object) model.Changes {
	var c model.Changes
	for k, o := range want {
		if old, ok := applied[k]; ok && sameObject(old, o) {
			continue
		}
		switch {
		case o.Service != nil:
			c.PutServices = append(c.PutServices, o.Service)
		case o.Workload != nil:
			c.PutWorkloads = append(c.PutWorkloads, o.Workload)
		case o.Policy != nil:
			c.PutPolicies = append(c.PutPolicies, o.Policy)
		}
	}
	for k, old := range applied {
		if _, ok := want[k]; ok {
			continue
		}
		switch {
		case old.Service != nil:
			c.DeleteServices = append(c.DeleteServices, k.Ref)
		case old.Workload != nil:
			c.DeleteWorkloads = append(c.DeleteWorkloads, k.Ref)
		case old.Policy != nil:
			c.DeletePolicies = append(c.DeletePolicies, old.Policy.Key())
		}
	}
	return c
}

func sameObject(a, b Object) bool {
	switch {
	case a.Service != nil && b.Service != nil:
		return a.Service.Equal(b.Service)
	case a.Workload != nil && b.Workload != nil:
		return a.Workload.Equal(b.Workload)
	case a.Policy != nil && b.Policy != nil:
		return a.Policy.EqualPolicy(b.Policy)
	}
	return false
}
