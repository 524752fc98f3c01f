package settings

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// CreateKey is the "Create API Key" button: the key object of an existing
// owner (a Workspace, Channel or WhatsAppBusinessAccount), as the person
// (their RBAC decides).
func CreateKey(ctx context.Context, c client.Client, namespace string, t Target) error {
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: t.Name}, t.Kind.NewOwner()); err != nil {
		if apierrors.IsNotFound(err) {
			return errNoOwner(t, namespace)
		}
		return explain(err, "get", t.ownerResource(), namespace)
	}
	key := t.Kind.NewKey()
	key.SetNamespace(namespace)
	key.SetName(octopodsv1alpha1.KeyName(t.Name))
	key.SetOwnerName(t.Name)
	err := c.Create(ctx, key)
	switch {
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%s %q already has an API key (one per %s): copy it with `kubectl octopods copy %s -n %s`", t.Noun(), t.Name, t.Noun(), t, namespace)
	case err != nil:
		return explain(err, "create", t.Kind.Resource, namespace)
	}
	return nil
}

// errNoOwner is the answer for an owner that is not there: the advice
// names the namespace, so a wrong -n shows.
func errNoOwner(t Target, namespace string) error {
	return fmt.Errorf("%s %q does not exist in namespace %q: see `kubectl octopods get %s-n %s` for the ones there are, or give another -n", t.Noun(), t.Name, namespace, listArg(t), namespace)
}

// listArg is the `get` argument (and a space) that lists the target's kind.
func listArg(t Target) string {
	if w := ListWord(t.Kind); w != "" {
		return w + " "
	}
	return ""
}

// noKey explains a missing key object: no such owner in the namespace, or
// an owner without a key yet (what is the person about to do: "to
// rotate", "to audit", or "" to copy).
func noKey(ctx context.Context, c client.Reader, namespace string, t Target, doing string) error {
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: t.Name}, t.Kind.NewOwner()); apierrors.IsNotFound(err) {
		return errNoOwner(t, namespace)
	}
	if doing != "" {
		doing = " " + doing
	}
	return fmt.Errorf("%s %q in namespace %q has no API key%s: create one with `kubectl octopods create %s -n %s`", t.Noun(), t.Name, namespace, doing, t, namespace)
}

// getKey reads the target's key object; a missing one is explained.
func getKey(ctx context.Context, c client.Reader, namespace string, t Target, doing string) (octopodsv1alpha1.KeyObject, error) {
	key := t.Kind.NewKey()
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: octopodsv1alpha1.KeyName(t.Name)}, key); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, noKey(ctx, c, namespace, t, doing)
		}
		return nil, explain(err, "get", t.Kind.Resource, namespace)
	}
	return key, nil
}

// DefaultRotationToken is a time stamp: a new token each time.
func DefaultRotationToken(now time.Time) string {
	return "rotate-" + now.UTC().Format("20060102T150405Z")
}

// RequestRotation sets octopods.io/rotate=token on the target's key and
// returns the key as it was (its key ID and grace period).
func RequestRotation(ctx context.Context, c client.Client, namespace string, t Target, token string) (octopodsv1alpha1.KeyObject, error) {
	key, err := getKey(ctx, c, namespace, t, "to rotate")
	if err != nil {
		return nil, err
	}
	if key.GetAnnotations()[octopodsv1alpha1.RotateAnnotation] == token || key.KeyStatus().LastRotationToken == token {
		return nil, fmt.Errorf("token %q was already used for %q: each token rotates once; give a new one with --token, or leave it out", token, t)
	}
	before := key.DeepCopyObject().(octopodsv1alpha1.KeyObject)
	patch := client.MergeFrom(key.DeepCopyObject().(client.Object))
	annotations := key.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[octopodsv1alpha1.RotateAnnotation] = token
	key.SetAnnotations(annotations)
	if err := c.Patch(ctx, key, patch); err != nil {
		return nil, explain(err, "patch", t.Kind.Resource, namespace)
	}
	return before, nil
}

// WaitForRotation waits until the key's status shows token handled.
func WaitForRotation(ctx context.Context, c client.Reader, namespace string, t Target, token string, wait time.Duration) (octopodsv1alpha1.KeyObject, error) {
	deadline := time.Now().Add(wait)
	for {
		key, err := getKey(ctx, c, namespace, t, "to rotate")
		if err != nil {
			return nil, err
		}
		if st := key.KeyStatus(); st.LastRotationToken == token && st.KeyID != "" {
			return key, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the rotation of %q was requested (token %q) but not done after %s: is the operator running? `kubectl describe %s -n %s %s` says more", t, token, wait, strings.ToLower(t.Kind.Kind), namespace, key.GetName())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
