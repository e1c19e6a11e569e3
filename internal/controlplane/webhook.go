package controlplane

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/weftmesh/weft/internal/inject"
)

// WebhookOptions configure the sidecar injection webhook the control plane
// serves in Kubernetes mode: the API server calls it for every Pod
// created in a namespace the webhook configuration selects.
type WebhookOptions struct {
	// Addr is where it listens, over TLS.
	Addr string
	// CertDir holds its serving certificate, tls.crt and tls.key; a new
	// pair written there is served from the next handshake on.
	CertDir string
	// Inject are the mesh-wide settings of the sidecar.
	Inject inject.Options
	// FailurePolicy is the one the webhook configuration declares (weft
	// install's --failure-policy), Fail if empty. The API server applies it
	// only when it cannot reach the webhook; the webhook applies it to a Pod
	// it cannot mutate, so that both failures end the same way: Fail
	// refuses the Pod, Ignore lets it start outside the mesh.
	FailurePolicy admissionregistrationv1.FailurePolicyType
}

// InjectionFailedReason is the reason of the Event the webhook records
// when it cannot mesh a Pod.
const InjectionFailedReason = "InjectionFailed"

// maxAdmissionReview bounds the body of one admission request.
const maxAdmissionReview = 4 << 20

// serveInject answers an AdmissionReview for a Pod: allowed, with the
// JSON Patch that meshes it when it is to be meshed; allowed unchanged
// when it is not. One it cannot mesh (a bad weft annotation, say) is
// refused, saying why (the API server tells whoever created it), or, under
// failure policy Ignore, allowed unchanged with a warning; either way an
// Event records why, since a Pod a controller creates has no one to read
// the answer.
func (cp *ControlPlane) serveInject(w http.ResponseWriter, r *http.Request, events record.EventRecorder) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(io.LimitReader(r.Body, maxAdmissionReview)).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("weft webhook: want an admission.k8s.io/v1 AdmissionReview with a request (%v)", err), http.StatusBadRequest)
		return
	}
	req := review.Request
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	log := cp.opts.Logger.With("component", "webhook", "namespace", req.Namespace, "name", req.Name, "generate_name", podGenerateName(req.Object.Raw))
	if req.Kind.Kind == "Pod" && req.Kind.Group == "" && req.Operation == admissionv1.Create {
		patch, res, err := inject.PodPatch(req.Object.Raw, cp.kube.NamespaceLabels(req.Namespace), cp.opts.Webhook.Inject)
		// The webhook declares sideEffects None: a dry run (kubectl apply
		// --dry-run=server) gets the answer and leaves no Event.
		recordFailure := func(message string) {
			if req.DryRun == nil || !*req.DryRun {
				events.Event(injectionSubject(req.Namespace, req.Object.Raw), corev1.EventTypeWarning, InjectionFailedReason, message)
			}
		}
		switch {
		case err != nil && cp.opts.Webhook.FailurePolicy == admissionregistrationv1.Ignore:
			res.Warnings = append(res.Warnings, fmt.Sprintf("weft sidecar injection failed, the pod starts outside the mesh: %v", err))
			recordFailure(fmt.Sprintf("pod %s started outside the mesh (failure policy Ignore): %v", podName(req), err))
			log.Warn("pod left outside the mesh", "error", err)
		case err != nil:
			resp.Allowed = false
			resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest,
				Message: fmt.Sprintf("weft sidecar injection: %v", err)}
			recordFailure(fmt.Sprintf("pod %s refused (failure policy Fail): %v", podName(req), err))
			log.Warn("pod refused", "error", err)
		case patch != nil:
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = patch, &pt
			log.Info("pod injected", "reason", res.Reason)
		default:
			log.Debug("pod left as it is", "reason", res.Reason)
		}
		resp.Warnings = res.Warnings
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: resp,
	})
}

// podGenerateName reads a Pod's generateName for logs: a Pod a controller
// creates has no name yet when it is admitted.
func podGenerateName(raw []byte) string {
	var meta struct {
		Metadata struct {
			GenerateName string `json:"generateName"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &meta)
	return meta.Metadata.GenerateName
}

// podName names a Pod being admitted in an Event's message.
func podName(req *admissionv1.AdmissionRequest) string {
	if req.Name != "" {
		return req.Name
	}
	return podGenerateName(req.Object.Raw) + "*"
}

// injectionSubject is what an Event about a Pod being admitted is about:
// the Pod does not exist yet, so its controller (its first owner when
// none is the controller), where users look when Pods do not appear, or
// else its namespace.
func injectionSubject(namespace string, raw []byte) *corev1.ObjectReference {
	var meta struct {
		Metadata struct {
			OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &meta)
	owners := meta.Metadata.OwnerReferences
	if len(owners) == 0 {
		return &corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Name: namespace}
	}
	o := owners[0]
	for _, c := range owners {
		if c.Controller != nil && *c.Controller {
			o = c
			break
		}
	}
	return &corev1.ObjectReference{APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, UID: o.UID, Namespace: namespace}
}

// certReloader serves the key pair in a directory, read again when its
// files change (cert-manager, or weft install's Secret, renews them).
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
}

func newCertReloader(dir string) (*certReloader, error) {
	c := &certReloader{certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key")}
	if _, err := c.get(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certReloader) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	info, err := os.Stat(c.certFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil // mid-rewrite: keep serving the last pair
		}
		return nil, fmt.Errorf("webhook certificate: %w", err)
	}
	if c.cert != nil && !info.ModTime().After(c.modTime) {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil
		}
		return nil, fmt.Errorf("webhook certificate: %w", err)
	}
	c.cert, c.modTime = &cert, info.ModTime()
	return c.cert, nil
}

// webhookServer is the HTTPS server of the injection webhook. Its Events
// are written in the background (an admission answer waits for none) and
// aggregated, so a controller retrying a Pod it cannot create makes one
// Event with a count, not one per try.
func (cp *ControlPlane) webhookServer(certs *certReloader) *http.Server {
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cp.kube.Client().CoreV1().Events("")})
	events := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "weft-webhook"})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /inject", func(w http.ResponseWriter, r *http.Request) { cp.serveInject(w, r, events) })
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.get() },
		},
	}
	srv.RegisterOnShutdown(broadcaster.Shutdown)
	return srv
}
