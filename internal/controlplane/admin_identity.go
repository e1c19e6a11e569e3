package controlplane

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/model"
)

// maxTokenTTL bounds a join token's life: it is a bearer secret.
const maxTokenTTL = 30 * 24 * time.Hour

func (cp *ControlPlane) identityRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/identity", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, cp.Identity()) })
	mux.Handle("POST /api/v1/identity/tokens", cp.requireAdmin(http.HandlerFunc(cp.mintToken)))
	mux.Handle("POST /api/v1/identity/tokens/revoke", cp.requireAdmin(http.HandlerFunc(cp.revokeToken)))
	mux.Handle("POST /api/v1/identity/rotate", cp.requireAdmin(http.HandlerFunc(cp.rotate)))
}

// revokeToken refuses a join token from now on, before it expires.
func (cp *ControlPlane) revokeToken(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	if err := decodeBody(r, &req); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := cp.ca.RevokeToken(req.ID); err != nil {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("id: %v", err))
		return
	}
	cp.opts.Logger.Info("join token revoked", "token_id", req.ID)
	writeJSON(w, req)
}

// Identity describes the trust anchors and the intermediate.
func (cp *ControlPlane) Identity() Identity {
	out := Identity{TrustDomain: cp.ca.TrustDomain().String(), RotationPhase: cp.ca.RotationPhase(), Anchors: []Anchor{}}
	for _, a := range cp.ca.Anchors() {
		out.Anchors = append(out.Anchors, Anchor{Subject: a.Subject, NotAfter: a.NotAfter, Fingerprint: a.Fingerprint, Active: a.Active, LiveLeaves: a.LiveLeaves})
	}
	in := cp.ca.Intermediate()
	out.Intermediate = Anchor{Subject: identity.CertName(in), NotAfter: in.NotAfter, Fingerprint: identity.Fingerprint(in), Active: true}
	proxies := map[string]int{}
	snap := cp.store.Snapshot()
	for _, p := range cp.discovery.Connected() {
		if w, ok := snap.Workload(p.Workload); ok {
			sa := w.Identity()
			if id, err := identity.WorkloadID(cp.ca.TrustDomain(), sa.Namespace, sa.Name); err == nil {
				proxies[id.String()]++
			}
		}
	}
	out.Leaves = []Leaf{}
	for _, l := range cp.issuer.Latest() {
		out.Leaves = append(out.Leaves, Leaf{SPIFFEID: l.ID.String(), Issued: l.Issued, NotAfter: l.NotAfter, Proxies: proxies[l.ID.String()]})
	}
	return out
}

// requireAdmin admits requests bearing the admin token.
func (cp *ControlPlane) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(cp.adminToken)) != 1 {
			cp.opts.Logger.Warn("admin call refused: bad or missing admin token", "path", r.URL.Path, "remote", r.RemoteAddr)
			httpError(w, http.StatusUnauthorized, fmt.Sprintf("this call needs the admin token in %s/%s", cp.opts.StateDir, adminTokenFile))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func decodeBody(r *http.Request, into any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

func (cp *ControlPlane) mintToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := decodeBody(r, &req); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var fe model.FieldErrors
	if err := model.ValidateDNSLabel(req.Namespace); err != nil {
		fe.Add("namespace", "%v", err)
	}
	if err := model.ValidateDNSLabel(req.ServiceAccount); err != nil {
		fe.Add("serviceAccount", "%v", err)
	}
	if req.Namespace == identity.ControlPlaneNamespace && req.ServiceAccount == identity.ControlPlaneServiceAccount {
		fe.Add("serviceAccount", "%s/%s is the control plane's own identity, which no workload may join as", req.Namespace, req.ServiceAccount)
	}
	ttl := time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > maxTokenTTL {
			fe.Add("ttl", "want a duration between 1s and %s, got %q", maxTokenTTL, req.TTL)
		}
		ttl = d
	}
	if err := fe.Err(); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := cp.JoinToken(req.Namespace, req.ServiceAccount, ttl)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, resp)
}

// JoinToken mints a join token for identity namespace/serviceAccount.
func (cp *ControlPlane) JoinToken(namespace, serviceAccount string, ttl time.Duration) (TokenResponse, error) {
	tok, err := cp.ca.MintToken(identity.TokenClaims{Namespace: namespace, ServiceAccount: serviceAccount, Expires: time.Now().Add(ttl)})
	if err != nil {
		return TokenResponse{}, fmt.Errorf("mint join token: %w", err)
	}
	claims, err := identity.ParseTokenUnverified(tok)
	if err != nil {
		return TokenResponse{}, fmt.Errorf("mint join token: %w", err)
	}
	cp.opts.Logger.Info("join token minted", "token_id", claims.ID, "namespace", namespace, "service_account", serviceAccount, "expires", claims.Expires)
	return TokenResponse{Token: tok, ID: claims.ID, Expires: claims.Expires}, nil
}

// rotate takes one step of a root rotation, then has every proxy (and the
// control plane itself) take the new bundle and renew its certificate.
func (cp *ControlPlane) rotate(w http.ResponseWriter, r *http.Request) {
	var req RotateRequest
	if err := decodeBody(r, &req); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var err error
	switch req.Step {
	case "prepare":
		err = cp.ca.PrepareRotation()
	case "activate":
		err = cp.ca.ActivateNewRoot()
	case "finish":
		err = cp.ca.FinishRotation(req.Force)
	default:
		err = errors.New(`step: want prepare, activate or finish`)
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		httpError(w, http.StatusConflict, fmt.Sprintf("rotation step %s: %v", req.Step, err))
		return
	}
	cp.opts.Logger.Info("trust anchor rotation step taken", "step", req.Step, "bundle_version", cp.ca.BundleVersion())
	cp.bundleChanged()
	writeJSON(w, cp.Identity())
}
