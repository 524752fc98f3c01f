package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// writeStatus patches the status subresource when the status differs from
// before. A merge patch sends only the changed fields, so fields written by
// others (the proxy's lastUsedTime) are never overwritten; the optimistic
// lock makes a status computed from a stale read fail and be computed again,
// so a key is never published from an outdated view.
func writeStatus[T client.Object, S any](ctx context.Context, c client.Client, obj T, status func(T) *S, before S) error {
	if equality.Semantic.DeepEqual(before, *status(obj)) {
		return nil
	}
	original := obj.DeepCopyObject().(T)
	*status(original) = before
	return client.IgnoreNotFound(c.Status().Patch(ctx, obj, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{})))
}

// patchMetadata writes finalizer and owner-reference changes with an
// optimistic lock, so a concurrent edit is retried rather than overwritten.
// The status being computed in memory survives the patch response.
func patchMetadata[T client.Object, S any](ctx context.Context, c client.Client, obj, original T, status func(T) *S) error {
	kept := *status(obj)
	err := c.Patch(ctx, obj, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{}))
	*status(obj) = kept
	return err
}
