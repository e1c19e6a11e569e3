package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

// ControllerName is how weft signs the status it writes on Gateway API
// routes (status.parents[].controllerName).
const ControllerName gwv1.GatewayController = "weft.dev/mesh"

// Condition types and the reasons weft's own kinds use beside Gateway
// API's.
const (
	ConditionAccepted     = "Accepted"
	ConditionResolvedRefs = "ResolvedRefs"
	// ReasonConflicted: a Gateway API route whose match another route in
	// force already takes on the same Service and port (Gateway API has
	// no reason of its own for routes attached to a Service).
	ReasonConflicted = "Conflicted"
	// ReasonInvalid: a weft policy the control plane refuses.
	ReasonInvalid                = "Invalid"
	ReasonServiceNotFound        = "ServiceNotFound"
	ReasonServiceAccountNotFound = "ServiceAccountNotFound"
	reasonAccepted, reasonRefsOK = string(gwv1.RouteReasonAccepted), string(gwv1.RouteReasonResolvedRefs)
)

// A failed status write is tried again after retryWrites, when nothing
// else brings it sooner, then twice as long after each failure in a row
// up to maxRetryWrites: a write RBAC forbids fails every time.
const (
	retryWrites    = 5 * time.Second
	maxRetryWrites = 5 * time.Minute
)

var routeResources = []string{"httproutes", "grpcroutes"}

// StatusWriter writes what the mesh made of each route and policy object
// the source reads back to its status subresource: Gateway API routes get
// one status.parents[] entry per Service parent, signed ControllerName;
// weft's policy kinds get status.conditions. It writes an object only when
// what it would write differs from what is there, so its own writes, which
// the source sees, cause no more. Only one replica of the control plane
// should run it.
type StatusWriter struct {
	src *Source
	log *slog.Logger
	now func() time.Time
}

// NewStatusWriter returns a writer of the status of what src reads.
func NewStatusWriter(src *Source) *StatusWriter {
	return &StatusWriter{src: src, log: src.opts.Logger.With("component", "status"), now: time.Now}
}

// Run writes status once the source has synced, and again whenever the
// source syncs or the model changes, until ctx ends. A write that fails
// is tried again a little later.
func (w *StatusWriter) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-w.src.Synced():
	}
	backoff, lastErr := retryWrites, ""
	for {
		meshed, verdicts, resynced := w.src.state()
		snap := w.src.opts.Store.Snapshot()
		var retry <-chan time.Time
		if err := w.writeAll(ctx, snap, meshed, verdicts); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Every sync tries again: say so once per new failure.
			level := slog.LevelWarn
			if err.Error() == lastErr {
				level = slog.LevelDebug
			}
			w.log.Log(ctx, level, "status not written; will try again", "after", backoff, "error", err)
			retry, lastErr = time.After(backoff), err.Error()
			backoff = min(2*backoff, maxRetryWrites)
		} else {
			backoff, lastErr = retryWrites, ""
		}
		select {
		case <-ctx.Done():
			return nil
		case <-resynced:
		case <-snap.Superseded():
		case <-retry:
		}
	}
}

// writeAll writes the status of every route and weft policy object of a
// meshed namespace whose status is not what it should be.
func (w *StatusWriter) writeAll(ctx context.Context, snap *model.Snapshot, meshed map[string]bool, verdicts map[manifest.Key]verdict) error {
	var errs []error
	for gvr, lister := range w.src.listers() {
		if !slices.Contains(routeResources, gvr.Resource) && gvr.Group != "weft.dev" {
			continue
		}
		objs, err := lister.List(labels.Everything())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", gvr.Resource, err))
			continue
		}
		for _, o := range objs {
			u, ok := o.(*unstructured.Unstructured)
			if !ok || !meshed[u.GetNamespace()] {
				continue
			}
			if err := w.write(ctx, gvr, u, snap, verdicts); err != nil {
				errs = append(errs, fmt.Errorf("%s %s/%s status: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err))
			}
		}
	}
	return errors.Join(errs...)
}

func (w *StatusWriter) write(ctx context.Context, gvr schema.GroupVersionResource, u *unstructured.Unstructured, snap *model.Snapshot, verdicts map[manifest.Key]verdict) error {
	ref := model.Ref{Namespace: u.GetNamespace(), Name: u.GetName()}
	v := verdicts[manifest.Key{Kind: u.GetKind(), Ref: ref}]
	pk := model.PolicyKey{Kind: u.GetKind(), Ref: ref}
	var status map[string]any
	var err error
	if slices.Contains(routeResources, gvr.Resource) {
		status, err = w.routeStatus(u, snap, pk, v)
	} else {
		status, err = w.policyStatus(u, snap, pk, v)
	}
	if err != nil || status == nil {
		return err
	}
	obj := u.DeepCopy()
	obj.Object["status"] = status
	if _, err := w.src.opts.Dynamic.Resource(gvr).Namespace(ref.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // the source sees the newer object, or its deletion, and so does the next round
		}
		return err
	}
	w.log.Debug("status written", "kind", u.GetKind(), "namespace", ref.Namespace, "name", ref.Name, "generation", u.GetGeneration())
	return nil
}

