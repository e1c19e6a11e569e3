package controlplane

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TokenAudience is the audience of the projected service account tokens
// proxies present for their certificates: a token made for anything else
// (the API server itself, another system) is refused.
const TokenAudience = "weft"

// reviewToken asks the API server who a service account token proves,
// with a TokenReview for TokenAudience.
func reviewToken(client kubernetes.Interface) func(context.Context, string) (string, string, error) {
	return func(ctx context.Context, token string) (string, string, error) {
		tr, err := client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
			Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{TokenAudience}},
		}, metav1.CreateOptions{})
		if err != nil {
			return "", "", fmt.Errorf("token review: %w", err)
		}
		st := tr.Status
		if !st.Authenticated {
			return "", "", fmt.Errorf("token review: not authenticated: %s", st.Error)
		}
		if !slices.Contains(st.Audiences, TokenAudience) {
			return "", "", fmt.Errorf("token review: the token is not for audience %q (it is for %v)", TokenAudience, st.Audiences)
		}
		return serviceAccountOf(st.User.Username)
	}
}

// serviceAccountOf reads a service account's namespace and name from its
// user name, system:serviceaccount:NAMESPACE:NAME; other users (people,
// nodes) are no workload.
func serviceAccountOf(username string) (string, string, error) {
	rest, ok := strings.CutPrefix(username, "system:serviceaccount:")
	ns, name, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || name == "" || strings.Contains(name, ":") {
		return "", "", fmt.Errorf("token review: %q is not a service account", username)
	}
	return ns, name, nil
}
