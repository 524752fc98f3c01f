package controllers

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/cachefirst"
)

// RevokeFinalizer makes deletion of a WorkspaceAPIKey or Workspace revoke the
// key (delete its Secret) even where no garbage collector runs.
const RevokeFinalizer = octopodsv1alpha1.RevokeFinalizer

// keyOfOwner maps an owner (a Workspace) to its key.
func keyOfOwner(_ context.Context, obj client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: octopodsv1alpha1.KeyName(obj.GetName())}}}
}

// ownerOfKey maps a key to its owner (a Workspace).
func ownerOfKey(_ context.Context, obj client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: octopodsv1alpha1.OwnerName(obj.GetName())}}}
}

// getConfirmed reads obj from the cache, or from the API server when fresh is
// set or the cache misses: an absence is only believed from the API server,
// by every reconciler alike.
func getConfirmed(ctx context.Context, cache, api client.Reader, name types.NamespacedName, obj client.Object, fresh bool) (bool, error) {
	var r client.Reader = cachefirst.Reader{Cache: cache, API: api}
	if fresh {
		r = api
	}
	err := r.Get(ctx, name, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
