// Package cachefirst reads an object from the manager's cache and, when the
// cache does not have it, from the API server: an absence is believed only
// from the API server, a presence from either. Every reconciler and webhook
// that confirms an absence reads through it.
package cachefirst

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Reader reads from Cache, and from API when Cache has no such object (it
// may not have seen it yet, or not hold its kind: the manager caches only
// its own Secrets). Lists go to API.
type Reader struct {
	Cache, API client.Reader
}

// Get reads key into obj.
func (r Reader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := r.Cache.Get(ctx, key, obj, opts...); !apierrors.IsNotFound(err) {
		return err
	}
	return r.API.Get(ctx, key, obj, opts...)
}

// List lists from the API server.
func (r Reader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.API.List(ctx, list, opts...)
}
