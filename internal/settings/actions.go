package settings

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

// CreateKey is the "Create API Key" button: a WorkspaceAPIKey for an
// existing Workspace, as the person (their RBAC decides).
func CreateKey(ctx context.Context, c client.Client, namespace, workspace string) error {
	ws := &octopodsv1alpha1.Workspace{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: workspace}, ws); err != nil {
		if apierrors.IsNotFound(err) {
			return errNoWorkspace(workspace, namespace)
		}
		return explain(err, "get", "workspaces", namespace)
	}
	key := &octopodsv1alpha1.WorkspaceAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: octopodsv1alpha1.KeyName(workspace)},
		Spec:       octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: workspace},
	}
	err := c.Create(ctx, key)
	switch {
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("workspace %q already has an API key (one per workspace): copy it with `kubectl octopods copy %s -n %s`", workspace, workspace, namespace)
	case err != nil:
		return explain(err, "create", "workspaceapikeys", namespace)
	}
	return nil
}

// errNoWorkspace is the answer for a workspace that is not there: the
// advice names the namespace, so a wrong -n shows.
func errNoWorkspace(workspace, namespace string) error {
	return fmt.Errorf("workspace %q does not exist in namespace %q: see `kubectl octopods get -n %s` for the ones there are, or give another -n", workspace, namespace, namespace)
}

// noKey explains a missing WorkspaceAPIKey: no such workspace in the
// namespace, or a workspace without a key yet (what is the person about to
// do: "to rotate", "to audit", or "" to copy).
func noKey(ctx context.Context, c client.Reader, namespace, workspace, doing string) error {
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: workspace}, &octopodsv1alpha1.Workspace{}); apierrors.IsNotFound(err) {
		return errNoWorkspace(workspace, namespace)
	}
	if doing != "" {
		doing = " " + doing
	}
	return fmt.Errorf("workspace %q in namespace %q has no API key%s: create one with `kubectl octopods create %s -n %s`", workspace, namespace, doing, workspace, namespace)
}

// DefaultRotationToken is a time stamp: a new token each time.
func DefaultRotationToken(now time.Time) string {
	return "rotate-" + now.UTC().Format("20060102T150405Z")
}

// RequestRotation sets octopods.io/rotate=token on the workspace's key and
// returns the key as it was (its key ID and grace period).
func RequestRotation(ctx context.Context, c client.Client, namespace, workspace, token string) (*octopodsv1alpha1.WorkspaceAPIKey, error) {
	key := &octopodsv1alpha1.WorkspaceAPIKey{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: octopodsv1alpha1.KeyName(workspace)}, key); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, noKey(ctx, c, namespace, workspace, "to rotate")
		}
		return nil, explain(err, "get", "workspaceapikeys", namespace)
	}
	if key.Annotations[octopodsv1alpha1.RotateAnnotation] == token || key.Status.LastRotationToken == token {
		return nil, fmt.Errorf("token %q was already used for %q: each token rotates once; give a new one with --token, or leave it out", token, workspace)
	}
	before := key.DeepCopy()
	patch := client.MergeFrom(key.DeepCopy())
	if key.Annotations == nil {
		key.Annotations = map[string]string{}
	}
	key.Annotations[octopodsv1alpha1.RotateAnnotation] = token
	if err := c.Patch(ctx, key, patch); err != nil {
		return nil, explain(err, "patch", "workspaceapikeys", namespace)
	}
	return before, nil
}

// WaitForRotation waits until the key's status shows token handled.
func WaitForRotation(ctx context.Context, c client.Reader, namespace, workspace, token string, wait time.Duration) (*octopodsv1alpha1.WorkspaceAPIKey, error) {
	deadline := time.Now().Add(wait)
	for {
		key := &octopodsv1alpha1.WorkspaceAPIKey{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: octopodsv1alpha1.KeyName(workspace)}, key); err != nil {
			return nil, explain(err, "get", "workspaceapikeys", namespace)
		}
		if key.Status.LastRotationToken == token && key.Status.KeyID != "" {
			return key, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the rotation of %q was requested (token %q) but not done after %s: is the operator running? `kubectl describe workspaceapikey -n %s %s` says more", workspace, token, wait, namespace, workspace)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