// routeStatus returns the status a Gateway API route should have, nil when
// it has it already. Entries of other controllers (a Gateway's) stay.
func (w *StatusWriter) routeStatus(u *unstructured.Unstructured, snap *model.Snapshot, k model.PolicyKey, v verdict) (map[string]any, error) {
	var spec gwv1.CommonRouteSpec
	var current gwv1.RouteStatus
	if err := fromUnstructured(u, "spec", &spec); err != nil {
		return nil, err
	}
	if err := fromUnstructured(u, "status", &current); err != nil {
		return nil, err
	}
	_, inModel := snap.Policy(k)
	if v.invalid == "" && !inModel {
		return nil, nil // not the mesh's: nothing to say
	}
	accepted, resolved := routeConditions(snap.RouteRejection(k), v)
	var next []gwv1.RouteParentStatus
	for _, ps := range current.Parents {
		if ps.ControllerName != ControllerName {
			next = append(next, ps)
		}
	}
	for _, p := range spec.ParentRefs {
		if p.Kind == nil || *p.Kind != manifest.KindService {
			continue // another controller's parent
		}
		var prev []metav1.Condition
		for _, ps := range current.Parents {
			if ps.ControllerName == ControllerName && equality.Semantic.DeepEqual(ps.ParentRef, p) {
				prev = ps.Conditions
			}
		}
		conds := []metav1.Condition{accepted}
		if _, ok := snap.Service(model.Ref{Namespace: k.Ref.Namespace, Name: string(p.Name)}); !ok && v.invalid == "" {
			conds[0] = condition(ConditionAccepted, false, string(gwv1.RouteReasonNoMatchingParent),
				fmt.Sprintf("Service %s/%s does not exist", k.Ref.Namespace, p.Name))
		}
		if resolved != nil {
			conds = append(conds, *resolved)
		}
		next = append(next, gwv1.RouteParentStatus{ParentRef: p, ControllerName: ControllerName,
			Conditions: w.stamp(conds, prev, u.GetGeneration())})
	}
	if equality.Semantic.DeepEqual(next, current.Parents) {
		return nil, nil
	}
	return statusWith(u, "parents", &gwv1.RouteStatus{Parents: next})
}

// routeConditions are the Accepted and ResolvedRefs conditions of a route
// that is invalid (v.invalid: not taken into the model), rejected
// (rejection: in the model, not admitted, its last admitted version still
// in force), or neither. An invalid route has no ResolvedRefs.
func routeConditions(rejection error, v verdict) (accepted metav1.Condition, resolved *metav1.Condition) {
	if v.invalid != "" {
		return condition(ConditionAccepted, false, string(gwv1.RouteReasonUnsupportedValue), v.invalid), nil
	}
	var refs, conflicts []string
	var oe *model.ObjectError
	if errors.As(rejection, &oe) {
		for _, e := range model.Unjoin(oe.Err) {
			var fe *model.FieldError
			if errors.As(e, &fe) && strings.Contains(fe.Field, "backendRef") {
				refs = append(refs, e.Error())
			} else {
				conflicts = append(conflicts, e.Error())
			}
		}
	}
	r := condition(ConditionResolvedRefs, true, reasonRefsOK, "every backend Service exists")
	if len(refs) > 0 {
		r = condition(ConditionResolvedRefs, false, string(gwv1.RouteReasonBackendNotFound), strings.Join(refs, "; "))
	}
	const kept = "; the version in force before, if any, stays in force"
	switch {
	case len(conflicts) > 0:
		accepted = condition(ConditionAccepted, false, ReasonConflicted, strings.Join(conflicts, "; ")+kept)
	case len(refs) > 0:
		// weft admits a route once what it names exists, by itself.
		accepted = condition(ConditionAccepted, false, string(gwv1.RouteReasonPending), "not in force until its backends exist"+kept)
	default:
		accepted = condition(ConditionAccepted, true, reasonAccepted, "in force")
	}
	return accepted, &r
}

// policyStatus returns the status.conditions a weft policy should have,
// nil when it has them already.
func (w *StatusWriter) policyStatus(u *unstructured.Unstructured, snap *model.Snapshot, k model.PolicyKey, v verdict) (map[string]any, error) {
	var current policyStatus
	if err := fromUnstructured(u, "status", &current); err != nil {
		return nil, err
	}
	p, inModel := snap.Policy(k)
	var conds []metav1.Condition
	switch {
	case v.invalid != "":
		conds = append(conds, condition(ConditionAccepted, false, ReasonInvalid, v.invalid+"; the version in force before, if any, stays in force"))
	case !inModel:
		return nil, nil
	default:
		conds = append(conds, condition(ConditionAccepted, true, reasonAccepted, "in force"))
		resolved := condition(ConditionResolvedRefs, true, reasonRefsOK, "what it names exists")
		if svc := targetService(p); svc != "" {
			if _, ok := snap.Service(model.Ref{Namespace: k.Ref.Namespace, Name: svc}); !ok {
				resolved = condition(ConditionResolvedRefs, false, ReasonServiceNotFound, fmt.Sprintf("Service %s/%s does not exist", k.Ref.Namespace, svc))
			}
		}
		if len(v.unresolved) > 0 {
			resolved = condition(ConditionResolvedRefs, false, ReasonServiceAccountNotFound,
				"service accounts that do not exist: "+strings.Join(v.unresolved, ", "))
		}
		conds = append(conds, resolved)
	}
	next := w.stamp(conds, current.Conditions, u.GetGeneration())
	if equality.Semantic.DeepEqual(next, current.Conditions) {
		return nil, nil
	}
	return statusWith(u, "conditions", &policyStatus{Conditions: next})
}

// policyStatus is the status of weft's policy kinds.
type policyStatus struct {
	Conditions []metav1.Condition `json:"conditions"`
}

// targetService is the Service a weft policy attaches to, "" if none.
func targetService(p model.Policy) string {
	switch p := p.(type) {
	case *model.AuthorizationPolicy:
		return p.Target.Service
	case *model.RetryPolicy:
		return p.Service
	case *model.FaultPolicy:
		return p.Service
	case *model.CircuitBreakerPolicy:
		return p.Service
	case *model.RateLimitPolicy:
		return p.Service
	}
	return ""
}

func condition(typ string, ok bool, reason, message string) metav1.Condition {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message}
}

// stamp sets the generation the conditions were made for and their last
// transition time: kept from prev while a condition's status stays.
func (w *StatusWriter) stamp(conds, prev []metav1.Condition, generation int64) []metav1.Condition {
	now := metav1.NewTime(w.now().Truncate(time.Second))
	for i := range conds {
		conds[i].ObservedGeneration = generation
		conds[i].LastTransitionTime = now
		for _, p := range prev {
			if p.Type == conds[i].Type && p.Status == conds[i].Status {
				conds[i].LastTransitionTime = p.LastTransitionTime
			}
		}
	}
	return conds
}

// fromUnstructured decodes one top-level field of an object.
func fromUnstructured(u *unstructured.Unstructured, field string, into any) error {
	m, ok := u.Object[field].(map[string]any)
	if !ok {
		return nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, into); err != nil {
		return fmt.Errorf("reading %s: %w", field, err)
	}
	return nil
}

// statusWith returns the object's status with one field replaced by that
// field of typed, a status struct.
func statusWith(u *unstructured.Unstructured, field string, typed any) (map[string]any, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
	if err != nil {
		return nil, fmt.Errorf("status.%s: %w", field, err)
	}
	status, _ := u.Object["status"].(map[string]any)
	status = maps.Clone(status)
	if status == nil {
		status = map[string]any{}
	}
	status[field] = m[field]
	return status, nil
}
